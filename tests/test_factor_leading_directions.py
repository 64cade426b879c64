"""The leading directions of a wide data set's factor (D >= 256 features), taken from a subset
eigensolver on the factor's Gram matrix and refined with the factor itself, equal the full SVD's
where the spread of the kept singular values allows; beyond it (a Heywood case's whitened factor),
the SVD is used. A factor-analysis fit through them equals the fit through the SVD."""

import warnings

import numpy as np
import pytest
from scipy import linalg

import fastelbo.factor._linear_gaussian as linear_gaussian
from fastelbo import FastFactorAnalysis, FastPPCA


def _svd_directions(factor, n_components):
    """The reference: squared singular values and sign-fixed right singular vectors of a full SVD."""
    _, values, vectors = linalg.svd(factor, full_matrices=False, lapack_driver="gesvd")
    vectors = vectors[:n_components]
    signs = np.sign(vectors[np.arange(n_components), np.argmax(np.abs(vectors), axis=1)])
    return values[:n_components] ** 2, vectors * signs[:, None]


def _whitened_factor(n_features, n_components, tiny_noise=None, seed=0):
    """The factor the factor-analysis step decomposes: the QR factor of centred rows of a factor
    model, divided by the roots of its noise variances (some of them tiny for a Heywood case)."""
    rng = np.random.default_rng(seed)
    noise = rng.uniform(0.5, 2.0, n_features)
    if tiny_noise is not None:
        noise[:3] = tiny_noise
    n_rows = 3 * n_features
    X = rng.normal(size=(n_rows, n_components)) @ rng.normal(size=(n_components, n_features))
    X += rng.normal(size=(n_rows, n_features)) * np.sqrt(noise)
    factor = linalg.qr(X - X.mean(axis=0), mode="r")[0][:n_features] / np.sqrt(n_rows)
    return factor / np.sqrt(noise)[None, :]


@pytest.mark.parametrize("n_features, n_components", [(256, 5), (300, 20), (400, 60)])
def test_the_gram_directions_equal_the_svds(n_features, n_components):
    factor = _whitened_factor(n_features, n_components)
    assert linear_gaussian.leading_directions_of_gram(factor, n_components) is not None
    squares, vectors = linear_gaussian._leading_directions(factor, n_components)
    expected_squares, expected_vectors = _svd_directions(factor, n_components)
    np.testing.assert_allclose(squares, expected_squares, rtol=1e-12)
    np.testing.assert_allclose(vectors, expected_vectors, atol=1e-10)


def test_a_heywood_cases_factor_takes_the_svd():
    factor = _whitened_factor(300, 10, tiny_noise=1e-8)
    assert linear_gaussian.leading_directions_of_gram(factor, 10) is None
    squares, vectors = linear_gaussian._leading_directions(factor, 10)
    expected_squares, expected_vectors = _svd_directions(factor, 10)
    np.testing.assert_array_equal(squares, expected_squares)
    np.testing.assert_array_equal(vectors, expected_vectors)


@pytest.mark.parametrize("make", [lambda: FastFactorAnalysis(8, tol=1e-8), lambda: FastPPCA(8)])
def test_a_fit_through_the_gram_directions_equals_the_fit_through_the_svd(monkeypatch, make):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(1500, 8)) @ rng.normal(size=(8, 300)) + rng.normal(size=(1500, 300))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        through_gram = make().fit(X)
        monkeypatch.setattr(linear_gaussian, "GRAM_DIRECTIONS_MIN_FEATURES", np.inf)
        through_svd = make().fit(X)
    assert through_gram.n_iter_ == through_svd.n_iter_
    np.testing.assert_allclose(through_gram.noise_variance_, through_svd.noise_variance_, rtol=1e-9)
    np.testing.assert_allclose(through_gram.components_, through_svd.components_, rtol=1e-8, atol=1e-10)
    assert through_gram.score(X) == pytest.approx(through_svd.score(X), rel=1e-12)
    if isinstance(through_gram, FastPPCA):  # every eigenvalue (the noise is the mean of the rest)
        np.testing.assert_allclose(
            through_gram.explained_variance_, through_svd.explained_variance_, rtol=1e-12
        )
        np.testing.assert_allclose(through_gram.components_, through_svd.components_, atol=1e-10)


@pytest.mark.parametrize("n_components", [0.9, "mle", 299])
def test_ppcas_dimension_choices_read_the_same_spectrum_from_either_route(monkeypatch, n_components):
    rng = np.random.default_rng(4)
    X = rng.normal(size=(1500, 8)) @ rng.normal(size=(8, 300)) + rng.normal(size=(1500, 300))
    through_gram = FastPPCA(n_components).fit(X)
    monkeypatch.setattr(linear_gaussian, "GRAM_DIRECTIONS_MIN_FEATURES", np.inf)
    through_svd = FastPPCA(n_components).fit(X)
    assert through_gram.n_components_ == through_svd.n_components_
    assert through_gram.noise_variance_ == pytest.approx(through_svd.noise_variance_, rel=1e-12)
    assert through_gram.score(X) == pytest.approx(through_svd.score(X), rel=1e-12)


@pytest.mark.parametrize(
    "make", [lambda: FastFactorAnalysis(0), lambda: FastPPCA(0), lambda: FastPPCA(0, solver="em")]
)
def test_no_factors_with_many_features_is_the_independent_gaussian_model(make):
    # FastFactorAnalysis(0) asked the subset eigensolver for no eigenvalues and raised its
    # 'Requested eigenvalue indices are not valid'.
    X = np.random.default_rng(5).normal(size=(600, 300)) * np.linspace(0.5, 2.0, 300)
    model = make().fit(X)
    expected = -0.5 * np.sum(np.log(2 * np.pi * model.get_covariance().diagonal()) + 1.0)
    if isinstance(model, FastFactorAnalysis):  # per-feature noise: each feature's own variance
        assert model.score(X) == pytest.approx(expected, rel=1e-10)
    np.testing.assert_allclose(model.get_covariance(), np.diag(model.get_covariance().diagonal()))


@pytest.mark.parametrize("noise", [1.0, 0.01])
@pytest.mark.parametrize("n_components", [1, 20, 298, 299])
def test_ppcas_closed_form_from_the_covariance_equals_the_datas_svd(n_components, noise):
    # From 256 features FastPPCA reads its leading eigenpairs off the accumulated covariance and
    # the noise off the factor's residual (where the leading values spread over less than 1e6,
    # else the factor's SVD). The reference: the SVD of the centred data, whose squared singular
    # values are the maximum-likelihood covariance's eigenvalues to round-off of the largest.
    rng = np.random.default_rng(6)
    X = rng.normal(size=(2000, 12)) @ rng.normal(size=(12, 300)) * 10 + rng.normal(size=(2000, 300)) * noise
    _, values, vectors = np.linalg.svd((X - X.mean(axis=0)) / np.sqrt(X.shape[0]), full_matrices=False)
    values = values**2
    model = FastPPCA(n_components).fit(X)
    assert model.noise_variance_ == pytest.approx(np.mean(values[n_components:]), rel=1e-11)
    np.testing.assert_allclose(
        model.explained_variance_, values[:n_components], rtol=1e-11, atol=1e-14 * values[0]
    )
    resolved = min(n_components, 12)  # directions beyond the 12 factors: near-equal values
    alignment = np.abs(np.sum(model.components_[:resolved] * vectors[:resolved], axis=1))
    np.testing.assert_allclose(alignment, 1.0, atol=1e-10)


def test_the_fast_covariance_factor_drops_the_directions_of_no_variance():
    # A duplicated and a constant column: the pivoted Cholesky factor of the covariance stops
    # where what is left is round-off, with one row per direction of variance.
    from fastelbo.factor._scatter import fast_data_scatter

    rng = np.random.default_rng(7)
    X = rng.normal(size=(1000, 300)) * np.logspace(-6, 6, 300)
    X[:, 10] = X[:, 3]
    X[:, 20] = 5.0
    scatter = fast_data_scatter(X)
    assert scatter.factor.shape == (298, 300)
    covariance = np.cov(X.T, bias=True)
    scale = np.sqrt(np.maximum(np.diag(covariance), 1e-300))
    product = scatter.factor.T @ scatter.factor
    # Relative to each pair of features' scales: columns 1e12 apart in scale keep their digits.
    np.testing.assert_allclose(
        product / np.outer(scale, scale), covariance / np.outer(scale, scale), atol=1e-12
    )
