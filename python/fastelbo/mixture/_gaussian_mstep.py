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


def about_stored_means(weights, means, covariances, covariance_type, dtype):
    """``(means, covariances)`` with the means rounded to ``dtype`` and the covariances re-centred
    on the rounded means, in float64.

    The covariances the M-step maximises are the scatter about the means it stores. Rounded to
    float32, a mean far from the origin (|mu| ~ 1e6 has a float32 spacing of 0.06) moves by up to
    half a spacing, ``delta``, and the scatter about the stored mean is larger by ``delta delta^T``
    (exactly: ``sum_n r_n (x_n - m')(x_n - m')^T = S + n_k delta delta^T``). Adding that keeps the
    stored parameters an M-step optimum in the variances, so the entropy sum after the M-step is
    still the ELBO of the parameters the next E-step reads. In float64 ``delta`` is 0.
    """
    stored = np.asarray(means, dtype=dtype).astype(np.float64)
    delta = means - stored
    if not np.any(delta):
        return stored, covariances
    covariances = np.array(covariances, dtype=np.float64)
    if covariance_type == "full":
        covariances += np.einsum("ki,kj->kij", delta, delta)
    elif covariance_type == "tied":
        covariances += (weights[:, None] * delta).T @ delta
    elif covariance_type == "diag":
        covariances += delta**2
    else:
        covariances += np.mean(delta**2, axis=1)
    return stored, covariances
