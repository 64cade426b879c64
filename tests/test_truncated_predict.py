"""FastGMM.predict_truncated: approximate labels of new data by the truncated search through
neighbour lists, against the exact predict on well-separated clusters."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from fastelbo import FastGMM

K, D = 300, 6
CENTRES = np.random.default_rng(0).normal(0.0, 20.0, (K, D))


def _clusters(n, seed):
    rng = np.random.default_rng(seed)
    return CENTRES[rng.integers(0, K, n)] + rng.normal(0.0, 1.0, (n, D))


@pytest.fixture(scope="module", params=["full", "tied", "diag", "spherical"])
def fitted(request):
    # Started near the clusters, so that the model fits them (the test is about the search).
    gmm = FastGMM(
        K, covariance_type=request.param, n_active=3, n_neighbors=5, means_init=CENTRES + 0.5, random_state=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return gmm.fit(_clusters(15_000, 1))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_predict_truncated_agrees_with_exact_predict_on_separated_clusters(fitted, dtype):
    X_new = _clusters(5000, 2).astype(dtype)
    approximate = fitted.predict_truncated(X_new)
    assert approximate.dtype == np.int64 and approximate.shape == (5000,)
    # An approximate search (see predict_truncated): 0.96-0.997 of rows here, by covariance type
    # and random state; a broken walk stays near the hub start (about 0.7).
    assert np.mean(approximate == fitted.predict(X_new)) >= 0.95


def test_predict_truncated_is_deterministic_for_a_random_state(fitted):
    X_new = _clusters(500, 3)
    np.testing.assert_array_equal(fitted.predict_truncated(X_new), fitted.predict_truncated(X_new))


def test_predict_truncated_needs_n_active():
    X = _clusters(2000, 4)
    exact = FastGMM(20, covariance_type="diag", random_state=0, max_iter=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        exact.fit(X)
    with pytest.raises(ValueError, match="n_active"):
        exact.predict_truncated(X)
