"""The mixture-of-factor-analysers E-step kernel against the dense NumPy reference (reference_mfa)."""

import numpy as np
import pytest

import reference_mfa as R
from fastelbo import _core

MOMENTS = ("nk", "sx", "sxx", "szx", "sz", "szz")


def _problem(seed=0, K=3, D=7, H=2, N=300, offset=0.0):
    rng = np.random.default_rng(seed)
    weights, means, components, noise = R.random_parameters(rng, K, D, H, offset=offset)
    X, _ = R.sample(rng, N, weights, means, components, noise)
    return rng, X, weights, means, components, noise


def _kernel(X, weights, means, components, noise, reference, dtype=np.float64, sample_weight=None, **kwargs):
    cast = lambda a: np.ascontiguousarray(a, dtype=dtype)  # noqa: E731
    with np.errstate(divide="ignore"):
        log_weights = np.log(weights)
    return _core.factor_analyser_mixture_pass(
        cast(X),
        None if sample_weight is None else cast(sample_weight),
        cast(log_weights),
        cast(means),
        cast(components),
        cast(noise),
        None if reference is None else np.ascontiguousarray(reference, dtype=np.float64),
        return_log_norm=True,
        return_responsibilities=True,
        return_labels=True,
        **kwargs,
    )


@pytest.mark.parametrize("with_weights", [False, True])
def test_kernel_equals_reference_in_float64(with_weights):
    rng, X, weights, means, components, noise = _problem()
    sample_weight = rng.uniform(0, 3, size=X.shape[0]) if with_weights else None
    reference = means + 0.5 * rng.standard_normal(means.shape)  # any point, not only the means
    out = _kernel(X, weights, means, components, noise, reference, sample_weight=sample_weight)

    resp, log_norm, entropy = R.e_step(X, weights, means, components, noise)
    np.testing.assert_allclose(out["log_norm"], log_norm, rtol=1e-10)
    np.testing.assert_allclose(out["responsibilities"], resp, rtol=1e-10, atol=1e-14)
    np.testing.assert_array_equal(out["labels"], np.argmax(resp, axis=1))
    w = np.ones(X.shape[0]) if sample_weight is None else sample_weight
    assert out["sum_weight"] == pytest.approx(w.sum(), rel=1e-12)
    assert out["sum_log_norm"] == pytest.approx(w @ log_norm, rel=1e-10)
    assert out["sum_entropy"] == pytest.approx(w @ entropy, rel=1e-10)
    expected = R.statistics(X, resp, means, components, noise, reference, sample_weight)
    for name in MOMENTS:
        np.testing.assert_allclose(
            out[name], expected[name], rtol=1e-10, atol=1e-10 * np.abs(expected[name]).max()
        )


def test_kernel_log_joint_matches_scipy_with_more_factors_than_features():
    _, X, weights, means, components, noise = _problem(K=2, D=3, H=5, N=50)
    out = _kernel(X, weights, means, components, noise, means)
    _, log_norm, _ = R.e_step(X, weights, means, components, noise)
    np.testing.assert_allclose(out["log_norm"], log_norm, rtol=1e-10)


def test_kernel_float32_far_from_the_origin_keeps_float32_precision():
    """Clusters at 1e4 from the origin with unit-scale spreads: rows are centred on each mean in
    the kernel, so float32 loses no digits to the offset."""
    _, X, weights, means, components, noise = _problem(offset=1e4, N=400)
    X32, means32 = X.astype(np.float32), means.astype(np.float32)
    # The reference computes from exactly the float32 numbers the kernel sees.
    args = (weights, means32.astype(np.float64), components.astype(np.float32).astype(np.float64))
    noise32 = noise.astype(np.float32).astype(np.float64)
    reference = means32.astype(np.float64)
    out = _kernel(X32, *args, noise32, reference, dtype=np.float32)
    resp, log_norm, _ = R.e_step(X32.astype(np.float64), *args, noise32)
    assert out["log_norm"].dtype == np.float32
    np.testing.assert_allclose(out["log_norm"], log_norm, rtol=2e-5)
    np.testing.assert_allclose(out["responsibilities"], resp, atol=1e-4)
    expected = R.statistics(X32.astype(np.float64), resp, *args[1:], noise32, reference)
    for name in MOMENTS:
        scale = np.abs(expected[name]).max()
        np.testing.assert_allclose(out[name], expected[name], atol=1e-4 * scale, err_msg=name)


def test_kernel_without_moments_returns_only_the_elbo_sums():
    _, X, weights, means, components, noise = _problem()
    out = _kernel(X, weights, means, components, noise, None, compute_moments=False)
    assert set(out) == {
        "sum_weight",
        "sum_log_norm",
        "sum_entropy",
        "nk",
        "log_norm",
        "responsibilities",
        "labels",
    }
    resp, _, _ = R.e_step(X, weights, means, components, noise)
    np.testing.assert_allclose(out["nk"], resp.sum(axis=0), rtol=1e-10)


def test_kernel_is_bitwise_identical_for_any_thread_count():
    _, X, weights, means, components, noise = _problem(N=20000, K=4, D=6, H=2)
    outs = [_kernel(X, weights, means, components, noise, means, n_threads=n) for n in (1, 2, 3)]
    for out in outs[1:]:
        for name, value in outs[0].items():
            np.testing.assert_array_equal(out[name], value, err_msg=name)


def test_kernel_zero_weight_component_gets_exactly_zero_responsibility():
    _, X, weights, means, components, noise = _problem()
    weights = weights.copy()
    weights[1] = 0.0
    out = _kernel(X, weights, means, components, noise, means)
    assert np.all(out["responsibilities"][:, 1] == 0)
    assert out["nk"][1] == 0 and np.all(out["szx"][1] == 0)
    assert np.all(np.isfinite(out["log_norm"]))


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        (lambda a: a.update(noise=-a["noise"]), ValueError, "noise_variance"),
        (lambda a: a.update(means=np.ascontiguousarray(a["means"][:, :-1])), ValueError, "means"),
        (
            lambda a: a.update(components=np.ascontiguousarray(a["components"][:, :, :-1])),
            ValueError,
            "components",
        ),
        (lambda a: a.update(X=a["X"].astype(np.int64)), TypeError, "X"),
        (lambda a: a.update(reference=a["reference"][:-1]), ValueError, "reference"),
    ],
)
def test_kernel_rejects_inconsistent_arguments(change, error, match):
    _, X, weights, means, components, noise = _problem(N=20)
    args = dict(X=X, means=means, components=components, noise=noise, reference=means)
    change(args)
    with pytest.raises(error, match=match):
        _core.factor_analyser_mixture_pass(
            args["X"],
            None,
            np.log(weights),
            args["means"],
            args["components"],
            args["noise"],
            args["reference"],
        )


@pytest.mark.parametrize("n_threads", [1, 2])
def test_kernel_flushes_subnormal_responsibilities_and_restores_the_callers_mode(n_threads):
    # H = 1 with zero loadings is a spherical unit Gaussian; as in the Gaussian kernel's test, the
    # third component's responsibility exp(-708.3) / 2 = 1.2e-308 would be subnormal: flushed to 0.
    means = np.array([[0.0], [0.0], [np.sqrt(2 * 708.3)]])
    out = _core.factor_analyser_mixture_pass(
        np.zeros((64, 1)),
        None,
        np.log(np.full(3, 1 / 3)),
        means,
        np.zeros((3, 1, 1)),
        np.ones((3, 1)),
        None,
        compute_moments=False,
        return_responsibilities=True,
        n_threads=n_threads,
    )
    np.testing.assert_array_equal(out["responsibilities"][:, :2], 0.5)
    assert np.all(out["responsibilities"][:, 2] == 0.0)
    assert not _core._flushes_subnormals()
    assert _core._pool_flushes_subnormals(2) == [0, 0]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kernel_stays_accurate_with_noise_at_a_tiny_floor(dtype):
    """A collapsed component: noise variance 1e-6 under unit loadings in 32 dimensions. float64's
    Woodbury difference cancels ~7 digits here and keeps the rest; float32's residual form cancels
    nothing. Rows are drawn from the components, so their quadratic forms are O(D)."""
    rng = np.random.default_rng(3)
    K, D, H = 2, 32, 3
    weights, means, components, noise = R.random_parameters(rng, K, D, H)
    noise[0] = 1e-6
    X, _ = R.sample(rng, 200, weights, means, components, noise)
    X, means, components = (a.astype(dtype).astype(np.float64) for a in (X, means, components))
    out = _kernel(X, weights, means, components, noise, means, dtype=dtype)
    _, log_norm, _ = R.e_step(X, weights, means, components, noise)
    # |log p(x)| reaches ~150 here. The float32 difference form would be off by ~eps32 * e'Psi^-1 e,
    # i.e. by units; the residual form is within 1e-2.
    atol = 1e-6 if dtype == np.float64 else 1e-2
    np.testing.assert_allclose(out["log_norm"], log_norm, rtol=0, atol=atol)
