"""FastPPCA and FastFactorAnalysis at the boundaries: noise variances at their floor (Heywood
cases from duplicated or collinear columns, PPCA with as many factors as features), data on
scales 1e-8 ... 1e8, sample weights scaled by 1e+-20, and wide data (N < D).

Every reported number is checked against an independent evaluation of the returned parameters:
the Gaussian log-density through a Cholesky factor of the model covariance in 50-digit
arithmetic (mpmath) where float64 cannot judge, SciPy otherwise.
"""

import warnings

import numpy as np
import pytest
from scipy import stats
from sklearn.datasets import load_breast_cancer, load_linnerud
from sklearn.decomposition import FactorAnalysis
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import StandardScaler

from fastelbo import FastFactorAnalysis, FastPPCA
from fastelbo.exceptions import HeywoodCaseWarning
from fastelbo.factor._linear_gaussian import factor_posterior
from fastelbo.factor._scatter import data_scatter
from reference_factor import ppca_maximum_likelihood

mp = pytest.importorskip("mpmath")


def _mp_covariance(components, noise):
    """``C = W^T W + diag(noise)`` in 50-digit arithmetic from the float64 parameters."""
    n_features = components.shape[1]
    noise = np.broadcast_to(noise, n_features)
    W = mp.matrix(components.tolist())
    return W.T * W + mp.diag([mp.mpf(float(v)) for v in noise])


def mp_log_likelihoods(X, mean, components, noise):
    """``log N(x_n; mean, C)`` of every row through the Cholesky factor of C, 50 digits."""
    with mp.workdps(50):
        cholesky = mp.cholesky(_mp_covariance(components, noise))
        n_features = X.shape[1]
        log_det = 2 * mp.fsum(mp.log(cholesky[d, d]) for d in range(n_features))
        constant = n_features * mp.log(2 * mp.pi) + log_det
        out = []
        for row in X:
            deviation = [mp.mpf(float(x)) - mp.mpf(float(m)) for x, m in zip(row, mean, strict=True)]
            solved = []  # forward substitution: cholesky @ solved = deviation
            for d in range(n_features):
                solved.append(
                    (deviation[d] - mp.fsum(cholesky[d, k] * solved[k] for k in range(d))) / cholesky[d, d]
                )
            out.append(float(-(constant + mp.fsum(v * v for v in solved)) / 2))
        return np.array(out)


def mp_precision(components, noise):
    with mp.workdps(50):
        inverse = _mp_covariance(components, noise) ** -1
        return np.array(inverse.tolist(), dtype=np.float64)


def _factor_rows(n_samples, n_features, n_components, seed=0):
    rng = np.random.RandomState(seed)
    loadings = rng.standard_normal((n_components, n_features))
    noise = rng.uniform(0.2, 1.0, n_features)
    latents = rng.standard_normal((n_samples, n_components))
    return latents @ loadings + rng.standard_normal((n_samples, n_features)) * np.sqrt(noise) + 3.0


def duplicated_column():
    X = _factor_rows(150, 4, 2)
    return np.column_stack([X, X[:, 1]])


def collinear_column():
    X = _factor_rows(150, 4, 2, seed=1)
    return np.column_stack([X, 2.0 * X[:, 0] - 0.5 * X[:, 2] + 3.0])


BOUNDARY_DATA = {"duplicated": duplicated_column, "collinear": collinear_column}


def _fit_quietly(estimator, X, **fit_params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", HeywoodCaseWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(X, **fit_params)


@pytest.mark.parametrize("data", BOUNDARY_DATA)
def test_heywood_case_reports_the_likelihood_of_the_returned_parameters(data):
    X = BOUNDARY_DATA[data]()
    with pytest.warns(HeywoodCaseWarning, match=r"x1|x4|x0|x2") as caught:
        fa = FastFactorAnalysis(2, tol=1e-8, max_iter=2000).fit(X)
    assert len([w for w in caught if issubclass(w.category, HeywoodCaseWarning)]) == 1
    floored = fa.noise_variance_ <= 1e-9 * X.var(axis=0)
    assert np.any(floored)
    expected = mp_log_likelihoods(X, fa.mean_, fa.components_, fa.noise_variance_)
    np.testing.assert_allclose(fa.score_samples(X), expected, rtol=1e-9, atol=1e-9)
    assert fa.score(X) == pytest.approx(expected.mean(), rel=1e-10)
    decomposition = fa.entropy_decomposition()
    assert decomposition.elbo == pytest.approx(expected.mean(), rel=1e-9)
    assert decomposition.note.startswith(f"{np.count_nonzero(floored)} noise variance(s) at their floor")
    # The warning says which features, by index (a caller with its own column names names them).
    (warning,) = [w.message for w in caught if issubclass(w.category, HeywoodCaseWarning)]
    assert warning.features == np.flatnonzero(floored).tolist() and warning.components is None
    np.testing.assert_array_equal(warning.variances, fa.noise_variance_[floored])
    # The convergence test reads these: no jumps from lost digits.
    loglike = np.asarray(fa.loglike_)
    assert np.all(np.diff(loglike) >= -1e-9 * np.abs(loglike[1:]))
    precision = fa.get_precision()
    reference = mp_precision(fa.components_, fa.noise_variance_)
    assert np.linalg.norm(precision - reference) <= 1e-8 * np.linalg.norm(reference)


@pytest.mark.parametrize("data", BOUNDARY_DATA)
def test_history_elbo_is_the_likelihood_of_the_parameters_entering_each_iteration(data):
    X = BOUNDARY_DATA[data]()
    init = {"noise_variance_init": X.var(axis=0)}  # one start, so max_iter=k is a prefix
    for n_iter in (5, 40):
        before = _fit_quietly(FastFactorAnalysis(2, tol=0.0, max_iter=n_iter, **init), X)
        after = _fit_quietly(FastFactorAnalysis(2, tol=0.0, max_iter=n_iter + 1, **init), X)
        expected = mp_log_likelihoods(X, before.mean_, before.components_, before.noise_variance_).mean()
        assert after.elbo_history_[n_iter] == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("n_features", [1, 3])
@pytest.mark.parametrize("solver", ["eigh", "em"])
def test_ppca_with_as_many_factors_as_features_scores_the_returned_model(n_features, solver):
    X = _factor_rows(120, n_features, 1, seed=2)
    # The default n_components is min(n_samples, n_features) = n_features here.
    ppca = FastPPCA(solver=solver, tol=1e-12, random_state=0) if n_features == 1 else FastPPCA(n_features)
    ppca.fit(X)
    # Nothing is left to the noise: 0, as PCA's, and the loadings carry the whole covariance.
    assert ppca.noise_variance_ == 0.0
    expected = mp_log_likelihoods(X, ppca.mean_, ppca.loadings_, 0.0)
    np.testing.assert_allclose(ppca.score_samples(X), expected, rtol=1e-10)
    # The ELBO before the noise was set to 0 is the same likelihood (the same covariance).
    assert ppca.lower_bound_ == pytest.approx(expected.mean(), rel=1e-10)
    with pytest.raises(ValueError, match="noise_variance_ is 0"):
        ppca.entropy_decomposition()
    # Its model is the data's own Gaussian: the sample covariance.
    np.testing.assert_allclose(ppca.get_covariance(), np.atleast_2d(np.cov(X.T, bias=True)), rtol=1e-8)
    reference = mp_precision(ppca.loadings_, 0.0)
    assert np.linalg.norm(ppca.get_precision() - reference) <= 1e-8 * np.linalg.norm(reference)


def test_default_ppca_on_one_feature_equals_the_normal_log_density():
    X = np.random.RandomState(3).normal(5.0, 2.0, (80, 1))
    ppca = FastPPCA().fit(X)
    expected = stats.norm.logpdf(X[:, 0], X.mean(), X.std())
    np.testing.assert_allclose(ppca.score_samples(X), expected, rtol=1e-9)


SCALES = [1e-8, 1e-4, 1.0, 1e4, 1e8]


@pytest.mark.parametrize("scale", SCALES)
def test_factor_analysis_is_equivariant_to_the_data_scale(scale):
    X = duplicated_column()
    unit = _fit_quietly(FastFactorAnalysis(2, tol=1e-6), X)
    scaled = _fit_quietly(FastFactorAnalysis(2, tol=1e-6), X * scale)
    n_features = X.shape[1]
    assert scaled.n_iter_ == unit.n_iter_
    assert scaled.score(X * scale) == pytest.approx(
        unit.score(X) - n_features * np.log(scale), rel=1e-9, abs=1e-8
    )
    assert scaled.lower_bound_ == pytest.approx(
        unit.lower_bound_ - n_features * np.log(scale), rel=1e-9, abs=1e-8
    )
    np.testing.assert_allclose(
        scaled.get_covariance(), unit.get_covariance() * scale**2, rtol=1e-7, atol=1e-12 * scale**2
    )
    np.testing.assert_allclose(scaled.noise_variance_, unit.noise_variance_ * scale**2, rtol=1e-6)


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("n_components", [2, 4])
def test_ppca_is_equivariant_to_the_data_scale(scale, n_components):
    X = _factor_rows(100, 4, 2, seed=4)
    unit = FastPPCA(n_components).fit(X)
    scaled = FastPPCA(n_components).fit(X * scale)
    assert scaled.score(X * scale) == pytest.approx(unit.score(X) - 4 * np.log(scale), rel=1e-9, abs=1e-8)
    # The noise is relative: variances ~1e-16 get a noise on their own scale.
    assert scaled.noise_variance_ == pytest.approx(unit.noise_variance_ * scale**2, rel=1e-6)
    assert scaled.noise_variance_ <= 1e-9 * np.var(X * scale, axis=0).mean() or n_components < 4


UNITS = 2.0 ** np.array([-27.0, -13.0, 0.0, 13.0, 27.0])  # exact: the fits must agree to round-off


def test_factor_analysis_is_equivariant_to_each_features_units():
    """Factor analysis does not depend on the units of each feature; a fit of columns in units
    1e-8 ... 1e8 apart is the fit of the unit-scaled data, iteration by iteration."""
    X = _factor_rows(240, 5, 2, seed=5)
    unit = _fit_quietly(FastFactorAnalysis(2, tol=1e-6), X)
    scaled = _fit_quietly(FastFactorAnalysis(2, tol=1e-6), X * UNITS)
    shift = np.sum(np.log(UNITS))
    assert scaled.n_iter_ == unit.n_iter_
    np.testing.assert_allclose(np.asarray(scaled.elbo_history_) + shift, unit.elbo_history_, rtol=1e-9)
    np.testing.assert_allclose(scaled.noise_variance_ / UNITS**2, unit.noise_variance_, rtol=1e-7)
    np.testing.assert_allclose(scaled.score_samples(X * UNITS) + shift, unit.score_samples(X), rtol=1e-9)
    # The likelihood it reports is the one of its parameters.
    rows = slice(0, 24)
    expected = mp_log_likelihoods((X * UNITS)[rows], scaled.mean_, scaled.components_, scaled.noise_variance_)
    np.testing.assert_allclose(scaled.score_samples((X * UNITS)[rows]), expected, rtol=1e-10)


def test_ppca_noise_far_below_the_largest_variance_is_the_maximum_likelihood_noise():
    """Clusters 1e6 apart with unit noise: the largest variance is ~1e11 times the noise, which
    must be fitted (the mean of the discarded eigenvalues), not held at a floor."""
    rng = np.random.RandomState(6)
    X = rng.standard_normal((240, 3)) * [1.0, 0.9, 1.1]
    X[::2, 0] += 1e6
    ppca = FastPPCA(2).fit(X)
    centred = X - X.mean(axis=0)
    eigenvalues = np.linalg.svd(centred, compute_uv=False) ** 2 / X.shape[0]
    assert ppca.noise_variance_ == pytest.approx(eigenvalues[2], rel=1e-9)
    decomposition = ppca.entropy_decomposition()
    assert "boundary" not in decomposition.note
    assert abs(decomposition.gap) <= 1e-10 * abs(decomposition.elbo)
    expected = mp_log_likelihoods(X[:24], ppca.mean_, ppca.loadings_, ppca.noise_variance_)
    np.testing.assert_allclose(ppca.score_samples(X[:24]), expected, rtol=1e-10)


@pytest.mark.parametrize("factor", [1e-250, 1e-20, 1e20, 1e250, "1/N"])
def test_factor_analysis_fit_does_not_depend_on_the_weights_scale(factor):
    X = collinear_column()
    weights = np.random.RandomState(5).uniform(0.5, 2.0, X.shape[0])
    factor = 1.0 / X.shape[0] if factor == "1/N" else factor
    base = _fit_quietly(FastFactorAnalysis(2), X, sample_weight=weights)
    scaled = _fit_quietly(FastFactorAnalysis(2), X, sample_weight=weights * factor)
    assert scaled.n_iter_ == base.n_iter_
    assert scaled.lower_bound_ == pytest.approx(base.lower_bound_, rel=1e-10)
    np.testing.assert_allclose(scaled.get_covariance(), base.get_covariance(), rtol=1e-8)
    np.testing.assert_allclose(scaled.elbo_history_, base.elbo_history_, rtol=1e-10)


@pytest.mark.parametrize("model", [FastFactorAnalysis, FastPPCA])
@pytest.mark.parametrize("factor", [1e-45, 1e-50, 1e300])
def test_float32_data_with_weights_float32_cannot_hold_are_refused_naming_the_weights(model, factor):
    # Rounded to float32 they flushed to zero ('all weights are zero'), became infinite, or lost
    # digits: 1e-45 and 3e-45 became a ratio of 2 and the error blamed X ('X is too large').
    X = _factor_rows(100, 5, 2, seed=6).astype(np.float32)
    weights = np.where(np.arange(X.shape[0]) % 2 == 0, 1.0, 3.0) * factor
    with pytest.raises(
        ValueError, match=r"sample_weight holds positive weights .* beyond the normal range of float32"
    ):
        model(2).fit(X, sample_weight=weights)
    model(2).fit(X.astype(np.float64), sample_weight=weights)  # float64 holds them


def test_uniform_weights_of_one_over_n_fit_like_no_weights():
    X = StandardScaler().fit_transform(load_breast_cancer().data)[:, :12]
    plain = _fit_quietly(FastFactorAnalysis(3), X)
    weighted = _fit_quietly(FastFactorAnalysis(3), X, sample_weight=np.full(X.shape[0], 1.0 / X.shape[0]))
    assert weighted.n_iter_ == plain.n_iter_
    assert weighted.score(X) == pytest.approx(plain.score(X), rel=1e-10)


@pytest.mark.parametrize("factor", [1e-250, 1e-20, 1e20, 1e250])
def test_ppca_em_does_not_depend_on_the_weights_scale(factor):
    X = _factor_rows(100, 5, 2, seed=6)
    weights = np.random.RandomState(7).uniform(0.5, 2.0, X.shape[0])
    base = FastPPCA(2, solver="em", random_state=0).fit(X, sample_weight=weights)
    scaled = FastPPCA(2, solver="em", random_state=0).fit(X, sample_weight=weights * factor)
    assert scaled.n_iter_ == base.n_iter_
    np.testing.assert_allclose(scaled.elbo_history_, base.elbo_history_, rtol=1e-10)


def test_breast_cancer_five_factors_is_a_heywood_case_found_quickly():
    X = StandardScaler().fit_transform(load_breast_cancer().data)
    with pytest.warns(HeywoodCaseWarning, match="1 feature"):
        fa = FastFactorAnalysis(5).fit(X)
    assert fa.n_iter_ < 200
    assert fa.converged_
    assert "boundary" in fa.entropy_decomposition().note
    sklearn_score = FactorAnalysis(5).fit(X).score(X)
    assert fa.score(X) >= sklearn_score - 1e-6 * abs(sklearn_score)


def test_breast_cancer_four_factors_reaches_sklearn():
    X = StandardScaler().fit_transform(load_breast_cancer().data)
    fa = FastFactorAnalysis(4).fit(X)
    sklearn_score = FactorAnalysis(4).fit(X).score(X)
    assert fa.score(X) >= sklearn_score - 1e-6 * abs(sklearn_score)


@pytest.mark.parametrize("n_factors", [2, 3])
def test_linnerud_raw_reaches_sklearn(n_factors):
    """Three features in their own units, a model that can represent their covariance: EM crawls
    along a ridge of equally good solutions, scikit-learn's steps reach the optimum in three."""
    X = load_linnerud().data.astype(np.float64)
    fa = FastFactorAnalysis(n_factors).fit(X)
    sklearn_score = FactorAnalysis(n_factors).fit(X).score(X)
    assert fa.score(X) >= sklearn_score - 1e-6 * abs(sklearn_score)


def _wide_data(n_samples=40, n_features=300, n_components=3, seed=8):
    return _factor_rows(n_samples, n_features, n_components, seed=seed)


def test_wide_data_keep_the_rows_as_the_covariance_factor():
    X = _wide_data()
    scatter = data_scatter(X)
    assert scatter.factor.shape == X.shape  # N x D, never D x D
    np.testing.assert_allclose(scatter.factor.T @ scatter.factor, np.cov(X.T, bias=True), atol=1e-12)
    np.testing.assert_allclose(scatter.mean, X.mean(axis=0), rtol=1e-13)


def test_wide_ppca_is_the_maximum_likelihood_solution():
    X = _wide_data()
    ppca = FastPPCA(3).fit(X)
    _, covariance = ppca_maximum_likelihood(X, 3)
    np.testing.assert_allclose(ppca.get_covariance(), covariance, rtol=1e-8, atol=1e-10)
    expected = stats.multivariate_normal(ppca.mean_, covariance).logpdf(X)
    np.testing.assert_allclose(ppca.score_samples(X), expected, rtol=1e-9)


def test_wide_factor_analysis_scores_its_parameters_and_reaches_sklearn():
    X = _wide_data()
    fa = _fit_quietly(FastFactorAnalysis(3), X)
    expected = stats.multivariate_normal(fa.mean_, fa.get_covariance()).logpdf(X)
    np.testing.assert_allclose(fa.score_samples(X), expected, rtol=1e-9)
    assert fa.entropy_decomposition().elbo == pytest.approx(expected.mean(), rel=1e-9)
    sklearn_score = FactorAnalysis(3).fit(X).score(X)
    assert fa.score(X) >= sklearn_score - 1e-6 * abs(sklearn_score)


@pytest.mark.parametrize("data", BOUNDARY_DATA)
def test_loglike_ends_with_the_likelihood_of_the_returned_parameters(data):
    X = BOUNDARY_DATA[data]()
    fa = _fit_quietly(FastFactorAnalysis(2), X)
    expected = mp_log_likelihoods(X, fa.mean_, fa.components_, fa.noise_variance_).sum()
    assert fa.loglike_[-1] == pytest.approx(expected, rel=1e-10)
    assert fa.lower_bound_ == pytest.approx(expected / X.shape[0], rel=1e-10)
    assert len(fa.loglike_) == fa.n_iter_
    np.testing.assert_allclose(fa.loglike_[:-1], fa.elbo_history_[1:] * X.shape[0], rtol=1e-12)


def _random_factor_models(n_models, seed=0):
    """Loadings and noise variances of every scale, a third of them with unique variances at the
    factor-analysis floor (1e-10): conditions from 1 to 1e9."""
    rng = np.random.RandomState(seed)
    for _ in range(n_models):
        n_features = rng.randint(2, 15)
        n_components = rng.randint(1, n_features + 1)
        components = rng.randn(n_components, n_features) * np.exp(rng.uniform(-2, 2))
        noise = np.exp(rng.uniform(np.log(1e-10), 0, n_features))
        if rng.rand() < 0.3:
            noise[rng.rand(n_features) < 0.3] = 1e-10
        yield components, noise


def test_precision_newton_step_is_kept_only_where_it_helps(monkeypatch):
    # get_precision's Newton step was kept whenever the float64 residual I - C P it computes
    # came out smaller, also where both residuals were round-off, which a step only adds to: 2.6
    # times the error of the step-free form (6.2e-16 -> 2.3e-15) in one of these 400 models. With
    # that residual formed from C rounded to float64, the step converges to the rounded C's
    # inverse: with OpenBLAS's AVX-512 kernels 2 of them ended worse (2.84e-15 against 1.25e-15,
    # 1.61e-13 against 4.70e-14).
    # The reference is the 50-digit inverse of C (NumPy's inverse of the float64 C errs by up to
    # 6e-5 here, far more than either form).
    eps = np.finfo(float).eps
    models = list(_random_factor_models(400))
    fitted = FastFactorAnalysis()

    def precision(components, noise):
        fitted.components_, fitted.noise_variance_, fitted.mean_ = components, noise, np.zeros(len(noise))
        return fitted.get_precision()

    with_step = [precision(components, noise) for components, noise in models]
    posterior_class = type(factor_posterior(*models[0]))
    monkeypatch.setattr(posterior_class, "_refined_inverse", lambda self, precision: precision)
    without_step = [precision(components, noise) for components, noise in models]
    for (components, noise), refined, plain in zip(models, with_step, without_step, strict=True):
        reference = mp_precision(components, noise)
        scale = np.linalg.norm(reference)
        error = np.linalg.norm(refined - reference) / scale
        plain_error = np.linalg.norm(plain - reference) / scale
        assert error <= 1.5 * max(plain_error, 4 * eps)
        assert error <= 10 * eps * np.linalg.cond(components.T @ components + np.diag(noise))


@pytest.mark.parametrize("make", [lambda: FastFactorAnalysis(2), lambda: FastPPCA(2)], ids=["fa", "ppca"])
@pytest.mark.parametrize("n_samples", [300, 4], ids=["tall", "wide"])
def test_x_beyond_what_float64_can_square_is_refused_naming_x_and_x_within_fits_exactly(make, n_samples):
    # Variances of 1e-310 were squared to subnormals, which the kernels flush: the fits were 2,100
    # nats per sample off, silently; 1e153 overflowed into a SciPy error about infs or NaNs.
    X = _factor_rows(n_samples, 6, 2, seed=3)
    unit = _fit_quietly(make(), X)
    for scale in (1e-150, 1e150):
        scaled = _fit_quietly(make(), X * scale)
        shifted = scaled.score(X * scale) + 6 * np.log(scale)
        assert shifted == pytest.approx(unit.score(X), rel=1e-10, abs=1e-10)
    one_tiny_column = X.copy()
    one_tiny_column[:, 3] *= 1e-160
    for data in (X * 1e-160, X * 1e-200, one_tiny_column):
        with pytest.raises(ValueError, match=r"X is too small for float64: feature\(s\) \[.*\] vary"):
            make().fit(data)
    with pytest.raises(ValueError, match=r"X is too large for float64: the variance of feature\(s\)"):
        make().fit(X * 1e154)
    constant = X.copy()
    constant[:, 2] = 1e-200  # a constant feature is no variance to lose
    _fit_quietly(make(), constant)
