"""Reference energies, forces and virials from the LAMMPS executable (``lmp``) in a subprocess.

A subprocess needs no ``LD_LIBRARY_PATH`` (unlike ``from lammps import lammps``).  LAMMPS wants a
right-handed, lower-triangular cell (``a = (lx,0,0)``, ``b = (xy,ly,0)``, ``c = (xz,yz,lz)``); the
configuration is rotated into that frame with a QR decomposition and the results are rotated back.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: LAMMPS metal-unit pressure conversion (``force->nktv2p``): eV/Å³ → bar.
NKTV2P_METAL = 1.6021765e6


def find_lmp() -> str | None:
    """Path of the ``lmp`` executable on ``PATH`` or in ``sys.prefix/bin``, else ``None``."""
    found = shutil.which("lmp")
    if found:
        return found
    candidate = Path(sys.prefix) / "bin" / "lmp"
    return str(candidate) if candidate.exists() else None


def lammps_frame(cell: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotation ``R`` and lower-triangular cell ``L = cell @ R`` (positive diagonal).

    ``R`` is a proper rotation for a right-handed ``cell``; positions go ``x → x R``.
    """
    cell = np.asarray(cell, dtype=np.float64)
    if np.linalg.det(cell) <= 0:
        raise ValueError("LAMMPS needs a right-handed cell")
    q, u = np.linalg.qr(cell.T)  # cell = uᵀ qᵀ  →  cell q = uᵀ (lower triangular)
    rot = q * np.sign(np.diag(u))
    lower = cell @ rot
    lower[np.triu_indices(3, 1)] = 0.0
    return rot, lower


@dataclass
class LammpsResult:
    """Results in the *original* frame: ``energy`` eV, ``energies [N]`` eV, ``forces [N,3]`` eV/Å,
    ``virial [3,3]`` eV (``Σ r ⊗ f``, positive for repulsion)."""

    energy: float
    energies: np.ndarray
    forces: np.ndarray
    virial: np.ndarray


def run_lammps(
    lmp: str,
    workdir: Path,
    positions: np.ndarray,
    cell: np.ndarray,
    types: np.ndarray,
    masses: dict[int, float],
    pair_commands: list[str],
    charges: np.ndarray | None = None,
    timeout: float = 120.0,
) -> LammpsResult:
    """``run 0`` with ``pair_commands`` (metal units) and return the results.

    Args:
        lmp: executable.
        workdir: empty directory for the input, data and output files.
        positions: ``[N, 3]`` Å.
        cell: ``[3, 3]`` Å, rows are lattice vectors.
        types: ``[N]`` LAMMPS atom types (1-based).
        masses: ``{type: amu}``.
        pair_commands: ``pair_style`` / ``pair_coeff`` / ``pair_modify`` lines.
        charges: ``[N]`` e (``atom_style charge``) or ``None`` (``atom_style atomic``).
    """
    rot, lower = lammps_frame(cell)
    x = np.asarray(positions, dtype=np.float64) @ rot
    frac = x @ np.linalg.inv(lower)
    x = (frac - np.floor(frac)) @ lower  # inside the box
    n = len(x)
    lines = [
        "LAMMPS data file (ssehpc tests)",
        "",
        f"{n} atoms",
        f"{max(masses)} atom types",
        "",
        f"0.0 {lower[0, 0]:.17g} xlo xhi",
        f"0.0 {lower[1, 1]:.17g} ylo yhi",
        f"0.0 {lower[2, 2]:.17g} zlo zhi",
        f"{lower[1, 0]:.17g} {lower[2, 0]:.17g} {lower[2, 1]:.17g} xy xz yz",
        "",
        "Masses",
        "",
        *(f"{t} {m:.17g}" for t, m in sorted(masses.items())),
        "",
        "Atoms # " + ("charge" if charges is not None else "atomic"),
        "",
    ]
    for k in range(n):
        q = f" {charges[k]:.17g}" if charges is not None else ""
        lines.append(f"{k + 1} {int(types[k])}{q} {x[k, 0]:.17g} {x[k, 1]:.17g} {x[k, 2]:.17g}")
    workdir = Path(workdir)
    (workdir / "data.lmp").write_text("\n".join(lines) + "\n")
    script = [
        "units metal",
        "atom_style " + ("charge" if charges is not None else "atomic"),
        "boundary p p p",
        "atom_modify map array",
        "read_data data.lmp",
        *pair_commands,
        "neighbor 1.0 bin",
        "compute peatom all pe/atom",
        "compute vir all pressure NULL virial",
        "thermo_style custom step pe vol c_vir[1] c_vir[2] c_vir[3] c_vir[4] c_vir[5] c_vir[6]",
        "thermo_modify format float %.17g",
        "dump d all custom 1 dump.txt id fx fy fz c_peatom",
        "dump_modify d format float %.17g sort id",
        "run 0",
        'print "$(pe:%.17g) $(vol:%.17g) $(c_vir[1]:%.17g) $(c_vir[2]:%.17g) $(c_vir[3]:%.17g) '
        '$(c_vir[4]:%.17g) $(c_vir[5]:%.17g) $(c_vir[6]:%.17g)" file result.txt',
    ]
    (workdir / "in.lmp").write_text("\n".join(script) + "\n")
    proc = subprocess.run(
        [lmp, "-in", "in.lmp", "-log", "log.lammps", "-screen", "none", "-nocite"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        log = (workdir / "log.lammps").read_text() if (workdir / "log.lammps").exists() else ""
        raise RuntimeError(f"lmp failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}\n{log[-3000:]}")
    values = [float(v) for v in (workdir / "result.txt").read_text().split()]
    pe, vol, pxx, pyy, pzz, pxy, pxz, pyz = values
    w = np.array([[pxx, pxy, pxz], [pxy, pyy, pyz], [pxz, pyz, pzz]]) * vol / NKTV2P_METAL
    dump = np.loadtxt(workdir / "dump.txt", skiprows=9, ndmin=2)
    assert dump.shape[0] == n
    assert np.array_equal(dump[:, 0], np.arange(1, n + 1))
    return LammpsResult(
        energy=pe,
        energies=dump[:, 4],
        forces=dump[:, 1:4] @ rot.T,
        virial=rot @ w @ rot.T,
    )
