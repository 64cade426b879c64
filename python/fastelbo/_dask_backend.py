"""The Dask backend: a statistics pass over a ``dask.array`` chunked by rows.

Every row chunk is one block. Each pass maps the family's block pass over the chunks on the
workers (the pass and its parameter snapshot are one node of the graph, sent once per pass to each
worker), merges the chunks' statistics with the tree of
:func:`fastelbo._block_reduction.merge_tree` (on the workers, so only the merged statistics reach
the client), and keeps the per-row state of every chunk (home labels) on the worker that
computed it, as a persisted result the next pass reads in place. The M-step runs on the client.

Nothing here starts a cluster: the pass runs on whatever scheduler is active (a
``dask.distributed.Client``, else Dask's local threads), as dask-ml's estimators do. The merge tree
depends only on the chunking, so results are bitwise identical for any number of workers and
threads, and equal the in-process pass over a :class:`~fastelbo._row_source.RowSource` with the
same blocks bit for bit.

Dask is an optional dependency (``pip install "dask[array]" distributed``, or the ``dask`` extra
of a source install); this module imports it only when a dask array is given.
"""

from __future__ import annotations

import numpy as np

from fastelbo._block_reduction import merge_tree
from fastelbo._row_source import (
    RowSource,
    as_working_rows,
    check_finite_block,
    sample_spans,
    stack_rows,
    working_dtype,
)


def is_dask_array(X) -> bool:
    """Whether ``X`` is a ``dask.array.Array`` (without importing Dask)."""
    module = type(X).__module__.split(".")[0]
    return module == "dask" and hasattr(X, "__dask_graph__") and hasattr(X, "chunks")


def _checked_rows(rows, dtype, start, stop, name):
    """A chunk as the block pass reads it: C-contiguous, in the working dtype, finite (on a worker)."""
    return check_finite_block(as_working_rows(rows, dtype, name, start, stop), name, start, stop)


class ChunkReader:
    """Reads a row chunk as a block pass reads it (on a worker): ``reader(chunk, start, stop)``
    for rows ``start:stop``. This one gives C-contiguous rows in the working ``dtype``, checked
    finite; a family with other needs (sparse chunks, values checked against the model) gives
    :class:`DaskRowSource` its own reader."""

    def __init__(self, dtype, name="X"):
        self.dtype = np.dtype(dtype)
        self.name = name

    def __call__(self, chunk, start, stop):
        return _checked_rows(chunk, self.dtype, start, stop, self.name)

    def __dask_tokenize__(self):
        return (type(self).__name__, self.dtype.str, self.name)


def _identity(value):
    return value


class BlockResult:
    """What the block pass left on the worker for one chunk: its statistics, its per-row outputs
    and its new per-row state. The next pass reads the state from it in place, and the merge tree
    reads the statistics from it, so one task per chunk computes all three (no task per chunk to
    take each apart)."""

    __slots__ = ("statistics", "outputs", "state")

    def __init__(self, statistics, outputs, state):
        self.statistics, self.outputs, self.state = statistics, outputs, state


def block_state(state):
    """A chunk's per-row state: the one a previous pass left in its :class:`BlockResult`, or a
    state given as such (None, an array)."""
    return state.state if isinstance(state, BlockResult) else state


def _run_block(block_pass, chunk, reader, span, weights, state):
    rows = reader(chunk, *span)
    return BlockResult(*block_pass(rows, weights, block_state(state)))


def _statistics(item):
    return item.statistics if isinstance(item, BlockResult) else item


def _merge(a, b):
    return _statistics(a).merge(_statistics(b))


def _output(result, name):
    return result.outputs[name]


class DaskRowSource(RowSource):
    """The rows of a 2-D dask array, one block per row chunk (a :class:`RowSource` whose blocks
    are read on the workers: :meth:`reduce_blocks` replaces the in-process loop).

    Parameters
    ----------
    data : dask.array.Array
        Two-dimensional real data with known chunk sizes; chunks that split the columns are
        joined (``rechunk({1: -1})``), since a block pass needs whole rows.
    name : str, default='X'
    reader : callable, default=None
        ``reader(chunk, start, stop)``: a chunk of rows ``start:stop`` as the block pass reads it,
        run on the workers (picklable). None: a :class:`ChunkReader` of the working dtype (of the
        source's ``dtype`` when it is read, so a copy widened to float64 reads float64).
    """

    def __init__(self, data, name="X", reader=None):  # noqa: D107 (the class docstring documents it)
        check_dask_input(data, name)
        if len(data.chunks[1]) > 1:
            data = data.rechunk({1: -1})
        self.data = data
        self.name = name
        self.streamed = True
        self.n_samples, self.n_features = (int(n) for n in data.shape)
        self.dtype = working_dtype(data.dtype, name)
        self._reader = reader
        self.block_rows = max(data.chunks[0])
        bounds = np.concatenate([[0], np.cumsum(data.chunks[0])]).astype(int)
        self._spans = [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

    @property
    def reader(self):
        """What reads a chunk on a worker (the ``reader`` given, else a :class:`ChunkReader`)."""
        return ChunkReader(self.dtype, self.name) if self._reader is None else self._reader

    def blocks(self):
        raise RuntimeError("a dask array's blocks are read on the workers (reduce_blocks)")

    def spans(self):
        return list(self._spans)

    def _chunks(self):
        """The row chunks as delayed objects (whole rows: the columns are one chunk)."""
        return self.data.to_delayed().ravel()

    def _weight_blocks(self, sample_weight):
        if sample_weight is None:
            return [None] * len(self._spans)
        return [sample_weight[start:stop] for start, stop in self._spans]

    def reduce_blocks(self, block_pass, sample_weight=None, states=None, outputs=None):
        """As :func:`fastelbo._block_reduction.reduce_blocks`, on the active Dask scheduler.

        The per-row ``outputs`` named are returned as dask arrays (their chunks kept where they
        were computed); the new states are the persisted :class:`BlockResult` of every chunk
        (:func:`block_state` reads one). A pass is one task per chunk (read, check and pass),
        the merges, and one task per chunk and output named.
        """
        import dask
        import dask.array as da

        # Keys of their own for every pass (pure=False): EM at a fixed point builds the same graph
        # pass after pass, and deterministic keys asked the scheduler for results the previous pass
        # had just released ("Couldn't gather keys ... forgotten", and rescheduled tasks).
        run = dask.delayed(_run_block, pure=False)
        # The pass (with its parameter snapshot) is one node of the graph, sent once to every
        # worker that runs a chunk, not with every task.
        shared_pass = dask.delayed(_identity, pure=False)(block_pass)
        states = [None] * len(self._spans) if states is None else states
        results = [
            run(shared_pass, chunk, self.reader, span, weights, state)
            for chunk, span, weights, state in zip(
                self._chunks(), self._spans, self._weight_blocks(sample_weight), states, strict=True
            )
        ]
        results = dask.persist(*results)  # one execution; outputs and states stay on the workers
        # The tree's leaves are the results themselves (the merges take their statistics).
        merged = merge_tree(results, dask.delayed(_merge, pure=False))
        if len(results) == 1:  # no merge: take the statistics on the worker, not the whole result
            merged = dask.delayed(_statistics, pure=False)(merged)
        merged = merged.compute()
        joined = {}
        for name, (trailing, dtype) in (outputs or {}).items():
            joined[name] = da.concatenate(
                [
                    da.from_delayed(
                        dask.delayed(_output, pure=False)(result, name),
                        shape=(stop - start, *trailing),
                        dtype=dtype,
                    )
                    for result, (start, stop) in zip(results, self._spans, strict=True)
                ]
            )
        return merged, joined, list(results)

    def sample(self, n_rows, random_state):
        """As :meth:`fastelbo._row_source.RowSource.sample`: every row when there are at most
        ``n_rows``, else whole runs of rows chosen by ``random_state``, gathered to the client."""
        if self.n_samples <= n_rows:
            return self.read(0, self.n_samples), np.arange(self.n_samples)
        import dask

        # Runs of at most block_rows (the longest chunk), as a RowSource of those blocks samples,
        # so that both start from the same rows; the sample is one computation whatever the number
        # of runs. Each run is read and checked with its own rows, so that an error names them.
        spans, index = sample_spans(self.n_samples, n_rows, self.block_rows, random_state)
        runs = dask.compute(*[self.data[start:stop] for start, stop in spans])
        return stack_rows([self.reader(run, *span) for run, span in zip(runs, spans, strict=True)]), index

    def read(self, start, stop):
        """Rows ``start:stop`` gathered to the client (checked)."""
        return self.reader(self.data[start:stop].compute(), start, stop)

    def max_abs(self) -> float:
        import dask.array as da

        return float(da.max(da.abs(self.data)).compute())


def check_dask_input(X, name="X"):
    """Refuse a dask array that is not 2-D, real, with known chunk sizes."""
    if X.ndim != 2:
        raise ValueError(f"Expected a 2D dask array for {name}, got shape {X.shape}.")
    if X.shape[1] == 0:
        raise ValueError(f"Found array with 0 feature(s) (shape={X.shape}) while a minimum of 1 is required.")
    if any(np.isnan(size) for chunks in X.chunks for size in chunks):
        raise ValueError(
            f"{name} is a dask array with unknown chunk sizes; call {name}.compute_chunk_sizes() first"
        )
    working_dtype(X.dtype, name)


def _rows_result(chunk, function, reader, block_info=None):
    """``function`` of one row chunk, read and checked as a block pass reads it (on a worker)."""
    start, stop = block_info[0]["array-location"][0]
    return function(reader(chunk, start, stop))


def map_rows(source, function, trailing, dtype):
    """``function`` over every row chunk of a :class:`DaskRowSource`: a lazy dask array of shape
    ``(n_samples, *trailing)`` and type ``dtype``, chunked as the rows.

    ``function`` maps a chunk's rows, as the source's reader gives them (by default C-contiguous,
    in the source's working dtype, checked finite), to their per-row results (NumPy arrays, also
    for sparse chunks). It is a pure function of a parameter snapshot (a block pass with its
    snapshot bound, not an estimator), and one node of the graph, sent once to every worker that
    computes a chunk, as the pass of :meth:`DaskRowSource.reduce_blocks` is.
    """
    import dask

    shared = dask.delayed(_identity, pure=True)(function)
    data = source.data
    arguments = (_rows_result, shared, source.reader)
    meta = np.empty((0,) * (1 + len(trailing)), dtype=dtype)
    if trailing:
        return data.map_blocks(
            *arguments, chunks=(data.chunks[0], *((n,) for n in trailing)), dtype=dtype, meta=meta
        )
    return data.map_blocks(*arguments, drop_axis=1, dtype=dtype, meta=meta)
