"""Truncated variational EM for :class:`~fastelbo.FastGMM` with many components (``n_active``).

Every row n keeps a set ``K_n`` of C' components (``n_active``) and its posterior ``q_n`` is the exact
posterior restricted to ``K_n`` and renormalised (Forster & Lücke, AISTATS 2018). Each
E-step searches ``∪_{c∈K_n} G_c`` plus one random component, where ``G_c`` lists the ``n_neighbors``
components most similar to c (c first), keeps the C' best log-joints, and refreshes the ``G_c`` from
the log-joints it computed (see ``csrc/include/fastelbo/truncated_mixture_pass.hpp``). The cost per
iteration is ``O(N·C'·G·D)``, independent of K; the per-row state is C' int32 (no N×K array).

The ELBO of the fit is the truncated free energy ``<log Σ_{c∈K_n} π_c N(x_n; μ_c, Σ_c)>``, which
never exceeds the mean log-likelihood; since the M-step is exact for the truncated q, the
post-M-step identity and the interleaving of the histories hold as for exact EM.

A run starts from the initial parameters. The lists ``G_c`` start as the nearest component means:
exactly (``O(K²·D)``) where ``K²·D <= _EXACT_NEIGHBOURS_BUDGET``, otherwise within a coarse
clustering of the means (``fastelbo.mixture._coarse_cells``: cells around ``sqrt(K)`` pivot means,
``O(K·sqrt(K)·D)``). Where one exact labelling pass is affordable (``N·K·D <= _EXACT_START_BUDGET``,
a single pass of exact EM's cost, not k-means' many) every ``K_n`` starts as the most probable
component and its neighbours; otherwise as the C' nearest means of the row within the coarse
clustering (``O(N·sqrt(K)·D)``: the nearest pivot, then the means of the pivot's pool). Up to
``_WARMUP_STEPS`` E-steps at the initial parameters (``O(N·C'·G·D)`` each) then let every row walk
the neighbour graph to the components near it, until fewer than ``_WARMUP_SETTLED`` of the rows
change their best component, before the first M-step. The start thus never costs ``O(K²·D)`` or
``O(N·K·D)`` beyond those budgets.

X may be read in blocks (any :class:`~fastelbo.RowSource`, or a dask array's row chunks): every pass,
the start's included, is a :func:`~fastelbo._block_reduction.reduce_blocks` pass of
:func:`~fastelbo.mixture._truncated_pass.truncated_block_pass`, the sets K_n are the blocks' state,
and the neighbour lists are refreshed from the blocks' merged scores (see that module). The random
candidates of a pass are drawn for all N rows and sliced per block, so a pass over one block draws
and computes exactly what the in-memory pass does.
"""

from __future__ import annotations

import dataclasses
import functools
import numbers

import numpy as np

from fastelbo._block_reduction import reduce_blocks
from fastelbo._row_source import RowSource
from fastelbo.mixture._coarse_cells import CoarseCells, smallest_per_row
from fastelbo.mixture._truncated_pass import TruncatedPassParameters, TruncatedRowInputs, truncated_block_pass

#: Default n_neighbors (capped at n_components).
DEFAULT_N_NEIGHBORS = 5
#: E-steps at the initial parameters before the first M-step, at most.
_WARMUP_STEPS = 30
#: Largest N·K·D for which the sets start from one exact labelling pass.
_EXACT_START_BUDGET = 2e10
#: Largest K²·D for which the initial neighbour lists are exact (K = 4,096 at D = 64).
_EXACT_NEIGHBOURS_BUDGET = 2**30
#: The warm-up stops once fewer than this fraction of rows change their best component.
_WARMUP_SETTLED = 1e-3
#: Rows of component means per block when the initial neighbour lists are computed ...
_NEIGHBOUR_BLOCK = 1024
#: ... fewer where K is so large that a block's (rows, K) distances would exceed this many floats
#: (16 Mi: 128 MiB); K <= 16,384 keeps blocks of _NEIGHBOUR_BLOCK rows.
_NEIGHBOUR_BLOCK_ELEMENTS = 1 << 24
#: predict_truncated starts every row from the best of this many times sqrt(K) hub components.
_HUBS_PER_SQRT_K = 4
#: A run converges only once this many consecutive E-steps changed no row's most probable component
#: (and the last one changed the free energy by less than ``tol``).
SETTLED_STEPS = 10


def check_truncation(n_active, n_neighbors, n_components):
    """Validated ``(C', G)``, or None for exact EM; ValueError naming the bad argument."""
    if n_active is None:
        if n_neighbors is not None:
            raise ValueError(f"n_neighbors={n_neighbors!r} needs n_active (truncated EM); got n_active=None")
        return None

    def integer(name, value):
        if not isinstance(value, numbers.Integral) or isinstance(value, (bool, np.bool_)) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if value > n_components:
            raise ValueError(f"{name} must be <= n_components = {n_components}, got {value!r}")
        return int(value)

    active = integer("n_active", n_active)
    neighbours = integer(
        "n_neighbors", min(DEFAULT_N_NEIGHBORS, n_components) if n_neighbors is None else n_neighbors
    )
    return active, neighbours


def initial_neighbours(means, n_neighbors):
    """(K, G) int32: for every component its G nearest means (itself first, ties by index).

    ``O(K²·D)`` arithmetic, in blocks of rows whose (rows, K) distance matrices hold at most
    ``_NEIGHBOUR_BLOCK_ELEMENTS`` floats, so the temporary memory does not grow like K².
    """
    means = np.asarray(means, dtype=np.float64)
    K = means.shape[0]
    block = max(1, min(_NEIGHBOUR_BLOCK, _NEIGHBOUR_BLOCK_ELEMENTS // K))
    centred = means - means.mean(axis=0)
    sq_norms = np.einsum("kd,kd->k", centred, centred)
    out = np.empty((K, n_neighbors), dtype=np.int32)
    components = np.arange(K)
    for start in range(0, K, block):
        stop = min(start + block, K)
        d2 = sq_norms[start:stop, None] - 2.0 * centred[start:stop] @ centred.T + sq_norms[None, :]
        d2[np.arange(stop - start), np.arange(start, stop)] = -np.inf  # itself first
        out[start:stop] = smallest_per_row(d2, components, n_neighbors)
    return out


class TruncatedSearch:
    """One EM run's truncated state: the rows' sets K_n, one ``(n_block, C')`` int32 array per block
    of X (best first; on a Dask cluster, results kept on the workers), the neighbour lists
    ``neighbours`` (K, G) int32, and the generator of the random candidates (seeded once per run).

    Every pass goes through :func:`~fastelbo._block_reduction.reduce_blocks` with
    :func:`~fastelbo.mixture._truncated_pass.truncated_block_pass`, so X may be an in-memory array
    or any :class:`~fastelbo.RowSource` (memmap, HDF5, Zarr, blocks of an array, a dask array).
    """

    def __init__(self, n_samples, n_active, n_neighbors, seed):
        self.n_samples = n_samples
        self.n_active = n_active
        self.n_neighbors = n_neighbors
        self._rng = np.random.default_rng(seed)
        self.states = None  # the sets K_n of every block
        self.spans = None  # the blocks' row ranges
        self.neighbours = None
        self.unchanged_steps = 0  # consecutive EM E-steps that changed no row's best component

    @property
    def active(self):
        """Every row's set K_n, (N, C') int32 (the blocks' sets joined; computed where on Dask)."""
        states = self.states
        if not all(isinstance(state, np.ndarray) for state in states):
            import dask

            from fastelbo._dask_backend import block_state  # the chunks' results

            states = [block_state(state) for state in dask.compute(*states)]
        return states[0] if len(states) == 1 else np.concatenate(states)

    @active.setter
    def active(self, active):
        self.states = [np.ascontiguousarray(active, dtype=np.int32)]
        self.spans = [(0, active.shape[0])]

    def start(self, X, sample_weight, parameters, n_threads, exact_labels=None):
        """Neighbour lists from the means, the first K_n, and the warm-up E-steps (module
        docstring). ``exact_labels()`` returns every row's most probable component (one exact pass),
        one array per block of X; it is called only where that is affordable."""
        source = self._source(X)
        means = parameters[1]
        self.neighbours, cells = self._initial_neighbours(means, self._working_dtype(source))
        self.spans = source.spans()
        start_cells = None
        if exact_labels is not None and self._exact_start_affordable(source, means):
            # The first pass starts every row from its label and the label's nearest neighbours.
            self.states = list(exact_labels())
        else:
            start_cells = self._coarse_start(source, sample_weight, parameters, n_threads, cells)
        for _ in range(_WARMUP_STEPS):
            stats = self._pass(source, sample_weight, parameters, n_threads, False, start_cells)
            start_cells = None
            if stats.n_changed_best < _WARMUP_SETTLED * self.n_samples:
                break

    # -- what a family supplies (these: Gaussian components, FastGMM) ----------------------------

    def _source(self, X):
        """X as the :class:`RowSource` the passes read."""
        return _as_source(X)

    def _working_dtype(self, source):
        """The dtype the passes compute in (X's working dtype here; the sample weights are
        rounded to it)."""
        return source.dtype

    def _initial_neighbours(self, means, dtype):
        """The first lists (K, G) from the means, and the coarse cells computed for them (or None)."""
        K, D = means.shape
        if float(K) * K * D <= _EXACT_NEIGHBOURS_BUDGET:
            return initial_neighbours(means, self.n_neighbors), None
        cells = CoarseCells(means, dtype)
        return cells.neighbour_lists(self.n_neighbors), cells

    def _exact_start_affordable(self, source, means):
        """Whether the exact labelling pass that may start the sets is affordable: its multiply-adds
        ``N·K·D`` are at most ``_EXACT_START_BUDGET``."""
        return float(self.n_samples) * means.shape[0] * means.shape[1] <= _EXACT_START_BUDGET

    def _coarse_start(self, source, sample_weight, parameters, n_threads, cells):
        """Where no exact labelling is affordable: sets the first pass starts from (None here: the
        nearest means in the coarse cells returned)."""
        self.states = None
        return cells if cells is not None else CoarseCells(parameters[1], source.dtype)

    def _snapshot(self, parameters, dtype, moments, n_threads, neighbour_scores, start_cells):
        """The block pass's frozen inputs."""
        return TruncatedPassParameters.of(
            parameters,
            self.neighbours,
            self.n_active,
            dtype,
            moments,
            n_threads,
            neighbour_scores=neighbour_scores,
            start_cells=start_cells,
        )

    _block_pass = staticmethod(truncated_block_pass)

    def e_step(self, X, sample_weight, parameters, n_threads, moments=True):
        """One truncated E-step: updates the sets K_n and ``neighbours``; returns the statistics
        (moments about the current means when ``moments``). An E-step with moments (an EM step)
        counts towards :meth:`settled`."""
        stats = self._pass(self._source(X), sample_weight, parameters, n_threads, moments)
        if moments:
            self.unchanged_steps = self.unchanged_steps + 1 if stats.n_changed_best == 0 else 0
        return stats.mixture

    def moments_about(self, X, sample_weight, parameters, n_threads, reference):
        """The statistics of the last E-step's posteriors again, with the moments about
        ``reference`` (K, D) instead of the current means (Gaussian components).

        One pass that searches nothing: every component's list is the component alone and no row
        draws a random candidate, so each row's candidates are its set K_n and q_n is the last
        E-step's (same sets, same ``parameters``). The sets, the neighbour lists and the random
        stream are left as they are."""
        source = self._source(X)
        dtype = self._working_dtype(source)
        K = self.neighbours.shape[0]
        snapshot = dataclasses.replace(
            self._snapshot(parameters, dtype, True, n_threads, len(self.spans) > 1, None),
            reference=np.ascontiguousarray(reference, dtype=np.float64),
            neighbours=np.arange(K, dtype=np.int32)[:, None],
        )
        stats, _ = self._reduce(source, dtype, snapshot, sample_weight, None)
        return stats.mixture

    def settled(self):
        """Whether the search may count as converged: the last ``SETTLED_STEPS`` EM E-steps
        changed no row's most probable component (its whole set K_n for ``n_active=1``), or every
        set holds every component (exact EM). With ``n_active > 1`` the lower members of the sets
        keep changing among components of negligible posterior weight for many steps, which would
        keep a run from ever converging.

        The free energy changes only through the parameters and the sets; a step that changes
        neither changes it by exactly 0, yet the next step's random candidates and refreshed
        neighbour lists may still find better sets (with ``n_active=1`` the parameters reach
        their fixed point one M-step after the last change of a set, so every stall of the
        search is such a step). A step that changed a row's best component never counts, even at
        a gain of 0 (a tie)."""
        if self.n_active == self.neighbours.shape[0]:
            return True
        return self.unchanged_steps >= SETTLED_STEPS

    def _pass(self, source, sample_weight, parameters, n_threads, moments, start_cells=None):
        """One truncated pass over every block of ``source``; returns its :class:`TruncatedStatistics`.

        The random candidates are drawn for all N rows at once, as for one block, and sliced per
        block. A single block refreshes the neighbour lists in the kernel; several return the
        refresh's inputs, merged over the blocks, and the lists are refreshed from the sums."""
        dtype = self._working_dtype(source)
        snapshot = self._snapshot(parameters, dtype, moments, n_threads, len(self.spans) > 1, start_cells)
        K = self.neighbours.shape[0]
        random_candidates = self._rng.integers(0, K, size=self.n_samples, dtype=np.int32)
        stats, self.states = self._reduce(source, dtype, snapshot, sample_weight, random_candidates)
        self.neighbours = stats.refreshed_neighbours(self.neighbours)
        return stats

    def _reduce(self, source, dtype, snapshot, sample_weight, random_candidates):
        """The block pass with ``snapshot`` over every block of ``source`` from the current sets
        (the weights rounded to ``dtype``); returns its merged statistics and the blocks' new sets."""
        if sample_weight is not None:
            sample_weight = np.ascontiguousarray(sample_weight, dtype=dtype)
        stats, _, states = reduce_blocks(
            source,
            functools.partial(self._block_pass, snapshot),
            TruncatedRowInputs(sample_weight, random_candidates),
            self.states,
        )
        return stats, states

    def walk(self, X, parameters, neighbours, n_threads, max_steps=_WARMUP_STEPS):
        """Best components of new rows at fixed parameters; ``neighbours`` is not modified. Every
        row starts from the best C' of ``min(K, max(C', ceil(4 sqrt(K))))`` random hub components and their
        lists (one E-step with all hubs as everyone's set), then walks the lists by E-steps without
        moments until no row changes its best component (at most ``max_steps``). Returns int64
        labels."""
        lists = np.array(neighbours, dtype=np.int32)
        hubs = self._hubs(parameters[1].shape[0])
        n_hubs = hubs.shape[0]
        self.neighbours = lists.copy()
        self.active = np.ascontiguousarray(np.broadcast_to(hubs, (self.n_samples, n_hubs)))
        self.e_step(X, None, parameters, n_threads, moments=False)
        self.active = np.ascontiguousarray(self.active[:, : self.n_active])
        self.neighbours = lists  # the hub pass refreshed a hub's list from every row: undone
        for _ in range(max_steps):
            previous_best = self.active[:, 0].copy()
            self.e_step(X, None, parameters, n_threads, moments=False)
            if np.array_equal(previous_best, self.active[:, 0]):
                break
        return self.labels()

    def _hubs(self, K):
        """:func:`hub_count` distinct random components, ascending (int32)."""
        n_hubs = hub_count(K, self.n_active)
        return np.sort(self._rng.choice(K, size=n_hubs, replace=False)).astype(np.int32)

    def labels(self):
        """Every row's best component in its K_n (int64; a lazy dask array where the sets are
        kept on Dask workers)."""
        if all(isinstance(state, np.ndarray) for state in self.states):
            labels = [state[:, 0].astype(np.int64) for state in self.states]
            return labels[0] if len(labels) == 1 else np.concatenate(labels)
        import dask
        import dask.array as da

        first = dask.delayed(_best_components, pure=True)
        return da.concatenate(
            [
                da.from_delayed(first(state), shape=(stop - start,), dtype=np.int64)
                for state, (start, stop) in zip(self.states, self.spans, strict=True)
            ]
        )


def hub_count(n_components, n_active):
    """How many random hub components a start from hubs draws: ``min(K, max(C', ceil(4 sqrt(K))))``."""
    return min(n_components, max(n_active, int(np.ceil(_HUBS_PER_SQRT_K * np.sqrt(n_components)))))


def leading_columns(states, n_columns):
    """The first ``n_columns`` of every block's sets (best first): C-contiguous arrays, or, for
    sets kept on Dask workers, lazy results computed there by the next pass."""
    if all(isinstance(state, np.ndarray) for state in states):
        return [np.ascontiguousarray(state[:, :n_columns]) for state in states]
    import dask

    first = dask.delayed(_leading_columns, pure=True)
    return [first(state, n_columns) for state in states]


def _leading_columns(state, n_columns):
    from fastelbo._dask_backend import block_state  # a Dask worker's chunk result

    return np.ascontiguousarray(block_state(state)[:, :n_columns])


def _best_components(state):
    from fastelbo._dask_backend import block_state  # a Dask worker's chunk result

    return block_state(state)[:, 0].astype(np.int64)


def _as_source(X):
    """X as a :class:`RowSource` (an in-memory array: one block, read in place)."""
    return X if isinstance(X, RowSource) else RowSource(X)
