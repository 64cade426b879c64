"""FastPPCA against scikit-learn's PCA: the same attributes and methods where the conventions agree,
and each deliberate difference (docstring of FastPPCA, README "FastPPCA and scikit-learn's PCA")
asserted with its documented size.

Notation: N samples, D features, H components, ``lam`` the eigenvalues of the data covariance
divided by N (computed here with NumPy from the centred rows), ``a = N / (N - 1)``.
"""

import warnings

import numpy as np
import pytest
from scipy import stats
from sklearn.datasets import load_digits, load_iris
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning

from fastelbo import FastPPCA

LOG_2PI = np.log(2.0 * np.pi)


def _tall():
    rng = np.random.RandomState(0)
    return rng.standard_normal((300, 8)) @ rng.standard_normal((8, 8)) + rng.uniform(-5, 5, 8)


def _wide():
    return np.random.RandomState(1).standard_normal((30, 100))


def _digits():
    return load_digits().data


DATA = {"tall": _tall, "wide": _wide, "digits": _digits}


def _eigenvalues(X):
    """All D eigenvalues of the covariance divided by N, descending (NumPy SVD of the centred rows)."""
    n_samples, n_features = X.shape
    values = np.linalg.svd(X - X.mean(axis=0), compute_uv=False) ** 2 / n_samples
    return np.concatenate([values, np.zeros(n_features - values.shape[0])])


def _pair(X, n_components, **params):
    return FastPPCA(n_components, **params).fit(X), PCA(n_components, svd_solver="full", **params).fit(X)


CASES = [
    ("tall", 0),
    ("tall", 1),
    ("tall", 3),
    ("tall", 8),
    ("tall", None),
    ("wide", 0),
    ("wide", 5),
    ("wide", 20),
    ("digits", 0),
    ("digits", 10),
    ("digits", 40),
    ("digits", 61),
]


@pytest.mark.parametrize("data, n_components", CASES)
def test_pca_attributes_up_to_the_variance_divisor(data, n_components):
    X = DATA[data]()
    ppca, pca = _pair(X, n_components)
    a = X.shape[0] / (X.shape[0] - 1)
    assert ppca.n_components_ == pca.n_components_
    assert ppca.n_samples_ == pca.n_samples_ == X.shape[0]
    assert ppca.n_features_in_ == pca.n_features_in_
    np.testing.assert_allclose(ppca.mean_, pca.mean_, rtol=1e-12, atol=1e-12)
    assert ppca.components_.shape == pca.components_.shape
    if ppca.n_components_ == 0:
        return
    # Variances divide by N: PCA's are a times FastPPCA's; ratios and singular values are PCA's.
    np.testing.assert_allclose(ppca.explained_variance_ * a, pca.explained_variance_, rtol=1e-9)
    np.testing.assert_allclose(ppca.explained_variance_ratio_, pca.explained_variance_ratio_, rtol=1e-9)
    np.testing.assert_allclose(ppca.singular_values_, pca.singular_values_, rtol=1e-9)
    np.testing.assert_allclose(ppca.explained_variance_, _eigenvalues(X)[: ppca.n_components_], rtol=1e-9)
    # Orthonormal rows, the same axes as PCA's and with its sign (largest-magnitude entry positive).
    np.testing.assert_allclose(ppca.components_ @ ppca.components_.T, np.eye(ppca.n_components_), atol=1e-12)
    overlaps = np.abs(np.sum(ppca.components_ * pca.components_, axis=1))
    np.testing.assert_allclose(overlaps, 1.0, atol=1e-8)
    largest = np.argmax(np.abs(ppca.components_), axis=1)
    assert np.all(ppca.components_[np.arange(ppca.n_components_), largest] > 0)
    np.testing.assert_allclose(ppca.components_, pca.components_, atol=1e-6)


@pytest.mark.parametrize("data, n_components", CASES)
@pytest.mark.parametrize("whiten", [False, True])
def test_transform_and_inverse_transform(data, n_components, whiten):
    X = DATA[data]()
    ppca, pca = _pair(X, n_components, whiten=whiten)
    a = X.shape[0] / (X.shape[0] - 1)
    ours, theirs = ppca.transform(X), pca.transform(X)
    assert ours.shape == theirs.shape == (X.shape[0], ppca.n_components_)
    # Whitened, FastPPCA's projections have unit variance dividing by N: sqrt(a) times PCA's.
    scale = np.sqrt(a) if whiten else 1.0
    np.testing.assert_allclose(ours, theirs * scale, rtol=1e-6, atol=1e-7 * np.abs(theirs).max(initial=1.0))
    if whiten and ppca.n_components_:
        np.testing.assert_allclose(ours.var(axis=0), 1.0, rtol=1e-9)
    # Both reconstruct the same point from their own projections (with no component, the mean:
    # PCA refuses an array without columns there).
    expected = pca.inverse_transform(theirs) if ppca.n_components_ else np.tile(pca.mean_, (X.shape[0], 1))
    np.testing.assert_allclose(ppca.inverse_transform(ours), expected, rtol=1e-7, atol=1e-7 * np.abs(X).max())


@pytest.mark.parametrize("data, n_components", [("tall", 0), ("tall", 1), ("tall", 3), ("digits", 10)])
def test_model_is_pca_model_with_variances_divided_by_n(data, n_components):
    """N >= D and H < D: PCA's model covariance is a times FastPPCA's, so its precision is FastPPCA's
    divided by a and its training score lower by exactly D/2 (log a + 1/a - 1)."""
    X = DATA[data]()
    ppca, pca = _pair(X, n_components)
    n_samples, n_features = X.shape
    a = n_samples / (n_samples - 1)
    assert ppca.noise_variance_ * a == pytest.approx(pca.noise_variance_, rel=1e-9)
    covariance = ppca.get_covariance()
    np.testing.assert_allclose(
        covariance * a, pca.get_covariance(), rtol=1e-9, atol=1e-12 * np.abs(covariance).max()
    )
    precision = ppca.get_precision()
    np.testing.assert_allclose(
        precision / a, pca.get_precision(), rtol=1e-7, atol=1e-9 * np.abs(precision).max()
    )
    shift = 0.5 * n_features * (np.log(a) + 1 / a - 1)
    assert ppca.score(X) - shift == pytest.approx(pca.score(X), rel=1e-10)
    # On other data: log N(x; mean, a C) from FastPPCA's own numbers.
    new = X[::7] * 1.3 + 0.5
    log_det = np.linalg.slogdet(covariance)[1]
    mahalanobis = -2.0 * ppca.score_samples(new) - n_features * LOG_2PI - log_det
    expected = -0.5 * (n_features * LOG_2PI + n_features * np.log(a) + log_det + mahalanobis / a)
    np.testing.assert_allclose(pca.score_samples(new), expected, rtol=1e-9)
    # FastPPCA's numbers are the maximum-likelihood model's: the Gaussian with its covariance.
    reference = stats.multivariate_normal(ppca.mean_, covariance).logpdf(new)
    np.testing.assert_allclose(ppca.score_samples(new), reference, rtol=1e-9)


@pytest.mark.parametrize("n_samples, n_features, n_components", [(30, 100, 10), (40, 60, 5), (30, 100, 0)])
def test_wide_noise_is_the_maximum_likelihood_average_over_all_discarded_directions(
    n_samples, n_features, n_components
):
    X = np.random.RandomState(2).standard_normal((n_samples, n_features))
    ppca, pca = _pair(X, n_components)
    lam = _eigenvalues(X)
    a = n_samples / (n_samples - 1)
    noise = lam[n_components:].mean()  # over D - H directions, the N - 1 ... D zeros included
    assert ppca.noise_variance_ == pytest.approx(noise, rel=1e-10)
    # PCA averages over min(N, D) - H: its noise is a (D - H) / (N - H) times FastPPCA's.
    factor = a * (n_features - n_components) / (n_samples - n_components)
    assert pca.noise_variance_ == pytest.approx(ppca.noise_variance_ * factor, rel=1e-9)
    # Each score is the closed form of its own model on the training data (tr(C^-1 S) = D at the
    # maximum-likelihood solution; H/a + (D - H) noise / PCA's noise for PCA's covariance).
    top = lam[:n_components]
    ours = -0.5 * (
        n_features * LOG_2PI + np.sum(np.log(top)) + (n_features - n_components) * np.log(noise) + n_features
    )
    assert ppca.score(X) == pytest.approx(ours, rel=1e-10)
    theirs = -0.5 * (
        n_features * LOG_2PI
        + np.sum(np.log(a * top))
        + (n_features - n_components) * np.log(pca.noise_variance_)
        + n_components / a
        + (n_features - n_components) * noise / pca.noise_variance_
    )
    assert pca.score(X) == pytest.approx(theirs, rel=1e-9)
    assert ppca.score(X) > pca.score(X)
    # The maximum-likelihood noise is a stationary point: the entropy sum equals the ELBO there.
    decomposition = ppca.entropy_decomposition()
    assert abs(decomposition.gap) <= 1e-10 * abs(decomposition.elbo)
    assert decomposition.note == ""


@pytest.mark.parametrize(
    "n_samples, n_features, n_components", [(30, 100, 10), (40, 60, 5), (30, 100, 0), (200, 10, 3)]
)
def test_training_score_difference_depends_only_on_the_shape(n_samples, n_features, n_components):
    """On the training data FastPPCA's score exceeds PCA's by 1/2 [H log a + (D - H) log r + H/a +
    (D - H)/r - D], r = a (D - H) / (min(N, D) - H) the ratio of the noises, whatever the data
    (N >= D: r = a and it is D/2 (log a + 1/a - 1)); 30 x 100 with 10 components: 33.88 nats."""
    for seed in (0, 1):
        X = np.random.RandomState(seed).uniform(0, 10, (n_samples, n_features))
        ppca, pca = _pair(X, n_components)
        a = n_samples / (n_samples - 1)
        H, D = n_components, n_features
        r = a * (D - H) / (min(n_samples, D) - H)
        assert pca.noise_variance_ / ppca.noise_variance_ == pytest.approx(r, rel=1e-9)
        difference = 0.5 * (H * np.log(a) + (D - H) * np.log(r) + H / a + (D - H) / r - D)
        assert ppca.score(X) - pca.score(X) == pytest.approx(difference, rel=1e-8)
    if (n_samples, n_features, n_components) == (30, 100, 10):
        assert r == pytest.approx(4.655, abs=1e-3) and difference == pytest.approx(33.88, abs=5e-3)


@pytest.mark.parametrize("data", ["tall", "iris"])
@pytest.mark.parametrize("solver", ["eigh", "em"])
def test_as_many_components_as_features_has_no_noise(data, solver):
    X = load_iris().data if data == "iris" else _tall()
    n_samples, n_features = X.shape
    params = {"solver": solver, "tol": 1e-13, "max_iter": 20000, "random_state": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ppca = FastPPCA(**params).fit(X)  # default: min(N, D) = D
    pca = PCA(svd_solver="full").fit(X)
    assert ppca.n_components_ == pca.n_components_ == n_features
    assert ppca.noise_variance_ == 0.0 == pca.noise_variance_
    # The model is the data's own Gaussian; the score is finite, PCA's shifted by the divisor.
    sample_covariance = np.cov(X.T, bias=True)
    rtol = 1e-9 if solver == "eigh" else 1e-5
    np.testing.assert_allclose(ppca.get_covariance(), sample_covariance, rtol=rtol, atol=rtol * 1e-3)
    np.testing.assert_allclose(ppca.get_precision() @ ppca.get_covariance(), np.eye(n_features), atol=1e-8)
    np.testing.assert_allclose(ppca.loadings_.T @ ppca.loadings_, ppca.get_covariance(), rtol=1e-12)
    expected = stats.multivariate_normal(X.mean(axis=0), sample_covariance).logpdf(X)
    np.testing.assert_allclose(ppca.score_samples(X), expected, rtol=rtol)
    a = n_samples / (n_samples - 1)
    shift = 0.5 * n_features * (np.log(a) + 1 / a - 1)
    assert ppca.score(X) - shift == pytest.approx(pca.score(X), rel=rtol)
    # No noise, no entropy decomposition; the histories' last entropy sum is its limit, -1/2 log|2 pi e C|.
    with pytest.raises(ValueError, match="noise_variance_ is 0"):
        ppca.entropy_decomposition()
    with pytest.raises(ValueError, match="noise_variance_ is 0"):
        ppca.entropy_decomposition(X)
    limit = -0.5 * np.linalg.slogdet(2 * np.pi * np.e * ppca.get_covariance())[1]
    assert ppca.entropy_sum_history_[-1] == pytest.approx(limit, rel=rtol)
    assert ppca.lower_bound_ == pytest.approx(expected.mean(), rel=rtol)


def test_as_many_components_as_features_on_singular_data_stays_finite():
    X = _digits()  # three constant pixels: rank 61 of 64
    ppca = FastPPCA().fit(X)
    assert ppca.n_components_ == 64 and ppca.noise_variance_ == 0.0
    floor = 1e-14 * X.var(axis=0).mean()
    # The directions without variance get the floor's variance (PCA's are round-off, ~1e-30).
    np.testing.assert_allclose(ppca.explained_variance_[61:], floor, rtol=1e-6)
    # The rows are the Gaussian of the other 61 pixels times a density floor^-1/2 per constant one.
    constant = X.var(axis=0) == 0
    assert np.count_nonzero(constant) == 3
    varying = X[:, ~constant]
    expected = stats.multivariate_normal(varying.mean(axis=0), np.cov(varying.T, bias=True)).logpdf(varying)
    expected -= 1.5 * np.log(2 * np.pi * floor)
    np.testing.assert_allclose(ppca.score_samples(X), expected, rtol=1e-9)


def test_components_at_least_the_rank_keep_the_noise_floor():
    """H >= rank, H < D (PCA's default on wide data, H = min(N, D) = N): PCA reports noise 0 and a
    singular covariance; FastPPCA holds the noise at its floor, 1e-14 times the mean variance."""
    X = _wide()
    ppca, pca = _pair(X, None)
    assert ppca.n_components_ == pca.n_components_ == X.shape[0]
    assert pca.noise_variance_ == 0.0
    assert ppca.noise_variance_ == pytest.approx(1e-14 * X.var(axis=0).mean(), rel=1e-9)
    assert np.all(np.isfinite(ppca.score_samples(X)))
    decomposition = ppca.entropy_decomposition()
    assert "boundary" in decomposition.note
    # One noise variance, shared by the D features, is at its floor (not D of them).
    assert decomposition.note.startswith(
        f"the noise variance (one, shared by the {X.shape[1]} features) at its floor"
    )
    assert decomposition.elbo == pytest.approx(ppca.score(X), rel=1e-10)
    # The last direction has no variance in the data: the model gives it the noise's.
    assert ppca.explained_variance_[-1] == ppca.noise_variance_


def test_whiten_changes_the_projection_not_the_model():
    X = _tall()
    plain, whitened = FastPPCA(3).fit(X), FastPPCA(3, whiten=True).fit(X)
    assert whitened.score(X) == plain.score(X)
    np.testing.assert_array_equal(whitened.get_covariance(), plain.get_covariance())
    np.testing.assert_array_equal(whitened.get_precision(), plain.get_precision())
    np.testing.assert_allclose(whitened.transform(X), plain.transform(X) / np.sqrt(plain.explained_variance_))
    # PCA's whitened covariance has variance ev (ev - noise) + noise along each component, not ev.
    pca = PCA(3, whiten=True, svd_solver="full").fit(X)
    along = np.diag(pca.components_ @ pca.get_covariance() @ pca.components_.T)
    ev, noise = pca.explained_variance_, pca.noise_variance_
    np.testing.assert_allclose(along, ev * (ev - noise) + noise, rtol=1e-9)
    assert pca.score(X) < PCA(3, svd_solver="full").fit(X).score(X)


@pytest.mark.parametrize(
    "data, n_components",
    [("digits", 0.5), ("digits", 0.9), ("digits", 0.99), ("tall", 0.8), ("wide", 0.5), ("iris", 0.95)],
)
def test_fraction_of_variance_chooses_pca_number_of_components(data, n_components):
    X = load_iris().data if data == "iris" else DATA[data]()
    ppca, pca = _pair(X, n_components)
    assert ppca.n_components_ == pca.n_components_
    assert ppca.explained_variance_ratio_.sum() > n_components
    assert ppca.explained_variance_ratio_[:-1].sum() <= n_components


@pytest.mark.parametrize("data", ["digits", "tall", "iris"])
def test_mle_chooses_pca_number_of_components(data):
    X = load_iris().data if data == "iris" else DATA[data]()
    ppca, pca = _pair(X, "mle")
    assert ppca.n_components_ == pca.n_components_
    # The choice does not depend on the data's scale (PCA's absolute threshold would).
    assert FastPPCA("mle").fit(X * 1e-9).n_components_ == ppca.n_components_


def test_mle_on_redundant_features_chooses_one():
    rng = np.random.RandomState(3)
    signal = rng.standard_normal((200, 1))
    X = signal @ rng.standard_normal((1, 12)) + 1e-3 * rng.standard_normal((200, 12))
    assert FastPPCA("mle").fit(X).n_components_ == PCA("mle").fit(X).n_components_ == 1


def test_mle_needs_as_many_samples_as_features():
    with pytest.raises(ValueError, match="n_components='mle' is only supported if n_samples >= n_features"):
        FastPPCA("mle").fit(_wide())


@pytest.mark.parametrize("n_rows", [40, 5])
def test_mle_with_integer_weights_is_pca_mle_of_the_repeated_rows(n_rows):
    # Minka's evidence counts the rows the weights stand for, as the default n_components does; 5
    # rows standing for 12 or more were refused for having fewer rows than the 8 features.
    rng = np.random.RandomState(0)
    X = rng.randn(n_rows, 3) @ rng.randn(3, 8) + 0.3 * rng.randn(n_rows, 8)
    weights = rng.randint(1, 5, n_rows)
    weights[0] = 3  # at least 12 rows stood for, whatever the draw
    expected = PCA("mle").fit(np.repeat(X, weights, axis=0)).n_components_
    assert FastPPCA("mle").fit(X, sample_weight=weights).n_components_ == expected
    assert FastPPCA("mle").fit(X, sample_weight=0.1 * weights).n_components_ == expected  # a common factor
    # Rows of weight 0 are absent rows, also from the count of samples.
    padded = np.vstack([X, 100 * rng.randn(30, 8)])
    zeros = np.concatenate([weights, np.zeros(30)])
    assert FastPPCA("mle").fit(padded, sample_weight=zeros).n_components_ == expected
    with pytest.raises(ValueError, match="the rows the sample weights stand for"):
        FastPPCA("mle").fit(X[:2], sample_weight=[1, 2])


def test_mle_refuses_weights_that_do_not_count_rows():
    # Weights 0.7 and 1 stand for no number of rows; the evidence counted 39.7 / 0.7 = 56.7 samples.
    rng = np.random.RandomState(0)
    X = rng.randn(40, 3) @ rng.randn(3, 6) + 0.3 * rng.randn(40, 6)
    weights = np.concatenate([[0.7], np.ones(39)])
    with pytest.raises(ValueError, match="n_components='mle' with sample_weight needs weights that count"):
        FastPPCA("mle").fit(X, sample_weight=weights)
    with pytest.raises(ValueError, match="n_components='mle' with sample_weight needs weights that count"):
        FastPPCA("mle").fit(X, sample_weight=rng.uniform(0.5, 1.5, 40))
    # Other n_components take such weights.
    assert FastPPCA(3).fit(X, sample_weight=weights).n_components_ == 3


@pytest.mark.parametrize("svd_solver", ["auto", "full", "covariance_eigh", "randomized", "arpack"])
def test_every_svd_solver_gives_the_exact_solution(svd_solver):
    X = _digits()
    reference = FastPPCA(10).fit(X)
    params = {"iterated_power": 3, "n_oversamples": 5, "power_iteration_normalizer": "LU", "copy": False}
    ppca = FastPPCA(10, svd_solver=svd_solver, random_state=0, **params).fit(X)
    np.testing.assert_array_equal(ppca.components_, reference.components_)
    np.testing.assert_array_equal(ppca.explained_variance_, reference.explained_variance_)
    assert ppca.noise_variance_ == reference.noise_variance_


def test_default_components_with_arpack_leave_one_out_as_pca():
    X = load_iris().data
    for data in (X, X.T):
        ppca, pca = FastPPCA(svd_solver="arpack").fit(data), PCA(svd_solver="arpack").fit(data)
        assert ppca.n_components_ == pca.n_components_ == min(data.shape) - 1


def test_em_fit_describes_its_loadings_as_pca():
    X = _tall()
    eigh = FastPPCA(3).fit(X)
    em = FastPPCA(3, solver="em", tol=1e-14, max_iter=20000, random_state=0).fit(X)
    assert em.converged_
    np.testing.assert_allclose(em.components_ @ em.components_.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(np.abs(np.sum(em.components_ * eigh.components_, axis=1)), 1.0, atol=1e-6)
    np.testing.assert_allclose(em.explained_variance_, eigh.explained_variance_, rtol=1e-6)
    np.testing.assert_allclose(em.explained_variance_ratio_, eigh.explained_variance_ratio_, rtol=1e-6)
    np.testing.assert_allclose(em.singular_values_, eigh.singular_values_, rtol=1e-6)
    # The model's own description: loadings_ = sqrt(ev - noise) components_, exactly.
    expected = np.sqrt(em.explained_variance_ - em.noise_variance_)[:, None] * em.components_
    np.testing.assert_allclose(em.loadings_, expected, rtol=1e-10, atol=1e-14)
    covariance = em.components_.T @ np.diag(em.explained_variance_ - em.noise_variance_) @ em.components_
    covariance += em.noise_variance_ * np.eye(X.shape[1])
    np.testing.assert_allclose(em.get_covariance(), covariance, rtol=1e-10)


def test_zero_components_is_isotropic_noise():
    X = _tall()
    ppca, pca = _pair(X, 0)
    assert ppca.components_.shape == (0, X.shape[1])
    assert ppca.transform(X).shape == (X.shape[0], 0)
    assert ppca.noise_variance_ == pytest.approx(X.var(axis=0).mean(), rel=1e-12)
    np.testing.assert_allclose(ppca.get_covariance(), ppca.noise_variance_ * np.eye(X.shape[1]), rtol=1e-12)
    decomposition = ppca.entropy_decomposition()
    assert decomposition.variational_entropy == 0.0 and decomposition.prior_entropy == 0.0
    assert abs(decomposition.gap) <= 1e-12 * abs(decomposition.elbo)
    np.testing.assert_allclose(
        ppca.inverse_transform(ppca.transform(X)), np.tile(ppca.mean_, (X.shape[0], 1))
    )
    np.testing.assert_allclose(ppca.get_covariance() * X.shape[0] / (X.shape[0] - 1), pca.get_covariance())


def test_warm_start_from_a_fit_without_noise():
    X = load_iris().data
    ppca = FastPPCA(solver="em", warm_start=True, tol=1e-12, max_iter=5000, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ppca.fit(X)
        first = ppca.score(X)
        assert ppca.noise_variance_ == 0.0
        ppca.fit(X)  # continues from the same model, the noise at its floor
    assert ppca.noise_variance_ == 0.0
    assert ppca.score(X) >= first - 1e-9 * abs(first)
    # The default n_components depends on n_samples: a warm start must not change it.
    with pytest.raises(ValueError, match="warm_start=True but these data give n_components = 2"):
        ppca.fit(X[:2])


def test_integer_weights_count_as_repeated_rows_for_the_default_components():
    X = _wide()[:, :40]
    weights = np.random.RandomState(4).randint(1, 4, X.shape[0])
    weighted = FastPPCA().fit(X, sample_weight=weights)
    repeated = FastPPCA().fit(np.repeat(X, weights, axis=0))
    assert weighted.n_components_ == repeated.n_components_ == min(int(weights.sum()), 40)
    np.testing.assert_allclose(weighted.singular_values_, repeated.singular_values_, rtol=1e-8)
    np.testing.assert_allclose(weighted.transform(X), repeated.transform(X), rtol=1e-7, atol=1e-9)
