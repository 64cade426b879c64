"""The block passes of the factor models' data statistics, and the statistics they return.

Each pass is a pure function ``(settings, rows, weights, state) -> (statistics, {}, state)`` of a
frozen, picklable settings snapshot and one block of rows (with its slice of ``sample_weight``),
so :func:`fastelbo._block_reduction.reduce_blocks` runs it the same over an in-memory array (one
block), a streamed file, or a dask array's chunks on Dask workers. Every statistics type has an
exact ``merge``: merging the statistics of the blocks of X gives the statistics of X itself, to
round-off.

Three passes (:mod:`._scatter` chains them):

- :func:`scatter_block_pass`: the weighted mean and scatter of a block from the C++ kernel, about a
  centring point common to all blocks (a data row, so float32 data far from the origin keep their
  precision); blocks merge with Chan's pairwise formula (:class:`ScatterMoments`).
- :func:`mean_block_pass`: sums of the weighted deviations from the centring point
  (:class:`MeanSums`), the first pass of the exact factor.
- :func:`triangular_factor_block_pass` (tall data): the ``R`` of a QR of a block's centred,
  weighted rows; blocks merge by the QR of their stacked ``R``'s (TSQR, :class:`TriangularFactor`).
  :func:`centred_rows_block_pass` (wide data: fewer weighted rows than features) keeps those rows
  themselves; blocks merge by stacking them (:class:`CentredRows`), at most N x D with N < D.

Zero-weight rows are dropped inside each block: they contribute nothing, and the exact factor's
rows must be those of the weighted data only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import linalg

from fastelbo import _core


def smallest_positive_weight(weights):
    """The smallest positive weight of a block (1 for unit weights, inf when none is positive)."""
    if weights is None:
        return 1.0
    positive = weights[weights > 0]
    return float(np.min(positive)) if positive.size else float("inf")


def positive_rows(rows, weights):
    """The rows with a positive weight and their weights (the block itself when all are)."""
    if weights is None:
        return rows, None
    keep = weights > 0
    if np.all(keep):
        return rows, weights
    return np.ascontiguousarray(rows[keep]), weights[keep]


def sub_blocks(n_rows, n_features):
    """Row slices of at most ``max(8 D, 4096)`` rows: the units of the exact passes' arithmetic
    (a QR of ``8 D`` stacked rows reduces them eightfold at a time)."""
    size = max(8 * n_features, 4096)
    return [slice(start, min(start + size, n_rows)) for start in range(0, n_rows, size)]


# -- the fast scatter ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ScatterMoments:
    """Weighted mean and scatter of some rows.

    Attributes
    ----------
    sum_weight : float
        ``W = sum_n w_n``.
    mean : ndarray of shape (D,)
        ``(1/W) sum_n w_n x_n`` (the centring point when ``W == 0``).
    scatter : ndarray of shape (D, D)
        ``sum_n w_n (x_n - mean)(x_n - mean)^T``, exactly symmetric.
    min_positive_weight : float
        The smallest positive weight (1 for unit weights; inf when none is positive).
    """

    sum_weight: float
    mean: np.ndarray
    scatter: np.ndarray
    min_positive_weight: float

    def merge(self, other):
        """The moments of both sets of rows (Chan, Golub & LeVeque's pairwise update):
        ``S = S_a + S_b + (W_a W_b / W) d d^T`` with ``d = mean_b - mean_a``, a sum of positive
        semi-definite terms (no cancellation), exactly symmetric."""
        smallest = min(self.min_positive_weight, other.min_positive_weight)
        if other.sum_weight == 0:
            return replace(self, min_positive_weight=smallest)
        if self.sum_weight == 0:
            return replace(other, min_positive_weight=smallest)
        total = self.sum_weight + other.sum_weight
        share = other.sum_weight / total
        delta = other.mean - self.mean
        return ScatterMoments(
            total,
            self.mean + share * delta,
            self.scatter + other.scatter + (self.sum_weight * share) * np.outer(delta, delta),
            smallest,
        )


@dataclass(frozen=True)
class ScatterPass:
    """Settings of :func:`scatter_block_pass`: the centring point shared by every block (float64)
    and the kernel's thread count (results do not depend on it)."""

    centre: np.ndarray
    n_threads: int


def scatter_block_pass(settings, rows, weights, state):
    """:class:`ScatterMoments` of one block from ``_core.scatter_pass`` (float64 sums of the
    deviations from ``settings.centre``); no per-row outputs, ``state`` passed through."""
    if weights is not None:
        weights = np.ascontiguousarray(weights, dtype=rows.dtype)
    out = _core.scatter_pass(rows, weights, settings.centre, n_threads=settings.n_threads)
    moments = ScatterMoments(
        float(out["sum_weight"]), out["mean"], out["scatter"], smallest_positive_weight(weights)
    )
    return moments, {}, state


# -- the exact factor: the mean ------------------------------------------------------------------


@dataclass(frozen=True)
class MeanSums:
    """Sums of the rows with a positive weight, about the centring point.

    Attributes
    ----------
    total : float
        ``sum_n w_n / max_weight`` (the number of rows for unit weights): relative weights keep
        the sums' scale independent of the weights' units.
    deviation_sum : ndarray of shape (D,)
        ``sum_n (w_n / max_weight) (x_n - centre)``.
    sum_weight : float
        ``sum_n w_n``.
    min_positive_weight : float
        As :attr:`ScatterMoments.min_positive_weight`.
    """

    total: float
    deviation_sum: np.ndarray
    sum_weight: float
    min_positive_weight: float

    def merge(self, other):
        """The sums of both sets of rows."""
        return MeanSums(
            self.total + other.total,
            self.deviation_sum + other.deviation_sum,
            self.sum_weight + other.sum_weight,
            min(self.min_positive_weight, other.min_positive_weight),
        )

    def mean(self, centre):
        """The weighted mean of the rows, ``centre + deviation_sum / total``."""
        return centre + self.deviation_sum / self.total


@dataclass(frozen=True)
class MeanPass:
    """Settings of :func:`mean_block_pass`: the centring point (float64) and the largest weight
    of all rows (None for unit weights)."""

    centre: np.ndarray
    max_weight: float | None


def _relative_weights(weights, max_weight, part):
    """``w_n / max_weight`` of the rows in the slice ``part``, float64 (None for unit weights)."""
    return None if weights is None else weights[part].astype(np.float64) / max_weight


def mean_block_pass(settings, rows, weights, state):
    """:class:`MeanSums` of one block (zero-weight rows dropped); ``state`` passed through."""
    rows, weights = positive_rows(rows, weights)
    total, deviation_sum = 0.0, np.zeros(rows.shape[1])
    for part in sub_blocks(*rows.shape):
        block = rows[part].astype(np.float64)
        relative = _relative_weights(weights, settings.max_weight, part)
        block -= settings.centre
        if relative is None:
            total += block.shape[0]
            deviation_sum += block.sum(axis=0)
        else:
            total += float(np.sum(relative))
            deviation_sum += relative @ block
    sum_weight = float(rows.shape[0]) if weights is None else float(np.sum(weights, dtype=np.float64))
    return MeanSums(total, deviation_sum, sum_weight, smallest_positive_weight(weights)), {}, state


# -- the exact factor: the rows ------------------------------------------------------------------


@dataclass(frozen=True)
class FactorPass:
    """Settings of the factor passes: the weighted mean (float64), the total relative weight
    ``sum_n w_n / max_weight`` of all rows, and the largest weight (None for unit weights)."""

    mean: np.ndarray
    total: float
    max_weight: float | None

    def scaled_deviations(self, rows, weights, part):
        """``sqrt(w_n / max_weight / total) (x_n - mean)`` of the rows in the slice ``part``
        (float64): the rows whose Gram matrix is the weighted covariance."""
        block = rows[part].astype(np.float64)
        relative = _relative_weights(weights, self.max_weight, part)
        block -= self.mean
        block *= np.sqrt((np.ones(block.shape[0]) if relative is None else relative) / self.total)[:, None]
        return block


def _triangular(stacked):
    """The ``R`` of the QR of ``stacked`` rows, its ``min(shape)`` leading rows."""
    factor = linalg.qr(stacked, mode="r", overwrite_a=True, check_finite=False)[0]
    return factor[: min(factor.shape)]


@dataclass(frozen=True)
class TriangularFactor:
    """``R`` (at most D x D, upper triangular) with ``R^T R`` the weighted covariance's share of
    some rows: the triangle of a QR of their centred, weighted rows. Orthogonal reductions of the
    rows themselves keep every direction to the rows' own precision, also those the data nearly
    lack (a duplicated or collinear column), which a covariance accumulated in float64 blurs by
    1e-16 of its norm."""

    factor: np.ndarray

    def merge(self, other):
        """The triangle of both sets of rows: the QR of the two triangles stacked (TSQR)."""
        if other.factor.shape[0] == 0:
            return self
        if self.factor.shape[0] == 0:
            return other
        return TriangularFactor(_triangular(np.vstack([self.factor, other.factor])))


def triangular_factor_block_pass(settings, rows, weights, state):
    """:class:`TriangularFactor` of one block (zero-weight rows dropped): QRs of sub-blocks of
    rows stacked under the triangle so far; ``state`` passed through."""
    rows, weights = positive_rows(rows, weights)
    factor = np.zeros((0, rows.shape[1]))
    for part in sub_blocks(*rows.shape):
        factor = _triangular(np.vstack([factor, settings.scaled_deviations(rows, weights, part)]))
    return TriangularFactor(factor), {}, state


@dataclass(frozen=True)
class CentredRows:
    """The centred, weighted rows themselves (``sqrt(w_n / W) (x_n - mean)``): the factor of
    wide data, whose rows are fewer than the features (N x D, never D x D)."""

    factor: np.ndarray

    def merge(self, other):
        """Both sets of rows, in order."""
        return CentredRows(np.vstack([self.factor, other.factor]))


def centred_rows_block_pass(settings, rows, weights, state):
    """:class:`CentredRows` of one block (zero-weight rows dropped); ``state`` passed through."""
    rows, weights = positive_rows(rows, weights)
    return CentredRows(settings.scaled_deviations(rows, weights, slice(None))), {}, state
