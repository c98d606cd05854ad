"""MPI domain decomposition (mpi4py): bricks, migration, ghost sweeps, reverse sums.

Communication scheme (Plimpton 1995, as in LAMMPS and HOOMD-blue's ``Communicator``):

* The cell is split into a ``Px × Py × Pz`` grid of bricks in *fractional* coordinates, so
  orthorhombic and triclinic cells are handled alike.  Each rank owns the atoms whose wrapped
  fractional coordinates fall in its brick.
* On a neighbour-list rebuild, atoms are wrapped into the cell and **migrated** to the rank that
  owns them (every per-atom field of the :class:`~ssehpc.state.State` travels; an all-to-all, so
  an atom may jump any number of bricks).  Owned atoms are kept sorted by tag.
* **Ghosts** are exchanged by six-direction sweeps (x−, x+, y−, y+, z−, z+).  A sweep sends every
  local atom (owned, or a ghost received in an earlier dimension) within the ghost width of the
  lower (upper) brick face to the lower (upper) neighbour; a periodic shift is added when the
  sweep crosses the cell boundary.  If the ghost width exceeds the brick width, a sweep is
  repeated, each pass forwarding what the previous pass received, until the width is covered —
  so small cells on many ranks work, and one rank along a direction sends to itself.
* Every swap is recorded (rows sent, shift, rows received).  Between rebuilds only positions are
  sent again along the same swaps (**ghost update**); after the potential, ghost rows are sent
  back along the swaps in reverse order and added onto the rows they came from (**reverse sum**).
* Energies, virials, kinetic energies and the rebuild decision are reduced with ``Allreduce``.

The per-step messages are plain NumPy buffers (``Sendrecv``); device tensors are staged through
host memory.  With a CUDA-aware MPI the staging in :meth:`MPIDomain._sendrecv` and the
reductions could pass device pointers directly instead (mpi4py accepts objects exposing
``__cuda_array_interface__``).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import torch

from ssehpc import space
from ssehpc.parallel.domain import LocalAtoms
from ssehpc.state import State


def choose_grid(size: int, widths: tuple[float, float, float]) -> tuple[int, int, int]:
    """Brick grid ``(Px, Py, Pz)`` with ``Px·Py·Pz = size`` minimising the brick surface.

    Args:
        size: number of ranks.
        widths: perpendicular widths of the cell, Å.
    """
    best, best_area = (size, 1, 1), math.inf
    for px in range(1, size + 1):
        if size % px:
            continue
        for py in range(1, size // px + 1):
            if (size // px) % py:
                continue
            pz = size // px // py
            bx, by, bz = widths[0] / px, widths[1] / py, widths[2] / pz
            area = bx * by + by * bz + bz * bx
            if area < best_area - 1e-9:
                best, best_area = (px, py, pz), area
    return best


@dataclass
class _Swap:
    """One recorded ghost exchange."""

    send_idx: torch.Tensor  # local rows sent
    shift: tuple[int, int, int]  # periodic shift added to the sent positions
    dest: int
    source: int
    recv_start: int
    n_recv: int


class MPIDomain:
    """Domain decomposition over an MPI communicator.

    Args:
        comm: mpi4py communicator (default ``COMM_WORLD``).
        grid: brick grid ``(Px, Py, Pz)``; chosen from the rank count and cell shape if ``None``.
    """

    def __init__(self, comm: object | None = None, grid: tuple[int, int, int] | None = None) -> None:
        from mpi4py import MPI

        self.MPI = MPI
        self.comm = comm if comm is not None else MPI.COMM_WORLD
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        self.is_root = self.rank == 0
        self.grid = grid
        self.cart = None
        self.swaps: list[_Swap] = []
        if grid is not None:
            self._set_grid(grid)

    # ---------------------------------------------------------------- grid
    def _set_grid(self, grid: tuple[int, int, int]) -> None:
        if math.prod(grid) != self.size:
            raise ValueError(
                f"brick grid {grid} has {math.prod(grid)} bricks but the communicator has {self.size} ranks"
            )
        self.grid = tuple(int(g) for g in grid)
        self.cart = self.comm.Create_cart(list(self.grid), periods=[True, True, True], reorder=False)
        self.coords = tuple(self.cart.Get_coords(self.rank))
        table = np.zeros(self.grid, dtype=np.int64)
        for c in itertools.product(*[range(g) for g in self.grid]):
            table[c] = self.cart.Get_cart_rank(list(c))
        self._rank_table = torch.from_numpy(table)
        self.lo = torch.tensor(
            [c / g for c, g in zip(self.coords, self.grid, strict=True)], dtype=torch.float64
        )
        self.hi = torch.tensor(
            [(c + 1) / g for c, g in zip(self.coords, self.grid, strict=True)], dtype=torch.float64
        )

    def _ensure_grid(self, state: State) -> None:
        if state.n_systems != 1:
            raise ValueError(
                f"the MPI domain decomposes one system; this state holds {state.n_systems} (batch replicas instead)"
            )
        if self.cart is None:
            widths = tuple(space.perpendicular_widths(state.cell)[0].tolist())
            self._set_grid(choose_grid(self.size, widths))

    def owner_of(self, frac: torch.Tensor) -> torch.Tensor:
        """``[N]`` rank owning each wrapped fractional coordinate."""
        g = torch.tensor(self.grid, dtype=torch.int64)
        c = torch.floor(frac.cpu() * g).to(torch.int64)
        c = torch.minimum(c.clamp_min(0), g - 1)
        return self._rank_table[c[:, 0], c[:, 1], c[:, 2]].to(frac.device)

    # ---------------------------------------------------------------- collectives
    def _np(self, t: torch.Tensor) -> np.ndarray:
        return np.ascontiguousarray(t.detach().cpu().numpy())

    def allreduce_sum(self, t: torch.Tensor) -> torch.Tensor:
        buf = self._np(t)
        out = np.empty_like(buf)
        self.comm.Allreduce(buf, out, op=self.MPI.SUM)
        return torch.from_numpy(out).to(t.device)

    def allreduce_max(self, t: torch.Tensor) -> torch.Tensor:
        buf = self._np(t)
        out = np.empty_like(buf)
        self.comm.Allreduce(buf, out, op=self.MPI.MAX)
        return torch.from_numpy(out).to(t.device)

    def broadcast_object(self, obj: object) -> object:
        return self.comm.bcast(obj, root=0)

    def barrier(self) -> None:
        self.comm.Barrier()

    def abort(self, code: int = 1) -> None:
        self.comm.Abort(code)

    # ---------------------------------------------------------------- distribution
    def distribute(self, state: State) -> State:
        """Keep the atoms of a state that every rank holds in full (e.g. read from a file or a
        checkpoint) that this rank owns: no communication."""
        self._ensure_grid(state)
        wrapped, shift = space.wrap(state.positions, state.cell, state.system_idx)
        state = state.replace(positions=wrapped, image=state.image + shift)
        frac = space.to_fractional(wrapped, state.cell, state.system_idx)
        mine = torch.nonzero(self.owner_of(frac) == self.rank).flatten()
        mine = mine[torch.argsort(state.tag[mine])]
        return state.index_atoms(mine)

    def migrate(self, state: State) -> None:
        """Wrap and send every atom to its owner (all per-atom fields, in place)."""
        wrapped, shift = space.wrap(state.positions, state.cell, state.system_idx)
        state.positions = wrapped
        state.image = state.image + shift
        frac = space.to_fractional(wrapped, state.cell, state.system_idx)
        owner = self.owner_of(frac)
        fields = state.fields("atom")
        outgoing = []
        for r in range(self.size):
            if r == self.rank:
                outgoing.append(None)
                continue
            idx = torch.nonzero(owner == r).flatten()
            outgoing.append(
                {f: getattr(state, f)[idx].cpu().numpy() for f in fields} if idx.numel() else None
            )
        incoming = self.comm.alltoall(outgoing)
        keep = torch.nonzero(owner == self.rank).flatten()
        parts = {f: [getattr(state, f)[keep]] for f in fields}
        for msg in incoming:
            if msg is None:
                continue
            for f in fields:
                parts[f].append(torch.from_numpy(msg[f]).to(state.device))
        merged = {f: torch.cat(v) for f, v in parts.items()}
        order = torch.argsort(merged["tag"])
        for f in fields:
            setattr(state, f, merged[f][order])

    # ---------------------------------------------------------------- ghosts
    def build_local(self, state: State, ghost_width: float) -> LocalAtoms:
        """Migrate, then exchange ghosts within ``ghost_width`` Å of this rank's brick."""
        if not (ghost_width > 0 and math.isfinite(ghost_width)):
            raise ValueError(f"ghost width must be a positive length in Å, got {ghost_width}")
        self._ensure_grid(state)
        self.migrate(state)
        cell = state.cell[0]
        dtype, device = state.dtype, state.device
        w = (ghost_width / space.perpendicular_widths(state.cell)[0]).tolist()
        pos = [state.positions]
        species = [state.species]
        tags = [state.tag]
        tshift = [torch.zeros((state.n_atoms, 3), dtype=torch.int64, device=device)]
        n_local = state.n_atoms
        self.swaps = []
        inv = torch.linalg.inv(cell)
        for d in range(3):
            width_d = 1.0 / self.grid[d]
            n_pass = max(1, math.ceil(w[d] / width_d - 1e-12))
            n_before_dim = n_local
            for direction in (-1, +1):
                source, dest = self.cart.Shift(d, direction)
                # Sending to the lower neighbour from the lowest brick crosses the cell boundary.
                crosses = (direction < 0 and self.coords[d] == 0) or (
                    direction > 0 and self.coords[d] == self.grid[d] - 1
                )
                shift = [0, 0, 0]
                if crosses:
                    shift[d] = -direction
                shift_t = torch.tensor(shift, dtype=dtype, device=device) @ cell
                cand = torch.arange(n_before_dim, device=device)
                for _ in range(n_pass):
                    all_pos = torch.cat(pos)
                    s_d = (all_pos[cand] @ inv)[:, d]
                    if direction < 0:
                        sel = cand[s_d < float(self.lo[d]) + w[d]]
                    else:
                        sel = cand[s_d >= float(self.hi[d]) - w[d]]
                    all_species, all_tags, all_tshift = torch.cat(species), torch.cat(tags), torch.cat(tshift)
                    msg = (
                        self._np(all_pos[sel] + shift_t),
                        self._np(all_species[sel]),
                        self._np(all_tags[sel]),
                        self._np(all_tshift[sel] + torch.tensor(shift, dtype=torch.int64, device=device)),
                    )
                    rp, rs, rt, rsh = self.cart.sendrecv(msg, dest=dest, source=source)
                    n_recv = rp.shape[0]
                    self.swaps.append(_Swap(sel, tuple(shift), dest, source, n_local, n_recv))
                    pos.append(torch.from_numpy(rp).to(device=device, dtype=dtype))
                    species.append(torch.from_numpy(rs).to(device))
                    tags.append(torch.from_numpy(rt).to(device))
                    tshift.append(torch.from_numpy(rsh).to(device))
                    cand = torch.arange(n_local, n_local + n_recv, device=device)
                    n_local += n_recv
        n_owned = state.n_atoms
        all_tshift = torch.cat(tshift)
        return LocalAtoms(
            positions=torch.cat(pos),
            species=torch.cat(species),
            tag=torch.cat(tags),
            system_idx=torch.zeros(n_local, dtype=torch.int64, device=device),
            n_owned=n_owned,
            cell=state.cell,
            ghost_origin=torch.zeros(0, dtype=torch.int64, device=device),
            ghost_shift=all_tshift[n_owned:],
        )

    def _sendrecv(self, send: torch.Tensor, n_recv: int, dest: int, source: int) -> torch.Tensor:
        sendbuf = self._np(send)
        recvbuf = np.empty((n_recv, *sendbuf.shape[1:]), dtype=sendbuf.dtype)
        self.cart.Sendrecv(sendbuf, dest=dest, recvbuf=recvbuf, source=source)
        return torch.from_numpy(recvbuf).to(send.device)

    def update_ghosts(self, state: State, local: LocalAtoms) -> None:
        """Resend positions along the recorded swaps, using the current cell."""
        cell = state.cell[0]
        positions = torch.empty((local.n_local, 3), dtype=state.dtype, device=state.device)
        positions[: state.n_atoms] = state.positions
        for sw in self.swaps:
            shift_t = torch.tensor(sw.shift, dtype=state.dtype, device=state.device) @ cell
            recv = self._sendrecv(positions[sw.send_idx] + shift_t, sw.n_recv, sw.dest, sw.source)
            positions[sw.recv_start : sw.recv_start + sw.n_recv] = recv
        local.positions = positions
        local.cell = state.cell

    def reverse_sum(self, local: LocalAtoms, values: torch.Tensor) -> torch.Tensor:
        """Send ghost rows back along the swaps (reverse order) and add them onto their sources."""
        acc = values.clone()
        for sw in reversed(self.swaps):
            back = acc[sw.recv_start : sw.recv_start + sw.n_recv]
            got = self._sendrecv(back, sw.send_idx.numel(), sw.source, sw.dest)
            acc.index_add_(0, sw.send_idx, got.to(acc.dtype))
        return acc[: local.n_owned]

    # ---------------------------------------------------------------- output
    def gather_by_tag(self, state: State, names: list[str]) -> dict[str, torch.Tensor] | None:
        """Owned rows of ``names`` (state fields or ``"unwrapped_positions"``) from every rank, on
        the root rank (the only writer, so two ranks never write one chunk), sorted by tag."""
        mine = {
            n: self._np(getattr(state, n) if n != "unwrapped_positions" else state.unwrapped_positions())
            for n in names
        }
        mine["tag"] = self._np(state.tag)
        parts = self.comm.gather(mine, root=0)
        if not self.is_root:
            return None
        tag = np.concatenate([p["tag"] for p in parts])
        order = np.argsort(tag, kind="stable")
        return {
            n: torch.from_numpy(np.concatenate([p[n] for p in parts])[order]).to(state.device)
            for n in [*names, "tag"]
        }

    def gather_state(self, state: State) -> State | None:
        """The whole state (every per-atom field) in tag order on the root rank, ``None`` elsewhere.

        Checkpoints hold this full state, so they restart on any rank count.
        """
        rows = self.gather_by_tag(state, [f for f in state.fields("atom") if f != "tag"])
        if rows is None:
            return None
        return state.replace(**rows)
