"""Per-iteration time and final log-likelihood of exact and truncated EM (``n_active``) for
FastPoissonMixture or FastBernoulliMixture (``--family``; the Bernoulli reads the counts' non-zero
pattern) on sparse Zipf counts (:func:`sparse_counts.sparse_counts`).

Every run starts from the same k-means++ start (the estimator's own, computed once per K).
An iteration is what ``fit`` runs per EM step: the E-step, the M-step and the entropy decomposition.
It is timed through the estimator's own hooks after the start (the initialisation and, for truncated
EM, the start of the search are excluded), best of ``--repeats`` iterations after one warm-up (two
for truncated EM: its first iteration is exact, its second also starts the search). The
final log-likelihood is ``score(X)`` (the exact mean log-likelihood) after ``fit`` with
``--max-iter`` iterations from the same initialisation (0: timings only), for every C' of
``--n-active``; ``--json`` writes the rows. ``--exact-from`` takes exact EM's numbers (iteration
time, log-likelihood, fit time) from an earlier run's JSON of the same data, K, ``--max-iter`` and
``--n-jobs`` instead of measuring them again (at N = 1M and K = 1,000 they take about 11 minutes),
for a change that touches only truncated EM; the rows then say so (``exact_from``).

    nice python bench/truncated_exponential_family.py --n-samples 20000 --n-features 20000 \\
        --density 0.002 --components 200 1000
    nice python bench/truncated_exponential_family.py --family bernoulli --components 1000 \\
        --n-active 3 5 10 --json bench/results/exponential_family/truncated_bernoulli.json
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state

import timing
from fastelbo import FastBernoulliMixture, FastPoissonMixture
from sparse_counts import sparse_counts


def shared_start(model, X):
    """The estimator's own k-means++ start, computed once and given to every run as ``weights_init``
    and ``means_init``: at N = 1M and K = 1,000 one seeding (K sparse products) takes minutes."""
    model._check_hyperparameters()
    Xv = model._validate_rows(X, reset=True, min_samples=2)
    model._initialize_parameters(Xv, check_random_state(model.random_state), None)
    start = dict(weights_init=model.weights_.copy(), means_init=model.means_.copy())
    model._discard_run_state()
    return start


def run_key(args, X, n_components):
    """What identifies a run's data and set-up in the JSON rows."""
    return dict(
        family=args.family,
        n_samples=X.shape[0],
        n_features=X.shape[1],
        nnz=int(X.nnz),
        n_components=n_components,
        n_jobs=args.n_jobs,
    )


def earlier_exact(path, args, X, n_components):
    """The row of an earlier run's JSON at ``path`` for the same family, data, K, ``--max-iter``
    and ``--n-jobs``; ValueError if there is none."""
    with open(path) as f:
        rows = json.load(f)
    key = dict(run_key(args, X, n_components), max_iter=args.max_iter)
    for row in rows:
        if all(row.get(name) == value for name, value in key.items()):
            return row
    raise ValueError(f"{path} has no exact EM run of {key}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", choices=("poisson", "bernoulli"), default="poisson")
    parser.add_argument("--n-samples", type=int, default=20000)
    parser.add_argument("--n-features", type=int, default=20000)
    parser.add_argument("--density", type=float, default=0.002)
    parser.add_argument("--topics", type=int, default=20)
    parser.add_argument("--components", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--n-active", type=int, nargs="+", default=[3])
    parser.add_argument("--n-neighbors", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-iter", type=int, default=30)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("--exact-from", default=None, help="exact EM's numbers from this earlier JSON")
    args = parser.parse_args()
    X = sparse_counts(args.n_samples, args.n_features, args.density, args.topics, random_state=0)
    if args.family == "bernoulli":
        X.data[:] = 1.0
    estimator = FastPoissonMixture if args.family == "poisson" else FastBernoulliMixture
    print(f"{args.family}: X {X.shape}, nnz {X.nnz} (density {X.nnz / X.shape[0] / X.shape[1]:.4f})")
    rows = []
    for K in args.components:
        common = dict(n_components=K, random_state=0, n_jobs=args.n_jobs)
        common.update(shared_start(estimator(**common), X))
        earlier = None if args.exact_from is None else earlier_exact(args.exact_from, args, X, K)
        if earlier is not None:
            t_exact = earlier["iteration_exact_s"]
            exact = (earlier["log_likelihood_exact"], earlier["fit_exact_s"])
            print(f"K={K}: exact EM from {args.exact_from}: iteration {t_exact:.3f} s", flush=True)
        else:
            t_exact = timing.hook_iteration_seconds(estimator(**common), X, args.repeats)[0]
            exact = None
        if args.max_iter > 0 and earlier is None:
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model = estimator(**common, max_iter=args.max_iter, tol=0).fit(X)
            exact = (model.score(X), time.perf_counter() - start)
            print(f"K={K}: exact iteration {t_exact:.3f} s, log-likelihood {exact[0]:.4f}", flush=True)
        for C in args.n_active:
            truncation = dict(n_active=C, n_neighbors=args.n_neighbors)
            truncated = estimator(**common, **truncation)
            t_trunc = timing.hook_iteration_seconds(truncated, X, args.repeats, warm_up=2)[0]
            row = dict(
                run_key(args, X, K),
                n_active=C,
                n_neighbors=args.n_neighbors,
                iteration_exact_s=t_exact,
                iteration_truncated_s=t_trunc,
                speedup=t_exact / t_trunc,
            )
            if earlier is not None:
                row["exact_from"] = args.exact_from
            ratio = t_exact / t_trunc
            line = f"K={K} C'={C}: iteration exact {t_exact:.3f} s, truncated {t_trunc:.3f} s (x{ratio:.1f})"
            if exact is not None:
                start = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    model = estimator(**common, **truncation, max_iter=args.max_iter, tol=0).fit(X)
                ll_trunc, bound, fit_trunc = model.score(X), model.lower_bound_, time.perf_counter() - start
                gap = (exact[0] - ll_trunc) / abs(exact[0])
                row.update(
                    max_iter=args.max_iter,
                    log_likelihood_exact=exact[0],
                    log_likelihood_truncated=ll_trunc,
                    free_energy_truncated=bound,
                    relative_gap=gap,
                    fit_exact_s=exact[1],
                    fit_truncated_s=fit_trunc,
                )
                line += (
                    f"; after {args.max_iter} iterations: log-likelihood exact {exact[0]:.4f}, truncated "
                    f"{ll_trunc:.4f} ({100 * gap:+.2f} % below exact; free energy {bound:.4f}); fit "
                    f"{exact[1]:.1f} s vs {fit_trunc:.1f} s"
                )
            print(line, flush=True)
            rows.append(row)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
