"""FastGMM's inference on batches of any size, down to one row, which is scored without the
labelling pass that groups the rows of a batch by home component (it is its own run either way).
The scores, responsibilities and labels of clusters far apart for their widths, where the
expansion needs the homes, are those of an independent evaluation of the returned parameters, in
float64 and float32, for every batch size; a row scores as it does in the whole data, and a single
row bitwise as it does with its home.
"""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from fastelbo import FastGMM
from independent_evaluation import evaluate_mixture, gmm_parameters

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]
EPS = np.finfo(np.float64).eps
BATCH_ROWS = [1, 2, 9, 127, 700]


def _far_clusters(dtype):
    """Six clusters 1e4 apart with widths from 0.3 to 3 in four features, shuffled (a batch holds
    rows of several clusters), and a fit of them."""
    rng = np.random.RandomState(3)
    centres = rng.standard_normal((6, 4)) * 1e4
    widths = np.array([0.3, 1.0, 3.0, 0.5, 2.0, 1.0])
    labels = rng.randint(6, size=900)
    X = (centres[labels] + rng.standard_normal((900, 4)) * widths[labels, None]).astype(dtype)
    return X


def _fit(X, covariance_type):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return FastGMM(6, covariance_type=covariance_type, random_state=0, n_jobs=1).fit(X)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_batches_of_any_size_score_as_the_independent_evaluation(covariance_type, dtype):
    X = _far_clusters(dtype)
    gmm = _fit(X, covariance_type)
    # The case under test: the expansion families need homes on these data.
    assert gmm._needs_homes(X.dtype) == (covariance_type != "full")
    whole = gmm.score_samples(X)
    for rows in BATCH_ROWS:
        batch = X[:rows]
        evaluation = evaluate_mixture(gmm_parameters(gmm), batch)
        if dtype == np.float64:
            allowed = (
                64 * X.shape[1] * EPS * (1.0 + evaluation.magnitude)
                + evaluation.float64_error
                + evaluation.reference_error
            )
            atol_responsibilities = 1e-12
        else:  # float32 resolves these per-row values (-2 ... -15) to about 1e-6
            allowed = 2e-5 * (1.0 + np.abs(evaluation.log_likelihood))
            atol_responsibilities = 1e-5
        scores = gmm.score_samples(batch)
        assert scores.dtype == dtype
        error = np.abs(scores - evaluation.log_likelihood)
        assert np.all(error <= allowed), f"{rows} rows: worst {error.max():.3g}"
        np.testing.assert_allclose(
            gmm.predict_proba(batch), evaluation.responsibilities, rtol=0, atol=atol_responsibilities
        )
        np.testing.assert_array_equal(gmm.predict(batch), np.argmax(evaluation.responsibilities, axis=1))
        # The same rows in the whole data.
        np.testing.assert_allclose(scores, whole[:rows], rtol=0, atol=np.max(allowed))


@pytest.mark.parametrize("covariance_type", ["tied", "diag", "spherical"])
def test_a_single_row_scores_bitwise_as_with_its_home(covariance_type):
    # One row is its own run with or without a home: skipping the labelling pass changes no bit.
    X = _far_clusters(np.float32)
    gmm = _fit(X, covariance_type)
    for row in X[:20]:
        row = row[None, :]
        homes = gmm._homes_for(row)
        assert homes is not None
        with_home = gmm._pass(row, moments=False, log_norm=True, home=homes)[1]["log_norm"]
        np.testing.assert_array_equal(gmm.score_samples(row), with_home)
