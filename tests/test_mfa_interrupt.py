"""Ctrl-C stops the MFA kernel promptly (it polls between chunks of rows, like the Gaussian pass)."""

import numpy as np

from fastelbo import _core
from test_interrupt import (  # noqa: F401  (python_handles_sigint is an autouse fixture)
    LATENCY_LIMIT_S,
    Interrupter,
    python_handles_sigint,
    seconds_until_interrupted,
)


def test_ctrl_c_interrupts_the_mfa_kernel_promptly():
    rng = np.random.default_rng(0)
    N, D, K, H = 400_000, 32, 64, 6
    X = rng.standard_normal((N, D))
    log_weights = np.full(K, -np.log(K))
    means = rng.standard_normal((K, D))
    components = rng.standard_normal((K, H, D))
    noise = np.ones((K, D))

    def kernel():
        # Several passes: far longer than the delay before Ctrl-C, whatever the machine.
        for _ in range(20):
            _core.factor_analyser_mixture_pass(X, None, log_weights, means, components, noise, means)

    assert seconds_until_interrupted(kernel, Interrupter()) < LATENCY_LIMIT_S
