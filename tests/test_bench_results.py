"""Every measurement kept under bench/results is a file its format's reader accepts: a stray log
line in a JSON file, or a truncated file, would make the published numbers unreadable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results"
JSON_FILES = sorted(RESULTS.rglob("*.json")) if RESULTS.is_dir() else []


@pytest.mark.skipif(not JSON_FILES, reason="bench/results is not part of this checkout")
@pytest.mark.parametrize("path", JSON_FILES, ids=lambda p: str(p.relative_to(RESULTS)))
def test_json_result_file_parses(path):
    with open(path, encoding="utf-8") as handle:
        json.load(handle)


@pytest.mark.skipif(not RESULTS.is_dir(), reason="bench/results is not part of this checkout")
def test_png_result_files_are_images():
    for path in RESULTS.rglob("*.png"):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
