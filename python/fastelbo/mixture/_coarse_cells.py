"""A coarse clustering of component means for starting truncated EM at large K.

The K means are split into cells around ``ceil(sqrt(K))`` pivot means (every ``K/M``-th mean, no
random draws): every mean joins its nearest pivot's cell. Searches that would look at all K means
look only at a *pool*: the cells of the nearest pivots of the cell in question (its own and at
least one more, more while the pool holds fewer than the means asked for). With cells of about
sqrt(K) means, the nearest means of every mean cost ``O(K·sqrt(K)·D)`` and the nearest means of every
data row ``O(N·sqrt(K)·D)`` instead of ``O(K²·D)`` and ``O(N·K·D)``. The answers are approximate (a
near mean in a third cell is missed); truncated EM only starts from them, and its E-steps refresh
both the neighbour lists and every row's set from log-joints.
"""

from __future__ import annotations

import numpy as np

#: Most distances a block of rows holds at once (4 Mi: 16 MiB in float32, 32 MiB of int64 indices
#: when they are ranked).
_BLOCK_ELEMENTS = 1 << 22
#: Pivot cells in every pool at least (when there are that many).
_MIN_POOL_CELLS = 2


def _squared_distances(rows, rows_sq, columns, columns_sq):
    """(len(rows), len(columns)) squared Euclidean distances by the expansion, clipped at 0."""
    d2 = rows @ columns.T
    d2 *= -2.0
    d2 += rows_sq[:, None]
    d2 += columns_sq[None, :]
    np.maximum(d2, 0, out=d2)
    return d2


def _nearest(rows, columns, columns_sq):
    """Index of every row's nearest column (ties: smaller index), in blocks of rows."""
    block = max(1, _BLOCK_ELEMENTS // max(1, len(columns)))
    out = np.empty(len(rows), dtype=np.int64)
    for start in range(0, len(rows), block):
        part = rows[start : start + block]
        # ||x||² is the same for every column: argmin of ||c||² − 2 x·c
        scores = part @ columns.T
        scores *= -2.0
        scores += columns_sq[None, :]
        out[start : start + block] = np.argmin(scores, axis=1)
    return out


def smallest_per_row(d2, candidates, count):
    """Per row of d2 (columns: ``candidates``), the ``count`` candidates of smallest distance,
    nearest first (ties: smaller component index)."""
    if count < d2.shape[1]:
        part = np.argpartition(d2, count - 1, axis=1)[:, :count]
    else:
        part = np.broadcast_to(np.arange(d2.shape[1]), d2.shape)
    chosen = np.take_along_axis(d2, part, axis=1)
    ids = candidates[part]
    order = np.lexsort((ids, chosen), axis=1)
    return np.take_along_axis(ids, order, axis=1)


class CoarseCells:
    """The means (K, D), centred and in ``dtype``, split into cells around pivot means.

    Building it costs ``O(K·sqrt(K)·D)``: every mean against the pivots, and the pivots against
    each other.
    """

    def __init__(self, means, dtype=np.float64):
        means = np.asarray(means, dtype=np.float64)
        self.origin = means.mean(axis=0)
        self.means = np.ascontiguousarray(means - self.origin, dtype=dtype)
        self.means_sq = np.einsum("kd,kd->k", self.means, self.means)
        K = len(means)
        M = max(1, int(np.ceil(np.sqrt(K))))
        self.pivots = self.means[(np.arange(M) * K) // M]
        self.pivots_sq = self.means_sq[(np.arange(M) * K) // M]
        self.cell = _nearest(self.means, self.pivots, self.pivots_sq)
        self.order = np.argsort(self.cell, kind="stable")  # means by cell, ascending index within
        self.begin = np.searchsorted(self.cell[self.order], np.arange(M + 1))
        # Every pivot's pivots, nearest first (itself first, ties by index).
        pivot_d2 = _squared_distances(self.pivots, self.pivots_sq, self.pivots, self.pivots_sq)
        np.fill_diagonal(pivot_d2, -np.inf)
        self.pivot_order = np.lexsort((np.broadcast_to(np.arange(M), (M, M)), pivot_d2), axis=1)

    def members(self, cell):
        return self.order[self.begin[cell] : self.begin[cell + 1]]

    def pool(self, cell, need, min_cells=_MIN_POOL_CELLS):
        """Sorted component indices of the nearest pivots' cells of ``cell``: at least
        ``min_cells`` cells and at least ``need`` means (all K when fewer)."""
        sizes = (self.begin[1:] - self.begin[:-1])[self.pivot_order[cell]]
        total = np.cumsum(sizes)
        cells = max(min(min_cells, len(sizes)), int(np.searchsorted(total, min(need, total[-1]))) + 1)
        return np.sort(np.concatenate([self.members(c) for c in self.pivot_order[cell, :cells]]))

    def neighbour_lists(self, n_neighbors):
        """(K, G) int32: every mean's G nearest means within its pool, itself first, then nearest
        first (ties by index)."""
        K = len(self.means)
        out = np.empty((K, n_neighbors), dtype=np.int32)
        for cell in range(len(self.pivots)):
            rows = self.members(cell)
            if len(rows) == 0:
                continue
            pool = self.pool(cell, n_neighbors)
            block = max(1, _BLOCK_ELEMENTS // len(pool))
            for start in range(0, len(rows), block):
                part = rows[start : start + block]
                d2 = _squared_distances(
                    self.means[part], self.means_sq[part], self.means[pool], self.means_sq[pool]
                )
                d2[np.arange(len(part)), np.searchsorted(pool, part)] = -np.inf  # itself first
                out[part] = smallest_per_row(d2, pool, n_neighbors)
        return out

    def nearest_means(self, X, count):
        """(N, count) int32: every row's ``count`` nearest means within its nearest pivot's cell
        (more cells while it holds fewer than ``count``), nearest first (ties by index);
        ``O(N·sqrt(K)·D)``."""
        dtype = self.means.dtype
        N = X.shape[0]
        block = max(1, _BLOCK_ELEMENTS // len(self.pivots))
        row_cell = np.empty(N, dtype=np.int64)
        for start in range(0, N, block):
            part = np.asarray(X[start : start + block], dtype=dtype) - self.origin.astype(dtype)
            row_cell[start : start + block] = _nearest(part, self.pivots, self.pivots_sq)
        order = np.argsort(row_cell, kind="stable")
        begin = np.searchsorted(row_cell[order], np.arange(len(self.pivots) + 1))
        out = np.empty((N, count), dtype=np.int32)
        for cell in range(len(self.pivots)):
            rows = order[begin[cell] : begin[cell + 1]]
            if len(rows) == 0:
                continue
            pool = self.pool(cell, count, min_cells=1)
            block = max(1, _BLOCK_ELEMENTS // len(pool))
            for start in range(0, len(rows), block):
                part = rows[start : start + block]
                x = np.asarray(X[part], dtype=dtype) - self.origin.astype(dtype)
                # ||x||² is the same for every mean of a row: ranked by ||m||² − 2 x·m
                scores = x @ self.means[pool].T
                scores *= -2.0
                scores += self.means_sq[pool][None, :]
                out[part] = smallest_per_row(scores, pool, count)
        return out
