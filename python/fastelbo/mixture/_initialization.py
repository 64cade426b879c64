"""Initial responsibilities for a mixture fit: scikit-learn's four ``init_params`` choices, with the
k-means work done by the C++ kernels. Hard assignments are returned as sparse one-hot matrices and
random soft assignments are generated chunk by chunk, so no dense N x K matrix is built."""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp

from fastelbo import _core

INIT_PARAMS = ("kmeans", "k-means++", "random", "random_from_data")

# scikit-learn's KMeans defaults, used by init_params="kmeans".
_KMEANS_MAX_ITER = 300
_KMEANS_TOL = 1e-4
_CHUNK_ROWS = 65536


def column_mean_and_variance(X):
    """Column means and variances of X in float64, in row chunks (no full float64 copy)."""
    n_samples = X.shape[0]
    mean = np.zeros(X.shape[1])
    for start in range(0, n_samples, _CHUNK_ROWS):
        mean += np.asarray(X[start : start + _CHUNK_ROWS], dtype=np.float64).sum(axis=0)
    mean /= n_samples
    variance = np.zeros(X.shape[1])
    for start in range(0, n_samples, _CHUNK_ROWS):
        diff = np.asarray(X[start : start + _CHUNK_ROWS], dtype=np.float64) - mean
        variance += np.einsum("ij,ij->j", diff, diff)
    return mean, variance / n_samples


def _seed(random_state) -> int:
    return int(random_state.randint(0, np.iinfo(np.int32).max))


def _one_hot(rows, columns, shape):
    data = np.ones(len(rows))
    return sp.csr_matrix((data, (np.asarray(rows), np.asarray(columns))), shape=shape)


def kmeans_plusplus_indices(X, n_clusters, random_state, n_threads):
    """Rows chosen by greedy k-means++ (2 + log K local trials, as scikit-learn)."""
    n_local_trials = 2 + int(math.log(n_clusters))
    return _core.kmeans_plusplus(X, None, n_clusters, n_local_trials, _seed(random_state), n_threads)


def kmeans_labels(X, n_clusters, random_state, n_threads, column_variance):
    """Labels of Lloyd k-means started from k-means++ (scikit-learn's KMeans(n_init=1))."""
    indices = kmeans_plusplus_indices(X, n_clusters, random_state, n_threads)
    centers = np.asarray(X[indices], dtype=np.float64)
    tol = _KMEANS_TOL * float(np.mean(column_variance))
    labels, _, _, _ = _core.lloyd_kmeans(X, None, centers, _KMEANS_MAX_ITER, tol, n_threads)
    return labels


class RandomResponsibilities:
    """Uniform random responsibilities, normalised per row, produced in row order on slicing.

    Draws the same numbers as ``random_state.uniform(size=(N, K))`` would, but one chunk at a
    time; rows must be requested in increasing, contiguous slices.
    """

    def __init__(self, random_state, n_samples, n_components):
        self.shape = (n_samples, n_components)
        self._random_state = random_state
        self._next_row = 0

    def __getitem__(self, rows: slice):
        start, stop, _ = rows.indices(self.shape[0])
        if start != self._next_row:
            raise RuntimeError("RandomResponsibilities must be read in contiguous row order")
        self._next_row = stop
        resp = self._random_state.uniform(size=(stop - start, self.shape[1]))
        return resp / resp.sum(axis=1, keepdims=True)


def initial_responsibilities(X, n_components, init_params, random_state, n_threads, column_variance):
    """(N, K) responsibilities for the initial M-step (sparse, or a RandomResponsibilities)."""
    n_samples = X.shape[0]
    shape = (n_samples, n_components)
    if init_params == "kmeans":
        labels = kmeans_labels(X, n_components, random_state, n_threads, column_variance)
        return _one_hot(np.arange(n_samples), labels, shape)
    if init_params == "k-means++":
        indices = kmeans_plusplus_indices(X, n_components, random_state, n_threads)
        return _one_hot(indices, np.arange(n_components), shape)
    if init_params == "random":
        return RandomResponsibilities(random_state, n_samples, n_components)
    if init_params == "random_from_data":
        indices = random_state.choice(n_samples, size=n_components, replace=False)
        return _one_hot(indices, np.arange(n_components), shape)
    raise ValueError(f"init_params must be one of {INIT_PARAMS}, got {init_params!r}")
