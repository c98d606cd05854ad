"""Checkpoints: bitwise round trip of every State field and state dict, atomic replacement."""

from __future__ import annotations

import math

import pytest
import torch
import zarr

from ssehpc.io import checkpoint as ckpt_mod
from ssehpc.io.checkpoint import CheckpointError, has_checkpoint, read_checkpoint, write_checkpoint
from ssehpc.state import State


def random_state(step: int = 17, seed: int = 5, n: int = 7) -> State:
    g = torch.Generator().manual_seed(step)
    st = State.from_arrays(
        torch.rand((n, 3), generator=g, dtype=torch.float64) * 4,
        torch.rand(n, generator=g, dtype=torch.float64) + 1,
        torch.randint(1, 90, (n,), generator=g),
        torch.eye(3, dtype=torch.float64) * 4 + 0.1 * torch.rand((3, 3), generator=g, dtype=torch.float64),
        momenta=torch.randn((n, 3), generator=g, dtype=torch.float64),
        image=torch.randint(-3, 4, (n, 3), generator=g),
        tag=torch.randperm(n, generator=g),
        seed=seed,
        step=step,
    )
    st.forces = torch.randn((n, 3), generator=g, dtype=torch.float64)
    st.energy = torch.randn(1, generator=g, dtype=torch.float64)
    st.virial = torch.randn((1, 3, 3), generator=g, dtype=torch.float64)
    return st


def assert_states_bitwise_equal(a: State, b: State) -> None:
    for name, scope in State.scopes.items():
        va, vb = getattr(a, name), getattr(b, name)
        if scope == "global":
            assert va == vb, name
        else:
            assert va.dtype == vb.dtype, name
            assert torch.equal(va, vb), name


@pytest.fixture
def parent(tmp_path) -> zarr.Group:
    return zarr.open_group(str(tmp_path / "c.zarr"), mode="w").create_group("checkpoint")


def test_round_trip_is_bitwise(parent):
    st = random_state()
    integ = {
        "heat": torch.tensor([1.0 / 3.0], dtype=torch.float64),
        "chain": {"eta": torch.randn(2, 3, dtype=torch.float64), "n": 3},
        "pair": (0.1, torch.arange(3)),
        "x": 1e-300,
        "nan": math.nan,
        "flag": True,
        "name": "bath",
        "nothing": None,
    }
    forces = {"nl_ref_positions": st.positions + 0.01, "nl_ref_cell": st.cell.clone()}
    name = write_checkpoint(parent, st, integ, forces, {"spec": {"dt_fs": 2.0}})
    c = read_checkpoint(parent)
    assert c.name == name
    assert c.step == 17
    assert_states_bitwise_equal(st, c.state)
    assert torch.equal(c.integrator["heat"], integ["heat"])
    assert torch.equal(c.integrator["chain"]["eta"], integ["chain"]["eta"])
    assert c.integrator["chain"]["n"] == 3
    assert c.integrator["pair"][0] == 0.1
    assert torch.equal(c.integrator["pair"][1], torch.arange(3))
    assert c.integrator["x"] == 1e-300
    assert math.isnan(c.integrator["nan"])
    assert c.integrator["flag"] is True
    assert c.integrator["name"] == "bath"
    assert c.integrator["nothing"] is None
    assert torch.equal(c.forces["nl_ref_positions"], forces["nl_ref_positions"])
    assert c.metadata == {"spec": {"dt_fs": 2.0}}


def test_float32_state_round_trips_in_its_dtype(parent):
    st = random_state().to(dtype=torch.float32)
    write_checkpoint(parent, st, {}, {})
    assert_states_bitwise_equal(st, read_checkpoint(parent).state)


def test_new_checkpoint_replaces_old(parent):
    write_checkpoint(parent, random_state(step=10), {}, {})
    name = write_checkpoint(parent, random_state(step=20), {}, {})
    assert list(parent.group_keys()) == [name]
    assert read_checkpoint(parent).step == 20


def test_keep_several(parent):
    names = [write_checkpoint(parent, random_state(step=s), {}, {}, keep=2) for s in (1, 2, 3)]
    assert sorted(parent.group_keys()) == sorted(names[1:])
    assert read_checkpoint(parent, name=names[1]).step == 2


def test_crash_mid_write_keeps_previous(parent, monkeypatch):
    good = random_state(step=10)
    write_checkpoint(parent, good, {"heat": torch.ones(1, dtype=torch.float64)}, {})
    calls = {"n": 0}
    real = ckpt_mod._write_array

    def flaky(group, name, value):
        calls["n"] += 1
        if calls["n"] == 5:
            raise OSError("node died mid-checkpoint")
        real(group, name, value)

    monkeypatch.setattr(ckpt_mod, "_write_array", flaky)
    with pytest.raises(OSError, match="mid-checkpoint"):
        write_checkpoint(parent, random_state(step=20), {}, {})
    monkeypatch.undo()
    # the pointer still names the complete previous checkpoint
    c = read_checkpoint(zarr.open_group(parent.store, path=parent.path, mode="r"))
    assert c.step == 10
    assert_states_bitwise_equal(good, c.state)
    assert torch.equal(c.integrator["heat"], torch.ones(1, dtype=torch.float64))
    assert len(list(parent.group_keys())) == 2  # the orphan is still there ...
    write_checkpoint(parent, random_state(step=30), {}, {})
    assert len(list(parent.group_keys())) == 1  # ... until the next good checkpoint


def test_no_checkpoint(parent):
    assert not has_checkpoint(parent)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        read_checkpoint(parent)


def test_unsupported_value(parent):
    with pytest.raises(TypeError, match="cannot checkpoint"):
        write_checkpoint(parent, random_state(), {"f": object()}, {})
