"""Simulation: run-loop order, triggers, writers, bitwise restarts, failure handling."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from ssehpc import simulation as simulation_mod
from ssehpc import thermo
from ssehpc.forces import ForceCompute, NonFiniteError
from ssehpc.integrators.nve import VelocityVerlet
from ssehpc.io import checkpoint as ckpt_mod
from ssehpc.io.checkpoint import read_checkpoint
from ssehpc.io.zarr_store import COMMITTEE_FRAME_FIELDS, RunStore, ZarrStore
from ssehpc.potentials.base import Potential, PotentialOutput
from ssehpc.potentials.lj import LennardJones
from ssehpc.simulation import (
    After,
    CheckpointWriter,
    On,
    Operation,
    Or,
    Periodic,
    Simulation,
    ThermoLog,
    ZarrFrameWriter,
)
from ssehpc.spec import MDSpec, prepare_resume, prepare_run
from ssehpc.state import State
from tests.conftest import fcc_argon


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def spec(store: Path, steps: int, integrator: str = "langevin", **kw) -> MDSpec:
    """108 argon atoms at 300 K, a small skin so the neighbour list is rebuilt during the run."""
    params = {"npt": {"tau_t": 100.0, "tau_p": 500.0}, "langevin": {"damping": 50.0}}.get(integrator, {})
    data = {
        "run_id": "ar",
        "store": str(store),
        "structure": {"builder": "fcc", "element": "Ar", "a": 5.26, "repeat": 3},
        "potential": {"name": "lj", "params": {"cutoff": 6.5}},
        "integrator": {"name": integrator, "params": params},
        "temperature_K": 300.0,
        "dt_fs": 5.0,
        "steps": steps,
        "write_interval": 4,
        "checkpoint_interval": 10,
        "thermo_interval": 0,
        "seed": 11,
        "skin": 0.3,
        **kw,
    }
    return MDSpec.from_dict(data)


def assert_same_run(a: RunStore, b: RunStore) -> None:
    """Final checkpoints bitwise equal, frames identical, unique and in order."""
    ca, cb = read_checkpoint(a.checkpoint_group), read_checkpoint(b.checkpoint_group)
    for name, scope in State.scopes.items():
        va, vb = getattr(ca.state, name), getattr(cb.state, name)
        assert (va == vb) if scope == "global" else torch.equal(va, vb), name
    assert ca.integrator.keys() == cb.integrator.keys()
    for k in ca.integrator:
        va, vb = ca.integrator[k], cb.integrator[k]
        assert torch.equal(va, vb) if isinstance(va, torch.Tensor) else va == vb, k
    for k in ca.forces:
        assert torch.equal(ca.forces[k], cb.forces[k]), k
    fa, fb = a.read_frames(), b.read_frames()
    steps = fb["step"]
    assert len(np.unique(steps)) == len(steps)
    assert np.all(np.diff(steps) > 0)
    for k in fa:
        np.testing.assert_array_equal(fa[k], fb[k], err_msg=k)


# ---------------------------------------------------------------------- restarts
@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Callable[[str], Path]:
    """``reference(integrator)``: store of an uninterrupted 30-step run, made once per module."""
    base = tmp_path_factory.mktemp("reference")
    made: dict[str, Path] = {}

    def get(integrator: str) -> Path:
        if integrator not in made:
            n_threads = torch.get_num_threads()
            torch.set_num_threads(1)
            full = prepare_run(spec(base / f"{integrator}.zarr", 30, integrator))
            full.execute()
            torch.set_num_threads(n_threads)
            assert full.simulation.forces.nl.n_builds > 2  # restarts cross neighbour-list rebuilds
            made[integrator] = full.store.store_path
        return made[integrator]

    return get


@pytest.mark.parametrize("integrator", ["langevin", "nose_hoover", "npt"])
def test_stop_and_resume_is_bitwise(tmp_path, integrator, reference):
    n = 15

    half = prepare_run(spec(tmp_path / "b.zarr", 2 * n, integrator))
    half.simulation.run(n)  # stop half way (final checkpoint at step n)
    assert half.store.status == "stopped"
    resumed = prepare_resume(tmp_path / "b.zarr")
    assert resumed.simulation.state.step == n
    resumed.execute()
    assert resumed.store.status == "completed"

    a, b = RunStore.open(reference(integrator)), RunStore.open(tmp_path / "b.zarr")
    assert_same_run(a, b)
    np.testing.assert_array_equal(b.read_frames(fields=["step"])["step"], np.arange(0, 2 * n + 1, 4))


class CrashAt(Operation):
    """Raise at a given step (a node failure in the middle of a run)."""

    def __init__(self, step: int) -> None:
        super().__init__(On(step))

    def __call__(self, sim: Simulation) -> None:
        raise RuntimeError(f"simulated node failure at step {sim.state.step}")


def test_crash_then_resume_rewrites_frames_once(tmp_path, reference):
    crashing = prepare_run(spec(tmp_path / "b.zarr", 30))
    crashing.simulation.operations.append(CrashAt(17))
    with pytest.raises(RuntimeError, match="simulated node failure"):
        crashing.execute()
    b = RunStore.open(tmp_path / "b.zarr")
    assert b.status == "failed"
    assert "simulated node failure at step 17" in b.error
    # frames past the checkpoint (step 10) were committed on the way down ...
    np.testing.assert_array_equal(b.read_frames(fields=["step"])["step"], [0, 4, 8, 12, 16])
    assert read_checkpoint(b.checkpoint_group).step == 10

    resumed = prepare_resume(tmp_path / "b.zarr")
    # ... and are dropped on resume, then written again identically
    assert resumed.store.n_frames == 3
    resumed.execute()
    assert_same_run(RunStore.open(reference("langevin")), RunStore.open(tmp_path / "b.zarr"))


def test_crash_inside_a_checkpoint_write(tmp_path, reference, monkeypatch):
    """The checkpoint at step 20 dies half written: the one of step 10 stays current and the
    resumed run still reproduces the uninterrupted one."""
    real = ckpt_mod.write_checkpoint

    def dying(parent, state, *args, **kw):
        if state.step == 20:
            monkeypatch.setattr(ckpt_mod, "_write_array", _die_after(3, ckpt_mod._write_array))
        return real(parent, state, *args, **kw)

    monkeypatch.setattr(simulation_mod, "write_checkpoint", dying)
    crashing = prepare_run(spec(tmp_path / "b.zarr", 30))
    with pytest.raises(OSError, match="disk full"):
        crashing.execute()
    monkeypatch.undo()
    b = RunStore.open(tmp_path / "b.zarr")
    assert b.status == "failed"
    assert b.error == "OSError: disk full"
    assert read_checkpoint(b.checkpoint_group).step == 10
    prepare_resume(tmp_path / "b.zarr").execute()
    assert_same_run(RunStore.open(reference("langevin")), RunStore.open(tmp_path / "b.zarr"))


def _die_after(n: int, write):
    calls = {"n": 0}

    def wrapped(*args):
        calls["n"] += 1
        if calls["n"] > n:
            raise OSError("disk full")
        write(*args)

    return wrapped


# ---------------------------------------------------------------------- failures
class NaNAfter(Potential):
    """LJ that returns NaN from the ``calls``-th evaluation on."""

    def __init__(self, inner: Potential, calls: int) -> None:
        super().__init__()
        self.inner = inner
        self.cutoff = inner.cutoff
        self.species = inner.species
        self.half_list = inner.half_list
        self.calls = calls
        self.n = 0

    def forward(self, local, nl) -> PotentialOutput:
        out = self.inner(local, nl)
        self.n += 1
        if self.n > self.calls:
            out.forces = out.forces * float("nan")
            out.energies = out.energies * float("nan")
        return out


def direct_run(tmp_path: Path, potential: Potential, state: State | None = None, steps: int = 100):
    state = state if state is not None else fcc_argon(3, jitter=0.02, seed=4)
    forces = ForceCompute(potential, skin=0.5)
    thermo.maxwell_boltzmann(state, forces.domain, 200.0)
    run = ZarrStore.open(tmp_path / "s.zarr", "a").create_run("r", state, {"dt_fs": 2.0, "steps": steps})
    ops = [
        ZarrFrameWriter(run, Periodic(5)),
        CheckpointWriter(run, Periodic(10)),
    ]
    return Simulation(state, forces, VelocityVerlet(2.0), ops, store=run), run


def test_nan_energy_stops_the_run_and_keeps_the_last_good_data(tmp_path):
    sim, _ = direct_run(tmp_path, NaNAfter(LennardJones(cutoff=6.5), calls=24))  # step 23 explodes
    with pytest.raises(NonFiniteError, match="step 23"):
        sim.run(100)
    r = RunStore.open(tmp_path / "s.zarr")
    assert r.status == "failed"
    assert r.error.startswith("NonFiniteError: non-finite or exploding forces")
    np.testing.assert_array_equal(r.read_frames(fields=["step"])["step"], [0, 5, 10, 15, 20])
    assert np.isfinite(r.read_frames(fields=["positions"])["positions"]).all()
    c = read_checkpoint(r.checkpoint_group)
    assert c.step == 20
    assert torch.isfinite(c.state.positions).all()
    assert r.attrs["checkpoint_step"] == 20


def test_atoms_placed_to_explode(tmp_path):
    state = fcc_argon(2)
    state.positions[1] = state.positions[0] + torch.tensor([0.6, 0.0, 0.0], dtype=torch.float64)
    sim, _ = direct_run(tmp_path, LennardJones(cutoff=6.5), state)
    with pytest.raises(NonFiniteError, match="exploding"):
        sim.run(10)
    r = RunStore.open(tmp_path / "s.zarr")
    assert r.status == "failed"
    assert r.n_frames == 0


def test_keyboard_interrupt_marks_interrupted(tmp_path):
    class Interrupt(Operation):
        def __call__(self, sim):
            raise KeyboardInterrupt

    sim, _ = direct_run(tmp_path, LennardJones(cutoff=6.5))
    sim.operations.append(Interrupt(On(7)))
    with pytest.raises(KeyboardInterrupt):
        sim.run(20)
    r = RunStore.open(tmp_path / "s.zarr")
    assert r.status == "interrupted"
    np.testing.assert_array_equal(r.read_frames(fields=["step"])["step"], [0, 5])


# ---------------------------------------------------------------------- loop mechanics
class Recorder(Operation):
    def __init__(self, log: list, name: str, trigger, priority: int = 0) -> None:
        super().__init__(trigger)
        self.log, self.name = log, name
        self.priority = priority

    def __call__(self, sim):
        self.log.append((self.name, sim.state.step))


def test_run_loop_order():
    log: list = []

    class SpyForces(ForceCompute):
        def compute(self, state, *, extras=True):
            log.append(("compute", state.step))
            super().compute(state, extras=extras)

    class SpyVerlet(VelocityVerlet):
        def attach(self, state, forces):
            log.append(("attach", state.step))

        def step_one(self, state, forces):
            log.append(("step_one", state.step))
            super().step_one(state, forces)

        def step_two(self, state, forces):
            log.append(("step_two", state.step))
            super().step_two(state, forces)

    ops = [Recorder(log, "late", Periodic(2), priority=50), Recorder(log, "early", Periodic(2), priority=-1)]
    progress: list = []
    sim = Simulation(
        fcc_argon(2),
        SpyForces(LennardJones(cutoff=5.0)),
        SpyVerlet(1.0),
        ops,
        progress=lambda d, t: progress.append(d),
    )
    sim.run(2)
    assert log == [
        ("compute", 0),
        ("attach", 0),
        ("early", 0),
        ("late", 0),
        ("step_one", 0),
        ("compute", 0),
        ("step_two", 0),
        ("step_one", 1),
        ("compute", 1),
        ("step_two", 1),
        ("early", 2),
        ("late", 2),
    ]
    assert progress == [0, 1, 2]
    log.clear()
    sim.run(1)  # a second run() continues without recomputing or re-firing step 2
    assert log[0] == ("step_one", 2)


def test_triggers():
    p = Periodic(5, phase=2)
    assert [s for s in range(15) if p(s)] == [2, 7, 12]
    assert [s for s in range(5) if On([1, 3])(s)] == [1, 3]
    assert not After(3)(3)
    assert After(3)(4)
    assert Or(On(1), On(2))(2)
    with pytest.raises(ValueError, match="period"):
        Periodic(0)


def test_thermo_log_table():
    buf = io.StringIO()
    state = fcc_argon(2, jitter=0.02)
    forces = ForceCompute(LennardJones(cutoff=5.0))
    thermo.maxwell_boltzmann(state, forces.domain, 50.0)
    sim = Simulation(state, forces, VelocityVerlet(2.0), [ThermoLog(Periodic(5), stream=buf)])
    sim.run(10)
    lines = buf.getvalue().splitlines()
    assert lines[0].split() == ["step", "time_fs", "sys", "T_K", "Epot_eV", "Etot_eV", "Econs_eV", "P_GPa"]
    assert [int(line.split()[0]) for line in lines[1:]] == [0, 5, 10]
    first = lines[1].split()
    assert float(first[1]) == 0.0
    assert float(first[3]) == pytest.approx(50.0)
    last = lines[-1].split()
    assert float(last[1]) == 20.0
    # NVE: total energy conserved to a few meV over 10 steps
    assert float(last[5]) == pytest.approx(float(first[5]), abs=5e-3)


def test_frame_writer_buffers_to_chunks(tmp_path):
    state = fcc_argon(2, jitter=0.02)
    run = ZarrStore.open(tmp_path / "s.zarr", "a").create_run("r", state, {"dt_fs": 1.0})
    writer = ZarrFrameWriter(run, Periodic(1))
    sim = Simulation(state, ForceCompute(LennardJones(cutoff=5.0)), VelocityVerlet(1.0), [writer])
    sim.run(3)
    assert run.n_frames == 4  # flushed at the end of run()
    sim.run(2)
    frames = RunStore.open(tmp_path / "s.zarr").read_frames()
    np.testing.assert_array_equal(frames["step"], np.arange(6))
    np.testing.assert_allclose(frames["time_fs"], np.arange(6.0))
    # positions are unwrapped, in tag order, float32
    np.testing.assert_allclose(frames["positions"][-1], sim.state.unwrapped_positions().numpy(), rtol=1e-6)


def test_frame_writer_takes_declared_extras_from_the_forces(tmp_path):
    class WithDeviation(LennardJones):
        """LJ that also reports a (fake) per-system committee force deviation."""

    state = fcc_argon(2, jitter=0.02)
    forces = ForceCompute(WithDeviation(cutoff=5.0))
    real_compute = forces.compute

    def compute(st, *, extras=True):
        real_compute(st, extras=extras)
        forces.extras = {**forces.extras, "force_dev_max": torch.full((1,), 0.1 * st.step)}
        forces.extras["force_dev_mean"] = forces.extras["force_dev_max"] / 2

    forces.compute = compute
    run = ZarrStore.open(tmp_path / "s.zarr", "a").create_run(
        "r", state, {}, extra_frame_fields=COMMITTEE_FRAME_FIELDS
    )
    sim = Simulation(state, forces, VelocityVerlet(1.0), [ZarrFrameWriter(run, Periodic(2))])
    sim.run(4)
    out = RunStore.open(tmp_path / "s.zarr").read_frames(fields=["force_dev_max", "force_dev_mean"])
    # frames at steps 0, 2, 4 hold the extras of the force evaluation that produced them (made
    # while state.step was still 0, 1, 3)
    np.testing.assert_allclose(out["force_dev_max"][:, 0], [0.0, 0.1, 0.3], rtol=1e-6)
    np.testing.assert_allclose(out["force_dev_mean"][:, 0], [0.0, 0.05, 0.15], rtol=1e-6)
