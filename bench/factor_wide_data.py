"""Wide data (N << D): time and peak memory that ``fit`` adds, FastPPCA and FastFactorAnalysis
against scikit-learn's PCA and FactorAnalysis, in one run.

Each fit runs in a process of its own (the peak-RSS mark, ``VmHWM``, is per process and is reset
just before ``fit``), on data drawn from a factor model: N x D, H factors, float64.

Usage: ``python bench/factor_wide_data.py [--samples 100] [--features 4000] [--factors 10]``
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
import time
import warnings

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
SYSTEMS = ("FastPPCA", "sklearn PCA", "FastFactorAnalysis", "sklearn FactorAnalysis")


def make_data(n_samples, n_features, n_factors, seed=0):
    rng = np.random.RandomState(seed)
    loadings = rng.standard_normal((n_factors, n_features))
    noise = rng.uniform(0.5, 2.0, n_features)
    latents = rng.standard_normal((n_samples, n_factors))
    return latents @ loadings + rng.standard_normal((n_samples, n_features)) * np.sqrt(noise)


def make_estimator(system, n_factors):
    from sklearn.decomposition import PCA, FactorAnalysis

    from fastelbo import FastFactorAnalysis, FastPPCA

    return {
        "FastPPCA": lambda: FastPPCA(n_factors),
        "sklearn PCA": lambda: PCA(n_factors),
        "FastFactorAnalysis": lambda: FastFactorAnalysis(n_factors),
        "sklearn FactorAnalysis": lambda: FactorAnalysis(n_factors),
    }[system]()


def probe(system, n_samples, n_features, n_factors):
    """In this process: fit once on a small slice (imports, warm-up), then measure one fit."""
    sys.path.insert(0, str(HERE))
    from process_memory import reset_peak_rss, status_kib

    X = make_data(n_samples, n_features, n_factors)
    warnings.simplefilter("ignore")
    make_estimator(system, n_factors).fit(X[:, :50])
    reset_peak_rss()
    before = status_kib("VmRSS")
    start = time.perf_counter()
    estimator = make_estimator(system, n_factors).fit(X)
    seconds = time.perf_counter() - start
    added = (status_kib("VmHWM") - before) / 1024.0
    print(json.dumps({"seconds": seconds, "added_mib": added, "score": float(estimator.score(X))}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--features", type=int, default=4000)
    parser.add_argument("--factors", type=int, default=10)
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        probe(args.probe, args.samples, args.features, args.factors)
        return
    data_mib = args.samples * args.features * 8 / 2**20
    print(f"N={args.samples}, D={args.features}, H={args.factors}, X = {data_mib:.1f} MiB (float64)")
    print(f"| {'system':<24} | {'seconds':>8} | {'added MiB':>9} | {'mean log-likelihood':>20} |")
    print(f"|{'-' * 26}|{'-' * 10}|{'-' * 11}|{'-' * 22}|")
    for system in args.systems.split(","):
        command = [sys.executable, __file__, "--probe", system, "--samples", str(args.samples)]
        command += ["--features", str(args.features), "--factors", str(args.factors)]
        out = subprocess.run(command, capture_output=True, text=True, check=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"| {system:<24} | {result['seconds']:>8.3f} | {result['added_mib']:>9.1f} | "
            f"{result['score']:>20.6f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
