"""Time per step and peak memory vs N for LJ argon: ssehpc and LAMMPS, 864 to 1,000,188 atoms.

The system is that of ``bench/lj_argon.py`` (fcc argon, a = 5.26 Å, LJ ε = 0.0104 eV, σ = 3.405 Å,
r_c = 8.5 Å shifted, NVE, Δt = 2 fs, skin 1.0 Å, 100 K).  Each size runs in a *fresh subprocess*
(``--one N``), so its peak RSS (``ru_maxrss``) is that of this size alone; the memory column is
``(peak RSS − RSS after importing torch and ssehpc) / N``, bytes per atom, set-up included.

Per size: ``--warmup`` untimed steps, then a timed window of as many steps as fit into
``--seconds`` (at least 3, at most ``--max-steps``); one neighbour-list build is timed apart
(``NL build``).  LAMMPS (one MPI rank, ``lmp`` of the wheel) runs the same data file.  At the
end the exponent ``b`` of ``t(N) ∝ N^b`` is fitted (least squares in log-log) over the whole range
and over N ≥ 32,000 (below that, per-step overheads dominate); O(N) means b ≈ 1.

    .venv/bin/python bench/scaling.py                    # 864 ... 1,000,188 atoms, ~6 min
    .venv/bin/python bench/scaling.py --cells 6 10 20 --no-lammps   # quick look
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

BENCH = "scaling"
DEFAULT_CELLS = [6, 10, 16, 20, 25, 32, 40, 50, 63]  # 864 ... 1,000,188 atoms


def _rss_mb() -> float:
    """Current resident set size, MB (from /proc/self/statm)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def one_size(cells: int, *, threads: int, warmup: int, seconds: float, max_steps: int, compile: bool) -> dict:
    """Run one size in this process and return its measurements (called by ``--one``)."""
    import torch

    torch.set_num_threads(threads)
    from lj_argon import make_argon, make_forces

    from ssehpc.integrators.nve import VelocityVerlet
    from ssehpc.simulation import Simulation

    base_mb = _rss_mb()
    t_setup = time.perf_counter()
    state = make_argon(cells)
    n = state.n_atoms
    fc = make_forces(1.0, compile=compile)
    fc.compute(state)
    sim = Simulation(state, fc, VelocityVerlet(2.0), [])
    sim.run(warmup)
    setup_s = time.perf_counter() - t_setup
    # one timed neighbour-list build (ghosts + pairs), on the current positions
    t0 = time.perf_counter()
    local = fc.domain.build_local(state, fc.ghost_width)
    fc.nl.build(local, state)
    fc.local = local
    nl_build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    sim.run(1)
    per_step = time.perf_counter() - t0
    steps = int(max(3, min(max_steps, seconds / max(per_step, 1e-9))))
    builds0 = fc.nl.n_builds
    t0, c0 = time.perf_counter(), time.process_time()
    sim.run(steps)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3
    return {
        "atoms": n,
        "code": "ssehpc" + (" compiled" if compile else ""),
        "threads": threads,
        "steps": steps,
        "ms_per_step": 1e3 * wall / steps,
        "us_per_atom_step": 1e6 * wall / steps / n,
        "cpu_use": 100.0 * cpu / (wall * threads),
        "nl_build_ms": 1e3 * nl_build_s,
        "nl_builds_in_window": fc.nl.n_builds - builds0,
        "pairs": fc.nl.n_pairs,
        "ghosts": fc.local.n_ghost,
        "setup_s": setup_s,
        "peak_rss_mb": peak_mb,
        "base_rss_mb": base_mb,
        "bytes_per_atom": (peak_mb - base_mb) * 1e6 / n,
    }


def lammps_size(cells: int, *, seconds: float, max_steps: int) -> dict:
    """LAMMPS on one rank, same system; peak RSS of the ``lmp`` process from ``wait4``."""
    import torch
    from common import find_executable, parse_lammps_log
    from lj_argon import lammps_setup, make_argon, write_lammps_data

    state = make_argon(cells, dtype=torch.float64)
    n = state.n_atoms
    with tempfile.TemporaryDirectory(prefix="ssehpc-scaling-") as tmp:
        data = Path(tmp) / "argon.data"
        write_lammps_data(state, data)
        # a 3-step probe for the step count, then the timed run (LAMMPS's own loop time)
        steps = max_steps
        for probe in (True, False):
            script = "\n".join(
                [
                    *lammps_setup(data.name, dt=2.0, skin=1.0),
                    "thermo 1000",
                    "run 2",
                    f"run {3 if probe else steps}",
                    "",
                ]
            )
            (Path(tmp) / "in.lj").write_text(script)
            proc = subprocess.Popen(
                [find_executable("lmp"), "-in", "in.lj", "-log", "none", "-nocite"],
                cwd=tmp,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env={**os.environ, "OMP_NUM_THREADS": "1"},
            )
            out = proc.stdout.read()
            _, status, usage = os.wait4(proc.pid, 0)
            if status != 0:
                raise RuntimeError(f"lmp failed: {out[-2000:]}")
            run = parse_lammps_log(out)[-1]
            if probe:
                steps = int(max(3, min(max_steps, seconds / (run.loop_time / run.steps))))
    return {
        "atoms": n,
        "code": "LAMMPS",
        "threads": 1,
        "steps": run.steps,
        "ms_per_step": 1e3 * run.loop_time / run.steps,
        "us_per_atom_step": 1e6 * run.loop_time / run.steps / n,
        "cpu_use": run.cpu_use,
        "nl_builds_in_window": run.neighbor_builds,
        "peak_rss_mb": usage.ru_maxrss / 1e3,
        "bytes_per_atom": usage.ru_maxrss * 1e3 / n,
    }


def fit_exponent(rows: list[dict], n_min: int = 0, key: str = "ms_per_step") -> float:
    """``b`` of ``t ∝ N^b`` by least squares in log-log over rows with ``atoms >= n_min``
    (``key``: ``ms_per_step``, wall time, or ``cpu_ms_per_step``, CPU time)."""
    pts = [(math.log(r["atoms"]), math.log(r[key])) for r in rows if r["atoms"] >= n_min and r.get(key)]
    if len(pts) < 2:
        return float("nan")
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    return sum((x - mx) * (y - my) for x, y in pts) / sum((x - mx) ** 2 for x, _ in pts)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--cells", type=int, nargs="+", default=DEFAULT_CELLS, help="fcc cells per edge (4·n³ atoms)"
    )
    ap.add_argument("--threads", type=int, default=1, help="torch threads of ssehpc")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps")
    ap.add_argument("--seconds", type=float, default=8.0, help="timed-window budget per size, s")
    ap.add_argument("--max-steps", type=int, default=100, help="most timed steps per size")
    ap.add_argument("--compile", action="store_true", help="also time the compiled LJ kernel")
    ap.add_argument("--no-lammps", action="store_true", help="skip the LAMMPS reference")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: run one size, print JSON
    ap.add_argument("--one-compile", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--one-lammps", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--no-save", action="store_true", help=f"do not append to bench/results/{BENCH}.jsonl")
    args = ap.parse_args(argv)

    if args.one is not None:
        if args.one_lammps:
            res = lammps_size(args.one, seconds=args.seconds, max_steps=args.max_steps)
        else:
            res = one_size(
                args.one,
                threads=args.threads,
                warmup=args.warmup,
                seconds=args.seconds,
                max_steps=args.max_steps,
                compile=args.one_compile,
            )
        print("RESULT " + json.dumps(res))
        return

    from common import Table, append_results, describe_machine, load_average, machine_info

    info = machine_info()
    print(describe_machine(info))
    print(
        f"ssehpc: {args.threads} torch thread(s), float64; LAMMPS: 1 MPI rank; timed window <= {args.seconds} s\n"
    )
    variants = (
        [("ssehpc", False)]
        + ([("ssehpc", True)] if args.compile else [])
        + ([] if args.no_lammps else [("LAMMPS", False)])
    )
    rows: list[dict[str, Any]] = []
    for cells in args.cells:
        for code, compiled in variants:
            cmd = [
                sys.executable,
                __file__,
                "--one",
                str(cells),
                "--threads",
                str(args.threads),
                "--warmup",
                str(args.warmup),
                "--seconds",
                str(args.seconds),
                "--max-steps",
                str(args.max_steps),
            ]
            if compiled:
                cmd.append("--one-compile")
            if code == "LAMMPS":
                cmd.append("--one-lammps")
            proc = subprocess.run(
                cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": str(args.threads)}
            )
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
            if proc.returncode != 0 or line is None:
                print(
                    f"  {4 * cells**3} atoms, {code}: FAILED (rc {proc.returncode}): {proc.stderr[-800:]}",
                    file=sys.stderr,
                )
                continue
            row = json.loads(line[len("RESULT ") :])
            row["load"] = load_average()[0]
            rows.append(row)
            print(
                f"  {row['atoms']:>8} atoms, {row['code']}: {row['ms_per_step']:.2f} ms/step, "
                f"{row['us_per_atom_step']:.3f} µs/atom-step, {row['bytes_per_atom']:.0f} B/atom "
                f"(load {row['load']:.2f})",
                file=sys.stderr,
                flush=True,
            )
    # CPU time per atom-step (discounts waiting for a core on a shared machine), ratio to LAMMPS
    for r in rows:
        if r.get("cpu_use"):
            r["cpu_us_per_atom_step"] = r["us_per_atom_step"] * min(r["cpu_use"], 100.0) / 100.0
    for r in rows:
        lmp = next((x for x in rows if x["code"] == "LAMMPS" and x["atoms"] == r["atoms"]), None)
        if lmp is not None and r is not lmp:
            r["x_lammps"] = lmp["ms_per_step"] / r["ms_per_step"]
    table = Table(
        [
            ("atoms", "atoms"),
            ("code", "code"),
            ("steps", "steps"),
            ("ms_per_step", "ms/step"),
            ("us_per_atom_step", "µs/atom-step"),
            ("cpu_us_per_atom_step", "CPU µs/atom-step"),
            ("x_lammps", "÷ LAMMPS"),
            ("nl_build_ms", "NL build ms"),
            ("pairs", "pairs"),
            ("peak_rss_mb", "peak RSS MB"),
            ("bytes_per_atom", "B/atom"),
            ("cpu_use", "CPU use %"),
            ("load", "load"),
        ],
        {
            "ms_per_step": ".2f",
            "us_per_atom_step": ".3f",
            "cpu_us_per_atom_step": ".3f",
            "x_lammps": ".3f",
            "nl_build_ms": ".0f",
            "peak_rss_mb": ".0f",
            "bytes_per_atom": ".0f",
            "cpu_use": ".0f",
            "load": ".2f",
        },
    )
    for r in rows:
        table.add(r)
    print()
    table.print()
    print("\nExponent b of t(N) ∝ N^b (least squares, log-log):")
    for code in dict.fromkeys(r["code"] for r in rows):
        sub = [r for r in rows if r["code"] == code]
        for r in sub:
            if r.get("cpu_us_per_atom_step"):
                r["cpu_ms_per_step"] = r["cpu_us_per_atom_step"] * r["atoms"] / 1e3
        b_all, b_big = fit_exponent(sub), fit_exponent(sub, 32000)
        c_all, c_big = fit_exponent(sub, 0, "cpu_ms_per_step"), fit_exponent(sub, 32000, "cpu_ms_per_step")
        for r in sub:
            r["exponent_all"], r["exponent_ge_32k"] = b_all, b_big
            r["exponent_cpu_all"], r["exponent_cpu_ge_32k"] = c_all, c_big
        print(
            f"  {code:<16} wall: all sizes b = {b_all:.3f}, N >= 32,000 b = {b_big:.3f};  "
            f"CPU time: all sizes b = {c_all:.3f}, N >= 32,000 b = {c_big:.3f}"
        )
    if not args.no_save and rows:
        path = append_results(BENCH, rows, info, **vars(args))
        print(f"\nrows appended to {path}")


if __name__ == "__main__":
    main()
