"""FastMFA vs the NumPy MFA EM per iteration on all image patches, measured in alternating rounds.

On a shared machine the load changes while ``mfa_report.py`` times one system after the other, and
it slows the compute-bound FastMFA more than the memory-bound NumPy EM. Here each round times FastMFA
((T(1+3) - T(1)) / 3 over warm-started fits, as ``timing.py``) and then one NumPy iteration, one
thread each, and prints both with the load average, so every ratio compares like with like. Run from
the repository root::

    python bench/mfa_interleaved.py --rounds 3
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))

import mfa_report  # noqa: E402
import numpy_mfa  # noqa: E402
from timing import format_load_average, load_average  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    case = mfa_report.FULL_CASES[0]
    X = mfa_report.make_data(case)
    start = mfa_report.initial_estimator(case, X)
    parameters = (start.weights_, start.means_, start.components_, start.noise_variance_)

    def fast(n_iter):
        # The copy of the start and the thread limits it sets up are in every call: they cancel in
        # the difference of T(1 + 3) and T(1), as in timing.seconds_per_iteration.
        began = time.perf_counter()
        mfa_report.run_iterations("fastelbo", case, X, start, n_iter, n_jobs=1)
        return time.perf_counter() - began

    def numpy_iteration():
        with threadpool_limits(1, user_api="blas"):
            began = time.perf_counter()
            numpy_mfa.iteration(X, *parameters, reg_covar=case.reg_covar)
            return time.perf_counter() - began

    fast(1)  # warm-up
    for round_ in range(args.rounds):
        load = format_load_average(load_average())
        ours = (fast(1 + 3) - fast(1)) / 3
        theirs = numpy_iteration()
        print(
            f"round {round_}: FastMFA {ours:.3f} s/iter, NumPy MFA EM {theirs:.2f} s/iter, "
            f"ratio {theirs / ours:.1f}x, load average {load}",
            flush=True,
        )


if __name__ == "__main__":
    main()
