"""One active-learning iteration for the shipped Li–P–S committee (how ``train_al1.extxyz`` was made).

explore → select → label, then fine-tune with ``ssehpc train`` (``committee_v2.train.yaml``):

1. **explore**: Langevin melts of a 192-atom β-Li₃PS₄ cell (the 75Li₂S–25P₂S₅ composition) driven
   by the current committee, 1 fs steps, a frame every 20 steps with the committee deviation
   ``max_i ε_i``; a run stops at a deviation above 2 eV/Å or when it explodes.
2. **select**: frames above ``trust_hi`` = 0.15 eV/Å (and below 5 eV/Å, no atoms closer than 1 Å:
   the teacher must see a physical configuration), at most ``--cap`` per run, evenly spaced.
3. **label**: CHGNet through :class:`ssehpc.ml.labeler.Labeler` (needs ``ssehpc[teacher]``).

Iteration 1 (lips-v1 → lips-v2) used seeds 11 and 13 at 1000 K (8,000 steps) and 12 and 14 at
1100 K (6,000 steps), caps 64/64/48/64::

    python examples/active_learning_lips.py --model lips-v1 --runs 11:1000:8000 12:1100:6000 \\
        13:1000:8000 14:1100:8000 --caps 64 64 48 64 --out al1
    cat al1/label_*.extxyz > ssehpc/data/lips/train_al1.extxyz

The campaign-level loop is ``ssehpc learn`` (explore on Dask, screen the store, label, retrain,
repeat; ``docs/learning.md``, ``examples/learn_lips.yaml``); this script is the by-hand version
of one iteration that made ``train_al1.extxyz``.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import ase.io
import numpy as np
import torch

from ssehpc import thermo
from ssehpc.builders import supercell
from ssehpc.forces import ForceCompute, NonFiniteError
from ssehpc.integrators import make_integrator
from ssehpc.io.structure import atoms_to_state
from ssehpc.parallel.domain import SerialDomain
from ssehpc.potentials import make_potential
from ssehpc.simulation import Simulation
from ssehpc.structures import lips

TRUST_HI = 0.15  # eV/Å


def start_structure(start: str, seed: int, forces: ForceCompute) -> ase.Atoms:
    """192 atoms of the 75Li₂S–25P₂S₅ composition: β-Li₃PS₄, or a random PS₄³⁻/Li⁺ packing
    (``glass``) relaxed by FIRE with the committee (at most 300 steps, fmax 0.5 eV/Å)."""
    if start == "beta":
        return supercell(lips.beta_li3ps4(), 192)
    if start != "glass":  # a structure file (e.g. a random packing relaxed by the teacher)
        return ase.io.read(start)
    atoms = lips.random_glass(0.75, 192, density=1.88, seed=seed)
    state = atoms_to_state(atoms, dtype=torch.float64, seed=seed)
    fire = make_integrator("fire", 1.0, fmax=0.5)
    sim = Simulation(state, forces, fire, [])
    for _ in range(30):  # at most 300 steps; FIRE stops moving a converged system
        sim.run(10)
        if bool(fire.converged.all()):
            break
    atoms.set_positions(state.positions.detach().numpy()[torch.argsort(state.tag).numpy()])
    atoms.wrap()
    return atoms


def explore(
    model: str, seed: int, temperature: float, steps: int, every: int = 20, start: str = "beta"
) -> list:
    """Frames (with ``info['al_dev_max']``, eV/Å) of a committee-driven melt."""
    forces = ForceCompute(make_potential("mlff", model=model, compile=True), skin=1.0)
    atoms = start_structure(start, seed, forces)
    state = atoms_to_state(atoms, dtype=torch.float64, seed=seed)
    thermo.maxwell_boltzmann(state, SerialDomain(), temperature)
    integ = make_integrator("langevin", 1.0, temperature=temperature, damping=100.0)
    forces.compute(state)
    integ.attach(state, forces)
    frames = []
    try:
        for k in range(steps):
            integ.step_one(state, forces)
            forces.compute(state, extras=(k % every == every - 1))
            integ.step_two(state, forces)
            state.step += 1
            if k % every == every - 1:
                dev = float(forces.extras["force_dev_max"][0])
                snap = atoms.copy()
                snap.set_positions(state.positions.detach().numpy()[torch.argsort(state.tag).numpy()])
                snap.wrap()
                snap.info.update(
                    al_seed=seed, al_T=temperature, al_step=state.step, al_dev_max=dev, al_start=start
                )
                frames.append(snap)
                if dev > 2.0:
                    break
    except NonFiniteError as exc:
        print(f"seed {seed}: exploded: {exc}", file=sys.stderr)
    devs = np.array([f.info["al_dev_max"] for f in frames])
    print(
        f"seed {seed} T {temperature} K: {len(frames)} frames to step {state.step}, "
        f"deviation median {np.median(devs):.3f} max {devs.max():.3f} eV/Å"
    )
    return frames


def select(frames: list, cap: int) -> list:
    cand = [f for f in frames if TRUST_HI < f.info["al_dev_max"] < 5.0 and lips.min_distance(f) > 1.0]
    idx = sorted(set(np.linspace(0, len(cand) - 1, min(cap, len(cand))).round().astype(int)))
    return [cand[k] for k in idx] if cand else []


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="lips")
    p.add_argument("--runs", nargs="+", default=["11:1000:8000"], help="seed:temperature_K:steps")
    p.add_argument("--caps", nargs="+", type=int, default=[64])
    p.add_argument("--out", type=Path, default=Path("al"))
    p.add_argument(
        "--start",
        default="beta",
        help="beta (β-Li₃PS₄), glass (a random packing relaxed by the model), or a structure file",
    )
    p.add_argument("--no-label", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    caps = args.caps if len(args.caps) == len(args.runs) else [args.caps[0]] * len(args.runs)
    labeler = None
    if not args.no_label:
        from ssehpc.ml.labeler import Labeler

        warnings.filterwarnings("ignore")
        labeler = Labeler.chgnet(num_threads=1)
    for run, cap in zip(args.runs, caps, strict=True):
        seed, temperature, steps = run.split(":")
        frames = explore(args.model, int(seed), float(temperature), int(steps), start=args.start)
        if not frames:
            continue
        ase.io.write(args.out / f"explore_{seed}.extxyz", frames, format="extxyz")
        picked = select(frames, cap)
        for a in picked:
            a.info.update(
                phase="glass-x0.75",
                origin="al-melt",
                config_type="glass-x0.75/al-melt",
                temperature_K=a.info["al_T"],
            )
        print(f"seed {seed}: {len(picked)} frames selected")
        if labeler is not None and picked:
            labeler.label(picked, out=args.out / f"label_{seed}.extxyz", log_every=0)


if __name__ == "__main__":
    main()
