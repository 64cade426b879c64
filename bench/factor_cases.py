"""Factor-model benchmark cases: the model, the data and the sizes.

A case names the model fitted (``"ppca"``, ``"fa"``; ``factor_systems.py`` says which systems fit
each), the data and the latent dimensionality H (``n_factors``). ``n_components`` is the number of
mixture components K, 1 for the single factor models (a mixture of factor analysers sets it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import real_data
from cases import _count

# Synthetic data drawn from a factor model, or real data of fixed width.
REAL_DATA = {"digits": real_data.digits, "breast_cancer": real_data.breast_cancer}
DATA_SOURCES = ("factor", *REAL_DATA)
# scikit-learn FactorAnalysis's defaults, which every system of a case gets.
DEFAULT_TOL = 1e-2
DEFAULT_MAX_ITER = 1000


@dataclass(frozen=True)
class FactorCase:
    """One factor-model benchmark problem.

    ``data`` is ``"factor"`` (synthetic, :func:`factor_data`) or the name of real data in
    ``REAL_DATA`` (subsampled to ``n_samples`` rows, which must not exceed what the data have).
    ``tol`` and ``max_iter`` are the EM stopping rule of every iterative system (scikit-learn's
    meaning: the change of the total log-likelihood); closed forms ignore them.
    """

    model: str
    n_samples: int
    n_features: int
    n_factors: int
    data: str = "factor"
    n_components: int = 1
    tol: float = DEFAULT_TOL
    max_iter: int = DEFAULT_MAX_ITER

    def __post_init__(self):
        if self.data not in DATA_SOURCES:
            raise ValueError(f"data must be one of {DATA_SOURCES}, got {self.data!r}")

    @property
    def id(self) -> str:
        mixture = f"-K{self.n_components}" if self.n_components > 1 else ""
        size = f"N{_count(self.n_samples)}-D{self.n_features}{mixture}-H{self.n_factors}"
        return f"{self.model}-{self.data}-{size}"


def factor_data(n_samples, n_features, n_factors, seed=0):
    """Draws ``z W + mean + noise`` with W ~ N(0, 1) of shape (H, D), means uniform in [-5, 5] and
    noise variances uniform in [0.5, 2] (heterogeneous: factor analysis's case, not PPCA's)."""
    rng = np.random.RandomState(seed)
    loadings = rng.standard_normal((n_factors, n_features))
    noise = rng.uniform(0.5, 2.0, n_features)
    mean = rng.uniform(-5, 5, n_features)
    latents = rng.standard_normal((n_samples, n_factors))
    return latents @ loadings + mean + rng.standard_normal((n_samples, n_features)) * np.sqrt(noise)


def make_data(case: FactorCase, seed: int = 0) -> np.ndarray:
    """The case's ``n_samples`` x ``n_features`` data, C-contiguous float64."""
    if case.data == "factor":
        if case.n_components != 1:
            raise ValueError("synthetic data for mixtures (n_components > 1) are not defined yet")
        X = factor_data(case.n_samples, case.n_features, case.n_factors, seed)
    else:
        X = real_data.subsample(REAL_DATA[case.data](), case.n_samples, case.data, seed)
        if X.shape[1] != case.n_features:
            raise ValueError(f"{case.data} data have {X.shape[1]} features, the case says {case.n_features}")
    return np.ascontiguousarray(X, dtype=np.float64)


# The acceptance case (FA at N=200k, D=64, H=10: scikit-learn takes minutes) and the real
# data that ship with scikit-learn.
FULL_CASES = (
    FactorCase("ppca", 200_000, 64, 10),
    FactorCase("ppca", 1797, 64, 10, data="digits"),
    FactorCase("ppca", 569, 30, 5, data="breast_cancer"),
    FactorCase("fa", 200_000, 64, 10),
    FactorCase("fa", 1797, 64, 10, data="digits"),
    FactorCase("fa", 569, 30, 5, data="breast_cancer"),
)
# CI's check that every model and system runs and that the checks pass, in a few seconds: scikit-
# learn's FactorAnalysis takes an SVD of the data per iteration (seconds on digits), so its quick
# cases are small.
QUICK_CASES = (
    FactorCase("ppca", 20_000, 64, 10),
    FactorCase("ppca", 1797, 64, 10, data="digits"),
    FactorCase("ppca", 569, 30, 5, data="breast_cancer"),
    FactorCase("fa", 20_000, 64, 10),
    FactorCase("fa", 1797, 64, 10, data="digits"),
    FactorCase("fa", 569, 30, 5, data="breast_cancer"),
)
