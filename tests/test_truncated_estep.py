"""The truncated variational E-step kernel against the NumPy reference (reference_truncated.py)."""

import numpy as np
import pytest

from fastelbo import _core
from reference import make_blobs_data
from reference_truncated import truncated_e_step

K, C, G = 15, 3, 4


def _problem(covariance_type, dtype, seed=0, weighted=False, K=K):
    rng = np.random.default_rng(seed)
    X, _ = make_blobs_data(400, 3, K, random_state=seed, separation=3.0)
    X = X.astype(dtype)
    weights = rng.uniform(0.5, 1.5, K)
    weights /= weights.sum()
    means = X[rng.choice(len(X), K, replace=False)].astype(np.float64) + rng.normal(0, 0.3, (K, 3))
    if covariance_type == "full":
        covariances = []
        for _ in range(K):
            A = rng.normal(0, 0.4, (3, 3))
            covariances.append(A @ A.T + np.diag(rng.uniform(0.5, 1.5, 3)))
        variances = np.array(covariances)
        chol = np.ascontiguousarray([np.linalg.inv(np.linalg.cholesky(c)).T for c in covariances])
    elif covariance_type == "tied":
        A = rng.normal(0, 0.4, (3, 3))
        covariance = A @ A.T + np.diag(rng.uniform(0.5, 1.5, 3))
        variances = np.repeat(covariance[None], K, axis=0)  # the reference takes (K, D, D)
        # y = x U with U U^T the precision (U upper triangular), as the library stores it.
        chol = np.ascontiguousarray(np.linalg.inv(np.linalg.cholesky(covariance)).T)
    elif covariance_type == "diag":
        variances = rng.uniform(0.5, 2.0, (K, 3))
        chol = 1 / np.sqrt(variances)
    else:
        spherical = rng.uniform(0.5, 2.0, K)
        variances = np.repeat(spherical[:, None], 3, axis=1)
        chol = 1 / np.sqrt(spherical)
    active = np.array([rng.choice(K, C, replace=False) for _ in range(len(X))], dtype=np.int32)
    neighbours = np.array(
        [np.r_[c, rng.choice(np.delete(np.arange(K), c), G - 1, replace=False)] for c in range(K)],
        dtype=np.int32,
    )
    random_candidates = rng.integers(0, K, len(X), dtype=np.int32)
    w = rng.uniform(0, 2, len(X)).astype(dtype) if weighted else None
    return X, w, weights, means, variances, chol, active, neighbours, random_candidates


def _run(covariance_type, X, w, weights, means, chol, active, neighbours, random_candidates, n_threads=0):
    dtype = X.dtype
    return _core.truncated_mixture_pass(
        X,
        w,
        np.log(weights).astype(dtype),
        means.astype(dtype),
        np.asarray(chol, dtype=dtype),
        means.astype(dtype).astype(np.float64),
        covariance_type,
        active,
        neighbours,
        random_candidates,
        return_log_norm=True,
        return_responsibilities=True,
        n_threads=n_threads,
    )


# K = 4: ~100 rows per best component, statistics summed per item while its rows are in cache;
# K = 15: ~27 rows each, items evaluated as one GEMM over their candidate union, statistics summed
# per component afterwards; K = 150: ~3 rows each, whose unions are several times a row's own
# candidates: summed per pair.
@pytest.mark.parametrize("n_components", [4, K, 150])
@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize("weighted", [False, True])
def test_truncated_e_step_matches_numpy_reference(covariance_type, weighted, n_components):
    X, w, weights, means, variances, chol, active, neighbours, rand = _problem(
        covariance_type, np.float64, weighted=weighted, K=n_components
    )
    out = _run(covariance_type, X, w, weights, means, chol, active, neighbours, rand)
    ref = truncated_e_step(
        X, weights, means, variances, active, neighbours, rand, reference=means, sample_weight=w
    )
    np.testing.assert_array_equal(out["active"], ref["active"])
    np.testing.assert_array_equal(out["neighbours"], ref["neighbours"])
    for key in ("responsibilities", "log_norm", "nk", "sx"):
        np.testing.assert_allclose(out[key], ref[key], rtol=1e-9, atol=1e-9, err_msg=key)
    sxx = {
        "full": ref["sxx_full"],
        "tied": ref["sxx_full"].sum(axis=0),
        "diag": ref["sxx"],
        "spherical": ref["sxx"].sum(axis=1),
    }[covariance_type]
    np.testing.assert_allclose(out["sxx"], sxx, rtol=1e-9, atol=1e-9)
    for key in ("sum_weight", "sum_log_norm", "sum_entropy"):
        assert out[key] == pytest.approx(ref[key], rel=1e-10), key


@pytest.mark.parametrize("n_components", [K, 150])
@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag"])
def test_float32_matches_float64_reference_to_float32_accuracy(covariance_type, n_components):
    X, w, weights, means, variances, chol, active, neighbours, rand = _problem(
        covariance_type, np.float32, K=n_components
    )
    out = _run(covariance_type, X, w, weights, means, chol, active, neighbours, rand)
    ref = truncated_e_step(X, weights, means, variances, active, neighbours, rand, reference=means)
    assert np.mean(out["active"] == ref["active"]) > 0.99
    assert out["sum_log_norm"] == pytest.approx(ref["sum_log_norm"], rel=1e-5)


def test_kept_sets_never_lose_free_energy_and_q_is_normalised():
    X, w, weights, means, variances, chol, active, neighbours, rand = _problem("diag", np.float64, seed=3)
    first = _run("diag", X, w, weights, means, chol, active, neighbours, rand)
    second = _run("diag", X, w, weights, means, chol, first["active"], first["neighbours"], None)
    assert second["sum_log_norm"] >= first["sum_log_norm"]
    np.testing.assert_allclose(first["responsibilities"].sum(axis=1), 1.0, rtol=1e-12)
    assert np.all(first["neighbours"][:, 0] == np.arange(K))


@pytest.mark.parametrize("n_components", [4, K, 150])
@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag"])
def test_bitwise_identical_for_any_thread_count(covariance_type, n_components):
    X, w, weights, means, variances, chol, active, neighbours, rand = _problem(
        covariance_type, np.float32, weighted=True, K=n_components
    )
    X = np.repeat(X, 20, axis=0)  # many items, so that threads share the work
    active, rand = np.repeat(active, 20, axis=0), np.repeat(rand, 20)
    w = np.repeat(w, 20)
    a = _run(covariance_type, X, w, weights, means, chol, active, neighbours, rand, n_threads=1)
    b = _run(covariance_type, X, w, weights, means, chol, active, neighbours, rand, n_threads=2)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_bad_sets_raise_value_error():
    X, w, weights, means, variances, chol, active, neighbours, rand = _problem("diag", np.float64)
    duplicate = active.copy()
    duplicate[0, 1] = duplicate[0, 0]
    with pytest.raises(ValueError, match="active"):
        _run("diag", X, w, weights, means, chol, duplicate, neighbours, rand)
    outside = neighbours.copy()
    outside[2, 1] = K
    with pytest.raises(ValueError, match="neighbours"):
        _run("diag", X, w, weights, means, chol, active, outside, rand)
    with pytest.raises(ValueError, match="precisions_cholesky"):  # (K, D) where full needs (K, D, D)
        _run("full", X, w, weights, means, chol, active, neighbours, rand)
