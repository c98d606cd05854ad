"""Foreign force fields as ssehpc potentials: any ASE calculator, or a TorchScript module.

:class:`ASECalculatorPotential` lets e.g. CHGNet or SevenNet (through their ASE calculators) drive
ssehpc MD on **one rank**.  ASE calculators handle periodicity themselves and cannot use ghost
atoms, so each system's *owned* atoms are handed over with the state's cell, forces land on owned
rows (ghost rows get zero) and the virial comes from the calculator's stress, ``W = −σ V``.  An
MPI domain (where a rank owns only part of the cell) is refused with a clear error.

:class:`TorchScriptPotential` wraps a scripted module with this signature::

    forward(positions: Tensor[n_local, 3] (Å), species: Tensor[n_local] (int64, Z),
            edge_index: Tensor[2, n_pairs] (int64; row 0 = i owned, row 1 = j local; a FULL list
                        within cutoff + skin, so the module masks r_ij < cutoff itself),
            n_owned: int) -> Tensor[n_local]   # per-atom energies, eV; ghost rows must be 0

and a float attribute ``cutoff`` (Å) — optional ``species: List[int]``.  Forces are
``−∂E/∂x`` by autograd over owned *and* ghost rows (the domain sums ghost forces onto their
owners), the virial is ``Σ_a x_a ⊗ F_a`` (:func:`~ssehpc.potentials.base.fdotr_virial`); this is
correct on one rank and under MPI for any strictly local module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ssehpc.neighbors import NeighborList
from ssehpc.parallel.domain import LocalAtoms
from ssehpc.potentials.base import Potential, PotentialOutput, fdotr_virial


class ASECalculatorPotential(Potential):
    """Any ASE calculator as a (single-rank) ssehpc potential.

    Args:
        calculator: an ASE calculator (``energy`` and ``forces``; ``stress`` for the virial —
            without it the virial is NaN, so NPT and pressure output are unavailable).
        species: atomic numbers the calculator knows (``None`` = any), checked before the run.
        per_atom_energies: ask the calculator for ``energies`` (else ``E/N`` per atom).

    Raises:
        RuntimeError: at evaluation, if the atoms come from an MPI domain.
    """

    half_list = True
    hops = 0

    def __init__(
        self, calculator: Any, *, species: tuple[int, ...] | None = None, per_atom_energies: bool = False
    ) -> None:
        super().__init__()
        self.calculator = calculator
        # Ghosts are not used; a short cutoff keeps the engine's list cheap.
        self.cutoff = 0.5
        self.species = tuple(sorted(species)) if species is not None else None
        self.per_atom_energies = per_atom_energies
        self._atoms: list[Any] = []

    def _atoms_for(self, s: int, numbers: np.ndarray, positions: np.ndarray, cell: np.ndarray) -> Any:
        """Reuse one ``Atoms`` per system (calculators cache on it); rebuilt if the elements change."""
        import ase

        while len(self._atoms) <= s:
            self._atoms.append(None)
        atoms = self._atoms[s]
        if atoms is None or len(atoms) != len(numbers) or not np.array_equal(atoms.numbers, numbers):
            atoms = ase.Atoms(numbers=numbers, positions=positions, cell=cell, pbc=True)
            atoms.calc = self.calculator
            self._atoms[s] = atoms
        else:
            atoms.set_cell(cell, scale_atoms=False)
            atoms.set_positions(positions)
        return atoms

    def forward(self, local: LocalAtoms, nl: NeighborList) -> PotentialOutput:
        if local.n_ghost != local.ghost_origin.numel():
            raise RuntimeError(
                "ASECalculatorPotential runs on one rank only (SerialDomain): an ASE calculator cannot use "
                "ghost atoms of an MPI domain; run without mpiexec"
            )
        pos, dtype, device = local.positions, local.positions.dtype, local.positions.device
        n_owned = local.n_owned
        energies = torch.zeros(local.n_local, dtype=dtype, device=device)
        forces = torch.zeros((local.n_local, 3), dtype=dtype, device=device)
        virial = torch.zeros((local.n_systems, 3, 3), dtype=dtype, device=device)
        sys_owned = local.system_idx[:n_owned].cpu()
        x = pos[:n_owned].detach().cpu().double().numpy()
        z = local.species[:n_owned].cpu().numpy()
        cells = local.cell.detach().cpu().double().numpy()
        for s in range(local.n_systems):
            rows = torch.nonzero(sys_owned == s).flatten()
            if rows.numel() == 0:
                continue
            r = rows.numpy()
            atoms = self._atoms_for(s, z[r], x[r], cells[s])
            e = float(atoms.get_potential_energy())
            f = np.asarray(atoms.get_forces(), dtype=np.float64)
            if self.per_atom_energies:
                ea = np.asarray(atoms.get_potential_energies(), dtype=np.float64)
            else:
                ea = np.full(len(r), e / len(r))
            if "stress" in getattr(self.calculator, "implemented_properties", ()):
                sigma = np.asarray(atoms.get_stress(voigt=False), dtype=np.float64)
                w = -sigma * abs(np.linalg.det(cells[s]))
            else:
                w = np.full((3, 3), np.nan)
            rows_d = rows.to(device)
            energies[rows_d] = torch.as_tensor(ea, dtype=dtype, device=device)
            forces[rows_d] = torch.as_tensor(f, dtype=dtype, device=device)
            virial[s] = torch.as_tensor(w, dtype=dtype, device=device)
        return PotentialOutput(energies=energies, forces=forces, virial=virial)


class TorchScriptPotential(Potential):
    """A TorchScript module (signature in the module docstring) as an ssehpc potential.

    Args:
        module: a ``torch.jit.ScriptModule`` or any ``nn.Module`` with the signature; or a path to
            a module saved with ``torch.jit.save`` (``.pt``) or ``torch.export.save`` (``.pt2``,
            whose ``cutoff`` must then be passed here).
        cutoff: Å; defaults to the module's ``cutoff`` attribute.
        species: atomic numbers it knows; defaults to the module's ``species`` attribute, if any.

    Raises:
        ValueError: no cutoff given and the module has none.
    """

    half_list = False
    hops = 0

    def __init__(
        self,
        module: torch.nn.Module | str | Path,
        *,
        cutoff: float | None = None,
        species: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__()
        if isinstance(module, (str, Path)):
            if Path(module).suffix == ".pt2":
                module = torch.export.load(str(module)).module()
            else:
                module = torch.jit.load(str(module), map_location="cpu")
        self.module = module
        if cutoff is None:
            cutoff = getattr(module, "cutoff", None)
        if cutoff is None or not float(cutoff) > 0:
            raise ValueError(
                "TorchScriptPotential needs a positive cutoff (argument or module attribute 'cutoff', Å)"
            )
        self.cutoff = float(cutoff)
        if species is None and hasattr(module, "species"):
            species = tuple(int(z) for z in module.species)
        self.species = tuple(sorted(species)) if species is not None else None

    def forward(self, local: LocalAtoms, nl: NeighborList) -> PotentialOutput:
        with torch.enable_grad():
            pos = local.positions.detach().requires_grad_(True)
            edge_index = torch.stack([nl.i, nl.j])
            energies = self.module(pos, local.species, edge_index, local.n_owned)
            (grad,) = torch.autograd.grad(energies.sum(), pos)
        forces = -grad
        return PotentialOutput(energies=energies.detach(), forces=forces, virial=fdotr_virial(local, forces))
