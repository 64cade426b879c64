"""Slow, obvious float64 NumPy reference for mixtures of factor analysers (docs/theory.rst, MFA).

Written from the model's definition, not from fastelbo's code: dense covariances
``C_c = W_c W_c^T + Psi_c`` and scipy's ``multivariate_normal.logpdf``, posteriors of the factors by
``np.linalg.solve``, sums as explicit loops over components, the M-step in terms of the raw rows x
(not centred on anything) as Ghahramani & Hinton write it.

Parameters use fastelbo's shapes: ``weights`` (K,), ``means`` (K, D), ``components`` (K, H, D)
(row h of ``components[c]`` is column h of ``W_c``), ``noise_variance`` (K, D).
"""

import numpy as np
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

LOG_2PIE = np.log(2.0 * np.pi * np.e)


def _weights_or_ones(sample_weight, n):
    return np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)


def covariance(components, noise_variance, c):
    """Dense ``W_c W_c^T + Psi_c``."""
    W = np.asarray(components[c], dtype=np.float64).T
    return W @ W.T + np.diag(np.asarray(noise_variance[c], dtype=np.float64))


def log_joint(X, weights, means, components, noise_variance):
    """(N, K) ``log pi_c + log N(x_n; mu_c, C_c)``."""
    X = np.asarray(X, dtype=np.float64)
    K = len(weights)
    out = np.empty((X.shape[0], K))
    for c in range(K):
        density = multivariate_normal(
            mean=np.asarray(means[c], np.float64), cov=covariance(components, noise_variance, c)
        )
        with np.errstate(divide="ignore"):
            out[:, c] = np.log(weights[c]) + density.logpdf(X)
    return out


def posterior(X, means, components, noise_variance, c):
    """Posterior of the factors given x and component c: means (N, H) and the covariance (H, H)."""
    X = np.asarray(X, dtype=np.float64)
    W = np.asarray(components[c], dtype=np.float64).T
    psi_inv = np.diag(1.0 / np.asarray(noise_variance[c], dtype=np.float64))
    H = W.shape[1]
    sigma = np.linalg.inv(np.eye(H) + W.T @ psi_inv @ W)
    m = (sigma @ W.T @ psi_inv @ (X - means[c]).T).T
    return m, sigma


def e_step(X, weights, means, components, noise_variance, sample_weight=None):
    """Responsibilities (N, K), log p(x_n) (N,), component entropies H[q_n(c)] (N,)."""
    lj = log_joint(X, weights, means, components, noise_variance)
    log_norm = logsumexp(lj, axis=1)
    resp = np.exp(lj - log_norm[:, None])
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.sum(np.where(resp > 0, resp * np.log(resp), 0.0), axis=1)
    return resp, log_norm, entropy


def statistics(X, resp, means, components, noise_variance, reference, sample_weight=None):
    """The kernel's statistics about ``reference`` (dict of nk, sx, sxx, szx, sz, szz), by loops."""
    X = np.asarray(X, dtype=np.float64)
    N, D = X.shape
    K, H, _ = np.shape(components)
    w = _weights_or_ones(sample_weight, N)
    out = {
        "nk": np.zeros(K),
        "sx": np.zeros((K, D)),
        "sxx": np.zeros((K, D)),
        "szx": np.zeros((K, H, D)),
        "sz": np.zeros((K, H)),
        "szz": np.zeros((K, H, H)),
    }
    for c in range(K):
        m, _ = posterior(X, means, components, noise_variance, c)
        for n in range(N):
            q = w[n] * resp[n, c]
            xt = X[n] - reference[c]
            out["nk"][c] += q
            out["sx"][c] += q * xt
            out["sxx"][c] += q * xt * xt
            out["szx"][c] += q * np.outer(m[n], xt)
            out["sz"][c] += q * m[n]
            out["szz"][c] += q * np.outer(m[n], m[n])
    return out


def m_step(X, resp, means, components, noise_variance, noise="diag", reg_covar=0.0, sample_weight=None):
    """One closed-form M-step (Ghahramani & Hinton) from the raw rows, returning new
    (weights, means, components, noise_variance (K, D))."""
    X = np.asarray(X, dtype=np.float64)
    N, D = X.shape
    K, H, _ = np.shape(components)
    w = _weights_or_ones(sample_weight, N)
    new_means = np.empty((K, D))
    new_components = np.empty((K, H, D))
    new_noise = np.empty((K, D))
    nk = (resp * w[:, None]).sum(axis=0)
    for c in range(K):
        m, sigma = posterior(X, means, components, noise_variance, c)
        q = resp[:, c] * w
        z_aug = np.hstack([m, np.ones((N, 1))])  # E[z~] per row
        zz_aug = np.zeros((H + 1, H + 1))
        xz_aug = np.zeros((D, H + 1))
        for n in range(N):
            ezz = np.zeros((H + 1, H + 1))
            ezz[:H, :H] = sigma + np.outer(m[n], m[n])
            ezz[:H, H] = ezz[H, :H] = m[n]
            ezz[H, H] = 1.0
            zz_aug += q[n] * ezz
            xz_aug += q[n] * np.outer(X[n], z_aug[n])
        W_aug = xz_aug @ np.linalg.inv(zz_aug)
        scatter = (X * q[:, None]).T @ X
        psi = np.diag(scatter - W_aug @ xz_aug.T) / nk[c]
        if noise == "spherical":
            psi = np.full(D, psi.mean())
        new_components[c] = W_aug[:, :H].T
        new_means[c] = W_aug[:, H]
        new_noise[c] = np.maximum(psi, reg_covar)
    return nk / nk.sum(), new_means, new_components, new_noise


def log_likelihood(X, weights, means, components, noise_variance, sample_weight=None):
    """Weighted mean log-likelihood."""
    _, log_norm, _ = e_step(X, weights, means, components, noise_variance)
    w = _weights_or_ones(sample_weight, len(log_norm))
    return float(w @ log_norm / w.sum())


def entropy_sum(X, resp_source_params, params, form="latent", sample_weight=None):
    """``S(q, Theta)`` with q the posteriors under ``resp_source_params`` and entropies of ``params``.

    latent:    <H[q_n(c)]> + sum_c qbar_c 1/2 log|Sigma_c| - H[pi]
               - sum_c qbar_c (D/2 L + 1/2 sum_d log psi_cd)
               (Sigma_c the posterior covariance of q, so of ``resp_source_params``: the term
               A = <H[q_n]> depends on q alone)
    collapsed: <H[q_n(c)]> - H[pi] - sum_c qbar_c (D/2 L + 1/2 log|W_c W_c^T + Psi_c|)
    """
    resp, _, entropy = e_step(X, *resp_source_params)
    weights, means, components, noise_variance = params
    w = _weights_or_ones(sample_weight, len(entropy))
    qbar = (resp * w[:, None]).sum(axis=0) / w.sum()
    D = np.shape(means)[1]
    pi = np.asarray(weights, dtype=np.float64)
    prior = -np.sum(pi[pi > 0] * np.log(pi[pi > 0]))
    value = w @ entropy / w.sum() - prior
    for c in range(len(pi)):
        if form == "latent":
            _, sigma = posterior(np.zeros((1, D)), *resp_source_params[1:], c)
            value += qbar[c] * 0.5 * np.linalg.slogdet(sigma)[1]
            value -= qbar[c] * (0.5 * D * LOG_2PIE + 0.5 * np.sum(np.log(noise_variance[c])))
        else:
            value -= qbar[c] * (
                0.5 * D * LOG_2PIE + 0.5 * np.linalg.slogdet(covariance(components, noise_variance, c))[1]
            )
    return float(value)


def random_parameters(rng, K, D, H, spread=3.0, offset=0.0):
    """Well-conditioned random MFA parameters (weights, means, components, noise_variance (K, D))."""
    weights = rng.uniform(0.5, 1.5, size=K)
    means = offset + spread * rng.standard_normal((K, D))
    components = rng.standard_normal((K, H, D))
    noise = rng.uniform(0.2, 1.0, size=(K, D))
    return weights / weights.sum(), means, components, noise


def sample(rng, N, weights, means, components, noise_variance):
    """N rows from the mixture and their component labels."""
    K, H, D = np.shape(components)
    labels = rng.choice(K, size=N, p=weights)
    z = rng.standard_normal((N, H))
    X = (
        means[labels]
        + np.einsum("nh,nhd->nd", z, components[labels])
        + rng.standard_normal((N, D)) * np.sqrt(noise_variance[labels])
    )
    return X, labels
