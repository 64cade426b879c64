"""Ctrl-C interrupts a long fit promptly, and the estimator is left in a consistent state.

Two kinds of test:

* real interrupts: ``_thread.interrupt_main()`` (what Ctrl-C does) is fired from a helper thread
  while a C++ kernel is working on a large problem, and the time until ``KeyboardInterrupt``
  reaches the caller is measured;
* simulated interrupts on small data: a FastGMM subclass raises ``KeyboardInterrupt`` at a chosen
  E-step, exactly as the kernel binding does when it sees Ctrl-C, to check deterministically what
  the estimator keeps.
"""

import _thread
import signal
import threading
import time
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from fastelbo import FastGMM, _core

N_SAMPLES, N_FEATURES, N_COMPONENTS = 400_000, 32, 64
# Generous bound on the time from Ctrl-C to KeyboardInterrupt (the kernels poll for it between
# rounds of row blocks, every few milliseconds); large enough for a loaded machine.
LATENCY_LIMIT_S = 2.0
INTERRUPT_DELAY_S = 0.3

PARAMETERS = ["weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"]
RESULTS = ["converged_", "n_iter_", "lower_bound_", "lower_bounds_"]
HISTORIES = ["elbo_history_", "entropy_sum_history_"]


@pytest.fixture(autouse=True)
def python_handles_sigint():
    """Make Ctrl-C raise KeyboardInterrupt even where the test process started with SIGINT ignored
    (a background job of a non-interactive shell): Python then installs no handler of its own and
    ``_thread.interrupt_main()`` would do nothing."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture(scope="module")
def big_X():
    return np.random.RandomState(0).standard_normal((N_SAMPLES, N_FEATURES))


@pytest.fixture(scope="module")
def small_X():
    rng = np.random.RandomState(0)
    centers = 3.0 * rng.standard_normal((3, 4))
    return centers[rng.randint(3, size=600)] + rng.standard_normal((600, 4))


# ----------------------------------------------------------------------------- helpers


class Interrupter:
    """Fires ``_thread.interrupt_main()`` ``delay`` seconds after ``trigger`` is set (at once if no
    trigger is given) and records when, unless the ``with`` block has ended first."""

    def __init__(self, delay=INTERRUPT_DELAY_S, trigger=None):
        self.delay = delay
        self.trigger = trigger if trigger is not None else threading.Event()
        if trigger is None:
            self.trigger.set()
        self.fired_at = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        self.trigger.wait()
        if self._done.wait(self.delay):
            return
        self.fired_at = time.perf_counter()
        _thread.interrupt_main()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._done.set()
        self.trigger.set()
        self._thread.join()
        return False


def seconds_until_interrupted(function, interrupter):
    """Run ``function`` until Ctrl-C from ``interrupter`` stops it; return the latency."""
    with interrupter:
        try:
            function()
        except KeyboardInterrupt:
            caught_at = time.perf_counter()
        else:
            pytest.fail("the call finished before it was interrupted")
    assert interrupter.fired_at is not None, "KeyboardInterrupt was raised before Ctrl-C"
    return caught_at - interrupter.fired_at


class ObservedGMM(FastGMM):
    """FastGMM that records the duration of its E-steps and signals completed M-steps."""

    def _e_step(self, X, *args, **kwargs):
        start = time.perf_counter()
        stats = super()._e_step(X, *args, **kwargs)
        self.e_step_seconds.append(time.perf_counter() - start)
        return stats

    def _m_step(self, stats):
        super()._m_step(stats)
        self.m_step_done.set()


def observed_gmm(**params):
    gmm = ObservedGMM(**params)
    gmm.e_step_seconds = []
    gmm.m_step_done = threading.Event()
    return gmm


class InterruptedGMM(FastGMM):
    """FastGMM on which Ctrl-C arrives at the start of E-step number ``e_step`` of initialisation
    number ``run`` (both counted from 1), as a KeyboardInterrupt from the kernel call."""

    def _initialize_parameters(self, X, *args, **kwargs):
        self.runs_started += 1
        self.e_steps_in_run = 0
        super()._initialize_parameters(X, *args, **kwargs)

    def _e_step(self, X, *args, **kwargs):
        moments = kwargs.get("moments", args[0] if args else True)
        if self.interrupt_at is not None and moments:  # fit's E-steps compute the moments
            self.e_steps_in_run += 1
            if (self.runs_started, self.e_steps_in_run) == self.interrupt_at:
                raise KeyboardInterrupt
        return super()._e_step(X, *args, **kwargs)


def interrupted_gmm(run=1, e_step=1, **params):
    gmm = InterruptedGMM(**params)
    gmm.interrupt_at = (run, e_step)
    gmm.runs_started = 0
    gmm.e_steps_in_run = 0
    return gmm


def fitted_state(gmm):
    """Copies of every public fitted attribute that exists."""
    state = {}
    for name in PARAMETERS + RESULTS + HISTORIES:
        if hasattr(gmm, name):
            value = getattr(gmm, name)
            state[name] = value.copy() if isinstance(value, np.ndarray | list) else value
    return state


def fixed_full_start(X):
    """A full-covariance model's settings with all three initial parameters given (no init pass)."""
    K, D = N_COMPONENTS, N_FEATURES
    return dict(
        n_components=K,
        covariance_type="full",
        weights_init=np.full(K, 1.0 / K),
        means_init=X[:K],
        precisions_init=np.tile(np.eye(D), (K, 1, 1)),
    )


def states_equal(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------------- real Ctrl-C


def test_ctrl_c_during_em_interrupts_promptly_and_keeps_the_completed_iterations(big_X):
    # All three initial parameters given: no initialisation pass, EM starts at once. tol=0 and
    # max_iter=40 make the fit take about a minute if it is not interrupted (the test then fails).
    gmm = observed_gmm(max_iter=40, tol=0.0, init_params="random", **fixed_full_start(big_X))
    interrupter = Interrupter(trigger=gmm.m_step_done)  # 0.3 s into the second iteration
    with pytest.warns(RuntimeWarning, match="interrupted"):
        latency = seconds_until_interrupted(lambda: gmm.fit(big_X), interrupter)

    # Ctrl-C must not wait for the E-step pass in progress to finish.
    limit = min(LATENCY_LIMIT_S, max(0.25, 0.5 * gmm.e_step_seconds[0]))
    assert latency < limit, (latency, gmm.e_step_seconds)

    assert gmm.converged_ is False
    assert gmm.n_iter_ >= 1
    assert len(gmm.lower_bounds_) == len(gmm.elbo_history_) == gmm.n_iter_
    assert len(gmm.entropy_sum_history_) == gmm.n_iter_
    assert gmm.lower_bound_ == gmm.lower_bounds_[-1]
    for name in PARAMETERS:
        assert np.all(np.isfinite(getattr(gmm, name))), name
    X = big_X[:5000]
    labels = gmm.predict(X)
    assert labels.shape == (5000,)
    assert labels.min() >= 0 and labels.max() < N_COMPONENTS
    np.testing.assert_allclose(gmm.predict_proba(X).sum(axis=1), 1.0)
    assert np.isfinite(gmm.entropy_decomposition(X).elbo)
    with pytest.raises(ValueError, match="pass X"):
        gmm.entropy_decomposition()


def _record_calls(monkeypatch, name, entered=None):
    calls = []
    kernel = getattr(_core, name)

    def recorded(*args, **kwargs):
        calls.append(name)
        if entered is not None:
            entered.set()
        return kernel(*args, **kwargs)

    monkeypatch.setattr(_core, name, recorded)
    return calls


def test_ctrl_c_during_kmeans_initialisation_interrupts_promptly(big_X, monkeypatch):
    kmeans_started = threading.Event()
    kmeans_calls = _record_calls(monkeypatch, "kmeans_plusplus", entered=kmeans_started)
    kmeans_calls += _record_calls(monkeypatch, "lloyd_kmeans")
    em_calls = _record_calls(monkeypatch, "gaussian_mixture_pass")
    gmm = FastGMM(n_components=N_COMPONENTS, init_params="kmeans", max_iter=2, tol=0.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        latency = seconds_until_interrupted(lambda: gmm.fit(big_X), Interrupter(trigger=kmeans_started))
    assert latency < LATENCY_LIMIT_S
    # No EM iteration finished, so there is nothing to keep and nothing to warn about.
    assert not [w for w in caught if "interrupted" in str(w.message)]
    assert kmeans_calls and not em_calls, "the interrupt did not land in the k-means initialisation"
    for name in PARAMETERS + RESULTS:
        assert not hasattr(gmm, name), name


def test_ctrl_c_inside_the_kmeans_plusplus_kernel_is_prompt(big_X):
    latency = seconds_until_interrupted(
        lambda: _core.kmeans_plusplus(big_X, None, 512, 8, 0, 0), Interrupter()
    )
    assert latency < LATENCY_LIMIT_S


def test_ctrl_c_inside_the_lloyd_kernel_is_prompt(big_X):
    centers = np.ascontiguousarray(big_X[:N_COMPONENTS])
    latency = seconds_until_interrupted(
        lambda: _core.lloyd_kmeans(big_X, None, centers, 2000, 0.0, 0), Interrupter()
    )
    assert latency < LATENCY_LIMIT_S


def test_ctrl_c_during_inference_interrupts_promptly(big_X):
    gmm = FastGMM(max_iter=0, **fixed_full_start(big_X)).fit(big_X[: 2 * N_COMPONENTS])

    def many_passes():
        for _ in range(40):
            gmm.predict_proba(big_X)

    assert seconds_until_interrupted(many_passes, Interrupter()) < LATENCY_LIMIT_S


# ----------------------------------------------------------------------------- simulated Ctrl-C


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_interrupt_keeps_the_parameters_of_the_last_completed_iteration(small_X, covariance_type):
    params = dict(n_components=3, covariance_type=covariance_type, random_state=0, tol=0.0)
    gmm = interrupted_gmm(e_step=3, max_iter=50, **params)
    with pytest.warns(RuntimeWarning, match="after iteration 2"):
        with pytest.raises(KeyboardInterrupt):
            gmm.fit(small_X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        expected = FastGMM(max_iter=2, **params).fit(small_X)

    assert gmm.converged_ is False
    assert gmm.n_iter_ == 2
    for name in PARAMETERS + HISTORIES + ["lower_bound_", "lower_bounds_"]:
        assert np.array_equal(getattr(gmm, name), getattr(expected, name)), name
    assert np.array_equal(gmm.predict(small_X), expected.predict(small_X))
    assert np.array_equal(gmm.score_samples(small_X), expected.score_samples(small_X))
    assert gmm.entropy_decomposition(small_X) == expected.entropy_decomposition(small_X)
    with pytest.raises(ValueError, match="pass X"):
        gmm.entropy_decomposition()

    # The estimator can be fitted again afterwards.
    gmm.interrupt_at = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        refitted = gmm.fit(small_X)
        reference = FastGMM(max_iter=50, **params).fit(small_X)
    assert states_equal(fitted_state(refitted), fitted_state(reference))
    assert refitted.entropy_decomposition() == reference.entropy_decomposition()


def test_interrupt_in_a_later_restart_keeps_the_best_finished_run(small_X):
    params = dict(n_components=3, random_state=0)
    gmm = interrupted_gmm(run=2, e_step=1, n_init=3, **params)
    with pytest.warns(RuntimeWarning, match="interrupted"):
        with pytest.raises(KeyboardInterrupt):
            gmm.fit(small_X)
    first_run = FastGMM(n_init=1, **params).fit(small_X)
    assert gmm.n_iter_ == first_run.n_iter_
    for name in PARAMETERS + HISTORIES + ["lower_bound_", "lower_bounds_"]:
        assert np.array_equal(getattr(gmm, name), getattr(first_run, name)), name


def test_interrupt_before_the_first_iteration_leaves_no_half_fitted_estimator(small_X):
    gmm = interrupted_gmm(e_step=1, n_components=3, random_state=0)
    with pytest.raises(KeyboardInterrupt):
        gmm.fit(small_X)
    # Either a complete fitted state or none: initial parameters without converged_/n_iter_/
    # precisions_ make check_is_fitted pass and predict() answer silently from an initialisation.
    present = {name: hasattr(gmm, name) for name in PARAMETERS + RESULTS + HISTORIES}
    assert all(present.values()) or not any(present.values()), present


def test_interrupted_refit_does_not_mix_new_parameters_with_the_previous_fit(small_X):
    gmm = interrupted_gmm(e_step=1, n_components=3, random_state=0)
    gmm.interrupt_at = None
    gmm.fit(small_X)
    assert gmm.converged_
    previous = fitted_state(gmm)

    gmm.set_params(random_state=1)
    gmm.interrupt_at = (gmm.runs_started + 1, 1)  # Ctrl-C in the first E-step of the refit
    with pytest.raises(KeyboardInterrupt):
        gmm.fit(small_X)
    # Acceptable: the previous fit left intact, or no fitted state at all. Not: converged_,
    # n_iter_ and lower_bound_ of the previous fit next to the refit's initial parameters.
    after = fitted_state(gmm)
    changed = sorted(name for name in after if not np.array_equal(after[name], previous[name]))
    assert states_equal(after, previous) or not after, (
        f"changed by the interrupted refit: {changed}; kept from the previous fit: "
        f"{sorted(set(after) - set(changed))} (converged_={after.get('converged_')})"
    )


def test_interrupted_warm_start_before_an_iteration_keeps_the_previous_fit(small_X):
    gmm = interrupted_gmm(e_step=1, n_components=3, random_state=0, warm_start=True)
    gmm.interrupt_at = None
    gmm.fit(small_X)
    previous = fitted_state(gmm)
    previous_labels = gmm.predict(small_X)
    gmm.interrupt_at = (gmm.runs_started, 1)  # warm start: no new initialisation
    gmm.e_steps_in_run = 0
    with pytest.raises(KeyboardInterrupt):
        gmm.fit(small_X)
    assert states_equal(fitted_state(gmm), previous)
    assert np.array_equal(gmm.predict(small_X), previous_labels)
