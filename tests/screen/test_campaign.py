"""Campaign-level screening: the ``screening`` block reaches every run; one temperature driven out
of the committee's range stops as ``extrapolating`` while the other completes."""

from __future__ import annotations

from typing import Any

import pytest

from ssehpc.campaign import CampaignSpec, expand, run_campaign
from ssehpc.campaign.task import TaskOptions, run_chain
from ssehpc.io.zarr_store import RunStore

SCREENING = {"trust_lo": 0.10, "trust_hi": 0.25, "stop_after": 3}


def lips_campaign(store, **overrides: Any) -> dict[str, Any]:
    """γ-Li₃PS₄ (16 atoms) with the ``lips`` committee at 300 K and 20 000 K, one Langevin stage."""
    data: dict[str, Any] = {
        "name": "screen-test",
        "store": str(store),
        "systems": [{"id": "g", "structure": {"builder": "prototype", "name": "gamma-Li3PS4"}}],
        "temperatures_K": [300.0, 20000.0],
        "potential": {"name": "mlff", "params": {"model": "lips"}},
        "dt_fs": 1.0,
        "seed": 3,
        "stages": [
            {
                "name": "md",
                "integrator": {"name": "langevin", "params": {"damping": 20.0}},
                "steps": 60,
                "write_interval": 5,
                "checkpoint_interval": 10,
            }
        ],
        "screening": SCREENING,
        "resources": {"kind": "local", "n_workers": 2, "dashboard_address": ":0"},
    }
    data.update(overrides)
    return data


def test_campaign_screening_block_reaches_every_run(tmp_path):
    plan = expand(CampaignSpec.from_dict(lips_campaign(tmp_path / "c.zarr")))
    for run in plan.runs:
        scr = run.mdspec().screening
        assert scr is not None
        assert (scr.trust_lo, scr.trust_hi, scr.stop_after) == (0.10, 0.25, 3)
    plain = expand(CampaignSpec.from_dict(lips_campaign(tmp_path / "d.zarr", screening=None)))
    assert all(r.mdspec().screening is None for r in plain.runs)


def test_unset_trust_levels_are_the_shipped_committees_calibrated_ones(tmp_path):
    """A screening block without levels screens ``lips`` at its calibrated 0.10 / 0.25 eV/Å (not
    the generic 0.05 / 0.15, which flag ordinary 600 K frames); a level given wins; a stage with
    a potential that has no calibration (Lennard-Jones) keeps the generic defaults."""
    from ssehpc.screen import DEFAULT_TRUST_HI, DEFAULT_TRUST_LO
    from ssehpc.spec import MDSpec, with_calibrated_trust

    stage = lips_campaign(tmp_path / "x")["stages"][0]
    lj = {"name": "lj", "params": {"epsilon": 0.01, "sigma": 3.0, "cutoff": 6.0}}
    stages = [
        {**stage, "name": "a"},
        {**stage, "name": "b", "screening": {"trust_hi": 0.4, "stop_after": 5}},
        {**stage, "name": "c", "potential": lj},
    ]
    spec = lips_campaign(tmp_path / "c.zarr", stages=stages, screening={"stop_after": 7})
    levels = {}
    for run in expand(CampaignSpec.from_dict(spec)).runs:
        s = run.mdspec().screening
        levels.setdefault(run.stage, set()).add((s.trust_lo, s.trust_hi, s.stop_after))
    assert levels["a"] == {(0.10, 0.25, 7)}
    assert levels["b"] == {(0.10, 0.4, 5)}
    assert levels["c"] == {(DEFAULT_TRUST_LO, DEFAULT_TRUST_HI, 7)}
    # a single run spec (ssehpc run) the same way; the filled levels are explicit in its JSON
    data = expand(CampaignSpec.from_dict(spec)).runs[0].mdspec().to_json()
    md = MDSpec.from_dict({**data, "screening": {"stop_after": 2}})
    assert (md.screening.trust_lo, md.screening.trust_hi) == (DEFAULT_TRUST_LO, DEFAULT_TRUST_HI)
    filled = with_calibrated_trust(md)
    assert (filled.screening.trust_lo, filled.screening.trust_hi, filled.screening.stop_after) == (
        0.10,
        0.25,
        2,
    )
    assert MDSpec.from_dict(filled.to_json()).screening == filled.screening


def test_a_stage_can_loosen_or_switch_off_the_campaign_screening(tmp_path):
    """A melt stage leaves the crystal's trust region on purpose: its own levels, or none."""
    stage = lips_campaign(tmp_path / "x")["stages"][0]
    stages = [
        {**stage, "name": "melt", "screening": {"trust_lo": 0.2, "trust_hi": 1.0, "stop_after": 10}},
        {**stage, "name": "quench", "screening": False},
        {**stage, "name": "prod"},
    ]
    plan = expand(CampaignSpec.from_dict(lips_campaign(tmp_path / "c.zarr", stages=stages)))
    by_stage: dict[str, Any] = {}
    for run in plan.runs:
        by_stage.setdefault(run.stage, set()).add(run.mdspec().screening)
    assert {(s.trust_hi, s.stop_after) for s in by_stage["melt"]} == {(1.0, 10)}
    assert by_stage["quench"] == {None}
    assert {(s.trust_hi, s.stop_after) for s in by_stage["prod"]} == {(0.25, 3)}  # the campaign's
    with pytest.raises(Exception, match="trust_lo"):
        CampaignSpec.from_dict(
            lips_campaign(
                tmp_path / "e.zarr", stages=[{**stage, "screening": {"trust_lo": 2.0, "trust_hi": 1.0}}]
            )
        )


def test_hot_replica_extrapolates_while_the_cold_one_completes(tmp_path, dask_client):
    store = tmp_path / "camp.zarr"
    spec = CampaignSpec.from_dict(lips_campaign(store))
    result = run_campaign(spec, client=dask_client, show_progress=False)
    by_t = {r.temperature_K: r for r in result.runs}
    assert by_t[300.0].status == "done"
    assert by_t[20000.0].status == "extrapolating"
    assert by_t[20000.0].store_status == "extrapolating"
    assert "above trust_hi = 0.25 eV/Å" in (by_t[20000.0].error or "")
    assert not result.ok  # not every run is done ...
    assert result.settled  # ... but nothing is left to do: `ssehpc campaign` exits 0
    hot = RunStore.open(store, by_t[20000.0].run_id)
    assert hot.current_step < 60
    assert hot.read_frames(fields=["step"])["step"][-1] == hot.current_step
    cold = RunStore.open(store, by_t[300.0].run_id)
    assert cold.status == "completed"
    assert (cold.read_frames(fields=["force_dev_max"])["force_dev_max"] < 0.25).all()


def test_an_extrapolating_run_is_reported_and_not_run_again(tmp_path):
    store = tmp_path / "again.zarr"
    plan = expand(CampaignSpec.from_dict(lips_campaign(store, temperatures_K=[20000.0])))
    from ssehpc.campaign.store import CampaignStore

    CampaignStore.open(plan).declare(plan)
    chain = plan.chains[0]
    first = run_chain(chain, TaskOptions(drain_check_s=0))
    assert first.status == "extrapolating"
    assert first.runs[0].status == "extrapolating"
    run = RunStore.open(store, chain.runs[0].run_id)
    stopped_at = run.current_step
    # a second task for the same chain leaves the run as it is (no restart from scratch)
    second = run_chain(chain, TaskOptions(drain_check_s=0))
    assert second.status == "extrapolating"
    assert second.runs[0].skipped
    run = RunStore.open(store, chain.runs[0].run_id)
    assert run.status == "extrapolating"
    assert run.current_step == stopped_at
    assert len(run.attrs["campaign_attempts"]) == 1
