"""FastFactorAnalysis against scikit-learn's FactorAnalysis and the NumPy EM: seconds per fit and
log-likelihood, with more repetitions than ``report.py`` gives them.

Synthetic data from a factor model (N=200,000, D=64, H=10 by default, ``factor_cases.factor_data``),
the systems of ``report.py``'s factor analysis group (``factor_systems.MODELS['fa']``: scikit-learn
with its default ``svd_method='randomized'`` and with ``'lapack'``), all with the same ``tol`` and
``max_iter`` (scikit-learn's defaults) and one thread each. Every fit is timed whole; fastelbo and
NumPy are fitted ``--repeats`` times after a warm-up, scikit-learn (minutes per fit here)
``--sklearn-repeats`` times without one. The table gives the best and the median, the iterations and
the mean log-likelihood of the training data (``score(X)``).

    python bench/factor_analysis_speed.py                 # several minutes on 2 busy cores
    python bench/factor_analysis_speed.py --n-samples 20000 --repeats 1   # a quick look
"""

from __future__ import annotations

import argparse
import statistics
import time

import factor_systems
from factor_cases import DEFAULT_MAX_ITER, DEFAULT_TOL, FactorCase, make_data


def time_fits(system, case, X, repeats, warm_up=True):
    """An optional warm-up fit, then ``repeats`` timed fits; returns (times, the last fitted
    estimator)."""
    if warm_up:
        factor_systems.fit(system, case, X)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        estimator = factor_systems.fit(system, case, X)
        times.append(time.perf_counter() - start)
    return times, estimator


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=200_000)
    parser.add_argument("--n-features", type=int, default=64)
    parser.add_argument("--n-components", type=int, default=10)
    parser.add_argument("--tol", type=float, default=DEFAULT_TOL)
    parser.add_argument("--max-iter", type=int, default=DEFAULT_MAX_ITER)
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed fits of fastelbo and NumPy, after a warm-up"
    )
    parser.add_argument(
        "--sklearn-repeats",
        type=int,
        default=1,
        help="timed fits of scikit-learn, without warm-up (each takes minutes at the default size)",
    )
    args = parser.parse_args()

    case = FactorCase(
        "fa", args.n_samples, args.n_features, args.n_components, tol=args.tol, max_iter=args.max_iter
    )
    X = make_data(case)
    rows = {}
    for system in factor_systems.MODELS["fa"].systems:
        slow = system.name.startswith("sklearn")
        times, estimator = time_fits(
            system, case, X, args.sklearn_repeats if slow else args.repeats, warm_up=not slow
        )
        rows[system.label] = (min(times), statistics.median(times), estimator.n_iter_, estimator.score(X))

    print(
        f"N={args.n_samples}, D={args.n_features}, H={args.n_components}, float64, tol={args.tol}, "
        f"max_iter={args.max_iter}, {factor_systems.THREADS} thread(s) each; fastelbo and NumPy: best of "
        f"{args.repeats} after a warm-up, scikit-learn: best of {args.sklearn_repeats}\n"
    )
    print("| estimator | best s/fit | median s/fit | iterations | mean log-likelihood |")
    print("|---|---|---|---|---|")
    for name, (best, median, n_iter, score) in rows.items():
        print(f"| {name} | {best:.3f} | {median:.3f} | {n_iter} | {score:.8f} |")
    fast_label = factor_systems.MODELS["fa"].label
    fast = rows[fast_label]
    for name, row in rows.items():
        if name != fast_label:
            print(
                f"\nvs {name}: speed-up {row[0] / fast[0]:.1f}x (best over best), log-likelihood difference "
                f"(fastelbo - other) per sample {fast[3] - row[3]:+.3e}"
            )


if __name__ == "__main__":
    main()
