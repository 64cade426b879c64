"""The systems each factor model is compared with, and the rule its log-likelihood must meet.

``MODELS[case.model]`` is a :class:`FactorModel`: fastelbo's estimator first, then the others. Every
system is an estimator factory ``make(case)``; what it makes has ``fit(X)`` and ``score(X)`` (mean
log-likelihood of the training data), and ``n_iter_`` / ``converged_`` if it iterates.

Adding a model (a mixture of factor analysers, say) is one more ``MODELS`` entry: its estimator,
its competitors (``checked=False`` for a different model timed alongside, such as a Gaussian
mixture with the same K) and its rule, plus its cases in ``factor_cases.py``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.decomposition import PCA, FactorAnalysis
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

import numpy_factor
from factor_cases import FactorCase
from fastelbo import FastFactorAnalysis, FastPPCA

# How fastelbo's mean log-likelihood must compare with a checked competitor's, to AGREEMENT_RTOL:
# "equal" for a unique optimum in closed form, "at_least" for EM, which stops at a tolerance.
RULES = ("equal", "at_least")
# Every system fits with one thread (BLAS and OpenMP alike), so the ratios compare algorithms, not
# thread pools: on a busy 2-core machine a multithreaded OpenBLAS was 10 to 100 times slower at
# random (scikit-learn's FactorAnalysis on breast cancer: 0.09 s on one thread, 0.8 to 21 s on two).
THREADS = 1


@dataclass(frozen=True)
class FactorSystem:
    name: str  # the key in report.json
    label: str  # the name in report.md
    make: Callable[[FactorCase], object]
    checked: bool = True  # whether fastelbo's log-likelihood is checked against this one's


@dataclass(frozen=True)
class FactorModel:
    rule: str
    systems: tuple[FactorSystem, ...]  # fastelbo's first

    def __post_init__(self):
        if self.rule not in RULES:
            raise ValueError(f"rule must be one of {RULES}, got {self.rule!r}")

    @property
    def label(self):
        return self.systems[0].label


class MaximumLikelihoodPCA:
    """scikit-learn's PCA read as probabilistic PCA, with its ``score`` moved to the maximum-likelihood
    model.

    ``PCA.score`` is the closed-form PPCA log-likelihood, but PCA's variances divide by N - 1: its
    model covariance is a = N / (N - 1) times the maximum-likelihood one. On the training data, where
    ``tr(C^-1 S) = D`` at the ML solution, that lowers the mean log-likelihood by exactly
    ``D/2 (log a + 1/a - 1)`` (2.3e-5 for breast cancer, D=30), which :meth:`score` adds back:
    valid for the data the model was fitted on only.
    """

    n_iter_ = None  # a closed form

    def __init__(self, n_components):
        self.pca = PCA(n_components, svd_solver="covariance_eigh")

    def fit(self, X):
        self.pca.fit(X)
        return self

    def score(self, X):
        n_samples, n_features = X.shape
        a = n_samples / (n_samples - 1)
        return self.pca.score(X) + 0.5 * n_features * (np.log(a) + 1 / a - 1)


def _iterative(case):
    return {"tol": case.tol, "max_iter": case.max_iter}


MODELS = {
    "ppca": FactorModel(
        "equal",
        (
            FactorSystem(
                "fastelbo",
                "FastPPCA (eigh)",
                lambda case: FastPPCA(case.n_factors, solver="eigh", n_jobs=THREADS),
            ),
            FactorSystem(
                "sklearn",
                "scikit-learn PCA (covariance_eigh)",
                lambda case: MaximumLikelihoodPCA(case.n_factors),
            ),
            FactorSystem("numpy", "NumPy closed form", lambda case: numpy_factor.NumpyPPCA(case.n_factors)),
        ),
    ),
    "fa": FactorModel(
        "at_least",
        (
            FactorSystem(
                "fastelbo",
                "FastFactorAnalysis",
                lambda case: FastFactorAnalysis(case.n_factors, n_jobs=THREADS, **_iterative(case)),
            ),
            FactorSystem(
                "sklearn",
                "scikit-learn FactorAnalysis (randomized)",
                lambda case: FactorAnalysis(case.n_factors, random_state=0, **_iterative(case)),
            ),
            FactorSystem(
                "sklearn_lapack",
                "scikit-learn FactorAnalysis (lapack)",
                lambda case: FactorAnalysis(case.n_factors, svd_method="lapack", **_iterative(case)),
            ),
            FactorSystem(
                "numpy",
                "NumPy EM",
                lambda case: numpy_factor.NumpyFactorAnalysis(case.n_factors, **_iterative(case)),
            ),
        ),
    ),
}


def fit(system: FactorSystem, case: FactorCase, X: np.ndarray):
    """A fresh estimator of ``system`` for ``case``, fitted to X (a fit that stops at ``max_iter``
    says so through ``converged_``, not a warning), on THREADS threads."""
    with warnings.catch_warnings(), threadpool_limits(THREADS):
        warnings.simplefilter("ignore", ConvergenceWarning)
        return system.make(case).fit(X)


def describe(estimator, X: np.ndarray) -> dict:
    """What a fit did: the mean log-likelihood of X, the iterations and whether it converged (None
    for a closed form), and, for fastelbo, the ELBO's entropy decomposition."""
    n_iter = getattr(estimator, "n_iter_", None)
    converged = getattr(estimator, "converged_", None)
    if converged is None and n_iter is not None:
        converged = n_iter < estimator.max_iter  # scikit-learn's FactorAnalysis
    result = {
        "log_likelihood": float(estimator.score(X)),
        "n_iter": None if n_iter is None else int(n_iter),
        "converged": None if converged is None else bool(converged),
    }
    if hasattr(estimator, "entropy_decomposition"):
        d = estimator.entropy_decomposition()
        result["decomposition"] = {
            "elbo": d.elbo,
            "entropy_sum": d.entropy_sum,
            "gap": d.gap,
            "relative_gap": d.gap / abs(d.elbo),
        }
    return result
