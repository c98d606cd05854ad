"""One ssehpc run of ``bench/mpi_scaling.py`` on however many MPI ranks it was started with.

    SSEHPC_NRANKS=2 OMP_NUM_THREADS=1 mpiexec -n 2 .venv/bin/python bench/mpi_member.py \\
        --system lj --atoms 256000 --warmup 5 --steps 50

Every rank builds the same full state (``--system lj``: fcc argon of ``bench/lj_argon.py``,
bit-for-bit the configuration that the driver writes to the LAMMPS data file; ``--system lips``:
a β-Li₃PS₄ supercell of about ``--atoms`` atoms for the shipped ML committee ``lips``), keeps
the atoms its brick owns (``domain.distribute``), frees the rest, and runs the package's
``Simulation`` (no operations) with one torch thread: the initial force computation, one step
(memory check), the remaining warm-up steps, then ``--steps`` timed steps between two barriers.

Rank 0 prints one line ``MPI_MEMBER {json}`` with the wall time of the timed steps, the owned
atoms of every rank, the peak RSS of every rank (``ru_maxrss``), CPU time per rank, neighbour-list
builds and float64 sums of the initial and final energies.  A rank that fails prints its own
``MPI_MEMBER {"status": ...}`` line first ("oom": an allocation failed; "rss-limit": the memory
guard fired) and then ends the whole job.

Memory guard: a watchdog thread samples the RSS of the rank (and the machine's MemAvailable)
every 0.2 s; above ``--max-rss-gb`` (or below ``--min-avail-gb``) it prints the reason and ends
the process at once (``os._exit``), which MPICH's ``mpiexec`` turns into the end of the job, before
the kernel's OOM killer picks a victim on a shared machine.  The same limit is checked
explicitly after the set-up and after the first step.  With ``--rss-log DIR`` each rank keeps
``DIR/rank<r>.json`` (stage, current and peak RSS) up to date, so the driver can report the RSS
of a rank that was killed.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import sys
import threading
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

MARK = "MPI_MEMBER "
_PAGE = os.sysconf("SC_PAGE_SIZE")


# ---------------------------------------------------------------------------- memory
def rss_gb() -> float:
    """Current resident set size of this process, GB (10⁹ bytes)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * _PAGE / 1e9


def peak_rss_gb() -> float:
    """Peak resident set size of this process so far (``ru_maxrss``, kB on Linux), GB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1e3 / 1e9


def mem_available_gb() -> float:
    """``MemAvailable`` of the machine, GB (``inf`` if unknown)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1e3 / 1e9
    except OSError:
        pass
    return float("inf")


def emit(payload: dict[str, Any]) -> None:
    """One result/status line on stdout (the driver parses lines starting with ``MARK``)."""
    sys.stdout.write(MARK + json.dumps(payload) + "\n")
    sys.stdout.flush()


class MemoryGuard(threading.Thread):
    """Watchdog: ends the process when its RSS exceeds ``limit_gb`` or the machine's available
    memory drops below ``min_avail_gb``; keeps ``log_path`` (if any) up to date."""

    def __init__(
        self, rank: int, limit_gb: float, min_avail_gb: float, log_path: Path | None, interval: float = 0.2
    ) -> None:
        super().__init__(daemon=True, name="memory-guard")
        self.rank, self.limit_gb, self.min_avail_gb = rank, limit_gb, min_avail_gb
        self.log_path, self.interval = log_path, interval
        self.stage = "start"
        self.peak = 0.0

    def set_stage(self, stage: str) -> None:
        self.stage = stage
        self._log(rss_gb())

    def _log(self, rss: float) -> None:
        if self.log_path is None:
            return
        tmp = self.log_path.with_suffix(".tmp")
        try:
            tmp.write_text(
                json.dumps({"rank": self.rank, "stage": self.stage, "rss_gb": rss, "peak_rss_gb": self.peak})
            )
            tmp.replace(self.log_path)
        except OSError:
            pass

    def check(self, where: str) -> None:
        """Explicit check (after set-up, after the first step): raise, with the numbers, if over."""
        rss, peak = rss_gb(), peak_rss_gb()
        self.peak = max(self.peak, rss, peak)
        self._log(rss)
        if peak > self.limit_gb:
            msg = (
                f"rank {self.rank}: peak RSS {peak:.2f} GB after {where} exceeds --max-rss-gb "
                f"{self.limit_gb:g}; not continuing"
            )
            emit(
                {
                    "status": "rss-limit",
                    "rank": self.rank,
                    "stage": where,
                    "rss_gb": rss,
                    "peak_rss_gb": peak,
                    "error": msg,
                }
            )
            raise MemoryError(msg)

    def run(self) -> None:
        last_log = 0.0
        while True:
            rss = rss_gb()
            self.peak = max(self.peak, rss)
            avail = mem_available_gb()
            reason = None
            if rss > self.limit_gb:
                reason = f"RSS {rss:.2f} GB exceeds --max-rss-gb {self.limit_gb:g}"
            elif avail < self.min_avail_gb:
                reason = f"machine MemAvailable {avail:.2f} GB below --min-avail-gb {self.min_avail_gb:g}"
            if reason is not None:
                self._log(rss)
                msg = f"memory guard: rank {self.rank} during {self.stage}: {reason}; ending the job"
                emit(
                    {
                        "status": "rss-limit",
                        "rank": self.rank,
                        "stage": self.stage,
                        "rss_gb": rss,
                        "peak_rss_gb": self.peak,
                        "mem_available_gb": avail,
                        "error": msg,
                    }
                )
                sys.stderr.write(msg + "\n")
                sys.stderr.flush()
                os._exit(3)
            now = time.monotonic()
            if now - last_log > 1.0:
                self._log(rss)
                last_log = now
            time.sleep(self.interval)


# ---------------------------------------------------------------------------- systems
def build_state(args: argparse.Namespace):
    """The full state, the same on every rank (keyed RNG for the momenta)."""
    from ssehpc import thermo
    from ssehpc.parallel.domain import SerialDomain

    dtype = getattr(torch, args.dtype)
    if args.system == "lj":
        from lj_argon import cells_for, make_argon

        return make_argon(cells_for(args.atoms), dtype=dtype, temperature=args.temperature, seed=args.seed)
    from ssehpc.builders import supercell
    from ssehpc.io.structure import atoms_to_state
    from ssehpc.structures.lips import beta_li3ps4

    atoms = supercell(beta_li3ps4(), args.atoms)
    state = atoms_to_state(atoms, dtype=dtype, seed=args.seed)
    del atoms
    thermo.maxwell_boltzmann(state, SerialDomain(), args.temperature)
    return state


def build_forces(args: argparse.Namespace, domain):
    from ssehpc.forces import ForceCompute

    if args.system == "lj":
        from lj_argon import CUTOFF, EPSILON, SIGMA

        from ssehpc.potentials.lj import LennardJones

        pot = LennardJones(epsilon=EPSILON, sigma=SIGMA, cutoff=CUTOFF, compile=args.compile)
    else:
        from ssehpc.potentials import make_potential

        pot = make_potential("mlff", model=args.model, dtype=args.dtype, compile=args.compile)
    return ForceCompute(pot, domain, skin=args.skin)


def build_integrator(args: argparse.Namespace):
    if args.integrator == "nve":
        from ssehpc.integrators.nve import VelocityVerlet

        return VelocityVerlet(args.dt)
    from ssehpc.integrators import make_integrator

    return make_integrator("langevin", args.dt, temperature=args.temperature, damping=args.damping)


def energies(state, fc, domain) -> tuple[float, float]:
    """``(potential, total)`` eV, summed in float64 over owned atoms and ranks (the per-system
    sums of the state accumulate in the state's dtype, too coarse for float32 drift)."""
    from ssehpc import units

    pe = fc.energies.double().sum()
    ke = 0.5 * units.MVV2E * (state.momenta.double() ** 2 / state.masses.double()[:, None]).sum()
    pe, ke = domain.allreduce_sum(torch.stack([pe, ke])).tolist()
    return pe, pe + ke


def allgather(domain, value: Any) -> list[Any]:
    comm = getattr(domain, "comm", None)
    return comm.allgather(value) if comm is not None else [value]


# ---------------------------------------------------------------------------- run
def run(args: argparse.Namespace, domain, guard: MemoryGuard) -> dict[str, Any]:
    from ssehpc.simulation import Simulation

    t_start = time.perf_counter()
    guard.set_stage("build")
    full = build_state(args)
    n_atoms = full.n_atoms
    guard.set_stage("distribute")
    state = domain.distribute(full)
    del full  # the distributed state keeps only this rank's rows
    gc.collect()
    fc = build_forces(args, domain)
    sim = Simulation(state, fc, build_integrator(args), [])
    guard.set_stage("initial forces")
    sim.run(0)  # initial forces: first neighbour list, ghosts
    pe0, etot0 = energies(state, fc, domain)
    t_setup = time.perf_counter() - t_start
    guard.check("set-up")
    guard.set_stage("first step")
    t0 = time.perf_counter()
    sim.run(1)
    t_first = time.perf_counter() - t0
    guard.check("the first step")
    guard.set_stage("warm-up")
    sim.run(args.warmup - 1)
    guard.set_stage("timed steps")
    builds0 = fc.nl.n_builds
    domain.barrier()
    t0, c0 = time.perf_counter(), time.process_time()
    sim.run(args.steps)
    cpu = time.process_time() - c0
    domain.barrier()
    seconds = time.perf_counter() - t0
    guard.set_stage("done")
    pe1, etot1 = energies(state, fc, domain)
    per_rank = allgather(
        domain,
        {
            "n_owned": state.n_atoms,
            "n_ghost": fc.local.n_ghost if fc.local is not None else 0,
            "peak_rss_gb": peak_rss_gb(),
            "rss_gb": rss_gb(),
            "cpu_s": cpu,
        },
    )
    return {
        "status": "ok",
        "system": args.system,
        "atoms": n_atoms,
        "ranks": getattr(domain, "size", 1),
        "grid": list(getattr(domain, "grid", None) or (1, 1, 1)),
        "domain": type(domain).__name__,
        "dtype": args.dtype,
        "integrator": args.integrator,
        "warmup": args.warmup,
        "steps": args.steps,
        "seconds": seconds,
        "setup_s": t_setup,
        "first_step_s": t_first,
        "neighbor_builds": fc.nl.n_builds - builds0,
        "pe0": pe0,
        "etot0": etot0,
        "pe_end": pe1,
        "etot_end": etot1,
        "n_owned": [r["n_owned"] for r in per_rank],
        "n_ghost": [r["n_ghost"] for r in per_rank],
        "peak_rss_gb": [r["peak_rss_gb"] for r in per_rank],
        "rss_end_gb": [r["rss_gb"] for r in per_rank],
        "cpu_s": [r["cpu_s"] for r in per_rank],
        "cpu_use": 100.0 * sum(r["cpu_s"] for r in per_rank) / (seconds * len(per_rank)),
        "torch_threads": torch.get_num_threads(),
    }


def _is_alloc_failure(err: BaseException) -> bool:
    return isinstance(err, MemoryError) or (
        isinstance(err, RuntimeError) and ("allocate memory" in str(err) or "out of memory" in str(err))
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--system", choices=["lj", "lips"], default="lj")
    ap.add_argument(
        "--atoms", type=int, required=True, help="lj: 4·n³; lips: target (nearest isotropic supercell)"
    )
    ap.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    ap.add_argument(
        "--integrator", choices=["nve", "langevin"], default=None, help="default: lj nve, lips langevin"
    )
    ap.add_argument("--temperature", type=float, default=None, help="K (default: lj 100, lips 600)")
    ap.add_argument("--damping", type=float, default=100.0, help="Langevin damping time, fs")
    ap.add_argument("--dt", type=float, default=2.0, help="fs")
    ap.add_argument("--skin", type=float, default=1.0, help="Å")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--model", default="lips", help="lips: ML model name or file")
    ap.add_argument(
        "--compile", action="store_true", help="torch.compile-d kernels (LJ pair kernel, ML stages)"
    )
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps (>= 1)")
    ap.add_argument("--steps", type=int, default=20, help="timed steps")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads per rank")
    ap.add_argument("--require-mpi", action="store_true", help="MPIDomain even on one rank")
    ap.add_argument("--max-rss-gb", type=float, default=9.0, help="per-rank RSS limit, GB")
    ap.add_argument("--min-avail-gb", type=float, default=1.0, help="end the job below this MemAvailable, GB")
    ap.add_argument("--rss-log", type=Path, default=None, help="directory for rank<r>.json RSS records")
    args = ap.parse_args(argv)
    if args.warmup < 1:
        ap.error("--warmup must be at least 1 (the first step is the memory check)")
    if args.integrator is None:
        args.integrator = "nve" if args.system == "lj" else "langevin"
    if args.temperature is None:
        args.temperature = 100.0 if args.system == "lj" else 600.0
    torch.set_num_threads(args.threads)

    from ssehpc.parallel.runtime import abort_on_error, make_domain

    domain = make_domain(require_mpi=args.require_mpi)
    rank = getattr(domain, "rank", 0)
    log_path = None
    if args.rss_log is not None:
        args.rss_log.mkdir(parents=True, exist_ok=True)
        log_path = args.rss_log / f"rank{rank}.json"
    guard = MemoryGuard(rank, args.max_rss_gb, args.min_avail_gb, log_path)
    guard.start()
    with abort_on_error(domain):
        try:
            result = run(args, domain, guard)
        except Exception as err:
            if _is_alloc_failure(err) and "exceeds --max-rss-gb" not in str(err):
                emit(
                    {
                        "status": "oom",
                        "rank": rank,
                        "stage": guard.stage,
                        "rss_gb": rss_gb(),
                        "peak_rss_gb": peak_rss_gb(),
                        "error": f"{type(err).__name__}: {' '.join(str(err).split())[:300]}",
                    }
                )
            raise
        if rank == 0:
            emit(result)


if __name__ == "__main__":
    main()
