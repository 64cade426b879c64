"""The independent evaluation used by the awkward-data suite, checked against SciPy, mpmath and
closed forms, so that its verdicts can be trusted."""

import numpy as np
import pytest
import scipy.special
import scipy.stats

from independent_evaluation import (
    GaussianMixtureParameters,
    evaluate_mixture,
    mahalanobis_and_log_det_extended,
    mahalanobis_and_log_det_mpmath,
    reference_decomposition,
)


def _random_mixture(rng, K=3, D=4):
    A = rng.randn(K, D, D)
    covariances = A @ A.transpose(0, 2, 1) + 0.5 * np.eye(D)
    weights = rng.dirichlet(np.ones(K))
    return GaussianMixtureParameters(weights, 3 * rng.randn(K, D), covariances=covariances)


def test_log_likelihood_matches_scipy_on_a_well_conditioned_mixture():
    rng = np.random.RandomState(0)
    params = _random_mixture(rng)
    X = 3 * rng.randn(50, 4)
    log_joint = np.stack(
        [
            np.log(params.weights[c])
            + scipy.stats.multivariate_normal(params.means[c], params.covariances[c]).logpdf(X)
            for c in range(3)
        ],
        axis=1,
    )
    expected = scipy.special.logsumexp(log_joint, axis=1)
    evaluation = evaluate_mixture(params, X)
    np.testing.assert_allclose(evaluation.log_likelihood, expected, rtol=1e-12)
    np.testing.assert_allclose(evaluation.responsibilities, np.exp(log_joint - expected[:, None]), atol=1e-12)


def test_extended_and_mpmath_paths_agree_on_a_noise_at_the_floor():
    # A factor model whose last feature duplicates the first: its noise sits at 1e-12 while the
    # loadings are O(1), the case where a Woodbury evaluation loses every digit.
    rng = np.random.RandomState(1)
    W = rng.randn(2, 5)
    W[:, -1] = W[:, 0]
    noise = np.array([0.3, 0.5, 0.2, 0.4, 1e-12])
    params = GaussianMixtureParameters(np.ones(1), np.zeros((1, 5)), loadings=W[None], noise=noise[None])
    z = rng.randn(30, 2)
    X = z @ W + rng.randn(30, 5) * np.sqrt(noise)
    maha_ld, log_det_ld = mahalanobis_and_log_det_extended(params, 0, X)
    maha_mp, log_det_mp = mahalanobis_and_log_det_mpmath(params, 0, X, digits=50)
    np.testing.assert_allclose(np.asarray(maha_ld, dtype=np.float64), maha_mp, rtol=1e-6)
    assert abs(float(log_det_ld) - log_det_mp) < 1e-6 * abs(log_det_mp)
    evaluation = evaluate_mixture(params, X)
    expected = -0.5 * (5 * np.log(2 * np.pi) + log_det_mp + maha_mp)
    np.testing.assert_allclose(evaluation.log_likelihood, expected, rtol=1e-9)


def test_entropy_sum_equals_log_likelihood_at_the_ppca_maximum_likelihood_solution():
    # Tipping & Bishop's closed form: W = U_H (Lambda_H - sigma^2)^1/2, sigma^2 = mean of the
    # discarded eigenvalues; there F = S (a stationary point of learning).
    rng = np.random.RandomState(2)
    X = rng.randn(400, 6) @ rng.randn(6, 6)
    mean = X.mean(axis=0)
    covariance = (X - mean).T @ (X - mean) / X.shape[0]
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    eigenvalues, eigenvectors = eigenvalues[::-1], eigenvectors[:, ::-1]
    H = 2
    sigma2 = eigenvalues[H:].mean()
    W = (eigenvectors[:, :H] * np.sqrt(eigenvalues[:H] - sigma2)).T
    params = GaussianMixtureParameters(
        np.ones(1), mean[None], loadings=W[None], noise=np.full((1, 6), sigma2)
    )
    decomposition = reference_decomposition(params, X, form="latent")
    assert decomposition.entropy_sum == pytest.approx(decomposition.elbo, rel=1e-10)


def test_latent_and_collapsed_entropy_sums_are_equal_for_any_parameters():
    rng = np.random.RandomState(3)
    params = GaussianMixtureParameters(
        np.array([0.3, 0.7]), rng.randn(2, 4), loadings=rng.randn(2, 2, 4), noise=rng.uniform(0.1, 1, (2, 4))
    )
    X = 2 * rng.randn(40, 4)
    latent = reference_decomposition(params, X, form="latent")
    collapsed = reference_decomposition(params, X, form="collapsed")
    assert latent.entropy_sum == pytest.approx(collapsed.entropy_sum, rel=1e-12)
    assert latent.elbo == collapsed.elbo


def test_weighted_means_do_not_depend_on_the_scale_of_the_weights():
    rng = np.random.RandomState(4)
    params = _random_mixture(rng)
    X = rng.randn(30, 4)
    w = rng.uniform(0.5, 2, 30)
    a = reference_decomposition(params, X, w)
    b = reference_decomposition(params, X, w * 2.0**-66)
    assert a == b
