"""FastGMM against sklearn.mixture.GaussianMixture, of which it is meant to be a drop-in replacement.

From identical starting parameters both estimators run the same EM iterations, so every fitted
attribute must agree to round-off (rtol 1e-6 is asserted; observed differences are ~1e-13). The
inference methods of the fitted models must agree as well, and ``sample`` must draw the same
numbers for the same ``random_state``. The initialisations are checked for determinism and for the
quality of the fit they lead to, ``n_init`` for keeping the best run and ``warm_start`` for
continuing from the previous parameters.
"""

import functools
import warnings

import numpy as np
import pytest
from scipy.special import softmax
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import GaussianMixture
from sklearn.mixture._gaussian_mixture import _compute_precision_cholesky_from_precisions
from sklearn.utils._array_api import get_namespace

import reference as ref
from fastelbo import FastGMM

COV_TYPES = list(ref.COVARIANCE_TYPES)
INIT_PARAMS = ["kmeans", "k-means++", "random", "random_from_data"]
PARAMETERS = ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_")
RTOL = 1e-6
N_COMPONENTS = 3


# ----------------------------------------------------------------------------------- helpers


@functools.cache
def _data():
    """Overlapping blobs: EM needs many iterations, so 30 of them exercise real updates."""
    X, _ = ref.make_blobs_data(600, 3, N_COMPONENTS, random_state=0, separation=3.0)
    X_new, _ = ref.make_blobs_data(200, 3, N_COMPONENTS, random_state=1, separation=3.0)
    return X, X_new


@functools.cache
def _blobs():
    """Well-separated blobs with known labels."""
    return ref.make_blobs_data(1500, 4, 5, random_state=3)


def _identical_start(X, covariance_type):
    """weights_init, means_init, precisions_init of a broad start (soft assignment to 3 rows)."""
    rng = np.random.default_rng(1)
    centers = X[rng.choice(X.shape[0], N_COMPONENTS, replace=False)]
    resp = softmax(-ref.squared_distances(X, centers) / 8.0, axis=1)
    weights, means, covariances = ref.m_step(X, resp, 1e-3, covariance_type)
    if covariance_type in ("full", "tied"):
        precisions = np.linalg.inv(covariances)
        precisions = 0.5 * (precisions + np.swapaxes(precisions, -1, -2))
    else:
        precisions = 1.0 / covariances
    return {"weights_init": weights, "means_init": means, "precisions_init": precisions}


def _settings(covariance_type, tol=0.0, max_iter=30):
    X, _ = _data()
    return dict(
        n_components=N_COMPONENTS,
        covariance_type=covariance_type,
        tol=tol,
        max_iter=max_iter,
        reg_covar=1e-6,
        random_state=0,
        **_identical_start(X, covariance_type),
    )


def _fit_quietly(estimator, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(X)


@functools.cache
def _fixed_iteration_pair(covariance_type):
    """FastGMM and GaussianMixture after exactly 30 EM iterations (tol=0) from the same start."""
    X, _ = _data()
    settings = _settings(covariance_type)
    return (
        _fit_quietly(FastGMM(**settings), X),
        _fit_quietly(GaussianMixture(**settings), X),
    )


def _assert_close(actual, expected, rtol=RTOL, name="", atol=None):
    """rtol, plus (by default) an absolute allowance of rtol * 1e-3 * max|expected| for entries
    that are ~0 (off-diagonal covariances, centred means) where a relative bound is meaningless."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, name
    if atol is None:
        atol = rtol * 1e-3 * (float(np.max(np.abs(expected))) if expected.size else 0.0)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=name)


def _assert_same_fit(fast, sk, rtol=RTOL, first_bound=0):
    """Same parameters, lower bounds (from lower_bounds_[first_bound] on), n_iter_, converged_."""
    for name in PARAMETERS:
        _assert_close(getattr(fast, name), getattr(sk, name), rtol, name)
    np.testing.assert_allclose(fast.lower_bound_, sk.lower_bound_, rtol=rtol)
    assert len(fast.lower_bounds_) == len(sk.lower_bounds_) == fast.n_iter_
    np.testing.assert_allclose(fast.lower_bounds_[first_bound:], sk.lower_bounds_[first_bound:], rtol=rtol)
    assert fast.n_iter_ == sk.n_iter_
    assert fast.converged_ == sk.converged_


# ------------------------------------------------------------- fit from identical parameters


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_fit_from_identical_start_matches_sklearn_after_fixed_iterations(covariance_type):
    fast, sk = _fixed_iteration_pair(covariance_type)
    assert fast.n_iter_ == 30 and not fast.converged_
    _assert_same_fit(fast, sk)
    # EM never decreases the likelihood.
    assert np.all(np.diff(fast.lower_bounds_) >= -1e-12 * abs(fast.lower_bound_))


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_unconverged_fit_warns_like_sklearn(covariance_type):
    X, _ = _data()
    settings = _settings(covariance_type, max_iter=3)
    with pytest.warns(ConvergenceWarning):
        GaussianMixture(**settings).fit(X)
    with pytest.warns(ConvergenceWarning):
        FastGMM(**settings).fit(X)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_fit_converging_by_tol_stops_at_the_same_iteration_as_sklearn(covariance_type):
    X, _ = _data()
    settings = _settings(covariance_type, tol=1e-3, max_iter=200)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        fast = FastGMM(**settings).fit(X)
        sk = GaussianMixture(**settings).fit(X)
    assert fast.converged_ and 1 < fast.n_iter_ < 200
    assert abs(fast.lower_bounds_[-1] - fast.lower_bounds_[-2]) < 1e-3
    _assert_same_fit(fast, sk)


@pytest.mark.parametrize("shape", [(1, 3), (3, 1), (1, 1)], ids=["D1", "K1", "D1K1"])
@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_single_feature_and_single_component_fits_match_sklearn(covariance_type, shape):
    n_features, n_components = shape
    X, _ = ref.make_blobs_data(300, n_features, 2, random_state=4)
    settings = dict(
        n_components=n_components,
        covariance_type=covariance_type,
        init_params="random",
        random_state=0,
        tol=0.0,
        max_iter=20,
    )
    fast = _fit_quietly(FastGMM(**settings), X)
    sk = _fit_quietly(GaussianMixture(**settings), X)
    _assert_same_fit(fast, sk)
    np.testing.assert_allclose(fast.score_samples(X), sk.score_samples(X), rtol=RTOL)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_precisions_init_gives_the_same_precisions_cholesky_as_sklearn(covariance_type):
    # With max_iter=0 the fitted precision factors are those of precisions_init. sklearn (>= 1.3,
    # scikit-learn#26415) factors P = U U^T with U upper triangular, the convention of every
    # precisions_cholesky_ its M-step produces and the one fastelbo's kernels document
    # (gaussian_components.hpp). sklearn itself cannot finish a max_iter=0 fit with
    # precisions_init (it never sets covariances_), so its factorisation helper is the reference.
    X, _ = _data()
    precisions = _identical_start(X, covariance_type)["precisions_init"]
    fast = FastGMM(
        n_components=N_COMPONENTS,
        covariance_type=covariance_type,
        max_iter=0,
        random_state=0,
        precisions_init=precisions,
    ).fit(X)
    expected = _compute_precision_cholesky_from_precisions(
        precisions, covariance_type, xp=get_namespace(precisions)[0]
    )
    _assert_close(fast.precisions_, precisions, name="precisions_")
    _assert_close(fast.precisions_cholesky_, expected, name="precisions_cholesky_")


# -------------------------------------------------------------------- fitted-model methods


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_fitted_model_scores_predictions_and_criteria_match_sklearn(covariance_type):
    fast, sk = _fixed_iteration_pair(covariance_type)
    for data in _data():  # training data and new data
        np.testing.assert_allclose(fast.score_samples(data), sk.score_samples(data), rtol=RTOL)
        np.testing.assert_allclose(fast.score(data), sk.score(data), rtol=RTOL)
        np.testing.assert_allclose(fast.predict_proba(data), sk.predict_proba(data), rtol=RTOL, atol=1e-12)
        np.testing.assert_array_equal(fast.predict(data), sk.predict(data))
        np.testing.assert_allclose(fast.bic(data), sk.bic(data), rtol=RTOL)
        np.testing.assert_allclose(fast.aic(data), sk.aic(data), rtol=RTOL)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_fit_predict_labels_match_sklearn_and_predict(covariance_type):
    X, _ = _data()
    settings = _settings(covariance_type)
    fast = FastGMM(**settings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fast_labels = fast.fit_predict(X)
        sk_labels = GaussianMixture(**settings).fit_predict(X)
    np.testing.assert_array_equal(fast_labels, sk_labels)
    np.testing.assert_array_equal(fast_labels, fast.predict(X))


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_sample_with_same_random_state_draws_what_sklearn_draws(covariance_type):
    fast, sk = _fixed_iteration_pair(covariance_type)
    fast_X, fast_y = fast.sample(500)
    sk_X, sk_y = sk.sample(500)
    assert fast_X.shape == sk_X.shape == (500, 3)
    np.testing.assert_array_equal(fast_y, sk_y)
    np.testing.assert_allclose(fast_X, sk_X, rtol=RTOL, atol=1e-9)
    # The same random_state draws the same samples again.
    np.testing.assert_array_equal(fast.sample(500)[0], fast_X)


# ------------------------------------------------------------------------------- float32


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_float32_fit_keeps_float32_parameters_and_agrees_with_float64_fit(covariance_type):
    X, X_new = _data()
    settings = _settings(covariance_type)
    fit64 = _fixed_iteration_pair(covariance_type)[0]
    fit32 = _fit_quietly(FastGMM(**settings), X.astype(np.float32))
    for name in PARAMETERS:
        assert getattr(fit32, name).dtype == np.float32, name
    # float32 rounding (eps 6e-8) accumulated over 30 EM iterations; observed ~1e-5.
    for name in PARAMETERS:
        _assert_close(getattr(fit32, name), getattr(fit64, name), 1e-3, name)
    np.testing.assert_allclose(fit32.lower_bounds_, fit64.lower_bounds_, rtol=1e-4)
    assert fit32.n_iter_ == fit64.n_iter_
    np.testing.assert_allclose(
        fit32.score_samples(X_new.astype(np.float32)), fit64.score_samples(X_new), rtol=1e-4
    )


# ------------------------------------------------------------------------ initialisations


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_default_kmeans_init_reaches_sklearn_lower_bound_on_separated_blobs(covariance_type):
    X, y = _blobs()
    fast = FastGMM(n_components=5, covariance_type=covariance_type, random_state=0).fit(X)
    sk = GaussianMixture(n_components=5, covariance_type=covariance_type, random_state=0).fit(X)
    assert fast.converged_
    assert fast.lower_bound_ >= sk.lower_bound_ - 1e-3
    assert adjusted_rand_score(y, fast.predict(X)) > 0.99


@functools.cache
def _single_gaussian_lower_bound(covariance_type):
    X, _ = _blobs()
    return GaussianMixture(1, covariance_type=covariance_type).fit(X).lower_bound_


@pytest.mark.parametrize("init_params", INIT_PARAMS)
@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_every_init_params_is_deterministic_and_reaches_a_sane_lower_bound(covariance_type, init_params):
    X, _ = _blobs()
    settings = dict(
        n_components=5,
        covariance_type=covariance_type,
        init_params=init_params,
        random_state=7,
        max_iter=300,
    )
    first = FastGMM(**settings).fit(X)
    second = FastGMM(**settings).fit(X)
    for name in PARAMETERS:
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name), err_msg=name)
    assert first.lower_bounds_ == second.lower_bounds_
    assert first.converged_
    assert np.isfinite(first.lower_bound_)
    # EM increases the likelihood from any start, and five components do at least as well as the
    # single Gaussian (itself a stationary point of the five-component likelihood).
    assert np.all(np.diff(first.lower_bounds_) >= -1e-12 * abs(first.lower_bound_))
    assert first.lower_bound_ >= _single_gaussian_lower_bound(covariance_type) - 1e-9
    np.testing.assert_allclose(first.weights_.sum(), 1.0, rtol=1e-12)


def _fit_both_from_random_init(covariance_type, init_params):
    """FastGMM and GaussianMixture fitted with the same random initialisation and restarts."""
    X, _ = _blobs()
    settings = dict(
        n_components=5,
        covariance_type=covariance_type,
        init_params=init_params,
        random_state=11,
        n_init=2,
        tol=0.0,
        max_iter=10,
    )
    return _fit_quietly(FastGMM(**settings), X), _fit_quietly(GaussianMixture(**settings), X)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_random_init_draws_the_same_start_as_sklearn_for_the_same_random_state(covariance_type):
    # 'random' draws its responsibilities from the shared RandomState exactly as sklearn does, so
    # the fits, restarts included, are the same.
    fast, sk = _fit_both_from_random_init(covariance_type, "random")
    _assert_same_fit(fast, sk)


@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical"])
def test_random_from_data_init_picks_the_same_rows_as_sklearn(covariance_type):
    fast, sk = _fit_both_from_random_init(covariance_type, "random_from_data")
    # The first lower bound is that of the initial parameters: one data point per component
    # with covariance reg_covar * I, so ~1e6 in size and sensitive to round-off in the
    # covariances; sklearn also leaves its initial weights summing to K/N instead of 1 here
    # (weights = nk / n_samples with nk summing to K). From the second iteration on the fits
    # must agree.
    assert fast.lower_bounds_[0] < -1e5 and sk.lower_bounds_[0] < -1e5
    _assert_same_fit(fast, sk, first_bound=1)


def _one_hot_rows(indices, n_samples):
    resp = np.zeros((n_samples, len(indices)))
    resp[indices, np.arange(len(indices))] = 1.0
    return resp


@pytest.mark.parametrize("init_params", ["random", "random_from_data"])
@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_random_inits_start_from_the_exact_m_step_of_their_responsibilities(covariance_type, init_params):
    # max_iter=0 leaves the initial parameters. They must be the M-step (THEORY 2.1) of the
    # responsibilities sklearn's rules draw: uniform rows normalised, or one-hot on K random
    # rows. (For 'tied' with one-hot rows sklearn's own initial covariance differs: its tied
    # estimator assumes every row of resp sums to 1.)
    X, _ = _blobs()
    n_samples, K, reg = X.shape[0], 5, 1e-6
    fast = FastGMM(
        n_components=K,
        covariance_type=covariance_type,
        init_params=init_params,
        random_state=11,
        max_iter=0,
        reg_covar=reg,
    ).fit(X)
    rng = np.random.RandomState(11)
    if init_params == "random":
        resp = rng.uniform(size=(n_samples, K))
        resp /= resp.sum(axis=1, keepdims=True)
    else:
        resp = _one_hot_rows(rng.choice(n_samples, size=K, replace=False), n_samples)
    weights, means, covariances = ref.m_step(X, resp, reg, covariance_type)
    _assert_close(fast.weights_, weights, name="weights_")
    _assert_close(fast.means_, means, name="means_")
    # FastGMM forms scatter matrices from moments about the data mean, so the covariances carry
    # round-off of order eps * |x - mean|^2 in absolute terms: ~1e-14 here, far below reg_covar.
    data_scale = float(np.max(np.sum((X - X.mean(axis=0)) ** 2, axis=1)))
    _assert_close(fast.covariances_, covariances, name="covariances_", atol=1e-13 * data_scale)
    # (The precision factors amplify that round-off by |P|^2, so they are checked against the
    # estimator's own covariances.)
    _assert_close(
        fast.precisions_cholesky_,
        ref.precisions_cholesky_from_covariances(fast.covariances_, covariance_type),
        name="precisions_cholesky_",
    )
    assert fast.n_iter_ == 0 and fast.lower_bounds_ == []


# ------------------------------------------------------------------------ n_init, warm_start


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_n_init_keeps_the_best_of_its_runs(covariance_type):
    X, _ = _blobs()
    settings = dict(
        n_components=5,
        covariance_type=covariance_type,
        init_params="random_from_data",
        tol=1e-3,
        max_iter=8,
    )
    best = _fit_quietly(FastGMM(n_init=3, random_state=5, **settings), X)
    # The three runs, replayed one by one from the same stream of random numbers.
    stream = np.random.RandomState(5)
    runs = [_fit_quietly(FastGMM(n_init=1, random_state=stream, **settings), X) for _ in range(3)]
    bounds = [run.lower_bound_ for run in runs]
    assert len(set(bounds)) == 3, "the restarts should end in different places"
    winner = runs[int(np.argmax(bounds))]
    assert best.lower_bound_ == max(bounds)
    for name in PARAMETERS:
        np.testing.assert_array_equal(getattr(best, name), getattr(winner, name), err_msg=name)
    assert best.lower_bounds_ == winner.lower_bounds_
    assert best.n_iter_ == winner.n_iter_
    assert best.converged_ == winner.converged_


def test_n_init_best_run_is_kept_even_when_it_is_not_the_last():
    X, _ = _blobs()
    settings = dict(n_components=5, init_params="random_from_data", tol=1e-3, max_iter=8)
    stream = np.random.RandomState(5)
    bounds = [_fit_quietly(FastGMM(random_state=stream, **settings), X).lower_bound_ for _ in range(3)]
    assert int(np.argmax(bounds)) != 2, "precondition: the last run is not the best"
    assert bounds[2] < max(bounds)
    best = _fit_quietly(FastGMM(n_init=3, random_state=5, **settings), X)
    assert best.lower_bound_ == max(bounds)
    # The kept parameters are the best run's (after its last M-step, which cannot lower the
    # likelihood), not the last run's.
    assert best.score(X) >= best.lower_bound_ - 1e-12
    assert best.score(X) > bounds[2]


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_warm_start_continues_from_the_previous_parameters(covariance_type):
    X, _ = _data()
    settings = _settings(covariance_type, max_iter=5)
    fast = _fit_quietly(FastGMM(**settings), X)
    previous = {name: getattr(fast, name).copy() for name in PARAMETERS}
    score_before = fast.score(X)

    fast.set_params(warm_start=True, max_iter=1, n_init=3)  # n_init is ignored on a warm start
    _fit_quietly(fast, X)
    assert fast.n_iter_ == 1
    np.testing.assert_allclose(fast.lower_bounds_[0], score_before, rtol=1e-12)

    # One EM step from the previous parameters, as sklearn takes it.
    one_step = _fit_quietly(
        GaussianMixture(
            n_components=N_COMPONENTS,
            covariance_type=covariance_type,
            tol=0.0,
            max_iter=1,
            reg_covar=1e-6,
            weights_init=previous["weights_"],
            means_init=previous["means_"],
            precisions_init=previous["precisions_"],
        ),
        X,
    )
    for name in PARAMETERS:
        _assert_close(getattr(fast, name), getattr(one_step, name), RTOL, name)

    # And sklearn's own warm start agrees, convergence flag included.
    sk = _fit_quietly(GaussianMixture(**settings), X)
    sk.set_params(warm_start=True, max_iter=1, n_init=3)
    _fit_quietly(sk, X)
    _assert_same_fit(fast, sk)
