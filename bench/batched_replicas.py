"""Batched replicas vs one large cell: per-atom MD throughput of 64 small replicas advanced as one
batched state, against one cell with the same total number of atoms.

Goal (issue "campaign controller", item 3): batched / large-cell atom-steps/s ≥ 0.8.

Cases (``--case``):

* ``lips`` — the shipped Li–P–S committee (K = 4, float32, eager), β-Li₃PS₄: 64 replicas of
  192 atoms (1×2×3 cells, each rattled with its own seed, temperatures spread over 500–700 K)
  vs one 4×8×12 cell of 12,288 atoms at 600 K.
* ``lj`` — LJ argon (metal units, ε = 0.0104 eV, σ = 3.405 Å, r_c = 8.5 Å, float64): 64
  replicas of 256 atoms vs one 16,384-atom cell.

Both sides run Langevin dynamics (1 fs for Li–P–S, 5 fs for argon) through the same
``ForceCompute`` + integrator loop the campaign uses; the first steps are untimed; timed windows
are interleaved (batched, large, batched, large, ...) and the fastest of each is kept.  The batched
side is what ``resources.batch`` runs in a campaign (:mod:`ssehpc.campaign.batch`).

Usage::

    .venv/bin/python bench/batched_replicas.py                 # both cases, 1 thread
    .venv/bin/python bench/batched_replicas.py --case lj --threads 1 2 --quick
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Table, append_results, describe_machine, load_average, machine_info

from ssehpc import thermo
from ssehpc.forces import ForceCompute
from ssehpc.integrators import make_integrator
from ssehpc.io.structure import atoms_to_state
from ssehpc.parallel.domain import SerialDomain
from ssehpc.potentials import make_potential
from ssehpc.state import State, concatenate

BENCH = "batched_replicas"
GOAL = 0.8  # batched atom-steps/s ÷ large-cell atom-steps/s, at least
N_REPLICAS = 64


def _lips_atoms(repeat: tuple[int, int, int], seed: int) -> Any:
    from ssehpc.structures.lips import beta_li3ps4, rattled

    return rattled(beta_li3ps4().repeat(repeat), 0.05, seed=seed)


def _lj_atoms(repeat: int, seed: int) -> Any:
    from ase.build import bulk

    from ssehpc.structures.lips import rattled

    return rattled(bulk("Ar", "fcc", a=5.26, cubic=True).repeat((repeat,) * 3), 0.02, seed=seed)


CASES: dict[str, dict[str, Any]] = {
    "lips": {
        "small": lambda seed: _lips_atoms((1, 2, 3), seed),
        "large": lambda seed: _lips_atoms((4, 8, 12), seed),
        "potential": lambda: make_potential("mlff", model="lips"),
        "dtype": torch.float32,
        "dt": 1.0,
        "temperatures": (500.0, 700.0),
        "steps": 20,
    },
    "lj": {
        "small": lambda seed: _lj_atoms(4, seed),
        "large": lambda seed: _lj_atoms(16, seed),
        "potential": lambda: make_potential("lj", epsilon=0.0104, sigma=3.405, cutoff=8.5),
        "dtype": torch.float64,
        "dt": 5.0,
        "temperatures": (40.0, 80.0),
        "steps": 50,
    },
}


def build(case: dict[str, Any], n_replicas: int) -> tuple[State, list[float], State, float]:
    """``(batched state, its temperatures K, large state, its temperature K)``, momenta drawn."""
    lo, hi = case["temperatures"]
    temps = [lo + (hi - lo) * k / max(1, n_replicas - 1) for k in range(n_replicas)]
    parts = []
    for k, t in enumerate(temps):
        st = atoms_to_state(case["small"](100 + k), dtype=case["dtype"], seed=100 + k)
        thermo.maxwell_boltzmann(st, SerialDomain(), t)
        parts.append(st)
    batched = concatenate(parts)
    t_large = 0.5 * (lo + hi)
    large = atoms_to_state(case["large"](7), dtype=case["dtype"], seed=7)
    thermo.maxwell_boltzmann(large, SerialDomain(), t_large)
    return batched, temps, large, t_large


class Runner:
    """A state with its force compute and Langevin integrator, ready to step."""

    def __init__(self, state: State, temperature: float | list[float], case: dict[str, Any]) -> None:
        self.state = state
        self.forces = ForceCompute(case["potential"](), skin=1.0)
        self.integrator = make_integrator("langevin", case["dt"], temperature=temperature, damping=100.0)
        t0 = time.perf_counter()
        self.forces.compute(state, extras=False)
        self.integrator.attach(state, self.forces)
        self.setup_s = time.perf_counter() - t0

    def step(self, n: int) -> float:
        """Advance ``n`` steps; wall seconds."""
        st, f, integ = self.state, self.forces, self.integrator
        t0 = time.perf_counter()
        for _ in range(n):
            integ.step_one(st, f)
            f.compute(st, extras=False)
            integ.step_two(st, f)
            st.step += 1
        return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--case", choices=[*CASES, "all"], default="all")
    ap.add_argument("--threads", type=int, nargs="+", default=[1])
    ap.add_argument("--steps", type=int, default=None, help="timed steps per window (default per case)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3, help="interleaved timed windows; fastest kept")
    ap.add_argument("--replicas", type=int, default=N_REPLICAS)
    ap.add_argument("--quick", action="store_true", help="smoke test: 8 replicas, 5 steps, 1 repeat")
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.replicas, args.steps, args.repeats, args.warmup = 8, 5, 1, 1
    info = machine_info()
    print(describe_machine(info))
    table = Table(
        [
            (k, k)
            for k in (
                "case",
                "threads",
                "layout",
                "atoms",
                "ms/step",
                "atom-steps/s",
                "batched/large",
                "goal",
            )
        ],
        formats={"ms/step": ".1f", "atom-steps/s": ".4g", "batched/large": ".2f"},
    )
    rows: list[dict[str, Any]] = []
    for name in CASES if args.case == "all" else [args.case]:
        case = CASES[name]
        steps = args.steps or case["steps"]
        for threads in args.threads:
            torch.set_num_threads(threads)
            batched, temps, large, t_large = build(case, args.replicas)
            if args.replicas != N_REPLICAS:  # keep the totals equal: a large cell of the same size
                large = atoms_to_state(
                    case["small"](7).repeat((args.replicas, 1, 1)), dtype=case["dtype"], seed=7
                )
                thermo.maxwell_boltzmann(large, SerialDomain(), t_large)
            if batched.n_atoms != large.n_atoms:
                raise SystemExit(f"atom counts differ: batched {batched.n_atoms}, large {large.n_atoms}")
            runners = {"batched": Runner(batched, temps, case), "large": Runner(large, t_large, case)}
            for r in runners.values():
                r.step(args.warmup)
            best = {k: float("inf") for k in runners}
            for _ in range(args.repeats):
                for k, r in runners.items():
                    best[k] = min(best[k], r.step(steps))
            rate = {k: runners[k].state.n_atoms * steps / best[k] for k in runners}
            ratio = rate["batched"] / rate["large"]
            for k in ("batched", "large"):
                layout = (
                    f"{args.replicas} x {batched.n_atoms // args.replicas}" if k == "batched" else "1 cell"
                )
                row = {
                    "case": name,
                    "threads": threads,
                    "layout": layout,
                    "atoms": runners[k].state.n_atoms,
                    "ms/step": 1e3 * best[k] / steps,
                    "atom-steps/s": rate[k],
                    "batched/large": ratio if k == "batched" else None,
                    "goal": (f">= {GOAL} {'met' if ratio >= GOAL else 'NOT met'}") if k == "batched" else "",
                    "steps": steps,
                    "repeats": args.repeats,
                    "load": load_average()[0],
                }
                table.add(row)
                rows.append(row)
    table.print()
    if not args.no_save:
        append_results(BENCH, rows, info)


if __name__ == "__main__":
    main()
