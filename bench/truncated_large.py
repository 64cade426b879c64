"""Truncated variational EM at large K, in a process of its own: N=1M, D=64, K=65,536, diag, float32.

    python bench/truncated_large.py [--n-samples 1000000] [--n-features 64] [--n-components 65536]
                                    [--repeats 3] [--threads 2] [--json]

Data: ``n_components`` centres drawn N(0, 4²) in every coordinate, every row a centre chosen
uniformly at random plus N(0, 1) noise, float32 (``truncated_scaling.clustered_data`` with
``dtype=np.float32``, which never holds a float64 copy of X). Model: ``FastGMM(K, 'diag',
n_active=5, n_neighbors=5, init_params='random_from_data', tol=0, max_iter=1 + repeats)``.

One fit, timed phase by phase (by wrapping the estimator's hooks, which changes nothing it
computes): the initialisation (K rows drawn, one M-step), the initial neighbour lists (exact,
``O(K²·D)``, or from the coarse clustering of the means, ``O(K·sqrt(K)·D)``), the initial sets
(every row's nearest means in its coarse cell, ``O(N·sqrt(K)·D)``, since one exact labelling pass,
``O(N·K·D)``, is over budget at this size), the warm-up E-steps that walk the neighbour graph
(``O(N·C'·G·D)`` each; their number is reported), every iteration (E-step, M-step, decomposition)
and the final pass. Seconds
per iteration are the best of the ``repeats`` iterations after the first. Memory: the peak RSS of
the process (``VmHWM``), its RSS before the data were made, and the peak during ``fit`` above the
RSS just before it (the peak mark reset there through ``/proc/self/clear_refs``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

import fastelbo.mixture._truncated as truncated
from fastelbo import FastGMM
from fastelbo.mixture._coarse_cells import CoarseCells
from process_memory import reset_peak_rss, status_kib
from timing import load_average
from truncated_scaling import clustered_data


def status_mib(field: str) -> float:
    return status_kib(field) / 1024.0


class PhaseClock:
    """Wall time of wrapped calls, by phase name, in call order."""

    def __init__(self):
        self.calls = []

    def wrap(self, owner, name, phase):
        original = getattr(owner, name)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.calls.append((phase, start, time.perf_counter()))

        setattr(owner, name, timed)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n-samples", type=int, default=1_000_000)
    parser.add_argument("--n-features", type=int, default=64)
    parser.add_argument("--n-components", type=int, default=65_536)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args(argv)

    baseline = status_mib("VmRSS")
    load_before = load_average()
    began = time.perf_counter()
    X = clustered_data(args.n_samples, args.n_features, args.n_components, dtype=np.float32)
    data_seconds = time.perf_counter() - began

    clock = PhaseClock()
    clock.wrap(FastGMM, "_initialize_parameters", "initialisation")
    clock.wrap(truncated, "initial_neighbours", "initial neighbour lists")
    clock.wrap(CoarseCells, "neighbour_lists", "initial neighbour lists")
    clock.wrap(CoarseCells, "nearest_means", "initial sets")
    clock.wrap(truncated.TruncatedSearch, "start", "start")
    clock.wrap(FastGMM, "_e_step", "e-step")
    clock.wrap(FastGMM, "_decompose", "decompose")
    clock.wrap(FastGMM, "_final_pass", "final pass")
    clock.wrap(truncated.TruncatedSearch, "e_step", "truncated e-step")

    gmm = FastGMM(
        args.n_components,
        covariance_type="diag",
        n_active=5,
        n_neighbors=5,
        init_params="random_from_data",
        max_iter=1 + args.repeats,
        tol=0.0,
        random_state=0,
        n_jobs=args.threads,
    )
    try:
        reset_peak_rss()  # the peak-RSS mark from here on
        reset = True
    except OSError:
        reset = False
    before_fit = status_mib("VmRSS")
    fit_began = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gmm.fit(X)
    fit_seconds = time.perf_counter() - fit_began
    peak_fit = status_mib("VmHWM")
    load_after = load_average()

    phases = {"data generation": data_seconds}
    for phase in ("initialisation", "initial neighbour lists", "initial sets", "start"):
        phases[phase] = sum(end - start for name, start, end in clock.calls if name == phase)
    # The start runs inside the first E-step and includes the neighbour lists and the initial sets;
    # what remains of it is the warm-up. An iteration is from the start of its E-step to the end
    # of its decomposition, without the start.
    start_seconds = phases["start"]
    phases["warm-up"] = phases.pop("start") - phases["initial neighbour lists"] - phases["initial sets"]
    e_steps = [(s, e) for name, s, e in clock.calls if name == "e-step"]
    decompositions = [(s, e) for name, s, e in clock.calls if name == "decompose"]
    phases["whole start"] = start_seconds
    iterations = [
        decompose_end - e_start - (start_seconds if t == 0 else 0.0)
        for t, ((e_start, _), (_, decompose_end)) in enumerate(zip(e_steps, decompositions, strict=False))
    ]
    phases["final pass"] = sum(end - start for name, start, end in clock.calls if name == "final pass")
    for t, seconds in enumerate(iterations, 1):
        phases[f"iteration {t}"] = seconds
    phases["whole fit"] = fit_seconds
    # Truncated E-steps: the warm-up's, one per iteration and the final pass's.
    warmup_steps = sum(name == "truncated e-step" for name, _, _ in clock.calls) - len(iterations) - 1

    result = {
        "n_samples": args.n_samples,
        "n_features": args.n_features,
        "n_components": args.n_components,
        "threads": args.threads,
        "repeats": args.repeats,
        "description": (
            f"{args.n_components:,} centres N(0, 4²) in {args.n_features} dimensions, "
            f"{args.n_samples:,} rows each a uniformly chosen centre plus N(0, 1) noise, float32; "
            "`FastGMM(n_components=K, covariance_type='diag', n_active=5, n_neighbors=5, "
            "init_params='random_from_data', tol=0, random_state=0)`, "
            f"{args.threads} threads, one fit of {1 + args.repeats} iterations in a fresh process "
            "(`bench/truncated_large.py`)."
        ),
        "phases": phases,
        "iteration_seconds": iterations,
        "seconds_per_iteration": min(iterations[1:] or iterations),
        "warmup_steps": warmup_steps,
        "data_mib": X.nbytes / 2**20,
        "baseline_rss_mib": baseline,
        "rss_before_fit_mib": before_fit,
        "peak_rss_mib": status_mib("VmHWM"),  # a high-water mark: never below peak_fit
        "fit_added_peak_mib": peak_fit - before_fit if reset else None,
        "truncated_free_energy": float(gmm.lower_bound_),
        "load": load_before,
        "load_after": load_after,
    }
    if not reset:
        result["note"] = "the peak-RSS mark could not be reset: fit_added_peak_mib not measured"
    for phase, seconds in phases.items():
        print(f"{phase:<26} {seconds:9.2f} s", file=sys.stderr)
    print(
        f"seconds per iteration {result['seconds_per_iteration']:.3f}; X {result['data_mib']:.0f} MiB; "
        f"RSS before data {baseline:.0f} MiB, before fit {before_fit:.0f} MiB; peak during fit "
        f"{peak_fit:.0f} MiB (fit adds {peak_fit - before_fit:.0f} MiB); load {load_before} -> {load_after}",
        file=sys.stderr,
    )
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
