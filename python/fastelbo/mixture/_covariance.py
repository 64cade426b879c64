"""What depends on the covariance type of a Gaussian mixture: shapes, precision Cholesky factors,
log-determinants and parameter counts (scikit-learn's conventions throughout).

``precisions_cholesky`` holds a triangular ``U`` per component with precision ``P = U U^T``
(full/tied), or ``1/sqrt(variance)`` (diag/spherical).
"""

from __future__ import annotations

import numpy as np
from scipy import linalg

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")

ILL_DEFINED_COVARIANCE = (
    "Fitting the mixture model failed because some components have ill-defined empirical "
    "covariance (for instance caused by singleton or collapsed samples). Try to decrease the "
    "number of components, increase reg_covar, or scale the input data."
)


def parameter_shape(covariance_type, n_components, n_features):
    """Shape of ``covariances_`` / ``precisions_`` / ``precisions_cholesky_``."""
    return {
        "full": (n_components, n_features, n_features),
        "tied": (n_features, n_features),
        "diag": (n_components, n_features),
        "spherical": (n_components,),
    }[covariance_type]


def precisions_cholesky_from_covariances(covariances, covariance_type):
    """Upper-triangular factors ``U`` with ``U U^T = Sigma^{-1}``; ValueError if not positive definite."""
    covariances = np.asarray(covariances, dtype=np.float64)
    if covariance_type in ("full", "tied"):
        matrices = covariances if covariance_type == "full" else covariances[None]
        result = np.empty_like(matrices)
        identity = np.eye(matrices.shape[-1])
        for c, covariance in enumerate(matrices):
            try:
                cov_chol = linalg.cholesky(covariance, lower=True)
            except linalg.LinAlgError:
                raise ValueError(ILL_DEFINED_COVARIANCE) from None
            result[c] = linalg.solve_triangular(cov_chol, identity, lower=True).T
        return result if covariance_type == "full" else result[0]
    if np.any(~np.isfinite(covariances)) or np.any(covariances <= 0.0):
        raise ValueError(ILL_DEFINED_COVARIANCE)
    return 1.0 / np.sqrt(covariances)


def covariances_in_dtype(covariances, covariance_type, dtype):
    """``(covariances, precisions_cholesky)`` stored in ``dtype``, describing one model.

    The covariances are rounded to ``dtype`` first and the precision factors computed (in float64)
    from the rounded matrices, so that ``covariances_`` and ``precisions_cholesky_`` are the same
    model. Rounding each separately is not: a float32 covariance whose correlation condition number
    approaches ``1/eps`` (a duplicated column held apart by ``reg_covar``) moves its smallest
    eigenvalues by a large fraction when rounded, while the factor of the unrounded matrix keeps
    them, so the log-densities of the two disagree far beyond float32 round-off. ValueError (a
    ``reg_covar`` hint) when the rounded matrices are not positive definite.
    """
    # Entries far below the matrices' scale (the round-off off the diagonal of a seed's reg_covar I)
    # round to float32's subnormals or 0: the rounding the float32 parameters mean, not an error
    # under the caller's np.errstate.
    with np.errstate(under="ignore"):
        rounded = np.asarray(covariances, dtype=dtype)
        precisions_cholesky = precisions_cholesky_from_covariances(rounded, covariance_type)
        return rounded, np.asarray(precisions_cholesky, dtype=dtype)


def rounding_cost(exact, rounded, covariance_type, weights, reg_covar, n_features):
    """How much rounding the M-step's covariances changes what the M-step maximised.

    The M-step sets ``Sigma_c = S_c + reg_covar I`` (``S_c`` the responsibility-weighted scatter);
    replacing it by ``Sigma'_c`` (``rounded``, e.g. its float32 rounding) changes the expected
    log-likelihood per sample under the same posteriors by exactly
    ``-1/2 sum_c pi_c [log|I + P_c d_c| - tr(P'_c d_c) - reg_covar (tr P'_c - tr P_c)]``, with
    ``d_c = Sigma'_c - Sigma_c``, ``P = Sigma^-1``, ``P' = Sigma'^-1``: evaluated here in float64
    and returned as an absolute value. It is large only where the rounding moves a small eigenvalue
    by a large fraction of itself (a variance held near ``reg_covar`` beside much larger ones).
    """
    exact = np.asarray(exact, dtype=np.float64)
    rounded = np.asarray(rounded, dtype=np.float64)
    change = rounded - exact
    weights = np.asarray(weights, dtype=np.float64)
    if covariance_type in ("diag", "spherical"):
        per_entry = np.log1p(change / exact) - change / rounded - reg_covar * (1 / rounded - 1 / exact)
        if covariance_type == "diag":
            per_component = per_entry.sum(axis=1)
        else:
            per_component = n_features * per_entry
        return 0.5 * abs(float(weights @ per_component))
    if covariance_type == "tied":
        exact, rounded, change, weights = exact[None], rounded[None], change[None], np.ones(1)
    precision, rounded_precision = np.linalg.inv(exact), np.linalg.inv(rounded)
    identity = np.eye(exact.shape[-1])
    _, log_det = np.linalg.slogdet(identity + precision @ change)
    traces = np.einsum("kij,kji->k", rounded_precision, change)
    regularisation = reg_covar * (
        np.trace(rounded_precision, axis1=1, axis2=2) - np.trace(precision, axis1=1, axis2=2)
    )
    return 0.5 * abs(float(weights @ (log_det - traces - regularisation)))


def precisions_cholesky_from_precisions(precisions, covariance_type):
    """Upper-triangular ``U`` with ``U U^T = P`` for given precisions (diag/spherical: ``sqrt(P)``).

    ``U = J chol(J P J) J`` with ``J`` the exchange matrix: the lower Cholesky factor of the
    flipped matrix, flipped back, is upper triangular (scikit-learn's convention).
    """
    precisions = np.asarray(precisions, dtype=np.float64)
    if covariance_type in ("full", "tied"):
        matrices = precisions if covariance_type == "full" else precisions[None]
        factors = np.array([linalg.cholesky(p[::-1, ::-1], lower=True)[::-1, ::-1] for p in matrices])
        return factors if covariance_type == "full" else factors[0]
    return np.sqrt(precisions)


def precisions_from_cholesky(precisions_cholesky, covariance_type):
    """``P = U U^T`` (diag/spherical: ``U**2``)."""
    u = np.asarray(precisions_cholesky)
    if covariance_type == "full":
        return np.einsum("kij,klj->kil", u, u)
    if covariance_type == "tied":
        return u @ u.T
    return u**2


def covariances_from_precisions_cholesky(precisions_cholesky, covariance_type):
    """``Sigma = (U U^T)^{-1}``."""
    precisions = precisions_from_cholesky(np.asarray(precisions_cholesky, np.float64), covariance_type)
    if covariance_type in ("full", "tied"):
        return np.linalg.inv(precisions)  # batched over components for full
    return 1.0 / precisions


def half_log_det_covariances(precisions_cholesky, covariance_type, n_components, n_features):
    """``1/2 log|Sigma_c|`` for every component, shape (K,) (tied: the shared value repeated)."""
    u = np.asarray(precisions_cholesky, dtype=np.float64)
    if covariance_type == "full":
        values = -np.log(np.diagonal(u, axis1=1, axis2=2)).sum(axis=1)
    elif covariance_type == "tied":
        values = np.full(n_components, -np.log(np.diag(u)).sum())
    elif covariance_type == "diag":
        values = -np.log(u).sum(axis=1)
    else:
        values = -n_features * np.log(u)
    return values


def n_parameters(covariance_type, n_components, n_features):
    """Number of free parameters (for BIC/AIC)."""
    covariance_params = {
        "full": n_components * n_features * (n_features + 1) / 2.0,
        "tied": n_features * (n_features + 1) / 2.0,
        "diag": n_components * n_features,
        "spherical": n_components,
    }[covariance_type]
    return int(covariance_params + n_components * n_features + n_components - 1)


def check_precisions_init(precisions, covariance_type, n_components, n_features):
    """Validate ``precisions_init``: shape, finiteness, symmetry and positive definiteness.

    The messages are scikit-learn's (``sklearn.mixture._gaussian_mixture._check_precisions``), word
    for word, where it checks the same thing.
    """
    precisions = np.asarray(precisions, dtype=np.float64)
    expected = parameter_shape(covariance_type, n_components, n_features)
    if precisions.shape != expected:
        raise ValueError(
            f"The parameter '{covariance_type} precision' should have the shape of {expected}, "
            f"but got {precisions.shape}"
        )
    if not np.all(np.isfinite(precisions)):
        raise ValueError("precisions_init contains NaN or infinity")
    if covariance_type in ("diag", "spherical"):
        if np.any(precisions <= 0.0):
            raise ValueError(f"'{covariance_type} precision' should be positive")
        return precisions
    matrices = precisions if covariance_type == "full" else precisions[None]
    for matrix in matrices:
        if not np.allclose(matrix, matrix.T) or np.any(np.linalg.eigvalsh(matrix) <= 0.0):
            raise ValueError(f"'{covariance_type} precision' should be symmetric, positive-definite")
    return precisions
