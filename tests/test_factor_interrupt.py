"""Ctrl-C interrupts the scatter pass of a factor-model fit promptly, and a fit interrupted there
leaves the estimator as it was."""

import _thread
import threading
import time

import numpy as np
import pytest

from fastelbo import FastFactorAnalysis, _core
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
