"""Sum of potentials, e.g. an ML short-range model plus DSF electrostatics.

.. math::

    E = \\sum_k E_k,\\qquad \\mathbf F = \\sum_k \\mathbf F_k,\\qquad W = \\sum_k W_k

per atom and per system.  The sum is evaluated on one set of ghosts and one neighbour list:

* ``cutoff`` is the largest member cutoff (every member masks ``r < its own cutoff``, as the
  :class:`~ssehpc.potentials.base.Potential` interface requires), ``hops`` the largest member
  ``hops``, and the ghost shell the largest member :attr:`ghost_range`.
* ``species`` is the intersection of the members' element sets (``None`` members accept any);
  :meth:`SumPotential.check_species` asks every member, so the error names the member.
* Neighbour lists: if every member wants a half list, the sum takes a half list.  Otherwise it
  takes a *full* list; half-list members then get the half list cut out of it with the same tag and
  shift rule as :class:`~ssehpc.neighbors.NeighborList` (``neighbors._half_rule``), which keeps
  every physical pair exactly once, so they give the same result as on a native half list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ssehpc.neighbors import NeighborList, _half_rule
from ssehpc.parallel.domain import LocalAtoms
from ssehpc.potentials.base import Potential, PotentialOutput


@dataclass(eq=False)
class HalfListView:
    """The half list cut out of a full :class:`~ssehpc.neighbors.NeighborList` (same ``i``, ``j``
    interface; ``i`` owned, each physical pair once)."""

    i: torch.Tensor
    j: torch.Tensor
    cutoff: float
    skin: float
    half: bool = True

    @property
    def n_pairs(self) -> int:
        return int(self.i.numel())

    @classmethod
    def from_full(cls, local: LocalAtoms, nl: NeighborList) -> HalfListView:
        """Keep each physical pair of the full list ``nl`` once."""
        i, j = nl.i, nl.j
        keep = _half_rule(local, i, j)
        return cls(i=i[keep], j=j[keep], cutoff=nl.cutoff, skin=nl.skin)


class SumPotential(Potential):
    """``E = Σ_k E_k`` over member potentials (see the module docstring).

    Args:
        terms: the member potentials (at least one).

    Raises:
        ValueError: if ``terms`` is empty or the members share no element.
    """

    def __init__(self, terms: Sequence[Potential]) -> None:
        super().__init__()
        terms = list(terms)
        if not terms:
            raise ValueError("SumPotential needs at least one term")
        for k, t in enumerate(terms):
            if not isinstance(t, Potential):
                raise TypeError(f"SumPotential term {k} is a {type(t).__name__}, not a Potential")
        self.terms = nn.ModuleList(terms)
        self.cutoff = max(float(t.cutoff) for t in terms)
        self.hops = max(int(t.hops) for t in terms)
        self._ghost_range = max(float(t.ghost_range) for t in terms)
        known = [set(t.species) for t in terms if t.species is not None]
        if known:
            common = set.intersection(*known)
            if not common:
                raise ValueError(
                    "SumPotential terms share no element: "
                    + "; ".join(f"{type(t).__name__}: {t.species}" for t in terms)
                )
            self.species = tuple(sorted(common))
        else:
            self.species = None
        self.half_list = all(t.half_list for t in terms)

    @property
    def ghost_range(self) -> float:
        """Å: the largest ghost range any member needs."""
        return self._ghost_range

    def check_species(self, species: torch.Tensor) -> None:
        """Raise ``ValueError`` (from the first member that lacks it) naming an unknown element."""
        for t in self.terms:
            t.check_species(species)

    def forward(self, local: LocalAtoms, nl: NeighborList) -> PotentialOutput:
        half_view: HalfListView | None = None
        energies = forces = virial = None
        extras: dict[str, torch.Tensor] = {}
        for k, term in enumerate(self.terms):
            if term.half_list and not nl.half:
                if half_view is None:
                    half_view = HalfListView.from_full(local, nl)
                out = term(local, half_view)
            elif not term.half_list and nl.half:
                raise ValueError(
                    f"{type(term).__name__} needs a full neighbour list but got a half list "
                    "(build the list with SumPotential.half_list)"
                )
            else:
                out = term(local, nl)
            if energies is None:
                energies, forces, virial = out.energies, out.forces, out.virial
            else:
                energies = energies + out.energies
                forces = forces + out.forces
                virial = virial + out.virial
            for name, value in (out.extras or {}).items():
                extras[name if name not in extras else f"{k}.{name}"] = value
        return PotentialOutput(energies=energies, forces=forces, virial=virial, extras=extras or None)
