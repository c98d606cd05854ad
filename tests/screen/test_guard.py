"""The extrapolation stop: a committee run driven out of its range stops and is flagged, a run
that stays in range is not, and the stop keeps the evidence (frames) and the checkpoint before."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from ssehpc.forces import ForceCompute
from ssehpc.integrators.nve import VelocityVerlet
from ssehpc.io.checkpoint import read_checkpoint
from ssehpc.io.zarr_store import COMMITTEE_FRAME_FIELDS, RunStore, ZarrStore
from ssehpc.potentials.lj import LennardJones
from ssehpc.screen import ExtrapolationGuard, ExtrapolationStop
from ssehpc.simulation import CheckpointWriter, Periodic, Simulation, ZarrFrameWriter
from ssehpc.spec import MDSpec, SpecError, _operations, prepare_run
from tests.conftest import fcc_argon
from tests.screen.conftest import COLD, HOT, lips_spec


def scripted_deviation(forces: ForceCompute, values: dict[int, float]) -> None:
    """Make ``forces`` report ``force_dev_max = values[step]`` (eV/Å) for the step being computed."""
    real = forces.compute

    def compute(st, *, extras=True):
        real(st, extras=extras)
        dev = torch.tensor([values.get(st.step + 1, 0.0)], dtype=torch.float64)
        forces.extras = {**forces.extras, "force_dev_max": dev, "force_dev_mean": dev / 2}

    forces.compute = compute


def test_a_dip_below_trust_hi_resets_the_count(tmp_path):
    # checks every step; above 0.2 at steps 2, 3, (4 dips), 5, 6, 7 -> stop at 7, not at 4
    devs = {2: 0.3, 3: 0.4, 4: 0.1, 5: 0.5, 6: 0.6, 7: 0.7, 8: 0.8}
    state = fcc_argon(2, jitter=0.02)
    forces = ForceCompute(LennardJones(cutoff=5.0))
    scripted_deviation(forces, devs)
    run = ZarrStore.open(tmp_path / "s.zarr", "a").create_run(
        "r", state, {"steps": 20}, extra_frame_fields=COMMITTEE_FRAME_FIELDS
    )
    guard = ExtrapolationGuard(Periodic(1), trust_hi=0.2, stop_after=3)
    ops = [ZarrFrameWriter(run, Periodic(1)), guard, CheckpointWriter(run, Periodic(5))]
    sim = Simulation(state, forces, VelocityVerlet(1.0), ops, store=run)
    with pytest.raises(ExtrapolationStop, match=r"0\.7 eV/Å above trust_hi = 0\.2 eV/Å.*step 7") as info:
        sim.run(20)
    assert (info.value.step, info.value.force_dev_max, info.value.trust_hi) == (7, 0.7, 0.2)
    assert sim.state.step == 7
    run = RunStore.open(tmp_path / "s.zarr", "r")
    assert run.status == "extrapolating"
    assert run.error.startswith("ExtrapolationStop: committee force deviation")
    # frames up to the stopping step are committed (the writer's buffer was flushed by the abort)
    np.testing.assert_array_equal(run.read_frames(fields=["step"])["step"], np.arange(8))
    # the checkpoint of step 5 stays current (none of step 7; step 5 was itself above trust_hi)
    assert run.attrs["checkpoint_step"] == 5
    assert read_checkpoint(run.checkpoint_group).step == 5
    rec = run.attrs["extrapolation"]
    assert rec["steps_above"] == [5, 6, 7]
    assert rec["last_step_below"] == 4
    assert rec["force_dev_max_above"] == pytest.approx([0.5, 0.6, 0.7])


def test_the_stop_survives_pickling_and_is_not_an_interrupt():
    exc = ExtrapolationStop("too far", 12, 3.5, 0.25, 1)
    back = pickle.loads(pickle.dumps(exc))
    assert (str(back), back.step, back.force_dev_max, back.trust_hi, back.system) == (
        "too far",
        12,
        3.5,
        0.25,
        1,
    )
    assert not isinstance(exc, KeyboardInterrupt)
    assert isinstance(exc, Exception)
    assert ExtrapolationStop.status == "extrapolating"


def test_guard_arguments_are_checked():
    with pytest.raises(ValueError, match="stop_after"):
        ExtrapolationGuard(Periodic(1), 0.2, 0)
    with pytest.raises(ValueError, match="trust_hi"):
        ExtrapolationGuard(Periodic(1), -0.2, 3)


def test_hot_lips_run_is_stopped_and_flagged(lips_store):
    stop = lips_store["stop"]
    assert isinstance(stop, ExtrapolationStop)
    run = RunStore.open(lips_store["store"], HOT)
    assert run.status == "extrapolating"
    assert "above trust_hi = 0.25 eV/Å" in run.error
    assert f"step {stop.step}" in run.error
    assert stop.step < 60  # it did not run to the end
    assert run.current_step == stop.step
    frames = run.read_frames(fields=["step", "force_dev_max"])
    # the evidence: frames up to the stopping step, the last three (the checks) above trust_hi
    assert frames["step"][-1] == stop.step
    assert (frames["force_dev_max"][-3:, 0] > 0.25).all()
    assert frames["force_dev_max"][-1, 0] == pytest.approx(stop.force_dev_max)
    # no checkpoint of the untrustworthy stopping step: the last one before it stays current
    ckpt_step = run.attrs["checkpoint_step"]
    assert ckpt_step < stop.step
    assert stop.step % 10 != 0 or ckpt_step == stop.step - 10
    assert read_checkpoint(run.checkpoint_group).step == ckpt_step
    assert run.attrs["extrapolation"]["steps_above"] == [int(s) for s in frames["step"][-3:]]


def test_cold_lips_run_stays_accurate_and_completes(lips_store):
    run = RunStore.open(lips_store["store"], COLD)
    assert run.status == "completed"
    assert run.error is None
    assert "extrapolation" not in run.attrs
    dev = run.read_frames(fields=["force_dev_max"])["force_dev_max"]
    assert run.n_frames == 13
    assert (dev < 0.10).all()  # every frame accurate at the calibrated levels of lips


def test_operations_add_the_guard_only_for_committees_that_stop(tmp_path):
    spec = MDSpec.from_dict(lips_spec(tmp_path / "x.zarr", "a", 300.0, write_interval=7))
    guards = [
        op for op in _operations(spec, None, None, committee=True) if isinstance(op, ExtrapolationGuard)
    ]
    assert len(guards) == 1
    assert guards[0].trigger.period == 7  # check_interval defaults to write_interval
    assert guards[0].trust_hi == 0.25
    assert not any(
        isinstance(op, ExtrapolationGuard) for op in _operations(spec, None, None, committee=False)
    )
    never = spec.model_copy(update={"screening": spec.screening.model_copy(update={"stop_after": 0})})
    assert not any(
        isinstance(op, ExtrapolationGuard) for op in _operations(never, None, None, committee=True)
    )


def test_stop_after_without_a_committee_is_refused_before_writing(tmp_path):
    data = lips_spec(tmp_path / "lj.zarr", "lj", 10.0)
    data.update(
        structure={"builder": "fcc", "element": "Ar", "a": 5.26, "repeat": 2},
        potential={"name": "lj", "params": {"epsilon": 0.0104, "sigma": 3.405, "cutoff": 5.0}},
    )
    with pytest.raises(SpecError, match=r"screening\.stop_after: needs a committee potential"):
        prepare_run(MDSpec.from_dict(data))
    assert not (tmp_path / "lj.zarr").exists()
    data["screening"] = {"stop_after": 0}  # recording only: fine without a committee
    prepare_run(MDSpec.from_dict(data)).execute()
