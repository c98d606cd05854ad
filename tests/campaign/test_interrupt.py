"""Interrupting the controller (SIGINT to ``ssehpc campaign``) and running it again resumes:
completed runs are not run again, started ones continue from their checkpoints, and every run
ends with its frames complete, in order and unique."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import yaml
import zarr
from typer.testing import CliRunner

from ssehpc.campaign import CampaignSpec, expand
from ssehpc.cli import app
from ssehpc.io.zarr_store import RunStore
from tests.campaign.helpers import assert_frames_complete, lj_campaign


def _statuses(store, run_ids):
    """Run statuses read group by group (listing a store while workers write it is racy)."""
    out = {}
    for rid in run_ids:
        try:
            out[rid] = zarr.open_group(str(store), path=f"runs/{rid}", mode="r").attrs.get("status")
        except (FileNotFoundError, KeyError, ValueError):  # noqa: PERF203 - not declared yet
            out[rid] = None
    return out


STEPS, WRITE, CKPT = 2000, 20, 100
N_RUNS = 6  # 3 temperatures x 2 replicas on 2 workers: three rounds, so the interrupt always lands
# while runs are left (with 4 short runs the second round could finish before the SIGINT took effect)


def test_interrupted_controller_resumes(tmp_path, dask_client):
    store = tmp_path / "int.zarr"
    data = lj_campaign(
        store,
        temperatures_K=[50, 60, 70],
        replicas=2,
        stages=[
            {
                "name": "md",
                "integrator": {"name": "nve"},
                "steps": STEPS,
                "write_interval": WRITE,
                "checkpoint_interval": CKPT,
            }
        ],
    )
    spec_file = tmp_path / "int.yaml"
    spec_file.write_text(yaml.safe_dump(data))
    run_ids = [r.run_id for r in expand(CampaignSpec.from_dict(data)).runs]
    log = (tmp_path / "controller.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ssehpc", "campaign", str(spec_file), "--no-progress"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            st = _statuses(store, run_ids)
            if "completed" in st.values() or proc.poll() is not None:
                break
            time.sleep(0.2)
        assert proc.poll() is None, (tmp_path / "controller.log").read_text()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    text = (tmp_path / "controller.log").read_text()
    assert "again to resume" in text, text
    before = _statuses(store, run_ids)
    done_before = {rid for rid, s in before.items() if s == "completed"}
    assert 0 < len(done_before) < N_RUNS, before

    res = CliRunner().invoke(
        app, ["campaign", str(spec_file), "--scheduler", dask_client.scheduler.address, "--no-progress"]
    )
    assert res.exit_code == 0, res.output
    assert f"{len(done_before)} done, {N_RUNS - len(done_before)} replicas to run" in res.output
    for rid in before:
        run = assert_frames_complete(store, rid, STEPS, WRITE)
        attempts = run.attrs["campaign_attempts"]
        if rid in done_before:
            assert len(attempts) == 1  # not run again
        elif len(attempts) > 1:
            # resumed from a checkpoint: a periodic one (every CKPT steps) or the one the interrupted
            # run wrote when it stopped (Ctrl-C reaches the worker processes too); never step 0
            start = attempts[-1]["start_step"]
            assert start > 0
            assert start % CKPT == 0 or before[rid] == "interrupted", (start, before[rid])
    assert RunStore.open(store, next(iter(before))).attrs["campaign"]["replica"] in (0, 1)
