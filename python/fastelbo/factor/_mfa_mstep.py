"""The M-step of a mixture of factor analysers, and its initial parameters.

The closed-form M-step (Ghahramani & Hinton, 1996) solves, per component, the joint (H+1)-dimensional
system for the augmented loadings ``[W_c, mu_c]`` with augmented factors ``z~ = [z; 1]``::

    [W_c, mu_c - r_c] = (sum_n q_nc x~_n E[z~]^T) (sum_n q_nc E[z~ z~^T])^-1
    psi_c = diag(sum_n q_nc x~_n x~_n^T - [W_c, mu_c - r_c] sum_n q_nc E[z~] x~_n^T) / nk_c

about the statistics' reference points ``r_c``, with ``E[z z^T] = Sigma_c + m m^T``. Spherical noise
(mixtures of PPCA) averages ``psi_c`` over the features. Noise variances are floored relative to
the scale of the data (:func:`noise_variance_floor`). This is the only place where parameters are
computed from statistics.
"""

from __future__ import annotations

import numpy as np

from fastelbo.factor._mfa_statistics import FactorAnalyserStatistics
from fastelbo.mixture._statistics import NK_FLOOR


def noise_variance_floor(column_variance, reg_covar, noise):
    """Floor of the noise variances, relative to the scale of the data: shape (D,).

    Feature ``d``'s noise variance is floored at ``reg_covar * var_d``, ``var_d`` the (weighted)
    variance of feature ``d`` in the training data, so that the fit does not depend on the units of
    any feature. A constant feature (``var_d`` exactly 0, as ``column_scale`` reports one) has no
    units of its own and uses the mean variance of the other features instead; data whose every
    feature is constant use 1. Spherical noise (one variance per component) is floored at
    ``reg_covar`` times the mean.
    """
    variance = np.asarray(column_variance, dtype=np.float64)
    varying = variance > 0
    constant_scale = float(variance[varying].mean()) if varying.any() else 1.0
    scale = np.where(varying, variance, constant_scale)
    if noise == "spherical":
        scale = np.full_like(scale, scale.mean())
    return reg_covar * scale


def mfa_m_step(stats: FactorAnalyserStatistics, noise: str, floor, previous):
    """Return ``(weights, means, components, noise_variance)`` in float64.

    ``floor`` (shape (D,), from :func:`noise_variance_floor`) bounds every component's noise
    variances from below. ``previous`` is ``(means, components, noise_variance)`` of the pass; a
    component without any responsibility keeps them (its system is empty).
    """
    nk = stats.nk
    K, H, D = stats.szx.shape
    means, components, noise_variance = (np.array(p, dtype=np.float64, copy=True) for p in previous)
    nk_floor = stats.nk_floor
    active = nk > nk_floor
    n = nk[active][:, None]
    # The system divided by nk: averages, well scaled whatever the component's weight.
    gram = np.empty((int(active.sum()), H + 1, H + 1))
    gram[:, :H, :H] = stats.posterior_covariances[active] + stats.szz[active] / n[:, :, None]
    gram[:, :H, H] = gram[:, H, :H] = stats.sz[active] / n
    gram[:, H, H] = 1.0
    gram = 0.5 * (gram + gram.transpose(0, 2, 1))
    cross = np.empty((gram.shape[0], H + 1, D))  # sum q E[z~] x~^T / nk
    cross[:, :H] = stats.szx[active] / n[:, :, None]
    cross[:, H] = stats.sx[active] / n
    try:
        augmented = np.linalg.solve(gram, cross)  # [W, mu - r]^T, shape (H + 1, D)
    except np.linalg.LinAlgError:  # an exactly singular system (a collapsed component)
        augmented = np.linalg.pinv(gram) @ cross
    psi = stats.sxx[active] / n - np.sum(augmented * cross, axis=1)
    if noise == "spherical":
        psi = np.repeat(psi.mean(axis=1, keepdims=True), D, axis=1)
    # A component whose system overflowed keeps its parameters, like an empty one.
    finite = np.all(np.isfinite(augmented), axis=(1, 2)) & np.all(np.isfinite(psi), axis=1)
    updated = np.flatnonzero(active)[finite]
    components[updated] = augmented[finite, :H]
    means[updated] = stats.reference[updated] + augmented[finite, H]
    noise_variance[updated] = np.maximum(psi[finite], floor)
    weights = (nk + nk_floor) / np.sum(nk + nk_floor)
    return weights, means, components, noise_variance


def initial_parameters(stats, n_factors, noise, floor, fallback_covariance, weight_unit=1.0):
    """Parameters from moments of hard or soft initial clusters (full scatter, about ``reference``).

    Each component starts as the maximum-likelihood PPCA of its cluster (Tipping & Bishop): the
    leading ``n_factors`` eigenvectors of the cluster's covariance, scaled by the square root of
    their excess over the mean of the remaining eigenvalues. A cluster of fewer than
    ``n_factors + 2`` points has no usable covariance and starts from ``fallback_covariance()``
    (the data's), so that no loadings start at 0, a fixed point of EM. Points are counted in units
    of ``weight_unit`` (the smallest positive sample weight). Noise variances start at or above
    ``floor`` (shape (D,)).
    """
    nk = stats.nk + NK_FLOOR * weight_unit
    K, D = stats.sx.shape
    H = n_factors
    means = stats.reference + stats.sx / nk[:, None]
    components = np.empty((K, H, D))
    noise_variance = np.empty((K, D))
    fallback = None
    for c in range(K):
        if stats.nk[c] >= (H + 2) * weight_unit:
            # sx sx^T / nk as sx (sx / nk): (n dev)^2 overflows for data near float64's range
            covariance = (stats.sxx[c] - np.outer(stats.sx[c], stats.sx[c] / nk[c])) / nk[c]
        else:
            fallback = fallback_covariance() if fallback is None else fallback
            covariance = fallback
        covariance = 0.5 * (covariance + covariance.T)
        eigenvalues, eigenvectors = np.linalg.eigh(covariance)
        eigenvalues, eigenvectors = eigenvalues[::-1], eigenvectors[:, ::-1]
        rest = eigenvalues[H:] if H < D else eigenvalues[-1:] * 0.5
        sigma2 = max(float(np.mean(rest)), float(np.mean(floor)))
        leading = np.zeros(H)
        leading[: min(H, D)] = eigenvalues[:H]
        vectors = np.zeros((D, H))
        vectors[:, : min(H, D)] = eigenvectors[:, :H]
        if H > D:  # more factors than features: the extra loadings start along the first axes
            vectors[:, D:] = np.eye(D, H - D)
            leading[D:] = eigenvalues[0]
        # Never exactly 0: zero loadings stay zero under EM.
        scale = np.sqrt(np.maximum(leading - sigma2, 1e-3 * sigma2))
        components[c] = (vectors * scale).T
        if noise == "spherical":
            noise_variance[c] = sigma2
        else:
            noise_variance[c] = np.maximum(np.diag(covariance) - np.sum(components[c] ** 2, axis=0), floor)
    weights = nk / nk.sum()
    return weights, means, components, noise_variance
