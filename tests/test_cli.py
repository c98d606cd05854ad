"""The ``ssehpc`` command line: md, md --resume, info, and one-line errors for bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import ase.io
import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from ssehpc import builders
from ssehpc.cli import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_RUN_FAILED, _execute, _ProgressBar, app
from ssehpc.io.checkpoint import read_checkpoint
from ssehpc.io.zarr_store import RunStore
from ssehpc.simulation import Simulation
from ssehpc.spec import MDSpec, prepare_run
from ssehpc.state import State

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def write_spec(tmp_path: Path, name: str = "spec.yaml", **kw) -> Path:
    data = {
        "run_id": "ar",
        "store": "ar.zarr",
        "structure": {"builder": "fcc", "element": "Ar", "a": 5.26, "repeat": 3},
        "potential": {"name": "lj", "params": {"cutoff": 6.5}},
        "integrator": {"name": "langevin", "params": {"damping": 50.0}},
        "temperature_K": 300.0,
        "dt_fs": 5.0,
        "steps": 30,
        "write_interval": 4,
        "checkpoint_interval": 10,
        "thermo_interval": 10,
        "seed": 3,
        "skin": 0.3,
    }
    data.update(kw)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def invoke(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_md_then_info(tmp_path):
    spec = write_spec(tmp_path)
    res = invoke("md", spec, "--no-progress")
    assert res.exit_code == 0, res.output
    store = tmp_path / "ar.zarr"
    assert f"store: {store}" in res.stdout
    assert "status: completed" in res.stdout
    assert "Econs_eV" in res.stdout  # the thermo table
    run = RunStore.open(store)
    assert run.n_frames == 8
    assert run.last_step == 28  # last frame
    assert run.current_step == 30
    # info, through a real subprocess (python -m ssehpc)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "ssehpc", "info", str(store)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "run ar: status completed, 8 frames, last step 30 of 30, 150 fs simulated" in proc.stdout
    assert "units: length angstrom, energy eV" in proc.stdout


def test_resume_after_crash_is_bitwise(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert invoke("md", write_spec(tmp_path / "a"), "--no-progress", "--no-thermo").exit_code == 0

    fire = Simulation._fire

    def crash_at_17(self):
        if self.state.step == 17:
            raise RuntimeError("node lost")
        fire(self)

    monkeypatch.setattr(Simulation, "_fire", crash_at_17)
    res = invoke("md", write_spec(tmp_path / "b"), "--no-progress", "--no-thermo")
    assert res.exit_code == EXIT_RUN_FAILED
    assert "error: RuntimeError: node lost" in res.stderr
    assert "checkpoint at step 10 are kept" in res.stderr
    assert "ssehpc md --resume" in res.stderr
    monkeypatch.undo()
    info = invoke("info", tmp_path / "b" / "ar.zarr")
    assert "status failed" in info.stdout
    assert "error: RuntimeError: node lost" in info.stdout

    res = invoke("md", "--resume", tmp_path / "b" / "ar.zarr", "--no-progress", "--no-thermo")
    assert res.exit_code == 0, res.output
    assert "resuming run 'ar' at step 10" in res.stdout

    a, b = RunStore.open(tmp_path / "a" / "ar.zarr"), RunStore.open(tmp_path / "b" / "ar.zarr")
    assert b.status == "completed"
    ca, cb = read_checkpoint(a.checkpoint_group), read_checkpoint(b.checkpoint_group)
    assert ca.step == cb.step == 30
    for name, scope in State.scopes.items():
        va, vb = getattr(ca.state, name), getattr(cb.state, name)
        assert (va == vb) if scope == "global" else torch.equal(va, vb), name
    assert torch.equal(ca.integrator["heat"], cb.integrator["heat"])
    fa, fb = a.read_frames(), b.read_frames()
    np.testing.assert_array_equal(fb["step"], np.arange(0, 31, 4))
    for k in fa:
        np.testing.assert_array_equal(fa[k], fb[k], err_msg=k)

    # extending a finished run appends frames after the last one
    res = invoke(
        "md", "--resume", tmp_path / "b" / "ar.zarr", "--steps", "38", "--no-progress", "--no-thermo"
    )
    assert res.exit_code == 0, res.output
    steps = RunStore.open(tmp_path / "b" / "ar.zarr").read_frames(fields=["step"])["step"]
    np.testing.assert_array_equal(steps, np.arange(0, 37, 4))


def _extxyz(tmp_path: Path, atoms) -> str:
    ase.io.write(tmp_path / "s.extxyz", atoms)
    return "s.extxyz"


def _nan_file(tmp_path: Path) -> str:
    (tmp_path / "s.extxyz").write_text(
        '2\nLattice="6 0 0 0 6 0 0 0 6" Properties=species:S:1:pos:R:3 pbc="T T T"\nAr 0 0 0\nAr 3 nan 3\n'
    )
    return "s.extxyz"


def _overlap_file(tmp_path: Path) -> str:
    atoms = builders.fcc("Ar", 5.26, 2)
    atoms.positions[5] = atoms.positions[4] + [0.0, 0.2, 0.0]
    return _extxyz(tmp_path, atoms)


def _weird_file(tmp_path: Path) -> str:
    (tmp_path / "s.weird").write_text("not a structure\n")
    return "s.weird"


def _garbage_xyz(tmp_path: Path) -> str:
    (tmp_path / "s.xyz").write_text("3\n\nAr 0 0\n")
    return "s.xyz"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: {"dt_fs": -2.0}, "dt_fs: the time step must be positive"),
        (lambda p: {"dt_fs": 100.0}, "dt_fs: the time step 100.0 fs is absurdly large"),
        (lambda p: {"structure": {"file": "missing.extxyz"}}, "missing.extxyz' does not exist"),
        (lambda p: {"structure": {"file": _weird_file(p)}}, "unknown file format"),
        (lambda p: {"structure": {"file": _garbage_xyz(p)}}, "cannot parse structure file"),
        (
            lambda p: {"structure": {"file": _nan_file(p)}},
            "non-finite (NaN/inf) coordinates for atom indices [1]",
        ),
        (lambda p: {"structure": {"file": _overlap_file(p)}}, "atoms 4 and 5 are 0.200 Å apart"),
        (
            lambda p: {"potential": {"name": "lj", "params": {"pairs": {"Kr-Kr": [0.014, 3.6]}}}},
            "no parameters for Ar (Z=18); it knows Kr",
        ),
        (lambda p: {"integrator": {"name": "verlet"}}, "unknown integrator 'verlet'"),
    ],
)
def test_bad_input_is_one_line(tmp_path, change, message):
    spec = write_spec(tmp_path, **change(tmp_path))
    res = invoke("md", spec, "--no-progress")
    assert res.exit_code == EXIT_BAD_INPUT, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error: ")
    assert message in lines[0]
    assert "Traceback" not in res.output
    assert not (tmp_path / "ar.zarr").exists()


def test_usage_errors(tmp_path):
    res = invoke("md")
    assert res.exit_code == EXIT_BAD_INPUT
    assert "give either a spec file" in res.stderr
    res = invoke("md", tmp_path / "nope.yaml")
    assert res.exit_code == EXIT_BAD_INPUT
    assert "spec file" in res.stderr
    assert "does not exist" in res.stderr
    res = invoke("info", tmp_path / "nope.zarr")
    assert res.exit_code == EXIT_BAD_INPUT
    assert "error: store" in res.stderr
    spec = write_spec(tmp_path, steps=0)
    assert invoke("md", spec, "--no-progress").exit_code == 0
    res = invoke("md", spec, "--no-progress")
    assert res.exit_code == EXIT_BAD_INPUT
    assert "already exists" in res.stderr
    assert invoke("md", spec, "--no-progress", "--overwrite").exit_code == 0


def test_exploding_run_is_marked_failed(tmp_path):
    atoms = builders.fcc("Ar", 5.26, 2)
    atoms.positions[1] = atoms.positions[0] + [0.6, 0.0, 0.0]  # passes the 0.5 Å check, explodes
    spec = write_spec(tmp_path, structure={"file": _extxyz(tmp_path, atoms)})
    res = invoke("md", spec, "--no-progress")
    assert res.exit_code == EXIT_RUN_FAILED
    assert "error: NonFiniteError: non-finite or exploding forces" in res.stderr
    assert "Traceback" not in res.output
    info = invoke("info", tmp_path / "ar.zarr")
    assert "status failed" in info.stdout
    assert "NonFiniteError" in info.stdout
    res = invoke("md", "--resume", tmp_path / "ar.zarr")
    assert res.exit_code == EXIT_BAD_INPUT
    assert "no checkpoint" in res.stderr


def test_sigterm_marks_the_run_interrupted(tmp_path, monkeypatch):
    fire = Simulation._fire

    def terminate_at_12(self):
        fire(self)
        if self.state.step == 12:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(Simulation, "_fire", terminate_at_12)
    res = invoke("md", write_spec(tmp_path), "--no-progress", "--no-thermo")
    assert res.exit_code == EXIT_INTERRUPTED
    assert "error: interrupted" in res.stderr
    run = RunStore.open(tmp_path / "ar.zarr")
    assert run.status == "interrupted"
    assert "signal" in run.error
    np.testing.assert_array_equal(run.read_frames(fields=["step"])["step"], [0, 4, 8, 12])
    assert signal.getsignal(signal.SIGTERM) is not None  # handler restored


def test_progress_bar_runs(tmp_path):
    spec = MDSpec.from_yaml(write_spec(tmp_path, steps=12, thermo_interval=0))
    mdrun = prepare_run(spec)
    wall = _execute(mdrun, show_progress=True)
    assert wall > 0
    assert isinstance(mdrun.simulation.progress, _ProgressBar)
    assert mdrun.store.status == "completed"
