"""FastGMM's CUDA backend (``device='cuda'``): the E-step pass on a GPU, through the optional
extension module ``fastelbo._cuda`` (built with ``FASTELBO_CUDA=ON``).

The pass returns the statistics the CPU pass returns (:class:`MixtureStatistics`, all float64), so
the M-step, the ELBO and its entropy decomposition are the same code on either device. X is copied
to the GPU once per fit (centred on its column mean in float64, then rounded to X's dtype) and kept
there for the fit's passes; inference on other data copies it for that call only.

Deterministic for a given GPU model and (N, K, D): every sum has a fixed order (no atomics).
"""

from __future__ import annotations

import functools

import numpy as np

from fastelbo._mixture_pass import log_mixing_weights
from fastelbo.mixture._statistics import MixtureStatistics

DEVICES = ("cpu", "cuda", "auto")

# The fitted estimator's attribute holding the fit's rows on the GPU (dropped when the fit ends).
_ROWS_ATTRIBUTE = "_cuda_rows"


def cuda_module():
    """The compiled module ``fastelbo._cuda``, or None where this build has none."""
    try:
        from fastelbo import _cuda
    except ImportError:
        return None
    return _cuda


@functools.lru_cache(maxsize=1)
def cuda_status() -> tuple[bool, str]:
    """(whether FastGMM can run on a GPU here, why not when it cannot)."""
    module = cuda_module()
    if module is None:
        return False, "this fastelbo build has no CUDA kernels (it was built without FASTELBO_CUDA=ON)"
    count, error = module.device_count()
    if count < 1:
        return False, f"fastelbo has CUDA kernels, but no usable GPU was found ({error or 'no device'})"
    return True, ""


def cuda_build_info() -> dict:
    """The CUDA part of :func:`fastelbo.build_info`."""
    module = cuda_module()
    available, reason = cuda_status()
    info = {"cuda": module is not None, "cuda_available": available}
    if module is not None:
        info["cuda_runtime_version"] = module.runtime_version()
        info["cuda_driver_version"] = module.driver_version()
        info["cuda_architectures"] = module.BUILD_INFO["cuda_architectures"]
        info["cuda_compiler"] = module.BUILD_INFO["cuda_compiler"]
        info["cuda_device"] = module.device_name(0) if available else reason
    return info


def resolve_device(device, n_active) -> str:
    """'cpu' or 'cuda' for a FastGMM ``device`` parameter; raises ValueError naming what is missing."""
    if not isinstance(device, str) or device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if device == "cpu":
        return "cpu"
    available, reason = cuda_status()
    if device == "auto":
        return "cuda" if available and n_active is None else "cpu"
    if not available:
        raise ValueError(f"device='cuda': {reason}; use device='cpu' or 'auto'")
    if n_active is not None:
        raise ValueError(
            "device='cuda' runs exact EM only; truncated EM (n_active) runs on the CPU: use device='cpu'"
        )
    return "cuda"


def uses_cuda(estimator, responsibilities) -> bool:
    """Whether this pass of ``estimator`` runs on the GPU (the N x K responsibilities of
    ``predict_proba`` are formed on the CPU)."""
    return not responsibilities and resolve_device(estimator.device, estimator.n_active) == "cuda"


def _device_rows(estimator, X, sample_weight, dtype, keep):
    """X's rows on the GPU: the fit's copy when ``X`` is the fit's array, else a new one (kept for
    the following passes if ``keep``)."""
    module = cuda_module()
    cached = vars(estimator).get(_ROWS_ATTRIBUTE)
    if cached is not None:
        rows_of, weights_of, rows = cached
        if rows_of is X and weights_of is sample_weight and rows.dtype == np.dtype(dtype).name:
            return rows
    data = np.ascontiguousarray(X, dtype=dtype)
    weights = None if sample_weight is None else np.ascontiguousarray(sample_weight, dtype=dtype)
    rows = module.DeviceRows(data, weights, data.mean(axis=0, dtype=np.float64))
    if keep:
        vars(estimator)[_ROWS_ATTRIBUTE] = (X, sample_weight, rows)
    return rows


def discard_device_rows(estimator):
    """Free the fit's copy of X on the GPU."""
    vars(estimator).pop(_ROWS_ATTRIBUTE, None)


def gaussian_pass(estimator, X, moments, log_norm=False, labels=False, sample_weight=None):
    """FastGMM's pass on the GPU: (statistics, per-row outputs) as from the CPU pass, with the
    moments about each component's mean as the GPU holds it (``stats.reference``)."""
    dtype = np.result_type(X.dtype, estimator.means_.dtype)
    rows = _device_rows(estimator, X, sample_weight, dtype, keep=moments)
    log_weights = log_mixing_weights(estimator.weights_, dtype)
    out = rows.gaussian_mixture_pass(
        log_weights,
        np.ascontiguousarray(estimator.means_, dtype=dtype),
        np.ascontiguousarray(estimator.precisions_cholesky_, dtype=dtype),
        estimator.covariance_type,
        compute_moments=moments,
        return_log_norm=log_norm,
        return_labels=labels,
    )
    return MixtureStatistics.from_kernel(out, X.shape[0], out["reference"]), out
