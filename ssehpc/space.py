"""Periodic-space helpers for triclinic cells (lattice vectors as rows, Å).

Fractional coordinates ``s`` relate to Cartesian ``x`` by ``x = s @ cell``.  All functions work
on batches: ``cell`` is ``[S, 3, 3]`` and atoms carry ``system_idx``.
"""

from __future__ import annotations

import torch


def perpendicular_widths(cell: torch.Tensor) -> torch.Tensor:
    """``[S, 3]`` Å: distance between opposite faces of each cell, ``V / |a_j × a_k|``."""
    cell = cell if cell.ndim == 3 else cell.unsqueeze(0)
    a, b, c = cell[:, 0], cell[:, 1], cell[:, 2]
    vol = torch.linalg.det(cell).abs()
    areas = torch.stack(
        [
            torch.linalg.norm(torch.cross(b, c, dim=-1), dim=-1),
            torch.linalg.norm(torch.cross(c, a, dim=-1), dim=-1),
            torch.linalg.norm(torch.cross(a, b, dim=-1), dim=-1),
        ],
        dim=-1,
    )
    return vol[:, None] / areas


def to_fractional(positions: torch.Tensor, cell: torch.Tensor, system_idx: torch.Tensor) -> torch.Tensor:
    """``[N, 3]`` fractional coordinates of Cartesian ``positions``."""
    inv = torch.linalg.inv(cell)
    return torch.einsum("ni,nij->nj", positions, inv[system_idx])


def to_cartesian(frac: torch.Tensor, cell: torch.Tensor, system_idx: torch.Tensor) -> torch.Tensor:
    """``[N, 3]`` Å from fractional coordinates."""
    return torch.einsum("ni,nij->nj", frac, cell[system_idx])


def wrap(
    positions: torch.Tensor, cell: torch.Tensor, system_idx: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Wrap positions into the cell.

    Returns:
        ``(wrapped [N, 3] Å, shift [N, 3] int64)`` with ``positions = wrapped + shift @ cell``,
        so the caller adds ``shift`` to the image flags.
    """
    frac = to_fractional(positions, cell, system_idx)
    shift = torch.floor(frac)
    # Only atoms that left the cell move, by whole cell vectors; the others keep their bits, so
    # wrapping is idempotent (needed for bitwise restarts).
    moved = (shift != 0).any(dim=1)
    wrapped = positions.clone()
    if bool(moved.any()):
        idx = torch.nonzero(moved).flatten()
        wrapped[idx] = positions[idx] - torch.einsum("ni,nij->nj", shift[idx], cell[system_idx[idx]])
    return wrapped, shift.to(torch.int64)


def minimum_image(dr: torch.Tensor, cell: torch.Tensor, system_idx: torch.Tensor) -> torch.Tensor:
    """Shortest periodic image of displacement vectors ``dr`` ``[M, 3]`` Å.

    Exact for any triclinic cell: rounds in fractional space, then searches the 27 neighbouring
    images (rounding alone is wrong for strongly skewed cells).  Only valid for displacements
    shorter than half the smallest perpendicular width; :class:`ssehpc.neighbors.NeighborList`
    does not use it.
    """
    frac = to_fractional(dr, cell, system_idx)
    frac = frac - torch.round(frac)
    base = to_cartesian(frac, cell, system_idx)
    rng = torch.tensor([-1, 0, 1], dtype=dr.dtype, device=dr.device)
    shifts = torch.cartesian_prod(rng, rng, rng)  # [27, 3]
    cand = base[:, None, :] + torch.einsum("ki,mij->mkj", shifts, cell[system_idx])
    best = torch.linalg.norm(cand, dim=-1).argmin(dim=1)
    return cand[torch.arange(dr.shape[0], device=dr.device), best]
