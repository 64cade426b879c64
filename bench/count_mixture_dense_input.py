"""Bernoulli and Poisson mixtures fitted on a dense X against the same X as CSR: seconds per fit.

The kernels read CSR, so a dense X is converted; the fits are bitwise equal, and what a dense X
costs beyond its CSR form is that conversion. Data: ``--n-samples`` x ``--n-features`` rows from a
mixture of ``--n-components`` components (binary rows for the Bernoulli, counts for the Poisson),
dense float64 and bool/int32 as given and their CSR form; ``max_iter`` fits with ``tol=0`` (every
iteration runs), one thread, best of ``--repeats`` after a warm-up, the forms alternated.

    python bench/count_mixture_dense_input.py            # about a minute
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning

from fastelbo import FastBernoulliMixture, FastPoissonMixture
from report import cpu_identity


def mixture_rows(family, n_samples, n_features, n_components, seed=0):
    """Rows drawn from a random mixture: 0/1 for the Bernoulli, counts for the Poisson."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(n_components, size=n_samples)
    if family == "bernoulli":
        means = rng.uniform(0.02, 0.5, size=(n_components, n_features))
        return (rng.uniform(size=(n_samples, n_features)) < means[labels]).astype(np.float64)
    means = rng.gamma(0.5, 0.6, size=(n_components, n_features))
    return rng.poisson(means[labels]).astype(np.float64)


def best_fit_seconds(estimator, forms, repeats):
    """Best seconds of ``estimator.fit`` per form, the forms alternated, after a warm-up of each."""
    best = {name: np.inf for name in forms}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for X in forms.values():
            estimator.fit(X)
        for _ in range(repeats):
            for name, X in forms.items():
                start = time.perf_counter()
                estimator.fit(X)
                best[name] = min(best[name], time.perf_counter() - start)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=20_000)
    parser.add_argument("--n-features", type=int, default=500)
    parser.add_argument("--n-components", type=int, default=20)
    parser.add_argument("--max-iter", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(
        f"CPU: {cpu_identity()['cpu']}; N={args.n_samples}, D={args.n_features}, "
        f"K={args.n_components}, max_iter={args.max_iter}, tol=0, one thread, best of {args.repeats}"
    )
    print("| model | dense float64 s | dense narrow s | CSR s | dense float64 / CSR |")
    print("|---|---|---|---|---|")
    for family, model, narrow in (
        ("bernoulli", FastBernoulliMixture, np.bool_),
        ("poisson", FastPoissonMixture, np.int32),
    ):
        X = mixture_rows(family, args.n_samples, args.n_features, args.n_components)
        forms = {"dense": X, "narrow": X.astype(narrow), "csr": sp.csr_array(X)}
        estimator = model(args.n_components, max_iter=args.max_iter, tol=0, random_state=0, n_jobs=1)
        best = best_fit_seconds(estimator, forms, args.repeats)
        print(
            f"| {model.__name__} | {best['dense']:.3f} | {best['narrow']:.3f} ({np.dtype(narrow).name}) | "
            f"{best['csr']:.3f} | {best['dense'] / best['csr']:.2f} |"
        )


if __name__ == "__main__":
    main()
