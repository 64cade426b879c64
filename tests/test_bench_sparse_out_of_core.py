"""The memory-mapped CSR benchmark runs end to end in its smallest mode (so it cannot rot), and what
it reports holds: the streamed fit equals the in-memory fit from the same start, and reads its
blocks without copying the matrix whole."""

import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "bench"))

import sparse_out_of_core  # noqa: E402


def test_the_benchmark_fits_a_memmapped_csr_like_the_in_memory_one(tmp_path):
    results = sparse_out_of_core.main(
        ["--small", "--data-dir", str(tmp_path / "data"), "--out-dir", str(tmp_path / "out")]
    )
    written = json.loads((tmp_path / "out" / "sparse_out_of_core.json").read_text())
    assert written["environment"]["cpu"]
    assert (tmp_path / "out" / "sparse_out_of_core.md").read_text().startswith("# ")
    assert results["agreement"]["means_max_relative"] < 1e-10
    assert results["agreement"]["lower_bound_difference"] < 1e-10
    memmap, memory = results["cases"]["memmap"], results["cases"]["memory"]
    assert memmap["streamed_blocks"] > 1 and memmap["n_iter"] == memory["n_iter"] == 2
    for case in (memmap, memory):
        assert case["peak_mib"]["RssAnon"] >= case["baseline_after_imports_mib"]["RssAnon"] > 0
        assert case["seconds_per_iteration"] > 0
