"""The C++ kernels of fastelbo against the NumPy oracle in ``tests/reference.py``.

``_core.gaussian_mixture_pass`` is checked for every covariance type in float64 (rtol 1e-10) and
float32, with and without sample weights, over datasets smaller than one row block and spanning
several blocks, for the D=1 and K=1 corners and for an empty component. ``_core.lloyd_kmeans`` and
``_core.kmeans_plusplus`` are checked against the reference Lloyd iteration and for the
properties of a seeding. Statistics of row chunks must merge into the statistics of the whole.

Tolerances
----------
float64: rtol 1e-10 against the oracle (observed errors are ~1e-14). Quantities that are sums of
terms of both signs (``sx``, off-diagonal ``sxx``) are also allowed an absolute error of 1e-10 times
the largest magnitude of the same array, since a relative bound is meaningless for an entry that
cancels to ~0.

float32: every quantity is compared with the oracle run in float64 on the float32-rounded inputs, so
only the kernel's own arithmetic is measured. The kernel sums up to 1024 rows per block in float32
before merging blocks in float64, so the worst-case relative error of a block sum is about
1024 * eps32 = 6e-5; the tests allow 1e-4 relative to the scale of the quantity (the largest
magnitude of the array, or the weighted sum of magnitudes for the scalar sums). Observed errors are
~1e-6.
"""

import numpy as np
import pytest
from scipy.special import softmax

import reference as ref
from fastelbo import _core
from fastelbo.mixture._statistics import MixtureStatistics

COV_TYPES = list(ref.COVARIANCE_TYPES)
RTOL64 = 1e-10
RTOL32 = 1e-4

#: One row block holds at most 1024 rows, so 5000 rows span several blocks and 100 fit in one.
N_MULTI_BLOCK = 5000
N_SINGLE_BLOCK = 100


# ----------------------------------------------------------------------------------- helpers


def _problem(n, d, k, covariance_type, seed, empty_component=None):
    """Blob data and a broad, valid parameter set (soft posteriors, so entropies are non-trivial).

    Returns X, weights, means, covariances, precisions_cholesky, reference, sample_weight.
    """
    X, _ = ref.make_blobs_data(n, d, max(k, 1), random_state=seed)
    rng = np.random.default_rng(seed + 100)
    centers = X[rng.choice(n, k, replace=False)]
    resp = softmax(-ref.squared_distances(X, centers) / 8.0, axis=1)
    weights, means, covariances = ref.m_step(X, resp, 1e-3, covariance_type)
    if empty_component is not None:
        weights = weights.copy()
        weights[empty_component] = 0.0
        weights /= weights.sum()
    precisions_cholesky = ref.precisions_cholesky_from_covariances(covariances, covariance_type)
    # The points the statistics are taken about: near, but not at, the means.
    reference = means + 0.3
    sample_weight = rng.uniform(0.2, 3.0, size=n)
    sample_weight[::7] = 0.0  # zero weights must drop out of every sum
    return X, weights, means, covariances, precisions_cholesky, reference, sample_weight


def _log_weights(weights):
    with np.errstate(divide="ignore"):
        return np.log(weights)


def _kernel(
    X,
    sample_weight,
    weights,
    means,
    precisions_cholesky,
    reference,
    covariance_type,
    dtype,
    n_threads=0,
    compute_moments=True,
    home=None,
):
    """Run the kernel in ``dtype`` with every optional output requested."""

    def cast(a):
        return None if a is None else np.ascontiguousarray(a, dtype=dtype)

    return _core.gaussian_mixture_pass(
        cast(X),
        cast(sample_weight),
        cast(_log_weights(weights)),
        cast(means),
        cast(precisions_cholesky),
        np.ascontiguousarray(reference, dtype=np.float64) if compute_moments else None,
        home,
        covariance_type,
        compute_moments=compute_moments,
        return_log_norm=True,
        return_responsibilities=True,
        return_labels=True,
        n_threads=n_threads,
    )


def _oracle(X, sample_weight, weights, means, precisions_cholesky, reference, covariance_type, dtype):
    """The reference E-step and statistics, computed in float64 from the inputs rounded to dtype."""

    def rounded(a):
        return None if a is None else np.asarray(a, dtype=dtype).astype(np.float64)

    X, sample_weight, means, precisions_cholesky = map(
        rounded, (X, sample_weight, means, precisions_cholesky)
    )
    weights = np.exp(rounded(_log_weights(weights)))  # exactly 0 for an empty component
    covariances = ref.covariances_from_precisions_cholesky(precisions_cholesky, covariance_type)
    es = ref.e_step(X, weights, means, covariances, covariance_type, sample_weight=sample_weight)
    stats = ref.sufficient_statistics(X, es["resp"], reference, covariance_type, sample_weight=sample_weight)
    log_joint = ref.log_joint(X, weights, means, covariances, covariance_type)
    return es, stats, log_joint


def _assert_scaled(actual, expected, rtol, name):
    """|actual - expected| <= rtol * |expected| + rtol * max|expected| (relative to the array's scale)."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, name
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale, err_msg=name)


def _check_against_oracle(out, es, stats, log_joint, sample_weight, dtype, compute_moments=True):
    rtol = RTOL64 if dtype == np.float64 else RTOL32
    w = np.ones(es["log_norm"].shape[0]) if sample_weight is None else sample_weight
    w = np.asarray(w, dtype=dtype).astype(np.float64)

    # Per-row outputs, in the working precision.
    for key in ("log_norm", "responsibilities"):
        assert out[key].dtype == dtype, key
    assert out["labels"].dtype == np.int64
    if dtype == np.float64:
        np.testing.assert_allclose(out["log_norm"], es["log_norm"], rtol=rtol)
        # Responsibilities are probabilities: an absolute floor of 1e-15 only matters for
        # values that are themselves round-off.
        np.testing.assert_allclose(out["responsibilities"], es["resp"], rtol=rtol, atol=1e-15)
        np.testing.assert_array_equal(out["labels"], np.argmax(es["resp"], axis=1))
    else:
        _assert_scaled(out["log_norm"], es["log_norm"], rtol, "log_norm")
        np.testing.assert_allclose(out["responsibilities"], es["resp"], atol=rtol)
        # Labels must be the argmax wherever the reference's top two log-joints are not a
        # float32 near-tie.
        top2 = np.sort(log_joint, axis=1)[:, -2:] if log_joint.shape[1] > 1 else None
        clear = (
            np.ones(log_joint.shape[0], dtype=bool)
            if top2 is None
            else (top2[:, 1] - top2[:, 0]) > 1e-3 * np.maximum(1.0, np.abs(top2[:, 1]))
        )
        assert clear.mean() > 0.9
        np.testing.assert_array_equal(out["labels"][clear], np.argmax(es["resp"], axis=1)[clear])

    # Weighted sums, always float64.
    assert isinstance(out["sum_weight"], float)
    np.testing.assert_allclose(out["sum_weight"], es["sum_weight"], rtol=1e-13)
    np.testing.assert_allclose(out["sum_weight"], w.sum(), rtol=1e-13)
    abs_log_norm = float(np.sum(w * np.abs(es["log_norm"])))
    np.testing.assert_allclose(out["sum_log_norm"], es["sum_log_norm"], rtol=0, atol=rtol * abs_log_norm)
    K = es["resp"].shape[1]
    entropy_scale = es["sum_weight"] * max(np.log(K), 1.0)
    np.testing.assert_allclose(out["sum_entropy"], es["sum_entropy"], rtol=rtol, atol=rtol * entropy_scale)
    assert out["nk"].dtype == np.float64
    _assert_scaled(out["nk"], stats["nk"], rtol, "nk")
    np.testing.assert_allclose(out["nk"].sum(), w.sum(), rtol=max(rtol, 1e-13))
    if compute_moments:
        for key in ("sx", "sxx"):
            assert out[key].dtype == np.float64, key
            _assert_scaled(out[key], stats[key], rtol, key)
    else:
        assert "sx" not in out and "sxx" not in out


def _run_case(n, d, k, covariance_type, dtype, weighted, seed=0):
    X, weights, means, _, pc, reference, sw = _problem(n, d, k, covariance_type, seed)
    sw = sw if weighted else None
    out = _kernel(X, sw, weights, means, pc, reference, covariance_type, dtype)
    es, stats, lj = _oracle(X, sw, weights, means, pc, reference, covariance_type, dtype)
    _check_against_oracle(out, es, stats, lj, sw, dtype)
    return out, es


# ------------------------------------------------------------------ gaussian_mixture_pass


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("n", [N_SINGLE_BLOCK, N_MULTI_BLOCK], ids=["one_block", "many_blocks"])
@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_float64_pass_matches_reference_e_step_and_statistics(covariance_type, n, weighted):
    _run_case(n, 3, 3, covariance_type, np.float64, weighted)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("n", [N_SINGLE_BLOCK, N_MULTI_BLOCK], ids=["one_block", "many_blocks"])
@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_float32_pass_matches_reference_within_float32_tolerance(covariance_type, n, weighted):
    _run_case(n, 3, 3, covariance_type, np.float32, weighted)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_single_feature_pass_matches_reference(covariance_type, dtype):
    _run_case(1500, 1, 3, covariance_type, dtype, weighted=True, seed=3)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_single_component_pass_has_unit_responsibilities_and_zero_entropy(covariance_type, dtype):
    out, es = _run_case(1500, 3, 1, covariance_type, dtype, weighted=True, seed=4)
    np.testing.assert_array_equal(out["responsibilities"], 1.0)
    np.testing.assert_array_equal(out["labels"], 0)
    assert out["sum_entropy"] == 0.0
    # nk is summed in the working precision within a block; sum_weight always in float64.
    rtol = 1e-12 if dtype == np.float64 else RTOL32
    np.testing.assert_allclose(out["nk"], [es["sum_weight"]], rtol=rtol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("covariance_type", COV_TYPES)
@pytest.mark.parametrize("n_components", [3, 16])
def test_empty_component_gets_zero_responsibility_and_no_nan(n_components, covariance_type, weighted, dtype):
    # K = 16 runs the vectorised exp over whole SIMD packets, whose argument clamp would leave an
    # empty component a tiny non-zero responsibility (and inflate the entropy) if not set to 0.
    empty = n_components - 2
    X, weights, means, _, pc, reference, sw = _problem(
        N_MULTI_BLOCK, 3, n_components, covariance_type, seed=5, empty_component=empty
    )
    assert weights[empty] == 0.0 and np.isneginf(_log_weights(weights)[empty])
    sw = sw if weighted else None
    out = _kernel(X, sw, weights, means, pc, reference, covariance_type, dtype)
    for key, value in out.items():
        assert np.all(np.isfinite(value)), f"{key} is not finite"
    assert np.all(out["responsibilities"][:, empty] == 0.0)
    assert np.all(out["labels"] != empty)
    assert out["nk"][empty] == 0.0
    assert np.all(out["sx"][empty] == 0.0)
    if covariance_type != "tied":
        assert np.all(out["sxx"][empty] == 0.0)
    es, stats, lj = _oracle(X, sw, weights, means, pc, reference, covariance_type, dtype)
    _check_against_oracle(out, es, stats, lj, sw, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("homes", ["argmax", "random"])
@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_pass_with_home_labels_matches_reference_and_is_thread_invariant(covariance_type, homes, dtype):
    # Home labels only choose which rows share an expansion point: any labels, good (each row's most
    # probable component) or arbitrary, give the oracle's results, bitwise the same for any thread
    # count.
    X, weights, means, _, pc, reference, sw = _problem(N_MULTI_BLOCK, 4, 5, covariance_type, seed=12)
    es, stats, lj = _oracle(X, sw, weights, means, pc, reference, covariance_type, dtype)
    if homes == "argmax":
        home = np.argmax(lj, axis=1).astype(np.int64)
    else:
        home = np.random.default_rng(13).integers(0, 5, size=X.shape[0]).astype(np.int64)
    one = _kernel(X, sw, weights, means, pc, reference, covariance_type, dtype, n_threads=1, home=home)
    _check_against_oracle(one, es, stats, lj, sw, dtype)
    for n_threads in (2, 3):
        other = _kernel(
            X, sw, weights, means, pc, reference, covariance_type, dtype, n_threads=n_threads, home=home
        )
        for key in one:
            np.testing.assert_array_equal(one[key], other[key], err_msg=f"{key}, {n_threads}")


def test_home_labels_out_of_range_are_refused():
    X, weights, means, _, pc, reference, _ = _problem(N_SINGLE_BLOCK, 2, 3, "diag", seed=14)
    home = np.zeros(X.shape[0], dtype=np.int64)
    home[7] = 3
    with pytest.raises(ValueError, match="home labels must lie in"):
        _kernel(X, None, weights, means, pc, reference, "diag", np.float64, home=home)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_pass_is_bitwise_identical_for_any_thread_count(covariance_type):
    X, weights, means, _, pc, reference, sw = _problem(N_MULTI_BLOCK, 3, 3, covariance_type, seed=6)
    one = _kernel(X, sw, weights, means, pc, reference, covariance_type, np.float64, n_threads=1)
    for n_threads in (2, 3, 0):
        other = _kernel(
            X, sw, weights, means, pc, reference, covariance_type, np.float64, n_threads=n_threads
        )
        assert one.keys() == other.keys()
        for key in one:
            np.testing.assert_array_equal(one[key], other[key], err_msg=f"{key}, {n_threads}")


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_pass_without_moments_returns_only_the_requested_outputs(covariance_type):
    X, weights, means, _, pc, reference, _ = _problem(N_SINGLE_BLOCK, 3, 3, covariance_type, seed=7)
    out = _core.gaussian_mixture_pass(
        X, None, np.log(weights), means, pc, None, None, covariance_type, compute_moments=False
    )
    assert set(out) == {"sum_weight", "sum_log_norm", "sum_entropy", "nk"}
    es, stats, lj = _oracle(X, None, weights, means, pc, reference, covariance_type, np.float64)
    full = _kernel(X, None, weights, means, pc, reference, covariance_type, np.float64, compute_moments=False)
    _check_against_oracle(full, es, stats, lj, None, np.float64, compute_moments=False)
    for key in out:
        np.testing.assert_array_equal(out[key], full[key], err_msg=key)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_integer_sample_weights_equal_replicated_rows(covariance_type):
    X, weights, means, _, pc, reference, _ = _problem(1200, 3, 3, covariance_type, seed=8)
    counts = np.random.default_rng(9).integers(0, 4, size=X.shape[0])
    weighted = _kernel(X, counts.astype(float), weights, means, pc, reference, covariance_type, np.float64)
    replicated = _kernel(
        np.repeat(X, counts, axis=0), None, weights, means, pc, reference, covariance_type, np.float64
    )
    for key in ("sum_weight", "sum_log_norm", "sum_entropy", "nk", "sx", "sxx"):
        _assert_scaled(weighted[key], replicated[key], RTOL64, key)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_statistics_of_two_row_halves_merge_into_statistics_of_the_whole(covariance_type):
    X, weights, means, _, pc, reference, sw = _problem(N_MULTI_BLOCK, 3, 3, covariance_type, seed=10)
    split = 2345  # not a multiple of the block size

    def stats(rows):
        out = _kernel(X[rows], sw[rows], weights, means, pc, reference, covariance_type, np.float64)
        return MixtureStatistics.from_kernel(out, X[rows].shape[0], reference)

    whole = stats(slice(None))
    merged = stats(slice(None, split)).merge(stats(slice(split, None)))
    assert merged.n_samples == whole.n_samples == X.shape[0]
    np.testing.assert_allclose(merged.sum_weight, whole.sum_weight, rtol=1e-13)
    np.testing.assert_allclose(merged.sum_log_norm, whole.sum_log_norm, rtol=1e-12)
    np.testing.assert_allclose(merged.sum_entropy, whole.sum_entropy, rtol=1e-12)
    for key in ("nk", "sx", "sxx"):
        _assert_scaled(getattr(merged, key), getattr(whole, key), 1e-12, key)
    np.testing.assert_array_equal(merged.reference, reference)
    np.testing.assert_allclose(merged.elbo, whole.elbo, rtol=1e-12)
    np.testing.assert_allclose(merged.variational_entropy, whole.variational_entropy, rtol=1e-12)
    np.testing.assert_allclose(merged.mean_responsibilities, whole.mean_responsibilities, rtol=1e-12)
    # And the whole is what the oracle says.
    es, oracle_stats, _ = _oracle(X, sw, weights, means, pc, reference, covariance_type, np.float64)
    np.testing.assert_allclose(merged.elbo, es["sum_log_norm"] / es["sum_weight"], rtol=RTOL64)
    _assert_scaled(merged.sxx, oracle_stats["sxx"], RTOL64, "sxx")


def test_merging_statistics_about_different_reference_points_is_refused():
    X, weights, means, _, pc, reference, _ = _problem(N_SINGLE_BLOCK, 2, 2, "diag", seed=11)
    out = _kernel(X, None, weights, means, pc, reference, "diag", np.float64)
    a = MixtureStatistics.from_kernel(out, X.shape[0], reference)
    b = MixtureStatistics.from_kernel(out, X.shape[0], reference + 1)
    with pytest.raises(ValueError, match="reference"):
        a.merge(b)


# ------------------------------------------------------------------------------- k-means


def _kmeans_data(seed, n=3000, d=2, k=4, separation=5.0):
    X, y = ref.make_blobs_data(n, d, k, random_state=seed, separation=separation)
    return np.ascontiguousarray(X), y


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lloyd_kmeans_matches_reference_lloyd_from_the_same_centers(seed):
    X, _ = _kmeans_data(seed)
    centers = X[np.random.default_rng(seed).choice(X.shape[0], 6, replace=False)]
    labels, fitted, inertia, n_iter = _core.lloyd_kmeans(X, None, centers.copy(), 300, 0.0, 0)
    assert 1 <= n_iter < 300  # converged: labels stopped changing
    # Once converged, further Lloyd updates change nothing, so the reference may run longer.
    ref_labels, ref_centers, ref_inertia = ref.lloyd_kmeans(X, centers, n_iter + 5)
    assert labels.dtype == np.int64 and labels.shape == (X.shape[0],)
    np.testing.assert_array_equal(labels, ref_labels)
    np.testing.assert_allclose(fitted, ref_centers, rtol=RTOL64, atol=1e-12)
    np.testing.assert_allclose(inertia, ref_inertia, rtol=RTOL64)


@pytest.mark.parametrize("max_iter", [1, 2])
def test_lloyd_kmeans_stopped_by_max_iter_returns_labels_of_the_final_centers(max_iter):
    X, _ = _kmeans_data(3)
    centers = X[np.random.default_rng(3).choice(X.shape[0], 6, replace=False)]
    labels, fitted, inertia, n_iter = _core.lloyd_kmeans(X, None, centers.copy(), max_iter, 0.0, 0)
    assert n_iter == max_iter
    ref_labels, ref_centers, ref_inertia = ref.lloyd_kmeans(X, centers, max_iter)
    np.testing.assert_array_equal(labels, ref_labels)
    np.testing.assert_allclose(fitted, ref_centers, rtol=RTOL64, atol=1e-12)
    np.testing.assert_allclose(inertia, ref_inertia, rtol=RTOL64)


def test_lloyd_kmeans_float32_matches_reference_on_well_separated_centers():
    X, y = _kmeans_data(4, separation=10.0)
    centers = np.stack([X[y == c][0] for c in range(4)]).astype(np.float64)
    X32 = X.astype(np.float32)
    labels, fitted, inertia, n_iter = _core.lloyd_kmeans(X32, None, centers, 100, 0.0, 0)
    ref_labels, ref_centers, ref_inertia = ref.lloyd_kmeans(X32.astype(np.float64), centers, 100)
    np.testing.assert_array_equal(labels, ref_labels)
    np.testing.assert_allclose(fitted, ref_centers, rtol=0, atol=RTOL32 * np.abs(X).max())
    np.testing.assert_allclose(inertia, ref_inertia, rtol=RTOL32)


def test_lloyd_kmeans_is_bitwise_identical_for_any_thread_count():
    X, _ = _kmeans_data(5, n=6000)
    centers = X[:5].copy()
    one = _core.lloyd_kmeans(X, None, centers, 50, 0.0, 1)
    two = _core.lloyd_kmeans(X, None, centers, 50, 0.0, 2)
    for a, b in zip(one, two, strict=True):
        np.testing.assert_array_equal(a, b)


def _check_seeding(indices, n_samples, n_clusters):
    indices = np.asarray(indices)
    assert indices.dtype == np.int64
    assert indices.shape == (n_clusters,)
    assert np.all((indices >= 0) & (indices < n_samples))
    assert len(np.unique(indices)) == n_clusters


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_kmeans_plusplus_returns_distinct_in_range_indices_deterministic_per_seed(dtype):
    X, _ = _kmeans_data(6)
    X = X.astype(dtype)
    draws = {}
    for seed in (0, 1, 2, 3):
        first = _core.kmeans_plusplus(X, None, 8, 2 + int(np.log(8)), seed, 0)
        again = _core.kmeans_plusplus(X, None, 8, 2 + int(np.log(8)), seed, 0)
        _check_seeding(first, X.shape[0], 8)
        np.testing.assert_array_equal(first, again)
        draws[seed] = tuple(first)
    assert len(set(draws.values())) > 1, "different seeds should give different seedings"


@pytest.mark.parametrize(
    ("n_features", "n_clusters", "separation"),
    [(2, 8, 5.0), (8, 30, 4.0), (16, 12, 20.0)],
    ids=["2d", "8d-many", "16d-separated"],
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_kmeans_plusplus_matches_unpruned_reference_seeding(n_features, n_clusters, separation, dtype):
    # The kernel skips rows by the triangle inequality and works in float32; the reference computes
    # every distance in float64 with the same random stream, so any wrongly skipped row shows.
    X, _ = _kmeans_data(11, n=2500, d=n_features, k=6, separation=separation)
    X = X.astype(dtype)
    n_local_trials = 2 + int(np.log(n_clusters))
    for seed in (0, 5):
        indices = _core.kmeans_plusplus(X, None, n_clusters, n_local_trials, seed, 0)
        expected = ref.greedy_kmeans_plusplus(X, n_clusters, n_local_trials, seed)
        np.testing.assert_array_equal(indices, expected)


def test_lloyd_kmeans_matches_reference_with_many_clusters_in_more_dimensions():
    # Many clusters and iterations exercise the distance bounds (rows skipped, then re-resolved).
    X, _ = _kmeans_data(12, n=4000, d=8, k=10, separation=3.0)
    centers = X[np.random.default_rng(12).choice(X.shape[0], 25, replace=False)]
    labels, fitted, inertia, n_iter = _core.lloyd_kmeans(X, None, centers.copy(), 300, 0.0, 0)
    assert 5 < n_iter < 300
    ref_labels, ref_centers, ref_inertia = ref.lloyd_kmeans(X, centers, n_iter + 5)
    np.testing.assert_array_equal(labels, ref_labels)
    np.testing.assert_allclose(fitted, ref_centers, rtol=RTOL64, atol=1e-12)
    np.testing.assert_allclose(inertia, ref_inertia, rtol=RTOL64)


def test_kmeans_plusplus_is_bitwise_identical_for_any_thread_count():
    X, _ = _kmeans_data(7, n=6000)
    one = _core.kmeans_plusplus(X, None, 10, 4, 42, 1)
    two = _core.kmeans_plusplus(X, None, 10, 4, 42, 2)
    np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize("exponent", [-100, -64, 64, 100])
def test_kmeans_plusplus_seeds_do_not_depend_on_the_units_of_float64_data(exponent):
    # X times a power of two has the same digits; the seeding works on a float32 copy, whose
    # squared distances overflowed beyond |X| ~ 1e19 and underflowed below 1e-19 (the same row was
    # drawn twice at 2**100).
    X, _ = _kmeans_data(7, n=3000)
    weights = np.random.default_rng(1).uniform(0.5, 2.0, X.shape[0])
    for w in (None, weights):
        expected = _core.kmeans_plusplus(X, w, 10, 4, 42, 0)
        np.testing.assert_array_equal(_core.kmeans_plusplus(np.ldexp(X, exponent), w, 10, 4, 42, 0), expected)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_kmeans_plusplus_seeds_one_center_in_each_well_separated_blob(seed):
    X, y = _kmeans_data(8, k=5, separation=20.0)
    indices = _core.kmeans_plusplus(X, None, 5, 3, seed, 0)
    _check_seeding(indices, X.shape[0], 5)
    assert sorted(y[indices]) == list(range(5))


def test_kmeans_plusplus_with_as_many_clusters_as_rows_picks_every_row():
    X = np.random.default_rng(9).standard_normal((12, 3))
    indices = _core.kmeans_plusplus(X, None, 12, 3, 0, 0)
    _check_seeding(indices, 12, 12)
    assert sorted(indices) == list(range(12))


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_kmeans_kernels_read_source_rows_in_place_as_if_copied(dtype):
    # source_rows names a subset of X's rows, repeated and out of order, with a weight each: the
    # kernels must give bit for bit what they give on that copy of the rows.
    X, _ = _kmeans_data(13, n=3000, d=6, k=5, separation=4.0)
    X = X.astype(dtype)
    rng = np.random.default_rng(13)
    source_rows = rng.choice(X.shape[0], size=2000, replace=True).astype(np.int64)
    weights = rng.integers(1, 4, size=2000).astype(dtype)
    copied = np.ascontiguousarray(X[source_rows])
    seeds = _core.kmeans_plusplus(X, weights, 9, 4, 3, 2, source_rows=source_rows)
    np.testing.assert_array_equal(seeds, _core.kmeans_plusplus(copied, weights, 9, 4, 3, 2))
    centers = copied[seeds].astype(np.float64)
    in_place = _core.lloyd_kmeans(X, weights, centers, 100, 0.0, 2, source_rows=source_rows)
    on_copy = _core.lloyd_kmeans(copied, weights, centers, 100, 0.0, 2)
    assert in_place[0].shape == (2000,)
    for a, b in zip(in_place, on_copy, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kernel", ["kmeans_plusplus", "lloyd_kmeans"])
@pytest.mark.parametrize(
    ("source_rows", "error", "message"),
    [
        (np.array([0, 5, 100]), ValueError, "source_rows must index rows of X"),
        (np.array([0, -1, 2]), ValueError, "source_rows must index rows of X"),
        (np.array([0, 1, 2], dtype=np.int32), TypeError, "source_rows must be"),
        (np.array([[0, 1, 2]]), ValueError, "source_rows has shape"),
    ],
    ids=["past-the-end", "negative", "int32", "2-d"],
)
def test_kmeans_kernels_reject_bad_source_rows_by_name(kernel, source_rows, error, message):
    X = np.random.default_rng(14).standard_normal((100, 3))
    if kernel == "kmeans_plusplus":
        call = lambda: _core.kmeans_plusplus(X, None, 2, 3, 0, 1, source_rows=source_rows)  # noqa: E731
    else:
        call = lambda: _core.lloyd_kmeans(X, None, X[:2].copy(), 5, 0.0, 1, source_rows=source_rows)  # noqa: E731
    with pytest.raises(error, match=message):
        call()
