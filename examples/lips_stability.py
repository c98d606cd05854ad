"""MD stability of the shipped Li–P–S committee (``lips``): 100 ps NVT at 600 K.

Two systems (issue 3, "MD stability"):

* **β-Li₃PS₄**, a 192-atom supercell of the cited structure: 100 ps Langevin NVT at 600 K.
* **75Li₂S–25P₂S₅ glass**, 192 atoms, here the quick route: melt the crystal (20 ps at 1000 K),
  10 ps at 600 K, then the same 100 ps.  ``--glass-start random`` starts from a random packing of
  PS₄³⁻ and Li⁺ at 1.88 g/cm³ instead.  The melt-quenched glass of issue 7 (30 ps melt at
  1000–1200 K, 90 ps quench, NPT) is made by ``examples/glass_lips_melt.yaml``, and its 100 ps at
  500 / 600 / 700 K by ``examples/glass_lips_melt_T.yaml``, with the same per-frame deviation in
  the store (``docs/mlff.md``).

Every stage goes to its own run group of one Zarr store (frames every ``--write-interval`` steps,
with the committee's per-frame force deviation ``force_dev_max`` / ``force_dev_mean``), and a
JSON summary is written next to the store: temperature, the largest force deviation of any frame
and the fraction of frames above the trust levels, the smallest interatomic distance, and the
thiophosphate units at the end (all PS₄ in both systems if the model holds the chemistry).

    .venv/bin/python examples/lips_stability.py --out /tmp/stability           # both, ~35 min
    .venv/bin/python examples/lips_stability.py --system beta --ps 10           # a quick look

Trust levels (eV/Å) on the largest per-atom committee deviation of a frame, ``max_i ε_i``: the
calibrated levels of ``lips`` (``docs/mlff.md``): below ``trust_lo`` = 0.10 the frame is
*accurate*, above ``trust_hi`` = 0.25 it is *failed*.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ssehpc import thermo
from ssehpc.builders import supercell
from ssehpc.forces import ForceCompute
from ssehpc.integrators import make_integrator
from ssehpc.io.structure import atoms_to_state
from ssehpc.io.zarr_store import COMMITTEE_FRAME_FIELDS, ZarrStore
from ssehpc.parallel.domain import SerialDomain
from ssehpc.potentials import make_potential
from ssehpc.simulation import CheckpointWriter, Periodic, Simulation, ThermoLog, ZarrFrameWriter
from ssehpc.structures import lips

TRUST_LO, TRUST_HI = 0.10, 0.25  # eV/Å, the calibrated levels of lips (docs/mlff.md)


def state_to_atoms(state, symbols_from):
    atoms = symbols_from.copy()
    order = torch.argsort(state.tag).cpu().numpy()
    atoms.set_cell(state.cell[0].detach().cpu().numpy())
    atoms.set_positions(state.positions.detach().cpu().numpy()[order])
    atoms.wrap()
    return atoms


def stage(store, run_id, state, forces, temperature, ps, args, log):
    """Langevin NVT for ``ps`` picoseconds; returns per-frame arrays of the stage."""
    steps = round(ps * 1000 / args.dt)
    integ = make_integrator("langevin", args.dt, temperature=temperature, damping=args.damping)
    run = store.create_run(
        run_id,
        state,
        {
            "ensemble": "langevin",
            "temperature_K": temperature,
            "dt_fs": args.dt,
            "steps": state.step + steps,
            "potential": {"name": "mlff", "params": {"model": args.model}},
            "seed": args.seed,
            "write_interval": args.write_interval,
        },
        overwrite=True,
        extra_frame_fields=COMMITTEE_FRAME_FIELDS,
    )
    ops = [
        ZarrFrameWriter(run, Periodic(args.write_interval)),
        ThermoLog(Periodic(max(args.write_interval, steps // 20)), stream=log),
        CheckpointWriter(run, Periodic(max(args.write_interval, steps // 4))),
    ]
    forces.invalidate()
    sim = Simulation(state, forces, integ, ops, store=run)
    t0 = time.perf_counter()
    sim.run(steps)
    wall = time.perf_counter() - t0
    n = run.n_frames
    out = {
        "run": run_id,
        "temperature_target_K": temperature,
        "ps": ps,
        "steps": steps,
        "wall_s": round(wall, 1),
        "atom_steps_per_s": round(state.n_atoms * steps / wall, 1),
        "frames": n,
    }
    arrays = {
        name: np.asarray(run.group[name][:n])
        for name in ("temperature_K", "energy_eV", "force_dev_max", "force_dev_mean")
    }
    return sim.state, out, arrays


def summarise(out, arrays, skip_frac=0.1):
    n = len(arrays["temperature_K"])
    s = slice(int(n * skip_frac), n)
    t = arrays["temperature_K"][s].ravel()
    dmax = arrays["force_dev_max"].ravel()
    dmean = arrays["force_dev_mean"].ravel()
    out.update(
        {
            "T_mean_K": round(float(t.mean()), 2),
            "T_std_K": round(float(t.std()), 2),
            "force_dev_max_eV_A": {
                "max": round(float(dmax.max()), 4),
                "p99": round(float(np.percentile(dmax, 99)), 4),
                "median": round(float(np.median(dmax)), 4),
            },
            "force_dev_mean_eV_A_median": round(float(np.median(dmean)), 4),
            "frames_accurate_fraction": round(float((dmax < TRUST_LO).mean()), 4),
            "frames_failed_fraction": round(float((dmax > TRUST_HI).mean()), 4),
            "energy_eV_first_last": [
                round(float(arrays["energy_eV"].ravel()[0]), 3),
                round(float(arrays["energy_eV"].ravel()[-1]), 3),
            ],
        }
    )
    return out


def structure_report(atoms):
    units = lips.thiophosphate_units(atoms)
    return {
        "min_distance_A": round(float(lips.min_distance(atoms)), 3),
        "min_P_S_A": round(float(lips.min_distance(atoms, ("P", "S"))), 3),
        "min_Li_Li_A": round(float(lips.min_distance(atoms, ("Li", "Li"))), 3),
        "units": {str(k): int(v) for k, v in units.items()},
        "density_g_cm3": round(float(lips.density(atoms)), 3),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("lips_stability"))
    p.add_argument("--system", choices=["beta", "glass", "both"], default="both")
    p.add_argument("--model", default="lips")
    p.add_argument("--ps", type=float, default=100.0, help="production length at 600 K, ps")
    p.add_argument("--melt-ps", type=float, default=20.0)
    p.add_argument("--equil-ps", type=float, default=10.0)
    p.add_argument("--temperature", type=float, default=600.0)
    p.add_argument("--melt-temperature", type=float, default=1000.0)
    p.add_argument("--dt", type=float, default=1.0, help="fs")
    p.add_argument("--damping", type=float, default=100.0, help="Langevin damping time, fs")
    p.add_argument("--atoms", type=int, default=192)
    p.add_argument("--glass-start", choices=["crystal", "random"], default="crystal")
    p.add_argument("--write-interval", type=int, default=100)
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-compile", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    systems = ["beta", "glass"] if args.system == "both" else [args.system]
    pot = make_potential("mlff", model=args.model, compile=not args.no_compile)
    for name in systems:
        log = open(args.out / f"{name}.log", "w")  # noqa: SIM115
        if name == "beta" or args.glass_start == "crystal":
            atoms = supercell(lips.beta_li3ps4(), args.atoms)
        else:
            atoms = lips.random_glass(0.75, n_atoms_target=args.atoms, density=1.88, seed=args.seed)
        summary = {
            "system": name,
            "n_atoms": len(atoms),
            "formula": atoms.get_chemical_formula(),
            "model": args.model,
            "dt_fs": args.dt,
            "damping_fs": args.damping,
            "trust_lo_eV_A": TRUST_LO,
            "trust_hi_eV_A": TRUST_HI,
            "initial": structure_report(atoms),
            "stages": [],
        }
        state = atoms_to_state(atoms, dtype=torch.float64, seed=args.seed)
        thermo.maxwell_boltzmann(
            state, SerialDomain(), args.melt_temperature if name == "glass" else args.temperature
        )
        forces = ForceCompute(pot, skin=1.0)
        forces.check(state)
        store = ZarrStore.open(args.out / f"{name}.zarr", "a")
        plan = [("nvt600", args.temperature, args.ps)]
        if name == "glass":
            plan = [
                ("melt", args.melt_temperature, args.melt_ps),
                ("equil", args.temperature, args.equil_ps),
                *plan,
            ]
        for run_id, temperature, ps in plan:
            state, out, arrays = stage(store, run_id, state, forces, temperature, ps, args, log)
            out = summarise(out, arrays)
            out["final"] = structure_report(state_to_atoms(state, atoms))
            summary["stages"].append(out)
            print(json.dumps(out), flush=True)
        (args.out / f"{name}.summary.json").write_text(json.dumps(summary, indent=1))
        log.close()


if __name__ == "__main__":
    main()
