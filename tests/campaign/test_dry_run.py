"""``ssehpc campaign --dry-run`` builds every system once: bad structures and species the
potential does not know are reported (exit 2) before anything runs; nothing is written."""

from __future__ import annotations

import yaml
from typer.testing import CliRunner

from ssehpc.cli import app


def _spec(tmp_path, systems):
    data = {
        "name": "dry",
        "store": str(tmp_path / "dry.zarr"),
        "systems": systems,
        "temperatures_K": [600.0],
        "potential": {"name": "mlff", "params": {"model": "lips"}},
        "dt_fs": 1.0,
        "stages": [{"name": "md", "integrator": {"name": "langevin"}, "steps": 10}],
    }
    path = tmp_path / "dry.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_dry_run_checks_every_system(tmp_path) -> None:
    good = {"id": "beta", "structure": {"builder": "prototype", "name": "beta-Li3PS4", "target_atoms": 32}}
    res = CliRunner().invoke(app, ["campaign", str(_spec(tmp_path, [good])), "--dry-run"])
    assert res.exit_code == 0, res.output
    assert "all 1 systems build and check" in res.output
    argyrodite = {"id": "lpscl", "structure": {"builder": "prototype", "name": "Li6PS5Cl"}}
    missing = {"id": "cif", "structure": {"file": str(tmp_path / "nope.cif")}}
    res = CliRunner().invoke(
        app, ["campaign", str(_spec(tmp_path, [good, argyrodite, missing])), "--dry-run"]
    )
    assert res.exit_code == 2, res.output
    assert "system lpscl" in res.output
    assert "Cl" in res.output
    assert "system cif" in res.output
    assert "nope.cif" in res.output
    assert "system beta" not in res.output
    assert not (tmp_path / "dry.zarr").exists()
