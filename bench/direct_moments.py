"""A float32 diag or spherical fit's E-step, summed directly or expanded: seconds per EM iteration
of FastGMM for each choice, forced, on the same data from the same start, and the choice FastGMM
makes itself.

Where the clusters lie far apart for their widths, a float32 E-step either expands log-joints and
moments into GEMM products about runs of rows that share a home component (evaluating again in
float64 the rows a far component reaches), or sums log-joints and moments directly in float64, per
pair of a row and a component with q > 0 (``FastGMM._sums_directly``). The cases: the benchmark
report's well-separated and overlapping mixtures, photo patches and digits, and groups of
overlapping components far apart from each other, where the expanded pass refines nothing.

Per-iteration time is (t(7 iterations) - t(2 iterations)) / 5, best of ``--repeats``, after a
warm-up; every choice fits with ``n_jobs`` threads. The final mean log-likelihoods of the two
choices must agree to float32 precision (``agree``).

    python bench/direct_moments.py                 # about 6 minutes on 2 cores
    python bench/direct_moments.py --cases digits  # a quick look
"""

from __future__ import annotations

import argparse
import time
import warnings
from unittest import mock

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from cases import Case, initial_parameters, make_data
from fastelbo import FastGMM

FLOAT32_AGREEMENT = 1e-6  # relative, between the final mean log-likelihoods of the two choices


def report_cases():
    return {
        case.id: (case, None)
        for case in (
            Case("diag", 200_000, 64, 256, "float32"),
            Case("diag", 1_000_000, 16, 16, "float32"),
            Case("spherical", 1_000_000, 16, 16, "float32"),
            Case("diag", 200_000, 64, 256, "float32", separation=0.3),
            Case("diag", 50_000, 64, 200, "float32", data="patches"),
            Case("diag", 1797, 64, 10, "float32", data="digits"),
        )
    }


def grouped_components(group_size, n_components=256, n_features=64, n_samples=100_000, seed=0):
    """Groups of ``group_size`` overlapping unit-variance components (means 0.3 apart), the groups
    30 widths apart: each row reaches its own group's components and no far one."""
    rng = np.random.default_rng(seed)
    groups = rng.normal(size=(n_components // group_size, n_features)) * 30
    centres = np.repeat(groups, group_size, axis=0) + rng.normal(size=(n_components, n_features)) * 0.3
    labels = rng.integers(n_components, size=n_samples)
    X = (centres[labels] + rng.normal(size=(n_samples, n_features))).astype(np.float32)
    start = dict(
        weights_init=np.full(n_components, 1 / n_components),
        means_init=centres + 0.1,
        precisions_init=np.ones((n_components, n_features)),
    )
    return X, start


def seconds_per_iteration(X, n_components, covariance_type, start, n_jobs, repeats, direct):
    """Best per-iteration time and the final lower bound, with the fit's E-step choice forced
    (``direct`` True or False) or FastGMM's own (None)."""
    chosen = FastGMM._sums_directly

    def forced(self, dtype, moments=False):
        return direct if moments and direct is not None else chosen(self, dtype, moments)

    def fit(max_iter):
        model = FastGMM(
            n_components, covariance_type=covariance_type, max_iter=max_iter, tol=0.0, n_jobs=n_jobs, **start
        )
        with warnings.catch_warnings(), mock.patch.object(FastGMM, "_sums_directly", forced):
            warnings.simplefilter("ignore", ConvergenceWarning)
            begin = time.perf_counter()
            model.fit(X)
            return time.perf_counter() - begin, model

    fit(2)
    best, model = np.inf, None
    for _ in range(repeats):
        short, _ = fit(2)
        long, model = fit(7)
        best = min(best, (long - short) / 5)
    return best, float(model.lower_bound_), model


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", default="", help="comma-separated substrings of case names (default: all)")
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    selected = [s for s in args.cases.split(",") if s]

    rows = []
    cases = list(report_cases().items()) + [(f"groups-of-{g}-K256-D64-float32", (None, g)) for g in (4, 32)]
    for name, (case, group_size) in cases:
        if selected and not any(s in name for s in selected):
            continue
        if case is not None:
            X = make_data(case)
            begin = initial_parameters(case, X)
            start = dict(
                init_params="random_from_data",
                weights_init=begin.weights,
                means_init=begin.means,
                precisions_init=begin.precisions,
            )
            K, covariance_type = case.n_components, case.covariance_type
        else:
            X, start = grouped_components(group_size)
            K, covariance_type = 256, "diag"
        times, bounds = {}, {}
        for choice, direct in (("expanded", False), ("direct", True), ("chosen", None)):
            times[choice], bounds[choice], model = seconds_per_iteration(
                X, K, covariance_type, start, args.n_jobs, args.repeats, direct
            )
        picked = "direct" if model._sums_directly(np.float32, moments=True) else "expanded"
        difference = abs(bounds["direct"] - bounds["expanded"]) / abs(bounds["expanded"])
        rows.append((name, times, picked, difference))
        print(
            f"{name}: expanded {times['expanded']:.4f}  direct {times['direct']:.4f}"
            f"  chosen {times['chosen']:.4f} (last E-step: {picked})  agree {difference:.1e}",
            flush=True,
        )

    print(
        "\n| case | expanded s/iter | direct s/iter | expanded / direct | FastGMM's choice s/iter | agree |"
    )
    print("|---|---|---|---|---|---|")
    failed = False
    for name, times, picked, difference in rows:
        ratio = times["expanded"] / times["direct"]
        print(
            f"| {name} | {times['expanded']:.4f} | {times['direct']:.4f} | {ratio:.2f}x "
            f"| {times['chosen']:.4f} ({picked}) | {difference:.1e} |"
        )
        failed |= difference > FLOAT32_AGREEMENT
    if failed:
        raise SystemExit(f"the two E-steps' final log-likelihoods differ by more than {FLOAT32_AGREEMENT:g}")


if __name__ == "__main__":
    main()
