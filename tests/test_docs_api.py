"""The API reference (docs/api.rst) lists every public name and nothing internal, and the docs build's
check for internal names in its pages (docs/conf.py) knows what is internal."""

from __future__ import annotations

import importlib
import pathlib
import re
import sys

import pytest

import fastelbo

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs"


def documented_names() -> list[str]:
    """The full names of the autosummary entries of docs/api.rst (relative to ``fastelbo``)."""
    names, in_autosummary = [], False
    for line in (DOCS / "api.rst").read_text().splitlines():
        if line.startswith(".. autosummary::"):
            in_autosummary = True
        elif in_autosummary and re.match(r"^   [A-Za-z_][\w.]*$", line):
            names.append("fastelbo." + line.strip())
        elif line and not line.startswith(" "):
            in_autosummary = False
    return names


def resolve(dotted: str):
    module, _, attribute = dotted.rpartition(".")
    return getattr(importlib.import_module(module), attribute)


def test_every_public_name_is_documented():
    from fastelbo import datasets, plotting

    documented = set(documented_names())
    exported = {f"fastelbo.{name}" for name in fastelbo.__all__ if name != "__version__"}
    exported |= {f"fastelbo.datasets.{name}" for name in datasets.__all__}
    assert set(plotting.__all__) <= set(fastelbo.__all__)  # documented as fastelbo.plot_*
    # Every warning the estimators raise of their own.
    exported |= {"fastelbo.exceptions.Float32RangeWarning", "fastelbo.exceptions.DegenerateComponentWarning"}
    assert exported - documented == set()


def test_documented_names_are_public_and_exist():
    names = documented_names()
    assert len(names) == len(set(names)) >= 20
    for name in names:
        assert not any(part.startswith("_") for part in name.split(".")), name
        assert resolve(name) is not None


@pytest.fixture
def conf():
    pytest.importorskip("sphinx")
    sys.path.insert(0, str(DOCS))
    try:
        yield importlib.import_module("conf")
    finally:
        sys.path.remove(str(DOCS))
        sys.modules.pop("conf", None)


def test_the_check_for_internal_names_finds_them_and_only_them(conf):
    internal = conf._internal_class_names()
    assert {"MixtureEstimator", "LinearGaussianFactorModel", "EMEstimator"} <= internal
    public = {"FastGMM", "FastMFA", "RowSource", "EntropyDecomposition", "HeywoodCaseWarning"}
    assert not internal & (public | {"Float32RangeWarning", "DegenerateComponentWarning", "CommandLineError"})
    pattern = conf.internal_names_pattern()
    shown = [
        "each (fastelbo.mixture._truncated).",
        "Bases: MixtureEstimator, DensityMixin",
        "see _EMRun",
        "fastelbo._row_source.RowSource",
    ]
    assert [pattern.findall(text) for text in shown] == [
        ["fastelbo.mixture._truncated"],
        ["MixtureEstimator"],
        ["_EMRun"],
        ["fastelbo._row_source"],
    ]
    clean = "fastelbo.__version__, FastGMM.__init__, n_jobs, means_, fastelbo.datasets.DATASETS, x_n"
    assert pattern.findall(clean) == []
