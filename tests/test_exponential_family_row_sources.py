"""FastBernoulliMixture and FastPoissonMixture on streamed sparse rows: a CSR matrix whose buffers are
memmaps (read in blocks of rows), and dask arrays of sparse (or dense) chunks.

Every source is compared with the in-memory CSR fit of the same rows from the same start, block
statistics with the one-call statistics and with the plain NumPy reference
(``reference_exponential_family``), and Dask with the in-process pass over the same blocks.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.utils import check_random_state

import fastelbo._sparse_row_source as sparse_row_source_module
import peak_rss
from exponential_family_truncated_fits import (
    STARTS,
    assert_same_truncated_fit,
    expected_starts,
    record_starts,
    recorded_reference,
    truncated_fit,
    truncated_params,
)
from fastelbo import FastBernoulliMixture, FastPoissonMixture, RowSource
from fastelbo._block_reduction import reduce_blocks
from fastelbo._sparse_row_source import SparseRowSource, is_memory_mapped, is_streamed_csr
from fastelbo.mixture._discrete_rows import DiscreteBlockReader
from fastelbo.mixture._exponential_family import (
    ExponentialFamilyPassParameters,
    InMemoryRows,
    exponential_family_block_pass,
    floor_gap,
)
from fastelbo.mixture._exponential_family_mixture import MixturePassRequest
from reference_exponential_family import e_step, entropy_sum, free_energy, truncated_e_step
from row_sources import max_relative_difference, sample_weights
from row_sources import memmap as row_sources_memmap

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

ESTIMATORS = {"bernoulli": FastBernoulliMixture, "poisson": FastPoissonMixture}
FAMILIES = list(ESTIMATORS)


def sparse_data(family, n=700, d=40, k=3, seed=0):
    """Sparse rows from ``k`` clusters (most entries zero), as a canonical CSR matrix."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(k, size=n)
    centres = rng.uniform(0.02, 0.3, size=(k, d))
    if family == "bernoulli":
        X = (rng.uniform(size=(n, d)) < centres[labels]).astype(np.float64)
    else:
        X = rng.poisson(3 * centres[labels]).astype(np.float64)
    X[5] = 0.0  # an empty row
    return sp.csr_matrix(X)


def memmapped_csr(X, tmp_path, name="x", csr=sp.csr_matrix):
    """``X`` saved as three .npy files and opened as a CSR whose buffers are memmaps."""
    arrays = {}
    for part in ("data", "indices", "indptr"):
        path = tmp_path / f"{name}_{part}.npy"
        np.save(path, getattr(X, part))
        arrays[part] = np.load(path, mmap_mode="r")
    return csr((arrays["data"], arrays["indices"], arrays["indptr"]), shape=X.shape)


def sparse_chunks(X, rows):
    """``X`` as a dask array of CSR chunks of ``rows`` rows."""
    return da.from_array(X, chunks=(rows, -1), asarray=False)


def small_blocks(monkeypatch, X, rows):
    """Make the default block of a streamed CSR hold about ``rows`` rows of ``X``."""
    mean_row = max(1.0, X.nnz / X.shape[0])
    monkeypatch.setattr(
        sparse_row_source_module, "BLOCK_BYTES", int(rows * np.ceil(12 * mean_row)), raising=True
    )
    monkeypatch.setattr(sparse_row_source_module, "MIN_NONZEROS_PER_FEATURE", 0, raising=True)


def assert_same_fit(fitted, reference, rtol=1e-10):
    assert max_relative_difference(fitted.weights_, reference.weights_) < rtol
    assert max_relative_difference(fitted.means_, reference.means_) < rtol
    assert fitted.lower_bound_ == pytest.approx(reference.lower_bound_, rel=rtol, abs=rtol)
    assert fitted.n_iter_ == reference.n_iter_
    ours, theirs = fitted.entropy_decomposition(), reference.entropy_decomposition()
    for field in ("elbo", "variational_entropy", "prior_entropy", "observable_entropy", "data_term"):
        assert getattr(ours, field) == pytest.approx(getattr(theirs, field), rel=rtol, abs=rtol), field


def test_a_csr_of_memmaps_is_recognised_and_an_in_memory_one_is_not(tmp_path):
    X = sparse_data("bernoulli")
    for csr in (sp.csr_matrix, sp.csr_array):
        mapped = memmapped_csr(X, tmp_path, csr=csr)
        assert is_memory_mapped(mapped.data) and is_streamed_csr(mapped)
    assert not is_streamed_csr(X)
    assert not is_streamed_csr(np.load(tmp_path / "x_data.npy", mmap_mode="r"))  # dense memmap
    assert not is_streamed_csr(memmapped_csr(X, tmp_path).tocsc())  # converted: in memory


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("weighted", [False, True])
def test_statistics_of_1_2_and_7_blocks_equal_the_one_call_statistics_and_the_reference(
    tmp_path, family, weighted
):
    X = sparse_data(family)
    n = X.shape[0]
    sample_weight = sample_weights(n) if weighted else None
    rng = np.random.default_rng(3)
    weights = rng.dirichlet(np.ones(3))
    means = rng.uniform(0.05, 0.5, size=(3, X.shape[1]))
    parameters = ExponentialFamilyPassParameters.of(family, weights, means, True, 2)
    request = MixturePassRequest(log_norm=True, responsibilities=True, labels=True)

    def run(source):
        return reduce_blocks(
            source,
            lambda rows, w, state: exponential_family_block_pass(parameters, request, rows, w, state),
            sample_weight,
            None,
            request.outputs(3, np.float64),
        )[:2]

    one, one_out = run(InMemoryRows(X))
    reference = e_step(X.toarray(), weights, means, family, sample_weight)
    mapped = memmapped_csr(X, tmp_path)
    reader = DiscreteBlockReader("FastMixture", family)
    for block_rows in (n, (n + 1) // 2, 100):
        source = SparseRowSource(mapped, reader, block_rows=block_rows)
        assert len(source.spans()) == {n: 1, (n + 1) // 2: 2, 100: 7}[block_rows]
        stats, out = run(source)
        for name in ("sum_weight", "sum_log_norm", "sum_entropy", "sum_log_base"):
            assert getattr(stats, name) == pytest.approx(getattr(one, name), rel=1e-12, abs=1e-12)
            assert getattr(stats, name) == pytest.approx(reference[name], rel=1e-10)
        assert (
            max_relative_difference(stats.nk, one.nk) < 1e-12
            and max_relative_difference(stats.sx, one.sx) < 1e-12
        )
        assert max_relative_difference(stats.nk, reference["nk"]) < 1e-10
        assert max_relative_difference(stats.sx, reference["sx"]) < 1e-10
        np.testing.assert_allclose(out["log_norm"], one_out["log_norm"], rtol=1e-12)
        np.testing.assert_allclose(out["log_norm"], reference["log_norm"], rtol=1e-10)
        np.testing.assert_allclose(out["responsibilities"], reference["responsibilities"], atol=1e-12)
        np.testing.assert_array_equal(out["labels"], reference["labels"])


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("init_params", ["k-means++", "random"])
def test_memmapped_csr_and_dask_fits_equal_the_in_memory_fit(
    tmp_path, monkeypatch, family, weighted, init_params
):
    X = sparse_data(family)
    sample_weight = sample_weights(X.shape[0]) if weighted else None
    params = dict(n_components=3, random_state=0, init_params=init_params, tol=1e-8, max_iter=30)
    estimator = ESTIMATORS[family]
    in_memory = estimator(**params).fit(X, sample_weight=sample_weight)
    small_blocks(monkeypatch, X, 90)
    mapped = memmapped_csr(X, tmp_path)
    streamed = estimator(**params).fit(mapped, sample_weight=sample_weight)
    assert_same_fit(streamed, in_memory)
    with dask.config.set(scheduler="synchronous"):
        chunked = estimator(**params).fit(sparse_chunks(X, 128), sample_weight=sample_weight)
        dense_chunks = estimator(**params).fit(
            da.from_array(X.toarray(), chunks=(128, -1)), sample_weight=sample_weight
        )
    assert_same_fit(chunked, in_memory)
    # Dense chunks are read as CSR: bitwise the fit of the same sparse chunks.
    np.testing.assert_array_equal(dense_chunks.means_, chunked.means_)
    assert dense_chunks.lower_bound_ == chunked.lower_bound_
    # The same blocks in the process and on Dask: bitwise the same fit.
    in_blocks = estimator(**params).fit(SparseRowSource(mapped, block_rows=128), sample_weight=sample_weight)
    np.testing.assert_array_equal(in_blocks.means_, chunked.means_)
    assert in_blocks.lower_bound_ == chunked.lower_bound_


@pytest.mark.parametrize("family", FAMILIES)
def test_inference_on_memmapped_csr_and_dask_arrays_equals_the_in_memory_results(tmp_path, family):
    X = sparse_data(family)
    model = ESTIMATORS[family](n_components=3, random_state=0).fit(X)
    mapped = memmapped_csr(X, tmp_path)
    chunked = sparse_chunks(X, 128)
    dense_chunks = da.from_array(X.toarray(), chunks=(100, -1))
    expected = {
        "score_samples": model.score_samples(X),
        "predict": model.predict(X),
        "predict_proba": model.predict_proba(X),
    }
    with dask.config.set(scheduler="synchronous"):
        for data in (mapped, SparseRowSource(mapped, block_rows=64), chunked, dense_chunks):
            for method, values in expected.items():
                got = getattr(model, method)(data)
                if isinstance(data, da.Array):
                    assert isinstance(got, da.Array) and got.chunks[0] == data.chunks[0]
                    got = got.compute()
                if method == "predict":
                    np.testing.assert_array_equal(got, values)
                else:
                    np.testing.assert_allclose(got, values, rtol=1e-12, atol=1e-14)
            assert model.score(data) == pytest.approx(model.score(X), rel=1e-12)
            ours, theirs = model.entropy_decomposition(data), model.entropy_decomposition(X)
            assert ours.elbo == pytest.approx(theirs.elbo, rel=1e-12)
            assert ours.data_term == pytest.approx(theirs.data_term, rel=1e-12, abs=1e-15)
            assert model.bic(data) == pytest.approx(model.bic(X), rel=1e-12)


@pytest.mark.parametrize("family", FAMILIES)
def test_per_row_results_of_sparse_chunks_are_a_snapshot_with_no_estimator_in_the_graph(family):
    from test_dask_per_row_snapshot import _estimators_in

    X = sparse_data(family)
    model = ESTIMATORS[family](n_components=3, random_state=0).fit(X)
    expected = {method: getattr(model, method)(X) for method in ("predict", "predict_proba", "score_samples")}
    lazy = {method: getattr(model, method)(sparse_chunks(X, 128)) for method in expected}
    for method, result in lazy.items():
        assert _estimators_in(result.__dask_graph__()) == [], method
    model.fit(sparse_data(family, seed=5))  # other parameters before the results are computed
    with dask.config.set(scheduler="synchronous"):
        for method, result in lazy.items():
            np.testing.assert_allclose(result.compute(), expected[method], rtol=1e-12, atol=1e-14)


def test_sparse_chunks_split_along_the_columns_are_joined_into_whole_rows():
    X = sparse_data("poisson")
    params = dict(n_components=3, random_state=0, max_iter=20)
    with dask.config.set(scheduler="synchronous"):
        split = FastPoissonMixture(**params).fit(da.from_array(X, chunks=(128, 15), asarray=False))
        whole = FastPoissonMixture(**params).fit(sparse_chunks(X, 128))
    np.testing.assert_array_equal(split.means_, whole.means_)
    assert split.lower_bound_ == whole.lower_bound_


@pytest.mark.parametrize("family", FAMILIES)
def test_a_bad_value_in_a_later_block_is_named_with_its_row_and_column(tmp_path, monkeypatch, family):
    X = sparse_data(family).tolil()
    X[613, 17] = 2.5
    X = X.tocsr()
    estimator = ESTIMATORS[family](n_components=2, random_state=0)
    match = r"needs every value of X to be .*; X holds 2\.5 at row 613, column 17"
    small_blocks(monkeypatch, X, 100)
    mapped = memmapped_csr(X, tmp_path)
    assert len(SparseRowSource(mapped).spans()) > 5
    with pytest.raises(ValueError, match=match):
        estimator.fit(mapped)
    with dask.config.set(scheduler="synchronous"), pytest.raises(ValueError, match=match):
        estimator.fit(sparse_chunks(X, 100))
    fitted = ESTIMATORS[family](n_components=2, random_state=0).fit(sparse_data(family))
    with dask.config.set(scheduler="synchronous"), pytest.raises(ValueError, match=match):
        fitted.predict(sparse_chunks(X, 100)).compute()
    with pytest.raises(ValueError, match=match):
        fitted.score_samples(mapped)


@pytest.mark.parametrize("family", FAMILIES)
def test_in_memory_csr_values_checked_in_chunks_name_a_bad_value_in_a_later_chunk(monkeypatch, family):
    import fastelbo.mixture._discrete_rows as discrete_rows

    monkeypatch.setattr(discrete_rows, "_CHUNK", 7)
    X = sparse_data(family).tolil()
    X[613, 17] = -1.0
    X = X.tocsr()
    with pytest.raises(ValueError, match=r"X holds -1\.0 at row 613, column 17"):
        ESTIMATORS[family](n_components=2).fit(X)
    Y = sparse_data(family)
    Y.data[len(Y.data) - 3] = 0.0  # an explicit zero far beyond the first chunk: dropped as in one chunk
    checked = discrete_rows.checked_rows(Y, "M", discrete_rows.FAMILIES[family])
    assert checked.nnz == Y.nnz - 1 and np.all(checked.data != 0)


def test_corrupt_csr_arrays_in_a_later_block_are_refused_naming_the_rows(tmp_path):
    X = sparse_data("bernoulli")
    bad_column, bad_indptr = X.copy(), X.copy()
    bad_column.indices[bad_column.indptr[450]] = X.shape[1]  # one past the last column
    bad_indptr.indptr[430] = bad_indptr.indptr[432] + 1  # goes back after row 430
    model = FastBernoulliMixture(n_components=2, random_state=0, init_params="random")
    for name, corrupt in (("column", bad_column), ("indptr", bad_indptr)):
        mapped = memmapped_csr(corrupt, tmp_path, name=name)
        with pytest.raises(ValueError, match=r"X: the CSR arrays of rows 400:500 are corrupt"):
            model.fit(SparseRowSource(mapped, block_rows=100))


def test_explicit_zeros_duplicates_and_unsorted_columns_in_a_memmapped_csr_change_nothing(tmp_path):
    X = sparse_data("poisson")
    messy = X.copy()
    # Row 3's first entry split in two (a duplicate), its entries reversed, and an explicit zero.
    start, stop = messy.indptr[3], messy.indptr[4]
    data, indices = list(messy.data), list(messy.indices)
    row_data, row_indices = data[start:stop], indices[start:stop]
    half = row_data[0] / 2
    empty_column = int(np.setdiff1d(np.arange(X.shape[1]), row_indices)[0])
    row_data = [half, half, *row_data[1:], 0.0][::-1]
    row_indices = [row_indices[0], row_indices[0], *row_indices[1:], empty_column][::-1]
    data[start:stop], indices[start:stop] = row_data, row_indices
    indptr = messy.indptr.copy()
    indptr[4:] += len(row_data) - (stop - start)
    messy = sp.csr_matrix(
        (np.array(data), np.array(indices, dtype=X.indices.dtype), indptr.astype(X.indptr.dtype)),
        shape=X.shape,
    )
    assert not messy.has_canonical_format
    params = dict(n_components=3, random_state=0, max_iter=20)
    clean = FastPoissonMixture(**params).fit(X)
    streamed = FastPoissonMixture(**params).fit(
        SparseRowSource(memmapped_csr(messy, tmp_path), block_rows=100)
    )
    assert_same_fit(streamed, clean)


def is_lazy(values):
    return isinstance(values, da.Array)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("start", list(STARTS))
def test_truncated_fits_on_a_memmapped_csr_and_dask_arrays_equal_the_in_memory_fit(
    tmp_path, monkeypatch, family, weighted, start
):
    X = sparse_data(family)
    sample_weight = sample_weights(X.shape[0]) if weighted else None
    estimator = ESTIMATORS[family]
    params, starts, reference, expected_labels = recorded_reference(
        estimator, X, start, sample_weight, monkeypatch
    )
    small_blocks(monkeypatch, X, 90)
    mapped = memmapped_csr(X, tmp_path)
    assert len(SparseRowSource(mapped).spans()) > 5
    sources = {
        "memmapped CSR": mapped,
        "7 blocks": SparseRowSource(mapped, block_rows=100),
        "sparse chunks": sparse_chunks(X, 128),
        "dense chunks": da.from_array(X.toarray(), chunks=(100, -1)),
    }
    fits = {}
    with dask.config.set(scheduler="synchronous"):
        for name, data in sources.items():
            starts.clear()
            fits[name] = truncated_fit(estimator, data, params, sample_weight)
            assert starts == expected_starts(start), name
            assert_same_truncated_fit(fits[name], reference)
            labels = fits[name][0].predict(data)  # exact, as in memory
            assert is_lazy(labels) == is_lazy(data)
            np.testing.assert_array_equal(np.asarray(labels), expected_labels)
    # The same blocks in the process and on Dask: bitwise the same fit.
    in_blocks, in_blocks_labels = truncated_fit(
        estimator, SparseRowSource(mapped, block_rows=128), params, sample_weight
    )
    chunked, chunked_labels = fits["sparse chunks"]
    for name in ("weights_", "means_", "elbo_history_", "entropy_sum_history_"):
        np.testing.assert_array_equal(getattr(in_blocks, name), getattr(chunked, name), err_msg=name)
    np.testing.assert_array_equal(in_blocks_labels, chunked_labels)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("kind", ["memmapped CSR", "sparse chunks"])
def test_a_truncated_fit_on_a_streamed_source_keeps_the_identity_after_every_m_step(tmp_path, family, kind):
    """The sets gathered from the blocks give the kernel's ELBO with the plain NumPy reference, and
    after every M-step F(q^t, Theta^{t+1}) = S(q^t, Theta^{t+1}) (up to the floor's gap)."""
    X = sparse_data(family)
    dense = X.toarray()
    w = sample_weights(X.shape[0])
    data = SparseRowSource(memmapped_csr(X, tmp_path), block_rows=100) if kind == "memmapped CSR" else None
    model = ESTIMATORS[family](n_components=10, n_active=2, n_neighbors=3, random_state=0)
    with dask.config.set(scheduler="synchronous"):
        data = sparse_chunks(X, 128) if data is None else data
        model._check_hyperparameters()
        source = model._validate_rows(data, reset=True, min_samples=2)
        assert len(source.spans()) == {"memmapped CSR": 7, "sparse chunks": 6}[kind]
        model._initialize_parameters(source, check_random_state(model.random_state), w)
        elbos = []
        for iteration in range(10):
            weights, means = model.weights_.copy(), model.means_.copy()
            stats = model._e_step(source, sample_weight=w)
            elbos.append(stats.elbo)
            if iteration == 0:  # exact: the search starts at the second E-step
                assert model._em_truncated is None
                model._m_step(stats)
                continue
            active = model._em_truncated.active
            assert active.shape == (X.shape[0], 2)
            q, truncated_F = truncated_e_step(dense, weights, means, family, active, w)
            assert stats.elbo == pytest.approx(truncated_F, rel=1e-11, abs=0)
            model._m_step(stats)
            F = free_energy(dense, q, model.weights_, model.means_, family, w)
            S = model._decompose(stats).entropy_sum
            assert S + floor_gap(model._model, stats, model.means_) == pytest.approx(F, rel=1e-12, abs=0)
            assert S == pytest.approx(
                entropy_sum(dense, q, model.weights_, model.means_, family, w), rel=1e-12
            )
        model._discard_run_state()
    assert np.all(np.diff(elbos[1:]) >= -1e-12 * np.abs(elbos[2:]))


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("start", list(STARTS))
def test_a_truncated_streamed_fit_is_bitwise_the_same_for_one_and_two_threads(
    tmp_path, monkeypatch, family, start
):
    X = sparse_data(family)
    w = sample_weights(X.shape[0])
    params = truncated_params(start, X.shape[1], monkeypatch)
    mapped = memmapped_csr(X, tmp_path)
    with dask.config.set(scheduler="synchronous"):
        for make in (lambda: SparseRowSource(mapped, block_rows=100), lambda: sparse_chunks(X, 128)):
            one, two = (
                truncated_fit(ESTIMATORS[family], make(), dict(params, n_jobs=n_jobs), w) for n_jobs in (1, 2)
            )
            for name in ("weights_", "means_", "elbo_history_", "entropy_sum_history_"):
                np.testing.assert_array_equal(getattr(one[0], name), getattr(two[0], name), err_msg=name)
            np.testing.assert_array_equal(one[1], two[1])


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("start", list(STARTS))
def test_a_truncated_fit_on_a_local_cluster_equals_the_in_memory_fit(dask_client, monkeypatch, family, start):
    X = sparse_data(family)
    w = sample_weights(X.shape[0])
    params = truncated_params(start, X.shape[1], monkeypatch)
    estimator = ESTIMATORS[family]
    starts = record_starts(monkeypatch)
    reference = truncated_fit(estimator, X, params, w)
    starts.clear()
    with dask_client.as_current():
        fit = truncated_fit(estimator, sparse_chunks(X, 128), params, w)
    assert starts == expected_starts(start)
    assert_same_truncated_fit(fit, reference)


def test_the_exact_pass_cost_counts_the_non_zeros_a_source_stores_and_estimates_the_others(
    tmp_path, monkeypatch
):
    import fastelbo._row_source as row_source_module

    X = sparse_data("poisson")
    n, d = X.shape
    dense = X.toarray()
    model = FastPoissonMixture(n_components=3, n_active=2, random_state=0)

    def nnz(data, **params):
        model.set_params(**params)
        model._check_hyperparameters()
        source = model._validate_rows(data, reset=True, min_samples=2)
        model._initialize_parameters(source, check_random_state(0), None)
        return model._nnz(source)

    mapped = memmapped_csr(X, tmp_path)
    given = dict(weights_init=np.full(3, 1 / 3), means_init=np.full((3, d), 0.5))
    assert nnz(X) == nnz(dense) == X.nnz
    assert nnz(mapped) == nnz(mapped, **given) == X.nnz  # indptr[-1]
    with dask.config.set(scheduler="synchronous"):
        # No stored count: the initialisation's sample, every row of a source this small ...
        assert nnz(sparse_chunks(X, 128), weights_init=None, means_init=None) == X.nnz
        assert nnz(da.from_array(dense, chunks=(100, -1))) == X.nnz
        assert nnz(RowSource(row_sources_memmap(dense, tmp_path), block_rows=50)) == X.nnz
        # ... or, where no sample was read, the upper bound N D.
        assert nnz(sparse_chunks(X, 128), **given) == n * d
        assert nnz(RowSource(dense, block_rows=50), **given) == n * d
    # A sample of whole blocks: its non-zeros scaled to all rows.
    monkeypatch.setattr(row_source_module, "INIT_SAMPLE_ROWS", 300)
    estimate = nnz(RowSource(dense, block_rows=50), weights_init=None, means_init=None)
    _, index = RowSource(dense, block_rows=50).sample(300, check_random_state(0))
    assert 300 <= len(index) < n
    assert estimate == pytest.approx(np.count_nonzero(dense[index]) * n / len(index), rel=1e-15)
    assert estimate != X.nnz


def test_inference_on_a_streamed_csr_with_other_features_is_refused(tmp_path):
    model = FastBernoulliMixture(n_components=2, random_state=0).fit(sparse_data("bernoulli"))
    other = sparse_data("bernoulli", d=30)
    with pytest.raises(ValueError, match="features"):
        model.predict(memmapped_csr(other, tmp_path))
    with pytest.raises(ValueError, match="features"):
        model.predict(sparse_chunks(other, 100))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_large_streamed_csr_is_initialised_from_a_sample_of_whole_blocks(tmp_path, monkeypatch):
    import fastelbo._row_source as row_source_module

    X = sparse_data("poisson", n=900)
    monkeypatch.setattr(row_source_module, "INIT_SAMPLE_ROWS", 300)
    source = SparseRowSource(memmapped_csr(X, tmp_path), block_rows=50)
    rows, index = source.sample(300, np.random.RandomState(0))
    assert sp.issparse(rows) and rows.shape == (len(index), X.shape[1]) and 300 <= len(index) < 400
    assert np.all(np.diff(index) > 0)
    np.testing.assert_array_equal(rows.toarray(), X[index].toarray())
    params = dict(n_components=3, random_state=0, max_iter=5)
    model = FastPoissonMixture(**params).fit(source)
    assert np.isfinite(model.lower_bound_)
    # A dask array of the same rows samples the same runs: the same start, and chunks equal to the
    # blocks give bitwise the same fit.
    with dask.config.set(scheduler="synchronous"):
        chunked = FastPoissonMixture(**params).fit(sparse_chunks(X, 50))
    np.testing.assert_array_equal(chunked.means_, model.means_)
    # A bad value in a sampled row is named with its row in the whole X, by either source.
    bad_row = int(index[len(index) // 2])
    X = X.tolil()
    X[bad_row, 3] = 0.5
    X = X.tocsr()
    match = f"X holds 0.5 at row {bad_row}, column 3"
    with pytest.raises(ValueError, match=match):
        FastPoissonMixture(**params).fit(SparseRowSource(memmapped_csr(X, tmp_path, "bad"), block_rows=50))
    with dask.config.set(scheduler="synchronous"), pytest.raises(ValueError, match=match):
        FastPoissonMixture(**params).fit(sparse_chunks(X, 50))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("family", FAMILIES)
def test_a_fit_on_a_local_cluster_equals_the_in_memory_fit(dask_client, family):
    X = sparse_data(family)
    params = dict(n_components=3, random_state=0, tol=1e-8, max_iter=30)
    estimator = ESTIMATORS[family]
    in_memory = estimator(**params).fit(X)
    with dask_client.as_current():
        chunked = sparse_chunks(X, 128)
        on_cluster = estimator(**params).fit(chunked)
        labels = on_cluster.predict(chunked).compute()
        proba = on_cluster.predict_proba(chunked).compute()
        score = on_cluster.score(chunked)
        decomposition = on_cluster.entropy_decomposition(chunked)
    assert_same_fit(on_cluster, in_memory)
    np.testing.assert_array_equal(labels, in_memory.predict(X))
    np.testing.assert_allclose(proba, in_memory.predict_proba(X), atol=1e-10)
    assert score == pytest.approx(in_memory.score(X), rel=1e-10)
    assert decomposition.elbo == pytest.approx(in_memory.entropy_decomposition(X).elbo, rel=1e-10)


_MEMORY_SCRIPT = """
import fastelbo._sparse_row_source as module
from fastelbo import FastPoissonMixture

folder, block_bytes = sys.argv[1], int(sys.argv[2])
module.BLOCK_BYTES = block_bytes
module.MIN_NONZEROS_PER_FEATURE = 0  # blocks of block_bytes, however many columns
row_source.INIT_SAMPLE_ROWS = 5_000  # the k-means++ seeding reads a fortieth of the rows
parts = {p: np.load(f"{folder}/{p}.npy", mmap_mode="r") for p in ("data", "indices", "indptr")}
with open(f"{folder}/shape.json") as shape:
    shape = tuple(json.load(shape))
X = sp.csr_matrix((parts["data"], parts["indices"], parts["indptr"]), shape=shape)
warnings.simplefilter("ignore")  # ConvergenceWarning: a fixed number of iterations
model = FastPoissonMixture(n_components=4, random_state=0, max_iter=3, tol=0.0, n_jobs=1)
model.fit(sp.csr_matrix(np.ones((8, X.shape[1]))))  # the first fit's imports and set-up


def work():
    model.fit(X)
    return {"lower_bound": model.lower_bound_}


report(work)
"""


def test_a_memmapped_csr_larger_than_a_block_is_never_copied_whole(tmp_path):
    """In a fresh process: a fit on a 49 MB memmapped CSR read in ~1 MB blocks allocates far less
    than the CSR (peak RssAnon above the baseline below a quarter of it; a copy of its data alone
    would be two thirds of it). The initialisation's sample is a fortieth of the rows (every row of a
    source with at most INIT_SAMPLE_ROWS is read, by design)."""
    rng = np.random.default_rng(0)
    n, d, per_row = 200_000, 2000, 20
    indptr = np.arange(0, n * per_row + 1, per_row, dtype=np.int32)
    # Distinct columns in every row: an offset plus multiples of d / per_row, sorted.
    offsets = rng.integers(0, d, size=(n, 1))
    indices = np.sort((offsets + np.arange(per_row) * (d // per_row)) % d, axis=1).astype(np.int32)
    data = rng.integers(1, 4, size=n * per_row).astype(np.float64)
    for name, array in (("data", data), ("indices", indices.ravel()), ("indptr", indptr)):
        np.save(tmp_path / f"{name}.npy", array)
    (tmp_path / "shape.json").write_text(f"[{n}, {d}]")
    size = data.nbytes + indices.nbytes + indptr.nbytes
    del data, indices, indptr
    measured = peak_rss.measure(_MEMORY_SCRIPT, tmp_path, 2**20)
    assert np.isfinite(measured["lower_bound"])
    assert measured["peak"] - measured["baseline"] < size / 4, (measured, size)


@pytest.mark.parametrize("estimator", [FastBernoulliMixture, FastPoissonMixture])
def test_a_memmapped_csr_of_complex_values_is_refused_as_an_in_memory_one_is(tmp_path, estimator):
    X = sp.csr_matrix(np.eye(6, 3) * (1 + 1j))
    with pytest.raises(ValueError, match="[Cc]omplex"):
        estimator(n_components=2).fit(X)
    with pytest.raises(ValueError, match="X must hold real numbers, got dtype complex128"):
        estimator(n_components=2).fit(memmapped_csr(X, tmp_path))


@pytest.mark.parametrize("estimator", [FastBernoulliMixture, FastPoissonMixture])
def test_dask_chunks_that_do_not_hold_the_real_numbers_their_array_declares_are_refused(estimator):
    # Complex chunks of a float64 graph lost their imaginary parts (a NumPy ComplexWarning only).
    X = np.eye(40, 3)
    for chunk, dtype in [
        (lambda b: b + 0j, "complex128"),
        (lambda b: sp.csr_matrix(b + 0j), "complex128"),
        (lambda b: b.astype(str), "<U"),
    ]:
        declared_real = da.from_array(X, chunks=(10, 3)).map_blocks(chunk, dtype=np.float64)
        with pytest.raises(TypeError, match=rf"X must hold real numbers; rows \d+:\d+ hold dtype {dtype}"):
            estimator(n_components=2).fit(declared_real)


@pytest.mark.parametrize(
    ("n_rows", "n_features", "per_row", "expected_block_bytes"),
    [
        (50_000, 100_000, 40, 12 * 128 * 100_000),  # 128 non-zeros per column: 147 MiB of them
        (50_000, 2_000, 40, sparse_row_source_module.BLOCK_BYTES),  # at least BLOCK_BYTES
        (50_000, 1_000_000, 40, sparse_row_source_module.MAX_BLOCK_BYTES),  # at most MAX_BLOCK_BYTES
    ],
)
def test_a_streamed_csr_is_read_in_blocks_of_128_non_zeros_per_column_within_the_byte_bounds(
    tmp_path, n_rows, n_features, per_row, expected_block_bytes
):
    """A kernel call on a block costs a few passes over K x D arrays besides its non-zeros: the
    default block holds about 128 non-zeros per column, so that at D = 100,000 a block is 147 MiB
    of non-zeros (not 32 MiB, which would make the set-up a third of the pass), but never beyond
    MAX_BLOCK_BYTES, nor below BLOCK_BYTES."""
    indptr = np.arange(0, n_rows * per_row + 1, per_row, dtype=np.int64)
    indices = np.tile(np.arange(per_row, dtype=np.int32), n_rows)
    X = sp.csr_matrix((np.ones(n_rows * per_row), indices, indptr), shape=(n_rows, n_features))
    source = SparseRowSource(memmapped_csr(X, tmp_path))
    assert source.block_rows == expected_block_bytes // (12 * per_row)


def test_a_block_of_a_memmapped_csr_is_read_in_place_not_copied(tmp_path):
    """SciPy copies a view of a much larger array when it builds a CSR from it: a block's values and
    columns must still be the map's own pages, and read as the rows they are."""
    rng = np.random.default_rng(0)
    X = sp.random(
        400, 30, density=0.2, format="csr", random_state=rng, data_rvs=lambda n: rng.integers(1, 5, n)
    )
    mapped = memmapped_csr(X, tmp_path)
    source = SparseRowSource(mapped, block_rows=50)
    block = source.read(100, 150)
    assert np.shares_memory(block.data, mapped.data)
    assert np.shares_memory(block.indices, mapped.indices)
    assert block.shape == (50, 30)
    assert block.has_canonical_format
    np.testing.assert_array_equal(block.toarray(), X[100:150].toarray())


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("dtype", [">f8", ">i4", "<f2"])
def test_a_memmapped_csr_of_big_endian_or_float16_values_fits_as_in_memory(tmp_path, dtype):
    """Values SciPy's sparse types hold only once converted (another byte order, float16) are
    converted block by block, exactly: the streamed fit equals the in-memory one."""
    rng = np.random.default_rng(0)
    X = sp.csr_matrix(rng.poisson(0.7, (1200, 20)).astype(float))
    X.data = X.data.astype(dtype)
    mapped = memmapped_csr(X, tmp_path)
    assert mapped.data.dtype == np.dtype(dtype)
    streamed = FastPoissonMixture(n_components=3, max_iter=5, tol=0, random_state=0).fit(
        SparseRowSource(mapped, block_rows=100)
    )
    in_memory = FastPoissonMixture(n_components=3, max_iter=5, tol=0, random_state=0).fit(
        sp.csr_matrix((X.data.astype(np.float64), X.indices, X.indptr), shape=X.shape)
    )
    assert_same_fit(streamed, in_memory)
    assert np.array_equal(streamed.predict(mapped), in_memory.predict(X.astype(np.float64)))
