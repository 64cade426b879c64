"""The distinct rows of a weighted data set, in a canonical order.

A seeded initialisation that walks the rows of X in the order given draws other rows when the rows
are shuffled, and draws differently from a row of integer weight ``w`` than from ``w`` copies of it.
Drawing from the *distinct* rows of positive weight instead, each with its summed weight and in an
order fixed by the rows' values alone, makes the draws a function of the weighted set of rows only:
shuffling X, giving a row weight ``w`` or repeating it ``w`` times, adding rows of weight 0 or
splitting a weight over duplicates all present the same distinct rows with the same weights
(integer weights sum exactly, so these equalities are exact, not to round-off).

The canonical order is lexicographic on the rows' values (the first feature first, the next
breaking its ties, and so on), so it is unchanged by any increasing map of a feature: the start and
fit of ``a * X + b`` (per-feature a > 0) are those of X mapped, whatever the units or offsets of
the features (barring values that the map's rounding makes equal). Rows are distinct when their
values differ (``0.0`` and ``-0.0`` are one row). Cost: an ``O(N log N)`` sort of the first
feature, then sorts of the runs of rows it leaves tied; memory ``O(N)``: a feature at a time, and
rows are named by their positions in X rather than copied (the k-means kernels read them in place).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DistinctRows:
    """``source_rows``: for each distinct row of positive weight, in canonical order, the position
    in X of its first occurrence there, int64 (M,), so ``X[source_rows]`` are the distinct rows;
    ``weights``: their summed weights (counts without sample weights), float64, all > 0."""

    source_rows: np.ndarray
    weights: np.ndarray

    def __len__(self):
        return len(self.source_rows)


class RowSelection:
    """X's rows at ``positions``, in that order, gathered a slice at a time (``selection[a:b]`` is
    ``X[positions[a:b]]``) rather than copied whole: what the initial statistics read the distinct
    rows through."""

    def __init__(self, X, positions):
        self._X, self._positions = X, positions
        self.shape = (len(positions), X.shape[1])

    def __getitem__(self, rows: slice):
        return self._X[self._positions[rows]]


def _lexicographic_order(X, present):
    """The positions ``present`` sorted lexicographically by their rows' values, and for each
    consecutive pair of the order whether the two rows are equal (a feature at a time: O(N))."""
    order = present[np.argsort(X[present, 0], kind="stable")]
    column = X[order, 0]
    tied = column[1:] == column[:-1]  # pair i: rows order[i] and order[i + 1]
    for feature in range(1, X.shape[1]):
        if not tied.any():
            break
        # The runs of rows equal on the features so far, each re-sorted by this feature.
        follows = np.concatenate(([False], tied))  # whether a row ties with the one before it
        members = np.flatnonzero(follows | np.concatenate((tied, [False])))
        runs = np.cumsum(~follows[members])
        order[members] = order[members][np.lexsort((X[order[members], feature], runs))]
        column = X[order, feature]
        tied &= column[1:] == column[:-1]
    return order, tied


def distinct_rows(X, sample_weight=None) -> DistinctRows:
    """The distinct rows of positive weight of X with their summed weights, in canonical order, as
    positions in X (no copy of the rows: O(N) memory)."""
    n_samples = X.shape[0]
    if X.dtype not in (np.float32, np.float64):
        raise TypeError(f"X must be float32 or float64, got {X.dtype}")
    weights = np.ones(n_samples) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    present = np.flatnonzero(weights > 0)
    if len(present) == 0:
        return DistinctRows(present, np.zeros(0))
    order, same_row = _lexicographic_order(X, present)
    first = np.concatenate(([True], ~same_row))
    position = np.cumsum(first) - 1
    summed = np.bincount(position, weights=weights[order], minlength=int(first.sum()))
    return DistinctRows(order[first], summed)
