"""How local is the teacher?  Move only atoms far from a centre and watch its forces near it.

A strictly local student (atomic energies with cutoff ``rc``) has forces that depend on atoms within
``2 rc`` only.  So when every atom farther than ``r_in + 2 rc`` from a centre is displaced (Gaussian,
``sigma`` Å per component) and the teacher's force on an atom within ``r_in`` of that centre changes,
that change is a part of the teacher no such student can represent: a floor under the student's
force error from locality alone.  The student's own change is printed next to it and must be 0.

Each frame is repeated into a supercell wide enough that the far shell exists (half its narrowest
width above ``r_in + 2 rc``); centres are drawn per element with a seeded generator.

Measured 2026-12-07 (``docs/mlff.md``, "Why more labels of this kind stopped helping"), the command below: CHGNet on six ``test_glass``
frames (1,536-atom supercells; 1,160–1,180 atoms displaced), rc = 5 Å, 126 atoms compared: |ΔF|
median / max 0.19 / 0.88 (Li), 0.63 / 2.40 (P), 0.38 / 1.54 (S) meV/Å, the student's 0 — the teacher
is local at the student's range, so its reach is not what limits ``lips`` in the glass.

    OMP_NUM_THREADS=1 .venv/bin/python examples/teacher_locality.py \
        ssehpc/data/lips/test_glass.extxyz.xz --frames 1 4 11 28 36 54     # ~10 min on one core
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def repeats_for(atoms: Atoms, radius: float) -> tuple[int, int, int]:
    """Smallest repetition whose supercell has half its narrowest width above ``radius`` (Å)."""
    cell = np.asarray(atoms.cell)
    vol = abs(np.linalg.det(cell))
    widths = [vol / np.linalg.norm(np.cross(cell[(k + 1) % 3], cell[(k + 2) % 3])) for k in range(3)]
    return tuple(max(1, math.floor(2.0 * radius / w) + 1) for w in widths)


def far_field_response(
    frames: Sequence[Atoms],
    teacher: Any,
    student: Any | None = None,
    *,
    rc: float,
    r_in: float = 2.6,
    sigma: float = 0.1,
    centres_per_element: int = 2,
    perturbations: int = 1,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """One row per (frame, centre, perturbation, atom within ``r_in`` of the centre).

    Args:
        frames: periodic frames.
        teacher: ASE calculator to probe.
        student: optional ASE calculator of a local model with cutoff ``rc`` (its change must be 0).
        rc: the student's cutoff, Å; atoms beyond ``r_in + 2 rc`` from the centre are displaced.
        r_in: Å, the atoms whose forces are compared.
        sigma: Å, standard deviation of the displacement per Cartesian component.

    Returns rows with ``frame``, ``centre``, ``atom``, ``Z``, ``n_far``, ``dF_teacher`` and
    ``dF_student`` (|ΔF| in eV/Å; the latter NaN without a student).
    """
    rng = np.random.default_rng(seed)
    r_out = r_in + 2.0 * rc
    rows: list[dict[str, Any]] = []

    def forces(atoms: Atoms, calc: Any) -> np.ndarray:
        a = atoms.copy()
        a.calc = calc
        return np.array(a.get_forces())

    for fi, small in enumerate(frames):
        if not all(small.pbc):
            raise ValueError(f"frame {fi}: the locality probe needs a periodic cell")
        sc = small.repeat(repeats_for(small, r_out))
        sc.calc = None
        f0 = forces(sc, teacher)
        s0 = forces(sc, student) if student is not None else None
        centres: list[int] = []
        for z in sorted(set(small.numbers.tolist())):
            idx = np.flatnonzero(small.numbers == z)  # centres in the first image
            centres += rng.choice(idx, size=min(centres_per_element, len(idx)), replace=False).tolist()
        for c in centres:
            d = sc.get_distances(c, range(len(sc)), mic=True)
            near, far = np.flatnonzero(d <= r_in), np.flatnonzero(d > r_out)
            for _ in range(perturbations):
                p = sc.copy()
                pos = p.get_positions()
                pos[far] += rng.normal(0.0, sigma, (len(far), 3))
                p.set_positions(pos)
                f1 = forces(p, teacher)
                s1 = forces(p, student) if student is not None else None
                rows.extend(
                    {
                        "frame": fi,
                        "centre": int(c),
                        "atom": int(i),
                        "Z": int(sc.numbers[i]),
                        "n_far": len(far),
                        "dF_teacher": float(np.linalg.norm(f1[i] - f0[i])),
                        "dF_student": float(np.linalg.norm(s1[i] - s0[i])) if s1 is not None else math.nan,
                    }
                    for i in near
                )
    return rows


def table(rows: Sequence[dict[str, Any]]) -> str:
    """Per element: atoms compared, teacher |ΔF| median / 90th percentile / max (meV/Å), student max."""
    from ase.data import chemical_symbols

    by: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by[r["Z"]].append(r)
    out = [
        "| element | atoms compared | teacher \\|ΔF\\| median / p90 / max (meV/Å) | student max (meV/Å) |",
        "|---|---:|---|---|",
    ]
    for z in sorted(by):
        t = np.array([r["dF_teacher"] for r in by[z]]) * 1e3
        s = np.array([r["dF_student"] for r in by[z]]) * 1e3
        smax = "–" if np.isnan(s).all() else f"{np.nanmax(s):.2g}"
        out.append(
            f"| {chemical_symbols[z]} | {len(t)} | {np.median(t):.2f} / {np.percentile(t, 90):.2f} / "
            f"{t.max():.2f} | {smax} |"
        )
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", help="frames (extxyz, any ASE-readable file)")
    p.add_argument("--frames", type=int, nargs="+", default=[0], help="indices in the file")
    p.add_argument("--teacher", default="chgnet", help="'chgnet' or 'module:factory' (an ASE calculator)")
    p.add_argument("--student", default="lips", help="ssehpc model whose cutoff sets rc ('' for none)")
    p.add_argument("--rc", type=float, default=None, help="Å (default: the student's cutoff)")
    p.add_argument("--r-in", type=float, default=2.6)
    p.add_argument("--sigma", type=float, default=0.1)
    p.add_argument("--centres", type=int, default=2, help="per element and frame")
    p.add_argument("--perturbations", type=int, default=1)
    p.add_argument("--seed", type=int, default=20261207)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)

    import torch

    from ssehpc.ml import SSEHPCCalculator
    from ssehpc.ml.data import read_frames
    from ssehpc.ml.labeler import Labeler
    from ssehpc.ml.learn import _import_factory
    from ssehpc.potentials import make_potential

    torch.set_num_threads(args.threads)
    all_frames = read_frames(args.file)
    frames = [all_frames[i] for i in args.frames]
    if args.teacher == "chgnet":
        teacher = Labeler.chgnet(num_threads=args.threads).calculator
    else:
        teacher = _import_factory(args.teacher)()
    student, rc = None, args.rc
    if args.student:
        pot = make_potential("mlff", model=args.student)
        student = SSEHPCCalculator(pot)
        rc = rc if rc is not None else float(pot.cutoff)
    if rc is None:
        p.error("--rc is needed without a student")
    rows = far_field_response(
        frames,
        teacher,
        student,
        rc=rc,
        r_in=args.r_in,
        sigma=args.sigma,
        centres_per_element=args.centres,
        perturbations=args.perturbations,
        seed=args.seed,
    )
    n_far = sorted({r["n_far"] for r in rows})
    print(
        f"\n## {Path(args.file).name}, frames {args.frames}: atoms beyond {args.r_in + 2 * rc:.1f} Å of a centre "
        f"displaced by {args.sigma} Å (σ per component; {n_far[0]}–{n_far[-1]} atoms), forces compared within "
        f"{args.r_in} Å\n"
    )
    print(table(rows))


if __name__ == "__main__":
    main()
