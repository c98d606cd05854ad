"""Adaptive extension (``adaptive: {target_rel_error}``): production runs are extended, largest
error first, until every point's D* meets the target or the budget is spent; extensions append
to the same run groups (frames continuous and unique) and a re-run of the spec keeps them."""

from __future__ import annotations

import math

import numpy as np

from ssehpc.campaign import CampaignSpec, expand, run_campaign
from ssehpc.campaign.adaptive import PointError, plan_extensions
from ssehpc.campaign.spec import AdaptiveSpec
from ssehpc.io.zarr_store import RunStore, ZarrStore
from tests.campaign.helpers import lj_campaign

STAGE = {
    "name": "md",
    "integrator": {"name": "langevin", "params": {"damping": 200.0}},
    "steps": 400,
    "write_interval": 10,
    "checkpoint_interval": 0,
}


def _spec(store, **adaptive) -> CampaignSpec:
    # 32 argon atoms at a low density (a = 6.5 Å): a dense fluid that diffuses within ~2 ps
    return CampaignSpec.from_dict(
        lj_campaign(
            store,
            systems=[{"id": "ar", "structure": {"builder": "fcc", "element": "Ar", "a": 6.5, "repeat": 2}}],
            temperatures_K=[120.0, 200.0],
            replicas=2,
            stages=[STAGE],
            adaptive={"species": "Ar", **adaptive},
        )
    )


def test_runs_are_extended_until_the_target_is_met(tmp_path, dask_client) -> None:
    store = tmp_path / "adapt.zarr"
    spec = _spec(store, target_rel_error=0.05, max_rounds=4)
    result = run_campaign(spec, client=dask_client, show_progress=False)
    assert result.ok, result.counts()
    history = ZarrStore.open(store, "r").attrs["campaign"]["adaptive"]
    assert len(history) >= 2  # at least one extension round, then a check
    first, last = history[0]["points"], history[-1]["points"]
    assert any(p["action"].startswith("extend") for p in first)
    assert all(p["action"] == "meets target" for p in last), last
    assert all(p["rel_error"] <= 0.05 for p in last)
    assert max(p["rel_error"] for p in first) > 0.05
    for rid in (r.run_id for r in expand(spec).runs):
        run = RunStore.open(store, rid)
        steps = int(run.attrs["steps"])
        assert run.status == "completed"
        # one continuous run: frames every 10 steps from 0 to the extended length, no duplicates
        frames = run.read_frames(fields=["step", "positions"])
        np.testing.assert_array_equal(frames["step"], np.arange(0, steps + 1, 10))
        assert np.isfinite(frames["positions"]).all()
        starts = [a["start_step"] for a in run.attrs["campaign_attempts"]]
        if steps > 400:
            assert starts[0] == 0
            assert starts[1] == 400
    # The same spec again: no "changed spec" refusal, nothing to do (the target is met).
    again = run_campaign(spec, client=dask_client, show_progress=False)
    assert again.ok
    assert again.simulated_fs == 0.0


def test_the_budget_caps_the_extensions(tmp_path, dask_client) -> None:
    store = tmp_path / "budget.zarr"
    # a target no 2 ps run reaches, and 1 ps of budget: less than one point's extension (4 ps)
    spec = _spec(store, target_rel_error=0.001, max_rounds=2, max_extra_ps=1.0)
    assert run_campaign(spec, client=dask_client, show_progress=False).ok
    (round1,) = ZarrStore.open(store, "r").attrs["campaign"]["adaptive"]
    assert all(p["action"].startswith("over budget") for p in round1["points"]), round1
    for rid in (r.run_id for r in expand(spec).runs):
        assert int(RunStore.open(store, rid).attrs["steps"]) == 400


def test_largest_error_first_gets_the_budget(tmp_path) -> None:
    spec = _spec(tmp_path / "p.zarr", target_rel_error=0.1, max_extra_ps=5.0)
    plan = expand(spec)
    runs = {(r.temperature_K, r.replica): r.run_id for r in plan.runs}
    cold = PointError("ar", 120.0, 1e-5, 0.2e-5, (runs[120.0, 0], runs[120.0, 1]))  # rel 0.2
    hot = PointError("ar", 200.0, 1e-5, 0.4e-5, (runs[200.0, 0], runs[200.0, 1]))  # rel 0.4
    current = {r.run_id: 400 for r in plan.runs}
    adaptive = AdaptiveSpec(target_rel_error=0.1, max_growth=2.0)
    exts, records = plan_extensions([cold, hot], adaptive, plan, current, 5000.0)
    # the hot point (larger error) comes first and takes 2 runs x 400 steps x 5 fs = 4 ps; the
    # cold one would need 4 ps more: over the 1 ps left
    assert [r["temperature_K"] for r in records] == [200.0, 120.0]
    assert {e.run.run_id for e in exts} == {runs[200.0, 0], runs[200.0, 1]}
    assert all(e.steps == 800 for e in exts)  # (0.4/0.1)^2 = 16, capped at max_growth 2
    assert records[1]["action"].startswith("over budget")
    # a point that cannot be fitted yet grows by max_growth
    unknown = PointError("ar", 120.0, math.nan, math.nan, cold.runs)
    exts, records = plan_extensions([unknown], adaptive, plan, current, math.inf)
    assert all(e.steps == 800 for e in exts)
    assert records[0]["rel_error"] is None
