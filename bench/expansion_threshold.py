"""Speed of float64 FastGMM fits with the expansion threshold at which passes group rows by home.

float64 diag, spherical and tied passes expand ``||x - mu_c||^2`` about a point shared by a run of
rows and lose about log10(kappa) digits, kappa the largest squared Mahalanobis distance of a
component mean from the mixture's mean; above a threshold the rows are first grouped by their
most probable component ("homes") and expanded about its mean. This script fits the same data with
the threshold at ``--before`` and ``--after`` (the module constant, patched in one process),
alternately, and reports each fit's time (best of ``--rounds``), iterations, the final kappa and
whether the two fits agree.

Usage, from the repository root (``python/`` holding the built modules)::

    python bench/expansion_threshold.py [--before 1e5] [--after 1e3] [--rounds 3]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cases  # noqa: E402
import fastelbo.mixture._gaussian as gaussian  # noqa: E402
from fastelbo import FastGMM  # noqa: E402

CASES = (
    cases.Case("diag", 200_000, 64, 64),
    cases.Case("diag", 100_000, 16, 16),
    cases.Case("spherical", 100_000, 32, 64),
    cases.Case("tied", 100_000, 32, 64),
    cases.Case("tied", 100_000, 16, 16),
)


def fit(case, X, threshold):
    gaussian._MAX_EXPANSION_CONDITION[np.float64] = threshold
    start = cases.initial_parameters(case, X)
    estimator = FastGMM(
        case.n_components,
        covariance_type=case.covariance_type,
        weights_init=start.weights,
        means_init=start.means,
        precisions_init=start.precisions,
        max_iter=100,
    )
    began = time.perf_counter()
    estimator.fit(X)
    return time.perf_counter() - began, estimator


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=float, default=1e5)
    parser.add_argument("--after", type=float, default=1e3)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"# {platform.processor() or platform.machine()}, threshold {args.before:g} -> {args.after:g}")
    print("| case | kappa at the end | before s | after s | after/before | iterations | lower bounds agree |")
    print("|---|---|---|---|---|---|---|")
    for case in CASES:
        X = cases.make_data(case)
        fit(case, X[:2000], args.before)  # warm-up
        best = {args.before: np.inf, args.after: np.inf}
        fitted = {}
        for _ in range(args.rounds):
            for threshold in (args.before, args.after):
                seconds, estimator = fit(case, X, threshold)
                best[threshold] = min(best[threshold], seconds)
                fitted[threshold] = estimator
        before, after = fitted[args.before], fitted[args.after]
        print(
            f"| {case.id} | {after._expansion_condition():.3g} | {best[args.before]:.3f} | "
            f"{best[args.after]:.3f} | {best[args.after] / best[args.before]:.2f} | "
            f"{before.n_iter_} / {after.n_iter_} | {abs(before.lower_bound_ - after.lower_bound_):.1e} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
