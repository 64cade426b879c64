"""The Gaussian mixture's block pass: a frozen, picklable snapshot of the parameters and a pure
function of (snapshot, rows, weights, home labels) that returns the block's statistics, its per-row
outputs and its new home labels. It reads nothing else, so it runs the same in this process, in a
streaming loop over a memmap or HDF5 file, or on a Dask worker.

Home labels are the Gaussian family's per-row state: the component each row was most probable
under at the previous pass, about whose run of rows the diag, spherical and tied kernels expand
(``FastGMM._needs_homes``); None where no homes are needed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastelbo import _core
from fastelbo._mixture_pass import MixturePassRequest, block_inputs, log_mixing_weights
from fastelbo.mixture._statistics import MixtureStatistics


@dataclass(frozen=True)
class GaussianPassParameters:
    """What a pass needs from the model, in the working dtype (``reference`` in float64)."""

    log_weights: np.ndarray
    means: np.ndarray
    precisions_cholesky: np.ndarray
    covariance_type: str
    reference: np.ndarray | None  # moments are taken about it; None: no moments
    n_threads: int

    @classmethod
    def of(cls, weights, means, precisions_cholesky, covariance_type, dtype, moments, n_threads):
        """The snapshot of fitted parameters for a pass computing in ``dtype``."""
        log_weights = log_mixing_weights(weights, dtype)
        means = np.ascontiguousarray(means, dtype=dtype)
        return cls(
            log_weights,
            means,
            np.ascontiguousarray(precisions_cholesky, dtype=dtype),
            covariance_type,
            means.astype(np.float64) if moments else None,
            int(n_threads),
        )


@dataclass(frozen=True)
class GaussianPassRequest(MixturePassRequest):
    """Which per-row outputs a pass returns, and whether far components are re-evaluated."""

    refine: bool = True
    homes_only: bool = False  # labels kept as the blocks' homes only, not returned per row
    direct: bool = False  # diag/spherical log-joints (and moments) summed directly (no homes)

    @property
    def names(self):
        return tuple(name for name in super().names if not (self.homes_only and name == "labels"))


def gaussian_block_pass(parameters, request, rows, weights, home):
    """One kernel pass over a block of rows.

    Returns ``(statistics, outputs, new_home)``: :class:`MixtureStatistics` of the block (moments
    about ``parameters.reference`` when it is set), the requested per-row outputs, and the rows'
    most probable components when labels were computed (else ``home`` unchanged).
    """
    rows, weights = block_inputs(rows, weights, parameters.means.dtype)
    moments = parameters.reference is not None
    out = _core.gaussian_mixture_pass(
        rows,
        weights,
        parameters.log_weights,
        parameters.means,
        parameters.precisions_cholesky,
        parameters.reference,
        home,
        parameters.covariance_type,
        compute_moments=moments,
        return_log_norm=request.log_norm,
        return_responsibilities=request.responsibilities,
        return_labels=request.labels,
        n_threads=parameters.n_threads,
        refine=request.refine,
        direct=request.direct,
    )
    statistics = MixtureStatistics.from_kernel(out, rows.shape[0], parameters.reference)
    outputs = request.pick(out)
    return statistics, outputs, out["labels"] if request.labels else home
