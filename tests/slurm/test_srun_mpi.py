"""An MPI member of ``ssehpc md`` on 2 ranks through ``srun --mpi=pmi2`` (launchers/srun.sh), and
the loud failure of a launch with the wrong MPI plugin (``--mpi=none``: two single-rank copies)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from ssehpc.io.zarr_store import RunStore

pytestmark = pytest.mark.slurm

ROOT = Path(__file__).resolve().parents[2]
SRUN_SH = ROOT / "launchers" / "srun.sh"

SPEC = {  # 256 atoms of LJ argon, 40 steps: a few seconds on two ranks
    "run_id": "ar",
    "structure": {"builder": "fcc", "element": "Ar", "a": 5.26, "repeat": [4, 4, 4]},
    "potential": {"name": "lj", "params": {"epsilon": 0.0104, "sigma": 3.405, "cutoff": 6.0}},
    "integrator": {"name": "langevin", "params": {"damping": 200.0}},
    "temperature_K": 100.0,
    "dt_fs": 4.0,
    "steps": 40,
    "write_interval": 10,
    "checkpoint_interval": 20,
    "thermo_interval": 0,
    "seed": 7,
    "skin": 0.5,
}

PROBE = (
    "import os; from ssehpc.parallel.runtime import make_domain; d = make_domain(); "
    "print(f\"rank {getattr(d, 'rank', 0)} of {getattr(d, 'size', 1)} SLURM_PROCID={os.environ['SLURM_PROCID']}\", flush=True)"
)


def _srun_sh(n: int, mpi: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, SSEHPC_SRUN_MPI=mpi, PYTHON=sys.executable, OMP_NUM_THREADS="1")
    return subprocess.run(
        [str(SRUN_SH), str(n), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def _python_srun(n: int, mpi: str, code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, SSEHPC_NRANKS=str(n), OMP_NUM_THREADS="1")
    return subprocess.run(
        ["srun", "-n", str(n), f"--mpi={mpi}", sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_communicator_has_two_ranks_under_srun_pmi2() -> None:
    proc = _python_srun(2, "pmi2", PROBE)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = sorted(line for line in proc.stdout.splitlines() if line.startswith("rank"))
    assert lines == ["rank 0 of 2 SLURM_PROCID=0", "rank 1 of 2 SLURM_PROCID=1"], proc.stdout


def test_md_member_on_two_ranks(tmp_path: Path) -> None:
    spec = tmp_path / "ar.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    store = tmp_path / "ar.zarr"
    proc = _srun_sh(2, "pmi2", "md", str(spec), "--store", str(store), "--no-progress", "--threads", "1")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    # SSEHPC_NRANKS=2 was checked against MPI.COMM_WORLD on both ranks (a mismatch is a LaunchError),
    # and only the writer rank printed its summary.
    assert proc.stdout.count("status: completed") == 1, proc.stdout
    run = RunStore.open(store, "ar")
    assert run.status == "completed"
    steps = np.asarray(run.read_frames(fields=["step"])["step"])
    assert steps.tolist() == [0, 10, 20, 30, 40]


def test_wrong_mpi_plugin_fails_loudly(tmp_path: Path) -> None:
    spec = tmp_path / "ar.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    store = tmp_path / "ar.zarr"
    proc = _srun_sh(2, "none", "md", str(spec), "--store", str(store), "--no-progress", "--threads", "1")
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "2 MPI ranks were requested but MPI.COMM_WORLD has 1" in out, out[-3000:]
    assert "--mpi=pmi2" in out  # the hint names the fix
    assert not (store / "runs" / "ar").exists() or RunStore.open(store, "ar").status != "completed"
