"""Adapters: an ASE calculator and a TorchScript module drive ssehpc MD."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.calculators.emt import EMT

from ssehpc import thermo
from ssehpc.forces import ForceCompute
from ssehpc.integrators.nve import VelocityVerlet
from ssehpc.ml.adapters import ASECalculatorPotential, TorchScriptPotential
from ssehpc.ml.data import atoms_to_state
from ssehpc.parallel.domain import LocalAtoms
from ssehpc.potentials import LennardJones
from tests.potentials import conformance

# TorchScript is deprecated in torch >= 2.10 but still what many published force fields ship.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.*deprecated:DeprecationWarning")


def _cu(repeat: int = 2):
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(repeat)
    atoms.rattle(0.05, seed=1)
    return atoms


def test_ase_calculator_drives_nve() -> None:
    """EMT through the adapter: same forces/stress as EMT itself, and 50 NVE steps conserve energy."""
    atoms = _cu()
    st = atoms_to_state(atoms)
    pot = ASECalculatorPotential(EMT(), species=(29,))
    fc = ForceCompute(pot)
    fc.check(st)
    fc.compute(st)
    ref = atoms.copy()
    ref.calc = EMT()
    np.testing.assert_allclose(st.forces.numpy(), ref.get_forces(), atol=1e-10)
    assert float(st.energy[0]) == pytest.approx(ref.get_potential_energy(), abs=1e-10)
    np.testing.assert_allclose(
        st.virial[0].numpy(), -ref.get_stress(voigt=False) * ref.get_volume(), atol=1e-10
    )
    thermo.maxwell_boltzmann(st, fc.domain, 300.0)
    integ = VelocityVerlet(2.0)
    integ.attach(st, fc)
    e0 = float(st.energy[0] + st.kinetic_energy()[0])
    for _ in range(50):
        integ.step_one(st, fc)
        fc.compute(st)
        integ.step_two(st, fc)
    e1 = float(st.energy[0] + st.kinetic_energy()[0])
    assert abs(e1 - e0) < 5e-3
    assert float((st.unwrapped_positions() - torch.tensor(atoms.positions)).abs().max()) > 0.02  # it moved


def test_ase_adapter_refuses_unknown_species_and_mpi_domains() -> None:
    st = atoms_to_state(_cu())
    with pytest.raises(ValueError, match="Cu"):
        ForceCompute(ASECalculatorPotential(EMT(), species=(13,))).check(st)
    pot = ASECalculatorPotential(EMT())
    # what an MPI rank sees: ghosts without serial ghost_origin bookkeeping
    local = LocalAtoms(
        positions=torch.zeros((3, 3), dtype=torch.float64),
        species=torch.full((3,), 29),
        tag=torch.arange(3),
        system_idx=torch.zeros(3, dtype=torch.int64),
        n_owned=2,
        cell=torch.eye(3, dtype=torch.float64)[None] * 10,
        ghost_origin=torch.zeros(0, dtype=torch.int64),
        ghost_shift=torch.zeros((1, 3), dtype=torch.int64),
    )
    with pytest.raises(RuntimeError, match="one rank only"):
        pot(local, None)


def test_ase_adapter_batched_systems() -> None:
    from ssehpc.state import concatenate

    a, b = _cu(), bulk("Cu", "fcc", a=3.7, cubic=True).repeat((2, 1, 1))
    both = concatenate([atoms_to_state(a), atoms_to_state(b)])
    fc = ForceCompute(ASECalculatorPotential(EMT()))
    fc.compute(both)
    for s, at in enumerate((a, b)):
        ref = at.copy()
        ref.calc = EMT()
        assert float(both.energy[s]) == pytest.approx(ref.get_potential_energy(), abs=1e-10)


class ScriptedLJ(torch.nn.Module):
    """Lennard-Jones on a full list, energy-shifted (the signature of TorchScriptPotential)."""

    def __init__(self, epsilon: float, sigma: float, cutoff: float) -> None:
        super().__init__()
        self.epsilon = epsilon
        self.sigma = sigma
        self.cutoff = cutoff

    def forward(
        self, positions: torch.Tensor, species: torch.Tensor, edge_index: torch.Tensor, n_owned: int
    ) -> torch.Tensor:
        i, j = edge_index[0], edge_index[1]
        rij = positions[j] - positions[i]
        r2 = (rij * rij).sum(1)
        keep = r2 < self.cutoff * self.cutoff
        s6 = (self.sigma * self.sigma / r2[keep]) ** 3
        sc6 = (self.sigma / self.cutoff) ** 6
        e = 4.0 * self.epsilon * (s6 * s6 - s6 - (sc6 * sc6 - sc6))
        out = torch.zeros(positions.shape[0], dtype=positions.dtype, device=positions.device)
        return out.index_add(0, i[keep], 0.5 * e)


def test_torchscript_module_matches_builtin_lj(tmp_path) -> None:
    path = tmp_path / "lj.pt"
    torch.jit.save(torch.jit.script(ScriptedLJ(0.0104, 3.405, 6.0)), str(path))
    pot = TorchScriptPotential(path)
    assert pot.cutoff == 6.0
    assert not pot.half_list
    ar = bulk("Ar", "fcc", a=5.26, cubic=True).repeat(2)
    ar.rattle(0.1, seed=2)
    st = atoms_to_state(ar)
    a = conformance.evaluate(pot, st)
    b = conformance.evaluate(LennardJones(0.0104, 3.405, cutoff=6.0), st)
    conformance.assert_close(a.energy, b.energy, 1e-12, "energy")
    conformance.assert_close(a.forces, b.forces, 1e-12, "forces")
    conformance.assert_close(a.virial, b.virial, 1e-12, "virial")


def test_torchscript_needs_a_cutoff() -> None:
    class NoCutoff(torch.nn.Module):
        def forward(
            self, positions: torch.Tensor, species: torch.Tensor, edge_index: torch.Tensor, n_owned: int
        ) -> torch.Tensor:
            return positions.sum(1)

    with pytest.raises(ValueError, match="cutoff"):
        TorchScriptPotential(torch.jit.script(NoCutoff()))
