"""MPI members without Slurm: the spec fields, the core check, and the srun command line."""

from __future__ import annotations

import json

import pytest

from ssehpc.campaign.cluster import SlurmProfile, check_member_cores
from ssehpc.campaign.plan import RunSpec
from ssehpc.campaign.spec import SlurmResources
from ssehpc.campaign.task import TaskOptions, srun_command
from ssehpc.spec import SpecError


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
    assert cmd[6] == "--gpus-per-task=1"
    assert json.loads(cmd[-1])["run"]["run_id"] == "ar_T60_r0_md"
    assert cmd[-2] == "/tmp/c.zarr"
