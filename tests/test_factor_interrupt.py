"""Ctrl-C interrupts the scatter pass of a factor-model fit promptly, and a fit interrupted there
leaves the estimator as it was."""

import _thread
import threading
import time
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from fastelbo import FastFactorAnalysis, FastPPCA, _core
from fastelbo.factor import _factor_analysis as factor_analysis_module
from fastelbo.factor._scatter import centring_point
from test_interrupt import python_handles_sigint  # noqa: F401  (an autouse fixture)

# Generous bound on the time from Ctrl-C to KeyboardInterrupt, for a loaded machine (the pass polls
# every few milliseconds, between chunks of at most ~2e8 flops).
LATENCY_LIMIT_S = 2.0
INTERRUPT_DELAY_S = 0.3


@pytest.fixture(scope="module")
def big_X():
    # 200k x 512 float32: ~5e10 flops of scatter, many seconds on any machine.
    return np.random.RandomState(0).standard_normal((200_000, 512)).astype(np.float32)


def _interrupt_after(delay, fired):
    def fire():
        time.sleep(delay)
        fired.append(time.perf_counter())
        _thread.interrupt_main()

    thread = threading.Thread(target=fire)
    thread.start()
    return thread


def test_ctrl_c_interrupts_the_scatter_pass_promptly(big_X):
    fired = []
    thread = _interrupt_after(INTERRUPT_DELAY_S, fired)
    center = centring_point(big_X)
    with pytest.raises(KeyboardInterrupt):
        # Pass after pass, so that the interrupt lands inside one whatever this machine's speed
        # (a fast machine finishes a single pass before INTERRUPT_DELAY_S).
        for _ in range(10_000):
            _core.scatter_pass(big_X, None, center, n_threads=2)
    raised = time.perf_counter()
    thread.join()
    assert raised - fired[0] < LATENCY_LIMIT_S


def test_fit_interrupted_in_the_scatter_pass_changes_nothing(big_X):
    fa = FastFactorAnalysis(2).fit(big_X[:1000, :8])
    before = {
        name: getattr(fa, name) for name in ("components_", "noise_variance_", "mean_", "n_features_in_")
    }
    fired = []
    thread = _interrupt_after(INTERRUPT_DELAY_S, fired)
    with pytest.raises(KeyboardInterrupt):
        fa.fit(big_X)
        time.sleep(5)
    thread.join()
    for name, value in before.items():
        assert getattr(fa, name) is value


def _interrupted_at_m_step(estimator_class, m_step, **params):
    """An estimator whose fit gets a Ctrl-C in its ``m_step``-th M-step (counted from 1)."""

    class Interrupted(estimator_class):
        def _m_step(self, statistics):
            self._m_steps = getattr(self, "_m_steps", 0) + 1
            if self._m_steps == m_step:
                raise KeyboardInterrupt
            return super()._m_step(statistics)

    Interrupted.__name__ = estimator_class.__name__
    return Interrupted(**params)


@pytest.mark.parametrize(
    ("estimator_class", "params"),
    [
        (FastFactorAnalysis, dict(n_components=3)),
        (FastFactorAnalysis, dict(n_components=3, rotation="varimax")),
        (FastPPCA, dict(n_components=3, solver="em", random_state=0)),
    ],
    ids=["fa", "fa-varimax", "ppca-em"],
)
def test_a_fit_interrupted_after_completed_iterations_is_the_fit_of_that_many(
    estimator_class, params, monkeypatch
):
    """What a Ctrl-C keeps is described as a finished fit describes its parameters: loglike_ and
    lower_bound_ of the kept parameters (not of those before), components_ rotated and signed."""
    monkeypatch.setattr(factor_analysis_module, "STARTS", factor_analysis_module.STARTS[:1])  # one run
    rng = np.random.RandomState(0)
    X = rng.randn(500, 3) @ rng.randn(3, 8) + rng.randn(500, 8) * [0.2, 0.5, 1, 1, 2, 0.3, 1, 1]
    params = dict(params, tol=0.0, max_iter=100)
    estimator = _interrupted_at_m_step(estimator_class, 4, **params)
    with pytest.warns(RuntimeWarning, match="after iteration 3"):
        with pytest.raises(KeyboardInterrupt):
            estimator.fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        expected = estimator_class(**dict(params, max_iter=3)).fit(X)
    assert estimator.n_iter_ == 3 and estimator.converged_ is False
    names = ["components_", "noise_variance_", "mean_", "elbo_history_", "lower_bound_"]
    names += ["loglike_"] if estimator_class is FastFactorAnalysis else ["explained_variance_"]
    for name in names:
        np.testing.assert_array_equal(getattr(estimator, name), getattr(expected, name), err_msg=name)
    # FA's lower_bound_ is the returned parameters' log-likelihood (PPCA's: the last E-step's).
    if estimator_class is FastFactorAnalysis:
        assert estimator.lower_bound_ == pytest.approx(estimator.score(X), rel=1e-12)
    assert estimator.entropy_decomposition() == expected.entropy_decomposition()
