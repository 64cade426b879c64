"""A vectorised PyTorch EM for Gaussian mixtures: the GPU counterpart of ``numpy_em.py``, the
competitor a PyTorch user would write.

It keeps the whole N x K responsibility matrix on the device, evaluates log-densities with the
precision-Cholesky trick as matrix products (TF32 off, so products are float32 like fastelbo's),
and re-centres the data per component for full covariances. Only diag and full covariances (the
cases ``gpu_report.py`` measures).
"""

from __future__ import annotations

import math

import torch

_LOG_2PI = math.log(2.0 * math.pi)


def precisions_cholesky(covariances, covariance_type):
    """Upper-triangular ``U`` with ``U U^T = Sigma^{-1}`` (diag: ``1/sqrt(var)``)."""
    if covariance_type == "full":
        lower = torch.linalg.cholesky(covariances)
        eye = torch.eye(covariances.shape[-1], dtype=covariances.dtype, device=covariances.device)
        return torch.linalg.solve_triangular(lower, eye.expand_as(covariances), upper=False).transpose(-1, -2)
    return torch.rsqrt(covariances)


def log_joint(X, weights, means, prec_chol, covariance_type):
    """(N, K) matrix of ``log pi_c + log N(x_n; mu_c, Sigma_c)``."""
    n_features = X.shape[1]
    if covariance_type == "full":
        log_det = torch.log(torch.diagonal(prec_chol, dim1=1, dim2=2)).sum(dim=1)
        out = torch.empty((X.shape[0], means.shape[0]), dtype=X.dtype, device=X.device)
        for c in range(means.shape[0]):
            y = X @ prec_chol[c] - means[c] @ prec_chol[c]
            out[:, c] = (y * y).sum(dim=1)
    else:
        log_det = torch.log(prec_chol).sum(dim=1)
        precision = prec_chol**2
        out = (X * X) @ precision.T - 2.0 * X @ (means * precision).T + (means**2 * precision).sum(dim=1)
    return -0.5 * (n_features * _LOG_2PI + out) + log_det + torch.log(weights)


def m_step(X, resp, reg_covar, covariance_type):
    """Closed-form (weights, means, covariances) from responsibilities."""
    nk = resp.sum(dim=0) + 10 * torch.finfo(resp.dtype).eps
    means = resp.T @ X / nk[:, None]
    n_features = X.shape[1]
    if covariance_type == "full":
        covariances = torch.empty((len(nk), n_features, n_features), dtype=X.dtype, device=X.device)
        eye = torch.eye(n_features, dtype=X.dtype, device=X.device)
        for c in range(len(nk)):
            diff = X - means[c]
            covariances[c] = (resp[:, c] * diff.T) @ diff / nk[c] + reg_covar * eye
    else:
        covariances = resp.T @ (X * X) / nk[:, None] - means**2 + reg_covar
    return nk / nk.sum(), means, covariances


def fit(X, weights, means, covariances, covariance_type, n_iter, reg_covar=1e-6):
    """Run ``n_iter`` EM iterations on X's device; returns ((weights, means, covariances), lower_bounds)."""
    lower_bounds = []
    for _ in range(n_iter):
        log_prob = log_joint(
            X, weights, means, precisions_cholesky(covariances, covariance_type), covariance_type
        )
        log_norm = torch.logsumexp(log_prob, dim=1)
        lower_bounds.append(float(log_norm.mean()))
        resp = torch.exp(log_prob - log_norm[:, None])
        del log_prob
        weights, means, covariances = m_step(X, resp, reg_covar, covariance_type)
    return (weights, means, covariances), lower_bounds
