"""The Bernoulli / Poisson mixture kernel honours Ctrl-C within milliseconds on a large sparse
problem, and leaves the floating-point environment (flush-to-zero) of the caller and of the OpenMP
pool as it found it."""

import signal
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning

from fastelbo import FastBernoulliMixture, FastPoissonMixture, _core
from test_interrupt import LATENCY_LIMIT_S, Interrupter, seconds_until_interrupted


@pytest.fixture(autouse=True)
def python_handles_sigint():
    """Ctrl-C raises KeyboardInterrupt even where the test process started with SIGINT ignored."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def sparse_counts(n, d, per_row, seed=0):
    """CSR counts with ``per_row`` non-zeros in every row (ones and twos)."""
    rng = np.random.default_rng(seed)
    indices = np.sort(rng.choice(d, size=(n, per_row)), axis=1)
    keep = np.c_[np.ones((n, 1), dtype=bool), np.diff(indices, axis=1) > 0]
    indptr = np.r_[0, np.cumsum(keep.sum(axis=1))]
    data = rng.integers(1, 3, size=int(indptr[-1])).astype(np.float64)
    return sp.csr_matrix((data, indices[keep].astype(np.int32), indptr), shape=(n, d))


@pytest.mark.parametrize("n_active", [None, 3])
@pytest.mark.parametrize("n_jobs", [1, 2])
def test_ctrl_c_interrupts_a_large_sparse_fit_promptly(n_jobs, n_active):
    X = sparse_counts(100_000, 5_000, 40)
    K = 300
    means = np.random.default_rng(1).uniform(0.001, 0.02, size=(K, X.shape[1]))
    # A given start: the time goes to the kernel's passes (about a second each), not to a seeding.
    model = FastPoissonMixture(
        n_components=K,
        max_iter=1000,
        tol=0,
        weights_init=np.full(K, 1 / K),
        means_init=means,
        n_jobs=n_jobs,
        n_active=n_active,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "fit was interrupted; the estimator keeps ..."
        latency = seconds_until_interrupted(lambda: model.fit(X), Interrupter(delay=1.0))
    assert latency < LATENCY_LIMIT_S
    print(f"latency {latency * 1e3:.1f} ms")


@pytest.mark.parametrize("n_jobs", [1, 2])
@pytest.mark.parametrize("estimator", [FastBernoulliMixture, FastPoissonMixture])
@pytest.mark.parametrize("n_active", [None, 2])
def test_fit_leaves_subnormal_arithmetic_working(estimator, n_jobs, n_active):
    # Well-separated clusters: posteriors so sharp that exp() underflows for most row-component pairs.
    rng = np.random.default_rng(0)
    labels = rng.integers(4, size=2000)
    centres = np.where(rng.uniform(size=(4, 60)) < 0.5, 0.02, 0.98)
    X = (rng.uniform(size=(2000, 60)) < centres[labels]).astype(np.float64)
    assert not _core._flushes_subnormals()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = estimator(4, max_iter=5, random_state=0, n_jobs=n_jobs, n_active=n_active).fit(
            sp.csr_matrix(X)
        )
    model.predict_proba(X)
    assert not _core._flushes_subnormals()
    assert _core._pool_flushes_subnormals(2) == [0, 0]
    _core._set_flushing_subnormals(True)
    try:
        model.score_samples(X)
        assert _core._flushes_subnormals()  # a caller's own mode is restored, not cleared
    finally:
        _core._set_flushing_subnormals(False)
