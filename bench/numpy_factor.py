"""What a NumPy user would write for PPCA and factor analysis: the benchmark's independent answers.

Both work on the data's mean and covariance (one ``X^T X`` product by BLAS), with explicit D x D
matrices (``eigh``, ``inv``, ``slogdet``): cheap at the benchmark's D <= 64 and written without
fastelbo's Woodbury forms, so a log-likelihood they agree with was computed twice, differently.
Shapes follow scikit-learn: ``components_`` (H, D), the model ``x = components_^T z + mean_ +
noise`` with ``z ~ N(0, I)`` and ``noise ~ N(0, diag(noise_variance_))``.
"""

from __future__ import annotations

import numpy as np

LOG_2PI = np.log(2.0 * np.pi)


def mean_and_covariance(X):
    """The mean and the maximum-likelihood (divided by N) covariance of the rows of X."""
    mean = X.mean(axis=0)
    centred = X - mean
    return mean, centred.T @ centred / len(X)


def mean_log_likelihood(mean, data_covariance, model_covariance, data_mean=None):
    """Mean of ``log N(x_n; mean, C)`` over data with the given mean and covariance:
    ``-1/2 (D log 2 pi + log|C| + tr(C^-1 S'))``, ``S'`` the data's scatter about ``mean``."""
    scatter = data_covariance
    if data_mean is not None:
        offset = data_mean - mean
        scatter = data_covariance + np.outer(offset, offset)
    _, log_det = np.linalg.slogdet(model_covariance)
    trace = np.trace(np.linalg.solve(model_covariance, scatter))
    return -0.5 * (len(mean) * LOG_2PI + log_det + trace)


class _LinearGaussian:
    def get_covariance(self):
        return self.components_.T @ self.components_ + np.diag(self.noise_variance_)

    def score(self, X):
        """Mean log-likelihood of the rows of X under the fitted model."""
        data_mean, data_covariance = mean_and_covariance(np.asarray(X, dtype=np.float64))
        return mean_log_likelihood(self.mean_, data_covariance, self.get_covariance(), data_mean)


class NumpyPPCA(_LinearGaussian):
    """Tipping & Bishop's closed-form maximum-likelihood PPCA from ``numpy.linalg.eigh``: the noise
    variance is the mean of the D - H smallest eigenvalues of the covariance, the components are
    the H leading eigenvectors scaled by ``sqrt(lambda_h - noise)``."""

    n_iter_ = None  # a closed form

    def __init__(self, n_components):
        self.n_components = n_components

    def fit(self, X):
        self.mean_, covariance = mean_and_covariance(np.asarray(X, dtype=np.float64))
        eigenvalues, eigenvectors = np.linalg.eigh(covariance)  # ascending
        H = self.n_components
        leading, vectors = eigenvalues[::-1][:H], eigenvectors[:, ::-1][:, :H]
        noise = eigenvalues[: len(eigenvalues) - H].mean()
        self.components_ = np.sqrt(np.maximum(leading - noise, 0.0))[:, None] * vectors.T
        self.noise_variance_ = np.full(len(covariance), noise)
        return self


class NumpyFactorAnalysis(_LinearGaussian):
    """Textbook EM for factor analysis (Rubin & Thayer 1982) on the data's covariance S::

        beta = W^T C^-1,   E = I - beta W + beta S beta^T,   W <- S beta^T E^-1,
        psi <- diag(S - W beta S)

    (W = ``components_``^T, C = W W^T + diag(psi)), from PCA's loadings and the features'
    variances; stops like scikit-learn's FactorAnalysis, when an iteration raises the total
    log-likelihood by less than ``tol``. The noise is floored at 1e-12, as scikit-learn does.
    """

    def __init__(self, n_components, tol=1e-2, max_iter=1000):
        self.n_components = n_components
        self.tol = tol
        self.max_iter = max_iter

    def fit(self, X):
        X = np.asarray(X, dtype=np.float64)
        self.mean_, S = mean_and_covariance(X)
        H = self.n_components
        eigenvalues, eigenvectors = np.linalg.eigh(S)
        W = eigenvectors[:, ::-1][:, :H] * np.sqrt(np.maximum(eigenvalues[::-1][:H], 0.0))
        psi = np.maximum(np.diag(S).copy(), 1e-12)
        previous = -np.inf
        self.converged_ = False
        for n_iter in range(1, self.max_iter + 1):
            self.n_iter_ = n_iter
            C = W @ W.T + np.diag(psi)
            total = len(X) * mean_log_likelihood(self.mean_, S, C)
            if total - previous < self.tol:
                self.converged_ = True
                break
            previous = total
            beta = np.linalg.solve(C, W).T  # W^T C^-1 (C is symmetric)
            second_moment = np.eye(H) - beta @ W + beta @ S @ beta.T
            W = np.linalg.solve(second_moment, beta @ S).T
            psi = np.maximum(np.diag(S - W @ beta @ S), 1e-12)
        self.components_, self.noise_variance_ = W.T, psi
        return self
