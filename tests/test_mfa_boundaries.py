"""FastMFA at the boundaries of its parameter space and of floating point.

Every number FastMFA reports about a fit (score_samples, the ELBO, both forms of the entropy
decomposition) is checked against the log-density of the returned parameters evaluated
independently: through a Cholesky factor of ``C_c = W_c W_c^T + Psi_c`` in float64 with scipy,
and in 50-digit arithmetic (mpmath) where a noise variance at its floor makes ``C_c`` too
ill-conditioned for float64 to judge. The data are not tuned: a duplicated column (a Heywood case),
scales 1e-8 ... 1e7, sample weights scaled by 1e+-20, float32 far from the origin.
"""

import math
import warnings

import mpmath
import numpy as np
import pytest
import scipy.linalg
from scipy.special import logsumexp
from sklearn.exceptions import ConvergenceWarning

from fastelbo import FastMFA
from fastelbo.exceptions import HeywoodCaseWarning
from fastelbo.factor import DegenerateComponentWarning, Float32RangeWarning

LOG_2PI = math.log(2 * math.pi)


def _duplicated_column_data(scale=1.0, n=300, seed=0):
    """Four latent directions in five columns, the first column repeated as a sixth."""
    rng = np.random.RandomState(seed)
    base = rng.randn(n, 4) @ rng.randn(4, 5)
    return np.hstack([base, base[:, :1]]) * scale


def _parameters(model):
    """Fitted parameters in float64, noise per feature."""
    noise = np.asarray(model.noise_variance_, dtype=np.float64)
    if noise.ndim == 1:
        noise = np.repeat(noise[:, None], model.means_.shape[1], axis=1)
    return (
        np.asarray(model.weights_, dtype=np.float64),
        np.asarray(model.means_, dtype=np.float64),
        np.asarray(model.components_, dtype=np.float64),
        noise,
    )


def _cholesky_log_joint(X, weights, means, components, noise):
    """(N, K) log pi_c + log N(x; mu_c, W_c W_c^T + Psi_c), through a Cholesky factor (float64)."""
    X = np.asarray(X, dtype=np.float64)
    out = np.empty((X.shape[0], len(weights)))
    for c in range(len(weights)):
        covariance = components[c].T @ components[c] + np.diag(noise[c])
        factor = np.linalg.cholesky(covariance)
        whitened = scipy.linalg.solve_triangular(factor, (X - means[c]).T, lower=True)
        out[:, c] = (
            np.log(weights[c])
            - 0.5 * np.sum(whitened**2, axis=0)
            - np.sum(np.log(np.diag(factor)))
            - 0.5 * X.shape[1] * LOG_2PI
        )
    return out


def _mp_log_joint_and_log_dets(X, weights, means, components, noise, digits=50):
    """The log-joints (N, K), ``1/2 log|C_c|`` and ``1/2 log|I + W_c^T Psi_c^-1 W_c|`` (K,) in
    ``digits``-digit arithmetic from the float64 values of the parameters."""
    with mpmath.workdps(digits):
        K, D = means.shape
        log_joint = np.empty((X.shape[0], K))
        half_log_det = np.empty(K)
        half_log_det_precision = np.empty(K)
        for c in range(K):
            W = mpmath.matrix(components[c].T.tolist())
            C = W * W.T + mpmath.diag([mpmath.mpf(float(v)) for v in noise[c]])
            L = mpmath.cholesky(C)
            half_log_det[c] = float(sum(mpmath.log(L[d, d]) for d in range(D)))
            scaled = mpmath.diag([1 / mpmath.sqrt(mpmath.mpf(float(v))) for v in noise[c]]) * W
            M = mpmath.eye(W.cols) + scaled.T * scaled
            LM = mpmath.cholesky(M)
            half_log_det_precision[c] = float(sum(mpmath.log(LM[h, h]) for h in range(W.cols)))
            for n, row in enumerate(np.asarray(X, dtype=np.float64)):
                e = mpmath.matrix(
                    [mpmath.mpf(float(v)) - mpmath.mpf(float(means[c, d])) for d, v in enumerate(row)]
                )
                y = mpmath.lu_solve(L, e)  # L y = e (L is lower triangular)
                quadratic = sum(v**2 for v in y)
                log_joint[n, c] = float(
                    mpmath.log(weights[c]) - quadratic / 2 - half_log_det[c] - D * mpmath.mpf(LOG_2PI) / 2
                )
    return log_joint, half_log_det, half_log_det_precision


def _fit_quietly(model, X, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", HeywoodCaseWarning)
        warnings.simplefilter("ignore", DegenerateComponentWarning)
        return model.fit(X, **kwargs)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("scale", [1e-8, 1.0, 1e5, 1e7])
def test_scores_and_decompositions_match_independent_log_densities_at_a_heywood_boundary(scale, dtype):
    X = _duplicated_column_data(scale).astype(dtype)
    model = _fit_quietly(FastMFA(2, n_factors=2, random_state=0, tol=1e-6, max_iter=300), X)
    params = _parameters(model)
    # A Heywood case: the duplicated feature's noise variance is at its floor in some component.
    assert model._at_floor()[:, [0, 5]].any()
    reference = logsumexp(_cholesky_log_joint(X, *params), axis=1)
    rows = np.arange(0, len(X), 15)  # 20 rows in 50 digits
    mp_joint, mp_half_log_det, mp_half_log_det_precision = _mp_log_joint_and_log_dets(X[rows], *params)
    np.testing.assert_allclose(logsumexp(mp_joint, axis=1), reference[rows], rtol=0, atol=1e-8)

    # float64 to the last digits of the 50-digit values (the float64 Cholesky reference itself is
    # off by ~1e-11 here) and to 1e-9 of the Cholesky one; float32 to float32's resolution of the
    # row's terms.
    atol = 1e-9 if dtype == np.float64 else 1e-6
    scores = model.score_samples(X).astype(np.float64)
    assert np.all(np.isfinite(scores))
    np.testing.assert_allclose(scores, reference, rtol=0, atol=atol * (1 + np.abs(reference).max()))
    if dtype == np.float64:
        expected = logsumexp(mp_joint, axis=1)
        np.testing.assert_allclose(scores[rows], expected, rtol=0, atol=1e-13 * (1 + np.abs(expected).max()))
    assert model.score(X) == pytest.approx(reference.mean(), abs=atol * (1 + np.abs(reference).max()))

    latent = model.entropy_decomposition()
    collapsed = model.entropy_decomposition(form="collapsed")
    assert latent.elbo == pytest.approx(reference.mean(), abs=atol * (1 + np.abs(reference).max()))
    qbar = np.exp(logsumexp(_cholesky_log_joint(X, *params) - reference[:, None], axis=0)) / len(X)
    D, H = X.shape[1], model.n_factors
    np.testing.assert_allclose(
        collapsed.observable_entropy,
        qbar @ (0.5 * D * (LOG_2PI + 1) + mp_half_log_det),
        rtol=1e-6 if dtype == np.float32 else 1e-10,
    )
    posterior_entropy = qbar @ (0.5 * H * (LOG_2PI + 1) - mp_half_log_det_precision)
    np.testing.assert_allclose(
        latent.variational_entropy - collapsed.variational_entropy,
        posterior_entropy,
        rtol=1e-6 if dtype == np.float32 else 1e-10,
    )
    # The two forms are the same entropy sum.
    rtol = 1e-6 if dtype == np.float32 else 1e-11
    assert collapsed.entropy_sum == pytest.approx(latent.entropy_sum, rel=rtol)
    assert "pull of that boundary" in latent.note and "pull of that boundary" in collapsed.note


@pytest.mark.parametrize("noise", ["diag", "spherical"])
def test_rescaling_x_shifts_the_log_likelihood_by_exactly_minus_d_log_s(noise):
    X = _duplicated_column_data()
    D = X.shape[1]

    def fit(data):
        # 'random' starts from responsibilities drawn independently of the data's values.
        model = FastMFA(2, n_factors=2, noise=noise, init_params="random", random_state=0, max_iter=40, tol=0)
        return _fit_quietly(model, data)

    unit = fit(X)
    # Down to variances of 1e-240, where a floor or a constant-feature test in absolute units would
    # show (a variance below 1e-150 counted as constant froze X * 1e-80 at N(mean, 1e-6 I)).
    for scale in (1e-120, 1e-80, 1e-8, 1e-3, 1e5, 1e7, 1e80, 1e150):
        scaled = fit(X * scale)
        assert scaled.lower_bound_ + D * np.log(scale) == pytest.approx(unit.lower_bound_, rel=1e-9)
        assert scaled.score(X * scale) + D * np.log(scale) == pytest.approx(unit.score(X), rel=1e-9)
        np.testing.assert_allclose(scaled.noise_variance_ / scale**2, unit.noise_variance_, rtol=1e-6)
        np.testing.assert_allclose(scaled.means_ / scale, unit.means_, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize(("noise", "n_factors"), [("diag", 7), ("spherical", 2)])
def test_data_at_the_edges_of_float64s_range_fit_as_at_unit_scale_or_are_refused(noise, n_factors):
    """Scaled by powers of two (exact), down to noise floors 2**26 above the smallest normal float64
    and up to variances near its largest, X fits as X at unit scale (the initial covariances of
    X * 2**505 overflowed as (n dev)**2 and raised numpy's LinAlgError). Below, where products of
    noise variances turn subnormal (the kernels flush them; X * 1e-152 lost 10 digits of its
    log-likelihood), a ValueError names X and reg_covar, for both noise models (spherical noise
    returned wrong numbers at X * 1e-153)."""
    rng = np.random.RandomState(0)
    X = rng.randn(400, 3) @ rng.randn(3, 8) + 0.3 * rng.randn(400, 8)
    D = X.shape[1]

    def fit(data):
        model = FastMFA(2, n_factors=n_factors, noise=noise, random_state=0, tol=1e-8, max_iter=300)
        return _fit_quietly(model, data)

    unit = fit(X)
    for exponent in (-480, 505):
        scale = 2.0**exponent
        scaled = fit(X * scale)
        shift = D * exponent * np.log(2.0)
        assert scaled.lower_bound_ + shift == pytest.approx(unit.lower_bound_, rel=1e-11)
        np.testing.assert_allclose(scaled.score_samples(X * scale) + shift, unit.score_samples(X), rtol=1e-11)
        np.testing.assert_allclose(scaled.means_ / scale, unit.means_, rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(scaled.noise_variance_ / scale**2, unit.noise_variance_, rtol=1e-9)
    for exponent in (-490, -505, -508):
        with pytest.raises(ValueError, match=r"X is too small for float64.*reg_covar=1e-06"):
            fit(X * 2.0**exponent)


def test_noise_floors_are_reg_covar_times_each_features_variance_in_its_own_units():
    X = _duplicated_column_data()
    units = np.array([1e-6, 1.0, 1e4, 1.0, 3.0, 1e-6])
    weights = np.random.RandomState(3).uniform(0.5, 2.0, len(X))
    model = FastMFA(2, n_factors=2, reg_covar=1e-5, random_state=0)
    _fit_quietly(model, X * units, sample_weight=weights)
    mean = weights @ (X * units) / weights.sum()
    variance = weights @ (X * units - mean) ** 2 / weights.sum()
    np.testing.assert_allclose(model._noise_floor_, 1e-5 * variance, rtol=1e-10)
    assert np.all(model.noise_variance_ >= 1e-5 * variance * (1 - 1e-12))
    # The duplicated feature sits at its own floor, in its own units.
    assert model._at_floor()[:, [0, 5]].any()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_multiplying_every_sample_weight_by_a_constant_changes_nothing(dtype):
    rng = np.random.RandomState(0)
    X = np.vstack([rng.randn(200, 5) @ rng.randn(5, 5), rng.randn(200, 5) + 6]).astype(dtype)
    weights = rng.uniform(0.5, 2.0, len(X))

    def fit(w):
        return _fit_quietly(FastMFA(2, n_factors=2, random_state=0, max_iter=30, tol=0), X, sample_weight=w)

    unit = fit(weights)
    rtol = 1e-9 if dtype == np.float64 else 1e-4
    # 1e+-250: sums of squared weights beyond float64 (eigh failed at 1e200; 1e-200 fitted elsewhere).
    extremes = (1e-250, 1e250) if dtype == np.float64 else (1e-30, 1e30)  # weights are in X's dtype
    for constant in (extremes[0], 1e-20, 1e-8, 1e8, 1e20, extremes[1]):
        scaled = fit(weights * constant)
        assert scaled.lower_bound_ == pytest.approx(unit.lower_bound_, rel=rtol)
        assert scaled.n_iter_ == unit.n_iter_
        np.testing.assert_allclose(scaled.weights_, unit.weights_, rtol=rtol * 100)
        np.testing.assert_allclose(scaled.noise_variance_, unit.noise_variance_, rtol=rtol * 100)
    # The fit learns at every weight scale (an absolute floor on nk froze it at 1e-20).
    assert (
        fit(weights * 1e-20).lower_bound_
        > _fit_quietly(
            FastMFA(2, n_factors=2, random_state=0, max_iter=1, tol=0), X, sample_weight=weights
        ).lower_bound_
        + 0.1
    )


def test_heywood_case_warns_once_naming_component_features_and_variances():
    X = _duplicated_column_data()
    model = FastMFA(1, n_factors=2, random_state=0, tol=1e-6, max_iter=500)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(X)
    heywood = [w for w in caught if issubclass(w.category, HeywoodCaseWarning)]
    assert len(heywood) == 1
    message = str(heywood[0].message)
    at_floor = np.flatnonzero(model._at_floor()[0])
    assert len(at_floor) >= 1 and set(at_floor) <= {0, 5}
    for d in at_floor:
        assert f"component 0 feature {d} ({model.noise_variance_[0, d]:.3g})" in message
    decomposition = model.entropy_decomposition()
    assert "Heywood" in decomposition.note and "note:" in repr(decomposition)


def _clusters_apart(spread):
    """Three unit-variance clusters in 4-D whose centres lie ``spread`` apart."""
    rng = np.random.RandomState(0)
    centres, noise = rng.randn(3, 4), rng.randn(600, 4)
    return centres[np.arange(600) % 3] * spread + noise


def test_the_kmeans_start_of_clusters_far_apart_is_the_start_of_clusters_near_each_other():
    # The k-means clusters' moments about the column mean cancel when the clusters lie 1e6 apart
    # (their covariances lost 7 digits: the start scored -6.6452655 where -6.6452649 is exact); they
    # are taken about the clusters' means instead. reg_covar is small enough that no floor binds.
    def start(spread):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            X = _clusters_apart(spread)
            return FastMFA(3, n_factors=1, reg_covar=1e-16, random_state=0, max_iter=0).fit(X).score(X)

    np.testing.assert_allclose(start(1e6), start(1e3), rtol=1e-11)


def test_heywood_warning_of_floors_raised_by_clusters_far_apart_names_reg_covar():
    X = _clusters_apart(1e4)  # every feature's variance ~1e8: floors of ~100 against a noise of 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        FastMFA(3, n_factors=1, random_state=0).fit(X)
    message = " ".join(str(w.message) for w in caught if issubclass(w.category, HeywoodCaseWarning))
    assert "reg_covar=1e-06 times the features' variances over all the data" in message
    fitted = FastMFA(3, n_factors=1, reg_covar=1e-12, random_state=0).fit(X)  # as the message advises
    assert not fitted._at_floor().any() and fitted.score(X) > -6.7


def test_a_fit_away_from_the_boundary_has_no_heywood_warning_and_no_note():
    rng = np.random.RandomState(1)
    X = rng.randn(500, 2) @ rng.randn(2, 6) + rng.randn(500, 6)
    with warnings.catch_warnings():
        warnings.simplefilter("error", HeywoodCaseWarning)
        model = _fit_quietly(FastMFA(1, n_factors=2, random_state=0, tol=1e-8, max_iter=500), X)
    assert model.entropy_decomposition().note == ""


def test_more_factors_than_features_are_refused_naming_n_factors():
    X = _duplicated_column_data()[:, :3]
    with pytest.raises(ValueError, match="n_factors=4 must be at most n_features=3"):
        FastMFA(n_factors=4).fit(X)
    with pytest.raises(ValueError, match="n_factors=1000000000"):
        FastMFA(n_factors=1_000_000_000).fit(X)


@pytest.mark.parametrize("n_factors", [1, 2, 3])
def test_bic_counts_a_positive_number_of_parameters_up_to_as_many_factors_as_features(n_factors):
    X = _duplicated_column_data()[:, :3] + np.random.RandomState(0).randn(300, 3)
    model = _fit_quietly(FastMFA(2, n_factors=n_factors, random_state=0), X)
    K, D, H = 2, 3, n_factors
    # Weights, means, loadings modulo rotations of the factors, noise.
    expected = K - 1 + K * (D + D * H - H * (H - 1) // 2 + D)
    assert model._n_parameters() == expected > 0
    assert model.bic(X) == pytest.approx(-2 * model.score(X) * len(X) + expected * np.log(len(X)))


def test_cli_refuses_more_factors_than_features_at_once_with_one_line(tmp_path, capsys):
    from fastelbo.cli import main

    path = tmp_path / "data.csv"
    np.savetxt(path, np.random.RandomState(0).randn(200, 3), delimiter=",")
    assert main(["fit", "--model", "mfa", "--factors", "1000000000", "--quiet", str(path)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("fastelbo: error:") and "n_factors=1000000000" in error[0]


def test_float32_data_beyond_float32_range_are_fitted_in_float64_and_say_so():
    X = (_duplicated_column_data()[:, :5] + np.random.RandomState(0).randn(300, 5)) * 1e19
    X32 = X.astype(np.float32)
    with pytest.warns(Float32RangeWarning, match="float64"):
        model = _fit_quietly(FastMFA(2, n_factors=2, random_state=0), X32)
    assert model.means_.dtype == np.float64
    assert np.isfinite(model.lower_bound_)
    reference = logsumexp(_cholesky_log_joint(X32, *_parameters(model)), axis=1)
    np.testing.assert_allclose(model.score_samples(X32), reference, rtol=1e-9)
    assert np.isfinite(model.score(X32))


def test_float32_data_within_float32_range_stay_in_float32():
    X = (_duplicated_column_data()[:, :5] + np.random.RandomState(0).randn(300, 5)) * 1e15
    with warnings.catch_warnings():
        warnings.simplefilter("error", Float32RangeWarning)
        model = _fit_quietly(FastMFA(2, n_factors=2, random_state=0), X.astype(np.float32))
    assert model.means_.dtype == np.float32 and np.isfinite(model.lower_bound_)


def test_non_finite_log_likelihoods_raise_naming_the_cause_instead_of_returning_nan():
    X = _duplicated_column_data()[:, :5] + np.random.RandomState(0).randn(300, 5)
    model = _fit_quietly(FastMFA(2, n_factors=2, random_state=0), X)
    with pytest.raises(ValueError, match="not finite"):
        model.score_samples(X * 1e200)
    with pytest.raises(ValueError, match="not finite"):
        model.score(X * 1e200)


@pytest.mark.parametrize("scale", [1.0, 1e7])
def test_scores_stay_exact_when_the_noise_floor_is_a_trillionth_of_the_variance(scale):
    # reg_covar=1e-12: ||Psi^-1/2 W||^2 ~ 1e12 at the floor, where the difference form of the
    # Woodbury quadratic (and a float64 Cholesky factor of W W^T + Psi) would lose most digits.
    X = _duplicated_column_data(scale)
    model = _fit_quietly(FastMFA(2, n_factors=2, reg_covar=1e-12, random_state=0, tol=1e-6, max_iter=300), X)
    params = _parameters(model)
    assert model._at_floor()[:, [0, 5]].any()
    rows = np.arange(0, len(X), 15)
    mp_joint, mp_half_log_det, _ = _mp_log_joint_and_log_dets(X[rows], *params)
    expected = logsumexp(mp_joint, axis=1)
    np.testing.assert_allclose(model.score_samples(X[rows]), expected, rtol=0, atol=1e-7)
    collapsed = model.entropy_decomposition(X[rows], form="collapsed")
    qbar = np.exp(logsumexp(mp_joint - expected[:, None], axis=0)) / len(rows)
    D = X.shape[1]
    np.testing.assert_allclose(
        collapsed.observable_entropy, qbar @ (0.5 * D * (LOG_2PI + 1) + mp_half_log_det), rtol=1e-9
    )
    assert collapsed.elbo == pytest.approx(expected.mean(), abs=1e-7)


def test_float32_with_a_noise_floor_below_float32_resolution_is_fitted_in_float64():
    X = _duplicated_column_data().astype(np.float32)
    with pytest.warns(Float32RangeWarning, match="reg_covar=1e-12"):
        model = _fit_quietly(FastMFA(2, n_factors=2, reg_covar=1e-12, random_state=0), X)
    assert model.noise_variance_.dtype == np.float64


def _elongated_data(seed=0):
    """A component whose factor variance is 1e7 times its noise, 50 away from the origin, and a
    round one at -50."""
    rng = np.random.RandomState(seed)
    D = 6
    direction = rng.randn(D) / np.sqrt(D)
    direction /= np.linalg.norm(direction)
    elongated = rng.randn(1000, 1) * np.sqrt(1e7) @ direction[None] + rng.randn(1000, D) + 50
    return np.vstack([elongated, rng.randn(1000, D) * 3 - 50])


def test_float32_with_an_elongated_component_gives_the_float64_answer_to_float32_precision():
    X = _elongated_data()
    start = _fit_quietly(FastMFA(2, n_factors=1, random_state=0, tol=0, max_iter=30), X)
    names = ("weights_", "means_", "components_", "noise_variance_")
    start_values = {name: getattr(start, name).astype(np.float32) for name in names}
    assert start.components_.max() ** 2 > 1e6 * start.noise_variance_.min()  # elongated indeed
    fits = {}
    for dtype in (np.float64, np.float32):
        # Five EM iterations in each precision from the same (float32-representable) parameters.
        model = FastMFA(2, n_factors=1, random_state=0, tol=0, max_iter=5, warm_start=True)
        _fit_quietly(model, X.astype(dtype))  # sets the fit's state; its parameters are replaced
        for name in names:
            setattr(model, name, start_values[name].astype(dtype))
        fits[dtype] = _fit_quietly(model, X.astype(dtype))
    single, double = fits[np.float32], fits[np.float64]
    assert single.means_.dtype == np.float32
    assert single.lower_bound_ == pytest.approx(double.lower_bound_, abs=1e-4)
    for name, rtol in (
        ("weights_", 1e-5),
        ("means_", 1e-5),
        ("components_", 1e-5),
        ("noise_variance_", 1e-4),
    ):
        np.testing.assert_allclose(getattr(single, name), getattr(double, name), rtol=rtol, err_msg=name)
    # And float32 reports its own fit's log-likelihood to float32 precision.
    reference = logsumexp(_cholesky_log_joint(X.astype(np.float32), *_parameters(single)), axis=1)
    np.testing.assert_allclose(
        single.score_samples(X.astype(np.float32)),
        reference,
        rtol=0,
        atol=1e-4 * (1 + np.abs(reference).max()),
    )


def test_heywood_case_with_spherical_noise_names_the_component_once():
    rng = np.random.RandomState(0)
    # Two exact planes in 5 dimensions: with 2 factors each, a component's residual vanishes.
    X = np.vstack([rng.randn(200, 2) @ rng.randn(2, 5), rng.randn(200, 2) @ rng.randn(2, 5) + 20])
    model = FastMFA(2, n_factors=2, noise="spherical", random_state=0, max_iter=200)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(X)
    heywood = [str(w.message) for w in caught if issubclass(w.category, HeywoodCaseWarning)]
    assert len(heywood) == 1
    floored = np.flatnonzero(model._at_floor()[:, 0])
    assert len(floored) >= 1
    for c in floored:
        assert heywood[0].count(f"component {c} ") == 1 and "spherical" in heywood[0]
    np.testing.assert_allclose(model.noise_variance_[floored], 1e-6 * X.var(axis=0).mean(), rtol=1e-12)


def test_data_whose_variance_overflows_float64_are_refused_with_a_clear_error():
    X = np.random.RandomState(0).randn(200, 4)
    X[:, 2] *= 1e200
    with pytest.raises(ValueError, match=r"too large for float64.*\[2\]"):
        FastMFA(2, n_factors=1, random_state=0).fit(X)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_boundary_fits_are_bitwise_identical_for_any_n_jobs(dtype):
    # Heywood components take the sum form of the quadratic (float64) and residual moments (float32).
    X = np.repeat(_duplicated_column_data(1e5), 8, axis=0).astype(dtype)
    reg_covar = 1e-12 if dtype == np.float64 else 1e-6
    fits = [
        _fit_quietly(
            FastMFA(2, n_factors=2, reg_covar=reg_covar, random_state=0, max_iter=40, tol=0, n_jobs=n), X
        )
        for n in (1, 2, 3)
    ]
    # Some component is past the float64 kernel's switch to the sum form (||Psi^-1/2 W||_F^2 > 1e4).
    whitened = fits[0].components_.astype(np.float64) ** 2 / fits[0].noise_variance_[:, None, :]
    assert whitened.sum(axis=(1, 2)).max() > 1e4
    for model in fits[1:]:
        for name in ("means_", "components_", "noise_variance_", "elbo_history_"):
            np.testing.assert_array_equal(getattr(model, name), getattr(fits[0], name), err_msg=name)
