"""Ctrl-C latency of FastGMM on heavy shapes: the time from SIGINT to the KeyboardInterrupt.

A helper thread sends SIGINT to the process once the fit has been running for ``--after`` seconds
(inside the EM iterations or, for the ``init`` cases, inside the k-means initialisation); the main
thread records when the KeyboardInterrupt reaches it. The kernels poll for it between work items
bounded in work, so the latency should stay far below half a second whatever the shape.

Run: ``python bench/interrupt_latency.py [--quick]``; prints a Markdown table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import threading
import time
import warnings

import numpy as np

from fastelbo import FastGMM, build_info

# (name, covariance_type, n_samples, n_features, n_components, init_params, seconds before SIGINT)
HEAVY_CASES = [
    ("full 400k x 64, K=512", "full", 400_000, 64, 512, "random_from_data", 3.0),
    ("tied 400k x 128, K=1024", "tied", 400_000, 128, 1024, "random_from_data", 3.0),
    ("diag 400k x 64, K=4096", "diag", 400_000, 64, 4096, "random_from_data", 3.0),
    ("spherical 400k x 64, K=4096", "spherical", 400_000, 64, 4096, "random_from_data", 3.0),
    ("k-means init 400k x 64, K=1024", "diag", 400_000, 64, 1024, "kmeans", 1.5),
]
QUICK_CASES = [
    ("full 50k x 32, K=128", "full", 50_000, 32, 128, "random_from_data", 0.5),
    ("diag 50k x 32, K=512", "diag", 50_000, 32, 512, "random_from_data", 0.5),
    ("k-means init 50k x 32, K=512", "diag", 50_000, 32, 512, "kmeans", 0.3),
]


def well_separated(n_samples, n_features, n_components, seed=0):
    """Clusters 3 standard deviations apart per coordinate: sharp posteriors, float32 data."""
    rng = np.random.RandomState(seed)
    centres = 3.0 * rng.standard_normal((n_components, n_features))
    X = np.empty((n_samples, n_features), dtype=np.float32)
    for start in range(0, n_samples, 65536):
        stop = min(start + 65536, n_samples)
        labels = rng.randint(n_components, size=stop - start)
        X[start:stop] = centres[labels] + rng.standard_normal((stop - start, n_features))
    return X


def measure(covariance_type, X, n_components, init_params, after):
    """Seconds from SIGINT to KeyboardInterrupt in the main thread."""
    sent = {}

    def interrupt():
        time.sleep(after)
        sent["at"] = time.perf_counter()
        os.kill(os.getpid(), signal.SIGINT)

    gmm = FastGMM(
        n_components, covariance_type=covariance_type, init_params=init_params, max_iter=1000, tol=0
    )
    killer = threading.Thread(target=interrupt)
    killer.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gmm.fit(X)
    except KeyboardInterrupt:
        received = time.perf_counter()
    else:  # the fit ended before the signal: nothing was measured
        killer.join()
        return float("nan")
    killer.join()
    return received - sent["at"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small shapes (seconds, for a smoke test)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", default="bench/results/interrupt_latency.json")
    args = parser.parse_args()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    rows = []
    for name, covariance_type, n, d, k, init_params, after in QUICK_CASES if args.quick else HEAVY_CASES:
        X = well_separated(n, d, k)
        latencies = [measure(covariance_type, X, k, init_params, after) for _ in range(args.repeats)]
        rows.append({"case": name, "latencies_s": latencies, "worst_s": float(np.nanmax(latencies))})
        print(f"{name}: " + ", ".join(f"{t:.3f}" for t in latencies) + " s", flush=True)
    cpu = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
        platform.processor(),
    )
    print(f"\nCtrl-C latency on {cpu} ({os.cpu_count()} CPUs), float32, well-separated data\n")
    print("| case | latencies (s) | worst (s) |\n|---|---|---|")
    for row in rows:
        print(
            f"| {row['case']} | {', '.join(f'{t:.3f}' for t in row['latencies_s'])} | {row['worst_s']:.3f} |"
        )
    os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
    with open(args.output, "w") as f:
        json.dump({"cpu": cpu, "build_info": build_info(), "cases": rows}, f, indent=2)


if __name__ == "__main__":
    main()
