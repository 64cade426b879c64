"""The C++ scatter pass (``_core.scatter_pass``) against the NumPy reference: weighted mean and
scatter in float64 and float32 (far from the origin), bitwise identical for any thread count, the
caller's floating-point mode kept, and clear errors on bad input."""

import numpy as np
import pytest

from fastelbo import _core
from fastelbo.factor._scatter import centring_point
from reference_factor import weighted_mean_and_scatter


def _data(n, d, offset=0.0, seed=0, dtype=np.float64):
    rng = np.random.RandomState(seed)
    X = rng.standard_normal((n, d)) @ rng.standard_normal((d, d)) + offset + rng.standard_normal(d)
    return np.ascontiguousarray(X, dtype=dtype)


def _assert_matches_reference(out, X, w, rtol):
    total, mean, scatter = weighted_mean_and_scatter(X, w)
    assert out["sum_weight"] == pytest.approx(total, rel=1e-12)
    np.testing.assert_allclose(out["mean"], mean, rtol=rtol, atol=rtol * np.abs(mean).max())
    np.testing.assert_allclose(out["scatter"], scatter, rtol=rtol, atol=rtol * np.abs(scatter).max())
    np.testing.assert_array_equal(out["scatter"], out["scatter"].T)


@pytest.mark.parametrize("shape", [(2, 1), (7, 3), (1500, 5), (9000, 2), (300, 40)])
@pytest.mark.parametrize("weighted", [False, True])
def test_scatter_pass_matches_reference_float64(shape, weighted):
    X = _data(*shape)
    w = np.random.RandomState(1).uniform(0, 3, shape[0]) if weighted else None
    _assert_matches_reference(_core.scatter_pass(X, w, centring_point(X, w)), X, w, rtol=1e-10)


@pytest.mark.parametrize("weighted", [False, True])
def test_scatter_pass_float32_far_from_origin_keeps_float32_precision(weighted):
    X = _data(20000, 6, offset=1e4, dtype=np.float32)
    w = np.random.RandomState(1).uniform(0, 3, X.shape[0]).astype(np.float32) if weighted else None
    out = _core.scatter_pass(X, w, centring_point(X, w))
    # The reference sees the same float32 values, in float64: only the kernel's own rounding is
    # measured, and it must be far below float32's epsilon (1.2e-7) relative to the spread.
    _assert_matches_reference(out, X, None if w is None else w.astype(np.float64), rtol=1e-7)


def test_scatter_pass_about_another_centring_point_gives_the_same_statistics():
    X = _data(2000, 4, offset=50.0)
    near = _core.scatter_pass(X, None, X[0].copy())
    far = _core.scatter_pass(X, None, np.zeros(4))
    np.testing.assert_allclose(far["mean"], near["mean"], rtol=1e-12)
    np.testing.assert_allclose(far["scatter"], near["scatter"], rtol=1e-9)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_scatter_pass_is_bitwise_identical_for_any_thread_count(dtype):
    X = _data(50000, 8, offset=3.0, dtype=dtype)
    w = np.random.RandomState(2).uniform(0, 2, X.shape[0]).astype(dtype)
    center = centring_point(X)
    results = [_core.scatter_pass(X, w, center, n_threads=n) for n in (1, 2, 3, 8)]
    for out in results[1:]:
        np.testing.assert_array_equal(out["mean"], results[0]["mean"])
        np.testing.assert_array_equal(out["scatter"], results[0]["scatter"])
        assert out["sum_weight"] == results[0]["sum_weight"]


@pytest.mark.parametrize("flushing", [False, True])
def test_scatter_pass_leaves_the_callers_flush_mode(flushing):
    X = _data(20000, 5)
    _core._set_flushing_subnormals(flushing)
    try:
        _core.scatter_pass(X, None, centring_point(X), n_threads=2)
        assert _core._flushes_subnormals() == flushing
    finally:
        _core._set_flushing_subnormals(False)


def test_scatter_pass_rejects_bad_input():
    X = _data(10, 3)
    with pytest.raises(TypeError, match="X must have dtype float32 or float64"):
        _core.scatter_pass(X.astype(np.int64), None, np.zeros(3))
    with pytest.raises(ValueError, match="X has shape"):
        _core.scatter_pass(X[0], None, np.zeros(3))
    with pytest.raises(ValueError, match="center has shape"):
        _core.scatter_pass(X, None, np.zeros(2))
    with pytest.raises(TypeError, match="center must be a C-contiguous numpy array of dtype float64"):
        _core.scatter_pass(X, None, np.zeros(3, dtype=np.float32))
    with pytest.raises(ValueError, match="center must be finite"):
        _core.scatter_pass(X, None, np.array([0.0, np.nan, 0.0]))
    with pytest.raises(ValueError, match="sample_weight has shape"):
        _core.scatter_pass(X, np.ones(9), np.zeros(3))
    with pytest.raises(TypeError, match="sample_weight must be a C-contiguous numpy array of dtype float64"):
        _core.scatter_pass(X, np.ones(10, dtype=np.float32), np.zeros(3))
    with pytest.raises(ValueError, match="at least one feature"):
        _core.scatter_pass(np.zeros((4, 0)), None, np.zeros(0))
