"""The README's examples run and print what the README shows.

README.md follows these conventions, and this file checks them:

- A ```python block runs on its own in a fresh interpreter, in an empty folder, with matplotlib's Agg
  backend (nothing opens a window), as a reader would paste it. The ```text block right after it
  (the next fenced block, in the same section) is its output: the test compares the block's stdout
  with it. A ```python block with no ```text block after it must print nothing, and no example may
  write to stderr (the examples catch the warnings they provoke and print what matters of them).
- A ```console block is a shell session: a line starting with ``$ `` is a command, run by bash in
  one empty folder per block, in order, with ``fastelbo`` the command line of the fastelbo that the
  tests import; the lines up to the next command are its output, stdout and stderr together in the
  order a terminal shows them.
- A ```bash block shows commands without their output (installation, benchmarks, CI): it is not
  run, and nothing in it may look like a session (no ``$ `` prompts). A ```math block is a formula.
- Outputs compare line by line: every number to a relative tolerance of ``RTOL`` and everything else
  exactly, except runs of blanks (column alignment). The README prints numbers with as many digits
  as it means, so in practice the printed digits must match.
- What depends on the machine rather than on fastelbo's arithmetic (durations) is written as a
  placeholder from ``PLACEHOLDERS`` in the shown output, and only a placeholder is skipped. The
  examples are chosen to print the same on every CPU build (x86-64-v2, v3, v4, native): fixed
  iteration counts, or fits that the tolerance stops while each iteration still changes the ELBO by
  far more than rounding does, never a long crawl towards a boundary.
- Fenced blocks carry one of these tags, and the README has no indented code blocks, so nothing is
  shown that is not checked or explicitly exempt.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"

#: Relative tolerance for every number of a shown output.
RTOL = 1e-6

#: Placeholders a shown output may use for what depends on the machine, and what each stands for.
#: A placeholder matches one number; nothing else is ever skipped.
PLACEHOLDERS = {"<time>": "a duration in seconds"}

#: The shell the sessions run in (found before a test narrows PATH, as .ci/run does).
BASH = shutil.which("bash") or next(
    (path for path in ("/bin/bash", "/usr/bin/bash") if Path(path).exists()), None
)

#: Tags of fenced blocks: run and compared, compared output, session run and compared, not run, formula.
TAGS = {"python", "text", "console", "bash", "math"}

_FENCE = re.compile(r"^```(?P<tag>[^\n`]*)\n(?P<body>.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
_HEADING = re.compile(r"^#+ +(.+)$", re.MULTILINE)
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_TOKEN = re.compile(
    "(?P<placeholder>"
    + "|".join(map(re.escape, PLACEHOLDERS))
    + r")|(?P<number>"
    + _NUMBER
    + r")|(?P<blank>\s+)"
)


# --- the README's blocks ----------------------------------------------------------------------------


def fenced_blocks(markdown):
    """``(tag, body, heading)`` of every fenced block, with the heading of the section it is in.

    Headings are looked for outside fenced blocks only (a ``# comment`` in code is no heading).
    """
    blocks, heading, position = [], "top", 0
    for match in _FENCE.finditer(markdown):
        headings = _HEADING.findall(markdown, position, match.start())
        heading = headings[-1] if headings else heading
        blocks.append((match["tag"].strip(), match["body"], heading))
        position = match.end()
    return blocks


def prose(markdown):
    """The README with its fenced blocks blanked out."""
    return _FENCE.sub(lambda match: "\n" * match.group(0).count("\n"), markdown)


def examples(markdown):
    """``(code, expected_output_or_None, heading)`` of every ```python block."""
    blocks = fenced_blocks(markdown)
    found = []
    for index, (tag, body, heading) in enumerate(blocks):
        if tag != "python":
            continue
        following = blocks[index + 1] if index + 1 < len(blocks) else None
        output = following[1] if following and following[0] == "text" and following[2] == heading else None
        found.append((body, output, heading))
    return found


def sessions(markdown):
    """``(commands, heading)`` of every ```console block: commands as ``(command, output)`` pairs."""
    found = []
    for tag, body, heading in fenced_blocks(markdown):
        if tag != "console":
            continue
        commands = []
        for line in body.splitlines():
            if line.startswith("$ "):
                commands.append([line[2:], []])
            else:
                assert commands, f"console block under {heading!r} starts with output, not a '$ ' command"
                commands[-1][1].append(line)
        found.append(([(command, "\n".join(lines)) for command, lines in commands], heading))
    return found


def _ids(items):
    return [
        f"{index}-{re.sub(r'[^A-Za-z0-9]+', '-', item[-1]).strip('-')}" for index, item in enumerate(items)
    ]


# --- comparing outputs -------------------------------------------------------------------------------


def _pattern(expected_line):
    """A regular expression for a shown line, and which of its groups are numbers to compare."""
    parts, compared = [], []
    position = 0
    for match in _TOKEN.finditer(expected_line):
        parts.append(re.escape(expected_line[position : match.start()]))
        if match["placeholder"]:
            parts.append(f"(?:{_NUMBER})")
        elif match["number"]:
            parts.append(f"({_NUMBER})")
            compared.append(float(match["number"]))
        else:
            parts.append(r"\s+")
        position = match.end()
    parts.append(re.escape(expected_line[position:]))
    return re.compile("".join(parts)), compared


def output_differences(expected, actual, rtol=RTOL):
    """The lines where ``actual`` differs from the shown output ``expected``; empty when they agree."""
    expected_lines = expected.rstrip().splitlines()
    actual_lines = actual.rstrip().splitlines()
    differences = []
    if len(expected_lines) != len(actual_lines):
        differences.append(f"{len(actual_lines)} lines printed, {len(expected_lines)} shown")
    for number, (shown, printed) in enumerate(zip(expected_lines, actual_lines, strict=False), start=1):
        pattern, compared = _pattern(shown.strip())
        match = pattern.fullmatch(printed.strip())
        if match is None:
            differences.append(f"line {number}: shown   {shown!r}\n        printed {printed!r}")
            continue
        for value, text in zip(compared, match.groups(), strict=True):
            if not math.isclose(float(text), value, rel_tol=rtol, abs_tol=0.0):
                differences.append(f"line {number}: {text} printed where {value!r} is shown (rtol {rtol:g})")
    return differences


def test_outputs_compare_numbers_to_the_tolerance_and_words_exactly():
    assert not output_differences("F = -3.52721568, 2 iterations", "F = -3.527215681, 2 iterations")
    assert not output_differences("[0.8 0.2]\n", "[0.8  0.2]")  # alignment
    assert output_differences("F = -3.52721568", "F = -3.52722568")  # a digit
    assert output_differences("52 iterations", "54 iterations")
    assert output_differences("converged_=True", "converged_=False")
    assert output_differences("a\nb", "a")  # a missing line
    assert output_differences("gap +1.0e-07", "gap -1.0e-07")
    assert not output_differences("fit: <time> s, 5 iterations", "fit: 0.092 s, 5 iterations")
    assert not output_differences("time lapse <time>s\t ll", "time lapse 0.05228s\t ll")
    assert output_differences("fit: <time> s", "fit: fast s")  # a placeholder stands for a number only
    assert output_differences("x <time> s", "x 0.1 s, 5 iterations")


def test_fenced_blocks_are_split_as_written():
    markdown = "# A\n```python\n# not a heading\nx = 1\n```\ntext\n## B\n```text\nout\n```\n"
    assert fenced_blocks(markdown) == [("python", "# not a heading\nx = 1\n", "A"), ("text", "out\n", "B")]
    assert examples(markdown) == [("# not a heading\nx = 1\n", None, "A")]  # another section's output
    markdown = "## A\n```python\nprint(1)\n```\nprints\n```text\n1\n```\n```console\n$ ls\nx\n$ pwd\n```\n"
    assert examples(markdown) == [("print(1)\n", "1\n", "A")]
    assert sessions(markdown) == [([("ls", "x"), ("pwd", "")], "A")]


# --- the README's form -------------------------------------------------------------------------------


def test_every_fenced_block_says_whether_it_runs():
    blocks = fenced_blocks(README.read_text(encoding="utf-8"))
    untagged = [(tag, heading) for tag, _, heading in blocks if tag not in TAGS]
    assert not untagged, f"fenced blocks tagged none of {sorted(TAGS)}: {untagged}"
    assert sum(tag == "python" for tag, _, _ in blocks) >= 5  # a runnable example per model
    assert any(tag == "console" for tag, _, _ in blocks)


def test_every_shown_output_belongs_to_an_example():
    blocks = fenced_blocks(README.read_text(encoding="utf-8"))
    for index, (tag, _, heading) in enumerate(blocks):
        if tag == "text":
            before = blocks[index - 1] if index else None
            assert before and before[0] == "python" and before[2] == heading, (
                f"a ```text block under {heading!r} follows no ```python block of its section: "
                "shown output must be an example's, and checked"
            )


def test_bash_blocks_show_no_session():
    for tag, body, heading in fenced_blocks(README.read_text(encoding="utf-8")):
        if tag == "bash":
            assert not any(line.startswith("$ ") for line in body.splitlines()), (
                f"a ```bash block under {heading!r} shows a session: make it ```console, so that it runs"
            )


def test_no_indented_code_blocks():
    """Markdown's indented code blocks would escape the checks: every code block is fenced."""
    lines = prose(README.read_text(encoding="utf-8")).splitlines()
    indented = [
        f"line {number}: {line.strip()}"
        for number, (previous, line) in enumerate(zip(lines, lines[1:], strict=False), start=2)
        if not previous.strip() and line.startswith("    ") and line.strip()
    ]
    assert not indented, "indented code blocks (fence them):\n" + "\n".join(indented)


def test_placeholders_only_in_shown_output():
    """Placeholders skip values: they may stand in outputs, never in code that runs."""
    for tag, body, heading in fenced_blocks(README.read_text(encoding="utf-8")):
        if tag in {"python", "bash", "math"}:
            assert not any(placeholder in body for placeholder in PLACEHOLDERS), heading
        if tag == "console":
            commands = [line for line in body.splitlines() if line.startswith("$ ")]
            assert not any(placeholder in line for line in commands for placeholder in PLACEHOLDERS), heading


# --- running them ------------------------------------------------------------------------------------


def _environment(folder):
    """The environment the examples run in: matplotlib without a window, ``fastelbo`` on PATH."""
    bin_folder = folder / ".bin"
    bin_folder.mkdir()
    shim = bin_folder / "fastelbo"
    shim.write_text(f"#!{sys.executable}\nimport sys\nfrom fastelbo.__main__ import main\nsys.exit(main())\n")
    shim.chmod(0o755)
    # The system's own folders last, for the shell tools a session uses (head, printf) where PATH
    # was narrowed to the environment's programs.
    path = [str(bin_folder), str(Path(sys.executable).parent), os.environ.get("PATH", ""), os.defpath]
    return dict(
        os.environ,
        MPLBACKEND="Agg",
        PYTHONUNBUFFERED="1",
        COLUMNS="100",
        PATH=os.pathsep.join(filter(None, path)),
    )


def example_under(heading):
    """``(code, output)`` of the one python example under the README heading ``heading``."""
    found = [
        (code, output)
        for code, output, under in examples(README.read_text(encoding="utf-8"))
        if under == heading
    ]
    assert len(found) == 1, f"one example under {heading!r} expected"
    return found[0]


def run_docs_script(script, folder):
    """Run ``script --output folder`` in ``folder`` as the examples run; its stdout, once it has
    exited 0 and printed nothing on stderr."""
    result = subprocess.run(
        [sys.executable, str(script), "--output", str(folder)],
        cwd=folder,
        env=_environment(folder),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert not result.stderr, result.stderr
    return result.stdout


_EXAMPLES = examples(README.read_text(encoding="utf-8"))
_SESSIONS = sessions(README.read_text(encoding="utf-8"))


@pytest.mark.parametrize(("code", "output", "heading"), _EXAMPLES, ids=_ids(_EXAMPLES))
def test_readme_python_example_prints_what_is_shown(code, output, heading, tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"README example failed:\n{code}\n--- stderr ---\n{result.stderr}"
    assert not result.stderr, f"README example under {heading!r} wrote to stderr:\n{result.stderr}"
    if output is None:
        assert not result.stdout, f"README example under {heading!r} prints, but no ```text block shows it"
        return
    differences = output_differences(output, result.stdout)
    assert not differences, (
        f"README example under {heading!r} printed\n{result.stdout}\n--- not what is shown ---\n"
        + "\n".join(differences)
    )


@pytest.mark.parametrize(("commands", "heading"), _SESSIONS, ids=_ids(_SESSIONS))
def test_readme_console_session_prints_what_is_shown(commands, heading, tmp_path):
    if BASH is None:
        pytest.skip("the README's shell sessions need bash")
    environment = _environment(tmp_path)
    for command, output in commands:
        result = subprocess.run(
            [BASH, "-c", command],
            cwd=tmp_path,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=600,
        )
        differences = output_differences(output, result.stdout)
        assert not differences, (
            f"$ {command}\nprinted\n{result.stdout}\n--- not what is shown ---\n" + "\n".join(differences)
        )


# --- regenerating the shown outputs ------------------------------------------------------------------


def _run_example(code, folder):
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=folder,
        env=_environment(folder),
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode or result.stderr:
        raise RuntimeError(f"README example failed or wrote to stderr:\n{code}\n{result.stderr}")
    return result.stdout


def update_readme(path=README):
    """Rewrite the ```text block after every ```python block with what the block prints now.

    Shown outputs with a placeholder are left alone (they are edited by hand), and so are the
    ```console sessions: ``python tests/test_readme_examples.py --update`` reports them.
    """
    import tempfile

    markdown = path.read_text(encoding="utf-8")
    matches = list(_FENCE.finditer(markdown))
    pieces, position = [], 0
    for index, match in enumerate(matches[:-1]):
        following = matches[index + 1]
        if match["tag"].strip() != "python" or following["tag"].strip() != "text":
            continue
        if any(placeholder in following["body"] for placeholder in PLACEHOLDERS):
            print(f"left alone (placeholders): the output after block {index}")
            continue
        with tempfile.TemporaryDirectory() as folder:
            printed = _run_example(match["body"], Path(folder))
        pieces.append(markdown[position : following.start("body")])
        pieces.append(printed if printed.endswith("\n") else printed + "\n")
        position = following.end("body")
    pieces.append(markdown[position:])
    path.write_text("".join(pieces), encoding="utf-8")


if __name__ == "__main__":
    if sys.argv[1:] != ["--update"]:
        sys.exit("usage: python tests/test_readme_examples.py --update")
    update_readme()
    print("console sessions are not rewritten: run pytest on this file to see any that differ")
