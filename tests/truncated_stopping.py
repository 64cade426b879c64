"""What a truncated fit's record of E-steps must show when it stopped by the stopping rule: shared by
the Gaussian and the Bernoulli/Poisson truncated EM tests."""

from __future__ import annotations

import numpy as np

from fastelbo.mixture._truncated import SETTLED_STEPS


def assert_stopped_after_settled_steps(model, record):
    """``record`` holds ``(rows whose set K_n changed, ELBO)`` for every EM E-step of ``model``'s
    fit. Asserts that the fit converged after SETTLED_STEPS steps that changed no set, the one before
    them changed one, and shorter stalls (zero gains) came earlier; returns the ELBOs and the
    iterations of those stalls."""
    assert model.converged_
    changes = [changed for changed, _ in record]
    assert len(changes) == model.n_iter_
    assert changes[-SETTLED_STEPS:] == [0] * SETTLED_STEPS
    assert changes[-SETTLED_STEPS - 1] != 0
    elbos = np.array([elbo for _, elbo in record])
    stalled = np.flatnonzero(np.diff(elbos) == 0) + 1
    assert stalled.size > 0 and stalled[0] < model.n_iter_ - SETTLED_STEPS
    return elbos, stalled
