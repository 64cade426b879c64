"""What one EM iteration of FastGMM on Dask would cost at N = 1e9 and 1e10 rows: the pieces measured
on this machine, the rest stated assumptions, combined in a model.

    python bench/dask_cost_model.py [--repeats 5] [--cores-per-worker 8] [--network-gbit 10]
                                    [--io-gib-per-worker 1] [--task-overhead-ms 1] [--small]

Measured (one core, ``n_threads=1``; best of ``--repeats`` after a warm-up), for ``covariance_type``
diag and full, K=64, D=64, float32, on a 32 MiB chunk (131,072 rows) of the out-of-core data set
(``out_of_core_data.py``), with parameters from 2 EM iterations on that chunk:

- ``chunk_seconds``: one block pass, ``gaussian_block_pass`` with moments and labels (what a Dask
  task of an E-step runs);
- the parameter snapshot a pass ships (``functools.partial(gaussian_block_pass, parameters,
  request)``) and one chunk's statistics (``MixtureStatistics``): pickled size, ``pickle.dumps``
  and ``pickle.loads`` time (protocol 5);
- ``merge_seconds``: ``statistics.merge(other)`` of two chunks' statistics;
- ``m_step_seconds``: the M-step on merged statistics (on the client);
- ``client_seconds_per_chunk``: the client's time per chunk to build an E-step's graph
  (``DaskRowSource`` makes one ``dask.delayed`` call per chunk, with a key of its own: no hashing
  of the snapshot);
- on a ``LocalCluster`` of one worker process, one E-step over 8 and over 32 tiny chunks (of new
  data, so nothing is reused from an earlier pass), slopes per chunk: the tasks that ran
  (a scheduler plugin counts them), the bytes the scheduler sent (``TCP.write`` counted in this
  process, which hosts the client and the scheduler: does the snapshot travel once per pass or once
  per task?), and the wall time per task (this loaded machine's overhead, shown, not used).

Assumptions (options): a worker has ``--cores-per-worker`` cores each as fast as the measured core
(linear scaling; not verifiable on this 2-core machine), reads its chunks at ``--io-gib-per-worker``
GiB/s shared by its cores, links of ``--network-gbit`` Gbit/s with ``--latency-ms`` per message, and
a scheduler overhead of ``--task-overhead-ms`` per task, serial at the one scheduler (Dask's best
practices: "Every task comes with some overhead. This is somewhere between 200us and 1ms";
https://docs.dask.org/en/stable/best-practices.html, "Avoid Very Large Graphs"; the model takes
1 ms). The model::

    chunks   = N / chunk_rows;   waves = ceil(chunks / (workers * cores))
    client   = chunks * client_seconds_per_chunk                       graph built before it runs
    work     = waves * (chunk_bytes / (io / cores) + chunk_seconds)    a core reads, then computes
    schedule = chunks * tasks_per_chunk * task_overhead                serial at the scheduler
    ship     = chunks * scheduler_bytes_per_chunk / network            through the scheduler's link
    tree     = ceil(log2 chunks) * (merge + statistics_bytes / network + latency)
    iteration = client + max(work, schedule + ship) + tree + m_step

(``schedule`` and ``ship`` overlap ``work``: the scheduler feeds workers while they compute; a
chunk's cost scales with its rows for the larger chunk size.) Tables for the 32 MiB chunks
``DaskRowSource`` is built for (one per Zarr chunk) and for 512 MiB chunks.

Writes ``results/out_of_core/dask_cost_model.json`` (``dask_cost_model_small.json`` with
``--small``, which measures at K=8, D=8 on 8,192 rows and skips nothing but size).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import functools
import itertools
import json
import math
import pathlib
import pickle
import re
import sys
import time
import warnings

import numpy as np
from threadpoolctl import threadpool_limits

BENCH_DIR = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from out_of_core import RESULTS_DIR, environment  # noqa: E402
from out_of_core_data import MixtureSpec, generate_chunk, mixture_parameters  # noqa: E402
from timing import load_average  # noqa: E402

CHUNK_BYTES = 32 * 2**20
PROJECTED_ROWS = (10**9, 10**10)
PROJECTED_WORKERS = (10, 100, 1000)
PROJECTED_CHUNK_BYTES = (32 * 2**20, 512 * 2**20)


def best_seconds(run, repeats):
    run()  # warm-up
    best = math.inf
    for _ in range(repeats):
        began = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - began)
    return best


def pickled(obj, repeats) -> dict:
    data = pickle.dumps(obj, protocol=5)
    return {
        "bytes": len(data),
        "dumps_seconds": best_seconds(lambda: pickle.dumps(obj, protocol=5), repeats),
        "loads_seconds": best_seconds(lambda: pickle.loads(data), repeats),
    }


def chunk_of_data(n_features, n_clusters, n_rows):
    spec = MixtureSpec(n_samples=n_rows, n_features=n_features, n_clusters=n_clusters)
    return generate_chunk(spec, mixture_parameters(spec), 0)


def block_pass_of(gmm, n_threads=1):
    """The block pass an E-step maps over the chunks, as ``FastGMM._pass`` builds it."""
    from fastelbo.mixture._gaussian_pass import (
        GaussianPassParameters,
        GaussianPassRequest,
        gaussian_block_pass,
    )

    parameters = GaussianPassParameters.of(
        gmm.weights_, gmm.means_, gmm.precisions_cholesky_, gmm.covariance_type, np.float32, True, n_threads
    )
    return functools.partial(gaussian_block_pass, parameters, GaussianPassRequest(labels=True))


def homes_of(gmm, rows):
    """Home labels of ``rows`` where the pass needs them (else None), as a fit's E-steps have them."""
    if not gmm._needs_homes(np.float32):
        return None
    return gmm._pass(rows, moments=False, labels=True, refine=False)[1]["homes"][0]


def measure_pieces(covariance_type, rows, n_components, repeats) -> dict:
    """Per-chunk pass, snapshot and statistics sizes, merge and M-step, on one core."""
    from fastelbo import FastGMM

    gmm = FastGMM(n_components, covariance_type=covariance_type, max_iter=2, random_state=0, n_jobs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gmm.fit(rows)
    block_pass = block_pass_of(gmm)
    half = rows.shape[0] // 2
    home = homes_of(gmm, rows)
    chunk_seconds = best_seconds(lambda: block_pass(rows, None, home), repeats)
    statistics, outputs, _ = block_pass(rows, None, home)
    other = block_pass(rows[:half], None, None if home is None else home[:half])[0]
    merged = statistics.merge(other)
    m_step_seconds = best_seconds(lambda: gmm._m_step(merged), repeats)
    return {
        "covariance_type": covariance_type,
        "n_components": n_components,
        "n_features": rows.shape[1],
        "chunk_rows": rows.shape[0],
        "chunk_mib": rows.nbytes / 2**20,
        "uses_home_labels": home is not None,
        "chunk_seconds": chunk_seconds,
        "rows_per_second_per_core": rows.shape[0] / chunk_seconds,
        "snapshot": pickled(block_pass, repeats),
        "statistics": pickled(statistics, repeats),
        "home_labels_bytes_kept_on_worker": int(outputs["labels"].nbytes),
        "merge_seconds": best_seconds(lambda: statistics.merge(other), repeats),
        "client_seconds_per_chunk": client_seconds_per_chunk(block_pass, repeats=repeats),
        "m_step_seconds": m_step_seconds,
        "block_pass": block_pass,
        "gmm": gmm,
    }


def client_seconds_per_chunk(block_pass, n_chunks=64, repeats=3) -> float:
    """Seconds the client spends per chunk building an E-step's graph: ``DaskRowSource`` makes one
    ``dask.delayed(_run_block, pure=False)(shared_pass, chunk, reader, span, weights, state)``
    call per chunk (a key of its own, so nothing is hashed)."""
    import dask

    from fastelbo._dask_backend import ChunkReader, _identity, _run_block

    chunks = [dask.delayed(np.zeros, pure=True)(i) for i in range(n_chunks)]
    run = dask.delayed(_run_block, pure=False)
    reader = ChunkReader(np.float32)

    def build():
        shared_pass = dask.delayed(_identity, pure=False)(block_pass)
        return [run(shared_pass, chunk, reader, (0, 1), None, None) for chunk in chunks]

    return best_seconds(build, repeats) / n_chunks


#: What dask appends to a task's name in its key: a token (32 hex digits) or, for a call with a key
#: of its own, a uuid.
_KEY_SUFFIX = re.compile(r"-(?:[0-9a-f]{32}|[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12})$")


def _task_counter():
    """A scheduler plugin counting the tasks that reach memory, by key prefix."""
    from distributed.diagnostics.plugin import SchedulerPlugin

    class TaskCounter(SchedulerPlugin):
        def __init__(self):
            self.counts = collections.Counter()

        def transition(self, key, start, finish, *args, **kwargs):
            if finish == "memory":
                name = str(key[0] if isinstance(key, tuple) else key)
                self.counts[_KEY_SUFFIX.sub("", name)] += 1

    return TaskCounter()


class _BytesSent:
    """Bytes this process writes to each TCP peer (``distributed.comm.tcp.TCP.write`` returns them).
    With a ``LocalCluster`` the client and the scheduler run here, the workers elsewhere, so writes
    to the scheduler's address are the client's (the graph) and the others the scheduler's (tasks
    to the workers, results to the client)."""

    def __init__(self):
        import distributed.comm.tcp as tcp

        self.by_peer = collections.Counter()
        self._tcp, self._write = tcp, tcp.TCP.write
        counter = self.by_peer
        original = self._write

        async def write(comm, *args, **kwargs):
            n = await original(comm, *args, **kwargs)
            counter[comm.peer_address] += n
            return n

        tcp.TCP.write = write

    def restore(self):
        self._tcp.TCP.write = self._write


def measure_on_cluster(pieces, n_chunk_pair=(8, 32), tiny_rows=64, repeats=3) -> dict:
    """On a LocalCluster of one worker process, one E-step over 8 and over 32 tiny chunks of new
    data (so no result of an earlier pass can be reused): the tasks that ran per chunk, the bytes
    the client and the scheduler sent per chunk, and the seconds per task (all slopes between the
    two chunk counts)."""
    import dask.array as da
    from dask.distributed import Client, LocalCluster

    from fastelbo._dask_backend import DaskRowSource

    gmm = pieces["gmm"]
    n_features = pieces["n_features"]
    found = {}
    sent = _BytesSent()
    try:
        with (
            LocalCluster(
                n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0"
            ) as cluster,
            Client(cluster),
        ):
            counter = _task_counter()
            cluster.scheduler.add_plugin(counter, name="count-tasks")

            seeds = itertools.count()

            def tiny_source(n_chunks):
                data = da.random.default_rng(next(seeds)).standard_normal(
                    (n_chunks * tiny_rows, n_features), chunks=(tiny_rows, n_features)
                )
                return DaskRowSource(data.astype(np.float32))

            def one_pass(n_chunks):
                # A first E-step leaves the home labels (where the model needs them) that the next
                # pass reads, as in a fit; the timed pass runs on new data, so every one of its
                # tasks is new (Dask would reuse results of a pure task it has already computed).
                gmm._em_home = None
                gmm._e_step(tiny_source(n_chunks))
                source = tiny_source(n_chunks)
                tasks, before = collections.Counter(counter.counts), collections.Counter(sent.by_peer)
                began = time.perf_counter()
                # The E-step's pass, as FastGMM._e_step makes it, without _e_step's check: the random
                # chunks lie far from the clusters the model was fitted on, so _e_step would take
                # the moments a second time about the means they move to.
                home = gmm._em_home if gmm._needs_homes(source.dtype) else None
                gmm._pass(source, moments=True, labels=True, home=home, homes_only=True)
                seconds = time.perf_counter() - began
                time.sleep(0.2)  # let the last messages go
                to_scheduler = sum(
                    n - before[peer] for peer, n in sent.by_peer.items() if peer == cluster.scheduler_address
                )
                from_scheduler = sum(
                    n - before[peer] for peer, n in sent.by_peer.items() if peer != cluster.scheduler_address
                )
                return {
                    "n_chunks": n_chunks,
                    "seconds": seconds,
                    "tasks": dict(counter.counts - tasks),
                    "bytes_client_to_scheduler": to_scheduler,
                    "bytes_from_scheduler": from_scheduler,
                }

            for n_chunks in n_chunk_pair:
                found[n_chunks] = min(
                    (one_pass(n_chunks) for _ in range(repeats)), key=lambda r: r["seconds"]
                )
            gmm._em_home = None
            task_names = sorted(counter.counts)
    finally:
        sent.restore()
    few, many = (found[n] for n in n_chunk_pair)
    extra = many["n_chunks"] - few["n_chunks"]
    # The tiny chunks are generated on the worker (random numbers, a cast); a real source reads
    # each chunk in one task (da.from_zarr's getter), so the model counts fastelbo's tasks plus one.
    own = {name: (many["tasks"].get(name, 0) - few["tasks"].get(name, 0)) / extra for name in task_names}
    own = {name: per_chunk for name, per_chunk in own.items() if name.startswith("_")}
    all_tasks = sum(many["tasks"].values()) - sum(few["tasks"].values())
    return {
        "passes": [few, many],
        "fastelbo_tasks_per_chunk": own,
        "tasks_per_chunk": sum(own.values()) + 1,
        "bytes_from_scheduler_per_chunk": (many["bytes_from_scheduler"] - few["bytes_from_scheduler"])
        / extra,
        "bytes_client_to_scheduler_per_pass": many["bytes_client_to_scheduler"],
        "seconds_per_task_here": (many["seconds"] - few["seconds"]) / max(all_tasks, 1),
        "tiny_chunk_rows": tiny_rows,
    }


@dataclasses.dataclass(frozen=True)
class Assumptions:
    cores_per_worker: int = 8
    io_gib_per_worker: float = 1.0
    network_gbit: float = 10.0
    latency_ms: float = 0.5
    task_overhead_ms: float = 1.0

    @property
    def network_bytes_per_second(self) -> float:
        return self.network_gbit * 1e9 / 8


def project(pieces, cluster, assumptions, n_rows, workers, chunk_bytes) -> dict:
    """Seconds of one EM iteration by the model of the module docstring."""
    scale = chunk_bytes / (pieces["chunk_mib"] * 2**20)  # per-chunk cost grows with its rows
    chunk_rows = pieces["chunk_rows"] * scale
    chunks = math.ceil(n_rows / chunk_rows)
    cores = workers * assumptions.cores_per_worker
    waves = math.ceil(chunks / cores)
    read = chunk_bytes / (assumptions.io_gib_per_worker * 2**30 / assumptions.cores_per_worker)
    work = waves * (read + pieces["chunk_seconds"] * scale)
    tasks = chunks * cluster["tasks_per_chunk"]
    schedule = tasks * assumptions.task_overhead_ms / 1e3
    ship = chunks * max(cluster["bytes_from_scheduler_per_chunk"], 0.0) / assumptions.network_bytes_per_second
    client = chunks * pieces["client_seconds_per_chunk"]
    depth = math.ceil(math.log2(chunks)) if chunks > 1 else 0
    tree = depth * (
        pieces["merge_seconds"]
        + pieces["statistics"]["bytes"] / assumptions.network_bytes_per_second
        + assumptions.latency_ms / 1e3
    )
    total = client + max(work, schedule + ship) + tree + pieces["m_step_seconds"]
    return {
        "n_rows": n_rows,
        "workers": workers,
        "cores": cores,
        "chunk_mib": chunk_bytes / 2**20,
        "chunks": chunks,
        "tasks": tasks,
        "compute_seconds": waves * pieces["chunk_seconds"] * scale,
        "read_seconds": waves * read,
        "client_graph_seconds": client,
        "schedule_seconds": schedule,
        "ship_seconds": ship,
        "tree_seconds": tree,
        "m_step_seconds": pieces["m_step_seconds"],
        "iteration_seconds": total,
        "bound_by": max(
            {"workers": work, "scheduler": schedule + ship, "client graph": client}.items(),
            key=lambda kv: kv[1],
        )[0],
    }


def markdown_table(rows) -> str:
    lines = [
        "| cov | N | workers (cores) | chunk | chunks | compute | read | client graph | scheduler "
        "| snapshots sent | tree | s/iteration | bound by |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['covariance_type']} | {row['n_rows']:.0e} | {row['workers']} ({row['cores']}) | "
            f"{row['chunk_mib']:.0f} MiB | {row['chunks']:,} | {row['compute_seconds']:.3g} s | "
            f"{row['read_seconds']:.3g} s | {row['client_graph_seconds']:.3g} s | "
            f"{row['schedule_seconds']:.3g} s | {row['ship_seconds']:.3g} s | "
            f"{row['tree_seconds']:.3g} s | **{row['iteration_seconds']:.3g} s** | {row['bound_by']} |"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cores-per-worker", type=int, default=Assumptions.cores_per_worker)
    parser.add_argument("--io-gib-per-worker", type=float, default=Assumptions.io_gib_per_worker)
    parser.add_argument("--network-gbit", type=float, default=Assumptions.network_gbit)
    parser.add_argument("--latency-ms", type=float, default=Assumptions.latency_ms)
    parser.add_argument("--task-overhead-ms", type=float, default=Assumptions.task_overhead_ms)
    parser.add_argument("--covariance-types", nargs="+", default=["diag", "full"], choices=["diag", "full"])
    parser.add_argument("--small", action="store_true", help="K=8, D=8, 8,192-row chunks: seconds")
    parser.add_argument("--out", help="default results/out_of_core/dask_cost_model[_small].json")
    args = parser.parse_args(argv)
    assumptions = Assumptions(
        args.cores_per_worker,
        args.io_gib_per_worker,
        args.network_gbit,
        args.latency_ms,
        args.task_overhead_ms,
    )
    n_components, n_features = (8, 8) if args.small else (64, 64)
    chunk_rows = 8192 if args.small else CHUNK_BYTES // (4 * n_features)
    rows = chunk_of_data(n_features, n_components, chunk_rows)
    load_before = load_average()
    measured, table = {}, []
    # fit() runs with NumPy's BLAS on one thread (fastelbo._threads.single_threaded_blas); the hooks
    # called here directly get the same limit, or the M-step's small solves wait for a spinning pool.
    for covariance_type in args.covariance_types:
        with threadpool_limits(1, user_api="blas"):
            pieces = measure_pieces(covariance_type, rows, n_components, args.repeats)
            cluster = measure_on_cluster(pieces, repeats=1 if args.small else 3)
        pieces.pop("block_pass"), pieces.pop("gmm")
        measured[covariance_type] = {**pieces, "cluster": cluster}
        print(
            f"{covariance_type}: chunk pass {pieces['chunk_seconds']:.4f} s "
            f"({pieces['rows_per_second_per_core'] / 1e6:.3f} M rows/s/core), snapshot "
            f"{pieces['snapshot']['bytes'] / 1024:.1f} KiB, statistics "
            f"{pieces['statistics']['bytes'] / 1024:.1f} KiB, "
            f"merge {pieces['merge_seconds'] * 1e6:.1f} us, M-step {pieces['m_step_seconds'] * 1e3:.2f} ms, "
            f"client graph {pieces['client_seconds_per_chunk'] * 1e3:.2f} ms, "
            f"{cluster['tasks_per_chunk']:.2f} tasks and "
            f"{cluster['bytes_from_scheduler_per_chunk'] / 1024:.1f} KiB sent by the scheduler per chunk, "
            f"{cluster['seconds_per_task_here'] * 1e3:.1f} ms per task here"
        )
        for chunk_bytes in PROJECTED_CHUNK_BYTES:
            for n_rows in PROJECTED_ROWS:
                for workers in PROJECTED_WORKERS:
                    table.append(
                        {
                            "covariance_type": covariance_type,
                            **project(
                                measured[covariance_type], cluster, assumptions, n_rows, workers, chunk_bytes
                            ),
                        }
                    )
    results = {
        "command": "python bench/dask_cost_model.py" + (" --small" if args.small else ""),
        "environment": environment(),
        "measured": measured,
        "assumptions": {
            **dataclasses.asdict(assumptions),
            "task_overhead_source": "https://docs.dask.org/en/stable/best-practices.html (Avoid Very Large "
            "Graphs): 'Every task comes with some overhead. This is somewhere between 200us and 1ms.'",
            "scaling": "a worker's cores each run chunks at the measured one-core rate",
        },
        "projection": table,
        "load": load_before,
        "load_after": load_average(),
    }
    out = pathlib.Path(
        args.out or RESULTS_DIR / ("dask_cost_model_small.json" if args.small else "dask_cost_model.json")
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(markdown_table(table))
    print(f"wrote {out}")
    return results


if __name__ == "__main__":
    main()
