"""FastGMM(device=...): the choice of device (tested everywhere) and the CUDA pass against the CPU
pass and the NumPy reference (only where fastelbo has CUDA kernels and a GPU is usable)."""

import _thread
import signal
import threading
import time
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

import reference as ref
from fastelbo import FastGMM, build_info, cuda_available
from fastelbo.mixture import _cuda_backend
from fastelbo.mixture import _gaussian as gaussian_module
from fastelbo.mixture._gaussian_pass import GaussianPassParameters, GaussianPassRequest, gaussian_block_pass

COV_TYPES = ("full", "tied", "diag", "spherical")
K = 4
RTOL = {np.float32: 1e-5, np.float64: 1e-10}

requires_gpu = pytest.mark.skipif(
    not cuda_available(), reason=f"no CUDA: {_cuda_backend.cuda_status()[1] or 'unavailable'}"
)


@pytest.fixture(scope="module")
def blobs():
    X, _ = ref.make_blobs_data(3000, 5, K, random_state=0, separation=6.0)
    return X


@pytest.fixture
def cuda_status(monkeypatch):
    """Pretend the CUDA status is (available, reason) for the duration of a test."""

    def set_status(available, reason=""):
        monkeypatch.setattr(_cuda_backend, "cuda_status", lambda: (available, reason))

    return set_status


# -- the device parameter, everywhere -----------------------------------------------------------


def test_unknown_device_is_refused_naming_the_parameter(blobs):
    with pytest.raises(ValueError, match="device must be one of"):
        FastGMM(2, device="gpu").fit(blobs)


def _refit_with_cuda_module(blobs, monkeypatch, module, message):
    """``device='cuda'`` with the CUDA module replaced by ``module`` raises ``message``; the cached
    status is recomputed before and after, so other tests see the real module."""
    monkeypatch.setattr(_cuda_backend, "cuda_module", lambda: module)
    _cuda_backend.cuda_status.cache_clear()
    try:
        with pytest.raises(ValueError, match=message):
            FastGMM(2, device="cuda").fit(blobs)
    finally:
        _cuda_backend.cuda_status.cache_clear()


def test_cuda_without_cuda_kernels_says_the_build_lacks_them(blobs, monkeypatch):
    _refit_with_cuda_module(blobs, monkeypatch, None, "no CUDA kernels.*FASTELBO_CUDA=ON")


def test_cuda_without_a_gpu_says_no_gpu_was_found(blobs, monkeypatch):
    class NoDevice:
        @staticmethod
        def device_count():
            return 0, "no CUDA-capable device is detected"

    _refit_with_cuda_module(blobs, monkeypatch, NoDevice, "no usable GPU.*no CUDA-capable device")


def test_auto_without_a_gpu_fits_exactly_as_the_cpu(blobs, cuda_status):
    cuda_status(False, "no GPU")
    cpu = FastGMM(K, covariance_type="diag", random_state=0, max_iter=5).fit(blobs)
    auto = FastGMM(K, covariance_type="diag", random_state=0, max_iter=5, device="auto").fit(blobs)
    np.testing.assert_array_equal(auto.means_, cpu.means_)
    np.testing.assert_array_equal(auto.lower_bounds_, cpu.lower_bounds_)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_estimator_reads_what_the_cuda_pass_returns(blobs, monkeypatch, dtype):
    """Runs without a GPU: a stand-in for the CUDA pass returns what the CUDA module returns (the
    statistics and a dict with "labels"), computed by the CPU kernel, and the fit through it must
    equal the CPU fit. It guards the estimator's side of the CUDA seam (e.g. which keys it reads)."""
    X = blobs.astype(dtype)

    def cuda_pass_on_the_cpu(estimator, rows, moments, log_norm=False, labels=False, sample_weight=None):
        parameters = GaussianPassParameters.of(
            estimator.weights_,
            estimator.means_,
            estimator.precisions_cholesky_,
            estimator.covariance_type,
            rows.dtype,
            moments,
            n_threads=1,
        )
        request = GaussianPassRequest(log_norm=log_norm, labels=labels)
        stats, out, _ = gaussian_block_pass(parameters, request, rows, sample_weight, None)
        return stats, out

    cpu = FastGMM(K, covariance_type="diag", random_state=0, max_iter=5).fit(X)
    monkeypatch.setattr(gaussian_module, "cuda_gaussian_pass", cuda_pass_on_the_cpu)
    monkeypatch.setattr(gaussian_module, "uses_cuda", lambda estimator, responsibilities: True)
    through_hook = FastGMM(K, covariance_type="diag", random_state=0, max_iter=5)
    labels = through_hook.fit_predict(X)
    # float64: the same kernel calls, bitwise; float32: the CPU pass expands about home components
    # the stand-in (like the GPU) does not use, so they agree to float32 rounding.
    rtol = 1e-5 if dtype == np.float32 else 0.0
    np.testing.assert_allclose(through_hook.means_, cpu.means_, rtol=rtol, atol=0)
    np.testing.assert_array_equal(labels, cpu.predict(X))
    np.testing.assert_allclose(through_hook.score_samples(X), cpu.score_samples(X), rtol=rtol, atol=0)


def test_cuda_with_truncated_em_is_refused(blobs, cuda_status):
    cuda_status(True)
    with pytest.raises(ValueError, match="exact EM only"):
        FastGMM(K, n_active=2, device="cuda").fit(blobs)


def test_build_info_reports_the_cuda_module_and_the_gpu():
    info = build_info()
    assert info["cuda"] == (_cuda_backend.cuda_module() is not None)
    assert info["cuda_available"] == cuda_available()
    if info["cuda"]:
        assert info["cuda_runtime_version"] >= 12000
        assert "80" in info["cuda_architectures"] and "90" in info["cuda_architectures"]


# -- the CUDA pass, on a GPU ---------------------------------------------------------------------


def _fit_from_start(X, covariance_type, device, dtype, **params):
    weights, means, covariances = ref.em_start(X, K, covariance_type, 1)
    gmm = FastGMM(
        K,
        covariance_type=covariance_type,
        weights_init=weights,
        means_init=means,
        precisions_init=ref.precisions_from_covariances(covariances, covariance_type),
        tol=0.0,
        device=device,
        **params,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return gmm.fit(X.astype(dtype))


def _central_second_moments(stats, covariance_type):
    """sxx about the new means, from moments about any reference (float64)."""
    nk = stats.nk
    if covariance_type == "full":
        return stats.sxx - np.einsum("ki,kj->kij", stats.sx, stats.sx) / nk[:, None, None]
    if covariance_type == "tied":
        return stats.sxx - (stats.sx / nk[:, None]).T @ stats.sx
    if covariance_type == "diag":
        return stats.sxx - stats.sx**2 / nk[:, None]
    return stats.sxx - np.einsum("kd,kd->k", stats.sx, stats.sx) / nk


@requires_gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_cuda_statistics_match_the_cpu_and_the_reference(blobs, covariance_type, dtype):
    gmm = _fit_from_start(blobs, covariance_type, "cpu", dtype, max_iter=3)
    X = blobs.astype(dtype)
    sample_weight = np.random.default_rng(3).uniform(0.5, 2.0, len(X)).astype(dtype)
    cpu, _ = gmm._pass(X, moments=True, sample_weight=sample_weight)
    gpu, _ = _cuda_backend.gaussian_pass(gmm, X, moments=True, sample_weight=sample_weight)
    _cuda_backend.discard_device_rows(gmm)
    rtol = RTOL[dtype]
    np.testing.assert_allclose(gpu.elbo, cpu.elbo, rtol=rtol)
    np.testing.assert_allclose(gpu.component_entropy, cpu.component_entropy, rtol=10 * rtol, atol=10 * rtol)
    np.testing.assert_allclose(gpu.sum_weight, cpu.sum_weight, rtol=rtol)
    np.testing.assert_allclose(gpu.nk, cpu.nk, rtol=rtol)
    np.testing.assert_allclose(
        gpu.reference + gpu.sx / gpu.nk[:, None],
        cpu.reference + cpu.sx / cpu.nk[:, None],
        rtol=rtol,
        atol=rtol,
    )
    np.testing.assert_allclose(
        _central_second_moments(gpu, covariance_type),
        _central_second_moments(cpu, covariance_type),
        rtol=10 * rtol,
    )
    # And against the float64 NumPy reference.
    theta = (
        gmm.weights_.astype(np.float64),
        gmm.means_.astype(np.float64),
        gmm.covariances_.astype(np.float64),
    )
    expected = ref.e_step(X, *theta, covariance_type, sample_weight=sample_weight)
    np.testing.assert_allclose(gpu.elbo, expected["sum_log_norm"] / expected["sum_weight"], rtol=10 * rtol)
    np.testing.assert_allclose(gpu.nk, expected["nk"], rtol=10 * rtol, atol=10 * rtol * len(X))


@requires_gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_cuda_fit_matches_the_cpu_fit(blobs, covariance_type, dtype):
    cpu = _fit_from_start(blobs, covariance_type, "cpu", dtype, max_iter=6)
    gpu = _fit_from_start(blobs, covariance_type, "cuda", dtype, max_iter=6)
    rtol = RTOL[dtype]
    np.testing.assert_allclose(gpu.lower_bounds_, cpu.lower_bounds_, rtol=rtol)
    np.testing.assert_allclose(gpu.weights_, cpu.weights_, rtol=10 * rtol)
    np.testing.assert_allclose(gpu.means_, cpu.means_, rtol=10 * rtol, atol=10 * rtol)
    np.testing.assert_allclose(gpu.covariances_, cpu.covariances_, rtol=10 * rtol, atol=10 * rtol)
    np.testing.assert_allclose(gpu.entropy_sum_history_, cpu.entropy_sum_history_, rtol=rtol)
    np.testing.assert_array_equal(gpu.predict(blobs.astype(dtype)), cpu.predict(blobs.astype(dtype)))
    np.testing.assert_allclose(
        gpu.score_samples(blobs.astype(dtype)), cpu.score_samples(blobs.astype(dtype)), rtol=rtol, atol=rtol
    )


@requires_gpu
@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_cuda_post_m_step_identity_holds_every_iteration(blobs, covariance_type):
    gmm = _fit_from_start(blobs, covariance_type, "cuda", np.float64, max_iter=0, reg_covar=0.0)
    for t in range(5):
        theta_t = (gmm.weights_.copy(), gmm.means_.copy(), gmm.covariances_.copy())
        stats = gmm._e_step(blobs)
        expected = ref.e_step(blobs, *theta_t, covariance_type)
        np.testing.assert_allclose(stats.elbo, expected["sum_log_norm"] / expected["sum_weight"], rtol=1e-10)
        gmm._m_step(stats)
        entropy_sum = gmm._decompose(stats).entropy_sum
        post_m_step_elbo = ref.elbo(
            blobs, expected["resp"], gmm.weights_, gmm.means_, gmm.covariances_, covariance_type
        )
        assert abs(entropy_sum - post_m_step_elbo) <= 1e-9 * abs(post_m_step_elbo), t
    _cuda_backend.discard_device_rows(gmm)


@requires_gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_cuda_fits_are_bitwise_deterministic(blobs, covariance_type, dtype):
    first = _fit_from_start(blobs, covariance_type, "cuda", dtype, max_iter=4)
    second = _fit_from_start(blobs, covariance_type, "cuda", dtype, max_iter=4)
    np.testing.assert_array_equal(first.means_, second.means_)
    np.testing.assert_array_equal(first.covariances_, second.covariances_)
    np.testing.assert_array_equal(first.lower_bounds_, second.lower_bounds_)


@requires_gpu
def test_cuda_fit_of_rows_far_from_the_origin_matches_the_cpu(blobs):
    # Centring on the GPU (in float64) keeps float32 accurate when the data sit far from zero.
    X = blobs + 1e4
    cpu = _fit_from_start(X, "diag", "cpu", np.float32, max_iter=4)
    gpu = _fit_from_start(X, "diag", "cuda", np.float32, max_iter=4)
    np.testing.assert_allclose(gpu.lower_bounds_, cpu.lower_bounds_, rtol=1e-5)
    np.testing.assert_allclose(gpu.covariances_, cpu.covariances_, rtol=1e-4)


@requires_gpu
def test_cuda_fit_with_many_rows_spans_several_chunks():
    # More rows than one chunk of the pass (2^23 / K rows): the chunk sums merge in order.
    rng = np.random.default_rng(0)
    K_many = 512
    X = (
        rng.standard_normal((40_000, 8))
        + 3 * rng.standard_normal((K_many, 8))[rng.integers(0, K_many, 40_000)]
    )
    start = dict(max_iter=2, tol=0.0, random_state=0, init_params="random_from_data", covariance_type="diag")
    cpu = FastGMM(K_many, **start).fit(X)
    gpu = FastGMM(K_many, device="cuda", **start).fit(X)
    np.testing.assert_allclose(gpu.lower_bounds_, cpu.lower_bounds_, rtol=1e-10)
    populated = cpu.weights_ > 1e-4 / K_many  # a nearly empty component's mean is ill-determined
    np.testing.assert_allclose(gpu.weights_, cpu.weights_, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(gpu.means_[populated], cpu.means_[populated], rtol=1e-8, atol=1e-8)


@requires_gpu
def test_ctrl_c_stops_cuda_passes_within_half_a_second():
    # Python must handle SIGINT itself (a background shell may start it ignored).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        rng = np.random.default_rng(0)
        X = rng.standard_normal((1_000_000, 64), dtype=np.float32)
        K_big = 4096  # a full pass of ~1.7e13 multiply-adds: far longer than the test waits
        gmm = FastGMM(K_big, covariance_type="full", device="cuda")
        gmm.weights_ = np.full(K_big, 1.0 / K_big, dtype=np.float32)
        gmm.means_ = X[:K_big].copy()
        gmm.precisions_cholesky_ = np.broadcast_to(np.eye(64, dtype=np.float32), (K_big, 64, 64)).copy()
        fired = []

        def interrupt():
            time.sleep(0.5)
            fired.append(time.perf_counter())
            _thread.interrupt_main()

        thread = threading.Thread(target=interrupt, daemon=True)
        thread.start()
        with pytest.raises(KeyboardInterrupt):
            for _ in range(50):
                _cuda_backend.gaussian_pass(gmm, X, moments=False)
        latency = time.perf_counter() - fired[0]
        thread.join()
        assert latency < 0.5, latency
    finally:
        signal.signal(signal.SIGINT, previous)
