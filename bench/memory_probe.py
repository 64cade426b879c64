"""Peak memory that ``fit`` adds on top of X, measured in a process of its own.

Usage: ``python bench/memory_probe.py SYSTEM CASE_JSON MAX_ITER`` (CASE_JSON: the ``Case`` fields as a
JSON object); prints one JSON object. The data are generated first, the kernel's peak-RSS mark is
then reset (Linux ``/proc/self/clear_refs``), and the added memory is peak RSS during ``fit`` minus
RSS just before it.
"""

from __future__ import annotations

import gc
import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from cases import Case, make_data  # noqa: E402
from process_memory import reset_peak_rss, status_kib  # noqa: E402
from systems import fit_default  # noqa: E402


def main(argv):
    system, case_json, max_iter = argv
    case = Case(**json.loads(case_json))
    X = make_data(case)
    fit_default(system, case, X[:2000], max_iter=1)  # import and warm everything up first
    gc.collect()
    try:
        reset_peak_rss()
    except OSError as error:
        # Without the reset the peak may predate fit (data generation): say so rather than guess.
        print(f"cannot reset the peak-RSS mark ({error}); 'added' may be understated", file=sys.stderr)
    before = status_kib("VmRSS")
    result = fit_default(system, case, X, max_iter=int(max_iter))
    peak = status_kib("VmHWM")
    mib = 1024.0
    print(
        json.dumps(
            {
                "data_mib": X.nbytes / 2**20,
                "rss_before_mib": before / mib,
                "peak_mib": peak / mib,
                "added_mib": (peak - before) / mib,
                "n_iter": result["n_iter"],
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])
