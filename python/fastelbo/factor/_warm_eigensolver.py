"""The leading eigenpairs of a symmetric positive semi-definite matrix from a good starting subspace.

Factor analysis needs the leading H eigenpairs of the whitened covariance ``M = diag(noise)^-1/2 S
diag(noise)^-1/2`` two or three times per iteration, and consecutive calls differ by a small change
of the noise: the previous loadings already span nearly the wanted subspace. A restarted block
Krylov method (block Lanczos with full reorthogonalisation, Rayleigh-Ritz over the whole Krylov
basis) then reaches round-off in a few block products with M, O(D^2 H) each, where LAPACK's subset
eigensolver costs O(D^3) whatever the start.

The answer is certified, never trusted: every returned pair has a residual ``||M v - lambda v|| <=
RESIDUAL_TOLERANCE * ||M||`` and the vectors are orthonormal to ``ORTHONORMALITY_TOLERANCE``, both
measured from products with M itself. Where that is not reached within a budget of products well
below one ``eigh`` call's cost, or the observed rate of convergence says it will not be (a wanted
eigenvalue inside the noise bulk, a cluster across the H-th eigenvalue), the solver gives up early
and returns None: the caller then takes the exact path.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import linalg

#: Largest residual ``||M v_h - lambda_h v_h||`` of a returned pair, relative to ``||M||`` (the
#: largest eigenvalue). An eigenvector's error is about ``residual / gap``: the likelihood is
#: stationary in the loadings, so it moves by the square of that, but the next EM step's noise
#: moves by it at first order, and the gaps between strong factors' eigenvalues can be 1e-4 of
#: ``||M||``. At 1e-12 a fit (D = 300, tol=1e-8) ended with noise variances 5e-8 away from the
#: exact path's; at 1e-13 within 2e-15, as the SVD path's are. The round-off of measuring it is
#: about ``sqrt(D) eps ||M||`` (4e-15 at D = 300), so a converged solve is not refused.
RESIDUAL_TOLERANCE = 1e-13

#: Largest entry of ``V^T V - I`` of the returned vectors (full reorthogonalisation keeps it
#: at a few eps; more means the basis lost rank and the Ritz pairs cannot be trusted).
ORTHONORMALITY_TOLERANCE = 1e-12

#: Largest estimated sine of the angle between the returned span and the wanted eigenvectors'
#: (:func:`_span_error`). A small residual does not make a pair accurate where the H-th eigenvalue
#: is within the residual's size of the next one (the vector mixes the two); LAPACK's vectors
#: err by ``eps ||M|| / gap`` there, and a fit through either would not agree with the other.
#: Fits need their loadings' span to about 1e-10 (their noise moves at first order with it).
SPAN_TOLERANCE = 1e-10

#: Most block products per restart cycle (the Krylov basis is ``[X, R, M R, ..., M^(depth-1) R]``
#: with R the residuals of the wanted Ritz vectors X): deeper bases converge faster per product
#: but cost more to orthogonalise. After the first cycle, the observed rate sets how many are
#: taken.
KRYLOV_DEPTH = 3

#: Budget of columns multiplied by M, as a fraction of D: a subset ``eigh`` costs about 3 D^3
#: flops, a product with k columns ``2 D^2 k`` at a matrix product's far higher rate (one core:
#: an ``eigh`` of the H = 20 leading pairs took as long as products with 350 to 1,000 columns at
#: D = 300 to 2,000), so D / 3 columns cost well below one ``eigh`` call. A solve from the
#: previous iteration's loadings takes one cycle (4 H columns; 80 at H = 20).
COLUMN_BUDGET_FRACTION = 1 / 3


#: What :func:`warm_leading_eigenpairs` returns where the spectrum has too small a gap at the H-th
#: eigenvalue for any solve to certify the span (:func:`_gap_too_small`), or for one to converge
#: within the budget: a reduction of the residual slower than :data:`SLOW_RATE` per block product.
NO_GAP = "no gap"

#: Reduction of the residual per block product beyond which a failed solve is put down to the
#: spectrum, not to its start: the rate depends on the gap at the H-th eigenvalue, not on how far
#: off the start is (factor-model data: 0.02-0.04 from starts whose residuals were 1e-6 to 4e-4,
#: which failed for the budget; isotropic noise: 0.72-1.07).
SLOW_RATE = 0.5

#: Solves a run may find gapless before it stops trying (each costs a cycle of products, 4 H
#: columns, on top of the exact solve that follows), and the most a run of certified solves can
#: bank. Natural-image patches, isotropic noise and some Heywood cases have no gap at the H-th
#: eigenvalue: every solve fails (24x24 patches took 31% longer, a duplicated column 13%, before
#: the limit; with it, one try per run: isotropic noise at D = 300, a short fit, 0.157 s exact
#: path against 0.173 s with two tries per run). Solves that fail while a run's start is still far
#: off (the first 1-8 of a run on factor-model data) see a gap and a fast rate, and cost no credit.
INITIAL_CREDIT = 1
MAX_CREDIT = 3


class WarmSolveCredit:
    """Whether a run still tries the warm-started solver: one unit of credit per solve that found
    no gap (:data:`NO_GAP`), one back per certified solve (up to :data:`MAX_CREDIT`), tried while
    some is left; other failures (a start still far off) change nothing."""

    def __init__(self):
        self.credit = INITIAL_CREDIT

    def allows(self):
        return self.credit > 0

    def record(self, outcome):
        """Record what :func:`warm_leading_eigenpairs` returned."""
        if outcome is NO_GAP:
            self.credit -= 1
        elif outcome is not None:
            self.credit = min(self.credit + 1, MAX_CREDIT)


#: Random directions added to every start, and their seed (:func:`_with_random_directions`). One
#: would do: each has a component along every eigenvector. (As many as the guard columns made the
#: first cycle too expensive to certify within the budget at D = 300.)
RANDOM_DIRECTIONS = 2
RANDOM_DIRECTIONS_SEED = 20261207


def guard_columns(n_wanted):
    """Ritz vectors kept beyond the wanted ones at a restart: the rate of convergence of the H-th
    pair then depends on ``lambda_(H + guard + 1) / lambda_H``, not ``lambda_(H + 1) / lambda_H``."""
    return max(4, n_wanted // 2)


def warm_leading_eigenpairs(apply, start, n_wanted, *, column_budget, tolerance=RESIDUAL_TOLERANCE):
    """The ``n_wanted`` largest eigenvalues (descending) and their eigenvectors (columns) of a
    symmetric positive semi-definite D x D matrix M, given by ``apply(X) = M @ X``, starting from
    the span of ``start`` (D x n_wanted), or None where they are not certified within
    ``column_budget`` columns multiplied by M.

    Returns ``(values, vectors, columns_used)``, or None, or :data:`NO_GAP` where the gap at the
    H-th eigenvalue is too small for any solve to certify or to converge within the budget. A
    start of lower rank than ``n_wanted`` (a loading that is exactly zero) is refused at once: it
    carries no direction for that pair.
    """
    n_features = start.shape[0]
    if not 0 < n_wanted < n_features or start.shape[1] != n_wanted:
        return None
    if (1 + KRYLOV_DEPTH) * n_wanted > column_budget:  # not even one cycle fits: spend nothing
        return None
    basis = _orthonormal_start(start)
    if basis is None:
        return None
    basis = _with_random_directions(basis, RANDOM_DIRECTIONS)
    products = apply(basis)
    used = basis.shape[1]
    # The random directions' few columns are not counted against the budget.
    uncounted = used - n_wanted
    keep = min(n_wanted + guard_columns(n_wanted), n_features)
    previous_error, depth, first = None, KRYLOV_DEPTH, True
    while True:
        values, basis, products = _rayleigh_ritz(basis, products, keep)
        norm = values[0]
        if not norm > 0 or not np.all(np.isfinite(values)) or values.shape[0] < n_wanted:
            return None
        residuals = products[:, :n_wanted] - basis[:, :n_wanted] * values[None, :n_wanted]
        residual_norms = np.linalg.norm(residuals, axis=0)
        error = float(np.max(residual_norms)) / norm
        if _gap_too_small(values, residual_norms[-1], n_wanted, tolerance * norm):
            return NO_GAP
        if error <= tolerance and not first:
            vectors = basis[:, :n_wanted]
            if _orthonormality_error(vectors) > ORTHONORMALITY_TOLERANCE:
                return None
            if _span_error(values, basis, products, n_wanted, error * norm) > SPAN_TOLERANCE:
                return None
            return values[:n_wanted], vectors, used
        # The observed reduction per block product says how many more are needed: take just
        # those, or give up now rather than spend the budget and fail (a wanted eigenvalue in
        # the bulk, a cluster across the H-th).
        rate = None
        if previous_error is not None:
            rate = (error / previous_error) ** (1.0 / depth)
            if not rate < 1.0:
                return NO_GAP
            depth = min(KRYLOV_DEPTH, math.ceil(math.log(tolerance / error) / math.log(rate)))
        if used - uncounted + depth * n_wanted > column_budget:
            return NO_GAP if rate is not None and rate > SLOW_RATE else None
        previous_error = error
        if first:
            # Nothing is certified from the start alone, and its first cycle grows the residuals of
            # every Ritz vector, the random directions' too. A start exact to round-off (loadings
            # at a fixed point) has no residual to grow: the cycle would be empty, and its pairs,
            # exact, would certify whatever stronger eigenvector the start cannot reach (a block
            # of features its loadings are 0 on: 18 certified where the third eigenvalue was 40).
            residuals = products - basis * values[None, :]
        basis, products, multiplied = _krylov_basis(apply, basis, products, residuals, norm, depth)
        if first:
            uncounted += multiplied - depth * n_wanted  # the extra Ritz vectors' columns
            first = False
        used += multiplied
        if not multiplied:  # nothing left to add: the subspace is invariant to round-off
            return None


def _gap_too_small(values, last_residual, n_wanted, certified_residual):
    """Whether no solve can certify the span (:data:`SPAN_TOLERANCE`) even once every residual is
    down to ``certified_residual``: the gap at the H-th eigenvalue is at most ``theta_H +
    ||r_H|| - theta_(H+1)`` (the H-th eigenvalue lies within about its residual of the H-th Ritz
    value, and the (H+1)-th is at least the (H+1)-th Ritz value), and Davis-Kahan's bound needs
    ``sqrt(H)`` times the residual over the gap. Such a spectrum (natural-image patches, a
    duplicated column) fails every solve; seen after the first Rayleigh-Ritz step, it costs one
    product with the start instead of the budget, so that trying is nearly free where it fails."""
    if values.shape[0] <= n_wanted:
        return False
    gap_bound = values[n_wanted - 1] + last_residual - values[n_wanted]
    return math.sqrt(n_wanted) * certified_residual > SPAN_TOLERANCE * gap_bound


def _span_error(values, basis, products, n_wanted, residual):
    """Davis-Kahan's bound ``sqrt(H) residual / gap`` on the sine of the angle between the span of
    the wanted Ritz vectors and the wanted eigenvectors', with the gap measured from the H-th Ritz
    value to the first unwanted one raised by its residual (an estimate: the next eigenvalue lies
    within about that of it once the Krylov space has found it). Infinite without a gap."""
    if values.shape[0] == n_wanted:
        return 0.0 if n_wanted == basis.shape[0] else math.inf
    following = products[:, n_wanted] - basis[:, n_wanted] * values[n_wanted]
    gap = values[n_wanted - 1] - values[n_wanted] - float(np.linalg.norm(following))
    return math.sqrt(n_wanted) * residual / gap if gap > 0 else math.inf


def _orthonormality_error(vectors):
    """The largest entry of ``V^T V - I``."""
    gram = vectors.T @ vectors
    gram[np.diag_indices_from(gram)] -= 1.0
    return float(np.max(np.abs(gram)))


def _orthonormal_start(start):
    """An orthonormal basis of the columns of ``start`` (scaled to unit norm first: loadings of
    very different sizes are all directions), or None where they are numerically dependent."""
    norms = np.linalg.norm(start, axis=0)
    if not np.all(norms > 0) or not np.all(np.isfinite(norms)):
        return None
    q, r = linalg.qr(start / norms[None, :], mode="economic")
    if not np.all(np.abs(np.diag(r)) > 1e-8):
        return None
    return linalg.qr(q, mode="economic")[0]


def _with_random_directions(basis, count):
    """``basis`` and ``count`` more orthonormal columns drawn at random (a fixed seed: results do
    not depend on anything but the arguments).

    A start spans only what the loadings reach: where they are exactly zero on a set of features
    that M does not couple to the others (an earlier fit on data whose features there were noise,
    continued with ``warm_start``), Krylov products never leave their span, and a stronger
    eigenvector outside it is never seen; the pairs found are exact eigenpairs, so they certify,
    but not the leading ones (a continuation ended 140 nats per sample short). A random direction
    has a component along every eigenvector, which the products amplify."""
    n_features = basis.shape[0]
    count = min(count, n_features - basis.shape[1])
    if count <= 0:
        return basis
    random = np.random.default_rng(RANDOM_DIRECTIONS_SEED).standard_normal((n_features, count))
    extra = _new_directions([basis], random, 0.0)
    return np.hstack([basis, extra])


def _rayleigh_ritz(basis, products, keep):
    """The ``keep`` leading Ritz pairs of M in the span of the orthonormal ``basis`` (with
    ``products = M @ basis``): descending values, vectors and their products (combined from the
    known products, no new product with M)."""
    projected = basis.T @ products
    projected = 0.5 * (projected + projected.T)
    values, rotation = linalg.eigh(projected)
    order = np.argsort(values)[::-1][:keep]
    rotation = rotation[:, order]
    return values[order], basis @ rotation, products @ rotation


def _krylov_basis(apply, ritz_vectors, ritz_products, residuals, norm, depth):
    """The orthonormal block Krylov basis ``[X, R, M R, ..., M^(depth-1) R]`` (X the Ritz vectors,
    R the wanted ones' residuals; each block orthogonalised against all before it, twice), its
    products with M and the number of columns multiplied. Directions whose part orthogonal to
    the basis is within round-off of ``||M||`` are dropped (a converged pair's residual, an
    invariant subspace)."""
    blocks, block_products = [ritz_vectors], [ritz_products]
    candidate, multiplied = residuals, 0
    # Parts this small are round-off (a product's is ``eps ||M||`` per entry); anything larger may
    # be what the last digits of a residual need.
    negligible = 16 * np.finfo(np.float64).eps * norm
    for _ in range(depth):
        block = _new_directions(blocks, candidate, negligible)
        if block.shape[1] == 0:
            break
        blocks.append(block)
        candidate = apply(block)
        block_products.append(candidate)
        multiplied += block.shape[1]
    return np.hstack(blocks), np.hstack(block_products), multiplied


def _new_directions(blocks, candidate, negligible):
    """An orthonormal basis of the part of ``candidate``'s span orthogonal to the ``blocks``,
    without the directions whose orthogonal part is below ``negligible`` (pivoted QR: the order
    is deterministic)."""
    for _ in range(2):  # twice is enough (Kahan-Parlett)
        for block in blocks:
            candidate = candidate - block @ (block.T @ candidate)
    q, r, _ = linalg.qr(candidate, mode="economic", pivoting=True)
    rank = int(np.sum(np.abs(np.diag(r)) > negligible))
    q = q[:, :rank]
    for block in blocks:  # once more: Q is orthogonal to the blocks only as well as candidate was
        q = q - block @ (block.T @ q)
    return linalg.qr(q, mode="economic")[0] if rank else q
