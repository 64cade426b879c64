"""The data-only statistics of the linear-Gaussian factor models: the weighted mean of X and a
factor ``L`` of its covariance (``L^T L = covariance``), never a D x D matrix when N < D.

X is read only through :func:`fastelbo._block_reduction.reduce_blocks`: an in-memory array is one
block, a streamed source (memmap, HDF5, Zarr, a :class:`~fastelbo._row_source.RowSource`) is read
block by block and never copied whole into memory, and a dask array's chunks are reduced on the
Dask workers. The block passes and their mergeable statistics are in :mod:`._scatter_blocks`.

Tall data (at least as many weighted rows as features) are reduced to a D x D triangular factor by
a QR of their centred rows, block by block (TSQR); wide data (fewer weighted rows than features)
keep their own centred, weighted rows as the factor: N x D, so memory stays O(N D) and every
product the models need costs O(N D H).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy.linalg import lapack

from fastelbo._block_reduction import reduce_blocks
from fastelbo._row_source import RowSource
from fastelbo._threads import resolve_n_threads
from fastelbo.factor._scatter_blocks import (
    FactorPass,
    MeanPass,
    ScatterPass,
    centred_rows_block_pass,
    mean_block_pass,
    scatter_block_pass,
    triangular_factor_block_pass,
)


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
    diagonal : ndarray of shape (n_features,) or None
        The covariance's diagonal as accumulated, for the fast factor (None: ``sum_i L_id^2``).
        The factorisation blurs the fast factor's columns by ~1e-16 of its norm, which would
        give a constant feature a variance of round-off instead of 0 (and a noise floor that
        depends on it); the accumulated diagonal is 0 for it, exactly, in any blocks.
    covariance : ndarray of shape (n_features, n_features) or None
        The accumulated covariance the fast factor was decomposed from (None for an exact
        factor): the Gram matrix ``L^T L`` up to the factor's round-off, for the subset
        eigensolvers that read one (:func:`~fastelbo.factor._linear_gaussian.factor_gram`), so
        that no D x D product or decomposition of the factor recomputes it.
    """

    n_samples: int
    n_weighted: float
    sum_weight: float
    mean: np.ndarray
    factor: np.ndarray
    exact: bool = True
    diagonal: np.ndarray | None = None
    covariance: np.ndarray | None = None

    @property
    def variances(self):
        """The diagonal of the covariance: :attr:`diagonal`, else ``sum_i L_id^2`` (a sum of
        non-negative terms)."""
        if self.diagonal is not None:
            return self.diagonal
        return np.einsum("id,id->d", self.factor, self.factor)


#: Smallest variance of a varying feature that the scatter passes hold to full precision (2.3e-305):
#: squared deviations down to a thousandth of it are still normal numbers. Subnormal ones the
#: kernels flush to 0 (data of variance 3e-307 lost 7 digits of their log-likelihood, 1e-310 all).
SMALLEST_VARIANCE = float(np.finfo(np.float64).tiny) * 2.0**10


def check_variances_finite(variances):
    """ValueError naming X and the features whose variance overflowed float64."""
    overflowed = ~np.isfinite(variances)
    if overflowed.any():
        raise ValueError(
            "X is too large for float64: the variance of feature(s) "
            f"{np.flatnonzero(overflowed)[:10].tolist()} overflows (or the sum of squared deviations "
            "it is taken from, over the rows); rescale X"
        )


def check_variances_in_range(variances, mean, centre):
    """ValueError naming X where float64 cannot hold its features' variances: a variance that
    overflowed (:func:`check_variances_finite`), or one of a varying feature that fell below
    :data:`SMALLEST_VARIANCE` (a positive one, or 0 where the feature's mean differs from the
    centring row's value, as it cannot for a constant feature: every deviation is exactly 0)."""
    check_variances_finite(variances)
    varying = (variances > 0) | (mean != centre)
    underflowed = varying & (variances < SMALLEST_VARIANCE)
    if underflowed.any():
        raise ValueError(
            f"X is too small for float64: feature(s) {np.flatnonzero(underflowed)[:10].tolist()} vary, but "
            f"their variance ({float(variances[underflowed].min()):.3g}) is below {SMALLEST_VARIANCE:g}, "
            "where the squares of their deviations leave float64's range; rescale X"
        )


def as_row_source(X):
    """``X`` as a :class:`~fastelbo._row_source.RowSource` (an in-memory array: one block)."""
    return X if isinstance(X, RowSource) else RowSource(X)


def count_positive_weights(n_samples, sample_weight):
    """Rows with a positive weight (every row for unit weights)."""
    return n_samples if sample_weight is None else int(np.count_nonzero(sample_weight > 0))


def centring_point(X, sample_weight=None):
    """The point the passes accumulate deviations about: the first row with a positive weight
    (float64), read once from an array or a :class:`~fastelbo._row_source.RowSource`. It lies
    within the data, so float32 data far from the origin keeps its precision."""
    first = 0 if sample_weight is None else int(np.flatnonzero(sample_weight > 0)[0])
    if isinstance(X, RowSource):
        return X.read(first, first + 1)[0].astype(np.float64)
    return X[first].astype(np.float64)


def _covariance_factor(covariance):
    """``L`` with ``L^T L = covariance``: the rows of its Cholesky factor with complete pivoting
    (LAPACK's ``pstrf``), stopped where the largest diagonal left falls below its round-off (``D
    eps`` of the largest), so that a covariance singular to round-off (constant or duplicated
    features) gets fewer rows than features. A sixth of the cost of the eigendecomposition
    (``D^3 / 3`` flops), with the same backward error.

    The covariance is first scaled to a unit diagonal by powers of two (exact): the factor's
    round-off is ~1e-16 of the norm of the matrix it decomposes, so without the scaling a feature
    with a small variance beside one with a large variance (a variable in other units) would get
    a column of round-off."""
    scale = power_of_two_scales(np.diag(covariance))
    scaled = covariance / scale[:, None] / scale[None, :]
    triangle, pivots, rank, info = lapack.dpstrf(scaled, lower=0)
    if info < 0:
        raise ValueError(f"the covariance could not be factored (LAPACK dpstrf info {info})")
    factor = np.zeros((rank, scaled.shape[0]))
    factor[:, pivots - 1] = np.triu(triangle[:rank])
    return factor * scale[None, :]


def power_of_two_scales(variances):
    """Per feature, the power of two nearest its standard deviation (1 for no variance)."""
    positive = variances > 0
    exponents = np.round(0.5 * np.log2(np.where(positive, variances, 1.0)))
    return np.ldexp(1.0, np.where(positive, exponents, 0.0).astype(int))


def fast_data_scatter(X, sample_weight=None, n_jobs=None):
    """As :func:`data_scatter`, but for tall data from one pass of the C++ kernel
    (``_core.scatter_pass`` on every block, the mean and the D x D covariance, several times
    faster than the QR; blocks merged by Chan's formula) and the covariance's pivoted Cholesky factor:
    ``exact`` is False. Wide data get :func:`data_scatter`'s exact rows."""
    source = as_row_source(X)
    n_samples, n_features = source.shape
    if count_positive_weights(n_samples, sample_weight) < n_features:
        return data_scatter(source, sample_weight)
    settings = ScatterPass(centring_point(source, sample_weight), resolve_n_threads(n_jobs))
    moments, _, _ = reduce_blocks(source, functools.partial(scatter_block_pass, settings), sample_weight)
    sum_weight = moments.sum_weight
    covariance = moments.scatter / sum_weight
    diagonal = np.maximum(np.diag(covariance), 0.0)  # the kernel's subtraction may round below 0
    overflowed = ~np.all(np.isfinite(covariance), axis=0)
    check_variances_in_range(np.where(overflowed, np.inf, diagonal), moments.mean, settings.centre)
    n_weighted = float(n_samples) if sample_weight is None else sum_weight / moments.min_positive_weight
    return DataScatter(
        n_samples,
        n_weighted,
        sum_weight,
        moments.mean,
        _covariance_factor(covariance),
        False,
        diagonal,
        covariance,
    )


def data_scatter(X, sample_weight=None, n_jobs=None):
    """The mean and a covariance factor of X, exact to the rows' precision.

    Two passes over the rows: the weighted mean (deviations about the first weighted row, so
    float32 data far from the origin keep their precision), then the triangular factor of the
    centred, weighted rows (a QR of every block, the blocks' triangles merged by a QR of them
    stacked). Wide data (fewer weighted rows than features) keep those rows as the factor: N x D,
    never D x D.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features) or RowSource
        Validated X (float32 or float64, C-contiguous), or a row source of it (read in blocks; a
        dask array's source is reduced on the Dask workers).
    sample_weight : ndarray of shape (n_samples,) of X's dtype, or None
        Non-negative weights, not all zero; None: every row weighs 1. Only their ratios matter:
        the arithmetic runs on the weights divided by the largest.
    n_jobs : int or None
        Accepted for compatibility (the passes run in one thread per block; results never depend
        on it).

    Returns
    -------
    DataScatter
    """
    del n_jobs
    source = as_row_source(X)
    n_samples, n_features = source.shape
    centre = centring_point(source, sample_weight)
    max_weight = None if sample_weight is None else float(np.max(sample_weight))
    mean_pass = functools.partial(mean_block_pass, MeanPass(centre, max_weight))
    sums, _, _ = reduce_blocks(source, mean_pass, sample_weight)
    mean = sums.mean(centre)
    wide = count_positive_weights(n_samples, sample_weight) < n_features
    factor_pass = centred_rows_block_pass if wide else triangular_factor_block_pass
    factor, _, _ = reduce_blocks(
        source, functools.partial(factor_pass, FactorPass(mean, sums.total, max_weight)), sample_weight
    )
    if sample_weight is None:
        n_weighted = float(n_samples)
    else:
        n_weighted = sums.total * max_weight / sums.min_positive_weight
    scatter = DataScatter(n_samples, n_weighted, sums.sum_weight, mean, factor.factor)
    check_variances_in_range(scatter.variances, mean, centre)
    return scatter
