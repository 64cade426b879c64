"""The agreement rule every benchmark enforces, so that a fast wrong answer cannot win.

After the same number of iterations from the same start, compared systems must report the same mean
log-likelihood to ``AGREEMENT_RTOL``. A float32 case is also checked against the NumPy EM run in
float64 on the same (rounded) data: float32 competitors can break down (scikit-learn rejects
covariances it computes as negative), and an independent answer must remain.

Factor models are compared after whole fits instead (``factor_report.py``): a closed form must equal
the competitors' log-likelihood (``"equal"``), an EM fit that stops at a tolerance must reach at
least theirs (``"at_least"``), both to ``AGREEMENT_RTOL`` relative to the competitor's value.
"""

from __future__ import annotations

import numpy as np

import systems
from cases import Case, Start

AGREEMENT_RTOL = 1e-6
FLOAT64_REFERENCE = "numpy (float64 reference)"


def float64_reference(case: Case, X: np.ndarray, start: Start, n_iter: int) -> float:
    return systems.run_iterations("numpy", case, np.asarray(X, dtype=np.float64), start, n_iter)


def max_relative_disagreement(values) -> float:
    values = np.asarray(list(values), dtype=np.float64)
    return float(np.max(np.abs(values - values[0])) / abs(values[0]))


def relative_difference(value: float, reference: float) -> float:
    """``(value - reference) / |reference|``: positive where ``value`` is the higher log-likelihood."""
    return (value - reference) / abs(reference)


def meets_rule(rule: str, difference: float) -> bool:
    """Whether a relative difference of log-likelihoods (ours minus theirs) meets ``rule``,
    ``"equal"`` or ``"at_least"``; NaN never does."""
    if rule == "equal":
        return bool(abs(difference) <= AGREEMENT_RTOL)
    if rule == "at_least":
        return bool(difference >= -AGREEMENT_RTOL)
    raise ValueError(f"unknown rule {rule!r}")
