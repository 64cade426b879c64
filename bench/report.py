"""One run that measures FastGMM against the NumPy EM, scikit-learn and the machine's GEMM bound, the
factor models (FastPPCA, FastFactorAnalysis) against scikit-learn and NumPy, FastMFA against a
NumPy MFA EM and FastGMM on image patches, truncated variational EM against exact FastGMM, and the
Bernoulli and Poisson mixtures on sparse counts against a SciPy-sparse NumPy EM.

Usage: ``python bench/report.py [--quick] [--repeats R] [--groups GROUP ...] [--components K ...]
[--n-samples N] [--device cuda]`` (groups: gmm factor mfa truncated exponential_family;
``--components`` keeps the exponential-family cases of those K only, ``--n-samples`` sets their N)

Measures, in one process and one run (so the ratios compare like with like):

- seconds per EM iteration from the same start, for every system (see ``seconds_per_iteration``);
- the GEMM bound of each case (``gemm_bound.py`` states the FLOP model);
- full ``fit()`` time with default settings (k-means initialisation, tol=1e-3, max_iter=100);
- peak memory that ``fit`` adds on top of X, each system in a fresh process (``memory_probe.py``);
- FastGMM's speed-up from 1 to 2 threads;
- whole fits of the factor models, their log-likelihoods and the gap of their entropy decomposition
  (``factor_report.py``);
- FastMFA's seconds per EM iteration on 8x8 image patches from the same start as a NumPy MFA EM
  (checked) and FastGMM with full covariances (not checked: another model), and the final
  log-likelihood of a whole FastMFA fit (``mfa_report.py``);
- truncated variational EM (``FastGMM(n_active=5)``) against exact FastGMM: seconds per iteration as
  K grows (plotted), whole fits on image patches at K=1,024 from the same seeding, and (full size
  only) N=1M, K=65,536 in float32 with its peak memory (``truncated_report.py``);
- FastBernoulliMixture and FastPoissonMixture on sparse Zipf counts against a SciPy-sparse NumPy EM
  from the same start: seconds per iteration beside the bound of the iteration's two sparse
  products (``exponential_family_report.py``).

Writes ``report.md``, ``report.json`` and ``time_per_iteration.png`` under ``bench/results/`` (under
``bench/results/quick/`` with ``--quick``; a run of one group writes to a subfolder named after it,
``factor/`` or ``mfa/`` say, with no plot unless it measured the mixtures; the truncated group adds
``truncated_time_per_iteration.png``, the exponential-family group
``exponential_family_time_per_iteration.png``) and prints the Markdown report. Each group's results
are written as soon as the group finishes: ``report.md`` and ``report.json`` then hold every group
finished so far (``completed_groups`` in the JSON; the report says "Partial report" until the last
group is done), so a run stopped by an error or Ctrl-C keeps what it measured. Exits with status 1 if any two
systems disagree on a log-likelihood by more than rtol 1e-6, a factor model misses its rule
(``agreement.meets_rule``), FastMFA and the NumPy MFA EM disagree after the same iterations, or a
truncated fit breaks the invariants of docs/theory.rst (its free energy above the exact log-likelihood, or
histories that do not interleave), so a fast wrong answer cannot win.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import json
import os
import pathlib
import platform
import subprocess
import sys
import time

BENCH_DIR = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import cases  # noqa: E402
import exponential_family_report  # noqa: E402
import factor_cases  # noqa: E402
import factor_report  # noqa: E402
import gemm_bound  # noqa: E402
import mfa_report  # noqa: E402
import systems  # noqa: E402
import timing  # noqa: E402
import truncated_report  # noqa: E402
from agreement import (  # noqa: E402
    AGREEMENT_RTOL,
    FLOAT32_COMPETITOR_RTOL,
    FLOAT64_REFERENCE,
    differences_from_float64,
    float32_case_agrees,
    float64_reference,
    max_relative_disagreement,
)
from timing import (  # noqa: E402
    LONG_RUN_SECONDS,
    MEASURED_ITERATIONS,
    MIN_MEASURED_SECONDS,
    RESOLVED_SHARE,
    best_time,
)

GROUPS = ("gmm", "factor", "mfa", "truncated", "exponential_family")
SYSTEM_LABELS = {"fastelbo": "FastGMM", "numpy": "NumPy EM", "sklearn": "scikit-learn"}


#: Environment variables that change what runs: thread counts, and the instruction sets fastelbo's
#: kernels, NumPy's loops and OpenBLAS use (an AVX2 machine's code paths run on an AVX-512 one).
RECORDED_ENVIRONMENT = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "FASTELBO_CPU",
    "NPY_DISABLE_CPU_FEATURES",
    "NPY_ENABLE_CPU_FEATURES",
    "OPENBLAS_CORETYPE",
)


def environment() -> dict:
    """Thread counts, BLAS, versions and build flags recorded with every result."""
    from threadpoolctl import threadpool_info

    import fastelbo

    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        **cpu_identity(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "fastelbo_build": fastelbo.build_info(),
        "threadpools": [
            {k: pool.get(k) for k in ("user_api", "internal_api", "version", "num_threads", "architecture")}
            for pool in threadpool_info()
        ],
        "env": {k: os.environ[k] for k in RECORDED_ENVIRONMENT if k in os.environ},
    }


def cpu_identity() -> dict:
    """``cpu`` (model name) and ``cpu_vendor`` from /proc/cpuinfo; without it, the model ``platform``
    names and an unknown vendor.

    The vendor matters to the numbers: Intel cores slow down on subnormal floats far more than AMD's.
    """
    fields = {}
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return {
        "cpu": fields.get("model name") or platform.processor() or platform.machine() or "unknown",
        "cpu_vendor": fields.get("vendor_id", "unknown"),
    }


def seconds_per_iteration(system, case, X, start, repeats, **params):
    """``timing.seconds_per_iteration`` of one system of the Gaussian-mixture group: (seconds, m,
    log-likelihood after 1 + MEASURED_ITERATIONS iterations)."""
    return timing.seconds_per_iteration(
        lambda n_iter: systems.run_iterations(system, case, X, start, n_iter, **params), repeats
    )


def measure_iterations(case_list, repeats, log):
    rows = []
    for case in case_list:
        began = time.perf_counter()
        X = cases.make_data(case)
        start = cases.initial_parameters(case, X)
        row = {
            "case": case.id,
            **case.__dict__,
            "seconds_per_iteration": {},
            "measured_iterations": {},
            "log_likelihood": {},
            "errors": {},
        }
        for system in systems.SYSTEMS:
            timing.record_seconds_per_iteration(
                row,
                system,
                functools.partial(systems.run_iterations, system, case, X, start),
                repeats,
                log,
                f"  {case.id:<36} ",
            )
        if case.dtype != "float64":
            row["log_likelihood"][FLOAT64_REFERENCE] = float64_reference(
                case, X, start, 1 + MEASURED_ITERATIONS
            )
        row["gemm_bound"] = gemm_bound.measure(case, repeats=max(repeats, 3))
        row["max_relative_disagreement"] = max_relative_disagreement(row["log_likelihood"].values())
        row["wall_seconds"] = time.perf_counter() - began  # what the case costs the report
        log(f"  {case.id:<36} measured in {row['wall_seconds']:.1f} s")
        rows.append(row)
    return rows


def failed_checks(iteration_rows) -> list[str]:
    """Cases where FastGMM gave no finite answer, nothing independent checked it, or the systems'
    log-likelihoods differ by more than AGREEMENT_RTOL (NaN counts as a difference); float32 cases
    against their float64 reference, by ``agreement.float32_case_agrees``."""
    return [row["case"] for row in iteration_rows if not _agrees(row["log_likelihood"])]


def _agrees(log_likelihoods) -> bool:
    if "fastelbo" not in log_likelihoods or len(log_likelihoods) < 2:
        return False
    if FLOAT64_REFERENCE in log_likelihoods:
        return float32_case_agrees(log_likelihoods)
    return max_relative_disagreement(log_likelihoods.values()) <= AGREEMENT_RTOL


def measure_fits(case_list, repeats, log):
    rows = []
    for case in case_list:
        X = cases.make_data(case)
        row = {"case": case.id, "seconds": {}, "fit": {}}
        for system in systems.FIT_SYSTEMS:
            seconds, result = best_time(
                lambda system=system, case=case, X=X: systems.fit_default(system, case, X), repeats
            )
            row["seconds"][system], row["fit"][system] = seconds, result
            log(f"  {case.id:<36} {system:<9} fit {seconds:8.3f} s  n_iter {result['n_iter']}")
        rows.append(row)
    return rows


def measure_memory(case_list, max_iter, log):
    rows = []
    for case in case_list:
        row = {"case": case.id, "data_mib": case.data_bytes / 2**20, "max_iter": max_iter, "added_mib": {}}
        for system in systems.FIT_SYSTEMS:
            probe_args = [system, json.dumps(vars(case)), str(max_iter)]
            out = subprocess.run(
                [sys.executable, str(BENCH_DIR / "memory_probe.py"), *probe_args],
                check=True,
                capture_output=True,
                text=True,
            )
            probe = json.loads(out.stdout.strip().splitlines()[-1])
            row["added_mib"][system] = probe["added_mib"]
            log(f"  {case.id:<36} {system:<9} fit adds {probe['added_mib']:8.1f} MiB")
        row["budget_mib"] = 0.3 * row["data_mib"] + 150 * 1e6 / 2**20
        rows.append(row)
    return rows


def measure_thread_scaling(case, repeats, log):
    X = cases.make_data(case)
    start = cases.initial_parameters(case, X)
    seconds = {}
    for n_jobs in (1, 2):
        seconds[n_jobs], _, _ = seconds_per_iteration("fastelbo", case, X, start, repeats, n_jobs=n_jobs)
        log(f"  {case.id:<36} n_jobs={n_jobs} {seconds[n_jobs]:9.4f} s/iter")
    return {
        "case": case.id,
        "seconds_per_iteration": {str(n_jobs): t for n_jobs, t in seconds.items()},  # JSON keys
        "speedup": seconds[1] / seconds[2] if seconds[2] > 0 else None,
    }


# --- the report ---------------------------------------------------------------------------------


def _ratio(numerator, denominator):
    return f"{numerator / denominator:.2f}x" if numerator and denominator else "n/a"


def _seconds(value):
    return "failed" if value is None else f"{value:.4f}"


def _fit(seconds, fit):
    return f"{seconds:.3f} ({fit['n_iter']}{'' if fit['converged'] else ', not converged'})"


def markdown(results) -> str:
    env = results["environment"]
    build = env["fastelbo_build"]
    blas = [p for p in env["threadpools"] if p["user_api"] == "blas"]
    lines = [
        f"# fastelbo benchmark ({'quick' if results['quick'] else 'full'} run, {env['date']})",
        "",
        f"Machine: {env['cpu']} ({env['cpu_vendor']}), {env['cpu_count']} CPUs. Python {env['python']}, "
        f"NumPy {build['numpy']}, "
        f"scikit-learn {build['scikit_learn']}, fastelbo {build['version']} ({build['compiler']}, "
        f"CPU target: {build.get('cpu_target', 'not recorded')}, "
        f"SIMD: {build['simd']}, OpenMP threads: "
        f"{build['openmp_max_threads']}). BLAS: "
        + ", ".join(f"{p['internal_api']} {p['version']} ({p['num_threads']} threads)" for p in blas)
        + ".",
        "",
    ]
    if env.get("env"):  # after the machine's line, in its paragraph
        settings = ", ".join(f"{k}={v!r}" for k, v in env["env"].items())
        lines[-1:-1] = [f"Set in the environment: {settings}."]
    missing = [
        group for group in results.get("groups", []) if group not in results.get("completed_groups", [])
    ]
    if missing:
        lines += [
            f"**Partial report**: {', '.join(missing)} not measured (yet): the run stopped, or is still "
            f"running. Measured: {', '.join(results['completed_groups']) or 'nothing'}.",
            "",
        ]
    if "iterations" in results:
        lines += _gmm_sections(results)
    lines += factor_report.markdown(results.get("factor_fits", []), results["fit_repeats"])
    lines += mfa_report.markdown(results.get("mfa", []), results["repeats"], results["fit_repeats"])
    lines += truncated_report.markdown(results.get("truncated"))
    lines += exponential_family_report.markdown(results.get("exponential_family"), results["repeats"])
    return "\n".join(lines)


def _gmm_sections(results) -> list[str]:
    lines = [
        "Data (the prefix of each case): `sepS` is a synthetic Gaussian mixture whose mean coordinates "
        "are spread S within-component standard deviations (3: well separated, the usual case, where "
        "most responsibilities are tiny and many underflow; 0.3: heavily overlapping); `patches` are "
        "grey 8x8 patches of scikit-learn's two sample photos with each patch's mean removed, a random "
        "subset of all the overlapping ones (`bench/real_data.py`); `digits` is scikit-learn's digits "
        "(1797 x 64), what `python -m fastelbo demo` fits.",
        "",
        "## Seconds per EM iteration (same data, same start)",
        "",
        "Each time is (T(1+m) - T(1)) / m over whole `fit` calls with `tol=0`, each T the best of "
        f"{results['repeats']} after a warm-up (a T over {LONG_RUN_SECONDS:.0f} s is taken once), "
        f"m >= {MEASURED_ITERATIONS} chosen so the m iterations take "
        f"about {MIN_MEASURED_SECONDS} s and at least {RESOLVED_SHARE:.0%} of T(1+m) (recorded in the "
        "JSON). The log-likelihoods compared are those "
        f"after 1+{MEASURED_ITERATIONS} iterations; float32 cases are also checked against a float64 NumPy "
        "EM on the same data. Speed-ups are other / FastGMM; "
        "'vs bound' is FastGMM / GEMM bound (1.00x = as fast as NumPy's BLAS does the minimum products; "
        "FLOP model in `bench/gemm_bound.py`). 'agree' is the largest relative difference of the "
        f"systems' log-likelihoods, which must be within {AGREEMENT_RTOL:g}; for float32 cases, "
        "FastGMM's difference from the float64 NumPy EM, which must be within "
        f"{AGREEMENT_RTOL:g}, and the float32 competitors' largest, which must be within "
        f"{FLOAT32_COMPETITOR_RTOL:g} (their round-off is their own; `bench/agreement.py`).",
        "",
        "| case | FastGMM | NumPy EM | scikit-learn | vs NumPy | vs sklearn | GEMM bound | vs bound "
        "| FastGMM GFLOP/s | agree |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in results["iterations"]:
        t = row["seconds_per_iteration"]
        ours, bound = t.get("fastelbo"), row["gemm_bound"]["seconds"]
        gflops = f"{row['gemm_bound']['flops'] / ours / 1e9:.0f}" if ours else "n/a"
        agree = _agreement_cell(row["log_likelihood"], row["max_relative_disagreement"])
        lines.append(
            f"| {row['case']} | {_seconds(ours)} | {_seconds(t.get('numpy'))} | {_seconds(t.get('sklearn'))} "
            f"| {_ratio(t.get('numpy'), ours)} | {_ratio(t.get('sklearn'), ours)} | {bound:.4f} "
            f"| {_ratio(ours, bound)} | {gflops} | {agree} |"
        )
    lines += [
        "",
        "### float32 against float64 (FastGMM)",
        "",
        "| case | float64 | float32 | speed-up |",
        "|---|---|---|---|",
    ]
    by_id = {row["case"]: row for row in results["iterations"]}
    for row in results["iterations"]:
        if row["dtype"] == "float32":
            twin = by_id.get(row["case"].replace("float32", "float64"))
            if twin:
                f64 = twin["seconds_per_iteration"].get("fastelbo")
                f32 = row["seconds_per_iteration"].get("fastelbo")
                lines.append(
                    f"| {twin['case'][:-8]} | {_seconds(f64)} | {_seconds(f32)} | {_ratio(f64, f32)} |"
                )
    lines += [
        "",
        "## Whole fit() with default settings",
        "",
        "`init_params='kmeans'`, `tol=1e-3`, `max_iter=100`, `random_state=0`; each library uses its own "
        f"k-means, so iteration counts may differ. Best of {results['fit_repeats']} (one run when it "
        f"takes over {LONG_RUN_SECONDS:.0f} s).",
        "",
        "| case | FastGMM s (n_iter) | scikit-learn s (n_iter) | speed-up |",
        "|---|---|---|---|",
    ]
    for row in results["fits"]:
        s, f = row["seconds"], row["fit"]
        lines.append(
            f"| {row['case']} | {_fit(s['fastelbo'], f['fastelbo'])} | {_fit(s['sklearn'], f['sklearn'])} "
            f"| {_ratio(s['sklearn'], s['fastelbo'])} |"
        )
    lines += [
        "",
        "## Memory that fit() adds on top of X",
        "",
        "Peak RSS during `fit` minus RSS just before it, each system in a fresh process "
        "(`bench/memory_probe.py`), default settings with `max_iter` as shown.",
        "",
        "| case | X MiB | max_iter | FastGMM MiB | budget 0.3 X + 150 MB | scikit-learn MiB |",
        "|---|---|---|---|---|---|",
    ]
    for row in results["memory"]:
        a = row["added_mib"]
        lines.append(
            f"| {row['case']} | {row['data_mib']:.0f} | {row['max_iter']} | {a['fastelbo']:.0f} "
            f"| {row['budget_mib']:.0f} | {a['sklearn']:.0f} |"
        )
    scaling = results["thread_scaling"]
    t = scaling["seconds_per_iteration"]
    lines += [
        "",
        "## Threads",
        "",
        f"{scaling['case']}: {t['1']:.4f} s/iter with `n_jobs=1`, {t['2']:.4f} with `n_jobs=2`: "
        f"{_ratio(t['1'], t['2'])}.",
        "",
    ]
    return lines


def _agreement_cell(log_likelihoods, disagreement) -> str:
    if FLOAT64_REFERENCE not in log_likelihoods:
        return f"{disagreement:.1e}"
    differences = differences_from_float64(log_likelihoods)
    ours = differences.pop("fastelbo", float("nan"))
    others = f"{max(differences.values()):.1e}" if differences else "n/a"
    return f"ours {ours:.1e}, others {others} (vs float64)"


def plot(results, path):
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = {}
    for row in results["iterations"]:
        # Cases that differ only in K: the case id without its K field.
        key = tuple(field for field in row["case"].split("-") if not field.startswith("K"))
        families.setdefault(key, []).append(row)
    families = {k: v for k, v in families.items() if len(v) > 1}
    fig, axes = plt.subplots(1, len(families), figsize=(5.5 * len(families), 4.2), squeeze=False)
    for ax, (key, rows) in zip(axes[0], families.items(), strict=True):
        rows.sort(key=lambda r: r["n_components"])
        ks = [r["n_components"] for r in rows]
        for system in systems.SYSTEMS:
            ks_ok = [r["n_components"] for r in rows if system in r["seconds_per_iteration"]]
            ts = [r["seconds_per_iteration"][system] for r in rows if system in r["seconds_per_iteration"]]
            ax.plot(ks_ok, ts, "o-", label=SYSTEM_LABELS[system])
        ax.plot(ks, [r["gemm_bound"]["seconds"] for r in rows], "k--", label="GEMM bound")
        ax.set(xscale="log", yscale="log", xlabel="K (components)", ylabel="seconds per EM iteration")
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_title(", ".join(key))
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _write_text(path: pathlib.Path, text: str) -> None:
    """Replaces ``path`` with ``text`` at once: a run killed while writing leaves the previous file."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    os.replace(partial, path)


def write_results(results, out_dir: pathlib.Path, plots=()) -> list[str]:
    """Writes ``report.md`` and ``report.json`` with everything in ``results`` (the groups measured so
    far) and the plots of the groups in ``plots`` that drew one; returns the names of the files in
    ``out_dir`` that hold this run's results."""
    _write_text(out_dir / "report.md", markdown(results) + "\n")
    _write_text(out_dir / "report.json", json.dumps(results, indent=2) + "\n")
    if "gmm" in plots and "iterations" in results:
        plot(results, out_dir / "time_per_iteration.png")
    if "truncated" in plots and results.get("truncated"):
        truncated_report.plot(results["truncated"], out_dir / truncated_report.PLOT_NAME)
    if "exponential_family" in plots and results.get("exponential_family"):
        exponential_family_report.plot(
            results["exponential_family"], out_dir / exponential_family_report.PLOT_NAME
        )
    names = ["report.md", "report.json"]
    if "iterations" in results:
        names.append("time_per_iteration.png")
    if results.get("truncated"):
        names.append(truncated_report.PLOT_NAME)
    if results.get("exponential_family"):
        names.append(exponential_family_report.PLOT_NAME)
    return names


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes; about a minute and a half")
    parser.add_argument("--repeats", type=int, default=None, help="best-of repetitions (default 3, quick 1)")
    parser.add_argument("--output", type=pathlib.Path, default=None, help="results folder")
    parser.add_argument(
        "--groups",
        nargs="+",
        choices=GROUPS,
        default=list(GROUPS),
        help="what to measure: the Gaussian mixtures, the factor models, the mixture of factor analysers, "
        "truncated variational EM, Bernoulli and Poisson mixtures on sparse counts (default: all five)",
    )
    parser.add_argument(
        "--components",
        type=int,
        nargs="+",
        default=None,
        help="exponential_family group: measure only the cases with these K (default: all)",
    )
    parser.add_argument(
        "--n-samples",
        type=int,
        default=None,
        help="exponential_family group: the cases' N (default 100,000; the data keep their density)",
    )
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="cuda: FastGMM on the GPU against scikit-learn's array-API path, a PyTorch EM and the CPU "
        "(gpu_report.py; writes to --output, default results/gpu)",
    )
    args = parser.parse_args(argv)
    if args.device == "cuda":
        import gpu_report

        out = args.output or BENCH_DIR / "results" / "gpu"
        gpu_report.main(["--out", str(out)] + (["--quick"] if args.quick else []))
        return 0
    quick = args.quick
    # --quick is CI's check that every case runs and agrees: one timing each keeps it short.
    repeats = args.repeats or (1 if quick else 3)
    groups = [group for group in GROUPS if group in args.groups]
    # A run of some groups only does not overwrite the whole report's results.
    partial = "" if len(groups) == len(GROUPS) else "-".join(groups)
    out_dir = args.output or BENCH_DIR / "results" / ("quick" if quick else "") / partial
    out_dir.mkdir(parents=True, exist_ok=True)

    def log(message):
        print(message, file=sys.stderr, flush=True)

    started = time.perf_counter()
    results = {"quick": quick, "repeats": repeats, "fit_repeats": repeats if quick else 2}
    results["groups"], results["completed_groups"] = groups, []
    results["environment"] = environment()
    written = []

    def group_done(group):
        """Writes everything measured so far, so that a run stopped later leaves it on disk."""
        results["completed_groups"].append(group)
        results["wall_seconds"] = time.perf_counter() - started
        written[:] = write_results(results, out_dir, plots=(group,))
        log(f"{group} done: the results so far are in {out_dir} ({', '.join(written)})")

    try:
        if "gmm" in groups:
            log("seconds per iteration:")
            results["iterations"] = measure_iterations(
                cases.QUICK_ITERATION_CASES if quick else cases.FULL_ITERATION_CASES, repeats, log
            )
            log("whole fit():")
            results["fits"] = measure_fits(
                cases.QUICK_FIT_CASES if quick else cases.FULL_FIT_CASES, results["fit_repeats"], log
            )
            log("memory:")
            results["memory"] = measure_memory(
                cases.QUICK_MEMORY_CASES if quick else cases.FULL_MEMORY_CASES, 3, log
            )
            log("threads:")
            results["thread_scaling"] = measure_thread_scaling(
                cases.QUICK_SCALING_CASE if quick else cases.FULL_SCALING_CASE, repeats, log
            )
            group_done("gmm")
        if "factor" in groups:
            log("factor models, whole fit():")
            factor_started = time.perf_counter()
            results["factor_fits"] = factor_report.measure(
                factor_cases.QUICK_CASES if quick else factor_cases.FULL_CASES, results["fit_repeats"], log
            )
            results["factor_wall_seconds"] = time.perf_counter() - factor_started
            group_done("factor")
        if "mfa" in groups:
            log("mixture of factor analysers, seconds per iteration and whole fit():")
            mfa_started = time.perf_counter()
            results["mfa"] = mfa_report.measure(
                mfa_report.QUICK_CASES if quick else mfa_report.FULL_CASES,
                repeats,
                results["fit_repeats"],
                log,
            )
            results["mfa_wall_seconds"] = time.perf_counter() - mfa_started
            group_done("mfa")
        if "truncated" in groups:
            log("truncated variational EM against exact FastGMM:")
            # Best of 7 at full size: the truncated times are tens of milliseconds on a shared machine.
            results["truncated"] = truncated_report.measure(quick, args.repeats or (1 if quick else 7), log)
            group_done("truncated")
        if "exponential_family" in groups:
            log("Bernoulli and Poisson mixtures on sparse counts, seconds per iteration:")
            ef_started = time.perf_counter()
            ef = exponential_family_report
            ef_cases = ef.QUICK_CASES if quick else ef.FULL_CASES
            if args.components:
                ef_cases = [case for case in ef_cases if case.n_components in args.components]
            if args.n_samples:
                ef_cases = [dataclasses.replace(case, n_samples=args.n_samples) for case in ef_cases]
            results["exponential_family"] = exponential_family_report.measure(ef_cases, repeats, log)
            results["exponential_family_wall_seconds"] = time.perf_counter() - ef_started
            group_done("exponential_family")
    except BaseException as stop:  # an error, or Ctrl-C: what the finished groups measured stays
        done = results["completed_groups"]
        kept = f"the results of {', '.join(done)} are in {out_dir}" if done else "no group had finished"
        log(f"stopped ({type(stop).__name__}) before {groups[len(done)]} finished: {kept}")
        raise

    print(markdown(results))
    log(f"wrote {', '.join(written)} to {out_dir} in {results['wall_seconds']:.0f} s")

    failed = all_failed_checks(results)
    if failed:
        log(f"FAILED (a fastelbo failure, or disagreement beyond rtol {AGREEMENT_RTOL}): {', '.join(failed)}")
        return 1
    return 0


def all_failed_checks(results) -> list[str]:
    """The cases of every measured group that fail their agreement check (``failed_checks``,
    ``factor_report.failed_checks``, ``mfa_report.failed_checks``, ``truncated_report.failed_checks``)."""
    return (
        failed_checks(results.get("iterations", []))
        + factor_report.failed_checks(results.get("factor_fits", []))
        + mfa_report.failed_checks(results.get("mfa", []))
        + truncated_report.failed_checks(results.get("truncated"))
        + exponential_family_report.failed_checks(results.get("exponential_family"))
    )


if __name__ == "__main__":
    sys.exit(main())
