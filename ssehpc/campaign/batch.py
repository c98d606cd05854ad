"""Batched replicas: small runs of one stage advanced together as one batched :class:`State`.

A campaign of many small cells (a few hundred atoms each) spends most of its time in per-call
overheads when every replica is its own task: Python, the neighbour-list build, one force call
of a few hundred atoms.  With ``resources.batch.max_replicas > 1`` the controller packs replica
chains into :class:`ChainBatch` tasks; :func:`run_batch` runs each stage of its chains as **one**
batched state (one neighbour list and one force call for all of them).

Each replica keeps everything that is its own:

* structure, temperature (and pressure), seed: the batched state keeps every system's seed and
  random keys (:func:`ssehpc.state.concatenate`), so a replica draws the random numbers it would
  draw alone, and its trajectory is the one it has alone (to floating-point summation order);
* its run group: frames (in its own tag order), status, attributes, and **its own checkpoint**,
  written in the format of a single run.  Any replica can therefore be resumed alone
  (``ssehpc md --resume`` or a later unbatched campaign) or in another batch.

What may be batched: runs of the same stage whose potential, integrator (name and parameters
other than temperature/pressure), time step, length, output intervals, device, dtype and skin
are equal (:func:`stage_key`), and that start from the same step (all fresh, or all resuming
from checkpoints at the same step — which is what a batch that was stopped leaves behind).

Failures never take the batch down with them: if the batched stage cannot be prepared or
fails while running (e.g. one replica explodes), every replica is set back to its last
checkpoint and the stage is run **replica by replica** (:func:`ssehpc.campaign.task.run_stage`),
so the failing replica fails alone with its own error and the others complete.  A retiring
worker checkpoints every replica and reports them ``drained``, as for single runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import socket
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ssehpc.campaign.plan import ChainSpec, RunSpec
from ssehpc.campaign.task import (
    RESUMABLE,
    ChainBusyError,
    ChainOutcome,
    DrainWatch,
    RunOutcome,
    TaskOptions,
    WorkerDraining,
    _error_text,
    _now,
    chain_lock,
    extension_steps,
    lock_path,
    open_run,
    run_stage,
    tune_allocator,
)
from ssehpc.io.checkpoint import Checkpoint, has_checkpoint, read_checkpoint, write_checkpoint
from ssehpc.io.zarr_store import COMMITTEE_FRAME_FIELDS, RunStore, ZarrStore
from ssehpc.simulation import On, Operation, Periodic, Simulation
from ssehpc.state import State, concatenate

log = logging.getLogger(__name__)

#: MDSpec fields that must be equal for runs to share a batched state.
BATCH_FIELDS = (
    "store",
    "potential",
    "integrator",
    "dt_fs",
    "steps",
    "write_interval",
    "checkpoint_interval",
    "device",
    "dtype",
    "skin",
    "screening",
)


def stage_key(md: Mapping[str, Any]) -> str:
    """What runs of one batched stage must share (JSON of :data:`BATCH_FIELDS`)."""
    return json.dumps({k: md.get(k) for k in BATCH_FIELDS}, sort_keys=True, default=str)


def chain_key(chain: ChainSpec) -> str:
    """Chains with equal keys may be batched for every stage."""
    return json.dumps([stage_key(r.md) for r in chain.runs])


@dataclass(frozen=True)
class ChainBatch:
    """Replica chains run together, stage by stage (one Dask task).

    Attributes:
        batch_id: name of the batch (logs, task keys, run attributes).
        store: the campaign store.
        chains: the chains, in the order their systems appear in the batched state.
    """

    batch_id: str
    store: str
    chains: tuple[ChainSpec, ...]

    @property
    def simulated_fs(self) -> float:
        return sum(c.simulated_fs for c in self.chains)


def batch_id(chains: Sequence[ChainSpec]) -> str:
    """A short stable name for a set of chains."""
    digest = hashlib.sha1("\n".join(c.chain_id for c in chains).encode()).hexdigest()[:8]
    return f"batch-{len(chains)}x-{digest}"


def plan_batches(
    chains: Sequence[ChainSpec], *, max_replicas: int, max_atoms: int, n_atoms: Mapping[str, int]
) -> list[ChainSpec | ChainBatch]:
    """Pack ``chains`` into batches (greedy, in plan order) and leave the rest single.

    Args:
        chains: chains to run.
        max_replicas: chains per batch (1: no batching).
        max_atoms: atoms per batch; a system larger than this runs alone.
        n_atoms: atoms of each system id (a system missing here runs alone).
    """
    if max_replicas <= 1:
        return list(chains)
    out: list[ChainSpec | ChainBatch] = []
    groups: dict[str, list[ChainSpec]] = defaultdict(list)
    for chain in chains:
        n = n_atoms.get(chain.runs[0].system)
        if n is None or n > max_atoms:
            out.append(chain)
        else:
            groups[chain_key(chain)].append(chain)
    for members in groups.values():
        current: list[ChainSpec] = []
        atoms = 0
        for chain in members:
            n = n_atoms[chain.runs[0].system]
            if current and (len(current) >= max_replicas or atoms + n > max_atoms):
                out.append(_pack(current))
                current, atoms = [], 0
            current.append(chain)
            atoms += n
        if current:
            out.append(_pack(current))
    return out


def _pack(chains: list[ChainSpec]) -> ChainSpec | ChainBatch:
    if len(chains) == 1:
        return chains[0]
    return ChainBatch(batch_id(chains), chains[0].store, tuple(chains))


# ---------------------------------------------------------------------- the task
def run_batch(batch: ChainBatch, options: TaskOptions | None = None) -> tuple[ChainOutcome, ...]:
    """Run (or resume) every stage of every chain of ``batch``; the Dask task of a batch.

    Returns one :class:`ChainOutcome` per chain (in ``batch.chains`` order).  A chain whose lock
    another process holds is reported ``busy`` and left alone; the others go on.
    """
    options = options or TaskOptions()
    torch.set_num_threads(options.threads)
    tune_allocator()
    host, pid = socket.gethostname(), os.getpid()
    outcomes: dict[str, list[RunOutcome]] = {c.chain_id: [] for c in batch.chains}
    busy: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        active: list[ChainSpec] = []
        for chain in sorted(batch.chains, key=lambda c: c.chain_id):  # one global order: no deadlock
            try:
                stack.enter_context(
                    chain_lock(lock_path(chain.store, chain.chain_id), options.lock_timeout_s)
                )
            except ChainBusyError as exc:  # noqa: PERF203
                busy[chain.chain_id] = str(exc)
            else:
                active.append(chain)
        order = {c.chain_id: k for k, c in enumerate(batch.chains)}
        active.sort(key=lambda c: order[c.chain_id])
        n_stages = len(batch.chains[0].runs)
        for k in range(n_stages):
            if not active:
                break
            for chain_id, outcome in _run_stage_of(batch, [c.runs[k] for c in active], options).items():
                outcomes[chain_id].append(outcome)
            active = [c for c in active if outcomes[c.chain_id][-1].status == "done"]
    return tuple(
        ChainOutcome(c.chain_id, tuple(outcomes[c.chain_id]), host, pid, busy=busy.get(c.chain_id))
        for c in batch.chains
    )


def _run_stage_of(batch: ChainBatch, runs: list[RunSpec], options: TaskOptions) -> dict[str, RunOutcome]:
    """One stage of the active chains: skip, batch by start step, or run alone."""
    store = ZarrStore.open(batch.store, "r+")
    result: dict[str, RunOutcome] = {}
    groups: dict[int | None, list[RunSpec]] = defaultdict(list)
    alone: list[RunSpec] = []
    for run in runs:
        existing = open_run(store, run.run_id)
        status = existing.status if existing is not None else None
        if status == "completed" and extension_steps(existing, run) is not None:
            alone.append(run)  # an adaptive extension of a completed run
        elif status == "completed":
            result[run.chain_id] = RunOutcome(run.run_id, "done", dt_fs=run.dt_fs, skipped=True)
        elif status == "extrapolating":  # resuming would replay the same trajectory into the same stop
            result[run.chain_id] = RunOutcome(
                run.run_id, "extrapolating", error=existing.error, dt_fs=run.dt_fs, skipped=True
            )
        elif status == "failed" and not options.retry_failed:
            result[run.chain_id] = RunOutcome(
                run.run_id, "failed", error=existing.error, dt_fs=run.dt_fs, skipped=True
            )
        else:
            resumable = (
                existing is not None
                and status in RESUMABLE
                and "checkpoint" in existing.group
                and has_checkpoint(existing.group["checkpoint"])
            )
            start = int(existing.attrs.get("checkpoint_step") or 0) if resumable else None
            groups[start].append(run)
    for run in alone:
        result[run.chain_id] = run_stage(batch.store, run, options)
    for start, members in groups.items():
        batched = (
            _run_batched(batch, members, options, resume=start is not None) if len(members) > 1 else None
        )
        if batched is None:  # alone, or the batch could not run: one by one from the last checkpoints
            for run in members:
                result[run.chain_id] = run_stage(batch.store, run, options)
        else:
            result.update(batched)
    return result


# ---------------------------------------------------------------------- one batched stage
@dataclass(eq=False)
class _Member:
    run: RunSpec
    spec: Any  # MDSpec
    store: RunStore
    state: State  # the replica alone (before concatenation)
    tag_offset: int = 0  # added to its tags in the batched state
    integrator_state: dict[str, Any] | None = None
    start_step: int = 0


class BatchFrameWriter(Operation):
    """Append each replica's frame to its own run group (tag order, its own system's values).

    Buffered per run up to its chunk boundary (as :class:`ssehpc.simulation.ZarrFrameWriter`).
    """

    uses_force_extras = True
    priority = 10

    def __init__(self, members: list[_Member], trigger: Any) -> None:
        super().__init__(trigger)
        self.members = members
        self._buffers: list[list[dict[str, Any]]] = [[] for _ in members]
        self._sizes = [m.state.n_atoms for m in members]

    def __call__(self, sim: Simulation) -> None:
        st = sim.state
        th = sim.thermo()
        order = torch.argsort(st.tag)  # replicas occupy consecutive tag ranges, in batch order
        pos = st.unwrapped_positions()[order].detach().to(torch.float32).cpu().numpy()
        cell = st.cell.detach().to(torch.float64).cpu().numpy()
        per_system = {
            "energy_eV": th.potential_eV,
            "kinetic_energy_eV": th.kinetic_eV,
            "temperature_K": th.temperature_K,
            "pressure_GPa": th.pressure_GPa,
            "conserved_energy_eV": th.conserved_eV,
        }
        per_system = {k: v.detach().to(torch.float64).cpu().numpy() for k, v in per_system.items()}
        extras = {k: v.detach().cpu().numpy() for k, v in sim.forces.extras.items()}
        row = 0
        for s, m in enumerate(self.members):
            n = self._sizes[s]
            frame: dict[str, Any] = {
                "positions": pos[row : row + n],
                "cell": cell[s : s + 1],
                "time_fs": th.time_fs,
                "step": st.step,
                **{k: v[s : s + 1] for k, v in per_system.items()},
            }
            for name in m.store.frame_fields:
                if name not in frame:
                    if name not in extras:
                        raise KeyError(
                            f"run {m.run.run_id} declares frame field {name!r} but the forces provide no "
                            f"such extra at step {st.step}"
                        )
                    frame[name] = extras[name][s : s + 1]
            row += n
            self._buffers[s].append(frame)
            chunk = m.store.frame_chunk_frames
            if (m.store.n_frames + len(self._buffers[s])) % chunk == 0:
                self._flush_one(s)

    def _flush_one(self, s: int) -> None:
        if self._buffers[s]:
            frames, self._buffers[s] = self._buffers[s], []
            self.members[s].store.append_frames(frames)

    def flush(self, sim: Simulation) -> None:
        for s in range(len(self.members)):
            self._flush_one(s)


class BatchCheckpointWriter(Operation):
    """Write each replica's checkpoint into its own run group, in the format of a single run
    (its own tags, its integrator variables, no neighbour-list reference)."""

    priority = 100

    def __init__(self, members: list[_Member], trigger: Any, integrator_keys: Sequence[str] = ()) -> None:
        super().__init__(trigger)
        self.members = members
        self.last_step: int | None = None

    def __call__(self, sim: Simulation) -> None:
        sim.flush()
        st = sim.state
        integ = sim.integrator.state_dict()
        self.last_step = st.step
        for s, (m, part) in enumerate(zip(self.members, split_batch(st, self.members), strict=True)):
            own = {k: _system_rows(v, s, st.n_systems) for k, v in integ.items()}
            write_checkpoint(
                m.store.checkpoint_group, part, own, {}, {"spec": m.spec.to_json(), "run_id": m.run.run_id}
            )
            m.store.update_attrs(checkpoint_step=st.step, current_step=st.step)

    def finish(self, sim: Simulation) -> None:
        if self.last_step != sim.state.step:
            self(sim)

    def abort(self, sim: Simulation, exc: BaseException) -> None:
        """Keep the last good checkpoints."""


def split_batch(state: State, members: Sequence[_Member]) -> list[State]:
    """The replicas of a batched state, each with the tags (and tag base) it has alone."""
    from ssehpc.state import split

    parts = split(state)
    out = []
    for m, part in zip(members, parts, strict=True):
        off = m.tag_offset
        out.append(part.replace(tag=part.tag - off, tag_base=part.tag_base - off, n_systems_total=1))
    return out


def _system_rows(value: Any, s: int, n_systems: int) -> Any:
    """Row ``s`` of a per-system integrator variable (leading dimension ``n_systems``)."""
    if isinstance(value, torch.Tensor) and value.ndim >= 1 and value.shape[0] == n_systems:
        return value[s : s + 1].clone()
    return value


def _merge_integrator_states(states: list[dict[str, Any]]) -> dict[str, Any]:
    """Concatenate the per-replica integrator variables (inverse of :func:`_system_rows`)."""
    if not states or not states[0]:
        if any(states):
            raise ValueError("replicas differ in their integrator variables")
        return {}
    keys = set(states[0])
    if any(set(d) != keys for d in states):
        raise ValueError("replicas differ in their integrator variables")
    out: dict[str, Any] = {}
    for key in keys:
        values = [d[key] for d in states]
        if all(isinstance(v, torch.Tensor) and v.ndim >= 1 and v.shape[0] == 1 for v in values):
            out[key] = torch.cat(values)
        elif all(v == values[0] for v in values):
            out[key] = values[0]
        else:
            raise ValueError(f"integrator variable {key!r} cannot be batched")
    return out


def _run_batched(
    batch: ChainBatch, runs: list[RunSpec], options: TaskOptions, *, resume: bool
) -> dict[str, RunOutcome] | None:
    """Run one stage of ``runs`` as one batched state; ``None``: not possible, run them alone.

    Nothing is written to the store before every replica is prepared; after a failure while
    running, every replica is left ``interrupted`` at its last checkpoint and ``None`` is
    returned (the caller runs them one by one, which resumes from those checkpoints).
    """
    from ssehpc import thermo
    from ssehpc.parallel.domain import SerialDomain
    from ssehpc.spec import (
        BAROSTATTED,
        THERMOSTATTED,
        RunStructure,
        SpecError,
        _run_attrs,
        build_forces,
        build_potential,
        build_structure,
    )

    t0 = time.perf_counter()
    try:
        specs = [r.mdspec() for r in runs]
        spec0 = specs[0]
        potential = build_potential(spec0)
        members: list[_Member] = []
        fresh_atoms = []
        for run, spec in zip(runs, specs, strict=True):
            if resume:
                rstore = RunStore.open(batch.store, run.run_id, mode="r+")
                ckpt = read_checkpoint(rstore.checkpoint_group, device=spec.device)
                if ckpt.step > spec.steps or ckpt.state.n_systems != 1:
                    raise SpecError(f"run {run.run_id}: checkpoint at step {ckpt.step} cannot be batched")
                state, integ, start = ckpt.state, ckpt.integrator, ckpt.step
                fresh_atoms.append(None)
            else:
                from ssehpc.io.structure import atoms_to_state

                atoms = build_structure(spec)
                keep = isinstance(spec.structure, RunStructure) and spec.structure.carries_momenta
                state = atoms_to_state(
                    atoms, dtype=spec.torch_dtype, device=spec.device, seed=spec.seed, momenta=keep
                )
                if spec.temperature_K > 0 and not keep:
                    thermo.maxwell_boltzmann(state, SerialDomain(), spec.temperature_K)
                integ, start, rstore = None, 0, None
                fresh_atoms.append(atoms)
            build_forces(spec, potential, state)  # species check, per replica
            members.append(_Member(run, spec, rstore, state, integrator_state=integ, start_step=start))  # type: ignore[arg-type]
        if len({m.start_step for m in members}) != 1:
            return None
        merged_integ = _merge_integrator_states([m.integrator_state or {} for m in members]) if resume else {}
        name, params = spec0.integrator.name, dict(spec0.integrator.params)
        if name in THERMOSTATTED:
            params.setdefault("temperature", [s.temperature_K for s in specs])
        if name in BAROSTATTED:
            params.setdefault("pressure", [s.pressure_GPa for s in specs])
        from ssehpc.integrators import make_integrator

        integrator = make_integrator(name, spec0.dt_fs, **params)
    except Exception as exc:
        log.warning(
            "batch %s: cannot batch stage (%s); running its %d runs one by one",
            batch.batch_id,
            _error_text(exc),
            len(runs),
        )
        return None

    # Everything is prepared: now the store changes.
    committee = getattr(potential, "n_members", 1) >= 2
    if not resume:
        zstore = ZarrStore.open(spec0.store, "a", spec=spec0.to_json())
        for m, atoms in zip(members, fresh_atoms, strict=True):
            m.store = zstore.create_run(
                m.run.run_id,
                m.state,
                {**_run_attrs(m.spec, atoms), "campaign": m.run.labels()},
                overwrite=True,
                extra_frame_fields=COMMITTEE_FRAME_FIELDS if committee else None,
            )
    else:
        for m in members:
            m.store.truncate_after_step(m.start_step)
    offset = 0
    for m in members:
        m.tag_offset = offset
        offset += int(m.state.tag.max()) + 1
    state = concatenate([m.state for m in members])
    state.step = members[0].start_step
    for m in members:
        attempts = list(m.store.attrs.get("campaign_attempts") or [])
        attempts.append(
            {
                "start_step": m.start_step,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "at": _now(),
                "batch": f"{batch.batch_id} ({len(members)} runs)",
            }
        )
        m.store.update_attrs(campaign_attempts=attempts, batch=batch.batch_id)

    spec = spec0
    forces = build_forces(spec, potential, state)
    ops: list[Operation] = []
    if spec.write_interval:
        ops.append(BatchFrameWriter(members, Periodic(spec.write_interval)))
    ckpt_writer = BatchCheckpointWriter(
        members, Periodic(spec.checkpoint_interval) if spec.checkpoint_interval else On(())
    )
    ops.append(ckpt_writer)
    ops.extend(_screening_ops(spec, committee))
    if resume:
        sim = Simulation.from_checkpoint(
            Checkpoint(state, merged_integ, {}, {}, "batch"), forces, integrator, ops
        )
    else:
        sim = Simulation(state, forces, integrator, ops)
    sim.progress = DrainWatch(sim, lambda: ckpt_writer(sim), options.drain_check_s)
    start = state.step
    for m in members:
        m.store.set_status("running", step=start)
    try:
        sim.run(max(0, spec.steps - start))
    except WorkerDraining as exc:
        _mark(members, "interrupted", str(exc), sim.state.step)
        wall = time.perf_counter() - t0
        return {
            m.run.chain_id: RunOutcome(
                m.run.run_id, "drained", str(exc), start, sim.state.step, spec.dt_fs, wall
            )
            for m in members
        }
    except KeyboardInterrupt as exc:
        _mark(members, "interrupted", f"{type(exc).__name__}: {exc}", sim.state.step)
        raise
    except Exception as exc:
        error = _error_text(exc)
        log.warning(
            "batch %s failed at step %d (%s); continuing its runs one by one",
            batch.batch_id,
            sim.state.step,
            error,
        )
        _mark(members, "interrupted", f"batched run stopped: {error}; continuing alone", sim.state.step)
        return None
    wall = time.perf_counter() - t0
    for m in members:
        m.store.set_status("completed", step=sim.state.step)
    return {
        m.run.chain_id: RunOutcome(m.run.run_id, "done", None, start, sim.state.step, spec.dt_fs, wall)
        for m in members
    }


def _screening_ops(spec: Any, committee: bool) -> list[Operation]:
    """The extrapolation guard of the spec, if any.  It counts per replica; when one replica
    extrapolates it stops the batch, and the replicas go on alone from their checkpoints, where
    the one that extrapolates meets its own guard again and is recorded ``extrapolating``."""
    from ssehpc.screen.guard import ExtrapolationGuard

    scr = getattr(spec, "screening", None)
    if not committee or scr is None or scr.stop_after <= 0:
        return []
    return [ExtrapolationGuard(Periodic(scr.interval(spec.write_interval)), scr.trust_hi, scr.stop_after)]


def _mark(members: list[_Member], status: str, error: str, step: int) -> None:
    for m in members:
        try:
            m.store.set_status(status, error)
            m.store.update_attrs(current_step=int(m.store.attrs.get("checkpoint_step") or 0))
        except Exception as inner:  # noqa: PERF203
            log.error("could not record status %r of run %r: %s", status, m.run.run_id, inner)


__all__ = [
    "BatchCheckpointWriter",
    "BatchFrameWriter",
    "ChainBatch",
    "plan_batches",
    "run_batch",
    "split_batch",
]
