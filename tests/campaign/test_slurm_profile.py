"""Slurm profiles: lookup, validation, and the rendered job script of the SLURMCluster.

No Slurm is needed: the cluster is built (its scheduler starts here) but no job is submitted.
Real-Slurm runs are the ``slurm``-marked tests that arrive with the local Slurm scripts.
"""

from __future__ import annotations

import pytest
import yaml

from ssehpc.campaign.cluster import CHAIN_RESOURCE, find_profile, load_slurm_profile, make_slurm_cluster
from ssehpc.campaign.spec import SlurmResources
from ssehpc.spec import SpecError

pytest.importorskip("dask_jobqueue")


def test_default_profile_renders_a_job_script(tmp_path):
    res = SlurmResources(
        kind="slurm",
        profile="default",
        jobs=2,
        overrides={"walltime": "00:10:00", "account": "chem", "shared_temp_directory": str(tmp_path)},
        dashboard_address=":0",
    )
    profile = load_slurm_profile(res)
    assert profile.path == find_profile("default")
    assert profile.config["walltime"] == "00:10:00"
    assert profile.config["processes"] == 4
    cluster = make_slurm_cluster(profile, res)
    try:
        script = cluster.job_script()
        assert cluster.scheduler_address.startswith("tls://")
    finally:
        cluster.close()
    assert "#SBATCH -t 00:10:00" in script
    assert "#SBATCH -A chem" in script
    assert "--lifetime 115m" in script
    assert f"--resources {CHAIN_RESOURCE}=1" in script
    assert "--tls-ca-file" in script  # TLS between scheduler and workers by default


def test_profile_errors_name_the_problem(tmp_path):
    with pytest.raises(SpecError, match=r"resources\.profile: no Slurm profile 'nope' .*known: .*default"):
        find_profile("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"jobqueue": {"slurm": {"cores": 2, "wallclock": "1:00:00"}}}))
    with pytest.raises(SpecError, match=r"unknown jobqueue\.slurm keys .*: wallclock"):
        load_slurm_profile(SlurmResources(kind="slurm", profile=str(bad)))
    flat = tmp_path / "flat.yaml"
    flat.write_text(yaml.safe_dump({"cores": 2}))
    with pytest.raises(SpecError, match="has no 'jobqueue: slurm:' mapping"):
        load_slurm_profile(SlurmResources(kind="slurm", profile=str(flat)))
