"""Ctrl-C inside the truncated variational E-step (FastGMM(n_active=C')) interrupts promptly, and a
truncated fit interrupted anywhere keeps the parameters and histories of its last completed
iteration (as tests/test_interrupt.py checks for exact EM)."""

import threading
import time
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from fastelbo import FastGMM, _core
from test_interrupt import (  # noqa: F401  (python_handles_sigint is an autouse fixture)
    LATENCY_LIMIT_S,
    Interrupter,
    python_handles_sigint,
    seconds_until_interrupted,
)

N_COMPONENTS, N_ACTIVE, N_NEIGHBOURS = 1024, 8, 8

PARAMETERS = ["weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"]


@pytest.fixture(scope="module")
def big_problem():
    """200k x 32 rows, 1024 components, and random sets K_n (large candidate unions): a pass takes
    a sizeable fraction of a second."""
    rng = np.random.RandomState(0)
    X = rng.standard_normal((200_000, 32))
    K = N_COMPONENTS
    sets = np.array([rng.choice(K, N_ACTIVE, replace=False) for _ in range(1000)], dtype=np.int32)
    active = np.ascontiguousarray(sets[rng.randint(0, 1000, len(X))])
    neighbours = np.array(
        [np.r_[c, rng.choice(np.delete(np.arange(K), c), N_NEIGHBOURS - 1, replace=False)] for c in range(K)],
        dtype=np.int32,
    )
    random_candidates = rng.randint(0, K, len(X)).astype(np.int32)
    means = X[:K].copy()
    return X, means, active, neighbours, random_candidates


def _truncated_pass(problem):
    X, means, active, neighbours, random_candidates = problem
    K, D = means.shape
    return _core.truncated_mixture_pass(
        X,
        None,
        np.full(K, -np.log(K)),
        means,
        np.ones((K, D)),
        means,
        "diag",
        active,
        neighbours,
        random_candidates,
        n_threads=2,
    )


def test_ctrl_c_inside_the_truncated_kernel_is_prompt(big_problem):
    start = time.perf_counter()
    _truncated_pass(big_problem)
    pass_seconds = time.perf_counter() - start

    def passes():
        for _ in range(10_000):  # the interrupt lands inside a pass, whatever this machine's speed
            _truncated_pass(big_problem)

    latency = seconds_until_interrupted(passes, Interrupter())
    # Ctrl-C must not wait for the pass in progress to finish.
    assert latency < min(LATENCY_LIMIT_S, max(0.25, 0.5 * pass_seconds)), (latency, pass_seconds)


class _ObservedGMM(FastGMM):
    """FastGMM that signals its completed M-steps."""

    def _m_step(self, stats):
        super()._m_step(stats)
        self.m_step_done.set()


def test_ctrl_c_during_a_truncated_fit_keeps_the_completed_iterations(big_problem):
    X = big_problem[0]
    gmm = _ObservedGMM(
        256,
        covariance_type="diag",
        n_active=4,
        n_neighbors=5,
        max_iter=100_000,
        tol=0.0,
        random_state=0,
        n_jobs=2,
    )
    gmm.m_step_done = threading.Event()
    with pytest.warns(RuntimeWarning, match="interrupted"):
        latency = seconds_until_interrupted(lambda: gmm.fit(X), Interrupter(trigger=gmm.m_step_done))
    assert latency < LATENCY_LIMIT_S

    assert gmm.converged_ is False
    assert gmm.n_iter_ >= 1
    assert len(gmm.lower_bounds_) == len(gmm.elbo_history_) == len(gmm.entropy_sum_history_) == gmm.n_iter_
    assert gmm.lower_bound_ == gmm.lower_bounds_[-1]
    for name in PARAMETERS:
        assert np.all(np.isfinite(getattr(gmm, name))), name
    np.testing.assert_allclose(gmm.weights_.sum(), 1.0)
    # The run's truncated state is gone; inference is exact and works.
    assert not hasattr(gmm, "_em_truncated")
    labels = gmm.predict(X[:2000])
    assert labels.min() >= 0 and labels.max() < 256
    np.testing.assert_allclose(gmm.predict_proba(X[:2000]).sum(axis=1), 1.0)
    with pytest.raises(ValueError, match="pass X"):
        gmm.entropy_decomposition()


class _InterruptedGMM(FastGMM):
    """FastGMM on which Ctrl-C arrives at the start of its E-step number ``interrupt_at`` (counted
    from 1; fit's E-steps, which compute the moments), as a KeyboardInterrupt from the kernel."""

    def _e_step(self, X, *args, **kwargs):
        if self.interrupt_at is not None and kwargs.get("moments", args[0] if args else True):
            self.e_steps += 1
            if self.e_steps == self.interrupt_at:
                raise KeyboardInterrupt
        return super()._e_step(X, *args, **kwargs)


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_truncated_fit_interrupted_keeps_the_parameters_of_the_last_completed_iteration(covariance_type):
    rng = np.random.RandomState(0)
    centres = 4.0 * rng.standard_normal((10, 3))
    X = centres[rng.randint(10, size=600)] + rng.standard_normal((600, 3))
    params = dict(n_components=10, covariance_type=covariance_type, n_active=3, random_state=0, tol=0.0)
    gmm = _InterruptedGMM(max_iter=50, **params)
    gmm.interrupt_at, gmm.e_steps = 3, 0
    with pytest.warns(RuntimeWarning, match="after iteration 2"):
        with pytest.raises(KeyboardInterrupt):
            gmm.fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        expected = FastGMM(max_iter=2, **params).fit(X)

    assert gmm.converged_ is False and gmm.n_iter_ == 2
    for name in PARAMETERS + ["elbo_history_", "entropy_sum_history_", "lower_bound_", "lower_bounds_"]:
        assert np.array_equal(getattr(gmm, name), getattr(expected, name)), name
    assert np.array_equal(gmm.predict(X), expected.predict(X))
    assert gmm.entropy_decomposition(X) == expected.entropy_decomposition(X)

    # The estimator can be fitted again afterwards, as if never interrupted.
    gmm.interrupt_at = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        refitted = gmm.fit(X)
        reference = FastGMM(max_iter=50, **params).fit(X)
    for name in PARAMETERS + ["elbo_history_", "entropy_sum_history_"]:
        assert np.array_equal(getattr(refitted, name), getattr(reference, name)), name
    assert refitted.entropy_decomposition() == reference.entropy_decomposition()
