"""Built-in ML force field vs its teacher: ssehpc ``mlff lips`` against CHGNet, Langevin MD.

System: β-Li₃PS₄ supercells of about ``--sizes`` atoms (default 192 and 1536; ``supercell`` of
the 32-atom Pnma cell), rattled by 0.05 Å (fixed seed), velocities Maxwell–Boltzmann at 600 K
drawn by ssehpc (keyed RNG).  Both codes start from the *same* positions and velocities.

* ssehpc: the shipped committee ``make_potential("mlff", model="lips")`` (K = 4 members) and
  its member 0 alone (``members=[0]``, K = 1), each on three paths: eager; ``compiled``
  (``compile=True, pair_kernels="torch"``: ``torch.compile`` for everything); ``compiled+C++``
  (``compile=True``, the default on CPU: the per-atom network compiled, the pair passes in the
  hand-written C++ kernels of ``ssehpc.ml.kernels``).  Compilation happens in the untimed warm-up.  Real MD through ``Simulation`` with Langevin
  (Δt = 1 fs, 600 K, damping 100 fs), ``ForceCompute(skin=1.0)``, float32 state, and a frame probe
  (an ``Operation`` with ``uses_force_extras``, like the Zarr frame writer minus the store) that
  fires every ``--write-interval`` steps, so the committee computes its member forces and force
  deviation at the rate a production run writes frames.
* CHGNet (the teacher the model was distilled from): ``Labeler.chgnet().calculator`` under ASE's
  ``Langevin`` (1 fs, 600 K, friction 0.01/fs), timed around ``dyn.run(n)``.  It is ~10⁴ times
  slower per atom-step, so it runs few steps (``--teacher-steps``).

Each configuration runs its warm-up steps untimed, then its timed steps; with ``--repeats R`` the
whole set is run R times, interleaved over the configurations, and the fastest window of each is
kept.  Wall time is the headline; CPU time (``time.process_time``) is shown beside it because the
development machine is shared.  Goals: ≥ 100× CHGNet per atom-step, K=4 / K=1 ≤ 1.5×.

    .venv/bin/python bench/mlff_teacher.py                      # 192 + 1536 atoms, ~3 min on 1 core
    .venv/bin/python bench/mlff_teacher.py --sizes 192 --no-compile
    .venv/bin/python bench/mlff_teacher.py --quick              # smoke test, ~20 s
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Table, append_results, describe_machine, load_average, machine_info

from ssehpc import thermo
from ssehpc.builders import supercell
from ssehpc.forces import ForceCompute
from ssehpc.integrators import make_integrator
from ssehpc.io.structure import atoms_to_state, state_to_atoms
from ssehpc.parallel.domain import SerialDomain
from ssehpc.potentials import make_potential
from ssehpc.simulation import On, Operation, Or, Periodic, Simulation
from ssehpc.state import State
from ssehpc.structures.lips import beta_li3ps4, rattled

BENCH = "mlff_teacher"
MODEL = "lips"
TEMPERATURE = 600.0  # K
DT = 1.0  # fs
DAMPING = 100.0  # fs (ssehpc Langevin friction time; ASE friction 1/damping = 0.01/fs)
SKIN = 1.0  # Å
RATTLE = 0.05  # Å
SEED = 7
GOAL_TEACHER = 100.0  # ssehpc atom-steps/s ÷ CHGNet atom-steps/s, at least
GOAL_COMMITTEE = 1.5  # K=4 ms/step ÷ K=1 ms/step, at most


# ---------------------------------------------------------------------------- system
def make_cell(n_atoms: int) -> State:
    """Rattled β-Li₃PS₄ supercell of about ``n_atoms`` atoms, float32, MB velocities at 600 K."""
    atoms = rattled(supercell(beta_li3ps4(), n_atoms), RATTLE, seed=SEED)
    state = atoms_to_state(atoms, dtype=torch.float32, seed=SEED)
    thermo.maxwell_boltzmann(state, SerialDomain(), TEMPERATURE)
    return state


def default_teacher_steps(n_atoms: int) -> int:
    """CHGNet timed steps: 10 below 1000 atoms, 3 above (~3–10 s per window on one core; its step
    time varies by ±15 % between windows, so fewer steps make the ratio noisy)."""
    return 10 if n_atoms < 1000 else 3


# ---------------------------------------------------------------------------- timing record
@dataclass
class Timing:
    """One timed window (the fastest of the repeats is kept)."""

    seconds: float
    cpu_seconds: float
    steps: int
    threads: int
    setup_s: float = float("nan")  # initial force call (ssehpc: with extras; may compile)
    warmup_s: float = float("nan")  # the untimed warm-up steps (ssehpc: may compile too)
    dev_evals: int | None = None  # committee extras evaluations in the timed window
    force_dev_max: float | None = None  # max committee force deviation seen (eV/Å)
    load: float = field(default_factory=lambda: load_average()[0])

    @property
    def cpu_use(self) -> float:
        return 100.0 * self.cpu_seconds / (self.seconds * self.threads)


# ---------------------------------------------------------------------------- ssehpc
class DeviationProbe(Operation):
    """A frame writer without a store: reads the thermo and the committee's force deviation at the
    steps it fires (so the simulation computes the member forces there, as for real output)."""

    uses_force_extras = True
    priority = 10

    def __init__(self, trigger: Any) -> None:
        super().__init__(trigger)
        self.steps: list[int] = []
        self.dev_max = 0.0

    def __call__(self, sim: Simulation) -> None:
        th = sim.thermo()
        _ = (th.potential_eV.cpu().numpy(), sim.state.unwrapped_positions().cpu().numpy())
        self.steps.append(sim.state.step)
        dev = sim.forces.extras.get("force_dev_max")
        if dev is not None:
            self.dev_max = max(self.dev_max, float(dev.max()))


@dataclass(frozen=True)
class Config:
    members: int  # K
    path: str  # one of PATHS
    threads: int

    @property
    def compiled(self) -> bool:
        return self.path != "eager"

    @property
    def label(self) -> str:
        return f"K={self.members} {self.path}"


#: Inference paths: eager torch; ``torch.compile`` for everything (``pair_kernels="torch"``);
#: ``torch.compile`` for the per-atom network and the hand-written C++ pair kernels (the default
#: of ``compile=True`` on CPU).
PATHS = ("eager", "compiled", "compiled+C++")


def build_potential(members: int, compiled: bool | str) -> torch.nn.Module:
    """The shipped committee (K = 4) or its member 0 (K = 1) on one of :data:`PATHS` (``True``:
    ``"compiled+C++"``, ``False``: ``"eager"``)."""
    path = {True: "compiled+C++", False: "eager"}.get(compiled, compiled)
    if path not in PATHS:
        raise ValueError(f"unknown path {path!r}; one of {PATHS}")
    kw: dict[str, Any] = {"model": MODEL, "compile": path != "eager"}
    if path != "eager":
        kw["pair_kernels"] = "cpp" if path == "compiled+C++" else "torch"
    if members == 1:
        kw["members"] = [0]
    pot = make_potential("mlff", **kw)
    if getattr(pot, "n_members", 1) != members:
        raise RuntimeError(f"expected {members} member(s), {MODEL} gave {getattr(pot, 'n_members', 1)}")
    return pot


def time_ssehpc(
    initial: State, pot: torch.nn.Module, cfg: Config, *, warmup: int, steps: int, write_interval: int
) -> Timing:
    """``warmup`` untimed + ``steps`` timed Langevin steps from ``initial`` (a fresh copy)."""
    torch.set_num_threads(cfg.threads)
    state = initial.clone()
    fc = ForceCompute(pot, skin=SKIN)
    integ = make_integrator("langevin", DT, temperature=TEMPERATURE, damping=DAMPING)
    # Fires at step 0 (so the extras path is compiled/warmed before timing), at the first timed
    # step and every write_interval steps after it: ceil(steps / write_interval) extras per window.
    probe = DeviationProbe(Or(On(0), Periodic(write_interval, phase=initial.step + warmup + 1)))
    sim = Simulation(state, fc, integ, [probe])
    t0 = time.perf_counter()
    sim.run(0)  # initial forces (extras) + step-0 output
    setup = time.perf_counter() - t0
    t0 = time.perf_counter()
    sim.run(warmup)
    warm = time.perf_counter() - t0
    n_probe = len(probe.steps)
    t0, c0 = time.perf_counter(), time.process_time()
    sim.run(steps)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    if not torch.isfinite(state.positions).all():
        raise RuntimeError(f"{cfg.label}: non-finite positions after the run")
    committee = cfg.members > 1
    return Timing(
        seconds,
        cpu,
        steps,
        cfg.threads,
        setup_s=setup,
        warmup_s=warm,
        dev_evals=len(probe.steps) - n_probe if committee else None,
        force_dev_max=probe.dev_max if committee else None,
    )


def ssehpc_initial(initial: State, pot: torch.nn.Module) -> tuple[float, np.ndarray]:
    """Potential energy (eV) and forces (eV/Å, tag order) of ``pot`` on ``initial``."""
    state = initial.clone()
    fc = ForceCompute(pot, skin=SKIN)
    fc.compute(state, extras=False)
    order = torch.argsort(state.tag)
    return float(state.energy.double().sum()), state.forces[order].double().cpu().numpy()


# ---------------------------------------------------------------------------- CHGNet
def make_teacher(threads: int) -> Any:
    """CHGNet's ASE calculator (raises ImportError without the ``teacher`` extra)."""
    from ssehpc.ml.labeler import Labeler

    return Labeler.chgnet(num_threads=threads).calculator


def time_chgnet(initial: State, calc: Any, *, threads: int, warmup: int, steps: int) -> tuple[Timing, Any]:
    """ASE Langevin with CHGNet from the same positions and velocities; ``(timing, atoms0)``
    where ``atoms0`` carries CHGNet's energy and forces of the initial configuration."""
    from ase import units as ase_units
    from ase.md.langevin import Langevin

    torch.set_num_threads(threads)
    atoms = state_to_atoms(initial)
    atoms.calc = calc
    dyn = Langevin(
        atoms,
        DT * ase_units.fs,
        temperature_K=TEMPERATURE,
        friction=1.0 / (DAMPING * ase_units.fs),
        rng=np.random.default_rng(SEED),
    )
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        e0, f0 = atoms.get_potential_energy(), atoms.get_forces().copy()
    setup = time.perf_counter() - t0
    with contextlib.redirect_stdout(io.StringIO()):
        t0 = time.perf_counter()
        dyn.run(warmup)
        warm = time.perf_counter() - t0
        t0, c0 = time.perf_counter(), time.process_time()
        dyn.run(steps)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return Timing(seconds, cpu, steps, threads, setup_s=setup, warmup_s=warm), (e0, f0)


# ---------------------------------------------------------------------------- table
COLUMNS = [
    ("atoms", "atoms"),
    ("code", "code"),
    ("config", "config"),
    ("threads", "threads"),
    ("steps", "steps"),
    ("ms_per_step", "ms/step"),
    ("rate", "atom-steps/s"),
    ("vs_teacher", f"× CHGNet (goal ≥ {GOAL_TEACHER:g})"),
    ("k4_over_k1", f"K=4 / K=1 (goal ≤ {GOAL_COMMITTEE:g})"),
    ("cpu_ms_per_step", "CPU ms/step"),
    ("rate_cpu", "atom-steps/CPU-s"),
    ("vs_teacher_cpu", "× CHGNet (CPU-s)"),
    ("dev_evals", "dev evals"),
    ("cpu_use", "CPU use %"),
    ("load", "load"),
]
FORMATS = {
    "ms_per_step": ".2f",
    "rate": ".0f",
    "vs_teacher": ".0f",
    "k4_over_k1": ".2f",
    "cpu_ms_per_step": ".2f",
    "rate_cpu": ".0f",
    "vs_teacher_cpu": ".0f",
    "cpu_use": ".0f",
    "load": ".2f",
}


def _row(atoms: int, code: str, config: str, t: Timing) -> dict[str, Any]:
    return {
        "atoms": atoms,
        "code": code,
        "config": config,
        "threads": t.threads,
        "steps": t.steps,
        "seconds": t.seconds,
        "cpu_seconds": t.cpu_seconds,
        "ms_per_step": 1e3 * t.seconds / t.steps,
        "rate": atoms * t.steps / t.seconds,
        "cpu_ms_per_step": 1e3 * t.cpu_seconds / t.steps,
        "rate_cpu": atoms * t.steps / t.cpu_seconds if t.cpu_seconds > 0 else None,
        "dev_evals": t.dev_evals,
        "force_dev_max": t.force_dev_max,
        "setup_s": t.setup_s,
        "warmup_s": t.warmup_s,
        "cpu_use": t.cpu_use,
        "load": t.load,
    }


def _fill_ratios(rows: list[dict[str, Any]]) -> None:
    """× CHGNet (same cell, same threads) and K=4 / K=1 (same path, same threads), in place."""
    teacher = {r["threads"]: r for r in rows if r["code"] == "CHGNet" and r.get("rate")}
    single = {(r["threads"], r["config"].split()[1]): r for r in rows if r["config"].startswith("K=1")}
    for r in rows:
        if r["code"] != "ssehpc":
            continue
        t = teacher.get(r["threads"])
        r["vs_teacher"] = r["rate"] / t["rate"] if t else None
        r["vs_teacher_cpu"] = r["rate_cpu"] / t["rate_cpu"] if t and r["rate_cpu"] and t["rate_cpu"] else None
        r["goal_teacher_met"] = r["vs_teacher"] >= GOAL_TEACHER if t else None
        if r["config"].startswith("K=4"):
            k1 = single.get((r["threads"], r["config"].split()[1]))
            r["k4_over_k1"] = r["ms_per_step"] / k1["ms_per_step"] if k1 else None
            r["k4_over_k1_cpu"] = r["cpu_ms_per_step"] / k1["cpu_ms_per_step"] if k1 else None
            r["goal_committee_met"] = r["k4_over_k1"] <= GOAL_COMMITTEE if k1 else None


def _verdicts(rows: list[dict[str, Any]]) -> list[str]:
    out = []
    for r in rows:
        if r["code"] != "ssehpc":
            continue
        parts = []
        if r.get("vs_teacher") is not None:
            ok = "met" if r["goal_teacher_met"] else "MISSED"
            parts.append(f"{r['vs_teacher']:.0f}× CHGNet ({ok}, goal ≥ {GOAL_TEACHER:g}×)")
        if r.get("k4_over_k1") is not None:
            ok = "met" if r["goal_committee_met"] else "MISSED"
            parts.append(f"K=4/K=1 {r['k4_over_k1']:.2f} ({ok}, goal ≤ {GOAL_COMMITTEE:g})")
        if parts:
            out.append(f"  {r['atoms']} atoms, {r['config']}, {r['threads']} thr: " + "; ".join(parts))
    return out


# ---------------------------------------------------------------------------- driver
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", type=int, nargs="+", default=[192, 1536], help="target atom counts")
    ap.add_argument("--steps", type=int, default=200, help="ssehpc timed steps per window")
    ap.add_argument("--warmup", type=int, default=10, help="ssehpc untimed steps (compilation included)")
    ap.add_argument(
        "--teacher-steps",
        type=int,
        nargs="+",
        default=None,
        help="CHGNet timed steps, one per size or one for all (default 5 below 1000 atoms, else 2)",
    )
    ap.add_argument("--teacher-warmup", type=int, default=1, help="CHGNet untimed steps")
    ap.add_argument("--threads", type=int, nargs="+", default=[1], help="torch intra-op threads (both codes)")
    ap.add_argument("--repeats", type=int, default=1, help="timed windows per config, interleaved; best kept")
    ap.add_argument("--write-interval", type=int, default=100, help="steps between committee deviations")
    ap.add_argument("--no-compile", action="store_true", help="eager ssehpc only (skip torch.compile)")
    ap.add_argument(
        "--paths",
        nargs="+",
        choices=PATHS[1:],
        default=list(PATHS[1:]),
        help="compiled paths to time besides eager (default both)",
    )
    ap.add_argument("--no-teacher", action="store_true", help="skip CHGNet")
    ap.add_argument("--quick", action="store_true", help="smoke test: 192 atoms, 50 steps, no compile")
    ap.add_argument("--no-save", action="store_true", help=f"do not append to bench/results/{BENCH}.jsonl")
    args = ap.parse_args(argv)
    if args.quick:
        args.sizes, args.steps, args.no_compile = [192], 50, True
    if args.teacher_steps is None:
        teacher_steps = [default_teacher_steps(n) for n in args.sizes]
    elif len(args.teacher_steps) == 1:
        teacher_steps = args.teacher_steps * len(args.sizes)
    elif len(args.teacher_steps) == len(args.sizes):
        teacher_steps = list(args.teacher_steps)
    else:
        ap.error("--teacher-steps takes one value or one per size")
    warnings.filterwarnings("ignore")  # CHGNet/pymatgen chatter

    threads0 = torch.get_num_threads()
    info = machine_info()
    print(describe_machine(info))
    paths = ["eager"] + ([] if args.no_compile else [p for p in PATHS[1:] if p in args.paths])
    print(
        f"ssehpc: mlff {MODEL}, float32, Langevin {DT:g} fs / {TEMPERATURE:g} K / damping {DAMPING:g} fs, "
        f"skin {SKIN:g} Å, {args.warmup} warm-up + {args.steps} timed steps, committee deviations every "
        f"{args.write_interval} steps; CHGNet: ASE Langevin, {args.teacher_warmup} warm-up + "
        f"{'/'.join(map(str, teacher_steps))} timed steps; best of {args.repeats}\n"
    )

    # Potentials are built (and compiled) once and reused for every cell and repeat.
    configs = [Config(k, p, t) for t in args.threads for p in paths for k in (1, 4)]
    pots = {(k, p): build_potential(k, p) for k, p in {(cfg.members, cfg.path) for cfg in configs}}
    teacher_calc, teacher_error = None, None
    if not args.no_teacher:
        try:
            teacher_calc = make_teacher(args.threads[0])
        except ImportError as exc:
            teacher_error = "chgnet not importable"
            print(f"CHGNet skipped (chgnet not importable): {exc}", file=sys.stderr)

    table = Table(COLUMNS, FORMATS)
    verdicts: list[str] = []
    sanity: list[str] = []
    path = None
    for n_target, n_teacher in zip(args.sizes, teacher_steps, strict=True):
        initial = make_cell(n_target)
        n_atoms = initial.n_atoms
        best: dict[Any, Timing] = {}
        teacher0 = None
        for rep in range(args.repeats):
            for cfg in configs:
                t = time_ssehpc(
                    initial,
                    pots[(cfg.members, cfg.path)],
                    cfg,
                    warmup=args.warmup,
                    steps=args.steps,
                    write_interval=args.write_interval,
                )
                if cfg not in best or t.seconds < best[cfg].seconds:
                    best[cfg] = t
                print(
                    f"  {n_atoms} atoms, repeat {rep + 1}/{args.repeats}: ssehpc {cfg.label} x{cfg.threads}, "
                    f"{1e3 * t.seconds / t.steps:.2f} ms/step, CPU {1e3 * t.cpu_seconds / t.steps:.2f} ms/step, "
                    f"untimed: first call {t.setup_s:.2f} s + warm-up {t.warmup_s:.2f} s (load {load_average()[0]:.2f})",
                    file=sys.stderr,
                    flush=True,
                )
            if teacher_calc is not None:
                for thr in args.threads:
                    t, first = time_chgnet(
                        initial, teacher_calc, threads=thr, warmup=args.teacher_warmup, steps=n_teacher
                    )
                    teacher0 = first
                    key = ("CHGNet", thr)
                    if key not in best or t.seconds < best[key].seconds:
                        best[key] = t
                    print(
                        f"  {n_atoms} atoms, repeat {rep + 1}/{args.repeats}: CHGNet x{thr}, "
                        f"{1e3 * t.seconds / t.steps:.0f} ms/step, CPU {1e3 * t.cpu_seconds / t.steps:.0f} ms/step, "
                        f"untimed: first call {t.setup_s:.2f} s + warm-up {t.warmup_s:.2f} s (load {load_average()[0]:.2f})",
                        file=sys.stderr,
                        flush=True,
                    )
        torch.set_num_threads(threads0)

        rows = [_row(n_atoms, "ssehpc", cfg.label, best[cfg]) for cfg in configs]
        for thr in args.threads:
            if ("CHGNet", thr) in best:
                rows.append(_row(n_atoms, "CHGNet", "ASE Langevin", best[("CHGNet", thr)]))
            else:
                why = teacher_error or "--no-teacher"
                rows.append(
                    {"atoms": n_atoms, "code": "CHGNet", "config": f"skipped ({why})", "threads": thr}
                )
        _fill_ratios(rows)
        for r in rows:
            table.add(r)
        verdicts.extend(_verdicts(rows))

        # Sanity: the distilled model reproduces its teacher on the same (initial) configuration.
        if teacher0 is not None:
            e_t, f_t = teacher0
            for k in (4, 1):
                e_s, f_s = ssehpc_initial(initial, pots[(k, "eager")])
                d = f_s - f_t
                sanity.append(
                    f"  {n_atoms} atoms, K={k}: E/atom {e_s / n_atoms:+.4f} eV vs CHGNet {e_t / n_atoms:+.4f} eV "
                    f"(Δ {1e3 * (e_s - e_t) / n_atoms:+.1f} meV/atom), force RMSE "
                    f"{math.sqrt(float((d**2).mean())):.3f} eV/Å (|F| rms {math.sqrt(float((f_t**2).mean())):.2f})"
                )
        dev = [r for r in rows if r.get("force_dev_max") is not None]
        sanity.extend(
            f"  {n_atoms} atoms, {r['config']}: max committee force deviation {r['force_dev_max']:.3f} eV/Å "
            f"({r['dev_evals']} evaluations in the timed window)"
            for r in dev
        )
        if not args.no_save:
            path = append_results(
                BENCH, rows, info, **vars(args), teacher_steps_used=teacher_steps, model=MODEL
            )

    print()
    table.print()
    print(f"\nGoals (wall time): ≥ {GOAL_TEACHER:g}× CHGNet per atom-step; K=4 / K=1 ≤ {GOAL_COMMITTEE:g}×")
    print("\n".join(verdicts) if verdicts else "  (no CHGNet rows to compare with)")
    print("\nSanity (same initial configuration in both codes):")
    print("\n".join(sanity) if sanity else "  (none)")
    first = ", ".join(f"{c.label} x{c.threads}" for c in configs if c.compiled)
    if first:
        print(f"\n(torch.compile time is excluded: it falls in the untimed first call/warm-up of {first})")
    if path is not None:
        print(f"\nrows appended to {path}")


if __name__ == "__main__":
    main()
