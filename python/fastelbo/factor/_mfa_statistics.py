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

Sums over disjoint sets of rows taken with the same parameters merge by addition
(:meth:`FactorAnalyserStatistics.merge`), so the statistics of the blocks of a row source, computed
in this process or on Dask workers, combine into those of all its rows.
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
    #: ``1/2 log|posterior covariance|`` of each component under the pass's parameters (K,): the
    #: latent part of the entropy of q, which the entropy sum S(q^t, Theta^{t+1}) takes from q^t.
    posterior_half_log_det: np.ndarray | None = None

    @classmethod
    def from_kernel(
        cls, out, n_samples, reference=None, posterior_covariances=None, posterior_half_log_det=None
    ):
        """Wrap the dictionary returned by ``_core.factor_analyser_mixture_pass``."""
        moments = {name: out.get(name) for name in ("sx", "sxx", "szx", "sz", "szz")}
        return cls(
            **cls.kernel_sums(out, n_samples),
            **moments,
            reference=reference,
            posterior_covariances=posterior_covariances,
            posterior_half_log_det=posterior_half_log_det,
        )

    def merge(self, other: FactorAnalyserStatistics) -> FactorAnalyserStatistics:
        """Statistics of the union of two disjoint row sets, taken with the same parameters.

        Every sum adds; the reference points and the posterior covariances, properties of the
        parameters, must be equal and are kept. ValueError otherwise: sums about different
        reference points do not add.
        """
        for name in ("reference", "posterior_covariances", "posterior_half_log_det"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if (mine is None) != (theirs is None) or (mine is not None and not np.array_equal(mine, theirs)):
                raise ValueError(f"cannot merge statistics taken with different {name.replace('_', ' ')}")

        def add(a, b):
            return None if a is None or b is None else a + b

        return FactorAnalyserStatistics(
            self.n_samples + other.n_samples,
            self.sum_weight + other.sum_weight,
            self.sum_log_norm + other.sum_log_norm,
            self.sum_entropy + other.sum_entropy,
            self.nk + other.nk,
            sx=add(self.sx, other.sx),
            sxx=add(self.sxx, other.sxx),
            szx=add(self.szx, other.szx),
            sz=add(self.sz, other.sz),
            szz=add(self.szz, other.szz),
            reference=self.reference,
            posterior_covariances=self.posterior_covariances,
            posterior_half_log_det=self.posterior_half_log_det,
        )
