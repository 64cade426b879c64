"""The same rows as every kind of row source the estimators stream: a memmap, an HDF5 dataset, a
Zarr array (read in the default blocks or in its own chunks), an in-memory array in blocks, and a
dask array. Shared by the row-source tests of every estimator."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from fastelbo import RowSource

_file_numbers = itertools.count()


def _new_file(tmp_path, suffix):
    """A file name not used before in this test run (several sources may share a tmp_path)."""
    return tmp_path / f"x{next(_file_numbers)}{suffix}"


def sample_weights(n_samples, seed=1):
    """Weights of every size from 0.2 to 3, about a tenth of them 0 (zero weights act like absent rows)."""
    rng = np.random.RandomState(seed)
    weights = rng.uniform(0.2, 3.0, n_samples)
    weights[rng.rand(n_samples) < 0.1] = 0.0
    return weights


def max_relative_difference(a, b):
    """``max |a - b|`` relative to ``max |b|``."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), np.finfo(float).tiny))


def memmap(X, tmp_path):
    """X saved as .npy and opened with ``np.load(mmap_mode='r')``."""
    path = _new_file(tmp_path, ".npy")
    np.save(path, X)
    return np.load(path, mmap_mode="r")


def hdf5(X, tmp_path, chunk_rows):
    """X as an h5py dataset chunked by ``chunk_rows`` rows (the file closes when it is collected)."""
    h5py = pytest.importorskip("h5py")
    handle = h5py.File(_new_file(tmp_path, ".h5"), "w")
    return handle.create_dataset("x", data=X, chunks=(chunk_rows, X.shape[1]))


def zarr_array(X, tmp_path, chunk_rows):
    """X as a Zarr array chunked by ``chunk_rows`` rows."""
    zarr = pytest.importorskip("zarr")
    array = zarr.create_array(
        store=str(_new_file(tmp_path, ".zarr")), shape=X.shape, dtype=X.dtype, chunks=(chunk_rows, X.shape[1])
    )
    array[:] = X
    return array


def source_factories(block_rows):
    """``{name: make(X, tmp_path)}`` of every kind of source, with ``block_rows``-row chunks and
    blocks where the kind has them."""
    da = pytest.importorskip("dask.array")
    return {
        "memmap": memmap,
        "hdf5": lambda X, tmp_path: hdf5(X, tmp_path, block_rows),
        "zarr": lambda X, tmp_path: zarr_array(X, tmp_path, block_rows),
        "zarr-in-its-chunks": lambda X, tmp_path: RowSource(
            zarr_array(X, tmp_path, block_rows), block_rows=block_rows
        ),
        "RowSource": lambda X, tmp_path: RowSource(X, block_rows=block_rows),
        "dask": lambda X, tmp_path: da.from_array(X, chunks=(block_rows, X.shape[1])),
    }
