"""The benchmark report's agreement checks: a fast wrong answer, or a FastGMM or factor-model failure,
fails the run."""

import json
import pathlib
import sys
import warnings

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "bench"))
import factor_cases  # noqa: E402
import factor_report  # noqa: E402
import factor_systems  # noqa: E402
import mfa_report  # noqa: E402
import report  # noqa: E402
import systems  # noqa: E402
from cases import Case  # noqa: E402
from factor_cases import FactorCase  # noqa: E402
from fastelbo import FastFactorAnalysis, FastGMM, FastMFA, FastPPCA  # noqa: E402
from mfa_report import MFACase  # noqa: E402

TINY = (Case("full", 400, 3, 2), Case("diag", 400, 3, 2, "float32"), Case("diag", 400, 3, 2, separation=0.3))


def _quiet(message):
    pass


def test_report_measures_every_system_and_they_agree():
    rows = report.measure_iterations(TINY, repeats=1, log=_quiet)
    assert report.failed_checks(rows) == []
    for row in rows:
        assert set(row["log_likelihood"]) >= set(systems.SYSTEMS)
        assert all(seconds >= 0 for seconds in row["seconds_per_iteration"].values())
        assert row["max_relative_disagreement"] <= report.AGREEMENT_RTOL
    assert report.FLOAT64_REFERENCE in rows[1]["log_likelihood"]


def test_a_fast_wrong_answer_fails_the_report(monkeypatch):
    honest = systems.run_iterations

    def slightly_wrong(system, *args, **kwargs):
        value = honest(system, *args, **kwargs)
        return value * (1 + 1e-5) if system == "fastelbo" else value

    monkeypatch.setattr(systems, "run_iterations", slightly_wrong)
    rows = report.measure_iterations(TINY[:1], repeats=1, log=_quiet)
    assert report.failed_checks(rows) == [TINY[0].id]


@pytest.mark.parametrize(
    ("system", "error", "fails"),
    [("numpy", 5e-6, False), ("sklearn", 5e-6, False), ("numpy", 2e-5, True), ("fastelbo", 5e-6, True)],
)
def test_float32_cases_hold_fastelbo_to_the_float64_answer_and_competitors_to_their_round_off(
    monkeypatch, system, error, fails
):
    """A float32 competitor's own round-off (1.9e-6 measured) does not fail the report; FastGMM's
    float32 answer off by as much does, and so does a competitor off by more than round-off."""
    honest = systems.run_iterations

    def shifted(name, case, X, *args, **kwargs):
        value = honest(name, case, X, *args, **kwargs)
        return value * (1 + error) if name == system and X.dtype == np.float32 else value

    monkeypatch.setattr(systems, "run_iterations", shifted)
    case = TINY[1]
    rows = report.measure_iterations([case], repeats=1, log=_quiet)
    assert report.FLOAT64_REFERENCE in rows[0]["log_likelihood"]
    assert report.failed_checks(rows) == ([case.id] if fails else [])
    results = {"repeats": 1, "fit_repeats": 1, "iterations": rows, "fits": [], "memory": []}
    results["thread_scaling"] = {"case": case.id, "seconds_per_iteration": {"1": 0.0, "2": 0.0}}
    assert "(vs float64) |" in "\n".join(report._gmm_sections(results))


@pytest.mark.parametrize("failure", ["raises", "nan"])
def test_a_fastelbo_failure_fails_the_report(monkeypatch, failure):
    honest = systems.run_iterations

    def broken(system, *args, **kwargs):
        if system == "fastelbo":
            if failure == "raises":
                raise ValueError("broken")
            return float("nan")
        return honest(system, *args, **kwargs)

    monkeypatch.setattr(systems, "run_iterations", broken)
    rows = report.measure_iterations(TINY[:1], repeats=1, log=_quiet)
    assert report.failed_checks(rows) == [TINY[0].id]
    # The table still renders, marking the failure, so the report says what went wrong.
    results = {"repeats": 1, "fit_repeats": 1, "iterations": rows, "fits": [], "memory": []}
    results["thread_scaling"] = {"case": TINY[0].id, "seconds_per_iteration": {"1": 0.0, "2": 0.0}}
    table = "\n".join(report._gmm_sections(results))
    assert f"| {TINY[0].id} | failed |" in table and "n_jobs=2`: n/a." in table


class FakeClock:
    """A perf_counter that advances only when the fake EM runs: a fixed set-up that jitters by more
    than a few iterations cost, then ``per_iteration`` seconds per iteration."""

    def __init__(self, set_up, jitter, per_iteration):
        self.now, self.calls = 0.0, 0
        self.set_up, self.jitter, self.per_iteration = set_up, jitter, per_iteration

    def perf_counter(self):
        return self.now

    def run(self, n_iter):
        self.calls += 1
        self.now += self.set_up + self.jitter * (-1) ** self.calls + self.per_iteration * n_iter
        return -1.0


def test_iterations_lost_in_jitter_are_measured_with_more_of_them(monkeypatch):
    import timing

    # Set-up 50 ms jittering by 5 ms; an iteration costs 0.1 ms: 3 (or the warm-up's guess of 100)
    # iterations are within the jitter, so T(1 + m) - T(1) could even come out negative.
    clock = FakeClock(set_up=0.05, jitter=0.005, per_iteration=1e-4)
    monkeypatch.setattr(timing.time, "perf_counter", clock.perf_counter)
    seconds, n_iter, _ = timing.seconds_per_iteration(clock.run, repeats=1)
    assert n_iter > 100
    assert seconds == pytest.approx(1e-4, rel=0.2)


def test_an_evaluation_outside_the_timed_calls_adds_nothing_to_them(monkeypatch):
    import timing

    # Fits of 1 s set-up and 4 s per iteration, each followed by an evaluation that takes 30 s: inside
    # the calls it would push every T past LONG_RUN_SECONDS (one call each) and add its jitter.
    clock = FakeClock(set_up=1.0, jitter=0.0, per_iteration=4.0)
    evaluated, timed_calls = [], []

    def run(n_iter):
        clock.run(n_iter)
        timed_calls.append(n_iter)
        return ("fitted after", n_iter)

    def evaluate(fitted):
        clock.now += 30.0
        evaluated.append(fitted)
        return -2.0

    monkeypatch.setattr(timing.time, "perf_counter", clock.perf_counter)
    calls = {}
    seconds, n_iter, log_likelihood = timing.seconds_per_iteration(
        run, repeats=3, evaluate=evaluate, calls=calls
    )
    assert (seconds, n_iter, log_likelihood) == (4.0, timing.MEASURED_ITERATIONS, -2.0)
    assert evaluated == [("fitted after", 1 + timing.MEASURED_ITERATIONS)]
    # The warm-up, then the best of 3 of T(1) and of T(1 + m): none of the calls exceeded the limit.
    assert timed_calls == [1] * 4 + [1 + timing.MEASURED_ITERATIONS] * 3
    assert calls == {"warm-up": [5.0], "1": [5.0] * 3, "4": [17.0] * 3}
    assert timing.format_calls(calls) == "T(1) 5.00 5.00 5.00 | T(4) 17.00 17.00 17.00"


def test_a_long_run_limit_of_the_callers_decides_which_calls_are_repeated(monkeypatch):
    import timing

    # T(1) 21 s and T(4) 81 s: over timing's 20 s each is taken once, under a limit of 100 s three times.
    monkeypatch.setattr(timing.time, "perf_counter", (clock := FakeClock(1.0, 0.0, 20.0)).perf_counter)
    for limit, repeated in ((timing.LONG_RUN_SECONDS, 1), (100.0, 3)):
        calls = {}
        seconds, _, _ = timing.seconds_per_iteration(
            clock.run, repeats=3, calls=calls, long_run_seconds=limit
        )
        assert calls == {"warm-up": [21.0], "1": [21.0] * repeated, "4": [81.0] * repeated}
        assert seconds == 20.0


def test_a_given_m_is_timed_as_it_is(monkeypatch):
    import timing

    # The clock of the test above would grow m past 100; a given m of 12 is kept (T(1) and T(13)).
    clock = FakeClock(set_up=0.05, jitter=0.005, per_iteration=1e-4)
    monkeypatch.setattr(timing.time, "perf_counter", clock.perf_counter)
    calls = {}
    _, n_iter, _ = timing.seconds_per_iteration(clock.run, repeats=2, calls=calls, iterations=12)
    assert n_iter == 12
    assert list(calls) == ["warm-up", "1", "13"]


def test_exponential_family_systems_are_timed_over_the_same_iterations(monkeypatch):
    import exponential_family_report as ef
    import timing

    # fastelbo's first iteration outweighs its later ones, so its m grows (to 12, say); the NumPy
    # EM is then timed over iterations 2-13 as well.
    given = []

    def seconds_per_iteration(run, repeats, evaluate, calls, long_run_seconds, iterations):
        given.append(iterations)
        return 1.0, 12 if iterations is None else iterations, -1.0

    monkeypatch.setattr(timing, "seconds_per_iteration", seconds_per_iteration)
    monkeypatch.setattr(ef.gemm_bound_sparse, "measure", lambda *args, **kwargs: {})
    row = ef.measure_case(ef.QUICK_CASES[0], 1, _quiet)
    assert given == [None, 12]
    assert row["measured_iterations"] == {"fastelbo": 12, "numpy": 12}


def test_report_measures_real_patches():
    pytest.importorskip("PIL")  # scikit-learn reads its sample photos with Pillow
    rows = report.measure_iterations([Case("full", 400, 64, 2, data="patches")], repeats=1, log=_quiet)
    assert report.failed_checks(rows) == []
    assert set(rows[0]["log_likelihood"]) >= set(systems.SYSTEMS)


def test_report_names_the_cpu_and_marks_failed_systems(monkeypatch):
    honest = systems.run_iterations

    def sklearn_breaks(system, *args, **kwargs):
        if system == "sklearn":
            raise ValueError("ill-defined empirical covariance")
        return honest(system, *args, **kwargs)

    monkeypatch.setattr(systems, "run_iterations", sklearn_breaks)
    results = {
        "quick": True,
        "repeats": 1,
        "environment": report.environment(),
        "iterations": report.measure_iterations(TINY[:1], repeats=1, log=_quiet),
        "fit_repeats": 1,
        "fits": report.measure_fits(TINY[:1], repeats=1, log=_quiet),
        "memory": [],
        "thread_scaling": report.measure_thread_scaling(TINY[0], repeats=1, log=_quiet),
        "factor_fits": factor_report.measure(TINY_FACTOR[:1], repeats=1, log=_quiet),
    }
    cpu = report.cpu_identity()
    assert cpu["cpu"] and cpu["cpu_vendor"]
    text = report.markdown(results)
    assert f"Machine: {cpu['cpu']} ({cpu['cpu_vendor']})" in text
    assert f"| {TINY[0].id} |" in text and "| failed |" in text
    assert f"| {TINY_FACTOR[0].id} | FastPPCA (eigh) |" in text
    # FastGMM against the NumPy EM is still an independent check.
    assert report.all_failed_checks(results) == []


def test_cpu_identity_falls_back_without_proc_cpuinfo(monkeypatch):
    def no_cpuinfo(*args, **kwargs):
        raise FileNotFoundError("/proc/cpuinfo")

    monkeypatch.setattr("builtins.open", no_cpuinfo)
    cpu = report.cpu_identity()
    assert cpu["cpu"] and cpu["cpu_vendor"] == "unknown"


# --- the factor-model group ---------------------------------------------------------------------

TINY_FACTOR = (
    FactorCase("ppca", 300, 6, 2),
    FactorCase("ppca", 569, 30, 3, data="breast_cancer"),
    FactorCase("fa", 300, 6, 2),
)


@pytest.fixture
def one_timing_per_fit(monkeypatch):
    """Short fits are timed once more, not SHORT_FIT_REPEATS times: the tests check results, not speed."""
    monkeypatch.setattr(factor_report, "SHORT_FIT_REPEATS", 1)


def _shift_fastelbo(monkeypatch, relative):
    """Moves fastelbo's mean log-likelihood by ``relative`` times its magnitude, as a wrong answer would."""
    honest = factor_systems.describe

    def shifted(estimator, X):
        result = honest(estimator, X)
        if isinstance(estimator, (FastPPCA, FastFactorAnalysis)):
            result["log_likelihood"] += relative * abs(result["log_likelihood"])
        return result

    monkeypatch.setattr(factor_systems, "describe", shifted)


def test_factor_group_fits_every_system_and_the_checks_pass(one_timing_per_fit):
    rows = factor_report.measure(TINY_FACTOR, repeats=1, log=_quiet)
    assert factor_report.failed_checks(rows) == []
    for row in rows:
        model = factor_systems.MODELS[row["model"]]
        assert set(row["systems"]) == {system.name for system in model.systems}
        assert set(row["relative_difference"]) == {s.name for s in model.systems[1:] if s.checked}
        assert all(result["seconds"] > 0 for result in row["systems"].values())
        decomposition = row["systems"]["fastelbo"]["decomposition"]
        assert decomposition["gap"] == pytest.approx(decomposition["elbo"] - decomposition["entropy_sum"])
    ppca = rows[0]
    assert max(abs(d) for d in ppca["relative_difference"].values()) <= report.AGREEMENT_RTOL
    # The closed form is a stationary point: F = S (docs/theory.rst, factor models).
    assert abs(ppca["systems"]["fastelbo"]["decomposition"]["relative_gap"]) <= 1e-9
    fa = rows[2]["systems"]
    assert fa["fastelbo"]["n_iter"] >= 1 and fa["sklearn"]["n_iter"] >= 1 and fa["numpy"]["n_iter"] >= 1


@pytest.mark.parametrize("relative", [-1e-3, 1e-3])
def test_a_wrong_factor_log_likelihood_fails_the_report(monkeypatch, one_timing_per_fit, relative):
    # 1e-3: beyond the honest differences of these tiny fits (EM stopping at tol=1e-2 differs by 1e-5).
    _shift_fastelbo(monkeypatch, relative)
    rows = factor_report.measure(TINY_FACTOR[::2], repeats=1, log=_quiet)
    # A closed form must equal the others both ways; EM may beat them but not fall short.
    expected = [TINY_FACTOR[0].id, TINY_FACTOR[2].id] if relative < 0 else [TINY_FACTOR[0].id]
    assert factor_report.failed_checks(rows) == expected


def test_a_fastelbo_factor_failure_fails_the_report(monkeypatch, one_timing_per_fit):
    honest = factor_systems.fit

    def broken(system, case, X):
        if system.name == "fastelbo":
            raise ValueError("broken")
        return honest(system, case, X)

    monkeypatch.setattr(factor_systems, "fit", broken)
    rows = factor_report.measure(TINY_FACTOR[:1], repeats=1, log=_quiet)
    assert factor_report.failed_checks(rows) == [TINY_FACTOR[0].id]
    assert rows[0]["errors"] == {"fastelbo": "broken"} and {"sklearn", "numpy"} <= set(rows[0]["systems"])
    assert f"| {TINY_FACTOR[0].id} | FastPPCA (eigh) | failed |" in "\n".join(factor_report.markdown(rows, 1))


def test_factor_only_report_writes_its_tables_and_exit_status(
    monkeypatch, tmp_path, one_timing_per_fit, capsys
):
    monkeypatch.setattr(factor_cases, "QUICK_CASES", TINY_FACTOR)
    assert report.main(["--quick", "--groups", "factor", "--output", str(tmp_path)]) == 0
    text = (tmp_path / "report.md").read_text()
    assert "## Factor models" in text and "## Seconds per EM iteration" not in text
    for case in TINY_FACTOR:
        assert f"| {case.id} | {factor_systems.MODELS[case.model].label} |" in text
    results = json.loads((tmp_path / "report.json").read_text())
    assert [row["case"] for row in results["factor_fits"]] == [case.id for case in TINY_FACTOR]
    assert "iterations" not in results and not (tmp_path / "time_per_iteration.png").exists()
    assert results["completed_groups"] == results["groups"] == ["factor"] and "Partial report" not in text

    _shift_fastelbo(monkeypatch, -1e-3)
    assert report.main(["--quick", "--groups", "factor", "--output", str(tmp_path)]) == 1
    capsys.readouterr()


# --- a run that stops ---------------------------------------------------------------------------


@pytest.mark.parametrize("stop", [RuntimeError("the MFA group broke"), KeyboardInterrupt()])
def test_a_stopped_run_keeps_the_groups_it_finished(monkeypatch, tmp_path, one_timing_per_fit, capsys, stop):
    """Each group's results are on disk as soon as the group finishes: a later group that raises (or
    Ctrl-C during it) leaves them there, in a report marked partial."""
    monkeypatch.setattr(factor_cases, "QUICK_CASES", TINY_FACTOR[:1])
    on_disk_while_mfa_ran = {}

    def mfa_stops(*args, **kwargs):
        on_disk_while_mfa_ran["json"] = json.loads((tmp_path / "report.json").read_text())
        on_disk_while_mfa_ran["md"] = (tmp_path / "report.md").read_text()
        raise stop

    monkeypatch.setattr(mfa_report, "measure", mfa_stops)
    with pytest.raises(type(stop)):
        report.main(["--quick", "--groups", "factor", "mfa", "--output", str(tmp_path)])

    results = json.loads((tmp_path / "report.json").read_text())
    assert results == on_disk_while_mfa_ran["json"]
    assert results["groups"] == ["factor", "mfa"] and results["completed_groups"] == ["factor"]
    assert [row["case"] for row in results["factor_fits"]] == [TINY_FACTOR[0].id] and "mfa" not in results
    text = (tmp_path / "report.md").read_text()
    assert text == on_disk_while_mfa_ran["md"]
    assert f"| {TINY_FACTOR[0].id} | FastPPCA (eigh) |" in text
    assert "## Mixture of factor analysers" not in text
    assert "**Partial report**: mfa not measured (yet)" in text and "Measured: factor." in text
    assert sorted(path.name for path in tmp_path.iterdir()) == ["report.json", "report.md"]  # no .partial
    stderr = capsys.readouterr().err
    assert f"factor done: the results so far are in {tmp_path} (report.md, report.json)" in stderr
    stopped = f"stopped ({type(stop).__name__}) before mfa finished: the results of factor are in {tmp_path}"
    assert stopped in stderr


def test_a_run_stopped_in_its_first_group_says_so(monkeypatch, tmp_path, capsys):
    def factor_stops(*args, **kwargs):
        raise RuntimeError("the factor group broke")

    monkeypatch.setattr(factor_report, "measure", factor_stops)
    with pytest.raises(RuntimeError):
        report.main(["--quick", "--groups", "factor", "--output", str(tmp_path)])
    assert not (tmp_path / "report.json").exists()
    assert "stopped (RuntimeError) before factor finished: no group had finished" in capsys.readouterr().err


def test_the_report_marks_the_groups_not_measured():
    results = {
        "quick": True,
        "repeats": 1,
        "fit_repeats": 1,
        "environment": report.environment(),
        "groups": ["gmm", "factor", "mfa"],
        "completed_groups": [],
    }
    assert "**Partial report**: gmm, factor, mfa not measured (yet)" in report.markdown(results)
    assert "Measured: nothing." in report.markdown(results)
    results["groups"] = []
    assert "Partial report" not in report.markdown(results)


# --- the mixture-of-factor-analysers group ------------------------------------------------------

TINY_MFA = MFACase(400, 3, 2, fit_max_iter=5)


@pytest.fixture
def patches():
    pytest.importorskip("PIL")  # scikit-learn reads its sample photos with Pillow


def _shift_fastmfa(monkeypatch, relative):
    """Moves FastMFA's log-likelihood after the timed iterations by ``relative`` times its magnitude."""
    honest = mfa_report.run_iterations

    def shifted(system, *args, **kwargs):
        value = honest(system, *args, **kwargs)
        return value + relative * abs(value) if system == "fastelbo" else value

    monkeypatch.setattr(mfa_report, "run_iterations", shifted)


def test_mfa_group_times_every_system_and_fastmfa_agrees_with_numpy(patches):
    rows = mfa_report.measure([TINY_MFA], repeats=1, fit_repeats=1, log=_quiet)
    assert mfa_report.failed_checks(rows) == []
    row = rows[0]
    assert set(row["log_likelihood"]) == set(mfa_report.SYSTEMS) and row["errors"] == {}
    assert all(seconds >= 0 for seconds in row["seconds_per_iteration"].values())
    assert row["fastelbo_all_threads_seconds_per_iteration"] >= 0
    assert abs(row["relative_difference"]["numpy"]) <= report.AGREEMENT_RTOL
    fit = row["fit"]
    assert 1 <= fit["n_iter"] <= TINY_MFA.fit_max_iter and np.isfinite(fit["log_likelihood"])
    # The parameter counts are those bic charges: bic = -2 N score + p log N.
    X = mfa_report.make_data(TINY_MFA)
    for system, model in (
        ("fastelbo", FastMFA(3, n_factors=2, max_iter=2, random_state=0)),
        ("gmm", FastGMM(3, covariance_type="full", max_iter=2, random_state=0)),
    ):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(X)
        counted = (model.bic(X) + 2 * len(X) * model.score(X)) / np.log(len(X))
        assert row["n_parameters"][system] == pytest.approx(counted, rel=1e-9)
    text = "\n".join(mfa_report.markdown(rows, 1, 1))
    assert f"| {TINY_MFA.id} |" in text and " ok |" in text


def test_fastgmm_starts_from_the_same_model_as_fastmfa(patches):
    X = mfa_report.make_data(TINY_MFA)
    start = mfa_report.initial_estimator(TINY_MFA, X)
    # One iteration reports the log-likelihood of the start itself: the same density for both models.
    mfa, gmm = (mfa_report.run_iterations(system, TINY_MFA, X, start, 1) for system in ("fastelbo", "gmm"))
    assert gmm == pytest.approx(mfa, rel=1e-9)
    assert mfa == pytest.approx(start.score(X), rel=1e-12)


@pytest.mark.parametrize("relative", [-1e-5, 1e-5])
def test_a_wrong_mfa_log_likelihood_fails_the_report(monkeypatch, patches, relative):
    _shift_fastmfa(monkeypatch, relative)
    rows = mfa_report.measure([TINY_MFA], repeats=1, fit_repeats=1, log=_quiet)
    assert mfa_report.failed_checks(rows) == [TINY_MFA.id]
    assert " FAIL |" in "\n".join(mfa_report.markdown(rows, 1, 1))


def test_a_fastmfa_failure_fails_the_report(monkeypatch, patches):
    honest = mfa_report.run_iterations

    def broken(system, *args, **kwargs):
        if system == "fastelbo":
            raise ValueError("broken")
        return honest(system, *args, **kwargs)

    monkeypatch.setattr(mfa_report, "run_iterations", broken)
    rows = mfa_report.measure([TINY_MFA], repeats=1, fit_repeats=1, log=_quiet)
    assert mfa_report.failed_checks(rows) == [TINY_MFA.id]
    assert rows[0]["errors"] == {"fastelbo": "broken"}


def test_mfa_only_report_writes_its_tables_and_exit_status(monkeypatch, tmp_path, patches, capsys):
    monkeypatch.setattr(mfa_report, "QUICK_CASES", (TINY_MFA,))
    assert report.main(["--quick", "--groups", "mfa", "--output", str(tmp_path)]) == 0
    text = (tmp_path / "report.md").read_text()
    assert "## Mixture of factor analysers" in text and "## Factor models" not in text
    assert f"| {TINY_MFA.id} |" in text
    results = json.loads((tmp_path / "report.json").read_text())
    assert [row["case"] for row in results["mfa"]] == [TINY_MFA.id] and "iterations" not in results

    _shift_fastmfa(monkeypatch, -1e-5)
    assert report.main(["--quick", "--groups", "mfa", "--output", str(tmp_path)]) == 1
    capsys.readouterr()


def test_mfa_group_limits_blas_not_fastelbo_threads(monkeypatch, patches):
    """One BLAS thread for every system, but FastMFA's threads come from n_jobs: an OpenMP limit
    would make the 'all threads' timing a second one-thread timing."""
    from threadpoolctl import threadpool_info

    def pools(api):
        return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == api}

    outside = pools("openmp")
    seen = []
    honest_fit = FastMFA.fit

    def recording_fit(self, *args, **kwargs):
        seen.append((pools("blas"), pools("openmp")))
        return honest_fit(self, *args, **kwargs)

    X = mfa_report.make_data(TINY_MFA)
    start = mfa_report.initial_estimator(TINY_MFA, X)
    monkeypatch.setattr(FastMFA, "fit", recording_fit)
    mfa_report.run_iterations("fastelbo", TINY_MFA, X, start, 1, n_jobs=None)
    assert outside, "no OpenMP runtime found: nothing to check"
    [(blas, openmp)] = seen
    assert blas <= {1} and openmp == outside


# --- the exponential-family group ---------------------------------------------------------------


def test_exponential_family_group_keeps_the_components_asked_for_and_draws_its_plot(monkeypatch, tmp_path):
    import exponential_family_report as ef

    asked = []

    def measure(case_list, repeats, log):
        asked.extend(case_list)
        return [
            {
                "case": case.id,
                **vars(case),
                "nnz": 10,
                "seconds_per_iteration": {"fastelbo": 0.01 * case.n_components, "numpy": 0.05},
                "log_likelihood": {"fastelbo": -1.0, "numpy": -1.0},
                "gemm_bound": {"iteration_bound_seconds": 0.001, "scipy_seconds": {"e": 0.01, "m": 0.01}},
                "relative_difference": 0.0,
                "passed": True,
            }
            for case in case_list
        ]

    monkeypatch.setattr(ef, "measure", measure)
    status = report.main(["--groups", "exponential_family", "--components", "100", "--output", str(tmp_path)])
    assert status == 0
    assert [case.n_components for case in asked] == [100, 100]
    assert {case.family for case in asked} == {"bernoulli", "poisson"}
    assert (tmp_path / ef.PLOT_NAME).stat().st_size > 0
    assert "zipf-poisson-N100000-D50000-K100" in (tmp_path / "report.md").read_text()


def test_the_report_states_the_instruction_set_overrides_it_ran_under(monkeypatch):
    # An AVX2 machine's code paths measured on an AVX-512 one: the report must say so.
    monkeypatch.setenv("NPY_DISABLE_CPU_FEATURES", "X86_V4")
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    monkeypatch.delenv("FASTELBO_CPU", raising=False)
    environment = report.environment()
    assert environment["env"]["NPY_DISABLE_CPU_FEATURES"] == "X86_V4"
    assert "FASTELBO_CPU" not in environment["env"]
    text = report.markdown({"quick": True, "repeats": 1, "fit_repeats": 1, "environment": environment})
    assert "NPY_DISABLE_CPU_FEATURES='X86_V4'" in text and "OPENBLAS_CORETYPE='Haswell'" in text
