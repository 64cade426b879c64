"""The canonical distinct rows the k-means initialisations draw from, and what they buy: fits that
depend only on the weighted set of rows (shuffled rows, integer weights as repeated rows, zero-weight
rows)."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

import reference as ref
from fastelbo import FastGMM, FastMFA
from fastelbo.mixture._distinct_rows import distinct_rows


def _weighted_rows(rng, n=40, d=5, dtype=np.float64):
    X = rng.standard_normal((n, d)).astype(dtype)
    X[5] = X[2]  # a duplicate in X itself
    weights = rng.integers(0, 4, size=n).astype(np.float64)
    return X, weights


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_distinct_rows_are_the_weighted_set_of_rows(dtype):
    rng = np.random.default_rng(0)
    X, weights = _weighted_rows(rng, dtype=dtype)
    distinct = distinct_rows(X, weights)
    rows = X[distinct.source_rows]
    # The obvious reference: a dictionary from each row's bytes to its summed weight.
    summed = {}
    for row, w in zip(X, weights, strict=True):
        if w > 0:
            summed[row.tobytes()] = summed.get(row.tobytes(), 0.0) + w
    assert [r.tobytes() for r in rows] != []
    assert {r.tobytes(): w for r, w in zip(rows, distinct.weights, strict=True)} == summed
    assert len(distinct) == len(summed)
    for position, n in enumerate(distinct.source_rows):  # the first occurrence of each distinct row
        assert weights[n] > 0
        assert all(X[m].tobytes() != rows[position].tobytes() or weights[m] == 0 for m in range(n))


def test_distinct_rows_do_not_depend_on_order_or_on_repeating_rows():
    rng = np.random.default_rng(1)
    X, weights = _weighted_rows(rng)
    base = distinct_rows(X, weights)
    permutation = rng.permutation(len(X))
    shuffled_X = X[permutation]
    shuffled = distinct_rows(shuffled_X, weights[permutation])
    repeated_X = np.repeat(X, weights.astype(int), axis=0)
    repeated = distinct_rows(repeated_X)
    for other, other_X in ((shuffled, shuffled_X), (repeated, repeated_X)):
        np.testing.assert_array_equal(other_X[other.source_rows], X[base.source_rows])
        np.testing.assert_array_equal(other.weights, base.weights)


def test_canonical_order_is_lexicographic_on_the_values():
    rng = np.random.default_rng(2)
    # Heavy ties: the first features take few values, so later features must break them.
    X = np.column_stack([rng.integers(0, 3, 200), rng.integers(0, 2, 200), rng.standard_normal(200)])
    X[7] = X[3]
    distinct = distinct_rows(X)
    rows = X[distinct.source_rows]
    reference = np.unique(X, axis=0)  # sorted lexicographically, duplicates removed
    np.testing.assert_array_equal(rows, reference)


def test_canonical_order_is_unchanged_by_increasing_maps_of_each_feature():
    """Units and offsets per feature (not powers of two): the same rows in the same order."""
    rng = np.random.default_rng(4)
    X, weights = _weighted_rows(rng)
    scale = np.array([1e-6, 3.0, 1e3, 7e5, 0.37])
    offset = np.array([1e4, -2.5, 0.0, 1e-3, -1e6])
    base = distinct_rows(X, weights)
    mapped = distinct_rows(X * scale + offset, weights)
    np.testing.assert_array_equal(mapped.source_rows, base.source_rows)
    np.testing.assert_array_equal(mapped.weights, base.weights)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize(("scale", "offset"), [(1e3, 0.0), (1e-6, 0.0), (1.0, 1e4), (37.0, -250.0)])
def test_default_start_and_fit_follow_a_change_of_units_and_origin(covariance_type, scale, offset):
    """The k-means start of ``s X + b`` is the start of X mapped, and so is the fit (reg_covar
    mapped too): the log-likelihood shifts by exactly -D log s, to round-off."""
    X, _ = ref.make_blobs_data(400, 3, 4, random_state=1)
    base = _fit(FastGMM(4, covariance_type=covariance_type, random_state=0), X)
    mapped_X = X * scale + offset
    mapped = _fit(
        FastGMM(4, covariance_type=covariance_type, random_state=0, reg_covar=1e-6 * scale**2), mapped_X
    )
    assert mapped.n_iter_ == base.n_iter_
    np.testing.assert_allclose(mapped.means_, base.means_ * scale + offset, rtol=1e-8, atol=1e-8 * scale)
    assert mapped.score(mapped_X) == pytest.approx(base.score(X) - X.shape[1] * np.log(scale), abs=1e-8)


def _fit(model, X, sample_weight=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, sample_weight=sample_weight)


def _parameters(model):
    if isinstance(model, FastMFA):
        return model.weights_, model.means_, model.components_, model.noise_variance_
    return model.weights_, model.means_, model.covariances_


@pytest.mark.parametrize("weight_scale", [1.0, 0.3])
@pytest.mark.parametrize("init_params", ["kmeans", "k-means++"])
@pytest.mark.parametrize("estimator", ["gmm", "mfa"])
def test_shuffled_weighted_rows_start_and_fit_as_the_repeated_rows(init_params, estimator, weight_scale):
    # weight_scale: only the weights' ratios count (a seeded FastMFA start counted a seed as
    # 1 / the smallest weight points, so weights of 0.3 started elsewhere than weights of 1).
    X, _ = ref.make_blobs_data(300, 3, 4, random_state=0)
    rng = np.random.default_rng(3)
    weights = rng.integers(0, 4, size=len(X))
    permutation = rng.permutation(len(X))

    def model(max_iter):
        params = dict(init_params=init_params, random_state=4, max_iter=max_iter, tol=0.0)
        if estimator == "mfa":
            return FastMFA(4, n_factors=1, **params)
        return FastGMM(4, **params)

    for max_iter in (0, 10):
        weighted = _fit(model(max_iter), X[permutation], weights[permutation] * weight_scale)
        repeated = _fit(model(max_iter), np.repeat(X, weights, axis=0))
        for got, want in zip(_parameters(weighted), _parameters(repeated), strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10 * np.abs(want).max())
