"""The factor-model benchmark's cases and independent answers: the data are what the case ids say,
and the NumPy fits and scikit-learn's PCA (read as PPCA) give the reference's log-likelihoods, so the
report's checks compare fastelbo with correct numbers."""

import pathlib
import sys
import warnings

import numpy as np
import pytest
from sklearn.decomposition import FactorAnalysis

import reference_factor as ref

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "bench"))
import factor_cases  # noqa: E402
import factor_systems  # noqa: E402
import numpy_factor  # noqa: E402
import real_data  # noqa: E402
from factor_cases import FactorCase  # noqa: E402


def _reference_score(X, estimator):
    return float(
        np.mean(ref.log_likelihoods(X, estimator.mean_, estimator.components_, estimator.noise_variance_))
    )


def test_factor_cases_have_unique_ids_known_models_and_their_data():
    assert FactorCase("fa", 200_000, 64, 10).id == "fa-factor-N200k-D64-H10"
    assert FactorCase("ppca", 569, 30, 5, data="breast_cancer").id == "ppca-breast_cancer-N569-D30-H5"
    for suite in (factor_cases.FULL_CASES, factor_cases.QUICK_CASES):
        assert len({case.id for case in suite}) == len(suite)
        assert {case.model for case in suite} == set(factor_systems.MODELS)
        for case in suite:
            if case.data != "factor":
                assert factor_cases.make_data(case).shape == (case.n_samples, case.n_features)
    with pytest.raises(ValueError, match="data must be"):
        FactorCase("fa", 100, 8, 2, data="photos")
    with pytest.raises(ValueError, match="30 features"):
        factor_cases.make_data(FactorCase("fa", 100, 64, 2, data="breast_cancer"))


def test_synthetic_factor_data_have_the_factor_model_covariance():
    X = factor_cases.make_data(FactorCase("fa", 200_000, 6, 2))
    rng = np.random.RandomState(0)  # factor_data's draws, in its order
    loadings, noise = rng.standard_normal((2, 6)), rng.uniform(0.5, 2.0, 6)
    np.testing.assert_allclose(np.cov(X, rowvar=False), loadings.T @ loadings + np.diag(noise), atol=0.05)


def test_breast_cancer_is_standardised():
    X = real_data.breast_cancer()
    np.testing.assert_allclose(X.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(X.std(axis=0), 1.0, rtol=1e-12)


def test_numpy_ppca_is_the_reference_maximum_likelihood_solution():
    X = real_data.breast_cancer()
    mean, covariance = ref.ppca_maximum_likelihood(X, 4)
    ppca = numpy_factor.NumpyPPCA(4).fit(X)
    np.testing.assert_allclose(ppca.mean_, mean, atol=1e-12)
    np.testing.assert_allclose(ppca.get_covariance(), covariance, rtol=1e-10, atol=1e-12)
    assert ppca.score(X) == pytest.approx(_reference_score(X, ppca), rel=1e-10)


@pytest.mark.parametrize("n_components", [2, 5, 10])
def test_sklearn_pca_score_moved_to_the_maximum_likelihood_model_is_the_reference_likelihood(n_components):
    X = real_data.breast_cancer()
    mean, covariance = ref.ppca_maximum_likelihood(X, n_components)
    _, log_det = np.linalg.slogdet(covariance)
    deviations = X - mean
    expected = -0.5 * np.mean(
        X.shape[1] * ref.LOG_2PI
        + log_det
        + np.sum(deviations * np.linalg.solve(covariance, deviations.T).T, 1)
    )
    assert factor_systems.MaximumLikelihoodPCA(n_components).fit(X).score(X) == pytest.approx(
        expected, rel=1e-10
    )


def test_numpy_factor_analysis_is_monotone_em_and_reaches_sklearn():
    X = real_data.breast_cancer()
    history = []
    for max_iter in (1, 2, 5, 20, 100):
        fa = numpy_factor.NumpyFactorAnalysis(3, tol=0.0, max_iter=max_iter).fit(X)
        assert fa.score(X) == pytest.approx(_reference_score(X, fa), rel=1e-10)
        history.append(fa.score(X))
    assert np.all(np.diff(history) >= -1e-12 * np.abs(history[1:]))  # EM never lowers the likelihood
    fa = numpy_factor.NumpyFactorAnalysis(3, tol=1e-8, max_iter=20_000).fit(X)
    assert fa.converged_
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = FactorAnalysis(3, tol=1e-8, max_iter=20_000).fit(X).score(X)
    assert fa.score(X) == pytest.approx(expected, rel=1e-6)
