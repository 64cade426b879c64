"""docs/render_figures.py draws the README's figures, of the fit the README shows and quotes.

The script runs into a temporary folder (never over the tracked PNGs); what it prints must be what
the README's "Seeing it converge" example prints, and every number the figure's caption quotes must
be one that example or its printed output holds.
"""

from __future__ import annotations

import importlib.util
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from fastelbo import FastPPCA
from test_readme_examples import README, example_under, output_differences, prose, run_docs_script

pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "docs" / "render_figures.py"
FIGURES = ("convergence.png", "decomposition.png")
SECTION = "Seeing it converge"
_NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _caption():
    """The paragraph after the convergence figure."""
    text = prose(README.read_text(encoding="utf-8"))
    start = text.index("(docs/convergence.png)")
    paragraphs = [paragraph for paragraph in text[start:].split("\n\n")[1:] if paragraph.strip()]
    return paragraphs[0]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    folder = tmp_path_factory.mktemp("figures")
    return folder, run_docs_script(SCRIPT, folder)


def test_render_figures_writes_the_figures_into_the_folder_given(rendered):
    folder, stdout = rendered
    for name in FIGURES:
        data = (folder / name).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n"), name
        assert len(data) > 10_000, name  # a drawn figure, not an empty canvas
    assert stdout.splitlines()[-1] == "wrote " + " and ".join(str(folder / name) for name in FIGURES)


def test_render_figures_draws_the_readme_example_fit(rendered):
    """Both fit the same model: the script prints what the README's example prints."""
    _, stdout = rendered
    code, output = example_under(SECTION)
    assert output is not None, f"the example under {SECTION!r} shows no output"
    summary = "\n".join(stdout.splitlines()[:-1])
    differences = output_differences(output, summary)
    assert not differences, f"render_figures.py printed\n{summary}\nthe README shows\n{output}" + "\n".join(
        differences
    )
    call = re.search(r"FastMFA\((.*?)\)\.fit", code)
    script = SCRIPT.read_text(encoding="utf-8")
    arguments = re.search(r"FastMFA\((.*?)\)\.fit", script, re.DOTALL)
    assert call and arguments
    assert re.sub(r"\s+", "", call[1]) == re.sub(r"\s+", "", arguments[1]).rstrip(",")


def test_caption_quotes_only_numbers_of_the_fit():
    code, output = example_under(SECTION)
    caption = _caption()
    assert caption.startswith("That is this fit"), caption[:80]
    allowed = set(_NUMBER.findall(code)) | set(_NUMBER.findall(output))
    quoted = _NUMBER.findall(caption)
    assert quoted, "the caption quotes the fit's numbers"
    unknown = [number for number in quoted if number not in allowed]
    assert not unknown, (
        f"the caption quotes numbers that are neither in the example nor in its output: {unknown}"
    )


def test_figures_are_deterministic(tmp_path):
    """Rendering one fit twice gives the same bytes: the tracked PNGs change only when the fit does."""
    spec = importlib.util.spec_from_file_location("render_figures", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a short fit is enough to draw
        fit = FastPPCA(n_components=2, solver="em", max_iter=20, tol=0, random_state=0)
        fit.fit(np.random.RandomState(0).standard_normal((200, 5)))
    first = module.render(fit, tmp_path / "a")
    second = module.render(fit, tmp_path / "b")
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name
