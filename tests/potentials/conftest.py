"""Fixtures for the potential tests: seeded crystal builders and the LAMMPS executable."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest
import torch

from ssehpc.state import State
from tests.potentials.lammps_ref import find_lmp
from tests.potentials.structures import SHEAR, argon, nacl


@pytest.fixture(autouse=True)
def single_thread() -> Iterator[None]:
    """One intra-op thread: these systems are tiny, and on a shared 2-core machine a second
    spinning thread makes every small tensor op ~50x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def make_argon() -> Callable[..., State]:
    return argon


@pytest.fixture
def make_nacl() -> Callable[..., State]:
    return nacl


@pytest.fixture
def shear() -> np.ndarray:
    return SHEAR.copy()


@pytest.fixture(scope="session")
def lmp() -> str:
    """The LAMMPS executable; skips the test if there is none."""
    exe = find_lmp()
    if exe is None:
        pytest.skip("LAMMPS executable 'lmp' not found on PATH or in sys.prefix/bin")
    return exe
