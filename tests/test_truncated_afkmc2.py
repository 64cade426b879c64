"""AFK-MC² seeding (init_params='afkmc2') against the NumPy reference in reference_truncated.py."""

import numpy as np
import pytest

from fastelbo import FastGMM, _core
from reference import greedy_kmeans_plusplus, make_blobs_data
from reference_truncated import afkmc2, afkmc2_proposal, kmeans_potential


@pytest.fixture(scope="module")
def blobs():
    X, _ = make_blobs_data(600, 3, 12, random_state=0, separation=6.0)
    return X


@pytest.mark.parametrize("weighted", [False, True])
def test_proposal_matches_numpy_reference(blobs, weighted):
    w = np.random.default_rng(1).uniform(0.0, 2.0, blobs.shape[0]) if weighted else None
    q = _core._afkmc2_proposal(blobs, w, 17)
    expected = afkmc2_proposal(blobs, 17, w)
    np.testing.assert_allclose(q, expected, rtol=1e-12, atol=0)
    assert q.sum() == pytest.approx(1.0, rel=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weighted", [False, True])
def test_seeds_match_numpy_reference_chain(blobs, dtype, weighted):
    X = blobs.astype(dtype)
    w = np.random.default_rng(2).uniform(0.0, 2.0, X.shape[0]).astype(dtype) if weighted else None
    seeds = _core.afkmc2(X, w, 12, 20, 12345)
    np.testing.assert_array_equal(seeds, afkmc2(X, 12, 20, 12345, w))


def test_seeds_are_distinct_data_rows_and_zero_weight_rows_are_never_chosen(blobs):
    w = np.ones(blobs.shape[0])
    w[::2] = 0.0
    seeds = _core.afkmc2(blobs, w, 12, 50, 7)
    assert seeds.dtype == np.int64 and len(set(seeds.tolist())) == 12
    assert np.all((seeds >= 0) & (seeds < blobs.shape[0]))
    assert np.all(w[seeds] > 0)


def test_deterministic_and_thread_count_independent(blobs):
    a = _core.afkmc2(blobs, None, 12, 100, 3, n_threads=1)
    b = _core.afkmc2(blobs, None, 12, 100, 3, n_threads=2)
    c = _core.afkmc2(blobs, None, 12, 100, 3, n_threads=2)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(b, c)
    assert not np.array_equal(a, _core.afkmc2(blobs, None, 12, 100, 4))


def test_potential_close_to_kmeans_plusplus_on_clustered_data():
    # AFK-MC² approximates plain k-means++ (one trial per step; Bachem et al. 2016), so its mean
    # potential over seeds is compared with that, not with greedy k-means++.
    X, _ = make_blobs_data(2000, 5, 30, random_state=3, separation=8.0)
    afk = [kmeans_potential(X, X[_core.afkmc2(X, None, 30, 200, s)]) for s in range(8)]
    kpp = [kmeans_potential(X, X[greedy_kmeans_plusplus(X, 30, 1, s)]) for s in range(8)]
    assert np.mean(afk) <= 1.25 * np.mean(kpp)


def test_bad_arguments_raise_value_error(blobs):
    with pytest.raises(ValueError, match="chain_length"):
        _core.afkmc2(blobs, None, 3, 0, 1)
    with pytest.raises(ValueError, match="n_clusters"):
        _core.afkmc2(blobs, None, blobs.shape[0] + 1, 10, 1)
    with pytest.raises(ValueError, match="afkmc2_chain_length"):
        FastGMM(2, init_params="afkmc2", afkmc2_chain_length=0).fit(blobs)


def test_fastgmm_afkmc2_initialisation_starts_at_the_seed_rows(blobs):
    gmm = FastGMM(12, covariance_type="diag", init_params="afkmc2", max_iter=0, random_state=5)
    gmm.fit(blobs)
    seed = np.random.RandomState(5).randint(0, np.iinfo(np.int32).max)
    rows = _core.afkmc2(blobs, None, 12, 200, seed)
    np.testing.assert_allclose(gmm.means_, blobs[rows], rtol=1e-12)
    fitted = FastGMM(12, covariance_type="diag", init_params="afkmc2", random_state=5).fit(blobs)
    assert fitted.converged_
