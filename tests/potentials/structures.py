"""Seeded crystals for the potential tests (optionally strained, rotated, jittered), float64."""

from __future__ import annotations

import numpy as np
import torch
from ase import Atoms
from ase.build import bulk

from ssehpc.state import State

#: A non-symmetric deformation ``I + S`` that makes a cubic cell triclinic (LAMMPS tilts < 0.5).
SHEAR = np.array([[1.02, 0.03, -0.05], [0.11, 0.97, 0.04], [-0.07, 0.09, 1.01]])


def crystal_state(
    atoms: Atoms,
    *,
    jitter: float = 0.0,
    deform: np.ndarray | None = None,
    rotate: bool = False,
    seed: int = 0,
) -> State:
    """Float64 state from ``atoms``: ``x → x·deform`` (cell too), a random rotation, then Gaussian
    ``jitter`` (Å) on every coordinate."""
    rng = np.random.default_rng(seed)
    pos, cell = atoms.positions.copy(), atoms.cell.array.copy()
    if deform is not None:
        pos, cell = pos @ deform, cell @ deform
    if rotate:
        q, r = np.linalg.qr(rng.normal(size=(3, 3)))
        q = q * np.sign(np.diag(r))
        if np.linalg.det(q) < 0:
            q[:, 0] = -q[:, 0]
        pos, cell = pos @ q, cell @ q
    pos = pos + jitter * rng.normal(size=pos.shape)
    return State.from_arrays(
        torch.tensor(pos, dtype=torch.float64),
        torch.tensor(atoms.get_masses(), dtype=torch.float64),
        torch.tensor(atoms.numbers),
        torch.tensor(cell, dtype=torch.float64),
    )


def argon(repeat: int = 2, a: float = 5.26, **kw: object) -> State:
    """fcc argon, ``repeat``³ conventional cells (4 atoms each)."""
    return crystal_state(bulk("Ar", "fcc", a=a, cubic=True).repeat(repeat), **kw)


def nacl(repeat: int = 1, a: float = 5.64, **kw: object) -> State:
    """Rock-salt NaCl, ``repeat``³ conventional cells (8 ions each)."""
    return crystal_state(bulk("NaCl", "rocksalt", a=a, cubic=True).repeat(repeat), **kw)
