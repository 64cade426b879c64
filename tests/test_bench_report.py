"""The benchmark report's agreement check: a fast wrong answer, or a FastGMM failure, fails the run."""

import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "bench"))
import report  # noqa: E402
import systems  # noqa: E402
from cases import Case  # noqa: E402

TINY = (Case("full", 400, 3, 2), Case("diag", 400, 3, 2, "float32"))


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
