"""Bad input to FastGMM fails early with a clear error; awkward but valid input fits cleanly.

Every rejection must happen before a C++ kernel runs: the ``no_kernels`` fixture replaces the
kernels of ``fastelbo._core`` with a function that fails the test if it is ever called, so an error
raised only after (or by) a kernel call shows up as an AssertionError instead of the expected
ValueError / TypeError.
"""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning, NotFittedError

from fastelbo import FastFactorAnalysis, FastGMM, FastMFA, FastPPCA, _core

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]
KERNELS = ["gaussian_mixture_pass", "kmeans_plusplus", "lloyd_kmeans"]
FITTED_ARRAYS = [
    "weights_",
    "means_",
    "covariances_",
    "precisions_",
    "precisions_cholesky_",
    "elbo_history_",
    "entropy_sum_history_",
]


def _blobs(n_samples=120, n_features=3, seed=0):
    rng = np.random.RandomState(seed)
    centers = np.array([[0.0] * n_features, [6.0] * n_features])
    return centers[rng.randint(2, size=n_samples)] + rng.standard_normal((n_samples, n_features))


@pytest.fixture(scope="module")
def X():
    return _blobs()


@pytest.fixture(scope="module")
def fitted(X):
    return FastGMM(n_components=2, random_state=0).fit(X)


@pytest.fixture
def no_kernels(monkeypatch):
    """Make any call into the C++ kernels fail the test."""

    def kernel_called(*args, **kwargs):
        raise AssertionError("a C++ kernel ran before the input was validated")

    for name in KERNELS:
        monkeypatch.setattr(_core, name, kernel_called)


def _with_value(X, value, row=3, column=1):
    X = np.array(X, dtype=np.float64)
    X[row, column] = value
    return X


# ----------------------------------------------------------------------------- non-finite X

NON_FINITE = [
    pytest.param(np.nan, "NaN", id="nan"),
    pytest.param(np.inf, "infinity", id="inf"),
    pytest.param(-np.inf, "infinity", id="-inf"),
]


@pytest.mark.parametrize("value, message", NON_FINITE)
@pytest.mark.parametrize("method", ["fit", "fit_predict"])
def test_fit_rejects_non_finite_X(X, value, message, method, no_kernels):
    with pytest.raises(ValueError, match=message):
        getattr(FastGMM(n_components=2), method)(_with_value(X, value))


@pytest.mark.parametrize("value, message", NON_FINITE)
@pytest.mark.parametrize(
    "method",
    ["predict", "predict_proba", "score_samples", "score", "entropy_decomposition", "bic", "aic"],
)
def test_inference_rejects_non_finite_X(fitted, X, value, message, method, no_kernels):
    with pytest.raises(ValueError, match=message):
        getattr(fitted, method)(_with_value(X, value))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_is_rejected_in_float32_and_float64(X, dtype, no_kernels):
    with pytest.raises(ValueError, match="NaN"):
        FastGMM(n_components=2).fit(_with_value(X, np.nan).astype(dtype))


# ----------------------------------------------------------------------------- shapes of X


def test_fit_rejects_1d_X(X, no_kernels):
    with pytest.raises(ValueError, match="Expected 2D array, got 1D array"):
        FastGMM(n_components=2).fit(X[:, 0])


def test_fit_rejects_3d_X(X, no_kernels):
    with pytest.raises(ValueError, match="dim 3"):
        FastGMM(n_components=2).fit(X[:, :, None])


@pytest.mark.parametrize("method", ["predict", "predict_proba", "score_samples"])
def test_inference_rejects_1d_and_3d_X(fitted, X, method, no_kernels):
    with pytest.raises(ValueError, match="Expected 2D array, got 1D array"):
        getattr(fitted, method)(X[0])
    with pytest.raises(ValueError, match="dim 3"):
        getattr(fitted, method)(X[:, :, None])


def test_fit_rejects_X_without_rows(no_kernels):
    with pytest.raises(ValueError, match="0 sample"):
        FastGMM(n_components=1).fit(np.empty((0, 3)))


def test_fit_rejects_X_without_features(no_kernels):
    with pytest.raises(ValueError, match="0 feature"):
        FastGMM(n_components=1).fit(np.empty((10, 0)))


@pytest.mark.parametrize("method", ["predict", "predict_proba", "score_samples"])
def test_inference_rejects_empty_X(fitted, method, no_kernels):
    with pytest.raises(ValueError, match="0 sample"):
        getattr(fitted, method)(np.empty((0, 3)))
    with pytest.raises(ValueError, match="0 feature"):
        getattr(fitted, method)(np.empty((4, 0)))


def test_fit_rejects_fewer_samples_than_components(X, no_kernels):
    with pytest.raises(ValueError, match="n_samples >= n_components"):
        FastGMM(n_components=5).fit(X[:4])


@pytest.mark.parametrize(
    "method", ["predict", "predict_proba", "score_samples", "score", "entropy_decomposition"]
)
def test_inference_rejects_wrong_number_of_features(fitted, X, method, no_kernels):
    with pytest.raises(ValueError, match="X has 2 features, but FastGMM is expecting 3"):
        getattr(fitted, method)(X[:, :2])


# ----------------------------------------------------------------------------- dtype of X


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(np.array([[1.0, "a"], [2.0, "b"], [3.0, "c"]], dtype=object), id="object"),
        pytest.param(np.array([["a", "b"], ["c", "d"], ["e", "f"]]), id="str"),
        pytest.param([["a", "b"], ["c", "d"], ["e", "f"]], id="list-of-str"),
    ],
)
def test_fit_rejects_non_numeric_X(bad, no_kernels):
    with pytest.raises(ValueError, match="could not convert string to float"):
        FastGMM(n_components=1).fit(bad)


def test_fit_rejects_object_X_holding_none(X, no_kernels):
    bad = X.astype(object)
    bad[0, 0] = None
    with pytest.raises(ValueError, match="NaN"):
        FastGMM(n_components=2).fit(bad)


def test_fit_rejects_complex_X(X, no_kernels):
    with pytest.raises(ValueError, match="Complex data not supported"):
        FastGMM(n_components=2).fit(X + 1j)


def test_inference_rejects_complex_X(fitted, X, no_kernels):
    with pytest.raises(ValueError, match="Complex data not supported"):
        fitted.predict(X + 1j)


def test_fit_rejects_sparse_X(X, no_kernels):
    sparse = pytest.importorskip("scipy.sparse")
    with pytest.raises(TypeError, match="dense data is required"):
        FastGMM(n_components=2).fit(sparse.csr_matrix(X))


def test_object_X_of_numbers_is_fitted_as_float64(X):
    expected = FastGMM(n_components=2, random_state=0).fit(X)
    gmm = FastGMM(n_components=2, random_state=0).fit(X.astype(object))
    assert gmm.means_.dtype == np.float64
    np.testing.assert_array_equal(gmm.means_, expected.means_)


# ----------------------------------------------------------------------------- initial parameters


@pytest.mark.parametrize("shape", [(3, 3), (2, 2), (2, 3, 1), (3,)])
def test_fit_rejects_means_init_of_wrong_shape(X, shape, no_kernels):
    with pytest.raises(ValueError, match=r"The parameter 'means' should have the shape of \(2, 3\)"):
        FastGMM(n_components=2, means_init=np.zeros(shape)).fit(X)


@pytest.mark.parametrize("weights", [[0.3, 0.3], [0.7, 0.7], [0.0, 0.0]])
def test_fit_rejects_weights_init_not_summing_to_one(X, weights, no_kernels):
    with pytest.raises(ValueError, match=r"The parameter 'weights' should be normalized, but got sum"):
        FastGMM(n_components=2, weights_init=weights).fit(X)


@pytest.mark.parametrize("weights", [[0.2, 0.3, 0.5], [1.0], [[0.5, 0.5]]])
def test_fit_rejects_weights_init_of_wrong_shape(X, weights, no_kernels):
    with pytest.raises(ValueError, match=r"The parameter 'weights' should have the shape of \(2,\)"):
        FastGMM(n_components=2, weights_init=weights).fit(X)


def test_fit_rejects_negative_weights_init(X, no_kernels):
    with pytest.raises(ValueError, match=r"The parameter 'weights' should be in the range \[0, 1\]"):
        FastGMM(n_components=2, weights_init=[1.5, -0.5]).fit(X)


@pytest.mark.parametrize(
    "name, value",
    [
        ("weights_init", [np.nan, 1.0]),
        ("means_init", [[np.nan, 0.0, 0.0], [1.0, 1.0, 1.0]]),
        ("means_init", [[np.inf, 0.0, 0.0], [1.0, 1.0, 1.0]]),
    ],
)
def test_fit_rejects_non_finite_initial_parameters(X, name, value, no_kernels):
    with pytest.raises(ValueError, match=f"{name} contains NaN or infinity"):
        FastGMM(n_components=2, **{name: value}).fit(X)


@pytest.mark.parametrize("name", ["weights_init", "means_init"])
def test_fit_rejects_non_numeric_initial_parameters(X, name, no_kernels):
    value = ["a", "b"] if name == "weights_init" else [["a", "b", "c"], ["d", "e", "f"]]
    with pytest.raises(TypeError, match=f"{name} must be an array of real numbers"):
        FastGMM(n_components=2, **{name: value}).fit(X)


@pytest.mark.parametrize(
    "covariance_type, name, value",
    [
        ("full", "weights_init", np.array([0.5, 0.5]) + 1j),
        ("full", "means_init", np.zeros((2, 3)) + 1j),
        ("full", "precisions_init", np.stack([np.eye(3), np.eye(3)]) + 1j),
        ("diag", "precisions_init", np.ones((2, 3)) + 1j),
    ],
)
def test_fit_rejects_complex_initial_parameters(X, covariance_type, name, value, no_kernels):
    # scikit-learn's GaussianMixture raises "Complex data not supported"; silently dropping the
    # imaginary part (with a numpy ComplexWarning) would fit something the user did not ask for.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", np.exceptions.ComplexWarning)  # a warning is no rejection
        with pytest.raises((ValueError, TypeError), match=name):
            FastGMM(n_components=2, covariance_type=covariance_type, **{name: value}).fit(X)


def _not_positive_definite(covariance_type):
    indefinite = np.diag([1.0, -1.0, 1.0])
    singular = np.diag([1.0, 1.0, 0.0])
    nonsymmetric = np.eye(3) + np.triu(np.ones((3, 3)), 1)
    if covariance_type == "full":
        return {
            "indefinite": np.stack([np.eye(3), indefinite]),
            "singular": np.stack([singular, np.eye(3)]),
            "nonsymmetric": np.stack([np.eye(3), nonsymmetric]),
        }
    return {"indefinite": indefinite, "singular": singular, "nonsymmetric": nonsymmetric}


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
@pytest.mark.parametrize("kind", ["indefinite", "singular", "nonsymmetric"])
def test_fit_rejects_precisions_init_that_is_not_positive_definite(X, covariance_type, kind, no_kernels):
    precisions = _not_positive_definite(covariance_type)[kind]
    message = f"'{covariance_type} precision' should be symmetric, positive-definite"
    with pytest.raises(ValueError, match=message):
        FastGMM(n_components=2, covariance_type=covariance_type, precisions_init=precisions).fit(X)


@pytest.mark.parametrize(
    "covariance_type, precisions",
    [
        ("diag", [[1.0, 0.0, 1.0], [1.0, 1.0, 1.0]]),
        ("diag", [[1.0, -2.0, 1.0], [1.0, 1.0, 1.0]]),
        ("spherical", [1.0, 0.0]),
        ("spherical", [-1.0, 1.0]),
    ],
)
def test_fit_rejects_non_positive_diagonal_precisions_init(X, covariance_type, precisions, no_kernels):
    with pytest.raises(ValueError, match=f"'{covariance_type} precision' should be positive"):
        FastGMM(n_components=2, covariance_type=covariance_type, precisions_init=np.array(precisions)).fit(X)


@pytest.mark.parametrize(
    "covariance_type, shape",
    [("full", (1, 3, 3)), ("full", (2, 3)), ("tied", (2, 2)), ("diag", (3,)), ("spherical", (3,))],
)
def test_fit_rejects_precisions_init_of_wrong_shape(X, covariance_type, shape, no_kernels):
    message = f"The parameter '{covariance_type} precision' should have the shape of"
    with pytest.raises(ValueError, match=message):
        FastGMM(n_components=2, covariance_type=covariance_type, precisions_init=np.ones(shape)).fit(X)


def test_fit_rejects_non_finite_precisions_init(X, no_kernels):
    precisions = np.array([[1.0, np.nan, 1.0], [1.0, 1.0, 1.0]])
    with pytest.raises(ValueError, match="precisions_init contains NaN or infinity"):
        FastGMM(n_components=2, covariance_type="diag", precisions_init=precisions).fit(X)


# ----------------------------------------------------------------------------- hyperparameters


def test_fit_rejects_unknown_covariance_type(X, no_kernels):
    with pytest.raises(ValueError, match="covariance_type must be one of"):
        FastGMM(n_components=2, covariance_type="diagonal").fit(X)


def test_fit_rejects_unknown_init_params(X, no_kernels):
    with pytest.raises(ValueError, match="init_params must be one of"):
        FastGMM(n_components=2, init_params="kmeans++").fit(X)


INVALID_HYPERPARAMETERS = [
    ("n_components", [0, -1, 1.5, "a", None, True, np.nan]),
    ("max_iter", [-1, 1.5, "a", None, np.nan]),
    ("n_init", [0, -1, 1.5, "a", None]),
    ("tol", [-1.0, "a", None, np.nan, np.inf, True]),
    ("reg_covar", [-1e-6, "a", None, np.nan, np.inf, True]),
    ("warm_start", ["a", 1, None]),
    ("n_jobs", [0, 1.5, "a", True, np.nan]),
    ("verbose", [-1, 1.5, "a"]),
    ("verbose_interval", [0, 1.5, "a"]),
]


@pytest.mark.parametrize(
    "name, value",
    [
        pytest.param(name, value, id=f"{name}={value!r}")
        for name, values in INVALID_HYPERPARAMETERS
        for value in values
    ],
)
def test_fit_rejects_invalid_hyperparameter(X, name, value, no_kernels):
    with pytest.raises((ValueError, TypeError), match=name):
        FastGMM(**{"n_components": 2, name: value}).fit(X)


@pytest.mark.parametrize(
    "name, value",
    [
        ("n_components", np.int64(2)),
        ("max_iter", 0),
        ("n_init", np.int32(2)),
        ("tol", 0),
        ("tol", 1.5),
        ("reg_covar", 0.0),
        ("reg_covar", 1.5),
        ("n_jobs", None),
        ("n_jobs", 1),
        ("n_jobs", -1),
        ("n_jobs", -100),
    ],
)
def test_fit_accepts_boundary_hyperparameters(X, name, value):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gmm = FastGMM(**{"n_components": 2, "random_state": 0, name: value}).fit(X)
    assert np.all(np.isfinite(gmm.means_))


# ----------------------------------------------------------------------------- before fit


@pytest.mark.parametrize(
    "method",
    [
        "predict",
        "predict_proba",
        "score_samples",
        "score",
        "bic",
        "aic",
        "entropy_decomposition",
    ],
)
def test_methods_before_fit_raise_not_fitted(X, method, no_kernels):
    with pytest.raises(NotFittedError, match="not fitted"):
        getattr(FastGMM(n_components=2), method)(X)


def test_sample_and_training_decomposition_before_fit_raise_not_fitted(no_kernels):
    with pytest.raises(NotFittedError, match="not fitted"):
        FastGMM(n_components=2).sample(3)
    with pytest.raises(NotFittedError, match="not fitted"):
        FastGMM(n_components=2).entropy_decomposition()


# ----------------------------------------------------------------------------- degenerate data


def _degenerate(name):
    rng = np.random.RandomState(1)
    if name == "constant-feature":
        return np.c_[rng.standard_normal((150, 3)), np.full(150, 7.0)]
    if name == "all-constant":
        return np.full((40, 3), 2.5)
    if name == "duplicate-points":
        return np.repeat(rng.standard_normal((4, 3)), 30, axis=0)
    if name == "fewer-distinct-points-than-components":
        return np.repeat(rng.standard_normal((2, 3)), 25, axis=0)
    raise ValueError(name)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize(
    "data",
    ["constant-feature", "all-constant", "duplicate-points", "fewer-distinct-points-than-components"],
)
def test_degenerate_data_fits_without_nan(data, covariance_type, dtype):
    X = _degenerate(data).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gmm = FastGMM(n_components=3, covariance_type=covariance_type, random_state=0).fit(X)
    for name in FITTED_ARRAYS:
        assert np.all(np.isfinite(getattr(gmm, name))), name
    assert np.isfinite(gmm.lower_bound_)
    assert np.all(np.isfinite(gmm.lower_bounds_))
    for decomposition in (gmm.entropy_decomposition(), gmm.entropy_decomposition(X)):
        for field, value in decomposition.to_dict().items():
            if isinstance(value, float):
                assert np.isfinite(value), field
    assert np.all(np.isfinite(gmm.score_samples(X)))
    proba = gmm.predict_proba(X)
    assert np.all(np.isfinite(proba))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)


# ----------------------------------------------------------------------------- dtypes


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float32_input_keeps_float32_parameters_and_outputs(X, covariance_type):
    X32 = X.astype(np.float32)
    gmm = FastGMM(n_components=2, covariance_type=covariance_type, random_state=0).fit(X32)
    for name in ["weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"]:
        assert getattr(gmm, name).dtype == np.float32, name
    assert gmm.predict_proba(X32).dtype == np.float32
    assert gmm.score_samples(X32).dtype == np.float32


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.float16, np.bool_])
def test_other_input_dtypes_are_computed_in_float64(dtype):
    X = np.round(_blobs() * 10)
    X_typed = (X > 0) if dtype is np.bool_ else X.astype(dtype)
    expected = FastGMM(n_components=2, random_state=0).fit(X_typed.astype(np.float64))
    gmm = FastGMM(n_components=2, random_state=0).fit(X_typed)
    for name in ["weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"]:
        assert getattr(gmm, name).dtype == np.float64, name
        np.testing.assert_array_equal(getattr(gmm, name), getattr(expected, name))
    assert gmm.predict_proba(X_typed).dtype == np.float64
    assert gmm.score_samples(X_typed).dtype == np.float64


@pytest.mark.parametrize("make", [FastGMM, FastMFA, FastPPCA, FastFactorAnalysis])
@pytest.mark.parametrize("seed", [-1, 2**32, "x"])
def test_a_seed_out_of_range_gets_scikit_learns_message(make, seed):
    from sklearn.mixture import GaussianMixture

    X = np.random.RandomState(0).randn(30, 3)
    with pytest.raises(ValueError) as theirs:
        GaussianMixture(2, random_state=seed).fit(X)
    kwargs = {"solver": "em"} if make is FastPPCA else {}
    with pytest.raises(ValueError, match="random_state") as ours:
        make(n_components=2, random_state=seed, **kwargs).fit(X)
    assert str(ours.value) == str(theirs.value).replace("GaussianMixture", make.__name__)
