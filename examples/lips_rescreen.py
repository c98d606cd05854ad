"""Several committees on the same frames: a paired comparison of the glass's deviation tail.

How often a committee's deviation ``max_i ε_i`` goes above ``trust_hi`` in an MD run depends on
the packing (13-fold between unseen glasses with one committee) and on the noise seed (1.5-2×
from one glass state), so two committees each run on their own trajectories cannot be told apart
by a few runs.  This script evaluates every committee given on *the same stored frames* — the
production runs of one or more stores (e.g. made by ``examples/lips_glass_stability.yaml``) —
and prints, per run and committee, the per-frame ``max_i ε_i`` median / p99 / max (eV/Å), the
frames at or above ``trust_hi`` and the longest streak, then the pooled numbers.  The frames were
made by whatever committee drove the run; a committee trained on frames of these packings is not
measured on unseen data here (the script does not check that).

    OMP_NUM_THREADS=1 .venv/bin/python examples/lips_rescreen.py glass78.zarr glass79.zarr \
        --models lips lips-v8 my_committee.pt --stride 2          # ~1 min per 1,000 frames, model
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from ase import Atoms

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ssehpc.io.zarr_store import ZarrStore
from ssehpc.ml import SSEHPCCalculator
from ssehpc.potentials import make_potential


def production_runs(store: str, stage: str):
    zs = ZarrStore.open(store, "r")
    runs = [r for r in zs.runs if r.endswith(f"_{stage}")]  # <system>_T<K>_r<replica>_<stage>
    if not runs:
        raise SystemExit(f"{store}: no {stage!r} run among {zs.runs}")
    return [zs.run(r) for r in runs]


def frame_deviation(calc: SSEHPCCalculator, z: np.ndarray, pos: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """``max_i ε_i`` (eV/Å) of every frame, one frame at a time (the MD code path, ForceCompute)."""
    out = np.empty(len(pos))
    atoms = Atoms(numbers=z, positions=pos[0], cell=cells[0], pbc=True)
    atoms.calc = calc
    for f in range(len(pos)):
        atoms.set_cell(cells[f])
        atoms.set_positions(pos[f])
        atoms.get_forces()
        out[f] = calc.results["force_dev_max"]
    return out


def longest_streak(above: np.ndarray) -> int:
    """Most consecutive frames among the sorted frame indices ``above`` (0 if none)."""
    if not len(above):
        return 0
    return max(len(s) for s in np.split(above, np.flatnonzero(np.diff(above) > 1) + 1))


def summary(dev: np.ndarray, hi: float) -> str:
    above = np.flatnonzero(dev >= hi)
    return (
        f"{np.median(dev):.3f} / {np.percentile(dev, 99):.3f} / {dev.max():.3f} | "
        f"{len(above)} ({100 * len(above) / len(dev):.2f} %) | {longest_streak(above)}"
    )


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stores", nargs="+")
    p.add_argument("--models", nargs="+", default=["lips"], help="shipped names or .pt files")
    p.add_argument("--stage", default="prod", help="the stage whose runs are read")
    p.add_argument("--stride", type=int, default=1, help="every n-th frame")
    p.add_argument("--trust-hi", type=float, default=0.25, help="eV/Å")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    calcs = {m: SSEHPCCalculator(make_potential("mlff", model=m, compile=True)) for m in args.models}
    pooled: dict[str, list[np.ndarray]] = {m: [] for m in args.models}
    print(
        "| run | frames | committee | max_i eps_i median / p99 / max (eV/A) | frames >= trust_hi | longest streak |"
    )
    print("|---|---|---|---|---|---|")
    for store in args.stores:
        for run in production_runs(store, args.stage):
            data = run.read_frames(fields=["positions", "cell"])
            z = np.asarray(run.read_static("species"))
            pos = np.asarray(data["positions"])[:: args.stride]
            cells = np.asarray(data["cell"])[:: args.stride, 0]
            for m, calc in calcs.items():
                dev = frame_deviation(calc, z, pos, cells)
                pooled[m].append(dev)
                print(
                    f"| {Path(store).name} {run.run_id} | {len(dev)} | {m} | {summary(dev, args.trust_hi)} |"
                )
    if len(pooled[args.models[0]]) > 1:  # more than one run: the pooled numbers too
        for m, devs in pooled.items():
            dev = np.concatenate(devs)
            print(f"| all | {len(dev)} | {m} | {summary(dev, args.trust_hi)} |")


if __name__ == "__main__":
    main()
