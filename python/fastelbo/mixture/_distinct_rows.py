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
``O(N log N)`` sort of the hashes; memory ``O(N)``: rows are hashed a column at a time, compared
only where their hashes are equal, and named by their positions in X rather than copied (the
k-means kernels read them in place).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastelbo._row_chunks import row_chunks

# Odd 64-bit constants of the row hash: a multiply-xorshift mix per feature (as in splitmix64).
_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)
_MIX = np.uint64(0xBF58476D1CE4E5B9)
_SHIFT = np.uint64(31)


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


def _row_bits(X):
    """A view of X's bits as unsigned integers of its width (no copy when X is C-contiguous)."""
    X = np.ascontiguousarray(X)
    if X.dtype == np.float64:
        return X.view(np.uint64)
    if X.dtype == np.float32:
        return X.view(np.uint32)
    raise TypeError(f"X must be float32 or float64, got {X.dtype}")


def _row_hashes(bits):
    """A 64-bit hash of every row's bits (uint64 arithmetic wraps modulo 2**64), a column at a time
    so that only O(N) is allocated."""
    hashes = np.zeros(bits.shape[0], dtype=np.uint64)
    for column in bits.T:
        hashes ^= column  # a uint32 column is zero-extended
        hashes *= _MULTIPLIER
        hashes ^= hashes >> _SHIFT
    hashes *= _MIX
    return hashes ^ (hashes >> _SHIFT)


def _hash_ties(bits, hashes, order):
    """The positions i of ``order`` whose row shares its hash with the next, and whether those two
    rows are equal bit for bit (compared in chunks, so that no sorted copy of X is made)."""
    sorted_hashes = hashes[order]
    candidates = np.flatnonzero(sorted_hashes[1:] == sorted_hashes[:-1])
    equal = np.empty(len(candidates), dtype=bool)
    for start, stop in row_chunks(len(candidates), bits.shape[1]):
        chunk = candidates[start:stop]
        equal[start:stop] = np.all(bits[order[chunk + 1]] == bits[order[chunk]], axis=1)
    return candidates, equal


def distinct_rows(X, sample_weight=None) -> DistinctRows:
    """The distinct rows of positive weight of X with their summed weights, in canonical order, as
    positions in X (no copy of the rows: O(N) memory; rows are compared only where their hashes are
    equal, in chunks)."""
    n_samples = X.shape[0]
    weights = np.ones(n_samples) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    bits = _row_bits(X)
    hashes = _row_hashes(bits)
    present = np.flatnonzero(weights > 0)
    order = present[np.argsort(hashes[present], kind="stable")]  # positions in X, canonical order
    candidates, equal = _hash_ties(bits, hashes, order)
    if not np.all(equal):
        # Different rows share a hash: order by hash, then lexicographically by the bits.
        present_bits = bits[present]
        order = present[np.lexsort((*present_bits.T[::-1], hashes[present]))]
        del present_bits
        candidates, equal = _hash_ties(bits, hashes, order)
    same_row = np.zeros(max(len(order) - 1, 0), dtype=bool)
    same_row[candidates] = equal
    first = np.concatenate(([True], ~same_row)) if len(order) else np.zeros(0, dtype=bool)
    position = np.cumsum(first) - 1
    summed = np.bincount(position, weights=weights[order], minlength=int(first.sum()))
    return DistinctRows(order[first], summed)
