"""The passes' column split of the natural parameters (eta larger than the caches is read column by
column, a column with few entries off the floor as its deviations from the floor's value): the exact
and the truncated pass with the split forced (``cached_natural_bytes=0``) against the independent
NumPy reference, bitwise for any thread count; and the default split at the size that takes it."""

import numpy as np
import pytest
import scipy.sparse as sp

from fastelbo import _core
from fastelbo.mixture._exponential_family import FAMILIES, csr_rows
from reference_exponential_family import e_step, log_base, log_densities, truncated_e_step

FLOOR = 1e-10


def floored_means(family, k, d, seed):
    """(K, D) means mostly at the floor, as a fit on sparse data leaves them: columns with no, one,
    exactly K / 4 and K / 4 + 1 entries off the floor (the split's boundary), and dense columns."""
    rng = np.random.default_rng(seed)
    means = np.full((k, d), FLOOR)
    high = 0.9 if family == "bernoulli" else 5.0
    for j in range(d):
        off_floor = [0, 1, k // 4, k // 4 + 1, k][j % 5]
        rows = rng.choice(k, size=off_floor, replace=False)
        means[rows, j] = rng.uniform(0.05, high, size=off_floor)
    return means


def sparse_rows(family, n, d, seed, density=0.2):
    rng = np.random.default_rng(seed)
    X = sp.random(n, d, density=density, random_state=rng, format="csr")
    X.data = np.ones_like(X.data) if family == "bernoulli" else np.ceil(4 * X.data)
    return X


def parameters(family, weights, means):
    model = FAMILIES[family]
    return (
        np.log(weights),
        np.ascontiguousarray(model.natural(means)),
        -np.sum(model.log_partition(means), axis=1),
    )


def natural_exact_pass(X, family, log_weights, natural, log_partition, w, n_threads=0, **options):
    """The exact pass of natural parameters ``natural`` (K, D), with log_norm and responsibilities."""
    indptr, indices, data, shape = csr_rows(X)
    return _core.exponential_family_mixture_pass(
        indptr,
        indices,
        data,
        shape[1],
        w,
        log_weights,
        np.ascontiguousarray(natural.T),
        log_partition,
        family,
        return_log_norm=True,
        return_responsibilities=True,
        n_threads=n_threads,
        **options,
    )


def exact_pass(X, family, weights, means, w, n_threads=0, cached_natural_bytes=0.0, **options):
    return natural_exact_pass(
        X,
        family,
        *parameters(family, weights, means),
        w,
        n_threads=n_threads,
        cached_natural_bytes=cached_natural_bytes,
        **options,
    )


@pytest.mark.parametrize("family", ["bernoulli", "poisson"])
@pytest.mark.parametrize("k", [8, 13])
def test_split_exact_pass_matches_the_reference(family, k):
    X = sparse_rows(family, 300, 60, seed=k)
    weights = np.random.default_rng(k).dirichlet(np.ones(k))
    means = floored_means(family, k, 60, seed=k)
    w = np.random.default_rng(1).uniform(0.2, 2.0, size=300)
    out = exact_pass(X, family, weights, means, w)
    expected = e_step(X.toarray(), weights, means, family, w)
    for name in ("sum_weight", "sum_log_norm", "sum_entropy", "nk", "log_norm", "responsibilities"):
        np.testing.assert_allclose(out[name], expected[name], rtol=1e-10, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(out["sx"], expected["sx"], rtol=1e-10, atol=1e-12)
    assert out["sum_log_base"] == pytest.approx(expected["sum_log_base"], rel=1e-12, abs=1e-12)
    # The split changes the summation (eta_cd = floor + deviation), so its round-off differs from
    # the whole-eta pass: this shows the forced split was taken.
    whole = exact_pass(X, family, weights, means, w, cached_natural_bytes=np.inf)
    assert not np.array_equal(out["log_norm"], whole["log_norm"])
    np.testing.assert_allclose(out["log_norm"], whole["log_norm"], rtol=1e-13)


@pytest.mark.parametrize("family", ["bernoulli", "poisson"])
def test_split_exact_pass_is_bitwise_for_any_thread_count(family):
    X = sparse_rows(family, 4000, 80, seed=3)
    weights = np.full(16, 1 / 16)
    means = floored_means(family, 16, 80, seed=3)
    runs = [exact_pass(X, family, weights, means, None, n_threads=t) for t in (1, 2, 3)]
    for run in runs[1:]:
        for name in ("sum_log_norm", "sum_entropy", "nk", "sx", "log_norm", "responsibilities"):
            np.testing.assert_array_equal(run[name], runs[0][name], err_msg=name)


@pytest.mark.parametrize("family", ["bernoulli", "poisson"])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_split_truncated_pass_matches_the_reference(family, n_threads):
    rng = np.random.default_rng(11)
    K, C, G = 12, 3, 3
    X = sparse_rows(family, 250, 60, seed=11)
    weights = rng.dirichlet(np.ones(K))
    means = floored_means(family, K, 60, seed=11)
    active = np.stack([rng.choice(K, size=C, replace=False) for _ in range(X.shape[0])]).astype(np.int32)
    neighbours = np.stack(
        [np.r_[c, rng.choice(np.delete(np.arange(K), c), size=G - 1, replace=False)] for c in range(K)]
    ).astype(np.int32)
    random_candidates = rng.integers(0, K, size=X.shape[0]).astype(np.int32)
    log_weights, natural, log_partition = parameters(family, weights, means)
    indptr, indices, data, shape = csr_rows(X)
    outs = [
        _core.exponential_family_truncated_pass(
            indptr,
            indices,
            data,
            shape[1],
            None,
            log_weights,
            natural,
            log_partition,
            family,
            active,
            neighbours,
            random_candidates,
            return_log_norm=True,
            n_threads=n_threads,
            cached_natural_bytes=limit,
        )
        for limit in (0.0, np.inf)
    ]
    out, whole = outs
    dense = X.toarray()
    joint = log_densities(dense, means, family) + np.log(weights)
    for n in range(X.shape[0]):
        candidates = sorted(set(active[n]) | set(neighbours[active[n]].ravel()) | {random_candidates[n]})
        ranked = sorted(candidates, key=lambda c: (-joint[n, c], c))
        np.testing.assert_array_equal(out["active"][n], ranked[:C])
    q, F = truncated_e_step(dense, weights, means, family, out["active"])
    assert out["sum_log_norm"] / out["sum_weight"] == pytest.approx(F, rel=1e-12)
    np.testing.assert_allclose(out["nk"], q.sum(axis=0), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(out["sx"], q.T @ dense, rtol=1e-11, atol=1e-12)
    assert out["sum_log_base"] == pytest.approx(log_base(dense, family).sum(), rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(out["score_sums"], whole["score_sums"], rtol=1e-13)
    assert not np.array_equal(out["score_sums"], whole["score_sums"])  # the split was taken


def test_the_default_splits_only_parameters_larger_than_the_caches():
    limit = _core.exponential_family_cached_natural_bytes
    K = 64
    d = int(limit // (8 * K)) + 1  # eta one column over the limit
    X = sparse_rows("poisson", 40, d, seed=5, density=0.002)
    weights = np.full(K, 1 / K)
    means = floored_means("poisson", K, d, seed=5)
    default = exact_pass(X, "poisson", weights, means, None, cached_natural_bytes=limit)
    forced = exact_pass(X, "poisson", weights, means, None, cached_natural_bytes=0.0)
    whole = exact_pass(X, "poisson", weights, means, None, cached_natural_bytes=np.inf)
    np.testing.assert_array_equal(default["log_norm"], forced["log_norm"])
    assert not np.array_equal(default["log_norm"], whole["log_norm"])
    np.testing.assert_allclose(default["log_norm"], whole["log_norm"], rtol=1e-13)
    # One column fewer and eta fits: the pass reads it whole.
    narrow = sp.csr_array(X[:, : d - 1])
    small = exact_pass(narrow, "poisson", weights, means[:, : d - 1], None, cached_natural_bytes=limit)
    unsplit = exact_pass(narrow, "poisson", weights, means[:, : d - 1], None, cached_natural_bytes=np.inf)
    np.testing.assert_array_equal(small["log_norm"], unsplit["log_norm"])
