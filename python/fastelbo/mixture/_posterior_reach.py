"""Which components rows near the component means reach, for the choice of a fit's E-step.

A diag or spherical float32 fit of clusters far apart for their widths has two E-steps to choose
from (``FastGMM._sums_directly``): GEMM products expanded about runs of rows that share a home
component, where rows a component far from their run may matter to are evaluated again in
float64; or log-joints summed directly in float64 (3 flops per row, component and feature, at a
fraction of the GEMM's rate) with moments summed per pair of a row and a component with q > 0.
The direct pass won wherever the expanded one refined rows near a tenth of the means or more
(digits, with 10 components, refines rows near 2 of them at the means, a third of all rows),
unless rows reach most components (the moments per reached pair then cost more than the expanded
products); it lost where no far component reaches rows. The estimates
probe the component means themselves, the densest places of the data.
"""

from dataclasses import dataclass

import numpy as np

# Means probed: enough for an average, few enough that the estimate stays cheap beside an E-step.
_MAX_PROBES = 64
# Rows lie around the means, not at them: a far component counts as reaching rows near a mean where
# its log-joint there lies within twice the underflow window (measured: at the means alone, the
# estimate missed most of the rows refined on well-separated clusters with 256 components).
_ROW_SPREAD = 2.0


@dataclass(frozen=True)
class PosteriorReach:
    """What rows at the probed means reach.

    ``components``: the mean number of components whose log-joint lies within the underflow
    window of the best one (those with q > 0); ``refined``: the fraction of probes near which a
    component beyond the expansion limit reaches rows (rows an expanded pass evaluates again).
    """

    components: float
    refined: float


def posterior_reach(weights, means, precisions_cholesky, covariance_type, log_cutoff, expansion_limit):
    """:class:`PosteriorReach` of a diag or spherical mixture. ``log_cutoff``: the (negative)
    log-joint gap below which a responsibility underflows to 0; ``expansion_limit``: the squared
    distance, in a component's metric, beyond which an expansion about a run's centroid treats the
    component as far."""
    means = np.asarray(means, dtype=np.float64)
    K, D = means.shape
    factor = np.asarray(precisions_cholesky, dtype=np.float64)
    if covariance_type == "spherical":
        factor = np.repeat(factor[:, None], D, axis=1)
    precision = factor**2
    # About the means' centroid, so that the expanded squares below keep their digits at any offset.
    centred = means - means.mean(axis=0)
    probes = centred[np.unique(np.linspace(0, K - 1, min(K, _MAX_PROBES)).round().astype(np.int64))]
    # sum_d p_kd (probe_d - mu_kd)^2, expanded into products (an estimate: round-off is harmless).
    squared = probes**2 @ precision.T - 2 * probes @ (precision * centred).T
    squared += np.sum(precision * centred**2, axis=1)
    with np.errstate(divide="ignore"):
        log_weights = np.log(np.asarray(weights, dtype=np.float64))
    log_joints = log_weights + np.sum(np.log(factor), axis=1) - squared / 2
    gaps = log_joints - log_joints.max(axis=1, keepdims=True)
    reached = np.sum(gaps > log_cutoff, axis=1)
    refined = np.any((gaps > _ROW_SPREAD * log_cutoff) & (squared > expansion_limit), axis=1)
    return PosteriorReach(float(np.mean(reached)), float(np.mean(refined)))
