"""A streamed CSR row source: a ``scipy.sparse`` CSR matrix or array whose buffers are memory-mapped
files, read in blocks of rows and never copied whole into memory.

**Which sparse input is streamed.** A CSR matrix or array is streamed when its ``data``,
``indices`` or ``indptr`` is a view of a memory map (``numpy.memmap``, e.g. the three arrays saved
with ``np.save`` and opened with ``np.load(..., mmap_mode='r')``, then passed to
``scipy.sparse.csr_array((data, indices, indptr), shape=...)``); any other sparse input is in
memory and read as one block. Keep ``indices`` and ``indptr`` of one integer dtype, int32 where
the non-zeros allow it: SciPy otherwise converts them, a copy in memory (``csr_matrix`` also
narrows int64 arrays whose values fit in int32; ``csr_array`` keeps them); the matrix is still
streamed, its ``data`` still mapped.

**Blocks.** A block is a fixed number of rows (:attr:`SparseRowSource.block_rows`): about
:data:`MIN_NONZEROS_PER_FEATURE` non-zeros per column of the matrix (12 bytes each, float64 value
and int32 column), at the matrix's mean number of non-zeros per row, but at least
:data:`~fastelbo._row_source.BLOCK_BYTES` and at most :data:`MAX_BLOCK_BYTES` of them: a number
that depends on the data alone, never on threads. Reading rows ``start:stop`` slices
``indptr[start:stop + 1]`` and the non-zeros between its ends (views of the maps, no copy of the
whole), and hands them to the source's reader, which checks the values (naming a bad value's row
in the whole matrix) and puts the block in canonical form. Initialisations read a sample of runs of rows
(:meth:`~fastelbo._row_source.RowSource.sample`), as for dense streamed sources.
"""

from __future__ import annotations

import mmap

import numpy as np
import scipy.sparse as sp

from fastelbo._row_source import BLOCK_BYTES, RowSource, check_shape

#: Bytes a non-zero of a block takes as the kernel reads it (float64 value, int32 column).
BYTES_PER_NONZERO = 12
#: Non-zeros per column a block holds (within the bounds below). Each kernel call on a block sets
#: up, reads and writes a few arrays of K x D values (a padded copy of the parameters, the sums,
#: the statistics merged), about as long as summing 18 non-zeros per column over the K components
#: takes: blocks of 128 D non-zeros keep that to about a seventh of the pass. A K = 100 Poisson fit
#: (2 iterations) of 1M x 50,000 counts from memory-mapped files took 14.8-18.7 s (median 16.5) in
#: 16 such blocks against 17.6-22.8 s (median 19.3) in 36 blocks of BLOCK_BYTES, four alternating
#: pairs, each pair faster in 16.
MIN_NONZEROS_PER_FEATURE = 128
#: The most bytes of non-zeros a block holds, however many columns: a block and the temporaries of
#: its checks stay a few hundred MiB.
MAX_BLOCK_BYTES = 8 * BLOCK_BYTES


def is_memory_mapped(array) -> bool:
    """Whether ``array`` is (a view of) a memory map."""
    seen = 0
    while array is not None and seen < 64:  # a chain of views ends at its owner
        if isinstance(array, (np.memmap, mmap.mmap)):
            return True
        array = getattr(array, "base", None)
        seen += 1
    return False


def is_streamed_csr(X) -> bool:
    """Whether ``X`` is a CSR matrix or array with a memory-mapped buffer (streamed, module docstring)."""
    return (
        sp.issparse(X)
        and X.format == "csr"
        and any(is_memory_mapped(getattr(X, name, None)) for name in ("data", "indices", "indptr"))
    )


class SparseRowSource(RowSource):
    """The rows of a CSR matrix or array, read in blocks of ``block_rows`` rows (module docstring).

    Parameters
    ----------
    data : scipy.sparse CSR matrix or array
        Two-dimensional; its buffers may be memory-mapped.
    reader : callable, default=None
        ``reader(rows, start, stop)``: a CSR block of rows ``start:stop`` as the pass reads it
        (values checked, canonical form). None: the block as sliced. An estimator replaces it
        with its own.
    name : str, default='X'
        The argument's name in error messages.
    block_rows : int, default=None
        Rows per block; None: about ``MIN_NONZEROS_PER_FEATURE`` non-zeros per column, within
        ``BLOCK_BYTES`` and ``MAX_BLOCK_BYTES`` of them, at the mean row length (module docstring).
    """

    def __init__(self, data, reader=None, name="X", block_rows=None):  # noqa: D107 (the class docstring)
        check_shape(data, name)
        if not sp.issparse(data) or data.format != "csr":
            raise TypeError(f"{name} must be a scipy.sparse CSR matrix or array, got {type(data).__name__}")
        if data.dtype.kind not in "biuf":  # as check_array refuses an in-memory X of complex values
            raise ValueError(f"{name} must hold real numbers, got dtype {data.dtype}")
        self.data = data
        self.reader = _as_sliced if reader is None else reader
        self.name = name
        self.streamed = True
        self.n_samples, self.n_features = (int(n) for n in data.shape)
        self.dtype = np.dtype(np.float64)
        if block_rows is None:
            nnz = int(data.indptr[-1]) if self.n_samples else 0
            mean_row = max(1.0, nnz / max(self.n_samples, 1))
            block_bytes = min(
                max(BYTES_PER_NONZERO * MIN_NONZEROS_PER_FEATURE * self.n_features, BLOCK_BYTES),
                MAX_BLOCK_BYTES,
            )
            block_rows = block_bytes // int(np.ceil(BYTES_PER_NONZERO * mean_row))
        self.block_rows = max(1, int(block_rows))
        self._expected_shape = tuple(data.shape)

    def read(self, start, stop):
        """Rows ``start:stop`` as the reader gives them (a CSR block, checked)."""
        self._check_unchanged()
        indptr = np.asarray(self.data.indptr[start : stop + 1])
        first, last = int(indptr[0]), int(indptr[-1])
        indices = self.data.indices[first:last]
        # A file's arrays are not checked by anyone else: a column out of range or an indptr that
        # goes back would make the kernel read outside the block.
        if (
            first < 0
            or last > len(self.data.indices)
            or np.any(np.diff(indptr) < 0)
            or (indices.size and (int(indices.min()) < 0 or int(indices.max()) >= self.n_features))
        ):
            raise ValueError(
                f"{self.name}: the CSR arrays of rows {start}:{stop} are corrupt (indptr not "
                f"non-decreasing within 0..nnz, or a column index outside 0..{self.n_features - 1})"
            )
        rows = csr_view(
            self.data.data[first:last], indices, indptr - indptr[0], (stop - start, self.n_features)
        )
        return self.reader(rows, start, stop)


def csr_view(data, indices, indptr, shape):
    """A CSR matrix holding these arrays themselves, not copies. SciPy's constructor copies an array
    that is a view of one more than twice its size (its ``prune`` step), and a block of a
    memory-mapped CSR is such a view: it would be copied into memory at every read (1.3 s of a
    3-pass fit at N = 1M, D = 50,000). The arrays are set on an empty matrix instead, as SciPy's own
    methods set them; the caller has checked them (``indptr`` from 0, within ``data``). Values
    SciPy's sparse types cannot hold as they are (another byte order, float16) are converted, the
    block only, exactly."""
    dtype = data.dtype if data.dtype.isnative else data.dtype.newbyteorder("=")
    if dtype == np.float16:
        dtype = np.dtype(np.float32)
    if dtype != data.dtype:
        data = data.astype(dtype)
    rows = sp.csr_matrix(shape, dtype=dtype)
    rows.indptr, rows.indices, rows.data = indptr, indices, data
    # Whether the indices are sorted and canonical is worked out from the new arrays when asked,
    # never taken from the empty matrix (no SciPy release caches it there; none may).
    for flag in ("_has_sorted_indices", "_has_canonical_format"):
        vars(rows).pop(flag, None)
    return rows


def _as_sliced(rows, start, stop):
    return rows
