"""Statistics of given responsibilities (the initial M-step's input) match the reference, whether
the responsibilities are dense soft assignments or sparse hard ones (k-means labels)."""

import numpy as np
import pytest
import scipy.sparse as sp

import reference as ref
from fastelbo.mixture._statistics import statistics_from_responsibilities


@pytest.mark.parametrize("covariance_type", ref.COVARIANCE_TYPES)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("hard", [False, True], ids=["soft", "hard"])
def test_statistics_from_responsibilities_match_reference(covariance_type, weighted, hard):
    rng = np.random.default_rng(0)
    X, _ = ref.make_blobs_data(700, 4, 5, random_state=1)
    n_components = 5
    if hard:
        labels = rng.integers(n_components - 1, size=len(X))  # the last component stays empty
        dense = np.eye(n_components)[labels]
        resp = sp.csr_matrix(dense)
    else:
        dense = rng.dirichlet(np.ones(n_components), size=len(X))
        resp = dense
    sample_weight = rng.uniform(0.5, 2.0, size=len(X)) if weighted else None
    shift = X.mean(axis=0)
    stats = statistics_from_responsibilities(X, resp, shift, covariance_type, sample_weight)
    expected = ref.sufficient_statistics(
        X, dense, np.tile(shift, (n_components, 1)), covariance_type, sample_weight
    )
    np.testing.assert_allclose(stats.nk, expected["nk"], rtol=1e-12)
    np.testing.assert_allclose(stats.sx, expected["sx"], rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(stats.sxx, expected["sxx"], rtol=1e-10, atol=1e-9)
