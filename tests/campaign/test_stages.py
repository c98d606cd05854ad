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


def _two_stage_lj(tmp_path, first_potential):
    from tests.campaign.helpers import lj_campaign

    data = lj_campaign(tmp_path / "pot.zarr")
    data["stages"] = [
        {
            "name": "hot",
            "potential": first_potential,
            "integrator": {"name": "langevin", "params": {"damping": 100.0}},
            "steps": 20,
            "write_interval": 10,
            "checkpoint_interval": 0,
        },
        {
            "name": "md",
            "integrator": {"name": "nve"},
            "steps": 20,
            "write_interval": 10,
            "checkpoint_interval": 0,
        },
    ]
    return CampaignSpec.from_dict(data)


def test_a_stage_runs_with_its_own_potential_and_hands_over_its_state(tmp_path):
    """Stage 1 with LJ at 2ε, stage 2 with the campaign's ε: the recorded energies are those of
    each stage's own potential (LJ energy is linear in ε at fixed positions)."""
    from ssehpc.campaign.controller import check_systems

    twice = {"name": "lj", "params": {**LJ["params"], "epsilon": 2 * LJ["params"]["epsilon"]}}
    spec = _two_stage_lj(tmp_path, twice)
    plan = expand(spec)
    hot_md, md_md = (r.mdspec() for r in plan.chains[0].runs)
    assert hot_md.potential.params["epsilon"] == pytest.approx(0.0208)
    assert md_md.potential.params["epsilon"] == pytest.approx(0.0104)
    assert check_systems(plan, {"ar"}) == {}
    ZarrStore.open(plan.store, "a")
    outcome = run_chain(plan.chains[0], TaskOptions(drain_check_s=0))
    assert outcome.status == "done", outcome
    hot, md = (assert_frames_complete(plan.store, r.run_id, 20, 10) for r in plan.chains[0].runs)
    from ssehpc.io.structure import atoms_to_state
    from ssehpc.spec import build_forces, build_potential, build_structure

    state = atoms_to_state(build_structure(hot_md), dtype=hot_md.torch_dtype)
    build_forces(md_md, build_potential(md_md), state).compute(state)
    e_hot = hot.read_frames(stop=1, fields=["energy_eV"])["energy_eV"][0, 0]
    assert e_hot == pytest.approx(2 * float(state.energy.sum()), rel=1e-9)
    # Stage 2 at stage 1's last positions, evaluated with ε: half stage 1's last energy.
    last_hot = hot.read_frames(start=-1, fields=["energy_eV"])["energy_eV"][0, 0]
    first_md = md.read_frames(stop=1, fields=["energy_eV"])["energy_eV"][0, 0]
    assert first_md == pytest.approx(0.5 * last_hot, rel=1e-6)


def test_a_stage_potential_is_checked_before_any_compute(tmp_path):
    from ssehpc.campaign.controller import check_systems

    bad = _two_stage_lj(tmp_path, {"name": "nosuch", "params": {}})
    with pytest.raises(SpecError, match="potential"):
        check_systems(expand(bad), {"ar"})
    # Committee screening on a stage whose own potential (LJ) is not a committee, while the
    # campaign's is (the shipped lips committee): checked against the stage's potential.
    data = _two_stage_lj(tmp_path, LJ).model_dump(mode="json")
    data["potential"] = {"name": "mlff", "params": {"model": "lips"}}
    data["stages"][0]["screening"] = {"trust_lo": 0.1, "trust_hi": 0.3, "stop_after": 5}
    data["stages"][1]["screening"] = {"trust_lo": 0.1, "trust_hi": 0.3, "stop_after": 5}
    with pytest.raises(SpecError, match=r"screening\.stop_after: needs a committee .* potential 'lj'"):
        check_systems(expand(CampaignSpec.from_dict(data)), {"ar"})
    data["stages"][0]["screening"] = False  # the committee stage may screen
    errors = check_systems(expand(CampaignSpec.from_dict(data)), {"ar"})
    assert "potential 'mlff'" in errors["ar"]  # Ar is unknown to lips: named by its stage's potential


def test_a_teacher_melt_stage_hands_over_to_the_committee(tmp_path):
    """The glass protocol this enables: a CHGNet-driven hot stage, then the shipped committee."""
    pytest.importorskip("chgnet")
    from ssehpc.campaign.controller import check_systems

    spec = CampaignSpec.from_dict(
        {
            "name": "teacher-melt",
            "store": str(tmp_path / "tm.zarr"),
            "systems": [
                {"id": "g", "structure": {"builder": "glass", "x": 0.75, "atoms": 24, "density": 1.7}}
            ],
            "temperatures_K": [600],
            "potential": {"name": "mlff", "params": {"model": "lips"}},
            "dt_fs": 1.0,
            "seed": 5,
            "screening": {"trust_lo": 0.1, "trust_hi": 0.25, "stop_after": 0},
            "stages": [
                {
                    "name": "melt",
                    "potential": {"name": "chgnet"},
                    "screening": False,
                    "integrator": {"name": "langevin", "params": {"damping": 50.0}},
                    "temperature_K": 1200,
                    "steps": 4,
                    "write_interval": 2,
                    "checkpoint_interval": 0,
                },
                {"name": "prod", "integrator": {"name": "nose_hoover"}, "steps": 4, "write_interval": 2},
            ],
        }
    )
    plan = expand(spec)
    assert check_systems(plan, {"g"}) == {}
    ZarrStore.open(plan.store, "a")
    outcome = run_chain(plan.chains[0], TaskOptions(drain_check_s=0))
    assert outcome.status == "done", outcome
    melt, prod = (assert_frames_complete(plan.store, r.run_id, 4, 2) for r in plan.chains[0].runs)
    assert "force_dev_max" not in melt.frame_fields  # one teacher, no committee
    assert {"force_dev_max", "force_dev_mean"} <= set(prod.frame_fields)
    assert melt.attrs["temperature_K"] == 1200
    end = read_checkpoint(melt.checkpoint_group)
    first = prod.read_frames(stop=1, fields=["positions"])["positions"][0]
    np.testing.assert_allclose(first, end.state.unwrapped_positions().numpy(), atol=2e-5)
