"""The Bernoulli / Poisson mixture kernel against the independent NumPy reference
(tests/reference_exponential_family.py): sums, sx, per-row outputs, for dense and CSR rows, with
and without sample weights; bitwise determinism over thread counts; argument checks."""

import numpy as np
import pytest
import scipy.sparse as sp

from fastelbo import _core
from fastelbo._mixture_pass import MixturePassRequest
from fastelbo.mixture._exponential_family import (
    FAMILIES,
    ExponentialFamilyPassParameters,
    exponential_family_block_pass,
)
from reference_exponential_family import e_step

ALL_OUTPUTS = MixturePassRequest(log_norm=True, responsibilities=True, labels=True)


def random_data(family, n, d, density, seed):
    """Sparse data of the family with an empty row and an all-zero column."""
    rng = np.random.default_rng(seed)
    mask = rng.uniform(size=(n, d)) < density
    values = np.ones((n, d)) if family == "bernoulli" else rng.poisson(3.0, size=(n, d)) + 1.0
    X = np.where(mask, values, 0.0)
    X[0] = 0.0  # an empty row
    X[:, d // 2] = 0.0  # an all-zero column
    return X


def random_parameters(family, k, d, seed):
    rng = np.random.default_rng(seed + 1)
    weights = rng.dirichlet(np.ones(k))
    if family == "bernoulli":
        means = rng.uniform(0.05, 0.95, size=(k, d))
    else:
        means = rng.gamma(2.0, 1.0, size=(k, d))
    means[:, d // 2] = 1e-10  # a floored column
    return weights, means


def kernel_pass(X, weights, means, family, sample_weight=None, n_threads=0, indices_dtype=None):
    parameters = ExponentialFamilyPassParameters.of(family, weights, means, True, n_threads)
    if indices_dtype is not None:
        X = sp.csr_array(X)
        X.indices = X.indices.astype(indices_dtype)
    stats, out, _ = exponential_family_block_pass(parameters, ALL_OUTPUTS, X, sample_weight, None)
    return stats, out


@pytest.mark.parametrize("family", ["bernoulli", "poisson"])
# K up to 128 has its log-joints summed in registers with AVX-512 (up to 32 with AVX2), read in
# place (K = 8, where eta lies on a packet) or from a copy padded to cache lines; K = 129 does not.
@pytest.mark.parametrize(
    ("k", "d", "density"),
    [(1, 5, 0.5), (3, 17, 0.2), (7, 40, 0.05), (12, 9, 0.9), (8, 30, 0.3), (33, 20, 0.3), (100, 25, 0.3)]
    + [(128, 11, 0.5), (129, 11, 0.5)],
)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("layout", ["dense", "csr32", "csr64"])
def test_kernel_matches_reference(family, k, d, density, weighted, layout):
    X = random_data(family, 60, d, density, seed=k * 100 + d)
    weights, means = random_parameters(family, k, d, seed=k)
    sample_weight = np.random.default_rng(3).uniform(0.0, 2.0, size=60) if weighted else None
    indices_dtype = {"dense": None, "csr32": np.int32, "csr64": np.int64}[layout]
    stats, out = kernel_pass(X, weights, means, family, sample_weight, indices_dtype=indices_dtype)
    expected = e_step(X, weights, means, family, sample_weight)
    for name in ("sum_weight", "sum_log_norm", "sum_entropy", "nk", "sx"):
        np.testing.assert_allclose(getattr(stats, name), expected[name], rtol=1e-10, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(stats.sum_log_base, expected["sum_log_base"], rtol=1e-10, atol=1e-12)
    for name in ("log_norm", "responsibilities"):
        np.testing.assert_allclose(out[name], expected[name], rtol=1e-10, atol=1e-12, err_msg=name)
    np.testing.assert_array_equal(out["labels"], expected["labels"])
    if family == "poisson":
        assert stats.sum_log_base < 0  # the data term is there, and in log_norm too


@pytest.mark.parametrize("family", ["bernoulli", "poisson"])
def test_dense_and_csr_rows_give_bitwise_the_same_pass(family):
    X = random_data(family, 500, 30, 0.1, seed=5)
    weights, means = random_parameters(family, 4, 30, seed=5)
    w = np.random.default_rng(0).uniform(size=500)
    dense_stats, dense_out = kernel_pass(X, weights, means, family, w)
    for indices_dtype in (np.int32, np.int64):
        stats, out = kernel_pass(X, weights, means, family, w, indices_dtype=indices_dtype)
        assert stats.sum_log_norm == dense_stats.sum_log_norm
        np.testing.assert_array_equal(stats.sx, dense_stats.sx)
        np.testing.assert_array_equal(stats.nk, dense_stats.nk)
        for name in out:
            np.testing.assert_array_equal(out[name], dense_out[name])


def passes_bitwise_equal_for_2_and_3_threads(X, weights, means, family, w, indices_dtype=None):
    """Asserts that passes on 2 and 3 threads equal the one-thread pass bit for bit; returns it."""

    def run(n_threads):
        return kernel_pass(X, weights, means, family, w, n_threads=n_threads, indices_dtype=indices_dtype)

    one_stats, one_out = run(1)
    for n_threads in (2, 3):
        stats, out = run(n_threads)
        for name in ("sum_weight", "sum_log_norm", "sum_entropy", "sum_log_base"):
            assert getattr(stats, name) == getattr(one_stats, name), name
        np.testing.assert_array_equal(stats.nk, one_stats.nk)
        np.testing.assert_array_equal(stats.sx, one_stats.sx)
        for name in out:
            np.testing.assert_array_equal(out[name], one_out[name])
    return one_stats, one_out


@pytest.mark.parametrize("family", ["bernoulli", "poisson"])
@pytest.mark.parametrize("k", [3, 40])
def test_results_are_bitwise_identical_for_any_thread_count(family, k):
    # Enough rows for many blocks and several rounds; K = 40 splits sx over components.
    X = random_data(family, 30000, 60, 0.1, seed=k)
    weights, means = random_parameters(family, k, 60, seed=k)
    w = np.random.default_rng(1).uniform(size=30000)
    one_stats, one_out = passes_bitwise_equal_for_2_and_3_threads(X, weights, means, family, w, np.int32)
    expected = e_step(X, weights, means, family, w)
    np.testing.assert_allclose(one_stats.sx, expected["sx"], rtol=1e-10, atol=1e-12)


def test_an_empty_component_gets_no_responsibility():
    X = random_data("bernoulli", 50, 8, 0.3, seed=2)
    weights, means = random_parameters("bernoulli", 3, 8, seed=2)
    weights = np.array([0.5, 0.0, 0.5])
    stats, out = kernel_pass(X, weights, means, "bernoulli")
    assert np.all(out["responsibilities"][:, 1] == 0.0)
    expected = e_step(X, weights, means, "bernoulli")
    np.testing.assert_allclose(stats.sum_log_norm, expected["sum_log_norm"], rtol=1e-10)
    assert np.isfinite(stats.sum_entropy)


def call(**overrides):
    K, D = 2, 3
    arguments = dict(
        indptr=np.array([0, 1, 2], dtype=np.int64),
        indices=np.array([0, 2], dtype=np.int32),
        data=np.array([1.0, 1.0]),
        n_features=D,
        sample_weight=None,
        log_weights=np.log(np.full(K, 0.5)),
        natural_transposed=np.zeros((D, K)),
        log_partition=np.zeros(K),
        family="bernoulli",
    )
    arguments.update(overrides)
    return _core.exponential_family_mixture_pass(**arguments)


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        ({"indices": np.array([0, 3], dtype=np.int32)}, ValueError, "indices\\[1\\] = 3"),
        ({"indices": np.array([0, -1], dtype=np.int64)}, ValueError, "indices\\[1\\] = -1"),
        ({"indices": np.array([0, 1], dtype=np.int16)}, TypeError, "indices must have dtype int32 or int64"),
        ({"indptr": np.array([0, 3, 2], dtype=np.int64)}, ValueError, "indptr must be non-decreasing"),
        ({"indptr": np.array([1, 1, 2], dtype=np.int64)}, ValueError, "indptr\\[0\\] must be 0"),
        ({"indptr": np.array([0, 1, 3], dtype=np.int64)}, ValueError, "indptr\\[-1\\] = 3"),
        ({"indptr": np.array([0, 1, 2], dtype=np.int32)}, TypeError, "indptr"),
        ({"natural_transposed": np.zeros((2, 3))}, ValueError, "natural_transposed has shape"),
        ({"family": "gamma"}, ValueError, "family must be"),
        ({"n_features": 0}, ValueError, "n_features"),
        ({"sample_weight": np.ones(3)}, ValueError, "sample_weight"),
    ],
)
def test_bad_kernel_arguments_raise_naming_them(overrides, error, message):
    with pytest.raises(error, match=message):
        call(**overrides)


def test_families_floor_means_into_the_open_range():
    bern, pois = FAMILIES["bernoulli"], FAMILIES["poisson"]
    np.testing.assert_array_equal(bern.floored(np.array([0.0, 0.5, 1.0]), 1e-10), [1e-10, 0.5, 1 - 1e-10])
    np.testing.assert_array_equal(pois.floored(np.array([0.0, 2.0]), 1e-10), [1e-10, 2.0])


@pytest.mark.parametrize("k", [5, 7])
def test_bitwise_identical_when_blocks_are_cut_by_work(k):
    # Rows of very different lengths: blocks end where their work does, at rows of any parity, so
    # rounds (whose size follows the thread count) start at varied rows; an odd K then puts a row's
    # log-joints at varied memory alignments, which must not change a reduction's result.
    rng = np.random.default_rng(k)
    n, d = 4000, 6000
    lengths = rng.integers(0, 3000, size=n)
    indptr = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    rows = [np.sort(rng.choice(d, size=m, replace=False)) for m in lengths]
    indices = np.concatenate(rows).astype(np.int32)
    X = sp.csr_array((np.ones(indptr[-1]), indices, indptr), shape=(n, d))
    weights, means = random_parameters("bernoulli", k, d, seed=k)
    one_stats, one_out = kernel_pass(X, weights, means, "bernoulli", n_threads=1)
    for n_threads in (2, 3):
        stats, out = kernel_pass(X, weights, means, "bernoulli", n_threads=n_threads)
        assert stats.sum_log_norm == one_stats.sum_log_norm
        assert stats.sum_entropy == one_stats.sum_entropy
        np.testing.assert_array_equal(stats.nk, one_stats.nk)
        np.testing.assert_array_equal(stats.sx, one_stats.sx)
        for name in out:
            np.testing.assert_array_equal(out[name], one_out[name])


def test_large_counts_get_their_log_factorial_too():
    # Counts around the kernel's table of small log-factorials and far beyond it.
    X = np.array([[0.0, 1.0, 255.0], [256.0, 0.0, 1e4], [3.0, 2e6, 0.0]])
    weights, means = np.array([0.4, 0.6]), np.array([[1.0, 50.0, 300.0], [2e3, 1e5, 0.5]])
    stats, out = kernel_pass(X, weights, means, "poisson")
    expected = e_step(X, weights, means, "poisson")
    np.testing.assert_allclose(out["log_norm"], expected["log_norm"], rtol=1e-12)
    np.testing.assert_allclose(stats.sum_log_base, expected["sum_log_base"], rtol=1e-12)


def separated_rows(family, n, d, k, seed):
    """Rows drawn from k components whose means differ on many columns, with rows of every length
    (none to all of the columns): the long rows' posteriors are one-hot to the last bit (the
    other responsibilities underflow to exactly 0), the short rows' are spread."""
    rng = np.random.default_rng(seed)
    if family == "bernoulli":
        means = np.where(rng.uniform(size=(k, d)) < 0.3, 0.9, 0.01)
    else:
        means = np.where(rng.uniform(size=(k, d)) < 0.3, 4.0, 0.05)
    labels = rng.integers(k, size=n)
    X = (
        (rng.uniform(size=(n, d)) < means[labels]).astype(np.float64)
        if family == "bernoulli"
        else rng.poisson(means[labels]).astype(np.float64)
    )
    lengths = (d * rng.uniform(size=n)).astype(int)
    X[np.arange(d)[None, :] >= lengths[:, None]] = 0.0  # rows of every length
    return X, rng.dirichlet(np.ones(k)), means


def responsibilities_pass(csr, w, parameters, family, n_threads, skip_zero_responsibilities, **options):
    """The kernel's pass over CSR rows with their responsibilities, zero ones skipped or not
    (``options``: more of the kernel's keyword arguments)."""
    return _core.exponential_family_mixture_pass(
        csr.indptr.astype(np.int64),
        csr.indices,
        csr.data,
        csr.shape[1],
        w,
        parameters.log_weights,
        parameters.natural_transposed,
        parameters.log_partition,
        family,
        return_responsibilities=True,
        n_threads=n_threads,
        skip_zero_responsibilities=skip_zero_responsibilities,
        **options,
    )


@pytest.mark.parametrize("family", ["bernoulli", "poisson"])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_skipping_zero_responsibilities_leaves_sx_bitwise_the_same(family, n_threads):
    # sx adds w_n q_nc x_nd only where q_nc != 0 (adding an exact 0 changes no sum): the kernel's
    # switch to add every term must give the same bits, for rows whose responsibilities are mostly
    # 0, spread, or all zero (a zero sample weight).
    k, d = 16, 1000
    X, weights, means = separated_rows(family, 3000, d, k, seed=7)
    w = np.random.default_rng(2).uniform(0.0, 2.0, size=X.shape[0])
    w[::17] = 0.0
    parameters = ExponentialFamilyPassParameters.of(family, weights, means, True, n_threads)
    csr = sp.csr_array(X)
    outputs = {
        skip: responsibilities_pass(csr, w, parameters, family, n_threads, skip) for skip in (True, False)
    }
    q = outputs[True]["responsibilities"]
    nonzero = np.count_nonzero(q, axis=1)
    # Both scatter paths are taken: rows with at most K / 4 non-zero responsibilities (most of
    # them one-hot) and rows with more.
    assert np.mean(nonzero == 1) > 0.3
    assert np.any(nonzero > k // 4)
    assert np.any((nonzero > 1) & (nonzero <= k // 4))
    np.testing.assert_array_equal(outputs[True]["sx"], outputs[False]["sx"])
    np.testing.assert_array_equal(outputs[True]["nk"], outputs[False]["nk"])
    expected = e_step(X, weights, means, family, w)
    np.testing.assert_allclose(outputs[True]["sx"], expected["sx"], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("family", ["bernoulli", "poisson"])
def test_unsorted_and_duplicate_column_indices_match_the_reference(family):
    # The M-step statistic groups a round's non-zeros by column: rows whose indices are not sorted,
    # or list a column twice (CSR that SciPy would sum), must still add every value once, in place.
    X, weights, means = separated_rows(family, 400, 60, 5, seed=3)
    csr = sp.csr_array(X)
    rng = np.random.default_rng(4)
    indices, data, indptr = csr.indices.copy(), csr.data.copy(), csr.indptr.astype(np.int64)
    for n in range(X.shape[0]):
        order = rng.permutation(indptr[n + 1] - indptr[n]) + indptr[n]
        indices[indptr[n] : indptr[n + 1]] = indices[order]
        data[indptr[n] : indptr[n + 1]] = data[order]
    # Split every value of row 1 in two entries of the same column (0.25 x + 0.75 x: no value of the
    # family, but the kernel reads any non-negative number; the posteriors and sx do not change, the
    # data term would, and is not compared).
    first, last = indptr[1], indptr[2]
    indices = np.r_[indices[:first], indices[first:last], indices[first:last], indices[last:]]
    data = np.r_[data[:first], 0.25 * data[first:last], 0.75 * data[first:last], data[last:]]
    indptr = indptr.copy()
    indptr[2:] += last - first
    parameters = ExponentialFamilyPassParameters.of(family, weights, means, True, 2)
    out = _core.exponential_family_mixture_pass(
        indptr,
        indices,
        data,
        X.shape[1],
        None,
        parameters.log_weights,
        parameters.natural_transposed,
        parameters.log_partition,
        family,
        return_responsibilities=True,
        n_threads=2,
    )
    expected = e_step(X, weights, means, family)
    np.testing.assert_allclose(out["responsibilities"], expected["responsibilities"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(out["nk"], expected["nk"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out["sx"], expected["sx"], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("family", ["bernoulli", "poisson"])
@pytest.mark.parametrize("k", [8, 40])
def test_a_pass_large_enough_for_threads_is_bitwise_the_same_for_any_thread_count(family, k):
    # Passes of a few million multiply-adds run on one thread whatever n_threads says; this one has
    # enough work for the threads to share it (blocks, and sx by ranges of columns at K = 40 or of
    # components at K = 8). sx is checked against X^T (w q) from the pass's own responsibilities.
    rng = np.random.default_rng(k)
    n, d, per_row = 20000, 30000, 60
    indices = np.sort(rng.choice(d, size=(n, per_row)), axis=1)
    keep = np.c_[np.ones((n, 1), dtype=bool), np.diff(indices, axis=1) > 0]
    indptr = np.r_[0, np.cumsum(keep.sum(axis=1))].astype(np.int64)
    values = np.ones(int(indptr[-1])) if family == "bernoulli" else rng.integers(1, 4, size=int(indptr[-1]))
    X = sp.csr_array((values.astype(np.float64), indices[keep].astype(np.int32), indptr), shape=(n, d))
    weights = rng.dirichlet(np.ones(k))
    if family == "bernoulli":
        means = rng.uniform(0.001, 0.05, size=(k, d))
    else:
        means = FAMILIES[family].floored(rng.gamma(0.5, 0.05, size=(k, d)), 1e-10)
    w = rng.uniform(0.0, 2.0, size=n)
    one_stats, one_out = passes_bitwise_equal_for_2_and_3_threads(X, weights, means, family, w)
    q = one_out["responsibilities"]
    np.testing.assert_allclose(one_stats.sx, (X.T @ (q * w[:, None])).T, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(one_stats.nk, w @ q, rtol=1e-10)


@pytest.mark.parametrize("family", ["bernoulli", "poisson"])
def test_rounds_sized_by_their_rows_responsibilities_keep_sx_bitwise(family):
    # At K = 1,024 a round first holds 1,024 rows' K responsibilities each; a row with at most K / 4
    # non-zero ones keeps only those (12 bytes each), so the next rounds take many more rows, and sx
    # (D x K, 16 MB) is summed column by column. Rows of one cluster's columns, or of random columns,
    # have posteriors on few components; empty rows spread theirs over all.
    rng = np.random.default_rng(1)
    n, d, k = 6000, 2000, 1024
    own_columns = np.stack([rng.choice(d, size=30, replace=False) for _ in range(k)])
    means = np.full((k, d), 1e-60)  # far below: a row's other components underflow to exactly 0
    means[np.arange(k)[:, None], own_columns] = 0.6
    labels = rng.integers(k, size=n)
    rows = []
    for i in range(n):
        if i % 10 == 0:
            rows.append(np.array([], dtype=np.int64))  # empty
        elif i % 10 == 1:
            rows.append(np.unique(rng.choice(d, size=3)))  # random columns
        else:
            rows.append(np.unique(rng.choice(own_columns[labels[i]], size=12)))
    indptr = np.r_[0, np.cumsum([len(r) for r in rows])].astype(np.int64)
    indices = np.concatenate(rows).astype(np.int32)
    values = np.ones(len(indices)) if family == "bernoulli" else rng.integers(1, 4, size=len(indices)) * 1.0
    X = sp.csr_array((values, indices, indptr), shape=(n, d))
    weights = np.full(k, 1.0 / k)
    w = rng.uniform(0.0, 2.0, size=n)
    w[::37] = 0.0
    parameters = ExponentialFamilyPassParameters.of(family, weights, means, True, 0)
    runs = {
        (n_threads, skip): responsibilities_pass(X, w, parameters, family, n_threads, skip)
        for n_threads, skip in ((1, True), (2, True), (3, True), (2, False))
    }
    first = runs[1, True]
    nonzero = np.count_nonzero(first["responsibilities"], axis=1)
    assert np.mean(nonzero <= k // 4) > 0.7 and np.any(nonzero > k // 4)
    for run in runs.values():
        np.testing.assert_array_equal(run["sx"], first["sx"])
        np.testing.assert_array_equal(run["nk"], first["nk"])
    wq = first["responsibilities"] * w[:, None]
    np.testing.assert_allclose(first["sx"], wq.T @ X, rtol=1e-10, atol=1e-12)
