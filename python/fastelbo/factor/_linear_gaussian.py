"""Closed forms of the linear-Gaussian factor model shared by PPCA and factor analysis.

The model::

    p(z) = N(0, I_H),    p(x | z) = N(components^T z + mean, diag(noise))

with ``components`` of shape (H, D) (scikit-learn's ``FactorAnalysis.components_``) and ``noise``
of shape (D,) (PPCA: all equal). The model covariance is ``C = components^T components +
diag(noise)``.

Every number is computed in a form that cannot cancel, so that it stays accurate when a noise
variance is at its floor or tiny relative to the loadings (1/noise then reaches 1e12 and the
plain Woodbury identity ``C^-1 = diag(noise)^-1 - ...`` loses every digit). With ``A = diag(noise)^-1/2
components^T = U diag(s) V^T`` (a thin SVD, D x H):

- ``log|C| = sum_d log noise_d + sum_h log1p(s_h^2)``;
- ``x^T C^-1 x = ||diag(noise)^-1/2 (x - components^T m)||^2 + ||m||^2`` with ``m = E[z | x]`` the
  posterior mean: the minimum of a ridge regression, a sum of non-negative terms, evaluated at a
  point whose error only enters to second order;
- the M-step's noise ``E[(x_d - w_d^T z)^2]`` as a sum of squared residuals plus a quadratic form.

The data enter through a factor ``L`` of their covariance (:class:`~fastelbo.factor._scatter.DataScatter`,
``L^T L = S``), so an iteration costs O(rows(L) D H): O(D^2 H) for tall data, O(N D H) for wide.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import linalg

from fastelbo.entropy import LOG_2PI_E
from fastelbo.factor._warm_eigensolver import COLUMN_BUDGET_FRACTION, warm_leading_eigenpairs

LOG_2PI = math.log(2.0 * math.pi)

#: Floor of a unique variance relative to its feature's variance (FA). Far below any noise a fit
#: can resolve, and far above the round-off of a covariance accumulated in float64 (~1e-16
#: relative), which the floor amplifies by its inverse.
RELATIVE_NOISE_FLOOR = 1e-10

#: Floor of PPCA's one noise variance relative to the mean variance of the features. Lower than
#: factor analysis's: the noise is shared by all features, and data whose variance lies in a few
#: directions (clusters far apart, features in other units) have a true noise 1e-10 of the mean
#: variance and below. A noise that small is fitted from the exact covariance factor (1e-32
#: relative round-off), never from the accumulated covariance.
SPHERICAL_NOISE_FLOOR = 1e-14

#: Floor of the noise of a constant feature (no variance of its own), relative to the mean
#: variance of the features: its likelihood grows without bound as the noise falls, and
#: scikit-learn's FactorAnalysis holds it at 1e-12 in the data's units.
CONSTANT_FEATURE_NOISE_FLOOR = 1e-14


def noise_floor(variances, noise_type):
    """The floor of every feature's noise variance, relative to the data's scale.

    Parameters
    ----------
    variances : ndarray of shape (D,)
        The features' variances.
    noise_type : {'diag', 'spherical'}
        'diag' (factor analysis): ``RELATIVE_NOISE_FLOOR * variance_d``, and for constant features
        ``CONSTANT_FEATURE_NOISE_FLOOR * mean(variances)``. 'spherical' (PPCA):
        ``SPHERICAL_NOISE_FLOOR * mean(variances)`` for all.

    Data with no variance at all get the absolute floors ``RELATIVE_NOISE_FLOOR`` (their
    likelihood is unbounded; any floor is a convention).
    """
    scale = float(np.mean(variances))
    if not scale > 0:
        return np.full(variances.shape, RELATIVE_NOISE_FLOOR)
    if noise_type == "spherical":
        return np.full(variances.shape, SPHERICAL_NOISE_FLOOR * scale)
    return np.where(variances > 0, RELATIVE_NOISE_FLOOR * variances, CONSTANT_FEATURE_NOISE_FLOOR * scale)


@dataclass(frozen=True)
class FactorPosterior:
    """The exact posterior ``q(z | x) = N(m(x), covariance)`` under ``(components, noise)``, the
    same covariance for every x, with the model covariance's log-determinant.

    Attributes
    ----------
    components : ndarray of shape (H, D)
    noise : ndarray of shape (D,)
    left : ndarray of shape (D, H)
        ``U`` of the thin SVD ``diag(noise)^-1/2 components^T = U diag(s) V^T``.
    singular_values : ndarray of shape (H,)
        ``s``.
    right : ndarray of shape (H, H)
        ``V^T``.
    """

    components: np.ndarray
    noise: np.ndarray
    left: np.ndarray
    singular_values: np.ndarray
    right: np.ndarray

    @property
    def root_noise(self):
        return np.sqrt(self.noise)

    @property
    def log1p_squares(self):
        """``log(1 + s_h^2)``, the log-eigenvalues of ``I + A^T A``."""
        return np.log1p(self.singular_values**2)

    @property
    def half_log_det(self):
        """``1/2 log|G|`` of the posterior covariance ``G = (I + A^T A)^-1``."""
        return -0.5 * float(np.sum(self.log1p_squares))

    @property
    def log_det_model_covariance(self):
        """``log|C| = sum_d log noise_d + sum_h log(1 + s_h^2)`` (no cancellation)."""
        return float(np.sum(np.log(self.noise))) + float(np.sum(self.log1p_squares))

    @property
    def covariance_root(self):
        """``K`` with ``K^T K = G``: ``diag(1/sqrt(1 + s^2)) V^T``."""
        return self.right / np.sqrt(1.0 + self.singular_values**2)[:, None]

    @property
    def covariance(self):
        """The posterior covariance ``G = (I + components diag(noise)^-1 components^T)^-1``."""
        root = self.covariance_root
        return root.T @ root

    @functools.cached_property
    def projection(self):
        """``G components diag(noise)^-1`` (H, D): the map from ``x - mean`` to the posterior mean
        (:meth:`means` in one product; computed once per posterior)."""
        shrink = self.singular_values / (1.0 + self.singular_values**2)
        return (self.right.T * shrink) @ (self.left.T / self.root_noise)

    def means(self, deviations):
        """Posterior means ``m(x)`` of rows ``x - mean`` (n, D) -> (n, H)."""
        shrink = self.singular_values / (1.0 + self.singular_values**2)
        whitened = deviations / self.root_noise
        return ((whitened @ self.left) * shrink) @ self.right

    def mahalanobis(self, deviations, means=None):
        """``x^T C^-1 x`` of every row ``x`` of ``deviations`` (n, D) as ``||diag(noise)^-1/2
        (x - components^T m)||^2 + ||m||^2``, a sum of non-negative terms."""
        if means is None:
            means = self.means(deviations)
        residuals = (deviations - means @ self.components) / self.root_noise
        return np.einsum("nd,nd->n", residuals, residuals) + np.einsum("nh,nh->n", means, means)

    def precision(self):
        """``C^-1 = diag(noise)^-1/2 [U_c U_c^T + U diag(1/(1+s^2)) U^T] diag(noise)^-1/2`` with
        ``U_c`` an orthonormal basis of the complement of U's span: a sum of two positive
        semi-definite terms instead of ``I - U U^T + ...``, which cancels to round-off that
        ``diag(noise)^-1`` then amplifies."""
        scaled = self.components.T / self.root_noise[:, None]
        full_left = linalg.svd(scaled, full_matrices=True, lapack_driver="gesvd")[0]
        complement = full_left[:, self.singular_values.shape[0] :]  # an orthonormal basis of it
        shrunk = self.left / np.sqrt(1.0 + self.singular_values**2)
        inner = complement @ complement.T + shrunk @ shrunk.T
        return self._refined_inverse(inner / self.root_noise[:, None] / self.root_noise[None, :])

    def _refined_inverse(self, precision):
        """``precision`` after one step of Newton's iteration for ``C^-1`` (``P + P (I - C P)``),
        where the residual ``I - C P`` is larger than the round-off of computing it and the step
        makes it smaller. The form above is accurate where C is ill-conditioned (a tiny noise
        with loadings spanning fewer than D directions); where loadings span every direction and a
        noise is tiny (a Heywood case with ``n_components == n_features``), C is well-conditioned
        but the form amplifies round-off by ``1 / noise``, and one step recovers the digits.

        The residual is formed from the parameters, ``I - W^T (W P) - diag(noise) P`` with ``W`` the
        components, never from C rounded to float64: a step from that residual converges to the
        inverse of the rounded C, which errs by ``eps`` times the condition number, so its smaller
        residual need not mean a smaller error (the step was then kept and was worse, up to 36
        times, in about 1% of random models).

        A residual within its round-off (the bound of computing it, ``(2 H + 3) eps (|W|^T |W| |P|
        + diag(noise) |P| + I)`` per entry) says nothing about P's error, and a step from it only
        adds round-off of its own: P is then kept, so that residuals that differ by round-off alone
        cannot decide."""
        identity = np.eye(self.noise.shape[0])
        magnitude = np.abs(self.components)
        # The round-off bound of the residual of P, per entry: two length-H products, a scaling
        # and two subtractions (Higham's gamma_n, first order).
        unit = (2 * self.components.shape[0] + 3) * np.finfo(np.float64).eps
        bound = unit * (
            magnitude.T @ (magnitude @ np.abs(precision)) + self.noise[:, None] * np.abs(precision) + identity
        )
        residual = self._residual(precision)
        if not np.any(np.abs(residual) > bound):
            return precision
        refined = precision + precision @ residual
        refined = 0.5 * (refined + refined.T)
        if np.max(np.abs(self._residual(refined))) < np.max(np.abs(residual)):
            return refined
        return precision

    def _residual(self, precision):
        """``I - C P`` as ``I - W^T (W P) - diag(noise) P``: C itself is never rounded."""
        residual = -(self.components.T @ (self.components @ precision)) - self.noise[:, None] * precision
        residual[np.diag_indices_from(residual)] += 1.0
        return residual


def factor_posterior(components, noise):
    """The exact posterior of the latents under ``(components, noise)``."""
    noise = np.asarray(noise, dtype=np.float64)
    scaled = components.T / np.sqrt(noise)[:, None]
    left, singular_values, right = linalg.svd(scaled, full_matrices=False, lapack_driver="gesvd")
    return FactorPosterior(components, noise, left, singular_values, right)


def mean_log_likelihood(scatter, mean, posterior, means=None):
    """Mean log-likelihood ``-1/2 (D log 2pi + log|C| + tr(C^-1 S'))`` of data with the scatter's
    mean and covariance factor, ``S' = L^T L + (data_mean - mean)(data_mean - mean)^T``; ``means``
    are the posterior means of the factor's rows if already computed."""
    n_features = scatter.mean.shape[0]
    trace = float(np.sum(posterior.mahalanobis(scatter.factor, means)))
    offset = (scatter.mean - mean)[None, :]
    if np.any(offset):
        trace += float(posterior.mahalanobis(offset)[0])
    return -0.5 * (n_features * LOG_2PI + posterior.log_det_model_covariance + trace)


def variational_entropy(posterior):
    """``A = H/2 log(2 pi e) + 1/2 log|G|``, the entropy of every exact posterior."""
    return 0.5 * posterior.singular_values.shape[0] * LOG_2PI_E + posterior.half_log_det


def observable_entropy(noise):
    """``D/2 log(2 pi e) + 1/2 sum_d log noise_d``, the entropy of ``p(x | z)`` (any z)."""
    return 0.5 * noise.shape[0] * LOG_2PI_E + 0.5 * float(np.sum(np.log(noise)))


def em_update(factor, posterior, means, floor, noise_type):
    """The parameter-expanded M-step: new ``(components, noise)`` from the posterior of the
    current parameters, for data whose mean is the model's mean (the maximum-likelihood mean,
    set before EM), given by a factor ``L`` of their covariance and the posterior means of its
    rows.

    With ``B = <E[z] (x - mean)^T> = means^T L`` and ``E = G + means^T means`` (the average of
    E[z z^T]): EM's components ``Lambda = E^-1 B``; its noise ``<E[(x_d - lambda_d^T z)^2]> =
    sum_i (L_id - means_i lambda_d)^2 + lambda_d^T G lambda_d``, summed as non-negative terms
    (the usual ``diag(S - Lambda^T B)`` cancels when a noise is small) and averaged over the
    features for ``noise_type='spherical'`` (PPCA), floored at ``floor``. Parameter expansion
    maps the components back to a unit prior: ``chol(E)^T Lambda``.
    """
    projected = means.T @ factor  # B, (H, D)
    second_moment = posterior.covariance + means.T @ means
    components = linalg.solve(second_moment, projected, assume_a="pos")
    residuals = factor - means @ components
    spread = posterior.covariance_root @ components
    noise = np.einsum("id,id->d", residuals, residuals) + np.einsum("hd,hd->d", spread, spread)
    # Parameter expansion (PX-EM, Liu, Rubin & Wu 1998): the M-step also fits the prior
    # covariance of z, which is E; mapping back to N(0, I) multiplies the components by E^1/2.
    # The same fixed points as EM, reached in far fewer iterations.
    components = linalg.cholesky(second_moment, lower=True).T @ components
    if noise_type == "spherical":
        noise = np.full_like(noise, np.mean(noise))
    return components, np.maximum(noise, floor)


#: From this many features on, the leading directions of a tall factor (D x D) come from a subset
#: eigensolver on its Gram matrix where that is accurate (:func:`leading_directions_of_gram`): a
#: full SVD of the factor costs about 20 D^3 flops per call (2.8 s at D = 1,000 on one core; three
#: calls per factor-analysis iteration), the Gram and the subset about 3 D^3 (0.16 s).
GRAM_DIRECTIONS_MIN_FEATURES = 256

#: Largest ``sigma_1 / sigma_H`` (leading over last kept singular value) for which the Gram's
#: eigenvectors are used: their error, ``eps sigma_1^2 / gap``, exceeds the SVD's, ``eps sigma_1 /
#: gap'``, by about this ratio, so at most 1e3 costs three of the SVD's ~15 digits. Beyond (a
#: Heywood case's whitened factor, whose tiny noise makes sigma_1 huge), the SVD is used.
GRAM_DIRECTIONS_MAX_SPREAD = 1e3


def gram_directions_apply(n_rows, n_features, n_components):
    """Whether the leading directions of an ``n_rows`` x ``n_features`` factor may come from its
    Gram matrix (:func:`leading_directions_of_gram`): tall, wide enough, at least one direction
    and fewer than features."""
    return n_rows >= n_features >= GRAM_DIRECTIONS_MIN_FEATURES and 0 < n_components < n_features


def factor_gram(scatter, n_components):
    """The Gram matrix ``L^T L`` of the scatter's factor where :func:`_leading_directions` would
    use it for ``n_components`` directions (:func:`gram_directions_apply`), else None: the
    accumulated covariance of a fast scatter (the matrix the factor was decomposed from), else
    the product. A fit computes it once: the Gram of ``L diag(1/r)`` is then ``diag(1/r) G
    diag(1/r)``, O(D^2) per call instead of O(D^3)."""
    factor = scatter.factor
    if not gram_directions_apply(*factor.shape, n_components):
        return None
    return scatter.covariance if scatter.covariance is not None else factor.T @ factor


def leading_directions_of_gram(factor, n_components, gram=None):
    """``(squares, vectors)`` of :func:`_leading_directions` for a tall factor from the leading
    eigenvectors of its Gram matrix ``factor^T factor`` (``gram``, computed when not given;
    LAPACK's MRRR subset solver), refined by a Rayleigh-Ritz step with the factor itself: the
    squares are those of the singular values of ``factor @ V`` (accurate to second order in the
    eigenvectors' error), not the Gram's eigenvalues. None where the spread of the kept singular
    values makes the Gram lose digits the SVD keeps."""
    n_features = factor.shape[1]
    if gram is None:
        gram = factor.T @ factor
    values, vectors = linalg.eigh(
        gram, subset_by_index=[n_features - n_components, n_features - 1], driver="evr"
    )
    if not _spread_allows_gram(values[0], values[-1]):
        return None
    return _refined_by_factor(factor, vectors)


def _spread_allows_gram(smallest, largest):
    """Whether the Gram's eigenvectors are accurate enough for kept eigenvalues from ``smallest``
    to ``largest`` (:data:`GRAM_DIRECTIONS_MAX_SPREAD`)."""
    return smallest > 0 and not largest > GRAM_DIRECTIONS_MAX_SPREAD**2 * smallest


def _refined_by_factor(factor, vectors):
    """The Rayleigh-Ritz step with the factor on the span of ``vectors`` (D x H, orthonormal
    columns): the squared singular values of ``factor @ vectors`` and the directions (rows)."""
    _, singular_values, rotation = linalg.svd(factor @ vectors, full_matrices=False, lapack_driver="gesvd")
    return singular_values**2, rotation @ vectors.T


#: Whether the directions of a factor-analysis step are first sought by the warm-started solver
#: (:func:`warm_directions_of_gram`) when the caller passes a start; the tests turn it off to
#: compare with the exact path.
WARM_START_DIRECTIONS = True


def warm_directions_of_gram(whitened_factor, gram, root, start, n_components, credit=None):
    """``(squares, vectors)`` of :func:`_leading_directions` for ``whitened_factor = factor
    diag(1/root)`` from the eigenvectors of its Gram matrix ``diag(1/root) gram diag(1/root)``
    found by the warm-started solver (:mod:`~fastelbo.factor._warm_eigensolver`) from the span of
    the rows of ``start diag(1/root)`` (the loadings of nearby noise variances), refined as
    :func:`leading_directions_of_gram` refines LAPACK's. The whitened Gram is never formed: the
    scaling is applied to the blocks it multiplies (forming it costs as much as several
    products). None where the solver does not certify its pairs within its budget, or where the
    spread needs the SVD: the caller then takes the exact path. ``credit``: a
    :class:`~fastelbo.factor._warm_eigensolver.WarmSolveCredit` told the solver's outcome."""
    n_features = gram.shape[0]
    inverse_root = 1.0 / root

    def apply(block):
        return (gram @ (block * inverse_root[:, None])) * inverse_root[:, None]

    solved = warm_leading_eigenpairs(
        apply,
        (start * inverse_root[None, :]).T,
        n_components,
        column_budget=COLUMN_BUDGET_FRACTION * n_features,
    )
    if credit is not None:
        credit.record(solved)
    if not isinstance(solved, tuple):
        return None
    values, vectors, _ = solved
    if not _spread_allows_gram(values[-1], values[0]):
        return None
    return _refined_by_factor(whitened_factor, vectors)


def _leading_directions(factor, n_components, gram=None, warm=None):
    """The ``n_components`` largest squared singular values of ``factor`` (descending, zeros
    appended where it has fewer) and its ``n_components`` leading right singular vectors (rows),
    each with its largest-magnitude entry made positive (a deterministic sign). ``gram``: the
    factor's Gram matrix, if the caller has it (a function that computes it, called only when
    needed). ``warm``: a function returning the directions found by the warm-started solver, or
    None (tried first where the Gram's directions apply)."""
    n_rows, n_features = factor.shape
    if n_rows == 0 or n_components == 0:
        return np.zeros(n_components), np.eye(n_features)[:n_components]
    from_gram = None
    if gram_directions_apply(n_rows, n_features, n_components):
        from_gram = warm() if warm is not None else None
        if from_gram is None:
            from_gram = leading_directions_of_gram(factor, n_components, gram() if callable(gram) else gram)
    if from_gram is not None:
        squares, vectors = from_gram
    elif n_rows < n_features:
        # Wide: the eigenpairs of the N x N Gram matrix give the singular values and, mapped
        # through the factor, the leading right singular vectors: O(N^2 D), no N x D SVD.
        gram_values, gram_vectors = linalg.eigh(factor @ factor.T)
        gram_values, gram_vectors = gram_values[::-1], gram_vectors[:, ::-1]
        values = np.sqrt(np.maximum(gram_values, 0.0))
        leading = values[:n_components]
        kept = leading > values[0] * n_features * np.finfo(np.float64).eps
        vectors = (gram_vectors[:, : leading.shape[0]][:, kept].T @ factor) / leading[kept, None]
    else:
        _, values, vectors = linalg.svd(factor, full_matrices=False, lapack_driver="gesvd")
    if from_gram is None:
        squares = np.concatenate([values**2, np.zeros(n_features - values.shape[0])])[:n_components]
    vectors = vectors[:n_components]
    if vectors.shape[0] < n_components:
        # Fewer data directions than factors: complete with directions orthogonal to them.
        # (QR of the known directions followed by coordinate axes: O(D H) memory, no D x D.)
        known = vectors.shape[0]
        candidates = np.hstack([vectors.T, np.eye(n_features, min(n_features, n_components + known))])
        basis = linalg.qr(candidates, mode="economic")[0]
        vectors = np.vstack([vectors, basis.T[known:n_components]])
    return squares, _with_deterministic_signs(vectors)


def _with_deterministic_signs(vectors):
    """``vectors`` (rows) each with its largest-magnitude entry made positive."""
    n_components = vectors.shape[0]
    signs = np.sign(vectors[np.arange(n_components), np.argmax(np.abs(vectors), axis=1)])
    signs[signs == 0] = 1.0
    return vectors * signs[:, None]


def optimal_components(factor, noise, n_components, gram=None, start=None, credit=None):
    """The components that maximise the likelihood for fixed ``noise`` (Joreskog's profile
    solution, scikit-learn's FactorAnalysis step): with ``(s_h, u_h)`` the leading eigenpairs of
    ``diag(noise)^-1/2 S diag(noise)^-1/2``, rows ``sqrt(max(s_h - 1, 0)) u_h^T diag(noise)^1/2``.
    ``gram``: :func:`factor_gram` of ``factor``, if the caller keeps it; ``start``: loadings
    (n_components, D) for nearby noise variances, whose span starts the warm-started solver
    (:func:`warm_directions_of_gram`; only with ``gram``), as long as ``credit`` (a
    :class:`~fastelbo.factor._warm_eigensolver.WarmSolveCredit`, or None: always) allows."""
    root = np.sqrt(noise)
    squares, vectors = _whitened_directions(factor, root, n_components, gram, start, credit)
    scale = np.sqrt(np.maximum(squares[:n_components] - 1.0, 0.0))
    return scale[:, None] * vectors * root[None, :]


def _whitened_directions(factor, root, n_components, gram, start, credit=None):
    """:func:`_leading_directions` of ``factor diag(1/root)``, first by the warm-started solver
    where a start and the Gram matrix are given and ``credit`` allows (its outcome recorded)."""
    whitened = factor / root[None, :]
    warm = None
    if (
        start is not None
        and gram is not None
        and WARM_START_DIRECTIONS
        and (credit is None or credit.allows())
    ):

        def warm():
            return warm_directions_of_gram(whitened, gram, root, start, n_components, credit)

    return _leading_directions(whitened, n_components, _whitened_gram(gram, root), warm)


def _whitened_gram(gram, root):
    """A function computing the Gram matrix of ``factor diag(1/root)`` from that of ``factor``
    (None stays None): formed only where the exact path needs it."""
    return None if gram is None else lambda: gram / root[:, None] / root[None, :]


def components_given_noise(factor, noise, n_components, gram=None, start=None):
    """The components maximising the likelihood for fixed ``noise``: with ``(s_h, u_h)`` the
    leading eigenpairs of ``diag(noise)^-1/2 S diag(noise)^-1/2`` (from the SVD of ``L
    diag(noise)^-1/2``), rows ``sqrt(max(s_h - 1, 0)) u_h^T diag(noise)^1/2``. A row whose ``s_h
    <= 1`` would be zero, and EM never moves a zero row: it starts at ``sqrt(s_h / 100)``
    instead (or at a tenth of the noise where the data have no variance left). ``gram``, ``start``:
    as :func:`optimal_components`'s."""
    root = np.sqrt(noise)
    squares, vectors = _whitened_directions(factor, root, n_components, gram, start)
    leading = squares[:n_components]
    scale = np.sqrt(np.maximum(leading - 1.0, 1e-2 * np.maximum(leading, 0.0)))
    scale = np.where(scale > 0, scale, np.sqrt(0.1))
    return scale[:, None] * vectors * root[None, :]
