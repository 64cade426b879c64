"""Closed-form entropies and the :class:`EntropyDecomposition` result.

The ELBO ``F`` of a model ``p(z) p(x|z)`` with variational distributions ``q_n`` is compared with the
entropy sum (``docs/theory.rst``, the entropy sum)::

    S = <H[q_n]> - H[p(z)] - E_qbar[H[p(x|z)]] + data term

which equals ``F`` at every stationary point of learning. Every number here is per data point
(weighted averages over the data).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

#: ``log(2 pi e)``: the entropy of a unit-variance Gaussian per dimension is half of it.
LOG_2PI_E = math.log(2.0 * math.pi * math.e)


def categorical_entropy(probabilities) -> float:
    """Entropy ``-sum_k p_k log p_k`` of a categorical distribution, with ``0 log 0 = 0``."""
    p = np.asarray(probabilities, dtype=np.float64)
    p = p[p > 0]
    return float(-np.sum(p * np.log(p)))


def gaussian_entropy(half_log_det_covariance, n_features: int):
    """Entropy ``D/2 log(2 pi e) + 1/2 log|Sigma|`` of a D-dimensional Gaussian (vectorised)."""
    return 0.5 * n_features * LOG_2PI_E + np.asarray(half_log_det_covariance, dtype=np.float64)


@dataclass(frozen=True)
class EntropyDecomposition:
    """The ELBO of a fitted model and its decomposition into a sum of entropies.

    Attributes
    ----------
    elbo : float
        ``F``, the evidence lower bound per data point. For exact EM it is the mean log-likelihood.
    entropy_sum : float
        ``S = variational_entropy - prior_entropy - observable_entropy + data_term``.
    gap : float
        ``F - S``. Zero at stationary points of learning; its size measures how far a fit is from one.
    variational_entropy : float
        ``A = <H[q_n]>``, the average entropy of the variational distributions (posteriors).
    prior_entropy : float
        ``H[p(z)]``, the entropy of the prior (``-B`` in docs/theory.rst).
    observable_entropy : float
        ``E_qbar[H[p(x|z)]]``, the observable's entropy averaged under the aggregate posterior
        (``-C`` in docs/theory.rst).
    data_term : float
        The data-only term of models with a non-constant base measure; ``0.0`` for Gaussians.
    n_samples : int
        Number of data points the averages run over.
    model : str
        A short description of the model that was decomposed.
    note : str
        Empty, or a caveat about reading the gap for this fit (for example that a Heywood case
        holds the fit at a boundary of the parameter space, where ``F - S`` measures the pull of
        that boundary). Shown by ``repr`` when not empty.
    """

    elbo: float
    variational_entropy: float
    prior_entropy: float
    observable_entropy: float
    data_term: float
    n_samples: int
    model: str = ""
    note: str = ""
    entropy_sum: float = field(init=False)
    gap: float = field(init=False)

    def __post_init__(self):
        for name in (
            "elbo",
            "variational_entropy",
            "prior_entropy",
            "observable_entropy",
            "data_term",
        ):
            object.__setattr__(self, name, float(getattr(self, name)))
        object.__setattr__(self, "n_samples", int(self.n_samples))
        entropy_sum = self.variational_entropy - self.prior_entropy - self.observable_entropy + self.data_term
        object.__setattr__(self, "entropy_sum", entropy_sum)
        object.__setattr__(self, "gap", self.elbo - entropy_sum)

    def to_dict(self) -> dict:
        """The decomposition as a plain ``dict`` of its fields."""
        return asdict(self)

    def __repr__(self) -> str:
        rows = [
            ("ELBO  F", self.elbo, "per data point"),
            ("entropy sum  S", self.entropy_sum, "A - H[prior] - E[H[observable]] + data"),
            ("gap  F - S", self.gap, "0 at a stationary point"),
            ("A  <H[q_n]>", self.variational_entropy, "variational (posterior) entropy"),
            ("H[p(z)]", self.prior_entropy, "prior entropy"),
            ("E_qbar H[p(x|z)]", self.observable_entropy, "observable entropy"),
            ("data term", self.data_term, "non-constant base measures only"),
        ]
        title = f"EntropyDecomposition({self.model}, n_samples={self.n_samples})"
        lines = [title] + [f"  {name:<18} {_term(value):>16}   {note}" for name, value, note in rows]
        if self.note:
            lines.append(f"  note: {self.note}")
        return "\n".join(lines)


def _term(value) -> str:
    """A term as the decomposition prints it: 8 decimals, +0 for a value that rounds to zero (its
    sign is round-off: round(-1e-14, 8) is -0.0, falsy), an exponent from 1e9 on (a term of 1e308
    would be 310 digits)."""
    if abs(value) >= 1e9:
        return f"{value:+.8e}"
    return f"{round(value, 8) or 0.0:+.8f}"
