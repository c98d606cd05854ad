"""The same trajectory on 1, 2, 4 and 8 ranks; failures end the whole job (real mpiexec)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

DRIVER = Path(__file__).with_name("mpi_driver.py")
MPIEXEC = shutil.which("mpiexec", path=str(Path(sys.prefix) / "bin")) or shutil.which("mpiexec")

pytestmark = [
    pytest.mark.mpi,
    pytest.mark.skipif(MPIEXEC is None, reason="mpiexec not installed (pip install mpich)"),
]


def run(n: int, out: Path, timeout: float = 300, **opts) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", SSEHPC_NRANKS=str(n))
    cmd = [sys.executable, str(DRIVER), str(out), json.dumps(opts)]
    if n > 1 or opts.get("require_mpi"):
        cmd = [MPIEXEC, "-n", str(n), *cmd]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def result(n: int, tmp_path: Path, **opts) -> dict:
    out = tmp_path / f"r{n}.pt"
    proc = run(n, out, **opts)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return torch.load(out)


def assert_same_trajectory(ref: dict, other: dict, tol: float = 1e-9) -> None:
    for key in ("positions", "momenta", "forces"):
        torch.testing.assert_close(other[key], ref[key], rtol=0, atol=tol, msg=f"{key} differ")
    assert torch.equal(other["image"], ref["image"])
    torch.testing.assert_close(other["energy"], ref["energy"], rtol=1e-12, atol=0)
    torch.testing.assert_close(other["virial"], ref["virial"], rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("n", [2, 4])
def test_lj_nve_same_trajectory_as_one_rank(tmp_path: Path, n: int) -> None:
    opts = {"steps": 200, "integrator": "nve"}
    ref = result(1, tmp_path, **opts)
    par = result(n, tmp_path, **opts)
    assert par["size"] == n
    assert par["builds"] > 5
    assert par["migrated"] > 0, "atoms must migrate between bricks during the test"
    assert_same_trajectory(ref, par)


@pytest.mark.slow
def test_eight_ranks_with_ghost_forwarding(tmp_path: Path) -> None:
    """8 ranks on a 15.8 Å cell with a 9 Å ghost shell: bricks narrower than the shell."""
    opts = {"steps": 100, "repeat": 3, "cutoff": 8.5, "integrator": "nve"}
    ref = result(1, tmp_path, **opts)
    par = result(8, tmp_path, **opts)
    assert_same_trajectory(ref, par)


def test_one_rank_mpi_domain_equals_serial_domain(tmp_path: Path) -> None:
    """The MPI domain on one rank sends ghosts to itself and must reproduce the serial domain."""
    opts = {"steps": 50, "repeat": 3, "cutoff": 8.5, "integrator": "nve"}
    ref = result(1, tmp_path, **opts)
    par = result(1, tmp_path / "m", require_mpi=True, **opts) if (tmp_path / "m").mkdir() is None else None
    assert_same_trajectory(ref, par)


def test_empty_bricks(tmp_path: Path) -> None:
    opts = {"steps": 30, "corner": True, "integrator": "nve", "temperature": 20.0}
    ref = result(1, tmp_path, **opts)
    par = result(4, tmp_path, **opts)
    assert_same_trajectory(ref, par)


def test_exception_on_one_rank_ends_job_quickly(tmp_path: Path) -> None:
    start = time.monotonic()
    proc = run(2, tmp_path / "x.pt", timeout=60, steps=200, fail_rank=1, fail_step=20)
    elapsed = time.monotonic() - start
    assert proc.returncode != 0
    assert elapsed < 30, f"job took {elapsed:.1f} s to end after a rank failed"
    assert "deliberate failure on rank 1 at step 20" in proc.stderr
    assert "rank 1 of 2 failed" in proc.stderr


def test_rank_count_mismatch_is_refused(tmp_path: Path) -> None:
    """Like `srun` with the wrong --mpi plugin: N processes each see a communicator of size 1."""
    env = dict(os.environ, SSEHPC_NRANKS="2")
    proc = subprocess.run(
        [sys.executable, str(DRIVER), str(tmp_path / "y.pt"), json.dumps({"steps": 1})],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode != 0
    assert "2 MPI ranks were requested but MPI.COMM_WORLD has 1" in proc.stderr
