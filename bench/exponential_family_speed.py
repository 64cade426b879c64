"""Seconds per EM iteration and peak memory of the NumPy EM for Bernoulli and Poisson mixtures
(``numpy_exponential_family_em.py``) on sparse Zipf counts (``sparse_counts.py``), beside the GEMM
bound of its two sparse products (``gemm_bound_sparse.py``).

Usage: ``python bench/exponential_family_speed.py [--n-samples N] [--n-features D] [--density P]
[--components K ...] [--families bernoulli poisson] [--repeats R] [--json-out PATH]``

Per family and K, from ``numpy_exponential_family_em.initial_parameters`` (seed 0):

- seconds per iteration, ``timing.seconds_per_iteration``: (T(1+m) - T(1)) / m over whole ``fit``
  calls, each T the best of R after a warm-up, one call when it takes over 20 s;
- memory: the traced peak of a 2-iteration fit (``tracemalloc``: NumPy's and SciPy's arrays), X
  itself not counted, and the process's peak RSS so far (``VmHWM``: X, the data and every fit); the
  RSS a fit adds is not measured in process, as the allocator reuses memory earlier fits freed;
- the bound of an iteration, two products at ``gemm_bound_sparse.bound`` (one thread, as SciPy).

Prints one JSON line per case (the CPU, load averages and rates with it) and writes them all to
``--json-out`` if given.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import tracemalloc

import gemm_bound_sparse
import numpy_exponential_family_em as npef
import process_memory
import sparse_counts
import timing


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``; ``report.py`` is not imported: it needs fastelbo built)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def measure_case(X, family, n_components, repeats, rates):
    weights, means = npef.initial_parameters(X, n_components, family, random_state=0)

    def run(n_iter):
        return npef.fit(X, weights, means, family, n_iter)[1][-1]

    seconds, n_iter, log_likelihood = timing.seconds_per_iteration(run, repeats)
    tracemalloc.start()
    npef.fit(X, weights, means, family, 2)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    read_rate = gemm_bound_sparse.read_rate(8 * X.shape[1] * n_components)
    references = gemm_bound_sparse.bound(X.nnz, n_components, read_rate, rates["flops_per_second"])
    iteration_bound = 2.0 * references["bound"]
    return {
        "family": family,
        "n_samples": X.shape[0],
        "n_features": X.shape[1],
        "nnz": int(X.nnz),
        "n_components": n_components,
        "seconds_per_iteration": seconds,
        "measured_iterations": n_iter,
        "log_likelihood_after_4": log_likelihood,
        "read_bytes_per_second": read_rate,  # for an array the size of the natural parameters
        "iteration_bound_seconds": iteration_bound,
        "over_bound": seconds / iteration_bound,
        "traced_peak_mib": traced_peak / 2**20,
        "process_peak_rss_mib": process_memory.status_kib("VmHWM") / 1024,
        "block_rows": max(1, npef.BLOCK_BYTES // (8 * n_components)),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=100_000)
    parser.add_argument("--n-features", type=int, default=50_000)
    parser.add_argument("--density", type=float, default=0.002)
    parser.add_argument("--topics", type=int, default=20)
    parser.add_argument("--components", type=int, nargs="+", default=[100])
    parser.add_argument("--families", nargs="+", choices=npef.FAMILIES, default=list(npef.FAMILIES))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json-out", default=None)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    counts = sparse_counts.sparse_counts(args.n_samples, args.n_features, args.density, args.topics)
    generation = time.perf_counter() - started
    rates = {"flops_per_second": gemm_bound_sparse.gemm_rate(1)}
    header = {
        "cpu": cpu_name(),
        "load_average": timing.load_average(),
        "generation_seconds": generation,
        "density": counts.nnz / (counts.shape[0] * counts.shape[1]),
        **rates,
    }
    print(json.dumps(header), flush=True)
    rows = []
    for family in args.families:
        X = sparse_counts.binarized(counts) if family == "bernoulli" else counts
        for k in args.components:
            row = measure_case(X, family, k, args.repeats, rates)
            row["load_average"] = timing.load_average()
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.json_out:
        with open(args.json_out, "w") as out:
            json.dump({"environment": header, "cases": rows}, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
