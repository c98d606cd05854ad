"""``ssehpc learn``: one active-learning iteration end to end on a tiny Li–P–S setting.

Exploration: 16-atom γ-Li₃PS₄ with the shipped ``lips`` committee at 1500 K (60 steps, a frame every
5).  Teacher: a real ASE calculator that is cheap and differs from the student — member 0 of the
older ``lips-v0`` committee (:func:`ssehpc.ml.learn.mlff_teacher`).  Training: 6 shipped teacher
frames as the "old data", 4 held-out, 2 epochs.  The loop runs on the session's two-worker Dask
cluster (``tests/campaign/conftest.py``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import ase.io
import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from ssehpc.ml.data import read_frames
from ssehpc.ml.learn import LearnError, load_learn_config, mlff_teacher, run_learning
from ssehpc.ml.model import load
from ssehpc.ml.shipped import resolve_model
from tests.campaign.conftest import dask_client  # noqa: F401 (the session's LocalCluster)

DATA = Path(__file__).resolve().parents[2] / "ssehpc" / "data" / "lips" / "test.extxyz.xz"
TRUST_LO, TRUST_HI = (
    0.03,
    1.0,
)  # eV/Å; low trust_lo so that a short hot run has candidates (lips: 0.026 at step 0)
MAX_TOTAL = 6


def tiny_config(**overrides: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "campaign": {
            "name": "tiny",
            "systems": [{"id": "g", "structure": {"builder": "prototype", "name": "gamma-Li3PS4"}}],
            "temperatures_K": [1500.0],
            "potential": {"name": "lj", "params": {"epsilon": 0.01, "sigma": 2.0, "cutoff": 5.0}},
            "dt_fs": 1.0,
            "seed": 3,
            "stages": [
                {
                    "name": "md",
                    "integrator": {"name": "langevin", "params": {"damping": 20.0}},
                    "steps": 60,
                    "write_interval": 5,
                    "checkpoint_interval": 20,
                }
            ],
            "resources": {"kind": "local", "n_workers": 2, "dashboard_address": ":0"},
        },
        "model": "lips",
        "train": {
            "data": "old.extxyz",
            "validation_data": "val.extxyz",
            "epochs": 2,
            "lr": 1e-3,
            "threads": 1,
            "seed": 1,
        },
        "teacher": "ssehpc.ml.learn:mlff_teacher",
        "teacher_params": {"model": "lips-v0", "members": [0]},
        "teacher_name": "lips-v0/member0",
        "teacher_version": "v0",
        "label_chunk": 2,
        "screening": {
            "trust_lo": TRUST_LO,
            "trust_hi": TRUST_HI,
            "stop_after": 0,
            "max_per_run": MAX_TOTAL,
            "max_total": MAX_TOTAL,
        },
        "max_iterations": 1,
        "workdir": "work",
    }
    cfg.update(overrides)
    return cfg


def write_data(base: Path) -> None:
    frames = read_frames(DATA)[:10]
    ase.io.write(base / "old.extxyz", frames[:6])
    ase.io.write(base / "val.extxyz", frames[6:10])


@pytest.fixture(scope="module")
def learned(tmp_path_factory: pytest.TempPathFactory, dask_client: Any) -> dict[str, Any]:  # noqa: F811
    torch.set_num_threads(1)
    base = tmp_path_factory.mktemp("learn")
    write_data(base)
    lines: list[str] = []
    result = run_learning(tiny_config(), client=dask_client, base_dir=base, log=lines.append)
    return {"base": base, "work": base / "work", "result": result, "log": lines}


# ---------------------------------------------------------------------------- one iteration
def test_one_iteration_then_the_new_model_is_explored(learned: dict[str, Any]) -> None:
    res, work = learned["result"], learned["work"]
    assert res.status == "max_iterations"
    assert [s["iteration"] for s in res.iterations] == [0, 1]
    assert Path(res.model) == work / "iter_0" / "model.pt"
    # iteration 1 explored with the retrained model: the campaign's potential was replaced
    explore1 = json.loads((work / "iter_1" / "explore.json").read_text())
    assert Path(explore1["model"]) == work / "iter_0" / "model.pt"
    from ssehpc.io.zarr_store import ZarrStore

    zs = ZarrStore.open(work / "iter_1" / "explore.zarr", "r")
    (rid,) = zs.runs
    pot = zs.run(rid).attrs["potential"]
    assert pot["name"] == "mlff"
    assert Path(pot["params"]["model"]) == work / "iter_0" / "model.pt"
    # the last iteration only explores and screens
    assert "label" not in res.iterations[1]
    assert not (work / "iter_1" / "model.pt").exists()


def test_labels_carry_teacher_and_screening_provenance(learned: dict[str, Any]) -> None:
    work = learned["work"]
    screen = json.loads((work / "iter_0" / "screen.json").read_text())
    n_cand = screen["n_candidates_exported"]
    assert 0 < n_cand <= MAX_TOTAL
    labels = ase.io.read(work / "iter_0" / "labels.extxyz", index=":")
    # chunks finish in any order; the file is rewritten in candidate order for reproducible training
    assert [a.info["label_index"] for a in labels] == list(range(n_cand))
    teacher = mlff_teacher(model="lips-v0", members=[0])
    for a in labels:
        assert a.info["teacher"] == "lips-v0/member0"
        assert a.info["teacher_version"] == "v0"
        assert a.info["al_iteration"] == 0
        assert a.info["run_id"].startswith("g_")
        assert TRUST_LO <= a.info["force_dev_max"] < TRUST_HI
        assert a.get_forces().shape == (len(a), 3)
    # the labels are the teacher's numbers for those positions
    probe = labels[0].copy()
    probe.calc = teacher
    np.testing.assert_allclose(labels[0].get_forces(), probe.get_forces(), atol=1e-6)
    np.testing.assert_allclose(labels[0].get_potential_energy(), probe.get_potential_energy(), atol=1e-6)


def test_new_model_loads_weights_only_and_differs_from_the_old(learned: dict[str, Any]) -> None:
    path = learned["work"] / "iter_0" / "model.pt"
    blob = torch.load(path, weights_only=True)
    assert blob
    new, old = load(path), load(resolve_model("lips"))
    assert new.spec.n_members == old.spec.n_members == 4
    # the warm start keeps the starting model's architecture, core repulsion and radial floor
    assert new.spec.radial_floor == old.spec.radial_floor == 1.2  # lips = lips-v11 (radial floor of lips-v5)
    assert new.spec.core_outer == old.spec.core_outer
    diffs = [
        float((new.state_dict()[k] - v).abs().max())
        for k, v in old.state_dict().items()
        if v.is_floating_point()
    ]
    assert max(diffs) > 0.0
    assert "labels.extxyz" in new.metadata["data_files"]
    assert (learned["work"] / "iter_0" / "model.report.json").is_file()


def test_summary_records_fractions_counts_and_heldout_errors(learned: dict[str, Any]) -> None:
    work = learned["work"]
    s0 = json.loads((work / "iter_0" / "summary.json").read_text())
    tot = s0["screen"]["totals"]
    assert tot["configurations"] == tot["accurate"] + tot["candidate"] + tot["failed"] == 13
    assert s0["accurate_fraction"] == pytest.approx(tot["accurate"] / tot["configurations"])
    assert s0["label"]["n_labelled"] == s0["screen"]["n_candidates_exported"]
    assert s0["label"]["n_failed"] == 0
    tr = s0["train"]
    assert tr["n_train_frames"] == 6 + s0["label"]["n_labelled"]
    assert tr["n_validation_frames"] == 4
    old, new = tr["errors"]["heldout"]["old"], tr["errors"]["heldout"]["new"]
    assert old["n_frames"] == new["n_frames"] == 4
    assert 0 < old["forces_mae_meV_per_A"] < 500
    assert 0 < new["forces_mae_meV_per_A"] < 500
    # fine-tuning on the teacher's labels brings the committee closer to them
    on_labels = tr["errors"]["new_labels"]
    assert on_labels["new"]["forces_mae_meV_per_A"] < on_labels["old"]["forces_mae_meV_per_A"]
    whole = json.loads((work / "learning.json").read_text())
    assert whole["status"] == "max_iterations"
    assert [it["stop"] for it in whole["iterations"]] == [None, "max_iterations"]
    assert whole["accurate_fractions"] == [it["accurate_fraction"] for it in whole["iterations"]]


def test_stops_without_labelling_once_the_target_is_reached(
    learned: dict[str, Any],
    dask_client: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    first = learned["result"].iterations[0]["accurate_fraction"]
    assert 0 < first < 0.5
    write_data(tmp_path)
    cfg = tiny_config(target_accurate_fraction=first, max_iterations=3)
    res = run_learning(cfg, client=dask_client, base_dir=tmp_path, log=lambda _: None)
    assert res.status == "converged"
    assert len(res.iterations) == 1
    assert res.accurate_fractions == [first]  # the same seed: the same exploration
    assert not (tmp_path / "work" / "iter_0" / "labels.extxyz").exists()
    assert Path(res.model) == resolve_model("lips")


# ---------------------------------------------------------------------------- resume
def test_rerun_skips_every_finished_step(learned: dict[str, Any], dask_client: Any) -> None:  # noqa: F811
    work = learned["work"]
    stamps = {p: p.stat().st_mtime_ns for p in (work / "iter_0").iterdir() if p.is_file()}
    lines: list[str] = []
    res = run_learning(tiny_config(), client=dask_client, base_dir=learned["base"], log=lines.append)
    assert res.status == "max_iterations"
    skipped = [ln for ln in lines if "skipped" in ln]
    assert len(skipped) == 6  # explore, screen, label, train of iter 0; explore, screen of iter 1
    for p, t in stamps.items():
        if p.name != "summary.json":
            assert p.stat().st_mtime_ns == t, p.name


@pytest.mark.slow
def test_interrupted_labelling_resumes_with_the_missing_chunk_only(
    learned: dict[str, Any],
    dask_client: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    shutil.copytree(learned["base"], tmp_path / "b")
    base = tmp_path / "b"
    it0 = base / "work" / "iter_0"
    for name in ("labels.json", "train.json", "model.pt", "summary.json"):
        (it0 / name).unlink()
    shutil.rmtree(base / "work" / "iter_1")
    labels = ase.io.read(it0 / "labels.extxyz", index=":")
    n = len(labels)
    kept = [a for a in labels if a.info["label_index"] < 2]  # the first chunk (label_chunk: 2) survived
    (it0 / "labels.extxyz").unlink()
    ase.io.write(it0 / "labels.extxyz", kept, format="extxyz")
    with open(it0 / "labels.extxyz", "a") as f:
        f.write("16\nLattice=")  # a torn frame from the interruption
    lines: list[str] = []
    res = run_learning(
        tiny_config(max_iterations=0),
        client=dask_client,
        base_dir=base,
        max_iterations=1,
        log=lines.append,
    )
    assert any(f"labelling {n - 2} frames in" in ln for ln in lines), lines
    relabelled = ase.io.read(it0 / "labels.extxyz", index=":")
    assert [a.info["label_index"] for a in relabelled] == list(range(n))
    assert (it0 / "model.pt").is_file()
    assert res.iterations[0]["train"]["n_train_frames"] == 6 + n


def test_label_decimals_round_positions_before_the_teacher_and_forces_after(
    learned: dict[str, Any],
    dask_client: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    shutil.copytree(learned["base"], tmp_path / "b")
    base = tmp_path / "b"
    it0 = base / "work" / "iter_0"
    for name in ("labels.extxyz", "labels.json", "train.json", "model.pt", "summary.json"):
        (it0 / name).unlink()
    shutil.rmtree(base / "work" / "iter_1")
    cfg = tiny_config(max_iterations=0, label_decimals={"positions": 3, "forces": 2})
    run_learning(cfg, client=dask_client, base_dir=base, max_iterations=1, log=lambda _: None)
    full = ase.io.read(learned["work"] / "iter_0" / "labels.extxyz", index=":")
    short = ase.io.read(it0 / "labels.extxyz", index=":")
    assert len(short) == len(full) > 0
    teacher = mlff_teacher(model="lips-v0", members=[0])
    for a, b in zip(short, full, strict=True):
        assert a.info["label_decimals"] == "positions 3 forces 2"
        np.testing.assert_array_equal(a.positions, np.round(b.positions, 3))  # Å
        f = a.get_forces()
        np.testing.assert_allclose(f * 100, np.round(f * 100), atol=1e-6)  # eV/Å, two decimals
        # the labels belong to the written (rounded) positions, not the explored ones
        probe = a.copy()
        probe.calc = teacher
        np.testing.assert_allclose(f, probe.get_forces(), atol=0.005 + 1e-6)
        np.testing.assert_allclose(a.get_potential_energy(), probe.get_potential_energy(), atol=1e-6)
    # the energy check above can tell the two apart: rounding moved the teacher's energy by far more
    # than its 1e-6 eV tolerance, so a teacher that saw the explored positions would fail it
    moved = [
        abs(a.get_potential_energy() - b.get_potential_energy()) for a, b in zip(short, full, strict=True)
    ]
    assert min(moved) > 1e-5  # eV
    assert (it0 / "model.pt").is_file()


# ---------------------------------------------------------------------------- config errors
def _error(tmp_path: Path, **overrides: Any) -> str:
    write_data(tmp_path)
    with pytest.raises(LearnError) as exc:
        load_learn_config(tiny_config(**overrides), base_dir=tmp_path)
    return str(exc.value)


def test_unknown_teacher_is_named(tmp_path: Path) -> None:
    assert _error(tmp_path, teacher="vasp").startswith("teacher: unknown teacher 'vasp'")
    msg = _error(tmp_path, teacher="no_such_module_xyz:calc")
    assert msg.startswith("teacher: cannot import 'no_such_module_xyz:calc'")
    assert _error(tmp_path, teacher="ssehpc.ml.learn:no_such_factory").startswith("teacher: cannot import")


def test_missing_or_single_model_is_named(tmp_path: Path) -> None:
    assert _error(tmp_path, model="missing.pt").startswith("model: 'missing.pt' is neither a shipped model")
    one = load(resolve_model("lips")).member(0)
    one.save(tmp_path / "one.pt")
    assert "needs a committee" in _error(tmp_path, model="one.pt")


def test_bad_fields_name_the_field(tmp_path: Path) -> None:
    base = tiny_config()
    assert _error(tmp_path, train={**base["train"], "init": "x.pt"}).startswith("train.init: set by the loop")
    assert _error(tmp_path, train={**base["train"], "epochs": 0}).startswith("train.epochs:")
    assert _error(tmp_path, train={**base["train"], "data": "absent.extxyz"}).startswith("train.data: file")
    assert _error(tmp_path, target_accurate_fraction=1.5).startswith("target_accurate_fraction:")
    assert _error(tmp_path, screening={"max_totl": 3}) == "screening.max_totl: unknown field (typo?)"
    assert _error(tmp_path, screening={"trust_lo": 0.3, "trust_hi": 0.2}).startswith("screening: trust_lo")
    camp = {**base["campaign"], "dt_fs": -1}
    assert _error(tmp_path, campaign=camp).startswith("campaign: dt_fs:")


def test_cli_reports_a_bad_config_in_one_line(tmp_path: Path) -> None:
    from ssehpc.cli import app

    write_data(tmp_path)
    path = tmp_path / "learn.yaml"
    path.write_text(yaml.safe_dump(tiny_config(teacher="nonsense")))
    result = CliRunner().invoke(app, ["learn", str(path)])
    assert result.exit_code == 2
    assert "error: teacher: unknown teacher 'nonsense'" in result.output
