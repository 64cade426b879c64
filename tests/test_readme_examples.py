"""Every ```python block of README.md runs as it is written.

Each block runs on its own in a fresh interpreter (matplotlib's Agg backend, so nothing opens a
window), as a reader would paste it. Fenced blocks that are not meant to run say so with their
language tag (```text for printed output, ```bash for shell commands); a fenced block without a tag
fails the test rather than being skipped silently.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"

#: Tags of fenced blocks that are shown, not run.
NOT_RUN = {"text", "bash", "console"}

_FENCE = re.compile(r"^```(?P<tag>[^\n`]*)\n(?P<body>.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
_HEADING = re.compile(r"^#+ +(.+)$", re.MULTILINE)


def fenced_blocks(markdown):
    """``(tag, body, heading)`` of every fenced block, with the heading of the section it is in."""
    blocks = []
    for match in _FENCE.finditer(markdown):
        headings = _HEADING.findall(markdown, 0, match.start())
        blocks.append((match["tag"].strip(), match["body"], headings[-1] if headings else "top"))
    return blocks


def _python_blocks():
    blocks = [block for block in fenced_blocks(README.read_text(encoding="utf-8")) if block[0] == "python"]
    ids = [
        f"{index}-{re.sub(r'[^A-Za-z0-9]+', '-', heading).strip('-')}"
        for index, (_, _, heading) in enumerate(blocks)
    ]
    return [pytest.param(body, id=block_id) for (_, body, _), block_id in zip(blocks, ids, strict=True)]


def test_fenced_blocks_are_split_as_written():
    markdown = "# A\n```python\nx = 1\n```\ntext\n## B\n```text\nout\n```\n"
    assert fenced_blocks(markdown) == [("python", "x = 1\n", "A"), ("text", "out\n", "B")]


def test_every_fenced_block_of_the_readme_says_whether_it_runs():
    blocks = fenced_blocks(README.read_text(encoding="utf-8"))
    untagged = [heading for tag, _, heading in blocks if tag not in NOT_RUN | {"python"}]
    assert not untagged, f"fenced blocks tagged neither python nor one of {sorted(NOT_RUN)} under {untagged}"
    assert sum(tag == "python" for tag, _, _ in blocks) >= 5  # a runnable example per model


@pytest.mark.parametrize("code", _python_blocks())
def test_readme_python_example_runs(code, tmp_path):
    env = dict(os.environ, MPLBACKEND="Agg")
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, f"README example failed:\n{code}\n--- stderr ---\n{result.stderr}"
