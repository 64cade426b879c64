"""The coarse start of truncated EM at large K (``fastelbo.mixture._coarse_cells``): on tight,
well-separated clusters of means, whose cells keep every cluster whole, the neighbour lists stay
within a mean's cluster and nearly every row's nearest mean is found (brute force); a fit that
starts this way (budgets forced to 0) is deterministic, bitwise identical for any thread count, and
its truncated free energy stays below the exact log-likelihood."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

import fastelbo.mixture._truncated as truncated
from fastelbo import FastGMM
from fastelbo.mixture._coarse_cells import CoarseCells

N_CLUSTERS, PER_CLUSTER, D = 40, 10, 5


def _clustered_means(seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-100, 100, (N_CLUSTERS, D))
    # Components in cluster order: the pivots (every 20th of 400) lie in distinct clusters, so that
    # no cluster is split between cells.
    cluster = np.repeat(np.arange(N_CLUSTERS), PER_CLUSTER)
    means = centres[cluster] + rng.normal(0, 0.01, (len(cluster), D))
    return means, cluster, centres


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_neighbour_lists_are_valid_and_stay_in_the_cluster(dtype):
    means, cluster, _ = _clustered_means()
    lists = CoarseCells(means, dtype).neighbour_lists(5)
    K = len(means)
    assert lists.dtype == np.int32 and lists.shape == (K, 5)
    np.testing.assert_array_equal(lists[:, 0], np.arange(K))
    assert all(len(set(row)) == 5 for row in lists)
    assert np.all(cluster[lists] == cluster[:, None])
    if dtype == np.float64:  # nearest first (float32 cannot order means 0.01 apart at |m| ~ 100)
        d2 = np.sum((means[lists] - means[:, None, :]) ** 2, axis=2)
        assert np.all(np.diff(d2[:, 1:], axis=1) >= -1e-9)


def test_lists_as_long_as_k_hold_every_component():
    means, _, _ = _clustered_means()
    means = means[:30]
    lists = CoarseCells(means).neighbour_lists(30)
    np.testing.assert_array_equal(lists[:, 0], np.arange(30))
    np.testing.assert_array_equal(np.sort(lists, axis=1), np.tile(np.arange(30), (30, 1)))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_rows_nearest_means_match_brute_force(dtype):
    means, cluster, centres = _clustered_means()
    rng = np.random.default_rng(1)
    X = (centres[rng.integers(0, N_CLUSTERS, 500)] + rng.normal(0, 0.5, (500, D))).astype(dtype)
    active = CoarseCells(means, dtype).nearest_means(X, 3)
    assert active.dtype == np.int32 and active.shape == (500, 3)
    d2 = np.sum((X[:, None, :].astype(np.float64) - means[None]) ** 2, axis=2)
    # A row that lies nearer another cluster's pivot than its own cluster's searches the wrong cell:
    # rare here (clusters ~100 apart, noise 0.5), so nearly every row finds its nearest mean.
    # float32 finds the nearest cluster but cannot order its means, 0.01 apart at |m| ~ 100.
    found = active[:, 0] if dtype == np.float64 else cluster[active[:, 0]]
    nearest = np.argmin(d2, axis=1) if dtype == np.float64 else cluster[np.argmin(d2, axis=1)]
    assert np.mean(found == nearest) >= 0.99
    assert all(len(set(row)) == 3 for row in active)


def test_fit_from_the_coarse_start(monkeypatch):
    monkeypatch.setattr(truncated, "_EXACT_NEIGHBOURS_BUDGET", 0)
    monkeypatch.setattr(truncated, "_EXACT_START_BUDGET", 0)
    _, _, centres = _clustered_means()
    rng = np.random.default_rng(2)
    X = centres[rng.integers(0, N_CLUSTERS, 2000)] + rng.normal(0, 1.0, (2000, D))
    fits = []
    for n_jobs in (1, 2):
        gmm = FastGMM(
            N_CLUSTERS, covariance_type="diag", n_active=3, random_state=0, max_iter=5, tol=0, n_jobs=n_jobs
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            gmm.fit(X)
        fits.append(gmm)
    np.testing.assert_array_equal(fits[0].means_, fits[1].means_)
    np.testing.assert_array_equal(fits[0].elbo_history_, fits[1].elbo_history_)
    assert fits[0].lower_bound_ <= fits[0].score(X) + 1e-9
