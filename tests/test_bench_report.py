"""The benchmark report's agreement check: a fast wrong answer, or a FastGMM failure, fails the run."""

import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "bench"))
import report  # noqa: E402
import systems  # noqa: E402
from cases import Case  # noqa: E402

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
    }
    cpu = report.cpu_identity()
    assert cpu["cpu"] and cpu["cpu_vendor"]
    text = report.markdown(results)
    assert f"Machine: {cpu['cpu']} ({cpu['cpu_vendor']})" in text
    assert f"| {TINY[0].id} |" in text and "| failed |" in text
    # FastGMM against the NumPy EM is still an independent check.
    assert report.failed_checks(results["iterations"]) == []


def test_cpu_identity_falls_back_without_proc_cpuinfo(monkeypatch):
    def no_cpuinfo(*args, **kwargs):
        raise FileNotFoundError("/proc/cpuinfo")

    monkeypatch.setattr("builtins.open", no_cpuinfo)
    cpu = report.cpu_identity()
    assert cpu["cpu"] and cpu["cpu_vendor"] == "unknown"
