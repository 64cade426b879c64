"""The factor-model group of the benchmark report: whole fits of every system on the same data.

Factor models depend on the data only through their mean and covariance, so what differs between
the systems is how they get there (fastelbo: one C++ scatter pass, then EM at O(D^2 H) per
iteration; scikit-learn's FactorAnalysis: an SVD of the data per iteration) and where they stop.
Each case fits every system of its model (``factor_systems.MODELS``) with the same tolerance,
records time, iterations and the mean log-likelihood of the training data, and checks fastelbo's
log-likelihood against every checked competitor under the model's rule (``agreement.meets_rule``).
fastelbo's fits also record the gap F - S of the ELBO's entropy decomposition (docs/theory.rst,
factor models: zero only at convergence, so it says how far a fit stopped from a stationary point).
"""

from __future__ import annotations

import time

import numpy as np

import factor_cases
import factor_systems
from agreement import AGREEMENT_RTOL, meets_rule, relative_difference
from timing import LONG_RUN_SECONDS, best_time

# Fits shorter than this are timed SHORT_FIT_REPEATS more times: milliseconds are noisy, and cheap.
SHORT_FIT_SECONDS = 0.5
SHORT_FIT_REPEATS = 5
RULE_WORDS = {"equal": "must equal", "at_least": "must reach at least"}


def time_fit(system, case, X, repeats):
    """(best seconds, the last fitted estimator) of ``repeats`` fits, SHORT_FIT_REPEATS more if short."""

    def run():
        return factor_systems.fit(system, case, X)

    seconds, estimator = best_time(run, repeats)
    if seconds < SHORT_FIT_SECONDS:
        more, estimator = best_time(run, SHORT_FIT_REPEATS)
        seconds = min(seconds, more)
    return seconds, estimator


def measure(case_list, repeats, log):
    rows = []
    for case in case_list:
        began = time.perf_counter()
        X = factor_cases.make_data(case)
        model = factor_systems.MODELS[case.model]
        row = {"case": case.id, **vars(case), "rule": model.rule, "systems": {}, "errors": {}}
        for system in model.systems:
            try:
                seconds, estimator = time_fit(system, case, X, repeats)
                result = factor_systems.describe(estimator, X)
            except (ValueError, np.linalg.LinAlgError) as error:
                row["errors"][system.name] = str(error)
                log(f"  {case.id:<32} {system.name:<14} failed: {error}")
                continue
            if not np.isfinite(result["log_likelihood"]):
                row["errors"][system.name] = f"non-finite log-likelihood {result['log_likelihood']}"
                log(f"  {case.id:<32} {system.name:<14} failed: non-finite log-likelihood")
                continue
            row["systems"][system.name] = {"label": system.label, "seconds": seconds, **result}
            log(
                f"  {case.id:<32} {system.name:<14} fit {seconds:8.3f} s  n_iter {result['n_iter']}  "
                f"loglik {result['log_likelihood']:.10g}"
            )
        row["relative_difference"] = _differences(model, row["systems"])
        row["passed"] = _passed(model.rule, row["systems"], row["relative_difference"])
        row["wall_seconds"] = time.perf_counter() - began
        log(
            f"  {case.id:<32} measured in {row['wall_seconds']:.1f} s, "
            f"checks {'pass' if row['passed'] else 'FAIL'}"
        )
        rows.append(row)
    return rows


def _differences(model, results):
    """(fastelbo - other) / |other| of the mean log-likelihoods, for every checked competitor."""
    ours = results.get("fastelbo")
    if ours is None:
        return {}
    return {
        system.name: relative_difference(ours["log_likelihood"], results[system.name]["log_likelihood"])
        for system in model.systems[1:]
        if system.checked and system.name in results
    }


def _passed(rule, results, differences):
    return (
        "fastelbo" in results and bool(differences) and all(meets_rule(rule, d) for d in differences.values())
    )


def failed_checks(rows) -> list[str]:
    """Cases where fastelbo gave no finite answer, no competitor checked it, or it missed the rule."""
    return [row["case"] for row in rows if not row["passed"]]


# --- the report section ---------------------------------------------------------------------------


def _iterations(result):
    if result["n_iter"] is None:
        return "closed form"
    return f"{result['n_iter']}{'' if result['converged'] is not False else ', not converged'}"


def markdown(rows, repeats) -> list[str]:
    if not rows:
        return []
    lines = [
        "## Factor models: whole fit() on the same data",
        "",
        "Every system fits the same data with the same stopping rule (scikit-learn FactorAnalysis's "
        f"defaults, `tol={factor_cases.DEFAULT_TOL:g}` on the total log-likelihood, "
        f"`max_iter={factor_cases.DEFAULT_MAX_ITER}`); each time is the best of {repeats} whole fits "
        f"(one when it takes over {LONG_RUN_SECONDS:.0f} s, {SHORT_FIT_REPEATS} more when under "
        f"{SHORT_FIT_SECONDS} s), every system on {factor_systems.THREADS} thread(s), BLAS included "
        "(`bench/factor_systems.py` says why). 'mean log-likelihood' is `score(X)` on the training "
        "data; scikit-learn's PCA divides its variances by N - 1, so its score is moved by the closed "
        "form D/2 (log a + 1/a - 1), a = N/(N-1), to the maximum-likelihood model's. 'speed-up' is "
        "the system's time / fastelbo's. 'Δ log-lik' is (fastelbo - system) / |system|: a closed form "
        f"must equal every competitor's to {AGREEMENT_RTOL:g}, EM must reach at least theirs (Δ >= "
        f"-{AGREEMENT_RTOL:g}); the report fails otherwise. 'gap' is fastelbo's F - S over |F|, zero "
        "only at convergence (docs/theory.rst, factor models): it measures how far the fit stopped from a "
        "stationary "
        "point. Data: `factor` is drawn from a factor model with heterogeneous noise "
        "(`bench/factor_cases.py`); `digits` is scikit-learn's digits (3 pixels are always 0, so "
        "their noise variance sits at the 1e-12 floor, and each keeps 1/2 in FA's gap); "
        "`breast_cancer` is scikit-learn's, each feature standardised.",
        "",
    ]
    for name, model in factor_systems.MODELS.items():
        model_rows = [row for row in rows if row["model"] == name]
        if not model_rows:
            continue
        lines += [
            f"### {model.label} ({RULE_WORDS[model.rule]} the checked systems' log-likelihood)",
            "",
            "| case | system | fit s | iterations | mean log-likelihood | speed-up | Δ log-lik "
            "| gap (F-S)/abs(F) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in model_rows:
            ours = row["systems"].get("fastelbo")
            for system in model.systems:
                result = row["systems"].get(system.name)
                if result is None:
                    lines.append(f"| {row['case']} | {system.label} | failed | | | | | |")
                    continue
                speedup = (
                    f"{result['seconds'] / ours['seconds']:.1f}x"
                    if ours and system.name != "fastelbo"
                    else ""
                )
                difference = row["relative_difference"].get(system.name)
                check = (
                    ""
                    if difference is None
                    else f"{difference:+.1e} {'ok' if meets_rule(row['rule'], difference) else 'FAIL'}"
                )
                gap = f"{result['decomposition']['relative_gap']:.1e}" if "decomposition" in result else ""
                lines.append(
                    f"| {row['case']} | {system.label} | {result['seconds']:.4f} | {_iterations(result)} "
                    f"| {result['log_likelihood']:.10g} | {speedup} | {check} | {gap} |"
                )
        lines.append("")
    return lines
