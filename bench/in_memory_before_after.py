"""In-memory speed of two source trees of fastelbo, measured in one run, case by case alternately.

Used to check that a change of structure (the row-source seam, say) leaves the in-memory speed of
every ``bench/report.py`` row as it was. Each tree runs in a worker process of its own (two builds
of one package cannot share a process); for each case the workers take turns, ``--rounds`` times,
and each system's time is its best round. Cases:

- the Gaussian-mixture rows of ``report.py`` (``cases.FULL_ITERATION_CASES``, or the quick ones):
  seconds per EM iteration from a fixed start, as ``timing.seconds_per_iteration``;
- FastPPCA (closed form) and FastFactorAnalysis (5 iterations from a fixed start, tol=0) fits of
  ``factor_cases``: the scatter pass and the iterations;
- the FastMFA per-iteration row of ``mfa_report.py``.

Usage, from the repository root (each tree's ``python/`` holds its built modules)::

    python bench/in_memory_before_after.py --before ../old --after . [--quick] [--rounds R]
        [--skip REGEX] [--only REGEX]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent

WORKER = r"""
import json, sys, time, warnings
sys.path[:0] = [sys.argv[1], sys.argv[2]]
import numpy as np
import cases, factor_cases, mfa_report, systems, timing
from fastelbo import FastFactorAnalysis, FastPPCA
data = {}

def gmm(case):
    if case.id not in data:
        X = cases.make_data(case)
        data[case.id] = (X, cases.initial_parameters(case, X))
    X, start = data[case.id]
    return timing.seconds_per_iteration(lambda n: systems.run_iterations("fastelbo", case, X, start, n), 1)[0]

def factor(case, model):
    if case.id not in data:
        data[case.id] = factor_cases.make_data(case)
    X = data[case.id]
    if model == "ppca":
        estimator = FastPPCA(case.n_factors)
    else:
        variances = X.var(axis=0)  # constant features (digits' borders) start at a small noise
        start = np.maximum(variances, 1e-6 * variances.mean())
        estimator = FastFactorAnalysis(case.n_factors, tol=0.0, max_iter=5, noise_variance_init=start)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return timing.best_time(lambda: estimator.fit(X), 1)[0]

def mfa(case):
    if case.id not in data:
        X = mfa_report.make_data(case)
        data[case.id] = (X, mfa_report.initial_estimator(case, X))
    X, start = data[case.id]
    run = lambda n: mfa_report.run_iterations("fastelbo", case, X, start, n)
    return timing.seconds_per_iteration(run, 1)[0]

CASES = {}
for quick in (False, True):
    for case in (cases.QUICK_ITERATION_CASES if quick else cases.FULL_ITERATION_CASES):
        CASES[("gmm", case.id)] = lambda case=case: gmm(case)
    for case in (factor_cases.QUICK_CASES if quick else factor_cases.FULL_CASES):
        CASES[("factor", case.id)] = lambda case=case: factor(case, case.model)
    for case in (mfa_report.QUICK_CASES if quick else mfa_report.FULL_CASES):
        CASES[("mfa", case.id)] = lambda case=case: mfa(case)
print("ready", flush=True)
for line in sys.stdin:
    group, case_id = json.loads(line)
    print(json.dumps(CASES[(group, case_id)]()), flush=True)
"""


def case_list(quick, tree):
    # The case definitions import fastelbo (its datasets): the measured tree's.
    sys.path[:0] = [str(Path(tree).resolve() / "python"), str(BENCH_DIR)]
    import cases
    import factor_cases
    import mfa_report

    gmm_cases = cases.QUICK_ITERATION_CASES if quick else cases.FULL_ITERATION_CASES
    factor_list = factor_cases.QUICK_CASES if quick else factor_cases.FULL_CASES
    mfa_list = mfa_report.QUICK_CASES if quick else mfa_report.FULL_CASES
    return (
        [("gmm", c.id) for c in gmm_cases]
        + [("factor", c.id) for c in factor_list if c.model in ("ppca", "fa")]
        + [("mfa", c.id) for c in mfa_list]
    )


class Worker:
    def __init__(self, tree):
        self.process = subprocess.Popen(
            [sys.executable, "-c", WORKER, str(Path(tree).resolve() / "python"), str(BENCH_DIR)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout.readline().strip() == "ready"

    def time(self, key):
        self.process.stdin.write(json.dumps(key) + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def close(self):
        self.process.stdin.close()
        self.process.wait()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="source tree measured first in each round")
    parser.add_argument("--after", required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--output", type=Path, default=None, help="JSON file for the results")
    parser.add_argument("--skip", default=None, help="regular expression of case ids to leave out")
    parser.add_argument("--only", default=None, help="regular expression of the case ids to measure")
    args = parser.parse_args(argv)
    workers = {"before": Worker(args.before), "after": Worker(args.after)}
    rows = []
    print(f"| {'group':<6} | {'case':<40} | {'before s':>9} | {'after s':>9} | {'after/before':>12} |")
    print(f"|{'-' * 8}|{'-' * 42}|{'-' * 11}|{'-' * 11}|{'-' * 14}|")
    for key in case_list(args.quick, args.after):
        if (args.skip and re.search(args.skip, key[1])) or (args.only and not re.search(args.only, key[1])):
            continue
        best = {name: float("inf") for name in workers}
        for _ in range(args.rounds):
            for name, worker in workers.items():
                best[name] = min(best[name], worker.time(key))
        ratio = best["after"] / best["before"] if best["before"] > 0 else float("nan")
        rows.append({"group": key[0], "case": key[1], **best, "ratio": ratio})
        times = f"{best['before']:>9.4f} | {best['after']:>9.4f}"
        print(f"| {key[0]:<6} | {key[1]:<40} | {times} | {ratio:>12.3f} |", flush=True)
    for worker in workers.values():
        worker.close()
    if args.output:
        args.output.write_text(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M"), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
