"""Li–P–S structures: composition, charge, density, bonds, contacts, defects, glasses, seeds."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from ssehpc.structures import (
    PROTOTYPES,
    density,
    formal_charge,
    glass_composition,
    li_vacancies,
    min_distance,
    p2s7_unit,
    p4s10_molecule,
    prototype,
    ps4_unit,
    ps_bond_lengths,
    random_glass,
    rattled,
    strained,
    supercell,
    thiophosphate_units,
)

FORMULAS = {
    "Li2S": "Li8S4",
    "beta-Li3PS4": "Li12P4S16",
    "gamma-Li3PS4": "Li6P2S8",
    "Li7P3S11": "Li14P6S22",
    "Li4P2S6": "Li4P2S6",
    "P4S10": "P8S20",
}


@pytest.mark.parametrize("name", sorted(PROTOTYPES))
def test_prototype_composition_charge_density(name):
    atoms = prototype(name)
    assert atoms.get_chemical_formula() == FORMULAS[name]
    assert formal_charge(atoms) == 0
    assert density(atoms) == pytest.approx(PROTOTYPES[name].density, rel=0.01)
    assert atoms.info["structure"] == name
    assert atoms.info["structure_source"]


@pytest.mark.parametrize("name", sorted(PROTOTYPES))
def test_prototype_bonds_units_and_contacts(name):
    atoms = prototype(name)
    units = dict(thiophosphate_units(atoms))
    assert units == PROTOTYPES[name].units
    ps = ps_bond_lengths(atoms)
    if "P" in atoms.get_chemical_symbols():
        assert ps.min() > 1.9
        assert ps.max() < 2.2
        assert len(ps) == 4 * units.get("PS4", 0) + 8 * units.get("P2S7", 0) + 6 * units.get(
            "P2S6", 0
        ) + 16 * units.get("P4S10", 0)
    assert min_distance(atoms) > 1.8
    # non-bonded contacts: cations keep their distance from each other and from S
    if "Li" in atoms.get_chemical_symbols():
        assert min_distance(atoms, ("Li", "S")) > 2.2
        assert min_distance(atoms, ("Li", "Li")) > 2.2
        assert min_distance(atoms, ("Li", "P")) > 2.6


def test_li4p2s6_p_p_bond_and_li2s_lattice():
    atoms = prototype("Li4P2S6")
    assert min_distance(atoms, ("P", "P")) == pytest.approx(2.24, abs=0.03)
    li2s = prototype("Li2S")
    assert min_distance(li2s, ("Li", "S")) == pytest.approx(5.708 * np.sqrt(3) / 4, abs=1e-6)


def test_unknown_prototype_lists_known():
    with pytest.raises(KeyError, match="beta-Li3PS4"):
        prototype("alpha-Li3PS4")


def test_polyanion_units_geometry():
    assert dict(thiophosphate_units(ps4_unit())) == {"PS4": 1}
    u = p2s7_unit()
    assert dict(thiophosphate_units(u)) == {"P2S7": 1}
    d = u.get_all_distances()
    assert d[0, 1] == pytest.approx(2.10)
    assert d[0, 2] == pytest.approx(2.10)
    assert np.degrees(np.arccos(np.dot(u.positions[1], u.positions[2]) / 2.10**2)) == pytest.approx(106.0)
    m = p4s10_molecule()
    assert dict(thiophosphate_units(m)) == {"P4S10": 1}
    ps = np.sort(ps_bond_lengths(m))
    assert np.allclose(ps[:4], 1.95)
    assert np.allclose(ps[4:], 2.08)


def test_supercell_target_and_shape():
    beta = prototype("beta-Li3PS4")
    s = supercell(beta, 64)
    assert len(s) == 64
    assert s.info["repeat"] == (1, 1, 2)
    li2s = supercell(prototype("Li2S"), 100)
    assert li2s.info["repeat"] == (2, 2, 2)
    assert supercell(beta, 1).info["repeat"] == (1, 1, 1)
    with pytest.raises(ValueError, match="positive"):
        supercell(beta, 0)


def test_rattled_is_seeded():
    a = prototype("gamma-Li3PS4")
    r1, r2, r3 = rattled(a, 0.1, seed=3), rattled(a, 0.1, seed=3), rattled(a, 0.1, seed=4)
    assert np.array_equal(r1.positions, r2.positions)
    assert not np.allclose(r1.positions, r3.positions)
    assert np.std(r1.positions - a.positions) == pytest.approx(0.1, rel=0.3)


def test_strained_volume_and_forms():
    a = prototype("beta-Li3PS4")
    v0 = a.get_volume()
    assert strained(a, 0.03).get_volume() == pytest.approx(v0 * 1.03**3)
    s = strained(a, [0.01, -0.02, 0.0])
    assert np.allclose(s.cell.lengths(), a.cell.lengths() * [1.01, 0.98, 1.0])
    sh = strained(a, [0, 0, 0, 0, 0, 0.02])
    assert sh.info["strain"][5] == pytest.approx(0.02)
    # atoms move with the cell: fractional coordinates unchanged
    assert np.allclose(sh.get_scaled_positions(), a.get_scaled_positions())
    with pytest.raises(ValueError, match="symmetric"):
        strained(a, np.array([[0, 0.01, 0], [0, 0, 0], [0, 0, 0]]))
    with pytest.raises(ValueError, match="small"):
        strained(a, 0.6)


def test_li_vacancies_compensated():
    li2s = supercell(prototype("Li2S"), 96)
    v = li_vacancies(li2s, 2, seed=1)  # auto -> sulfide Schottky
    assert v.get_chemical_formula() == "Li62S31"
    assert v.info["vacancies"] == {"Li": 2, "S": 1}
    assert formal_charge(v) == 0
    beta = supercell(prototype("beta-Li3PS4"), 64)
    vb = li_vacancies(beta, 3, seed=1)  # auto -> thiophosphate Schottky
    assert vb.get_chemical_formula() == "Li21P7S28"
    assert dict(thiophosphate_units(vb)) == {"PS4": 7}
    assert formal_charge(vb) == 0
    vn = li_vacancies(beta, 1, seed=1, compensation="none")
    assert vn.info["charge"] == -1
    assert formal_charge(vn) == -1
    with pytest.raises(ValueError, match="compensation"):
        li_vacancies(beta, 2)  # no sulfide ions, not a multiple of 3
    with pytest.raises(ValueError, match="even"):
        li_vacancies(li2s, 3, compensation="sulfide")
    assert np.array_equal(li_vacancies(beta, 3, seed=5).positions, li_vacancies(beta, 3, seed=5).positions)


@pytest.mark.parametrize(
    ("x", "formula", "units"),
    [
        (0.67, "Li31P15S53", {"P2S7": 7, "PS4": 1}),
        (0.70, "Li32P14S51", {"P2S7": 5, "PS4": 4}),
        (0.75, "Li36P12S48", {"PS4": 12}),
    ],
)
def test_random_glass(x, formula, units):
    g = random_glass(x, 100, density=1.88, seed=7)
    assert g.get_chemical_formula() == formula
    assert dict(thiophosphate_units(g)) == units
    assert formal_charge(g) == 0
    assert density(g) == pytest.approx(1.88, rel=1e-6)
    assert abs(g.info["x"] - x) < 0.01
    assert min_distance(g) > 1.9
    assert min_distance(g, ("Li", "S")) >= 2.2 - 1e-9
    assert min_distance(g, ("P", "P")) > 3.2  # P–S–P within P2S7 ≈ 3.35 Å


def test_random_glass_seeded_reproducible():
    a = random_glass(0.75, 96, seed=11)
    b = random_glass(0.75, 96, seed=11)
    c = random_glass(0.75, 96, seed=12)
    assert np.array_equal(a.positions, b.positions)
    assert a.get_chemical_formula() == b.get_chemical_formula()
    assert not np.allclose(a.positions, c.positions)


def test_glass_composition_balanced_and_errors():
    for x in (0.5, 0.6, 0.67, 0.7, 0.75, 0.8):
        c = glass_composition(x, 100)
        assert c["Li"] + 5 * c["P"] == 2 * c["S"]
        assert abs(c["Li"] / (c["Li"] + c["P"]) - x) < 0.02
    with pytest.raises(ValueError, match=r"\[0.5, 1\)"):
        glass_composition(0.3, 100)
    with pytest.raises(ValueError, match=r"\[0.5, 1\)"):
        glass_composition(1.0, 100)
    with pytest.raises(ValueError, match="density"):
        random_glass(0.75, 100, density=-1)


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("chgnet") is None,
    reason="needs the optional teacher: pip install ssehpc[teacher]",
)
@pytest.mark.parametrize("name", sorted(PROTOTYPES))
def test_teacher_forces_and_stress_modest(name):
    """At the shipped geometry CHGNet sees small forces and stresses of at most ~1.5 GPa."""
    from ssehpc.ml.labeler import Labeler

    lab = Labeler.chgnet(num_threads=1)
    atoms = lab.label_one(prototype(name))
    assert np.abs(atoms.get_forces()).max() < 0.1
    assert np.abs(atoms.get_stress()).max() < 1.5 * 0.00624151  # 1.5 GPa in eV/Å³
