"""The user guide's examples run as shown: every ``.. code-block:: python`` of a page, in order, in one
namespace (a page's later blocks use what its earlier ones defined), in an empty folder; every
``$ fastelbo ...`` line of its ``.. code-block:: console`` blocks, with the exit status its output
shows (2 after ``fastelbo: error: ...``, else 0). A ``.. code-block:: text`` right after a Python
block is what that block prints, exactly; one with a ``:caption:`` that names a file is that file's
content, written before the page's commands run."""

from __future__ import annotations

import contextlib
import io
import pathlib
import re
import shlex
import textwrap
import warnings

import pytest

GUIDE = pathlib.Path(__file__).resolve().parents[1] / "docs" / "guide"
PAGES = sorted(GUIDE.glob("*.rst"))

_DIRECTIVE = re.compile(r"^(?P<indent> *)\.\. code-block:: *(?P<language>\S+) *$")
_OPTION = re.compile(r"^ *:(?P<name>[\w-]+):(?: *(?P<value>.*))?$")


def code_blocks(text: str) -> list[tuple[str, dict, str]]:
    """``(language, options, code)`` of every ``code-block`` directive of an rST text, in order."""
    lines = text.splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        match = _DIRECTIVE.match(lines[i])
        i += 1
        if not match:
            continue
        indent = len(match["indent"])
        options = {}
        while i < len(lines) and (option := _OPTION.match(lines[i])):
            options[option["name"]] = (option["value"] or "").strip()
            i += 1
        body = []
        while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
            body.append(lines[i])
            i += 1
        blocks.append((match["language"], options, textwrap.dedent("\n".join(body)).strip("\n") + "\n"))
    return blocks


def test_the_guide_has_examples_of_every_kind():
    assert [page.stem for page in PAGES] == ["cli", "first_fit", "index", "install", "models", "scaling"]
    languages = {language for page in PAGES for language, _, _ in code_blocks(page.read_text())}
    assert {"python", "console", "text"} <= languages


def test_code_blocks_are_found_with_their_options():
    text = (
        "Intro\n\n.. code-block:: python\n\n   x = 1\n\n   y = x + 1\n\nAfter.\n\n"
        ".. code-block:: text\n   :caption: a.csv\n\n   a,b\n   1,2\n"
    )
    assert code_blocks(text) == [
        ("python", {}, "x = 1\n\ny = x + 1\n"),
        ("text", {"caption": "a.csv"}, "a,b\n1,2\n"),
    ]


PYTHON_PAGES = [page for page in PAGES if "code-block:: python" in page.read_text()]


@pytest.mark.parametrize("page", PYTHON_PAGES, ids=lambda page: page.name)
def test_python_examples_run(page, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib").use("Agg")
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__main__"}
    blocks = code_blocks(page.read_text())
    with warnings.catch_warnings():
        # The examples say which warnings they expect and catch or silence those.
        warnings.simplefilter("error", UserWarning)
        for number, (language, _, code) in enumerate(blocks):
            if language != "python":
                continue
            with contextlib.redirect_stdout(io.StringIO()) as stdout:
                exec(compile(code, f"{page.name}, code block {number}", "exec"), namespace)
            following = blocks[number + 1] if number + 1 < len(blocks) else None
            if following and following[0] == "text" and not following[1]:
                assert stdout.getvalue() == following[2], f"{page.name}, code block {number}: output"
    import matplotlib.pyplot as plt

    plt.close("all")


def _fastelbo_commands(page: pathlib.Path) -> list[tuple[list[str], str]]:
    """``(arguments, shown output)`` of every ``$ fastelbo ...`` line of the page's console blocks."""
    commands = []
    for language, _, code in code_blocks(page.read_text()):
        if language != "console":
            continue
        for line in code.splitlines():
            if line.startswith("$ "):
                words = shlex.split(line[2:])
                assert words[0] == "fastelbo", f"{page.name}: only fastelbo commands are run: {line}"
                commands.append((words[1:], ""))
            elif commands:
                commands[-1] = (commands[-1][0], commands[-1][1] + line + "\n")
    return commands


def test_command_line_examples_run(tmp_path, monkeypatch):
    from fastelbo.cli import main

    page = GUIDE / "cli.rst"
    for _, options, code in code_blocks(page.read_text()):
        if "caption" in options:
            (tmp_path / options["caption"]).write_text(code)
    commands = _fastelbo_commands(page)
    assert len(commands) >= 4
    monkeypatch.chdir(tmp_path)
    for arguments, shown in commands:
        # In this process (what `fastelbo ARGS` runs, without starting Python again for each).
        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                status = main(arguments)
            except SystemExit as exit:  # argparse's own errors
                status = exit.code
        errors = [line for line in shown.splitlines() if line.startswith("fastelbo: error:")]
        if errors:
            assert status == 2, (arguments, stderr.getvalue())
            assert stderr.getvalue().strip() == "\n".join(errors), arguments
        else:
            assert status == 0, (arguments, stderr.getvalue())
        for option in ("--json", "--labels", "--save", "--plot"):
            if option in arguments:
                assert (tmp_path / arguments[arguments.index(option) + 1]).exists(), (arguments, option)
