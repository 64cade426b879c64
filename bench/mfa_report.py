"""The mixture-of-factor-analysers group of the benchmark report, on 8 x 8 grey image patches.

Per EM iteration, from the same start and on the same data:

- FastMFA (diagonal noise),
- the NumPy MFA EM of ``numpy_mfa.py``: the agreement check, its log-likelihood after the same
  iterations must equal FastMFA's to rtol 1e-6 (``agreement.AGREEMENT_RTOL``), or the report fails,
- FastGMM with full covariances and the same K, started from the MFA start's covariances
  ``W W^T + Psi``: timed alongside, not checked (another model, with more parameters).

Every system runs on THREADS thread(s), BLAS included (``factor_systems.py`` says why); FastMFA is
also timed on all threads. Then one whole FastMFA ``fit`` with default settings (k-means
initialisation, ``tol=1e-3``, all threads) and ``max_iter`` bounded gives the final log-likelihood of the
patches, the entropy gap F - S (docs/theory.rst, MFA, zero only at convergence) and the degenerate
components FastMFA warns about.
"""

from __future__ import annotations

import copy
import functools
import re
import time
import warnings
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

import numpy_mfa
import real_data
import systems
import timing
from agreement import AGREEMENT_RTOL, relative_difference
from cases import Case, Start
from fastelbo import FastMFA
from fastelbo.exceptions import HeywoodCaseWarning
from fastelbo.factor import DegenerateComponentWarning

THREADS = 1
SYSTEMS = ("fastelbo", "numpy", "gmm")
LABELS = {"fastelbo": "FastMFA", "numpy": "NumPy MFA EM", "gmm": "FastGMM full"}
CHECKED = ("numpy",)  # FastGMM fits another model: its log-likelihood is shown, not compared
ALL_PATCHES = 531_720  # every overlapping 8 x 8 patch of the two photos (real_data.image_patches)
PATCH_FEATURES = 64


@dataclass(frozen=True)
class MFACase:
    """FastMFA with ``n_components`` components of ``n_factors`` factors and diagonal noise, on
    ``n_samples`` of the patches (all of them, or a random subset); the whole fit stops after at
    most ``fit_max_iter`` iterations."""

    n_samples: int
    n_components: int
    n_factors: int
    fit_max_iter: int
    reg_covar: float = 1e-6  # FastMFA's default floor of the noise variances

    @property
    def id(self) -> str:
        return f"patches-N{self.n_samples}-D{PATCH_FEATURES}-K{self.n_components}-H{self.n_factors}-diag"


# The case: all patches, K=64, H=8. --quick keeps CI's added time to a few seconds.
FULL_CASES = (MFACase(ALL_PATCHES, 64, 8, fit_max_iter=50),)
QUICK_CASES = (MFACase(10_000, 16, 4, fit_max_iter=20),)


def make_data(case: MFACase) -> np.ndarray:
    X = real_data.subsample(real_data.image_patches(), case.n_samples, "patches")
    return np.ascontiguousarray(X, dtype=np.float64)


def initial_estimator(case: MFACase, X: np.ndarray) -> FastMFA:
    """FastMFA initialised (k-means++ seeds, each component the PPCA of its cluster) and not
    iterated: the common start of every system."""
    estimator = FastMFA(
        case.n_components,
        n_factors=case.n_factors,
        reg_covar=case.reg_covar,
        max_iter=0,
        init_params="k-means++",
        random_state=0,
        n_jobs=THREADS,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateComponentWarning)
        return estimator.fit(X)


def gaussian_start(start: FastMFA) -> Start:
    """The MFA start as a Gaussian mixture: the same weights and means, covariances W W^T + Psi."""
    covariances = start.get_covariances().astype(np.float64)
    return Start(
        np.array(start.weights_, dtype=np.float64),
        np.array(start.means_, dtype=np.float64),
        covariances,
        np.linalg.inv(covariances),
    )


def run_iterations(system, case, X, start, n_iter, n_jobs=THREADS) -> float:
    """``n_iter`` EM iterations of ``system`` from the FastMFA ``start`` (``tol=0``); returns the
    mean log-likelihood of the last E-step."""
    # BLAS only: FastMFA and FastGMM take their threads from n_jobs (None: the OpenMP default).
    with warnings.catch_warnings(), threadpool_limits(THREADS, user_api="blas"):
        warnings.simplefilter("ignore")  # non-convergence after n_iter, degenerate components
        if system == "fastelbo":
            model = copy.deepcopy(start).set_params(warm_start=True, max_iter=n_iter, tol=0.0, n_jobs=n_jobs)
            return float(model.fit(X).lower_bound_)
        if system == "numpy":
            parameters = (start.weights_, start.means_, start.components_, start.noise_variance_)
            # FastMFA's floors: reg_covar times each feature's variance.
            floor = case.reg_covar * X.var(axis=0)
            _, log_likelihoods = numpy_mfa.fit(X, *parameters, n_iter, reg_covar=floor)
            return log_likelihoods[-1]
        if system == "gmm":
            gmm_case = Case("full", case.n_samples, PATCH_FEATURES, case.n_components, data="patches")
            gmm_start = gaussian_start(start)
            return systems.run_iterations("fastelbo", gmm_case, X, gmm_start, n_iter, n_jobs=n_jobs)
    raise ValueError(f"unknown system {system!r}")


def n_parameters(case: MFACase) -> dict:
    """Free parameters of each model (what their ``bic`` counts)."""
    K, H, D = case.n_components, case.n_factors, PATCH_FEATURES
    loadings = D * H - H * (H - 1) // 2  # modulo rotations of the factors
    return {"fastelbo": K - 1 + K * (D + loadings + D), "gmm": K - 1 + K * (D + D * (D + 1) // 2)}


def whole_fit(case: MFACase, X: np.ndarray) -> tuple[FastMFA, list[str]]:
    """FastMFA with default settings (all threads among them) and ``max_iter=case.fit_max_iter``;
    returns it and the messages of the DegenerateComponentWarnings and HeywoodCaseWarnings it raised."""
    model = FastMFA(
        case.n_components,
        n_factors=case.n_factors,
        reg_covar=case.reg_covar,
        max_iter=case.fit_max_iter,
        random_state=0,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(X)
    reported = (DegenerateComponentWarning, HeywoodCaseWarning)
    return model, [str(w.message) for w in caught if issubclass(w.category, reported)]


def measure(case_list, repeats, fit_repeats, log):
    return [measure_case(case, repeats, fit_repeats, log) for case in case_list]


def measure_case(case: MFACase, repeats: int, fit_repeats: int, log) -> dict:
    began = time.perf_counter()
    X = make_data(case)
    start = initial_estimator(case, X)
    row = {
        "case": case.id,
        **vars(case),
        "threads": THREADS,
        "seconds_per_iteration": {},
        "measured_iterations": {},
        "log_likelihood": {},
        "errors": {},
        "n_parameters": n_parameters(case),
    }
    for system in SYSTEMS:
        timing.record_seconds_per_iteration(
            row,
            system,
            functools.partial(run_iterations, system, case, X, start),
            repeats,
            log,
            f"  {case.id:<34} ",
        )
    row["fastelbo_all_threads_seconds_per_iteration"] = None
    if "fastelbo" in row["seconds_per_iteration"]:
        all_threads, _, _ = timing.seconds_per_iteration(
            functools.partial(run_iterations, "fastelbo", case, X, start, n_jobs=None), repeats
        )
        row["fastelbo_all_threads_seconds_per_iteration"] = all_threads
        log(f"  {case.id:<34} FastMFA on all threads {all_threads:9.4f} s/iter")
    row["relative_difference"] = _differences(row["log_likelihood"])
    try:
        fit = row["fit"] = measure_fit(case, X, fit_repeats)
        log(
            f"  {case.id:<34} whole fit {fit['seconds']:8.2f} s  n_iter {fit['n_iter']}  "
            f"loglik {fit['log_likelihood']:.10g}  degenerate components {fit['degenerate_components']}"
        )
    except (ValueError, np.linalg.LinAlgError) as error:
        row["fit"], row["errors"]["fit"] = None, str(error)
        log(f"  {case.id:<34} whole fit failed: {error}")
    row["passed"] = _passed(row)
    row["wall_seconds"] = time.perf_counter() - began
    checks = "pass" if row["passed"] else "FAIL"
    log(f"  {case.id:<34} measured in {row['wall_seconds']:.1f} s, checks {checks}")
    return row


def measure_fit(case: MFACase, X: np.ndarray, repeats: int) -> dict:
    seconds, (model, degenerate) = timing.best_time(lambda: whole_fit(case, X), repeats)
    decomposition = model.entropy_decomposition()
    return {
        "seconds": seconds,
        "max_iter": case.fit_max_iter,
        "n_iter": int(model.n_iter_),
        "converged": bool(model.converged_),
        "log_likelihood": float(model.score(X)),  # of the fitted parameters
        "lower_bound": float(model.lower_bound_),  # of the last E-step, before the last M-step
        "relative_gap": float(decomposition.gap / abs(decomposition.elbo)),
        # The warnings name a component on too few points as "component c: <reasons>", one with a
        # noise variance at its floor as "component c feature d"; each component counts once.
        "degenerate_components": len(
            {int(c) for message in degenerate for c in re.findall(r"component (\d+)[: ]", message)}
        ),
        "degenerate_messages": degenerate,
    }


def _differences(log_likelihoods) -> dict:
    """(FastMFA - system) / |system| after the same iterations, for every checked system."""
    ours = log_likelihoods.get("fastelbo")
    if ours is None:
        return {}
    return {
        system: relative_difference(ours, log_likelihoods[system])
        for system in CHECKED
        if system in log_likelihoods
    }


def _passed(row) -> bool:
    differences = row["relative_difference"]
    return (
        set(differences) == set(CHECKED)
        and all(abs(d) <= AGREEMENT_RTOL for d in differences.values())
        and row["fit"] is not None
        and bool(np.isfinite(row["fit"]["log_likelihood"]))
    )


def failed_checks(rows) -> list[str]:
    """Cases where FastMFA gave no finite answer, the NumPy MFA EM gave none to check it against,
    their log-likelihoods after the same iterations differ by more than AGREEMENT_RTOL (NaN
    counts as a difference), or the whole fit's log-likelihood is not finite."""
    return [row["case"] for row in rows if not row["passed"]]


# --- the report section ---------------------------------------------------------------------------


def _seconds(value):
    return "failed" if value is None else f"{value:.4f}"


def _ratio(numerator, denominator):
    return f"{numerator / denominator:.1f}x" if numerator and denominator else "n/a"


def markdown(rows, repeats, fit_repeats) -> list[str]:
    if not rows:
        return []
    lines = [
        "## Mixture of factor analysers: seconds per EM iteration on image patches (same start)",
        "",
        "`patches` are every overlapping 8x8 grey patch of scikit-learn's two sample photos, each "
        "patch's mean removed (531,720 x 64; a random subset in `--quick`), fitted with diagonal noise. "
        "Every system starts from the same FastMFA initialisation (k-means++ seeds, each component the "
        "PPCA of its cluster); FastGMM's full covariances start as that start's `W W^T + Psi`. Each "
        "time is (T(1+m) - T(1)) / m over whole `fit` calls with `tol=0`, each T the best of "
        f"{repeats} after a warm-up (a T over {timing.LONG_RUN_SECONDS:.0f} s is taken once), "
        f"m >= {timing.MEASURED_ITERATIONS}, every system on {THREADS} thread(s), BLAS included; "
        "'all threads' is FastMFA with `n_jobs=None`. Speed-ups are other / FastMFA. 'Δ log-lik' is "
        f"(FastMFA - NumPy) / |NumPy| after 1+{timing.MEASURED_ITERATIONS} iterations, which must be "
        f"within {AGREEMENT_RTOL:g} or the report fails; FastGMM fits another model (its "
        "log-likelihood after as many iterations is shown, not checked). Parameters are the free "
        "parameters `bic` counts.",
        "",
        "| case | FastMFA | all threads | NumPy MFA EM | FastGMM full | vs NumPy | vs FastGMM "
        "| parameters MFA / GMM | Δ log-lik |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        t = row["seconds_per_iteration"]
        ours = t.get("fastelbo")
        difference = row["relative_difference"].get("numpy")
        check = (
            "failed"
            if difference is None
            else f"{difference:+.1e} {'ok' if abs(difference) <= AGREEMENT_RTOL else 'FAIL'}"
        )
        p, all_threads = row["n_parameters"], row["fastelbo_all_threads_seconds_per_iteration"]
        lines.append(
            f"| {row['case']} | {_seconds(ours)} | {_seconds(all_threads)} "
            f"| {_seconds(t.get('numpy'))} | {_seconds(t.get('gmm'))} | {_ratio(t.get('numpy'), ours)} "
            f"| {_ratio(t.get('gmm'), ours)} | {p['fastelbo']:,} / {p['gmm']:,} | {check} |"
        )
    lines += [
        "",
        f"Mean log-likelihoods after 1+{timing.MEASURED_ITERATIONS} iterations from the start:",
        "",
        "| case | " + " | ".join(LABELS[s] for s in SYSTEMS) + " |",
        "|---|" + "---|" * len(SYSTEMS),
    ]
    for row in rows:
        values = [row["log_likelihood"].get(s) for s in SYSTEMS]
        lines.append(
            f"| {row['case']} | " + " | ".join("failed" if v is None else f"{v:.10g}" for v in values) + " |"
        )
    lines += [
        "",
        "### FastMFA whole fit() on the patches",
        "",
        "Default settings (`init_params='kmeans'`, `tol=1e-3`, `random_state=0`, all threads), `max_iter` "
        f"as shown; best of {fit_repeats} (one run over {timing.LONG_RUN_SECONDS:.0f} s). "
        "'log-likelihood' is `score(X)` of the fitted parameters; 'gap' is F - S over |F| of the "
        "latent decomposition (docs/theory.rst, MFA), zero only at convergence; 'degenerate' counts the "
        "components FastMFA's DegenerateComponentWarning or HeywoodCaseWarning names (on fewer than "
        "H + 2 points, or with noise variances at their floor, `reg_covar` times the feature's variance).",
        "",
        "| case | fit s | iterations (max_iter) | mean log-likelihood | gap (F-S)/abs(F) | degenerate |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        fit = row["fit"]
        if fit is None:
            lines.append(f"| {row['case']} | failed | | | | |")
            continue
        converged = "" if fit["converged"] else ", not converged"
        lines.append(
            f"| {row['case']} | {fit['seconds']:.2f} | {fit['n_iter']} ({fit['max_iter']}{converged}) "
            f"| {fit['log_likelihood']:.10g} | {fit['relative_gap']:.1e} | {fit['degenerate_components']} |"
        )
    lines.append("")
    return lines
