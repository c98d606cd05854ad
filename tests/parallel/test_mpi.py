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
    for key in ("positions", "momenta", "forces", "energies"):
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


# Langevin (BAOAB) with noise keyed by (seed, step, tag): the trajectory must not depend on the
# decomposition.  Both systems are triclinic, and atoms cross brick faces during the run.
LJ_LANGEVIN = {
    "repeat": 3,  # 108 Ar in a tilted 15.8 Å cell: bricks on 4 and 8 ranks are thinner than 9 Å
    "cutoff": 8.5,
    "skin": 0.5,
    "integrator": "langevin",
    "dt": 4.0,
    "integrator_params": {"temperature": 300.0, "damping": 200.0},
    "temperature": 300.0,
    "steps": 200,
}
MLFF_LANGEVIN = {
    # 96-atom β-Li₃PS₄ (1×1×3), sheared by 15 % / 10 %, translated so that atoms sit near brick
    # faces of the 2-, 4- and 8-rank grids, rattled 0.03 Å; the shipped 4-member committee in
    # float64 (cutoff 5 Å + skin 1 Å: on 8 ranks the bricks are 4.6 Å thick along c).
    "system": "lips",
    "lips_repeat": [1, 1, 3],
    "translate": [0.34, 0.0, 0.21],
    "rattle": 0.03,
    "potential": "mlff",
    "potential_params": {"model": "lips-v0", "dtype": "float64"},
    "skin": 1.0,
    "integrator": "langevin",
    "dt": 1.0,
    "integrator_params": {"temperature": 600.0, "damping": 100.0},
    "temperature": 600.0,
    "steps": 200,
    "extras": True,
}


@pytest.fixture(scope="module")
def serial_reference(tmp_path_factory: pytest.TempPathFactory):
    """The single-process (SerialDomain) run for a set of options, computed once per module."""
    cache: dict[str, dict] = {}

    def get(opts: dict) -> dict:
        key = json.dumps(opts, sort_keys=True)
        if key not in cache:
            cache[key] = result(1, tmp_path_factory.mktemp("serial"), **opts)
            assert cache[key]["size"] == 1
            assert cache[key]["left"] == 0
        return cache[key]

    return get


def assert_decomposed_run(par: dict, n: int, n_atoms: int) -> None:
    """``par`` ran on ``n`` ranks, rebuilt its lists, and (for n > 1) atoms changed owner."""
    assert par["size"] == n
    assert sum(par["owned"]) == n_atoms
    assert par["builds"] > 5
    if n > 1:
        assert par["left"] > 0, "atoms must migrate between bricks during the test"
        assert par["owner_changed"] > 0, "atoms must end on another rank than they started on"
    if n == 8:
        assert par["swaps"] > 6, "8 ranks must forward ghosts through bricks thinner than the shell"


@pytest.mark.parametrize("n", [1, 2, 4, 8])
def test_lj_langevin_same_trajectory_as_one_rank(tmp_path: Path, serial_reference, n: int) -> None:
    """1 (the MPI domain sending ghosts to itself), 2, 4 and 8 ranks against the serial domain."""
    ref = serial_reference(LJ_LANGEVIN)
    par = result(n, tmp_path, require_mpi=n == 1, **LJ_LANGEVIN)
    assert_decomposed_run(par, n, 108)
    assert_same_trajectory(ref, par)


@pytest.mark.parametrize("n", [1, 2, 4, 8])
def test_mlff_langevin_same_trajectory_as_one_rank(tmp_path: Path, serial_reference, n: int) -> None:
    """The built-in ML force field (full neighbour list, committee extras) decomposed."""
    ref = serial_reference(MLFF_LANGEVIN)
    par = result(n, tmp_path, require_mpi=n == 1, **MLFF_LANGEVIN)
    assert_decomposed_run(par, n, 96)
    assert_same_trajectory(ref, par)
    # The committee deviation at the last step: per atom after the reverse sum of the member
    # forces, and its maximum and mean reduced over ranks.
    torch.testing.assert_close(par["force_dev"], ref["force_dev"], rtol=0, atol=1e-9)
    torch.testing.assert_close(par["force_dev_max"], ref["force_dev_max"], rtol=1e-9, atol=0)
    torch.testing.assert_close(par["force_dev_mean"], ref["force_dev_mean"], rtol=1e-9, atol=0)
    assert float(ref["force_dev_max"][0]) > 0


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
