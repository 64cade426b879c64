"""What the E-step, the M-step and the entropy terms share about MFA parameters: the posterior of
the factors and the log-determinants (one place each).

``components`` has shape (K, H, D): component ``c``'s loadings ``W_c`` (D x H) as rows, ``W_c^T``,
as in :class:`sklearn.decomposition.FactorAnalysis`. ``noise_variance`` is (K, D): ``diag(Psi_c)``.
"""

from __future__ import annotations

import numpy as np


def posterior_factors(components, noise_variance):
    """Upper triangular ``R_c`` with ``R_c^T R_c = M_c = I + W_c^T Psi_c^-1 W_c``, shape (K, H, H).

    ``M_c`` is the precision of ``z`` given ``x`` and ``c``. ``R_c`` comes from the QR factorisation
    of the stacked ``[Psi_c^-1/2 W_c; I]``, never from ``M_c`` itself: forming ``M_c`` squares the
    condition number, which loses every digit (and Cholesky fails) once a noise variance is tiny
    relative to its loadings (a Heywood case), while the QR factor stays accurate.
    """
    components = np.asarray(components, dtype=np.float64)
    K, H, D = components.shape
    scaled = components / np.sqrt(np.asarray(noise_variance, dtype=np.float64))[:, None, :]
    stacked = np.concatenate([scaled.transpose(0, 2, 1), np.broadcast_to(np.eye(H), (K, H, H))], axis=1)
    return np.linalg.qr(stacked, mode="r")


def posterior_precisions(components, noise_variance):
    """``M_c = I + W_c^T Psi_c^-1 W_c``, shape (K, H, H): the precision of ``z`` given ``x`` and ``c``."""
    factors = posterior_factors(components, noise_variance)
    return np.einsum("kgh,kgi->khi", factors, factors)


def posterior_covariances(components, noise_variance):
    """``Sigma_c = M_c^-1 = R_c^-1 R_c^-T``, shape (K, H, H)."""
    inverse = np.linalg.inv(posterior_factors(components, noise_variance))
    return inverse @ inverse.transpose(0, 2, 1)


def half_log_det_posterior_covariances(components, noise_variance):
    """``1/2 log|Sigma_c| = -1/2 log|M_c| = -sum_h log|R_c,hh|``, shape (K,)."""
    factors = posterior_factors(components, noise_variance)
    return -np.sum(np.log(np.abs(np.diagonal(factors, axis1=1, axis2=2))), axis=1)


def half_log_det_marginal_covariances(components, noise_variance):
    """``1/2 log|W_c W_c^T + Psi_c| = 1/2 log|M_c| + 1/2 sum_d log psi_cd`` (the determinant lemma),
    shape (K,): accurate where the D x D matrix is numerically singular."""
    return half_log_det_noise(noise_variance) - half_log_det_posterior_covariances(components, noise_variance)


def half_log_det_noise(noise_variance):
    """``1/2 sum_d log psi_cd``, shape (K,)."""
    return 0.5 * np.sum(np.log(np.asarray(noise_variance, dtype=np.float64)), axis=1)


def marginal_covariances(components, noise_variance):
    """``C_c = W_c W_c^T + Psi_c``, shape (K, D, D): the covariance of ``x`` given ``c``."""
    components = np.asarray(components, dtype=np.float64)
    covariances = np.einsum("khd,khe->kde", components, components)
    index = np.arange(components.shape[2])
    covariances[:, index, index] += np.asarray(noise_variance, dtype=np.float64)
    return covariances


def n_parameters(n_components, n_factors, n_features, noise):
    """Free parameters: weights, means, loadings (modulo rotations of the factors) and noise."""
    loadings = n_features * n_factors - n_factors * (n_factors - 1) // 2
    noise_parameters = n_features if noise == "diag" else 1
    return n_components - 1 + n_components * (n_features + loadings + noise_parameters)
