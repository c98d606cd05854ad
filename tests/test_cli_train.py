"""`ssehpc train`: a tiny committee trained on shipped teacher frames, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import ase.io
import torch
import yaml
from typer.testing import CliRunner

from ssehpc.cli import app
from ssehpc.ml.data import read_frames

DATA = Path(__file__).resolve().parents[1] / "ssehpc" / "data" / "lips" / "test.extxyz.xz"


def test_train_command_writes_model_and_report(tmp_path: Path) -> None:
    frames = read_frames(DATA)[:8]
    data = tmp_path / "frames.extxyz"
    ase.io.write(data, frames)
    cfg = {
        "data": [str(data)],
        "validation_fraction": 0.25,
        "output": str(tmp_path / "tiny.pt"),
        "channels": 2,
        "hidden": [8],
        "n_members": 2,
        "epochs": 2,
        "seed": 3,
        "teacher": "CHGNet (shipped frames)",
    }
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(cfg))
    result = CliRunner().invoke(app, ["train", str(path), "--threads", "1"])
    assert result.exit_code == 0, result.output
    blob = torch.load(tmp_path / "tiny.pt", weights_only=True)
    assert blob  # plain tensors and metadata only
    report = json.loads((tmp_path / "tiny.report.json").read_text())
    assert "validation" in report
    assert report["validation"]["forces_meV_per_A"]["mae"] > 0


def test_train_command_names_bad_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"data": ["x.extxyz"], "epochs": 0}))
    result = CliRunner().invoke(app, ["train", str(path)])
    assert result.exit_code != 0
    assert "epochs" in result.output
