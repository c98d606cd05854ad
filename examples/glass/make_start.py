"""The start of the 75Li₂S–25P₂S₅ glass campaign (``examples/glass_lips.yaml``).

A random packing of 24 PS₄³⁻ and 72 Li⁺ in a cubic box at 1.88 g/cm³
(:func:`ssehpc.structures.lips.random_glass`, seed 33), relaxed by the teacher (CHGNet, ASE FIRE,
``maxstep`` 0.1 Å, 200 steps or max |F| < 0.1 eV/Å), written as extxyz.  The teacher relaxes it,
not the committee: a raw packing is outside the committee's data (member disagreement 0.8–1.4 eV/Å)
and relaxing it with ``lips`` pulls a Li pair to 0.70 Å (docs/mlff.md).  Needs ``ssehpc[teacher]``.

    python examples/glass/make_start.py --seed 33 --out examples/glass/lps75_random_s33_chgnet.extxyz

Shipped result: 55 s on 2 threads, energy −823.7 → −875.0 eV (CHGNet), max |F| 0.73 eV/Å after the
200 steps.

``--rescale FILE`` only scales FILE's cell and positions isotropically to ``--density`` (no teacher
needed), e.g. the start of the melt at the model's own glass density (``examples/glass_lips_mq.yaml``)::

    python examples/glass/make_start.py --rescale examples/glass/lps75_random_s33_chgnet.extxyz \
        --density 1.66 --out examples/glass/lps75_random_s33_chgnet_d1.66.extxyz
"""

from __future__ import annotations

import argparse
import time
import warnings

import ase.io
import numpy as np
import torch
from ase.optimize import FIRE

from ssehpc.ml.labeler import Labeler
from ssehpc.structures import lips


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--x", type=float, default=0.75, help="Li2S fraction")
    p.add_argument("--atoms", type=int, default=192)
    p.add_argument("--density", type=float, default=1.88, help="g/cm3")
    p.add_argument("--seed", type=int, default=33)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="lps75_random_s33_chgnet.extxyz")
    p.add_argument("--rescale", metavar="FILE", help="only rescale FILE isotropically to --density")
    args = p.parse_args(argv)
    if args.rescale:
        atoms = ase.io.read(args.rescale)
        density = atoms.get_masses().sum() * 1.66053907 / atoms.get_volume()  # g/cm³
        atoms.set_cell(atoms.cell * (density / args.density) ** (1.0 / 3.0), scale_atoms=True)
        atoms.info["source"] = (
            f"{atoms.info.get('source', args.rescale)}, rescaled {density:.3f} -> {args.density} g/cm3"
        )
        ase.io.write(args.out, atoms, format="extxyz")
        print(f"{args.rescale}: {density:.3f} -> {args.density} g/cm³, written {args.out}")
        return
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    atoms = lips.random_glass(args.x, args.atoms, density=args.density, seed=args.seed)
    atoms.calc = Labeler.chgnet(num_threads=args.threads).calculator
    e0 = atoms.get_potential_energy()
    t0 = time.perf_counter()
    FIRE(atoms, logfile=None, maxstep=0.1).run(fmax=0.1, steps=args.steps)
    e1, fmax = atoms.get_potential_energy(), float(np.abs(atoms.get_forces()).max())
    print(f"{time.perf_counter() - t0:.0f} s: E {e0:.2f} -> {e1:.2f} eV (CHGNet), max |F| {fmax:.3f} eV/Å")
    atoms.calc = None
    atoms.info.update(source=f"random_glass(x={args.x}, seed={args.seed}) + CHGNet FIRE {args.steps} steps")
    ase.io.write(args.out, atoms, format="extxyz")


if __name__ == "__main__":
    main()
