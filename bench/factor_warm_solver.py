"""FastFactorAnalysis through the warm-started eigensolver against the exact path (LAPACK's subset
eigensolver at every step), in the same code: seconds per fit, iterations and the log-likelihoods'
relative difference, on data where the solver certifies its pairs (factor-model data with a gap at
the H-th eigenvalue) and where it cannot (natural-image patches, isotropic noise, Heywood cases).

The exact path is the module's switch ``WARM_START_DIRECTIONS`` turned off. Fits alternate between
the two paths, one thread, best of ``--repeats``.

    python bench/factor_warm_solver.py             # a few minutes
    python bench/factor_warm_solver.py --only patches isotropic
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from sklearn.datasets import load_digits, load_sample_images
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

import fastelbo.factor._linear_gaussian as linear_gaussian
from factor_cases import FactorCase, make_data
from fastelbo import FastFactorAnalysis
from report import cpu_identity


def photo_patches(size, n_patches, seed=0):
    """``n_patches`` random grey ``size`` x ``size`` patches of scikit-learn's two sample photos."""
    rng = np.random.default_rng(seed)
    rows = []
    for image in load_sample_images().images:
        grey = image.mean(axis=2)
        for _ in range(n_patches // 2):
            i, j = rng.integers(0, grey.shape[0] - size), rng.integers(0, grey.shape[1] - size)
            rows.append(grey[i : i + size, j : j + size].ravel())
    return np.array(rows)


def factor_data(n_samples, n_features, n_factors):
    return make_data(FactorCase("fa", n_samples, n_features, n_factors, tol=1e-2, max_iter=1000))


def cases():
    """``(name, X, sample_weight, estimator parameters)``."""
    yield "factor data, N=5000, H=20", factor_data(5000, 600, 20), None, {"n_components": 20}
    yield "the same, float32", factor_data(5000, 600, 20).astype(np.float32), None, {"n_components": 20}
    weights = np.random.default_rng(2).uniform(0.1, 3.0, 5000)
    yield "the same, with sample_weight", factor_data(5000, 600, 20), weights, {"n_components": 20}
    yield "factor data, N=5000, H=20", factor_data(5000, 1000, 20), None, {"n_components": 20}
    rng = np.random.default_rng(1)
    factors = rng.normal(size=(3000, 10))
    X = factors @ rng.normal(size=(10, 400)) + rng.normal(size=(3000, 400))
    X[:, 0] = factors[:, 0]
    yield "a feature equal to a factor (Heywood), H=10", X, None, {"n_components": 10}
    digits = load_digits().data
    X = np.hstack([digits] * 5) + 0.01 * np.random.default_rng(0).normal(size=(digits.shape[0], 320))
    X = StandardScaler().fit_transform(X)
    yield "digits x5 with noise, standardised, H=10", X, None, {"n_components": 10}
    yield "the same, H=30, tol=1e-6", X, None, {"n_components": 30, "tol": 1e-6}
    yield "16x16 patches, N=6000, H=20", photo_patches(16, 6000), None, {"n_components": 20}
    yield "24x24 patches, N=6000, H=20", photo_patches(24, 6000), None, {"n_components": 20}
    X = factor_data(3000, 400, 10)
    yield "a duplicated column (Heywood), H=10", np.hstack([X, X[:, :1]]), None, {"n_components": 10}
    yield (
        "isotropic noise, N=3000, H=20",
        np.random.default_rng(7).normal(size=(3000, 300)),
        None,
        {"n_components": 20},
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", nargs="*", default=(), help="cases whose name contains one of these")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    print(f"CPU: {cpu_identity()['cpu']}; one thread; best of {args.repeats}, the paths alternated")
    print(
        "| data | D | exact path s | warm path s | speed-up | iterations exact/warm | log-lik. rel. diff. |"
    )
    print("|---|---|---|---|---|---|---|")
    with threadpool_limits(1):
        for name, X, weights, params in cases():
            if args.only and not any(word in name for word in args.only):
                continue
            times, fits = {False: [], True: []}, {}
            for _ in range(args.repeats):
                for warm in (False, True):
                    linear_gaussian.WARM_START_DIRECTIONS = warm
                    start = time.perf_counter()
                    fits[warm] = FastFactorAnalysis(**params, n_jobs=1).fit(X, sample_weight=weights)
                    times[warm].append(time.perf_counter() - start)
            linear_gaussian.WARM_START_DIRECTIONS = True
            exact, warm = min(times[False]), min(times[True])
            difference = abs(fits[False].lower_bound_ - fits[True].lower_bound_) / abs(
                fits[False].lower_bound_
            )
            print(
                f"| {name} | {X.shape[1]} | {exact:.3f} | {warm:.3f} | {exact / warm:.2f} | "
                f"{fits[False].n_iter_}/{fits[True].n_iter_} | {difference:.1e} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
