"""Scratch: which MomentPotential architecture, for accuracy *and* speed (numbers in docs/mlff.md).

1. builds a small Li–P–S set (β-Li3PS4, γ-Li3PS4, Li2S, Li4P2S6, random 75Li2S–25P2S5
   glass packings, Li vacancies; rattled 0.02–0.12 Å, strained ±4 %), labelled by CHGNet
   (cached as extxyz);
2. trains each variant for the same number of epochs on the same split;
3. times each variant in ssehpc MD force evaluations (ForceCompute, float32, one thread, CPU time
   so that a loaded machine does not distort the comparison) on a ~200-atom β-Li3PS4 cell, K = 1
   and K = 4, and CHGNet on the same cell.

    .venv/bin/python bench/experiments/mlff_variants.py --data /tmp/lips_chgnet.extxyz --epochs 60
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import ase.io
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ssehpc.forces import ForceCompute
from ssehpc.ml.committee import Committee
from ssehpc.ml.data import atoms_to_state
from ssehpc.ml.model import ModelSpec, MomentPotential
from ssehpc.ml.train import TrainConfig, train

VARIANTS = {
    # DeepPot-SE-like: radial + vector Gram (3-body), weights per element pair
    "l1-gram-c16-pair": {
        "lmax": 1,
        "contraction": "gram",
        "channels": 16,
        "four_body": False,
        "mixing": "pair",
    },
    "l2-cw-c16": {"lmax": 2, "contraction": "channelwise", "channels": 16, "four_body": False},
    "l2-cw-c16-4b": {"lmax": 2, "contraction": "channelwise", "channels": 16, "four_body": True},
    "l2-cw-c16-4b-pair": {
        "lmax": 2,
        "contraction": "channelwise",
        "channels": 16,
        "four_body": True,
        "mixing": "pair",
    },
    "l2-gram-c8-4b-pair": {
        "lmax": 2,
        "contraction": "gram",
        "channels": 8,
        "four_body": True,
        "mixing": "pair",
    },
    "l3-cw-c16-4b": {"lmax": 3, "contraction": "channelwise", "channels": 16, "four_body": True},
    "l2-cw-c32-4b": {"lmax": 2, "contraction": "channelwise", "channels": 32, "four_body": True},
    "l2-gram-c8-4b": {"lmax": 2, "contraction": "gram", "channels": 8, "four_body": True},
    "l2-gram-c12-4b": {"lmax": 2, "contraction": "gram", "channels": 12, "four_body": True},
    "l3-gram-c8-4b": {"lmax": 3, "contraction": "gram", "channels": 8, "four_body": True},
}


def build_frames(seed: int = 0) -> list:
    from ssehpc.structures import lips

    rng = np.random.default_rng(seed)
    bases = []
    for name, target in (("beta-Li3PS4", 48), ("gamma-Li3PS4", 48), ("Li2S", 48), ("Li4P2S6", 40)):
        bases += [(name, lips.supercell(lips.prototype(name), target))] * (
            40 if name == "beta-Li3PS4" else 20
        )
    for k in range(30):
        bases.append(("glass75", lips.random_glass(0.75, 56, seed=k)))
    for k in range(15):
        bases.append(
            ("beta_vac", lips.li_vacancies(lips.supercell(lips.prototype("beta-Li3PS4"), 48), 3, seed=k))
        )
    frames = []
    for k, (name, atoms) in enumerate(bases):
        a = lips.strained(atoms, rng.uniform(-0.04, 0.04, 6) * np.array([1, 1, 1, 0.5, 0.5, 0.5]))
        a = lips.rattled(a, float(rng.uniform(0.02, 0.12)), seed=k)
        a.info["config"] = name
        frames.append(a)
    return frames


def label_chgnet(frames: list) -> tuple[list, float]:
    from ase.calculators.singlepoint import SinglePointCalculator
    from chgnet.model import CHGNet
    from chgnet.model.dynamics import CHGNetCalculator

    calc = CHGNetCalculator(CHGNet.load(verbose=False), use_device="cpu")
    t0 = time.process_time()
    n = 0
    for a in frames:
        a.calc = calc
        e, f, s = a.get_potential_energy(), a.get_forces(), a.get_stress()
        a.calc = SinglePointCalculator(a, energy=e, forces=f, stress=s)
        n += len(a)
    return frames, n / (time.process_time() - t0)


def cpu_time_per_call(fn: callable, n: int = 10, rep: int = 5) -> float:
    fn()
    best = float("inf")
    for _ in range(rep):
        t0 = time.process_time()
        for _ in range(n):
            fn()
        best = min(best, (time.process_time() - t0) / n)
    return best


def md_cell() -> object:
    from ssehpc.structures import lips

    return lips.rattled(lips.supercell(lips.prototype("beta-Li3PS4"), 200), 0.05, seed=1)


def speed(kwargs: dict, atoms: object, *, compiled: bool = False, rounds: int = 6) -> dict[str, float]:
    """atom-steps per CPU-second of ForceCompute for K = 1 and K = 4, timed interleaved (min over
    rounds) so that load changes hit both alike."""
    runs = {}
    for k in (1, 4):
        spec = ModelSpec(species=(3, 15, 16), cutoff=5.0, n_members=k, **kwargs)
        model = (Committee(spec) if k > 1 else MomentPotential(spec)).requires_grad_(False)
        if compiled:
            model.compile_inference()
        st = atoms_to_state(atoms, dtype=torch.float32)
        fc = ForceCompute(model, skin=1.0)
        fc.compute(st)
        runs[k] = (fc, st)
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(rounds):
        for k, (fc, st) in runs.items():
            best[k] = min(best[k], cpu_time_per_call(lambda fc=fc, st=st: fc.compute(st), n=10, rep=1))
    return {"K1": len(atoms) / best[1], "K4": len(atoms) / best[4], "K4_over_K1": best[4] / best[1]}


def chgnet_speed(atoms: object) -> float:
    from chgnet.model import CHGNet
    from chgnet.model.dynamics import CHGNetCalculator

    a = atoms.copy()
    a.calc = CHGNetCalculator(CHGNet.load(verbose=False), use_device="cpu")

    def step() -> None:
        a.positions += 1e-3
        a.get_forces()

    return len(a) / cpu_time_per_call(step, n=2, rep=3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="/tmp/lips_chgnet.extxyz")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--patience", type=int, default=30)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument(
        "--compiled", action="store_true", help="also time torch.compile-d kernels (slow to start)"
    )
    ap.add_argument("--out", default="/tmp/mlff_variants.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    path = Path(args.data)
    if not path.exists():
        frames, rate = label_chgnet(build_frames())
        ase.io.write(path, frames, format="extxyz")
        print(f"labelled {len(frames)} frames with CHGNet at {rate:.0f} atom-evals/CPU-s -> {path}")
    frames = ase.io.read(path, index=":")
    cell = md_cell()
    results = {"load_average": os.getloadavg(), "md_cell_atoms": len(cell), "variants": {}}
    results["chgnet_atom_steps_per_cpu_s"] = chgnet_speed(cell)
    print(f"CHGNet on {len(cell)} atoms: {results['chgnet_atom_steps_per_cpu_s']:.0f} atom-steps/CPU-s")
    for name in args.variants.split(","):
        kw = {"hidden": (64, 64), **VARIANTS[name]}
        sp = speed(kw, cell)
        row = {
            "atom_steps_per_cpu_s_K1": sp["K1"],
            "atom_steps_per_cpu_s_K4": sp["K4"],
            "K4_over_K1": sp["K4_over_K1"],
        }
        row["n_features"] = ModelSpec(species=(3,), **kw).n_features
        if args.compiled:
            spc = speed(kw, cell, compiled=True)
            row.update(
                {"compiled_K1": spc["K1"], "compiled_K4": spc["K4"], "compiled_K4_over_K1": spc["K4_over_K1"]}
            )
        if not args.skip_train:
            cfg = TrainConfig(
                data=[str(path)],
                cutoff=5.0,
                **{**kw, "hidden": list(kw["hidden"])},
                epochs=args.epochs,
                patience=40,
                seed=0,
                batch_size=4,
                log_every=0,
                validation_fraction=0.15,
            )
            t0 = time.process_time()
            rep = train(cfg, frames=frames).report
            row["train_cpu_s"] = time.process_time() - t0
            row["epochs_run"] = rep["epochs_run"]
            row["val_energy_mae_meV_atom"] = rep["validation"]["energy_meV_per_atom"]["mae"]
            row["val_force_mae_meV_A"] = rep["validation"]["forces_meV_per_A"]["mae"]
            row["val_force_mae_per_element"] = {
                k: v["mae"] for k, v in rep["validation"]["forces_per_element_meV_per_A"].items()
            }
        results["variants"][name] = row
        print(name, json.dumps(row), flush=True)
    Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
