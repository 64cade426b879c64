"""FastMFA on row sources: X read in blocks (memmap, HDF5, Zarr, ``RowSource(X, block_rows=k)``) or
as a dask array, against the fit and the inference on the same rows in memory.

The references are independent of the blocking: the one-call kernel pass over all rows, and the
in-memory fit from the same start (a source this small starts on all its rows, as in memory). Fits
run a fixed number of iterations (tol=0), so that no convergence decision depends on round-off.
"""

import functools
import pickle
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

import fastelbo._row_source as row_source_module
import row_sources
from fastelbo import FastMFA, RowSource
from fastelbo._block_reduction import reduce_blocks
from fastelbo._dask_backend import DaskRowSource
from fastelbo._mixture_pass import MixturePassRequest
from fastelbo.exceptions import HeywoodCaseWarning
from fastelbo.factor import Float32RangeWarning
from fastelbo.factor._mfa_pass import (
    FactorAnalyserPassParameters,
    column_scale,
    factor_analyser_block_pass,
)
from fastelbo.mixture._initialization import column_mean_and_variance
from row_sources import source_factories

da = pytest.importorskip("dask.array")

BLOCK_ROWS = 256
FIELDS = ("weights_", "means_", "components_", "noise_variance_", "lower_bound_")
STATISTICS = ("sum_weight", "sum_log_norm", "sum_entropy", "nk", "sx", "sxx", "szx", "sz", "szz")


@functools.cache
def _digits():
    """The digits, standardised (constant pixels stay 0): 1797 x 64."""
    X = load_digits().data
    return (X - X.mean(axis=0)) / np.maximum(X.std(axis=0), 1.0)


@functools.cache
def _clusters():
    """Three elongated clusters in 6 dimensions, far from the origin: 900 x 6."""
    rng = np.random.RandomState(0)
    return np.vstack([rng.randn(300, 6) @ rng.randn(6, 6) + 6.0 * c + 20.0 for c in range(3)])


DATA = {"digits": _digits, "clusters": _clusters}
SETTINGS = {  # one configuration per data set: diag noise on the digits, PPCA on the clusters
    "digits": {"n_components": 3, "n_factors": 2, "noise": "diag"},
    "clusters": {"n_components": 3, "n_factors": 2, "noise": "spherical"},
}


def _weights(n):
    return np.random.RandomState(7).uniform(0.1, 2.0, size=n)


def _model(data, **changes):
    return FastMFA(**{**SETTINGS[data], "max_iter": 12, "tol": 0.0, "random_state": 0, **changes})


def _fit(data, X, weighted, **changes):
    sample_weight = _weights(DATA[data]().shape[0]) if weighted else None
    with warnings.catch_warnings():
        # tol=0 never converges; constant pixels of the digits put noise variances at their floor.
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", HeywoodCaseWarning)
        return _model(data, **changes).fit(X, sample_weight=sample_weight)


@functools.cache
def _in_memory_fit(data, weighted):
    return _fit(data, DATA[data](), weighted)


def _assert_same_fit(fitted, reference, rtol):
    for name in FIELDS:
        actual, expected = np.asarray(getattr(fitted, name)), np.asarray(getattr(reference, name))
        assert actual.dtype == expected.dtype, name
        error = np.max(np.abs(actual - expected)) / np.max(np.abs(expected))
        assert error <= rtol, f"{name}: relative difference {error:.3g}"


def _assert_bitwise_same_fit(fitted, reference):
    for name in FIELDS:
        assert np.array_equal(getattr(fitted, name), getattr(reference, name)), name


# -- sources of the same rows ------------------------------------------------------------------------


SOURCES = source_factories(BLOCK_ROWS)


class _ReadRecorder:
    """An array read only by row slices, recording how many rows every read asked for."""

    def __init__(self, array):
        self.array, self.shape, self.dtype = array, array.shape, array.dtype
        self.reads = []

    def __getitem__(self, index):
        rows = self.array[index]
        self.reads.append(rows.shape[0])
        return rows


# -- the statistics ----------------------------------------------------------------------------------


def _pass_arguments(weighted):
    """A fitted model's parameters with the means moved off the fixed point (so that the moments
    about them are far from 0), and the rows and weights of a pass."""
    X = _digits()
    model = _in_memory_fit("digits", False)
    means = model.means_ + np.random.RandomState(3).randn(*model.means_.shape)
    parameters = FactorAnalyserPassParameters.of(
        model.weights_, means, model.components_, model.noise_variance_, np.float64, True, 2
    )
    request = MixturePassRequest(log_norm=True, responsibilities=True, labels=True)
    return X, (_weights(X.shape[0]) if weighted else None), parameters, request


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("n_blocks", [1, 2, 7])
def test_statistics_of_blocks_merge_into_the_statistics_of_one_call(n_blocks, weighted):
    X, weights, parameters, request = _pass_arguments(weighted)
    one_call, one_call_rows, _ = factor_analyser_block_pass(parameters, request, X, weights)
    source = RowSource(X, block_rows=-(-X.shape[0] // n_blocks))
    assert len(source.spans()) == n_blocks
    merged, rows, states = reduce_blocks(
        source, functools.partial(factor_analyser_block_pass, parameters, request), weights
    )
    assert states == [None] * n_blocks
    assert merged.n_samples == X.shape[0]
    for name in STATISTICS:
        actual, expected = np.asarray(getattr(merged, name)), np.asarray(getattr(one_call, name))
        assert np.max(np.abs(actual - expected)) <= 1e-12 * np.max(np.abs(expected)), name
    assert np.array_equal(merged.reference, one_call.reference)
    assert np.array_equal(merged.posterior_covariances, one_call.posterior_covariances)
    # Per-row outputs of a row do not depend on its block.
    np.testing.assert_allclose(rows["log_norm"], one_call_rows["log_norm"], rtol=1e-13)
    np.testing.assert_allclose(rows["responsibilities"], one_call_rows["responsibilities"], atol=1e-13)
    assert np.array_equal(rows["labels"], one_call_rows["labels"])


def test_statistics_and_block_pass_pickle_and_refuse_to_merge_about_other_references():
    X, weights, parameters, request = _pass_arguments(True)
    block_pass = functools.partial(factor_analyser_block_pass, parameters, request)
    statistics, _, _ = block_pass(X[:500], weights[:500], None)
    again, _, _ = pickle.loads(pickle.dumps(block_pass))(X[:500], weights[:500], None)
    copied = pickle.loads(pickle.dumps(statistics))
    for name in STATISTICS:
        assert np.array_equal(getattr(again, name), getattr(statistics, name))
        assert np.array_equal(getattr(copied, name), getattr(statistics, name))
    moved = FactorAnalyserPassParameters.of(
        np.full(3, 1 / 3), parameters.means + 1.0, parameters.components, parameters.noise_variance,
        np.float64, True, 1,
    )  # fmt: skip
    other, _, _ = factor_analyser_block_pass(moved, request, X[500:], weights[500:])
    with pytest.raises(ValueError, match="different reference"):
        statistics.merge(other)


@pytest.mark.parametrize("weighted", [False, True])
def test_column_scale_of_blocks_equals_the_in_memory_column_moments(weighted):
    X = _clusters()
    weights = _weights(X.shape[0]) if weighted else None
    mean, variance = column_mean_and_variance(X, weights)
    in_memory = column_scale(RowSource(X), weights)
    assert np.array_equal(in_memory[0], mean) and np.array_equal(in_memory[1], variance)
    for source in (RowSource(X, block_rows=97), DaskRowSource(da.from_array(X, chunks=(97, 6)))):
        blocked_mean, blocked_variance, largest = column_scale(source, weights)
        np.testing.assert_allclose(blocked_mean, mean, rtol=1e-13)
        np.testing.assert_allclose(blocked_variance, variance, rtol=1e-13)
        assert largest == np.max(np.abs(X - blocked_mean))


def test_column_scale_gives_a_constant_column_a_variance_of_exactly_zero_at_any_scale():
    # A column of 7.7 in 77,777 rows: its mean is off by round-off, and the squares of that
    # round-off (2e-24) would pass for a variance; a column varying at 1e-80 has one of 1e-160.
    rng = np.random.RandomState(0)
    n = 77_777
    X = np.column_stack([np.full(n, 7.7), 1e-80 * rng.randn(n), rng.randn(n)])
    assert column_mean_and_variance(X, None)[1][0] > 0  # the round-off column_scale drops
    weights = rng.uniform(0.5, 2.0, n)
    weights[:10] = 0.0
    with_outliers = X.copy()
    with_outliers[:10, 0] = 3.0  # in rows of zero weight only: the column stays constant
    for data, w in ((X, None), (X, weights), (with_outliers, weights)):
        for source in (RowSource(data), RowSource(data, block_rows=1000)):
            _, variance, _ = column_scale(source, w)
            assert variance[0] == 0.0 and 1e-161 < variance[1] < 1e-159 and variance[2] > 0.5
    _, variance, _ = column_scale(RowSource(with_outliers), None)
    assert variance[0] > 1e-3  # 10 rows of 3.0 among 77,777 of 7.7


# -- fits --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("data", sorted(DATA))
@pytest.mark.parametrize("kind", sorted(SOURCES))
def test_fits_on_every_row_source_agree_with_the_in_memory_fit(kind, data, weighted, tmp_path):
    X = DATA[data]()
    source = SOURCES[kind](X, tmp_path)
    fitted = _fit(data, source, weighted)
    reference = _in_memory_fit(data, weighted)
    _assert_same_fit(fitted, reference, rtol=1e-10)
    score = fitted.score(source)
    assert abs(score - reference.score(X)) <= 1e-10 * abs(reference.score(X))
    assert abs(fitted.score(X) - reference.score(X)) <= 1e-10 * abs(reference.score(X))


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_dask_fit_equals_the_row_source_fit_with_the_same_blocks_bitwise(weighted):
    X = _digits()
    blocked = _fit("digits", RowSource(X, block_rows=BLOCK_ROWS), weighted)
    lazy = _fit("digits", da.from_array(X, chunks=(BLOCK_ROWS, X.shape[1])), weighted)
    _assert_bitwise_same_fit(lazy, blocked)
    assert lazy.entropy_decomposition().entropy_sum == blocked.entropy_decomposition().entropy_sum


def test_inference_on_streamed_and_dask_inputs_equals_inference_in_memory(tmp_path):
    X = _clusters()
    model = _in_memory_fit("clusters", True)
    streamed = row_sources.memmap(X, tmp_path)
    lazy = da.from_array(X, chunks=(BLOCK_ROWS, X.shape[1]))
    for method in ("score_samples", "predict", "predict_proba"):
        expected = getattr(model, method)(X)
        from_stream = getattr(model, method)(streamed)
        from_dask = getattr(model, method)(lazy)
        assert isinstance(from_stream, np.ndarray)
        assert isinstance(from_dask, da.Array) and from_dask.dtype == expected.dtype
        if method == "predict":
            assert np.array_equal(from_stream, expected) and np.array_equal(from_dask.compute(), expected)
        else:
            np.testing.assert_allclose(from_stream, expected, rtol=1e-13, atol=1e-14)
            np.testing.assert_allclose(from_dask.compute(), expected, rtol=1e-13, atol=1e-14)
    for method in ("score", "bic", "aic"):
        expected = getattr(model, method)(X)
        for data in (streamed, lazy):
            assert abs(float(getattr(model, method)(data)) - expected) <= 1e-12 * abs(expected), method
    for form in ("latent", "collapsed"):
        expected = model.entropy_decomposition(X, form=form)
        for data in (streamed, lazy):
            decomposition = model.entropy_decomposition(data, form=form)
            assert decomposition.n_samples == X.shape[0]
            for name in ("elbo", "entropy_sum", "variational_entropy", "observable_entropy"):
                value, wanted = getattr(decomposition, name), getattr(expected, name)
                assert abs(value - wanted) <= 1e-12 * abs(wanted), (form, name)


@pytest.mark.parametrize("kind", ["memmap", "dask"])
def test_nan_in_a_streamed_block_raises_value_error_naming_x(kind, tmp_path):
    X = _clusters().copy()
    X[700, 3] = np.nan
    source = SOURCES[kind](X, tmp_path)
    with pytest.raises(ValueError, match=r"Input X contains NaN"):
        _fit("clusters", source, weighted=False)
    with pytest.raises(ValueError, match=r"Input X contains NaN"):
        _in_memory_fit("clusters", False).score(source)


@pytest.mark.parametrize("kind", ["RowSource", "dask"])
def test_float32_source_that_float32_cannot_hold_is_read_in_float64_block_by_block(kind):
    X = _clusters().astype(np.float32)
    recorder = _ReadRecorder(X)

    def source():
        if kind == "dask":  # the chunks are widened on the workers
            return da.from_array(X, chunks=(BLOCK_ROWS, X.shape[1]))
        return RowSource(recorder, block_rows=BLOCK_ROWS)

    # reg_covar below float32's resolution: the fit moves to float64 (Float32RangeWarning).
    with pytest.warns(Float32RangeWarning, match="float64"):
        fitted = _fit("clusters", source(), True, reg_covar=1e-9)
    with pytest.warns(Float32RangeWarning, match="float64"):
        reference = _fit("clusters", X, True, reg_covar=1e-9)
    assert fitted.means_.dtype == np.float64
    _assert_same_fit(fitted, reference, rtol=1e-10)
    # New float32 rows streamed into the float64 model are widened block by block too.
    scores = fitted.score_samples(source())
    scores = scores.compute() if kind == "dask" else scores
    assert scores.dtype == np.float64
    np.testing.assert_allclose(scores, reference.score_samples(X), rtol=1e-10)
    if kind == "RowSource":
        assert recorder.reads and max(recorder.reads) <= BLOCK_ROWS  # never X whole


def test_float32_source_that_float32_holds_is_fitted_in_float32_as_in_memory():
    X = _clusters().astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Float32RangeWarning)
        fitted = _fit("clusters", RowSource(X, block_rows=BLOCK_ROWS), False)
        reference = _fit("clusters", X, False)
    assert fitted.means_.dtype == np.float32
    _assert_same_fit(fitted, reference, rtol=1e-4)  # float32 sums merged in another order


def test_initialisation_of_a_large_streamed_source_runs_on_its_sample(monkeypatch):
    monkeypatch.setattr(row_source_module, "INIT_SAMPLE_ROWS", 300)
    X = _digits()
    source = RowSource(X, block_rows=BLOCK_ROWS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", HeywoodCaseWarning)
        fitted = _model("digits", max_iter=0).fit(source)
    # The same start by hand: the sample drawn first, then the in-memory initialisation on it.
    random_state = np.random.RandomState(0)
    rows, _ = source.sample(300, random_state)
    assert rows.shape[0] < X.shape[0]
    by_hand = _model("digits")
    by_hand._noise_floor_, by_hand._weight_unit_ = fitted._noise_floor_, 1.0
    by_hand._initialize_parameters(rows, random_state)
    for name in ("weights_", "means_", "components_", "noise_variance_"):
        assert np.array_equal(getattr(fitted, name), getattr(by_hand, name)), name


# -- a real cluster ----------------------------------------------------------------------------------


def test_fit_on_a_local_cluster_equals_the_local_fit_bitwise(dask_client):
    # Few passes (each costs the cluster a round trip): a short fit over three chunks.
    X, block_rows = _digits(), 600
    local = _fit("digits", RowSource(X, block_rows=block_rows), True, max_iter=4)
    distributed = pytest.importorskip("distributed")
    with dask_client.as_current(), distributed.get_task_stream(client=dask_client) as tasks:
        lazy = da.from_array(X, chunks=(block_rows, X.shape[1]))
        distributed_fit = _fit("digits", lazy, True, max_iter=4)
        scores = distributed_fit.score_samples(lazy).compute()
    assert len({task["worker"] for task in tasks.data}) == 2  # the workers ran the passes
    _assert_bitwise_same_fit(distributed_fit, local)
    assert np.array_equal(scores, local.score_samples(RowSource(X, block_rows=block_rows)))
