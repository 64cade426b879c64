"""The M-step sums of the Bernoulli / Poisson mixtures leave out negligible terms: ``w_n q_nc x_nd``
whose ``w_n q_nc max_d x_nd`` is below ``negligible_responsibility``. Against the NumPy reference:
the kernel's sx lies between the sums without any such term and the full sums, and within N times
the threshold of the full ones; nothing else of the pass changes; the estimator passes its threshold
to the kernel, and its means equal the closed form of the full sums to round-off."""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.utils import check_random_state

from fastelbo import FastBernoulliMixture, FastPoissonMixture, _core
from fastelbo.mixture._exponential_family import (
    FAMILIES,
    NEGLIGIBLE_SHARE,
    ExponentialFamilyPassParameters,
    negligible_responsibility,
)
from fastelbo.mixture._statistics import NK_FLOOR
from reference_exponential_family import e_step
from test_exponential_family_kernel import responsibilities_pass, separated_rows

ESTIMATORS = {"bernoulli": FastBernoulliMixture, "poisson": FastPoissonMixture}


def kernel_pass(X, w, weights, means, family, n_threads, negligible):
    parameters = ExponentialFamilyPassParameters.of(family, weights, means, True, n_threads)
    return responsibilities_pass(
        sp.csr_array(X),
        w,
        parameters,
        family,
        n_threads,
        True,
        return_log_norm=True,
        negligible_responsibility=negligible,
    )


@pytest.mark.parametrize("family", ["bernoulli", "poisson"])
def test_the_kernel_leaves_out_only_negligible_terms_and_within_the_bound(family):
    # Rows of every length: long ones one-hot, medium ones with responsibilities from 1 down to far
    # below the threshold, short ones spread over all components (they keep all their terms).
    k, d, n = 16, 200, 3000
    X, weights, means = separated_rows(family, n, d, k, seed=11)
    w = np.random.default_rng(5).uniform(0.0, 2.0, size=n)
    w[::13] = 0.0
    reference = e_step(X, weights, means, family, w)
    wq = reference["responsibilities"] * w[:, None]
    largest = X.max(axis=1)
    threshold = 1e-6
    negligible = (wq * largest[:, None] < threshold) & (wq != 0)
    assert np.count_nonzero(negligible) > 1000  # the case leaves out many terms
    full = wq.T @ X
    without = (np.where(negligible, 0.0, wq)).T @ X

    runs = {t: kernel_pass(X, w, weights, means, family, t, threshold) for t in (1, 2, 3)}
    exact = kernel_pass(X, w, weights, means, family, 2, 0.0)
    sx = runs[1]["sx"]
    for t in (2, 3):
        np.testing.assert_array_equal(runs[t]["sx"], runs[1]["sx"])
    # Only terms below the threshold are left out (sx between the two sums, to round-off), and
    # together at most N times the threshold per entry.
    slack = 1e-12 * full + 1e-300
    assert np.all(sx >= without - slack)
    assert np.all(sx <= full + slack)
    assert np.max(full - sx) <= n * threshold
    assert np.any(sx != exact["sx"])  # some were left out
    np.testing.assert_allclose(exact["sx"], full, rtol=1e-10, atol=1e-12)
    # nk and the ELBO's sums keep every term, bitwise.
    for key in ("nk", "sum_weight", "sum_log_norm", "sum_entropy", "sum_log_base", "log_norm"):
        np.testing.assert_array_equal(runs[1][key], exact[key], err_msg=key)


@pytest.mark.parametrize("value", [-1e-30, np.nan, np.inf])
def test_a_bad_threshold_raises(value):
    X, weights, means = separated_rows("poisson", 20, 10, 3, seed=1)
    with pytest.raises(ValueError, match="negligible_responsibility"):
        kernel_pass(X, None, weights, means, "poisson", 1, value)


def test_the_threshold_is_its_documented_value_and_scales_with_the_weights():
    assert negligible_responsibility(1e-10, None, 1000) == NEGLIGIBLE_SHARE * 1e-10 * NK_FLOOR / 1000
    w = np.array([0.5, 1.5, 4.0, 2.0])
    value = negligible_responsibility(1e-8, w, 4)
    assert value == pytest.approx(2**-60 * 1e-8 * NK_FLOOR * 2.0 / 4, rel=1e-15)
    assert negligible_responsibility(1e-8, 3 * w, 4) == pytest.approx(3 * value, rel=1e-15)
    assert negligible_responsibility(1e-8, None, 0) == 0.0
    assert negligible_responsibility(1e-8, np.array([1e308, 1e308]), 2) == 0.0  # their mean overflows


@pytest.mark.parametrize("family", ["bernoulli", "poisson"])
@pytest.mark.parametrize("weighted", [False, True])
def test_the_estimators_means_move_by_less_than_a_rounding_unit(family, weighted, monkeypatch):
    # An exact-EM step from separated data, whose posteriors hold many responsibilities below the
    # threshold (and non-zero): the means equal the closed form of the full sums to the round-off of
    # sums of n terms (the NumPy reference adds them in another order).
    k, d, n = 12, 120, 2000
    X, _, _ = separated_rows(family, n, d, k, seed=4)
    w = np.random.default_rng(6).uniform(0.1, 3.0, size=n) if weighted else None
    model = ESTIMATORS[family](n_components=k, random_state=0, init_params="random_from_data")
    model._check_hyperparameters()
    Xv = model._validate_rows(sp.csr_array(X), reset=True, min_samples=2)
    model._initialize_parameters(Xv, check_random_state(0), w)
    reference = e_step(X, model.weights_, model.means_, family, w)
    wq = reference["responsibilities"] * (1.0 if w is None else w[:, None])
    threshold = negligible_responsibility(model.mean_floor, w, n)
    left_out = (wq * X.max(axis=1)[:, None] < threshold) & (wq != 0)
    assert np.count_nonzero(left_out) > 100
    thresholds = []
    kernel = _core.exponential_family_mixture_pass

    def spy(*args, **kwargs):
        thresholds.append(kwargs["negligible_responsibility"])
        return kernel(*args, **kwargs)

    monkeypatch.setattr(_core, "exponential_family_mixture_pass", spy)
    stats = model._e_step(Xv, sample_weight=w)
    assert thresholds == [threshold]  # the estimator's pass leaves those terms out
    model._m_step(stats)
    nk = reference["nk"] + NK_FLOOR * (1.0 if w is None else w.mean())
    expected = FAMILIES[family].floored(reference["sx"] / nk[:, None], model.mean_floor)
    np.testing.assert_allclose(model.means_, expected, rtol=1e-12, atol=0)
