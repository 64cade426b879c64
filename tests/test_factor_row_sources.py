"""FastPPCA and FastFactorAnalysis on row sources: memmaps, HDF5 and Zarr arrays, RowSources of an
array in blocks, and dask arrays (local threads and a real two-process cluster).

References are independent of the streaming code: the one-call statistics of the in-memory array
and the in-memory fit. Data sets: scikit-learn's digits (constant columns, integer values), random
correlated data, and a near-Heywood case (a duplicated column).
"""

import functools
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits

import fastelbo
import row_sources
from fastelbo import FastFactorAnalysis, FastPPCA
from fastelbo.exceptions import HeywoodCaseWarning
from fastelbo.factor._scatter import data_scatter, fast_data_scatter
from row_sources import source_factories

da = pytest.importorskip("dask.array")
h5py = pytest.importorskip("h5py")
zarr = pytest.importorskip("zarr")

ESTIMATORS = {
    "FastPPCA": lambda: FastPPCA(n_components=4),
    "FastPPCA-em": lambda: FastPPCA(n_components=4, solver="em", random_state=0, tol=1e-10, max_iter=300),
    "FastFactorAnalysis": lambda: FastFactorAnalysis(n_components=4, max_iter=300),
}
BLOCK_ROWS = 97  # not a divisor of any data set's rows: the last block is shorter


def _digits():
    return np.ascontiguousarray(load_digits().data)


def _correlated(seed=0):
    rng = np.random.RandomState(seed)
    return rng.randn(700, 9) @ rng.randn(9, 9) + 3.0 * rng.randn(9)


def _duplicated_column():
    X = _correlated(1)
    return np.ascontiguousarray(np.hstack([X, X[:, :1]]))


DATA = {"digits": _digits, "correlated": _correlated, "duplicated_column": _duplicated_column}


def _weights(n_samples, seed=3):
    weights = np.random.RandomState(seed).uniform(0.1, 4.0, n_samples)
    weights[::11] = 0.0  # zero weights act like absent rows
    return weights


def _fit(make, X, sample_weight=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", HeywoodCaseWarning)
        return make().fit(X, sample_weight=sample_weight)


def _close(actual, expected, rtol=1e-10):
    """Agreement relative to the reference's largest magnitude (entries near 0 included)."""
    actual, expected = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    scale = max(float(np.max(np.abs(expected), initial=0.0)), np.finfo(np.float64).tiny)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=rtol * scale)


def _assert_same_fit(fitted, reference, rtol=1e-10):
    _close(fitted.components_, reference.components_, rtol)
    _close(fitted.noise_variance_, reference.noise_variance_, rtol)
    _close(fitted.mean_, reference.mean_, rtol)
    _close(fitted.lower_bound_, reference.lower_bound_, rtol)


def _assert_bitwise_same_fit(fitted, reference):
    for name in ("components_", "noise_variance_", "mean_", "lower_bound_", "elbo_history_"):
        np.testing.assert_array_equal(getattr(fitted, name), getattr(reference, name), err_msg=name)
    assert fitted.n_iter_ == reference.n_iter_


# -- sources -------------------------------------------------------------------------------------


SOURCES = source_factories(BLOCK_ROWS)


# -- statistics ----------------------------------------------------------------------------------


def _assert_same_statistics(blocked, whole, rtol=1e-12):
    assert blocked.n_samples == whole.n_samples
    assert blocked.exact == whole.exact
    _close(blocked.mean, whole.mean, rtol)
    _close(blocked.factor.T @ blocked.factor, whole.factor.T @ whole.factor, rtol)
    _close(blocked.variances, whole.variances, rtol)
    _close(blocked.sum_weight, whole.sum_weight, rtol)
    _close(blocked.n_weighted, whole.n_weighted, rtol)


@pytest.mark.parametrize("scatter", [fast_data_scatter, data_scatter])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize(
    "data, dtype", [("digits", np.float64), ("duplicated_column", np.float64), ("correlated", np.float32)]
)
@pytest.mark.parametrize("n_blocks", [1, 2, 7])
def test_statistics_merged_over_blocks_equal_the_one_call_statistics(
    scatter, weighted, data, dtype, n_blocks
):
    X = DATA[data]().astype(dtype)
    if dtype == np.float32:
        X += np.float32(1e3)  # far from the origin: the common centring point keeps float32's digits
    weights = _weights(X.shape[0]).astype(dtype) if weighted else None
    block_rows = -(-X.shape[0] // n_blocks)
    blocked = scatter(fastelbo.RowSource(X, block_rows=block_rows), weights)
    _assert_same_statistics(blocked, scatter(X, weights))


def test_a_constant_feature_has_variance_zero_in_any_blocks():
    X = _digits()
    assert np.ptp(X[:, 0]) == 0  # digits' first pixel is never inked
    for block_rows in (None, 50, 600):
        source = X if block_rows is None else fastelbo.RowSource(X, block_rows=block_rows)
        assert fast_data_scatter(source).variances[0] == 0.0
        assert data_scatter(source).variances[0] == 0.0


def test_wide_statistics_keep_the_centred_rows_in_any_blocks(tmp_path):
    X = _digits()[:40]  # 40 rows, 64 features
    weights = _weights(40)
    n_positive = np.count_nonzero(weights)
    for block_rows in (7, 40):
        scatter = fast_data_scatter(
            fastelbo.RowSource(row_sources.memmap(X, tmp_path), block_rows=block_rows), weights
        )
        assert scatter.exact
        assert scatter.factor.shape == (n_positive, 64)  # the weighted rows, never 64 x 64
        _assert_same_statistics(scatter, data_scatter(X, weights))


# -- fits ----------------------------------------------------------------------------------------


@functools.cache
def _in_memory_digits_fit(estimator, weighted):
    X = _digits()
    return _fit(ESTIMATORS[estimator], X, _weights(X.shape[0]) if weighted else None)


@pytest.mark.parametrize("source", list(SOURCES))
@pytest.mark.parametrize("estimator", list(ESTIMATORS))
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_fits_on_row_sources_agree_with_the_in_memory_fit(source, estimator, weighted, tmp_path):
    X = _digits()
    weights = _weights(X.shape[0]) if weighted else None
    reference = _in_memory_digits_fit(estimator, weighted)
    streamed = SOURCES[source](X, tmp_path)
    fitted = _fit(ESTIMATORS[estimator], streamed, weights)
    _assert_same_fit(fitted, reference)
    _close(fitted.score(streamed), reference.score(X))


@pytest.mark.parametrize("estimator", ["FastPPCA", "FastFactorAnalysis"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_fits_of_a_duplicated_column_in_blocks_agree_with_the_in_memory_fit(estimator, weighted):
    X = _duplicated_column()
    weights = _weights(X.shape[0]) if weighted else None
    reference = _fit(ESTIMATORS[estimator], X, weights)
    for source in (fastelbo.RowSource(X, block_rows=BLOCK_ROWS), da.from_array(X, chunks=(BLOCK_ROWS, -1))):
        _assert_same_fit(_fit(ESTIMATORS[estimator], source, weights), reference)


@pytest.mark.parametrize("estimator", ["FastPPCA", "FastFactorAnalysis"])
def test_float32_fits_in_blocks_agree_with_the_in_memory_float32_fit(estimator):
    X = (_correlated() + 1e3).astype(np.float32)
    reference = _fit(ESTIMATORS[estimator], X)
    for source in (fastelbo.RowSource(X, block_rows=BLOCK_ROWS), da.from_array(X, chunks=(BLOCK_ROWS, -1))):
        _assert_same_fit(_fit(ESTIMATORS[estimator], source), reference)


@pytest.mark.parametrize("estimator", ["FastPPCA", "FastFactorAnalysis"])
def test_wide_data_from_a_memmap_fit_as_in_memory(estimator, tmp_path):
    X = _digits()[:40]
    weights = _weights(40)
    for sample_weight in (None, weights):
        reference = _fit(ESTIMATORS[estimator], X, sample_weight)
        source = fastelbo.RowSource(row_sources.memmap(X, tmp_path), block_rows=9)
        _assert_same_fit(_fit(ESTIMATORS[estimator], source, sample_weight), reference)


def test_a_dask_fit_equals_the_row_source_fit_with_the_same_blocks_bitwise():
    X = _digits()
    weights = _weights(X.shape[0])
    for make in ESTIMATORS.values():
        local = _fit(make, fastelbo.RowSource(X, block_rows=BLOCK_ROWS), weights)
        _assert_bitwise_same_fit(_fit(make, da.from_array(X, chunks=(BLOCK_ROWS, -1)), weights), local)


# -- inference -----------------------------------------------------------------------------------


@pytest.mark.parametrize("source", list(SOURCES))
def test_inference_on_row_sources_equals_inference_in_memory(source, tmp_path):
    X = _digits()
    for make in (ESTIMATORS["FastPPCA"], ESTIMATORS["FastFactorAnalysis"]):
        fitted = _fit(make, X)
        streamed = SOURCES[source](X, tmp_path)
        transformed, log_likelihoods = fitted.transform(streamed), fitted.score_samples(streamed)
        if source == "dask":
            assert isinstance(transformed, da.Array) and isinstance(log_likelihoods, da.Array)
            assert transformed.chunks[0] == streamed.chunks[0]  # lazy, chunked as X's rows
            transformed, log_likelihoods = transformed.compute(), log_likelihoods.compute()
        _close(transformed, fitted.transform(X), 1e-12)
        _close(log_likelihoods, fitted.score_samples(X), 1e-12)
        score = fitted.score(streamed)
        assert isinstance(score, float)
        _close(score, fitted.score(X), 1e-12)
        decomposition, reference = fitted.entropy_decomposition(streamed), fitted.entropy_decomposition(X)
        _close(decomposition.elbo, reference.elbo, 1e-10)
        _close(decomposition.entropy_sum, reference.entropy_sum, 1e-10)


def test_fit_transform_of_a_dask_array_is_a_dask_array_of_the_in_memory_result():
    X = _digits()
    lazy = FastPPCA(n_components=4).fit_transform(da.from_array(X, chunks=(BLOCK_ROWS, -1)))
    assert isinstance(lazy, da.Array)
    _close(lazy.compute(), FastPPCA(n_components=4).fit_transform(X))


class _RecordingRows:
    """A 2-D array that records the rows of every read (as h5py would serve them)."""

    def __init__(self, X):
        self._X, self.shape, self.dtype, self.reads = X, X.shape, X.dtype, []

    def __getitem__(self, index):
        self.reads.append(len(range(*index.indices(self.shape[0]))))
        return self._X[index]


def test_fit_and_inference_read_x_only_in_blocks():
    X = _duplicated_column()  # FA switches to the exact factor here: a mean pass and a TSQR pass too
    rows = _RecordingRows(X)
    source = fastelbo.RowSource(rows, block_rows=BLOCK_ROWS)
    for make in (ESTIMATORS["FastPPCA"], ESTIMATORS["FastFactorAnalysis"]):
        fitted = _fit(make, source)
        fitted.transform(source), fitted.score(source), fitted.entropy_decomposition(source)
    assert rows.reads and max(rows.reads) <= BLOCK_ROWS


# -- bad input -----------------------------------------------------------------------------------


def test_nan_in_a_streamed_block_raises_a_value_error_naming_x(tmp_path):
    X = _correlated()
    X[500, 3] = np.nan  # in the sixth block, after five clean ones
    memmap = row_sources.memmap(X, tmp_path)
    sources = (fastelbo.RowSource(memmap, block_rows=BLOCK_ROWS), da.from_array(X, chunks=(BLOCK_ROWS, -1)))
    for make in (ESTIMATORS["FastPPCA"], ESTIMATORS["FastFactorAnalysis"]):
        for source in sources:
            estimator = make()
            with pytest.raises(ValueError, match=r"Input X contains NaN"):
                estimator.fit(source)
            assert not hasattr(estimator, "components_")  # a failed fit leaves nothing behind
        fitted = _fit(make, _correlated())
        with pytest.raises(ValueError, match=r"Input X contains NaN"):
            fitted.transform(fastelbo.RowSource(memmap, block_rows=BLOCK_ROWS))


# -- a real Dask cluster -------------------------------------------------------------------------


def test_a_fit_on_a_dask_cluster_equals_the_local_fit_bitwise(dask_client):
    X = _digits()
    weights = _weights(X.shape[0])
    chunked = da.from_array(X, chunks=(BLOCK_ROWS, -1))
    for make in (ESTIMATORS["FastPPCA"], ESTIMATORS["FastFactorAnalysis"]):
        local = _fit(make, fastelbo.RowSource(X, block_rows=BLOCK_ROWS), weights)
        with dask_client.as_current():
            on_cluster = _fit(make, chunked, weights)
            transformed = on_cluster.transform(chunked)
            assert isinstance(transformed, da.Array)
            transformed = transformed.compute()
            score = on_cluster.score(chunked)
        _assert_bitwise_same_fit(on_cluster, local)
        _close(transformed, local.transform(X), 1e-12)
        _close(score, local.score(X), 1e-12)
