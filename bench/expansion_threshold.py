"""Speed of float64 FastGMM fits with the expansion threshold at which passes group rows by home.

float64 diag, spherical and tied passes expand ``||x - mu_c||^2`` about a point shared by a run of
rows and lose about log10(kappa) digits, kappa the largest squared Mahalanobis distance of a
component mean from the mixture's mean; above a threshold the rows are first grouped by their
most probable component ("homes") and expanded about its mean. This script fits each case once
to convergence, then times ``--iterations`` further EM iterations from those parameters (a warm
start, ``tol=0``) with the threshold at ``--before`` and ``--after`` (the module constant, patched in
one process), alternately, best of ``--rounds``; it reports the seconds per iteration, their ratio,
kappa at the converged parameters (the homes are used where it exceeds the threshold) and how far
the two continued fits' lower bounds differ.

Usage, from the repository root (``python/`` holding the built modules)::

    python bench/expansion_threshold.py [--before 1e5] [--after 1e3] [--rounds 5] [--iterations 20]
"""

from __future__ import annotations

import argparse
import copy
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cases  # noqa: E402
import fastelbo.mixture._gaussian as gaussian  # noqa: E402
from fastelbo import FastGMM  # noqa: E402

CASES = (
    cases.Case("diag", 200_000, 64, 64),
    cases.Case("diag", 200_000, 64, 256),
    cases.Case("diag", 100_000, 16, 16),
    cases.Case("spherical", 100_000, 32, 64),
    cases.Case("tied", 100_000, 32, 64),
    cases.Case("tied", 100_000, 16, 16),
)


def converged_fit(case, X):
    start = cases.initial_parameters(case, X)
    return FastGMM(
        case.n_components,
        covariance_type=case.covariance_type,
        weights_init=start.weights,
        means_init=start.means,
        precisions_init=start.precisions,
        max_iter=200,
    ).fit(X)


def seconds_per_iteration(fitted, X, threshold, iterations):
    gaussian._MAX_EXPANSION_CONDITION[np.float64] = threshold
    estimator = copy.deepcopy(fitted).set_params(warm_start=True, tol=0.0, max_iter=iterations)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tol=0 runs to max_iter by design
        began = time.perf_counter()
        estimator.fit(X)
        return (time.perf_counter() - began) / iterations, estimator


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=float, default=1e5)
    parser.add_argument("--after", type=float, default=1e3)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=20)
    args = parser.parse_args()
    print(f"# {platform.processor() or platform.machine()}, threshold {args.before:g} -> {args.after:g}")
    print(
        "| case | kappa (converged) | before s/iter | after s/iter | after/before | lower bounds differ by |"
    )
    print("|---|---|---|---|---|---|")
    for case in CASES:
        X = cases.make_data(case)
        fitted = converged_fit(case, X)
        seconds_per_iteration(fitted, X, args.before, 2)  # warm-up
        best = {args.before: np.inf, args.after: np.inf}
        continued = {}
        for _ in range(args.rounds):
            for threshold in (args.before, args.after):
                seconds, estimator = seconds_per_iteration(fitted, X, threshold, args.iterations)
                best[threshold] = min(best[threshold], seconds)
                continued[threshold] = estimator
        difference = abs(continued[args.before].lower_bound_ - continued[args.after].lower_bound_)
        print(
            f"| {case.id} | {fitted._expansion_condition():.3g} | {best[args.before]:.4f} | "
            f"{best[args.after]:.4f} | {best[args.after] / best[args.before]:.3f} | {difference:.1e} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
