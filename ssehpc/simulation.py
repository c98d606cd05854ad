"""One MD run: a state, forces, an integrator and triggered operations (HOOMD style).

:meth:`Simulation.run` advances the state ``steps`` times.  Each step is, in this order::

    integrator.step_one(state, forces)    # half kick, drift (+ thermostat parts)
    forces.compute(state)                 # neighbour list, potential, reverse sum; raises
                                          # NonFiniteError before touching the state
    integrator.step_two(state, forces)    # second half kick (+ thermostat/barostat parts)
    state.step += 1
    for op in operations (by priority):   # thermo log, frame writer, then checkpoint writer
        if op.trigger(state.step): op(sim)
    progress(done, total)

Before the first step of a *fresh* simulation the forces are computed, the integrator is
attached, and the operations whose trigger fires at the initial step run (so step 0 is logged,
written and checkpointed).  A simulation restored with :meth:`Simulation.from_checkpoint` takes
forces, neighbour list and integrator variables from the checkpoint instead and does not repeat
the initial operations, so a resumed run continues bitwise and writes no frame twice.

If anything raises inside the loop (``NonFiniteError`` of an exploding run, an I/O error,
Ctrl-C, an operation that stops the run on purpose), every operation gets :meth:`Operation.abort`
(writers commit the frames they buffered; the checkpoint is *not* rewritten from the broken state,
so the last good one stays current), the store, if any, records status ``failed`` (``interrupted``
for Ctrl-C; the :attr:`RunStop.status` of a :class:`RunStop`, e.g. ``extrapolating`` for
:class:`ssehpc.screen.ExtrapolationStop`) with the error text, and the exception propagates
unchanged.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TextIO

import torch

from ssehpc import thermo
from ssehpc.forces import ForceCompute
from ssehpc.integrators.base import Integrator
from ssehpc.io.checkpoint import Checkpoint, write_checkpoint
from ssehpc.io.zarr_store import RunStore
from ssehpc.state import State

#: ``progress(steps_done, steps_total)`` called after every step of :meth:`Simulation.run`.
ProgressCallback = Callable[[int, int], None]


class RunStop(Exception):  # noqa: N818 (a stop, not an error)
    """An operation stops the run on purpose; :attr:`status` is the store status recorded.

    Subclasses set their own status (one of :data:`ssehpc.io.zarr_store.STATUSES`), e.g.
    :class:`ssehpc.screen.ExtrapolationStop` → ``extrapolating``.
    """

    status: ClassVar[str] = "stopped"


# ---------------------------------------------------------------------- triggers
class Trigger:
    """Decides at which steps an operation runs."""

    def __call__(self, step: int) -> bool:  # pragma: no cover - interface
        raise NotImplementedError


class Periodic(Trigger):
    """Fires at ``step = phase + k·period`` (k ≥ 0).

    Args:
        period: steps between firings (> 0).
        phase: first step it fires at.
    """

    def __init__(self, period: int, phase: int = 0) -> None:
        if int(period) < 1:
            raise ValueError(f"period must be a positive number of steps, got {period}")
        self.period, self.phase = int(period), int(phase)

    def __call__(self, step: int) -> bool:
        return step >= self.phase and (step - self.phase) % self.period == 0

    def __repr__(self) -> str:
        return f"Periodic({self.period}, phase={self.phase})"


class On(Trigger):
    """Fires at the given step(s)."""

    def __init__(self, steps: int | Iterable[int]) -> None:
        self.steps = frozenset([int(steps)] if isinstance(steps, int) else (int(s) for s in steps))

    def __call__(self, step: int) -> bool:
        return step in self.steps

    def __repr__(self) -> str:
        return f"On({sorted(self.steps)})"


class After(Trigger):
    """Fires at every step after ``step`` (exclusive)."""

    def __init__(self, step: int) -> None:
        self.step = int(step)

    def __call__(self, step: int) -> bool:
        return step > self.step


class Or(Trigger):
    """Fires when any of ``triggers`` fires."""

    def __init__(self, *triggers: Trigger) -> None:
        self.triggers = triggers

    def __call__(self, step: int) -> bool:
        return any(t(step) for t in self.triggers)


# ---------------------------------------------------------------------- thermodynamics
@dataclass(frozen=True)
class Thermo:
    """Per-system observables at one step (tensors ``[S]``).

    Attributes:
        step: MD step.
        time_fs: simulated time, fs.
        temperature_K: kinetic temperature, K (3N − 3 degrees of freedom, 3N when the integrator
            does not conserve momentum, e.g. Langevin).
        potential_eV: potential energy, eV.
        kinetic_eV: kinetic energy, eV.
        total_eV: potential + kinetic, eV.
        conserved_eV: total plus the integrator's thermostat/barostat energy, eV (constant up to
            the integration error; a time-step diagnostic).
        pressure_GPa: pressure (virial + kinetic), GPa.
    """

    step: int
    time_fs: float
    temperature_K: torch.Tensor  # noqa: N815 (unit in the name)
    potential_eV: torch.Tensor  # noqa: N815 (unit in the name)
    kinetic_eV: torch.Tensor  # noqa: N815 (unit in the name)
    total_eV: torch.Tensor  # noqa: N815 (unit in the name)
    conserved_eV: torch.Tensor  # noqa: N815
    pressure_GPa: torch.Tensor  # noqa: N815 (unit in the name)


# ---------------------------------------------------------------------- operations
class Operation:
    """Something done at the steps its trigger selects (writers are operations).

    Hooks, all optional: ``__call__`` when triggered, :meth:`flush` to commit buffered output
    (before a checkpoint), :meth:`finish` at the end of :meth:`Simulation.run`, :meth:`abort` when
    the run fails.  Operations run in ascending :attr:`priority` (stable), so a checkpoint taken at
    a step always follows the frame written at that step.
    """

    priority: ClassVar[int] = 0
    #: Whether the operation reads ``sim.forces.extras`` (a committee's force deviation); the
    #: simulation asks the potential for its extras only at steps where such an operation fires.
    uses_force_extras: ClassVar[bool] = False

    def __init__(self, trigger: Trigger) -> None:
        self.trigger = trigger

    def __call__(self, sim: Simulation) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def flush(self, sim: Simulation) -> None:
        """Commit buffered output."""

    def finish(self, sim: Simulation) -> None:
        """End of :meth:`Simulation.run`."""
        self.flush(sim)

    def abort(self, sim: Simulation, exc: BaseException) -> None:
        """The run failed with ``exc``; keep what is valid."""
        self.flush(sim)


class ThermoLog(Operation):
    """A thermodynamics table: step, time (fs), per system T (K), Epot, Etot and Econs (eV), P (GPa).

    Args:
        trigger: when to print a row (one row per system).
        stream: text stream (default: ``sys.stdout`` at the time of writing, so progress bars that
            redirect stdout keep working).
        logger: log the rows with ``logger.info`` instead of writing to a stream.
    """

    priority = 0

    def __init__(
        self, trigger: Trigger, stream: TextIO | None = None, logger: logging.Logger | None = None
    ) -> None:
        super().__init__(trigger)
        self.stream = stream
        self.logger = logger
        self._header_done = False

    def _emit(self, line: str) -> None:
        if self.logger is not None:
            self.logger.info(line)
        else:
            stream = self.stream if self.stream is not None else sys.stdout
            stream.write(line + "\n")
            stream.flush()

    def __call__(self, sim: Simulation) -> None:
        if not self._header_done:
            self._emit(
                f"{'step':>10} {'time_fs':>12} {'sys':>4} {'T_K':>10} {'Epot_eV':>16} {'Etot_eV':>16} "
                f"{'Econs_eV':>16} {'P_GPa':>10}"
            )
            self._header_done = True
        th = sim.thermo()  # collective: every rank computes it
        if not sim.forces.domain.is_root:
            return
        for s in range(sim.state.n_systems):
            self._emit(
                f"{th.step:>10d} {th.time_fs:>12.2f} {s:>4d} {float(th.temperature_K[s]):>10.3f} "
                f"{float(th.potential_eV[s]):>16.6f} {float(th.total_eV[s]):>16.6f} "
                f"{float(th.conserved_eV[s]):>16.6f} {float(th.pressure_GPa[s]):>10.4f}"
            )


class ZarrFrameWriter(Operation):
    """Append frames (unwrapped positions in tag order, cell, energies, T, P) to a run store.

    Frames are buffered up to the chunk boundary of the ``positions`` array, so each chunk is
    written once; a checkpoint, the end of a run and a failure commit the buffer first.  Serial
    for now: under MPI the owned rows must first be gathered to the writer rank in tag order
    (``MPIDomain.gather_by_tag``) so that two ranks never write one chunk.

    Args:
        run: the run group to append to.
        trigger: when to record a frame.
        buffered: buffer to chunk boundaries (``False``: commit every frame at once).
    """

    uses_force_extras = True

    priority = 10

    def __init__(self, run: RunStore, trigger: Trigger, *, buffered: bool = True) -> None:
        super().__init__(trigger)
        self.run = run
        self.buffered = buffered
        self._buffer: list[dict[str, Any]] = []

    def frame(self, sim: Simulation) -> dict[str, Any] | None:
        """The current frame as NumPy arrays/scalars keyed by store field (``None`` on ranks other
        than the writer rank; every rank must call it, the gather is collective).

        Fields the run declares beyond the standard ones (e.g. ``force_dev_max``) are taken from
        ``sim.forces.extras`` under the same name.
        """
        st = sim.state
        th = sim.thermo()
        rows = sim.forces.domain.gather_by_tag(st, ["unwrapped_positions"])
        if rows is None:
            return None
        out = {
            "positions": rows["unwrapped_positions"].to(torch.float32).cpu().numpy(),
            "cell": st.cell.detach().to(torch.float64).cpu().numpy(),
            "time_fs": th.time_fs,
            "energy_eV": th.potential_eV.detach().cpu().numpy(),
            "kinetic_energy_eV": th.kinetic_eV.detach().cpu().numpy(),
            "temperature_K": th.temperature_K.detach().cpu().numpy(),
            "pressure_GPa": th.pressure_GPa.detach().cpu().numpy(),
            "conserved_energy_eV": th.conserved_eV.detach().cpu().numpy(),
            "step": st.step,
        }
        for name in self.run.frame_fields:
            if name not in out:
                if name not in sim.forces.extras:
                    raise KeyError(
                        f"run declares frame field {name!r} but the forces provide no such extra at step "
                        f"{sim.state.step} (is the potential a committee?)"
                    )
                out[name] = sim.forces.extras[name].detach().cpu().numpy()
        return out

    def __call__(self, sim: Simulation) -> None:
        frame = self.frame(sim)
        if frame is None:
            return
        self._buffer.append(frame)
        chunk = self.run.frame_chunk_frames
        if not self.buffered or (self.run.n_frames + len(self._buffer)) % chunk == 0:
            self.flush(sim)

    def flush(self, sim: Simulation) -> None:
        if self._buffer:
            frames, self._buffer = self._buffer, []
            self.run.append_frames(frames)


class CheckpointWriter(Operation):
    """Write a full checkpoint (state, integrator, forces, metadata) into the run store.

    Buffered frames of every operation are committed first, so the store never holds a
    checkpoint newer than its frames.

    Args:
        run: the run group.
        trigger: when to checkpoint.
        at_end: also checkpoint at the end of every :meth:`Simulation.run` (if not just done).
        metadata: JSON-able extras stored with each checkpoint (the spec).
        keep: complete checkpoints to keep.
    """

    priority = 100

    def __init__(
        self,
        run: RunStore,
        trigger: Trigger,
        *,
        at_end: bool = True,
        metadata: Mapping[str, Any] | None = None,
        keep: int = 1,
    ) -> None:
        super().__init__(trigger)
        self.run = run
        self.at_end = at_end
        self.metadata = dict(metadata or {})
        self.keep = keep
        self.last_step: int | None = None

    def __call__(self, sim: Simulation) -> None:
        sim.flush()
        full = sim.forces.domain.gather_state(sim.state)  # collective; the whole state in tag order
        forces_state = sim.forces.state_dict()
        self.last_step = sim.state.step
        if full is None:
            return
        write_checkpoint(
            self.run.checkpoint_group,
            full,
            sim.integrator.state_dict(),
            forces_state,
            self.metadata,
            keep=self.keep,
        )
        self.run.update_attrs(checkpoint_step=sim.state.step, current_step=sim.state.step)

    def finish(self, sim: Simulation) -> None:
        if self.at_end and self.last_step != sim.state.step:
            self(sim)

    def abort(self, sim: Simulation, exc: BaseException) -> None:
        """Keep the last good checkpoint: the state of a failed step is not saved."""


# ---------------------------------------------------------------------- the run loop
class Simulation:
    """Runs the MD loop (order in the module docstring).

    Args:
        state: the state to advance (mutated in place).
        forces: force computation (neighbour list, domain, potential).
        integrator: the integrator.
        operations: triggered operations (writers, logs); a list that may be extended later.
        store: run group whose ``status`` is kept current (running / completed when the step
            reaches the run's ``steps`` attribute / stopped / failed / interrupted / the status of
            a :class:`RunStop`, e.g. extrapolating).
        progress: ``progress(steps_done, steps_total)`` after every step.
    """

    def __init__(
        self,
        state: State,
        forces: ForceCompute,
        integrator: Integrator,
        operations: Iterable[Operation] = (),
        *,
        store: RunStore | None = None,
        progress: ProgressCallback | None = None,
    ) -> None:
        self.state = state
        self.forces = forces
        self.integrator = integrator
        self.operations = sorted(operations, key=lambda op: op.priority)
        self.store = store
        self.progress = progress
        self._ready = False
        self._thermo: Thermo | None = None

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: Checkpoint,
        forces: ForceCompute,
        integrator: Integrator,
        operations: Iterable[Operation] = (),
        **kwargs: Any,
    ) -> Simulation:
        """Continue from ``checkpoint``: its state, integrator variables and neighbour list."""
        state = checkpoint.state
        forces.load_state_dict(checkpoint.forces, state)
        integrator.load_state_dict(checkpoint.integrator)
        sim = cls(state, forces, integrator, operations, **kwargs)
        sim._ready = True
        return sim

    @property
    def time_fs(self) -> float:
        """Simulated time, fs (``step · dt``)."""
        return self.state.step * self.integrator.dt

    def thermo(self) -> Thermo:
        """Observables of the current step (computed once per step)."""
        if self._thermo is None or self._thermo.step != self.state.step:
            st, domain = self.state, self.forces.domain
            ke = thermo.kinetic_energy(st, domain)
            self._thermo = Thermo(
                step=st.step,
                time_fs=self.time_fs,
                temperature_K=thermo.temperature(
                    st,
                    domain,
                    thermo.degrees_of_freedom(st, domain, remove_com=self.integrator.conserves_momentum),
                ),
                potential_eV=st.energy.detach().clone(),
                kinetic_eV=ke,
                total_eV=st.energy + ke,
                conserved_eV=st.energy + ke + self.integrator.conserved_energy(st, self.forces),
                pressure_GPa=thermo.pressure(st, domain),
            )
        return self._thermo

    def flush(self) -> None:
        """Commit the buffered output of every operation."""
        for op in self.operations:
            op.flush(self)

    def _extras_due(self, step: int) -> bool:
        """Whether an operation firing at ``step`` reads the potential's extras."""
        return any(op.uses_force_extras and op.trigger(step) for op in self.operations)

    def _fire(self) -> None:
        step = self.state.step
        for op in self.operations:
            if op.trigger(step):
                op(self)

    def run(self, steps: int) -> None:
        """Advance ``steps`` MD steps (see the module docstring for the order of work).

        Raises:
            NonFiniteError: the run exploded (status ``failed``, frames and checkpoint kept).
            RunStop: an operation stopped the run (status :attr:`RunStop.status`, same bookkeeping).
            Exception: anything else raised in the loop, after the same bookkeeping.
        """
        if steps < 0:
            raise ValueError(f"steps must be non-negative, got {steps}")
        integ, forces, state = self.integrator, self.forces, self.state
        self.operations.sort(key=lambda op: op.priority)  # stable; also orders operations added later
        if self.store is not None and self.forces.domain.is_root:
            self.store.set_status("running", step=state.step)
        try:
            if not self._ready:
                self._thermo = None
                forces.compute(state, extras=self._extras_due(state.step))
                integ.attach(state, forces)
                self._ready = True
                self._fire()
            if self.progress is not None:
                self.progress(0, steps)
            for done in range(1, steps + 1):
                integ.step_one(state, forces)
                forces.compute(state, extras=self._extras_due(state.step + 1))
                integ.step_two(state, forces)
                state.step += 1
                self._fire()
                if self.progress is not None:
                    self.progress(done, steps)
            for op in self.operations:
                op.finish(self)
        except BaseException as exc:
            self._abort(exc)
            raise
        if self.store is not None and self.forces.domain.is_root:
            target = self.store.target_steps
            status = "completed" if target is None or state.step >= target else "stopped"
            self.store.set_status(status, step=state.step)

    def _abort(self, exc: BaseException) -> None:
        for op in self.operations:
            try:
                op.abort(self, exc)
            except Exception as inner:  # noqa: PERF203 - the original error matters more
                logging.getLogger(__name__).error("operation %r failed while aborting: %s", op, inner)
        if self.store is not None and self.forces.domain.is_root:
            if isinstance(exc, KeyboardInterrupt):
                status = "interrupted"
            elif isinstance(exc, RunStop):
                status = exc.status
            else:
                status = "failed"
            try:
                self.store.set_status(status, f"{type(exc).__name__}: {exc}", step=self.state.step)
            except Exception as inner:
                logging.getLogger(__name__).error("could not record status %r: %s", status, inner)
