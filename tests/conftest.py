"""Fixtures shared by several test modules."""

from __future__ import annotations

import warnings

import pytest


@pytest.fixture(scope="session")
def dask_client():
    """A real two-process Dask cluster (started once per test run), not the default scheduler:
    tests that use it make it current with ``dask_client.as_current()``, so the other dask tests
    keep Dask's local threads."""
    distributed = pytest.importorskip("distributed")
    with warnings.catch_warnings():
        # Without a dashboard the scheduler still serves its HTTP routes, on 8787 if it is free.
        warnings.filterwarnings("ignore", "Port 8787 is already in use", UserWarning)
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        )
    with cluster, distributed.Client(cluster, set_as_default=False) as client:
        yield client
