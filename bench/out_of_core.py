"""FastGMM's out-of-core fit: its peak memory on a memmap and on an HDF5 dataset, and its agreement
with the in-memory fit from the same start.

    python bench/out_of_core.py [--data-dir DIR] [--small] [--tracemalloc]

1. Writes the data set of ``out_of_core_data.py`` (8,000,000 x 64 float32, 1.91 GiB; ``--small``:
   60,000 x 8, 6 clusters) as ``X.npy`` and ``X.h5`` in chunks, under ``--data-dir`` (reused when it
   already holds the same data) or a temporary directory removed at the end.
2. Fits ``FastGMM(n_components=64, covariance_type='diag', random_state=0)`` with its defaults
   (k-means initialisation on a sample of whole blocks, ``max_iter=100``, ``tol=1e-3``) on
   ``np.load('X.npy', mmap_mode='r')`` and on the h5py dataset, each in a fresh process
   (``out_of_core_fit.py``), sampling ``RssAnon``/``RssFile`` every 20 ms by phase. Target: peak
   ``RssAnon`` at most 600 MB (572 MiB).
3. Fits an in-memory copy (``np.load('X.npy')``, also in a fresh process, whose memory is the
   contrast) from the memmap fit's initial parameters (``weights_init``, ``means_init``,
   ``precisions_init``; same ``max_iter`` and ``tol``) and reports the largest relative
   differences of ``means_``, ``covariances_``, ``weights_`` and ``lower_bound_`` (float32 data:
   float32 round-off, ``eps = 1.2e-7``, is what agreement means), and those between the memmap and
   HDF5 fits (the same blocks: bitwise equal expected).

Writes ``results/out_of_core/memory.json`` (``memory_small.json`` with ``--small``) with the CPU and
everything measured, and prints a summary. Heavy: three fits of up to 100 passes over 1.9 GiB
(about 15 minutes each on one shared core pair); run it with ``nice`` and once.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

BENCH_DIR = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from out_of_core_data import MixtureSpec, write_data  # noqa: E402
from timing import load_average  # noqa: E402

RESULTS_DIR = BENCH_DIR / "results" / "out_of_core"
TARGET_RSS_ANON_MB = 600.0
SMALL_SPEC = MixtureSpec(n_samples=60_000, n_features=8, n_clusters=6)


@dataclasses.dataclass(frozen=True)
class FitSettings:
    n_components: int = 64
    covariance_type: str = "diag"
    max_iter: int = 100
    tol: float = 1e-3

    def arguments(self) -> list[str]:
        return [
            f"--n-components={self.n_components}",
            f"--covariance-type={self.covariance_type}",
            f"--max-iter={self.max_iter}",
            f"--tol={self.tol}",
        ]


SMALL_SETTINGS = FitSettings(n_components=6, max_iter=20)


def environment() -> dict:
    """The CPU and versions, as ``report.py`` records them (its ``environment``)."""
    import report

    return report.environment()


@contextlib.contextmanager
def data_directory(path):
    """``path`` (kept), or a temporary directory removed afterwards."""
    if path is not None:
        yield pathlib.Path(path)
        return
    directory = pathlib.Path(tempfile.mkdtemp(prefix="fastelbo-ooc-"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def run_fit(source, path, settings, work_dir, name, extra=(), log=print):
    """``out_of_core_fit.py`` in a fresh process; returns (its JSON result, its parameters' .npz)."""
    json_out, parameters_out = work_dir / f"{name}.json", work_dir / f"{name}.npz"
    command = [
        sys.executable, str(BENCH_DIR / "out_of_core_fit.py"), source, str(path),
        f"--json-out={json_out}", f"--parameters-out={parameters_out}", *settings.arguments(), *extra,
    ]  # fmt: skip
    began = time.perf_counter()
    subprocess.run(command, check=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    result = json.loads(json_out.read_text())
    peak = result["peak_mib"]
    log(
        f"  {name:<8} peak RssAnon {peak['RssAnon']:7.1f} MiB (baseline "
        f"{result['baseline_after_imports_mib']['RssAnon']:.1f}), RssFile {peak['RssFile']:7.1f} MiB, "
        f"{result['n_iter']} iterations, {time.perf_counter() - began:.0f} s"
    )
    return result, parameters_out


def relative_differences(a, b) -> dict:
    """Largest elementwise ``|a - b| / |b|`` and the normwise ``max|a - b| / max|b|``."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    difference = np.abs(a - b)
    scale = np.abs(b)
    with np.errstate(divide="ignore", invalid="ignore"):
        elementwise = np.where(difference == 0, 0.0, difference / scale)
    return {
        "max_elementwise": float(np.max(elementwise)),
        "normwise": float(np.max(difference) / np.max(scale))
        if np.max(scale) > 0
        else float(np.max(difference)),
    }


def compare_fits(path_a, path_b) -> dict:
    """Relative differences of the fitted parameters and bound of two runs' .npz (b the reference)."""
    a, b = np.load(path_a), np.load(path_b)
    same_start = all(
        np.array_equal(a[f"initial_{name}"], b[f"initial_{name}"])
        for name in ("weights", "means", "precisions_cholesky")
    )
    return {
        "same_initial_parameters": bool(same_start),
        **{name: relative_differences(a[name], b[name]) for name in ("means", "covariances", "weights")},
        "lower_bound": relative_differences(a["lower_bound"], b["lower_bound"])["max_elementwise"],
        "lower_bounds": [float(a["lower_bound"]), float(b["lower_bound"])],
        "n_iter": [len(a["elbo_history"]), len(b["elbo_history"])],
        "bitwise_equal": bool(
            all(
                np.array_equal(a[name], b[name])
                for name in ("means", "covariances", "weights", "lower_bound")
            )
        ),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data-dir", help="where the data set is written (reused); default: a temporary directory"
    )
    parser.add_argument("--small", action="store_true", help="a 60,000 x 8 data set, K=6: seconds")
    parser.add_argument("--tracemalloc", action="store_true", help="trace Python/NumPy allocations by phase")
    parser.add_argument(
        "--out", help="the JSON result file (default results/out_of_core/memory[_small].json)"
    )
    args = parser.parse_args(argv)
    spec, settings = (SMALL_SPEC, SMALL_SETTINGS) if args.small else (MixtureSpec(), FitSettings())
    out = pathlib.Path(args.out or RESULTS_DIR / ("memory_small.json" if args.small else "memory.json"))
    extra = ["--tracemalloc"] if args.tracemalloc else []
    load_before = load_average()
    with data_directory(args.data_dir) as directory, tempfile.TemporaryDirectory() as work:
        work = pathlib.Path(work)
        paths = write_data(directory, spec, formats=("npy", "hdf5"))
        print(f"data: {spec.describe()}\nin {directory}")
        cases = {}
        cases["memmap"], memmap_npz = run_fit("memmap", paths["npy"], settings, work, "memmap", extra)
        cases["hdf5"], hdf5_npz = run_fit("hdf5", paths["hdf5"], settings, work, "hdf5", extra)
        cases["memory"], memory_npz = run_fit(
            "memory", paths["npy"], settings, work, "memory", [*extra, f"--start-from={memmap_npz}"]
        )
        agreement = {
            "memmap_vs_in_memory_same_start": compare_fits(memmap_npz, memory_npz),
            "hdf5_vs_memmap": compare_fits(hdf5_npz, memmap_npz),
        }
    target_mib = TARGET_RSS_ANON_MB * 1e6 / 2**20
    results = {
        "command": "python bench/out_of_core.py" + (" --small" if args.small else ""),
        "environment": environment(),
        "data": {**dataclasses.asdict(spec), "description": spec.describe(), "gib": spec.nbytes / 2**30},
        "settings": dataclasses.asdict(settings),
        "target_peak_rss_anon_mib": target_mib,
        "cases": cases,
        "meets_target": {
            name: cases[name]["peak_mib"]["RssAnon"] <= target_mib for name in ("memmap", "hdf5")
        },
        "agreement": agreement,
        "load": load_before,
        "load_after": load_average(),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(summary(results))
    print(f"wrote {out}")
    return results


def summary(results) -> str:
    lines = [
        "| source | baseline RssAnon | peak RssAnon | peak RssFile | iterations | fit s |",
        "|---|---|---|---|---|---|",
    ]
    for name, case in results["cases"].items():
        lines.append(
            f"| {name} | {case['baseline_after_imports_mib']['RssAnon']:.0f} MiB | "
            f"{case['peak_mib']['RssAnon']:.0f} MiB | {case['peak_mib']['RssFile']:.0f} MiB | "
            f"{case['n_iter']} | {case['fit_seconds']:.0f} |"
        )
    for name, comparison in results["agreement"].items():
        lines.append(
            f"{name}: same start {comparison['same_initial_parameters']}, "
            f"bitwise {comparison['bitwise_equal']}, "
            f"means {comparison['means']['max_elementwise']:.2e}, covariances "
            f"{comparison['covariances']['max_elementwise']:.2e}, weights "
            f"{comparison['weights']['max_elementwise']:.2e}, lower bound {comparison['lower_bound']:.2e}, "
            f"iterations {comparison['n_iter']}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
