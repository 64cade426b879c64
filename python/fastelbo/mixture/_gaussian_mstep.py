"""The M-step of a Gaussian mixture: closed-form parameters from merged sufficient statistics.

This is the only place where weights, means and covariances are computed from statistics (the EM
iterations and every initialisation go through it). Scatter matrices are formed about the
statistics' reference point, ``S_c = sxx_c - sx_c sx_c^T / nk_c``, which is exact for any reference
and accurate when the reference is close to the new mean (:func:`moments_lose_precision` says when it
is not).
"""

from __future__ import annotations

import numpy as np

from fastelbo.mixture._statistics import MixtureStatistics

#: Largest ratio of a component's second moment about its reference point to its regularised
#: scatter about the new mean (``nk`` times the covariance) that ``sxx - sx sx^T / nk`` is trusted
#: with: the formula loses log10 of that ratio in digits of the covariance (1e4: 4 of 16, where the
#: mean moved 100 standard deviations). Beyond it (a far-off ``means_init``, a warm start on moved
#: data) the moments are taken again about the new means.
MAX_SCATTER_CANCELLATION = 1e4


def new_means(stats: MixtureStatistics):
    """The M-step's means ``reference + sx / nk``, float64 of shape (K, D)."""
    return stats.reference + stats.sx / (stats.nk + stats.nk_floor)[:, None]


def moments_lose_precision(stats: MixtureStatistics, covariance_type: str, reg_covar: float) -> bool:
    """Whether, for some component and feature, ``sxx - sx**2 / nk`` cancels more than
    :data:`MAX_SCATTER_CANCELLATION` against the regularised scatter (the diagonal of full and tied
    scatters; spherical: the sum over features). A feature whose spread ``reg_covar`` dominates
    does not count: the round-off of its scatter is far below the added ``reg_covar``."""
    nk = stats.nk + stats.nk_floor
    shift = stats.sx**2 / nk[:, None]  # nk (new mean - reference)**2, per component and feature
    regularisation = reg_covar * nk[:, None]
    if covariance_type == "full":
        second = np.diagonal(stats.sxx, axis1=1, axis2=2)
    elif covariance_type == "tied":
        second, shift, regularisation = np.diag(stats.sxx), shift.sum(axis=0), reg_covar * nk.sum()
    elif covariance_type == "diag":
        second = stats.sxx
    else:
        second, shift, regularisation = stats.sxx, shift.sum(axis=1), reg_covar * nk * shift.shape[1]
    return bool(np.any(shift > MAX_SCATTER_CANCELLATION * (second - shift + regularisation)))


def gaussian_m_step(stats: MixtureStatistics, covariance_type: str, reg_covar: float):
    """Return ``(weights, means, covariances)`` in float64 from the statistics of one E-step.

    ``reg_covar`` is added to every variance as it is, in the data's squared units (scikit-learn's
    meaning); the only internal floor (``stats.nk_floor``) is relative to the sample weights' scale.
    """
    nk = stats.nk + stats.nk_floor
    sx, sxx = stats.sx, stats.sxx
    n_features = sx.shape[1]
    means = new_means(stats)
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
    with np.errstate(under="ignore"):  # means below float32's range round to 0 (delta keeps them)
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
