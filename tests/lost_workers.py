"""Shared by the tests that kill a Dask worker process: killing one, and waiting for its return."""

import os
import signal

#: How long the nanny may take to bring a killed worker back for later tests: a new worker process
#: imports Python, NumPy and Dask, which once took over 60 s on 2 cores shared with a compile.
RESTART_SECONDS = 300


def kill_a_worker(client):
    """SIGKILL one worker process of ``client``'s cluster."""
    pid = next(iter(client.run(os.getpid).values()))
    os.kill(pid, signal.SIGKILL)


def wait_for_restarted_workers(client, n_workers=2):
    """Block until the nanny has restarted the killed worker (later tests need the whole cluster)."""
    client.wait_for_workers(n_workers, timeout=RESTART_SECONDS)
