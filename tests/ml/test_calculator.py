"""SSEHPCCalculator: same numbers as ForceCompute, ASE stress sign, numerical derivatives, committee extras."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.calculators.calculator import PropertyNotImplementedError
from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress

from ssehpc.forces import ForceCompute
from ssehpc.ml.calculator import SSEHPCCalculator
from ssehpc.ml.data import atoms_to_state
from ssehpc.potentials import LennardJones
from tests.ml.systems import lips_atoms, make_model


def test_matches_force_compute() -> None:
    model = make_model()
    atoms = lips_atoms(seed=21, n_formula=2)
    atoms.calc = SSEHPCCalculator(model)
    st = atoms_to_state(atoms)
    fc = ForceCompute(model)
    fc.compute(st)
    assert atoms.get_potential_energy() == pytest.approx(float(st.energy[0]), abs=1e-12)
    np.testing.assert_allclose(atoms.get_forces(), st.forces.numpy(), atol=1e-12)
    np.testing.assert_allclose(atoms.get_potential_energies().sum(), atoms.get_potential_energy(), atol=1e-10)
    w = st.virial[0].numpy()
    sigma = atoms.get_stress(voigt=False)
    np.testing.assert_allclose(sigma, -0.5 * (w + w.T) / atoms.get_volume(), atol=1e-12)


def test_numerical_forces_and_stress() -> None:
    """ASE's own finite differences agree (stress sign and units, eV/Å³)."""
    atoms = lips_atoms(seed=22)
    atoms.calc = SSEHPCCalculator(make_model())
    f_num = calculate_numerical_forces(atoms, eps=1e-4)
    np.testing.assert_allclose(atoms.get_forces(), f_num, atol=1e-6)
    s_num = calculate_numerical_stress(atoms, eps=1e-5)
    np.testing.assert_allclose(atoms.get_stress(), s_num, atol=1e-7)


def test_lennard_jones_pressure_sign() -> None:
    """A compressed LJ crystal has positive pressure, i.e. a negative ASE stress trace."""
    from ase.build import bulk

    atoms = bulk("Ar", "fcc", a=4.6, cubic=True).repeat(2)  # compressed (equilibrium ~5.26 Å)
    atoms.calc = SSEHPCCalculator(LennardJones(cutoff=6.0))
    assert atoms.get_stress()[:3].sum() < 0


def test_committee_deviation_in_results() -> None:
    atoms = lips_atoms(seed=23)
    atoms.calc = SSEHPCCalculator(make_model(n_members=3))
    atoms.get_potential_energy()
    res = atoms.calc.results
    assert res["force_dev"].shape == (len(atoms),)
    assert res["force_dev_max"] == pytest.approx(res["force_dev"].max())
    assert res["force_dev_mean"] == pytest.approx(res["force_dev"].mean())
    assert res["force_dev_max"] > 0


def test_single_model_has_no_deviation() -> None:
    atoms = lips_atoms(seed=24)
    atoms.calc = SSEHPCCalculator(make_model())
    with pytest.raises(PropertyNotImplementedError):
        atoms.calc.get_property("force_dev", atoms)


def test_moving_atoms_and_changing_elements() -> None:
    """The calculator reuses its neighbour list while atoms move a little, rebuilds when they move
    far or the elements change, and always agrees with a fresh evaluation."""
    model = make_model()
    atoms = lips_atoms(seed=25, n_formula=2)
    calc = SSEHPCCalculator(model, skin=0.5)
    atoms.calc = calc
    rng = np.random.default_rng(0)
    for step in range(4):
        atoms.positions += (0.05 if step < 2 else 2.0) * rng.standard_normal(atoms.positions.shape)
        if step == 3:
            atoms.numbers[[0, 4]] = atoms.numbers[[4, 0]]
        fresh = atoms.copy()
        fresh.calc = SSEHPCCalculator(model)
        np.testing.assert_allclose(atoms.get_forces(), fresh.get_forces(), atol=1e-10)
    atoms.numbers[0] = 11
    with pytest.raises(ValueError, match="Na"):
        atoms.get_potential_energy()


def test_non_periodic_molecule() -> None:
    """A cluster without a cell works (padded box) and is translation invariant."""
    model = make_model()
    mol = Atoms("Li2S", positions=[[0, 0, 0], [2.4, 0, 0], [1.0, 2.0, 0.3]], pbc=False)
    mol.calc = SSEHPCCalculator(model)
    e, f = mol.get_potential_energy(), mol.get_forces()
    assert "stress" not in mol.calc.results
    np.testing.assert_allclose(f.sum(0), 0.0, atol=1e-12)
    moved = mol.copy()
    moved.positions += [30.0, -7.0, 3.0]
    moved.calc = SSEHPCCalculator(model)
    assert moved.get_potential_energy() == pytest.approx(e, abs=1e-12)


def test_float32_model_through_calculator() -> None:
    atoms = lips_atoms(seed=26)
    a32 = atoms.copy()
    atoms.calc = SSEHPCCalculator(make_model())
    a32.calc = SSEHPCCalculator(make_model(dtype=torch.float32), dtype=torch.float32)
    np.testing.assert_allclose(a32.get_forces(), atoms.get_forces(), atol=1e-4)
