"""docs/render_count_mixtures.py draws the README's picture of the Bernoulli and Poisson mixtures of
the digits, of the fits the README's example shows.

The script runs into a temporary folder (never over the tracked PNG); what it prints must be what the
README's "Binary and count data" example prints, and it must fit the models that example fits.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from test_readme_examples import README, example_under, output_differences, run_docs_script

pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "docs" / "render_count_mixtures.py"
FIGURE = "count_mixture_means.png"
SECTION = "Binary and count data: Bernoulli and Poisson mixtures"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    folder = tmp_path_factory.mktemp("figures")
    return folder, run_docs_script(SCRIPT, folder)


def test_render_count_mixtures_writes_the_figure_into_the_folder_given(rendered):
    folder, stdout = rendered
    data = (folder / FIGURE).read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 10_000  # a drawn figure, not an empty canvas
    assert stdout.splitlines()[-1] == f"wrote {folder / FIGURE}"


def test_render_count_mixtures_fits_what_the_readme_example_fits(rendered):
    _, stdout = rendered
    code, output = example_under(SECTION)
    assert output is not None, f"the example under {SECTION!r} shows no output"
    printed = "\n".join(stdout.splitlines()[:-1])
    differences = output_differences(output, printed)
    shown = f"the script printed\n{printed}\nthe README shows\n{output}\n"
    assert not differences, shown + "\n".join(differences)
    script = SCRIPT.read_text(encoding="utf-8")
    for estimator in ("FastBernoulliMixture", "FastPoissonMixture"):
        in_readme = re.search(estimator + r"\((.*?)\)\.fit\((.*?)\)\s", code)
        in_script = re.search(estimator + r"\((.*?)\)\.fit\((.*?)\)\s", script)
        assert in_readme and in_script, estimator
        assert in_readme.groups() == in_script.groups(), estimator


def test_readme_shows_the_figure():
    assert f"(docs/{FIGURE})" in README.read_text(encoding="utf-8")
    assert (ROOT / "docs" / FIGURE).is_file()
