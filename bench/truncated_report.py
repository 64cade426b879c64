"""The truncated variational EM group of the benchmark report: ``FastGMM(n_active=C')`` against exact
``FastGMM`` (``n_active=None``).

- **Scaling**: seconds per iteration as K grows, N and D fixed (``N=100k, D=32``, diag, ``C'=5``,
  ``G=5``, K = 256, 1,024, 4,096 at full size), truncated and exact, each from the same fitted
  parameters. An iteration is what the EM driver does: one E-step with statistics, the M-step and
  the entropy decomposition (``truncated_scaling.iteration_seconds``); each time is the best of
  ``repeats`` after a warm-up.
- **Patches**: 8 x 8 grey patches of scikit-learn's two photos (``real_data.image_patches``, all
  531,720 at full size), K=1,024, diag: a whole truncated fit and a whole exact fit from the same
  AFK-MC² seeding (``random_state=0``), their fit times, iterations and final exact mean
  log-likelihoods (``score``).
- **Large** (full size only, ``truncated_large.py`` in a fresh process): N=1M, D=64, K=65,536, diag,
  float32 from ``init_params='random_from_data'``: seconds per iteration, the time of every phase of
  the start and the peak memory of the process.

The checks (a failure makes ``report.py`` exit 1; there are no timing checks), on every truncated
fit: the final truncated free energy F (``entropy_decomposition().elbo``) is at most the exact mean
log-likelihood ``score(X)`` of the same parameters (docs/theory.rst, truncated EM), and the histories
interleave, ``F(q^t, Θ^t) <= S(q^t, Θ^{t+1}) <= F(q^{t+1}, Θ^{t+1})``, up to the slack that ``reg_covar``
allows, ``(ε/2) Σ_c q̄_c tr(Σ_c⁻¹)`` of the fitted parameters (times 2, the parameters move), plus
round-off.
"""

from __future__ import annotations

import copy
import json
import pathlib
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.exceptions import ConvergenceWarning

import real_data
from fastelbo import FastGMM
from timing import format_load_average, load_average
from truncated_scaling import clustered_data, iteration_seconds

BENCH_DIR = pathlib.Path(__file__).resolve().parent
THREADS = 2
ROUND_OFF = 1e-12  # relative, float64 fits
PLOT_NAME = "truncated_time_per_iteration.png"


@dataclass(frozen=True)
class ScalingCase:
    """Synthetic clusters (``truncated_scaling.clustered_data``: ``max(ks)`` centres N(0, 4²) in D
    dimensions, unit noise), one fit per K of ``ks``."""

    n_samples: int
    n_features: int
    ks: tuple
    n_active: int = 5
    n_neighbors: int = 5
    fit_iter: int = 5  # iterations of the fit whose parameters are timed and checked

    @property
    def id(self) -> str:
        return f"clusters-N{self.n_samples}-D{self.n_features}-diag-C{self.n_active}-G{self.n_neighbors}"


@dataclass(frozen=True)
class PatchesCase:
    n_samples: int
    n_components: int
    max_iter: int
    n_active: int = 5
    n_neighbors: int = 5

    @property
    def id(self) -> str:
        return f"patches-N{self.n_samples}-D64-K{self.n_components}-diag-C{self.n_active}-G{self.n_neighbors}"


FULL_SCALING = ScalingCase(100_000, 32, (256, 1024, 4096))
QUICK_SCALING = ScalingCase(10_000, 16, (64, 256), fit_iter=3)
FULL_PATCHES = PatchesCase(531_720, 1024, max_iter=30)  # every patch
QUICK_PATCHES = PatchesCase(10_000, 32, max_iter=10)
FULL_LARGE = {"n_samples": 1_000_000, "n_features": 64, "n_components": 65_536}


# --- checks ------------------------------------------------------------------------------------


def regularisation_slack(gmm: FastGMM) -> float:
    """``(ε/2) Σ_c q̄_c tr(Σ_c⁻¹)`` (docs/theory.rst, mixtures) for diag covariances, q̄ the weights."""
    inverse_traces = np.sum(1.0 / gmm.covariances_.astype(np.float64), axis=1)
    return 0.5 * gmm.reg_covar * float(gmm.weights_.astype(np.float64) @ inverse_traces)


def check_fit(gmm: FastGMM, X: np.ndarray) -> dict:
    """The group's checks on a fitted truncated model (module docstring)."""
    F, S = gmm.elbo_history_, gmm.entropy_sum_history_
    slack = 2.0 * regularisation_slack(gmm)
    tolerance = slack + ROUND_OFF * np.abs(S)
    interleaved = bool(np.all(F[:-1] <= S[:-1] + tolerance[:-1]) and np.all(S[:-1] <= F[1:] + tolerance[:-1]))
    final_elbo = float(gmm.entropy_decomposition().elbo)
    log_likelihood = float(gmm.score(X))
    below = bool(final_elbo <= log_likelihood + ROUND_OFF * abs(log_likelihood))
    return {
        "truncated_free_energy": final_elbo,
        "log_likelihood": log_likelihood,
        "free_energy_below_log_likelihood": below,
        "histories_interleave": interleaved,
        "regularisation_slack": slack,
        "largest_interleaving_violation": float(
            max(np.max(F[:-1] - S[:-1], initial=-np.inf), np.max(S[:-1] - F[1:], initial=-np.inf))
        ),
        "passed": below and interleaved and bool(np.isfinite(log_likelihood)),
    }


# --- scaling -----------------------------------------------------------------------------------


def measure_scaling(case: ScalingCase, repeats: int, log) -> list[dict]:
    X = clustered_data(case.n_samples, case.n_features, max(case.ks), seed=0)
    rows = []
    for k in case.ks:
        began = time.perf_counter()
        gmm = FastGMM(
            k,
            covariance_type="diag",
            n_active=case.n_active,
            n_neighbors=case.n_neighbors,
            init_params="random_from_data",
            max_iter=case.fit_iter,
            tol=0.0,
            random_state=0,
            n_jobs=THREADS,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            gmm.fit(X)
        truncated = iteration_seconds(gmm, X, True, repeats)
        exact_model = copy.deepcopy(gmm).set_params(n_active=None, n_neighbors=None)
        exact = iteration_seconds(exact_model, X, False, repeats)
        row = {
            "case": case.id,
            "n_components": k,
            "seconds_per_iteration": {"truncated": truncated, "exact": exact},
            "check": check_fit(gmm, X),
        }
        row["wall_seconds"] = time.perf_counter() - began
        log(
            f"  {case.id} K={k:<6} truncated {truncated:8.4f} s/iter  exact {exact:8.4f} s/iter  "
            f"checks {'pass' if row['check']['passed'] else 'FAIL'}  ({row['wall_seconds']:.0f} s)"
        )
        rows.append(row)
    return rows


# --- patches -----------------------------------------------------------------------------------


def measure_patches(case: PatchesCase, repeats: int, log) -> dict:
    began = time.perf_counter()
    X = real_data.subsample(real_data.image_patches(), case.n_samples, "patches")
    row = {"case": case.id, **vars(case), "fits": {}}
    for name, extra in (
        ("truncated", dict(n_active=case.n_active, n_neighbors=case.n_neighbors)),
        ("exact", {}),
    ):
        gmm = FastGMM(
            case.n_components,
            covariance_type="diag",
            init_params="afkmc2",
            max_iter=case.max_iter,
            random_state=0,
            n_jobs=THREADS,
            **extra,
        )
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            gmm.fit(X)
        fit_seconds = time.perf_counter() - start
        fit = {
            "fit_seconds": fit_seconds,
            "n_iter": int(gmm.n_iter_),
            "converged": bool(gmm.converged_),
            "seconds_per_iteration": iteration_seconds(gmm, X, name == "truncated", repeats),
        }
        if name == "truncated":
            fit["check"] = check_fit(gmm, X)
            fit["log_likelihood"] = fit["check"]["log_likelihood"]
        else:
            fit["log_likelihood"] = float(gmm.score(X))
        row["fits"][name] = fit
        log(
            f"  {case.id} {name:<9} fit {fit_seconds:8.2f} s  n_iter {fit['n_iter']}  "
            f"{fit['seconds_per_iteration']:.4f} s/iter  score {fit['log_likelihood']:.6f}"
        )
    t, e = row["fits"]["truncated"], row["fits"]["exact"]
    row["relative_log_likelihood_difference"] = (t["log_likelihood"] - e["log_likelihood"]) / abs(
        e["log_likelihood"]
    )
    row["passed"] = t["check"]["passed"] and bool(np.isfinite(e["log_likelihood"]))
    row["wall_seconds"] = time.perf_counter() - began
    return row


# --- large -------------------------------------------------------------------------------------


def measure_large(spec: dict, repeats: int, log) -> dict:
    """``truncated_large.py`` in a fresh process (so its peak RSS is the run's own)."""
    arguments = [
        f"--n-samples={spec['n_samples']}",
        f"--n-features={spec['n_features']}",
        f"--n-components={spec['n_components']}",
        f"--repeats={repeats}",
        f"--threads={THREADS}",
    ]
    out = subprocess.run(
        [sys.executable, str(BENCH_DIR / "truncated_large.py"), *arguments, "--json"],
        check=True,
        capture_output=True,
        text=True,
    )
    row = json.loads(out.stdout.strip().splitlines()[-1])
    log(
        f"  large N={row['n_samples']} D={row['n_features']} K={row['n_components']} float32: "
        f"{row['seconds_per_iteration']:.3f} s/iter, peak RSS {row['peak_rss_mib']:.0f} MiB "
        f"(X {row['data_mib']:.0f} MiB)"
    )
    return row


# --- the group ---------------------------------------------------------------------------------


def measure(quick: bool, repeats: int, log) -> dict:
    started = time.perf_counter()
    results = {"threads": THREADS, "repeats": repeats}
    results["load_before"] = load_average()
    log("  scaling:")
    results["scaling"] = measure_scaling(QUICK_SCALING if quick else FULL_SCALING, repeats, log)
    log("  image patches:")
    results["patches"] = measure_patches(QUICK_PATCHES if quick else FULL_PATCHES, min(repeats, 3), log)
    if not quick:
        log("  large:")
        results["large"] = measure_large(FULL_LARGE, min(repeats, 3), log)
    results["load_after"] = load_average()
    results["wall_seconds"] = time.perf_counter() - started
    return results


def failed_checks(results) -> list[str]:
    if not results:
        return []
    failed = [
        f"{row['case']}-K{row['n_components']}" for row in results["scaling"] if not row["check"]["passed"]
    ]
    if not results["patches"]["passed"]:
        failed.append(results["patches"]["case"])
    return failed


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    rows = results["scaling"]
    ks = [row["n_components"] for row in rows]
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    for name, label in (("truncated", "truncated FastGMM (n_active=5)"), ("exact", "exact FastGMM")):
        ax.plot(ks, [row["seconds_per_iteration"][name] for row in rows], "o-", label=label)
    ax.set(xscale="log", yscale="log", xlabel="K (components)", ylabel="seconds per EM iteration")
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_title(rows[0]["case"], fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- the report section ------------------------------------------------------------------------


def _mib(value) -> str:
    return "n/a (peak mark not reset)" if value is None else f"{value:.0f}"


def markdown(results) -> list[str]:
    if not results:
        return []
    rows = results["scaling"]
    first = rows[0]["seconds_per_iteration"]
    lines = [
        "## Truncated variational EM: seconds per iteration as K grows",
        "",
        f"`FastGMM(n_active=C', n_neighbors=G)` against exact FastGMM, {results['threads']} threads, on "
        "synthetic clusters (`truncated_scaling.clustered_data`: centres N(0, 4²), unit noise) fitted "
        "with `init_params='random_from_data'`, `tol=0`; both are timed from the truncated fit's "
        "parameters. An iteration is the driver's E-step with statistics, M-step and entropy "
        f"decomposition, best of {results['repeats']} after a warm-up. Load average (1, 5, 15 min) "
        f"before the group: {format_load_average(results['load_before'])}; "
        f"after: {format_load_average(results['load_after'])}. "
        "Checks: the truncated free energy F is at most the exact log-likelihood `score(X)`, and the "
        "histories interleave up to the `reg_covar` slack (docs/theory.rst, truncated EM).",
        "",
        "| K | truncated s/iter | growth from first K | exact s/iter | growth | exact / truncated "
        "| F | log-likelihood | checks |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        t, check = row["seconds_per_iteration"], row["check"]
        lines.append(
            f"| {row['n_components']} | {t['truncated']:.4f} | {t['truncated'] / first['truncated']:.2f}x "
            f"| {t['exact']:.4f} | {t['exact'] / first['exact']:.1f}x | {t['exact'] / t['truncated']:.1f}x "
            f"| {check['truncated_free_energy']:.6f} | {check['log_likelihood']:.6f} "
            f"| {'pass' if check['passed'] else 'FAIL'} |"
        )
    lines += [
        "",
        f"Case: {rows[0]['case']}. Plot: `{PLOT_NAME}`.",
        "",
        "### Image patches: whole fits from the same AFK-MC² seeding",
        "",
    ]
    p = results["patches"]
    lines += [
        f"{p['case']}: every 8x8 grey patch of scikit-learn's two photos (DC removed; a random subset "
        f"in `--quick`), `init_params='afkmc2'`, `random_state=0`, `tol=1e-3`, `max_iter={p['max_iter']}`, "
        f"{results['threads']} threads. 'log-likelihood' is the exact mean `score(X)` of the fitted "
        "parameters; s/iter as above, from the fitted parameters.",
        "",
        "| fit | fit s | iterations | s/iter | log-likelihood | checks |",
        "|---|---|---|---|---|---|",
    ]
    for name in ("truncated", "exact"):
        fit = p["fits"][name]
        converged = "" if fit["converged"] else ", not converged"
        check = "-" if name == "exact" else ("pass" if fit["check"]["passed"] else "FAIL")
        lines.append(
            f"| {name} | {fit['fit_seconds']:.2f} | {fit['n_iter']}{converged} "
            f"| {fit['seconds_per_iteration']:.4f} | {fit['log_likelihood']:.6f} | {check} |"
        )
    t, e = p["fits"]["truncated"], p["fits"]["exact"]
    lines += [
        "",
        f"Truncated against exact: log-likelihood {p['relative_log_likelihood_difference']:+.3%} "
        "(relative to exact's); exact / truncated time: whole fit "
        f"{e['fit_seconds'] / t['fit_seconds']:.1f}x, an iteration "
        f"{e['seconds_per_iteration'] / t['seconds_per_iteration']:.1f}x.",
        "",
    ]
    large = results.get("large")
    if large:
        lines += [
            "### Large: N=1M, D=64, K=65,536, diag, float32",
            "",
            large["description"],
            "",
            "| phase | seconds |",
            "|---|---|",
        ]
        lines += [f"| {phase} | {seconds:.2f} |" for phase, seconds in large["phases"].items()]
        lines += [
            "",
            f"Seconds per iteration: **{large['seconds_per_iteration']:.3f}** (best of "
            f"{large['repeats']} after a warm-up; all {len(large['iteration_seconds'])}: "
            + ", ".join(f"{s:.3f}" for s in large["iteration_seconds"])
            + f"). Memory: X is {large['data_mib']:.0f} MiB; the process held "
            f"{large['baseline_rss_mib']:.0f} MiB before making X and {large['rss_before_fit_mib']:.0f} MiB "
            f"(X included) when `fit` began; `fit` added at most {_mib(large['fit_added_peak_mib'])} MiB on "
            f"top of that (peak RSS during `fit` {large['peak_rss_mib']:.0f} MiB). Load average (1, 5, 15 "
            f"min) before the run: {format_load_average(large['load'])}; "
            f"after: {format_load_average(large['load_after'])}.",
            "",
        ]
    return lines
