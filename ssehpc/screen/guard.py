"""Stop a run that the committee says is extrapolating.

:class:`ExtrapolationGuard` is an operation (:class:`ssehpc.simulation.Operation`) that reads the
committee deviation ``max_i ε_i`` (``ForceCompute.extras["force_dev_max"]``, eV/Å, one value per
system, already reduced over MPI ranks, so every rank decides the same) at the steps its trigger
selects.  It counts, per system, the *consecutive* checks with ``max_i ε_i > trust_hi``; when a
system reaches ``stop_after`` of them the guard records what it saw in the run attribute
``extrapolation`` and raises :class:`ExtrapolationStop`.

What the simulation then does (``Simulation._abort``): every operation aborts — the frame writer
commits its buffered frames, so the frames of the run up to the stopping step (that step included
when it is a frame step) are in the store as evidence — the checkpoint writer writes *nothing*
(the state is untrustworthy; the last checkpoint before the stop stays current), and the run's
status becomes ``extrapolating`` with an error text naming the deviation, the threshold and the
step.

Order within a step: the guard's priority (50) lies between the frame writer (10) and the
checkpoint writer (100): the frame of the stopping step is buffered before the guard raises, and
no checkpoint is taken of that step.  A checkpoint taken at an earlier step of the streak (fewer
than ``stop_after`` checks above ``trust_hi``) is kept; the ``extrapolation`` attribute names the
last step that was still below ``trust_hi`` (``last_step_below``).

The streak counter is not checkpointed: a resumed run starts counting from zero.  In a batched
state (several systems in one run) the first system to reach ``stop_after`` stops the whole run.
"""

from __future__ import annotations

import logging
import math
from typing import Any, ClassVar

import torch

from ssehpc.simulation import Operation, RunStop, Simulation, Trigger

log = logging.getLogger(__name__)


class ExtrapolationStop(RunStop):
    """The committee deviation stayed above ``trust_hi`` for ``stop_after`` consecutive checks.

    The run records status ``extrapolating``.

    Attributes:
        step: MD step at which the run stopped.
        force_dev_max: ``max_i ε_i`` at that step, eV/Å.
        trust_hi: the threshold, eV/Å.
        system: index of the system that extrapolated (0 for a single system).
    """

    status: ClassVar[str] = "extrapolating"

    def __init__(
        self,
        message: str,
        step: int = -1,
        force_dev_max: float = math.nan,
        trust_hi: float = math.nan,
        system: int = 0,
    ) -> None:
        super().__init__(message)
        self.step = int(step)
        self.force_dev_max = float(force_dev_max)
        self.trust_hi = float(trust_hi)
        self.system = int(system)

    def __reduce__(self) -> tuple[Any, ...]:  # keep the fields through pickling (Dask, MPI)
        return (type(self), (str(self), self.step, self.force_dev_max, self.trust_hi, self.system))


class ExtrapolationGuard(Operation):
    """Stop the run after ``stop_after`` consecutive checks with ``max_i ε_i > trust_hi``.

    Args:
        trigger: the steps at which to check (each check makes the committee compute its member
            forces at that step).
        trust_hi: threshold of ``max_i ε_i``, eV/Å.
        stop_after: consecutive checks above ``trust_hi`` that stop the run (≥ 1).

    Attributes:
        streak: current run of consecutive checks above ``trust_hi``, per system.
        checks: checks made.
        max_seen: largest ``max_i ε_i`` seen, eV/Å.
    """

    priority = 50
    uses_force_extras = True

    def __init__(self, trigger: Trigger, trust_hi: float, stop_after: int) -> None:
        super().__init__(trigger)
        if not (math.isfinite(trust_hi) and trust_hi > 0):
            raise ValueError(f"trust_hi must be a positive force deviation (eV/Å), got {trust_hi}")
        if int(stop_after) < 1:
            raise ValueError(f"stop_after must be at least 1 consecutive check, got {stop_after}")
        self.trust_hi = float(trust_hi)
        self.stop_after = int(stop_after)
        self.streak: torch.Tensor | None = None
        self.checks = 0
        self.max_seen = 0.0
        self._last_below: list[int | None] = []
        self._above: list[list[tuple[int, float]]] = []

    def __repr__(self) -> str:
        return f"ExtrapolationGuard({self.trigger!r}, trust_hi={self.trust_hi}, stop_after={self.stop_after})"

    def __call__(self, sim: Simulation) -> None:
        extras = sim.forces.extras
        if "force_dev_max" not in extras:
            raise KeyError(
                f"the extrapolation guard needs the committee force deviation at step {sim.state.step}, "
                "but the forces provide none (is the potential a committee with n_members >= 2?)"
            )
        dev = extras["force_dev_max"].detach().to("cpu", torch.float64).reshape(-1)
        step = int(sim.state.step)
        n = dev.numel()
        if self.streak is None or self.streak.numel() != n:
            self.streak = torch.zeros(n, dtype=torch.int64)
            self._last_below = [None] * n
            self._above = [[] for _ in range(n)]
        # NaN compares False: a NaN deviation counts as above (the forces would have raised first).
        above = ~(dev <= self.trust_hi)
        self.streak = torch.where(above, self.streak + 1, torch.zeros_like(self.streak))
        self.checks += 1
        self.max_seen = max(self.max_seen, float(torch.nan_to_num(dev, nan=math.inf).max()))
        for s in range(n):
            if bool(above[s]):
                self._above[s] = [*self._above[s], (step, float(dev[s]))][-self.stop_after :]
            else:
                self._last_below[s] = step
                self._above[s] = []
        hit = torch.nonzero(self.streak >= self.stop_after).reshape(-1)
        if hit.numel() == 0:
            return
        s = int(hit[0])
        value = float(dev[s])
        where = f" (system {s})" if n > 1 else ""
        message = (
            f"committee force deviation max_i eps_i = {value:.4g} eV/Å above trust_hi = {self.trust_hi:g} eV/Å "
            f"for {self.stop_after} consecutive checks{where}; stopped at step {step}"
        )
        record = {
            "step": step,
            "system": s,
            "force_dev_max": value,
            "trust_hi": self.trust_hi,
            "stop_after": self.stop_after,
            "steps_above": [a for a, _ in self._above[s]],
            "force_dev_max_above": [v for _, v in self._above[s]],
            "last_step_below": self._last_below[s],
        }
        store = sim.store
        if store is not None and sim.forces.domain.is_root:
            try:
                store.update_attrs(extrapolation=record)
            except Exception as exc:  # the stop matters more than its record
                log.error("could not record the extrapolation stop: %s", exc)
        raise ExtrapolationStop(message, step, value, self.trust_hi, s)
