"""Row sources: the rows of a 2-D data set, read in blocks of a fixed size.

An estimator's statistics pass reads X only through a :class:`RowSource`, one block at a time, and
merges the blocks' statistics in block order (:mod:`fastelbo._block_reduction`). Two kinds exist:

- **in memory**: a plain NumPy array, validated as scikit-learn validates it. It is one block: the
  C++ kernels split it into their own fixed blocks and thread over them, as they always have.
- **streamed**: anything sliceable by rows that is not a plain in-memory array: ``numpy.memmap``
  (``np.load(..., mmap_mode='r')``), ``h5py.Dataset``, ``zarr.Array``. Its rows are read in blocks
  of about :data:`BLOCK_BYTES` (a fixed number of rows for a given number of features and dtype,
  never dependent on threads), converted to the working dtype and checked for NaN and infinity as
  they are read; X is never copied whole into memory. Initialisations that need random access to
  rows work on a sample of runs of rows (:meth:`RowSource.sample`). A source may be given a
  ``reader`` that reads each block instead (a model's own check of the values, naming a bad value's
  row in the whole X, and its own form of the block, such as CSR).

Statistics merged over blocks equal the one-call statistics to round-off (every block's sums are
float64 and merged in a fixed order), so a fit on a streamed copy of an array agrees with the
in-memory fit from the same start to round-off, and is bitwise reproducible for a given block size
and any number of threads.
"""

from __future__ import annotations

import copy
import numbers

import numpy as np
import scipy.sparse as sp
from sklearn.utils import check_random_state

#: Bytes of one block of a streamed source (in the working dtype): large enough that a kernel call
#: amortises its set-up, small enough that a block and its temporaries stay far below the memory a
#: fit of in-memory data needs.
BLOCK_BYTES = 32 * 2**20

#: Rows the initialisation of a fit on a streamed source reads (about as many, in runs of
#: consecutive rows drawn with ``random_state``: :func:`sample_spans`; every row when it has fewer).
INIT_SAMPLE_ROWS = 2**18

_STREAMED_MODULES = ("h5py", "zarr")


def is_streamed(X) -> bool:
    """Whether ``X`` is read block by block rather than as one in-memory array."""
    if isinstance(X, np.memmap):
        return True
    if isinstance(X, np.ndarray):
        return False
    # By type only: the attributes of a closed file's dataset raise (checked in check_shape).
    return type(X).__module__.split(".")[0] in _STREAMED_MODULES and type(X).__name__ in ("Dataset", "Array")


def describe(X) -> str:
    """A short name of a data object for error messages (``h5py.Dataset '/x'``, ``numpy.memmap``)."""
    kind = f"{type(X).__module__.split('.')[0]}.{type(X).__name__}"
    try:
        name = getattr(X, "name", None) or getattr(X, "path", None)
    except Exception:  # a closed file's dataset has no name any more
        name = None
    return f"{kind} {name!r}" if isinstance(name, str) and name else kind


class RowSource:
    """Rows of a 2-D data set, read in blocks of ``block_rows`` rows in a fixed order.

    Every estimator that streams accepts a ``RowSource`` wherever it accepts X, so a user can
    choose the block size (to match an HDF5 or Zarr chunking, say) or stream an in-memory array;
    memmaps, h5py datasets and Zarr arrays are wrapped in one with the default block size.

    Parameters
    ----------
    data : array-like sliceable by rows (ndarray, memmap, h5py.Dataset, zarr.Array)
        Two-dimensional real data. Blocks are converted to float32 (float32 data) or float64 (any
        other real dtype) and checked for NaN and infinity as they are read.
    name : str, default='X'
        The argument's name in error messages.
    block_rows : int, default=None
        Rows per block (an integer >= 1; ValueError otherwise). None: those of ``data`` where it is
        a streamed RowSource, else about 32 MiB of rows for streamed data; a plain in-memory array
        (one that is not a memmap) is then validated and read as one block, as without a RowSource.
    reader : callable, default=None
        ``reader(rows, start, stop)``: the block of rows ``start:stop``, as sliced from ``data``
        (its own dtype, unchecked), as the pass reads it; it checks the values itself. None: the
        block converted to the working dtype and checked for NaN and infinity. An estimator sets
        its own (the Bernoulli and Poisson mixtures check their values and read CSR blocks).

    Notes
    -----
    Fits on the same data in different blocks agree to round-off (the blocks' float64 sums are
    merged in a fixed tree order) when they start alike; for a given ``block_rows`` they are
    bitwise identical for any number of threads. A source of more than ``INIT_SAMPLE_ROWS``
    (262,144) rows is initialised from a sample of runs of ``min(block_rows, 16384)`` rows, where
    an in-memory array is initialised from every row: give the start (FastGMM's ``weights_init``,
    ``means_init`` and ``precisions_init``) for the same fit from either.
    """

    def __init__(self, data, name="X", block_rows=None, reader=None):
        check_block_rows(block_rows)
        if isinstance(data, RowSource):
            if block_rows is None and data.streamed:
                block_rows = data.block_rows  # a source's blocks, unless others are asked for
            data = data.data
        check_shape(data, name)
        self.data = data
        self.name = name
        self.reader = reader
        self.streamed = is_streamed(data) or block_rows is not None
        self.n_samples, self.n_features = (int(n) for n in data.shape)
        self.dtype = working_dtype(data.dtype, name)
        if block_rows is None:
            if self.streamed:
                block_rows = BLOCK_BYTES // (self.dtype.itemsize * max(self.n_features, 1))
            else:
                block_rows = self.n_samples
        self.block_rows = max(1, int(block_rows))
        self._expected_shape = tuple(data.shape)

    @property
    def shape(self):
        return (self.n_samples, self.n_features)

    @property
    def in_memory(self) -> bool:
        """Whether the source is one validated in-memory array read as a single block."""
        return not self.streamed and self.block_rows >= self.n_samples

    @property
    def array(self) -> np.ndarray:
        """The in-memory array (only for :attr:`in_memory` sources)."""
        if not self.in_memory:
            raise RuntimeError("a streamed row source has no in-memory array")
        return self.data

    def spans(self) -> list[tuple[int, int]]:
        """``(start, stop)`` of every block, in order."""
        step, n = self.block_rows, self.n_samples
        return [(start, min(start + step, n)) for start in range(0, max(n, 1), step)]

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` as a C-contiguous array of the working dtype, checked finite (or as
        the ``reader`` reads them, when the source has one)."""
        self._check_unchanged()
        if not self.streamed and self.reader is None:
            return self.data[start:stop]
        try:
            rows = self.data[start:stop]
        except Exception as error:  # each storage library fails in its own way
            raise ValueError(
                f"{self.name}: reading rows {start}:{stop} of {describe(self.data)} failed: {error}"
            ) from error
        if self.reader is None:
            rows = as_working_rows(rows, self.dtype, self.name, start, stop)
        if rows.shape != (stop - start, self.n_features):
            raise ValueError(
                f"{self.name}: {describe(self.data)} returned {rows.shape} for rows {start}:{stop}; "
                f"expected {(stop - start, self.n_features)} (did it shrink during the fit?)"
            )
        if self.reader is not None:
            return self.reader(rows, start, stop)
        return check_finite_block(rows, self.name, start, stop)

    def blocks(self):
        """``(start, stop, rows)`` of every block, in order."""
        for start, stop in self.spans():
            yield start, stop, self.read(start, stop)

    def sample(self, n_rows: int, random_state):
        """Rows for an initialisation: every row when the source has at most ``n_rows`` (or is in
        memory), else about ``n_rows`` rows in runs of ``min(block_rows, n_rows // 16)``
        consecutive rows (:func:`sample_spans`; fewer rows when the source's last, shorter run is
        drawn), chosen without replacement by ``random_state`` (an int, None or a
        ``numpy.random.RandomState``) and read in their order.

        Returns ``(rows, index)``: the blocks as read, stacked in memory (:func:`stack_rows`), and
        the rows' positions in the source.
        """
        if self.in_memory and self.reader is None:
            return self.data, np.arange(self.n_samples)
        if self.n_samples <= n_rows:
            index = np.arange(self.n_samples)
            return stack_rows([rows for _, _, rows in self.blocks()]), index
        spans, index = sample_spans(self.n_samples, n_rows, self.block_rows, check_random_state(random_state))
        return stack_rows([self.read(start, stop) for start, stop in spans]), index

    def max_abs(self) -> float:
        """The largest ``|x|`` (for error messages only: a pass over the source)."""
        return max(
            (float(abs(rows).max()) for _, _, rows in self.blocks() if rows.shape[0] and rows.shape[1]),
            default=0.0,
        )

    def _check_unchanged(self):
        check_shape(self.data, self.name)
        shape = tuple(self.data.shape)
        if shape != self._expected_shape:
            raise ValueError(
                f"{self.name}: {describe(self.data)} changed shape from {self._expected_shape} to "
                f"{shape} during the fit"
            )


def stack_rows(blocks):
    """Blocks of rows (CSR or dense) stacked in order: one CSR matrix if any block is sparse."""
    if len(blocks) == 1:
        return blocks[0]
    if any(sp.issparse(block) for block in blocks):
        return sp.vstack([sp.csr_matrix(block) for block in blocks], format="csr")
    return np.concatenate(blocks)


def sample_spans(n_samples, n_rows, longest_run, random_state):
    """The runs of rows an initialisation samples from a source of ``n_samples > n_rows`` rows:
    runs of ``min(longest_run, n_rows // 16)`` rows (at least 16 runs, so the sample covers the
    source), chosen without replacement by ``random_state`` until ``n_rows`` are reached, in order.

    Returns ``(spans, index)``: the runs' ``(start, stop)`` and the positions of their rows.
    """
    run = min(longest_run, max(1, n_rows // 16))
    n_runs = -(-n_samples // run)
    chosen = np.sort(random_state.choice(n_runs, size=-(-n_rows // run), replace=False))
    spans = [(b * run, min((b + 1) * run, n_samples)) for b in chosen]
    return spans, np.concatenate([np.arange(start, stop) for start, stop in spans])


def initialisation_rows(X, sample_weight, random_state, remedy):
    """The in-memory rows (and their weights) an initialisation reads: X itself when it is not a
    :class:`RowSource`, else ``X.sample(INIT_SAMPLE_ROWS, random_state)`` (every row of a smaller
    source, so that it starts exactly as the same rows in memory). A sample whose weights are all
    zero raises a ValueError ending with ``remedy``."""
    if not isinstance(X, RowSource):
        return X, sample_weight
    rows, index = X.sample(INIT_SAMPLE_ROWS, random_state)
    if sample_weight is None or rows.shape[0] == X.shape[0]:
        return rows, sample_weight
    sample_weight = sample_weight[index]
    if not np.any(sample_weight):
        raise ValueError(
            f"the initialisation's sample of {rows.shape[0]} rows of X has only zero sample weights; "
            + remedy
        )
    return rows, sample_weight


SPARSE_REFUSED = (
    "Sparse data was passed for {name}, but dense data is required. Use '.toarray()' to convert to a "
    "dense numpy array."
)


def as_working_rows(rows, dtype, name, start, stop) -> np.ndarray:
    """A block of rows ``start:stop`` as a pass reads it: C-contiguous in the working ``dtype``.

    A block is checked here as well as its array's declared dtype because a block can hold
    something else (a Dask chunk computed by user code, a custom row-sliceable object): a sparse
    block, or values that are not real numbers (complex, strings), raise a TypeError naming the
    rows, where a cast would drop imaginary parts or parse strings silently.
    """
    if sp.issparse(rows):
        raise TypeError(
            SPARSE_REFUSED.format(name=name) + f" (rows {start}:{stop} are {type(rows).__name__})"
        )
    return np.ascontiguousarray(as_real_block(np.asarray(rows), name, start, stop), dtype=dtype)


def check_finite_block(rows, name, start, stop):
    """``rows`` (rows ``start:stop``), or ValueError naming them where one is NaN or infinite (one
    sum decides for the usual finite block; the element-wise test only where it overflows)."""
    if not np.isfinite(rows.sum(dtype=np.float64)) and not np.all(np.isfinite(rows)):
        raise ValueError(f"Input {name} contains NaN or infinity (in rows {start}:{stop}).")
    return rows


def as_real_block(rows, name, start, stop):
    """A block (dense or sparse) of rows ``start:stop`` whose values are real numbers: as it is,
    or, for an object array (of Python floats, ints, Decimals, ...), converted to float64 as an
    in-memory X is; TypeError naming the rows otherwise."""
    if rows.dtype.kind == "O" and not sp.issparse(rows):
        try:
            return rows.astype(np.float64)
        except (TypeError, ValueError) as error:
            raise TypeError(
                f"{name} must hold real numbers; rows {start}:{stop} hold other objects ({error})"
            ) from None
    if rows.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers; rows {start}:{stop} hold dtype {rows.dtype}")
    return rows


def working_dtype(dtype, name="X") -> np.dtype:
    """float32 (of either byte order) is computed in native float32, any other real dtype in
    float64; TypeError otherwise."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f" and dtype.itemsize == 4:
        return np.dtype(np.float32)
    if dtype.kind in "biuf":
        return np.dtype(np.float64)
    raise TypeError(f"{name} must hold real numbers; got dtype {dtype}")


def check_shape(X, name="X"):
    """Refuse data that is not two-dimensional, or whose shape cannot be read (a dataset of a
    closed file, say)."""
    try:
        shape = getattr(X, "shape", None)
    except Exception as error:  # each storage library fails in its own way
        raise ValueError(f"{name}: {describe(X)} cannot be read ({error}); is its file open?") from error
    if shape is None or len(shape) != 2:
        raise ValueError(
            f"Expected a 2D array for {name}, got {describe(X)} of shape {shape}. Reshape it to "
            "(n_samples, n_features)."
        )


def check_streamed_input(X, name="X", min_samples=2):
    """Refuse a streamed input that is not a 2-D array of real numbers with enough rows."""
    if sp.issparse(X):
        raise TypeError(SPARSE_REFUSED.format(name=name))
    check_shape(X, name)
    shape = X.shape
    working_dtype(X.dtype, name)
    n_samples, n_features = (int(n) for n in shape)
    if n_samples < min_samples:
        raise ValueError(
            f"Found array with {n_samples} sample(s) (shape={tuple(shape)}) while a minimum of "
            f"{min_samples} is required."
        )
    if n_features < 1:
        raise ValueError(
            f"Found array with 0 feature(s) (shape={tuple(shape)}) while a minimum of 1 is required."
        )


def check_block_rows(block_rows):
    """Validate a ``block_rows`` argument (None or a positive integer)."""
    if block_rows is not None and (
        not isinstance(block_rows, numbers.Integral) or isinstance(block_rows, bool) or block_rows < 1
    ):
        raise ValueError(f"block_rows must be None or an integer >= 1, got {block_rows!r}")
    return block_rows


def widened_to_float64(X):
    """float32 training data read in float64 from now on (a fit that float32 cannot hold): an
    in-memory array is converted, a row source is a copy whose working dtype is float64, so its
    blocks are converted as they are read and X is never copied whole."""
    if not isinstance(X, RowSource):
        return X.astype(np.float64)
    widened = copy.copy(X)  # the same data (and Dask graph); only the dtype blocks are read in
    widened.dtype = np.dtype(np.float64)
    return widened
