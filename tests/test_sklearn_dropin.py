"""FastGMM behaves like scikit-learn's GaussianMixture where a user (or scikit-learn's own test suite)
can tell the difference: error messages for bad initial parameters, ``score`` as the mean of
``score_samples``, ``verbose=True``, ``sample(2.0)``, the k-means "distinct clusters" warning, and
input under scikit-learn's ``array_api_dispatch``.

The expected messages are built exactly as scikit-learn's tests build them
(sklearn/mixture/tests/test_gaussian_mixture.py: test_check_weights, test_check_means,
test_check_precisions, test_sample), and are also compared with what GaussianMixture itself raises.
"""

import json
import os
import re
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from fastelbo import FastGMM

COV_TYPES = ["full", "tied", "diag", "spherical"]
N_COMPONENTS, N_FEATURES = 2, 3


@pytest.fixture(scope="module")
def X():
    rng = np.random.RandomState(0)
    return np.r_[rng.randn(60, N_FEATURES), rng.randn(60, N_FEATURES) + 5.0]


def _raised(estimator_class, X, **params):
    with pytest.raises(ValueError) as error:
        estimator_class(n_components=N_COMPONENTS, **params).fit(X)
    return str(error.value)


def _assert_message_as_scikit_learn(X, match, **params):
    message = _raised(FastGMM, X, **params)
    assert re.search(match, message), message
    assert message == _raised(GaussianMixture, X, **params)


# ----------------------------------------------------------------------------- initial parameters


def test_weights_init_of_wrong_shape_gets_scikit_learns_message(X):
    weights = np.random.RandomState(0).rand(N_COMPONENTS, 1)
    match = re.escape(
        f"The parameter 'weights' should have the shape of ({N_COMPONENTS},), but got {weights.shape}"
    )
    _assert_message_as_scikit_learn(X, match, weights_init=weights)


def test_weights_init_out_of_range_gets_scikit_learns_message(X):
    weights = np.random.RandomState(0).rand(N_COMPONENTS) + 1
    # scikit-learn prints the minimum as "max value" and the maximum as "min value"; its test
    # matches that, and so does FastGMM.
    match = re.escape(
        "The parameter 'weights' should be in the range [0, 1], but got"
        f" max value {np.min(weights):.5f}, min value {np.max(weights):.5f}"
    )
    _assert_message_as_scikit_learn(X, match, weights_init=weights)


def test_weights_init_not_normalized_gets_scikit_learns_message(X):
    weights = np.random.RandomState(0).rand(N_COMPONENTS)
    weights = weights / (weights.sum() + 1)
    match = re.escape(
        f"The parameter 'weights' should be normalized, but got sum(weights) = {np.sum(weights):.5f}"
    )
    _assert_message_as_scikit_learn(X, match, weights_init=weights)


@pytest.mark.parametrize(
    "dtype, total, accepted",
    [(np.float32, 1 + 5e-7, True), (np.float64, 1 + 5e-9, True), (np.float64, 1 + 5e-7, False)],
)
def test_weights_init_normalization_tolerance_follows_its_dtype_as_in_scikit_learn(X, dtype, total, accepted):
    weights = np.array([0.5, total - 0.5], dtype=dtype)
    if accepted:
        gmm = FastGMM(n_components=N_COMPONENTS, weights_init=weights, random_state=0).fit(X)
        GaussianMixture(n_components=N_COMPONENTS, weights_init=weights, random_state=0).fit(X)
        assert np.all(np.isfinite(gmm.weights_))
    else:
        _assert_message_as_scikit_learn(
            X, "The parameter 'weights' should be normalized", weights_init=weights
        )


def test_means_init_of_wrong_shape_gets_scikit_learns_message(X):
    means = np.random.RandomState(0).rand(N_COMPONENTS + 1, N_FEATURES)
    _assert_message_as_scikit_learn(X, "The parameter 'means' should have the shape of ", means_init=means)


def _precisions_of_wrong_shape(covariance_type):
    return {
        "full": np.ones((N_COMPONENTS + 1, N_FEATURES, N_FEATURES)),
        "tied": np.ones((N_FEATURES + 1, N_FEATURES + 1)),
        "diag": np.ones((N_COMPONENTS + 1, N_FEATURES)),
        "spherical": np.ones(N_COMPONENTS + 1),
    }[covariance_type]


def _precisions_not_positive(covariance_type):
    not_positive = np.ones((N_COMPONENTS, N_FEATURES, N_FEATURES))
    not_positive[0] = np.eye(N_FEATURES)
    not_positive[0, 0, 0] = -1.0
    return {
        "full": not_positive,
        "tied": not_positive[0],
        "diag": np.full((N_COMPONENTS, N_FEATURES), -1.0),
        "spherical": np.full(N_COMPONENTS, -1.0),
    }[covariance_type]


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_precisions_init_of_wrong_shape_gets_scikit_learns_message(X, covariance_type):
    _assert_message_as_scikit_learn(
        X,
        f"The parameter '{covariance_type} precision' should have the shape of",
        covariance_type=covariance_type,
        precisions_init=_precisions_of_wrong_shape(covariance_type),
    )


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_precisions_init_not_positive_gets_scikit_learns_message(X, covariance_type):
    expected = "symmetric, positive-definite" if covariance_type in ("full", "tied") else "positive"
    _assert_message_as_scikit_learn(
        X,
        f"'{covariance_type} precision' should be {expected}",
        covariance_type=covariance_type,
        precisions_init=_precisions_not_positive(covariance_type),
    )


# ----------------------------------------------------------------------------- score


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_score_is_the_mean_of_score_samples_as_scikit_learn_computes_it(X, dtype, covariance_type):
    X_typed = X.astype(dtype)
    gmm = FastGMM(n_components=N_COMPONENTS, covariance_type=covariance_type, random_state=0).fit(X_typed)
    held_out = X_typed[::3] + dtype(0.25)
    for data in (X_typed, held_out):
        score = gmm.score(data)
        assert type(score) is float
        assert score == float(np.mean(gmm.score_samples(data)))
        assert score == GaussianMixture.score(gmm, data)  # scikit-learn's own definition, run on FastGMM


# ----------------------------------------------------------------------------- verbose, sample


@pytest.mark.parametrize("verbose", [True, np.True_])
def test_verbose_true_is_accepted_as_verbose_one(X, verbose, capsys):
    FastGMM(n_components=N_COMPONENTS, verbose=verbose, random_state=0).fit(X)
    out = capsys.readouterr().out
    assert "Initialization 0" in out and "Initialization converged." in out


def test_verbose_false_prints_nothing(X, capsys):
    FastGMM(n_components=N_COMPONENTS, verbose=False, random_state=0).fit(X)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("n_samples", [2.0, 2.5, 1.9999, np.float32(3.0), np.int64(3), np.array(4), True])
def test_sample_accepts_the_numbers_scikit_learn_accepts(X, n_samples):
    gmm = FastGMM(n_components=N_COMPONENTS, random_state=0).fit(X)
    sk = GaussianMixture(n_components=N_COMPONENTS, random_state=0).fit(X)
    samples, labels = gmm.sample(n_samples)
    sk_samples, sk_labels = sk.sample(n_samples)
    assert samples.shape == sk_samples.shape and labels.shape == sk_labels.shape
    assert samples.shape == (int(n_samples), N_FEATURES)


@pytest.mark.parametrize("n_samples", [0, 0.0, 0.5, -1, np.nan])
def test_sample_rejects_fewer_than_one_sample_with_scikit_learns_message(X, n_samples):
    gmm = FastGMM(n_components=N_COMPONENTS, random_state=0).fit(X)
    with pytest.raises(ValueError, match="Invalid value for 'n_samples'"):
        gmm.sample(n_samples)
    with pytest.raises(ValueError):
        GaussianMixture(n_components=N_COMPONENTS, random_state=0).fit(X).sample(n_samples)


@pytest.mark.parametrize("n_samples", ["3", None, [3]])
def test_sample_rejects_non_numbers_with_a_clear_type_error(X, n_samples):
    gmm = FastGMM(n_components=N_COMPONENTS, random_state=0).fit(X)
    with pytest.raises(TypeError, match="n_samples must be a number"):
        gmm.sample(n_samples)


# ----------------------------------------------------------------------------- distinct clusters


def _warnings_of(estimator, X, **fit_params):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        estimator.fit(X, **fit_params)
    return [str(w.message) for w in record if issubclass(w.category, ConvergenceWarning)]


def _two_distinct_rows(n_copies=25):
    return np.repeat(np.random.RandomState(1).randn(2, N_FEATURES), n_copies, axis=0)


def test_kmeans_init_warns_as_scikit_learn_when_there_are_fewer_distinct_points_than_components():
    X = _two_distinct_rows()
    ours = _warnings_of(FastGMM(n_components=3, random_state=0), X)
    expected = (
        "Number of distinct clusters (2) found smaller than n_clusters (3). "
        "Possibly due to duplicate points in X."
    )
    assert expected in ours
    assert expected in _warnings_of(GaussianMixture(n_components=3, random_state=0), X)


def test_distinct_cluster_warning_counts_only_rows_with_positive_weight():
    X = np.r_[_two_distinct_rows(), np.random.RandomState(2).randn(4, N_FEATURES)]
    weights = np.r_[np.ones(50), np.zeros(4)]
    messages = _warnings_of(FastGMM(n_components=3, random_state=0), X, sample_weight=weights)
    assert any(
        re.match(r"Number of distinct clusters \(2\) found smaller than n_clusters \(3\)", m)
        for m in messages
    )
    assert not any("distinct clusters" in m for m in _warnings_of(FastGMM(n_components=3, random_state=0), X))


@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random", "random_from_data"])
def test_no_distinct_cluster_warning_on_ordinary_data(X, init_params):
    messages = _warnings_of(FastGMM(n_components=4, init_params=init_params, random_state=0), X)
    assert not any("distinct clusters" in m for m in messages)


@pytest.mark.parametrize("init_params", ["k-means++", "random", "random_from_data"])
def test_only_the_kmeans_init_warns_about_distinct_clusters_as_in_scikit_learn(init_params):
    X = _two_distinct_rows()
    ours = _warnings_of(FastGMM(n_components=3, init_params=init_params, random_state=0), X)
    theirs = _warnings_of(GaussianMixture(n_components=3, init_params=init_params, random_state=0), X)
    assert not any("distinct clusters" in m for m in ours + theirs)


# ----------------------------------------------------------------------------- array API dispatch


def _run_with_array_api_dispatch(body):
    """Run ``body`` in a fresh interpreter with SCIPY_ARRAY_API=1 (scikit-learn refuses
    array_api_dispatch without it, and SciPy reads it at import) and return its JSON output."""
    script = (
        textwrap.dedent(
            """
        import json
        import numpy as np
        import sklearn
        from fastelbo import FastGMM

        rng = np.random.RandomState(0)
        X = np.r_[rng.randn(60, 3), rng.randn(60, 3) + 5.0]
        result = {}
        with sklearn.config_context(array_api_dispatch=True):
        """
        )
        + textwrap.indent(textwrap.dedent(body), "    ")
        + "\nprint(json.dumps(result))\n"
    )
    env = dict(os.environ, SCIPY_ARRAY_API="1")
    completed = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_numpy_input_fits_under_array_api_dispatch(X):
    result = _run_with_array_api_dispatch(
        """
        for init_params in ["kmeans", "k-means++", "random", "random_from_data"]:
            gmm = FastGMM(2, init_params=init_params, random_state=0).fit(X, sample_weight=np.ones(len(X)))
            result[init_params] = {
                "means": gmm.means_.tolist(),
                "score": gmm.score(X),
                "labels": gmm.predict(X).tolist(),
                "proba": gmm.predict_proba(X).shape[1],
                "bic": gmm.bic(X),
                "elbo": gmm.entropy_decomposition(X).elbo,
                "sample": gmm.sample(3)[0].shape[0],
            }
        """
    )
    for init_params, got in result.items():
        expected = FastGMM(2, init_params=init_params, random_state=0).fit(X)
        np.testing.assert_allclose(got["means"], expected.means_, rtol=1e-12)
        np.testing.assert_allclose(got["score"], expected.score(X), rtol=1e-12)
        np.testing.assert_array_equal(got["labels"], expected.predict(X))
        assert got["proba"] == 2 and got["sample"] == 3


def test_array_api_strict_input_is_converted_to_numpy_under_dispatch(X):
    pytest.importorskip("array_api_strict", reason="array-api-strict is not installed")
    result = _run_with_array_api_dispatch(
        """
        import array_api_strict as xp

        X_xp = xp.asarray(X)
        gmm = FastGMM(2, random_state=0).fit(X_xp, sample_weight=xp.ones(X.shape[0], dtype=xp.float64))
        result["means"] = gmm.means_.tolist()
        result["means_type"] = type(gmm.means_).__module__
        result["labels"] = gmm.predict(X_xp).tolist()
        result["score"] = gmm.score(X_xp)
        result["fit_predict"] = FastGMM(2, random_state=0).fit_predict(X_xp).tolist()

        # Initial parameters from the library too, on a device NumPy reaches only through DLPack.
        device = xp.Device("device1")
        X_device = xp.asarray(X, device=device)
        start = FastGMM(2, random_state=0, max_iter=0).fit(X)
        initial = dict(
            weights_init=xp.asarray(start.weights_, device=device),
            means_init=xp.asarray(start.means_, device=device),
            precisions_init=xp.asarray(start.precisions_, device=device),
        )
        result["from_device"] = FastGMM(2, **initial).fit(X_device).means_.tolist()
        """
    )
    expected = FastGMM(2, random_state=0).fit(X)
    assert result["means_type"] == "numpy"
    np.testing.assert_allclose(result["means"], expected.means_, rtol=1e-12)
    np.testing.assert_array_equal(result["labels"], expected.predict(X))
    np.testing.assert_array_equal(result["fit_predict"], expected.predict(X))
    np.testing.assert_allclose(result["score"], expected.score(X), rtol=1e-12)
    np.testing.assert_allclose(result["from_device"], expected.means_, rtol=1e-10)


class _DeviceOnlyArray:
    """An array of some library that cannot leave its device (no __array__, no CPU DLPack)."""

    shape = (120, 3)
    ndim = 2

    def __array_namespace__(self, api_version=None):
        raise AssertionError("not needed")

    def __array__(self, dtype=None, copy=None):
        raise TypeError("can't convert device array to numpy; copy it to the host first")

    def __dlpack__(self, **kwargs):
        raise BufferError("the data is on a device NumPy cannot read")

    def __dlpack_device__(self):
        return (2, 0)


def test_array_that_numpy_cannot_read_raises_a_clear_type_error(X):
    with pytest.raises(TypeError, match="X of type .*_DeviceOnlyArray cannot be converted to a NumPy array"):
        FastGMM(2).fit(_DeviceOnlyArray())
    gmm = FastGMM(2, random_state=0).fit(X)
    with pytest.raises(TypeError, match="cannot be converted to a NumPy array"):
        gmm.predict(_DeviceOnlyArray())
    with pytest.raises(TypeError, match="sample_weight of type .* cannot be converted"):
        FastGMM(2).fit(X, sample_weight=_DeviceOnlyArray())
