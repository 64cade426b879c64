"""FastGMM's log-likelihoods and responsibilities keep their digits when the data sit far from the
origin: a float64 fit of clusters offset by 1e4 ... 1e8 scores its returned parameters as an
extended-precision evaluation does (``independent_evaluation.py``: longdouble Cholesky factors of
the covariances, rows centred on each mean).

Tied covariances whitened the means before subtracting the expansion point, which lost the offset's
digits (3e-10 nats per row at 1e6 where the bound is 2e-13).
"""

import numpy as np
import pytest

from fastelbo import FastGMM
from independent_evaluation import evaluate_mixture, gmm_parameters

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]
EPS = np.finfo(np.float64).eps


def _offset_clusters(offset, seed=0):
    rng = np.random.RandomState(seed)
    centres = np.array([[0.0, 0.0, 0.0], [4.0, 1.0, -2.0], [-3.0, 5.0, 1.0]])
    shape = np.array([[1.0, 0.3, 0.0], [0.0, 0.8, 0.2], [0.0, 0.0, 0.5]])
    X = np.concatenate([centre + rng.standard_normal((120, 3)) @ shape for centre in centres])
    return X + offset * np.array([1.0, -1.0, 0.5])


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("offset", [1e4, 1e6, 1e8])
def test_scores_and_responsibilities_do_not_lose_the_offset(covariance_type, offset):
    X = _offset_clusters(offset)
    gmm = FastGMM(3, covariance_type=covariance_type, random_state=0).fit(X)
    evaluation = evaluate_mixture(gmm_parameters(gmm), X)
    # A careful float64 evaluation's own error (rows centred on each mean first) plus the terms'
    # round-off: a few hundred eps of the magnitudes summed, independent of the offset.
    allowed = (
        64 * X.shape[1] * EPS * (1.0 + evaluation.magnitude)
        + evaluation.float64_error
        + evaluation.reference_error
    )
    error = np.abs(gmm.score_samples(X) - evaluation.log_likelihood)
    assert np.all(error <= allowed), f"worst {error.max():.3g} (allowed {allowed[np.argmax(error)]:.3g})"
    responsibilities = gmm.predict_proba(X)
    np.testing.assert_allclose(responsibilities, evaluation.responsibilities, rtol=0, atol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("offset", [1e4, 1e6, 1e8])
def test_truncated_passes_do_not_lose_the_offset(covariance_type, offset):
    """With every component in every row's set (n_active = K) the truncated free energy is the
    log-likelihood: the ELBO of the fit's final (truncated) pass matches the extended evaluation
    of the returned parameters as closely as the exact pass's scores do."""
    X = _offset_clusters(offset)
    gmm = FastGMM(3, n_active=3, covariance_type=covariance_type, random_state=0).fit(X)
    evaluation = evaluate_mixture(gmm_parameters(gmm), X)
    allowed = np.mean(
        64 * X.shape[1] * EPS * (1.0 + evaluation.magnitude)
        + evaluation.float64_error
        + evaluation.reference_error
    )
    elbo = gmm.entropy_decomposition().elbo  # the fit's final pass: the truncated kernel
    assert abs(elbo - np.mean(evaluation.log_likelihood)) <= allowed
