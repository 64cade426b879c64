"""FastFactorAnalysis: scikit-learn's FactorAnalysis likelihood reached or beaten on real data,
EM steps and entropy terms against the NumPy reference, the gap F - S (docs/theory.rst, factor models), the
scikit-learn attributes and methods, sample weights, thread-count determinism and bad input."""

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.decomposition import FactorAnalysis
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import StandardScaler

from fastelbo import FastFactorAnalysis
from reference_factor import (
    entropy_terms,
    log_likelihoods,
    model_covariance,
    posterior,
    profile_components,
    px_em_step,
)


def _breast_cancer():
    return StandardScaler().fit_transform(load_breast_cancer().data)


def _wine():
    return StandardScaler().fit_transform(load_wine().data)


DATA = {"breast_cancer": _breast_cancer, "wine": _wine}


def _factor_data(n_samples, n_features, n_components, offset=0.0, seed=0):
    """Draws from a factor model with heterogeneous noise, far from the origin by ``offset``."""
    rng = np.random.RandomState(seed)
    loadings = rng.standard_normal((n_components, n_features))
    noise = rng.uniform(0.2, 1.0, n_features)
    latents = rng.standard_normal((n_samples, n_components))
    return latents @ loadings + rng.standard_normal((n_samples, n_features)) * np.sqrt(noise) + offset


@pytest.mark.parametrize(
    "data, n_components, tol",
    [
        ("breast_cancer", 1, 1e-2),  # scikit-learn's default tolerance
        ("breast_cancer", 3, 1e-2),
        ("breast_cancer", 1, 1e-6),
        ("breast_cancer", 3, 1e-6),
        ("wine", 1, 1e-6),
        ("wine", 2, 1e-6),
        ("wine", 3, 1e-6),
    ],
)
def test_reaches_sklearn_factor_analysis_log_likelihood(data, n_components, tol):
    X = DATA[data]()
    expected = FactorAnalysis(n_components, tol=tol, max_iter=10000, random_state=0).fit(X).score(X)
    fa = FastFactorAnalysis(n_components, tol=tol, max_iter=10000).fit(X)
    assert fa.converged_
    assert fa.score(X) >= expected - 1e-6 * abs(expected)


@pytest.mark.parametrize("data, n_components", [("breast_cancer", 2), ("breast_cancer", 3), ("wine", 2)])
def test_entropy_sum_equals_elbo_at_convergence(data, n_components):
    X = DATA[data]()
    fa = FastFactorAnalysis(n_components, tol=1e-9, max_iter=20000).fit(X)
    decomposition = fa.entropy_decomposition()
    assert fa.converged_
    assert decomposition.elbo == pytest.approx(fa.score(X), rel=1e-10)
    assert abs(decomposition.gap) <= 1e-6 * abs(decomposition.elbo)


def test_gap_is_visibly_nonzero_after_three_iterations_from_a_poor_start():
    X = _breast_cancer()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fa = FastFactorAnalysis(3, noise_variance_init=np.full(X.shape[1], 10.0), max_iter=3).fit(X)
    assert not fa.converged_
    decomposition = fa.entropy_decomposition()
    assert abs(decomposition.gap) > 1e-2 * abs(decomposition.elbo)
    assert np.all(np.abs(fa.elbo_history_ - fa.entropy_sum_history_) > 1e-2 * np.abs(fa.elbo_history_))


def _start_and_one_step(X, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = FastFactorAnalysis(3, max_iter=0, **params).fit(X)
        one = FastFactorAnalysis(3, max_iter=1, **params).fit(X)
    return start, one


@pytest.mark.parametrize("weighted", [False, True])
def test_step_beats_px_em_and_histories_follow_the_reference(weighted):
    X = load_diabetes().data
    w = np.random.RandomState(0).uniform(0.2, 2.0, X.shape[0]) if weighted else None
    start, one = _start_and_one_step(X, noise_variance_init=np.full(X.shape[1], 2e-3))
    if weighted:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            kwargs = {"noise_variance_init": np.full(X.shape[1], 2e-3)}
            start = FastFactorAnalysis(3, max_iter=0, **kwargs).fit(X, sample_weight=w)
            one = FastFactorAnalysis(3, max_iter=1, **kwargs).fit(X, sample_weight=w)
    weights = np.ones(X.shape[0]) if w is None else w
    # One step: PX-EM, the components that maximise the likelihood for its noise, and (kept only
    # when better) an extrapolation of the noise: at least PX-EM's likelihood, and the components
    # are the profile maximum for the noise returned.
    components, noise = px_em_step(X, start.mean_, start.components_, start.noise_variance_, False, w)
    px_em = np.average(log_likelihoods(X, start.mean_, components, noise), weights=weights)
    stepped = np.average(log_likelihoods(X, one.mean_, one.components_, one.noise_variance_), weights=weights)
    assert stepped >= px_em - 1e-12 * abs(px_em)
    profile = profile_components(X, one.noise_variance_, 3, w)
    np.testing.assert_allclose(
        model_covariance(one.components_, one.noise_variance_),
        model_covariance(profile, one.noise_variance_),
        rtol=1e-8,
        atol=1e-12,
    )
    F = np.average(log_likelihoods(X, start.mean_, start.components_, start.noise_variance_), weights=weights)
    assert one.elbo_history_[0] == pytest.approx(F, rel=1e-10)
    A, B, C, S = entropy_terms(start.components_, start.noise_variance_, one.noise_variance_)
    assert one.entropy_sum_history_[0] == pytest.approx(S, rel=1e-10)
    # loglike_ describes the parameters after each iteration: after the one step, the returned ones.
    assert one.loglike_ == pytest.approx([stepped * weights.sum()], rel=1e-10)
    assert one.lower_bound_ == pytest.approx(stepped, rel=1e-10)


def test_decomposition_terms_match_reference():
    X = _wine()
    fa = FastFactorAnalysis(2, tol=1e-8).fit(X)
    d = fa.entropy_decomposition()
    A, B, C, S = entropy_terms(fa.components_, fa.noise_variance_, fa.noise_variance_)
    assert d.variational_entropy == pytest.approx(A, rel=1e-10)
    assert -d.prior_entropy == pytest.approx(B, rel=1e-12)
    assert -d.observable_entropy == pytest.approx(C, rel=1e-10)
    assert d.entropy_sum == pytest.approx(S, rel=1e-10)
    # On new data the decomposition uses the posteriors of that data, and its ELBO is its score.
    X_new = X[::2] + 0.1
    assert fa.entropy_decomposition(X_new).elbo == pytest.approx(fa.score(X_new), rel=1e-10)


def test_elbo_never_decreases():
    fa = FastFactorAnalysis(3, tol=1e-8, noise_variance_init=np.full(30, 5.0)).fit(_breast_cancer())
    history = fa.elbo_history_
    assert np.all(np.diff(history) >= -1e-10 * np.abs(history[1:]))


def test_attributes_and_inference_match_reference():
    X = _breast_cancer()
    fa = FastFactorAnalysis(4).fit(X)
    assert fa.components_.shape == (4, 30)
    assert fa.noise_variance_.shape == (30,)
    np.testing.assert_allclose(fa.mean_, X.mean(axis=0), atol=1e-12)
    np.testing.assert_allclose(
        fa.get_covariance(), model_covariance(fa.components_, fa.noise_variance_), rtol=1e-12
    )
    np.testing.assert_allclose(fa.get_precision(), np.linalg.inv(fa.get_covariance()), rtol=1e-8, atol=1e-10)
    expected = log_likelihoods(X, fa.mean_, fa.components_, fa.noise_variance_)
    np.testing.assert_allclose(fa.score_samples(X), expected, rtol=1e-10)
    assert fa.score(X) == pytest.approx(expected.mean(), rel=1e-12)
    np.testing.assert_allclose(
        fa.transform(X), posterior(X, fa.mean_, fa.components_, fa.noise_variance_)[0], rtol=1e-8, atol=1e-12
    )
    assert list(fa.get_feature_names_out()) == [f"fastfactoranalysis{i}" for i in range(4)]


def test_transform_equals_sklearn_transform_with_the_same_parameters():
    X = _wine()
    fa = FastFactorAnalysis(3).fit(X)
    sk = FactorAnalysis(3).fit(X)
    sk.components_, sk.noise_variance_, sk.mean_ = fa.components_, fa.noise_variance_, fa.mean_
    np.testing.assert_allclose(fa.transform(X), sk.transform(X), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fa.get_covariance(), sk.get_covariance(), rtol=1e-12)
    np.testing.assert_allclose(fa.get_precision(), sk.get_precision(), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(fa.score_samples(X), sk.score_samples(X), rtol=1e-10)


@pytest.mark.parametrize("rotation", ["varimax", "quartimax"])
def test_rotation_changes_the_components_but_not_the_model(rotation):
    X = _breast_cancer()
    plain = FastFactorAnalysis(3).fit(X)
    rotated = FastFactorAnalysis(3, rotation=rotation).fit(X)
    assert not np.allclose(rotated.components_, plain.components_)
    np.testing.assert_allclose(rotated.get_covariance(), plain.get_covariance(), rtol=1e-10, atol=1e-12)
    assert rotated.score(X) == pytest.approx(plain.score(X), rel=1e-12)


def test_sample_draws_from_the_model():
    fa = FastFactorAnalysis(2, random_state=3).fit(_wine())
    draws = fa.sample(200000)
    assert draws.shape == (200000, 13)
    np.testing.assert_array_equal(fa.sample(5), fa.sample(5))  # seeded from random_state
    # Monte Carlo: the sample covariance of 2e5 draws is within a few 1e-2 of the model's.
    np.testing.assert_allclose(np.cov(draws.T), fa.get_covariance(), atol=3e-2)
    with pytest.raises(ValueError, match="n_samples"):
        fa.sample(0)


def test_integer_sample_weights_equal_repeated_rows():
    X = _wine()
    counts = np.random.RandomState(0).randint(0, 4, X.shape[0])
    weighted = FastFactorAnalysis(2, tol=1e-8).fit(X, sample_weight=counts.astype(float))
    repeated = FastFactorAnalysis(2, tol=1e-8).fit(np.repeat(X, counts, axis=0))
    np.testing.assert_allclose(weighted.components_, repeated.components_, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(weighted.noise_variance_, repeated.noise_variance_, rtol=1e-7)
    assert weighted.n_iter_ == repeated.n_iter_


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_bitwise_identical_for_any_thread_count(dtype):
    X = _factor_data(30000, 12, 3, offset=100.0).astype(dtype)
    fits = [FastFactorAnalysis(3, n_jobs=n).fit(X) for n in (1, 2, 3)]
    assert fits[0].converged_
    for fit in fits[1:]:
        np.testing.assert_array_equal(fit.components_, fits[0].components_)
        np.testing.assert_array_equal(fit.noise_variance_, fits[0].noise_variance_)
        np.testing.assert_array_equal(fit.elbo_history_, fits[0].elbo_history_)


def test_float32_far_from_the_origin_fits_like_float64():
    X = _factor_data(20000, 6, 2, offset=1e4, seed=1).astype(np.float32)
    fa32 = FastFactorAnalysis(2, tol=1e-6).fit(X)
    fa64 = FastFactorAnalysis(2, tol=1e-6).fit(X.astype(np.float64))
    assert fa32.converged_ and fa64.converged_
    np.testing.assert_allclose(fa32.get_covariance(), fa64.get_covariance(), rtol=1e-9, atol=1e-9)
    assert fa32.components_.dtype == np.float64


def test_warm_start_continues_the_iterations():
    X = _breast_cancer()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        straight = FastFactorAnalysis(3, max_iter=10, tol=0.0).fit(X)
        warm = FastFactorAnalysis(3, max_iter=4, tol=0.0, warm_start=True).fit(X)
        warm.set_params(max_iter=6).fit(X)
    np.testing.assert_allclose(warm.components_, straight.components_, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(warm.noise_variance_, straight.noise_variance_, rtol=1e-10)


def test_a_warm_continuation_stops_where_the_straight_fit_does():
    # lower_bound_ describes the returned parameters, so a warm start measured its first change
    # from it, saw 0 and stopped after one iteration as converged (4.4e-3 nats per sample short).
    rng = np.random.default_rng(0)
    X = rng.normal(size=(800, 6)) @ rng.normal(size=(6, 30)) + rng.normal(size=(800, 30)) * rng.uniform(
        0.7, 1.4, 30
    )
    params = dict(n_components=6, tol=1e-8, noise_variance_init=X.var(axis=0))  # one start
    straight = FastFactorAnalysis(**params, max_iter=1000).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warm = FastFactorAnalysis(**params, max_iter=3, warm_start=True).fit(X)
    warm.set_params(max_iter=1000).fit(X)
    assert straight.converged_ and warm.converged_ and straight.n_iter_ > 10
    assert 3 + warm.n_iter_ == straight.n_iter_
    np.testing.assert_allclose(warm.components_, straight.components_, rtol=1e-10, atol=1e-14)
    assert warm.score(X) == pytest.approx(straight.score(X), rel=1e-13)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"n_components": -1}, "n_components"),
        ({"n_components": "a"}, "n_components"),
        ({"n_components": 14}, "n_components must be <= n_features"),
        ({"tol": np.nan}, "tol"),
        ({"max_iter": 1.5}, "max_iter"),
        ({"copy": "yes"}, "copy"),
        ({"svd_method": "arpack"}, "svd_method must be one of"),
        ({"iterated_power": -1}, "iterated_power"),
        ({"rotation": "promax"}, "rotation must be None or one of"),
        ({"noise_variance_init": np.ones(12)}, "noise_variance_init must have shape"),
        ({"noise_variance_init": -np.ones(13)}, "noise_variance_init must be positive"),
        ({"noise_variance_init": np.full(13, np.nan)}, "noise_variance_init contains NaN"),
        ({"verbose_interval": 0}, "verbose_interval"),
        ({"n_jobs": 1.5}, "n_jobs"),
    ],
)
def test_fit_rejects_bad_hyperparameters(params, message):
    with pytest.raises((ValueError, TypeError), match=message):
        FastFactorAnalysis(**params).fit(_wine())


def test_fit_and_inference_reject_bad_data():
    X = _wine()
    with pytest.raises(ValueError, match="NaN"):
        FastFactorAnalysis(2).fit(np.where(np.arange(X.size).reshape(X.shape) == 5, np.nan, X))
    with pytest.raises(ValueError, match="1 sample"):
        FastFactorAnalysis(1).fit(X[:1])
    with pytest.raises(ValueError, match="sample_weight"):
        FastFactorAnalysis(1).fit(X, sample_weight=np.ones(3))
    fa = FastFactorAnalysis(2).fit(X)
    for method in ("transform", "score", "score_samples"):
        with pytest.raises(ValueError, match="X has 12 features"):
            getattr(fa, method)(X[:, :12])


@pytest.mark.parametrize("n_features", [40, 300])
def test_a_duplicated_column_leaves_the_other_features_unexplained_variances(n_features):
    """With one duplicated column the covariance is singular and its fast factor has a row fewer
    than features: the 'unexplained' start gave every feature a variance of 0 (a degenerate start),
    and the fit, also run from that start only, ended 7 nats per sample below the Heywood optimum
    it reaches from the residual variances (np.linalg.lstsq of each feature on the others)."""
    from fastelbo.factor._factor_analysis import unexplained_variances
    from fastelbo.factor._scatter import fast_data_scatter

    rng = np.random.default_rng(7)
    n_samples = 5 * n_features
    X = rng.standard_normal((n_samples, 4)) @ rng.standard_normal((4, n_features))
    X += rng.standard_normal((n_samples, n_features)) * np.linspace(0.5, 2, n_features)
    X[:, 10] = X[:, 11]
    centred = X - X.mean(axis=0)
    expected = np.empty(n_features)
    for d in range(n_features):
        others = np.delete(centred, d, axis=1)
        residual = centred[:, d] - others @ np.linalg.lstsq(others, centred[:, d], rcond=None)[0]
        expected[d] = residual @ residual / n_samples
    factor = fast_data_scatter(X).factor
    assert factor.shape[0] < n_features  # the case: a singular covariance's factor
    found = unexplained_variances(factor)
    kept = np.setdiff1d(np.arange(n_features), [10, 11])
    np.testing.assert_allclose(found[kept], expected[kept], rtol=1e-8)
    assert np.all(found[[10, 11]] < 1e-12 * centred[:, 10].var())  # below the noise floor, 1e-10
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = FastFactorAnalysis(1, tol=1e-6, max_iter=300).fit(X)
        floor = 1e-10 * centred.var(axis=0)
        started = FastFactorAnalysis(
            1, tol=1e-6, max_iter=300, noise_variance_init=np.maximum(expected, floor)
        )
        assert model.score(X) >= started.fit(X).score(X) - 1e-9


def test_inference_follows_parameters_changed_in_place_and_on_the_estimator():
    # Inference keeps the posterior of the parameters it last saw; a change of any number (in
    # place, or a new array) must be seen, and the estimator's __dict__ must not change.
    X = _wine()
    fa = FastFactorAnalysis(3).fit(X)
    before = dict(fa.__dict__)
    fa.transform(X[:5])
    fa.score_samples(X[:5])
    assert fa.__dict__.keys() == before.keys()
    kept = fa._posterior()  # of copies: a later change in place must not reach into it
    assert not np.shares_memory(kept.noise, fa.noise_variance_)
    assert not np.shares_memory(kept.components, fa.components_)
    fa.noise_variance_[4] *= 3.0
    fa.components_[1, 2] += 0.25
    expected_means = posterior(X[:5], fa.mean_, fa.components_, fa.noise_variance_)[0]
    np.testing.assert_allclose(fa.transform(X[:5]), expected_means, rtol=1e-10, atol=1e-12)
    expected = log_likelihoods(X[:5], fa.mean_, fa.components_, fa.noise_variance_)
    np.testing.assert_allclose(fa.score_samples(X[:5]), expected, rtol=1e-12)
    fa.components_ = fa.components_ * 0.5
    expected = log_likelihoods(X[:5], fa.mean_, fa.components_, fa.noise_variance_)
    np.testing.assert_allclose(fa.score_samples(X[:5]), expected, rtol=1e-12)


def test_inference_serves_subclasses_without_a_hash_and_forgets_collected_estimators():
    # A subclass that defines __eq__ has no __hash__: a cache keyed by the estimator raised
    # TypeError in transform. Entries go with their estimators.
    import gc

    from fastelbo.factor import _factor_model

    class ComparedByParameters(FastFactorAnalysis):
        def __eq__(self, other):
            return type(self) is type(other) and self.get_params() == other.get_params()

    X = _wine()
    fa = ComparedByParameters(2).fit(X)
    expected = posterior(X[:4], fa.mean_, fa.components_, fa.noise_variance_)[0]
    np.testing.assert_allclose(fa.transform(X[:4]), expected, rtol=1e-10, atol=1e-12)
    entries = len(_factor_model._POSTERIORS)
    del fa
    gc.collect()
    assert len(_factor_model._POSTERIORS) == entries - 1
