"""FastFactorAnalysis as a drop-in for scikit-learn's FactorAnalysis: which loadings it returns
(factors are identified only up to a rotation), ``n_components=0``, and a precision that inverts
the model covariance to round-off.

References: scikit-learn's FactorAnalysis fitted to tight tolerance on the same data, and closed
forms (with no factors, the model is the features' independent Gaussians).
"""

import warnings

import numpy as np
import pytest
from scipy import linalg
from sklearn.decomposition import FactorAnalysis

from fastelbo import FastFactorAnalysis
from fastelbo.factor._linear_gaussian import noise_floor


def _factor_data(seed, n_samples=500, n_features=8, n_factors=3):
    rng = np.random.RandomState(seed)
    loadings = rng.randn(n_factors, n_features)
    noise = np.sqrt(rng.uniform(0.2, 1.0, n_features))
    return rng.randn(n_samples, n_factors) @ loadings + rng.randn(n_samples, n_features) * noise


def _fit_both(X, n_components, rotation):
    ours = FastFactorAnalysis(n_components, rotation=rotation, tol=1e-10, max_iter=100000).fit(X)
    theirs = FactorAnalysis(n_components, rotation=rotation, tol=1e-10, max_iter=100000).fit(X)
    return ours, theirs


@pytest.mark.parametrize("rotation", [None, "varimax", "quartimax"])
@pytest.mark.parametrize("seed", [0, 1, 3])
def test_components_and_transform_equal_scikit_learns_up_to_sign(seed, rotation):
    X = _factor_data(seed)
    ours, theirs = _fit_both(X, 3, rotation)
    # The same optimum first (else the loadings may legitimately differ).
    assert ours.score(X) == pytest.approx(theirs.score(X), abs=1e-9)
    signs = np.sign(np.sum(ours.components_ * theirs.components_, axis=1))
    scale = np.abs(theirs.components_).max()
    np.testing.assert_allclose(ours.components_ * signs[:, None], theirs.components_, atol=1e-5 * scale)
    np.testing.assert_allclose(ours.transform(X) * signs, theirs.transform(X), atol=1e-4)


@pytest.mark.parametrize("seed", [0, 5])
def test_unrotated_components_are_principal_factors_with_a_fixed_sign(seed):
    X = _factor_data(seed, n_features=10, n_factors=4)
    fa = FastFactorAnalysis(4).fit(X)
    scaled = fa.components_ / np.sqrt(fa.noise_variance_)
    gram = scaled @ scaled.T
    off_diagonal = gram - np.diag(np.diag(gram))
    assert np.abs(off_diagonal).max() <= 1e-9 * np.abs(gram).max()
    assert np.all(np.diff(np.diag(gram)) < 0)
    largest = fa.components_[np.arange(4), np.argmax(np.abs(fa.components_), axis=1)]
    assert np.all(largest > 0)
    # -X has the loadings -components_: the same rows once the sign is fixed.
    flipped = FastFactorAnalysis(4).fit(-X)
    np.testing.assert_allclose(flipped.components_, fa.components_, atol=1e-8 * np.abs(fa.components_).max())


def test_no_factors_is_the_independent_gaussian_model():
    X = _factor_data(2, n_samples=60, n_features=5)
    fa = FastFactorAnalysis(0).fit(X)
    assert fa.components_.shape == (0, 5)
    assert fa.transform(X).shape == (60, 0)
    np.testing.assert_allclose(fa.noise_variance_, X.var(axis=0), rtol=1e-12)
    variances = X.var(axis=0)
    expected = -0.5 * (np.log(2 * np.pi * variances) + (X - X.mean(axis=0)) ** 2 / variances).sum(axis=1)
    np.testing.assert_allclose(fa.score_samples(X), expected, rtol=1e-12)
    assert fa.loglike_[-1] == pytest.approx(expected.sum(), rel=1e-12)
    np.testing.assert_allclose(fa.get_precision(), np.diag(1 / variances), rtol=1e-12)
    theirs = FactorAnalysis(0).fit(X)
    assert fa.score(X) == pytest.approx(theirs.score(X), rel=1e-12)
    decomposition = fa.entropy_decomposition()
    assert decomposition.variational_entropy == 0.0
    assert decomposition.gap == pytest.approx(0.0, abs=1e-12 * abs(decomposition.elbo))


def test_precision_inverts_the_covariance_when_every_direction_has_a_factor():
    # As many factors as features: every model with W^T W + diag(noise) = S, the sample
    # covariance, is a maximum of the likelihood, and which one EM stops at is round-off's choice
    # (with OpenBLAS's AVX-512 kernels no noise reaches the floor). So the Heywood model is built:
    # two unique variances at their floor, as EM leaves them with AVX2's rounding, the others
    # half S's smallest eigenvalue, W = chol(S - diag(noise)). The step-free form of the precision
    # amplifies round-off by 1 / noise here (its residual 30 to 100 times the bound below); the
    # covariance itself is well-conditioned.
    rng = np.random.RandomState(93)
    loadings = rng.randn(3, 5)
    latents = rng.randn(20, 3)
    X = latents @ loadings + rng.gamma(1, size=5) * rng.randn(20, 5)
    sample_covariance = np.cov(X.T, bias=True)
    floored = np.isin(np.arange(5), [2, 4])
    fa = FastFactorAnalysis(5)
    fa.noise_variance_ = np.where(
        floored, noise_floor(X.var(axis=0), "diag"), 0.5 * np.linalg.eigvalsh(sample_covariance)[0]
    )
    fa.components_ = linalg.cholesky(sample_covariance - np.diag(fa.noise_variance_))
    fa.mean_ = X.mean(axis=0)
    covariance = fa.get_covariance()
    np.testing.assert_allclose(covariance, sample_covariance, rtol=0, atol=1e-14 * np.abs(covariance).max())
    condition = np.linalg.cond(covariance)
    assert condition < 1e4
    residual = covariance @ fa.get_precision() - np.eye(5)
    # What a backward-stable inversion leaves (eps times the condition number, times a small
    # constant); the noise's 1e9 amplification of round-off does not reach it.
    assert np.abs(residual).max() < 10 * np.finfo(float).eps * condition


def test_the_sign_does_not_depend_on_the_row_order_when_columns_are_equal_up_to_sign():
    # Columns x and -x load equally up to round-off: the first of them decides every row's sign.
    rng = np.random.RandomState(0)
    X = rng.randn(200, 4) @ rng.randn(4, 4)
    X = np.hstack([X, -X[:, :1]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = FastFactorAnalysis(2).fit(X).components_
        for seed in range(6):
            shuffled = X[np.random.RandomState(seed).permutation(len(X))]
            components = FastFactorAnalysis(2).fit(shuffled).components_
            np.testing.assert_allclose(components, reference, atol=1e-6 * np.abs(reference).max())
