"""Domains: who owns which atoms, and which ghost atoms each owner sees.

The potential never sees periodic boundary conditions.  On every neighbour-list rebuild the
domain wraps the owned atoms into the cell and builds :class:`LocalAtoms`: the owned atoms
followed by *ghost* atoms, explicit copies of every atom (a periodic image, or an atom owned by
another MPI rank) within ``ghost_width`` of the owned region.  Pair vectors are then plain
differences ``x_j - x_i``, cells smaller than twice the cutoff just produce several images, and
the serial and MPI code paths are the same: :class:`SerialDomain` is the null object of the MPI
domain (Plimpton scheme: migrate on rebuild, ghosts within r_cut + r_skin, reverse force sum).

Between rebuilds, :meth:`SerialDomain.update_ghosts` recomputes ghost positions from their owners
and the *current* cell (``x_ghost = x_owner + shift @ cell``), which keeps NPT correct.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch

from ssehpc import space
from ssehpc.state import State


@dataclass(eq=False)
class LocalAtoms:
    """Owned atoms (rows ``[0, n_owned)``) followed by ghost atoms, as the potential sees them.

    Attributes:
        positions: ``[n_local, 3]`` Å.
        species: ``[n_local]`` int64 atomic numbers.
        tag: ``[n_local]`` int64 global ids (a ghost carries its owner's tag).
        system_idx: ``[n_local]`` int64.
        n_owned: number of owned rows.
        cell: ``[S, 3, 3]`` Å, current cell.
        ghost_origin: ``[n_ghost]`` int64, owned row each ghost is an image of (serial domain).
        ghost_shift: ``[n_ghost, 3]`` int64 periodic shift, ``x_ghost = x_origin + shift @ cell``.
    """

    positions: torch.Tensor
    species: torch.Tensor
    tag: torch.Tensor
    system_idx: torch.Tensor
    n_owned: int
    cell: torch.Tensor
    ghost_origin: torch.Tensor
    ghost_shift: torch.Tensor

    @property
    def n_local(self) -> int:
        return int(self.positions.shape[0])

    @property
    def n_ghost(self) -> int:
        return self.n_local - self.n_owned

    @property
    def n_systems(self) -> int:
        return int(self.cell.shape[0])

    @property
    def max_shift(self) -> torch.Tensor:
        """``[3]`` largest |shift| of any ghost per lattice direction (for the rebuild test)."""
        if self.n_ghost == 0:
            return torch.zeros(3, dtype=torch.int64, device=self.positions.device)
        return self.ghost_shift.abs().amax(dim=0)


class SerialDomain:
    """Single-process domain: the whole cell is owned, ghosts are periodic images.

    It implements the collective interface of the MPI domain with local no-ops, so the step loop
    is written once.
    """

    rank: int = 0
    size: int = 1
    is_root: bool = True

    # ---------------------------------------------------------------- collectives
    def allreduce_sum(self, t: torch.Tensor) -> torch.Tensor:
        return t

    def allreduce_max(self, t: torch.Tensor) -> torch.Tensor:
        return t

    def broadcast_object(self, obj: object) -> object:
        return obj

    def barrier(self) -> None:
        return None

    # ---------------------------------------------------------------- decomposition
    def build_local(self, state: State, ghost_width: float) -> LocalAtoms:
        """Wrap owned atoms (updating ``state.positions`` and ``state.image`` in place) and
        build the periodic ghost images within ``ghost_width`` Å of the cell.

        Raises:
            ValueError: if ``ghost_width`` is not finite and positive.
        """
        if not (ghost_width > 0 and math.isfinite(ghost_width)):
            raise ValueError(f"ghost width must be a positive length in Å, got {ghost_width}")
        wrapped, shift = space.wrap(state.positions, state.cell, state.system_idx)
        state.positions = wrapped
        state.image = state.image + shift
        frac = space.to_fractional(wrapped, state.cell, state.system_idx)
        # Fractional half-width of the ghost shell per system and direction.
        w = ghost_width / space.perpendicular_widths(state.cell)  # [S, 3]
        n_img = torch.ceil(w).to(torch.int64).amax(dim=0).tolist()
        w_atom = w[state.system_idx]  # [N, 3]
        origins, shifts = [], []
        ranges = [range(-n, n + 1) for n in n_img]
        for sh in itertools.product(*ranges):
            if sh == (0, 0, 0):
                continue
            s = frac + torch.tensor(sh, dtype=frac.dtype, device=frac.device)
            inside = ((s >= -w_atom) & (s < 1.0 + w_atom)).all(dim=1)
            idx = torch.nonzero(inside).flatten()
            if idx.numel():
                origins.append(idx)
                shifts.append(torch.tensor(sh, dtype=torch.int64, device=frac.device).expand(idx.numel(), 3))
        device = state.device
        origin = torch.cat(origins) if origins else torch.zeros(0, dtype=torch.int64, device=device)
        gshift = torch.cat(shifts) if shifts else torch.zeros((0, 3), dtype=torch.int64, device=device)
        local = LocalAtoms(
            positions=wrapped,
            species=torch.cat([state.species, state.species[origin]]),
            tag=torch.cat([state.tag, state.tag[origin]]),
            system_idx=torch.cat([state.system_idx, state.system_idx[origin]]),
            n_owned=state.n_atoms,
            cell=state.cell,
            ghost_origin=origin,
            ghost_shift=gshift,
        )
        self.update_ghosts(state, local)
        return local

    def update_ghosts(self, state: State, local: LocalAtoms) -> None:
        """Refresh ``local.positions`` from the owned positions and the current cell."""
        o = local.ghost_origin
        ghost = state.positions[o] + torch.einsum(
            "ni,nij->nj", local.ghost_shift.to(state.dtype), state.cell[state.system_idx[o]]
        )
        local.positions = torch.cat([state.positions, ghost])
        local.cell = state.cell

    def abort(self, code: int = 1) -> None:
        raise SystemExit(code)

    def distribute(self, state: State) -> State:
        """The part of a full state this process owns: all of it."""
        return state

    def gather_by_tag(self, state: State, names: list[str]) -> dict[str, torch.Tensor] | None:
        """Owned rows of ``names`` (state fields or ``"unwrapped_positions"``) sorted by tag,
        plus ``tag``; on the writer rank only (here: always)."""
        order = torch.argsort(state.tag)
        out = {
            n: (state.unwrapped_positions() if n == "unwrapped_positions" else getattr(state, n))[order]
            for n in names
        }
        out["tag"] = state.tag[order]
        return out

    def gather_state(self, state: State) -> State | None:
        """The whole state on the writer rank (``None`` elsewhere); here the state itself, in its
        own atom order, which the bitwise-restart neighbour-list reference relies on."""
        return state

    def reverse_sum(self, local: LocalAtoms, values: torch.Tensor) -> torch.Tensor:
        """Add per-atom ``values`` (``[n_local, ...]``) of ghosts onto their owners.

        Returns the ``[n_owned, ...]`` owned rows.
        """
        owned = values[: local.n_owned].clone()
        if local.n_ghost:
            owned.index_add_(0, local.ghost_origin, values[local.n_owned :])
        return owned
