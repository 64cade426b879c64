"""Stub of fastelbo._core: the kernel build chosen for this CPU (private; use the estimators)."""

from typing import Any

import numpy as np
from numpy.typing import NDArray

BUILD_INFO: dict[str, Any]

def openmp_enabled() -> bool: ...
def omp_max_threads() -> int: ...
def cuda_compiled() -> bool: ...
def gaussian_mixture_pass(
    X: NDArray[np.floating],
    sample_weight: NDArray[np.floating] | None,
    log_weights: NDArray[np.floating],
    means: NDArray[np.floating],
    precisions_cholesky: NDArray[np.floating],
    reference: NDArray[np.float64] | None,
    home: NDArray[np.int64] | None,
    covariance_type: str,
    compute_moments: bool = True,
    return_log_norm: bool = False,
    return_responsibilities: bool = False,
    return_labels: bool = False,
    n_threads: int = 0,
    refine: bool = True,
    direct: bool = False,
) -> dict[str, Any]: ...
def factor_analyser_mixture_pass(
    X: NDArray[np.floating],
    sample_weight: NDArray[np.floating] | None,
    log_weights: NDArray[np.floating],
    means: NDArray[np.floating],
    components: NDArray[np.floating],
    noise_variance: NDArray[np.floating],
    reference: NDArray[np.float64] | None,
    compute_moments: bool = True,
    return_log_norm: bool = False,
    return_responsibilities: bool = False,
    return_labels: bool = False,
    n_threads: int = 0,
) -> dict[str, Any]: ...
def kmeans_plusplus(
    X: NDArray[np.floating],
    sample_weight: NDArray[np.floating] | None,
    n_clusters: int,
    n_local_trials: int,
    seed: int,
    n_threads: int = 0,
    source_rows: NDArray[np.int64] | None = None,
) -> NDArray[np.int64]: ...
def lloyd_kmeans(
    X: NDArray[np.floating],
    sample_weight: NDArray[np.floating] | None,
    centers: NDArray[np.float64],
    max_iter: int,
    tol: float,
    n_threads: int = 0,
    source_rows: NDArray[np.int64] | None = None,
) -> tuple[NDArray[np.int64], NDArray[np.float64], float, int]: ...
def scatter_pass(
    X: NDArray[np.floating],
    sample_weight: NDArray[np.floating] | None,
    center: NDArray[np.float64],
    n_threads: int = 0,
) -> dict[str, Any]: ...
def afkmc2(
    X: NDArray[np.floating],
    sample_weight: NDArray[np.floating] | None,
    n_clusters: int,
    chain_length: int,
    seed: int,
    n_threads: int = 0,
    source_rows: NDArray[np.int64] | None = None,
) -> NDArray[np.int64]: ...
def _afkmc2_proposal(
    X: NDArray[np.floating],
    sample_weight: NDArray[np.floating] | None,
    first_row: int,
) -> NDArray[np.float64]: ...
def truncated_mixture_pass(
    X: NDArray[np.floating],
    sample_weight: NDArray[np.floating] | None,
    log_weights: NDArray[np.floating],
    means: NDArray[np.floating],
    precisions_cholesky: NDArray[np.floating],
    reference: NDArray[np.float64] | None,
    covariance_type: str,
    active: NDArray[np.int32],
    neighbours: NDArray[np.int32],
    random_candidates: NDArray[np.int32] | None,
    return_log_norm: bool = False,
    return_responsibilities: bool = False,
    return_neighbour_scores: bool = False,
    n_threads: int = 0,
) -> dict[str, Any]: ...
def exponential_family_mixture_pass(
    indptr: NDArray[np.int64],
    indices: NDArray[np.integer],
    data: NDArray[np.float64],
    n_features: int,
    sample_weight: NDArray[np.float64] | None,
    log_weights: NDArray[np.float64],
    natural_transposed: NDArray[np.float64],
    log_partition: NDArray[np.float64],
    family: str,
    compute_moments: bool = True,
    return_log_norm: bool = False,
    return_responsibilities: bool = False,
    return_labels: bool = False,
    n_threads: int = 0,
    skip_zero_responsibilities: bool = True,
    cached_natural_bytes: float = ...,
    negligible_responsibility: float = 0.0,
    group_by_column: bool = True,
) -> dict[str, Any]: ...
