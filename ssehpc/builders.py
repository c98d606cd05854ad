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


def supercell(atoms: ase.Atoms, target_atoms: int, max_aspect: float = 2.0) -> ase.Atoms:
    """Repeat a cell to about ``target_atoms`` atoms, as close to isotropic as possible.

    Chooses (n₁, n₂, n₃) minimising |ln(N/target)| + ½ ln(w_max/w_min), where w are the
    perpendicular widths of the supercell, among repeats with N ≤ 1.5 × target (the unit cell
    itself if even that is larger).

    Args:
        atoms: periodic unit cell.
        target_atoms: desired number of atoms.
        max_aspect: repeats with w_max/w_min above this get a penalty of 1 (so they are used
            only when nothing more isotropic is near the target).

    Returns:
        The repeated structure (``info["repeat"]`` records the repeat).
    """
    if target_atoms < 1:
        raise ValueError(f"target_atoms must be positive, got {target_atoms}")
    n0 = len(atoms)
    widths = 1.0 / np.linalg.norm(np.linalg.inv(atoms.cell.array), axis=0)  # perpendicular widths, Å
    ratio = 1.5 * target_atoms / n0
    caps = [max(1, min(math.ceil(ratio), math.ceil(2 * ratio ** (1 / 3) * widths.max() / w))) for w in widths]
    n1, n2, d = np.meshgrid(
        np.arange(1, caps[0] + 1), np.arange(1, caps[1] + 1), np.arange(-1, 3), indexing="ij"
    )
    n3 = np.maximum(1, np.floor(target_atoms / (n0 * n1 * n2)).astype(int) + d)
    reps = np.stack([n1.ravel(), n2.ravel(), n3.ravel()], axis=1)
    reps = np.unique(np.vstack([reps, [[1, 1, 1]]]), axis=0)  # sorted: ties go to the smallest repeat
    n = n0 * reps.prod(axis=1)
    w = widths * reps
    aspect = w.max(axis=1) / w.min(axis=1)
    score = np.abs(np.log(n / target_atoms)) + 0.5 * np.log(aspect) + np.where(aspect > max_aspect, 1.0, 0.0)
    score[(n > 1.5 * target_atoms) & (reps != 1).any(axis=1)] = np.inf
    best = (float(score.min()), tuple(int(k) for k in reps[int(np.argmin(score))]))
    out = atoms.repeat(best[1])
    out.info["repeat"] = best[1]
    return out
