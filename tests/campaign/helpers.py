"""Campaign test helpers: tiny LJ argon campaign specs and trajectory checks."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ssehpc.io.zarr_store import RunStore

#: LJ argon (ε = 0.0104 eV, σ = 3.405 Å), short cutoff: tiny cells stay cheap.
LJ = {"name": "lj", "params": {"epsilon": 0.0104, "sigma": 3.405, "cutoff": 5.0}}


def lj_campaign(store: Path, **overrides: Any) -> dict[str, Any]:
    """A campaign spec dict: 32-atom fcc argon, one Langevin stage of 40 steps."""
    data: dict[str, Any] = {
        "name": "test",
        "store": str(store),
        "systems": [{"id": "ar", "structure": {"builder": "fcc", "element": "Ar", "a": 5.26, "repeat": 2}}],
        "temperatures_K": [60.0],
        "replicas": 1,
        "potential": LJ,
        "dt_fs": 5.0,
        "seed": 7,
        "stages": [
            {
                "name": "md",
                "integrator": {"name": "langevin", "params": {"damping": 100.0}},
                "steps": 40,
                "write_interval": 10,
                "checkpoint_interval": 0,
            }
        ],
        "resources": {"kind": "local", "n_workers": 2, "dashboard_address": ":0"},
    }
    data.update(overrides)
    return data


def assert_frames_complete(store: Path, run_id: str, steps: int, write_interval: int) -> RunStore:
    """The run is completed and its frames are exactly steps 0, w, 2w, ..., ``steps``: complete,
    in order, unique, finite, with no data beyond the committed frames."""
    run = RunStore.open(store, run_id)
    assert run.status == "completed", (run_id, run.status, run.error)
    frames = run.read_frames(fields=["step", "time_fs", "positions", "temperature_K"])
    expected = np.arange(0, steps + 1, write_interval) if write_interval else np.zeros(0, dtype=np.int64)
    np.testing.assert_array_equal(frames["step"], expected, err_msg=run_id)
    assert np.isfinite(frames["positions"]).all(), run_id
    for name in run.frame_fields:
        assert run.group[name].shape[0] == run.n_frames, (run_id, name)
    return run


def worker_pids(client: Any) -> set[int]:
    """Process ids of the cluster's workers."""
    return set(client.run(os.getpid).values())


def kill_worker_after_checkpoint(killed: dict[str, int], min_step: int = 200) -> Callable[[Any], None]:
    """An ``on_poll`` hook that SIGKILLs, once, the worker running a run whose checkpoint has
    reached ``min_step``; records ``{run_id: pid}`` in ``killed``."""

    def hook(snap: Any) -> None:
        if killed:
            return
        for rid, a in snap.statuses.items():
            attempts = a.get("campaign_attempts") or []
            if a.get("status") == "running" and (a.get("checkpoint_step") or 0) >= min_step and attempts:
                pid = int(attempts[-1]["pid"])
                assert pid in worker_pids(snap.client)  # never signal anything but a worker
                os.kill(pid, signal.SIGKILL)
                killed[rid] = pid
                return

    return hook
