"""LJ argon, NVE: ssehpc against LAMMPS in one invocation.

System (metal units, the classic LAMMPS ``bench/in.lj`` in argon units): fcc argon, a = 5.26 Å,
``n³`` cubic cells (4 n³ atoms; default 20³ → 32,000 atoms), ε = 0.0104 eV, σ = 3.405 Å,
r_c = 8.5 Å with the energy shifted to zero at the cutoff, m = 39.948 amu, velocities drawn at
100 K by ssehpc (keyed RNG) and handed to LAMMPS in a data file, so both codes start from the
*same* configuration.  Velocity Verlet, Δt = 2 fs, neighbour skin 1.0 Å checked every step
(LAMMPS: ``neighbor 1.0 bin``, ``neigh_modify every 1 delay 0 check yes``; ssehpc: rebuild when
``2 max|Δx| > skin``, the same criterion).

Both codes run ``--warmup`` steps that are not timed, then ``--steps`` timed steps; with
``--repeats R`` each code repeats warm-up + timed run from the initial configuration R times and
the fastest timed run is kept.  Rates are atom-steps per second; "per core" divides by torch
threads (ssehpc) or MPI ranks (LAMMPS), and the ratio column compares that with LAMMPS on one
core.  Energy sanity: the initial potential energy of both codes (must agree to round-off) and
each run's relative total-energy change over all its steps.

    .venv/bin/python bench/lj_argon.py                          # 32,000 atoms, a few minutes
    .venv/bin/python bench/lj_argon.py --sizes 4000 32000 256000 --steps 50
    .venv/bin/python bench/lj_argon.py --dtypes float64 --threads 1 --lammps-ranks 1
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    Table,
    append_results,
    describe_machine,
    load_average,
    machine_info,
    run_lammps_inprocess,
    run_lammps_subprocess,
)

from ssehpc import thermo, units
from ssehpc.forces import ForceCompute
from ssehpc.integrators.nve import VelocityVerlet
from ssehpc.parallel.domain import SerialDomain
from ssehpc.potentials.lj import LennardJones
from ssehpc.state import State

try:  # The run loop of the package, once it exists; the hand-written loop otherwise.
    from ssehpc.simulation import Simulation
except ImportError:  # pragma: no cover - depends on the tree
    Simulation = None

BENCH = "lj_argon"
#: Label of a non-default ssehpc force kernel (set by scratch scripts in bench/experiments/).
VARIANT: str | None = None

LATTICE_A = 5.26  # Å, fcc argon
EPSILON = 0.0104  # eV
SIGMA = 3.405  # Å
CUTOFF = 8.5  # Å
MASS = 39.948  # amu
Z_AR = 18


def cells_for(n_atoms: int) -> int:
    """Cubic cells per edge for ``n_atoms = 4 n³`` (raises if not such a number)."""
    n = round((n_atoms / 4) ** (1 / 3))
    if 4 * n**3 != n_atoms:
        raise ValueError(f"{n_atoms} atoms is not 4·n³ (fcc cubic cells); try {4 * n**3}")
    return n


def make_argon(
    cells: int, *, dtype: torch.dtype = torch.float64, temperature: float = 100.0, seed: int = 1
) -> State:
    """fcc argon, ``cells³`` cubic cells, momenta at ``temperature`` K (zero total momentum).

    Atoms are generated cell by cell (x slowest), the order LAMMPS's ``create_atoms`` uses.
    """
    basis = torch.tensor(
        [[0.0, 0.0, 0.0], [0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]], dtype=torch.float64
    )
    r = torch.arange(cells, dtype=torch.float64)
    grid = torch.cartesian_prod(r, r, r)  # [cells³, 3]
    pos = ((grid[:, None, :] + basis[None, :, :]).reshape(-1, 3) * LATTICE_A).to(dtype)
    n = pos.shape[0]
    cell = torch.eye(3, dtype=dtype) * (cells * LATTICE_A)
    state = State.from_arrays(
        pos, torch.full((n,), MASS, dtype=dtype), torch.full((n,), Z_AR, dtype=torch.int64), cell, seed=seed
    )
    thermo.maxwell_boltzmann(state, SerialDomain(), temperature)
    return state


def make_forces(skin: float, *, compile: bool = False) -> ForceCompute:
    """LJ argon force compute; ``compile`` selects the ``torch.compile`` pair kernel."""
    return ForceCompute(LennardJones(epsilon=EPSILON, sigma=SIGMA, cutoff=CUTOFF, compile=compile), skin=skin)


# ---------------------------------------------------------------------------- ssehpc
@dataclass
class Timing:
    """One timed run (the fastest of the repeats) and its energy bookkeeping (eV)."""

    seconds: float
    steps: int
    neighbor_builds: int
    pe0: float
    etot0: float
    etot_end: float
    cpu_use: float | None = None  # % of (wall time x cores) spent on CPU; < ~95: oversubscribed
    load: float = field(default_factory=lambda: load_average()[0])  # 1-min load at the end of the run

    @property
    def drift(self) -> float:
        return (self.etot_end - self.etot0) / abs(self.etot0)


def _energies(state: State, fc: ForceCompute) -> tuple[float, float]:
    """``(potential, total)`` energy in eV, summed in float64 whatever the state's dtype.

    ``state.energy`` and ``State.kinetic_energy`` accumulate per system with ``index_add_``, a
    sequential sum that in float32 is off by ~1e-4 relative at 32,000 atoms; that would hide the
    drift of the dynamics itself.  So: per-atom energies of one extra (untimed) potential call on
    the current list, and p²/2m, summed in float64.
    """
    out = fc.potential(fc.local, fc.nl)
    pe = float(out.energies.double().sum())
    ke = float(0.5 * units.MVV2E * (state.momenta.double() ** 2 / state.masses.double()[:, None]).sum())
    return pe, pe + ke


class _Loop:
    """The step loop of the package's ``Simulation`` (no operations), or the same loop by hand
    while ``ssehpc.simulation`` does not exist."""

    def __init__(self, state: State, fc: ForceCompute, vv: VelocityVerlet) -> None:
        self.state, self.fc, self.vv = state, fc, vv
        self.sim = Simulation(state, fc, vv, []) if Simulation is not None else None

    def run(self, steps: int) -> None:
        if self.sim is not None:
            self.sim.run(steps)
            return
        state, fc, vv = self.state, self.fc, self.vv
        for _ in range(steps):
            vv.step_one(state, fc)
            fc.compute(state)
            vv.step_two(state, fc)
            state.step += 1


def time_ssehpc(
    initial: State,
    *,
    dtype: torch.dtype,
    threads: int,
    warmup: int,
    steps: int,
    repeats: int,
    dt: float,
    skin: float,
    compile: bool = False,
) -> Timing:
    """Best-of-``repeats`` wall time of ``steps`` velocity-Verlet steps after ``warmup`` steps
    (the first force call, where ``compile=True`` compiles the kernel, is untimed)."""
    torch.set_num_threads(threads)
    best: Timing | None = None
    for _ in range(repeats):
        state = initial.to(dtype=dtype).clone()
        fc = make_forces(skin, compile=compile)
        vv = VelocityVerlet(dt)
        fc.compute(state)
        pe0, etot0 = _energies(state, fc)
        loop = _Loop(state, fc, vv)
        loop.run(warmup)  # a fresh Simulation computes forces once more here: untimed
        builds0 = fc.nl.n_builds
        t0, c0 = time.perf_counter(), time.process_time()
        loop.run(steps)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        run = Timing(
            seconds,
            steps,
            fc.nl.n_builds - builds0,
            pe0,
            etot0,
            _energies(state, fc)[1],
            100.0 * cpu / (seconds * threads),
        )
        if best is None or run.seconds < best.seconds:
            best = run
    assert best is not None
    return best


# ---------------------------------------------------------------------------- LAMMPS
def write_lammps_data(state: State, path: Path) -> None:
    """LAMMPS ``atomic`` data file (metal units: Å, amu, Å/ps) of an orthorhombic ``state``."""
    cell = state.cell[0].double()
    if torch.count_nonzero(cell - torch.diag(torch.diagonal(cell))):
        raise ValueError("write_lammps_data handles orthorhombic cells only")
    lx, ly, lz = torch.diagonal(cell).tolist()
    x = state.positions.double().tolist()
    v = (state.momenta.double() / state.masses.double()[:, None] * units.FS_PER_PS).tolist()
    with path.open("w") as fh:
        fh.write(f"fcc argon from ssehpc bench {BENCH}\n\n{state.n_atoms} atoms\n1 atom types\n\n")
        fh.write(
            f"0 {lx!r} xlo xhi\n0 {ly!r} ylo yhi\n0 {lz!r} zlo zhi\n\nMasses\n\n1 {MASS!r}\n\nAtoms # atomic\n\n"
        )
        fh.writelines(f"{k + 1} 1 {p[0]!r} {p[1]!r} {p[2]!r}\n" for k, p in enumerate(x))
        fh.write("\nVelocities\n\n")
        fh.writelines(f"{k + 1} {u[0]!r} {u[1]!r} {u[2]!r}\n" for k, u in enumerate(v))


def lammps_setup(data_file: str, *, dt: float, skin: float) -> list[str]:
    return [
        "units metal",
        "atom_style atomic",
        "boundary p p p",
        f"read_data {data_file}",
        f"pair_style lj/cut {CUTOFF}",
        f"pair_coeff 1 1 {EPSILON} {SIGMA}",
        "pair_modify shift yes",
        f"neighbor {skin} bin",
        "neigh_modify every 1 delay 0 check yes",
        "fix nve all nve",
        f"timestep {dt / units.FS_PER_PS}",
        "thermo_style custom step temp pe ke etotal press",
        "thermo_modify format float %.15g",
    ]


def time_lammps(
    data_file: Path, *, ranks: int, warmup: int, steps: int, repeats: int, dt: float, skin: float, mode: str
) -> Timing:
    """Best-of-``repeats`` LAMMPS loop time of ``steps`` steps after ``warmup`` steps."""
    best: Timing | None = None
    setup = lammps_setup(data_file.name, dt=dt, skin=skin)
    for _ in range(repeats):
        if mode == "subprocess":
            script = "\n".join(
                [*setup, f"thermo {max(warmup, steps, 1)}", f"run {warmup}", f"run {steps}", ""]
            )
            runs = run_lammps_subprocess(script, nprocs=ranks, workdir=data_file.parent)
            if len(runs) != 2:
                raise RuntimeError(f"expected 2 LAMMPS runs in the log, parsed {len(runs)}")
            first, timed = runs
            run = Timing(
                timed.loop_time,
                timed.steps,
                timed.neighbor_builds or 0,
                first.thermo[0]["PotEng"],
                first.thermo[0]["TotEng"],
                timed.thermo[-1]["TotEng"],
                timed.cpu_use,
            )
        else:
            if ranks != 1:
                raise ValueError("in-process LAMMPS runs on one rank; use --lammps-mode subprocess for more")
            import os

            cwd = Path.cwd()
            os.chdir(data_file.parent)
            try:
                res = run_lammps_inprocess([*setup, f"thermo {max(warmup, steps, 1)}"], [0, warmup, steps])
            finally:
                os.chdir(cwd)
            (_, _, start), _, (seconds, cpu, end) = res
            cpu_use = 100.0 * cpu / seconds
            run = Timing(seconds, steps, -1, start["pe"], start["etotal"], end["etotal"], cpu_use)
        if best is None or run.seconds < best.seconds:
            best = run
    assert best is not None
    return best


# ---------------------------------------------------------------------------- driver
COLUMNS = [
    ("atoms", "atoms"),
    ("code", "code"),
    ("config", "config"),
    ("cores", "cores"),
    ("ms_per_step", "ms/step"),
    ("rate", "M atom-steps/s"),
    ("rate_per_core", "per core"),
    ("ratio", "÷ LAMMPS 1 core"),
    ("rate_cpu", "per CPU-s"),
    ("ratio_cpu", "÷ LAMMPS (CPU-s)"),
    ("builds", "NL builds"),
    ("drift", "ΔE/E"),
    ("cpu_use", "CPU use %"),
    ("load", "load"),
]
FORMATS = {
    "ms_per_step": ".1f",
    "rate": ".3f",
    "rate_per_core": ".3f",
    "ratio": ".4f",
    "rate_cpu": ".3f",
    "ratio_cpu": ".4f",
    "drift": ".1e",
    "cpu_use": ".0f",
    "load": ".2f",
}


def _row(
    atoms: int, code: str, config: str, cores: int, t: Timing, ref: tuple[float, float | None] | None
) -> dict[str, Any]:
    """One table row; ``ref`` = LAMMPS 1-rank (atom-steps per wall second, per CPU second)."""
    rate = atoms * t.steps / t.seconds
    per_core = rate / cores
    # Per CPU second: what one core delivers while the process is actually running, which
    # discounts time lost to other users of the machine (wall time x cores x CPU use).
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
        "rate_per_core": per_core / 1e6,
        "ratio": per_core / ref[0] if ref else None,
        "rate_cpu": rate_cpu / 1e6 if rate_cpu else None,
        "ratio_cpu": rate_cpu / ref[1] if ref and ref[1] and rate_cpu else None,
        "builds": t.neighbor_builds if t.neighbor_builds >= 0 else None,
        "drift": t.drift,
        "pe0": t.pe0,
        "etot0": t.etot0,
        "etot_end": t.etot_end,
        "cpu_use": t.cpu_use,
        "load": t.load,
    }


def _energy_sanity(n_atoms: int, rows: list[dict[str, Any]]) -> list[str]:
    """Initial potential energy and final total energy of each ssehpc run against LAMMPS 1 rank."""
    ref = next((r for r in rows if r["code"] == "LAMMPS"), None)
    if ref is None:
        return [f"  {n_atoms} atoms: no LAMMPS run to compare with"]
    out = [
        f"  {n_atoms} atoms, LAMMPS ({ref['config']}): PE0 {ref['pe0']:.10f} eV, E_end {ref['etot_end']:.10f} eV"
    ]
    out.extend(
        f"  {n_atoms} atoms, ssehpc ({r['config']}): PE0 rel. diff {abs(r['pe0'] - ref['pe0']) / abs(ref['pe0']):.1e},"
        f" E_end rel. diff {abs(r['etot_end'] - ref['etot_end']) / abs(ref['etot_end']):.1e}"
        for r in rows
        if r["code"] == "ssehpc"
    )
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--sizes", type=int, nargs="+", default=[32000], help="atom counts, each 4·n³ (default 32000)"
    )
    ap.add_argument("--steps", type=int, default=100, help="timed steps per run (both codes)")
    ap.add_argument("--warmup", type=int, default=10, help="untimed steps before the timed ones")
    ap.add_argument("--repeats", type=int, default=1, help="runs per configuration; the fastest is kept")
    ap.add_argument("--dtypes", nargs="+", default=["float64", "float32"], choices=["float64", "float32"])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch intra-op threads")
    ap.add_argument("--lammps-ranks", type=int, nargs="+", default=[1, 2], help="MPI ranks ([] to skip: 0)")
    ap.add_argument("--lammps-mode", choices=["subprocess", "inprocess"], default="subprocess")
    ap.add_argument("--temperature", type=float, default=100.0, help="K")
    ap.add_argument("--dt", type=float, default=2.0, help="fs")
    ap.add_argument("--skin", type=float, default=1.0, help="Å")
    ap.add_argument("--no-save", action="store_true", help="do not append to bench/results/lj_argon.jsonl")
    args = ap.parse_args(argv)
    ranks = [r for r in args.lammps_ranks if r > 0]

    info = machine_info()
    print(describe_machine(info))
    driver = (
        "ssehpc.simulation.Simulation" if Simulation is not None else "step loop (step_one/compute/step_two)"
    )
    print(
        f"{args.steps} timed steps after {args.warmup} warm-up steps, best of {args.repeats}; ssehpc driver: {driver}\n"
    )
    table = Table(COLUMNS, FORMATS)
    sanity: list[str] = []
    threads0 = torch.get_num_threads()
    for n_atoms in args.sizes:
        initial = make_argon(cells_for(n_atoms), temperature=args.temperature)
        common = {"warmup": args.warmup, "steps": args.steps, "repeats": 1, "dt": args.dt, "skin": args.skin}
        configs: list[tuple[str, str, int]] = [("LAMMPS", "float64", r) for r in ranks]
        configs += [("ssehpc", d, t) for d in args.dtypes for t in args.threads]
        best: dict[tuple[str, str, int], Timing] = {}
        with tempfile.TemporaryDirectory(prefix="ssehpc-bench-") as tmp:
            data = Path(tmp) / "argon.data"
            write_lammps_data(initial, data)
            # Repeats are interleaved over the configurations (not done back to back), so a
            # slow spell of the shared machine does not land on one code only.
            for rep in range(args.repeats):
                for cfg in configs:
                    code, dtype_name, cores = cfg
                    if code == "LAMMPS":
                        t = time_lammps(data, ranks=cores, mode=args.lammps_mode, **common)
                    else:
                        t = time_ssehpc(initial, dtype=getattr(torch, dtype_name), threads=cores, **common)
                        torch.set_num_threads(threads0)
                    if cfg not in best or t.seconds < best[cfg].seconds:
                        best[cfg] = t
                    print(
                        f"  {n_atoms} atoms, repeat {rep + 1}/{args.repeats}: {code} {dtype_name} x{cores}, "
                        f"{1e3 * t.seconds / t.steps:.1f} ms/step (load {load_average()[0]:.2f})",
                        file=sys.stderr,
                        flush=True,
                    )
        ref = None
        rows = []
        for cfg in configs:
            code, dtype_name, cores = cfg
            t = best[cfg]
            if code == "LAMMPS":
                if cores == 1:
                    wall_rate = n_atoms * t.steps / t.seconds
                    ref = (wall_rate, wall_rate / (t.cpu_use / 100.0) if t.cpu_use else None)
                config = f"{cores} MPI rank{'s' * (cores > 1)}, {dtype_name}"
            else:
                config = f"{cores} thread{'s' * (cores > 1)}, {dtype_name}" + (
                    f", {VARIANT}" if VARIANT else ""
                )
            rows.append(_row(n_atoms, code, config, cores, t, ref))
            table.add(rows[-1])
        torch.set_num_threads(threads0)
        sanity.extend(_energy_sanity(n_atoms, rows))
        if not args.no_save:
            path = append_results(BENCH, rows, info, **vars(args), driver=driver)
    print()
    table.print()
    print("\nEnergy sanity (same initial configuration in both codes):")
    print("\n".join(sanity))
    if not args.no_save:
        print(f"\nrows appended to {path}")
    if any(math.isnan(r["drift"]) for r in table.rows):
        sys.exit("non-finite energies: the two codes did not run the same system")


if __name__ == "__main__":
    main()
