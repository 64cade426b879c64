"""The benchmark's NumPy competitor (bench/numpy_em.py) computes the same EM as the reference, so a
benchmark comparing against it compares equal work."""

import pathlib
import sys

import numpy as np
import pytest

import reference as ref

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "bench"))
import numpy_em  # noqa: E402


@pytest.mark.parametrize("covariance_type", ref.COVARIANCE_TYPES)
def test_numpy_em_matches_reference_em(covariance_type):
    X, _ = ref.make_blobs_data(400, 3, 3, random_state=2)
    start = ref.em_start(X, 3, covariance_type, random_state=3)
    (weights, means, covariances), lower_bounds = numpy_em.fit(X, *start, covariance_type, 6, reg_covar=0.0)
    expected = ref.em(X, *start, covariance_type, 6, reg_covar=0.0)
    np.testing.assert_allclose(lower_bounds, expected["elbo"], rtol=1e-10)
    for actual, wanted in zip((weights, means, covariances), expected["final"], strict=True):
        np.testing.assert_allclose(actual, wanted, rtol=1e-8, atol=1e-10)
