"""One real Dask LocalCluster per test process for the campaign tests.

The cluster is session-scoped (each pytest-xdist process starts its own): starting worker
processes and importing torch in them costs ~10 s on a loaded two-core machine, more than the
campaigns themselves.  Tests that kill a worker leave the cluster usable (the nanny restarts it).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def dask_client() -> Iterator[Any]:
    """A real ``LocalCluster`` of two worker processes (one thread each) and its client."""
    pytest.importorskip("distributed", reason="needs the 'campaign' extra")
    from distributed import Client, LocalCluster

    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster,
        Client(cluster) as client,
    ):
        yield client
