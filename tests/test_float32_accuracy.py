"""float32 fits equal float64 fits to float32 precision where expansions about one point would not.

Two hard cases for a float32 E-step that expands ``||x - mu||^2`` and takes moments about a common
point: clusters far apart from each other (1e3 to 1e5 standard deviations), and a start whose means
lie far from the data. In both, the float32 fit of the float32 data is compared with the float64
fit of the same (rounded) data from the same initial parameters, so only the arithmetic differs.

Tolerances: the kernels sum float32 sub-blocks of up to 1024 rows before accumulating in float64, so
the covariances may differ by ~1e-6 relative; we allow 2e-5 of the largest covariance entry. Means
and the lower bound are compared relative to their own magnitude (float32 resolves 1e5 to ~0.008).
"""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from fastelbo import FastGMM

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]
SCALES = np.array([1.0, 2.0, 0.5])  # per-feature standard deviations of both clusters
N_PER_CLUSTER = 500


def _two_clusters(separation, seed=0):
    """Two clusters whose centres are `separation` apart along the diagonal, rounded to float32."""
    rng = np.random.RandomState(seed)
    X = rng.standard_normal((2 * N_PER_CLUSTER, 3)) * SCALES
    X[N_PER_CLUSTER:] += separation / np.sqrt(3)
    return X.astype(np.float32)


def _initial_precisions(covariance_type):
    precisions = 1.0 / SCALES**2
    return {
        "full": np.array([np.diag(precisions)] * 2),
        "tied": np.diag(precisions),
        "diag": np.array([precisions] * 2),
        "spherical": np.array([1.0, 1.0]),
    }[covariance_type]


def _fit_both_precisions(X32, means_init, covariance_type, max_iter):
    params = dict(
        n_components=2,
        covariance_type=covariance_type,
        weights_init=[0.5, 0.5],
        means_init=means_init,
        precisions_init=_initial_precisions(covariance_type),
        tol=0.0,
        max_iter=max_iter,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fit32 = FastGMM(**params).fit(X32)
        fit64 = FastGMM(**params).fit(X32.astype(np.float64))
    assert fit32.means_.dtype == np.float32 and fit64.means_.dtype == np.float64
    return fit32, fit64


def _assert_same_fit(fit32, fit64, mean_scale):
    covariances32 = fit32.covariances_.astype(np.float64)
    scale = np.max(np.abs(fit64.covariances_))
    np.testing.assert_allclose(covariances32, fit64.covariances_, rtol=0, atol=2e-5 * scale)
    np.testing.assert_allclose(fit32.weights_, fit64.weights_, rtol=0, atol=1e-6)
    np.testing.assert_allclose(fit32.means_, fit64.means_, rtol=0, atol=1e-6 * mean_scale + 1e-5)
    np.testing.assert_allclose(fit32.lower_bound_, fit64.lower_bound_, rtol=1e-6)


@pytest.mark.parametrize("separation", [1e3, 1e4, 1e5])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float32_fit_of_far_apart_clusters_equals_float64(covariance_type, separation):
    X32 = _two_clusters(separation)
    centres = np.array([X32[:N_PER_CLUSTER].mean(axis=0), X32[N_PER_CLUSTER:].mean(axis=0)], dtype=np.float64)
    fit32, fit64 = _fit_both_precisions(X32, centres + 0.5, covariance_type, max_iter=5)
    _assert_same_fit(fit32, fit64, separation)
    # And float64 itself found the clusters: unit-scale covariances, not the between-cluster spread.
    assert np.max(fit64.covariances_) < 10


@pytest.mark.parametrize("offset", [1e3, 1e4, 1e5])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float32_first_step_from_far_means_init_equals_float64(covariance_type, offset):
    X32 = _two_clusters(8.0)
    direction = np.ones(3) / np.sqrt(3)
    # Each start lies `offset` beyond its own cluster, so each still attracts that cluster's rows.
    means_init = np.array([-offset * direction, (8.0 + offset) * direction])
    fit32, fit64 = _fit_both_precisions(X32, means_init, covariance_type, max_iter=1)
    _assert_same_fit(fit32, fit64, offset)
    np.testing.assert_allclose(fit64.weights_, [0.5, 0.5], atol=0.01)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float32_inference_on_far_apart_clusters_equals_float64(covariance_type):
    X32 = _two_clusters(1e5)
    centres = np.array([X32[:N_PER_CLUSTER].mean(axis=0), X32[N_PER_CLUSTER:].mean(axis=0)], dtype=np.float64)
    fit32, _ = _fit_both_precisions(X32, centres, covariance_type, max_iter=3)
    fit64 = FastGMM(n_components=2, covariance_type=covariance_type)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_"):
        setattr(fit64, name, getattr(fit32, name).astype(np.float64))
    fit64.n_features_in_ = 3
    fit64.converged_ = True
    X64 = X32.astype(np.float64)
    # Per-sample log-likelihoods of about -4: float32 resolves them to ~1e-6.
    np.testing.assert_allclose(fit32.score_samples(X32), fit64.score_samples(X64), rtol=0, atol=1e-4)
    np.testing.assert_array_equal(fit32.predict(X32), fit64.predict(X64))
    np.testing.assert_allclose(fit32.predict_proba(X32), fit64.predict_proba(X64), atol=1e-5)
