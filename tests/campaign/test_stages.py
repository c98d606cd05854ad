"""Stages and runs without a cluster: the ``from_run`` structure source, Li–P–S systems with the
shipped committee, and draining (checkpoint and stop when the worker retires)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from ssehpc.campaign import CampaignSpec, expand
from ssehpc.campaign.task import DrainWatch, TaskOptions, WorkerDraining, _checkpoint_now, run_chain
from ssehpc.io.checkpoint import read_checkpoint
from ssehpc.io.zarr_store import RunStore, ZarrStore
from ssehpc.spec import MDSpec, SpecError, prepare_resume, prepare_run
from tests.campaign.helpers import LJ, assert_frames_complete


def test_lips_glass_and_prototype_chains_with_the_shipped_committee(tmp_path):
    spec = CampaignSpec.from_dict(
        {
            "name": "lips",
            "store": str(tmp_path / "lips.zarr"),
            "systems": [
                {"id": "glass", "structure": {"builder": "glass", "x": 0.75, "atoms": 24, "density": 1.7}},
                {
                    "id": "gamma",
                    "structure": {"builder": "prototype", "name": "gamma-Li3PS4", "target_atoms": 16},
                },
            ],
            "temperatures_K": [600],
            "potential": {"name": "mlff", "params": {"model": "lips-v0"}},
            "dt_fs": 1.0,
            "seed": 3,
            "stages": [
                {
                    "name": "melt",
                    "integrator": {"name": "langevin", "params": {"damping": 50.0}},
                    "steps": 30,
                    "temperature_K": 1000,
                    "write_interval": 10,
                    "checkpoint_interval": 0,
                },
                {
                    "name": "prod",
                    "integrator": {"name": "nose_hoover"},
                    "steps": 30,
                    "write_interval": 10,
                    "checkpoint_interval": 10,
                },
            ],
        }
    )
    plan = expand(spec)
    ZarrStore.open(plan.store, "a")  # the controller's job
    for chain in plan.chains:
        outcome = run_chain(chain, TaskOptions(drain_check_s=0))
        assert outcome.status == "done", outcome
        melt, prod = (assert_frames_complete(plan.store, r.run_id, 30, 10) for r in chain.runs)
        assert {"force_dev_max", "force_dev_mean"} <= set(prod.frame_fields)
        assert prod.attrs["temperature_K"] == 600
        assert melt.attrs["temperature_K"] == 1000
        # Stage 2 starts where stage 1 ended: same (unwrapped) positions, same momenta.
        end = read_checkpoint(melt.checkpoint_group)
        first = prod.read_frames(stop=1, fields=["positions", "temperature_K", "cell"])
        np.testing.assert_allclose(first["positions"][0], end.state.unwrapped_positions().numpy(), atol=2e-5)
        np.testing.assert_allclose(first["cell"][0], end.state.cell.numpy())
        last_melt_t = melt.read_frames(start=-1, fields=["temperature_K"])["temperature_K"]
        # Same kinetic energy; Nosé–Hoover counts 3N-3 degrees of freedom, Langevin 3N.
        n = melt.n_atoms
        assert first["temperature_K"][0, 0] == pytest.approx(
            last_melt_t[0, 0] * 3 * n / (3 * n - 3), rel=1e-9
        )
    # Everything done: a second pass only skips.
    again = run_chain(plan.chains[0], TaskOptions(drain_check_s=0))
    assert again.status == "done"
    assert all(r.skipped for r in again.runs)


def _lj_spec(store, run_id, **kw):
    data = {
        "run_id": run_id,
        "store": str(store),
        "structure": {"builder": "fcc", "element": "Ar", "a": 5.26, "repeat": 2},
        "potential": LJ,
        "integrator": {"name": "nve"},
        "temperature_K": 60.0,
        "dt_fs": 5.0,
        "steps": 20,
        "write_interval": 10,
        "checkpoint_interval": 0,
        "thermo_interval": 0,
    }
    data.update(kw)
    return MDSpec.from_dict(data)


def test_from_run_needs_a_completed_run(tmp_path):
    store = tmp_path / "s.zarr"
    first = prepare_run(_lj_spec(store, "a"))
    nxt = _lj_spec(store, "b", structure={"from_run": "a"})
    with pytest.raises(SpecError, match=r"structure\.from_run: run 'a' of store .* has status 'created'"):
        prepare_run(nxt)
    first.execute()
    with pytest.raises(SpecError, match=r"structure\.from_run: store .* has no run 'zz'"):
        prepare_run(_lj_spec(store, "c", structure={"from_run": "zz"}))
    redraw = prepare_run(
        _lj_spec(
            store, "d", structure={"from_run": "a", "velocities": "maxwell_boltzmann"}, temperature_K=30.0
        )
    )
    redraw.execute()
    t0 = RunStore.open(store, "d").read_frames(stop=1, fields=["temperature_K"])["temperature_K"]
    assert t0[0, 0] == pytest.approx(30.0)  # fresh momenta at the new temperature (NVE: 3N-3 dof)


def test_draining_worker_checkpoints_and_the_run_resumes(tmp_path):
    store = tmp_path / "drain.zarr"
    spec = _lj_spec(store, "r", steps=100, checkpoint_interval=40)
    mdrun = prepare_run(spec)
    sim = mdrun.simulation
    worker = SimpleNamespace(status=None)
    watch = DrainWatch(sim, lambda: _checkpoint_now(sim), every_s=0.0)
    watch._worker = worker  # a stand-in for distributed.get_worker(): only .status is read

    def progress(done, total):
        retiring = sim.state.step >= 57
        worker.status = SimpleNamespace(name="closing_gracefully" if retiring else "running")
        watch(done, total)

    sim.progress = progress
    with pytest.raises(WorkerDraining, match="checkpointed at step 57"):
        mdrun.execute()
    run = RunStore.open(store, "r")
    assert run.status == "interrupted"
    assert run.attrs["checkpoint_step"] == 57
    resumed = prepare_resume(store, "r")
    assert resumed.simulation.state.step == 57
    resumed.execute()
    assert_frames_complete(store, "r", 100, 10)
