"""Finite X whose squares overflow the working dtype: FastGMM raises a ValueError naming the cause
(the overflow, X's largest value, the dtype) instead of returning NaN or infinite numbers, in fit and
in every inference method."""

import numpy as np
import pytest

from fastelbo import FastGMM

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]
# |X| * 5 beyond sqrt(largest float): squared distances overflow, the values themselves do not.
OVERFLOWING_SCALE = {np.float32: 1e19, np.float64: 1e160}


def _data(seed=0):
    rng = np.random.RandomState(seed)
    return np.concatenate([rng.randn(100, 3), rng.randn(100, 3) * 0.5 + 4])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_fit_on_data_whose_squares_overflow_raises_naming_the_overflow(covariance_type, dtype):
    X = (_data() * OVERFLOWING_SCALE[dtype]).astype(dtype)
    assert np.all(np.isfinite(X))
    # Either the E-step's sums overflow, or (float32) the initial covariances do not fit the dtype.
    with pytest.raises(ValueError, match=f"(overflowed|do not fit in) {np.dtype(dtype).name}"):
        FastGMM(2, covariance_type=covariance_type, random_state=0).fit(X)


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_truncated_fit_on_data_whose_squares_overflow_raises_naming_the_overflow(covariance_type):
    X = (_data() * OVERFLOWING_SCALE[np.float32]).astype(np.float32)
    with pytest.raises(ValueError, match="overflowed float32.*float64"):
        FastGMM(3, covariance_type=covariance_type, n_active=2, random_state=0).fit(X)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_inference_on_data_whose_squares_overflow_raises_naming_the_overflow(covariance_type, dtype):
    X = _data().astype(dtype)
    gmm = FastGMM(2, covariance_type=covariance_type, random_state=0).fit(X)
    far = X * OVERFLOWING_SCALE[dtype]
    for method in (
        gmm.score_samples,
        gmm.score,
        gmm.predict,
        gmm.predict_proba,
        gmm.bic,
        gmm.entropy_decomposition,
    ):
        with pytest.raises(ValueError, match="overflowed"):
            method(far)
    # The model is unchanged and still answers on ordinary data.
    assert np.all(np.isfinite(gmm.score_samples(X)))
