"""The distinct rows of a weighted data set, in a canonical order.

A seeded initialisation that walks the rows of X in the order given draws other rows when the rows
are shuffled, and draws differently from a row of integer weight ``w`` than from ``w`` copies of it.
Drawing from the *distinct* rows of positive weight instead, each with its summed weight and in an
order fixed by the rows' values alone, makes the draws a function of the weighted set of rows only:
shuffling X, giving a row weight ``w`` or repeating it ``w`` times, adding rows of weight 0 or
splitting a weight over duplicates all present the same distinct rows with the same weights
(integer weights sum exactly, so these equalities are exact, not to round-off).

The canonical order sorts the rows by a 64-bit hash of their bits (ties between different rows,
which a 64-bit hash makes rare, are broken lexicographically on the bits). Rows are compared by
their bits, so ``0.0`` and ``-0.0`` differ. Cost: ``O(N D)`` to hash and compare, an
``O(N log N)`` sort of the hashes, and a copy of the distinct rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Odd 64-bit constants of the row hash: a multiply-xorshift mix per feature (as in splitmix64).
_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)
_MIX = np.uint64(0xBF58476D1CE4E5B9)
_SHIFT = np.uint64(31)


@dataclass(frozen=True)
class DistinctRows:
    """``rows``: the distinct rows of positive weight, shape (M, D), X's dtype, canonical order;
    ``weights``: their summed weights (counts without sample weights), float64, all > 0;
    ``index``: for every row of X its position in ``rows``, -1 for rows of weight 0."""

    rows: np.ndarray
    weights: np.ndarray
    index: np.ndarray


def _row_bits(X):
    X = np.ascontiguousarray(X)
    if X.dtype == np.float64:
        return X.view(np.uint64)
    if X.dtype == np.float32:
        return X.view(np.uint32).astype(np.uint64)
    raise TypeError(f"X must be float32 or float64, got {X.dtype}")


def _row_hashes(bits):
    """A 64-bit hash of every row's bits (uint64 arithmetic wraps modulo 2**64)."""
    hashes = np.zeros(bits.shape[0], dtype=np.uint64)
    for column in bits.T:
        hashes = (hashes ^ column) * _MULTIPLIER
        hashes ^= hashes >> _SHIFT
    hashes *= _MIX
    return hashes ^ (hashes >> _SHIFT)


def distinct_rows(X, sample_weight=None) -> DistinctRows:
    """The distinct rows of positive weight of X with their summed weights, in canonical order."""
    n_samples = X.shape[0]
    weights = np.ones(n_samples) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    present = np.flatnonzero(weights > 0)
    bits = _row_bits(X)[present]
    hashes = _row_hashes(bits)
    order = np.argsort(hashes, kind="stable")
    sorted_bits = bits[order]
    same_row = np.all(sorted_bits[1:] == sorted_bits[:-1], axis=1)
    if np.any((hashes[order][1:] == hashes[order][:-1]) & ~same_row):
        # Different rows share a hash: order by hash, then lexicographically by the bits.
        order = np.lexsort((*bits.T[::-1], hashes))
        sorted_bits = bits[order]
        same_row = np.all(sorted_bits[1:] == sorted_bits[:-1], axis=1)
    first = np.concatenate(([True], ~same_row)) if len(order) else np.zeros(0, dtype=bool)
    position = np.cumsum(first) - 1
    index = np.full(n_samples, -1, dtype=np.int64)
    index[present[order]] = position
    summed = np.bincount(position, weights=weights[present][order], minlength=int(first.sum()))
    rows = np.ascontiguousarray(X[present[order][first]])
    return DistinctRows(rows, summed, index)
