"""FastPPCA: the closed-form and EM solutions against scikit-learn's PCA likelihood and the NumPy
reference; the entropy sum at convergence and the gap before it (docs/theory.rst, factor models)."""

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_digits, load_wine
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import StandardScaler

from fastelbo import FastPPCA
from reference_factor import (
    entropy_terms,
    log_likelihoods,
    posterior,
    ppca_maximum_likelihood,
    px_em_step,
)


def _digits():
    return load_digits().data


def _breast_cancer():
    return StandardScaler().fit_transform(load_breast_cancer().data)


DATA = {"digits": _digits, "breast_cancer": _breast_cancer}
# Breast cancer with n_components=10: see test_eigh_equals_pca_score_up_to_the_unbiased_covariance.
CASES = [("digits", 5), ("digits", 10), ("digits", 20), ("breast_cancer", 2), ("breast_cancer", 5)]


def _fit(X, n_components, solver):
    return FastPPCA(n_components, solver=solver, tol=1e-12, max_iter=5000, random_state=0).fit(X)


@pytest.mark.parametrize("solver", ["eigh", "em"])
@pytest.mark.parametrize("data, n_components", CASES)
def test_score_and_entropy_sum_equal_sklearn_pca_score(data, n_components, solver):
    X = DATA[data]()
    expected = PCA(n_components).fit(X).score(X)
    ppca = _fit(X, n_components, solver)
    assert ppca.converged_
    assert ppca.score(X) == pytest.approx(expected, rel=1e-6)
    assert ppca.entropy_decomposition().entropy_sum == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("n_components", [2, 5, 10])
def test_eigh_equals_pca_score_up_to_the_unbiased_covariance(n_components):
    # PCA's variances divide by N - 1, so its model covariance is N/(N-1) times the ML one; at the
    # ML solution tr(C^-1 S) = D, hence PCA's score is exactly lower by D/2 (log a + 1/a - 1),
    # a = N/(N-1). (For breast cancer with 10 components this shift alone exceeds 1e-6 |LL|.)
    X = _breast_cancer()
    n_samples, n_features = X.shape
    a = n_samples / (n_samples - 1)
    shift = 0.5 * n_features * (np.log(a) + 1 / a - 1)
    ppca = FastPPCA(n_components).fit(X)
    assert ppca.score(X) - shift == pytest.approx(PCA(n_components).fit(X).score(X), rel=1e-12)


@pytest.mark.parametrize("solver", ["eigh", "em"])
def test_fitted_model_is_the_reference_ml_solution(solver):
    X = _breast_cancer()
    mean, covariance = ppca_maximum_likelihood(X, 4)
    ppca = _fit(X, 4, solver)
    np.testing.assert_allclose(ppca.mean_, mean, atol=1e-12)
    np.testing.assert_allclose(ppca.get_covariance(), covariance, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("solver", ["eigh", "em"])
def test_entropy_sum_equals_elbo_at_convergence(solver):
    X = _digits()
    decomposition = _fit(X, 10, solver).entropy_decomposition()
    assert abs(decomposition.gap) <= 1e-6 * abs(decomposition.elbo)


def test_gap_is_visibly_nonzero_after_three_iterations_from_a_random_start():
    X = _digits()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ppca = FastPPCA(10, solver="em", max_iter=3, random_state=0).fit(X)
    decomposition = ppca.entropy_decomposition()
    assert abs(decomposition.gap) > 1e-3 * abs(decomposition.elbo)
    assert np.all(np.abs(ppca.elbo_history_ - ppca.entropy_sum_history_) > 1e-3 * np.abs(ppca.elbo_history_))


def test_em_iterations_follow_the_reference_step_and_histories():
    X = _breast_cancer()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = FastPPCA(3, solver="em", max_iter=0, random_state=7).fit(X)
        one = FastPPCA(3, solver="em", max_iter=1, random_state=7).fit(X)
    loadings, noise = px_em_step(X, start.mean_, start.loadings_, start.noise_variance_, spherical=True)
    # The fitted loadings are stored rotated to their principal axes (loadings_ = diag(s) components_);
    # a rotation of the latent space is the same model, so the step is compared through W W^T.
    np.testing.assert_allclose(one.loadings_.T @ one.loadings_, loadings.T @ loadings, rtol=1e-9, atol=1e-12)
    assert one.noise_variance_ == pytest.approx(noise[0], rel=1e-10)
    # F(q^0, Theta^0) is the log-likelihood of the start; S(q^0, Theta^1) per docs/theory.rst (factor models).
    assert one.elbo_history_[0] == pytest.approx(
        log_likelihoods(X, start.mean_, start.loadings_, start.noise_variance_).mean(), rel=1e-10
    )
    S = entropy_terms(start.loadings_, start.noise_variance_, one.noise_variance_)[3]
    assert one.entropy_sum_history_[0] == pytest.approx(S, rel=1e-10)


def test_em_elbo_never_decreases():
    X = _digits()
    ppca = FastPPCA(8, solver="em", tol=1e-10, max_iter=500, random_state=1).fit(X)
    assert np.all(np.diff(ppca.elbo_history_) >= -1e-9 * np.abs(ppca.elbo_history_[1:]))


def _closed_form_mean_log_likelihood(X, n_components):
    """Tipping & Bishop's maximum mean log-likelihood from NumPy's eigenvalues of the ML covariance:
    the model keeps the H largest and replaces the others by their mean (none left for H = D)."""
    eigenvalues = np.linalg.eigvalsh(np.cov(X.T, bias=True))[::-1]
    n_features = eigenvalues.shape[0]
    rest = eigenvalues[n_components:]
    noise = rest.mean() if rest.size else 0.0
    model = np.concatenate([eigenvalues[:n_components], np.full(rest.shape, noise)])
    return -0.5 * (n_features * np.log(2 * np.pi) + np.sum(np.log(model)) + np.sum(eigenvalues / model))


def _correlated():
    rng = np.random.RandomState(0)
    return rng.randn(500, 10) @ rng.randn(10, 10)


EM_DATA = {
    "wine-raw": lambda: load_wine().data,
    "wine-standardised": lambda: StandardScaler().fit_transform(load_wine().data),
    "breast-cancer-standardised": _breast_cancer,
    "correlated": _correlated,
}


@pytest.mark.parametrize("seed", [0, 2])
@pytest.mark.parametrize("rank", ["D", "D-1", "3"])
@pytest.mark.parametrize("data", sorted(EM_DATA))
def test_em_reaches_the_closed_form_likelihood_within_tol(data, rank, seed):
    # EM (default tol=1e-6) from a random start stopped at saddle points, its collapsed loading
    # directions regrowing by less than tol per step (raw wine: 4.6 nats below the optimum, breast
    # cancer 0.33), and short of the optimum by several tol as the noise crawled to the smallest
    # eigenvalue (H = D, D - 1); each time with converged_ True. A converged fit is within tol.
    X = EM_DATA[data]()
    n_features = X.shape[1]
    n_components = {"D": n_features, "D-1": n_features - 1, "3": 3}[rank]
    ppca = FastPPCA(n_components, solver="em", random_state=seed).fit(X)
    assert ppca.converged_
    expected = _closed_form_mean_log_likelihood(X, n_components)
    assert abs(ppca.score(X) - expected) <= ppca.tol
    if rank == "D":  # the default n_components (N > D) is this fit
        default = FastPPCA(solver="em", random_state=seed).fit(X)
        assert default.n_components_ == n_features and default.score(X) == ppca.score(X)


@pytest.mark.parametrize("solver", ["eigh", "em"])
def test_inference_matches_reference(solver):
    X = _breast_cancer()
    ppca = _fit(X, 4, solver)
    np.testing.assert_allclose(
        ppca.score_samples(X),
        log_likelihoods(X, ppca.mean_, ppca.loadings_, ppca.noise_variance_),
        rtol=1e-10,
    )
    # transform is PCA's projection; the posterior mean E[z | x] of the loadings_ is that projection
    # times sqrt(explained_variance_ - noise_variance_) / explained_variance_ (the docstring's relation).
    projection = (X - ppca.mean_) @ ppca.components_.T
    np.testing.assert_allclose(ppca.transform(X), projection, rtol=1e-12, atol=1e-12)
    means, _ = posterior(X, ppca.mean_, ppca.loadings_, ppca.noise_variance_)
    shrink = np.sqrt(ppca.explained_variance_ - ppca.noise_variance_) / ppca.explained_variance_
    np.testing.assert_allclose(projection * shrink, means, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ppca.get_precision() @ ppca.get_covariance(), np.eye(X.shape[1]), atol=1e-9)
    # The loadings are the principal axes scaled by the variance each holds beyond the noise.
    expected_loadings = np.sqrt(ppca.explained_variance_ - ppca.noise_variance_)[:, None] * ppca.components_
    np.testing.assert_allclose(ppca.loadings_, expected_loadings, rtol=1e-10, atol=1e-14)


def test_default_n_components_is_min_of_samples_and_features():
    X = _breast_cancer()
    ppca = FastPPCA().fit(X)
    assert ppca.components_.shape == (X.shape[1], X.shape[1])
    assert ppca.n_components_ == X.shape[1] == PCA().fit(X).n_components_
    assert ppca.noise_variance_ == 0.0
    wide = FastPPCA().fit(X[:12])
    assert wide.n_components_ == 12 == PCA().fit(X[:12]).n_components_


@pytest.mark.parametrize(
    "params, message",
    [
        ({"n_components": -1}, "n_components"),
        ({"n_components": 1.5}, "n_components"),
        ({"n_components": 1.0}, "n_components"),
        ({"n_components": True}, "n_components"),
        ({"n_components": "auto"}, "n_components"),
        ({"svd_solver": "lapack"}, "svd_solver must be one of"),
        ({"whiten": 1}, "whiten"),
        ({"copy": "yes"}, "copy"),
        ({"iterated_power": -1}, "iterated_power"),
        ({"iterated_power": "fast"}, "iterated_power"),
        ({"n_oversamples": 0}, "n_oversamples"),
        ({"power_iteration_normalizer": "qr"}, "power_iteration_normalizer"),
        ({"solver": "svd"}, "solver must be one of"),
        ({"tol": -1.0}, "tol"),
        ({"max_iter": -1}, "max_iter"),
        ({"n_init": 0}, "n_init"),
        ({"warm_start": "yes"}, "warm_start"),
        ({"n_jobs": 0}, "n_jobs"),
        ({"random_state": "a"}, "random_state"),
        ({"n_components": 31}, "n_components must be <= n_features"),
    ],
)
def test_fit_rejects_bad_hyperparameters(params, message):
    with pytest.raises((ValueError, TypeError), match=message):
        FastPPCA(**params).fit(_breast_cancer())
