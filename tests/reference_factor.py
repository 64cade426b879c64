"""Slow, obvious float64 NumPy reference for the linear-Gaussian factor models (PPCA, FA).

Written from ``docs/theory.rst`` and the textbook EM for factor analysis (Ghahramani & Hinton 1996;
Tipping & Bishop 1999): explicit D x D covariance matrices, ``inv``/``slogdet``/``solve``, and
per-row posterior means computed from the data rows themselves, never from a scatter matrix. The
model is ``p(z) = N(0, I_H)``, ``p(x | z) = N(components^T z + mean, diag(noise))`` with
``components`` of shape (H, D).
"""

import numpy as np

LOG_2PI = np.log(2.0 * np.pi)
LOG_2PIE = np.log(2.0 * np.pi * np.e)


def _weights(sample_weight, n_samples):
    return np.ones(n_samples) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)


def weighted_mean_and_scatter(X, sample_weight=None):
    """``W = sum w``, ``mean = sum w x / W``, ``scatter = sum_n w_n (x_n - mean)(x_n - mean)^T``, one
    row at a time in float64."""
    X = np.asarray(X, dtype=np.float64)
    w = _weights(sample_weight, X.shape[0])
    total = float(np.sum(w))
    mean = (w @ X) / total
    scatter = np.zeros((X.shape[1], X.shape[1]))
    for n in range(X.shape[0]):
        deviation = X[n] - mean
        scatter += w[n] * np.outer(deviation, deviation)
    return total, mean, scatter


def model_covariance(components, noise):
    """``C = components^T components + diag(noise)``."""
    return components.T @ components + np.diag(np.broadcast_to(noise, components.shape[1]))


def log_likelihoods(X, mean, components, noise):
    """``log N(x_n; mean, C)`` for every row, with ``slogdet`` and ``solve``."""
    X = np.asarray(X, dtype=np.float64)
    covariance = model_covariance(components, noise)
    _, log_det = np.linalg.slogdet(covariance)
    deviations = X - mean
    mahalanobis = np.einsum("nd,nd->n", deviations, np.linalg.solve(covariance, deviations.T).T)
    return -0.5 * (X.shape[1] * LOG_2PI + log_det + mahalanobis)


def posterior(X, mean, components, noise):
    """Exact posterior of every row: means (N, H) and the shared covariance (H, H)."""
    noise = np.broadcast_to(noise, components.shape[1])
    covariance = np.linalg.inv(np.eye(components.shape[0]) + components @ np.diag(1.0 / noise) @ components.T)
    means = (np.asarray(X, dtype=np.float64) - mean) @ np.diag(1.0 / noise) @ components.T @ covariance
    return means, covariance


def px_em_step(X, mean, components, noise, spherical, sample_weight=None):
    """One parameter-expanded EM step from the rows of X (mean fixed at the data's mean):
    ``components = chol(E)^T E^-1 <E[z] (x - mean)^T>``, ``noise = diag(<(x-mean)(x-mean)^T> -
    (E^-1 <E[z] (x-mean)^T>)^T <E[z] (x-mean)^T>)``, ``E = <E[z z^T]>``."""
    X = np.asarray(X, dtype=np.float64)
    w = _weights(sample_weight, X.shape[0])
    total = np.sum(w)
    z_means, z_covariance = posterior(X, mean, components, noise)
    deviations = X - mean
    second_moment = z_covariance + (z_means.T * w) @ z_means / total
    cross = (z_means.T * w) @ deviations / total  # <E[z] (x - mean)^T>, (H, D)
    em_components = np.linalg.solve(second_moment, cross)
    new_noise = np.diag((deviations.T * w) @ deviations / total) - np.sum(em_components * cross, axis=0)
    if spherical:
        new_noise = np.full_like(new_noise, new_noise.mean())
    return np.linalg.cholesky(second_moment).T @ em_components, new_noise


def profile_components(X, noise, n_components, sample_weight=None):
    """The components maximising the likelihood for fixed ``noise`` (Joreskog): from the eigenpairs
    ``(s_h, u_h)`` of ``diag(noise)^-1/2 S diag(noise)^-1/2`` (``S`` the ML covariance, ``eigh``),
    rows ``sqrt(max(s_h - 1, 0)) u_h^T diag(noise)^1/2``."""
    total, _, scatter = weighted_mean_and_scatter(X, sample_weight)
    root = np.sqrt(np.broadcast_to(noise, scatter.shape[0]))
    values, vectors = np.linalg.eigh(scatter / total / np.outer(root, root))
    order = np.argsort(values)[::-1][:n_components]
    return np.sqrt(np.maximum(values[order] - 1.0, 0.0))[:, None] * vectors[:, order].T * root


def entropy_terms(components_before, noise_before, noise_after):
    """docs/theory.rst (factor models): ``A`` from the posterior of the parameters before the M-step, ``B``,
    and ``C`` from the noise after it; returns (A, B, C, S = A + B + C)."""
    n_components, n_features = components_before.shape
    _, z_covariance = posterior(
        np.zeros((1, n_features)), np.zeros(n_features), components_before, noise_before
    )
    A = 0.5 * n_components * LOG_2PIE + 0.5 * np.linalg.slogdet(z_covariance)[1]
    B = -0.5 * n_components * LOG_2PIE
    C = -(0.5 * n_features * LOG_2PIE + 0.5 * np.sum(np.log(np.broadcast_to(noise_after, n_features))))
    return A, B, C, A + B + C


def ppca_maximum_likelihood(X, n_components):
    """Tipping & Bishop's closed form from the ML covariance: returns (mean, model covariance)."""
    total, mean, scatter = weighted_mean_and_scatter(X)
    eigenvalues, eigenvectors = np.linalg.eigh(scatter / total)
    order = np.argsort(eigenvalues)[::-1]
    eigenvalues, eigenvectors = eigenvalues[order], eigenvectors[:, order]
    noise = eigenvalues[n_components:].mean()
    U = eigenvectors[:, :n_components]
    covariance = U @ np.diag(eigenvalues[:n_components] - noise) @ U.T + noise * np.eye(X.shape[1])
    return mean, covariance
