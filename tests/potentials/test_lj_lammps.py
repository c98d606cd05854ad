"""LennardJones equals LAMMPS ``pair_style lj/cut`` (metal units) to round-off."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ssehpc.potentials import LennardJones
from tests.potentials.conformance import evaluate
from tests.potentials.lammps_ref import run_lammps
from tests.potentials.structures import SHEAR, argon

pytestmark = pytest.mark.lammps

RTOL = 1e-10
EPS, SIG, CUT = 0.0104, 3.405, 8.5


def max_rel(ours: np.ndarray, ref: np.ndarray) -> float:
    """``max|ours − ref| / max|ref|``."""
    return float(np.abs(np.asarray(ours) - np.asarray(ref)).max() / np.abs(ref).max())


def compare(ours, ref) -> dict[str, float]:
    dev = {
        "energy": abs(float(ours.energy[0]) - ref.energy) / abs(ref.energy),
        "per-atom energy": max_rel(ours.energies.numpy(), ref.energies),
        "forces": max_rel(ours.forces.numpy(), ref.forces),
        "virial": max_rel(ours.virial[0].numpy(), ref.virial),
    }
    print({k: f"{v:.2e}" for k, v in dev.items()})
    return dev


@pytest.mark.parametrize(
    ("triclinic", "shift"),
    [(False, True), (True, True), (True, False)],
    ids=["orthorhombic-shift", "triclinic-shift", "triclinic-noshift"],
)
def test_lj_matches_lammps(lmp: str, tmp_path, triclinic: bool, shift: bool) -> None:
    """500 jittered fcc argon atoms (a = 5.26 Å): E, per-atom E, forces and W equal LAMMPS."""
    state = argon(5, jitter=0.12, seed=3, deform=SHEAR if triclinic else None, rotate=triclinic)
    assert state.n_atoms >= 500
    pot = LennardJones(EPS, SIG, CUT, shift=shift)
    ours = evaluate(pot, state)
    cmds = [
        f"pair_style lj/cut {CUT}",
        f"pair_coeff 1 1 {EPS} {SIG}",
        f"pair_modify shift {'yes' if shift else 'no'}",
    ]
    ref = run_lammps(
        lmp,
        tmp_path,
        state.positions.numpy(),
        state.cell[0].numpy(),
        np.ones(state.n_atoms, int),
        {1: 39.948},
        cmds,
    )
    dev = compare(ours, ref)
    assert max(dev.values()) <= RTOL, dev
    # The comparison is not vacuous: forces are large and the shift matters at this precision.
    assert np.abs(ref.forces).max() > 0.05
    assert abs(ref.energy) > 10.0


def test_lj_mixture_matches_lammps(lmp: str, tmp_path) -> None:
    """Ar/Kr mixture with per-pair ε, σ in a triclinic cell (type table path)."""
    state = argon(5, jitter=0.1, seed=5, deform=SHEAR, rotate=True)
    g = torch.Generator().manual_seed(0)
    kr = torch.randperm(state.n_atoms, generator=g)[: state.n_atoms // 3]
    state.species[kr] = 36
    state.masses[kr] = 83.798
    pairs = {("Ar", "Ar"): (0.0104, 3.405), ("Ar", "Kr"): (0.0123, 3.55), ("Kr", "Kr"): (0.0140, 3.65)}
    pot = LennardJones(cutoff=CUT, pairs=pairs)
    ours = evaluate(pot, state)
    types = np.where(state.species.numpy() == 36, 2, 1)
    cmds = [
        f"pair_style lj/cut {CUT}",
        "pair_coeff 1 1 0.0104 3.405",
        "pair_coeff 1 2 0.0123 3.55",
        "pair_coeff 2 2 0.0140 3.65",
        "pair_modify shift yes",
    ]
    ref = run_lammps(
        lmp, tmp_path, state.positions.numpy(), state.cell[0].numpy(), types, {1: 39.948, 2: 83.798}, cmds
    )
    dev = compare(ours, ref)
    assert max(dev.values()) <= RTOL, dev
