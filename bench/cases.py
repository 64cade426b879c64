"""Benchmark cases: the problem sizes, the data and the common starting point.

Every compared system fits the same data from the same initial parameters, so their per-iteration
times measure the same work and their log-likelihoods must agree. The data are either a synthetic
Gaussian mixture whose clusters are as far apart as ``separation`` says, or real data
(``real_data.py``): the usual case, where no one chose the data to suit the kernels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import real_data

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
# Where a case's rows come from: a synthetic mixture, or real data of fixed width.
DATA_SOURCES = ("mixture", "patches", "digits")
REAL_DATA_FEATURES = {"patches": 64, "digits": 64}
WELL_SEPARATED = 3.0
OVERLAPPING = 0.3
REG_COVAR = 1e-6  # scikit-learn's and FastGMM's default


@dataclass(frozen=True)
class Case:
    """One benchmark problem.

    ``data`` is ``"mixture"`` (synthetic, see ``make_mixture``; ``separation`` applies to it only),
    ``"patches"`` (grey 8 x 8 photo patches, mean removed) or ``"digits"``; real data are subsampled
    to ``n_samples`` rows.
    """

    covariance_type: str
    n_samples: int
    n_features: int
    n_components: int
    dtype: str = "float64"
    data: str = "mixture"
    separation: float = WELL_SEPARATED

    def __post_init__(self):
        if self.data not in DATA_SOURCES:
            raise ValueError(f"data must be one of {DATA_SOURCES}, got {self.data!r}")
        if self.data in REAL_DATA_FEATURES and self.n_features != REAL_DATA_FEATURES[self.data]:
            raise ValueError(f"{self.data} data have {REAL_DATA_FEATURES[self.data]} features")

    @property
    def id(self) -> str:
        source = f"sep{self.separation:g}" if self.data == "mixture" else self.data
        return (
            f"{source}-{self.covariance_type}-N{_count(self.n_samples)}-D{self.n_features}"
            f"-K{self.n_components}-{self.dtype}"
        )

    @property
    def data_bytes(self) -> int:
        return self.n_samples * self.n_features * np.dtype(self.dtype).itemsize


def _count(n: int) -> str:
    """200000 -> 200k, 1000000 -> 1M; counts that are not round stay exact (1797)."""
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


def make_data(case: Case, seed: int = 0) -> np.ndarray:
    """The case's ``n_samples`` x ``n_features`` data, C-contiguous in the case's dtype."""
    if case.data == "mixture":
        X = make_mixture(case, seed)
    else:
        X = real_data.image_patches() if case.data == "patches" else real_data.digits()
        X = real_data.subsample(X, case.n_samples, case.data, seed)
    return np.ascontiguousarray(X, dtype=case.dtype)


def make_mixture(case: Case, seed: int = 0) -> np.ndarray:
    """A sample of a Gaussian mixture of the case's covariance type with ``n_components`` components.

    Each coordinate of each component's mean is drawn with standard deviation ``case.separation``
    (in units of the within-component standard deviation, which is about 1): at 3 the clusters are
    well separated (the usual case: most responsibilities are tiny and many underflow, some into
    subnormal floats), at 0.3 they overlap heavily. Component scales vary (0.5 to 1.5), so k-means
    and EM have real structure to find.
    """
    rng = np.random.default_rng(seed)
    N, D, K = case.n_samples, case.n_features, case.n_components
    labels = rng.integers(K, size=N)
    means = rng.normal(scale=case.separation, size=(K, D))
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
    return X


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
    """Uniform weights, K distinct data rows as means, and the data's covariance (plus the default
    ``reg_covar`` on its diagonal, as every M-step adds) for every component."""
    rng = np.random.default_rng(seed)
    K = case.n_components
    means = np.asarray(X[np.sort(rng.choice(len(X), size=K, replace=False))], dtype=np.float64)
    sample = np.asarray(X[rng.choice(len(X), size=min(len(X), 20_000), replace=False)], dtype=np.float64)
    covariance = np.atleast_2d(np.cov(sample, rowvar=False))
    # Real data can be degenerate (patches sum to zero, some digit pixels never change): keep it invertible.
    covariance.flat[:: len(covariance) + 1] += REG_COVAR
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


# The acceptance cases (well separated: diag 200k/64/256 and full 100k/32/64), sweeps over K
# for the plot, overlapping data, and real data; --quick uses scaled-down sizes.
FULL_ITERATION_CASES = (
    *(Case("diag", 200_000, 64, k) for k in (16, 64)),
    Case("diag", 200_000, 64, 256),
    Case("diag", 200_000, 64, 256, "float32"),
    Case("diag", 200_000, 64, 256, separation=OVERLAPPING),
    Case("diag", 1_000_000, 16, 16),
    Case("diag", 1_000_000, 16, 16, "float32"),
    *(Case("full", 100_000, 32, k) for k in (4, 16)),
    Case("full", 100_000, 32, 64),
    Case("full", 100_000, 32, 64, "float32"),
    Case("full", 100_000, 32, 64, separation=OVERLAPPING),
    Case("spherical", 1_000_000, 16, 16),
    Case("spherical", 100_000, 32, 64),
    Case("tied", 1_000_000, 16, 16),
    Case("tied", 100_000, 32, 64),
    # Zoran & Weiss's EPLL patch prior has 200 full-covariance components.
    Case("full", 50_000, 64, 200, data="patches"),
    Case("full", 50_000, 64, 200, "float32", data="patches"),
    Case("full", 1797, 64, 10, data="digits"),
)
FULL_FIT_CASES = (
    Case("diag", 200_000, 64, 256),
    Case("full", 100_000, 32, 64),
    # Patches do not converge in 100 iterations: a smaller K keeps scikit-learn's fit to minutes.
    Case("full", 20_000, 64, 50, data="patches"),
    Case("full", 1797, 64, 10, data="digits"),
)
FULL_MEMORY_CASES = (Case("diag", 200_000, 64, 256),)
FULL_SCALING_CASE = Case("diag", 200_000, 64, 256)

# Two K per sweep keep --quick, CI's check that every kind of case runs and agrees, near 90 s on 2 cores.
QUICK_ITERATION_CASES = (
    *(Case("diag", 20_000, 64, k) for k in (64, 256)),
    Case("diag", 20_000, 64, 256, separation=OVERLAPPING),
    Case("diag", 100_000, 16, 16),
    Case("diag", 100_000, 16, 16, "float32"),
    *(Case("full", 10_000, 32, k) for k in (16, 64)),
    Case("full", 10_000, 32, 16, "float32"),
    Case("spherical", 100_000, 16, 16),
    Case("tied", 100_000, 16, 16),
    Case("full", 10_000, 64, 16, data="patches"),
    Case("full", 1797, 64, 10, data="digits"),
)
QUICK_FIT_CASES = (
    Case("diag", 20_000, 64, 64),
    Case("full", 10_000, 32, 16),
    Case("full", 1797, 64, 10, data="digits"),
)
QUICK_MEMORY_CASES = (Case("diag", 50_000, 64, 256),)
QUICK_SCALING_CASE = Case("diag", 20_000, 64, 256)
