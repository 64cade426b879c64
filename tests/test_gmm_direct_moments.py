"""Diag and spherical fits of clusters far apart for their widths (where an expanded pass would
need home labels and float64 refinement), in float32, sum each pass's log-joints and moments
directly: sx_c = sum_n w_n q_nc (x_n - r_c) and sxx_c = sum_n w_n q_nc (x_n - r_c)^2 (spherical: the
squared norm) in float64, about the reference points r_c. Every term keeps its digits at any
distance and offset, pairs with q = 0 are skipped, and no labelling pass is run.
"""

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

import reference
from fastelbo import FastGMM, _core


def _far_clusters(dtype, n_components, spread=1e4, offset=1e5, seed=4):
    """Clusters ``spread`` apart with widths from 0.3 to 3 in five features, moved by ``offset``,
    and parameters near them (the means a little off, the variances a little wrong)."""
    rng = np.random.RandomState(seed)
    centres = rng.standard_normal((n_components, 5)) * spread + offset
    widths = rng.uniform(0.3, 3.0, size=n_components)
    labels = rng.randint(n_components, size=600)
    X = (centres[labels] + rng.standard_normal((600, 5)) * widths[labels, None]).astype(dtype)
    means = (centres + rng.standard_normal(centres.shape) * widths[:, None]).astype(dtype)
    variances = (widths[:, None] ** 2 * rng.uniform(0.5, 2.0, size=(n_components, 5))).astype(dtype)
    return X, means, variances


def _moments_about(X, q, reference, covariance_type):
    """The independent sums, in float64, from the kernel's own (weighted) responsibilities, and the
    sums of their terms' magnitudes (what summing in another order may cost: a float64 round-off of
    that per row)."""
    centred = X.astype(np.float64)[None, :, :] - reference[:, None, :]  # [K, N, D]
    first = np.einsum("nk,knd->kd", q, centred)
    first_magnitude = np.einsum("nk,knd->kd", q, np.abs(centred))
    second = np.einsum("nk,knd->kd", q, centred**2)
    if covariance_type == "spherical":
        second = second.sum(axis=1)
    return first, first_magnitude, second


def _pass(X, means, variances, covariance_type, reference, sample_weight, n_threads, direct=True):
    K = len(means)
    factor = 1 / np.sqrt(variances if covariance_type == "diag" else variances.mean(axis=1))
    return _core.gaussian_mixture_pass(
        X,
        sample_weight,
        np.log(np.full(K, 1 / K, dtype=X.dtype)),
        means,
        factor.astype(X.dtype),
        reference,
        None,
        covariance_type,
        compute_moments=True,
        return_responsibilities=True,
        n_threads=n_threads,
        direct=direct,
    )


@pytest.mark.parametrize("n_components", [6, 35])  # one block of components, and several with padding
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_direct_moments_are_the_float64_sums_about_the_reference_points(covariance_type, dtype, n_components):
    X, means, variances = _far_clusters(dtype, n_components)
    rng = np.random.RandomState(1)
    sample_weight = rng.uniform(0.5, 2.0, size=len(X)).astype(dtype)
    reference = means.astype(np.float64) + rng.standard_normal(means.shape) * 0.1
    out = _pass(X, means, variances, covariance_type, reference, sample_weight, n_threads=1)
    q = out["responsibilities"].astype(np.float64) * sample_weight.astype(np.float64)[:, None]
    assert np.count_nonzero(q) < 2 * len(X)  # far apart: mostly one component per row
    first, first_magnitude, second = _moments_about(X, q, reference, covariance_type)
    eps = len(X) * np.finfo(np.float64).eps
    assert np.all(np.abs(out["sx"] - first) <= eps * first_magnitude)
    assert np.all(np.abs(out["sxx"] - second) <= eps * second)
    np.testing.assert_allclose(out["nk"], q.sum(axis=0), rtol=1e-6 if dtype == np.float32 else 1e-13)
    # The same bits with any thread count (rows are summed in a fixed order).
    again = _pass(X, means, variances, covariance_type, reference, sample_weight, n_threads=2)
    for key in ("nk", "sx", "sxx"):
        np.testing.assert_array_equal(again[key], out[key])


def _fit(X, covariance_type, means, variances, max_iter, sample_weight=None):
    K = len(means)
    precisions = 1 / variances if covariance_type == "diag" else 1 / variances.mean(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return FastGMM(
            K,
            covariance_type=covariance_type,
            weights_init=np.full(K, 1 / K),
            means_init=means,
            precisions_init=precisions,
            tol=0.0,
            max_iter=max_iter,
            n_jobs=1,
        ).fit(X, sample_weight=sample_weight)


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_float32_fits_of_far_clusters_equal_the_float64_reference_em_without_labelling(
    covariance_type, monkeypatch
):
    # About 6 widths apart: the expanded pass would refine most rows (far components reach them).
    X, means, variances = _far_clusters(np.float32, 6, spread=6.0)
    sample_weight = np.random.RandomState(2).uniform(0.5, 2.0, size=len(X))
    labelled = []
    monkeypatch.setattr(FastGMM, "_homes_for", lambda self, X: labelled.append(X) or None)
    gmm = _fit(X, covariance_type, means, variances, max_iter=4, sample_weight=sample_weight)
    assert gmm.means_.dtype == np.float32
    assert gmm._sums_directly(np.float32, moments=True)
    assert labelled == []

    covariances = variances.astype(np.float64)
    if covariance_type == "spherical":
        covariances = covariances.mean(axis=1)
    K = len(means)
    weights = np.full(K, 1 / K)
    run = reference.em(
        X, weights, means, covariances, covariance_type, 4, reg_covar=1e-6, sample_weight=sample_weight
    )
    expected = run["final"]
    np.testing.assert_allclose(gmm.weights_, expected[0], rtol=0, atol=1e-6)
    np.testing.assert_allclose(gmm.means_, expected[1], rtol=0, atol=1e-6 * 1e5 + 1e-5)
    scale = np.max(expected[2])
    np.testing.assert_allclose(gmm.covariances_, expected[2], rtol=0, atol=2e-5 * scale)
    # Each cluster's own spread, not a share of the distance between clusters.
    assert scale < 20
    # The entropy sum after each M-step from the directly summed statistics: the reference's, and
    # (the post-M-step identity) the ELBO of the new parameters, to float32 precision.
    entropy_sums = np.asarray(gmm.entropy_sum_history_)
    np.testing.assert_allclose(entropy_sums, run["entropy_sum"], rtol=1e-5)
    np.testing.assert_allclose(entropy_sums, run["post_mstep_elbo"], rtol=1e-5)


def test_fits_the_expanded_pass_refines_little_keep_the_expanded_moments():
    """Where the expansion needs no homes, where no far component reaches rows (clusters 1e4
    apart), and in float64, the GEMM's moments are faster."""
    X, means, variances = _far_clusters(np.float64, 6, spread=6.0)
    assert not _fit(X, "diag", means, variances, max_iter=1)._sums_directly(np.float64, moments=True)
    X, means, variances = _far_clusters(np.float32, 6)
    gmm = _fit(X, "diag", means, variances, max_iter=1)
    assert gmm._needs_homes(np.float32) and not gmm._sums_directly(np.float32, moments=True)
    overlapping = np.random.RandomState(0).standard_normal((500, 3)).astype(np.float32)
    gmm = FastGMM(3, covariance_type="diag", random_state=0).fit(overlapping)
    assert not gmm._sums_directly(np.float32, moments=True)


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_direct_sums_are_refused_for_full_and_tied_covariances(covariance_type):
    X = np.zeros((3, 2))
    factor = np.array([np.eye(2)] * 2) if covariance_type == "full" else np.eye(2)
    with pytest.raises(ValueError, match="diag and spherical"):
        _core.gaussian_mixture_pass(
            X, None, np.log([0.5, 0.5]), np.zeros((2, 2)), factor, np.zeros((2, 2)), None, covariance_type,
            compute_moments=True, direct=True,
        )  # fmt: skip


def test_float32_digits_fits_sum_directly():
    """Pixels that never change give precisions near 1 / reg_covar: the expanded pass refines a
    third of the rows, and the direct E-step was 2.9x faster."""
    X = load_digits().data.astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gmm = FastGMM(10, covariance_type="diag", random_state=0, max_iter=20).fit(X)
    assert gmm._sums_directly(np.float32, moments=True)


@pytest.mark.parametrize("moments", [False, True])
def test_direct_sums_keep_nan_parameters_nan(moments):
    """A NaN mean (or an infinite precision factor at a zero difference) is not an empty component."""
    X, means, variances = _far_clusters(np.float64, 3)
    for bad in ("mean", "factor"):
        bad_means, factor = means.copy(), 1 / np.sqrt(variances)
        if bad == "mean":
            bad_means[1, 0] = np.nan
        else:
            factor[1, 0] = np.inf
            X = X.copy()
            X[:, 0] = bad_means[1, 0]
        out = _core.gaussian_mixture_pass(
            X, None, np.log(np.full(3, 1 / 3)), bad_means, factor, means.astype(np.float64), None, "diag",
            compute_moments=moments, return_log_norm=True, n_threads=1, direct=True,
        )  # fmt: skip
        assert np.all(np.isnan(out["log_norm"])), bad


def test_direct_sums_check_home_labels_they_do_not_use():
    X, means, variances = _far_clusters(np.float64, 3)
    home = np.zeros(len(X), dtype=np.int64)
    home[1] = 3
    with pytest.raises(ValueError, match=r"home labels must lie in \[0, 3\), got 3 at row 1"):
        _core.gaussian_mixture_pass(
            X, None, np.log(np.full(3, 1 / 3)), means, 1 / np.sqrt(variances), None, home, "diag",
            compute_moments=False, n_threads=1, direct=True,
        )  # fmt: skip
