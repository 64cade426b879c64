"""Independent evaluation of the parameters an estimator returns: log-densities, responsibilities
and the entropy terms of the ELBO, computed from the returned parameters alone.

Every fitted model here is a Gaussian mixture once its latent factors are integrated out:
component ``c`` has weight ``pi_c``, mean ``mu_c`` and covariance ``C_c``, given either as a matrix
(Gaussian mixtures) or in factor form ``C_c = W_c^T W_c + diag(psi_c)`` with loadings ``W_c`` of
shape (H, D) (PPCA, factor analysis, mixtures of factor analysers). Nothing here calls fastelbo:
the log-density goes through a Cholesky factor of ``C_c`` itself, never through the Woodbury
identity, so a noise variance at a floor costs no accuracy.

Precision. A Cholesky-based log-density is accurate to a few units of round-off times the
dimension and the condition number of the *correlation* matrix of ``C_c`` (Cholesky is invariant
under diagonal scaling, so features in different units cost nothing). The reference therefore
works in ``np.longdouble`` (64-bit mantissa on x86) and, where even that cannot resolve the
condition number, in mpmath with enough digits; each evaluation returns a bound on its own error
so a comparison can add it to its tolerance instead of guessing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.special

LOG_2PI = math.log(2.0 * math.pi)
LOG_2PI_E = math.log(2.0 * math.pi * math.e)

#: The extended type used for the reference arithmetic (80-bit on x86 Linux; float64 elsewhere).
EXTENDED = np.longdouble
EXTENDED_EPS = float(np.finfo(EXTENDED).eps)

#: Largest relative error bound accepted from longdouble before switching to mpmath.
_EXTENDED_ERROR_LIMIT = 1e-10


class NotPositiveDefinite(ValueError):
    """A component covariance of the returned parameters is not positive definite."""


@dataclass(frozen=True)
class GaussianMixtureParameters:
    """A mixture of Gaussians in float64, as an estimator returned it.

    Attributes
    ----------
    weights : ndarray of shape (K,)
    means : ndarray of shape (K, D)
    covariances : ndarray of shape (K, D, D) or None
        Full covariance matrices (Gaussian mixtures); None in factor form.
    loadings : ndarray of shape (K, H, D) or None
        ``W_c`` in factor form (``C_c = W_c^T W_c + diag(noise_c)``).
    noise : ndarray of shape (K, D) or None
        ``psi_c`` in factor form.
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray | None = None
    loadings: np.ndarray | None = None
    noise: np.ndarray | None = None

    @property
    def n_components(self):
        return self.means.shape[0]

    @property
    def n_features(self):
        return self.means.shape[1]

    @property
    def n_factors(self):
        return 0 if self.loadings is None else self.loadings.shape[1]

    def covariance(self, c, dtype=np.float64):
        """``C_c`` computed in ``dtype`` from the float64 parameters (exact inputs, one rounding
        per product and sum in ``dtype``)."""
        if self.covariances is not None:
            return self.covariances[c].astype(dtype)
        W = self.loadings[c].astype(dtype)
        return W.T @ W + np.diag(self.noise[c].astype(dtype))

    def covariance_mpmath(self, c):
        """``C_c`` as an mpmath matrix at the current working precision."""
        import mpmath

        D = self.n_features
        if self.covariances is not None:
            return mpmath.matrix([[mpmath.mpf(float(v)) for v in row] for row in self.covariances[c]])
        W = [[mpmath.mpf(float(v)) for v in row] for row in self.loadings[c]]
        C = mpmath.matrix(D, D)
        for i in range(D):
            for j in range(i + 1):
                value = mpmath.fsum(W[h][i] * W[h][j] for h in range(len(W)))
                if i == j:
                    value += mpmath.mpf(float(self.noise[c][i]))
                C[i, j] = C[j, i] = value
        return C


# -- extraction of the returned parameters ----------------------------------------------------


def _f64(a):
    return np.asarray(a, dtype=np.float64)


def gmm_parameters(gmm):
    """The mixture a fitted FastGMM (or scikit-learn GaussianMixture) returned, from
    ``weights_``, ``means_`` and ``covariances_`` in scikit-learn's shapes."""
    means = _f64(gmm.means_)
    K, D = means.shape
    cov = _f64(gmm.covariances_)
    kind = gmm.covariance_type
    if kind == "full":
        full = cov
    elif kind == "tied":
        full = np.broadcast_to(cov, (K, D, D)).copy()
    elif kind == "diag":
        full = np.stack([np.diag(row) for row in cov])
    elif kind == "spherical":
        full = np.stack([v * np.eye(D) for v in cov])
    else:
        raise ValueError(f"unknown covariance_type {kind!r}")
    return GaussianMixtureParameters(_f64(gmm.weights_), means, covariances=full)


def factor_model_parameters(model):
    """The single Gaussian of a fitted PPCA or factor analysis model (loadings of shape (H, D):
    PPCA's ``loadings_``, factor analysis's ``components_``; ``noise_variance_`` a scalar or per
    feature, ``mean_``)."""
    mean = _f64(model.mean_)
    D = mean.shape[0]
    noise = np.broadcast_to(_f64(model.noise_variance_), (D,)).copy()
    # PPCA's components_ are PCA's unit axes; its loadings are loadings_.
    loadings = model.loadings_ if hasattr(model, "loadings_") else model.components_
    return GaussianMixtureParameters(
        np.ones(1), mean[None, :], loadings=_f64(loadings)[None], noise=noise[None]
    )


def mfa_parameters(mfa):
    """The mixture of a fitted FastMFA: ``components_`` (K, H, D), ``noise_variance_`` (K, D) or
    (K,) for spherical noise."""
    means = _f64(mfa.means_)
    K, D = means.shape
    noise = _f64(mfa.noise_variance_)
    noise = np.broadcast_to(noise[:, None], (K, D)).copy() if noise.ndim == 1 else noise
    return GaussianMixtureParameters(_f64(mfa.weights_), means, loadings=_f64(mfa.components_), noise=noise)


# -- log-densities ----------------------------------------------------------------------------


def correlation_condition_number(C):
    """2-norm condition number of ``C`` scaled to unit diagonal (float64 eigenvalues; inf when the
    scaled matrix is not numerically positive definite)."""
    d = np.sqrt(np.abs(np.diag(C)))
    if np.any(d == 0) or not np.all(np.isfinite(C)):
        return np.inf
    R = C / np.outer(d, d)
    eig = np.linalg.eigvalsh((R + R.T) / 2)
    return np.inf if eig[0] <= 0 else float(eig[-1] / eig[0])


def _cholesky_any(C):
    """Lower Cholesky factor in C's own dtype (column by column, vectorised over rows)."""
    D = C.shape[0]
    L = np.zeros_like(C)
    for j in range(D):
        s = C[j, j] - L[j, :j] @ L[j, :j]
        if not s > 0:
            raise NotPositiveDefinite(f"leading minor {j + 1} is not positive")
        L[j, j] = np.sqrt(s)
        L[j + 1 :, j] = (C[j + 1 :, j] - L[j + 1 :, :j] @ L[j, :j]) / L[j, j]
    return L


def _forward_solve_any(L, R):
    """``Y = R L^-T`` row-wise (each row y solves L y = r), in the arrays' dtype."""
    Y = np.zeros_like(R)
    for j in range(L.shape[0]):
        Y[:, j] = (R[:, j] - Y[:, :j] @ L[j, :j]) / L[j, j]
    return Y


def mahalanobis_and_log_det_extended(params, c, X):
    """(Mahalanobis distances, log|C_c|) in np.longdouble."""
    C = params.covariance(c, EXTENDED)
    L = _cholesky_any(C)
    R = X.astype(EXTENDED) - params.means[c].astype(EXTENDED)
    Y = _forward_solve_any(L, R)
    return np.sum(Y * Y, axis=1), 2 * np.sum(np.log(np.diag(L)))


def mahalanobis_and_log_det_mpmath(params, c, X, digits):
    """(Mahalanobis distances, log|C_c|) in mpmath at ``digits`` significant digits."""
    import mpmath

    with mpmath.workdps(digits):
        C = params.covariance_mpmath(c)
        try:
            L = mpmath.cholesky(C)
        except ZeroDivisionError as error:  # mpmath's signal for a non-positive pivot
            raise NotPositiveDefinite(str(error)) from None
        except ValueError as error:
            raise NotPositiveDefinite(str(error)) from None
        D = params.n_features
        mean = [mpmath.mpf(float(v)) for v in params.means[c]]
        maha = np.empty(X.shape[0])
        for n, row in enumerate(X):
            r = mpmath.matrix([mpmath.mpf(float(v)) - m for v, m in zip(row, mean, strict=True)])
            y = _mp_forward(L, r, D)
            maha[n] = float(mpmath.fsum(v * v for v in y))
        log_det = float(2 * mpmath.fsum(mpmath.log(L[j, j]) for j in range(D)))
    return maha, log_det


def _mp_forward(L, r, D):
    y = [None] * D
    for j in range(D):
        y[j] = (r[j] - sum((L[j, k] * y[k] for k in range(j)), 0)) / L[j, j]
    return y


@dataclass(frozen=True)
class ComponentDensities:
    """Per-row, per-component log-densities of a mixture and what they are made of.

    Attributes
    ----------
    log_density : ndarray (N, K)
        ``log N(x_n; mu_c, C_c)``.
    mahalanobis : ndarray (N, K)
        ``(x_n - mu_c)^T C_c^-1 (x_n - mu_c)``.
    log_det : ndarray (K,)
        ``log |C_c|``.
    relative_error : ndarray (K,)
        Bound on the relative error of the reference's own Mahalanobis and log-det terms.
    """

    log_density: np.ndarray
    mahalanobis: np.ndarray
    log_det: np.ndarray
    relative_error: np.ndarray


def component_log_densities(params, X):
    """Log-density of every row under every component, through a Cholesky factor of ``C_c`` in
    extended precision (mpmath where longdouble cannot resolve the condition number).

    Raises NotPositiveDefinite when a covariance of the returned parameters is not positive
    definite (the returned model has no density)."""
    X = np.asarray(X, dtype=np.float64)
    N, D = X.shape
    K = params.n_components
    maha = np.empty((N, K))
    log_det = np.empty(K)
    rel_error = np.empty(K)
    for c in range(K):
        kappa = correlation_condition_number(params.covariance(c))
        # Cholesky's backward error is ~D eps |L||L^T| componentwise; its effect on the log-det
        # and the Mahalanobis distance is at most that times the correlation condition number.
        bound = 4 * D * EXTENDED_EPS * kappa
        if bound <= _EXTENDED_ERROR_LIMIT and EXTENDED_EPS < 1e-18:
            maha[:, c], log_det[c] = (
                np.asarray(v, dtype=np.float64) for v in mahalanobis_and_log_det_extended(params, c, X)
            )
            rel_error[c] = bound
        else:
            # Digits to resolve kappa (capped where float64 parameters make kappa meaningless),
            # plus 20 for the answer.
            digits = 20 + int(min(np.log10(kappa) if np.isfinite(kappa) else 40, 60)) + 2
            maha[:, c], log_det[c] = mahalanobis_and_log_det_mpmath(params, c, X, digits)
            rel_error[c] = 4 * D * 10.0 ** (-digits + 2) * (kappa if np.isfinite(kappa) else 1e40)
    log_density = -0.5 * (D * LOG_2PI + log_det[None, :] + maha)
    return ComponentDensities(log_density, maha, log_det, rel_error)


def _log_weights(weights):
    with np.errstate(divide="ignore"):
        return np.log(np.asarray(weights, dtype=np.float64))


@dataclass(frozen=True)
class MixtureEvaluation:
    """The log-likelihood of every row, the responsibilities, and an error bound per row.

    Attributes
    ----------
    log_likelihood : ndarray (N,)
        ``log sum_c pi_c N(x_n; mu_c, C_c)``.
    responsibilities : ndarray (N, K)
    magnitude : ndarray (N,)
        Size of the terms the log-likelihood sums, ``sum_c r_nc (|log pi_c| + (D log 2 pi +
        |log|C_c|| + m_nc)/2)``: round-off of any evaluation is proportional to it.
    component_magnitude : ndarray (N, K)
        The same per component (before weighting by the responsibilities).
    reference_error : ndarray (N,)
        Bound on the error of ``log_likelihood`` itself.
    float64_error : ndarray (N,)
        Error of a careful float64 Cholesky evaluation (:func:`float64_cholesky_log_likelihood`)
        of the same parameters; NaN where float64 cannot factor a covariance.
    float64_component_error : ndarray (N, K)
        The same evaluation's error in every component's log-density: what float64 achieves for
        a component the row's log-likelihood hardly sees (a broad component of condition number
        1e9 beside the row's tight one, whose error ~1e9 eps moves the responsibility it gets).
    densities : ComponentDensities
    """

    log_likelihood: np.ndarray
    responsibilities: np.ndarray
    magnitude: np.ndarray
    component_magnitude: np.ndarray
    reference_error: np.ndarray
    float64_error: np.ndarray
    float64_component_error: np.ndarray
    densities: ComponentDensities


def evaluate_mixture(params, X):
    """Independent log-likelihood and responsibilities of ``params`` on the rows of X."""
    dens = component_log_densities(params, X)
    log_joint = _log_weights(params.weights)[None, :] + dens.log_density
    top = np.max(log_joint, axis=1, keepdims=True)
    with np.errstate(invalid="ignore"):
        shifted = np.exp(log_joint - top)
    total = np.sum(shifted, axis=1, keepdims=True)
    log_likelihood = (top + np.log(total))[:, 0]
    resp = shifted / total
    D = params.n_features
    terms = np.abs(np.where(np.isfinite(_log_weights(params.weights)), _log_weights(params.weights), 0))[
        None, :
    ] + 0.5 * (D * LOG_2PI + np.abs(dens.log_det)[None, :] + dens.mahalanobis)
    component_magnitude = np.broadcast_to(terms, log_joint.shape)
    magnitude = np.sum(resp * terms, axis=1)
    reference_error = np.sum(resp * terms * dens.relative_error[None, :], axis=1) + 4 * 2.2e-16 * magnitude
    float64_log_joint = float64_cholesky_log_joints(params, X)
    float64_error = np.abs(scipy.special.logsumexp(float64_log_joint, axis=1) - log_likelihood)
    float64_component_error = np.abs(float64_log_joint - log_joint)
    return MixtureEvaluation(
        log_likelihood,
        resp,
        magnitude,
        component_magnitude,
        reference_error,
        float64_error,
        float64_component_error,
        dens,
    )


def float64_cholesky_log_likelihood(params, X):
    """The log-likelihood as a careful float64 program computes it: scipy's Cholesky factor of
    each ``C_c`` (built in float64), rows centred on the component mean, log-sum-exp. Its error
    against the extended reference is what float64 itself achieves on these parameters: a
    benchmark of achievable accuracy, not an excuse for an unstable form. NaN where ``C_c`` is not
    numerically positive definite in float64."""
    return scipy.special.logsumexp(float64_cholesky_log_joints(params, X), axis=1)


def float64_cholesky_log_joints(params, X):
    """``log pi_c + log N(x_n; mu_c, C_c)`` (N, K) as :func:`float64_cholesky_log_likelihood`
    computes them; NaN everywhere where a ``C_c`` is not numerically positive definite."""
    X = np.asarray(X, dtype=np.float64)
    N, D = X.shape
    log_joint = np.empty((N, params.n_components))
    for c in range(params.n_components):
        try:
            L = scipy.linalg.cholesky(params.covariance(c), lower=True)
        except (np.linalg.LinAlgError, ValueError):
            return np.full((N, params.n_components), np.nan)
        Y = scipy.linalg.solve_triangular(L, (X - params.means[c]).T, lower=True)
        log_det = 2 * np.sum(np.log(np.diag(L)))
        log_joint[:, c] = -0.5 * (D * LOG_2PI + log_det + np.sum(Y * Y, axis=0))
    return log_joint + _log_weights(params.weights)[None, :]


def weighted_mean(values, sample_weight=None):
    """``(1/W) sum_n w_n v_n`` in float64 (weights rescaled by their maximum first, so weights of
    any magnitude give the same mean)."""
    values = np.asarray(values, dtype=np.float64)
    if sample_weight is None:
        return float(np.mean(values, axis=0)) if values.ndim == 1 else np.mean(values, axis=0)
    w = np.asarray(sample_weight, dtype=np.float64)
    w = w / np.max(w)
    return np.tensordot(w, values, axes=(0, 0)) / np.sum(w)


def _entropy_rows(resp):
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.sum(np.where(resp > 0, resp * np.log(resp), 0.0), axis=1)


def categorical_entropy(p):
    """``-sum p log p`` with ``0 log 0 = 0``."""
    p = np.asarray(p, dtype=np.float64)
    p = p[p > 0]
    return float(-np.sum(p * np.log(p)))


@dataclass(frozen=True)
class ReferenceDecomposition:
    """The ELBO terms of exact posteriors under the returned parameters (per data point)."""

    elbo: float
    variational_entropy: float
    prior_entropy: float
    observable_entropy: float

    @property
    def entropy_sum(self):
        return self.variational_entropy - self.prior_entropy - self.observable_entropy


def reference_decomposition(params, X, sample_weight=None, form="collapsed", evaluation=None):
    """ELBO and entropy terms of the exact posteriors of ``params`` on X, from closed forms.

    ``form='collapsed'``: latent component only (Gaussian mixtures; mixtures of factor analysers
    with the factors integrated out): ``A = <H[q_n(c)]>``, ``H[p(z)] = H[pi]``,
    ``E H[p(x|z)] = sum_c qbar_c (D/2 log 2 pi e + 1/2 log|C_c|)``.

    ``form='latent'``: component and factors (factor models; K = 1 for PPCA and FA):
    ``A = <H[q_n(c)]> + sum_c qbar_c (H/2 log 2 pi e + 1/2 log|Sigma_c|)`` with
    ``log|Sigma_c| = log|Psi_c| - log|C_c|`` (matrix determinant lemma, so no Woodbury form is
    evaluated), ``H[p(z)] = H[pi] + H/2 log 2 pi e``, ``E H[p(x|z)] = sum_c qbar_c (D/2 log 2 pi e
    + 1/2 log|Psi_c|)``.
    """
    evaluation = evaluation if evaluation is not None else evaluate_mixture(params, X)
    D = params.n_features
    qbar = weighted_mean(evaluation.responsibilities, sample_weight)
    component_entropy = weighted_mean(_entropy_rows(evaluation.responsibilities), sample_weight)
    elbo = weighted_mean(evaluation.log_likelihood, sample_weight)
    log_det = evaluation.densities.log_det
    if form == "collapsed":
        variational = component_entropy
        prior = categorical_entropy(params.weights)
        observable = float(qbar @ (0.5 * D * LOG_2PI_E + 0.5 * log_det))
    elif form == "latent":
        H = params.n_factors
        log_det_noise = np.sum(np.log(params.noise), axis=1)
        variational = component_entropy + float(
            qbar @ (0.5 * H * LOG_2PI_E + 0.5 * (log_det_noise - log_det))
        )
        prior = categorical_entropy(params.weights) + 0.5 * H * LOG_2PI_E
        observable = float(qbar @ (0.5 * D * LOG_2PI_E + 0.5 * log_det_noise))
    else:
        raise ValueError(f"form must be 'collapsed' or 'latent', got {form!r}")
    return ReferenceDecomposition(float(elbo), float(variational), float(prior), float(observable))


def regularisation_gap_bound(params, reg_covar):
    """``reg_covar/2 * max_c tr(C_c^-1)``: how far a covariance regulariser can move the entropy
    sum away from the ELBO after an M-step (it bounds the ``qbar``-weighted sum)."""
    if reg_covar == 0:
        return 0.0
    traces = []
    for c in range(params.n_components):
        try:
            L = scipy.linalg.cholesky(params.covariance(c), lower=True)
        except (np.linalg.LinAlgError, ValueError):  # beyond float64: the eigenvalues bound it
            eigenvalues = np.linalg.eigvalsh(params.covariance(c, EXTENDED).astype(np.float64))
            traces.append(float(np.sum(1 / eigenvalues)) if eigenvalues[0] > 0 else np.inf)
            continue
        inverse_L = scipy.linalg.solve_triangular(L, np.eye(params.n_features), lower=True)
        traces.append(float(np.sum(inverse_L * inverse_L)))
    return 0.5 * reg_covar * max(traces)
