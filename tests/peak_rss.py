"""The peak anonymous memory (``RssAnon``) a piece of work adds in a fresh Python process, for
the tests that show a streamed X is never copied whole into memory.

:func:`measure` runs ``PREAMBLE`` plus a test's script in a new interpreter. The script prepares
its data and model, then calls ``report(work, **fields)``: it samples ``RssAnon`` every 2 ms
while ``work()`` runs and prints one JSON line with the baseline, the peak and the fields that
``work()`` returns.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

PREAMBLE = textwrap.dedent(
    """
    import json, sys, threading, time, warnings
    import numpy as np, scipy.sparse as sp
    import fastelbo._row_source as row_source

    def rss_anon():
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024

    def report(work):
        peak, done = [rss_anon()], threading.Event()
        baseline = peak[0]

        def sample():
            while not done.is_set():
                peak[0] = max(peak[0], rss_anon())
                time.sleep(0.002)

        thread = threading.Thread(target=sample)
        thread.start()
        fields = work()
        done.set()
        thread.join()
        peak[0] = max(peak[0], rss_anon())
        print(json.dumps({"baseline": baseline, "peak": peak[0], **fields}))
    """
)


def measure(script, *args):
    """The JSON line ``PREAMBLE + script`` prints, run with ``args`` as ``sys.argv[1:]``."""
    result = subprocess.run(
        [sys.executable, "-c", PREAMBLE + textwrap.dedent(script), *map(str, args)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])
