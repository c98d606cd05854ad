"""The interface every potential implements.

A potential is a ``torch.nn.Module`` evaluated on :class:`~ssehpc.parallel.LocalAtoms` (owned
atoms then ghosts, no periodic boundaries left) and a :class:`~ssehpc.neighbors.NeighborList`.
It returns per-atom energies and forces for *all local rows*; the domain then adds ghost rows
onto their owners (``reverse_sum``), so a half list with Newton's third law and a full list
with autograd forces are both correct on one rank and on many.

The virial is ``W = Σ_a x_a ⊗ F_a`` over local rows (before the reverse sum), in eV, per system;
it equals ``Σ_pairs r_ij ⊗ f_j`` for pair potentials and is positive for repulsion.  Pressure is
``P = (Σ p⊗p/m + W) / V``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ssehpc.neighbors import NeighborList
from ssehpc.parallel.domain import LocalAtoms


@dataclass(eq=False)
class PotentialOutput:
    """Result of one evaluation on local atoms.

    Attributes:
        energies: ``[n_local]`` eV per-atom energies (ghost rows are summed onto owners).
        forces: ``[n_local, 3]`` eV/Å.
        virial: ``[S, 3, 3]`` eV, this process's contribution.
        extras: optional per-atom or per-system tensors (e.g. committee force deviation).
    """

    energies: torch.Tensor
    forces: torch.Tensor
    virial: torch.Tensor
    extras: dict[str, torch.Tensor] | None = None


class Potential(nn.Module):
    """Base class.

    Attributes:
        cutoff: interaction cutoff, Å.
        hops: message-passing hops (0 = strictly local); ghost shell = (hops + 1)·cutoff + skin.
        species: atomic numbers the potential knows, or ``None`` for any.
        half_list: whether :meth:`forward` wants a half neighbour list.
        extras_enabled: whether :meth:`forward` should compute its optional ``extras`` (e.g. a
            committee's per-member forces); set per step by
            :meth:`ssehpc.forces.ForceCompute.compute`, so they are paid for only when an output
            needs them.  Forces, energies and virial never depend on it.
    """

    cutoff: float
    hops: int = 0
    species: tuple[int, ...] | None = None
    half_list: bool = True
    extras_enabled: bool = True

    def forward(self, local: LocalAtoms, nl: NeighborList) -> PotentialOutput:  # pragma: no cover
        raise NotImplementedError

    @property
    def ghost_range(self) -> float:
        """Å of interaction range that ghosts must cover (without the skin)."""
        return (self.hops + 1) * self.cutoff

    def check_species(self, species: torch.Tensor) -> None:
        """Raise ``ValueError`` naming any element the potential does not know."""
        if self.species is None:
            return
        present = set(torch.unique(species).tolist())
        unknown = sorted(present - set(self.species))
        if unknown:
            from ase.data import chemical_symbols

            names = ", ".join(f"{chemical_symbols[z]} (Z={z})" for z in unknown)
            known = ", ".join(chemical_symbols[z] for z in self.species)
            raise ValueError(f"{type(self).__name__} has no parameters for {names}; it knows {known}")


def pair_virial(
    rij: torch.Tensor, fj: torch.Tensor, system_of_pair: torch.Tensor, n_systems: int
) -> torch.Tensor:
    """``[S, 3, 3]`` eV: ``Σ_pairs r_ij ⊗ f_j`` with ``r_ij = x_j − x_i`` and ``f_j`` the pair force on j."""
    w = torch.zeros((n_systems, 3, 3), dtype=rij.dtype, device=rij.device)
    w.index_add_(0, system_of_pair, rij[:, :, None] * fj[:, None, :])
    return w


def fdotr_virial(local: LocalAtoms, forces: torch.Tensor) -> torch.Tensor:
    """``[S, 3, 3]`` eV: ``Σ_a x_a ⊗ F_a`` over local rows (valid for any translation-invariant
    energy evaluated on explicit images; used for autograd potentials)."""
    w = torch.zeros((local.n_systems, 3, 3), dtype=forces.dtype, device=forces.device)
    w.index_add_(0, local.system_idx, local.positions[:, :, None] * forces[:, None, :])
    return w
