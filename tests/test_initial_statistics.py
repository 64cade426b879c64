"""Statistics of given responsibilities (the initial M-step's input) match the reference, whether
the responsibilities are dense soft assignments or sparse hard ones (k-means labels), and whether
the rows are an array or a selection of X's rows read in place; the k-means starts copy no X."""

import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp

import fastelbo._row_chunks as row_chunks_module
import reference as ref
from fastelbo.mixture._distinct_rows import RowSelection
from fastelbo.mixture._initialization import (
    RandomResponsibilities,
    column_mean_and_variance,
    initial_responsibilities,
)
from fastelbo.mixture._statistics import statistics_from_responsibilities


@pytest.mark.parametrize("covariance_type", ref.COVARIANCE_TYPES)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("hard", [False, True], ids=["soft", "hard"])
def test_statistics_from_responsibilities_match_reference(covariance_type, weighted, hard):
    rng = np.random.default_rng(0)
    X, _ = ref.make_blobs_data(700, 4, 5, random_state=1)
    n_components = 5
    if hard:
        labels = rng.integers(n_components - 1, size=len(X))  # the last component stays empty
        dense = np.eye(n_components)[labels]
        resp = sp.csr_matrix(dense)
    else:
        dense = rng.dirichlet(np.ones(n_components), size=len(X))
        resp = dense
    sample_weight = rng.uniform(0.5, 2.0, size=len(X)) if weighted else None
    shift = X.mean(axis=0)
    stats = statistics_from_responsibilities(X, resp, shift, covariance_type, sample_weight)
    expected = ref.sufficient_statistics(
        X, dense, np.tile(shift, (n_components, 1)), covariance_type, sample_weight
    )
    np.testing.assert_allclose(stats.nk, expected["nk"], rtol=1e-12)
    np.testing.assert_allclose(stats.sx, expected["sx"], rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(stats.sxx, expected["sxx"], rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("covariance_type", ref.COVARIANCE_TYPES)
def test_statistics_of_a_row_selection_equal_those_of_its_copy_bit_for_bit(covariance_type):
    X, _ = ref.make_blobs_data(900, 4, 3, random_state=2)
    positions = np.random.default_rng(2).permutation(len(X))[:700]
    labels = np.random.default_rng(3).integers(3, size=700)
    resp = sp.csr_matrix((np.ones(700), (np.arange(700), labels)), shape=(700, 3))
    weights = np.random.default_rng(4).integers(1, 5, size=700).astype(np.float64)
    shift = X.mean(axis=0)
    selected = statistics_from_responsibilities(
        RowSelection(X, positions), resp, shift, covariance_type, weights
    )
    copied = statistics_from_responsibilities(X[positions], resp, shift, covariance_type, weights)
    for field in ("nk", "sx", "sxx"):
        np.testing.assert_array_equal(getattr(selected, field), getattr(copied, field))


@pytest.mark.parametrize("init_params", ["kmeans", "k-means++"])
def test_the_kmeans_starts_never_copy_X(monkeypatch, init_params):
    # NumPy reports its allocations to tracemalloc: the start (column moments, canonical distinct
    # rows, seeding, Lloyd, initial statistics) may add O(N) and small chunks, never a copy of X.
    monkeypatch.setattr(row_chunks_module, "CHUNK_BYTES", 256 * 1024)
    X = np.random.default_rng(5).standard_normal((40_000, 64))  # 20 MB
    tracemalloc.start()
    try:
        mean, variance = column_mean_and_variance(X)
        rows, resp, row_weights = initial_responsibilities(
            X, 8, init_params, np.random.RandomState(0), 1, variance
        )
        statistics_from_responsibilities(rows, resp, mean, "diag", sample_weight=row_weights)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 0.25 * X.nbytes, f"the start allocated {peak / 2**20:.1f} MiB next to X's 20 MB"


@pytest.mark.parametrize("covariance_type", ref.COVARIANCE_TYPES)
@pytest.mark.parametrize("hard", [False, True], ids=["soft", "hard"])
def test_statistics_about_one_point_per_component_match_reference(covariance_type, hard):
    rng = np.random.default_rng(3)
    X, _ = ref.make_blobs_data(400, 3, 4, random_state=2)
    dense = np.eye(4)[rng.integers(4, size=len(X))] if hard else rng.dirichlet(np.ones(4), size=len(X))
    resp = sp.csr_matrix(dense) if hard else dense
    points = rng.normal(size=(4, 3)) * 5
    sample_weight = rng.uniform(0.5, 2.0, size=len(X))
    stats = statistics_from_responsibilities(X, resp, points, covariance_type, sample_weight)
    expected = ref.sufficient_statistics(X, dense, points, covariance_type, sample_weight)
    np.testing.assert_allclose(stats.nk, expected["nk"], rtol=1e-12)
    np.testing.assert_allclose(stats.sx, expected["sx"], rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(stats.sxx, expected["sxx"], rtol=1e-10, atol=1e-9)
    np.testing.assert_array_equal(stats.reference, points)


def test_random_responsibilities_restart_from_the_same_draws_without_advancing_the_state():
    random_state = np.random.RandomState(5)
    first = RandomResponsibilities(random_state, 10, 3)
    drawn = np.vstack([first[0:4], first[4:10]])
    after = random_state.get_state()[1].copy()
    again = first.restarted()
    np.testing.assert_array_equal(np.vstack([again[0:7], again[7:10]]), drawn)
    np.testing.assert_array_equal(random_state.get_state()[1], after)
    np.testing.assert_array_equal(
        drawn,
        np.random.RandomState(5).uniform(size=(10, 3))
        / np.random.RandomState(5).uniform(size=(10, 3)).sum(axis=1, keepdims=True),
    )
