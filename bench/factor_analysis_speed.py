"""FastFactorAnalysis against scikit-learn's FactorAnalysis: seconds per fit and log-likelihood.

Synthetic data from a factor model (N=200,000, D=64, H=10 by default, float64), all estimators
with the same ``tol`` and ``max_iter`` (scikit-learn's defaults: tol=1e-2 on the total
log-likelihood, max_iter=1000), each fit timed whole (FastFactorAnalysis: one C++ scatter pass,
then EM on the D x D covariance; scikit-learn: one SVD of the data per iteration). Each estimator
is fitted ``--repeats`` times after a warm-up (scikit-learn, whose fits take minutes here,
``--sklearn-repeats`` times without one); the table gives the best and the median, the iterations,
and the mean log-likelihood of the training data under each fit (``score(X)``). scikit-learn runs
with its default ``svd_method='randomized'`` and with ``'lapack'`` (faster at this shape).

    python bench/factor_analysis_speed.py                 # about 5 to 10 minutes on 2 busy cores
    python bench/factor_analysis_speed.py --n-samples 20000 --repeats 1   # a quick look

Not part of ``bench/report.py``: scikit-learn's fits alone take tens of seconds here.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
from sklearn.decomposition import FactorAnalysis
from sklearn.exceptions import ConvergenceWarning

from fastelbo import FastFactorAnalysis


def factor_data(n_samples, n_features, n_components, seed=0):
    """Draws ``z W + mean + noise`` with W ~ N(0, 1), noise variances uniform in [0.5, 2]."""
    rng = np.random.RandomState(seed)
    loadings = rng.standard_normal((n_components, n_features))
    noise = rng.uniform(0.5, 2.0, n_features)
    mean = rng.uniform(-5, 5, n_features)
    latents = rng.standard_normal((n_samples, n_components))
    return latents @ loadings + mean + rng.standard_normal((n_samples, n_features)) * np.sqrt(noise)


def time_fits(make, X, repeats, warm_up=True):
    """An optional warm-up fit, then ``repeats`` timed fits; returns (times, the last fitted
    estimator)."""
    times = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if warm_up:
            make().fit(X)
        for _ in range(repeats):
            start = time.perf_counter()
            estimator = make().fit(X)
            times.append(time.perf_counter() - start)
    return times, estimator


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=200_000)
    parser.add_argument("--n-features", type=int, default=64)
    parser.add_argument("--n-components", type=int, default=10)
    parser.add_argument("--tol", type=float, default=1e-2)
    parser.add_argument("--max-iter", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3, help="timed fits of fastelbo, after a warm-up")
    parser.add_argument(
        "--sklearn-repeats",
        type=int,
        default=1,
        help="timed fits of scikit-learn, without warm-up (each takes minutes at the default size)",
    )
    parser.add_argument("--n-jobs", type=int, default=None, help="FastFactorAnalysis threads (None: all)")
    args = parser.parse_args()

    X = factor_data(args.n_samples, args.n_features, args.n_components)
    common = {"tol": args.tol, "max_iter": args.max_iter}
    systems = {
        "fastelbo FastFactorAnalysis": lambda: FastFactorAnalysis(
            args.n_components, n_jobs=args.n_jobs, **common
        ),
        "sklearn FactorAnalysis": lambda: FactorAnalysis(args.n_components, random_state=0, **common),
        "sklearn FactorAnalysis(svd_method='lapack')": lambda: FactorAnalysis(
            args.n_components, svd_method="lapack", **common
        ),
    }
    rows = {}
    for name, make in systems.items():
        fast = name.startswith("fastelbo")
        times, estimator = time_fits(make, X, args.repeats if fast else args.sklearn_repeats, warm_up=fast)
        rows[name] = (min(times), statistics.median(times), estimator.n_iter_, estimator.score(X))

    print(
        f"N={args.n_samples}, D={args.n_features}, H={args.n_components}, float64, tol={args.tol}, "
        f"max_iter={args.max_iter}; fastelbo: best of {args.repeats} after a warm-up, scikit-learn: best of "
        f"{args.sklearn_repeats}\n"
    )
    print("| estimator | best s/fit | median s/fit | iterations | mean log-likelihood |")
    print("|---|---|---|---|---|")
    for name, (best, median, n_iter, score) in rows.items():
        print(f"| {name} | {best:.3f} | {median:.3f} | {n_iter} | {score:.8f} |")
    fast = rows["fastelbo FastFactorAnalysis"]
    for name, row in rows.items():
        if row is not fast:
            print(
                f"\nvs {name}: speed-up {row[0] / fast[0]:.1f}x (best over best), log-likelihood difference "
                f"(fastelbo - sklearn) per sample {fast[3] - row[3]:+.3e}"
            )


if __name__ == "__main__":
    main()
