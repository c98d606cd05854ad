"""Campaigns on a real Dask LocalCluster with real Zarr stores (no mocks).

* a 3 × 3 × 4 grid completes, every run with its frames complete, in order and unique;
* a SIGKILLed worker: Dask reschedules the replica, which resumes from its checkpoint (attempt
  record) and ends with frames equal, bit for bit, to an uninterrupted run;
* failing runs (an exploding cell, a missing structure file) are recorded as failed with their
  error, the others complete, and ``ssehpc campaign`` exits non-zero with a summary table.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from typer.testing import CliRunner

from ssehpc.campaign import CampaignSpec, expand, run_campaign
from ssehpc.campaign.task import TaskOptions, run_chain
from ssehpc.cli import app
from ssehpc.io.zarr_store import RunStore, ZarrStore
from tests.campaign.helpers import (
    assert_frames_complete,
    kill_worker_after_checkpoint,
    lj_campaign,
)


def test_grid_of_3_systems_3_temperatures_4_replicas(tmp_path, dask_client):
    store = tmp_path / "grid.zarr"
    spec = CampaignSpec.from_dict(
        lj_campaign(
            store,
            systems=[
                {
                    "id": "ar",
                    "structure": {"builder": "fcc", "element": "Ar", "a": 5.26, "repeat": 2},
                    "grid": {"a": [5.2, 5.3, 5.4]},
                }
            ],
            temperatures_K=[40, 60, 80],
            replicas=4,
        )
    )
    result = run_campaign(spec, client=dask_client, show_progress=False)
    assert result.ok, result.counts()
    assert len(result.runs) == 36
    assert result.n_done == 36
    seeds = set()
    for rec in result.runs:
        run = assert_frames_complete(store, rec.run_id, 40, 10)
        assert run.n_frames == 5
        seeds.add(run.attrs["seed"])
        assert run.attrs["campaign"]["system"] == rec.system
        assert len(run.attrs["campaign_attempts"]) == 1
    assert len(seeds) == 36
    # Each run starts at its point's temperature (3N-3 vs 3N degrees of freedom: within 4 %).
    for rec in result.runs:
        t0 = RunStore.open(store, rec.run_id).read_frames(stop=1, fields=["temperature_K"])["temperature_K"]
        assert float(t0[0, 0]) == pytest.approx(rec.temperature_K, rel=0.04)
    # Running it again does nothing and leaves everything done.
    again = run_campaign(spec, client=dask_client, show_progress=False)
    assert again.ok
    assert again.simulated_fs == 0.0
    assert all(r.attempts == 1 for r in again.runs)


def test_sigkill_worker_mid_run_resumes_from_checkpoint(tmp_path, dask_client):
    store = tmp_path / "kill.zarr"
    spec = CampaignSpec.from_dict(
        lj_campaign(
            store,
            replicas=4,
            stages=[
                {
                    "name": "eq",
                    "integrator": {"name": "langevin"},
                    "steps": 20,
                    "write_interval": 0,
                    "checkpoint_interval": 0,
                },
                {
                    "name": "prod",
                    "integrator": {"name": "nve"},
                    "steps": 600,
                    "write_interval": 10,
                    "checkpoint_interval": 100,
                },
            ],
        )
    )
    killed: dict[str, int] = {}
    kill_a_worker = kill_worker_after_checkpoint(killed)

    result = run_campaign(
        spec, client=dask_client, show_progress=False, poll_interval_s=0.2, on_poll=kill_a_worker
    )
    assert killed, "no run reached its second checkpoint while polled"
    assert result.ok, result.counts()
    for rec in result.runs:
        steps, every = (20, 0) if rec.stage == "eq" else (600, 10)
        assert_frames_complete(store, rec.run_id, steps, every)
    ((rid, pid),) = killed.items()
    attempts = RunStore.open(store, rid).attrs["campaign_attempts"]
    assert len(attempts) == 2
    assert attempts[0]["pid"] == pid
    assert attempts[1]["start_step"] >= 200  # resumed from the checkpoint, not from scratch
    # Bit for bit the uninterrupted trajectory: run the same chain again, serially, elsewhere.
    chain = next(c for c in expand(spec).chains if any(r.run_id == rid for r in c.runs))
    ref_store = tmp_path / "reference.zarr"
    ref = replace(
        chain,
        store=str(ref_store),
        runs=tuple(replace(r, md={**r.md, "store": str(ref_store)}) for r in chain.runs),
    )
    ZarrStore.open(ref_store, "a")  # workers never create a store: the controller does
    assert run_chain(ref, TaskOptions(drain_check_s=0)).status == "done"
    got = RunStore.open(store, rid).read_frames(fields=["positions", "step"])
    want = RunStore.open(ref_store, rid).read_frames(fields=["positions", "step"])
    np.testing.assert_array_equal(got["step"], want["step"])
    np.testing.assert_array_equal(got["positions"], want["positions"])


def test_failing_runs_do_not_stop_the_others(tmp_path, dask_client):
    store = tmp_path / "fail.zarr"
    data = lj_campaign(
        store,
        systems=[
            {"id": "good", "structure": {"builder": "fcc", "element": "Ar", "a": 5.26, "repeat": 2}},
            {"id": "boom", "structure": {"builder": "fcc", "element": "Ar", "a": 2.0, "repeat": 2}},
            {"id": "nofile", "structure": {"file": str(tmp_path / "missing.xyz")}},
        ],
        temperatures_K=[60, 80],
        stages=[
            {"name": "a", "steps": 20, "write_interval": 10, "checkpoint_interval": 0},
            {"name": "b", "steps": 20, "write_interval": 10, "checkpoint_interval": 0},
        ],
    )
    spec_file = tmp_path / "fail.yaml"
    import yaml

    spec_file.write_text(yaml.safe_dump(data))
    address = dask_client.scheduler.address
    res = CliRunner().invoke(app, ["campaign", str(spec_file), "--scheduler", address, "--no-progress"])
    assert res.exit_code == 1, res.output
    assert "failed" in res.output
    assert "NonFiniteError" in res.output
    for t in ("60", "80"):
        for stage in ("a", "b"):
            assert_frames_complete(store, f"good_T{t}_r0_{stage}", 20, 10)
        boom = RunStore.open(store, f"boom_T{t}_r0_a")
        assert boom.status == "failed"
        assert boom.error.startswith("NonFiniteError: non-finite or exploding")
        missing = RunStore.open(store, f"nofile_T{t}_r0_a")
        assert missing.status == "failed"
        assert "missing.xyz' does not exist" in missing.error
        for sid in ("boom", "nofile"):
            assert RunStore.open(store, f"{sid}_T{t}_r0_b").status == "pending"  # never started
    # Again: failed runs are reported, not rerun; the exit code stays 1.
    res = CliRunner().invoke(app, ["campaign", str(spec_file), "--scheduler", address, "--no-progress"])
    assert res.exit_code == 1, res.output
    assert "0 replicas to run" in res.output


@pytest.fixture(autouse=True)
def _no_leftover_workers(dask_client):
    """Every test leaves the shared cluster with its two workers."""
    yield
    dask_client.wait_for_workers(2, timeout=120)
