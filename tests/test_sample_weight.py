"""``FastGMM.fit(X, sample_weight=w)``: the weighted model of docs/theory.rst
(``<f> = (1/W) sum_n w_n f_n``).

Checked against the NumPy reference (tests/reference.py, weighted EM written from docs/theory.rst) from the
same initial parameters, against fits on repeated rows (integer weights) and removed rows (zero
weights), against the weighted post-M-step identity, and for clear validation errors.

What the initialisations guarantee (see fastelbo.mixture._initialization): with integer weights,
'kmeans' and 'k-means++' seed and cluster exactly as on ``np.repeat(X, w, axis=0)``, in any row
order (they draw from the distinct rows of positive weight in a canonical order, so the fits agree
to round-off); 'random' draws one random row of responsibilities per row of X, and
'random_from_data' draws rows with probability proportional to the weights, both in row order as
scikit-learn does, so neither reproduces the draws made on repeated rows (their statistics are
weighted, their random numbers differ).
"""

import inspect
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

import reference as ref
from fastelbo import FastGMM
from test_entropy_identity import K, _gmm_from, _stepwise_trajectory, _theta, assert_histories_interleave
from test_input_validation import no_kernels  # noqa: F401 (fixture)

COV_TYPES = list(ref.COVARIANCE_TYPES)
TERMS = ("elbo", "variational_entropy", "prior_entropy", "observable_entropy", "entropy_sum")


@pytest.fixture(scope="module")
def blobs():
    X, _ = ref.make_blobs_data(600, 3, K, random_state=0)
    return X


@pytest.fixture(scope="module")
def real_weights(blobs):
    weights = np.random.default_rng(5).uniform(0.2, 3.0, size=len(blobs))
    weights[::9] = 0.0
    return weights


@pytest.fixture(scope="module")
def integer_weights(blobs):
    return np.random.default_rng(7).integers(0, 4, size=len(blobs))  # 0, 1, 2 or 3


def _fit(gmm, X, sample_weight=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # tol=0 runs never "converge"
        return gmm.fit(X, sample_weight=sample_weight)


def _assert_same_fit(actual, expected, rtol=1e-10, first_elbo_rtol=1e-10):
    for got, want in zip(_theta(actual), _theta(expected), strict=True):
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.abs(want).max())
    np.testing.assert_allclose(actual.lower_bound_, expected.lower_bound_, rtol=rtol)
    np.testing.assert_allclose(actual.elbo_history_[0], expected.elbo_history_[0], rtol=first_elbo_rtol)
    np.testing.assert_allclose(actual.elbo_history_[1:], expected.elbo_history_[1:], rtol=rtol)
    np.testing.assert_allclose(actual.entropy_sum_history_, expected.entropy_sum_history_, rtol=rtol)
    for name in TERMS:
        np.testing.assert_allclose(
            getattr(actual.entropy_decomposition(), name),
            getattr(expected.entropy_decomposition(), name),
            rtol=rtol,
            atol=1e-13,
        )


# ----------------------------------------------------------------------------- NumPy reference


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_weighted_em_matches_the_numpy_reference_iteration_by_iteration(blobs, real_weights, covariance_type):
    n_iter, reg_covar = 8, 1e-6
    start = _gmm_from(blobs, covariance_type, reg_covar=reg_covar, max_iter=0)
    theta_0 = _theta(_fit(start, blobs, real_weights))
    gmm = _fit(
        _gmm_from(blobs, covariance_type, reg_covar=reg_covar, max_iter=n_iter, tol=0.0), blobs, real_weights
    )
    expected = ref.em(
        blobs, *theta_0, covariance_type, n_iter, reg_covar=reg_covar, sample_weight=real_weights
    )
    np.testing.assert_allclose(gmm.elbo_history_, expected["elbo"], rtol=1e-10)
    np.testing.assert_allclose(gmm.entropy_sum_history_, expected["entropy_sum"], rtol=1e-10)
    np.testing.assert_allclose(gmm.lower_bound_, expected["elbo"][-1], rtol=1e-10)
    for got, want in zip(_theta(gmm), expected["final"], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10 * np.abs(want).max())
    # The weighted ELBO is not the unweighted one: the weights did change the fit.
    unweighted = ref.em(blobs, *theta_0, covariance_type, n_iter, reg_covar=reg_covar)
    assert abs(unweighted["elbo"][-1] - gmm.lower_bound_) > 1e-3


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_training_decomposition_is_the_weighted_one(blobs, real_weights, covariance_type):
    gmm = _fit(_gmm_from(blobs, covariance_type, reg_covar=0.0, max_iter=30, tol=0.0), blobs, real_weights)
    decomposition = gmm.entropy_decomposition()
    weights, means, covariances = _theta(gmm)
    e_step = ref.e_step(blobs, weights, means, covariances, covariance_type, sample_weight=real_weights)
    terms = ref.entropy_terms(
        e_step["resp"], weights, covariances, covariance_type, blobs.shape[1], sample_weight=real_weights
    )
    np.testing.assert_allclose(decomposition.elbo, e_step["sum_log_norm"] / e_step["sum_weight"], rtol=1e-10)
    np.testing.assert_allclose(
        decomposition.elbo, np.average(gmm.score_samples(blobs), weights=real_weights), rtol=1e-12
    )
    for name in ("variational_entropy", "prior_entropy", "observable_entropy", "entropy_sum"):
        np.testing.assert_allclose(getattr(decomposition, name), terms[name], rtol=1e-9, atol=1e-12)
    assert decomposition.entropy_sum == (
        decomposition.variational_entropy
        - decomposition.prior_entropy
        - decomposition.observable_entropy
        + decomposition.data_term
    )


# ----------------------------------------------------------------------------- weighted identity


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_weighted_post_mstep_identity_holds_at_every_iteration_of_fit(blobs, real_weights, covariance_type):
    thetas, elbos, entropy_sums = _stepwise_trajectory(
        blobs, covariance_type, n_iter=10, sample_weight=real_weights
    )
    for t in range(len(elbos)):
        e_step = ref.e_step(blobs, *thetas[t], covariance_type, sample_weight=real_weights)
        post_mstep_elbo = ref.elbo(
            blobs, e_step["resp"], *thetas[t + 1], covariance_type, sample_weight=real_weights
        )
        assert abs(entropy_sums[t] - post_mstep_elbo) <= 1e-9 * abs(post_mstep_elbo), t
        np.testing.assert_allclose(elbos[t], e_step["sum_log_norm"] / e_step["sum_weight"], rtol=1e-10)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_weighted_elbo_and_entropy_sum_histories_interleave(blobs, real_weights, covariance_type):
    gmm = _fit(_gmm_from(blobs, covariance_type, reg_covar=0.0, max_iter=40, tol=0.0), blobs, real_weights)
    assert_histories_interleave(gmm)


# ----------------------------------------------------------------------------- repeated and removed rows


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_integer_weights_equal_repeated_rows_from_fixed_initial_parameters(
    blobs, integer_weights, covariance_type
):
    weighted = _fit(_gmm_from(blobs, covariance_type, max_iter=10, tol=0.0), blobs, integer_weights)
    repeated = _fit(
        _gmm_from(blobs, covariance_type, max_iter=10, tol=0.0), np.repeat(blobs, integer_weights, axis=0)
    )
    _assert_same_fit(weighted, repeated)


@pytest.mark.parametrize("seed", [0, 3])
@pytest.mark.parametrize("init_params", ["kmeans", "k-means++"])
@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_integer_weights_equal_repeated_rows_with_kmeans_initialisations(
    blobs, integer_weights, covariance_type, init_params, seed
):
    params = dict(covariance_type=covariance_type, init_params=init_params, random_state=seed, max_iter=10)
    weighted = _fit(FastGMM(K, tol=0.0, **params), blobs, integer_weights)
    repeated = _fit(FastGMM(K, tol=0.0, **params), np.repeat(blobs, integer_weights, axis=0))
    # k-means++ starts from one row per component: the initial covariances are reg_covar (1e-6)
    # plus the round-off (~1e-14) of a zero scatter, which depends on the reference point (the
    # weighted column mean, equal to the mean of the repeated rows only to round-off). The first
    # E-step, with log-likelihoods of about -1e6 per row, amplifies that to ~3e-9 relative; the
    # later iterations (and the fitted parameters) agree to 1e-10.
    _assert_same_fit(weighted, repeated, first_elbo_rtol=1e-8 if init_params == "k-means++" else 1e-10)


@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random_from_data", "fixed"])
@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_zero_weight_rows_are_absent_rows(blobs, real_weights, covariance_type, init_params):
    present = real_weights > 0

    def model():
        if init_params == "fixed":
            return _gmm_from(blobs, covariance_type, max_iter=10, tol=0.0)
        return FastGMM(K, covariance_type=covariance_type, init_params=init_params, random_state=1, tol=0.0)

    with_zeros = _fit(model(), blobs, real_weights)
    without_rows = _fit(model(), blobs[present], real_weights[present])
    _assert_same_fit(with_zeros, without_rows)


@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random", "random_from_data"])
def test_equal_weights_fit_as_no_weights(blobs, init_params):
    # Weight 2 scales every sum by an exact power of two: the weighted fit is the unweighted one.
    params = dict(init_params=init_params, random_state=2, max_iter=10, tol=0.0)
    unweighted = _fit(FastGMM(K, **params), blobs)
    _assert_same_fit(_fit(FastGMM(K, **params), blobs, np.full(len(blobs), 2.0)), unweighted)
    _assert_same_fit(_fit(FastGMM(K, **params), blobs, 2.0), unweighted)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
@pytest.mark.parametrize("constant", [1e-300, 1e-200, 1e160, 1e300])
def test_weights_times_any_constant_fit_as_the_weights(blobs, real_weights, covariance_type, constant):
    # The M-step's scatter sxx - sx sx^T / nk squares sums of weights: weights of 1e160 made it
    # overflow (diag: a lower bound of -1.66e6 for -4.71; full: an error blaming X), 1e-200
    # underflow (covariances off by 1e-5 relative). Only the weights' ratios may matter.
    params = dict(covariance_type=covariance_type, random_state=0, max_iter=8, tol=0.0)
    expected = _fit(FastGMM(K, **params), blobs, real_weights)
    _assert_same_fit(_fit(FastGMM(K, **params), blobs, real_weights * constant), expected, rtol=1e-9)


def test_random_from_data_never_starts_on_a_zero_weight_row(blobs):
    weights = np.zeros(len(blobs))
    weights[[5, 17, 101, 230, 333, 599]] = [1.0, 2.0, 3.0, 1.0, 0.5, 4.0]
    for seed in range(10):
        gmm = FastGMM(K, init_params="random_from_data", random_state=seed, max_iter=0)
        means = _fit(gmm, blobs, weights).means_
        distances = ((means[:, None, :] - blobs[None, weights > 0, :]) ** 2).sum(axis=2)
        np.testing.assert_allclose(distances.min(axis=1), 0.0, atol=1e-20)


# ----------------------------------------------------------------------------- fit_predict, dtypes


def test_fit_predict_with_weights_labels_every_row_as_predict(blobs, real_weights):
    gmm = FastGMM(K, random_state=0)
    labels = gmm.fit_predict(blobs, sample_weight=real_weights)
    np.testing.assert_array_equal(labels, gmm.predict(blobs))
    assert labels.shape == (len(blobs),)
    fitted = FastGMM(K, random_state=0).fit(blobs, sample_weight=real_weights)
    np.testing.assert_array_equal(fitted.means_, gmm.means_)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_float32_weighted_fit_stays_float32_and_close_to_float64(blobs, real_weights, covariance_type):
    fit64 = _fit(_gmm_from(blobs, covariance_type, max_iter=10, tol=0.0), blobs, real_weights)
    fit32 = _fit(
        _gmm_from(blobs, covariance_type, max_iter=10, tol=0.0), blobs.astype(np.float32), list(real_weights)
    )
    assert fit32.means_.dtype == np.float32 and fit32.covariances_.dtype == np.float32
    np.testing.assert_allclose(fit32.lower_bound_, fit64.lower_bound_, rtol=1e-5)
    np.testing.assert_allclose(fit32.means_, fit64.means_, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("constant", [1e-45, 1e-300, 1e300])
def test_float32_data_with_weights_beyond_float32s_range_fit_as_the_weights(blobs, constant):
    # The weights were rounded to float32 before their scaling: weights 1e-45 and 3e-45 became
    # float32 1.4e-45 and 2.8e-45 (ratio 2, a silently different fit), 1e-300 'all zero'.
    weights = np.where(np.arange(len(blobs)) % 2 == 0, 1.0, 3.0)
    params = dict(covariance_type="diag", random_state=0, max_iter=8, tol=0.0)
    X = blobs.astype(np.float32)
    expected = _fit(FastGMM(K, **params), X, weights)
    fitted = _fit(FastGMM(K, **params), X, weights * constant)
    # The same fit to float32's round-off (the scaled weights' mantissas differ from 1 and 3).
    for got, want in ((fitted.means_, expected.means_), (fitted.covariances_, expected.covariances_)):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6 * np.abs(want).max())


def test_score_keeps_scikit_learns_signature():
    # scikit-learn's GaussianMixture.score takes no sample_weight; neither does FastGMM.score.
    assert list(inspect.signature(FastGMM.score).parameters) == ["self", "X", "y"]
    assert "sample_weight" in inspect.signature(FastGMM.fit).parameters
    assert "sample_weight" in inspect.signature(FastGMM.fit_predict).parameters


# ----------------------------------------------------------------------------- validation

N_ROWS = 60


def _bad_weights():
    ones = np.ones(N_ROWS)
    with_nan, with_inf, negative = ones.copy(), ones.copy(), ones.copy()
    with_nan[3], with_inf[3], negative[3] = np.nan, np.inf, -0.5
    return [
        pytest.param(with_nan, "Input sample_weight contains NaN", id="nan"),
        pytest.param(with_inf, "Input sample_weight contains infinity", id="inf"),
        pytest.param(negative, "Negative values in data passed to `sample_weight`", id="negative"),
        pytest.param(-1.0, "Negative values in data passed to `sample_weight`", id="negative-scalar"),
        pytest.param(np.nan, "sample_weight must be a finite real number", id="nan-scalar"),
        pytest.param(np.zeros(N_ROWS), "sample_weight must contain at least one non-zero", id="all-zero"),
        pytest.param(0.0, "sample_weight must contain at least one non-zero", id="zero-scalar"),
        pytest.param(ones[:-1], r"sample_weight.shape == \(59,\), expected \(60,\)!", id="too-short"),
        pytest.param(ones[:, None], "sample_weight must be a 1D array or a scalar", id="2d"),
        pytest.param(["a"] * N_ROWS, "sample_weight: could not convert string to float", id="strings"),
        pytest.param(ones + 1j, "sample_weight: Complex data not supported", id="complex"),
        pytest.param(1j, "sample_weight must be a finite real number", id="complex-scalar"),
    ]


@pytest.mark.usefixtures("no_kernels")
@pytest.mark.parametrize("sample_weight, message", _bad_weights())
@pytest.mark.parametrize("method", ["fit", "fit_predict"])
def test_invalid_sample_weight_is_rejected_before_any_kernel_runs(blobs, sample_weight, message, method):
    with pytest.raises((ValueError, TypeError), match=message):
        getattr(FastGMM(n_components=2), method)(blobs[:N_ROWS], sample_weight=sample_weight)


@pytest.mark.usefixtures("no_kernels")
def test_fewer_weighted_rows_than_components_is_rejected(blobs):
    weights = np.zeros(N_ROWS)
    weights[:3] = 1.0
    with pytest.raises(ValueError, match=r"n_samples = 3 \(rows with a non-zero sample_weight\)"):
        FastGMM(n_components=4).fit(blobs[:N_ROWS], sample_weight=weights)


def test_valid_sample_weight_forms_are_accepted_and_not_modified(blobs):
    weights = np.random.default_rng(0).uniform(0.5, 2.0, size=N_ROWS)
    copy = weights.copy()
    expected = FastGMM(2, random_state=0).fit(blobs[:N_ROWS], sample_weight=weights)
    np.testing.assert_array_equal(weights, copy)
    for form in (list(weights), weights.astype(np.float32).astype(np.float64), tuple(weights)):
        gmm = FastGMM(2, random_state=0).fit(blobs[:N_ROWS], sample_weight=form)
        np.testing.assert_allclose(gmm.means_, expected.means_, rtol=1e-6)
    integer = FastGMM(2, random_state=0).fit(blobs[:N_ROWS], sample_weight=np.arange(N_ROWS) % 3)
    assert np.all(np.isfinite(integer.means_))
    scalar = FastGMM(2, random_state=0).fit(blobs[:N_ROWS], sample_weight=np.float32(3.0))
    np.testing.assert_allclose(scalar.means_, FastGMM(2, random_state=0).fit(blobs[:N_ROWS]).means_)
