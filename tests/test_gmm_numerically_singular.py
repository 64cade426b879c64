"""FastGMM's test for a covariance that is singular to float64 precision although its Cholesky
factorisation succeeded (the float32 rounding path: a rounded covariance with two bit-identical
columns factorises with a pivot of round-off size on some LAPACK kernels, a LinAlgError later)."""

import numpy as np

from fastelbo.mixture._gaussian import _numerically_singular

EPS = np.finfo(np.float64).eps


def _precision_factor(covariance):
    """The upper-triangular U with U U^T = inv(covariance), as FastGMM stores it."""
    lower = np.linalg.cholesky(covariance)
    return np.linalg.solve(lower, np.eye(len(covariance))).T


def _with_last_pivot(covariance, pivot):
    """A precision factor of ``covariance`` whose last pivot ``1 / U_DD^2`` is ``pivot``: what a
    factorisation that met that pivot returns (the last pivot is the Schur complement of the rest)."""
    factor = _precision_factor(covariance)
    factor[-1, -1] = 1.0 / np.sqrt(pivot)
    return factor


def test_a_well_conditioned_covariance_is_not_singular():
    rng = np.random.RandomState(0)
    A = rng.randn(50, 4)
    covariance = A.T @ A / 50
    assert not _numerically_singular(covariance, _precision_factor(covariance))


def test_the_pivot_is_compared_with_the_factorisation_backward_error():
    # diag(1e4, 1, 1): the threshold is D eps max Sigma_ii = 3 eps 1e4.
    covariance = np.diag([1e4, 1.0, 1.0])
    threshold = 3 * EPS * 1e4
    assert _numerically_singular(covariance, _with_last_pivot(covariance, threshold))
    assert _numerically_singular(covariance, _with_last_pivot(covariance, 0.5 * threshold))
    assert not _numerically_singular(covariance, _with_last_pivot(covariance, 2 * threshold))
    # The same pivot is round-off beside a variance of 1e4 but a real variance beside 1s.
    small = np.eye(3)
    assert not _numerically_singular(small, _with_last_pivot(small, threshold))


def test_any_singular_component_of_a_stack_is_reported():
    rng = np.random.RandomState(1)
    stack = []
    for _ in range(3):
        A = rng.randn(30, 3)
        stack.append(A.T @ A / 30)
    stack = np.array(stack)
    factors = np.array([_precision_factor(c) for c in stack])
    assert not _numerically_singular(stack, factors)
    factors[1] = _with_last_pivot(stack[1], EPS * np.diagonal(stack[1]).max())
    assert _numerically_singular(stack, factors)


def test_a_covariance_with_bit_identical_columns_is_singular_where_its_cholesky_succeeds():
    # Two equal columns: exactly singular. One Cholesky kernel fails on it, another meets a pivot of
    # round-off size, as this factorisation of it perturbed by D eps max Sigma_ii / 4 does (the
    # equal columns' 2 x 2 block then has the pivot 2 nudge - nudge^2 / (v + nudge)).
    rng = np.random.RandomState(2)
    x = rng.randn(200)
    X = np.column_stack([x, x, rng.randn(200)]).astype(np.float32).astype(np.float64)
    covariance = np.cov(X, rowvar=False, bias=True)
    assert covariance[0, 0] == covariance[1, 1] == covariance[0, 1]
    nudge = 0.25 * 3 * EPS * np.diagonal(covariance).max()
    factor = _precision_factor(covariance + nudge * np.eye(3))
    assert _numerically_singular(covariance, factor)
    # Columns that differ by a little real variance are not.
    X[:, 1] += 1e-4 * rng.randn(200)
    covariance = np.cov(X, rowvar=False, bias=True)
    assert not _numerically_singular(covariance, _precision_factor(covariance))
