"""The data-only statistics of the linear-Gaussian factor models: the weighted mean of X and a
factor ``L`` of its covariance (``L^T L = covariance``), never a D x D matrix when N < D.

Tall data (at least as many weighted rows as features) are reduced to a D x D triangular factor by
a blocked QR of their centred rows; wide data (fewer weighted rows than features) keep their own
centred, weighted rows as the factor: N x D, so memory stays O(N D) and every product the models
need costs O(N D H).
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
    exact : bool
        Whether ``L`` comes from the rows themselves (QR or the rows), exact in every direction
        to the rows' precision; False for the fast factor from the accumulated covariance, whose
        directions the data nearly lack are blurred by ~1e-16 of its norm (harmless unless a
        noise variance is within ~1e-6 of 0 relative to its feature's variance).
    """

    n_samples: int
    n_weighted: float
    sum_weight: float
    mean: np.ndarray
    factor: np.ndarray
    exact: bool = True

    @property
    def variances(self):
        """The diagonal of the covariance, ``sum_i L_id^2`` (a sum of non-negative terms)."""
        return np.einsum("id,id->d", self.factor, self.factor)


def centring_point(X, sample_weight=None):
    """The point the scatter pass accumulates deviations about: the first row with a positive
    weight. It lies within the data, so float32 data far from the origin keeps its precision."""
    first = 0 if sample_weight is None else int(np.flatnonzero(sample_weight > 0)[0])
    return X[first].astype(np.float64)


def _centred_rows(X, sample_weight, rows):
    """``(x_n - centre, w_n / max w)`` of the rows in the slice ``rows``, float64 (weights None
    for unit weights)."""
    block = X[rows].astype(np.float64)
    if sample_weight is None:
        return block, None
    return block, sample_weight[rows].astype(np.float64) / float(np.max(sample_weight))


def _block_rows(n_samples, n_features):
    """Row slices of at most ``max(8 D, 4096)`` rows: the blocks of the two passes."""
    size = max(8 * n_features, 4096)
    return [slice(start, min(start + size, n_samples)) for start in range(0, n_samples, size)]


def _weighted_mean(X, sample_weight, centre):
    """``(sum of relative weights, mean)``, deviations about ``centre`` summed in float64."""
    total, deviation_sum = 0.0, np.zeros(X.shape[1])
    for rows in _block_rows(*X.shape):
        block, weights = _centred_rows(X, sample_weight, rows)
        block -= centre
        if weights is None:
            total += block.shape[0]
            deviation_sum += block.sum(axis=0)
        else:
            total += float(np.sum(weights))
            deviation_sum += weights @ block
    return total, centre + deviation_sum / total


def _row_factor(X, sample_weight, mean, total):
    """``R`` (min(N, D) x D) with ``R^T R`` the weighted covariance, from a blocked QR of the rows
    ``sqrt(w_n / W) (x_n - mean)``. Orthogonal reductions of the rows themselves keep every
    direction to the rows' own precision, also those the data nearly lack (a duplicated or
    collinear column), which a covariance accumulated in float64 blurs by 1e-16 of its norm."""
    factor = np.zeros((0, X.shape[1]))
    for rows in _block_rows(*X.shape):
        block, weights = _centred_rows(X, sample_weight, rows)
        block -= mean
        block *= np.sqrt((np.ones(block.shape[0]) if weights is None else weights) / total)[:, None]
        factor = linalg.qr(np.vstack([factor, block]), mode="r", overwrite_a=True, check_finite=False)[0]
        factor = factor[: min(factor.shape)]
    return factor


def _covariance_factor(covariance):
    """``L`` with ``L^T L = covariance`` from its eigendecomposition: rows ``sqrt(lambda_k) u_k^T``
    for the positive eigenvalues (round-off's negative ones dropped)."""
    values, vectors = linalg.eigh(covariance)
    positive = values > 0
    return (np.sqrt(values[positive])[:, None] * vectors[:, positive].T)[::-1].copy()


def fast_data_scatter(X, sample_weight=None, n_jobs=None):
    """As :func:`data_scatter`, but for tall data from one blocked C++ pass (``_core.scatter_pass``,
    the mean and the D x D covariance, several times faster than the QR) and the covariance's
    eigendecomposition: ``exact`` is False. Wide data get :func:`data_scatter`'s exact rows."""
    n_samples, n_features = X.shape
    n_positive = n_samples if sample_weight is None else int(np.count_nonzero(sample_weight > 0))
    if n_positive < n_features:
        return data_scatter(X, sample_weight)
    out = _core.scatter_pass(
        X, sample_weight, centring_point(X, sample_weight), n_threads=resolve_n_threads(n_jobs)
    )
    sum_weight = float(out["sum_weight"])
    factor = _covariance_factor(out["scatter"] / sum_weight)
    if sample_weight is None:
        n_weighted = float(n_samples)
    else:
        n_weighted = sum_weight / float(np.min(sample_weight[sample_weight > 0]))
    return DataScatter(n_samples, n_weighted, sum_weight, out["mean"], factor, exact=False)


def data_scatter(X, sample_weight=None, n_jobs=None):
    """The mean and a covariance factor of validated X (float32 or float64, C-contiguous).

    Two blocked passes over the rows: the weighted mean (deviations about the first weighted row,
    so float32 data far from the origin keep their precision), then the triangular factor of the
    centred, weighted rows. Wide data (fewer weighted rows than features) keep those rows as the
    factor: N x D, never D x D.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    sample_weight : ndarray of shape (n_samples,) of X's dtype, or None
        Non-negative weights, not all zero; None: every row weighs 1. Only their ratios matter:
        the arithmetic runs on the weights divided by the largest.
    n_jobs : int or None
        Accepted for compatibility (the passes run in this thread; results never depend on it).

    Returns
    -------
    DataScatter
    """
    del n_jobs
    n_samples, n_features = X.shape
    if sample_weight is not None:
        keep = sample_weight > 0
        if not np.all(keep):
            X, sample_weight = np.ascontiguousarray(X[keep]), sample_weight[keep]
    centre = centring_point(X)
    total, mean = _weighted_mean(X, sample_weight, centre)
    if X.shape[0] < n_features:
        factor, weights = _centred_rows(X, sample_weight, slice(None))
        factor -= mean
        factor *= np.sqrt((np.ones(factor.shape[0]) if weights is None else weights) / total)[:, None]
    else:
        factor = _row_factor(X, sample_weight, mean, total)
    if sample_weight is None:
        sum_weight = float(n_samples)
        n_weighted = float(n_samples)
    else:
        sum_weight = float(np.sum(sample_weight, dtype=np.float64))
        n_weighted = total * float(np.max(sample_weight)) / float(np.min(sample_weight))
    return DataScatter(n_samples, n_weighted, sum_weight, mean, factor)
