"""One FastGMM fit in a process of its own, its resident memory sampled every ~20 ms by phase.

    python bench/out_of_core_fit.py SOURCE PATH --json-out R.json [--parameters-out P.npz]
        [--n-components 64] [--covariance-type diag] [--max-iter 100] [--tol 1e-3]
        [--start-from S.npz] [--tracemalloc]

SOURCE is ``memmap`` (``np.load(PATH, mmap_mode='r')``), ``hdf5`` (dataset ``/X`` of the HDF5 file
PATH) or ``memory`` (``np.load(PATH)``: the whole array in memory, the contrast). The model is
``FastGMM(n_components, covariance_type, max_iter, tol, random_state=0)`` with its default
initialisation (k-means on a sample of the rows for a streamed source), or, with ``--start-from``,
started from the initial parameters another run saved (``weights_init``, ``means_init``,
``precisions_init``), which is how the streamed fit is compared with the in-memory one.

The baseline is taken after every import (NumPy, scikit-learn, fastelbo, h5py); then a thread
samples ``RssAnon`` and ``RssFile`` (``rss_sampler.py``) while the estimator's hooks run inside
named phases (wrapping them changes nothing they compute): opening the data, the initialisation's
sample read and its k-means, the labelling pass that finds the first homes, every E-step and
M-step, and the final pass. ``--tracemalloc`` also records, per phase, the peak of the memory
Python and NumPy allocated (``tracemalloc``; C++ allocations of the kernels are not traced) and the
allocation sites of what is live at the end of the phase.

Writes a JSON object to ``--json-out`` and the initial and fitted parameters to
``--parameters-out``.
"""

from __future__ import annotations

import argparse
import gc
import json
import pathlib
import sys
import time
import tracemalloc
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

import fastelbo.mixture._gaussian as gaussian_module
from fastelbo import FastGMM

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from out_of_core_data import open_source  # noqa: E402
from rss_sampler import RssSampler, rss_mib, wrap_phases  # noqa: E402

ESTIMATOR_PHASES = {
    "_initialize_parameters": "initialisation",
    "_homes_for": "labelling pass (first homes)",
    "_e_step": "E-steps",
    "_m_step": "M-steps",
    "_final_pass": "final pass (labels)",
}
MODULE_PHASES = {
    "initialisation_rows": "initialisation: sample read",
    "initial_responsibilities": "initialisation: k-means",
}


class TracedPeaks:
    """Per phase: the peak of traced memory and the top allocation sites live at its end."""

    def __init__(self, sampler):
        self.by_phase = {}
        self._sampler_phase = sampler.phase
        sampler.phase = self._phase

    def _phase(self, name):
        import contextlib

        outer = self._sampler_phase

        @contextlib.contextmanager
        def traced():
            tracemalloc.reset_peak()
            with outer(name):
                yield
            current, peak = tracemalloc.get_traced_memory()
            entry = self.by_phase.setdefault(name, {"peak_traced_mib": 0.0, "live_at_end_mib": 0.0})
            if peak / 2**20 > entry["peak_traced_mib"]:
                top = tracemalloc.take_snapshot().statistics("lineno")[:8]
                entry.update(
                    peak_traced_mib=peak / 2**20,
                    live_at_end_mib=current / 2**20,
                    top_live_sites=[f"{s.size / 2**20:.1f} MiB {s.traceback}" for s in top],
                )

        return traced()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", choices=("memmap", "hdf5", "memory"))
    parser.add_argument("path")
    parser.add_argument("--json-out", required=True)
    parser.add_argument("--parameters-out")
    parser.add_argument("--n-components", type=int, default=64)
    parser.add_argument("--covariance-type", default="diag")
    parser.add_argument("--max-iter", type=int, default=100)
    parser.add_argument("--tol", type=float, default=1e-3)
    parser.add_argument("--start-from", help="an .npz of initial parameters another run saved")
    parser.add_argument("--tracemalloc", action="store_true")
    args = parser.parse_args(argv)
    if args.source == "hdf5":
        import h5py  # noqa: F401 (imported before the baseline, as the other libraries)

    gc.collect()
    baseline = rss_mib()
    if args.tracemalloc:
        tracemalloc.start(25)
    params = {}
    if args.start_from:
        start = np.load(args.start_from)
        # The precisions as float64 squares of the float32 Cholesky factors: squaring and the square
        # root the estimator takes are then exact, so it starts from bitwise the same parameters
        # (weights and means stay float32, whose sum-to-one check is float32's).
        cholesky = start["initial_precisions_cholesky"].astype(np.float64)
        if args.covariance_type == "full":
            precisions = cholesky @ np.swapaxes(cholesky, 1, 2)
        else:
            precisions = cholesky**2
        params = {
            "weights_init": start["initial_weights"],
            "means_init": start["initial_means"],
            "precisions_init": precisions,
        }
    gmm = FastGMM(
        n_components=args.n_components,
        covariance_type=args.covariance_type,
        max_iter=args.max_iter,
        tol=args.tol,
        random_state=0,
        **params,
    )
    initial = {}
    original_initialize = gmm._initialize_parameters

    def initialize_and_keep(*call_args, **kwargs):
        original_initialize(*call_args, **kwargs)
        initial.update(
            weights=gmm.weights_.copy(),
            means=gmm.means_.copy(),
            precisions_cholesky=gmm.precisions_cholesky_.copy(),
        )

    gmm._initialize_parameters = initialize_and_keep
    clock = []
    sampler = RssSampler(0.02)
    traced = TracedPeaks(sampler) if args.tracemalloc else None
    wrap_phases(sampler, gmm, ESTIMATOR_PHASES, clock)
    wrap_phases(sampler, gaussian_module, MODULE_PHASES, clock)
    began = time.perf_counter()
    with sampler:
        with sampler.phase("open data"):
            X = open_source(args.source, args.path)
        with sampler.phase("fit (validation, bookkeeping)"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                gmm.fit(X)
    fit_seconds = time.perf_counter() - began
    phase_seconds = {}
    for label, seconds in clock:
        entry = phase_seconds.setdefault(label, {"calls": 0, "seconds": 0.0})
        entry["calls"] += 1
        entry["seconds"] += seconds
    result = {
        "source": args.source,
        "path": str(args.path),
        "shape": list(X.shape),
        "dtype": str(X.dtype),
        "type": f"{type(X).__module__}.{type(X).__name__}",
        "model": (
            f"FastGMM(n_components={args.n_components}, covariance_type={args.covariance_type!r}, "
            f"max_iter={args.max_iter}, tol={args.tol}, random_state=0"
            + (", weights_init/means_init/precisions_init from a saved start)" if args.start_from else ")")
        ),
        "baseline_after_imports_mib": baseline,
        **sampler.summary(),
        "peak_above_baseline_mib": {k: v - baseline[k] for k, v in sampler.summary()["peak_mib"].items()},
        "phase_seconds": phase_seconds,
        "fit_seconds": fit_seconds,
        "n_iter": int(gmm.n_iter_),
        "converged": bool(gmm.converged_),
        "lower_bound": float(gmm.lower_bound_),
    }
    if traced is not None:
        result["tracemalloc_by_phase"] = traced.by_phase
    pathlib.Path(args.json_out).write_text(json.dumps(result, indent=1))
    if args.parameters_out:
        np.savez(
            args.parameters_out,
            initial_weights=initial["weights"],
            initial_means=initial["means"],
            initial_precisions_cholesky=initial["precisions_cholesky"],
            weights=gmm.weights_,
            means=gmm.means_,
            covariances=gmm.covariances_,
            lower_bound=np.float64(gmm.lower_bound_),
            elbo_history=np.asarray(getattr(gmm, "elbo_history_", [])),
        )


if __name__ == "__main__":
    main()
