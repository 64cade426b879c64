"""The compared systems behind one interface: FastGMM, the NumPy EM of ``numpy_em.py`` and
scikit-learn's GaussianMixture.

``run_iterations`` runs exactly ``n_iter`` EM iterations from a given start (``tol=0``) and returns the
log-likelihood bound of the last E-step; ``fit_default`` is a full ``fit()`` with default settings.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

import numpy_em
from cases import Case, Start
from fastelbo import FastGMM

SYSTEMS = ("fastelbo", "numpy", "sklearn")
FIT_SYSTEMS = ("fastelbo", "sklearn")  # the NumPy EM has no initialisation of its own


def _estimator(system: str, case: Case, **params):
    cls = FastGMM if system == "fastelbo" else GaussianMixture
    return cls(n_components=case.n_components, covariance_type=case.covariance_type, **params)


def run_iterations(system: str, case: Case, X: np.ndarray, start: Start, n_iter: int, **params) -> float:
    """``n_iter`` EM iterations from ``start``; returns the last iteration's mean log-likelihood.

    ``params`` go to the estimator (``n_jobs`` for FastGMM)."""
    if system == "numpy":
        _, lower_bounds = numpy_em.fit(
            X, start.weights, start.means, start.covariances, case.covariance_type, n_iter
        )
        return lower_bounds[-1]
    # init_params="random_from_data" is the cheapest start to override with the given parameters.
    model = _estimator(
        system,
        case,
        max_iter=n_iter,
        tol=0.0,
        init_params="random_from_data",
        weights_init=start.weights,
        means_init=start.means,
        precisions_init=start.precisions,
        random_state=0,
        **params,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X)
    return float(model.lower_bound_)


def fit_default(system: str, case: Case, X: np.ndarray, max_iter: int = 100) -> dict:
    """``fit()`` with default settings (k-means initialisation, tol=1e-3); returns what it did."""
    model = _estimator(system, case, max_iter=max_iter, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X)
    return {
        "n_iter": int(model.n_iter_),
        "converged": bool(model.converged_),
        "lower_bound": float(model.lower_bound_),
    }
