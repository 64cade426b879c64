"""FastGMM fits do not depend on the scale of the sample weights or, with ``reg_covar`` scaled with
the data, on the scale of X.

- Multiplying every sample weight by a constant c (1e-20 ... 1e20) leaves the fitted parameters, the
  per-sample numbers and the (weighted-average) lower bound unchanged: every internal floor is
  relative to the weights' scale.
- ``reg_covar`` is absolute (scikit-learn's meaning: a variance in X's squared units). Rescaling X by
  s together with ``reg_covar`` by s**2 rescales means by s and covariances by s**2, and shifts every
  log-likelihood by exactly ``-D log s`` (1e-8 ... 1e8), checked against a float64 reference, from
  the default 'kmeans' start (distinct rows ordered by value, which rescaling keeps) and from rows
  drawn by ``random_state`` ('random_from_data').
"""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from fastelbo import FastGMM
from fastelbo.exceptions import Float32RangeWarning
from reference import e_step

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]


def _data(dtype=np.float64, seed=0):
    rng = np.random.RandomState(seed)
    X = np.concatenate([rng.randn(150, 3), rng.randn(150, 3) * 0.5 + 4, rng.randn(100, 3) * 2 - 5])
    return X.astype(dtype)


def _fit(X, covariance_type, sample_weight=None, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gmm = FastGMM(n_components=3, covariance_type=covariance_type, random_state=0, **params)
        return gmm.fit(X, sample_weight=sample_weight)


@pytest.mark.parametrize("n_active", [None, 2])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_common_factor_on_sample_weights_changes_nothing(covariance_type, dtype, n_active):
    X = _data(dtype)
    rtol = 1e-9 if dtype == np.float64 else 1e-4
    plain = _fit(X, covariance_type, n_active=n_active)
    for factor in (1e-20, 1e-10, 1e10, 1e20):
        weighted = _fit(X, covariance_type, np.full(X.shape[0], factor), n_active=n_active)
        assert weighted.n_iter_ == plain.n_iter_
        np.testing.assert_allclose(weighted.weights_, plain.weights_, rtol=rtol, atol=rtol)
        np.testing.assert_allclose(weighted.means_, plain.means_, rtol=rtol, atol=rtol)
        np.testing.assert_allclose(weighted.covariances_, plain.covariances_, rtol=rtol, atol=rtol)
        np.testing.assert_allclose(weighted.lower_bound_, plain.lower_bound_, rtol=rtol)
        np.testing.assert_allclose(weighted.score_samples(X), plain.score_samples(X), rtol=rtol, atol=rtol)
        decomposition, expected = weighted.entropy_decomposition(), plain.entropy_decomposition()
        np.testing.assert_allclose(decomposition.entropy_sum, expected.entropy_sum, rtol=rtol)


@pytest.mark.parametrize("init_params", ["kmeans", "random_from_data"])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_rescaled_data_with_rescaled_reg_covar_shifts_log_likelihood_by_d_log_scale(
    covariance_type, init_params
):
    X = _data()
    n_features = X.shape[1]
    start = dict(init_params=init_params)
    unit = _fit(X, covariance_type, reg_covar=1e-3, **start)
    for scale in (1e-8, 1e-4, 1e4, 1e8):
        scaled = _fit(X * scale, covariance_type, reg_covar=1e-3 * scale**2, **start)
        np.testing.assert_allclose(scaled.means_, unit.means_ * scale, rtol=1e-8, atol=1e-8 * scale)
        np.testing.assert_allclose(
            scaled.covariances_, unit.covariances_ * scale**2, rtol=1e-7, atol=1e-9 * scale**2
        )
        log_scale = n_features * np.log(scale)
        # Against an independent float64 evaluation of the returned parameters ...
        reference = e_step(X * scale, scaled.weights_, scaled.means_, scaled.covariances_, covariance_type)[
            "log_norm"
        ]
        np.testing.assert_allclose(scaled.score_samples(X * scale), reference, rtol=1e-10, atol=1e-9)
        # ... which is the unit fit's, shifted by exactly -D log s.
        np.testing.assert_allclose(reference, unit.score_samples(X) - log_scale, rtol=1e-8, atol=1e-8)
        np.testing.assert_allclose(scaled.lower_bound_, unit.lower_bound_ - log_scale, rtol=1e-8, atol=1e-8)
        decomposition, expected = scaled.entropy_decomposition(), unit.entropy_decomposition()
        np.testing.assert_allclose(
            decomposition.observable_entropy, expected.observable_entropy + log_scale, rtol=1e-8, atol=1e-8
        )


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_data_at_the_small_end_of_each_dtypes_range_fit_in_a_dtype_that_holds_them_or_are_refused(
    covariance_type,
):
    """Squared deviations below a dtype's normal numbers are flushed by the kernels (float32 X *
    1e-19 scored 7 nats per row off its own parameters; float64 X * 1e-156, full, 4,307). float32
    data that small are fitted in float64, with a Float32RangeWarning naming the cause, exactly as
    the same values in float64 (a collapsed k-means start and a fall of the ELBO were seen before);
    float64 data that small are refused naming X."""
    X = _data()
    unit = _fit(X, covariance_type, reg_covar=1e-3)
    for exponent, dtype in ((-60, np.float32), (-490, np.float64)):
        scale = 2.0**exponent  # exact in either dtype
        values = (X * scale).astype(dtype)
        if dtype == np.float32:
            with pytest.warns(
                Float32RangeWarning, match=r"variances of X's columns reach .* below 2\*\*-100"
            ):
                fitted = _fit(values, covariance_type, reg_covar=1e-3 * scale**2)
            as_float64 = _fit(values.astype(np.float64), covariance_type, reg_covar=1e-3 * scale**2)
            assert fitted.means_.dtype == np.float64
            np.testing.assert_allclose(fitted.covariances_, as_float64.covariances_, rtol=1e-12)
            assert fitted.lower_bound_ == pytest.approx(as_float64.lower_bound_, rel=1e-13)
            assert np.all(np.diff(fitted.elbo_history_) > -1e-10 * np.abs(fitted.elbo_history_).max())
        else:
            fitted = _fit(values, covariance_type, reg_covar=1e-3 * scale**2)
        log_scale = X.shape[1] * exponent * np.log(2.0)
        # The float32 data are X rounded to float32: the fit of X to float32's precision.
        rtol = 1e-5 if dtype == np.float32 else 1e-9
        np.testing.assert_allclose(fitted.covariances_, unit.covariances_ * scale**2, rtol=rtol * 100)
        np.testing.assert_allclose(fitted.score_samples(values) + log_scale, unit.score_samples(X), rtol=rtol)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Float32RangeWarning)  # within float32's range: no warning
        assert _fit(
            (X * 2.0**-40).astype(np.float32), covariance_type, reg_covar=1e-3 * 2.0**-80
        ).means_.dtype == (np.float32)
    with pytest.raises(ValueError, match=r"X is too small for float64: the variances of X's columns reach"):
        _fit(X * 2.0**-505, covariance_type, reg_covar=1e-3 * 2.0**-1010)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_initial_or_fitted_variances_below_a_dtypes_range_continue_in_float64_or_are_refused(covariance_type):
    """Where the initialisation reads no rows (weights_init, means_init and precisions_init all
    given), the initial variances decide: float32 starts in float64 (it raised an error about an
    overflow, or warned of reg_covar). Given at the data's scale, the fit is the float64 fit of the
    same values; with unit covariances, the first M-step finds the data's variances and the run
    goes on in float64 from there. Fitted variances below float64's limit are refused."""
    X = _data()
    unit = _fit(X, covariance_type, reg_covar=1e-3)
    # 2**-55: the columns' variances (2**-107) are below float32's limit, but their squared
    # deviations are still float32 numbers, so that a first float32 E-step sums what they are.
    scale = 2.0**-55
    values = (X * scale).astype(np.float32)
    for covariance_scale, cause in ((scale, "initial"), (1.0, "fitted")):
        start = dict(
            weights_init=unit.weights_,
            means_init=unit.means_ * scale,
            precisions_init=unit.precisions_ / covariance_scale**2,
            reg_covar=1e-3 * scale**2,
            tol=1e-10,  # both to the optimum: they start float32's rounding apart
            max_iter=1000,
        )
        with pytest.warns(Float32RangeWarning, match=rf"the {cause} variances reach .* below 2\*\*-100"):
            fitted = _fit(values, covariance_type, **start)
        as_float64 = _fit(values.astype(np.float64), covariance_type, **start)
        assert fitted.means_.dtype == np.float64
        if cause == "initial":  # float64 throughout: the float64 fit itself
            np.testing.assert_array_equal(fitted.covariances_, as_float64.covariances_)
            assert fitted.lower_bound_ == as_float64.lower_bound_
        else:  # one E-step in float32 first
            np.testing.assert_allclose(fitted.covariances_, as_float64.covariances_, rtol=1e-6)
            assert fitted.lower_bound_ == pytest.approx(as_float64.lower_bound_, rel=1e-10)
    # float64: the columns' variances (12 to 13 * 2**-998) pass, the clusters' (tied: pooled, 1.9) do not.
    with pytest.raises(ValueError, match=r"the fitted variances reach .* below 2\*\*-996 .*reg_covar"):
        _fit(X * 2.0**-499, covariance_type, reg_covar=1e-3 * 2.0**-998)
