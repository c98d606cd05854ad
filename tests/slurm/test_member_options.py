"""MPI members without Slurm: the spec fields, the core check, and the srun command line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ssehpc.campaign.cluster import SlurmProfile, check_member_cores
from ssehpc.campaign.plan import RunSpec
from ssehpc.campaign.spec import SlurmResources
from ssehpc.campaign.task import TaskOptions, run_stage_srun, srun_command
from ssehpc.io.zarr_store import RunStore, ZarrStore
from ssehpc.spec import MDSpec, SpecError


def test_member_cores_are_checked() -> None:
    res = SlurmResources(kind="slurm", profile="local", ranks_per_member=4)
    ok = SlurmProfile("p", None, {"cores": 8, "processes": 2})  # type: ignore[arg-type]
    check_member_cores(ok, res)
    small = SlurmProfile("p", None, {"cores": 4, "processes": 2})  # type: ignore[arg-type]
    with pytest.raises(
        SpecError, match=r"resources\.ranks_per_member: 4 ranks .* cores >= 8, but profile 'p' gives 4"
    ):
        check_member_cores(small, res)
    check_member_cores(small, SlurmResources(kind="slurm", profile="local"))  # serial members: no check


def test_srun_command() -> None:
    run = RunSpec("ar_T60_r0_md", "ar_T60_r0", "ar", 60.0, 0, "md", 0, {"steps": 10, "dt_fs": 5.0})
    opts = TaskOptions(threads=1, ranks=2, mpi="pmix", srun_args=("--gpus-per-task=1",))
    cmd = srun_command("/tmp/c.zarr", run, opts)
    assert cmd[:6] == ["srun", "-n", "2", "-c", "1", "--mpi=pmix"]
    assert cmd[6] == "--kill-on-bad-exit=1"  # a dead rank ends the step
    assert cmd[7] == "--gpus-per-task=1"
    assert json.loads(cmd[-1])["run"]["run_id"] == "ar_T60_r0_md"
    assert cmd[-2] == "/tmp/c.zarr"


# A stand-in for srun on PATH: drops the options and runs the command as one rank; FAKE_SRUN_MODE
# ``flaky`` fails the first call as a failed MPI_Init does (exit 142, no ready file), ``late`` fails
# after MPI started (creates the ready file, then exit 142 without running anything).
FAKE_SRUN = """#!/usr/bin/env bash
echo call >> "$FAKE_SRUN_CALLS"
while [[ $# -gt 0 && $1 == -* ]]; do
    case $1 in -n|-c|-N) shift 2 ;; *) shift ;; esac
done
if [[ $FAKE_SRUN_MODE == flaky && $(wc -l < "$FAKE_SRUN_CALLS") -eq 1 ]]; then
    echo "Abort(744113550) on node 0: Fatal error in internal_Init_thread: Message truncated" >&2
    exit 142
fi
if [[ $FAKE_SRUN_MODE == late ]]; then
    touch "$SSEHPC_MPI_READY"
    exit 142
fi
exec "$@"
"""


def _member_run(tmp_path: Path) -> RunSpec:
    spec = MDSpec.from_dict(
        {
            "run_id": "ar_T60_r0_md",
            "store": str(tmp_path / "c.zarr"),
            "structure": {"builder": "fcc", "element": "Ar", "a": 5.26, "repeat": 2},
            "potential": {"name": "lj", "params": {"epsilon": 0.0104, "sigma": 3.405, "cutoff": 5.0}},
            "integrator": {"name": "langevin", "params": {"damping": 100.0}},
            "temperature_K": 60.0,
            "dt_fs": 5.0,
            "steps": 20,
            "write_interval": 10,
            "seed": 1,
        }
    )
    ZarrStore.open(tmp_path / "c.zarr", "a")
    return RunSpec("ar_T60_r0_md", "ar_T60_r0", "ar", 60.0, 0, "md", 0, spec.to_json())


@pytest.mark.parametrize(("mode", "calls", "status"), [("flaky", 2, "done"), ("late", 1, "failed")])
def test_member_step_is_started_again_only_when_mpi_did_not_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str, calls: int, status: str
) -> None:
    """An srun step that failed before MPI_Init completed computed nothing: it is started once more
    (and the run completes); one that failed after MPI started is a real failure, recorded once."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "srun").write_text(FAKE_SRUN)
    (bindir / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SRUN_CALLS", str(tmp_path / "calls"))
    monkeypatch.setenv("FAKE_SRUN_MODE", mode)
    run = _member_run(tmp_path)
    outcome = run_stage_srun(tmp_path / "c.zarr", run, TaskOptions(threads=1, ranks=1, mpi="pmi2"))
    assert (tmp_path / "calls").read_text().count("call") == calls
    assert outcome.status == status, outcome.error
    if status == "failed":
        assert "SrunError" in outcome.error
        assert "142" in outcome.error
    else:
        assert RunStore.open(tmp_path / "c.zarr", run.run_id).status == "completed"
    assert not list(tmp_path.glob(".ssehpc-mpi-ready.*"))  # the marker is cleaned up
