"""Rows far from every component of a fitted FastGMM (outliers at 1e10 to 1e100 times the data's
scale): their posteriors, labels and log-likelihoods against a NumPy evaluation in a form that
keeps what tells the components apart.

With a covariance shared by all components (tied), ``-1/2 ||(x - mu_c) U||^2`` holds a term
``-1/2 ||x U||^2`` common to every component, which carries none of the difference between them;
summed into each log-joint, it rounded that difference away for rows beyond about 1e16 of the
data's scale, and every component tied (predict_proba uniform, predict 0, where the truth is one
component with certainty). The reference drops the common term: a softmax of
``log pi_c + x^T P mu_c - 1/2 mu_c^T P mu_c``.

In float32 a log-joint near -5e5 rounds to steps of 0.03, which a row between two far clusters
reads as a difference between them: rows the passes evaluate again in float64 are rounded relative
to their largest log-joint, kept apart, with every covariance type.
"""

import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.special import logsumexp, softmax
from sklearn.exceptions import ConvergenceWarning

import reference as ref
from fastelbo import FastGMM, _core
from fastelbo.mixture._covariance import (
    covariances_from_precisions_cholesky,
    precisions_cholesky_from_covariances,
)
from independent_evaluation import component_log_densities, evaluate_mixture, gmm_parameters


def _fitted(covariance_type, dtype=np.float64, n_active=None):
    rng = np.random.RandomState(0)
    X = np.r_[
        rng.randn(200, 3) + [5, 0, 0], rng.randn(200, 3) * 0.7 - [5, 1, 0], rng.randn(150, 3) + [0, 6, 2]
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return FastGMM(3, covariance_type=covariance_type, random_state=0, n_active=n_active).fit(
            X.astype(dtype)
        )


def _far_rows(scales):
    rng = np.random.RandomState(1)
    directions = np.r_[np.eye(3), -np.eye(3), rng.randn(4, 3)]
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    return np.concatenate([directions * scale for scale in scales])


def _tied_logits(gmm, X):
    """log pi_c + x^T P mu_c - 1/2 mu_c^T P mu_c: the tied log-joints less their common term."""
    precision = np.linalg.inv(gmm.covariances_.astype(np.float64))
    means = gmm.means_.astype(np.float64)
    projected = means @ precision  # rows P mu_c
    return np.log(gmm.weights_.astype(np.float64)) + X @ projected.T - 0.5 * np.sum(projected * means, axis=1)


@pytest.mark.parametrize("n_active", [None, 2])
def test_tied_posteriors_of_rows_far_from_every_component_keep_the_differences_between_components(n_active):
    gmm = _fitted("tied", n_active=n_active)
    X = _far_rows([1e10, 1e15, 1e17, 1e20, 1e100])
    expected = softmax(_tied_logits(gmm, X), axis=1)
    assert np.all(expected.max(axis=1) == 1.0)  # the truth: one component, with certainty
    np.testing.assert_array_equal(gmm.predict_proba(X), expected)
    np.testing.assert_array_equal(gmm.predict(X), expected.argmax(axis=1))
    # The log-likelihood: the common term back in, to float64's precision at that scale.
    precision = np.linalg.inv(gmm.covariances_)
    common = -0.5 * np.einsum("nd,de,ne->n", X, precision, X)
    constant = -0.5 * (3 * np.log(2 * np.pi) + np.linalg.slogdet(gmm.covariances_)[1])
    log_likelihood = common + logsumexp(_tied_logits(gmm, X), axis=1) + constant
    np.testing.assert_allclose(gmm.score_samples(X), log_likelihood, rtol=1e-12)


@pytest.mark.parametrize("covariance_type", ["tied", "full", "diag", "spherical"])
def test_far_rows_in_float32_and_every_covariance_type_go_to_the_component_the_reference_names(
    covariance_type,
):
    """For the other covariance types the components' quadratic terms differ, and the broadest
    component in the row's direction takes it; float32 to 1e15 (its squares stay finite)."""
    for dtype, scales in ((np.float64, [1e10, 1e17, 1e100]), (np.float32, [1e8, 1e15])):
        gmm = _fitted(covariance_type, dtype)
        X = _far_rows(scales)
        params = [np.asarray(p, dtype=np.float64) for p in (gmm.weights_, gmm.means_, gmm.covariances_)]
        if covariance_type == "tied":
            expected = softmax(_tied_logits(gmm, X), axis=1)
        else:
            expected = ref.e_step(X, *params, covariance_type)["resp"]
        assert np.all(expected.max(axis=1) == 1.0)
        np.testing.assert_array_equal(gmm.predict(X.astype(dtype)), expected.argmax(axis=1))
        np.testing.assert_allclose(gmm.predict_proba(X.astype(dtype)), expected, atol=1e-6)


def test_far_rows_among_ordinary_ones_in_one_call_keep_both_exact():
    """Far rows in the same block as the data: the block's expansion point moves, most rows are
    re-evaluated without the expansion, near ones whole and far ones relative to their nearest
    component; both kinds against the references."""
    gmm = _fitted("tied")
    rng = np.random.RandomState(2)
    near = rng.randn(300, 3) * 3
    far = _far_rows([1e4, 1e8, 1e17, 1e100])
    X = np.r_[near[:150], far, near[150:]]
    params = [np.asarray(p, dtype=np.float64) for p in (gmm.weights_, gmm.means_, gmm.covariances_)]
    expected_near = ref.e_step(near, *params, "tied")
    proba = gmm.predict_proba(X)
    is_far = np.zeros(len(X), dtype=bool)
    is_far[150 : 150 + len(far)] = True
    np.testing.assert_allclose(proba[~is_far], expected_near["resp"], atol=1e-12)
    np.testing.assert_allclose(proba[is_far], softmax(_tied_logits(gmm, far), axis=1), atol=1e-12)
    np.testing.assert_allclose(gmm.score_samples(X)[~is_far], expected_near["log_norm"], rtol=1e-12)


def _expanded_pass(X, means, factor, covariance_type, home, compute_moments):
    K = len(means)
    return _core.gaussian_mixture_pass(
        X,
        None,
        np.log(np.full(K, 1 / K, dtype=X.dtype)),
        means,
        factor,
        means.astype(np.float64),
        home,
        covariance_type,
        compute_moments=compute_moments,
        return_log_norm=True,
        return_responsibilities=True,
        n_threads=1,
        direct=False,
    )


@pytest.mark.parametrize("compute_moments", [False, True])
@pytest.mark.parametrize("with_homes", [False, True])
@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_float32_expanded_pass_keeps_the_differences_of_rows_far_from_every_component(
    covariance_type, with_homes, compute_moments
):
    """Rows near the middle of two unit-width components 2,000 widths apart, among rows of both
    clusters: their log-joints are near -5e5, where float32's spacing is 0.03. The expanded pass
    re-evaluates them in float64 (a far component reaches them) and keeps each one's largest
    log-joint apart, so that float32 rounds only the differences the posterior reads."""
    rng = np.random.RandomState(5)
    means = np.array([[-1000.0, 0.0], [1000.0, 0.0]])
    cluster_rows = rng.standard_normal((40, 2)) + means[np.arange(40) % 2]
    middle_rows = np.c_[[0.0007, 0.0013, -0.0021, 0.003], [0.0, 0.5, -1.0, 0.0]]
    X = np.r_[cluster_rows[:20], middle_rows, cluster_rows[20:]].astype(np.float32)
    factor = np.ones((2, 2) if covariance_type == "diag" else 2)
    home = (X[:, 0] > 0).astype(np.int64) if with_homes else None
    out = _expanded_pass(
        X, means.astype(np.float32), factor.astype(np.float32), covariance_type, home, compute_moments
    )
    x = X.astype(np.float64)
    log_joints = np.log(0.5) - np.log(2 * np.pi) - 0.5 * np.sum((x[:, None, :] - means) ** 2, axis=2)
    expected = softmax(log_joints, axis=1)
    middle = slice(20, 24)
    assert np.all(log_joints[middle].max(axis=1) < -4.9e5)
    np.testing.assert_allclose(out["responsibilities"][middle], expected[middle], rtol=5e-7, atol=0)
    np.testing.assert_allclose(out["responsibilities"], expected, atol=2e-7)
    log_likelihood = logsumexp(log_joints, axis=1)
    np.testing.assert_allclose(out["log_norm"], log_likelihood, rtol=2 * np.finfo(np.float32).eps)


def _parameters_as_used(gmm):
    """The mixture the kernels evaluate: float32 covariances and their rounded precision factors
    differ by round-off, which moves log-joints near -5e5 by 0.1; the kernels use the factors."""
    covariances = covariances_from_precisions_cholesky(
        gmm.precisions_cholesky_.astype(np.float64), gmm.covariance_type
    )
    return gmm_parameters(
        SimpleNamespace(
            weights_=gmm.weights_,
            means_=gmm.means_,
            covariances_=covariances,
            covariance_type=gmm.covariance_type,
        )
    )


def _between_far_clusters(covariance_type, dtype):
    """A fitted FastGMM moved to two equal-weight components 1,000 of their widths from the
    origin on either side (widths differing between features and, but for tied, between the
    components; full: correlated), and rows near where the two log-joints, near -5e5, are equal:
    on lines across the gap, a few nats either side of the tie (found by bisection in float64)."""
    gmm = _fitted(covariance_type, dtype)
    covariances = {
        "full": np.array([[[4.0, 0.5], [0.5, 0.25]], [[1.0, -0.3], [-0.3, 0.5]]]),
        "tied": np.array([[4.0, 0.5], [0.5, 0.25]]),
        "diag": np.array([[4.0, 0.25], [1.0, 0.5]]),
        "spherical": np.array([4.0, 1.0]),
    }[covariance_type]
    means = np.array([[-2000.0, 0.0], [2000.0, 0.0]])
    gmm.n_features_in_ = 2
    gmm._set_parameters(
        (
            np.array([0.5, 0.5], dtype=dtype),
            means.astype(dtype),
            covariances.astype(dtype),
            precisions_cholesky_from_covariances(covariances, covariance_type).astype(dtype),
        )
    )
    params = _parameters_as_used(gmm)

    def gap(t, y):  # log-joint of component 1 less that of component 0 (equal weights), in float64
        log_density = component_log_densities(params, np.array([[t, y]])).log_density[0]
        return log_density[1] - log_density[0]

    rows = []
    for y in (0.0, 0.5, -1.0):
        low, high = -2000.0, 2000.0
        for _ in range(200):
            middle = 0.5 * (low + high)
            low, high = (low, middle) if gap(middle, y) > 0 else (middle, high)
        slope = (gap(high + 1e-3, y) - gap(low - 1e-3, y)) / (high - low + 2e-3)
        rows += [[low + nats / slope, y] for nats in (0.0, 0.3, -2.0, 4.0)]
    return gmm, np.array(rows, dtype=dtype)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_float32_responsibilities_of_rows_between_far_clusters_hold_float32_digits(covariance_type):
    """Rounded whole, float32 log-joints near -5e5 are 0.03 apart: responsibilities were up to
    0.014 off (full) and 0.004 (tied). Such rows are evaluated in float64 and rounded relative to
    their largest log-joint, kept apart."""
    gmm, X = _between_far_clusters(covariance_type, np.float32)
    evaluation = evaluate_mixture(_parameters_as_used(gmm), X)
    assert np.all(evaluation.log_likelihood < -1e5)
    assert np.all(evaluation.responsibilities.min(axis=1) > 1e-3)  # no row goes to one component
    np.testing.assert_allclose(gmm.predict_proba(X), evaluation.responsibilities, rtol=5e-7, atol=0)
    labels = gmm.predict(X)
    np.testing.assert_array_equal(labels, gmm.predict_proba(X).argmax(axis=1))
    clear = np.abs(np.diff(evaluation.responsibilities, axis=1))[:, 0] > 1e-6  # not a float32 tie
    np.testing.assert_array_equal(labels[clear], evaluation.responsibilities.argmax(axis=1)[clear])
    np.testing.assert_allclose(
        gmm.score_samples(X), evaluation.log_likelihood, rtol=2 * np.finfo(np.float32).eps
    )


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_float32_rows_whose_log_joints_lie_below_the_floor_keep_their_float32_values(covariance_type):
    """A row 7e18 widths from two equal components: log-joints near -2.45e37, which float32 holds
    but which lie below its floor for log 0 (lowest / 16), where relative rounding stops; the row
    keeps its whole float32 log-joints (equal: q = 1/2 each)."""
    gmm = _fitted(covariance_type, np.float32)
    covariances = {"full": np.stack([np.eye(2)] * 2), "tied": np.eye(2)}[covariance_type]
    gmm.n_features_in_ = 2
    gmm._set_parameters(
        (
            np.array([0.5, 0.5], dtype=np.float32),
            np.array([[-1.0, 0.0], [1.0, 0.0]], dtype=np.float32),
            covariances.astype(np.float32),
            precisions_cholesky_from_covariances(covariances, covariance_type).astype(np.float32),
        )
    )
    X = np.array([[0.0, 7e18]], dtype=np.float32)
    np.testing.assert_allclose(gmm.predict_proba(X), [[0.5, 0.5]], rtol=1e-6)
    expected = -0.5 * (float(X[0, 1]) ** 2 + 1.0) - np.log(2 * np.pi)
    np.testing.assert_allclose(gmm.score_samples(X), [expected], rtol=1e-6)


@pytest.mark.parametrize("bad", ["log_weight", "factor"])
@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_float32_non_finite_parameters_are_not_empty_components(covariance_type, bad):
    """A NaN log-weight, or an infinite precision factor, gives non-finite log-normalisers: the
    pass reports them instead of treating the component as empty (log-weight -inf)."""
    rng = np.random.RandomState(0)
    X = rng.standard_normal((50, 2)).astype(np.float32)
    log_weights = np.log(np.full(2, 0.5, dtype=np.float32))
    factor = np.stack([np.eye(2)] * 2) if covariance_type == "full" else np.eye(2)
    factor = factor.astype(np.float32)
    if bad == "log_weight":
        log_weights[1] = np.nan
    else:
        factor.reshape(-1)[0] = np.inf
    means = np.array([[-1.0, 0.0], [1.0, 0.0]], dtype=np.float32)
    out = _core.gaussian_mixture_pass(
        X, None, log_weights, means, factor, means.astype(np.float64), None, covariance_type,
        compute_moments=False, return_log_norm=True, n_threads=1,
    )  # fmt: skip
    assert not np.any(np.isfinite(out["log_norm"]))
