"""ASE calculator for any ssehpc :class:`~ssehpc.potentials.base.Potential`.

The evaluation goes through :class:`~ssehpc.forces.ForceCompute` with a
:class:`~ssehpc.parallel.SerialDomain` (ghost images, neighbour list with a skin, reverse sum), so
ASE sees exactly the numbers ssehpc MD uses.  ``results``:

==================  ==========  ==========================================================
key                 unit        meaning
==================  ==========  ==========================================================
energy              eV          potential energy (= free_energy)
forces              eV/Å        ``[n, 3]``
stress              eV/Å³       Voigt ``xx yy zz yz xz xy``, ASE sign: ``σ = −W/V``
                                (negative under compression)
energies            eV          ``[n]`` per-atom energies
force_dev           eV/Å        ``[n]`` committee deviation ε_i (committees only)
force_dev_max/mean  eV/Å        max / mean of ε_i (committees only)
==================  ==========  ==========================================================

Fully periodic and fully non-periodic ``Atoms`` are supported (the latter in a padded box).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from ase.calculators.calculator import Calculator, all_changes
from ase.stress import full_3x3_to_voigt_6_stress

from ssehpc.forces import ForceCompute
from ssehpc.ml.data import atoms_to_state
from ssehpc.parallel.domain import SerialDomain
from ssehpc.potentials.base import Potential


class SSEHPCCalculator(Calculator):
    """ASE calculator around an ssehpc potential.

    Args:
        potential: any :class:`~ssehpc.potentials.base.Potential` (a model, a committee, LJ, ...).
        dtype: dtype of the state the potential sees (a float32 model casts pair vectors itself).
        device: torch device of the state (the potential must already be there).
        skin: neighbour-list skin, Å (the list is reused while atoms move less than ``skin/2``).
    """

    implemented_properties: ClassVar[list[str]] = [
        "energy",
        "free_energy",
        "forces",
        "stress",
        "energies",
        "force_dev",
        "force_dev_max",
        "force_dev_mean",
    ]

    def __init__(
        self,
        potential: Potential,
        *,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str = "cpu",
        skin: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.potential = potential
        self.dtype = dtype
        self.device = torch.device(device)
        self.skin = float(skin)
        self.forces = ForceCompute(potential, SerialDomain(), skin=self.skin)

    def calculate(self, atoms: Any = None, properties: Any = None, system_changes: Any = all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        pad = self.forces.ghost_width + 1.0
        state = atoms_to_state(atoms, dtype=self.dtype, pad=pad).to(device=self.device)
        # A new atom count/order, elements or periodicity needs new ghosts; positions and cell
        # changes are covered by ForceCompute's displacement test.  Non-periodic boxes are
        # re-centred on every call, so they always rebuild.
        if set(system_changes) & {"numbers", "pbc"} or not all(atoms.pbc) or self.forces.local is None:
            self.forces.invalidate()
            self.forces.check(state)
        self.forces.compute(state)
        n = len(atoms)
        forces = state.forces.detach().cpu().double().numpy().reshape(n, 3)
        energy = float(state.energy[0])
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "forces": forces,
            "energies": self.forces.energies.detach().cpu().double().numpy().reshape(n),
        }
        if all(atoms.pbc):
            w = state.virial[0].detach().cpu().double().numpy()
            sigma = -0.5 * (w + w.T) / abs(np.linalg.det(atoms.cell.array))
            self.results["stress"] = full_3x3_to_voigt_6_stress(sigma)
        extras = self.forces.extras
        if "force_dev" in extras:
            self.results["force_dev"] = extras["force_dev"].detach().cpu().double().numpy()
            self.results["force_dev_max"] = float(extras["force_dev_max"][0])
            self.results["force_dev_mean"] = float(extras["force_dev_mean"][0])
