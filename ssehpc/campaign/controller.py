"""The campaign controller: spec → plan → store → Dask → results.

:func:`run_campaign` (and ``ssehpc campaign SPEC.yaml``) does, in order:

1. expand the spec into replica chains (:func:`ssehpc.campaign.plan.expand`; spec errors stop
   here, before anything is computed);
2. open or create the campaign store, refuse a spec that changed existing runs, build and check
   each system's structure once against the potential (a system that fails is recorded as
   failed; the others go on), declare every run as a ``pending`` run group;
3. submit every chain that is not finished to Dask — one task per replica chain
   (:func:`ssehpc.campaign.task.run_chain`), or, with ``resources.batch``, one task per batch of
   small replicas run as one batched state (:func:`ssehpc.campaign.batch.run_batch`) — on a
   ``LocalCluster`` or a ``SLURMCluster``
   (:mod:`ssehpc.campaign.cluster`), or on a client passed in;
4. collect outcomes with ``as_completed`` while polling the run groups for progress; chains
   whose worker retired (drained) or whose lock was busy are submitted again; a task Dask gave
   up on (``KilledWorker``) marks its run failed;
5. summarise: every run's status, frames and error (:class:`CampaignResult`).

**Resuming.**  Running the same spec again skips completed runs, resumes started ones from their
checkpoints and starts pending ones.  A worker killed mid-run is handled by Dask, which
reschedules its task; the task resumes the run from its checkpoint.  Runs that failed stay failed
(and are reported) unless ``retry_failed`` is given.
"""

from __future__ import annotations

import contextlib
import math
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ssehpc.campaign.batch import ChainBatch, batch_id, plan_batches, run_batch
from ssehpc.campaign.cluster import ClusterHandle, open_cluster
from ssehpc.campaign.plan import CampaignPlan, ChainSpec, RunSpec, expand
from ssehpc.campaign.progress import CampaignProgress, format_time_fs
from ssehpc.campaign.spec import CampaignSpec
from ssehpc.campaign.store import CAMPAIGN_STATUS, CampaignStore
from ssehpc.campaign.task import ChainOutcome, TaskOptions, run_chain
from ssehpc.spec import SpecError


# ---------------------------------------------------------------------- results
@dataclass(frozen=True)
class RunRecord:
    """One run at the end of an invocation.

    Attributes:
        run_id, chain, system, temperature_K, replica, stage: where it sits in the campaign.
        status: campaign status: ``done``, ``failed``, ``pending``, ``partial`` (started, can be
            resumed) or ``extrapolating``.
        store_status: the run group's own ``status`` attribute.
        error: error text of a failed run.
        step: the step it reached; steps: its target.
        n_frames: committed frames.
        attempts: how often a worker started or resumed it.
        dt_fs: time step, fs.
    """

    run_id: str
    chain: str
    system: str
    temperature_K: float  # noqa: N815 (unit in the name)
    replica: int
    stage: str
    status: str
    store_status: str | None
    error: str | None
    step: int
    steps: int
    n_frames: int
    attempts: int
    dt_fs: float

    @property
    def simulated_fs(self) -> float:
        return self.step * self.dt_fs


@dataclass(frozen=True)
class CampaignResult:
    """What :func:`run_campaign` returns.

    Attributes:
        name: campaign name.
        store: the store path.
        runs: every run, in plan order.
        wall_s: wall time of this invocation, s.
        simulated_fs: simulated during this invocation (all runs), fs.
        resubmitted: chains submitted again (drained or busy).
    """

    name: str
    store: Path
    runs: tuple[RunRecord, ...]
    wall_s: float
    simulated_fs: float
    resubmitted: int = 0

    def counts(self) -> dict[str, int]:
        """Runs per campaign status."""
        return dict(Counter(r.status for r in self.runs))

    @property
    def n_done(self) -> int:
        return sum(r.status == "done" for r in self.runs)

    @property
    def n_failed(self) -> int:
        return sum(r.status == "failed" for r in self.runs)

    @property
    def ok(self) -> bool:
        """Every run is done."""
        return self.n_done == len(self.runs)

    @property
    def settled(self) -> bool:
        """Nothing is left to do: every run is done, or stopped as ``extrapolating`` by the
        committee screening (a result, not an error), or a later stage of such a run."""
        stopped = {r.chain for r in self.runs if r.status == "extrapolating"}
        return all(
            r.status in ("done", "extrapolating") or (r.status == "pending" and r.chain in stopped)
            for r in self.runs
        )

    @property
    def failed(self) -> list[RunRecord]:
        return [r for r in self.runs if r.status == "failed"]

    def table(self, max_rows: int = 60) -> Table:
        """A rich table: every run when there are few, else the runs that are not done."""
        rows = list(self.runs) if len(self.runs) <= max_rows else [r for r in self.runs if r.status != "done"]
        counts = ", ".join(f"{n} {s}" for s, n in sorted(self.counts().items()))
        table = Table(title=f"campaign {self.name}: {counts}", title_justify="left")
        for col in ("run", "status", "step", "frames", "attempts", "error"):
            table.add_column(col, overflow="fold")
        for r in rows[:max_rows]:
            table.add_row(
                r.run_id, r.status, f"{r.step}/{r.steps}", str(r.n_frames), str(r.attempts), r.error or ""
            )
        if len(rows) > max_rows:
            table.add_row(f"... {len(rows) - max_rows} more", "", "", "", "", "")
        return table


@dataclass
class CampaignSnapshot:
    """Handed to ``on_poll`` at every progress poll (tests and monitoring hooks).

    Attributes:
        client: the Dask client.
        plan: the expanded campaign.
        statuses: polled run attributes by run id (``status``, ``current_step``,
            ``checkpoint_step``, ``campaign_attempts``, ...).
        done: runs done; failed: runs failed.
        simulated_fs: simulated time of all runs, fs.
    """

    client: Any
    plan: CampaignPlan
    statuses: dict[str, dict[str, Any]]
    done: int
    failed: int
    simulated_fs: float


# ---------------------------------------------------------------------- preflight
def check_systems(
    plan: CampaignPlan, system_ids: set[str], sizes: dict[str, int] | None = None
) -> dict[str, str]:
    """Build and check the first-stage setup of each system in ``system_ids``, once.

    Every stage's potential (each distinct one built once) and integrator must build, and a
    stage's screening must suit its potential (else :class:`SpecError`, before any compute); a
    system whose structure cannot be built or holds species a stage's potential does not know is
    returned as ``{system_id: error}`` and its runs are recorded as failed.  The atom count of
    every system that builds goes into ``sizes`` (for batching).
    """
    import json

    from ssehpc.io.structure import StructureError, atoms_to_state
    from ssehpc.spec import _check_screening, build_forces, build_integrator, build_potential, build_structure

    first: dict[str, ChainSpec] = {}
    for chain in plan.chains:
        first.setdefault(chain.runs[0].system, chain)
    any_chain = plan.chains[0]
    potentials: dict[str, Any] = {}  # one (stage spec, potential) per distinct stage potential
    for run in any_chain.runs:
        md = run.mdspec()
        key = json.dumps(md.potential.model_dump(mode="json"), sort_keys=True)
        if key not in potentials:
            potentials[key] = (md, build_potential(md))
        _check_screening(md, potentials[key][1])
        build_integrator(md)
    errors = {}
    for system_id in sorted(system_ids):
        md = first[system_id].runs[0].mdspec()
        try:
            atoms = build_structure(md)
            if sizes is not None:
                sizes[system_id] = len(atoms)
            state = atoms_to_state(atoms, dtype=md.torch_dtype)
            for stage_md, potential in potentials.values():  # errors name the stage's potential
                build_forces(stage_md, potential, state)
        except (SpecError, StructureError) as exc:  # messages that name the problem themselves
            errors[system_id] = " ".join(str(exc).split())
        except Exception as exc:
            errors[system_id] = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
    return errors


# ---------------------------------------------------------------------- the controller
def run_campaign(
    spec: CampaignSpec,
    *,
    client: Any = None,
    retry_failed: bool = False,
    console: Console | None = None,
    show_progress: bool | None = None,
    poll_interval_s: float = 1.0,
    progress_interval_s: float = 10.0,
    on_poll: Callable[[CampaignSnapshot], None] | None = None,
    max_resubmits: int = 3,
    lock_timeout_s: float = 300.0,
) -> CampaignResult:
    """Run (or resume) a campaign until every run is done or failed.

    Args:
        spec: the campaign.
        client: an existing ``distributed.Client`` to use, or a
            :class:`~ssehpc.campaign.cluster.ClusterHandle` (keeps its worker resources and MPI
            settings); default: start the cluster of ``spec.resources`` and close it at the end.
        retry_failed: resume runs recorded as failed instead of reporting them again.
        console: where messages and progress go (default stderr).
        show_progress: live bar (default: when the console is a terminal); plain lines otherwise.
        poll_interval_s: seconds between progress polls of the store.
        progress_interval_s: seconds between plain progress lines.
        on_poll: called with a :class:`CampaignSnapshot` at every poll (may raise
            ``KeyboardInterrupt`` to stop the controller, as Ctrl-C would).
        max_resubmits: how often a drained or busy chain is submitted again.
        lock_timeout_s: how long a task waits for a chain lock held by a live process, s.

    Raises:
        SpecError: invalid spec, potential or integrator (before anything runs).
        StoreError: the store belongs to another campaign or cannot be opened.
        KeyboardInterrupt: interrupted; the runs keep their checkpoints, run again to resume.
    """
    t0 = time.perf_counter()
    console = console or Console(stderr=True, highlight=False, soft_wrap=True)
    plan = expand(spec)
    all_ids = [r.run_id for r in plan.runs]
    # Everything is checked before the store is created or changed.
    cstore = CampaignStore.open(plan, create=False)
    if cstore is not None:
        cstore.check_specs(plan)
        statuses = cstore.poll(all_ids)
    else:
        statuses = {rid: {} for rid in all_ids}
    fresh_systems = {
        c.runs[0].system for c in plan.chains if statuses[c.runs[0].run_id].get("status") in (None, "pending")
    }
    sizes: dict[str, int] = {}
    system_errors = check_systems(plan, fresh_systems, sizes) if fresh_systems else {}
    if cstore is None:
        cstore = CampaignStore.open(plan)
        assert cstore is not None
    cstore.record_start(plan)
    cstore.declare(plan)
    summary: dict[str, int] | None = None
    resubmitted = 0
    fs_before = _simulated_fs(plan, statuses)
    try:
        for system_id, error in system_errors.items():
            console.print(f"system {system_id}: {error}; its runs are marked failed", markup=False)
            for chain in plan.chains:
                run0 = chain.runs[0]
                if run0.system == system_id and statuses[run0.run_id].get("status") in (None, "pending"):
                    cstore.mark_failed(run0, f"structure: {error}")
        statuses = cstore.poll(all_ids)
        todo = [c for c in plan.chains if _needs_work(c, statuses, retry_failed)]
        n_done = sum(_is_done(statuses[r]) for r in all_ids)
        console.print(
            f"campaign {spec.name!r}: {len(plan.runs)} runs ({len(plan.chains)} replicas × {len(spec.stages)} "
            f"stages) in {plan.store}; {n_done} done, {len(todo)} replicas to run",
            markup=False,
        )
        if todo or spec.adaptive is not None:
            with _connect(spec, client) as handle:
                console.print(
                    f"dask: {handle.description}; dashboard: "
                    f"{handle.dashboard or 'not available (pip install bokeh)'}",
                    markup=False,
                )
                options = TaskOptions(
                    threads=handle.threads,
                    retry_failed=retry_failed,
                    lock_timeout_s=lock_timeout_s,
                    ranks=handle.ranks,
                    mpi=handle.mpi,
                    srun_args=handle.srun_args,
                )
                units = _batch(spec, todo, statuses, sizes, handle.ranks)
                n_batches = sum(isinstance(u, ChainBatch) for u in units)
                if n_batches:
                    console.print(
                        f"batching: {sum(len(u.chains) for u in units if isinstance(u, ChainBatch))} replicas "
                        f"in {n_batches} batched tasks, {len(units) - n_batches} alone",
                        markup=False,
                    )
                live = console.is_terminal if show_progress is None else show_progress and console.is_terminal
                progress = CampaignProgress(
                    spec.name,
                    len(plan.runs),
                    sum(r.simulated_fs for r in plan.runs),
                    console,
                    live=live,
                    interval_s=progress_interval_s,
                )
                drive_kw = {
                    "poll_interval_s": poll_interval_s,
                    "on_poll": on_poll,
                    "max_resubmits": max_resubmits,
                    "quiet": show_progress is False,
                }
                with progress:
                    if units:
                        resubmitted = _drive(
                            plan, units, handle, options, cstore, console, progress, **drive_kw
                        )
                if spec.adaptive is not None:
                    resubmitted += _adapt(plan, handle, options, cstore, console, drive_kw, live)
        final = cstore.poll(all_ids)
        result = _result(
            plan, final, time.perf_counter() - t0, _simulated_fs(plan, final) - fs_before, resubmitted
        )
        summary = result.counts()
        return result
    finally:
        with contextlib.suppress(Exception):
            cstore.record_summary(summary if summary is not None else _counts(cstore.poll(all_ids)))


def _adapt(
    plan: CampaignPlan,
    handle: ClusterHandle,
    options: TaskOptions,
    cstore: CampaignStore,
    console: Console,
    drive_kw: dict[str, Any],
    live: bool,
) -> int:
    """Adaptive extension rounds (:mod:`ssehpc.campaign.adaptive`); returns resubmissions."""
    from ssehpc.analysis.msd import AnalysisError
    from ssehpc.campaign.adaptive import extension_chain, plan_extensions, point_errors

    spec = plan.spec
    adaptive, stage = spec.adaptive, spec.adaptive_stage
    assert adaptive is not None
    assert stage is not None
    info = dict(cstore.store.attrs.get("campaign") or {})
    history = list(info.get("adaptive") or [])
    spent_fs = sum(float(r.get("extra_ps") or 0.0) * 1000.0 for h in history for r in h.get("points", []))
    cap_fs = adaptive.max_extra_ps * 1000.0 if adaptive.max_extra_ps is not None else math.inf
    chains = {c.chain_id: c for c in plan.chains}
    resubmitted = 0
    for _ in range(adaptive.max_rounds):
        stage_ids = [r.run_id for r in plan.runs if r.stage == stage.name]
        statuses = cstore.poll(stage_ids)
        if not all(_is_done(statuses[r]) for r in stage_ids):
            console.print("adaptive: not every run is done; no extension this time", markup=False)
            break
        try:
            points, notes = point_errors(plan.store, plan, stage.name, adaptive.species)
        except AnalysisError as exc:
            console.print(f"adaptive: cannot analyse the store ({exc}); no extension", markup=False)
            break
        current = {rid: int(statuses[rid].get("steps") or 0) for rid in stage_ids}
        exts, records = plan_extensions(points, adaptive, plan, current, cap_fs - spent_fs)
        worst = max((p.rel_error for p in points), default=math.nan)
        console.print(
            f"adaptive round {len(history) + 1}: {len(points)} points, largest SE(D*)/D* {worst:.3g} "
            f"(target {adaptive.target_rel_error}); extending {len(exts)} runs",
            markup=False,
        )
        for note in notes:
            console.print(f"  {note}", markup=False)
        for rec in records:
            rel = rec["rel_error"]
            console.print(
                f"  {rec['system']} {rec['temperature_K']:g} K: D* "
                f"{'n/a' if rec['D_cm2_s'] is None else format(rec['D_cm2_s'], '.3g')} cm²/s, "
                f"rel. error {'n/a' if rel is None else f'{rel:.3f}'} -> {rec['action']}",
                markup=False,
            )
        history.append({"round": len(history) + 1, "at": _now_iso(), "points": records})
        info = dict(cstore.store.attrs.get("campaign") or {})
        info["adaptive"] = history
        cstore.store.update_attrs(campaign=info)
        if not exts:
            break
        spent_fs += sum(e.extra_fs for e in exts)
        units: list[ChainSpec | ChainBatch] = [extension_chain(e, chains[e.run.chain_id]) for e in exts]
        progress = CampaignProgress(
            spec.name, len(exts), sum(e.extra_fs for e in exts), console, live=live, interval_s=10.0
        )
        with progress:
            resubmitted += _drive(plan, units, handle, options, cstore, console, progress, **drive_kw)
    return resubmitted


def _now_iso() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _batch(
    spec: CampaignSpec,
    todo: list[ChainSpec],
    statuses: dict[str, dict[str, Any]],
    sizes: dict[str, int],
    ranks: int,
) -> list[ChainSpec | ChainBatch]:
    """Pack ``todo`` into batched tasks as ``resources.batch`` asks (single-rank members only)."""
    batch = spec.resources.batch
    if batch.max_replicas <= 1 or ranks > 1:
        return list(todo)
    from ssehpc.spec import build_structure

    for chain in todo:
        run0 = chain.runs[0]
        if run0.system in sizes:
            continue
        n = (statuses.get(run0.run_id) or {}).get("n_atoms")
        if n is None:
            try:
                n = len(build_structure(run0.mdspec()))
            except Exception:
                continue
        sizes[run0.system] = int(n)
    return plan_batches(todo, max_replicas=batch.max_replicas, max_atoms=batch.max_atoms, n_atoms=sizes)


@contextlib.contextmanager
def _connect(spec: CampaignSpec, client: Any) -> Iterator[ClusterHandle]:
    try:
        import distributed  # noqa: F401
    except ImportError as exc:
        raise SpecError(
            "running a campaign needs Dask's distributed scheduler (a dependency of ssehpc): pip install distributed"
        ) from exc
    if client is None:
        with open_cluster(spec.resources) as handle:
            yield handle
        return
    if isinstance(client, ClusterHandle):  # a cluster opened by the caller (keeps its resources)
        yield client
        return
    n = len(client.scheduler_info().get("workers", {}))
    yield ClusterHandle(
        client, threads=spec.resources.threads_per_worker, description=f"existing client, {n} workers"
    )


def _drive(
    plan: CampaignPlan,
    todo: list[ChainSpec | ChainBatch],
    handle: ClusterHandle,
    options: TaskOptions,
    cstore: CampaignStore,
    console: Console,
    progress: CampaignProgress,
    *,
    poll_interval_s: float,
    on_poll: Callable[[CampaignSnapshot], None] | None,
    max_resubmits: int,
    quiet: bool,
) -> int:
    """Submit ``todo`` (chains and batches of chains), collect outcomes, poll progress; returns the
    number of resubmissions."""
    from distributed import as_completed

    client = handle.client
    submissions: Counter[str] = Counter()
    units: dict[str, ChainSpec | ChainBatch] = {}

    def submit(unit: ChainSpec | ChainBatch) -> Any:
        if isinstance(unit, ChainBatch):
            for c in unit.chains:
                submissions[c.chain_id] += 1
            key = f"ssehpc-{unit.batch_id}-{uuid.uuid4().hex[:8]}"
            fut = client.submit(run_batch, unit, options, key=key, pure=False, **handle.submit_kwargs)
        else:
            submissions[unit.chain_id] += 1
            key = f"ssehpc-chain-{unit.chain_id}-{uuid.uuid4().hex[:8]}"
            fut = client.submit(run_chain, unit, options, key=key, pure=False, **handle.submit_kwargs)
        units[fut.key] = unit
        return fut

    futures = [submit(c) for c in todo]
    watched = [r.run_id for u in todo for c in _chains_of(u) for r in c.runs]
    statuses = cstore.poll([r.run_id for r in plan.runs])
    ac = as_completed(futures)
    last_poll = -1e300
    interval = poll_interval_s
    resubmitted = 0
    try:
        while not ac.is_empty():
            for fut in ac.next_batch(block=False) if ac.has_ready() else []:
                unit = units.pop(fut.key)
                again = _collect_unit(fut, unit, cstore, console, submissions, max_resubmits)
                fut.release()  # the result is read; nothing for Dask to keep (or recompute)
                if again:
                    resubmitted += len(again)
                    unit = (
                        again[0]
                        if len(again) == 1
                        else ChainBatch(batch_id(again), again[0].store, tuple(again))
                    )
                    ac.add(submit(unit))
            now = time.monotonic()
            if now - last_poll >= interval:
                last_poll = now
                statuses.update(cstore.poll(watched))
                # Polling reads one small file per run: keep it below ~20 % of the controller's time.
                interval = max(poll_interval_s, 5.0 * (time.monotonic() - now))
                done = sum(_is_done(s) for s in statuses.values())
                failed = sum(s.get("status") == "failed" for s in statuses.values())
                fs = _simulated_fs(plan, statuses)
                if not quiet:
                    progress.update(done, failed, fs)
                if on_poll is not None:
                    on_poll(CampaignSnapshot(client, plan, statuses, done, failed, fs))
            time.sleep(0.1)
    except BaseException:
        # Interrupted: stop what is still queued (a cluster we own dies with the context).
        with contextlib.suppress(Exception):
            client.cancel([f for f in futures if not f.done()], force=True)
        raise
    statuses.update(cstore.poll(watched))
    if not quiet:
        progress.update(
            sum(_is_done(s) for s in statuses.values()),
            sum(s.get("status") == "failed" for s in statuses.values()),
            _simulated_fs(plan, statuses),
            final=True,
        )
    return resubmitted


def _chains_of(unit: ChainSpec | ChainBatch) -> tuple[ChainSpec, ...]:
    return unit.chains if isinstance(unit, ChainBatch) else (unit,)


def _collect_unit(
    fut: Any,
    unit: ChainSpec | ChainBatch,
    cstore: CampaignStore,
    console: Console,
    submissions: Counter[str],
    max_resubmits: int,
) -> list[ChainSpec]:
    """Handle a finished task (one chain or a batch); returns the chains to submit again."""
    chains = _chains_of(unit)
    if fut.status == "error":
        exc = fut.exception()
        error = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        for chain in chains:
            run = _first_unfinished(chain, cstore)
            if run is not None:
                cstore.mark_failed(run, f"task failed: {error}")
            console.print(f"replica {chain.chain_id}: task failed: {error}", markup=False)
        return []
    if fut.status == "cancelled":
        return []
    result = fut.result()
    outcomes: tuple[ChainOutcome, ...] = result if isinstance(unit, ChainBatch) else (result,)
    return [
        chain
        for chain, outcome in zip(chains, outcomes, strict=True)
        if _collect(outcome, chain, cstore, console, submissions[chain.chain_id] <= max_resubmits)
    ]


def _collect(
    outcome: ChainOutcome, chain: ChainSpec, cstore: CampaignStore, console: Console, may_resubmit: bool
) -> bool:
    """Handle the outcome of one chain; returns whether to submit it again."""
    status = outcome.status
    if status in ("drained", "busy"):
        if may_resubmit:
            return True
        reason = outcome.busy or next((r.error for r in outcome.runs if r.status == "drained"), "")
        run = _first_unfinished(chain, cstore)
        if run is not None and status == "drained":
            cstore.mark_failed(run, f"gave up after repeated drains: {reason}")
        console.print(f"replica {chain.chain_id}: gave up ({status}): {reason}", markup=False)
        return False
    for r in outcome.runs:
        if r.status in ("failed", "extrapolating") and not r.skipped:
            console.print(f"run {r.run_id} {r.status}: {r.error}", markup=False)
    return False


def _first_unfinished(chain: ChainSpec, cstore: CampaignStore) -> RunSpec | None:
    polled = cstore.poll([r.run_id for r in chain.runs])
    for r in chain.runs:
        if polled[r.run_id].get("status") != "completed":
            return r
    return None


# ---------------------------------------------------------------------- status helpers
def _is_done(attrs: dict[str, Any]) -> bool:
    return attrs.get("status") == "completed"


def _needs_work(chain: ChainSpec, statuses: dict[str, dict[str, Any]], retry_failed: bool) -> bool:
    states = [statuses[r.run_id].get("status") for r in chain.runs]
    if all(s == "completed" for s in states) or "extrapolating" in states:
        return False  # an extrapolating run would replay the same trajectory into the same stop
    return retry_failed or "failed" not in states


def _simulated_fs(plan: CampaignPlan, statuses: dict[str, dict[str, Any]]) -> float:
    total = 0.0
    for run in plan.runs:
        a = statuses.get(run.run_id) or {}
        if a.get("status") == "completed":
            total += run.simulated_fs
        elif a.get("current_step"):
            total += min(int(a["current_step"]), run.steps) * run.dt_fs
    return total


def _counts(statuses: dict[str, dict[str, Any]]) -> dict[str, int]:
    return dict(Counter(CAMPAIGN_STATUS.get(s.get("status"), "partial") for s in statuses.values()))


def _result(
    plan: CampaignPlan,
    statuses: dict[str, dict[str, Any]],
    wall_s: float,
    simulated_fs: float,
    resubmitted: int,
) -> CampaignResult:
    records = []
    blocked: dict[str, str] = {}  # chain -> the run whose failure keeps its later stages pending
    for run in plan.runs:
        a = statuses.get(run.run_id) or {}
        store_status = a.get("status")
        error = a.get("error")
        if store_status in ("failed", "extrapolating"):
            blocked.setdefault(run.chain_id, f"{run.run_id} {store_status}")
        elif store_status in (None, "pending") and run.chain_id in blocked:
            error = f"not started: {blocked[run.chain_id]}"
        step = int(a.get("current_step") or 0)
        if store_status == "completed":
            step = max(step, run.steps)
        records.append(
            RunRecord(
                run_id=run.run_id,
                chain=run.chain_id,
                system=run.system,
                temperature_K=run.temperature_K,
                replica=run.replica,
                stage=run.stage,
                status=CAMPAIGN_STATUS.get(store_status, "partial"),
                store_status=store_status,
                error=error,
                step=step,
                steps=run.steps,
                n_frames=int(a.get("n_frames") or 0),
                attempts=len(a.get("campaign_attempts") or []),
                dt_fs=run.dt_fs,
            )
        )
    return CampaignResult(plan.spec.name, plan.store, tuple(records), wall_s, simulated_fs, resubmitted)


def summary_line(result: CampaignResult) -> str:
    """One line: counts, simulated time, wall time."""
    counts = ", ".join(f"{n} {s}" for s, n in sorted(result.counts().items()))
    return (
        f"campaign {result.name}: {counts}; {format_time_fs(result.simulated_fs)} simulated in this invocation, "
        f"wall {result.wall_s:.1f} s; store {result.store}"
    )


__all__ = [
    "CampaignResult",
    "CampaignSnapshot",
    "RunRecord",
    "check_systems",
    "run_campaign",
    "summary_line",
]
