"""The M-step of a Gaussian mixture: closed-form parameters from merged sufficient statistics.

This is the only place where weights, means and covariances are computed from statistics (the EM
iterations and every initialisation go through it). Scatter matrices are formed about the
statistics' reference point, ``S_c = sxx_c - sx_c sx_c^T / nk_c``, which is exact for any reference
and accurate when the reference is close to the new mean.
"""

from __future__ import annotations

import numpy as np

from fastelbo.mixture._statistics import MixtureStatistics


def gaussian_m_step(stats: MixtureStatistics, covariance_type: str, reg_covar: float):
    """Return ``(weights, means, covariances)`` in float64 from the statistics of one E-step.

    ``reg_covar`` is added to every variance as it is, in the data's squared units (scikit-learn's
    meaning); the only internal floor (``stats.nk_floor``) is relative to the sample weights' scale.
    """
    nk = stats.nk + stats.nk_floor
    sx, sxx, reference = stats.sx, stats.sxx, stats.reference
    n_features = sx.shape[1]
    means = reference + sx / nk[:, None]
    if covariance_type == "full":
        scatter = sxx - np.einsum("ki,kj->kij", sx, sx) / nk[:, None, None]
        covariances = scatter / nk[:, None, None]
        covariances = 0.5 * (covariances + covariances.transpose(0, 2, 1))
        covariances[:, np.arange(n_features), np.arange(n_features)] += reg_covar
    elif covariance_type == "tied":
        scatter = sxx - (sx / nk[:, None]).T @ sx
        covariances = 0.5 * (scatter + scatter.T) / nk.sum()
        covariances[np.diag_indices(n_features)] += reg_covar
    elif covariance_type == "diag":
        scatter = np.maximum(sxx - sx**2 / nk[:, None], 0.0)
        covariances = scatter / nk[:, None] + reg_covar
    else:
        scatter = np.maximum(sxx - np.einsum("kd,kd->k", sx, sx) / nk, 0.0)
        covariances = scatter / (nk * n_features) + reg_covar
    weights = nk / nk.sum()
    return weights, means, covariances
