"""State: scopes, batching, conversion and validation."""

from __future__ import annotations

import pytest
import torch

from ssehpc import space, units
from ssehpc.state import State, concatenate, split
from tests.conftest import fcc_argon


def test_scopes_cover_every_field() -> None:
    import dataclasses

    names = {f.name for f in dataclasses.fields(State)}
    assert names == set(State.scopes)


def test_concatenate_split_roundtrip() -> None:
    a, b = fcc_argon(2, seed=1, jitter=0.1), fcc_argon(3, seed=2, jitter=0.1)
    b.cell = b.cell * 1.01
    batch = concatenate([a, b])
    assert batch.n_systems == 2
    assert batch.n_atoms == a.n_atoms + b.n_atoms
    assert torch.unique(batch.tag).numel() == batch.n_atoms
    back = split(batch)
    torch.testing.assert_close(back[0].positions, a.positions)
    torch.testing.assert_close(back[1].cell, b.cell)
    assert torch.equal(back[1].system_idx, torch.zeros(b.n_atoms, dtype=torch.int64))


def test_to_keeps_integer_fields() -> None:
    s = fcc_argon(2).to(dtype=torch.float32)
    assert s.positions.dtype == torch.float32
    assert s.tag.dtype == torch.int64
    assert s.image.dtype == torch.int64


def test_unwrapped_positions_follow_image_flags() -> None:
    s = fcc_argon(2, jitter=0.0)
    x0 = s.positions.clone()
    s.positions = s.positions + torch.tensor([12.0, -7.0, 30.0], dtype=torch.float64)
    unwrapped = s.positions.clone()
    s.positions, shift = space.wrap(s.positions, s.cell, s.system_idx)
    s.image = s.image + shift
    assert bool((space.to_fractional(s.positions, s.cell, s.system_idx) >= 0).all())
    torch.testing.assert_close(s.unwrapped_positions(), unwrapped)
    assert not torch.allclose(s.positions, unwrapped)
    del x0


def test_wrap_is_idempotent_bitwise() -> None:
    s = fcc_argon(3, jitter=0.3)
    w1, _ = space.wrap(s.positions, s.cell, s.system_idx)
    w2, shift = space.wrap(w1, s.cell, s.system_idx)
    assert torch.equal(w1, w2)
    assert not bool(shift.any())


def test_kinetic_energy_units() -> None:
    """One argon atom moving at 1 Å/fs = 1e5 m/s has KE = ½ m v² = 39.948 amu·(1e5 m/s)²/2."""
    s = State.from_arrays(
        torch.zeros(1, 3, dtype=torch.float64),
        torch.tensor([39.948], dtype=torch.float64),
        torch.tensor([18]),
        torch.eye(3) * 10,
    )
    s.momenta = torch.tensor([[39.948, 0.0, 0.0]], dtype=torch.float64)
    ke_joule = 0.5 * 39.948 * 1.66053906660e-27 * (1e5) ** 2
    assert s.kinetic_energy().item() == pytest.approx(ke_joule / 1.602176634e-19, rel=1e-12)
    assert pytest.approx(103.6427, rel=1e-6) == units.MVV2E


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"positions": torch.full((4, 3), float("nan"))}, "NaN"),
        ({"masses": torch.tensor([1.0, 1.0, -1.0, 1.0])}, "masses"),
        ({"cell": torch.zeros(1, 3, 3)}, "singular"),
        ({"species": torch.tensor([1, 2])}, "species"),
    ],
)
def test_validate_names_the_problem(change: dict, message: str) -> None:
    base = {
        "positions": torch.zeros(4, 3, dtype=torch.float64),
        "masses": torch.ones(4, dtype=torch.float64),
        "species": torch.ones(4, dtype=torch.int64),
        "cell": torch.eye(3, dtype=torch.float64) * 5,
    }
    base.update(change)
    with pytest.raises(ValueError, match=message):
        State.from_arrays(**base)
