"""The integrator interface (velocity-Verlet split, HOOMD style).

One MD step of :class:`~ssehpc.simulation.Simulation` is::

    integrator.step_one(state, forces)   # e.g. half kick + drift (+ thermostat parts)
    forces.compute(state)                # communicate, neighbour list, potential, reverse sum
    integrator.step_two(state, forces)   # e.g. second half kick (+ thermostat/barostat parts)
    state.step += 1

Integrators mutate the state in place and return ``None``.  They keep only per-*system*
variables (thermostat / barostat coordinates), exposed through :meth:`state_dict` so that
checkpoints restart bitwise; every per-atom quantity lives in the :class:`~ssehpc.state.State`
(the object that migrates between ranks).  Random numbers come from
:mod:`ssehpc.random`, keyed by ``(state.seed, state.step, tag or global system id, stream)``.
Every reduction over atoms goes through ``forces.domain``.
"""

from __future__ import annotations

from typing import Any

import torch

from ssehpc.forces import ForceCompute
from ssehpc.state import State


class Integrator:
    """Base class.

    Args:
        dt: time step, fs.
    """

    #: Name used in specs and store attributes.
    name: str = "integrator"

    #: Whether the dynamics conserve total momentum (then 3N − 3 kinetic degrees of freedom,
    #: else 3N), which the reported temperature uses.
    conserves_momentum: bool = True

    def __init__(self, dt: float) -> None:
        if not (isinstance(dt, (int, float)) and 0.0 < dt <= 20.0):
            raise ValueError(f"dt must be a time step in fs in (0, 20], got {dt!r}")
        self.dt = float(dt)

    def attach(self, state: State, forces: ForceCompute) -> None:
        """Size per-system variables for ``state`` (called once before the first step, and
        not again after :meth:`load_state_dict`)."""

    def step_one(self, state: State, forces: ForceCompute) -> None:
        raise NotImplementedError

    def step_two(self, state: State, forces: ForceCompute) -> None:
        raise NotImplementedError

    def conserved_energy(self, state: State, forces: ForceCompute) -> torch.Tensor:
        """``[S]`` eV extra energy of thermostat/barostat variables (0 for NVE)."""
        return torch.zeros(state.n_systems, dtype=state.dtype, device=state.device)

    def state_dict(self) -> dict[str, Any]:
        """Tensors/numbers needed to continue bitwise (checkpointed)."""
        return {}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`."""
