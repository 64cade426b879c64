"""Tests that prove the NumPy reference oracle in ``tests/reference.py`` right.

The reference is checked against scikit-learn's own Gaussian-mixture helpers,
scipy's closed forms, and the invariants of docs/theory.rst (invariants).
"""

import warnings

import numpy as np
import pytest
from scipy.special import logsumexp, softmax
from scipy.stats import entropy as scipy_entropy
from scipy.stats import multivariate_normal
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from sklearn.mixture._gaussian_mixture import (
    _compute_precision_cholesky,
    _estimate_gaussian_parameters,
    _estimate_log_gaussian_prob,
)

import reference as ref

COV_TYPES = list(ref.COVARIANCE_TYPES)
RTOL = 1e-10


# ------------------------------------------------------------------------ fixtures


def _blobs(seed=0, n=300, d=3, k=3):
    """Return well-separated blob data and labels."""
    return ref.make_blobs_data(n, d, k, random_state=seed)


def _random_resp(rng, n, k):
    """Return a dense random (n, k) responsibility matrix with rows summing to 1."""
    return rng.dirichlet(np.ones(k), size=n)


def _random_weights(rng, n):
    """Return strictly positive non-integer sample weights."""
    return rng.uniform(0.2, 3.0, size=n)


def _init_params(X, k, covariance_type, seed, reg=1e-3):
    """Return a poor but valid starting Theta^0 from random responsibilities."""
    rng = np.random.default_rng(seed)
    resp = _random_resp(rng, X.shape[0], k)
    return ref.m_step(X, resp, reg, covariance_type)


def _em_start(X, k, covariance_type, seed, temperature=20.0, reg=1e-3):
    """Return a broad Theta^0 from soft assignments to k random data points (an EM start)."""
    rng = np.random.default_rng(seed)
    centers = X[rng.choice(X.shape[0], k, replace=False)]
    resp = softmax(-ref.squared_distances(X, centers) / (2.0 * temperature), axis=1)
    return ref.m_step(X, resp, reg, covariance_type)


def _scatter_cov(stats, nk_mstep, reg, covariance_type, n_features):
    """Return covariances rebuilt from sufficient statistics: scatter = sxx - sx sx^T / nk."""
    nk, sx, sxx = stats["nk"], stats["sx"], stats["sxx"]
    K = nk.shape[0]
    eye = np.eye(n_features)
    if covariance_type == "full":
        return np.stack(
            [(sxx[c] - np.outer(sx[c], sx[c]) / nk[c]) / nk_mstep[c] + reg * eye for c in range(K)]
        )
    if covariance_type == "tied":
        scatter = sxx - sum(np.outer(sx[c], sx[c]) / nk[c] for c in range(K))
        return scatter / np.sum(nk_mstep) + reg * eye
    if covariance_type == "diag":
        return (sxx - sx**2 / nk[:, None]) / nk_mstep[:, None] + reg
    return (sxx - np.sum(sx**2, axis=1) / nk) / (nk_mstep * n_features) + reg


# ------------------------------------------------------------ parameter conversion


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_reference_precisions_cholesky_matches_sklearn_and_round_trips(covariance_type):
    X, _ = _blobs(seed=1)
    _, _, cov = _init_params(X, 3, covariance_type, seed=2)
    pc = ref.precisions_cholesky_from_covariances(cov, covariance_type)
    np.testing.assert_allclose(pc, _compute_precision_cholesky(cov, covariance_type), rtol=RTOL, atol=1e-13)
    back = ref.covariances_from_precisions_cholesky(pc, covariance_type)
    np.testing.assert_allclose(back, cov, rtol=RTOL, atol=1e-13)


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_reference_precisions_cholesky_is_upper_and_factors_precision(covariance_type):
    X, _ = _blobs(seed=3)
    _, _, cov = _init_params(X, 3, covariance_type, seed=4)
    pc = ref.precisions_cholesky_from_covariances(cov, covariance_type)
    covs = cov if covariance_type == "full" else cov[None]
    pcs = pc if covariance_type == "full" else pc[None]
    for S, U in zip(covs, pcs, strict=True):
        np.testing.assert_array_equal(U, np.triu(U))
        assert np.all(np.diag(U) > 0)
        np.testing.assert_allclose(U @ U.T @ S, np.eye(S.shape[0]), atol=1e-10)


# ------------------------------------------------------------------------ densities


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_reference_log_gaussian_density_matches_sklearn(covariance_type):
    X, _ = _blobs(seed=5, d=4, k=4)
    _, means, cov = _init_params(X, 4, covariance_type, seed=6)
    ours = ref.log_gaussian_density(X, means, cov, covariance_type)
    theirs = _estimate_log_gaussian_prob(
        X, means, _compute_precision_cholesky(cov, covariance_type), covariance_type
    )
    assert ours.shape == (X.shape[0], 4)
    np.testing.assert_allclose(ours, theirs, rtol=RTOL)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_reference_log_gaussian_density_matches_scipy_logpdf(covariance_type):
    X, _ = _blobs(seed=7, d=3, k=2)
    _, means, cov = _init_params(X, 2, covariance_type, seed=8)
    ours = ref.log_gaussian_density(X, means, cov, covariance_type)
    full = ref.full_covariance_matrices(cov, covariance_type, 2, 3)
    for c in range(2):
        np.testing.assert_allclose(ours[:, c], multivariate_normal(means[c], full[c]).logpdf(X), rtol=RTOL)


def test_reference_log_joint_uses_minus_inf_for_zero_weights():
    X, _ = _blobs(seed=9)
    w, means, cov = _init_params(X, 3, "diag", seed=10)
    w = np.array([0.5, 0.0, 0.5])
    lj = ref.log_joint(X, w, means, cov, "diag")
    assert np.all(np.isneginf(lj[:, 1]))
    es = ref.e_step(X, w, means, cov, "diag")
    assert np.all(es["resp"][:, 1] == 0.0)
    assert np.all(np.isfinite(es["entropy"]))
    # Terms with q = 0 contribute 0, so the brute-force ELBO stays finite.
    assert np.isfinite(ref.elbo(X, es["resp"], w, means, cov, "diag"))


# ------------------------------------------------------------------------- E-step


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_reference_e_step_matches_sklearn_score_samples_and_predict_proba(covariance_type):
    X, _ = _blobs(seed=11, d=3, k=3)
    w, means, cov = _init_params(X, 3, covariance_type, seed=12)
    gm = GaussianMixture(n_components=3, covariance_type=covariance_type)
    gm.weights_, gm.means_, gm.covariances_ = w, means, cov
    gm.precisions_cholesky_ = _compute_precision_cholesky(cov, covariance_type)
    es = ref.e_step(X, w, means, cov, covariance_type)
    np.testing.assert_allclose(es["log_norm"], gm.score_samples(X), rtol=RTOL)
    np.testing.assert_allclose(es["resp"], gm.predict_proba(X), rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(es["resp"].sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(es["entropy"], scipy_entropy(es["resp"], axis=1), rtol=1e-9, atol=1e-14)
    assert es["sum_weight"] == X.shape[0]
    np.testing.assert_allclose(es["sum_log_norm"], es["log_norm"].sum(), rtol=1e-13)
    np.testing.assert_allclose(es["nk"], es["resp"].sum(axis=0), rtol=1e-13)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_reference_e_step_weighted_sums_use_sample_weights(covariance_type):
    X, _ = _blobs(seed=13)
    w, means, cov = _init_params(X, 3, covariance_type, seed=14)
    sw = _random_weights(np.random.default_rng(15), X.shape[0])
    es = ref.e_step(X, w, means, cov, covariance_type, sample_weight=sw)
    lj = ref.log_joint(X, w, means, cov, covariance_type)
    np.testing.assert_allclose(es["log_norm"], logsumexp(lj, axis=1), rtol=1e-13)
    np.testing.assert_allclose(es["sum_weight"], sw.sum(), rtol=1e-13)
    np.testing.assert_allclose(es["sum_log_norm"], sw @ es["log_norm"], rtol=1e-12)
    np.testing.assert_allclose(es["sum_entropy"], sw @ es["entropy"], rtol=1e-12)
    np.testing.assert_allclose(es["nk"], sw @ es["resp"], rtol=1e-12)


# ------------------------------------------------------------------------- M-step


@pytest.mark.parametrize("reg_covar", [0.0, 1e-3])
@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_reference_m_step_matches_sklearn_estimate_gaussian_parameters(covariance_type, reg_covar):
    X, _ = _blobs(seed=16, d=4, k=3)
    resp = _random_resp(np.random.default_rng(17), X.shape[0], 3)
    w, means, cov = ref.m_step(X, resp, reg_covar, covariance_type)
    nk, s_means, s_cov = _estimate_gaussian_parameters(X, resp, reg_covar, covariance_type)
    np.testing.assert_allclose(w, nk / nk.sum(), rtol=RTOL)
    np.testing.assert_allclose(means, s_means, rtol=RTOL, atol=1e-13)
    np.testing.assert_allclose(cov, s_cov, rtol=RTOL, atol=1e-13)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_reference_m_step_integer_weights_equal_replicated_rows(covariance_type):
    X, _ = _blobs(seed=18, n=120)
    rng = np.random.default_rng(19)
    resp = _random_resp(rng, X.shape[0], 3)
    counts = rng.integers(0, 4, size=X.shape[0])
    weighted = ref.m_step(X, resp, 1e-4, covariance_type, sample_weight=counts)
    Xr, rr = np.repeat(X, counts, axis=0), np.repeat(resp, counts, axis=0)
    replicated = ref.m_step(Xr, rr, 1e-4, covariance_type)
    s_nk, s_means, s_cov = _estimate_gaussian_parameters(Xr, rr, 1e-4, covariance_type)
    for a, b in zip(weighted, replicated, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(weighted[1], s_means, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(weighted[2], s_cov, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_reference_m_step_shapes_and_weights_sum_to_one(covariance_type):
    X, _ = _blobs(seed=20, d=2, k=4)
    w, means, cov = _init_params(X, 4, covariance_type, seed=21)
    expected = {"full": (4, 2, 2), "tied": (2, 2), "diag": (4, 2), "spherical": (4,)}
    assert w.shape == (4,) and means.shape == (4, 2)
    assert cov.shape == expected[covariance_type]
    np.testing.assert_allclose(w.sum(), 1.0, rtol=1e-14)


# ---------------------------------------------------------- sufficient statistics


@pytest.mark.parametrize("reference_kind", ["zero", "random", "true_means"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_reference_sufficient_statistics_reproduce_m_step(covariance_type, weighted, reference_kind):
    X, _ = _blobs(seed=22, d=3, k=3)
    rng = np.random.default_rng(23)
    resp = _random_resp(rng, X.shape[0], 3)
    sw = _random_weights(rng, X.shape[0]) if weighted else None
    reg = 1e-3
    w, means, cov = ref.m_step(X, resp, reg, covariance_type, sample_weight=sw)
    r = {
        "zero": np.zeros((3, 3)),
        "random": rng.normal(scale=3.0, size=(3, 3)),
        "true_means": means,
    }[reference_kind]
    stats = ref.sufficient_statistics(X, resp, r, covariance_type, sample_weight=sw)
    sww = np.ones(X.shape[0]) if sw is None else sw
    np.testing.assert_allclose(stats["nk"], sww @ resp, rtol=1e-12)
    nk_mstep = stats["nk"] + 10 * np.finfo(np.float64).eps
    np.testing.assert_allclose(w, nk_mstep / nk_mstep.sum(), rtol=1e-12)
    np.testing.assert_allclose(r + stats["sx"] / stats["nk"][:, None], means, rtol=1e-10, atol=1e-12)
    rebuilt = _scatter_cov(stats, nk_mstep, reg, covariance_type, X.shape[1])
    np.testing.assert_allclose(rebuilt, cov, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_reference_sufficient_statistics_shapes(covariance_type):
    X, _ = _blobs(seed=24, d=2, k=4)
    resp = _random_resp(np.random.default_rng(25), X.shape[0], 4)
    stats = ref.sufficient_statistics(X, resp, np.zeros((4, 2)), covariance_type)
    expected = {"full": (4, 2, 2), "tied": (2, 2), "diag": (4, 2), "spherical": (4,)}
    assert stats["nk"].shape == (4,) and stats["sx"].shape == (4, 2)
    assert stats["sxx"].shape == expected[covariance_type]


# --------------------------------------------------------------- ELBO and entropy


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_reference_elbo_at_exact_posterior_equals_mean_log_likelihood(covariance_type):
    X, _ = _blobs(seed=26)
    sw = _random_weights(np.random.default_rng(27), X.shape[0])
    theta = _init_params(X, 3, covariance_type, seed=28)
    es = ref.e_step(X, *theta, covariance_type, sample_weight=sw)
    F = ref.elbo(X, es["resp"], *theta, covariance_type, sample_weight=sw)
    np.testing.assert_allclose(F, es["sum_log_norm"] / es["sum_weight"], rtol=1e-12)
    # Any other q gives a lower ELBO (the gap is a KL divergence).
    other = _random_resp(np.random.default_rng(29), X.shape[0], 3)
    assert ref.elbo(X, other, *theta, covariance_type, sample_weight=sw) < F


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_reference_entropy_terms_match_scipy_entropies(covariance_type):
    X, _ = _blobs(seed=30, d=3, k=3)
    rng = np.random.default_rng(31)
    resp = _random_resp(rng, X.shape[0], 3)
    sw = _random_weights(rng, X.shape[0])
    w, _, cov = ref.m_step(X, resp, 1e-3, covariance_type, sample_weight=sw)
    t = ref.entropy_terms(resp, w, cov, covariance_type, 3, sample_weight=sw)
    np.testing.assert_allclose(
        t["variational_entropy"], sw @ scipy_entropy(resp, axis=1) / sw.sum(), rtol=1e-12
    )
    np.testing.assert_allclose(t["prior_entropy"], scipy_entropy(w), rtol=1e-12)
    full = ref.full_covariance_matrices(cov, covariance_type, 3, 3)
    q_bar = sw @ resp / sw.sum()
    obs = sum(q_bar[c] * multivariate_normal(np.zeros(3), full[c]).entropy() for c in range(3))
    np.testing.assert_allclose(t["observable_entropy"], obs, rtol=1e-12)
    np.testing.assert_allclose(
        t["entropy_sum"],
        t["variational_entropy"] - t["prior_entropy"] - t["observable_entropy"],
        rtol=1e-14,
    )


def test_reference_prior_entropy_skips_zero_weights():
    resp = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    w = np.array([0.5, 0.0, 0.5])
    t = ref.entropy_terms(resp, w, np.ones(3), "spherical", 2)
    np.testing.assert_allclose(t["prior_entropy"], np.log(2.0), rtol=1e-15)
    assert t["variational_entropy"] == 0.0


# ------------------------------------------------------------ docs/theory.rst invariants


def _assert_identity_and_interleaving(run, rel=1e-9, slack=1e-12):
    """Check |F(q^t,Theta^{t+1}) - S| <= rel*|F| and F^t <= S^t <= F^{t+1} for every t."""
    F, post, S = run["elbo"], run["post_mstep_elbo"], run["entropy_sum"]
    for t in range(len(F)):
        assert abs(post[t] - S[t]) <= rel * abs(post[t]), (t, post[t], S[t])
        assert abs(F[t] - run["elbo_bruteforce"][t]) <= 1e-12 * max(1.0, abs(F[t])), t
        tol = slack * max(1.0, abs(F[t]))
        assert F[t] <= S[t] + tol, (t, F[t], S[t])
        if t + 1 < len(F):
            assert S[t] <= F[t + 1] + tol, (t, S[t], F[t + 1])


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_reference_post_mstep_identity_holds_every_iteration(covariance_type, weighted):
    X, _ = _blobs(seed=32, n=400, d=3, k=4)
    sw = _random_weights(np.random.default_rng(33), X.shape[0]) if weighted else None
    theta0 = _em_start(X, 4, covariance_type, seed=34)
    run = ref.em(X, *theta0, covariance_type, n_iter=25, reg_covar=0.0, sample_weight=sw)
    assert len(run["elbo"]) == 25 and len(run["params"]) == 25
    _assert_identity_and_interleaving(run)
    # EM made real progress from the poor start, so the interleaving was not trivial.
    assert run["elbo"][-1] - run["elbo"][0] > 0.1


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_reference_em_with_reg_covar_has_exact_regularisation_gap(covariance_type):
    # With Sigma = S_c + eps I the identity is off by exactly (eps/2) sum_c qbar_c tr(Sigma_c^-1).
    X, _ = _blobs(seed=35, d=3, k=3)
    eps = 1e-2
    theta0 = _em_start(X, 3, covariance_type, seed=36)
    run = ref.em(X, *theta0, covariance_type, n_iter=5, reg_covar=eps)
    for t in range(5):
        _, _, cov = run["params"][t]
        full = ref.full_covariance_matrices(cov, covariance_type, 3, 3)
        q_bar = run["entropy_terms"][t]["q_bar"]
        predicted = 0.5 * eps * sum(q_bar[c] * np.trace(np.linalg.inv(full[c])) for c in range(3))
        gap = run["post_mstep_elbo"][t] - run["entropy_sum"][t]
        np.testing.assert_allclose(gap, predicted, rtol=1e-8)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_reference_em_integer_weights_equal_replicated_rows(covariance_type):
    X, _ = _blobs(seed=37, n=150)
    counts = np.random.default_rng(38).integers(0, 4, size=X.shape[0])
    theta0 = _em_start(X, 3, covariance_type, seed=39)
    a = ref.em(X, *theta0, covariance_type, n_iter=6, sample_weight=counts)
    b = ref.em(np.repeat(X, counts, axis=0), *theta0, covariance_type, n_iter=6)
    for key in ("elbo", "post_mstep_elbo", "entropy_sum"):
        np.testing.assert_allclose(a[key], b[key], rtol=1e-10)
    for pa, pb in zip(a["final"], b["final"], strict=True):
        np.testing.assert_allclose(pa, pb, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_reference_em_matches_sklearn_gaussian_mixture_fit(covariance_type):
    X, _ = _blobs(seed=40, n=300, d=3, k=3)
    n_iter = 8
    w0, m0, c0 = _em_start(X, 3, covariance_type, seed=41)
    run = ref.em(X, w0, m0, c0, covariance_type, n_iter=n_iter, reg_covar=0.0)
    pc0 = ref.precisions_cholesky_from_covariances(c0, covariance_type)
    if covariance_type == "full":
        prec0 = np.stack([U @ U.T for U in pc0])
    elif covariance_type == "tied":
        prec0 = pc0 @ pc0.T
    else:
        prec0 = pc0**2
    gm = GaussianMixture(
        n_components=3,
        covariance_type=covariance_type,
        reg_covar=0.0,
        tol=0.0,
        max_iter=n_iter,
        n_init=1,
        init_params="random",
        weights_init=w0,
        means_init=m0,
        precisions_init=prec0,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit(X)
    w, m, c = run["final"]
    np.testing.assert_allclose(gm.lower_bounds_, run["elbo"], rtol=1e-9)
    np.testing.assert_allclose(gm.weights_, w, rtol=1e-8)
    np.testing.assert_allclose(gm.means_, m, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(gm.covariances_, c, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_reference_em_converged_mean_log_likelihood_equals_entropy_sum(covariance_type):
    X, _ = _blobs(seed=42, n=300, d=2, k=3)
    theta0 = _em_start(X, 3, covariance_type, seed=43)
    run = ref.em(X, *theta0, covariance_type, n_iter=150)
    assert abs(run["elbo"][-1] - run["entropy_sum"][-1]) <= 1e-8 * abs(run["elbo"][-1])


# ------------------------------------------------------------------------- k-means


def test_reference_lloyd_kmeans_matches_sklearn_lloyd():
    X, _ = _blobs(seed=44, n=300, d=3, k=4)
    rng = np.random.default_rng(45)
    init = X[rng.choice(X.shape[0], 4, replace=False)]
    labels, centers, inertia = ref.lloyd_kmeans(X, init, n_iter=100)
    km = KMeans(n_clusters=4, init=init, n_init=1, algorithm="lloyd", tol=0.0, max_iter=100)
    km.fit(X)
    np.testing.assert_array_equal(labels, km.labels_)
    np.testing.assert_allclose(centers, km.cluster_centers_, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(inertia, km.inertia_, rtol=1e-10)


def test_reference_lloyd_kmeans_keeps_empty_cluster_center_and_breaks_ties_low():
    X = np.array([[0.0], [1.0], [10.0], [11.0]])
    init = np.array([[0.5], [10.5], [1000.0]])
    labels, centers, inertia = ref.lloyd_kmeans(X, init, n_iter=3)
    np.testing.assert_array_equal(labels, [0, 0, 1, 1])
    np.testing.assert_allclose(centers, init)
    np.testing.assert_allclose(inertia, 4 * 0.25)
    # A point equidistant from two centers goes to the lower index.
    labels, _, _ = ref.lloyd_kmeans(np.array([[0.0]]), np.array([[1.0], [-1.0]]), n_iter=0)
    assert labels[0] == 0


def test_reference_kmeans_corner_matches_closed_form_elbo():
    # docs/theory.rst (the k-means corner): hard q, shared spherical variance, uniform fixed pi.
    X, _ = _blobs(seed=46, n=300, d=3, k=3)
    N, D, K = X.shape[0], X.shape[1], 3
    init = X[np.random.default_rng(47).choice(N, K, replace=False)]
    labels, centers, sse = ref.lloyd_kmeans(X, init, n_iter=100)
    # Converged: centers are the means of their clusters.
    for k in range(K):
        np.testing.assert_allclose(centers[k], X[labels == k].mean(axis=0), rtol=1e-12)
    resp = np.eye(K)[labels]
    var = sse / (N * D)
    F = ref.elbo(X, resp, np.full(K, 1.0 / K), centers, np.full(K, var), "spherical")
    closed = -np.log(K) - 0.5 * D * np.log(2 * np.pi * np.e * var)
    np.testing.assert_allclose(F, closed, rtol=1e-12)


# ---------------------------------------------------------------------------- data


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_reference_make_blobs_data_is_deterministic_separated_and_balanced(dtype):
    X, y = ref.make_blobs_data(301, 4, 5, random_state=48, separation=5.0, dtype=dtype)
    X2, y2 = ref.make_blobs_data(301, 4, 5, random_state=48, separation=5.0, dtype=dtype)
    assert X.dtype == dtype and X.shape == (301, 4) and y.shape == (301,)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    counts = np.bincount(y, minlength=5)
    assert counts.max() - counts.min() <= 1
    centers = np.stack([X[y == c].mean(axis=0) for c in range(5)]).astype(np.float64)
    d = np.linalg.norm(centers[:, None] - centers[None], axis=2) + np.eye(5) * 1e9
    assert d.min() > 4.0
    # A fit from the true labels recovers the true partition.
    w, m, c = ref.m_step(X, np.eye(5)[y], 0.0, "full")
    es = ref.e_step(X, w, m, c, "full")
    assert np.mean(es["resp"].argmax(axis=1) == y) > 0.99
