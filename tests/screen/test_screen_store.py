"""``screen_store`` on real committee runs: classes, capped and deterministic selection, extxyz
export read back with ASE (provenance included), the ``screening/`` group, and ``ssehpc screen``."""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from ase.io import read
from typer.testing import CliRunner

from ssehpc.cli import app
from ssehpc.io.zarr_store import RunStore, ZarrStore
from ssehpc.screen import classify, export_candidates, plot_deviation_histogram, screen_store, write_screening
from ssehpc.screen.config import CANDIDATE
from ssehpc.spec import MDSpec, prepare_run
from tests.screen.conftest import COLD, HOT

#: A low trust_lo so that the cold run, too, has candidates (its frames are at 0.015-0.04 eV/Å).
LO, HI = 0.02, 0.25


def test_classes_follow_the_stored_deviations(lips_store):
    res = screen_store(lips_store["store"], trust_lo=LO, trust_hi=HI, max_per_run=3, max_total=4)
    assert [r.run_id for r in res.runs] == sorted([COLD, HOT])  # store order
    for rs in res.runs:
        dev = RunStore.open(lips_store["store"], rs.run_id).read_frames(fields=["force_dev_max"])[
            "force_dev_max"
        ]
        np.testing.assert_array_equal(rs.classes, classify(dev, LO, HI))
        assert len(rs.candidates) == int((rs.classes == CANDIDATE).sum())
        assert all(LO <= c.force_dev_max < HI for c in rs.candidates)
    hot = res.run(HOT)
    assert hot.status == "extrapolating"
    assert hot.fraction(2) >= 3 / hot.n_configurations  # the three checks that stopped it
    tot = res.totals()
    assert tot["configurations"] == sum(r.n_configurations for r in res.runs)
    # caps: at most 3 per run, 4 in all, no configuration twice
    assert len(res.selected) == 4
    assert all(len(r.selected) <= 3 for r in res.runs)
    keys = [(c.run_id, c.frame, c.system) for c in res.selected]
    assert len(set(keys)) == len(keys)
    # the first pick is the candidate with the largest deviation
    assert res.selected[0].force_dev_max == max(c.force_dev_max for r in res.runs for c in r.candidates)
    again = screen_store(lips_store["store"], trust_lo=LO, trust_hi=HI, max_per_run=3, max_total=4)
    assert again.selected == res.selected


def test_trust_levels_default_to_those_the_runs_used(lips_store):
    res = screen_store(lips_store["store"], max_total=0)
    assert (res.trust_lo, res.trust_hi) == (0.10, 0.25)  # the runs' screening block
    assert res.selected == []


def test_export_reads_back_with_ase_and_carries_provenance(lips_store, tmp_path):
    store = lips_store["store"]
    res = screen_store(store, trust_lo=LO, trust_hi=HI, max_per_run=4, max_total=5)
    out = tmp_path / "cand" / "candidates.extxyz"
    n = export_candidates(res, out)
    frames = read(out, index=":", format="extxyz")
    assert n == len(frames) == len(res.selected) == 5
    for atoms, ref in zip(frames, res.selected, strict=True):
        info = atoms.info
        assert info["store"] == str(store.absolute())
        assert (info["run_id"], int(info["frame"]), int(info["step"])) == (ref.run_id, ref.frame, ref.step)
        assert (info["trust_lo"], info["trust_hi"]) == (LO, HI)
        assert info["model"] == "lips"
        assert info["potential"] == "mlff"
        run = RunStore.open(store, ref.run_id)
        assert info["run_status"] == run.status
        stored = run.read_frames(start=ref.frame, stop=ref.frame + 1)
        assert int(stored["step"][0]) == ref.step
        assert info["time_fs"] == pytest.approx(float(stored["time_fs"][0]))
        assert info["temperature_K"] == pytest.approx(float(stored["temperature_K"][0, 0]))
        assert info["force_dev_max"] == pytest.approx(float(stored["force_dev_max"][0, 0]))
        assert info["force_dev_mean"] == pytest.approx(float(stored["force_dev_mean"][0, 0]))
        assert LO <= info["force_dev_max"] < HI
        np.testing.assert_array_equal(atoms.numbers, run.read_static("species"))
        np.testing.assert_allclose(atoms.cell.array, stored["cell"][0, 0], atol=1e-8)
        assert atoms.pbc.all()
        # the same structure as stored (stored positions are unwrapped; the export is wrapped)
        frac = np.linalg.solve(stored["cell"][0, 0].T, stored["positions"][0].T.astype(np.float64)).T
        d = atoms.get_scaled_positions(wrap=False) - frac
        np.testing.assert_allclose(d - np.round(d), 0.0, atol=1e-5)


def test_screening_group_is_written_and_runs_are_untouched(lips_store, tmp_path):
    store = lips_store["store"]
    before = {rid: RunStore.open(store, rid).attrs for rid in (COLD, HOT)}
    res = screen_store(store, trust_lo=LO, trust_hi=HI, max_per_run=2, max_total=3)
    write_screening(res, export=tmp_path / "c.extxyz")
    write_screening(res)  # a second screening replaces the first
    g = zarr.open_group(str(store), mode="r")["screening"]
    a = g.attrs.asdict()
    assert (a["trust_lo"], a["trust_hi"], a["units"]) == (LO, HI, "eV/angstrom")
    assert a["export"] is None
    assert a["totals"]["selected"] == 3
    assert [s["run_id"] for s in a["selected"]] == [r.run_id for r in res.selected]
    assert a["runs"][HOT]["status"] == "extrapolating"
    np.testing.assert_array_equal(g["runs"][HOT]["frame_class"][:], res.run(HOT).classes)
    assert {rid: RunStore.open(store, rid).attrs for rid in (COLD, HOT)} == before
    assert ZarrStore.open(store).runs == sorted([COLD, HOT])  # the screening group is not a run


def test_deviation_histogram_png(lips_store, tmp_path):
    png = plot_deviation_histogram(lips_store["store"], tmp_path / "p" / "dev.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="no committee force deviations"):
        plot_deviation_histogram({"a": np.array([np.nan])}, tmp_path / "x.png")


def test_cli_screen(lips_store, tmp_path):
    out, plots = tmp_path / "c.extxyz", tmp_path / "plots"
    res = CliRunner().invoke(
        app,
        [
            "screen", str(lips_store["store"]), "--trust-lo", str(LO), "--trust-hi", str(HI),
            "--max-per-run", "2", "--max-total", "3", "--out", str(out), "--plots", str(plots), "--no-write",
        ],
        env={"COLUMNS": "200"},
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert HOT in res.output
    assert "extrapolating" in res.output
    assert "exported 3 candidates" in res.output
    assert len(read(out, index=":")) == 3
    assert (plots / "deviation_histogram.png").is_file()
    bad = CliRunner().invoke(
        app, ["screen", str(lips_store["store"]), "--trust-lo", "0.3", "--trust-hi", "0.2"]
    )
    assert bad.exit_code == 2
    assert "trust_lo < trust_hi" in bad.output


def test_cli_screen_without_committee_runs(tmp_path):
    store = tmp_path / "lj.zarr"
    spec = {
        "store": str(store),
        "structure": {"builder": "fcc", "element": "Ar", "a": 5.26, "repeat": 2},
        "potential": {"name": "lj", "params": {"epsilon": 0.0104, "sigma": 3.405, "cutoff": 5.0}},
        "temperature_K": 10.0,
        "dt_fs": 2.0,
        "steps": 4,
        "write_interval": 2,
        "thermo_interval": 0,
    }
    prepare_run(MDSpec.from_dict(spec)).execute()
    ZarrStore.open(store, "r+").declare_run("later", {"temperature_K": 20.0})
    res = CliRunner().invoke(app, ["screen", str(store)], env={"COLUMNS": "200"})
    assert res.exit_code == 2
    assert "no committee run with frames" in res.output
    assert "run0: no committee deviation (not a committee run)" in res.output
    assert "later: no frames (status pending)" in res.output
