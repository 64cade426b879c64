"""Peak memory and seconds per iteration of a FastPoissonMixture (or FastBernoulliMixture) fit on a
memory-mapped CSR matrix of the Zipf counts of ``sparse_counts.py``, against the same matrix in
memory, from the same start.

Usage::

    python bench/sparse_out_of_core.py [--n-samples 1000000] [--n-features 50000]
        [--density 0.002] [--n-components 100] [--max-iter 3] [--family poisson]
        [--data-dir DIR] [--out-dir bench/results/exponential_family] [--small]

The counts are drawn once (``sparse_counts.sparse_counts``, seed 0; binarised for the Bernoulli)
and saved as ``data.npy``, ``indices.npy`` and ``indptr.npy`` in ``--data-dir``, with the initial
parameters (``start.npz``: uniform weights and the means of K rows drawn with seed 0, smoothed
toward the column means as the estimators' seeding does). Then each case runs in a process of its
own (``--child``), so that its memory is its own:

- ``memmap``: the three arrays opened with ``np.load(mmap_mode='r')`` and wrapped in a
  ``scipy.sparse.csr_array`` (nothing copied): the estimator streams it in blocks of rows;
- ``memory``: the three arrays loaded into memory (``np.load``), the same CSR: one block.

Each child records, after its imports (the baseline), ``RssAnon`` (memory the process allocated)
and ``RssFile`` (file pages mapped in: the memmap's pages as they are read, which the kernel may drop)
sampled every ~20 ms (``rss_sampler.py``) during a fit of ``--max-iter`` iterations with ``tol=0``
from ``start.npz``, and the fit's wall-clock seconds per iteration (the whole fit divided by its
iterations: the initialisation is the given start, so nearly all of it is E-steps and M-steps).
The parent checks that both fits agree (means, lower bound) and writes ``sparse_out_of_core.json``
and ``sparse_out_of_core.md`` to ``--out-dir``.

``--small`` is a quick run for the tests (20,000 x 2,000, K=8, 2 iterations, 1 MiB blocks).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
import time

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from exponential_family_speed import cpu_name  # noqa: E402 (found through HERE)

SMALL = {"n_samples": 20_000, "n_features": 2_000, "density": 0.01, "n_components": 8, "max_iter": 2}


def write_data(args, data_dir: pathlib.Path) -> dict:
    """Draw the counts, save their CSR arrays and the start; return a description."""
    import sparse_counts

    started = time.perf_counter()
    X = sparse_counts.sparse_counts(args.n_samples, args.n_features, args.density, random_state=0)
    if args.family == "bernoulli":
        X = sparse_counts.binarized(X)
    generation = time.perf_counter() - started
    data_dir.mkdir(parents=True, exist_ok=True)
    for name in ("data", "indices", "indptr"):
        np.save(data_dir / f"{name}.npy", getattr(X, name))
    rng = np.random.default_rng(0)
    rows = rng.choice(X.shape[0], size=args.n_components, replace=False)
    xbar = np.asarray(X.mean(axis=0)).ravel()
    means = 0.5 * (X[rows].toarray() + xbar)
    np.savez(data_dir / "start.npz", weights=np.full(args.n_components, 1.0 / args.n_components), means=means)
    described = {
        "shape": [int(n) for n in X.shape],
        "nnz": int(X.nnz),
        "density": X.nnz / (X.shape[0] * X.shape[1]),
        "csr_bytes": int(X.data.nbytes + X.indices.nbytes + X.indptr.nbytes),
        "index_dtype": str(X.indices.dtype),
        "generation_seconds": generation,
    }
    return described


def child(args) -> None:
    """One fit in this process (``--child memmap|memory``); prints a JSON line."""
    import scipy.sparse as sp
    from sklearn.exceptions import ConvergenceWarning

    import fastelbo._sparse_row_source as sparse_row_source
    from fastelbo import FastBernoulliMixture, FastPoissonMixture
    from rss_sampler import RssSampler, rss_mib

    if args.block_bytes:  # blocks of that many bytes of non-zeros, however many columns
        sparse_row_source.BLOCK_BYTES = args.block_bytes
        sparse_row_source.MIN_NONZEROS_PER_FEATURE = 0
    import warnings

    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    data_dir = pathlib.Path(args.data_dir)
    estimator = FastPoissonMixture if args.family == "poisson" else FastBernoulliMixture
    start = np.load(data_dir / "start.npz")
    model = estimator(
        n_components=args.n_components,
        max_iter=args.max_iter,
        tol=0.0,
        weights_init=start["weights"],
        means_init=start["means"],
        random_state=0,
    )
    # Warm-up of the imports and the kernel's first call, on a few rows of the start.
    estimator(n_components=2, max_iter=1, random_state=0).fit(sp.csr_array(np.ones((4, 3))))
    baseline = rss_mib()
    mode = "r" if args.child == "memmap" else None
    opened = time.perf_counter()
    parts = {
        name: np.load(data_dir / f"{name}.npy", mmap_mode=mode) for name in ("data", "indices", "indptr")
    }
    with RssSampler() as sampler:
        with sampler.phase("load"):
            X = sp.csr_array((parts["data"], parts["indices"], parts["indptr"]), shape=tuple(args.shape))
            load_seconds = time.perf_counter() - opened
        with sampler.phase("fit"):
            started = time.perf_counter()
            model.fit(X)
            fit_seconds = time.perf_counter() - started
    summary = sampler.summary()
    print(
        json.dumps(
            {
                "source": args.child,
                "streamed_blocks": None
                if args.child == "memory"
                else len(sparse_row_source.SparseRowSource(X).spans()),
                "baseline_after_imports_mib": baseline,
                "peak_mib": summary["peak_mib"],
                "phase_peak_mib": summary["phase_peak_mib"],
                "load_seconds": load_seconds,
                "fit_seconds": fit_seconds,
                "n_iter": int(model.n_iter_),
                "seconds_per_iteration": fit_seconds / max(int(model.n_iter_), 1),
                "lower_bound": float(model.lower_bound_),
                "means_path": str(data_dir / f"means_{args.child}.npy"),
            }
        )
    )
    np.save(data_dir / f"means_{args.child}.npy", model.means_)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=1_000_000)
    parser.add_argument("--n-features", type=int, default=50_000)
    parser.add_argument("--density", type=float, default=0.002)
    parser.add_argument("--n-components", type=int, default=100)
    parser.add_argument("--max-iter", type=int, default=3)
    parser.add_argument("--family", choices=("poisson", "bernoulli"), default="poisson")
    parser.add_argument("--data-dir", default="/tmp/fastelbo_sparse_out_of_core")
    parser.add_argument("--out-dir", default=str(HERE / "results" / "exponential_family"))
    parser.add_argument(
        "--block-bytes",
        type=int,
        default=0,
        help="blocks of this many bytes of non-zeros (0: the default rule)",
    )
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--child", choices=("memmap", "memory"), help=argparse.SUPPRESS)
    parser.add_argument("--shape", type=int, nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.small:
        for name, value in SMALL.items():
            setattr(args, name, value)
        args.block_bytes = args.block_bytes or 2**20
    if args.child:
        child(args)
        return None

    data = write_data(args, pathlib.Path(args.data_dir))
    cases = {}
    for source in ("memmap", "memory"):
        command = [
            sys.executable,
            __file__,
            "--child",
            source,
            "--shape",
            *map(str, data["shape"]),
            "--data-dir",
            args.data_dir,
            "--family",
            args.family,
            "--n-components",
            str(args.n_components),
            "--max-iter",
            str(args.max_iter),
            "--block-bytes",
            str(args.block_bytes),
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=True)
        cases[source] = json.loads(result.stdout.strip().splitlines()[-1])
    streamed = np.load(cases["memmap"]["means_path"])
    in_memory = np.load(cases["memory"]["means_path"])
    agreement = {
        "means_max_relative": float(np.max(np.abs(streamed - in_memory)) / np.max(np.abs(in_memory))),
        "lower_bound_difference": abs(cases["memmap"]["lower_bound"] - cases["memory"]["lower_bound"]),
    }
    results = {
        "environment": {"cpu": cpu_name(), "load_average": list(_load_average())},
        "parameters": {
            "family": args.family,
            "n_components": args.n_components,
            "max_iter": args.max_iter,
            "block_bytes": args.block_bytes or None,
        },
        "data": data,
        "cases": cases,
        "agreement": agreement,
    }
    out_dir = pathlib.Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "sparse_out_of_core.json").write_text(json.dumps(results, indent=2) + "\n")
    (out_dir / "sparse_out_of_core.md").write_text(report(results))
    print(report(results))
    return results


def _load_average():
    try:
        with open("/proc/loadavg") as loadavg:
            return [float(x) for x in loadavg.read().split()[:3]]
    except OSError:
        return []


def report(results) -> str:
    """A short Markdown summary of ``results``."""
    data, p = results["data"], results["parameters"]
    n, d = data["shape"]
    lines = [
        "# Memory-mapped CSR vs in-memory CSR: one fit each",
        "",
        f"Fast{p['family'].capitalize()}Mixture, K={p['n_components']}, {p['max_iter']} iterations "
        f"(tol=0) from the same start, on `sparse_counts.py` Zipf counts: N={n:,}, D={d:,}, "
        f"nnz={data['nnz']:,} (density {data['density']:.4%}), CSR {data['csr_bytes'] / 2**20:,.0f} MiB "
        f"({data['index_dtype']} indices). CPU: {results['environment']['cpu']}, load average "
        f"{results['environment']['load_average']}. Each fit in a process of its own; memory above "
        "the baseline after imports.",
        "",
        "| source | blocks | peak RssAnon − baseline (MiB) | of it during the fit | peak RssFile (MiB) "
        "| fit (s) | s / iteration |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, case in results["cases"].items():
        baseline = case["baseline_after_imports_mib"]["RssAnon"]
        anon = case["peak_mib"]["RssAnon"] - baseline
        loaded = case["phase_peak_mib"].get("load", {}).get("RssAnon", baseline)
        during_fit = case["phase_peak_mib"]["fit"]["RssAnon"] - loaded
        lines.append(
            f"| {name} | {case['streamed_blocks'] or 1} | {anon:,.0f} | {during_fit:,.0f} | "
            f"{case['peak_mib']['RssFile']:,.0f} | {case['fit_seconds']:.1f} | "
            f"{case['seconds_per_iteration']:.2f} |"
        )
    a = results["agreement"]
    lines += [
        "",
        f"Agreement: means max relative difference {a['means_max_relative']:.2e}, lower bound "
        f"difference {a['lower_bound_difference']:.2e}.",
        "",
        '"of it during the fit": the fit\'s peak above what the process held once X was opened '
        '(the whole CSR for the in-memory case). "s / iteration": the fit\'s seconds over its '
        "iterations, the final labelling pass included (one pass more than the iterations). The "
        "streamed fit's own memory is mostly K x D float64 arrays: the parameters, the pass's "
        "snapshot, the kernel's per-thread sums, and the partial statistics the fixed-order merge "
        "of the blocks holds (at most about log2(blocks) of them), not the data.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
