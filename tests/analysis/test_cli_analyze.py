"""``ssehpc analyze`` on a store written by real (short) LJ-argon runs.

Expanded fcc argon (a = 5.9 Å, 108 atoms) at 150 and 250 K melts and diffuses within a few ps;
two replicas at 150 K exercise the replica combination, a pending run the skip note.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from ssehpc.cli import EXIT_BAD_INPUT, app
from ssehpc.io.zarr_store import ZarrStore
from ssehpc.spec import MDSpec, prepare_run

RUNS = [("ar", 150.0, 0), ("ar", 150.0, 1), ("ar", 250.0, 0)]


def _spec(store: Path, run_id: str, T: float, seed: int) -> MDSpec:
    return MDSpec.from_dict(
        {
            "run_id": run_id,
            "store": str(store),
            "structure": {"builder": "fcc", "element": "Ar", "a": 5.9, "repeat": 3},
            "potential": {"name": "lj", "params": {"epsilon": 0.0104, "sigma": 3.405, "cutoff": 6.5}},
            "integrator": {"name": "langevin", "params": {"damping": 200.0}},
            "temperature_K": T,
            "dt_fs": 10.0,
            "steps": 200,
            "write_interval": 2,
            "checkpoint_interval": 200,
            "thermo_interval": 200,
            "seed": seed,
            "skin": 1.0,
            "device": "cpu",
            "dtype": "float64",
        }
    )


@pytest.fixture(scope="module")
def argon_store(tmp_path_factory) -> Path:
    store = tmp_path_factory.mktemp("analyze") / "ar.zarr"
    for system, T, rep in RUNS:
        rid = f"{system}_T{T:g}_r{rep}_prod"
        labels = {"chain": rid, "system": system, "temperature_K": T, "replica": rep, "stage": "prod"}
        run = prepare_run(
            _spec(store, rid, T, 10 + rep), thermo_stream=io.StringIO(), extra_attrs={"campaign": labels}
        )
        run.execute()
    ZarrStore.open(store, "r+").declare_run("ar_T350_r0_prod", {"status": "pending", "temperature_K": 350.0})
    return store


def invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_analyze_real_store(argon_store, tmp_path):
    res = invoke("analyze", argon_store, "--plots", tmp_path / "plots")
    assert res.exit_code == 0, res.output
    assert "Transport of Ar" in res.stdout
    assert "Arrhenius" in res.stdout
    assert "skipped run ar_T350_r0_prod: status pending" in res.stdout
    assert sorted(p.name for p in (tmp_path / "plots").glob("*.png")) == [
        "arrhenius_ar.png",
        "msd_ar_T150.png",
        "msd_ar_T250.png",
    ]
    # Readable with xarray alone.
    pts = xr.open_zarr(argon_store, group="analysis/points", consolidated=False).load()
    assert list(pts.temperature_K.values) == [150.0, 250.0]
    assert list(pts.n_replicas.values) == [2, 1]
    assert pts.D.attrs["units"] == "cm^2/s"
    D = pts.D.values
    assert np.all((D > 5e-6) & (D < 5e-4)), D  # liquid-like argon
    assert D[1] > D[0]
    assert np.all(pts.D_lo.values < D)
    assert np.all(pts.D_hi.values > D)
    msd = xr.open_zarr(argon_store, group="analysis/msd", consolidated=False)
    assert msd.msd.dims == ("run", "lag", "direction")
    assert msd.sizes["run"] == 3
    arr = xr.open_zarr(argon_store, group="analysis/arrhenius", consolidated=False).load()
    assert arr.D_Ea.sel(system="ar") > 0


def test_analyze_errors_name_the_problem(argon_store, tmp_path):
    res = invoke("analyze", argon_store, "--species", "Li", "--no-write")
    assert res.exit_code == EXIT_BAD_INPUT
    assert "species 'Li' is not in run" in res.stderr
    empty = tmp_path / "empty.zarr"
    ZarrStore.open(empty, "a").declare_run("x_T300_r0_prod", {"status": "pending", "temperature_K": 300.0})
    res = invoke("analyze", empty)
    assert res.exit_code == EXIT_BAD_INPUT
    assert "no completed run with frames" in res.stderr


def test_analyze_fits_each_chains_last_stage_unless_told(tmp_path):
    """A campaign chain melt (ramp) → anneal → prod: transport comes from prod by default; --stage
    picks another stage; a temperature ramp is never fitted."""
    store = tmp_path / "stages.zarr"
    chain = "ar_T150_r0"
    for k, (stage, T, ramp) in enumerate(
        [("quench", 250.0, True), ("anneal", 250.0, False), ("prod", 150.0, False)]
    ):
        spec = _spec(store, f"{chain}_{stage}", T, 20 + k).to_json()
        if ramp:
            spec["integrator"]["params"].update(temperature_end=150.0, ramp_steps=200)
        labels = {
            "chain": chain,
            "system": "ar",
            "temperature_K": 150.0,
            "replica": 0,
            "stage": stage,
            "stage_index": k,
        }
        prepare_run(
            MDSpec.from_dict(spec), thermo_stream=io.StringIO(), extra_attrs={"campaign": labels}
        ).execute()
    res = invoke("analyze", store, "--no-write")
    assert res.exit_code == 0, res.output
    assert "skipped 1 run(s) of stage 'anneal' (not the chains' last stage" in res.stdout
    assert "skipped 1 run(s) of stage 'quench' (not the chains' last stage" in res.stdout
    assert "│ ar     │ 150" in res.stdout
    assert "│ ar     │ 250" not in res.stdout
    res = invoke("analyze", store, "--no-write", "--stage", "anneal", "--stage", "quench")
    assert res.exit_code == 0, res.output
    assert "skipped run ar_T150_r0_quench: a temperature ramp, not an equilibrium run" in res.stdout
    assert "skipped 1 run(s) of stage 'prod' (not among anneal, quench)" in res.stdout
    assert "│ ar     │ 250" in res.stdout
    assert "│ ar     │ 150" not in res.stdout
