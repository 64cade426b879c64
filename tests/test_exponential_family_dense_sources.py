"""FastBernoulliMixture and FastPoissonMixture on dense streamed rows: a numpy.memmap, an h5py
dataset, a Zarr array and a RowSource (of any of them, or of an in-memory array, in blocks of its
own size) are read block by block, each block's values checked and read as CSR.

Every fit is compared with the in-memory fit of the same rows from the same start, whose passes the
kernel tests compare with the plain NumPy reference (``reference_exponential_family``), and its
log-likelihood here with that reference too.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import fastelbo._row_source as row_source_module
import peak_rss
import row_sources
from exponential_family_truncated_fits import (
    STARTS,
    assert_same_truncated_fit,
    expected_starts,
    recorded_reference,
    truncated_fit,
    truncated_params,
)
from fastelbo import FastBernoulliMixture, FastPoissonMixture, RowSource
from fastelbo.mixture._discrete_rows import DiscreteBlockReader
from reference_exponential_family import e_step
from row_sources import max_relative_difference, sample_weights

h5py = pytest.importorskip("h5py")
zarr = pytest.importorskip("zarr")

ESTIMATORS = {"bernoulli": FastBernoulliMixture, "poisson": FastPoissonMixture}
FAMILIES = list(ESTIMATORS)
#: Integer dtypes the data are stored in (the in-memory fit reads the same array).
STORED = {"bernoulli": np.uint8, "poisson": np.int32}
SOURCES = {
    "memmap": lambda X, tmp_path: row_sources.memmap(X, tmp_path),
    "hdf5": lambda X, tmp_path: row_sources.hdf5(X, tmp_path, 64),
    "zarr": lambda X, tmp_path: row_sources.zarr_array(X, tmp_path, 64),
    "RowSource-7": lambda X, tmp_path: RowSource(X, block_rows=7),
    "RowSource-of-zarr-in-its-chunks": lambda X, tmp_path: RowSource(
        row_sources.zarr_array(X, tmp_path, 64), block_rows=64
    ),
}


def dense_data(family, n=600, d=30, k=3, seed=0):
    """Dense rows from ``k`` clusters, stored as :data:`STORED` integers."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(k, size=n)
    centres = rng.uniform(0.05, 0.6, size=(k, d))
    if family == "bernoulli":
        X = rng.uniform(size=(n, d)) < centres[labels]
    else:
        X = rng.poisson(3 * centres[labels])
    X[5] = 0  # an empty row
    return X.astype(STORED[family])


def start(family, d, k=3, seed=3):
    """A fixed start (weights_init, means_init)."""
    rng = np.random.default_rng(seed)
    weights = rng.uniform(0.5, 1.5, size=k)
    return dict(weights_init=weights / weights.sum(), means_init=rng.uniform(0.1, 0.9, size=(k, d)))


def small_blocks(monkeypatch, rows, d):
    """Make the default block of a dense streamed source hold ``rows`` rows of ``d`` features."""
    monkeypatch.setattr(row_source_module, "BLOCK_BYTES", rows * 8 * d, raising=True)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("kind", list(SOURCES))
def test_a_fit_on_a_dense_streamed_source_equals_the_in_memory_fit(
    tmp_path, monkeypatch, family, weighted, kind
):
    X = dense_data(family)
    small_blocks(monkeypatch, 90, X.shape[1])
    sample_weight = sample_weights(X.shape[0]) if weighted else None
    params = dict(n_components=3, tol=0.0, max_iter=8, **start(family, X.shape[1]))
    estimator = ESTIMATORS[family]
    in_memory = estimator(**params).fit(X, sample_weight=sample_weight)
    source = SOURCES[kind](X, tmp_path)
    streamed = estimator(**params).fit(source, sample_weight=sample_weight)
    rtol = 1e-10
    assert max_relative_difference(streamed.weights_, in_memory.weights_) < rtol
    assert max_relative_difference(streamed.means_, in_memory.means_) < rtol
    assert streamed.lower_bound_ == pytest.approx(in_memory.lower_bound_, rel=rtol, abs=rtol)
    assert streamed.n_iter_ == in_memory.n_iter_ == 8
    np.testing.assert_allclose(streamed.elbo_history_, in_memory.elbo_history_, rtol=rtol, atol=rtol)
    # The in-memory fit's log-likelihood is the plain NumPy reference's.
    reference = e_step(X, in_memory.weights_, in_memory.means_, family)["log_norm"]
    assert in_memory.score(X) == pytest.approx(reference.mean(), rel=1e-10)
    for data in (None, source):
        args = () if data is None else (data,)
        ours = streamed.entropy_decomposition(*args)
        theirs = in_memory.entropy_decomposition(*(() if data is None else (X,)))
        for field in ("elbo", "variational_entropy", "prior_entropy", "observable_entropy", "data_term"):
            assert getattr(ours, field) == pytest.approx(getattr(theirs, field), rel=rtol, abs=rtol), field
        assert ours.n_samples == pytest.approx(theirs.n_samples, rel=rtol)
    np.testing.assert_array_equal(streamed.predict(source), in_memory.predict(X))
    np.testing.assert_allclose(
        streamed.predict_proba(source), in_memory.predict_proba(X), rtol=rtol, atol=1e-12
    )
    np.testing.assert_allclose(streamed.score_samples(source), in_memory.score_samples(X), rtol=rtol)
    np.testing.assert_allclose(streamed.score_samples(source), reference, rtol=1e-10)
    assert streamed.score(source) == pytest.approx(in_memory.score(X), rel=rtol)
    assert streamed.bic(source) == pytest.approx(in_memory.bic(X), rel=rtol)
    assert streamed.aic(source) == pytest.approx(in_memory.aic(X), rel=rtol)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("family", FAMILIES)
def test_a_streamed_fit_is_bitwise_the_same_for_one_and_two_threads(tmp_path, family):
    X = dense_data(family, n=900)
    mapped = row_sources.memmap(X, tmp_path)
    sample_weight = sample_weights(X.shape[0])
    fits = [
        ESTIMATORS[family](n_components=3, random_state=0, max_iter=10, tol=0.0, n_jobs=n_jobs).fit(
            RowSource(mapped, block_rows=64), sample_weight=sample_weight
        )
        for n_jobs in (1, 2)
    ]
    one, two = fits
    np.testing.assert_array_equal(one.weights_, two.weights_)
    np.testing.assert_array_equal(one.means_, two.means_)
    np.testing.assert_array_equal(one.elbo_history_, two.elbo_history_)
    assert one.lower_bound_ == two.lower_bound_
    source = RowSource(mapped, block_rows=64)
    np.testing.assert_array_equal(one.predict_proba(source), two.predict_proba(source))
    np.testing.assert_array_equal(one.score_samples(source), two.score_samples(source))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("family", FAMILIES)
def test_a_small_dense_source_starts_as_the_same_rows_in_memory(tmp_path, monkeypatch, family):
    # Every row of a source with at most INIT_SAMPLE_ROWS is read for the initialisation (as CSR
    # blocks stacked), so k-means++ starts where it starts on the in-memory rows.
    X = dense_data(family)
    small_blocks(monkeypatch, 50, X.shape[1])
    params = dict(n_components=3, random_state=0, max_iter=5, tol=0.0)
    in_memory = ESTIMATORS[family](**params).fit(X)
    streamed = ESTIMATORS[family](**params).fit(row_sources.hdf5(X, tmp_path, 50))
    assert max_relative_difference(streamed.means_, in_memory.means_) < 1e-10
    assert streamed.lower_bound_ == pytest.approx(in_memory.lower_bound_, rel=1e-10)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_large_dense_source_is_initialised_from_a_sample_of_whole_blocks(tmp_path, monkeypatch):
    X = dense_data("poisson", n=900)
    monkeypatch.setattr(row_source_module, "INIT_SAMPLE_ROWS", 300)
    source = RowSource(row_sources.memmap(X, tmp_path), block_rows=50)
    params = dict(n_components=3, random_state=0, max_iter=5)
    model = FastPoissonMixture(**params).fit(source)
    assert np.isfinite(model.lower_bound_)
    # The estimator's source: the same blocks, each checked and read as CSR.
    checked = RowSource(source, block_rows=50, reader=DiscreteBlockReader("FastPoissonMixture", "poisson"))
    rows, index = checked.sample(300, np.random.RandomState(0))
    assert sp.issparse(rows) and rows.shape == (len(index), X.shape[1]) and 300 <= len(index) < 400
    np.testing.assert_array_equal(rows.toarray(), X[index])
    # A bad value in a sampled row is named with its row in the whole X.
    bad_row = int(index[len(index) // 2])
    X = X.astype(np.float64)
    X[bad_row, 3] = 0.5
    with pytest.raises(ValueError, match=f"X holds 0.5 at row {bad_row}, column 3"):
        FastPoissonMixture(**params).fit(RowSource(row_sources.memmap(X, tmp_path), block_rows=50))


def test_a_bad_value_in_a_later_block_of_a_bernoulli_memmap_is_named_with_its_row_and_column(tmp_path):
    X = dense_data("bernoulli")
    X[413, 17] = 2
    mapped = row_sources.memmap(X, tmp_path)
    match = r"FastBernoulliMixture needs every value of X to be 0 or 1; X holds 2 at row 413, column 17"
    with pytest.raises(ValueError, match=match):
        FastBernoulliMixture(n_components=2, init_params="random").fit(RowSource(mapped, block_rows=100))
    fitted = FastBernoulliMixture(n_components=2, random_state=0).fit(dense_data("bernoulli"))
    for method in ("predict", "predict_proba", "score_samples", "score"):
        with pytest.raises(ValueError, match=match):
            getattr(fitted, method)(RowSource(mapped, block_rows=100))


NEGATIVE = r"Negative values in data passed to X\. .*-1\.0"


@pytest.mark.parametrize(("value", "shown"), [(-1.0, NEGATIVE), (0.5, "0.5")])
def test_a_bad_value_in_a_later_block_of_a_poisson_hdf5_dataset_is_named_with_its_row_and_column(
    tmp_path, monkeypatch, value, shown
):
    X = dense_data("poisson").astype(np.float64)
    X[413, 17] = value
    small_blocks(monkeypatch, 100, X.shape[1])
    dataset = row_sources.hdf5(X, tmp_path, 100)
    match = f"{shown} at row 413, column 17"
    with pytest.raises(ValueError, match=match):
        FastPoissonMixture(n_components=2, init_params="random").fit(dataset)
    fitted = FastPoissonMixture(n_components=2, random_state=0).fit(dense_data("poisson"))
    with pytest.raises(ValueError, match=match):
        fitted.score_samples(dataset)
    with pytest.raises(ValueError, match=match):
        fitted.entropy_decomposition(dataset)


def test_nan_in_a_streamed_zarr_array_is_named_as_a_value_the_model_cannot_take(tmp_path):
    X = dense_data("poisson").astype(np.float64)
    X[300, 2] = np.nan
    with pytest.raises(ValueError, match=r"X holds nan at row 300, column 2 \(NaN and infinity"):
        FastPoissonMixture(n_components=2, init_params="random").fit(
            RowSource(row_sources.zarr_array(X, tmp_path, 64), block_rows=64)
        )


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("start", list(STARTS))
def test_a_truncated_fit_on_a_dense_streamed_source_equals_the_in_memory_fit(
    tmp_path, monkeypatch, family, weighted, start
):
    X = dense_data(family)
    small_blocks(monkeypatch, 90, X.shape[1])
    sample_weight = sample_weights(X.shape[0]) if weighted else None
    estimator = ESTIMATORS[family]
    params, starts, reference, expected_labels = recorded_reference(
        estimator, X, start, sample_weight, monkeypatch
    )
    # A float32 memmap too: its blocks (and the weights) are read in float64, as in memory.
    sources = {
        **SOURCES,
        "float32 memmap": lambda X, tmp_path: row_sources.memmap(X.astype(np.float32), tmp_path),
    }
    for kind, make in sources.items():
        source = make(X, tmp_path)
        starts.clear()
        fit = truncated_fit(estimator, source, params, sample_weight)
        assert starts == expected_starts(start), kind
        assert_same_truncated_fit(fit, reference)
        np.testing.assert_array_equal(fit[0].predict(source), expected_labels)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_truncated_dense_streamed_fit_is_bitwise_the_same_for_one_and_two_threads(
    tmp_path, monkeypatch, family
):
    X = dense_data(family)
    w = sample_weights(X.shape[0])
    params = truncated_params("exact-start", X.shape[1], monkeypatch)
    mapped = row_sources.memmap(X, tmp_path)
    one, two = (
        truncated_fit(ESTIMATORS[family], RowSource(mapped, block_rows=64), dict(params, n_jobs=n_jobs), w)
        for n_jobs in (1, 2)
    )
    for name in ("weights_", "means_", "elbo_history_", "entropy_sum_history_"):
        np.testing.assert_array_equal(getattr(one[0], name), getattr(two[0], name), err_msg=name)
    np.testing.assert_array_equal(one[1], two[1])


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("form", [sp.csr_matrix, sp.csc_array])
def test_a_row_source_of_sparse_rows_in_blocks_equals_the_in_memory_fit(family, form):
    X = dense_data(family)
    params = dict(n_components=3, tol=0.0, max_iter=8, **start(family, X.shape[1]))
    in_memory = ESTIMATORS[family](**params).fit(X)
    blocks = ESTIMATORS[family](**params).fit(RowSource(form(X), block_rows=7))
    assert max_relative_difference(blocks.means_, in_memory.means_) < 1e-10
    assert blocks.lower_bound_ == pytest.approx(in_memory.lower_bound_, rel=1e-10)
    np.testing.assert_array_equal(blocks.predict(RowSource(form(X), block_rows=7)), in_memory.predict(X))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_row_source_of_an_in_memory_array_without_block_rows_is_that_array():
    X = dense_data("poisson")
    params = dict(n_components=3, random_state=0, max_iter=5, n_active=2)
    wrapped = FastPoissonMixture(**params).fit(RowSource(X))  # in memory: truncated EM works
    np.testing.assert_array_equal(wrapped.means_, FastPoissonMixture(**params).fit(X).means_)


def test_inference_on_a_dense_streamed_source_with_other_features_is_refused(tmp_path):
    model = FastBernoulliMixture(n_components=2, random_state=0).fit(dense_data("bernoulli"))
    other = dense_data("bernoulli", d=20)
    with pytest.raises(ValueError, match="features"):
        model.predict(row_sources.memmap(other, tmp_path))


_MEMORY_SCRIPT = """
path, block_bytes = sys.argv[1], int(sys.argv[2])
row_source.BLOCK_BYTES = block_bytes
row_source.INIT_SAMPLE_ROWS = 5_000  # the k-means++ seeding reads a twentieth of the rows
from fastelbo import FastBernoulliMixture

X = np.load(path, mmap_mode="r")
warnings.simplefilter("ignore")  # ConvergenceWarning: a fixed number of iterations
model = FastBernoulliMixture(n_components=4, random_state=0, max_iter=3, tol=0.0, n_jobs=1)
model.fit(np.eye(8, X.shape[1]))  # the first fit's imports and set-up


def work():
    model.fit(X)
    return {"lower_bound": model.lower_bound_, "n_labels": int(model.predict(X).shape[0])}


report(work)
"""


def test_a_dense_memmap_larger_than_a_block_is_never_read_whole(tmp_path):
    """In a fresh process: a fit (and predict) on a 51 MB float64 memmap of 0/1 values read in ~1 MB
    blocks allocates far less than the file (peak RssAnon above the baseline below a quarter of it;
    its CSR form alone, at a third of the values non-zero, would be about half of it)."""
    n, d = 100_000, 64
    path = tmp_path / "x.npy"
    X = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(n, d))
    rng = np.random.default_rng(0)
    for begin in range(0, n, 10_000):
        X[begin : begin + 10_000] = rng.uniform(size=(10_000, d)) < 1 / 3
    X.flush()
    size = X.nbytes
    del X
    measured = peak_rss.measure(_MEMORY_SCRIPT, path, 2**20)
    assert np.isfinite(measured["lower_bound"]) and measured["n_labels"] == n
    assert measured["peak"] - measured["baseline"] < size / 4, (measured, size)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("family", FAMILIES)
def test_float16_blocks_fit_as_the_float16_array_in_memory(tmp_path, family):
    # scipy.sparse has no float16: the blocks were turned into CSR as they are and raised SciPy's
    # error; they are widened first, as the in-memory array is.
    import dask.array as da

    X = dense_data(family).astype(np.float16)
    params = dict(n_components=3, tol=0.0, max_iter=5, **start(family, X.shape[1]))
    estimator = ESTIMATORS[family]
    in_memory = estimator(**params).fit(X)
    sources = (row_sources.memmap(X, tmp_path), RowSource(X, block_rows=100), da.from_array(X, chunks=100))
    for source in sources:
        streamed = estimator(**params).fit(source)
        assert max_relative_difference(streamed.means_, in_memory.means_) < 1e-10
        assert streamed.lower_bound_ == pytest.approx(in_memory.lower_bound_, rel=1e-10)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("dtype", [">f8", ">f4", ">i4"])
def test_big_endian_streamed_sources_fit_and_predict_as_the_native_ones(tmp_path, monkeypatch, family, dtype):
    # Their blocks reached scipy.sparse in the file's byte order: 'scipy.sparse does not support
    # dtype >f8'.
    X = dense_data(family)
    small_blocks(monkeypatch, 90, X.shape[1])
    params = dict(n_components=3, tol=0.0, max_iter=4, **start(family, X.shape[1]))
    native = np.dtype(dtype).newbyteorder("=")
    reference_source = row_sources.memmap(X.astype(native), tmp_path)
    reference = ESTIMATORS[family](**params).fit(reference_source)
    for source in (
        row_sources.memmap(X.astype(dtype), tmp_path),
        row_sources.hdf5(X.astype(dtype), tmp_path, 64),
    ):
        fitted = ESTIMATORS[family](**params).fit(source)
        np.testing.assert_array_equal(fitted.means_, reference.means_)
        np.testing.assert_array_equal(fitted.score_samples(source), reference.score_samples(reference_source))
