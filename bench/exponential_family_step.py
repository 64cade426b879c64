"""Seconds of one EM iteration of FastBernoulliMixture / FastPoissonMixture and of the NumPy EM
(``numpy_exponential_family_em.py``), timed step by step, for sizes where the report's differencing
of whole fits (``T(1 + m) - T(1)``, several fits per system) would take hours: at N = 1M, D = 50,000
and K = 1,000 one NumPy iteration takes about 250 s on 2 cores.

Both systems start from ``numpy_exponential_family_em.initial_parameters`` (seed 0), on the report's
data (``exponential_family_report.make_data``). fastelbo's iteration is what ``fit`` runs per EM step
through the estimator's own hooks (E-step, M-step, entropy decomposition), best of ``--repeats``
after one warm-up iteration; the NumPy EM's is one ``em_step`` (best of ``--numpy-repeats``, by
default 1: against a step of minutes, the set-up that a warm-up would absorb is small). The check,
as in the report: both systems' first E-step give the same mean log-likelihood of the start to
``AGREEMENT_RTOL``, or the script exits with status 1.

    python exponential_family_step.py --family poisson --n-samples 1000000 --components 1000 \\
        --json results/exponential_family/step_poisson_n1m_k1000.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import fastelbo
import numpy_exponential_family_em as npef
import timing
from agreement import AGREEMENT_RTOL, relative_difference
from exponential_family_report import ESTIMATORS, ExponentialFamilyCase, make_data
from report import cpu_identity


def fastelbo_iteration(case, X, start, repeats):
    """(best seconds of one iteration, the first E-step's mean log-likelihood, every timed
    iteration's seconds) from ``start``."""
    weights, means = start
    model = getattr(fastelbo, ESTIMATORS[case.family])(
        n_components=case.n_components, random_state=0, weights_init=weights, means_init=means
    )
    return timing.hook_iteration_seconds(model, X, repeats)


def numpy_iteration(case, X, start, repeats):
    """(best seconds of one ``em_step``, its mean log-likelihood of ``start``)."""
    best, log_likelihood = float("inf"), None
    for _ in range(repeats):
        began = time.perf_counter()
        _, _, log_likelihood = npef.em_step(X, *start, case.family)
        best = min(best, time.perf_counter() - began)
    return best, float(log_likelihood)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", choices=npef.FAMILIES, default="poisson")
    parser.add_argument("--n-samples", type=int, default=100_000)
    parser.add_argument("--n-features", type=int, default=50_000)
    parser.add_argument("--components", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--numpy-repeats", type=int, default=1)
    parser.add_argument("--json", default=None, help="write the result here")
    args = parser.parse_args()
    case = ExponentialFamilyCase(args.family, args.n_samples, args.n_features, args.components)
    X = make_data(case)
    start = npef.initial_parameters(X, case.n_components, case.family, random_state=0)
    print(f"{case.id}: nnz {X.nnz}", flush=True)
    ours, ours_ll, ours_all = fastelbo_iteration(case, X, start, args.repeats)
    timed = ", ".join(f"{t:.3f}" for t in ours_all)
    print(f"  fastelbo {ours:9.3f} s/iter (iterations 2-{args.repeats + 1}: {timed})", flush=True)
    print(f"           log-likelihood of the start {ours_ll:.12g}", flush=True)
    theirs, theirs_ll = numpy_iteration(case, X, start, args.numpy_repeats)
    print(f"  numpy    {theirs:9.3f} s/iter  log-likelihood of the start {theirs_ll:.12g}", flush=True)
    difference = relative_difference(ours_ll, theirs_ll)
    passed = abs(difference) <= AGREEMENT_RTOL
    verdict = "pass" if passed else "FAIL"
    print(f"  ratio {theirs / ours:.2f}x; log-likelihoods differ by {difference:.2e}: {verdict}")
    if args.json:
        row = {
            "case": case.id,
            **vars(case),
            "nnz": int(X.nnz),
            "seconds_per_iteration": {"fastelbo": ours, "numpy": theirs},
            "fastelbo_iteration_seconds": ours_all,
            "repeats": {"fastelbo": args.repeats, "numpy": args.numpy_repeats},
            "log_likelihood_of_start": {"fastelbo": ours_ll, "numpy": theirs_ll},
            "relative_difference": difference,
            "passed": passed,
            **cpu_identity(),
            "load_average": timing.load_average(),
        }
        with open(args.json, "w") as f:
            json.dump(row, f, indent=1)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
