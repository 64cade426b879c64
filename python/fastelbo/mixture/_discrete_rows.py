"""The rows of a Bernoulli or Poisson mixture: validated as scikit-learn validates X, kept sparse
(CSR) or dense in their own dtype, and checked to hold values the family can model, naming the
first offending value and its position.

Sparse input of any format becomes CSR once (CSC, COO, ...; ``csr_matrix`` and ``csr_array`` alike)
with sorted, summed duplicate and no explicit zero entries, so every pass reads the same non-zeros
whether X came dense or sparse; it is never densified. Dense input keeps its dtype (bool and
integer dtypes included) and is checked in chunks of rows, so no temporary of X's size is made.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.utils.validation import validate_data

from fastelbo._row_chunks import row_chunks
from fastelbo._row_source import as_real_block
from fastelbo._validation import as_numpy, in_native_byte_order
from fastelbo.mixture._csr_from_dense import csr_from_dense
from fastelbo.mixture._exponential_family import FAMILIES

#: dtypes kept as they are (anything else real is converted to float64 by the validation).
KEPT_DTYPES = [
    np.float64,
    np.float32,
    np.bool_,
    np.int8,
    np.int16,
    np.int32,
    np.int64,
    np.uint8,
    np.uint16,
    np.uint32,
    np.uint64,
]


def validate_discrete_rows(estimator, X, family, reset, min_samples):
    """X for a fit (``reset=True``) or for inference: a canonical CSR matrix or a C-contiguous
    dense array, whose values ``family`` can model; ValueError naming the first offending value,
    with its row and column, otherwise."""
    X = validate_data(
        estimator,
        as_numpy(X, "X"),
        reset=reset,
        accept_sparse=True,
        dtype=KEPT_DTYPES,
        ensure_all_finite=False,  # checked below, naming the value's position
        ensure_min_samples=min_samples,
        order="C",
    )
    return checked_rows(X, type(estimator).__name__, family)


def checked_rows(X, owner, family, first_row=0):
    """A block of rows (rows ``first_row:first_row + len(X)`` of a larger X) as the pass reads it:
    sparse rows as canonical CSR, dense rows as they are, every value checked; ValueError naming
    the estimator ``owner``, the first offending value and its row (in the whole X) and column."""
    if sp.issparse(X):
        X = canonical_csr(X)
        k = _first_invalid(family, X.data)
        if k is not None:
            row = int(np.searchsorted(X.indptr, k, side="right") - 1)
            _raise(owner, family, X.data[k], first_row + row, int(X.indices[k]))
        return X
    for start, stop in row_chunks(X.shape[0], X.shape[1]):
        bad = _invalid(family, X[start:stop])
        if bad.any():
            row, column = np.unravel_index(int(np.argmax(bad)), bad.shape)
            _raise(owner, family, X[start + row, column], first_row + start + int(row), int(column))
    return X


class DiscreteBlockReader:
    """Reads a block of rows of a streamed X for a Bernoulli or Poisson pass (in the process or on
    a Dask worker): ``reader(rows, start, stop)`` is :func:`checked_rows` of rows ``start:stop``, as
    CSR (a dense block converted, so that dense and sparse chunks of the same rows, and the
    initialisation's sample of them, are read alike). Holds only names (the estimator's class and
    the family), so it pickles small."""

    def __init__(self, owner, family_name):
        self.owner = owner
        self.family_name = family_name

    def __dask_tokenize__(self):
        return (type(self).__name__, self.owner, self.family_name)

    def __call__(self, rows, start, stop):
        if not sp.issparse(rows):
            # A big-endian file's block in native order: scipy.sparse holds native dtypes only.
            rows = in_native_byte_order(np.ascontiguousarray(rows))
        rows = as_real_block(rows, "X", start, stop)
        if rows.shape[0] != stop - start:
            raise ValueError(f"X: a block of rows {start}:{stop} has {rows.shape[0]} rows")
        rows = checked_rows(rows, self.owner, FAMILIES[self.family_name], start)
        if sp.issparse(rows):
            return rows
        if rows.dtype == np.float16:
            rows = rows.astype(np.float64)  # exact; scipy.sparse has no float16
        return csr_from_dense(rows)


def canonical_csr(X):
    """``X`` as CSR with sorted indices, no duplicates and no explicit zeros (copied only where it
    is not so already)."""
    copied = False
    if not getattr(X, "has_canonical_format", True) and X.dtype.kind in "iu" and X.dtype.itemsize < 8:
        # Duplicates summed in X's own dtype (by sum_duplicates, or by tocsr for COO) could wrap
        # around (uint8: 200 + 100 = 44); their sum is the count they stand for. (bool
        # duplicates stay a logical or.)
        X, copied = X.astype(np.int64 if X.dtype.kind == "i" else np.uint64), True
    if X.format != "csr":
        X, copied = X.tocsr(), True
    if not X.has_canonical_format:
        if not copied:
            X, copied = X.copy(), True
        X.sum_duplicates()
    if X.nnz and _has_zeros(X.data):
        if not copied:
            X = X.copy()
        X.eliminate_zeros()
    return X


#: Values checked at once (the checks' temporaries are a few times this many bytes).
_CHUNK = 1 << 20


def _has_zeros(values):
    """Whether a 1-D array holds a zero, read in chunks (no temporary of its size)."""
    return any(not np.all(values[i : i + _CHUNK]) for i in range(0, len(values), _CHUNK))


def _first_invalid(family, values):
    """The position of the first value of a 1-D array ``family`` cannot model, or None; read in
    chunks, so that checking the non-zeros of a large CSR X makes no temporary of their size."""
    for i in range(0, len(values), _CHUNK):
        bad = np.flatnonzero(_invalid(family, values[i : i + _CHUNK]))
        if bad.size:
            return i + int(bad[0])
    return None


def _invalid(family, values):
    """Where ``values`` (any real dtype) are not what ``family`` can model."""
    values = np.asarray(values)
    if values.dtype.kind == "b":
        return np.zeros(values.shape, dtype=bool)
    return family.invalid(values)


class ModelValueError(ValueError):
    """A value of X the model cannot take, with its position (row and column of X, from 0), so
    that a caller reading X from a file can name the file's line instead."""

    def __init__(self, message, value, row, column, needs):
        super().__init__(message)
        self.value, self.row, self.column = value, row, column
        #: What every value must be (``"0 or 1"``, say).
        self.needs = needs

    def __reduce__(self):  # pickled whole: a Dask worker's error reaches the client as raised
        return type(self), (self.args[0], self.value, self.row, self.column, self.needs)


def _raise(owner, family, value, row, column):
    value = np.asarray(value).item()  # 2.5, not np.float64(2.5)
    finite = bool(np.isfinite(value))
    # scikit-learn's words for negative data first (its checks, and its users, match on them);
    # -inf is reported as a value the model cannot take, not as negative data.
    raise ModelValueError(
        ("Negative values in data passed to X. " if finite and value < 0 else "")
        + f"{owner} needs every value of X to be {family.values}; X holds "
        f"{value!r} at row {row}, column {column}"
        + ("" if finite else " (NaN and infinity are not values of the model)"),
        value,
        row,
        column,
        family.values,
    )
