"""A committee of K :class:`~ssehpc.ml.model.MomentPotential` members evaluated in one pass.

Members share the parameter-free part of the model (neighbour pairs, Bessel × Cartesian pair
basis, the element-resolved atomic moments ``A``); everything learned — channel mixing, MLP,
reference energies, feature standardisation — is stacked along a leading member axis and run as
batched matrix products (``torch.bmm`` / ``einsum``).  One backward through the per-atom network
gives every member's ``∂E_m/∂A`` at once (the members' graphs are disjoint), and the pair forces of
all members follow from one closed-form contraction.

Outputs (:meth:`Committee.forward`): the member-mean energies, forces and virial, plus
``extras["member_forces"]`` ``[n_local, K, 3]`` eV/Å when :attr:`extras_enabled` is set.  The mean
force is the force of the member-mean ``∂E/∂A`` (the pair gradient is linear in it), so MD pays the
per-atom network K times but the pair force pass once; member forces (K pair-gradient columns) are
computed only on steps whose output needs them (:class:`~ssehpc.simulation.Simulation` sets
``extras_enabled`` through :meth:`ssehpc.forces.ForceCompute.compute`).  The force deviation

.. math::  ε_i = \\sqrt{\\frac1K \\sum_m \\big|\\mathbf F_i^{(m)} − \\bar{\\mathbf F}_i\\big|^2}

must be taken *after* the domain has added ghost rows onto their owners (a member's force on an
atom is the sum of contributions that land on several images); :class:`~ssehpc.forces.ForceCompute`
does this (:func:`ssehpc.forces.committee_deviation`) and keeps ``force_dev [n_owned]``,
``force_dev_max [S]`` and ``force_dev_mean [S]`` (eV/Å) in ``ForceCompute.extras``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ssehpc.forces import force_deviation
from ssehpc.ml.model import ModelSpec, MomentPotential
from ssehpc.neighbors import NeighborList
from ssehpc.parallel.domain import LocalAtoms
from ssehpc.potentials.base import PotentialOutput

__all__ = ["Committee", "force_deviation"]


class Committee(MomentPotential):
    """K-member committee (a :class:`MomentPotential` with ``spec.n_members = K ≥ 2``).

    Args:
        spec: architecture; ``spec.n_members`` is K.
        seed: member ``m`` is initialised from ``seed + m``.
    """

    def __init__(self, spec: ModelSpec, *, seed: int = 0) -> None:
        if spec.n_members < 2:
            raise ValueError(f"a Committee needs at least 2 members, got n_members={spec.n_members}")
        super().__init__(spec, seed=seed)

    def forward(self, local: LocalAtoms, nl: NeighborList) -> PotentialOutput:
        members = self.extras_enabled
        energies, forces, virial, member_forces = self.members_forward(local, nl, member_forces=members)
        return PotentialOutput(
            energies=energies.mean(1),
            forces=forces,
            virial=virial,
            extras={"member_forces": member_forces} if members else None,
        )

    # ------------------------------------------------------------------ stacking
    @classmethod
    def from_members(cls, members: Sequence[MomentPotential]) -> Committee:
        """Stack single models (same architecture apart from ``n_members``) into one committee."""
        members = list(members)
        if len(members) < 2:
            raise ValueError(f"a Committee needs at least 2 members, got {len(members)}")
        base = members[0].spec.to_dict()
        for k, m in enumerate(members):
            other = m.spec.to_dict()
            n_k = other.pop("n_members")
            if {**other, "n_members": base["n_members"]} != base:
                raise ValueError(f"member {k} has a different architecture: {m.spec} vs {members[0].spec}")
            del n_k
        spec = ModelSpec.from_dict({**base, "n_members": sum(m.n_members for m in members)})
        out = cls(spec).to(members[0].dtype)
        state = {
            name: torch.cat([m.state_dict()[name] for m in members], dim=0)
            for name in members[0].state_dict()
        }
        out.load_state_dict(state)
        out.metadata = dict(members[0].metadata)
        return out.to(members[0].readout.device)

    def member(self, k: int) -> MomentPotential:
        """Member ``k`` as a stand-alone single model (a copy)."""
        if not 0 <= k < self.n_members:
            raise IndexError(f"member {k} out of range for a committee of {self.n_members}")
        spec = ModelSpec.from_dict({**self.spec.to_dict(), "n_members": 1})
        single = MomentPotential(spec).to(self.dtype)
        single.load_state_dict({name: t[k : k + 1].clone() for name, t in self.state_dict().items()})
        single.metadata = dict(self.metadata)
        return single.to(self.readout.device)
