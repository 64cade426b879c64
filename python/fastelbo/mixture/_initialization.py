"""Initial responsibilities for a mixture fit: scikit-learn's four ``init_params`` choices, with the
k-means work done by the C++ kernels. Hard assignments are returned as sparse one-hot matrices and
random soft assignments are generated chunk by chunk, so no dense N x K matrix is built.

With sample weights ``w_n`` a row of weight ``w`` stands for ``w`` copies of itself (zero: the row is
absent), as scikit-learn's ``KMeans(sample_weight=...)`` reads them.

``'kmeans'`` (the default) and ``'k-means++'`` work on X's **distinct rows** of positive weight,
each carrying its summed weight, in a canonical order set by the rows' values
(``_distinct_rows.py``: lexicographic, ``O(N log N)``; the kernels read the distinct rows in
place). Their draws therefore depend only on the weighted set of rows: shuffling the rows,
repeating a row ``w`` times instead of weighting it ``w``, or adding rows of weight 0 starts from
the same parameters exactly (scikit-learn's ``check_sample_weight_equivalence``), and duplicated
rows are clustered once. A change of units and origin, ``s X + b`` (s > 0), keeps the order, so
the start is the start of X mapped. (With fewer distinct positive-weight rows than components
there are no K distinct seeds, and the rows are used as given.)

- ``'kmeans'``: k-means++ seeding draws rows with probability ``∝ w D(x)^2``, Lloyd's centres are
  weighted means, and the initial M-step weighs every row's one-hot label by ``w``.
- ``'k-means++'``: the same weighted seeding.
- ``'random'``: uniform random responsibilities for every row of X in the order given (zero-weight
  rows included), weighted initial M-step: the draw of scikit-learn's ``GaussianMixture`` for the
  same ``random_state``, which a canonical order would lose; it therefore depends on the row order.
- ``'afkmc2'``: AFK-MC² (Bachem et al., NeurIPS 2016), k-means++ approximated by Markov chains of
  ``afkmc2_chain_length`` rows of X as given: the first row is drawn ``∝ w_n``, the chains' proposal
  mixes ``w_n d(x_n, c_1)^2`` with ``w_n`` and their target is k-means++'s ``∝ w_n D(x_n)^2``. Cost
  ``O(N·D + m·K²·D)`` instead of ``O(N·K·D)``; no sort (it serves very large N·K).
- ``'random_from_data'``: the K rows are drawn without replacement with probability ``∝ w_n`` (as
  ``KMeans(init='random')`` draws them, and with scikit-learn's draw for the same ``random_state``
  when the weights are equal), so zero-weight rows are never chosen; it depends on the row order.

The three seeding initialisations (``'k-means++'``, ``'afkmc2'``, ``'random_from_data'``) give each
component its seed row only, and every seed counts once in the initial M-step (uniform initial
mixing weights), whatever its weight: a seed is a chosen point, not a summary of the data. The
initial M-step reads just those K rows.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning

from fastelbo import _core
from fastelbo._row_chunks import row_chunks
from fastelbo.mixture._distinct_rows import RowSelection, distinct_rows
from fastelbo.mixture._gaussian_mstep import moments_lose_precision, new_means
from fastelbo.mixture._statistics import statistics_from_responsibilities

INIT_PARAMS = ("kmeans", "k-means++", "afkmc2", "random", "random_from_data")

# scikit-learn's KMeans defaults, used by init_params="kmeans".
_KMEANS_MAX_ITER = 300
_KMEANS_TOL = 1e-4


def column_mean_and_variance(X, sample_weight=None):
    """(Weighted) column means and variances of X in float64, in row chunks (no full float64 copy)."""
    n_samples = X.shape[0]
    weights = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    total = float(n_samples if weights is None else weights.sum())

    def chunks():
        for start, stop in row_chunks(*X.shape):
            rows = np.asarray(X[start:stop], dtype=np.float64)
            yield rows, None if weights is None else weights[start:stop]

    mean = np.zeros(X.shape[1])
    for rows, w in chunks():
        mean += rows.sum(axis=0) if w is None else w @ rows
    mean /= total
    variance = np.zeros(X.shape[1])
    for rows, w in chunks():
        diff = rows - mean
        variance += np.einsum("ij,ij->j", diff, diff) if w is None else w @ (diff * diff)
    return mean, variance / total


def _seed(random_state) -> int:
    return int(random_state.randint(0, np.iinfo(np.int32).max))


def _one_hot(rows, columns, shape):
    data = np.ones(len(rows))
    return sp.csr_matrix((data, (np.asarray(rows), np.asarray(columns))), shape=shape)


def kmeans_plusplus_indices(X, n_clusters, random_state, n_threads, sample_weight=None, source_rows=None):
    """Rows chosen by greedy k-means++ (2 + log K local trials, as scikit-learn), drawn with
    probability proportional to ``sample_weight * D(x)^2``: positions in X, or with ``source_rows``
    (the rows of X clustered, in that order, ``sample_weight`` one per entry) positions in it."""
    n_local_trials = 2 + int(math.log(n_clusters))
    seed = _seed(random_state)
    return _core.kmeans_plusplus(
        X, sample_weight, n_clusters, n_local_trials, seed, n_threads, source_rows=source_rows
    )


def afkmc2_indices(X, n_clusters, random_state, n_threads, sample_weight=None, chain_length=200):
    """Rows chosen by AFK-MC² with Markov chains of ``chain_length`` proposals (module docstring)."""
    return _core.afkmc2(X, sample_weight, n_clusters, chain_length, _seed(random_state), n_threads)


def kmeans_labels(
    X, n_clusters, random_state, n_threads, column_variance, sample_weight=None, source_rows=None
):
    """Labels of (weighted) Lloyd k-means started from k-means++ (scikit-learn's KMeans(n_init=1)):
    one per row of X, or with ``source_rows`` one per row of X it names (``kmeans_plusplus_indices``).

    ``column_variance`` is the weighted column variance: the tolerance scales with it, so that
    integer weights and repeated rows stop at the same point.
    """
    indices = kmeans_plusplus_indices(X, n_clusters, random_state, n_threads, sample_weight, source_rows)
    centers = np.asarray(X[indices if source_rows is None else source_rows[indices]], dtype=np.float64)
    tol = _KMEANS_TOL * float(np.mean(column_variance))
    labels, _, _, _ = _core.lloyd_kmeans(
        X, sample_weight, centers, _KMEANS_MAX_ITER, tol, n_threads, source_rows=source_rows
    )
    _warn_if_fewer_distinct_clusters(labels, n_clusters, sample_weight)
    return labels


def _warn_if_fewer_distinct_clusters(labels, n_clusters, sample_weight):
    """scikit-learn's KMeans warning when its final labels use fewer than n_clusters clusters.

    Lloyd relocates empty clusters, so its labels miss a cluster only when the data has fewer
    distinct (positive-weight) rows than clusters: counting the labels used, O(N), detects that
    without comparing rows.
    """
    used = labels if sample_weight is None else labels[np.asarray(sample_weight) > 0]
    distinct_clusters = int(np.count_nonzero(np.bincount(used, minlength=n_clusters)))
    if distinct_clusters < n_clusters:
        warnings.warn(
            f"Number of distinct clusters ({distinct_clusters}) found smaller than "
            f"n_clusters ({n_clusters}). Possibly due to duplicate points in X.",
            ConvergenceWarning,
            # user -> BLAS-limit wrapper -> fit -> _fit -> _fit_em -> _initialize_parameters
            # -> initial_responsibilities -> kmeans_labels -> here
            stacklevel=9,
        )


class RandomResponsibilities:
    """Uniform random responsibilities, normalised per row, produced in row order on slicing.

    Draws the same numbers as ``random_state.uniform(size=(N, K))`` would, but one chunk at a
    time; rows must be requested in increasing, contiguous slices.
    """

    def __init__(self, random_state, n_samples, n_components):
        self.shape = (n_samples, n_components)
        self._random_state = random_state
        self._start_state = random_state.get_state()
        self._next_row = 0

    def restarted(self):
        """The same responsibilities from the first row again, drawn from a copy of the starting
        state (the random state given is not advanced again)."""
        copy = np.random.RandomState()
        copy.set_state(self._start_state)
        return RandomResponsibilities(copy, *self.shape)

    def __getitem__(self, rows: slice):
        start, stop, _ = rows.indices(self.shape[0])
        if start != self._next_row:
            raise RuntimeError("RandomResponsibilities must be read in contiguous row order")
        self._next_row = stop
        resp = self._random_state.uniform(size=(stop - start, self.shape[1]))
        return resp / resp.sum(axis=1, keepdims=True)


def initial_responsibilities(
    X,
    n_components,
    init_params,
    random_state,
    n_threads,
    column_variance,
    sample_weight=None,
    afkmc2_chain_length=200,
):
    """Responsibilities for the initial M-step, the rows they belong to and the weights of those rows.

    Returns ``(rows, resp, row_weights)``: the initial M-step takes the moments of ``rows`` under
    ``resp`` (N', K), sparse or a RandomResponsibilities, weighted by ``row_weights`` (None for the
    seeding initialisations, whose seeds count once each). 'kmeans' and 'k-means++' cluster X's
    distinct rows of positive weight in canonical order (module docstring), with their summed
    weights; for 'kmeans' ``rows`` are those distinct rows (a ``RowSelection`` of X, read a slice at
    a time). The seeding initialisations return their K seed rows (a ``RowSelection``) with the
    identity as ``resp``. The other initialisations (and 'kmeans' and 'k-means++' when X has fewer
    distinct positive-weight rows than ``n_components``, where no K distinct seeds exist) work on
    X's rows as given.
    """
    if init_params not in INIT_PARAMS:
        raise ValueError(f"init_params must be one of {INIT_PARAMS}, got {init_params!r}")
    n_samples = X.shape[0]
    if init_params == "afkmc2":
        indices = afkmc2_indices(X, n_components, random_state, n_threads, sample_weight, afkmc2_chain_length)
        return _seed_rows(X, indices)
    if init_params == "random":
        return X, RandomResponsibilities(random_state, n_samples, n_components), sample_weight
    if init_params == "random_from_data":
        if sample_weight is None or np.ptp(sample_weight) == 0:
            indices = random_state.choice(n_samples, size=n_components, replace=False)
        else:
            probabilities = np.asarray(sample_weight, dtype=np.float64)
            probabilities = probabilities / probabilities.sum()
            indices = random_state.choice(n_samples, size=n_components, replace=False, p=probabilities)
        return _seed_rows(X, indices)
    # 'kmeans' and 'k-means++': on the distinct rows, in canonical order, read in place by the kernels.
    distinct = distinct_rows(X, sample_weight)
    if len(distinct) >= n_components:
        # In X's dtype, as the kernels take them (integer sums stay exact).
        source_rows, row_weights = distinct.source_rows, distinct.weights.astype(X.dtype)
    else:
        source_rows, row_weights = None, sample_weight
    if init_params == "kmeans":
        labels = kmeans_labels(
            X, n_components, random_state, n_threads, column_variance, row_weights, source_rows
        )
        # The initial M-step sums the distinct rows in canonical order (so shuffled or repeated rows
        # give the same sums bit for bit), gathered a chunk at a time.
        rows = X if source_rows is None else RowSelection(X, source_rows)
        return rows, _one_hot(np.arange(rows.shape[0]), labels, (rows.shape[0], n_components)), row_weights
    indices = kmeans_plusplus_indices(X, n_components, random_state, n_threads, row_weights, source_rows)
    return _seed_rows(X, indices if source_rows is None else source_rows[indices])


def initial_statistics(rows, resp, column_mean, covariance_type, reg_covar, row_weights=None):
    """The initial M-step's statistics of :func:`initial_responsibilities`' output: moments about
    the column mean, or, where those cancel against the regularised scatter (components whose
    rows lie far from the mean for their spread: a seed row of clusters 1e6 apart has a scatter of
    0 that ``sxx - sx sx^T / nk`` would give as round-off of 1e12 times eps), about each
    component's new mean, as EM's steps take them (:func:`moments_lose_precision`)."""
    stats = statistics_from_responsibilities(
        rows, resp, column_mean, covariance_type, sample_weight=row_weights
    )
    if moments_lose_precision(stats, covariance_type, reg_covar):
        again = resp.restarted() if isinstance(resp, RandomResponsibilities) else resp
        stats = statistics_from_responsibilities(
            rows, again, new_means(stats), covariance_type, sample_weight=row_weights
        )
    return stats


def _seed_rows(X, seeds):
    """The initial M-step's input for a seeding: seed k is component k's one row, counted once.
    Only the K seed rows are read (not a pass over X), summed in component order."""
    n_components = len(seeds)
    return RowSelection(X, seeds), sp.identity(n_components, format="csr"), None
