"""Truncated variational EM (FastGMM(n_active=C')) against exact EM: seconds per iteration as K
grows, and the final exact log-likelihood on well-separated clusters from the same seeding.

    python bench/truncated_scaling.py scaling [--n 100000] [--d 32] [--ks 256 1024 4096] [--threads 2]
    python bench/truncated_scaling.py separated [--k 1024] [--d 32] [--per-cluster 200] [--threads 2]

An iteration is what the EM driver does: one E-step with statistics, the M-step and the entropy
decomposition. Times are the best of the repeated iterations after a warm-up, in one run.
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np

from fastelbo import FastGMM
from fastelbo._threads import resolve_n_threads
from fastelbo.mixture._truncated import TruncatedSearch


def clustered_data(n, d, k, seed=0, spread=4.0, dtype=np.float64):
    """``n`` rows in ``d`` dimensions, each one of ``k`` centres N(0, spread²) chosen uniformly at
    random plus N(0, 1) noise, in ``dtype`` from the start (float32 never holds a float64 copy of X)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, spread, (k, d)).astype(dtype)
    labels = rng.integers(0, k, n)
    X = rng.standard_normal((n, d), dtype=dtype)
    X += centres[labels]
    return X


def iteration_seconds(gmm, X, truncated, repeats):
    """Best time of one driver iteration from the estimator's current parameters (on a copy: the
    estimator itself is left as it is)."""
    gmm = copy.deepcopy(gmm)
    times = []
    if truncated:
        C, G = gmm.n_active, gmm.n_neighbors or 5
        search = TruncatedSearch(X.shape[0], C, G, seed=0)
        search.start(
            X,
            None,
            gmm._truncated_parameters(),
            resolve_n_threads(gmm.n_jobs),
            exact_labels=lambda: gmm._pass(X, moments=False, labels=True)[1]["homes"],
        )
    for _ in range(repeats + 1):
        start = time.perf_counter()
        if truncated:
            stats = search.e_step(X, None, gmm._truncated_parameters(), resolve_n_threads(gmm.n_jobs))
        else:
            stats = gmm._e_step(X)
        gmm._m_step(stats)
        gmm._decompose(stats)
        times.append(time.perf_counter() - start)
    return min(times[1:])


def scaling(args):
    X = clustered_data(args.n, args.d, max(args.ks), seed=0)
    print(f"N={args.n} D={args.d} diag C'={args.c} G={args.g} threads={args.threads}")
    print("K\ttruncated s/iter\texact s/iter\tratio")
    for k in args.ks:
        gmm = FastGMM(
            k,
            covariance_type="diag",
            n_active=args.c,
            n_neighbors=args.g,
            init_params="random_from_data",
            max_iter=2,
            tol=0.0,
            random_state=0,
            n_jobs=args.threads,
        )
        gmm.fit(X)
        truncated = iteration_seconds(gmm, X, True, args.repeats)
        exact = float("nan")
        if not args.no_exact:
            gmm.n_active = None
            exact = iteration_seconds(gmm, X, False, 2)
        print(f"{k}\t{truncated:.4f}\t{exact:.4f}\t{exact / truncated:.1f}")


def separated(args):
    rng = np.random.default_rng(1)
    centres = rng.normal(0.0, 10.0, (args.k, args.d))
    X = np.repeat(centres, args.per_cluster, axis=0) + rng.normal(
        0.0, 1.0, (args.k * args.per_cluster, args.d)
    )
    common = dict(
        covariance_type="diag",
        init_params="afkmc2",
        random_state=0,
        max_iter=args.max_iter,
        n_jobs=args.threads,
    )
    results = {}
    for name, extra in (("truncated", dict(n_active=args.c, n_neighbors=args.g)), ("exact", {})):
        gmm = FastGMM(args.k, **common, **extra)
        start = time.perf_counter()
        gmm.fit(X)
        fit_seconds = time.perf_counter() - start
        score = gmm.score(X)
        per_iter = iteration_seconds(gmm, X, name == "truncated", 3)
        results[name] = (score, gmm.n_iter_, fit_seconds, per_iter)
        print(
            f"{name}: exact mean log-likelihood {results[name][0]:.5f}, n_iter {gmm.n_iter_}, "
            f"fit {fit_seconds:.2f} s, {per_iter:.4f} s/iter"
        )
    t, e = results["truncated"], results["exact"]
    print(
        f"relative log-likelihood difference {(t[0] - e[0]) / abs(e[0]):+.4%}; "
        f"per-iteration speed-up {e[3] / t[3]:.1f}x"
    )


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("case", choices=["scaling", "separated"])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--d", type=int, default=32)
    parser.add_argument("--ks", type=int, nargs="+", default=[256, 1024, 4096])
    parser.add_argument("--k", type=int, default=1024)
    parser.add_argument("--per-cluster", type=int, default=200)
    parser.add_argument("--c", type=int, default=5)
    parser.add_argument("--g", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-iter", type=int, default=100)
    parser.add_argument("--no-exact", action="store_true")
    args = parser.parse_args()
    scaling(args) if args.case == "scaling" else separated(args)


if __name__ == "__main__":
    main()
