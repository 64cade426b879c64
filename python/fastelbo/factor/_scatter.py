"""The data-only statistics of the linear-Gaussian factor models: the weighted mean of X and a
factor ``L`` of its covariance (``L^T L = covariance``), never a D x D matrix when N < D.

Tall data (at least as many weighted rows as features) go through one blocked C++ pass
(``_core.scatter_pass``) for the mean and the D x D covariance, whose eigendecomposition gives a
D x D factor. Wide data (fewer weighted rows than features) keep their own centred, weighted rows
as the factor: N x D, so memory stays O(N D) and every product the models need costs O(N D H).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import linalg

from fastelbo import _core
from fastelbo._threads import resolve_n_threads


@dataclass(frozen=True)
class DataScatter:
    """Weighted mean and a factor of the weighted covariance of a data set.

    Attributes
    ----------
    n_samples : int
        Rows of X (zero-weight rows included).
    n_weighted : float
        ``W / min_{w_n > 0} w_n``, the total weight counted in units of the smallest positive
        weight: a sample count that does not change when every weight is multiplied by the same
        constant, ``n_samples`` for equal weights of any size and the number of rows of the
        repeated data for integer weights.
    sum_weight : float
        ``W = sum_n w_n``.
    mean : ndarray of shape (n_features,)
        ``(1/W) sum_n w_n x_n`` (float64).
    factor : ndarray of shape (n_rows, n_features)
        ``L`` with ``L^T L = (1/W) sum_n w_n (x_n - mean)(x_n - mean)^T`` (float64, the
        maximum-likelihood covariance); ``n_rows <= min(n_weighted, n_features)`` up to one.
    """

    n_samples: int
    n_weighted: float
    sum_weight: float
    mean: np.ndarray
    factor: np.ndarray

    @property
    def variances(self):
        """The diagonal of the covariance, ``sum_i L_id^2`` (a sum of non-negative terms)."""
        return np.einsum("id,id->d", self.factor, self.factor)


def centring_point(X, sample_weight=None):
    """The point the scatter pass accumulates deviations about: the first row with a positive
    weight. It lies within the data, so float32 data far from the origin keeps its precision."""
    first = 0 if sample_weight is None else int(np.flatnonzero(sample_weight > 0)[0])
    return X[first].astype(np.float64)


def _weighted_count(sample_weight, n_samples, sum_weight):
    if sample_weight is None:
        return float(n_samples)
    return sum_weight / float(np.min(sample_weight[sample_weight > 0]))


def _wide_scatter(X, sample_weight):
    """Mean and the centred rows ``sqrt(w_n / W) (x_n - mean)`` of the positively weighted rows."""
    if sample_weight is None:
        rows = X.astype(np.float64)
        weights = np.ones(X.shape[0])
    else:
        keep = sample_weight > 0
        rows = X[keep].astype(np.float64)
        weights = sample_weight[keep].astype(np.float64)
    # Weights relative to their largest: the same arithmetic whatever their common scale.
    relative = weights / weights.max()
    total = float(np.sum(relative))
    centre = rows[0].copy()  # deviations about a row keep float32 data far from 0 exact
    deviations = rows - centre
    mean_deviation = (relative @ deviations) / total
    deviations -= mean_deviation
    deviations *= np.sqrt(relative / total)[:, None]
    sum_weight = float(np.sum(weights))
    return sum_weight, centre + mean_deviation, deviations


def _covariance_factor(covariance):
    """``L`` with ``L^T L = covariance`` from its eigendecomposition: rows ``sqrt(lambda_k) u_k^T``
    for the positive eigenvalues (round-off's negative ones dropped)."""
    values, vectors = linalg.eigh(covariance)
    positive = values > 0
    return (np.sqrt(values[positive])[:, None] * vectors[:, positive].T)[::-1].copy()


def data_scatter(X, sample_weight=None, n_jobs=None):
    """The mean and a covariance factor of validated X (float32 or float64, C-contiguous).

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
    n_samples, n_features = X.shape
    n_positive = n_samples if sample_weight is None else int(np.count_nonzero(sample_weight > 0))
    if n_positive < n_features:
        sum_weight, mean, factor = _wide_scatter(X, sample_weight)
        n_weighted = _weighted_count(sample_weight, n_samples, sum_weight)
        return DataScatter(n_samples, n_weighted, sum_weight, mean, factor)
    out = _core.scatter_pass(
        X, sample_weight, centring_point(X, sample_weight), n_threads=resolve_n_threads(n_jobs)
    )
    sum_weight = float(out["sum_weight"])
    factor = _covariance_factor(out["scatter"] / sum_weight)
    n_weighted = _weighted_count(sample_weight, n_samples, sum_weight)
    return DataScatter(n_samples, n_weighted, sum_weight, out["mean"], factor)
