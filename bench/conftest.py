"""Configuration of the pytest-benchmark suite: which cases run, and their data.

Data generation is expensive at the full sizes, so each case's data and start are built once per
session and shared by every compared system: they all time the same work from the same start.

Run with ``python -m pytest bench --benchmark-only`` (``--bench-size full`` for the issue's sizes).
"""

from __future__ import annotations

import pathlib
import sys

import pytest

# bench/ is not a package: make its modules (cases, systems, numpy_em) importable.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import cases  # noqa: E402


def pytest_addoption(parser):
    parser.addoption(
        "--bench-size",
        choices=("quick", "full"),
        default="quick",
        help="benchmark case sizes: quick (a couple of minutes) or full (the issue's acceptance sizes)",
    )


def pytest_generate_tests(metafunc):
    # Session-scoped indirect parametrisation groups the tests by case, so a case's data is built
    # once and released before the next case's.
    if "case" in metafunc.fixturenames:
        size = metafunc.config.getoption("--bench-size")
        selected = cases.FULL_ITERATION_CASES if size == "full" else cases.QUICK_ITERATION_CASES
        metafunc.parametrize("case", selected, ids=[c.id for c in selected], indirect=True, scope="session")


@pytest.fixture(scope="session")
def case(request) -> cases.Case:
    return request.param


@pytest.fixture(scope="session")
def data(case):
    """``(X, start)`` for the case, shared by all systems."""
    X = cases.make_data(case)
    return X, cases.initial_parameters(case, X)
