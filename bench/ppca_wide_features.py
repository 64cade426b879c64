"""FastPPCA against scikit-learn's PCA with many features: seconds per fit and per score, one
thread each, and the throughput of the covariance pass that both of FastPPCA's and
FastFactorAnalysis's fits start with.

Synthetic data from a factor model with unequal noise (N = 5,000 rows, D features, H = 20 factors,
noise standard deviations from 0.5 to 2). FastPPCA with its default ``solver='eigh'`` (exact), and
PCA with its default ``svd_solver='auto'`` (randomized for these shapes) and with ``'full'`` (exact,
as FastPPCA). ``score`` is timed separately: PCA's inverts the D x D model covariance. Each time is
the best of ``--repeats`` calls after a warm-up; the systems alternate within one process, so the
ratios are from the same run.

    python bench/ppca_wide_features.py                       # D = 300, 1000, 2000
    python bench/ppca_wide_features.py --n-features 1000 --repeats 5
"""

from __future__ import annotations

import argparse

import numpy as np
from sklearn.decomposition import PCA
from threadpoolctl import threadpool_limits

from fastelbo import FastPPCA
from fastelbo import _core_native as core
from report import cpu_identity
from timing import best_time


def factor_data(n_samples, n_features, n_components, seed=0):
    rng = np.random.default_rng(seed)
    loadings = rng.normal(size=(n_components, n_features))
    noise = np.linspace(0.5, 2.0, n_features)
    return (
        rng.normal(size=(n_samples, n_components)) @ loadings
        + rng.normal(size=(n_samples, n_features)) * noise
    )


def covariance_pass_gflops(X, repeats):
    """GFLOP/s of the kernel's pass (N D^2 flops: the lower triangle of the sum of outer products)."""
    seconds, _ = best_time(lambda: core.scatter_pass(X, None, X[0].copy(), n_threads=1), repeats)
    return X.shape[0] * X.shape[1] ** 2 / seconds / 1e9, seconds


def measure(X, n_components, repeats):
    systems = {
        "FastPPCA": lambda: FastPPCA(n_components),
        "scikit-learn PCA (auto)": lambda: PCA(n_components),
        "scikit-learn PCA (full)": lambda: PCA(n_components, svd_solver="full"),
    }
    rows = {}
    for make in systems.values():
        make().fit(X)  # warm-up
    for name, make in systems.items():
        fit_seconds, model = best_time(lambda make=make: make().fit(X), repeats)
        score_seconds, score = best_time(lambda model=model: model.score(X), repeats)
        rows[name] = (fit_seconds, score_seconds, score)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=5000)
    parser.add_argument("--n-features", default="300,1000,2000")
    parser.add_argument("--n-components", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"CPU: {cpu_identity()['cpu']}; one thread per system; best of {args.repeats}")
    with threadpool_limits(1):
        for n_features in map(int, args.n_features.split(",")):
            X = factor_data(args.n_samples, n_features, args.n_components)
            gflops, seconds = covariance_pass_gflops(X, args.repeats)
            print(
                f"\nN={args.n_samples}, D={n_features}, H={args.n_components}; covariance pass "
                f"{seconds:.3f} s ({gflops:.1f} GFLOP/s)\n"
            )
            rows = measure(X, args.n_components, args.repeats)
            ours = rows["FastPPCA"]
            print(
                "| system | fit s | score s | fit+score s | vs FastPPCA (fit+score) | mean log-likelihood |"
            )
            print("|---|---|---|---|---|---|")
            for name, (fit_seconds, score_seconds, score) in rows.items():
                ratio = (fit_seconds + score_seconds) / (ours[0] + ours[1])
                print(
                    f"| {name} | {fit_seconds:.3f} | {score_seconds:.3f} | {fit_seconds + score_seconds:.3f} "
                    f"| {ratio:.2f}x | {score:.8f} |"
                )


if __name__ == "__main__":
    main()
