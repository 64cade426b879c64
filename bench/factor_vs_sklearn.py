"""FastFactorAnalysis against scikit-learn's FactorAnalysis on every real data set that ships with
scikit-learn, raw and standardised, 2 ... 20 factors (capped at the number of features).

Both run with scikit-learn's defaults (tol=1e-2, max_iter=1000). Each row is one fit of each, the
log-likelihood of the returned parameters (``score(X) * N``, total nats) and the difference per
sample; ``ok`` says FastFactorAnalysis reached at least scikit-learn's value - 1e-6 |LL|.

Usage: ``python bench/factor_vs_sklearn.py [--factors 2,3,4,5,8,10,15,20] [--data iris,wine,...]``
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from sklearn import datasets
from sklearn.decomposition import FactorAnalysis
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import StandardScaler

from fastelbo import FastFactorAnalysis
from fastelbo.exceptions import HeywoodCaseWarning

LOADERS = {
    "iris": datasets.load_iris,
    "wine": datasets.load_wine,
    "breast_cancer": datasets.load_breast_cancer,
    "digits": datasets.load_digits,
    "diabetes": lambda: datasets.load_diabetes(scaled=False),
    "linnerud": datasets.load_linnerud,
}
DEFAULT_FACTORS = (2, 3, 4, 5, 6, 8, 10, 12, 15, 20)
RELATIVE_MARGIN = 1e-6


def load(name, standardised):
    X = np.asarray(LOADERS[name]().data, dtype=np.float64)
    return StandardScaler().fit_transform(X) if standardised else X


def compare(X, n_factors):
    """One fit of each; their total log-likelihoods, iterations, seconds and Heywood warnings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        sk = FactorAnalysis(n_factors).fit(X)
        sk_seconds = time.perf_counter() - start
        start = time.perf_counter()
        fast = FastFactorAnalysis(n_factors).fit(X)
        fast_seconds = time.perf_counter() - start
    heywood = any(issubclass(w.category, HeywoodCaseWarning) for w in caught)
    n = X.shape[0]
    return {
        "sklearn": sk.score(X) * n,
        "fastelbo": fast.score(X) * n,
        "sk_iter": sk.n_iter_,
        "fast_iter": fast.n_iter_,
        "sk_s": sk_seconds,
        "fast_s": fast_seconds,
        "heywood": heywood,
        "fast_converged": fast.converged_,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--factors", default=",".join(map(str, DEFAULT_FACTORS)))
    parser.add_argument("--data", default=",".join(LOADERS))
    args = parser.parse_args()
    factors = [int(h) for h in args.factors.split(",")]
    warnings.simplefilter("ignore", ConvergenceWarning)
    header = (
        f"| {'data':<14} | {'scaling':<5} | {'H':>2} | {'sklearn LL':>14} | {'fastelbo LL':>14} | "
        f"{'diff/sample':>11} | {'iter sk':>7} | {'iter fe':>7} | {'s sk':>6} | {'s fe':>6} | Heywood | ok |"
    )
    print(header)
    print("|" + "|".join("-" * (len(cell)) for cell in header.split("|")[1:-1]) + "|")
    failures = 0
    for name in args.data.split(","):
        for standardised in (False, True):
            X = load(name, standardised)
            for n_factors in factors:
                if n_factors > X.shape[1]:
                    continue
                r = compare(X, n_factors)
                ok = r["fastelbo"] >= r["sklearn"] - RELATIVE_MARGIN * abs(r["sklearn"])
                failures += not ok
                diff = (r["fastelbo"] - r["sklearn"]) / X.shape[0]
                print(
                    f"| {name:<14} | {'std' if standardised else 'raw':<5} | {n_factors:>2} | "
                    f"{r['sklearn']:>14.4f} | {r['fastelbo']:>14.4f} | {diff:>+11.2e} | "
                    f"{r['sk_iter']:>7} | {r['fast_iter']:>7} | {r['sk_s']:>6.2f} | {r['fast_s']:>6.2f} | "
                    f"{'yes' if r['heywood'] else 'no':<7} | {'yes' if ok else 'NO':<2} |",
                    flush=True,
                )
    print(f"\n{failures} fit(s) below scikit-learn's log-likelihood - {RELATIVE_MARGIN:g} |LL|")


if __name__ == "__main__":
    main()
