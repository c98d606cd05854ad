"""Force evaluation: the communicate → neighbour list → potential → reverse-sum part of a step.

:class:`ForceCompute` owns the neighbour list and the ghost atoms.  ``compute(state)`` decides
(collectively) whether the list must be rebuilt, evaluates the potential on owned + ghost atoms,
sums ghost contributions onto their owners, reduces energies and virials over ranks, and stores
``forces``, ``energy`` and ``virial`` in the state.  Non-finite results raise
:class:`NonFiniteError` *before* the state is touched, so writers never see a broken frame.

Per-atom energies (owned rows, after the reverse sum) are kept in ``ForceCompute.energies`` and the
potential's ``extras`` in ``ForceCompute.extras``.  One extra is understood here: a committee's
``member_forces`` ``[n_local, K, 3]`` is reverse-summed like the forces and reduced to the force
deviation ``force_dev [n_owned]``, ``force_dev_max [S]``, ``force_dev_mean [S]`` (eV/Å; see
:func:`committee_deviation`), because a member's force on an atom is only complete after its
ghost images' contributions have been added.
"""

from __future__ import annotations

import torch

from ssehpc.neighbors import NeighborList
from ssehpc.parallel.domain import LocalAtoms, SerialDomain
from ssehpc.potentials.base import Potential
from ssehpc.state import State


class NonFiniteError(FloatingPointError):
    """The potential returned NaN/inf energies or forces (the run exploded)."""


def force_deviation(member_forces: torch.Tensor) -> torch.Tensor:
    """``ε_i = sqrt(⟨|F_i^(m) − ⟨F_i⟩_m|²⟩_m)`` ``[n]`` eV/Å from ``member_forces`` ``[n, K, 3]``."""
    dev = member_forces - member_forces.mean(dim=1, keepdim=True)
    return (dev * dev).sum(-1).mean(-1).sqrt()


def committee_deviation(
    member_forces: torch.Tensor, state: State, domain: SerialDomain
) -> dict[str, torch.Tensor]:
    """Committee force deviation from reverse-summed (owned) ``member_forces`` ``[n_owned, K, 3]``.

    Returns ``member_forces``, ``force_dev [n_owned]``, and per system (reduced over ranks)
    ``force_dev_max [S]`` and ``force_dev_mean [S]``, all eV/Å.
    """
    dev = force_deviation(member_forces.to(state.dtype))
    s = state.n_systems
    dev_max = torch.zeros(s, dtype=dev.dtype, device=dev.device)
    dev_max = dev_max.scatter_reduce(0, state.system_idx, dev, reduce="amax", include_self=True)
    total = torch.zeros(s, dtype=dev.dtype, device=dev.device).index_add_(0, state.system_idx, dev)
    count = torch.bincount(state.system_idx, minlength=s).to(dev.dtype)
    total, count = domain.allreduce_sum(total), domain.allreduce_sum(count)
    return {
        "member_forces": member_forces,
        "force_dev": dev,
        "force_dev_max": domain.allreduce_max(dev_max),
        "force_dev_mean": total / count.clamp_min(1.0),
    }


class ForceCompute:
    """Evaluate ``potential`` for a state, serial or domain-decomposed.

    Args:
        potential: any :class:`~ssehpc.potentials.base.Potential`.
        domain: :class:`~ssehpc.parallel.SerialDomain` (default) or an MPI domain.
        skin: neighbour-list skin, Å.
        max_force: |F| in eV/Å above which the run is declared exploded.
    """

    def __init__(
        self,
        potential: Potential,
        domain: SerialDomain | None = None,
        *,
        skin: float = 1.0,
        max_force: float = 1e4,
    ) -> None:
        self.potential = potential
        self.domain = domain if domain is not None else SerialDomain()
        self.nl = NeighborList(potential.cutoff, skin, half=potential.half_list)
        self.ghost_width = potential.ghost_range + skin
        self.max_force = max_force
        self.local: LocalAtoms | None = None
        self.energies: torch.Tensor | None = None
        self.extras: dict[str, torch.Tensor] = {}

    def check(self, state: State) -> None:
        """Validate a state against the potential before any compute (clear errors)."""
        state.validate()
        self.potential.check_species(state.species)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Neighbour-list reference (owned positions and cell at the last build).

        Restoring it rebuilds the *same* list and ghost set at restart, which keeps a resumed run
        bitwise identical to an uninterrupted one.  Under MPI the reference is per rank and the
        checkpoint holds the gathered state (restartable on another rank count), so nothing is
        saved: the resumed run rebuilds its list and matches to float64 rounding.
        """
        if self.nl._ref_positions is None or self.domain.size > 1:
            return {}
        return {"nl_ref_positions": self.nl._ref_positions.clone(), "nl_ref_cell": self.nl._ref_cell.clone()}

    def load_state_dict(self, d: dict[str, torch.Tensor], state: State) -> None:
        """Rebuild ghosts and list from a :meth:`state_dict` reference for ``state``."""
        self.local = None
        if not d or self.domain.size > 1:  # per-rank references are not checkpointed under MPI
            return
        ref = state.replace(
            positions=d["nl_ref_positions"].to(state.device, state.dtype),
            cell=d["nl_ref_cell"].to(state.device, state.dtype),
        )
        self.local = self.domain.build_local(ref, self.ghost_width)
        self.nl.build(self.local, ref)
        self.domain.update_ghosts(state, self.local)

    def invalidate(self) -> None:
        """Force a rebuild at the next :meth:`compute` (after the state was replaced)."""
        self.local = None

    def _update_local(self, state: State) -> None:
        # The decision must be collective: one rank rebuilding alone would deadlock the others.
        if self.local is None or self.local.n_owned != state.n_atoms:
            disp = torch.tensor(float("inf"), dtype=state.dtype, device=state.device)
        else:
            disp = self.nl.max_displacement(state)
        if bool(self.domain.allreduce_max(disp.reshape(1))[0] > self.nl.skin):
            self.local = self.domain.build_local(state, self.ghost_width)
            self.nl.build(self.local, state)
        else:
            self.domain.update_ghosts(state, self.local)

    def compute(self, state: State, *, extras: bool = True) -> None:
        """Set ``state.forces`` (eV/Å), ``state.energy`` (eV) and ``state.virial`` (eV).

        Args:
            state: the (owned) state.
            extras: ask the potential for its optional extras (a committee's member forces and
                force deviation, in :attr:`extras`); the simulation asks only on steps whose output
                uses them.  Forces and energies are the same either way.
        """
        self._update_local(state)
        local = self.local
        self.potential.extras_enabled = extras
        out = self.potential(local, self.nl)
        energies = self.domain.reverse_sum(local, out.energies)
        forces = self.domain.reverse_sum(local, out.forces)
        energy = torch.zeros(state.n_systems, dtype=state.dtype, device=state.device)
        energy.index_add_(0, state.system_idx, energies.to(state.dtype))
        energy = self.domain.allreduce_sum(energy)
        virial = self.domain.allreduce_sum(out.virial.to(state.dtype))
        bad = ~torch.isfinite(forces).all(dim=1) | (forces.abs().amax(dim=1) > self.max_force)
        local_bad = torch.tensor([float(bad.any())], dtype=state.dtype, device=state.device)
        any_bad = bool(self.domain.allreduce_max(local_bad)[0] > 0) or not bool(torch.isfinite(energy).all())
        if any_bad:
            where = state.tag[bad][:5].tolist()
            raise NonFiniteError(
                f"non-finite or exploding forces (|F| > {self.max_force} eV/Å) at step {state.step}"
                + (f", atoms with tag {where}" if where else "")
                + f"; energies per system {energy.tolist()} eV"
            )
        state.forces = forces.to(state.dtype)
        state.energy = energy
        state.virial = virial
        self.energies = energies.to(state.dtype)
        extras = dict(out.extras or {})
        if "member_forces" in extras:
            member_forces = self.domain.reverse_sum(local, extras["member_forces"])
            extras.update(committee_deviation(member_forces, state, self.domain))
        self.extras = extras

    def pressure_tensor(self, state: State) -> torch.Tensor:
        """``[S, 3, 3]`` eV/Å³: ``(Σ p⊗p/m + W) / V`` (kinetic part reduced over ranks)."""
        kin = self.domain.allreduce_sum(state.kinetic_energy_tensor())
        return (kin + state.virial) / state.volume[:, None, None]
