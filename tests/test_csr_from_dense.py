"""The count mixtures' conversion of dense rows to CSR is SciPy's ``csr_array(rows)``: the same
values, column indices, row pointers and dtypes, for every dtype and layout the mixtures read, with
values SciPy keeps (NaN) and drops (-0.0), and for empty shapes; chunked like any other pass."""

import numpy as np
import pytest
import scipy.sparse as sp

from fastelbo.mixture import _csr_from_dense
from fastelbo.mixture._csr_from_dense import csr_from_dense


def _rows():
    rng = np.random.RandomState(0)
    binary = (rng.uniform(size=(300, 70)) < 0.3).astype(np.float64)
    counts = rng.poisson(0.7, size=(200, 9)).astype(np.float64)
    counts[0, 0], counts[1, 1], counts[2, 2], counts[3, 3] = -0.0, np.nan, np.inf, 5e-324
    return {
        "binary": binary,
        "bool": binary.astype(bool),
        "int8": binary.astype(np.int8),
        "uint64": counts[4:].astype(np.uint64),
        "float32": binary.astype(np.float32),
        "Fortran": np.asfortranarray(binary),
        "strided": binary[::3, ::2],
        "special values": counts,
        "all zero": np.zeros((4, 6)),
        "no rows": np.zeros((0, 5)),
        "no columns": np.zeros((5, 0)),
    }


def _assert_same_csr(actual, expected):
    assert actual.shape == expected.shape
    for name in ("data", "indices", "indptr"):
        a, e = getattr(actual, name), getattr(expected, name)
        assert a.dtype == e.dtype, name
        np.testing.assert_array_equal(a.view(np.uint8), e.view(np.uint8), err_msg=name)  # bitwise


@pytest.mark.parametrize("chunk_rows", [None, 7])
@pytest.mark.parametrize("dtype", [None, np.float64])
def test_the_conversion_is_scipys(dtype, chunk_rows, monkeypatch):
    if chunk_rows is not None:  # several chunks, the last one shorter
        chunks = lambda n, _: ((a, min(a + chunk_rows, n)) for a in range(0, n, chunk_rows))  # noqa: E731
        monkeypatch.setattr(_csr_from_dense, "row_chunks", chunks)
    for name, rows in _rows().items():
        expected = sp.csr_array(np.asarray(rows, dtype=dtype))
        actual = csr_from_dense(rows, dtype)
        _assert_same_csr(actual, expected)
        assert actual.has_canonical_format, name


def test_rows_must_be_a_matrix():
    with pytest.raises(ValueError, match="rows must be 2-D"):
        csr_from_dense(np.ones(3))


def test_values_the_cast_makes_zero_are_dropped_as_scipy_drops_them():
    rows = np.array([[1e-300, 2.0, 0.5], [0.0, 1e-46, 3.0]])
    for dtype in (np.float32, np.int64, np.bool_):
        _assert_same_csr(csr_from_dense(rows, dtype), sp.csr_array(rows.astype(dtype)))


@pytest.mark.parametrize(
    "rows",
    [
        np.array([[1.0, None]], dtype=object),
        np.array([["1", ""]]),
        np.ones((2, 2), dtype=np.float16),
        np.ones((2, 2), dtype=">f8"),
        np.ones((2, 2), dtype=np.complex128),
    ],
    ids=["object", "str", "float16", "big-endian", "complex"],
)
def test_types_scipy_sparse_cannot_hold_are_refused(rows):
    with pytest.raises(ValueError, match="must convert to bool, integers, float32 or float64"):
        csr_from_dense(rows)
