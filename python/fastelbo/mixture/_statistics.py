"""Additive sufficient statistics of a mixture E-step, and their computation from given
responsibilities (used by the initialisations).

The moments are taken about a per-component reference point ``r_c`` (``reference``)::

    nk[c] = sum_n w_n q_nc
    sx[c] = sum_n w_n q_nc (x_n - r_c)
    sxx   = sum_n w_n q_nc (x_n - r_c)(x_n - r_c)^T    shaped per covariance type:
            full (K, D, D); tied (D, D) summed over c; diag (K, D) squares; spherical (K,) squared norms

Sums over disjoint sets of rows merge by addition (:meth:`MixtureStatistics.merge`), so statistics of
row chunks computed anywhere combine into the statistics of their union.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from fastelbo._row_chunks import row_chunks
from fastelbo.mixture._covariance import parameter_shape

#: Added to every ``nk`` before an M-step divides by it (scikit-learn adds ``10 * eps`` with unit
#: weights), in units of the mean sample weight, so that an empty component keeps finite moments
#: and multiplying every sample weight by a constant changes no fitted parameter.
NK_FLOOR = 10 * np.finfo(np.float64).eps


@dataclass
class MixturePassSums:
    """The ELBO sums and component totals every mixture pass produces (all float64); the statistics
    of each mixture family add their moments to them."""

    n_samples: int
    sum_weight: float
    sum_log_norm: float
    sum_entropy: float
    nk: np.ndarray

    @staticmethod
    def kernel_sums(out: dict, n_samples: int) -> dict:
        """The fields above from the dictionary a mixture kernel pass returns."""
        return {
            "n_samples": int(n_samples),
            "sum_weight": float(out["sum_weight"]),
            "sum_log_norm": float(out["sum_log_norm"]),
            "sum_entropy": float(out["sum_entropy"]),
            "nk": out["nk"],
        }

    @property
    def nk_floor(self) -> float:
        """:data:`NK_FLOOR` in units of the mean weight of a sample."""
        return NK_FLOOR * self.sum_weight / max(self.n_samples, 1)

    @property
    def elbo(self) -> float:
        """Mean ELBO ``F(q, Theta)`` of the pass (the mean log-likelihood for exact posteriors)."""
        return self.sum_log_norm / self.sum_weight

    @property
    def component_entropy(self) -> float:
        """Mean entropy of the component posteriors ``<H[q_n(c)]>``."""
        return self.sum_entropy / self.sum_weight

    @property
    def mean_responsibilities(self) -> np.ndarray:
        """The aggregate posterior ``qbar_c = <q_n(c)>``."""
        return self.nk / self.sum_weight


@dataclass
class MixtureStatistics(MixturePassSums):
    """Sufficient statistics and ELBO sums of one Gaussian-mixture pass (all float64)."""

    sx: np.ndarray | None = None
    sxx: np.ndarray | None = None
    reference: np.ndarray | None = None

    @classmethod
    def from_kernel(cls, out: dict, n_samples: int, reference=None) -> MixtureStatistics:
        """Wrap the dictionary returned by ``_core.gaussian_mixture_pass``."""
        return cls(
            **cls.kernel_sums(out, n_samples), sx=out.get("sx"), sxx=out.get("sxx"), reference=reference
        )

    @property
    def variational_entropy(self) -> float:
        """Mean posterior entropy ``<H[q_n]>`` (the posteriors are over components only)."""
        return self.component_entropy

    def merge(self, other: MixtureStatistics) -> MixtureStatistics:
        """Statistics of the union of two disjoint row sets (same parameters and reference)."""
        if (self.reference is None) != (other.reference is None) or (
            self.reference is not None and not np.array_equal(self.reference, other.reference)
        ):
            raise ValueError("cannot merge statistics taken about different reference points")

        def add(a, b):
            return None if a is None or b is None else a + b

        return MixtureStatistics(
            self.n_samples + other.n_samples,
            self.sum_weight + other.sum_weight,
            self.sum_log_norm + other.sum_log_norm,
            self.sum_entropy + other.sum_entropy,
            self.nk + other.nk,
            add(self.sx, other.sx),
            add(self.sxx, other.sxx),
            self.reference,
        )


def statistics_from_responsibilities(X, resp, shift, covariance_type, sample_weight=None):
    """Moments of X under given responsibilities, about the reference points ``shift``: one common
    point (D,), or one per component (K, D).

    ``X`` is an (N, D) array or any object with ``shape`` whose row slices are arrays (a
    ``RowSelection``). ``resp`` is an (N, K) ndarray, a scipy sparse matrix (hard assignments), or
    any object with ``shape`` whose row slices, read in order, are ndarrays. The ELBO sums are not
    defined for arbitrary responsibilities and are left at zero (``sum_weight`` is set).

    A common point is one pass of products; per-component points (the new means, where moments
    about a common point cancel: :func:`fastelbo.mixture._gaussian_mstep.moments_lose_precision`)
    take each component's rows about its own point.
    """
    shift = np.asarray(shift, dtype=np.float64)
    if shift.ndim == 2:
        return _statistics_about_points(X, resp, shift, covariance_type, sample_weight)
    n_samples, n_features = X.shape
    n_components = resp.shape[1]
    resp, sparse, weights, (nk, sx, sxx) = _prepared(X, resp, covariance_type, sample_weight)
    for start, stop in row_chunks(n_samples, n_features):
        xc = np.asarray(X[start:stop], dtype=np.float64) - shift
        r = resp[start:stop]
        if not sparse:
            r = np.asarray(r, dtype=np.float64)
        if weights is not None:
            w = weights[start:stop]
            r = sp.diags(w) @ r if sparse else r * w[:, None]
        rt = r.T
        nk += np.asarray(r.sum(axis=0)).ravel()
        sx += rt @ xc
        if covariance_type == "full" and sparse:
            # Hard assignments: each component's scatter over its own rows only (N D^2, not N K D^2).
            columns = r.tocsc()
            for c in range(n_components):
                lo, hi = columns.indptr[c], columns.indptr[c + 1]
                rows = xc[columns.indices[lo:hi]]
                sxx[c] += (rows * columns.data[lo:hi, None]).T @ rows
        else:
            sxx += _second_moments(covariance_type, xc, rt)
    sum_weight = float(n_samples if weights is None else weights.sum())
    reference = np.broadcast_to(np.asarray(shift, dtype=np.float64), (n_components, n_features))
    return MixtureStatistics(n_samples, sum_weight, 0.0, 0.0, nk, sx, sxx, np.array(reference))


def _statistics_about_points(X, resp, points, covariance_type, sample_weight=None):
    """:func:`statistics_from_responsibilities` about one point per component (K, D): component
    ``c``'s moments over the rows it has responsibility for, about ``points[c]``."""
    n_samples, n_features = X.shape
    n_components = resp.shape[1]
    resp, sparse, weights, (nk, sx, sxx) = _prepared(X, resp, covariance_type, sample_weight)
    for start, stop in row_chunks(n_samples, n_features):
        x = np.asarray(X[start:stop], dtype=np.float64)
        r = resp[start:stop]
        r = r.tocsc() if sparse else np.asarray(r, dtype=np.float64)
        w = None if weights is None else weights[start:stop]
        for c in range(n_components):
            if sparse:  # hard assignments: the component's own rows only
                lo, hi = r.indptr[c], r.indptr[c + 1]
                rows, column = r.indices[lo:hi], r.data[lo:hi]
            else:
                rows, column = slice(None), r[:, c]
            if w is not None:
                column = column * w[rows]
            centred = x[rows] - points[c]
            nk[c] += column.sum()
            sx[c] += column @ centred
            moments = _second_moments(covariance_type, centred, column[None, :])
            if covariance_type == "tied":
                sxx += moments
            else:
                sxx[c] += moments[0]
    sum_weight = float(n_samples if weights is None else weights.sum())
    return MixtureStatistics(n_samples, sum_weight, 0.0, 0.0, nk, sx, sxx, np.array(points))


def _second_moments(covariance_type, centred, weights_t):
    """Second moments of the rows ``centred`` (n, D) under each row of ``weights_t`` (k, n, dense
    or sparse), in the covariance type's layout: diag (k, D), spherical (k,), full (k, D, D), tied
    (D, D) summed over the k."""
    if covariance_type == "diag":
        return weights_t @ (centred * centred)
    if covariance_type == "spherical":
        return weights_t @ np.einsum("ij,ij->i", centred, centred)
    if covariance_type == "tied":
        row_weight = np.asarray(weights_t.sum(axis=0)).ravel()
        return (centred * row_weight[:, None]).T @ centred
    return np.stack([(centred * np.asarray(row)[:, None]).T @ centred for row in weights_t])


def _prepared(X, resp, covariance_type, sample_weight):
    """``(resp, sparse, weights, (nk, sx, sxx))``: sparse responsibilities as CSR (sliced by rows)
    with float64 values, the weights in float64 (or None) and the zero sums to add to."""
    n_components, n_features = resp.shape[1], X.shape[1]
    sparse = sp.issparse(resp)
    if sparse:
        resp = sp.csr_matrix(resp, dtype=np.float64)
    weights = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    sums = (
        np.zeros(n_components),
        np.zeros((n_components, n_features)),
        np.zeros(parameter_shape(covariance_type, n_components, n_features)),
    )
    return resp, sparse, weights, sums
