"""The GEMM bound: how long NumPy's BLAS takes, in the same run, for the matrix products one EM
iteration cannot avoid.

FLOP model (N samples, D features, K components; a multiply-add counts 2 FLOPs):

- diag:      E-step log-joints ``[X, X*X] (N x 2D) @ P (2D x K)`` and M-step moments
             ``R^T (K x N) @ [X, X*X] (N x 2D)``: 8 N D K.
- spherical: ``X @ M^T`` and ``R^T X``: 4 N D K (the squared norms are O(N D)).
- tied:      whitening ``X @ U`` (2 N D^2), then ``Y @ M^T`` and ``R^T X``: 2 N D^2 + 4 N D K.
- full:      per component the whitening ``X @ U_k`` (2 N D^2) and the weighted scatter as a
             symmetric rank-N update (``syrk``, N D^2), plus ``R^T X`` for the means: 3 N K D^2 + 2 N D K.

Everything else an iteration does (exp, log-sum-exp, the O(K D^3) M-step) is extra work on top.
"""

from __future__ import annotations

import time

import numpy as np

from cases import Case


def flops(case: Case) -> float:
    N, D, K = case.n_samples, case.n_features, case.n_components
    return {
        "diag": 8.0 * N * D * K,
        "spherical": 4.0 * N * D * K,
        "tied": 2.0 * N * D * D + 4.0 * N * D * K,
        "full": 3.0 * N * K * D * D + 2.0 * N * D * K,
    }[case.covariance_type]


def _products(case: Case, rng):
    """A callable doing the case's minimum products on random operands of the case's dtype."""
    N, D, K, dtype = case.n_samples, case.n_features, case.n_components, np.dtype(case.dtype)

    def operand(*shape):
        return rng.standard_normal(shape).astype(dtype)

    if case.covariance_type in ("diag", "spherical"):
        width = 2 * D if case.covariance_type == "diag" else D
        A, P = operand(N, width), operand(width, K)
        return lambda: (A @ P).T @ A
    if case.covariance_type == "tied":
        X, U, M = operand(N, D), operand(D, D), operand(K, D)

        def tied():
            Y = X @ U
            return (Y @ M.T).T @ X

        return tied
    X, U, R = operand(N, D), operand(K, D, D), operand(N, K)

    def full():
        for k in range(K):
            Y = X @ U[k]
            Y.T @ Y  # NumPy hands A^T A to BLAS syrk
        return R.T @ X

    return full


def measure(case: Case, repeats: int = 3, seed: int = 0) -> dict:
    """Best-of-``repeats`` seconds for the case's minimum products (after one warm-up)."""
    run = _products(case, np.random.default_rng(seed))
    run()
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return {"seconds": best, "flops": flops(case), "gflops_per_s": flops(case) / best / 1e9}
