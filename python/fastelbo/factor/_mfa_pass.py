"""FastMFA's block passes over X: pure functions of a block of rows (and its weights) and of frozen,
picklable arguments, so that each runs the same in this process, in a streaming loop over a memmap,
an HDF5 dataset or a Zarr array, or on a Dask worker (:func:`fastelbo._block_reduction.reduce_blocks`
maps them over the blocks and merges their results in a fixed order).

Two kinds of pass read X:

- the E-step pass (:func:`factor_analyser_block_pass`): the kernel
  ``_core.factor_analyser_mixture_pass`` on a block, with the parameters of a
  :class:`FactorAnalyserPassParameters` snapshot; it returns the block's
  :class:`~fastelbo.factor._mfa_statistics.FactorAnalyserStatistics` and its per-row outputs;
- the data-scale passes (:func:`column_scale`): the (weighted) column means, the column variances
  that set the relative noise floors, and the largest deviation from a column mean that decides
  whether float32 can hold X, in two passes (means, then the squares about them), as
  :func:`fastelbo.mixture._initialization.column_mean_and_variance` computes them in memory.

A mixture of factor analysers keeps no per-row state between passes: every block's state stays None.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from fastelbo import _core
from fastelbo._block_reduction import reduce_blocks
from fastelbo._mixture_pass import block_inputs, log_mixing_weights
from fastelbo._row_chunks import row_chunks
from fastelbo.factor._mfa_parameters import half_log_det_posterior_covariances, posterior_covariances
from fastelbo.factor._mfa_statistics import FactorAnalyserStatistics

# -- the E-step pass -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FactorAnalyserPassParameters:
    """What a pass needs from the model: the parameters in the working dtype, and, for a pass with
    moments, the float64 reference points (the means) and posterior covariances of the factors."""

    log_weights: np.ndarray  # (K,)
    means: np.ndarray  # (K, D)
    components: np.ndarray  # (K, H, D)
    noise_variance: np.ndarray  # (K, D), spherical variances repeated over the features
    reference: np.ndarray | None  # (K, D) float64; None: no moments
    posterior_covariances: np.ndarray | None  # (K, H, H) float64; None: no moments
    # (K,) float64 1/2 log|posterior covariance|: the latent entropies of q from these parameters
    posterior_half_log_det: np.ndarray | None
    n_threads: int

    @classmethod
    def of(cls, weights, means, components, noise_variance, dtype, moments, n_threads):
        """The snapshot of fitted parameters for a pass computing in ``dtype``.

        Parameters
        ----------
        weights : ndarray of shape (n_components,)
        means : ndarray of shape (n_components, n_features)
        components : ndarray of shape (n_components, n_factors, n_features)
        noise_variance : ndarray of shape (n_components, n_features)
        dtype : numpy.dtype
            The working dtype (float32 or float64) of the pass.
        moments : bool
            Whether the pass takes the moments the M-step reads.
        n_threads : int
            Threads of the kernel (results are bitwise identical for any value).
        """
        log_weights = log_mixing_weights(weights, dtype)
        means = np.ascontiguousarray(means, dtype=dtype)
        components = np.ascontiguousarray(components, dtype=dtype)
        noise_variance = np.ascontiguousarray(noise_variance, dtype=dtype)
        return cls(
            log_weights,
            means,
            components,
            noise_variance,
            means.astype(np.float64) if moments else None,
            # Of the parameters in the working dtype: those the kernel evaluates.
            posterior_covariances(components, noise_variance) if moments else None,
            half_log_det_posterior_covariances(components, noise_variance) if moments else None,
            int(n_threads),
        )


def factor_analyser_block_pass(parameters, request, rows, weights, state=None):
    """One kernel pass over a block of rows.

    Parameters
    ----------
    parameters : FactorAnalyserPassParameters
    request : MixturePassRequest
    rows : ndarray of shape (n_rows, n_features)
        Converted to the parameters' dtype here (a float32 block of a model fitted in float64 is
        widened block by block, never X whole).
    weights : ndarray of shape (n_rows,) or None
    state : None
        A mixture of factor analysers keeps no per-row state; returned unchanged.

    Returns
    -------
    statistics : FactorAnalyserStatistics
        The block's sums, with moments about ``parameters.reference`` when it is set.
    outputs : dict
        The per-row outputs the request names.
    state : None
    """
    rows, weights = block_inputs(rows, weights, parameters.means.dtype)
    moments = parameters.reference is not None
    out = _core.factor_analyser_mixture_pass(
        rows,
        weights,
        parameters.log_weights,
        parameters.means,
        parameters.components,
        parameters.noise_variance,
        parameters.reference,
        compute_moments=moments,
        return_log_norm=request.log_norm,
        return_responsibilities=request.responsibilities,
        return_labels=request.labels,
        n_threads=parameters.n_threads,
    )
    statistics = FactorAnalyserStatistics.from_kernel(
        out,
        rows.shape[0],
        parameters.reference,
        parameters.posterior_covariances,
        parameters.posterior_half_log_det,
    )
    outputs = request.pick(out)
    return statistics, outputs, state


# -- the data-scale passes ---------------------------------------------------------------------------


@dataclass
class ColumnSums:
    """``sum_n w_n x_n`` of a set of rows, float64 of shape (n_features,), and each column's
    smallest and largest value over the rows of positive weight (``inf`` and ``-inf`` where none)."""

    sums: np.ndarray
    lowest: np.ndarray
    highest: np.ndarray

    def merge(self, other: ColumnSums) -> ColumnSums:
        """The sums of the union of two disjoint row sets."""
        return ColumnSums(
            self.sums + other.sums,
            np.minimum(self.lowest, other.lowest),
            np.maximum(self.highest, other.highest),
        )


@dataclass
class ColumnDeviations:
    """About given column means: ``sum_n w_n (x_n - mean)**2`` (float64, shape (n_features,)) and
    the largest ``|x_nd - mean_d|`` of any row (whatever its weight)."""

    squares: np.ndarray
    largest: float

    def merge(self, other: ColumnDeviations) -> ColumnDeviations:
        """The deviations of the union of two disjoint row sets."""
        return ColumnDeviations(self.squares + other.squares, max(self.largest, other.largest))


def _float64_chunks(rows, weights):
    """The block's rows in float64 chunks of a few MiB (no float64 copy of the block)."""
    weights = None if weights is None else np.asarray(weights, dtype=np.float64)
    for start, stop in row_chunks(*rows.shape):
        yield np.asarray(rows[start:stop], dtype=np.float64), None if weights is None else weights[start:stop]


def column_sums_block_pass(rows, weights, state=None):
    """The :class:`ColumnSums` of a block; ``(statistics, {}, state)`` as a block pass returns."""
    sums = np.zeros(rows.shape[1])
    lowest, highest = np.full(rows.shape[1], np.inf), np.full(rows.shape[1], -np.inf)
    for chunk, w in _float64_chunks(rows, weights):
        sums += chunk.sum(axis=0) if w is None else w @ chunk
        counted = chunk if w is None else chunk[w > 0]
        if counted.shape[0]:
            np.minimum(lowest, counted.min(axis=0), out=lowest)
            np.maximum(highest, counted.max(axis=0), out=highest)
    return ColumnSums(sums, lowest, highest), {}, state


def column_deviations_block_pass(mean, rows, weights, state=None):
    """The :class:`ColumnDeviations` of a block about ``mean``; as a block pass returns."""
    squares = np.zeros(rows.shape[1])
    largest = 0.0
    for chunk, w in _float64_chunks(rows, weights):
        deviation = chunk - mean
        squares += np.einsum("ij,ij->j", deviation, deviation) if w is None else w @ (deviation * deviation)
        if deviation.size:
            largest = max(largest, float(np.max(np.abs(deviation))))
    return ColumnDeviations(squares, largest), {}, state


def column_scale(source, sample_weight=None):
    """(Weighted) column means and variances of a row source, and the largest deviation of an
    entry from its column's mean, in two passes over its blocks. The variance of a constant column
    (one value in every row of positive weight) is exactly 0: its sum of squared deviations only
    holds the mean's round-off, which grows with the number of rows and says nothing of the data's
    scale, while a varying column's variance is positive at any scale.

    Parameters
    ----------
    source : RowSource
        In memory (one block, computed exactly as
        :func:`~fastelbo.mixture._initialization.column_mean_and_variance` computes it, except for
        the constant columns' 0) or read in blocks (on Dask's workers for a dask array).
    sample_weight : ndarray of shape (n_samples,) or None

    Returns
    -------
    mean, variance : ndarray of shape (n_features,), float64
    largest_deviation : float
    """
    weights = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    total = float(source.shape[0] if weights is None else weights.sum())
    sums, _, _ = reduce_blocks(source, column_sums_block_pass, weights)
    mean = sums.sums / total
    deviations, _, _ = reduce_blocks(source, functools.partial(column_deviations_block_pass, mean), weights)
    variance = np.where(sums.lowest == sums.highest, 0.0, deviations.squares / total)
    return mean, variance, deviations.largest
