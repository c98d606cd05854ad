"""Structures in and out: ``ase.Atoms`` ↔ :class:`~ssehpc.state.State`, and checked file reading.

Conventions of the conversion:

* masses come from ASE (``atoms.get_masses()``, amu), species are atomic numbers ``Z``;
* the cell is stored as *rows* (lattice vectors, Å), as in ASE;
* tags are the atom indices ``0..N-1`` (ASE's own ``tags`` are ignored);
* positions are taken as given (Å); the domain wraps them at the first neighbour-list build and
  records the image flags, so unwrapped output starts from the file's coordinates;
* ASE momenta (amu·Å per ASE time unit) are converted to amu·Å/fs when ``momenta=True``.

Every problem with an input structure raises :class:`StructureError` with one sentence that names
it: a missing file, an unknown format, unparseable content, NaN coordinates, a cell that is not
periodic in all three directions, or two atoms closer than ``min_distance`` (indices and
distance are named).
"""

from __future__ import annotations

from pathlib import Path

import ase
import ase.io
import ase.units
import numpy as np
import torch

from ssehpc.state import State

#: Default smallest allowed interatomic distance, Å.
MIN_DISTANCE: float = 0.5


class StructureError(ValueError):
    """An input structure cannot be used (the message says why)."""


def read_structure(
    path: str | Path,
    format: str | None = None,
    index: int | str = -1,
    *,
    check: bool = True,
    min_distance: float = MIN_DISTANCE,
) -> ase.Atoms:
    """Read one structure from any ASE-readable file and (by default) check it.

    Args:
        path: file to read.
        format: ASE format name (``extxyz``, ``vasp``, ``cif``, ...); guessed from the file when
            ``None``.
        index: frame of a trajectory file (ASE index, default the last frame).
        check: run :func:`check_structure` on the result.
        min_distance: smallest allowed interatomic distance for the check, Å.

    Raises:
        StructureError: with a one-line reason.
    """
    path = Path(path)
    if not path.exists():
        raise StructureError(f"structure file '{path}' does not exist")
    if path.is_dir():
        raise StructureError(f"structure file '{path}' is a directory")
    try:
        atoms = ase.io.read(path, index=index, format=format)
    except ase.io.formats.UnknownFileTypeError as exc:
        raise StructureError(
            f"cannot read structure file '{path}': unknown file format ({exc}); "
            "give the format explicitly (e.g. extxyz, vasp, cif)"
        ) from exc
    except Exception as exc:  # ASE raises anything from ValueError to IndexError on bad content
        what = f" as format '{format}'" if format else ""
        raise StructureError(
            f"cannot parse structure file '{path}'{what}: {type(exc).__name__}: {exc}"
        ) from exc
    if isinstance(atoms, list):  # index was a slice
        if not atoms:
            raise StructureError(f"structure file '{path}' holds no frame at index {index!r}")
        atoms = atoms[-1]
    if check:
        check_structure(atoms, min_distance=min_distance, source=f"structure file '{path}'")
    return atoms


def check_structure(
    atoms: ase.Atoms, *, min_distance: float = MIN_DISTANCE, source: str = "structure"
) -> None:
    """Raise :class:`StructureError` if ``atoms`` cannot start an MD run.

    Checks: at least one atom, finite positions and cell, periodic in all three directions with a
    non-singular cell, and no two atoms (including periodic images) closer than ``min_distance``.

    Args:
        atoms: the structure.
        min_distance: smallest allowed distance between two atoms, Å (0 disables the check).
        source: name used in messages (e.g. the file path).
    """
    n = len(atoms)
    if n == 0:
        raise StructureError(f"{source}: contains no atoms")
    pos = atoms.positions
    bad = np.flatnonzero(~np.isfinite(pos).all(axis=1))
    if bad.size:
        raise StructureError(
            f"{source}: non-finite (NaN/inf) coordinates for atom indices {bad[:5].tolist()}"
            + (f" and {bad.size - 5} more" if bad.size > 5 else "")
        )
    if not np.isfinite(atoms.cell.array).all():
        raise StructureError(f"{source}: cell contains NaN/inf")
    if not bool(np.all(atoms.pbc)):
        raise StructureError(
            f"{source}: must be periodic in all three directions, got pbc={atoms.pbc.tolist()} "
            '(give a cell, e.g. extxyz Lattice=... pbc="T T T")'
        )
    volume = abs(np.linalg.det(atoms.cell.array))
    if volume < 1e-6:
        raise StructureError(f"{source}: cell is singular (volume {volume:.3g} Å^3)")
    if min_distance > 0:
        i, j, d = closest_pairs(atoms, min_distance)
        if d.size:
            k = int(np.argmin(d))
            raise StructureError(
                f"{source}: atoms {int(i[k])} and {int(j[k])} are {float(d[k]):.3f} Å apart, closer than "
                f"{min_distance} Å ({d.size} such pair{'s' if d.size > 1 else ''}); overlapping atoms?"
            )


def closest_pairs(atoms: ase.Atoms, cutoff: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs ``i < j`` (or an atom and its own image, ``i == j``) closer than ``cutoff`` Å.

    Returns:
        ``(i, j, distance Å)`` arrays.
    """
    from ase.neighborlist import neighbor_list

    i, j, d = neighbor_list("ijd", atoms, cutoff, self_interaction=False)
    keep = i <= j
    return i[keep], j[keep], d[keep]


def atoms_to_state(
    atoms: ase.Atoms,
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    seed: int = 0,
    momenta: bool = False,
) -> State:
    """A one-system :class:`State` from ``atoms`` (tags ``0..N-1`` in atom order).

    Args:
        atoms: structure (positions Å, cell rows Å).
        dtype: floating dtype of the state.
        device: torch device.
        seed: seed of the run's random streams.
        momenta: also take ASE's momenta (converted to amu·Å/fs); zero otherwise.
    """
    p = None
    if momenta:
        # ASE momentum unit: amu·Å / (Å·sqrt(amu/eV)); one fs is ase.units.fs ASE time units.
        p = torch.tensor(atoms.get_momenta() * ase.units.fs, dtype=dtype, device=device)
    return State.from_arrays(
        torch.tensor(np.asarray(atoms.positions), dtype=dtype, device=device),
        torch.tensor(np.asarray(atoms.get_masses()), dtype=dtype, device=device),
        torch.tensor(np.asarray(atoms.numbers), dtype=torch.int64, device=device),
        torch.tensor(np.asarray(atoms.cell.array), dtype=dtype, device=device),
        momenta=p,
        seed=seed,
    )


def state_to_atoms(state: State, system: int = 0, *, unwrap: bool = False) -> ase.Atoms:
    """One system of ``state`` as ``ase.Atoms`` in tag order, with momenta (ASE units).

    Args:
        state: the state.
        system: which system of a batch.
        unwrap: write unwrapped positions (image flags undone) instead of the wrapped ones.
    """
    mask = state.system_idx == system
    idx = torch.nonzero(mask).flatten()
    idx = idx[torch.argsort(state.tag[idx])]
    pos = state.unwrapped_positions() if unwrap else state.positions
    atoms = ase.Atoms(
        numbers=state.species[idx].cpu().numpy(),
        positions=pos[idx].detach().cpu().double().numpy(),
        cell=state.cell[system].detach().cpu().double().numpy(),
        pbc=True,
        masses=state.masses[idx].detach().cpu().double().numpy(),
    )
    atoms.set_momenta(state.momenta[idx].detach().cpu().double().numpy() / ase.units.fs)
    return atoms
