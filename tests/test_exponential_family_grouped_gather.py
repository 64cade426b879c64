"""The exact pass's log-joints summed column by column over a block of rows (where eta is split,
larger than the caches): the same per-row outputs and moments, bitwise, as row by row, for any
thread count; blocks with a row whose columns are not ascending are summed row by row; both equal
the independent NumPy reference."""

import numpy as np
import pytest
import scipy.sparse as sp

from fastelbo import _core
from fastelbo.mixture._exponential_family import csr_rows
from reference_exponential_family import e_step
from test_exponential_family_floored_columns import exact_pass as split_exact_pass
from test_exponential_family_floored_columns import floored_means, natural_exact_pass, parameters, sparse_rows

# Wide enough for a two-byte radix sort of the columns, and K large enough that a block of rows
# summed column by column (4 MiB of log-joints) holds fewer rows than the data: several blocks.
N_ROWS, N_FEATURES, N_COMPONENTS = 700, 400, 2000
PER_ROW = ("log_norm", "responsibilities", "labels")


def exact_pass(X, family, weights, means, w, group_by_column, n_threads=0):
    """The exact pass with the split forced, every per-row output, summed as group_by_column says."""
    return split_exact_pass(
        X, family, weights, means, w, n_threads=n_threads, return_labels=True, group_by_column=group_by_column
    )


def problem(family, seed):
    rng = np.random.default_rng(seed)
    X = sparse_rows(family, N_ROWS, N_FEATURES, seed=seed, density=0.03)
    weights = rng.dirichlet(np.ones(N_COMPONENTS))
    means = floored_means(family, N_COMPONENTS, N_FEATURES, seed=seed)
    w = rng.uniform(0.2, 2.0, size=N_ROWS)
    return X, weights, means, w


def assert_same_rows_and_moments(a, b):
    for name in (*PER_ROW, "sx"):
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    # The ELBO sums and nk are merged per block, and blocks summed column by column hold more rows.
    for name in ("sum_weight", "sum_log_norm", "sum_entropy", "sum_log_base", "nk"):
        np.testing.assert_allclose(a[name], b[name], rtol=1e-13, err_msg=name)


@pytest.mark.parametrize("family", ["bernoulli", "poisson"])
def test_grouped_pass_is_bitwise_the_row_pass_and_matches_the_reference(family):
    X, weights, means, w = problem(family, seed=5)
    grouped = exact_pass(X, family, weights, means, w, group_by_column=True)
    by_row = exact_pass(X, family, weights, means, w, group_by_column=False)
    assert grouped["blocks_by_column"] > 1 and by_row["blocks_by_column"] == 0
    assert_same_rows_and_moments(grouped, by_row)
    expected = e_step(X.toarray(), weights, means, family, w)
    for name in ("sum_weight", "sum_log_norm", "sum_entropy", "nk", "log_norm", "responsibilities"):
        np.testing.assert_allclose(grouped[name], expected[name], rtol=1e-10, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(grouped["sx"], expected["sx"], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("family", ["bernoulli", "poisson"])
def test_grouped_pass_is_bitwise_for_any_thread_count(family):
    X, weights, means, w = problem(family, seed=6)
    runs = [exact_pass(X, family, weights, means, w, True, n_threads=t) for t in (1, 2, 3)]
    for run in runs[1:]:
        for name in (*PER_ROW, "sx", "sum_log_norm", "sum_entropy", "nk"):
            np.testing.assert_array_equal(run[name], runs[0][name], err_msg=name)


def test_rows_with_columns_out_of_order_are_summed_row_by_row():
    # Reversing the columns of every tenth row leaves its block to the row by row sums: the
    # outputs equal those of the same rows passed row by row, and the reference to round-off.
    family = "poisson"
    X, weights, means, w = problem(family, seed=7)
    indices = X.indices.copy()
    for n in range(0, N_ROWS, 10):
        begin, end = X.indptr[n], X.indptr[n + 1]
        indices[begin:end] = indices[begin:end][::-1]
    data = X.data.copy()
    for n in range(0, N_ROWS, 10):
        begin, end = X.indptr[n], X.indptr[n + 1]
        data[begin:end] = data[begin:end][::-1]
    shuffled = sp.csr_matrix((data, indices, X.indptr), shape=X.shape)
    assert not shuffled.has_sorted_indices
    grouped = exact_pass(shuffled, family, weights, means, w, group_by_column=True)
    by_row = exact_pass(shuffled, family, weights, means, w, group_by_column=False)
    assert_same_rows_and_moments(grouped, by_row)
    expected = e_step(X.toarray(), weights, means, family, w)
    np.testing.assert_allclose(grouped["log_norm"], expected["log_norm"], rtol=1e-10)


@pytest.mark.parametrize("family", ["bernoulli", "poisson"])
def test_parameters_with_no_floored_column_are_summed_column_by_column(family):
    # Right after a start whose responsibilities are spread, every component's mean of every column
    # is off the floor: no column is sparse, yet eta is as large, and its rows are what a block
    # summed column by column reads once instead of once per non-zero.
    X, weights, _, w = problem(family, seed=8)
    high = 0.9 if family == "bernoulli" else 5.0
    means = np.random.default_rng(8).uniform(0.05, high, size=(N_COMPONENTS, N_FEATURES))
    grouped = exact_pass(X, family, weights, means, w, group_by_column=True)
    by_row = exact_pass(X, family, weights, means, w, group_by_column=False)
    assert grouped["blocks_by_column"] > 1 and by_row["blocks_by_column"] == 0
    assert_same_rows_and_moments(grouped, by_row)
    expected = e_step(X.toarray(), weights, means, family, w)
    for name in ("log_norm", "responsibilities", "nk"):
        np.testing.assert_allclose(grouped[name], expected[name], rtol=1e-10, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(grouped["sx"], expected["sx"], rtol=1e-10, atol=1e-12)


def test_parameters_within_the_caches_are_summed_row_by_row():
    X, weights, means, w = problem("poisson", seed=9)
    within = split_exact_pass(X, "poisson", weights, means, w, cached_natural_bytes=1e12, return_labels=True)
    assert within["blocks_by_column"] == 0
    expected = e_step(X.toarray(), weights, means, "poisson", w)
    np.testing.assert_allclose(within["log_norm"], expected["log_norm"], rtol=1e-10)


def at_byte_offset(a, offset):
    """A C-contiguous copy of ``a`` whose data start ``offset`` bytes past a 64-byte boundary."""
    buffer = np.empty(a.nbytes + 128, dtype=np.uint8)
    start = (-buffer.ctypes.data) % 64 + offset
    out = buffer[start : start + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    return out


@pytest.mark.parametrize("family", ["bernoulli", "poisson"])
@pytest.mark.parametrize("k", [16, 100, 129])
def test_row_pass_summed_in_registers_is_bitwise_the_grouped_pass(family, k):
    # No entry floored, so every column is dense: row by row, the log-joints are summed in
    # registers (K up to 128 with AVX-512, 32 with AVX2) from eta read in place (K = 16 on a 64-byte
    # boundary) or from a copy padded to cache lines (K = 16 eight bytes past one, K = 100), else
    # (K = 129) in memory. Grouped by column, they are summed from memory in another loop, adding
    # the same terms in the same order. A pass over a few rows (fewer non-zeros than 16 per column)
    # takes the plain loop rather than copy eta: its rows are bitwise those of the whole pass.
    rng = np.random.default_rng(k)
    X = sparse_rows(family, 1000, 300, seed=k, density=0.05)
    weights = rng.dirichlet(np.ones(k))
    if family == "bernoulli":
        means = rng.uniform(0.05, 0.9, size=(k, 300))
    else:
        means = rng.gamma(2.0, 1.0, size=(k, 300))
    w = rng.uniform(0.2, 2.0, size=1000)
    log_weights, natural, log_partition = parameters(family, weights, means)
    grouped = natural_exact_pass(
        X,
        family,
        log_weights,
        natural,
        log_partition,
        w,
        cached_natural_bytes=0.0,
        group_by_column=True,
        return_labels=True,
    )
    assert grouped["blocks_by_column"] > 0
    indptr, indices, data, shape = csr_rows(X)
    for offset in (0, 8):
        by_row = _core.exponential_family_mixture_pass(
            indptr,
            indices,
            data,
            shape[1],
            w,
            log_weights,
            at_byte_offset(natural.T, offset),
            log_partition,
            family,
            return_log_norm=True,
            return_responsibilities=True,
            return_labels=True,
            cached_natural_bytes=np.inf,
        )
        assert by_row["blocks_by_column"] == 0
        assert_same_rows_and_moments(grouped, by_row)
    few = natural_exact_pass(
        X[:5], family, log_weights, natural, log_partition, w[:5], cached_natural_bytes=np.inf
    )
    for name in ("log_norm", "responsibilities"):
        np.testing.assert_array_equal(few[name], by_row[name][:5], err_msg=name)
    expected = e_step(X.toarray(), weights, means, family, w)
    np.testing.assert_allclose(by_row["log_norm"], expected["log_norm"], rtol=1e-10, atol=1e-12)
