"""The CLI under mpiexec: same store format, checkpoints restart on another rank count."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from ssehpc.io.checkpoint import read_checkpoint
from ssehpc.io.zarr_store import RunStore

MPIEXEC = shutil.which("mpiexec", path=str(Path(sys.prefix) / "bin")) or shutil.which("mpiexec")
pytestmark = [
    pytest.mark.mpi,
    pytest.mark.skipif(MPIEXEC is None, reason="mpiexec not installed (pip install mpich)"),
]

SPEC = {
    "run_id": "ar",
    "structure": {"builder": "fcc", "element": "Ar", "a": 5.26, "repeat": [4, 4, 4]},
    "potential": {"name": "lj", "params": {"epsilon": 0.0104, "sigma": 3.405, "cutoff": 6.0}},
    "integrator": {"name": "langevin", "params": {"damping": 200.0}},
    "temperature_K": 150.0,
    "dt_fs": 4.0,
    "steps": 120,
    "write_interval": 10,
    "checkpoint_interval": 60,
    "thermo_interval": 0,
    "seed": 11,
    "skin": 0.5,
}


def ssehpc(n: int, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", SSEHPC_NRANKS=str(n))
    cmd = [sys.executable, "-m", "ssehpc", *args, "--no-progress", "--threads", "1"]
    if n > 1:
        cmd = [MPIEXEC, "-n", str(n), *cmd]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


def test_write_on_four_ranks_resume_on_two(tmp_path: Path) -> None:
    spec = tmp_path / "ar.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    ref_store, par_store = tmp_path / "ref.zarr", tmp_path / "par.zarr"
    ssehpc(1, "md", str(spec), "--store", str(ref_store))
    ssehpc(4, "md", str(spec), "--store", str(par_store), "--steps", "60")
    mid = RunStore.open(par_store, "ar")
    assert mid.n_frames == 7
    assert mid.attrs["checkpoint_step"] == 60
    ssehpc(2, "md", "--resume", str(par_store), "--steps", "120")

    ref, par = RunStore.open(ref_store, "ar"), RunStore.open(par_store, "ar")
    assert par.status == ref.status == "completed"
    steps = np.asarray(par.read_frames(fields=["step"])["step"])
    assert steps.tolist() == list(range(0, 121, 10)), "frames must be complete, in order and unique"
    a = read_checkpoint(ref.checkpoint_group).state
    b = read_checkpoint(par.checkpoint_group).state
    assert a.step == b.step == 120
    oa, ob = torch.argsort(a.tag), torch.argsort(b.tag)
    # The resumed run rebuilt its neighbour list (and so wrapped atoms) at other steps: compare
    # unwrapped positions.
    torch.testing.assert_close(b.unwrapped_positions()[ob], a.unwrapped_positions()[oa], rtol=0, atol=1e-9)
    for name in ("momenta", "forces"):
        torch.testing.assert_close(getattr(b, name)[ob], getattr(a, name)[oa], rtol=0, atol=1e-9, msg=name)
    pos_ref = np.asarray(ref.read_frames(fields=["positions"])["positions"])
    pos_par = np.asarray(par.read_frames(fields=["positions"])["positions"])
    np.testing.assert_allclose(pos_par, pos_ref, rtol=0, atol=1e-4)
