"""FastMFA as a scikit-learn estimator: the checks, bad input, determinism and the inference API."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.estimator_checks import parametrize_with_checks

import reference_mfa as R
from fastelbo import FastMFA
from mixture_checks import mixture_expected_failed_checks

ESTIMATORS = [
    FastMFA(),
    FastMFA(n_components=2, n_factors=2),
    FastMFA(n_components=2, noise="spherical"),
    FastMFA(n_components=2, init_params="random", n_jobs=2),
    FastMFA(n_components=2, init_params="k-means++", n_init=2, n_jobs=1),
]


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=mixture_expected_failed_checks)
def test_sklearn_estimator_check(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


def _data(N=1500, seed=2):
    rng = np.random.default_rng(seed)
    params = R.random_parameters(rng, 3, 6, 2, spread=4.0)
    X, labels = R.sample(rng, N, *params)
    return X, labels


@pytest.mark.parametrize("noise", ["diag", "spherical"])
def test_results_are_bitwise_identical_for_any_n_jobs(noise):
    X, _ = np.repeat(_data()[0], 8, axis=0), None  # enough rows for several chunks
    fits = [
        FastMFA(3, n_factors=2, noise=noise, max_iter=5, tol=0, random_state=0, n_jobs=n) for n in (1, 2, 3)
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for model in fits:
            model.fit(X)
    for model in fits[1:]:
        for name in (
            "weights_",
            "means_",
            "components_",
            "noise_variance_",
            "elbo_history_",
            "entropy_sum_history_",
        ):
            np.testing.assert_array_equal(getattr(model, name), getattr(fits[0], name), err_msg=name)


def test_inference_methods_agree_with_the_dense_reference():
    X, _ = _data()
    model = FastMFA(3, n_factors=2, random_state=0, tol=1e-6, max_iter=300).fit(X)
    params = (model.weights_, model.means_, model.components_, model.noise_variance_)
    resp, log_norm, _ = R.e_step(X, *params)
    np.testing.assert_allclose(model.score_samples(X), log_norm, rtol=1e-10)
    np.testing.assert_allclose(model.predict_proba(X), resp, atol=1e-10)
    np.testing.assert_array_equal(model.predict(X), resp.argmax(axis=1))
    assert model.score(X) == pytest.approx(log_norm.mean(), rel=1e-12)
    np.testing.assert_array_equal(model.fit_predict(X), model.predict(X))
    n_parameters = 2 + 3 * (6 + (6 * 2 - 1) + 6)
    assert model.bic(X) == pytest.approx(-2 * log_norm.sum() + n_parameters * np.log(len(X)), rel=1e-10)
    assert model.aic(X) == pytest.approx(-2 * log_norm.sum() + 2 * n_parameters, rel=1e-10)
    covariances = model.get_covariances()
    np.testing.assert_allclose(
        covariances[1], R.covariance(model.components_, model.noise_variance_, 1), rtol=1e-12
    )


def test_fitted_shapes_and_sampling():
    X, _ = _data()
    for noise, noise_shape in (("diag", (3, 6)), ("spherical", (3,))):
        model = FastMFA(3, n_factors=2, noise=noise, random_state=0).fit(X)
        assert model.weights_.shape == (3,)
        assert model.means_.shape == (3, 6)
        assert model.components_.shape == (3, 2, 6)
        assert model.noise_variance_.shape == noise_shape
        samples, labels = model.sample(50000)
        assert samples.shape == (50000, 6) and labels.shape == (50000,)
        # The samples' per-component covariance is the model's W W^T + Psi.
        c = int(np.argmax(model.weights_))
        np.testing.assert_allclose(np.cov(samples[labels == c].T), model.get_covariances()[c], atol=0.3)


def test_float32_input_is_fitted_in_float32_close_to_float64():
    X, _ = _data()
    model64 = FastMFA(3, n_factors=2, random_state=0, tol=1e-6, max_iter=200).fit(X)
    model32 = FastMFA(3, n_factors=2, random_state=0, tol=1e-6, max_iter=200).fit(
        (X + 1e3).astype(np.float32)
    )
    assert model32.means_.dtype == np.float32 and model32.components_.dtype == np.float32
    assert model32.lower_bound_ == pytest.approx(model64.lower_bound_, rel=1e-4)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"n_components": 0}, "n_components"),
        ({"n_factors": 0}, "n_factors"),
        ({"n_factors": 1.5}, "n_factors"),
        ({"noise": "full"}, "noise"),
        ({"reg_covar": 0.0}, "reg_covar"),
        ({"reg_covar": -1.0}, "reg_covar"),
        ({"tol": -1.0}, "tol"),
        ({"max_iter": -1}, "max_iter"),
        ({"n_init": 0}, "n_init"),
        ({"init_params": "pca"}, "init_params"),
        ({"verbose_interval": 0}, "verbose_interval"),
        ({"warm_start": "yes"}, "warm_start"),
    ],
)
def test_bad_hyperparameters_raise_value_error_naming_them(params, match):
    X, _ = _data(N=100)
    with pytest.raises(ValueError, match=match):
        FastMFA(**params).fit(X)


def test_bad_input_raises_clear_errors():
    X, _ = _data(N=100)
    with pytest.raises(ValueError, match="NaN"):
        FastMFA().fit(np.where(np.arange(X.size).reshape(X.shape) == 3, np.nan, X))
    with pytest.raises(ValueError, match="n_samples >= n_components"):
        FastMFA(n_components=5).fit(X[:4])
    with pytest.raises(ValueError, match="sample_weight"):
        FastMFA().fit(X, sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="Negative"):
        FastMFA().fit(X, sample_weight=-np.ones(len(X)))
    with pytest.raises(TypeError, match="n_jobs"):
        FastMFA(n_jobs="all").fit(X)
    model = FastMFA(n_components=2).fit(X)
    with pytest.raises(ValueError, match="features"):
        model.predict(X[:, :3])
    with pytest.raises(ValueError, match="form"):
        model.entropy_decomposition(form="dense")
    with pytest.raises(ValueError, match="n_samples"):
        model.sample(0)


def test_warm_start_continues_and_refuses_a_changed_shape():
    X, _ = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = FastMFA(3, n_factors=2, max_iter=5, tol=0, warm_start=True, random_state=0).fit(X)
        first = model.lower_bound_
        model.fit(X)
    assert model.elbo_history_[0] >= first - 1e-12
    model.set_params(n_factors=3)
    with pytest.raises(ValueError, match="n_factors"):
        model.fit(X)
