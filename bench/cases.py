"""Benchmark cases: the problem sizes, the synthetic data and the common starting point.

Every compared system fits the same data from the same initial parameters, so their per-iteration
times measure the same work and their log-likelihoods must agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


@dataclass(frozen=True)
class Case:
    covariance_type: str
    n_samples: int
    n_features: int
    n_components: int
    dtype: str = "float64"

    @property
    def id(self) -> str:
        n = f"{self.n_samples // 1000}k" if self.n_samples < 1_000_000 else f"{self.n_samples // 1_000_000}M"
        return f"{self.covariance_type}-N{n}-D{self.n_features}-K{self.n_components}-{self.dtype}"

    @property
    def data_bytes(self) -> int:
        return self.n_samples * self.n_features * np.dtype(self.dtype).itemsize


def make_data(case: Case, seed: int = 0) -> np.ndarray:
    """A sample of a Gaussian mixture of the case's covariance type with ``n_components`` components.

    Means are spread well apart (standard deviation 3 per coordinate) and component scales vary, so
    k-means and EM have real structure to find.
    """
    rng = np.random.default_rng(seed)
    N, D, K = case.n_samples, case.n_features, case.n_components
    labels = rng.integers(K, size=N)
    means = rng.normal(scale=3.0, size=(K, D))
    X = rng.standard_normal((N, D))
    if case.covariance_type == "spherical":
        X *= rng.uniform(0.5, 1.5, size=K)[labels, None]
    elif case.covariance_type == "diag":
        X *= rng.uniform(0.5, 1.5, size=(K, D))[labels]
    elif case.covariance_type == "tied":
        X = X @ _random_factor(rng, D)
    else:
        for k in range(K):
            rows = labels == k
            X[rows] = X[rows] @ _random_factor(rng, D)
    X += means[labels]
    return np.ascontiguousarray(X, dtype=case.dtype)


def _random_factor(rng, n_features):
    """A well-conditioned random square root of a covariance."""
    return np.eye(n_features) + rng.normal(scale=0.3 / np.sqrt(n_features), size=(n_features, n_features))


@dataclass(frozen=True)
class Start:
    """Initial parameters in float64, with precisions in scikit-learn's ``precisions_init`` shapes."""

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    precisions: np.ndarray


def initial_parameters(case: Case, X: np.ndarray, seed: int = 1) -> Start:
    """Uniform weights, K distinct data rows as means, and the data's covariance for every component."""
    rng = np.random.default_rng(seed)
    K = case.n_components
    means = np.asarray(X[np.sort(rng.choice(len(X), size=K, replace=False))], dtype=np.float64)
    sample = np.asarray(X[rng.choice(len(X), size=min(len(X), 20_000), replace=False)], dtype=np.float64)
    covariance = np.atleast_2d(np.cov(sample, rowvar=False))
    if case.covariance_type == "full":
        covariances = np.repeat(covariance[None], K, axis=0)
        precisions = np.repeat(np.linalg.inv(covariance)[None], K, axis=0)
    elif case.covariance_type == "tied":
        covariances, precisions = covariance, np.linalg.inv(covariance)
    elif case.covariance_type == "diag":
        covariances = np.repeat(np.diag(covariance)[None], K, axis=0)
        precisions = 1.0 / covariances
    else:
        covariances = np.full(K, np.diag(covariance).mean())
        precisions = 1.0 / covariances
    return Start(np.full(K, 1.0 / K), means, covariances, precisions)


# The acceptance cases (and sweeps over K for the plot); --quick uses scaled-down sizes.
FULL_ITERATION_CASES = (
    *(Case("diag", 200_000, 64, k) for k in (16, 64)),
    Case("diag", 200_000, 64, 256),
    Case("diag", 200_000, 64, 256, "float32"),
    Case("diag", 1_000_000, 16, 16),
    Case("diag", 1_000_000, 16, 16, "float32"),
    *(Case("full", 100_000, 32, k) for k in (4, 16)),
    Case("full", 100_000, 32, 64),
    Case("full", 100_000, 32, 64, "float32"),
    Case("spherical", 1_000_000, 16, 16),
    Case("spherical", 100_000, 32, 64),
    Case("tied", 1_000_000, 16, 16),
    Case("tied", 100_000, 32, 64),
)
FULL_FIT_CASES = (Case("diag", 200_000, 64, 256), Case("full", 100_000, 32, 64))
FULL_MEMORY_CASES = (Case("diag", 200_000, 64, 256),)
FULL_SCALING_CASE = Case("diag", 200_000, 64, 256)

QUICK_ITERATION_CASES = (
    *(Case("diag", 20_000, 64, k) for k in (16, 64, 256)),
    Case("diag", 100_000, 16, 16),
    Case("diag", 100_000, 16, 16, "float32"),
    *(Case("full", 10_000, 32, k) for k in (4, 16, 64)),
    Case("full", 10_000, 32, 16, "float32"),
    Case("spherical", 100_000, 16, 16),
    Case("tied", 100_000, 16, 16),
)
QUICK_FIT_CASES = (Case("diag", 20_000, 64, 64), Case("full", 10_000, 32, 16))
QUICK_MEMORY_CASES = (Case("diag", 50_000, 64, 256),)
QUICK_SCALING_CASE = Case("diag", 20_000, 64, 256)
