"""Physics and parameter handling of BuckinghamDSF (the LAMMPS comparison is in
test_buckingham_lammps.py)."""

from __future__ import annotations

import math

import pytest
import torch
from ase.build import bulk

from ssehpc import units
from ssehpc.forces import ForceCompute, NonFiniteError
from ssehpc.potentials import PARAMETER_SETS, BuckinghamDSF, tosi_fumi_nacl
from ssehpc.state import State
from tests.potentials.conformance import evaluate
from tests.potentials.structures import SHEAR, crystal_state, nacl

IONS = {"Na": 1.0, "Cl": -1.0}


@pytest.mark.parametrize(
    ("structure", "a", "nearest", "madelung"),
    [
        ("rocksalt", 5.64, 5.64 / 2, 1.747564594633),
        ("cesiumchloride", 4.0, 4.0 * math.sqrt(3) / 2, 1.762674773070),
    ],
)
def test_dsf_reproduces_madelung_energy(structure: str, a: float, nearest: float, madelung: float) -> None:
    """Point charges ±1: DSF (α = 0.2 Å⁻¹, r_c = 12 Å) with its self energy gives the Madelung
    (Ewald) lattice energy ``−M k / r₀`` per ion pair to 0.1 % (without the self term it is ~15 % off)."""
    atoms = bulk("NaCl", structure, a=a, cubic=structure == "rocksalt")
    state = crystal_state(atoms)
    pot = BuckinghamDSF(IONS, alpha=0.2, cutoff=12.0)
    per_pair = float(evaluate(pot, state).energy[0]) / (state.n_atoms / 2)
    exact = -madelung * units.COULOMB / nearest
    assert per_pair == pytest.approx(exact, rel=1e-3)
    self_energy = float(pot.self_energy[:2].sum())  # one Na + one Cl (the last entry is the NaN sentinel)
    assert abs(per_pair - self_energy - exact) > 0.1 * abs(exact)


def dimer(r: float, pot: BuckinghamDSF, box: float = 40.0) -> tuple[float, torch.Tensor]:
    """Energy (eV) and force on the Cl (eV/Å) of a Na–Cl pair at distance ``r`` along x."""
    pos = torch.tensor([[10.0, 10.0, 10.0], [10.0 + r, 10.0, 10.0]], dtype=torch.float64)
    state = State.from_arrays(
        pos, torch.tensor([22.99, 35.45]), torch.tensor([11, 17]), torch.eye(3, dtype=torch.float64) * box
    )
    out = evaluate(pot, state)
    return float(out.energy[0]), out.forces[1]


def test_dsf_energy_and_force_vanish_at_cutoff() -> None:
    """Shifted force: pair energy and force go continuously to zero at r_c; beyond it only the
    constant self energy ``−k q² (e_shift/2 + α/√π)`` per ion remains."""
    rc = 9.0
    pot = BuckinghamDSF(IONS, alpha=0.2, cutoff=rc)
    e_self = -(pot.e_shift / 2 + 0.2 / math.sqrt(math.pi)) * units.COULOMB * 2
    e_far, f_far = dimer(rc + 1e-6, pot)
    assert e_far == pytest.approx(e_self, rel=1e-14)
    assert float(f_far.abs().max()) == 0.0
    e_in, f_in = dimer(rc - 1e-4, pot)
    assert abs(e_in - e_self) < 1e-9
    assert float(f_in.abs().max()) < 1e-5
    # Inside: the Fennell–Gezelter kernel, written out independently with math.erfc.
    a, r = 0.2, 4.0
    f_sh = -(math.erfc(a * rc) / rc**2 + 2 * a / math.sqrt(math.pi) * math.exp(-((a * rc) ** 2)) / rc)
    e_pair = -units.COULOMB * (math.erfc(a * r) / r - math.erfc(a * rc) / rc - f_sh * (r - rc))
    f_pair = -units.COULOMB * (
        math.erfc(a * r) / r**2 + 2 * a / math.sqrt(math.pi) * math.exp(-((a * r) ** 2)) / r + f_sh
    )
    e_mid, f_mid = dimer(r, pot)
    assert e_mid - e_self == pytest.approx(e_pair, rel=1e-13)
    assert float(f_mid[0]) == pytest.approx(f_pair, rel=1e-13)  # attractive: Cl pulled towards −x
    assert f_pair < -0.1


@pytest.mark.parametrize("shift", [True, False])
def test_short_range_shift(shift: bool) -> None:
    """Neutral ions: with ``shift`` the Born–Mayer–Huggins energy is continuous at r_s."""
    tf = PARAMETER_SETS["NaCl-TosiFumi"]
    pot = BuckinghamDSF({"Na": 0.0, "Cl": 0.0}, tf["pairs"], cutoff=5.0, shift=shift)
    p = tf["pairs"]["Na-Cl"]
    r = 5.0
    phi_rc = p["A"] * math.exp((p["sigma"] - r) / p["rho"]) - p["C"] / r**6 + p["D"] / r**8
    e, _ = dimer(r - 1e-9, pot)
    assert e == pytest.approx(0.0 if shift else phi_rc, abs=1e-12)
    assert abs(phi_rc) > 1e-4  # the shift is far above the tolerance


def test_tosi_fumi_nacl_is_a_sensible_crystal() -> None:
    """Tosi–Fumi rock-salt NaCl: lattice energy ≈ −8.1 eV per ion pair (Born–Haber: −8.16 eV), zero
    pressure between a = 5.5 and 5.64 Å (experiment: 5.60 Å at 0 K, 5.64 Å at 300 K)."""
    pot = tosi_fumi_nacl()

    def energy_pressure(a: float) -> tuple[float, float]:
        out = evaluate(pot, nacl(1, a=a))
        p = float(torch.diagonal(out.virial[0]).sum()) / 3 / a**3 * units.EV_PER_A3_TO_GPA
        return float(out.energy[0]) / 4, p

    e, p_exp = energy_pressure(5.64)
    assert -8.3 < e < -7.8
    assert -1.0 < p_exp < 0.0
    assert energy_pressure(5.5)[1] > 0.5


def test_float32_matches_float64() -> None:
    pot = tosi_fumi_nacl(cutoff=9.0)
    state = nacl(2, jitter=0.1, deform=SHEAR, seed=4)
    st32 = state.to(dtype=torch.float32)
    ForceCompute(pot).compute(st32)
    ref = evaluate(pot, state)
    assert st32.energy.dtype == torch.float32
    torch.testing.assert_close(st32.energy.double(), ref.energy, rtol=1e-5, atol=0)
    torch.testing.assert_close(
        st32.forces.double(), ref.forces, rtol=0, atol=1e-4 * float(ref.forces.abs().max())
    )


# ------------------------------------------------------------------------------------ parameters
def test_pair_key_and_parameter_forms_are_equivalent() -> None:
    state = nacl(1, jitter=0.1, seed=1)
    forms = [
        {("Na", "Cl"): (1200.0, 0.32, 5.0), ("Cl", "Cl"): (3000.0, 0.33, 70.0)},
        {"Cl-Na": {"A": 1200.0, "rho": 0.32, "C": 5.0}, "Cl-Cl": {"A": 3000.0, "rho": 0.33, "C": 70.0}},
        {(11, 17): [1200.0, 0.32, 5.0], (17, 17): {"a": 3000.0, "Rho": 0.33, "C": 70.0, "sigma": 0.0}},
    ]
    energies = [float(evaluate(BuckinghamDSF(IONS, f, cutoff=7.0), state).energy[0]) for f in forms]
    assert energies[0] == energies[1] == energies[2]
    coulomb_only = float(evaluate(BuckinghamDSF(IONS, cutoff=7.0), state).energy[0])
    assert energies[0] != pytest.approx(coulomb_only, rel=1e-3)


@pytest.mark.parametrize(
    ("charges", "pairs", "kwargs", "match"),
    [
        (IONS, {"Na-Li": (1.0, 0.3, 0.0)}, {}, "Li"),
        (IONS, {"Na-Cl": (1.0, 0.0, 0.0)}, {}, "rho"),
        (IONS, {"Na-Cl": {"A": 1.0, "rho": 0.3, "E": 2.0}}, {}, "unknown parameters"),
        (IONS, {"Na-Cl": (1.0, 0.3)}, {}, "parameters must be"),
        (IONS, {"Na-Cl": (1.0, 0.3, 0.0), ("Cl", "Na"): (2.0, 0.3, 0.0)}, {}, "twice"),
        (IONS, {"NaCl": (1.0, 0.3, 0.0)}, {}, "two elements"),
        ({"Xx": 1.0}, {}, {}, "unknown element"),
        ({}, {}, {}, "charge"),
        (IONS, {}, {"cutoff": -1.0}, "cutoff"),
        (IONS, {}, {"alpha": -0.1}, "alpha"),
    ],
)
def test_bad_parameters_are_rejected(charges: dict, pairs: dict, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        BuckinghamDSF(charges, pairs, **kwargs)


def test_tosi_fumi_parameters_in_ev() -> None:
    """Spot values of the converted Tosi–Fumi table (J → eV, m → Å), as quoted in eV/Å units by
    e.g. the LAMMPS and ESPResSo NaCl examples."""
    p = PARAMETER_SETS["NaCl-TosiFumi"]["pairs"]
    assert p["Na-Cl"]["A"] == pytest.approx(0.21096, rel=1e-4)
    assert p["Na-Na"]["A"] == pytest.approx(0.26370, rel=1e-4)
    assert p["Na-Cl"]["C"] == pytest.approx(6.99055, rel=1e-4)
    assert p["Na-Cl"]["D"] == pytest.approx(-8.6757, rel=1e-4)
    assert p["Cl-Cl"]["C"] == pytest.approx(72.40, rel=1e-3)
    assert p["Cl-Cl"]["D"] == pytest.approx(-145.43, rel=1e-3)


def test_unknown_element_without_check_fails_loudly() -> None:
    """An element without parameters that slipped past ForceCompute.check gives NaN, not a silent
    mix-up with a known element (here Li, Z = 3, below both known Z)."""
    state = nacl(1)
    state.species[0] = 3
    with pytest.raises(NonFiniteError):
        ForceCompute(tosi_fumi_nacl(cutoff=7.0)).compute(state)
