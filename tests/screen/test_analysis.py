"""Transport fits leave out runs stopped as ``extrapolating`` unless asked."""

from __future__ import annotations

import io

from ssehpc.analysis.report import analyze_store
from ssehpc.io.zarr_store import RunStore
from ssehpc.spec import MDSpec, prepare_run


def test_extrapolating_runs_are_left_out_of_fits_unless_asked(tmp_path):
    store = tmp_path / "ar.zarr"
    for rid, seed in (("ok", 1), ("hot", 2)):
        spec = {
            "run_id": rid,
            "store": str(store),
            "structure": {"builder": "fcc", "element": "Ar", "a": 5.9, "repeat": 3},
            "potential": {"name": "lj", "params": {"epsilon": 0.0104, "sigma": 3.405, "cutoff": 6.5}},
            "integrator": {"name": "langevin", "params": {"damping": 200.0}},
            "temperature_K": 250.0,
            "dt_fs": 10.0,
            "steps": 100,
            "write_interval": 1,
            "checkpoint_interval": 100,
            "thermo_interval": 0,
            "seed": seed,
        }
        prepare_run(MDSpec.from_dict(spec), thermo_stream=io.StringIO()).execute()
    # as the extrapolation guard leaves a run (the guard itself is tested in test_guard.py)
    RunStore.open(store, "hot", mode="r+").set_status("extrapolating", "ExtrapolationStop: test", step=100)
    default = analyze_store(store, "Ar")
    assert set(default.msd) == {"ok"}
    assert "skipped run hot: status extrapolating" in default.notes
    asked = analyze_store(store, "Ar", include_extrapolating=True)
    assert set(asked.msd) == {"ok", "hot"}
    assert len(asked.points[0].per_run) == 2
