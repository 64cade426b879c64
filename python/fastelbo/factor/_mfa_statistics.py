"""Additive sufficient statistics of one E-step pass of a mixture of factor analysers.

Per component ``c``, with ``x~ = x - r_c`` the row about the reference point ``r_c`` and ``m`` the
posterior mean of the factors ``z`` given ``x`` and ``c``::

    nk[c]  = sum_n w_n q_nc
    sx[c]  = sum_n w_n q_nc x~_n              (K, D)
    sxx[c] = sum_n w_n q_nc x~_n**2           (K, D)    the diagonal of the scatter only
    szx[c] = sum_n w_n q_nc m_nc x~_n^T       (K, H, D)
    sz[c]  = sum_n w_n q_nc m_nc              (K, H)
    szz[c] = sum_n w_n q_nc m_nc m_nc^T       (K, H, H)

plus the ELBO sums. The posterior covariance of ``z`` (the same for every row of a component) is a
property of the parameters of the pass and travels with the statistics to the M-step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastelbo.mixture._statistics import MixturePassSums


@dataclass
class FactorAnalyserStatistics(MixturePassSums):
    """Statistics and ELBO sums of one pass (all float64). ``elbo`` is the mean log-likelihood (the
    posteriors are exact); ``component_entropy`` the mean entropy of the component posteriors."""

    sx: np.ndarray | None = None
    sxx: np.ndarray | None = None
    szx: np.ndarray | None = None
    sz: np.ndarray | None = None
    szz: np.ndarray | None = None
    reference: np.ndarray | None = None
    posterior_covariances: np.ndarray | None = None

    @classmethod
    def from_kernel(cls, out, n_samples, reference=None, posterior_covariances=None):
        """Wrap the dictionary returned by ``_core.factor_analyser_mixture_pass``."""
        moments = {name: out.get(name) for name in ("sx", "sxx", "szx", "sz", "szz")}
        return cls(
            **cls.kernel_sums(out, n_samples),
            **moments,
            reference=reference,
            posterior_covariances=posterior_covariances,
        )
