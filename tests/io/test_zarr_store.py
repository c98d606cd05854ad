"""The Zarr run store: layout, commit rule, truncation, reader, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import zarr

from ssehpc.io.zarr_store import (
    FRAME_FIELDS,
    MAX_ATOM_BLOCK,
    RunStore,
    StoreError,
    ZarrStore,
    frame_chunks,
)
from ssehpc.state import State


def small_state(n: int = 6, n_sys: int = 1) -> State:
    g = torch.Generator().manual_seed(1)
    pos = torch.rand((n, 3), generator=g, dtype=torch.float64) * 5
    return State.from_arrays(
        pos,
        torch.full((n,), 39.948, dtype=torch.float64),
        torch.full((n,), 18),
        torch.eye(3, dtype=torch.float64).expand(n_sys, 3, 3) * 5,
        system_idx=torch.arange(n) % n_sys,
        tag=torch.arange(n).flip(0),  # rows not in tag order
    )


def frame(step: int, n: int = 6, n_sys: int = 1) -> dict:
    return {
        "positions": np.full((n, 3), step, dtype=np.float32),
        "cell": np.tile(np.eye(3) * 5, (n_sys, 1, 1)),
        "time_fs": 2.0 * step,
        "energy_eV": np.full(n_sys, -1.0 * step),
        "kinetic_energy_eV": np.ones(n_sys),
        "temperature_K": np.full(n_sys, 100.0),
        "pressure_GPa": np.zeros(n_sys),
        "conserved_energy_eV": np.zeros(n_sys),
        "step": step,
    }


@pytest.fixture
def run(tmp_path) -> RunStore:
    store = ZarrStore.open(tmp_path / "s.zarr", "a", spec={"hello": 1})
    return store.create_run("r0", small_state(), {"dt_fs": 2.0, "steps": 100, "ensemble": "nve"})


def test_layout_and_attributes(run, tmp_path):
    root = zarr.open_group(str(tmp_path / "s.zarr"), mode="r")
    assert root.attrs["schema_version"] == 1
    assert root.attrs["spec"] == {"hello": 1}
    g = root["runs/r0"]
    assert g.attrs["status"] == "created"
    assert g.attrs["n_frames"] == 0
    assert g.attrs["units"]["length"] == "angstrom"
    assert g["positions"].dtype == np.float32
    assert g["positions"].shape == (0, 6, 3)
    assert g["cell"].shape == (0, 1, 3, 3)
    assert g["cell"].dtype == np.float64
    assert g["energy_eV"].shape == (0, 1)
    assert g["step"].dtype == np.int64
    # static arrays are in tag order
    np.testing.assert_array_equal(g["tag"][:], np.arange(6))
    np.testing.assert_array_equal(g["species"][:], np.full(6, 18))
    for name in FRAME_FIELDS:
        assert "units" in g[name].attrs


def test_append_read_and_commit(run):
    run.append_frames([frame(0), frame(10)])
    run.append_frames([frame(20)])
    assert run.n_frames == 3
    assert run.last_step == 20
    r = RunStore.open(run.store_path)
    out = r.read_frames()
    np.testing.assert_array_equal(out["step"], [0, 10, 20])
    assert out["positions"].shape == (3, 6, 3)
    np.testing.assert_array_equal(r.read_frames(start=1, fields=["step"])["step"], [10, 20])
    np.testing.assert_array_equal(r.read_frames(stride=2, fields=["step"])["step"], [0, 20])
    sub = r.read_frames(fields=["positions"], atoms=np.array([0, 5]))["positions"]
    assert sub.shape == (3, 2, 3)
    assert r.to_dask("energy_eV").compute()[:, 0].tolist() == [0.0, -10.0, -20.0]


def test_uncommitted_frames_are_invisible_and_overwritten(run, monkeypatch):
    """A crash after the arrays were written but before the commit leaves no visible frame."""
    run.append_frames([frame(0)])

    def crash(**_):
        raise OSError("disk gone")

    monkeypatch.setattr(run, "update_attrs", crash)
    with pytest.raises(OSError, match="disk gone"):
        run.append_frames([frame(99)])
    monkeypatch.undo()
    reader = RunStore.open(run.store_path)
    assert reader.n_frames == 1
    assert reader.group["step"].shape[0] == 2  # the data is there, but not committed
    np.testing.assert_array_equal(reader.read_frames(fields=["step"])["step"], [0])
    # the next writer continues after the committed frame, overwriting the orphan
    writer = RunStore.open(run.store_path, mode="r+")
    writer.append_frames([frame(10)])
    np.testing.assert_array_equal(RunStore.open(run.store_path).read_frames(fields=["step"])["step"], [0, 10])


def test_truncate_after_step(run):
    run.append_frames([frame(s) for s in (0, 10, 20, 30)])
    run.truncate_after_step(15)
    assert run.n_frames == 2
    assert run.last_step == 10
    assert run.group["positions"].shape[0] == 2
    run.append_frames([frame(20)])
    np.testing.assert_array_equal(run.read_frames(fields=["step"])["step"], [0, 10, 20])
    run.truncate(0)
    assert run.n_frames == 0
    assert run.last_step is None


def test_frame_shape_is_checked(run):
    bad = frame(0)
    bad["positions"] = np.zeros((5, 3), dtype=np.float32)
    with pytest.raises(StoreError, match="positions"):
        run.append_frames([bad])
    incomplete = frame(0)
    del incomplete["cell"]
    with pytest.raises(StoreError, match="cell"):
        run.append_frames([incomplete])


def test_batched_systems_have_a_system_axis(tmp_path):
    store = ZarrStore.open(tmp_path / "b.zarr", "a")
    run = store.create_run("batch", small_state(6, n_sys=2), {})
    run.append_frames([frame(0, n_sys=2)])
    out = run.read_frames()
    assert out["cell"].shape == (1, 2, 3, 3)
    assert out["temperature_K"].shape == (1, 2)
    np.testing.assert_array_equal(run.read_static("system_idx"), [1, 0, 1, 0, 1, 0])


def test_status_and_summary(run):
    run.set_status("failed", "NonFiniteError: boom")
    r = RunStore.open(run.store_path)
    assert r.status == "failed"
    assert r.error == "NonFiniteError: boom"
    s = r.summary()
    assert s["status"] == "failed"
    assert s["n_frames"] == 0
    with pytest.raises(ValueError, match="status"):
        run.set_status("exploded")


def test_chunking():
    frames, atoms = frame_chunks(32000)
    assert atoms == 32000
    assert 1 <= frames <= 128
    assert frames * 32000 * 12 <= 8 << 20
    frames, atoms = frame_chunks(10_000_000)
    assert atoms == MAX_ATOM_BLOCK
    assert frames >= 1


def test_open_errors(tmp_path, run):
    with pytest.raises(StoreError, match="does not exist"):
        ZarrStore.open(tmp_path / "missing.zarr")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "file.txt").write_text("hello")
    with pytest.raises(StoreError, match="is not a Zarr v3 store"):
        ZarrStore.open(tmp_path / "dir")
    (tmp_path / "dir" / "zarr.json").write_text("{broken")
    with pytest.raises(StoreError, match="is not a Zarr v3 store"):
        ZarrStore.open(tmp_path / "dir")
    plain = tmp_path / "plain.zarr"
    zarr.open_group(str(plain), mode="w").create_group("x")
    with pytest.raises(StoreError, match="not an ssehpc store"):
        ZarrStore.open(plain, "a")
    store = ZarrStore.open(run.store_path, "a")
    with pytest.raises(StoreError, match="already exists"):
        store.create_run("r0", small_state(), {})
    store.create_run("r1", small_state(), {})
    with pytest.raises(StoreError, match="2 runs"):
        RunStore.open(run.store_path)
    with pytest.raises(StoreError, match="no run 'zz'"):
        RunStore.open(run.store_path, "zz")
    assert store.runs == ["r0", "r1"]
    # overwrite replaces
    store.create_run("r0", small_state(4), {}, overwrite=True)
    assert RunStore.open(run.store_path, "r0").n_atoms == 4
