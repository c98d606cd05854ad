"""Small crystal builders for specs (``ase.Atoms`` out, Å in).

* :func:`fcc` — an fcc crystal of one element in its cubic cell (LJ argon);
* :func:`bulk` — any ``ase.build.bulk`` crystal (rocksalt, fluorite/antifluorite, ...);
* :func:`supercell` — repeat a cell to about a target number of atoms, as cubic as possible.

Full solid-electrolyte builders (site disorder, vacancies, compositions) come later.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import ase
import ase.build
import numpy as np

Repeat = int | Sequence[int]


def _repeat3(repeat: Repeat) -> tuple[int, int, int]:
    r = (repeat,) * 3 if isinstance(repeat, int) else tuple(int(k) for k in repeat)
    if len(r) != 3 or any(k < 1 for k in r):
        raise ValueError(f"repeat must be one or three positive integers, got {repeat!r}")
    return r  # type: ignore[return-value]


def fcc(element: str, a: float, repeat: Repeat = 1, *, target_atoms: int | None = None) -> ase.Atoms:
    """fcc crystal of ``element`` in the 4-atom cubic cell.

    Args:
        element: chemical symbol, e.g. ``"Ar"``.
        a: cubic lattice constant, Å (argon: 5.26 Å).
        repeat: repetitions of the cubic cell (one int or three).
        target_atoms: if given, ignore ``repeat`` and build the most cubic supercell with about
            this many atoms.
    """
    return bulk(element, "fcc", a, repeat, target_atoms=target_atoms)


def bulk(
    name: str,
    crystalstructure: str,
    a: float,
    repeat: Repeat = 1,
    *,
    c: float | None = None,
    cubic: bool = True,
    target_atoms: int | None = None,
) -> ase.Atoms:
    """A crystal from ``ase.build.bulk``, repeated.

    Args:
        name: formula or element; ASE fills the sites in formula order, so for the
            antifluorite Li₂O write ``"OLi2"`` with ``crystalstructure="fluorite"`` (O on the
            fcc sites, Li on both tetrahedral sites); rocksalt NaCl is ``"NaCl"``.
        crystalstructure: ASE name: ``fcc``, ``bcc``, ``sc``, ``hcp``, ``rocksalt``, ``fluorite``,
            ``zincblende``, ``cesiumchloride``, ``wurtzite``, ...
        a: lattice constant, Å.
        repeat: repetitions of the (cubic, when ``cubic``) cell.
        c: second lattice constant for hexagonal structures, Å.
        cubic: use the conventional cubic cell where there is one.
        target_atoms: build the most cubic supercell with about this many atoms instead of
            ``repeat``.

    Raises:
        ValueError: for a non-positive ``a`` or a structure ASE cannot build.
    """
    if not a > 0:
        raise ValueError(f"lattice constant a must be positive (Å), got {a}")
    try:
        unit = ase.build.bulk(name, crystalstructure, a=a, c=c, cubic=cubic)
    except Exception as exc:  # ASE raises ValueError/KeyError/RuntimeError for bad names
        raise ValueError(f"cannot build {crystalstructure!r} {name!r} with ase.build.bulk: {exc}") from exc
    if target_atoms is not None:
        return supercell(unit, target_atoms)
    return unit.repeat(_repeat3(repeat))


def supercell_repeat(atoms: ase.Atoms, target_atoms: int) -> tuple[int, int, int]:
    """Repetitions ``(n1, n2, n3)`` giving about ``target_atoms`` atoms in a near-cubic cell.

    Each direction gets ``n_k ≈ L / w_k`` with ``w_k`` the perpendicular width of the unit cell and
    ``L`` chosen so that ``n1 n2 n3 · N_unit ≈ target_atoms``.
    """
    if target_atoms < 1:
        raise ValueError(f"target_atoms must be positive, got {target_atoms}")
    cell = atoms.cell.array
    volume = abs(np.linalg.det(cell))
    widths = [volume / np.linalg.norm(np.cross(cell[(k + 1) % 3], cell[(k + 2) % 3])) for k in range(3)]
    factor = target_atoms / len(atoms)
    length = (factor * math.prod(widths)) ** (1.0 / 3.0)
    return tuple(max(1, round(length / w)) for w in widths)  # type: ignore[return-value]


def supercell(atoms: ase.Atoms, target_atoms: int) -> ase.Atoms:
    """``atoms`` repeated to about ``target_atoms`` atoms (see :func:`supercell_repeat`)."""
    return atoms.repeat(supercell_repeat(atoms, target_atoms))
