"""``examples/lips_rescreen.py``: committees evaluated on stored frames reproduce what the run that
wrote them recorded, so a paired comparison of committees measures the committees, not the code."""

from __future__ import annotations

import numpy as np

from ssehpc.campaign import CampaignSpec, expand
from ssehpc.campaign.task import TaskOptions, run_chain
from ssehpc.io.zarr_store import ZarrStore
from ssehpc.ml import SSEHPCCalculator
from ssehpc.potentials import make_potential
from tests.ml.examples import load_example


def test_rescreen_reproduces_the_recorded_deviation_and_compares_committees(tmp_path, capsys):
    spec = CampaignSpec.from_dict(
        {
            "name": "rescreen",
            "store": str(tmp_path / "g.zarr"),
            "systems": [
                {"id": "glass", "structure": {"builder": "glass", "x": 0.75, "atoms": 48, "seed": 5}}
            ],
            "temperatures_K": [600],
            "potential": {"name": "mlff", "params": {"model": "lips"}},
            "dt_fs": 1.0,
            "seed": 11,
            "stages": [
                {
                    "name": "prod",
                    "integrator": {"name": "langevin", "params": {"damping": 100.0}},
                    "steps": 40,
                    "write_interval": 10,
                    "checkpoint_interval": 0,
                }
            ],
        }
    )
    plan = expand(spec)
    ZarrStore.open(plan.store, "a")
    for chain in plan.chains:
        assert run_chain(chain, TaskOptions(drain_check_s=0)).status == "done"
    mod = load_example("lips_rescreen")
    (run,) = mod.production_runs(str(plan.store), "prod")
    data = run.read_frames(fields=["positions", "cell", "force_dev_max"])
    z = np.asarray(run.read_static("species"))
    recorded = np.asarray(data["force_dev_max"])[:, 0]
    assert len(recorded) == 5
    calc = SSEHPCCalculator(make_potential("mlff", model="lips"))
    again = mod.frame_deviation(calc, z, np.asarray(data["positions"]), np.asarray(data["cell"])[:, 0])
    np.testing.assert_allclose(again, recorded, rtol=1e-4)
    other = mod.frame_deviation(
        SSEHPCCalculator(make_potential("mlff", model="lips-v9")),
        z,
        np.asarray(data["positions"]),
        np.asarray(data["cell"])[:, 0],
    )
    assert not np.allclose(other, recorded, rtol=1e-3)  # another committee, another deviation

    mod.main([str(plan.store), "--models", "lips", "lips-v9", "--trust-hi", "0.01"])
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| g.zarr")]
    assert [r.split("|")[3].strip() for r in rows] == ["lips", "lips-v9"]
    assert all("5 (100.00 %) | 5" in r for r in rows)  # every frame above a 0.01 eV/Å level
