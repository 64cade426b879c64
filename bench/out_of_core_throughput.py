"""Rows per second of one exact E-step pass of FastGMM over the same data held in different places:
an in-memory array, a memmap (warm and cold page cache), an HDF5 dataset, and a Zarr array through
Dask on a ``LocalCluster`` of 1 and of 2 worker processes.

    python bench/out_of_core_throughput.py [--data-dir DIR] [--n-samples 8000000] [--repeats 3]
                                           [--dask-workers 1 2] [--small]

Data: the data set of ``out_of_core_data.py`` (8,000,000 x 64 float32, or its first
``--n-samples`` rows when that is a multiple of 262,144, the generation chunk; ``--small``:
60,000 x 8), written under ``--data-dir`` (reused) or a temporary directory. Model:
``FastGMM(n_components=64, covariance_type='diag', random_state=0)`` fitted for 2 iterations to the
first 262,144 rows; its parameters are then fixed, so every pass does the same work.

What is timed: ``gmm._e_step(source)``, one E-step exactly as an EM iteration runs it (the kernel pass
with moments and labels over every block, the blocks' statistics merged), where ``source`` is what
``fit`` makes of the input (``gmm._validate_for_inference``: the array itself, a ``RowSource`` of
32 MiB blocks, or a ``DaskRowSource`` with one block per 32 MiB Zarr chunk). The M-step, O(K D), is
left out. A first pass (a warm-up, which also finds the rows' home labels) is not timed; the result
is the best of ``--repeats`` passes after it. Each pass's ELBO is recorded: the streamed and Dask
passes use the same blocks, so they must agree bitwise, and the in-memory pass to round-off.

Cases (threads: ``n_jobs``, the kernel's OpenMP threads):

- ``in-memory``: ``np.load(path)``, 2 threads, and 1 thread (the per-core rate); for scale, also
  the labelling pass without moments and without the float64 re-evaluation of rows the expansion
  cannot hold (``_pass(X, moments=False, labels=True, refine=False)``, the pass that finds the first
  home labels): the difference is what the exact E-step pays for its accuracy on this data;
- ``memmap (warm)``: ``np.load(path, mmap_mode='r')``, the file in the page cache, 2 threads and 1;
- ``memmap (cold)``: before each pass the memmap is closed and the file's pages dropped with
  ``os.posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)`` (pages still mapped cannot be dropped, hence
  the fresh memmap); whether it worked is shown by the page cache's ``Cached`` before and after and
  by a plain sequential read of the file timed cold and warm;
- ``hdf5``: the h5py dataset (4 MiB chunks, no filter), 2 threads;
- ``dask, W workers``: ``da.from_zarr`` (32 MiB chunks) on ``LocalCluster(n_workers=W,
  threads_per_worker=1)``, ``n_jobs=1`` so each worker uses one core. The Zarr file is in the page
  cache (warm) too.

Writes ``results/out_of_core/throughput.json`` (``throughput_small.json`` with ``--small``).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import pathlib
import sys
import time
import warnings

import numpy as np

BENCH_DIR = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from out_of_core import RESULTS_DIR, SMALL_SPEC, data_directory, environment  # noqa: E402
from out_of_core_data import MixtureSpec, open_source, write_data  # noqa: E402
from timing import load_average  # noqa: E402

FIT_ROWS = 2**18
READ_BUFFER_BYTES = 32 * 2**20


def page_cache_mib() -> float:
    """``Cached`` of ``/proc/meminfo`` (the page cache, machine-wide) in MiB."""
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("Cached:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def drop_from_page_cache(path) -> float:
    """Ask the kernel to drop ``path``'s pages (``POSIX_FADV_DONTNEED``); returns how much the page
    cache shrank, in MiB (other processes change it too: a rough confirmation only)."""
    before = page_cache_mib()
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    return before - page_cache_mib()


def sequential_read_seconds(path) -> float:
    """Seconds to read the whole file in 32 MiB reads (``readinto``, no copy kept)."""
    buffer = bytearray(READ_BUFFER_BYTES)
    began = time.perf_counter()
    with open(path, "rb", buffering=0) as file:
        while file.readinto(buffer):
            pass
    return time.perf_counter() - began


def cold_cache_check(path) -> dict:
    """Whether dropping the file's pages makes reading it slower: a cold read, then a warm one."""
    dropped = drop_from_page_cache(path)
    cold = sequential_read_seconds(path)
    warm = sequential_read_seconds(path)
    size = os.path.getsize(path) / 2**30
    return {
        "page_cache_dropped_mib": dropped,
        "cold_read_gib_per_s": size / cold,
        "warm_read_gib_per_s": size / warm,
        "dropping_worked": cold > 2 * warm,
    }


@dataclasses.dataclass
class PassTimes:
    """Seconds of every timed pass of a case and the ELBO each computed."""

    seconds: list
    elbos: list

    def summary(self, n_rows) -> dict:
        best = min(self.seconds)
        return {
            "best_seconds": best,
            "median_seconds": float(np.median(self.seconds)),
            "seconds": self.seconds,
            "rows_per_second": n_rows / best,
            "elbo": self.elbos[-1],
            "elbos_identical": len(set(self.elbos)) == 1,
        }


def time_passes(gmm, make_source, repeats, before_each=None, warm_up=True) -> PassTimes:
    """``repeats`` timed ``gmm._e_step`` passes (after an untimed one when ``warm_up``)."""
    if warm_up:
        gmm._e_step(gmm._validate_for_inference(make_source()))
    seconds, elbos = [], []
    for _ in range(repeats):
        if before_each is not None:
            before_each()
        source = gmm._validate_for_inference(make_source())
        began = time.perf_counter()
        stats = gmm._e_step(source)
        seconds.append(time.perf_counter() - began)
        elbos.append(float(stats.elbo))
        del source
    return PassTimes(seconds, elbos)


def fitted_model(npy_path, n_components):
    from fastelbo import FastGMM

    rows = np.array(np.load(npy_path, mmap_mode="r")[:FIT_ROWS])
    gmm = FastGMM(n_components=n_components, covariance_type="diag", max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gmm.fit(rows)
    return gmm


def measure(paths, n_components, repeats, dask_workers, log=print) -> dict:
    """Every case of the module docstring, in an order that keeps at most one copy of the data in
    this process's memory; returns ``{"n_rows", "cases"}``."""
    gmm = fitted_model(paths["npy"], n_components)
    n_rows = np.load(paths["npy"], mmap_mode="r").shape[0]
    cases = {}

    def record(name, times, threads, **extra):
        cases[name] = {"threads": threads, **times.summary(n_rows), **extra}
        log(
            f"  {name:<22} {cases[name]['rows_per_second'] / 1e6:6.3f} M rows/s  "
            f"(best {cases[name]['best_seconds']:.2f} s of {[round(s, 2) for s in times.seconds]})"
        )

    def memmap():
        return np.load(paths["npy"], mmap_mode="r")

    def hdf5():
        return open_source("hdf5", paths["hdf5"])

    for threads in (None, 1):
        gmm.n_jobs = threads
        gmm._em_home = None
        record(f"memmap (warm), {threads or 2} thr", time_passes(gmm, memmap, repeats), threads or 2)
    gmm.n_jobs = None
    check = cold_cache_check(paths["npy"])
    log(f"  dropping pages: {check}")
    dropped = []
    # The homes of the warm memmap passes (same blocks) stay: no warm-up, which would warm the cache.
    record(
        "memmap (cold), 2 thr",
        time_passes(
            gmm,
            memmap,
            repeats,
            before_each=lambda: dropped.append(drop_from_page_cache(paths["npy"])),
            warm_up=False,
        ),
        2,
        cold_cache_check=check,
        page_cache_dropped_mib=dropped,
    )
    gmm._em_home = None
    record("hdf5, 2 thr", time_passes(gmm, hdf5, repeats), 2)
    labelling = in_memory_passes(gmm, paths["npy"], repeats, record)
    rate = labelling["rows_per_second"] / 1e6
    log(f"  in-memory labelling pass (no moments, no refinement), 2 thr: {rate:.3f} M rows/s")
    gc.collect()  # the in-memory copy is gone before the Dask workers start
    for workers in dask_workers:
        record(
            f"dask, {workers} worker{'s' * (workers > 1)}",
            dask_passes(gmm, paths["zarr"], workers, repeats),
            workers,
        )
    return {"n_rows": int(n_rows), "cases": cases, "labelling_pass_without_refinement": labelling}


def in_memory_passes(gmm, npy_path, repeats, record):
    """The in-memory cases (2 threads and 1), on a copy of the data that lives only in this call;
    returns the times of the labelling pass without moments or refinement (2 threads)."""
    array = np.load(npy_path)
    for threads in (None, 1):
        gmm.n_jobs = threads
        gmm._em_home = None
        record(f"in-memory, {threads or 2} thr", time_passes(gmm, lambda: array, repeats), threads or 2)
    gmm.n_jobs = None
    labelling = []
    gmm._pass(array, moments=False, labels=True, refine=False)  # warm-up
    for _ in range(repeats):
        began = time.perf_counter()
        gmm._pass(array, moments=False, labels=True, refine=False)
        labelling.append(time.perf_counter() - began)
    return {"seconds": labelling, "rows_per_second": array.shape[0] / min(labelling), "threads": 2}


def dask_passes(gmm, zarr_path, workers, repeats) -> PassTimes:
    import dask.array as da
    from dask.distributed import Client, LocalCluster

    gmm.n_jobs = 1
    gmm._em_home = None
    with (
        LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster),
    ):
        X = da.from_zarr(zarr_path)
        times = time_passes(gmm, lambda: X, repeats)
        gmm._em_home = None  # persisted results on the cluster: release them before it closes
    gmm.n_jobs = None
    return times


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data-dir", help="where the data set is written (reused); default: a temporary directory"
    )
    parser.add_argument(
        "--n-samples",
        type=int,
        default=MixtureSpec().n_samples,
        help="rows of the data set (a multiple of 262,144 gives a prefix of the full one's rows)",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dask-workers", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--small", action="store_true", help="a 60,000 x 8 data set, K=6: seconds")
    parser.add_argument(
        "--out", help="the JSON result file (default results/out_of_core/throughput[_small].json)"
    )
    args = parser.parse_args(argv)
    spec = SMALL_SPEC if args.small else MixtureSpec(n_samples=args.n_samples)
    n_components = 6 if args.small else 64
    out = pathlib.Path(
        args.out or RESULTS_DIR / ("throughput_small.json" if args.small else "throughput.json")
    )
    load_before = load_average()
    with data_directory(args.data_dir) as directory:
        paths = write_data(directory, spec)
        print(f"data: {spec.describe()}\nin {directory}")
        measured = measure(paths, n_components, args.repeats, args.dask_workers)
    results = {
        "command": "python bench/out_of_core_throughput.py"
        + (" --small" if args.small else f" --n-samples {args.n_samples}"),
        "environment": environment(),
        "data": {**dataclasses.asdict(spec), "description": spec.describe()},
        "model": f"FastGMM(n_components={n_components}, covariance_type='diag', random_state=0), "
        f"2 iterations on the first {FIT_ROWS:,} rows, then fixed",
        "timed": "gmm._e_step(source): one exact E-step (kernel pass with moments and labels, statistics "
        f"merged); best of {args.repeats} after an untimed warm-up pass",
        "repeats": args.repeats,
        **measured,
        "load": load_before,
        "load_after": load_average(),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {out}")
    return results


if __name__ == "__main__":
    main()
