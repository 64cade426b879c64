"""The data-only statistics of the linear-Gaussian factor models: the weighted mean and covariance
of X, from one blocked C++ pass (``_core.scatter_pass``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastelbo import _core
from fastelbo._threads import resolve_n_threads


@dataclass(frozen=True)
class DataScatter:
    """Weighted mean and covariance of a data set.

    Attributes
    ----------
    n_samples : int
        Rows of X (zero-weight rows included).
    sum_weight : float
        ``W = sum_n w_n``.
    mean : ndarray of shape (n_features,)
        ``(1/W) sum_n w_n x_n`` (float64).
    covariance : ndarray of shape (n_features, n_features)
        ``(1/W) sum_n w_n (x_n - mean)(x_n - mean)^T`` (float64, the maximum-likelihood estimate).
    """

    n_samples: int
    sum_weight: float
    mean: np.ndarray
    covariance: np.ndarray


def centring_point(X, sample_weight=None):
    """The point the scatter pass accumulates deviations about: the first row with a positive
    weight. It lies within the data, so float32 data far from the origin keeps its precision."""
    first = 0 if sample_weight is None else int(np.flatnonzero(sample_weight > 0)[0])
    return X[first].astype(np.float64)


def data_scatter(X, sample_weight=None, n_jobs=None):
    """One scatter pass over validated X (float32 or float64, C-contiguous).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    sample_weight : ndarray of shape (n_samples,) of X's dtype, or None
        Non-negative weights, not all zero; None: every row weighs 1.
    n_jobs : int or None
        Threads, with scikit-learn semantics (results do not depend on it).

    Returns
    -------
    DataScatter
    """
    out = _core.scatter_pass(
        X, sample_weight, centring_point(X, sample_weight), n_threads=resolve_n_threads(n_jobs)
    )
    sum_weight = float(out["sum_weight"])
    return DataScatter(X.shape[0], sum_weight, out["mean"], out["scatter"] / sum_weight)
