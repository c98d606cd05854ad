"""Batched replicas (``resources.batch``): small runs advanced as one batched state keep their own
trajectories, run groups and checkpoints; a failing replica fails alone; a killed worker's batch
resumes from the replicas' checkpoints."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from ssehpc.campaign import CampaignSpec, expand, run_campaign
from ssehpc.campaign.batch import ChainBatch, plan_batches
from ssehpc.io.zarr_store import RunStore
from ssehpc.spec import prepare_resume
from tests.campaign.helpers import (
    assert_frames_complete,
    kill_worker_after_checkpoint,
    lj_campaign,
)

AR = {"builder": "fcc", "element": "Ar", "a": 5.26, "repeat": 2}  # 32 atoms

TWO_STAGES = [
    {
        "name": "eq",
        "integrator": {"name": "npt", "params": {"tau_p": 200.0, "compressibility": 0.4}},
        "steps": 30,
        "write_interval": 10,
        "checkpoint_interval": 20,
    },
    {
        "name": "md",
        "integrator": {"name": "langevin", "params": {"damping": 100.0}},
        "steps": 40,
        "write_interval": 10,
        "checkpoint_interval": 0,
    },
]


def _spec(store, batch: int, **overrides) -> CampaignSpec:
    data = lj_campaign(
        store,
        systems=[{"id": "ar", "structure": AR, "grid": {"a": [5.26, 5.4]}}],
        temperatures_K=[40.0, 80.0],
        replicas=2,
        stages=TWO_STAGES,
        dtype="float64",
    )
    data.update(overrides)
    data["resources"] = {**data["resources"], "batch": {"max_replicas": batch}}
    return CampaignSpec.from_dict(data)


def test_plan_batches_respects_caps_and_compatibility(tmp_path) -> None:
    plan = expand(_spec(tmp_path / "p.zarr", 1))
    chains = list(plan.chains)  # 2 systems x 2 T x 2 replicas, 32 atoms each
    assert len(chains) == 8
    sizes = {"ar_a5.26": 32, "ar_a5.4": 32}
    units = plan_batches(chains, max_replicas=3, max_atoms=10_000, n_atoms=sizes)
    assert [len(u.chains) if isinstance(u, ChainBatch) else 1 for u in units] == [3, 3, 2]
    # every chain exactly once, in plan order
    flat = [c for u in units for c in (u.chains if isinstance(u, ChainBatch) else (u,))]
    assert [c.chain_id for c in flat] == [c.chain_id for c in chains]
    # the atom cap: 70 atoms fit two 32-atom replicas; a system above the cap runs alone
    units = plan_batches(chains, max_replicas=8, max_atoms=70, n_atoms={"ar_a5.26": 32, "ar_a5.4": 100})
    assert sorted(len(u.chains) if isinstance(u, ChainBatch) else 1 for u in units) == [1, 1, 1, 1, 2, 2]
    # runs whose stages differ (here: the time step of one chain) are never batched together
    odd = replace(chains[1], runs=tuple(replace(r, md={**r.md, "dt_fs": 2.0}) for r in chains[1].runs))
    units = plan_batches([chains[0], odd, chains[2]], max_replicas=8, max_atoms=10_000, n_atoms=sizes)
    batched = [u for u in units if isinstance(u, ChainBatch)]
    assert len(batched) == 1
    assert {c.chain_id for c in batched[0].chains} == {chains[0].chain_id, chains[2].chain_id}
    # no batching asked for
    assert plan_batches(chains, max_replicas=1, max_atoms=10_000, n_atoms=sizes) == chains


def test_batched_campaign_equals_unbatched(tmp_path, dask_client) -> None:
    solo = run_campaign(_spec(tmp_path / "solo.zarr", 1), client=dask_client, show_progress=False)
    batched = run_campaign(_spec(tmp_path / "batch.zarr", 4), client=dask_client, show_progress=False)
    assert solo.ok, solo.counts()
    assert batched.ok, batched.counts()
    assert len(batched.runs) == 16
    for rec in batched.runs:
        steps = 30 if rec.stage == "eq" else 40
        run = assert_frames_complete(tmp_path / "batch.zarr", rec.run_id, steps, 10)
        assert run.attrs["batch"].startswith("batch-4x-"), rec.run_id  # really ran batched
        assert run.attrs["campaign_attempts"][-1]["batch"].endswith("(4 runs)")
        ref = RunStore.open(tmp_path / "solo.zarr", rec.run_id)
        assert "batch" not in ref.attrs
        got = run.read_frames(fields=["positions", "cell", "temperature_K", "energy_eV"])
        want = ref.read_frames(fields=["positions", "cell", "temperature_K", "energy_eV"])
        for name in got:
            np.testing.assert_allclose(
                got[name], want[name], rtol=1e-9, atol=1e-6, err_msg=f"{rec.run_id} {name}"
            )
    # the replicas really differ (their own seeds and temperatures were used)
    a = RunStore.open(tmp_path / "batch.zarr", "ar_a5.26_T40_r0_md").read_frames(fields=["positions"])
    b = RunStore.open(tmp_path / "batch.zarr", "ar_a5.26_T40_r1_md").read_frames(fields=["positions"])
    assert np.abs(a["positions"][-1] - b["positions"][-1]).max() > 1e-2
    t40 = RunStore.open(tmp_path / "batch.zarr", "ar_a5.26_T40_r0_md").read_frames(fields=["temperature_K"])
    t80 = RunStore.open(tmp_path / "batch.zarr", "ar_a5.26_T80_r0_md").read_frames(fields=["temperature_K"])
    assert t80["temperature_K"].mean() > 1.4 * t40["temperature_K"].mean()

    # A replica's checkpoint from the batch is a single run's checkpoint: it resumes alone
    # (here: extended by 20 steps) and follows the run that was never batched.
    ext = {}
    for name in ("solo", "batch"):
        mdrun = prepare_resume(tmp_path / f"{name}.zarr", "ar_a5.4_T80_r1_md", steps=60)
        assert mdrun.simulation.state.n_systems == 1
        mdrun.execute()
        ext[name] = RunStore.open(tmp_path / f"{name}.zarr", "ar_a5.4_T80_r1_md").read_frames(
            fields=["positions", "step"]
        )
    np.testing.assert_array_equal(ext["batch"]["step"], np.arange(0, 61, 10))
    np.testing.assert_allclose(ext["batch"]["positions"], ext["solo"]["positions"], atol=1e-5)


def test_failing_replica_fails_alone(tmp_path, dask_client) -> None:
    """One replica of a batch explodes: the batch continues replica by replica, so the others
    complete with complete frames and only the exploding one is failed, with its own error."""
    spec = _spec(
        tmp_path / "boom.zarr",
        4,
        systems=[
            {"id": "good", "structure": AR},
            {"id": "boom", "structure": {**AR, "a": 2.0}},
        ],
        temperatures_K=[60.0],
        stages=[{**TWO_STAGES[1], "name": "eq", "steps": 30}, TWO_STAGES[1]],
    )
    result = run_campaign(spec, client=dask_client, show_progress=False)
    by_id = {r.run_id: r for r in result.runs}
    for rep in (0, 1):
        for stage, steps in (("eq", 30), ("md", 40)):
            run = assert_frames_complete(tmp_path / "boom.zarr", f"good_T60_r{rep}_{stage}", steps, 10)
            if stage == "eq":  # the batch was tried, then continued alone
                notes = [a.get("batch") for a in run.attrs["campaign_attempts"]]
                assert notes[0] is not None, notes
                assert notes[-1] is None, notes
        boom = by_id[f"boom_T60_r{rep}_eq"]
        assert boom.status == "failed"
        assert boom.error.startswith("NonFiniteError"), boom.error
        assert by_id[f"boom_T60_r{rep}_md"].status == "pending"


def test_sigkill_worker_mid_batch_resumes_from_checkpoints(tmp_path, dask_client) -> None:
    store = tmp_path / "kill.zarr"
    spec = _spec(
        store,
        4,
        temperatures_K=[60.0],
        stages=[
            {
                "name": "prod",
                "integrator": {"name": "langevin"},
                "steps": 800,
                "write_interval": 10,
                "checkpoint_interval": 100,
            }
        ],
    )
    killed: dict[str, int] = {}
    kill_a_worker = kill_worker_after_checkpoint(killed)

    result = run_campaign(
        spec, client=dask_client, show_progress=False, poll_interval_s=0.2, on_poll=kill_a_worker
    )
    assert killed, "no run reached its second checkpoint while polled"
    assert result.ok, result.counts()
    ((rid, pid),) = killed.items()
    for rec in result.runs:
        assert_frames_complete(store, rec.run_id, 800, 10)
    batch_mates = [
        r.run_id
        for r in result.runs
        if RunStore.open(store, r.run_id).attrs["campaign_attempts"][0]["pid"] == pid
    ]
    assert rid in batch_mates
    assert len(batch_mates) >= 2
    # A retried batch whose members' checkpoints disagree (a kill between two checkpoint writes)
    # runs them one by one; when they agree it may run them batched again.  Either way each
    # resumes from its own checkpoint, and the frames are complete (above).
    for mate in batch_mates:
        attempts = RunStore.open(store, mate).attrs["campaign_attempts"]
        assert len(attempts) == 2, (mate, attempts)
        # from the checkpoint, not from scratch (the killed run had reached 200; a batch mate may
        # have been killed before its own checkpoint of that step was written)
        assert attempts[1]["start_step"] >= (200 if mate == rid else 100), (mate, attempts)


@pytest.fixture(autouse=True)
def _no_leftover_workers(dask_client):
    yield
    dask_client.wait_for_workers(2, timeout=60)
