"""Closed forms of the linear-Gaussian factor model shared by PPCA and factor analysis.

The model (``shared/THEORY.md`` §2.2)::

    p(z) = N(0, I_H),    p(x | z) = N(components^T z + mean, diag(noise))

with ``components`` of shape (H, D) (scikit-learn's ``FactorAnalysis.components_``) and ``noise``
of shape (D,) (PPCA: all equal). The model covariance is ``C = components^T components +
diag(noise)``. Everything here works on the data's mean and covariance only
(:class:`~fastelbo.factor._scatter.DataScatter`) and costs O(D^2 H), whatever the number of rows;
D x D inverses and determinants go through the Woodbury identity and an H x H Cholesky factor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import linalg

from fastelbo.entropy import LOG_2PI_E

LOG_2PI = math.log(2.0 * math.pi)

#: Smallest noise variance (scikit-learn's FactorAnalysis floors at the same value): features that
#: the factors explain completely (or constant ones) keep a finite likelihood.
NOISE_FLOOR = 1e-12


@dataclass(frozen=True)
class FactorPosterior:
    """The exact posterior ``q(z | x) = N(projection (x - mean), covariance)``, the same covariance
    for every x.

    Attributes
    ----------
    covariance : ndarray of shape (H, H)
        ``G = (I + components diag(noise)^-1 components^T)^-1``.
    projection : ndarray of shape (H, D)
        ``G components diag(noise)^-1``.
    scaled_components : ndarray of shape (H, D)
        ``components diag(noise)^-1`` (the Woodbury factor of the precision).
    half_log_det : float
        ``1/2 log|G|``.
    log_det_model_covariance : float
        ``log|C| = sum_d log noise_d - log|G|``.
    """

    covariance: np.ndarray
    projection: np.ndarray
    scaled_components: np.ndarray
    half_log_det: float
    log_det_model_covariance: float


def factor_posterior(components, noise):
    """The exact posterior of the latents under ``(components, noise)``."""
    n_components = components.shape[0]
    scaled = components / noise
    inner = np.eye(n_components) + scaled @ components.T
    cholesky = linalg.cholesky(inner, lower=True)
    covariance = linalg.cho_solve((cholesky, True), np.eye(n_components))
    covariance = 0.5 * (covariance + covariance.T)
    half_log_det = -float(np.sum(np.log(np.diag(cholesky))))
    return FactorPosterior(
        covariance=covariance,
        projection=covariance @ scaled,
        scaled_components=scaled,
        half_log_det=half_log_det,
        log_det_model_covariance=float(np.sum(np.log(noise))) - 2.0 * half_log_det,
    )


def mean_log_likelihood(data_mean, data_covariance, mean, posterior, noise):
    """Mean log-likelihood ``-1/2 (D log 2pi + log|C| + tr(C^-1 S'))`` of data with the given mean
    and covariance, ``S' = covariance + (data_mean - mean)(data_mean - mean)^T``."""
    offset = data_mean - mean
    scaled = posterior.scaled_components
    # tr(C^-1 S') with C^-1 = diag(noise)^-1 - scaled^T G scaled (Woodbury).
    diagonal = float(np.sum((np.diag(data_covariance) + offset**2) / noise))
    scaled_offset = scaled @ offset
    low_rank = float(np.sum(posterior.covariance * (scaled @ data_covariance @ scaled.T)))
    low_rank += float(scaled_offset @ posterior.covariance @ scaled_offset)
    n_features = data_mean.shape[0]
    return -0.5 * (n_features * LOG_2PI + posterior.log_det_model_covariance + diagonal - low_rank)


def variational_entropy(posterior):
    """``A = H/2 log(2 pi e) + 1/2 log|G|``, the entropy of every exact posterior."""
    return 0.5 * posterior.covariance.shape[0] * LOG_2PI_E + posterior.half_log_det


def observable_entropy(noise):
    """``D/2 log(2 pi e) + 1/2 sum_d log noise_d``, the entropy of ``p(x | z)`` (any z)."""
    return 0.5 * noise.shape[0] * LOG_2PI_E + 0.5 * float(np.sum(np.log(noise)))


def em_update(data_covariance, posterior, noise_type):
    """The parameter-expanded M-step: new ``(components, noise)`` from the posterior of the
    current parameters, for data whose mean is the model's mean (the maximum-likelihood mean,
    set before EM).

    With ``beta = posterior.projection`` and ``E = G + beta S beta^T`` (the average of E[z z^T]):
    EM's ``components = E^-1 beta S`` mapped back to a unit prior, ``chol(E)^T E^-1 beta S``, and
    ``noise = diag(S - (E^-1 beta S)^T beta S)``, averaged over the features for
    ``noise_type='spherical'`` (PPCA), floored at :data:`NOISE_FLOOR`.
    """
    projected = posterior.projection @ data_covariance  # beta S, (H, D)
    second_moment = posterior.covariance + projected @ posterior.projection.T
    components = linalg.solve(second_moment, projected, assume_a="pos")
    noise = np.diag(data_covariance) - np.sum(components * projected, axis=0)
    # Parameter expansion (PX-EM, Liu, Rubin & Wu 1998): the M-step also fits the prior
    # covariance of z, which is E; mapping back to N(0, I) multiplies the components by E^1/2.
    # The same fixed points as EM, reached in far fewer iterations.
    components = linalg.cholesky(second_moment, lower=True).T @ components
    if noise_type == "spherical":
        noise = np.full_like(noise, np.mean(noise))
    return components, np.maximum(noise, NOISE_FLOOR)


def _eigenpairs(matrix, n_components):
    """All eigenvalues of a symmetric matrix (descending) and the eigenvectors (columns) of the
    ``n_components`` largest, each with its largest-magnitude entry made positive (a
    deterministic sign)."""
    values, vectors = linalg.eigh(matrix)
    values, vectors = values[::-1], vectors[:, ::-1][:, :n_components]
    signs = np.sign(vectors[np.argmax(np.abs(vectors), axis=0), np.arange(n_components)])
    signs[signs == 0] = 1.0
    return values, vectors * signs


def ppca_maximum_likelihood(data_covariance, n_components):
    """The closed-form maximum-likelihood PPCA parameters (Tipping & Bishop 1999, R = I):
    ``noise = mean of the D - H smallest eigenvalues``, ``components = diag(sqrt(lambda_h -
    noise)) U_H^T`` for the H leading eigenpairs ``(lambda_h, U_H)`` of the covariance."""
    n_features = data_covariance.shape[0]
    values, vectors = _eigenpairs(data_covariance, n_components)
    leading, rest = values[:n_components], values[n_components:]
    noise = max(float(np.mean(rest)) if rest.size else 0.0, NOISE_FLOOR)
    components = np.sqrt(np.maximum(leading - noise, 0.0))[:, None] * vectors.T
    return components, np.full(n_features, noise)


def components_given_noise(data_covariance, noise, n_components):
    """The components maximising the likelihood for fixed ``noise``: with ``(s_h, u_h)`` the
    leading eigenpairs of ``diag(noise)^-1/2 S diag(noise)^-1/2``, rows
    ``sqrt(max(s_h - 1, 0)) u_h^T diag(noise)^1/2``. A row whose ``s_h <= 1`` would be zero, and
    EM never moves a zero row: it starts at ``sqrt(s_h / 100)`` instead."""
    root = np.sqrt(noise)
    whitened = data_covariance / root[:, None] / root[None, :]
    values, vectors = _eigenpairs(whitened, n_components)
    leading = values[:n_components]
    return (
        np.sqrt(np.maximum(leading - 1.0, 1e-2 * np.maximum(leading, 0.0)))[:, None]
        * vectors.T
        * root[None, :]
    )
