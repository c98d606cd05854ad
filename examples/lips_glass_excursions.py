"""Frame by frame: which atoms carry a glass's committee-deviation excursions, and are they wrong?

Reads the 600 K production run of a store made by ``examples/lips_glass_stability.yaml`` (one
chain per packing), and for every run prints

* the per-frame deviation ``max_i ε_i`` (eV/Å): median / p99 / max, the share of frames above
  ``trust_hi`` and the longest streak;
* for every frame above ``trust_hi`` (and a seeded sample of the others) the atom with the largest
  ``ε_i`` and its chemistry: ``P(S4)`` a PS₄ phosphorus, ``P(S3)`` / ``P(S2)`` an under-coordinated
  one, ``+P`` a P–P bond; ``S(P1)`` a terminal and ``S(P2)`` a bridging sulfur, ``S(P0+S)`` a
  sulfur in an S₂ unit and ``S(P0+S+S)`` the middle of an S₃ chain; ``Li(nn X d)`` a lithium with
  its nearest neighbour (bond cut-offs as ``ssehpc structure``: P–S, P–P 2.4 Å, S–S 2.3 Å);
* which committee member is the outlier on that atom (the one farthest from the others' mean).

With ``--out FILE`` it writes the frames it looked at — every excursion, 60 frames drawn uniformly
from those below ``trust_hi`` and 30 more from ``trust_lo``–``trust_hi`` — with their stratum and
deviation in ``info``, and ``--label`` labels them with the teacher (CHGNet, ``teacher`` extra).
That is how ``ssehpc/data/lips/test_glass.extxyz.xz`` was made (2026-12-07, glasses seeds 78 and
79 with ``lips``); ``examples/lips_trust_calibration.py --files test_glass.extxyz.xz`` then sets
the deviation against the true error.

    ssehpc campaign my_glass78.yaml          # lips_glass_stability.yaml with one packing
    OMP_NUM_THREADS=1 .venv/bin/python examples/lips_glass_excursions.py my_glass78.zarr \
        --out glass78.extxyz --label                                   # ~2-3 min per store
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from ase import Atoms
from ase.neighborlist import neighbor_list

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from lips_rescreen import longest_streak, production_runs

from ssehpc.ml import SSEHPCCalculator
from ssehpc.potentials import make_potential

SYMBOL = {3: "Li", 15: "P", 16: "S"}
BOND = {(15, 15): 2.4, (15, 16): 2.4, (16, 16): 2.3}  # Å, the defaults of ssehpc.analysis.structure


def environment(atoms: Atoms, i: int) -> str:
    """Chemistry of atom ``i``: ``P(S4)``, ``P(S3+P)``, ``S(P1)``, ``S(P0+S)``, ``Li(nn S 2.31)``."""
    z = atoms.numbers
    ii, jj, dd = neighbor_list("ijd", atoms, 3.0)
    m = ii == i
    j, d = jj[m], dd[m]
    if z[i] == 3:
        if not len(d):
            return "Li(isolated)"
        k = int(np.argmin(d))
        return f"Li(nn {SYMBOL[int(z[j[k]])]} {d[k]:.2f})"
    bonded = [
        int(z[a])
        for a, b in zip(j, d, strict=True)
        if z[a] != 3 and b < BOND[tuple(sorted((int(z[i]), int(z[a]))))]
    ]
    n_p, n_s = bonded.count(15), bonded.count(16)
    if z[i] == 15:
        return f"P(S{n_s}{'+P' * n_p})"
    return f"S(P{n_p}{'+S' * n_s})"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stores", nargs="+")
    p.add_argument("--model", default="lips")
    p.add_argument("--trust-lo", type=float, default=0.10, help="eV/Å")
    p.add_argument("--trust-hi", type=float, default=0.25, help="eV/Å")
    p.add_argument("--out", help="write the frames looked at (extxyz)")
    p.add_argument("--label", action="store_true", help="label them with the teacher (CHGNet)")
    p.add_argument("--seed", type=int, default=20261207)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    calc = SSEHPCCalculator(make_potential("mlff", model=args.model))
    rng = np.random.default_rng(args.seed)
    lo, hi = args.trust_lo, args.trust_hi
    picked: list[Atoms] = []
    for store in args.stores:
        for run in production_runs(store, "prod"):
            data = run.read_frames(fields=["force_dev_max", "positions", "cell"])
            dev = np.asarray(data["force_dev_max"], dtype=np.float64)[:, 0]
            z = run.read_static("species")
            above = np.flatnonzero(dev >= hi)
            print(
                f"\n## {store} {run.run_id}: {len(dev)} frames; max_i eps_i median / p99 / max "
                f"{np.median(dev):.3f} / {np.percentile(dev, 99):.3f} / {dev.max():.3f} eV/A; "
                f">= {hi}: {len(above)} ({100 * len(above) / len(dev):.2f} %, longest "
                f"{longest_streak(above)} in a row); >= {lo}: {100 * np.mean(dev >= lo):.0f} %"
            )
            stratum = {}
            below = np.flatnonzero(dev < hi)
            for f in rng.choice(below, size=min(60, len(below)), replace=False):
                stratum[int(f)] = "uniform"
            tail = np.array([f for f in np.flatnonzero((dev >= lo) & (dev < hi)) if int(f) not in stratum])
            for f in rng.choice(tail, size=min(30, len(tail)), replace=False) if len(tail) else []:
                stratum[int(f)] = "tail"
            for f in above:
                stratum[int(f)] = "excursion"
            worst: dict[str, Counter] = {"excursion": Counter(), "uniform": Counter(), "tail": Counter()}
            outlier: dict[str, Counter] = {"excursion": Counter(), "uniform": Counter()}
            print(
                "| frame | max_i eps_i (eV/A) | atom with the largest eps_i | outlier member |\n|---|---|---|---|"
            )
            for f in sorted(stratum):
                a = Atoms(numbers=z, positions=data["positions"][f], cell=data["cell"][f][0], pbc=True)
                a.wrap()
                b = a.copy()
                b.calc = calc
                b.get_forces()
                eps = calc.results["force_dev"]
                members = calc.forces.extras["member_forces"].detach().cpu().double().numpy()  # [n, K, 3]
                i = int(np.argmax(eps))
                env = environment(a, i)
                k = int(
                    np.argmax(
                        [
                            np.linalg.norm(members[i, m] - np.delete(members[i], m, 0).mean(0))
                            for m in range(members.shape[1])
                        ]
                    )
                )
                s = stratum[f]
                worst[s]["Li" if env.startswith("Li") else env] += 1
                if s in outlier:
                    outlier[s][k] += 1
                if s == "excursion":
                    print(f"| {f} | {dev[f]:.3f} | {env} | {k} |")
                a.info.update(
                    stratum=s,
                    frame=f,
                    run=run.run_id,
                    force_dev_max=round(float(dev[f]), 5),
                    worst_atom=i,
                    worst_env=env.replace(" ", "_"),
                )
                picked.append(a)
            for s, c in worst.items():
                print(f"atom with the largest eps_i, {s} frames: {dict(c.most_common())}")
            for s, c in outlier.items():
                print(f"outlier member, {s} frames: {dict(sorted(c.items()))}")
    if args.out:
        from ase.io import write

        if args.label:
            from ssehpc.ml.labeler import Labeler

            lab = Labeler.chgnet(num_threads=args.threads)
            picked = [lab.label_one(a, index=k) for k, a in enumerate(picked)]
        write(args.out, picked)
        print(f"\nwrote {len(picked)} frames to {args.out}{' (teacher-labelled)' if args.label else ''}")


if __name__ == "__main__":
    main()
