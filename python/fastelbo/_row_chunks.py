"""Row chunks for the passes over X done in NumPy (column moments, initial statistics, data
covariance): each chunk's float64 temporaries are a few MiB, whatever X's width, so such a pass
adds little to the memory a fit needs on top of X."""

from __future__ import annotations

CHUNK_BYTES = 4 * 2**20  # float64 bytes of one chunk of rows


def row_chunks(n_rows: int, n_features: int):
    """``(start, stop)`` of consecutive row ranges covering ``n_rows`` rows, each about
    ``CHUNK_BYTES`` of float64 rows of ``n_features`` columns (at least one row)."""
    step = max(1, CHUNK_BYTES // (8 * max(n_features, 1)))
    for start in range(0, n_rows, step):
        yield start, min(start + step, n_rows)
