"""The timing rule of the benchmark report: best of several calls, but one call when it is long."""

from __future__ import annotations

import time

import numpy as np

LONG_RUN_SECONDS = 20.0


def best_time(run, repeats):
    """Best of ``repeats`` timed calls of ``run``, but one call when it takes over LONG_RUN_SECONDS:
    the real-data cases would take many minutes more, for noise that is small against such a time.
    Returns (seconds, what the last call returned)."""
    best, value = np.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        value = run()
        best = min(best, time.perf_counter() - start)
        if best > LONG_RUN_SECONDS:
            break
    return best, value
