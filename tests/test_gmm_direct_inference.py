"""FastGMM's diag and spherical inference (score_samples, predict_proba, predict, score, and a fit's
final pass) sums every log-joint directly, sum_d (u_cd (x_d - mu_cd))^2 in float64, where expanding
it about a point shared by a run of rows would need home labels (clusters far apart for their
widths) and in float32. Every term is non-negative, so the sums keep float64's digits however far
rows lie from components, and a row's result depends on that row alone: the same bits in any
batch, in any order, with any thread count, and no labelling pass.
"""

import warnings

import numpy as np
import pytest
from scipy.special import logsumexp
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

from fastelbo import FastGMM, _core
from independent_evaluation import evaluate_mixture, gmm_parameters

EPS = np.finfo(np.float64).eps


def _far_clusters(dtype, offset=0.0, seed=3):
    """Six clusters 1e4 apart with widths from 0.3 to 3 in four features, shuffled, moved by
    ``offset``."""
    rng = np.random.RandomState(seed)
    centres = rng.standard_normal((6, 4)) * 1e4 + offset
    widths = np.array([0.3, 1.0, 3.0, 0.5, 2.0, 1.0])
    labels = rng.randint(6, size=900)
    return (centres[labels] + rng.standard_normal((900, 4)) * widths[labels, None]).astype(dtype)


def _digits(dtype):
    return load_digits().data.astype(dtype)


DATA = {
    "far_clusters": lambda dtype: _far_clusters(dtype),
    "far_clusters_at_1e5": lambda dtype: _far_clusters(dtype, offset=1e5),
    "digits": _digits,  # pixels that never change: precisions near 1 / reg_covar
}


def _fit(X, covariance_type, n_components=6):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return FastGMM(n_components, covariance_type=covariance_type, random_state=0, n_jobs=1).fit(X)


# Every case but spherical float64 digits, whose expansion needs no homes: one expanded pass.
DIRECT_CASES = [
    (covariance_type, dtype, data)
    for covariance_type in ("diag", "spherical")
    for dtype in (np.float64, np.float32)
    for data in sorted(DATA)
    if (covariance_type, dtype, data) != ("spherical", np.float64, "digits")
]


@pytest.mark.parametrize("n_components", [6, 35])  # one padded block of components, and several
@pytest.mark.parametrize(("covariance_type", "dtype", "data"), DIRECT_CASES)
def test_a_row_scores_the_same_bits_in_any_batch(covariance_type, dtype, data, n_components):
    X = DATA[data](dtype)
    gmm = _fit(X, covariance_type, n_components)
    assert gmm._sums_directly(X.dtype)
    whole_scores, whole_resp = gmm.score_samples(X), gmm.predict_proba(X)
    rng = np.random.RandomState(0)
    order = rng.permutation(len(X))
    shuffled = gmm.score_samples(X[order])
    np.testing.assert_array_equal(shuffled, whole_scores[order])
    for rows in (1, 2, 7, 130):
        start = int(rng.randint(len(X) - rows))
        batch = X[start : start + rows]
        np.testing.assert_array_equal(gmm.score_samples(batch), whole_scores[start : start + rows])
        np.testing.assert_array_equal(gmm.predict_proba(batch), whole_resp[start : start + rows])
    gmm.set_params(n_jobs=2)
    np.testing.assert_array_equal(gmm.score_samples(X), whole_scores)


@pytest.mark.parametrize("n_components", [6, 32, 71])  # blocks of 8 (AVX2) or 16 (AVX-512) components
@pytest.mark.parametrize("data", sorted(DATA))
@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_float64_scores_hold_float64_digits(covariance_type, data, n_components):
    """Within a few float64 round-offs of the terms summed (D of them, each at most the row's
    magnitude) of an independent extended-precision evaluation, for every row."""
    X = DATA[data](np.float64)
    gmm = _fit(X, covariance_type, n_components)
    evaluation = evaluate_mixture(gmm_parameters(gmm), X)
    allowed = 4 * X.shape[1] * EPS * (1.0 + evaluation.magnitude) + evaluation.reference_error
    error = np.abs(gmm.score_samples(X) - evaluation.log_likelihood)
    assert np.all(error <= allowed), f"worst {np.max(error / allowed):.3g} of the bound"
    np.testing.assert_allclose(gmm.predict_proba(X), evaluation.responsibilities, rtol=0, atol=1e-13)
    np.testing.assert_array_equal(gmm.predict(X), np.argmax(evaluation.responsibilities, axis=1))


@pytest.mark.parametrize("n_components", [6, 40])
@pytest.mark.parametrize("data", sorted(DATA))
@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_float32_scores_are_the_float64_sums_rounded(covariance_type, data, n_components):
    """float32 rows and parameters, summed in float64: the float64 evaluation of the float32
    parameters, rounded once to float32 (per log-joint), whatever the offset of the data."""
    X = DATA[data](np.float32)
    gmm = _fit(X, covariance_type, n_components)
    evaluation = evaluate_mixture(gmm_parameters(gmm), X)
    scores = gmm.score_samples(X)
    assert scores.dtype == np.float32
    magnitude = np.abs(evaluation.log_likelihood) + evaluation.magnitude
    error = np.abs(scores.astype(np.float64) - evaluation.log_likelihood)
    assert np.all(error <= 4 * np.finfo(np.float32).eps * (1.0 + magnitude))


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_inference_runs_one_pass_without_labelling(covariance_type, monkeypatch):
    X = _far_clusters(np.float64)
    gmm = _fit(X, covariance_type)
    assert gmm._needs_homes(X.dtype)  # the fit's moment passes expand, and need homes here
    calls = []
    monkeypatch.setattr(gmm, "_homes_for", lambda X: calls.append(X) or None)
    gmm.score_samples(X)
    gmm.predict(X)
    assert calls == []


def test_tied_inference_still_labels_rows_first():
    X = _far_clusters(np.float64)
    gmm = _fit(X, "tied")
    assert gmm._inference_needs_homes(X.dtype)


def _two_clusters(dtype=np.float64):
    rng = np.random.RandomState(0)
    return (rng.standard_normal((200, 2)) + rng.randint(2, size=200)[:, None] * 6).astype(dtype)


@pytest.mark.parametrize("n_rows", [1, 2, 16, 17, 200])
@pytest.mark.parametrize("method", ["score_samples", "predict_proba", "predict", "score"])
@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_rows_whose_distances_overflow_raise_for_any_number_of_rows(covariance_type, method, n_rows):
    """Squared distances beyond float64 make the row's log-likelihood unrepresentable: a ValueError
    naming the overflow, however few such rows there are (a floor that hid them raised only once
    17 of them summed past float64's largest number)."""
    gmm = _fit(_two_clusters(), covariance_type, n_components=2)
    far = np.tile([[1e160, 0.0]], (n_rows, 1))
    with pytest.raises(ValueError, match="overflowed float64"):
        getattr(gmm, method)(far)


def test_direct_sums_score_a_row_whose_plain_squares_overflow():
    """(x - mu)^2 = 1e310 overflows, but with a variance of 1e300 the squared distance is 1e10:
    the sum runs over (u (x - mu))^2, u the precision Cholesky factor, and stays finite; the
    tight component's overflowing distance gives it responsibility 0."""
    variances = np.array([1.0, 1e300])
    out = _core.gaussian_mixture_pass(
        np.array([[1e155, 0.0]]),
        None,
        np.log([0.5, 0.5]),
        np.zeros((2, 2)),
        1 / np.sqrt(variances),
        None,
        None,
        "spherical",
        compute_moments=False,
        return_log_norm=True,
        return_responsibilities=True,
        n_threads=1,
        direct=True,
    )
    expected = np.log(0.5) - np.log(2 * np.pi) - np.log(1e300) - 0.5 * (1e155 / 1e150) ** 2
    np.testing.assert_allclose(out["log_norm"], [expected], rtol=1e-14)
    np.testing.assert_array_equal(out["responsibilities"], [[0.0, 1.0]])


def test_float64_models_whose_expansion_needs_no_homes_keep_one_expanded_pass():
    overlapping = np.random.RandomState(0).standard_normal((500, 3))
    assert not _fit(overlapping, "diag", n_components=3)._sums_directly(np.float64)
    assert _fit(overlapping.astype(np.float32), "diag", n_components=3)._sums_directly(np.float32)
    assert _fit(_far_clusters(np.float64), "diag")._sums_directly(np.float64)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_component_of_weight_zero_never_takes_a_row(dtype):
    """The empty component's log-joint is a finite floor (so that 0 * log-joint is 0): a row far out
    for every real component either goes to the nearest real one or, beyond the floor, raises;
    it never goes to the empty component."""
    X = (
        np.random.RandomState(0).standard_normal((300, 2)) + np.repeat(np.arange(3), 100)[:, None] * 6
    ).astype(dtype)
    gmm = _fit(X, "diag", n_components=3)
    weights = gmm.weights_.astype(np.float64)
    weights[0] = 0.0
    gmm._set_parameters(
        ((weights / weights.sum()).astype(dtype), gmm.means_, gmm.covariances_, gmm.precisions_cholesky_)
    )
    near_far = np.array([[1e3, 0.0], [-1e3, 5.0]], dtype=dtype)
    responsibilities = gmm.predict_proba(near_far)
    assert np.all(responsibilities[:, 0] == 0)
    np.testing.assert_array_equal(gmm.predict(near_far), np.argmax(responsibilities, axis=1))
    beyond = np.array([[1e154 if dtype == np.float64 else 1e19, 0.0]], dtype=dtype)
    with pytest.raises(ValueError, match="overflowed"):
        gmm.predict(beyond)


@pytest.mark.parametrize("n_components", [1, 7, 8, 9, 16, 17])
def test_rows_score_alike_at_every_tile_and_block_boundary(n_components):
    """Rows go four at a time (the rest one by one) and components in padded blocks of 4, 8 or 16
    lanes: every prefix of nine rows, and every row alone, gets the whole batch's bits, which are
    the closed form's."""
    rng = np.random.RandomState(n_components)
    X = rng.standard_normal((9, 3)) * 3
    means = rng.standard_normal((n_components, 3)) * 3
    factor = rng.uniform(0.5, 2.0, size=(n_components, 3))
    log_weights = np.log(rng.dirichlet(np.ones(n_components)))

    def scores(rows):
        out = _core.gaussian_mixture_pass(
            rows, None, log_weights, means, factor, None, None, "diag",
            compute_moments=False, return_log_norm=True, n_threads=1, direct=True,
        )  # fmt: skip
        return out["log_norm"]

    whole = scores(X)
    log_joints = (
        log_weights
        + np.sum(np.log(factor), axis=1)
        - 1.5 * np.log(2 * np.pi)
        - 0.5 * np.sum(((X[:, None, :] - means) * factor) ** 2, axis=2)
    )
    np.testing.assert_allclose(whole, logsumexp(log_joints, axis=1), rtol=1e-13)
    for n in range(10):
        np.testing.assert_array_equal(scores(X[:n]), whole[:n])
    for i in range(9):
        np.testing.assert_array_equal(scores(X[i : i + 1]), whole[i : i + 1])


@pytest.mark.parametrize("offset", [0.0007, 0.0013, 0.0021])
def test_float32_responsibilities_of_a_row_far_from_every_component_hold_float32_digits(offset):
    """A row near the middle of two unit-width components 2,000 widths apart: log-joints near -5e5,
    where float32's spacing is 0.03. Their differences, all the posterior reads, are taken in
    float64 before rounding (the row's largest log-joint is kept apart)."""
    gmm = _fit(_two_clusters(np.float32), "diag", n_components=2)
    gmm._set_parameters(
        (
            np.array([0.5, 0.5], dtype=np.float32),
            np.array([[-1000.0, 0.0], [1000.0, 0.0]], dtype=np.float32),
            np.ones((2, 2), dtype=np.float32),
            np.ones((2, 2), dtype=np.float32),
        )
    )
    X = np.array([[offset, 0.0]], dtype=np.float32)
    evaluation = evaluate_mixture(gmm_parameters(gmm), X)
    np.testing.assert_allclose(gmm.predict_proba(X), evaluation.responsibilities, rtol=2e-7, atol=0)
    scores = gmm.score_samples(X).astype(np.float64)
    np.testing.assert_allclose(scores, evaluation.log_likelihood, rtol=2 * np.finfo(np.float32).eps)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_labels_are_the_first_component_of_largest_responsibility_at_near_ties(dtype):
    """Rows a hair off the middle of two equal components: their log-joints differ (by 2e-8 and
    2e-9), but float32's responsibilities tie at 0.5, and the label is then the first component,
    as argmax(predict_proba) says."""
    gmm = _fit(_two_clusters(dtype), "diag", n_components=2)
    gmm._set_parameters(
        (
            np.array([0.5, 0.5], dtype=dtype),
            np.array([[-1.0, 0.0], [1.0, 0.0]], dtype=dtype),
            np.ones((2, 2), dtype=dtype),
            np.ones((2, 2), dtype=dtype),
        )
    )
    X = np.array([[1e-8, 0.0], [1e-9, 0.0], [0.0, 0.0], [-1e-8, 0.0], [0.5, 0.0]], dtype=dtype)
    np.testing.assert_array_equal(gmm.predict(X), np.argmax(gmm.predict_proba(X), axis=1))
