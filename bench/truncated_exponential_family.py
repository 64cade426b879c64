"""Per-iteration time and final log-likelihood of exact and truncated EM (``n_active``) for
FastPoissonMixture on sparse Zipf counts (:func:`sparse_counts.sparse_counts`).

An iteration is what ``fit`` runs per EM step: the E-step, the M-step and the entropy decomposition.
It is timed through the estimator's own hooks after the start (the initialisation and, for truncated
EM, the start of the search are excluded), best of ``--repeats`` iterations after one warm-up. The
final log-likelihood is ``score(X)`` (the exact mean log-likelihood) after ``fit`` with
``--max-iter`` iterations from the same initialisation (0: timings only).

    nice python bench/truncated_exponential_family.py --n-samples 20000 --n-features 20000 \\
        --density 0.002 --components 200 1000
"""

from __future__ import annotations

import argparse
import time

from sklearn.utils import check_random_state

from fastelbo import FastPoissonMixture
from sparse_counts import sparse_counts


def iteration_seconds(model, X, repeats):
    """Best time of one E-step + M-step + decomposition, after one warm-up iteration."""
    model._check_hyperparameters()
    Xv = model._validate_rows(X, reset=True, min_samples=2)
    model._initialize_parameters(Xv, check_random_state(model.random_state), None)
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        stats = model._e_step(Xv)
        model._m_step(stats)
        model._decompose(stats)
        times.append(time.perf_counter() - start)
    model._discard_run_state()
    return min(times[1:])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=20000)
    parser.add_argument("--n-features", type=int, default=20000)
    parser.add_argument("--density", type=float, default=0.002)
    parser.add_argument("--topics", type=int, default=20)
    parser.add_argument("--components", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--n-active", type=int, default=3)
    parser.add_argument("--n-neighbors", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-iter", type=int, default=30)
    parser.add_argument("--n-jobs", type=int, default=2)
    args = parser.parse_args()
    X = sparse_counts(args.n_samples, args.n_features, args.density, args.topics, random_state=0)
    print(f"X: {X.shape}, nnz {X.nnz} (density {X.nnz / X.shape[0] / X.shape[1]:.4f})")
    for K in args.components:
        common = dict(n_components=K, random_state=0, n_jobs=args.n_jobs)
        truncation = dict(n_active=args.n_active, n_neighbors=args.n_neighbors)
        t_exact = iteration_seconds(FastPoissonMixture(**common), X, args.repeats)
        t_trunc = iteration_seconds(FastPoissonMixture(**common, **truncation), X, args.repeats)
        if args.max_iter == 0:  # timings only
            ratio = t_exact / t_trunc
            print(f"K={K}: iteration exact {t_exact:.3f} s, truncated {t_trunc:.3f} s (x{ratio:.1f})")
            continue
        fits = {}
        for name, extra in (("exact", {}), ("truncated", truncation)):
            start = time.perf_counter()
            model = FastPoissonMixture(**common, **extra, max_iter=args.max_iter, tol=0).fit(X)
            fits[name] = (model.score(X), model.lower_bound_, time.perf_counter() - start)
        (ll_exact, _, fit_exact), (ll_trunc, bound_trunc, fit_trunc) = fits["exact"], fits["truncated"]
        print(
            f"K={K}: iteration exact {t_exact:.3f} s, truncated {t_trunc:.3f} s "
            f"(x{t_exact / t_trunc:.1f}); after {args.max_iter} iterations: log-likelihood exact "
            f"{ll_exact:.4f}, truncated {ll_trunc:.4f} (relative difference "
            f"{abs(ll_trunc - ll_exact) / abs(ll_exact):.2e}; truncated free energy {bound_trunc:.4f}); "
            f"fit {fit_exact:.1f} s vs {fit_trunc:.1f} s"
        )


if __name__ == "__main__":
    main()
