"""The truncated E-step's block pass: a frozen, picklable snapshot of the parameters and the
neighbour lists, and a pure function of (snapshot, rows, per-row inputs, sets K_n) that returns the
block's statistics, its per-row outputs and its new sets. It reads nothing else, so it runs the
same in this process, in a streaming loop over a memmap or HDF5 file, or on a Dask worker
(:func:`fastelbo._block_reduction.reduce_blocks`).

Per-row state: every block's sets K_n, ``(n_block, C')`` int32, best first. Global: the neighbour
lists G_c, ``(K, G)`` int32, part of the snapshot. A pass over several blocks cannot refresh the
lists inside each block (a list depends on all rows whose best component is c), but the refresh's
inputs add over blocks: every group b's ``(b, c, sum, count)`` of log-joints
(:class:`NeighbourScores`). The statistics of a block carry them, merge them per (b, c), and
:meth:`NeighbourScores.refresh` applies the kernel's rule after the reduction. A pass over a
single block keeps the kernel's in-pass refresh (bitwise the same lists, without the scores).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastelbo import _core
from fastelbo._mixture_pass import block_inputs
from fastelbo.mixture._gaussian_pass import GaussianPassParameters
from fastelbo.mixture._statistics import MixtureStatistics


@dataclass(frozen=True)
class TruncatedPassParameters:
    """What a truncated pass needs, in the working dtype (``reference`` in float64).

    ``start_cells`` (a :class:`~fastelbo.mixture._coarse_cells.CoarseCells`) gives rows without sets
    their first ones (the C' nearest means in their cell); ``neighbour_scores``: return the refresh's
    inputs instead of refreshed lists (a pass over several blocks).
    """

    log_weights: np.ndarray
    means: np.ndarray
    precisions_cholesky: np.ndarray
    covariance_type: str
    reference: np.ndarray | None  # moments are taken about it; None: no moments
    neighbours: np.ndarray
    n_active: int
    n_threads: int
    neighbour_scores: bool = False
    start_cells: object = None

    @classmethod
    def of(cls, parameters, neighbours, n_active, dtype, moments, n_threads, **options):
        """The snapshot of ``(weights, means, precisions_cholesky, covariance_type)`` for a pass
        computing in ``dtype``."""
        # The parameters as the exact pass takes them, plus the neighbour lists and C'.
        exact = GaussianPassParameters.of(*parameters, dtype, moments, n_threads)
        return cls(
            exact.log_weights,
            exact.means,
            exact.precisions_cholesky,
            exact.covariance_type,
            exact.reference,
            np.ascontiguousarray(neighbours, dtype=np.int32),
            int(n_active),
            exact.n_threads,
            **options,
        )


class TruncatedRowInputs:
    """The per-row inputs of a truncated pass besides X: sample weights (or None) and the random
    candidates r_n (or None: no random candidates), sliced per block together (``reduce_blocks``
    slices what it is given as sample weights; for Dask the slices travel with the tasks)."""

    def __init__(self, sample_weight, random_candidates):
        self.sample_weight = sample_weight
        self.random_candidates = random_candidates

    def __getitem__(self, rows):
        weights = None if self.sample_weight is None else self.sample_weight[rows]
        candidates = None if self.random_candidates is None else self.random_candidates[rows]
        return weights, candidates


@dataclass
class NeighbourScores:
    """The neighbour-list refresh's inputs: for every group b (rows whose best component is b) and
    every other candidate c those rows evaluated, the sum and count of the log-joints; sorted by
    (b, c), one entry per pair."""

    group: np.ndarray  # int32
    component: np.ndarray  # int32
    sum: np.ndarray  # float64
    count: np.ndarray  # float64

    @classmethod
    def from_kernel(cls, out):
        return cls(out["score_groups"], out["score_components"], out["score_sums"], out["score_counts"])

    def merge(self, other: NeighbourScores) -> NeighbourScores:
        """The scores of two disjoint row sets: sums and counts added per (b, c), self's first."""
        if not len(self.group) or not len(other.group):  # rows that evaluated no other candidate
            return other if not len(self.group) else self
        K = np.int64(max(self._largest(), other._largest()) + 1)
        keys = np.concatenate([self._keys(K), other._keys(K)])
        # Two sorted runs: a stable sort merges them in linear time and keeps self's entry of a
        # shared key before other's, so that a shared key's sum is self's + other's.
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        unique = keys[starts]

        def add(a, b):
            return np.add.reduceat(np.concatenate([a, b])[order], starts)

        return NeighbourScores(
            (unique // K).astype(np.int32),
            (unique % K).astype(np.int32),
            add(self.sum, other.sum),
            add(self.count, other.count),
        )

    def _keys(self, K):
        return self.group.astype(np.int64) * K + self.component

    def _largest(self):
        return int(max(self.group.max(initial=0), self.component.max(initial=0)))

    def refresh(self, neighbours, occupied):
        """New (K, G) lists by the kernel's rule (``truncated_mixture_pass.hpp``): for every occupied
        group b, b first, then the G − 1 candidates with the largest average log-joint (ties: the
        smaller index), topped up with b's old neighbours not yet listed; unoccupied groups keep
        their lists."""
        old = np.asarray(neighbours, dtype=np.int32)
        G = old.shape[1]
        new = old.copy()
        average = self.sum / self.count
        order = np.lexsort((self.component, -average, self.group))  # per group: best first
        group, component = self.group[order], self.component[order]
        first = np.searchsorted(group, group, side="left")
        rank = np.arange(len(group)) - first
        kept = rank < G - 1
        group, component = group[kept], component[kept]
        n_kept = np.bincount(group, minlength=old.shape[0])
        occupied = np.asarray(occupied, dtype=bool)
        full = occupied & (n_kept == G - 1)
        rows = np.flatnonzero(full)
        new[rows, 0] = rows
        if G > 1:
            new[rows, 1:] = component[full[group]].reshape(-1, G - 1)
        starts = np.searchsorted(group, np.arange(old.shape[0]))
        for b in np.flatnonzero(occupied & ~full):  # fewer candidates than G − 1: rare
            listed = [b, *component[starts[b] : starts[b] + n_kept[b]]]
            listed += [c for c in old[b] if c not in listed][: G - len(listed)]
            new[b] = listed
        return new


@dataclass
class TruncatedStatistics:
    """Statistics of a truncated pass over some rows: the mixture's, the neighbour-list refresh's
    inputs (``scores``) or, for a single block, its refreshed lists (``neighbours``), the groups
    that had rows (``occupied``, (K,) bool) and how many rows changed their best component."""

    mixture: MixtureStatistics
    scores: NeighbourScores | None
    neighbours: np.ndarray | None
    occupied: np.ndarray
    n_changed_best: int

    @classmethod
    def of_pass(cls, mixture, scores, neighbours, active, new_active, n_components):
        """The statistics of a pass that moved its rows' sets from ``active`` to ``new_active``
        ((rows, C') each, best component first), with ``occupied`` and ``n_changed_best`` derived."""
        return cls(
            mixture,
            scores,
            neighbours,
            np.bincount(active[:, 0], minlength=n_components) > 0,
            int(np.count_nonzero(active[:, 0] != new_active[:, 0])),
        )

    def merge(self, other: TruncatedStatistics) -> TruncatedStatistics:
        """Statistics of the union of two disjoint row sets."""
        if self.scores is None or other.scores is None:
            raise ValueError("a pass over several blocks needs neighbour scores, not refreshed lists")
        return TruncatedStatistics(
            self.mixture.merge(other.mixture),
            self.scores.merge(other.scores),
            None,
            self.occupied | other.occupied,
            self.n_changed_best + other.n_changed_best,
        )

    def refreshed_neighbours(self, neighbours):
        """The new neighbour lists: the pass's own, or refreshed from the merged scores."""
        if self.neighbours is not None:
            return self.neighbours
        return self.scores.refresh(neighbours, self.occupied)


def starting_sets(parameters, rows, state):
    """The block's sets K_n before the pass: ``state`` itself ((n, C') int32), or from the rows'
    most probable components (1-D labels of an exact pass: the component and its first neighbours,
    or the next components where G < C'), or, for None, the nearest means in their coarse cells."""
    C = parameters.n_active
    if state is None:
        return parameters.start_cells.nearest_means(rows, C)
    state = np.asarray(state)
    if state.ndim == 2:
        return state
    first = state.astype(np.int64)
    neighbours = parameters.neighbours
    if neighbours.shape[1] >= C:
        return np.ascontiguousarray(neighbours[first][:, :C])
    K = neighbours.shape[0]
    return ((first[:, None] + np.arange(C)[None, :]) % K).astype(np.int32)


def truncated_block_pass(parameters, rows, inputs, state):
    """One truncated E-step over a block of rows.

    ``inputs`` is the block's ``(weights, random_candidates)`` (:class:`TruncatedRowInputs`),
    ``state`` its sets K_n (or what :func:`starting_sets` starts them from). Returns
    ``(TruncatedStatistics, {}, new_sets)`` (the rows' labels are their sets' first components).
    """
    weights, random_candidates = inputs
    rows, weights = block_inputs(rows, weights, parameters.means.dtype)
    active = np.ascontiguousarray(starting_sets(parameters, rows, state), dtype=np.int32)
    out = _core.truncated_mixture_pass(
        rows,
        weights,
        parameters.log_weights,
        parameters.means,
        parameters.precisions_cholesky,
        parameters.reference,
        parameters.covariance_type,
        active,
        parameters.neighbours,
        None if random_candidates is None else np.ascontiguousarray(random_candidates, dtype=np.int32),
        return_neighbour_scores=parameters.neighbour_scores,
        n_threads=parameters.n_threads,
    )
    new_active = out["active"]
    statistics = TruncatedStatistics.of_pass(
        MixtureStatistics.from_kernel(out, rows.shape[0], parameters.reference),
        NeighbourScores.from_kernel(out) if parameters.neighbour_scores else None,
        None if parameters.neighbour_scores else out["neighbours"],
        active,
        new_active,
        parameters.means.shape[0],
    )
    return statistics, {}, new_active
