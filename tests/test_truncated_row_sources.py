"""Truncated variational EM (FastGMM(n_active=C')) on row sources: arrays read in blocks, memmaps,
HDF5 datasets and dask arrays.

The references: the in-memory truncated fit of the same data (one block, the kernel's own
neighbour-list refresh), the one-call truncated E-step (statistics, sets and refreshed lists), and,
for Dask, the in-process pass over the same blocks (bit for bit: the merge tree depends only on
the chunking). The data are well-separated clusters, so that the round-off by which merged sums
differ from one-call sums cannot flip a near-tie of neighbour scores or log-joints, and the
trajectories are the same.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

import fastelbo.mixture._truncated as truncated_module
from fastelbo import FastGMM, RowSource, _core
from fastelbo.mixture._truncated import TruncatedSearch
from fastelbo.mixture._truncated_pass import NeighbourScores

h5py = pytest.importorskip("h5py")
da = pytest.importorskip("dask.array")

K, C_ACTIVE, G = 20, 3, 4
N = 2100
# block_rows giving 1, 2 and 7 blocks of N rows
BLOCKS = {1: N, 2: 1050, 7: 300}


def _clusters(seed=0):
    """N rows of K well-separated clusters of different widths in 5 dimensions, shuffled."""
    rng = np.random.RandomState(seed)
    centres = rng.randn(K, 5) * 12
    widths = rng.uniform(0.5, 1.5, K)
    labels = rng.randint(0, K, N)
    return centres[labels] + rng.randn(N, 5) * widths[labels, None]


@pytest.fixture(scope="module")
def X():
    return _clusters()


def _fit(data, covariance_type="diag", sample_weight=None, **params):
    params = {"random_state": 3, "max_iter": 8, "tol": 0.0, "n_jobs": 1, **params}
    gmm = FastGMM(K, covariance_type=covariance_type, n_active=C_ACTIVE, n_neighbors=G, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        labels = gmm.fit_predict(data, sample_weight=sample_weight)
    return gmm, labels


def _assert_same_fit(fit, reference, rtol):
    (a, labels_a), (b, labels_b) = fit, reference
    if rtol == 0:
        for name in ("weights_", "means_", "covariances_", "elbo_history_", "entropy_sum_history_"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    else:
        for name in ("weights_", "means_", "covariances_", "elbo_history_", "entropy_sum_history_"):
            np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=rtol, atol=0, err_msg=name)
    np.testing.assert_array_equal(np.asarray(labels_a), labels_b)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize("n_blocks", [1, 2, 7])
def test_a_fit_over_blocks_equals_the_in_memory_fit(X, covariance_type, n_blocks):
    weights = np.random.RandomState(1).uniform(0.2, 3.0, N)
    reference = _fit(X, covariance_type, weights)
    fit = _fit(RowSource(X, block_rows=BLOCKS[n_blocks]), covariance_type, weights)
    # One block: the same kernel calls on the same arrays.
    _assert_same_fit(fit, reference, rtol=0 if n_blocks == 1 else 1e-10)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_a_fit_from_far_off_means_over_blocks_and_on_dask_equals_the_in_memory_fit(
    X, covariance_type, monkeypatch
):
    # Means started 1e7 away: the first step's moments are taken again about the new means, by a
    # pass over the same blocks that keeps every row's set.
    retaken = []
    original = TruncatedSearch.moments_about

    def counted(self, *args):
        retaken.append(len(self.spans))
        return original(self, *args)

    monkeypatch.setattr(TruncatedSearch, "moments_about", counted)
    weights = np.random.RandomState(1).uniform(0.2, 3.0, N)
    start = {"means_init": X[:K] + 1e7}
    reference = _fit(X, covariance_type, weights, **start)
    blocks = _fit(RowSource(X, block_rows=BLOCKS[7]), covariance_type, weights, **start)
    on_dask = _fit(da.from_array(X, chunks=(300, X.shape[1])), covariance_type, weights, **start)
    assert retaken == [1, 7, 7]  # once per fit, in the first step only
    _assert_same_fit(blocks, reference, rtol=1e-10)
    _assert_same_fit((on_dask[0], on_dask[1].compute()), blocks, rtol=0)


def test_memmap_and_hdf5_fits_equal_the_in_memory_fit(X, tmp_path):
    reference = _fit(X)
    np.save(tmp_path / "x.npy", X)
    _assert_same_fit(_fit(np.load(tmp_path / "x.npy", mmap_mode="r")), reference, rtol=1e-10)
    with h5py.File(tmp_path / "x.h5", "w") as file:
        file.create_dataset("x", data=X, chunks=(257, X.shape[1]))
    with h5py.File(tmp_path / "x.h5", "r") as file:
        _assert_same_fit(_fit(file["x"]), reference, rtol=1e-10)


def test_a_dask_fit_equals_the_fit_over_the_same_blocks_bit_for_bit(X):
    blocks = _fit(RowSource(X, block_rows=300))
    on_dask = _fit(da.from_array(X, chunks=(300, X.shape[1])))
    assert isinstance(on_dask[1], da.Array)  # the labels stay lazy
    _assert_same_fit((on_dask[0], on_dask[1].compute()), blocks, rtol=0)


def _started_search(X, covariance_type):
    """A truncated search started on X at the parameters of a short in-memory fit."""
    gmm, _ = _fit(X, covariance_type, max_iter=2)
    search = TruncatedSearch(N, C_ACTIVE, G, seed=5)
    search.start(X, None, gmm._truncated_parameters(), 1)
    return gmm, search


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_an_e_step_over_blocks_gives_the_one_call_statistics_sets_and_lists(X, covariance_type):
    gmm, search = _started_search(X, covariance_type)
    weights = np.random.RandomState(2).uniform(0.2, 3.0, N)
    one_call = copy.deepcopy(search)
    expected = one_call.e_step(X, weights, gmm._truncated_parameters(), 1)
    for n_blocks in (2, 7):
        source = RowSource(X, block_rows=BLOCKS[n_blocks])
        blocked = copy.deepcopy(search)
        blocked.states = [search.active[start:stop] for start, stop in source.spans()]
        blocked.spans = source.spans()
        stats = blocked.e_step(source, weights, gmm._truncated_parameters(), 1)
        for name in ("nk", "sx", "sxx", "sum_weight", "sum_log_norm", "sum_entropy"):
            np.testing.assert_allclose(
                getattr(stats, name), getattr(expected, name), rtol=1e-12, atol=0, err_msg=name
            )
        np.testing.assert_array_equal(blocked.active, one_call.active)
        # The lists refreshed from the blocks' merged scores: those the kernel refreshed in one call.
        np.testing.assert_array_equal(blocked.neighbours, one_call.neighbours)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_refreshing_from_one_block_s_scores_is_the_kernel_s_refresh_bit_for_bit(covariance_type):
    """Random sets and lists (many candidates per group, ties impossible to rule out only by
    round-off): the Python rule on the kernel's scores gives the kernel's own lists exactly."""
    rng = np.random.RandomState(4)
    n, k, d, c, g = 3000, 40, 6, 3, 6
    X = rng.randn(n, d) * 3
    means = rng.randn(k, d) * 3
    if covariance_type == "full":
        chol = np.repeat(np.eye(d)[None], k, axis=0) * rng.uniform(0.5, 1.5, (k, 1, 1))
    elif covariance_type == "tied":
        chol = np.eye(d) * 0.8
    elif covariance_type == "diag":
        chol = rng.uniform(0.5, 1.5, (k, d))
    else:
        chol = rng.uniform(0.5, 1.5, k)
    active = np.array([rng.choice(k, c, replace=False) for _ in range(n)], dtype=np.int32)
    neighbours = np.array(
        [np.r_[b, rng.choice(np.delete(np.arange(k), b), g - 1, replace=False)] for b in range(k)],
        dtype=np.int32,
    )
    random_candidates = rng.randint(0, k, n).astype(np.int32)
    arguments = (X, None, np.full(k, -np.log(k)), means, chol, None, covariance_type, active, neighbours)
    refreshed = _core.truncated_mixture_pass(*arguments, random_candidates, n_threads=1)
    scored = _core.truncated_mixture_pass(
        *arguments, random_candidates, return_neighbour_scores=True, n_threads=1
    )
    np.testing.assert_array_equal(scored["active"], refreshed["active"])
    scores = NeighbourScores.from_kernel(scored)
    occupied = np.bincount(active[:, 0], minlength=k) > 0
    np.testing.assert_array_equal(scores.refresh(neighbours, occupied), refreshed["neighbours"])


def test_merged_scores_add_per_group_and_candidate_and_refresh_with_top_up():
    first = NeighbourScores(
        np.array([0, 0, 2], np.int32), np.array([1, 3, 0], np.int32), np.array([-4.0, -2.0, -1.0]), np.ones(3)
    )
    second = NeighbourScores(
        np.array([0, 2], np.int32), np.array([1, 1], np.int32), np.array([-1.0, -9.0]), np.array([1.0, 3.0])
    )
    merged = first.merge(second)
    np.testing.assert_array_equal(merged.group, [0, 0, 2, 2])
    np.testing.assert_array_equal(merged.component, [1, 3, 0, 1])
    np.testing.assert_array_equal(merged.sum, [-5.0, -2.0, -1.0, -9.0])
    np.testing.assert_array_equal(merged.count, [2.0, 1.0, 1.0, 3.0])
    old = np.array([[0, 2, 3], [1, 0, 2], [2, 3, 1], [3, 1, 0]], dtype=np.int32)
    occupied = np.array([True, False, True, True])
    # Group 0: averages 1 -> -2.5, 3 -> -2 (3 first); group 1: no rows, kept; group 2: averages
    # 0 -> -1, 1 -> -3; group 3: rows but no scores, so 3 and its old list.
    np.testing.assert_array_equal(merged.refresh(old, occupied), [[0, 3, 1], [1, 0, 2], [2, 0, 1], [3, 1, 0]])
    # Equal averages: the smaller index first; too few candidates: topped up from the old list.
    tied = NeighbourScores(
        np.array([0, 0], np.int32), np.array([3, 2], np.int32), np.array([-1.0, -1.0]), np.ones(2)
    )
    np.testing.assert_array_equal(tied.refresh(old, occupied)[0], [0, 2, 3])
    single = NeighbourScores(np.array([0], np.int32), np.array([3], np.int32), np.array([-1.0]), np.ones(1))
    np.testing.assert_array_equal(single.refresh(old, occupied)[0], [0, 3, 2])


def test_empty_scores_merge_to_the_other_blocks_scores():
    # Rows that evaluated no candidate besides their set (n_active=1 re-taking moments: each list is
    # the component alone) give blocks no scores at all.
    empty = NeighbourScores(
        np.array([], np.int32), np.array([], np.int32), np.array([], float), np.array([], float)
    )
    some = NeighbourScores(np.array([1], np.int32), np.array([0], np.int32), np.array([-2.0]), np.ones(1))
    assert len(empty.merge(empty).group) == 0
    for merged in (empty.merge(some), some.merge(empty)):
        np.testing.assert_array_equal(merged.group, [1])
        np.testing.assert_array_equal(merged.component, [0])
        np.testing.assert_array_equal(merged.sum, [-2.0])
        np.testing.assert_array_equal(merged.count, [1.0])


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_one_active_component_from_far_off_means_over_blocks_equals_the_in_memory_fit(covariance_type):
    rng = np.random.RandomState(0)
    three = np.vstack([c + rng.randn(100, 2) for c in ([0, 0], [10, 0], [0, 10])])
    params = dict(
        covariance_type=covariance_type,
        n_active=1,
        means_init=np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]]) + 1e6,
        random_state=0,
    )
    in_memory = FastGMM(3, **params).fit(three)
    blocks = FastGMM(3, **params).fit(RowSource(three, block_rows=97))
    assert blocks.n_iter_ == in_memory.n_iter_
    for name in ("weights_", "means_", "covariances_", "elbo_history_"):
        np.testing.assert_allclose(getattr(blocks, name), getattr(in_memory, name), rtol=1e-10, err_msg=name)


@pytest.mark.parametrize("start", ["exact", "coarse"])
def test_a_fit_on_a_local_cluster_equals_the_in_process_fit_bit_for_bit(X, dask_client, monkeypatch, start):
    if start == "coarse":  # the coarse cells travel to the workers in the first pass's snapshot
        monkeypatch.setattr(truncated_module, "_EXACT_START_BUDGET", 0)
        monkeypatch.setattr(truncated_module, "_EXACT_NEIGHBOURS_BUDGET", 0)
    local = _fit(RowSource(X, block_rows=700))
    with dask_client.as_current():  # the session's two-process cluster (tests/conftest.py)
        on_cluster = _fit(da.from_array(X, chunks=(700, X.shape[1])))
        on_cluster = (on_cluster[0], on_cluster[1].compute())
    _assert_same_fit(on_cluster, local, rtol=0)


def test_the_coarse_start_over_blocks_equals_the_in_memory_one(X, monkeypatch):
    """Where neither the exact neighbour lists nor the exact labelling pass is affordable, the
    first sets are every row's nearest means in its coarse cell, found block by block."""
    monkeypatch.setattr(truncated_module, "_EXACT_START_BUDGET", 0)
    monkeypatch.setattr(truncated_module, "_EXACT_NEIGHBOURS_BUDGET", 0)
    reference = _fit(X)
    blocks = _fit(RowSource(X, block_rows=300))
    _assert_same_fit(blocks, reference, rtol=1e-10)
    on_dask = _fit(da.from_array(X, chunks=(300, X.shape[1])))
    _assert_same_fit((on_dask[0], on_dask[1].compute()), blocks, rtol=0)
