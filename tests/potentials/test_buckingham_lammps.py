"""BuckinghamDSF equals LAMMPS ``pair_style born/coul/dsf`` (metal units) to round-off."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ssehpc import units
from ssehpc.potentials import PARAMETER_SETS, BuckinghamDSF
from tests.potentials.conformance import evaluate
from tests.potentials.lammps_ref import run_lammps
from tests.potentials.structures import SHEAR, nacl

pytestmark = pytest.mark.lammps

RTOL = 1e-10
#: LAMMPS metal ``force->qqr2e`` (rounded; units.COULOMB is CODATA 2018).
LAMMPS_QQR2E = 14.399645
TYPES = {"Na": 1, "Cl": 2}
MASSES = {1: 22.98976928, 2: 35.453}

TOSI_FUMI = PARAMETER_SETS["NaCl-TosiFumi"]["pairs"]
#: Plain Buckingham (σ = D = 0): Tosi–Fumi repulsion folded into A, no Na–Na short-range term.
BUCKINGHAM = {
    key: {"A": p["A"] * math.exp(p["sigma"] / p["rho"]), "rho": p["rho"], "C": p["C"]}
    for key, p in TOSI_FUMI.items()
    if key != "Na-Na"
}


def pair_coeffs(pairs: dict[str, dict[str, float]]) -> list[str]:
    """``pair_coeff i j A rho sigma C D`` for every type pair (absent pairs: A = C = D = 0)."""
    lines = []
    for a, b in (("Na", "Na"), ("Na", "Cl"), ("Cl", "Cl")):
        p = pairs.get(f"{a}-{b}", {"A": 0.0, "rho": 1.0})
        vals = [p["A"], p["rho"], p.get("sigma", 0.0), p.get("C", 0.0), p.get("D", 0.0)]
        lines.append(f"pair_coeff {TYPES[a]} {TYPES[b]} " + " ".join(f"{v:.17g}" for v in vals))
    return lines


def max_rel(ours: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(np.asarray(ours) - np.asarray(ref)).max() / np.abs(ref).max())


CASES = {
    # name: (pairs, alpha 1/Å, r_s Å, r_c Å, shift, triclinic)
    "tosi-fumi-triclinic-shift": (TOSI_FUMI, 0.2, 10.0, 10.0, True, True),
    "tosi-fumi-rs9-rc11-triclinic": (TOSI_FUMI, 0.25, 9.0, 11.0, True, True),
    "buckingham-rs11-rc9-noshift": (BUCKINGHAM, 0.2, 11.0, 9.0, False, False),
}


@pytest.mark.parametrize("case", list(CASES))
def test_buckingham_dsf_matches_lammps(lmp: str, tmp_path, case: str) -> None:
    """512 jittered NaCl ions: E, per-atom E (with the DSF self energy), forces and W equal LAMMPS."""
    pairs, alpha, r_s, r_c, shift, triclinic = CASES[case]
    state = nacl(4, jitter=0.12, seed=7, deform=SHEAR if triclinic else None, rotate=triclinic)
    assert state.n_atoms >= 500
    pot = BuckinghamDSF(
        {"Na": 1.0, "Cl": -1.0},
        pairs,
        alpha=alpha,
        cutoff=r_c,
        short_cutoff=r_s,
        shift=shift,
        coulomb_constant=LAMMPS_QQR2E,
    )
    ours = evaluate(pot, state)
    species = state.species.numpy()
    types = np.where(species == 11, 1, 2)
    charges = np.where(species == 11, 1.0, -1.0)
    cmds = [
        f"pair_style born/coul/dsf {alpha} {r_s} {r_c}",
        *pair_coeffs(pairs),
        f"pair_modify shift {'yes' if shift else 'no'}",
    ]
    ref = run_lammps(
        lmp, tmp_path, state.positions.numpy(), state.cell[0].numpy(), types, MASSES, cmds, charges
    )
    dev = {
        "energy": abs(float(ours.energy[0]) - ref.energy) / abs(ref.energy),
        "per-atom energy": max_rel(ours.energies.numpy(), ref.energies),
        "forces": max_rel(ours.forces.numpy(), ref.forces),
        "virial": max_rel(ours.virial[0].numpy(), ref.virial),
    }
    print(case, {k: f"{v:.2e}" for k, v in dev.items()})
    assert max(dev.values()) <= RTOL, dev


def test_lammps_coulomb_constant_is_rounded_codata() -> None:
    """LAMMPS's metal ``qqr2e`` is units.COULOMB rounded to 8 digits (so the default is not off)."""
    assert round(units.COULOMB, 6) == LAMMPS_QQR2E
