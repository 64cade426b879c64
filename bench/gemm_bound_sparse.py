"""The GEMM bound of the sparse product: what the machine allows for ``X @ W`` (X CSR, N x D with nnz
stored values; W dense D x K), the product at the heart of a Bernoulli or Poisson mixture's E-step
(``X @ eta^T``), and of its M-step (``X^T @ R``, the same count of work), against SciPy's time for it.

Any kernel computing ``X @ W`` multiplies each stored ``x_nd`` with row d of W: nnz x K
multiply-adds, and nnz x K values of W read (a row of W per stored value). Two references follow:

- FLOPs: 2 nnz K FLOPs at the rate of a dense GEMM (BLAS ``dgemm``, measured here on the same threads):
  a hard floor, since no sparse kernel multiplies faster than a dense blocked one;
- reads: 8 nnz K bytes at the rate this machine sums (streams) a float64 array the size of W, in
  a loop: the time of reading the nnz K values the product needs, in the best order, from where W
  lives (the caches when W fits there, memory when it does not: at D = 50,000, W is 40 MB at K = 100
  and 400 MB at K = 1,000, against a 16 MiB L3). The product gathers rows of W (K contiguous values
  each) in the data's order instead, so it is slower unless the rows it reuses most (a Zipf
  vocabulary's frequent words) sit in a nearer cache than W as a whole: a reference for the data
  movement, close to a floor but not a hard one.

The bound of a product is the larger of the two (on CPUs the reads: at K = 100, 8e9 bytes against
2e9 FLOPs for nnz = 1e7). An EM iteration does two such products (E-step and M-step), so its
bound is twice that. ``measure`` returns both references, their maximum and SciPy's measured times.

Usage: ``python bench/gemm_bound_sparse.py [--n-samples N] [--n-features D] [--density P]
[--components K ...] [--threads T] [--repeats R]``; prints one JSON line per K.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

import sparse_counts

STREAM_BYTES = 256 * 2**20  # bytes summed per timing, however small the array: a measurable time
GEMM_SIZE = 1024


def _best(run, repeats):
    run()  # warm-up: page faults, BLAS start-up
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def read_rate(n_bytes, threads=1, repeats=5) -> float:
    """Bytes per second of summing a float64 array of ``n_bytes`` (W's size), repeatedly until
    STREAM_BYTES are read, split among ``threads`` threads (NumPy releases the GIL in the sum)."""
    array = np.ones(max(n_bytes // 8, 1024))
    passes = max(1, STREAM_BYTES // array.nbytes)
    parts = np.array_split(array, threads)

    def read_all():
        for _ in range(passes):
            array.sum()

    if threads == 1:
        seconds = _best(read_all, repeats)
    else:
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:

            def read_part(part):
                for _ in range(passes):
                    part.sum()

            seconds = _best(lambda: list(pool.map(read_part, parts)), repeats)
    return passes * array.nbytes / seconds


def gemm_rate(threads=1, repeats=3, size=GEMM_SIZE) -> float:
    """FLOPs per second of a square float64 ``dgemm`` of ``size`` on ``threads`` BLAS threads."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((size, size)), rng.standard_normal((size, size))
    with threadpool_limits(threads, user_api="blas"):
        seconds = _best(lambda: a @ b, repeats)
    return 2.0 * size**3 / seconds


def scipy_seconds(X, n_components, repeats=3, seed=0) -> dict:
    """Best-of-``repeats`` seconds of SciPy's ``X @ W`` (W (D, K) C-contiguous, as the NumPy EM keeps
    its natural parameters) and ``X.T @ R`` (R (N, K)), after a warm-up; SciPy runs them on one thread."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((X.shape[1], n_components))
    R = rng.random((X.shape[0], n_components))
    return {
        "e_step_product": _best(lambda: X @ W, repeats),
        "m_step_product": _best(lambda: X.T @ R, repeats),
    }


def bound(nnz, n_components, read_bytes_per_second, flops_per_second) -> dict:
    """Seconds of one product by each reference and their maximum (the bound)."""
    reads = 8.0 * nnz * n_components / read_bytes_per_second
    flops = 2.0 * nnz * n_components / flops_per_second
    return {"reads": reads, "flops": flops, "bound": max(reads, flops)}


def measure(X, n_components, threads=1, repeats=3, flops_per_second=None) -> dict:
    """The bound of one product ``X @ W`` for this X and K, SciPy's measured times, and the rates
    (the GEMM rate is measured unless given; the read rate always, for W's size)."""
    rates = {
        "read_bytes_per_second": read_rate(8 * X.shape[1] * n_components, threads, max(repeats, 5)),
        "flops_per_second": flops_per_second or gemm_rate(threads, repeats=repeats),
    }
    references = bound(X.nnz, n_components, rates["read_bytes_per_second"], rates["flops_per_second"])
    measured = scipy_seconds(X, n_components, repeats)
    return {
        "nnz": int(X.nnz),
        "n_components": n_components,
        "threads": threads,
        **rates,
        "product_seconds": references,
        "iteration_bound_seconds": 2.0 * references["bound"],
        "scipy_seconds": measured,
        "scipy_over_bound": {name: t / references["bound"] for name, t in measured.items()},
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=100_000)
    parser.add_argument("--n-features", type=int, default=50_000)
    parser.add_argument("--density", type=float, default=0.002)
    parser.add_argument("--components", type=int, nargs="+", default=[100])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    X = sparse_counts.sparse_counts(args.n_samples, args.n_features, args.density)
    flops_per_second = gemm_rate(args.threads, repeats=args.repeats)
    for k in args.components:
        print(json.dumps(measure(X, k, args.threads, args.repeats, flops_per_second)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
