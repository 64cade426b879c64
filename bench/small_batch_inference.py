"""Inference on small batches: microseconds per call of ``predict``, ``predict_proba``,
``score_samples`` and ``transform`` on 1 to 1,000 rows, fastelbo against scikit-learn with the same
fitted parameters' estimators (fitted on scikit-learn's digits, D=64), one thread each.

A call on a few rows is all fixed cost: validating X (scikit-learn's ``validate_data``, which both
pay), setting up the pass, and the arithmetic. Each figure is the best of ``--repeats`` runs of
enough calls to take about 0.2 s, after a warm-up; the ratio is scikit-learn's time over
fastelbo's (above 1: fastelbo is faster).

    python bench/small_batch_inference.py              # about a minute
    python bench/small_batch_inference.py --rows 1,10  # a quick look
"""

from __future__ import annotations

import argparse
import functools
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA, FactorAnalysis
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits

from fastelbo import FastFactorAnalysis, FastGMM, FastPPCA

TARGET_SECONDS = 0.2


def microseconds_per_call(call, repeats):
    """Best of ``repeats`` runs of enough calls to take about TARGET_SECONDS, after a warm-up."""
    start = time.perf_counter()
    call()
    calls = max(int(TARGET_SECONDS / max(time.perf_counter() - start, 1e-7)), 5)
    for _ in range(min(calls, 100)):
        call()
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            call()
        best = min(best, (time.perf_counter() - start) / calls)
    return best * 1e6


def fitted_pairs(X):
    """(name, fastelbo estimator, scikit-learn estimator, methods) on the same data."""
    pairs = []
    for covariance_type in ("full", "tied", "diag", "spherical"):
        params = dict(n_components=10, covariance_type=covariance_type, random_state=0)
        pairs.append(
            (
                f"GMM {covariance_type}",
                FastGMM(**params, n_jobs=1).fit(X),
                GaussianMixture(**params).fit(X),
                ("predict", "predict_proba", "score_samples"),
            )
        )
    pairs.append(("PPCA", FastPPCA(10).fit(X), PCA(10).fit(X), ("transform", "score_samples")))
    pairs.append(
        ("FA", FastFactorAnalysis(10).fit(X), FactorAnalysis(10).fit(X), ("transform", "score_samples"))
    )
    return pairs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1,10,100,1000", help="batch sizes, comma-separated")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows, repeats = [int(r) for r in args.rows.split(",")], args.repeats
    X = load_digits().data
    print(
        f"digits (N={X.shape[0]}, D={X.shape[1]}), one thread each; microseconds per call, "
        f"best of {args.repeats}\n"
    )
    print("| model | method | rows | fastelbo µs | scikit-learn µs | ratio |")
    print("|---|---|---|---|---|---|")
    with threadpool_limits(1):
        for name, fast, sk, methods in fitted_pairs(X):
            for method in methods:
                for n in rows:
                    batch = np.ascontiguousarray(X[:n])
                    ours = microseconds_per_call(functools.partial(getattr(fast, method), batch), repeats)
                    theirs = microseconds_per_call(functools.partial(getattr(sk, method), batch), repeats)
                    row = f"| {name} | {method} | {n} | {ours:.1f} | {theirs:.1f} | {theirs / ours:.2f} |"
                    print(row, flush=True)


if __name__ == "__main__":
    main()
