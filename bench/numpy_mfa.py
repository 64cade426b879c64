"""A vectorised NumPy EM for mixtures of factor analysers: the competitor a NumPy user would write.

It keeps the whole N x K matrix of log-joints (then responsibilities) and, per component, the N x H
posterior means of the factors, evaluates log-densities through the Woodbury identity as BLAS
products on the centred data, and takes Ghahramani & Hinton's closed-form M-step from the raw rows
(the joint (H+1)-dimensional system for loadings and mean). The benchmarks compare FastMFA with it
on the same data and the same initial parameters.

Parameters use fastelbo's shapes: ``weights`` (K,), ``means`` (K, D), ``components`` (K, H, D) (row h
of ``components[c]`` is column h of ``W_c``), ``noise`` (K, D) diagonal noise variances.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

_LOG_2PI = np.log(2.0 * np.pi)


def iteration(X, weights, means, components, noise, reg_covar=1e-6):
    """One EM iteration: the E-step under the given parameters, then the M-step (noise variances
    floored at ``reg_covar``: a number, or one floor per feature; FastMFA floors feature ``d`` at
    its ``reg_covar`` times the feature's variance).

    Returns (mean log-likelihood of X under the given parameters, (weights, means, components, noise)
    after the M-step).
    """
    N, D = X.shape
    K, H, _ = components.shape
    log_joint = np.empty((N, K))
    latent = []
    for c in range(K):
        W = components[c].T  # D x H
        scaled = W / noise[c][:, None]
        M = np.eye(H) + W.T @ scaled
        beta = np.linalg.solve(M, scaled.T)  # H x D: posterior mean of z is beta (x - mu)
        E = X - means[c]
        m = E @ beta.T
        r = E - m @ components[c]
        # Woodbury: e^T (W W^T + Psi)^-1 e = r^T Psi^-1 r + m^T m with r = e - W m.
        quad = (r * r) @ (1.0 / noise[c]) + np.einsum("nh,nh->n", m, m)
        log_det = np.linalg.slogdet(M)[1] + np.log(noise[c]).sum()
        log_joint[:, c] = np.log(weights[c]) - 0.5 * (D * _LOG_2PI + log_det + quad)
        latent.append((m, np.linalg.inv(M)))
    log_norm = logsumexp(log_joint, axis=1)
    resp = np.exp(log_joint - log_norm[:, None])
    nk = resp.sum(axis=0)
    second_moments = resp.T @ (X * X)  # K x D: sum_n q_nc x_n^2
    new_means, new_components = np.empty_like(means), np.empty_like(components)
    new_noise = np.empty_like(noise)
    for c in range(K):
        m, sigma = latent[c]
        q = resp[:, c]
        qm = m * q[:, None]
        gram = np.empty((H + 1, H + 1))  # sum_n q_nc E[z~ z~^T], z~ = [z; 1]
        gram[:H, :H] = nk[c] * sigma + qm.T @ m
        gram[:H, H] = gram[H, :H] = qm.sum(axis=0)
        gram[H, H] = nk[c]
        cross = np.vstack([qm.T @ X, q @ X])  # (H + 1) x D: sum_n q_nc E[z~] x_n^T
        augmented = np.linalg.solve(gram, cross)  # [W_c, mu_c]^T
        new_components[c], new_means[c] = augmented[:H], augmented[H]
        psi = (second_moments[c] - np.sum(augmented * cross, axis=0)) / nk[c]
        new_noise[c] = np.maximum(psi, reg_covar)
    return float(log_norm.mean()), (nk / N, new_means, new_components, new_noise)


def fit(X, weights, means, components, noise, n_iter, reg_covar=1e-6):
    """``n_iter`` EM iterations from the given parameters (float64 copies of them).

    Returns (parameters after the last M-step, the mean log-likelihood before each M-step): the
    last log-likelihood is that of the parameters after ``n_iter - 1`` M-steps, what FastMFA's
    ``lower_bound_`` holds after ``max_iter=n_iter`` iterations.
    """
    parameters = tuple(np.array(p, dtype=np.float64) for p in (weights, means, components, noise))
    X = np.asarray(X, dtype=np.float64)
    log_likelihoods = []
    for _ in range(n_iter):
        log_likelihood, parameters = iteration(X, *parameters, reg_covar=reg_covar)
        log_likelihoods.append(log_likelihood)
    return parameters, log_likelihoods
