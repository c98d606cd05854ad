"""ase.Atoms <-> State and checked structure reading."""

from __future__ import annotations

import ase.io
import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk

from ssehpc.io.structure import (
    StructureError,
    atoms_to_state,
    check_structure,
    read_structure,
    state_to_atoms,
)


@pytest.fixture
def nacl() -> Atoms:
    atoms = bulk("NaCl", "rocksalt", a=5.64, cubic=True).repeat(2)
    atoms.rattle(0.01, seed=3)
    return atoms


def test_atoms_to_state(nacl):
    st = atoms_to_state(nacl, seed=9)
    assert st.n_atoms == len(nacl)
    assert st.dtype == torch.float64
    np.testing.assert_array_equal(st.species.numpy(), nacl.numbers)
    np.testing.assert_array_equal(st.masses.numpy(), nacl.get_masses())
    np.testing.assert_array_equal(st.cell[0].numpy(), nacl.cell.array)
    np.testing.assert_array_equal(st.positions.numpy(), nacl.positions)
    np.testing.assert_array_equal(st.tag.numpy(), np.arange(len(nacl)))
    assert st.seed == 9
    assert torch.count_nonzero(st.momenta) == 0
    assert atoms_to_state(nacl, dtype=torch.float32).positions.dtype == torch.float32


def test_momenta_round_trip(nacl):
    nacl.set_momenta(np.random.default_rng(0).normal(size=(len(nacl), 3)))
    st = atoms_to_state(nacl, momenta=True)
    back = state_to_atoms(st)
    np.testing.assert_allclose(back.get_momenta(), nacl.get_momenta(), rtol=1e-12)
    np.testing.assert_allclose(back.positions, nacl.positions)
    # kinetic energy agrees between ASE and ssehpc (eV; ASE uses CODATA 2014 constants)
    assert float(st.kinetic_energy()[0]) == pytest.approx(nacl.get_kinetic_energy(), rel=1e-7)


def test_state_to_atoms_is_in_tag_order(nacl):
    st = atoms_to_state(nacl)
    perm = torch.randperm(st.n_atoms, generator=torch.Generator().manual_seed(1))
    back = state_to_atoms(st.index_atoms(perm))
    np.testing.assert_array_equal(back.numbers, nacl.numbers)
    np.testing.assert_allclose(back.positions, nacl.positions)


def test_read_extxyz(tmp_path, nacl):
    path = tmp_path / "nacl.extxyz"
    ase.io.write(path, nacl)
    atoms = read_structure(path)
    assert len(atoms) == len(nacl)
    np.testing.assert_allclose(atoms.positions, nacl.positions, atol=1e-6)


def test_missing_file(tmp_path):
    with pytest.raises(StructureError, match=r"'.*nope\.xyz' does not exist"):
        read_structure(tmp_path / "nope.xyz")


def test_unknown_format(tmp_path):
    path = tmp_path / "structure.weird"
    path.write_text("whatever\n")
    with pytest.raises(StructureError, match="unknown file format"):
        read_structure(path)


def test_unparseable(tmp_path):
    path = tmp_path / "bad.xyz"
    path.write_text("2\n\nAr 0 0 0\nAr 1.0 oops 2\n")
    with pytest.raises(StructureError, match="cannot parse structure file"):
        read_structure(path)


def _extxyz(tmp_path, rows: str, n: int, pbc: str = "T T T"):
    path = tmp_path / "s.extxyz"
    path.write_text(f'{n}\nLattice="6 0 0 0 6 0 0 0 6" Properties=species:S:1:pos:R:3 pbc="{pbc}"\n' + rows)
    return path


def test_nan_coordinates(tmp_path):
    path = _extxyz(tmp_path, "Ar 0 0 0\nAr nan 1 1\nAr 3 3 3\n", 3)
    with pytest.raises(StructureError, match=r"NaN/inf\) coordinates for atom indices \[1\]"):
        read_structure(path)


def test_non_periodic(tmp_path):
    path = _extxyz(tmp_path, "Ar 0 0 0\nAr 3 3 3\n", 2, pbc="T T F")
    with pytest.raises(StructureError, match="periodic in all three directions"):
        read_structure(path)
    plain = tmp_path / "plain.xyz"
    plain.write_text("1\n\nAr 0 0 0\n")
    with pytest.raises(StructureError, match="periodic"):
        read_structure(plain)


def test_overlapping_atoms_are_named(tmp_path):
    path = _extxyz(tmp_path, "Ar 0 0 0\nAr 3 3 3\nAr 3.2 3 3\n", 3)
    with pytest.raises(StructureError, match=r"atoms 1 and 2 are 0\.200 Å apart"):
        read_structure(path)


def test_overlap_across_the_boundary():
    atoms = Atoms("Ar2", positions=[[0.1, 0, 0], [5.9, 0, 0]], cell=[6, 6, 6], pbc=True)
    with pytest.raises(StructureError, match=r"atoms 0 and 1 are 0\.200 Å"):
        check_structure(atoms)
    check_structure(atoms, min_distance=0.1)


def test_empty_and_singular():
    with pytest.raises(StructureError, match="no atoms"):
        check_structure(Atoms(cell=[5, 5, 5], pbc=True))
    with pytest.raises(StructureError, match="singular"):
        check_structure(Atoms("Ar", cell=[5, 5, 0], pbc=True))
