"""The per-row maths shared by the CPU and CUDA kernels (csrc/include/fastelbo/row_maths.hpp):
log-sum-exp, responsibilities, the row's entropy and the Gaussian log-normaliser, checked through the
CPU pass against the float64 NumPy reference, at the corners the shared functions handle (an empty
component, a term below the underflow cutoff)."""

import numpy as np
import pytest

import reference as ref
from fastelbo import _core


def _pass(X, weights, means, variances, dtype):
    with np.errstate(divide="ignore"):
        log_weights = np.log(weights)
    return _core.gaussian_mixture_pass(
        np.ascontiguousarray(X, dtype=dtype),
        None,
        log_weights.astype(dtype),
        np.ascontiguousarray(means, dtype=dtype),
        (1.0 / np.sqrt(variances)).astype(dtype),
        None,
        None,
        "diag",
        compute_moments=False,
        return_log_norm=True,
        return_responsibilities=True,
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_posteriors_match_the_reference(dtype):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 3))
    weights = np.array([0.2, 0.5, 0.3])
    means = rng.standard_normal((3, 3))
    variances = rng.uniform(0.5, 2.0, (3, 3))
    out = _pass(X, weights, means, variances, dtype)
    expected = ref.e_step(X.astype(dtype), weights, means.astype(dtype), variances, "diag")
    rtol = 1e-10 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(out["log_norm"], expected["log_norm"], rtol=rtol)
    np.testing.assert_allclose(out["responsibilities"], expected["resp"], rtol=rtol, atol=rtol)
    np.testing.assert_allclose(out["sum_entropy"], expected["sum_entropy"], rtol=10 * rtol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_empty_component_gets_exactly_zero_responsibility_and_no_entropy(dtype):
    X = np.array([[0.0], [0.5], [-1.0]])
    weights = np.array([0.5, 0.0, 0.5])  # log pi = -inf: floored, never NaN
    means = np.array([[0.0], [0.1], [1.0]])
    out = _pass(X, weights, means, np.ones((3, 1)), dtype)
    assert np.all(out["responsibilities"][:, 1] == 0.0)
    expected = ref.e_step(X, weights, means, np.ones((3, 1)), "diag")
    rtol = 1e-10 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(out["sum_entropy"], expected["sum_entropy"], rtol=rtol)
    np.testing.assert_allclose(out["log_norm"], expected["log_norm"], rtol=rtol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_terms_below_the_underflow_cutoff_are_exactly_zero(dtype):
    # The second component is ~2e4 nats below the first for this row: exp underflows, and the
    # cutoff makes its responsibility exactly 0 (not a clamped tiny value) and its entropy term 0.
    X = np.array([[0.0]])
    out = _pass(X, np.array([0.5, 0.5]), np.array([[0.0], [200.0]]), np.ones((2, 1)), dtype)
    np.testing.assert_array_equal(out["responsibilities"], [[1.0, 0.0]])
    assert out["sum_entropy"] == 0.0
    np.testing.assert_allclose(out["log_norm"], [np.log(0.5) - 0.5 * np.log(2 * np.pi)], rtol=1e-6)
