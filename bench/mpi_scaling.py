"""MPI domain decomposition: strong scaling against LAMMPS, and million-atom cells on two ranks.

One invocation, one table (issue 4):

1. **Strong scaling** (``--sizes``, default 256,000 atoms): the LJ argon system of
   ``bench/lj_argon.py`` (fcc a = 5.26 Å, ε = 0.0104 eV, σ = 3.405 Å, r_c = 8.5 Å shifted,
   NVE, Δt = 2 fs, skin 1 Å checked every step) on ``--ranks`` MPI ranks (default 1 and 2),
   ssehpc and LAMMPS from the same data file.  ssehpc runs ``bench/mpi_member.py`` under
   ``mpiexec -n R`` (one torch thread per rank, ``SSEHPC_NRANKS=R``); LAMMPS runs ``mpiexec -n R
   lmp``.  Per code: ms/step, M atom-steps/s, parallel efficiency t₁ / (R·t_R), and the
   ssehpc ÷ LAMMPS rate at the same rank count.
2. **Million-atom cells** (``--big``, on ``--big-ranks`` = 2): (a) LJ argon, 63³ fcc cells =
   1,000,188 atoms (``--lj-atoms``), ssehpc and LAMMPS; (b) β-Li₃PS₄ with the shipped ML
   committee ``lips`` (float32, Langevin 600 K, Δt = 1 fs), the most isotropic supercell
   near ``--ml-atoms`` (default 1,000,000 → 21×33×45 cells of 32 atoms = 997,920 atoms).
   Seconds per step, atoms per rank, peak RSS per rank (goal ≤ 8 GB).

Every ssehpc run is a fresh ``mpiexec`` job: every rank builds the same state, keeps its own
atoms, and reports owned atoms, peak RSS (``ru_maxrss``) and CPU time per rank.  A memory guard in
each rank (``--max-rss-gb``, ``--min-avail-gb``) ends the job before the machine runs out of
memory; a job that is killed anyway (signal 9: the kernel's OOM killer) or fails to allocate
becomes a row with that status and the largest RSS known at its death (the kernel's accounting
of the job's process tree, ``wait4``, and the rank's last sample), and the bench goes on.
LAMMPS's peak RSS is measured the same way (largest rank of the ``mpiexec`` tree).

    .venv/bin/python bench/mpi_scaling.py                                  # 256k atoms, 1 and 2 ranks
    .venv/bin/python bench/mpi_scaling.py --big                            # + the 1M-atom cells
    .venv/bin/python bench/mpi_scaling.py --no-scaling --big --no-big-lj --ml-atoms 100000
    .venv/bin/python bench/mpi_scaling.py --sizes 32000 --steps 20 --big --lj-atoms 108000 --ml-atoms 20000
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import contextlib

from common import (
    BenchError,
    Table,
    append_results,
    describe_machine,
    find_executable,
    load_average,
    machine_info,
    parse_lammps_log,
)
from lj_argon import cells_for, lammps_setup, make_argon, write_lammps_data

BENCH = "mpi_scaling"
MEMBER = Path(__file__).resolve().parent / "mpi_member.py"
MARK = "MPI_MEMBER "
REPO_ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------------- processes
@dataclass
class JobResult:
    """A finished ``mpiexec`` job: exit status, output, and the largest RSS in its process tree."""

    rc: int
    stdout: str
    stderr: str
    max_rss_gb: float  # ru_maxrss of the job's tree (wait4): the largest single process (rank)
    wall_s: float
    timed_out: bool = False

    @property
    def killed(self) -> bool:
        """A rank (or the launcher) died of SIGKILL: what the kernel's OOM killer sends."""
        text = self.stdout + self.stderr
        return (
            self.rc in (-9, 137)
            or "KILLED BY SIGNAL: 9" in text
            or "EXIT CODE: 9\n" in text
            or "signal 9" in text.lower()
        )


def run_job(cmd: list[str], *, env: dict[str, str], cwd: Path, timeout: float) -> JobResult:
    """Run ``cmd`` in its own session; wait with ``wait4`` for the tree's peak RSS.

    The kernel folds the ``ru_maxrss`` of every reaped descendant into its parent's, so the
    launcher's ``wait4`` gives the largest RSS of any rank, even of one that was killed.
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=cwd, env=env, start_new_session=True)
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        if not timed_out.is_set():  # leftover ranks of a failed job
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        out.seek(0)
        err.seek(0)
        return JobResult(
            proc.returncode, out.read(), err.read(), usage.ru_maxrss / 1e6, wall, timed_out.is_set()
        )


def mpiexec_cmd(ranks: int, argv: list[str]) -> list[str]:
    mpiexec = find_executable("mpiexec")
    if mpiexec is None:
        raise BenchError("mpiexec not found (pip install mpich into the venv)")
    return [mpiexec, "-n", str(ranks), *argv]


def job_env(ranks: int) -> dict[str, str]:
    return {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "SSEHPC_NRANKS": str(ranks),
        "PYTHONUNBUFFERED": "1",
    }


# ---------------------------------------------------------------------------- runs
@dataclass
class Run:
    """One timed run of either code, or why there is none."""

    code: str
    system: str  # "lj" or "lips"
    atoms: int
    ranks: int
    status: str = "ok"
    seconds: float | None = None
    steps: int = 0
    builds: int | None = None
    pe0: float | None = None
    etot0: float | None = None
    etot_end: float | None = None
    n_owned: list[int] = field(default_factory=list)
    peak_rss_gb: list[float] = field(default_factory=list)
    tree_rss_gb: float | None = None  # wait4: largest process of the job
    cpu_use: float | None = None
    setup_s: float | None = None
    first_step_s: float | None = None
    grid: list[int] | None = None
    domain: str | None = None  # SerialDomain / MPIDomain (ssehpc)
    error: str | None = None
    load: float = field(default_factory=lambda: load_average()[0])


def _read_sample(path: Path) -> dict[str, Any]:
    """A rank's last memory record (``{}`` if unreadable)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def run_ssehpc(
    system: str,
    atoms: int,
    ranks: int,
    args: argparse.Namespace,
    *,
    warmup: int,
    steps: int,
    extra: list[str],
) -> Run:
    """``mpiexec -n ranks python bench/mpi_member.py ...``; never raises for a failed job."""
    with tempfile.TemporaryDirectory(prefix="ssehpc-mpi-rss-") as rss_dir:
        argv = [
            sys.executable,
            str(MEMBER),
            "--system",
            system,
            "--atoms",
            str(atoms),
            "--warmup",
            str(warmup),
            "--steps",
            str(steps),
            "--max-rss-gb",
            str(args.max_rss_gb),
            "--min-avail-gb",
            str(args.min_avail_gb),
            "--rss-log",
            rss_dir,
            *(["--require-mpi"] if args.require_mpi else []),
            *extra,
        ]
        job = run_job(mpiexec_cmd(ranks, argv), env=job_env(ranks), cwd=REPO_ROOT, timeout=args.timeout)
        samples = [_read_sample(p) for p in Path(rss_dir).glob("rank*.json")]
    lines = [json.loads(x[len(MARK) :]) for x in job.stdout.splitlines() if x.startswith(MARK)]
    ok = next((x for x in lines if x.get("status") == "ok"), None)
    run = Run("ssehpc", system, atoms, ranks, tree_rss_gb=job.max_rss_gb)
    if ok is not None and job.rc == 0:
        run.atoms = ok["atoms"]
        run.seconds, run.steps, run.builds = ok["seconds"], ok["steps"], ok["neighbor_builds"]
        run.pe0, run.etot0, run.etot_end = ok["pe0"], ok["etot0"], ok["etot_end"]
        run.n_owned, run.peak_rss_gb, run.cpu_use = ok["n_owned"], ok["peak_rss_gb"], ok["cpu_use"]
        run.setup_s, run.first_step_s, run.grid = ok["setup_s"], ok["first_step_s"], ok["grid"]
        run.domain = ok["domain"]
        return run
    # Failed: say how, with the largest RSS known at the end.
    failed = next((x for x in lines if x.get("status") in ("rss-limit", "oom")), None)
    known = [job.max_rss_gb] + [s.get("peak_rss_gb", 0.0) for s in samples]
    if failed is not None:
        known.append(failed.get("peak_rss_gb", 0.0))
    run.peak_rss_gb = [max(known)]
    stage = (
        failed.get("stage")
        if failed
        else next((s["stage"] for s in samples if s.get("stage") != "done"), None)
    )
    if job.timed_out:
        run.status = f"timeout ({args.timeout:.0f} s)"
    elif failed is not None and failed["status"] == "rss-limit":
        run.status = f"stopped by RSS guard ({stage})"
    elif failed is not None:
        run.status = f"OOM: allocation failed ({stage})"
    elif job.killed:
        run.status = f"OOM-killed ({stage or 'unknown stage'})"
    else:
        run.status = f"failed (rc {job.rc}, {stage or 'unknown stage'})"
    run.error = (failed or {}).get("error") or (job.stdout + job.stderr)[-2000:]
    print(f"  ssehpc {system} {atoms} atoms x{ranks}: {run.status}\n{run.error}", file=sys.stderr, flush=True)
    return run


def run_lammps(
    data_file: Path, atoms: int, ranks: int, args: argparse.Namespace, *, warmup: int, steps: int
) -> Run:
    """``mpiexec -n ranks lmp`` on the argon data file (same script as ``bench/lj_argon.py``)."""
    lmp = find_executable("lmp")
    run = Run("LAMMPS", "lj", atoms, ranks)
    if lmp is None:
        run.status, run.error = "skipped (no lmp)", "LAMMPS executable 'lmp' not found"
        return run
    setup = lammps_setup(data_file.name, dt=args.dt, skin=args.skin)
    script = "\n".join([*setup, f"thermo {max(warmup, steps, 1)}", f"run {warmup}", f"run {steps}", ""])
    (data_file.parent / "in.bench").write_text(script)
    cmd = mpiexec_cmd(ranks, [lmp, "-in", "in.bench", "-log", "none", "-nocite"])
    job = run_job(cmd, env=job_env(ranks), cwd=data_file.parent, timeout=args.timeout)
    run.load = load_average()[0]  # at the end of the run, as for ssehpc
    run.tree_rss_gb = job.max_rss_gb
    run.peak_rss_gb = [job.max_rss_gb]
    runs = parse_lammps_log(job.stdout) if job.rc == 0 and "ERROR" not in job.stdout else []
    if len(runs) != 2:
        run.status = (
            "timeout"
            if job.timed_out
            else ("OOM-killed" if job.killed else f"failed (rc {job.rc}, {len(runs)} runs parsed)")
        )
        run.error = (job.stdout + job.stderr)[-2000:]
        print(f"  LAMMPS {atoms} atoms x{ranks}: {run.status}\n{run.error}", file=sys.stderr, flush=True)
        return run
    first, timed = runs
    run.seconds, run.steps, run.builds = timed.loop_time, timed.steps, timed.neighbor_builds
    run.pe0, run.etot0 = first.thermo[0]["PotEng"], first.thermo[0]["TotEng"]
    run.etot_end, run.cpu_use = timed.thermo[-1]["TotEng"], timed.cpu_use
    return run


# ---------------------------------------------------------------------------- table
COLUMNS = [
    ("case", "case"),
    ("atoms", "atoms"),
    ("code", "code"),
    ("ranks", "ranks"),
    ("ms_per_step", "ms/step"),
    ("rate", "M atom-steps/s"),
    ("efficiency", "par. eff."),
    ("ratio", "÷ LAMMPS"),
    ("atoms_per_rank", "atoms/rank min–max"),
    ("rss", "peak RSS GB/rank"),
    ("builds", "NL builds"),
    ("drift", "ΔE/E"),
    ("cpu_use", "CPU use %"),
    ("load", "load"),
    ("status", "status"),
]
FORMATS = {
    "ms_per_step": ".1f",
    "rate": ".3f",
    "efficiency": ".0%",
    "ratio": ".3f",
    "drift": ".1e",
    "cpu_use": ".0f",
    "load": ".2f",
}


def row_of(case: str, run: Run, *, t1: float | None, lammps: Run | None) -> dict[str, Any]:
    """One table/JSON row; ``t1``: the same code's 1-rank seconds per step at this size;
    ``lammps``: LAMMPS at the same size and rank count."""
    ok = run.status == "ok" and run.seconds is not None
    per_step = run.seconds / run.steps if ok else None
    rate = run.atoms / per_step if ok else None
    lmp_ok = lammps is not None and lammps.status == "ok" and lammps.seconds is not None
    lmp_rate = lammps.atoms * lammps.steps / lammps.seconds if lmp_ok else None
    return {
        "case": case,
        "system": run.system,
        "atoms": run.atoms,
        "code": run.code,
        "ranks": run.ranks,
        "grid": run.grid,
        "domain": run.domain,
        "steps": run.steps,
        "seconds": run.seconds,
        "s_per_step": per_step,
        "ms_per_step": 1e3 * per_step if ok else None,
        "rate": rate / 1e6 if ok else None,
        "efficiency": t1 / (run.ranks * per_step) if ok and t1 and run.ranks > 1 else None,
        "ratio": rate / lmp_rate if ok and lmp_rate and run.code != "LAMMPS" else None,
        "atoms_per_rank": f"{min(run.n_owned)}–{max(run.n_owned)}" if run.n_owned else None,
        "n_owned": run.n_owned,
        "rss": " / ".join(f"{x:.2f}" for x in run.peak_rss_gb) if run.peak_rss_gb else None,
        "peak_rss_gb": run.peak_rss_gb,
        "max_rss_gb": max(run.peak_rss_gb) if run.peak_rss_gb else None,
        "tree_rss_gb": run.tree_rss_gb,
        "builds": run.builds,
        # Energy drift only where energy is conserved (NVE); Langevin puts heat in.
        "drift": (run.etot_end - run.etot0) / abs(run.etot0)
        if ok and run.etot0 and run.system == "lj"
        else None,
        "pe0": run.pe0,
        "etot0": run.etot0,
        "etot_end": run.etot_end,
        "cpu_use": run.cpu_use,
        "setup_s": run.setup_s,
        "first_step_s": run.first_step_s,
        "load": run.load,
        "status": run.status,
        "error": run.error,
    }


# ---------------------------------------------------------------------------- cases
def scaling_case(
    n_atoms: int, args: argparse.Namespace, *, warmup: int, steps: int, ranks: list[int], case: str
) -> list[dict[str, Any]]:
    """LJ argon on each rank count, LAMMPS and ssehpc, best of ``--repeats`` (interleaved)."""
    lj_extra = [
        "--dtype",
        args.dtype,
        "--dt",
        str(args.dt),
        "--skin",
        str(args.skin),
        "--temperature",
        str(args.temperature),
        *(["--compile"] if args.compile else []),
    ]
    best: dict[tuple[str, int], Run] = {}
    with tempfile.TemporaryDirectory(prefix="ssehpc-bench-") as tmp:
        data = Path(tmp) / "argon.data"
        if not args.no_lammps:
            initial = make_argon(cells_for(n_atoms), temperature=args.temperature)
            write_lammps_data(initial, data)
            del initial
            gc.collect()
        configs = [("LAMMPS", r) for r in ranks if not args.no_lammps] + [("ssehpc", r) for r in ranks]
        for rep in range(args.repeats):
            for code, r in configs:
                if code == "LAMMPS":
                    run = run_lammps(data, n_atoms, r, args, warmup=warmup, steps=steps)
                else:
                    run = run_ssehpc("lj", n_atoms, r, args, warmup=warmup, steps=steps, extra=lj_extra)
                prev = best.get((code, r))
                if prev is None or prev.status != "ok" or (run.status == "ok" and run.seconds < prev.seconds):
                    best[(code, r)] = run
                per = f"{1e3 * run.seconds / run.steps:.1f} ms/step" if run.status == "ok" else run.status
                print(
                    f"  {case}, {n_atoms} atoms, repeat {rep + 1}/{args.repeats}: {code} x{r}: {per}"
                    f" (load {load_average()[0]:.2f})",
                    file=sys.stderr,
                    flush=True,
                )
    rows = []
    for code, r in configs:
        one = best.get((code, 1))
        t1 = one.seconds / one.steps if one is not None and one.status == "ok" else None
        rows.append(row_of(case, best[(code, r)], t1=t1, lammps=best.get(("LAMMPS", r))))
    return rows


def lips_supercell_atoms(target: int) -> int:
    """Atoms of the β-Li₃PS₄ supercell that the member builds for ``target`` atoms."""
    from ssehpc.builders import supercell
    from ssehpc.structures.lips import beta_li3ps4

    unit = beta_li3ps4()
    reps = supercell(unit, target).info["repeat"]
    return len(unit) * reps[0] * reps[1] * reps[2]


def ml_case(args: argparse.Namespace) -> dict[str, Any]:
    extra = ["--dtype", args.ml_dtype, "--dt", str(args.ml_dt), "--temperature", str(args.ml_temperature)]
    extra += ["--model", args.ml_model, "--skin", str(args.ml_skin)]
    if args.ml_compile:
        extra.append("--compile")
    run = run_ssehpc(
        "lips", args.ml_atoms, args.big_ranks, args, warmup=args.ml_warmup, steps=args.ml_steps, extra=extra
    )
    if run.status != "ok":  # the member did not say; the supercell it was building
        run.atoms = lips_supercell_atoms(args.ml_atoms)
    case = f"big: β-Li3PS4 {args.ml_model} {args.ml_dtype}, Langevin {args.ml_temperature:g} K"
    print(
        f"  {case}, ~{args.ml_atoms} atoms x{args.big_ranks}: "
        + (f"{run.seconds / run.steps:.2f} s/step" if run.status == "ok" else run.status)
        + f" (load {load_average()[0]:.2f})",
        file=sys.stderr,
        flush=True,
    )
    return row_of(case, run, t1=None, lammps=None)


def energy_sanity(rows: list[dict[str, Any]]) -> list[str]:
    """Each ssehpc LJ run against LAMMPS in the same case (same rank count if there is one)."""
    out = []
    for r in rows:
        if r["code"] != "ssehpc" or r["system"] != "lj" or r["status"] != "ok":
            continue
        peers = [
            x
            for x in rows
            if x["code"] == "LAMMPS"
            and x["case"] == r["case"]
            and x["atoms"] == r["atoms"]
            and x["status"] == "ok"
        ]
        ref = next((x for x in peers if x["ranks"] == r["ranks"]), peers[0] if peers else None)
        if ref is None:
            continue
        out.append(
            f"  {r['case']}, {r['atoms']} atoms, ssehpc x{r['ranks']} vs LAMMPS x{ref['ranks']}: PE0 rel. diff "
            f"{abs(r['pe0'] - ref['pe0']) / abs(ref['pe0']):.1e}, E_end rel. diff "
            f"{abs(r['etot_end'] - ref['etot_end']) / abs(ref['etot_end']):.1e}"
        )
    return out


def goals(rows: list[dict[str, Any]], args: argparse.Namespace) -> list[str]:
    out = []
    for r in rows:
        if r["efficiency"] is not None:
            mark = "met" if r["efficiency"] >= args.goal_efficiency else "NOT met"
            out.append(
                f"  {r['case']}, {r['atoms']} atoms, {r['code']} x{r['ranks']}: efficiency "
                f"{r['efficiency']:.0%} (goal ≥ {args.goal_efficiency:.0%}: {mark})"
            )
        if r["case"].startswith("big") and r["code"] == "ssehpc":
            if r["max_rss_gb"] is None:
                out.append(f"  {r['case']}: no RSS ({r['status']})")
                continue
            mark = "met" if r["status"] == "ok" and r["max_rss_gb"] <= args.goal_rss_gb else "NOT met"
            out.append(
                f"  {r['case']}, {r['atoms']} atoms x{r['ranks']}: peak RSS {r['max_rss_gb']:.2f} GB/rank "
                f"(goal ≤ {args.goal_rss_gb:g} GB: {mark}; {r['status']})"
            )
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    g = ap.add_argument_group("strong scaling (LJ argon)")
    g.add_argument(
        "--sizes", type=int, nargs="*", default=[256000], help="atom counts, each 4·n³ (default 256000)"
    )
    g.add_argument("--no-scaling", action="store_true", help="skip the strong-scaling runs")
    g.add_argument(
        "--ranks", type=int, nargs="+", default=[1, 2], help="MPI ranks (1 is the efficiency baseline)"
    )
    g.add_argument("--steps", type=int, default=50, help="timed steps")
    g.add_argument("--warmup", type=int, default=5, help="untimed steps before the timed ones (>= 1)")
    g.add_argument(
        "--repeats", type=int, default=1, help="runs per configuration (interleaved); fastest kept"
    )
    g.add_argument("--dtype", choices=["float64", "float32"], default="float64", help="ssehpc LJ dtype")
    g.add_argument("--temperature", type=float, default=100.0, help="K")
    g.add_argument("--dt", type=float, default=2.0, help="fs")
    g.add_argument("--skin", type=float, default=1.0, help="Å")
    g.add_argument("--no-lammps", action="store_true", help="ssehpc only")
    g.add_argument("--compile", action="store_true", help="ssehpc: the torch.compile-d LJ pair kernel")
    g.add_argument(
        "--require-mpi", action="store_true", help="ssehpc on 1 rank through MPIDomain, not SerialDomain"
    )
    b = ap.add_argument_group("million-atom cells (--big)")
    b.add_argument("--big", action="store_true", help="also run the ~1M-atom LJ and ML cells")
    b.add_argument("--big-ranks", type=int, default=2)
    b.add_argument("--lj-atoms", type=int, default=4 * 63**3, help="LJ atoms, 4·n³ (default 1,000,188)")
    b.add_argument("--lj-warmup", type=int, default=5)
    b.add_argument("--lj-steps", type=int, default=10)
    b.add_argument("--no-ml", action="store_true", help="skip the ML cell")
    b.add_argument("--no-big-lj", action="store_true", help="skip the big LJ cell")
    b.add_argument("--ml-atoms", type=int, default=1_000_000, help="target atoms of the β-Li3PS4 supercell")
    b.add_argument("--ml-model", default="lips")
    b.add_argument("--ml-dtype", choices=["float32", "float64"], default="float32")
    b.add_argument("--ml-dt", type=float, default=1.0, help="fs")
    b.add_argument("--ml-skin", type=float, default=1.0, help="Å")
    b.add_argument("--ml-temperature", type=float, default=600.0, help="K (Langevin)")
    b.add_argument("--ml-warmup", type=int, default=2)
    b.add_argument("--ml-steps", type=int, default=3)
    b.add_argument("--ml-compile", action="store_true", help="torch.compile-d ML kernels")
    m = ap.add_argument_group("memory and limits")
    m.add_argument("--max-rss-gb", type=float, default=9.0, help="per-rank RSS at which a job is stopped")
    m.add_argument("--min-avail-gb", type=float, default=1.0, help="stop a job when MemAvailable drops below")
    m.add_argument("--timeout", type=float, default=3600.0, help="seconds per job")
    m.add_argument("--goal-efficiency", type=float, default=0.85)
    m.add_argument("--goal-rss-gb", type=float, default=8.0)
    ap.add_argument("--no-save", action="store_true", help=f"do not append to bench/results/{BENCH}.jsonl")
    args = ap.parse_args(argv)
    if min(args.warmup, args.lj_warmup, args.ml_warmup) < 1:
        ap.error("warm-up step counts must be at least 1")
    sizes = [] if args.no_scaling else args.sizes
    for n in [*sizes, *([args.lj_atoms] if args.big and not args.no_big_lj else [])]:
        cells_for(n)  # fail now, not after an hour

    info = machine_info()
    print(describe_machine(info))
    print(
        f"ssehpc: bench/mpi_member.py under mpiexec, 1 torch thread per rank, Simulation loop; "
        f"LAMMPS: mpiexec -n R lmp, 1 OpenMP thread; per-rank RSS guard {args.max_rss_gb:g} GB\n"
    )
    table = Table(COLUMNS, FORMATS)
    rows: list[dict[str, Any]] = []
    ranks = sorted(set(args.ranks))
    for n_atoms in sizes:
        rows += scaling_case(
            n_atoms,
            args,
            warmup=args.warmup,
            steps=args.steps,
            ranks=ranks,
            case=f"scaling: LJ Ar {args.dtype}{', compiled' if args.compile else ''}",
        )
    if args.big and not args.no_big_lj:
        rows += scaling_case(
            args.lj_atoms,
            args,
            warmup=args.lj_warmup,
            steps=args.lj_steps,
            ranks=[args.big_ranks],
            case=f"big: LJ Ar {args.dtype}{', compiled' if args.compile else ''}",
        )
    if args.big and not args.no_ml:
        rows.append(ml_case(args))
    for r in rows:
        table.add(r)
    print()
    table.print()
    sanity = energy_sanity(rows)
    if sanity:
        print("\nEnergy sanity (same initial configuration in both codes):")
        print("\n".join(sanity))
    busy = [r for r in rows if r["cpu_use"] is not None and r["cpu_use"] < 90]
    if busy or load_average()[0] > info["cores"]:
        print(
            f"\nNote: the machine was oversubscribed (load {load_average()[0]:.2f} on {info['cores']} cores; "
            f"{len(busy)} run(s) below 90 % CPU use): wall times and efficiencies are not meaningful."
        )
    checks = goals(rows, args)
    if checks:
        print("\nGoals:")
        print("\n".join(checks))
    if not args.no_save and rows:
        path = append_results(BENCH, rows, info, **vars(args))
        print(f"\nrows appended to {path}")


if __name__ == "__main__":
    main()
