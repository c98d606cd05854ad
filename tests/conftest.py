"""Shared fixtures: small seeded systems."""

from __future__ import annotations

import pytest
import torch
from ase.build import bulk

from ssehpc.state import State


@pytest.fixture(autouse=True)
def _single_thread():
    """One intra-op thread per test process: the test systems are tiny and CI runs two pytest
    workers on two cores, where extra spinning threads make small tensor ops ~50x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def fcc_argon(repeat: int = 3, a: float = 5.26, jitter: float = 0.0, seed: int = 0) -> State:
    """fcc argon, ``repeat``³ cubic cells, optional Gaussian jitter (Å), float64."""
    atoms = bulk("Ar", "fcc", a=a, cubic=True).repeat((repeat, repeat, repeat))
    pos = torch.tensor(atoms.positions, dtype=torch.float64)
    if jitter:
        g = torch.Generator().manual_seed(seed)
        pos = pos + jitter * torch.randn(pos.shape, generator=g, dtype=torch.float64)
    return State.from_arrays(
        pos,
        torch.tensor(atoms.get_masses(), dtype=torch.float64),
        torch.tensor(atoms.numbers),
        torch.tensor(atoms.cell.array, dtype=torch.float64),
        seed=seed,
    )


@pytest.fixture
def argon() -> State:
    return fcc_argon(3, jitter=0.05)
