"""What a Dask worker does with one replica chain: run its stages in order, resuming what exists.

:func:`run_chain` is the task the controller submits.  It takes a :class:`ChainSpec` (plain data)
and returns a :class:`ChainOutcome` (plain data); tensors stay inside the worker.  For each stage
it looks at the run group in the store:

=====================================  ==================================================
run group status                       action
=====================================  ==================================================
absent or ``pending``                  start it (:func:`ssehpc.spec.prepare_run`)
``completed``                          skip it
``failed``                             report it, stop the chain (``retry_failed``: resume)
``created``/``running``/``stopped``/   resume from its checkpoint
``interrupted`` with a checkpoint      (:func:`ssehpc.spec.prepare_resume`: frames after
                                       the checkpoint are dropped, then written again)
the same without a checkpoint          start it again from scratch
=====================================  ==================================================

**One writer per run group.**  The whole chain runs under an exclusive ``flock`` on
``<store>/locks/<chain_id>.lock``.  The kernel drops the lock when its process dies (SIGKILL,
node failure on a local file system), so a task that Dask reschedules after a worker death gets
it at once; a task started while an older copy is still alive (a worker that lost its scheduler
but not its process) waits for it.  Workers write only their own run groups, never the root.

**Draining.**  A worker that is retiring (``--lifetime`` near the Slurm walltime, or
``retire_workers``) is noticed between steps: the run writes a checkpoint at once, records status
``interrupted`` and the outcome ``drained``, and the controller submits the chain again.

**MPI members** (``TaskOptions.ranks > 1``, Slurm only): each stage runs as an
``srun -n R --mpi=<plugin>`` step inside the worker's allocation (:func:`run_stage_srun`); every
rank runs :func:`member_main`, which starts or resumes the run as above.  They are not drained.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import json
import logging
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ssehpc.campaign.plan import ChainSpec, RunSpec
from ssehpc.io.checkpoint import has_checkpoint
from ssehpc.io.zarr_store import RunStore, ZarrStore
from ssehpc.screen.guard import ExtrapolationStop

log = logging.getLogger(__name__)

#: Group of the store that holds the chain lock files (``locks/<chain_id>.lock``).
LOCKS_GROUP = "locks"

#: Store statuses of runs that have started and may be resumed.
RESUMABLE = frozenset({"created", "running", "stopped", "interrupted", "failed"})


class ChainBusyError(RuntimeError):
    """Another live process holds the chain's lock (it is still writing the runs)."""


class WorkerDraining(KeyboardInterrupt):
    """The worker is retiring; the run was checkpointed and stops (status ``interrupted``)."""


@dataclass(frozen=True)
class TaskOptions:
    """How :func:`run_chain` behaves (sent with every task).

    Attributes:
        threads: torch intra-op threads of the run.
        retry_failed: resume (or restart) runs whose status is ``failed`` instead of reporting them.
        lock_timeout_s: how long to wait for a chain lock held by another process, s.
        drain_check_s: how often to ask whether the worker is retiring, s (0: never).
        ranks: MPI ranks per run; above 1 each stage runs as an ``srun -n ranks`` step inside the
            worker's Slurm job (:func:`run_stage_srun`).
        mpi: ``srun --mpi`` plugin of those steps.
        srun_args: more ``srun`` arguments of those steps.
    """

    threads: int = 1
    retry_failed: bool = False
    lock_timeout_s: float = 300.0
    drain_check_s: float = 2.0
    ranks: int = 1
    mpi: str = "pmi2"
    srun_args: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunOutcome:
    """What happened to one run in one task.

    Attributes:
        run_id: the run.
        status: ``done`` (completed now or before), ``failed`` (see ``error``), ``drained``
            (checkpointed because the worker retires; to be continued).
        error: ``"<ExceptionType>: <message>"`` of a failure.
        start_step: the step this attempt started from (``None``: nothing was run).
        end_step: the step it reached.
        dt_fs: time step, fs.
        wall_s: wall time of this attempt, s.
        skipped: nothing was run (already completed, or failed before and not retried).
    """

    run_id: str
    status: str
    error: str | None = None
    start_step: int | None = None
    end_step: int | None = None
    dt_fs: float = 0.0
    wall_s: float = 0.0
    skipped: bool = False

    @property
    def simulated_fs(self) -> float:
        """Simulated in this attempt, fs."""
        if self.start_step is None or self.end_step is None:
            return 0.0
        return (self.end_step - self.start_step) * self.dt_fs


@dataclass(frozen=True)
class ChainOutcome:
    """What happened to one chain in one task.

    Attributes:
        chain_id: the chain.
        runs: outcomes of the runs looked at, in order (the chain stops at the first run that is
            not done).
        host: where the task ran.
        pid: process id of the worker.
        busy: the chain lock was held by another process for longer than the timeout.
    """

    chain_id: str
    runs: tuple[RunOutcome, ...] = field(default_factory=tuple)
    host: str = ""
    pid: int = 0
    busy: str | None = None

    @property
    def status(self) -> str:
        """``done``, ``failed``, ``drained`` or ``busy``."""
        if self.busy is not None:
            return "busy"
        for r in self.runs:
            if r.status != "done":
                return r.status
        return "done"


# ---------------------------------------------------------------------- locking
def lock_path(store: str | Path, chain_id: str) -> Path:
    """Lock file of a chain: ``<store>/locks/<chain_id>.lock``."""
    return Path(store) / LOCKS_GROUP / f"{chain_id}.lock"


@contextlib.contextmanager
def chain_lock(path: Path, timeout_s: float, poll_s: float = 0.2) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for the ``with`` block.

    Args:
        path: the lock file.
        timeout_s: give up after this many seconds, s (0: try once).
        poll_s: retry interval, s.

    Raises:
        ChainBusyError: another process holds it (its host and pid are in the message).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    locked = False
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                locked = True
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = Path(path).read_text().strip() or "unknown"
                    raise ChainBusyError(
                        f"lock '{path}' is held by another process ({holder}) for more than {timeout_s:g} s"
                    ) from None
                time.sleep(poll_s)
            except OSError as exc:
                if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                    raise
                # A file system without locks (some NFS/Lustre mounts): Dask alone then keeps one
                # copy of a task running, which holds unless a worker outlives its scheduler.
                log.warning("file locks are not supported for '%s' (%s); continuing without", path, exc)
                break
        if locked:
            os.ftruncate(fd, 0)
            os.write(fd, f"{socket.gethostname()} pid {os.getpid()} since {_now()}\n".encode())
        yield
    finally:
        if locked:
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


#: glibc's trim threshold for MD processes, bytes.  Dask's nanny starts workers with
#: ``MALLOC_TRIM_THRESHOLD_=65536`` (to give memory back to the OS); torch frees and re-allocates
#: its step temporaries every MD step, so with that setting glibc returns and re-faults the pages
#: every step: a 2,000-step LJ run spent as much system time as user time (bench/campaign_overhead).
MD_MALLOC_TRIM_THRESHOLD = 256 * 2**20
#: glibc's mmap threshold for MD processes, bytes (32 MB: glibc's largest on 64-bit).
MD_MALLOC_MMAP_THRESHOLD = 32 * 2**20


def tune_allocator() -> bool:
    """Raise glibc's ``M_TRIM_THRESHOLD`` and ``M_MMAP_THRESHOLD`` in this process
    (:data:`MD_MALLOC_TRIM_THRESHOLD`, :data:`MD_MALLOC_MMAP_THRESHOLD`; a no-op elsewhere).  Called by every campaign task before it runs MD; returns whether it
    took effect."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
        # A fixed trim threshold also fixes the mmap threshold at 128 kB (glibc stops adapting
        # it), so every mid-size tensor would be an mmap/munmap pair: allow up to 32 MB on the heap.
        ok = libc.mallopt(m_trim_threshold, MD_MALLOC_TRIM_THRESHOLD)
        ok &= libc.mallopt(m_mmap_threshold, MD_MALLOC_MMAP_THRESHOLD)
        return bool(ok)
    except (OSError, AttributeError):
        return False


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------------- the task
def run_chain(chain: ChainSpec, options: TaskOptions | None = None) -> ChainOutcome:
    """Run (or resume) every stage of ``chain`` in order; the Dask task of a campaign.

    Never raises for a failing run: the run group records ``failed`` with the error text and the
    outcome says so; the chain stops there (later stages stay ``pending``).
    """
    options = options or TaskOptions()
    import torch

    torch.set_num_threads(options.threads)
    tune_allocator()
    host, pid = socket.gethostname(), os.getpid()
    outcomes: list[RunOutcome] = []
    try:
        with chain_lock(lock_path(chain.store, chain.chain_id), options.lock_timeout_s):
            for run in chain.runs:
                outcome = run_stage(chain.store, run, options)
                outcomes.append(outcome)
                if outcome.status != "done":
                    break
    except ChainBusyError as exc:
        return ChainOutcome(chain.chain_id, tuple(outcomes), host, pid, busy=str(exc))
    return ChainOutcome(chain.chain_id, tuple(outcomes), host, pid)


def open_run(store: ZarrStore, run_id: str) -> RunStore | None:
    """The run group ``run_id``, or ``None`` (without listing every run of the store)."""
    try:
        return RunStore(store.group["runs"][run_id], store.path)
    except KeyError:
        return None


def run_stage(store_path: str | Path, run: RunSpec, options: TaskOptions) -> RunOutcome:
    """Start, resume or skip one run (see the module docstring)."""
    from ssehpc.spec import prepare_resume, prepare_run

    t0 = time.perf_counter()
    store = ZarrStore.open(store_path, "r+")
    existing = open_run(store, run.run_id)
    status = existing.status if existing is not None else None
    extend = extension_steps(existing, run)
    if status == "completed" and extend is None:
        return RunOutcome(run.run_id, "done", dt_fs=run.dt_fs, skipped=True)
    if status == "extrapolating":  # resuming would only replay the same trajectory into the same stop
        return RunOutcome(run.run_id, "extrapolating", error=existing.error, dt_fs=run.dt_fs, skipped=True)
    if status == "failed" and not options.retry_failed:
        return RunOutcome(run.run_id, "failed", error=existing.error, dt_fs=run.dt_fs, skipped=True)
    if options.ranks > 1:
        return run_stage_srun(store_path, run, options)
    resume = (
        existing is not None
        and (status in RESUMABLE or extend is not None)
        and "checkpoint" in existing.group
        and has_checkpoint(existing.group["checkpoint"])
    )
    sink = open(os.devnull, "w")  # noqa: SIM115 - closed below
    thermo = None if run.md.get("thermo_interval") else sink  # rows go to the worker's log if asked for
    try:
        try:
            if resume:
                mdrun = prepare_resume(store_path, run.run_id, steps=extend, thermo_stream=thermo)
            else:
                mdrun = prepare_run(
                    run.mdspec(), overwrite=True, thermo_stream=thermo, extra_attrs={"campaign": run.labels()}
                )
        except Exception as exc:
            error = _error_text(exc)
            _record_failure(store, run.run_id, error)
            return RunOutcome(
                run.run_id, "failed", error=error, dt_fs=run.dt_fs, wall_s=time.perf_counter() - t0
            )
        sim, rstore = mdrun.simulation, mdrun.store
        start = sim.state.step
        assert rstore is not None  # serial: this process writes
        # A run started again from scratch keeps the record of its earlier attempts.
        prior = existing.attrs.get("campaign_attempts") if existing is not None else None
        attempts = list(rstore.attrs.get("campaign_attempts") or prior or [])
        attempts.append({"start_step": start, "host": socket.gethostname(), "pid": os.getpid(), "at": _now()})
        rstore.update_attrs(campaign_attempts=attempts)
        sim.progress = DrainWatch(sim, lambda: _checkpoint_now(sim), options.drain_check_s)
        try:
            mdrun.execute()
        except WorkerDraining as exc:
            return RunOutcome(
                run.run_id, "drained", str(exc), start, sim.state.step, run.dt_fs, time.perf_counter() - t0
            )
        except ExtrapolationStop as exc:  # the simulation has recorded status "extrapolating"
            return RunOutcome(
                run.run_id,
                "extrapolating",
                _error_text(exc),
                start,
                sim.state.step,
                run.dt_fs,
                time.perf_counter() - t0,
            )
        except Exception as exc:  # the simulation has recorded status "failed" and kept its data
            return RunOutcome(
                run.run_id,
                "failed",
                _error_text(exc),
                start,
                sim.state.step,
                run.dt_fs,
                time.perf_counter() - t0,
            )
        return RunOutcome(
            run.run_id, "done", None, start, sim.state.step, run.dt_fs, time.perf_counter() - t0
        )
    finally:
        sink.close()


def extension_steps(existing: RunStore | None, run: RunSpec) -> int | None:
    """``run.steps`` if it asks a *completed* run to go on (an adaptive extension: more steps
    than the run's recorded target), else ``None``.  A run extended earlier keeps its longer
    target: a spec asking for fewer steps does not shorten it."""
    if existing is None or existing.status != "completed":
        return None
    target = existing.target_steps
    return run.steps if target is not None and run.steps > target else None


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def _record_failure(store: ZarrStore, run_id: str, error: str) -> None:
    """Mark a run that could not even start as ``failed`` (if its group exists)."""
    run = open_run(store, run_id)
    if run is None:
        return
    try:
        run.set_status("failed", error)
    except Exception as inner:
        log.error("could not record the failure of run %r: %s", run_id, inner)


class DrainWatch:
    """Progress callback that checkpoints and stops the run when its Dask worker retires.

    Args:
        sim: the simulation (its step goes into the message).
        checkpoint: writes the checkpoint(s) of the run (or of every replica of a batch).
        every_s: how often to ask the worker, s (0: never).
    """

    def __init__(self, sim: Any, checkpoint: Callable[[], None], every_s: float) -> None:
        self.sim = sim
        self.checkpoint = checkpoint
        self.every_s = every_s
        self._next = time.monotonic() + every_s
        self._worker = _current_worker() if every_s > 0 else None

    def __call__(self, done: int, total: int) -> None:
        if self._worker is None or done == 0 or done == total:
            return
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self.every_s
        status = getattr(self._worker.status, "name", "")
        if status in ("closing_gracefully", "closing", "closed"):
            self.checkpoint()
            raise WorkerDraining(
                f"worker {status.replace('_', ' ')}; checkpointed at step {self.sim.state.step}"
            )


def _checkpoint_now(sim: Any) -> None:
    """Run the simulation's checkpoint writers now."""
    from ssehpc.simulation import CheckpointWriter

    for op in sim.operations:
        if isinstance(op, CheckpointWriter):
            op(sim)


def _current_worker() -> Any:
    try:
        from distributed import get_worker

        return get_worker()
    except (ImportError, ValueError):
        return None


# ---------------------------------------------------------------------- MPI members
#: Prefix of the line in which the writer rank of an MPI member reports its outcome (JSON).
OUTCOME_TAG = "SSEHPC_MEMBER_OUTCOME "


def srun_command(store_path: str | Path, run: RunSpec, options: TaskOptions) -> list[str]:
    """The ``srun`` step that runs one stage on ``options.ranks`` MPI ranks (:func:`member_main`)."""
    payload = json.dumps({"run": dataclasses.asdict(run), "retry_failed": options.retry_failed})
    return [
        "srun",
        "-n",
        str(options.ranks),
        "-c",
        "1",
        f"--mpi={options.mpi}",
        "--kill-on-bad-exit=1",  # a rank that dies ends the step; the others do not spin on
        *options.srun_args,
        sys.executable,
        "-c",
        "from ssehpc.campaign.task import member_main; member_main()",
        str(Path(store_path).resolve()),
        payload,
    ]


def run_stage_srun(store_path: str | Path, run: RunSpec, options: TaskOptions) -> RunOutcome:
    """Start or resume one run as an MPI job step (after :func:`run_stage` skipped done and failed
    runs): ``srun -n R --mpi=<mpi>`` inside the
    worker's Slurm allocation (a dask-jobqueue worker is one Slurm task).

    The step's ranks decide start/resume exactly as :func:`run_stage` does and write into the
    same store (the writer rank only); this worker holds the chain lock meanwhile.  If the step
    dies without reporting (MPI_Abort, srun error, killed), the run is recorded ``failed`` with the
    end of srun's output unless the step recorded a failure itself.  MPI members are not drained
    when the worker retires: the step runs on until the job ends, and the run resumes from its
    last checkpoint (its status stays ``running``/``interrupted``, a resumable status).
    """
    t0 = time.perf_counter()
    # MPI_Init can fail transiently (a UCX address exchange): the ranks create ``ready`` once MPI is
    # up (ssehpc.parallel.runtime.mark_mpi_ready), so a step that failed without it computed
    # nothing and is started once more.
    ready = Path(store_path).resolve().parent / f".ssehpc-mpi-ready.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    env = dict(
        os.environ,
        SSEHPC_NRANKS=str(options.ranks),
        OMP_NUM_THREADS=str(options.threads),
        SSEHPC_MPI_READY=str(ready),
    )
    cmd = srun_command(store_path, run, options)
    log.info("run %s: %s", run.run_id, " ".join(cmd[:-1]))
    try:
        for attempt in (1, 2):
            ready.unlink(missing_ok=True)
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
            if proc.returncode == 0 or ready.exists() or attempt == 2:
                break
            tail = " ".join((proc.stderr or proc.stdout).split()[-30:])
            log.warning(
                "run %s: MPI did not start (srun exit %d: %s); starting the step once more",
                run.run_id,
                proc.returncode,
                tail,
            )
    finally:
        ready.unlink(missing_ok=True)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(OUTCOME_TAG):
            data = json.loads(line[len(OUTCOME_TAG) :])
            data["wall_s"] = time.perf_counter() - t0
            return RunOutcome(**data)
    tail = " ".join((proc.stderr or proc.stdout).split()[-60:])
    error = f"SrunError: srun -n {options.ranks} --mpi={options.mpi} exited with {proc.returncode}: {tail}"
    fresh = ZarrStore.open(store_path, "r+")  # what the step wrote, not this process's old view
    existing = open_run(fresh, run.run_id)
    if existing is not None and existing.status == "failed" and existing.error:
        error = existing.error
    else:
        _record_failure(fresh, run.run_id, error)
    return RunOutcome(run.run_id, "failed", error=error, dt_fs=run.dt_fs, wall_s=time.perf_counter() - t0)


def member_main(argv: list[str] | None = None) -> None:
    """Entry point of every rank of an MPI member step (see :func:`srun_command`): start or resume
    one run on ``MPI.COMM_WORLD``; the writer rank records the attempt (with the rank count) and
    prints the outcome as one ``SSEHPC_MEMBER_OUTCOME {json}`` line."""
    from ssehpc.parallel.runtime import abort_on_error, mark_mpi_ready, mpi_size
    from ssehpc.spec import prepare_resume, prepare_run

    mpi_size()  # MPI_Init; then tell run_stage_srun that MPI started (no second try after this)
    mark_mpi_ready()
    store_path, payload = (argv if argv is not None else sys.argv[1:])[:2]
    data = json.loads(payload)
    run = RunSpec(**data["run"])
    retry_failed = bool(data.get("retry_failed"))
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    tune_allocator()  # srun steps inherit the worker's MALLOC_TRIM_THRESHOLD_
    # Every rank reads the same state: the worker that started this step holds the chain lock.
    existing = open_run(ZarrStore.open(store_path, "r"), run.run_id)
    status = existing.status if existing is not None else None
    extend = extension_steps(existing, run)
    resume = (
        existing is not None
        and (status in RESUMABLE or extend is not None)
        and (status != "failed" or retry_failed)
        and "checkpoint" in existing.group
        and has_checkpoint(existing.group["checkpoint"])
    )
    del existing
    sink = open(os.devnull, "w")  # noqa: SIM115 - closed below
    thermo = None if run.md.get("thermo_interval") else sink

    def report(outcome: RunOutcome, is_root: bool) -> None:
        if is_root:
            sys.stdout.write(OUTCOME_TAG + json.dumps(dataclasses.asdict(outcome)) + "\n")
            sys.stdout.flush()

    try:
        try:
            if resume:
                mdrun = prepare_resume(store_path, run.run_id, steps=extend, thermo_stream=thermo)
            else:
                mdrun = prepare_run(
                    run.mdspec(), overwrite=True, thermo_stream=thermo, extra_attrs={"campaign": run.labels()}
                )
        except Exception as exc:  # raised on every rank (the writer rank's error is broadcast)
            from ssehpc.parallel.runtime import make_domain

            error = _error_text(exc)
            # A launch error (wrong --mpi plugin) means every process is its own rank 0.
            root = (
                os.environ.get("SLURM_PROCID", "0") == "0"
                if "LaunchError" in error
                else make_domain().is_root
            )
            if root:
                _record_failure(ZarrStore.open(store_path, "r+"), run.run_id, error)
            report(RunOutcome(run.run_id, "failed", error=error, dt_fs=run.dt_fs), root)
            return
        sim, rstore = mdrun.simulation, mdrun.store
        domain = sim.forces.domain
        start = sim.state.step
        if rstore is not None:
            attempts = list(rstore.attrs.get("campaign_attempts") or [])
            attempts.append(
                {
                    "start_step": start,
                    "host": socket.gethostname(),
                    "pid": os.getpid(),
                    "at": _now(),
                    "ranks": int(getattr(domain, "size", 1)),
                    "slurm_step": f"{os.environ.get('SLURM_JOB_ID', '?')}.{os.environ.get('SLURM_STEP_ID', '?')}",
                }
            )
            rstore.update_attrs(campaign_attempts=attempts)
        try:
            with abort_on_error(domain):
                mdrun.execute()
        except ExtrapolationStop as exc:  # every rank stops at the same step (reduced deviation)
            report(
                RunOutcome(run.run_id, "extrapolating", _error_text(exc), start, sim.state.step, run.dt_fs),
                rstore is not None,
            )
            return
        report(RunOutcome(run.run_id, "done", None, start, sim.state.step, run.dt_fs), rstore is not None)
    finally:
        sink.close()
