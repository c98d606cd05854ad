"""A small campaign through a real dask-jobqueue ``SLURMCluster`` (profile ``local`` of
``schedulers/profiles``), TLS between scheduler and workers (the default for Slurm)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from ssehpc.campaign.task import open_run
from ssehpc.io.zarr_store import RunStore, ZarrStore

pytestmark = pytest.mark.slurm
pytest.importorskip("dask_jobqueue")

LJ = {"name": "lj", "params": {"epsilon": 0.0104, "sigma": 3.405, "cutoff": 5.0}}


def campaign(store: Path, resources: dict, **overrides) -> dict:
    data = {
        "name": "slurm-test",
        "store": str(store),
        "systems": [
            {
                "id": "ar",
                "structure": {"builder": "fcc", "element": "Ar", "a": 5.26, "repeat": 3},
                "grid": {"a": [5.22, 5.30]},
            }
        ],
        "temperatures_K": [60.0],
        "replicas": 1,
        "potential": LJ,
        "dt_fs": 5.0,
        "seed": 11,
        "stages": [
            {
                "name": "md",
                "integrator": {"name": "langevin", "params": {"damping": 100.0}},
                "steps": 40,
                "write_interval": 10,
                "checkpoint_interval": 20,
            }
        ],
        "resources": resources,
    }
    data.update(overrides)
    return data


def run_cli(spec_path: Path, timeout: float = 420) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(  # in the spec's directory: job output files (slurm-*.out) land there
        [sys.executable, "-m", "ssehpc", "campaign", str(spec_path)],
        cwd=spec_path.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def squeue_jobs() -> list[str]:
    proc = subprocess.run(["squeue", "-h", "-o", "%i %j %T"], capture_output=True, text=True, check=False)
    return [line for line in proc.stdout.splitlines() if line.strip()]


def test_campaign_on_slurmcluster_with_tls(tmp_path: Path) -> None:
    """The local-cluster grid campaign (3 systems x 3 temperatures x 4 replicas) through
    SLURMCluster, small replicas batched 6 per task."""
    store = tmp_path / "c.zarr"
    resources = {
        "kind": "slurm",
        "profile": "local",
        "jobs": 2,
        "dashboard_address": ":0",
        "batch": {"max_replicas": 6},
        "overrides": {
            "shared_temp_directory": str(tmp_path / "dask"),
            "log_directory": str(tmp_path / "logs"),
        },
    }
    spec = tmp_path / "c.yaml"
    data = campaign(store, resources, temperatures_K=[40.0, 60.0, 80.0], replicas=4)
    data["systems"][0]["grid"] = {"a": [5.22, 5.30, 5.38]}
    spec.write_text(yaml.safe_dump(data))
    before = set(squeue_jobs())
    proc = run_cli(spec)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "Slurm (local), 2 job(s)" in out, out[-4000:]
    # TLS: the workers connected to the scheduler over tls:// (their logs say so).
    logs = "".join(f.read_text(errors="replace") for f in (tmp_path / "logs").glob("*.err"))
    assert "Start worker at:       tls://" in logs or "Start worker at: tls://" in " ".join(logs.split()), (
        logs[-3000:]
    )
    assert "36 replicas in 6 batched tasks" in out, out[-4000:]
    ids = [f"ar_a{a}_T{t}_r{r}_md" for a in ("5.22", "5.3", "5.38") for t in (40, 60, 80) for r in range(4)]
    for run_id in ids:
        run = RunStore.open(store, run_id)
        assert run.status == "completed", (run_id, run.status, run.error)
        assert np.asarray(run.read_frames(fields=["step"])["step"]).tolist() == [0, 10, 20, 30, 40]
        hosts = {a["host"] for a in run.attrs["campaign_attempts"]}
        assert hosts, run_id
        assert run.attrs["batch"].startswith("batch-6x-"), run_id
    summary = ZarrStore.open(store, "r").attrs["campaign"]["summary"]
    assert summary.get("done") == 36, summary
    # The controller closed the cluster: its Slurm jobs are gone (or ending).
    left = [j for j in set(squeue_jobs()) - before if "RUNNING" in j or "PENDING" in j]
    assert not [j for j in left if "dask-worker" in j], left


def test_mpi_members_run_as_srun_steps(tmp_path: Path) -> None:
    """``ranks_per_member: 2``: each stage is an ``srun -n 2 --mpi=pmi2`` step inside the worker's
    job (one job of 2 cores, one worker); the ranks record the communicator size in the store."""
    store = tmp_path / "m.zarr"
    resources = {
        "kind": "slurm",
        "profile": "local",
        "jobs": 1,
        "ranks_per_member": 2,
        "dashboard_address": ":0",
        "overrides": {
            "cores": 2,
            "shared_temp_directory": str(tmp_path / "dask"),
            "log_directory": str(tmp_path / "logs"),
        },
    }
    stages = [
        {
            "name": "equil",
            "integrator": {"name": "langevin", "params": {"damping": 100.0}},
            "steps": 20,
            "write_interval": 0,
            "checkpoint_interval": 10,
        },
        {
            "name": "prod",
            "integrator": {"name": "nve"},
            "steps": 20,
            "write_interval": 10,
            "checkpoint_interval": 10,
        },
    ]
    data = campaign(store, resources, stages=stages)
    data["systems"][0].pop("grid")
    spec = tmp_path / "m.yaml"
    spec.write_text(yaml.safe_dump(data))
    proc = run_cli(spec)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "members of 2 MPI ranks" in out, out[-4000:]
    for run_id in ("ar_T60_r0_equil", "ar_T60_r0_prod"):
        run = RunStore.open(store, run_id)
        assert run.status == "completed", (run_id, run.status, run.error)
        attempts = run.attrs["campaign_attempts"]
        assert [a["ranks"] for a in attempts] == [2], attempts  # MPI.COMM_WORLD had 2 ranks
        assert all("." in a["slurm_step"] and "?" not in a["slurm_step"] for a in attempts), attempts
    prod = RunStore.open(store, "ar_T60_r0_prod")
    assert np.asarray(prod.read_frames(fields=["step"])["step"]).tolist() == [0, 10, 20]


def test_mpi_member_with_wrong_plugin_is_recorded_failed(tmp_path: Path) -> None:
    """``mpi: none`` starts two single-rank copies: the LaunchError is the run's recorded error."""
    store = tmp_path / "w.zarr"
    resources = {
        "kind": "slurm",
        "profile": "local",
        "jobs": 1,
        "ranks_per_member": 2,
        "mpi": "none",
        "dashboard_address": ":0",
        "overrides": {"cores": 2, "shared_temp_directory": str(tmp_path / "dask")},
    }
    data = campaign(store, resources)
    data["systems"][0].pop("grid")
    spec = tmp_path / "w.yaml"
    spec.write_text(yaml.safe_dump(data))
    proc = run_cli(spec)
    assert proc.returncode == 1, (proc.stdout + proc.stderr)[-4000:]
    run = open_run(ZarrStore.open(store, "r"), "ar_T60_r0_md")
    assert run is not None
    assert run.status == "failed"
    error = run.error or ""
    assert "LaunchError: 2 MPI ranks were requested but MPI.COMM_WORLD has 1" in error, error


def test_retired_worker_job_is_replaced_and_the_run_resumes(tmp_path: Path) -> None:
    """A worker retires at its ``--lifetime`` (as it would before the walltime): the run is
    checkpointed and drained, the controller submits a replacement job (dask-jobqueue alone never
    does), and the run resumes there from its checkpoint and completes."""
    store = tmp_path / "life.zarr"
    resources = {
        "kind": "slurm",
        "profile": "local",
        "jobs": 1,
        "tls": False,
        "dashboard_address": ":0",
        "overrides": {
            "shared_temp_directory": str(tmp_path / "dask"),
            "log_directory": str(tmp_path / "logs"),
            "worker_extra_args": ["--lifetime", "15s", "--lifetime-stagger", "0s"],
        },
    }
    data = campaign(store, resources)
    data["systems"] = [{"id": "ar", "structure": {"builder": "fcc", "element": "Ar", "a": 5.26, "repeat": 5}}]
    data["stages"] = [
        {
            "name": "md",
            "integrator": {"name": "langevin", "params": {"damping": 100.0}},
            "steps": 24000,
            "write_interval": 1000,
            "checkpoint_interval": 2000,
        }
    ]
    spec = tmp_path / "life.yaml"
    spec.write_text(yaml.safe_dump(data))
    proc = run_cli(spec, timeout=500)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "submitting replacements" in out, out[-4000:]
    run = RunStore.open(store, "ar_T60_r0_md")
    assert run.status == "completed", (run.status, run.error)
    steps = np.asarray(run.read_frames(fields=["step"])["step"])
    np.testing.assert_array_equal(steps, np.arange(0, 24001, 1000))  # complete, in order, unique
    attempts = run.attrs["campaign_attempts"]
    assert len(attempts) >= 2, attempts
    assert attempts[1]["start_step"] > 0  # resumed from the drain checkpoint, not from scratch
