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
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ssehpc.campaign.plan import ChainSpec, RunSpec
from ssehpc.io.checkpoint import has_checkpoint
from ssehpc.io.zarr_store import RunStore, ZarrStore

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
    """

    threads: int = 1
    retry_failed: bool = False
    lock_timeout_s: float = 300.0
    drain_check_s: float = 2.0


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
    if status == "completed":
        return RunOutcome(run.run_id, "done", dt_fs=run.dt_fs, skipped=True)
    if status == "failed" and not options.retry_failed:
        return RunOutcome(run.run_id, "failed", error=existing.error, dt_fs=run.dt_fs, skipped=True)
    resume = (
        existing is not None
        and status in RESUMABLE
        and "checkpoint" in existing.group
        and has_checkpoint(existing.group["checkpoint"])
    )
    sink = open(os.devnull, "w")  # noqa: SIM115 - closed below
    thermo = None if run.md.get("thermo_interval") else sink  # rows go to the worker's log if asked for
    try:
        try:
            if resume:
                mdrun = prepare_resume(store_path, run.run_id, thermo_stream=thermo)
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
        attempts = list(rstore.attrs.get("campaign_attempts") or [])
        attempts.append({"start_step": start, "host": socket.gethostname(), "pid": os.getpid(), "at": _now()})
        rstore.update_attrs(campaign_attempts=attempts)
        sim.progress = _DrainWatch(mdrun, options.drain_check_s)
        try:
            mdrun.execute()
        except WorkerDraining as exc:
            return RunOutcome(
                run.run_id, "drained", str(exc), start, sim.state.step, run.dt_fs, time.perf_counter() - t0
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


class _DrainWatch:
    """Progress callback that checkpoints and stops the run when its Dask worker retires."""

    def __init__(self, mdrun: Any, every_s: float) -> None:
        self.mdrun = mdrun
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
            from ssehpc.simulation import CheckpointWriter

            sim = self.mdrun.simulation
            for op in sim.operations:
                if isinstance(op, CheckpointWriter):
                    op(sim)
            raise WorkerDraining(f"worker {status.replace('_', ' ')}; checkpointed at step {sim.state.step}")


def _current_worker() -> Any:
    try:
        from distributed import get_worker

        return get_worker()
    except (ImportError, ValueError):
        return None
