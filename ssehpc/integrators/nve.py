"""Velocity Verlet (NVE).

.. math::

    p(t+½Δt) = p(t) + ½Δt F(t)/c,\\quad x(t+Δt) = x(t) + Δt\\, p(t+½Δt)/m,\\quad
    p(t+Δt) = p(t+½Δt) + ½Δt F(t+Δt)/c

with ``c = MVV2E`` converting eV/Å·fs to amu·Å/fs.

==========  ==================  =============
symbol      variable            unit
==========  ==================  =============
x           state.positions     Å
p           state.momenta       amu·Å/fs
m           state.masses        amu
F           state.forces        eV/Å
Δt          self.dt             fs
==========  ==================  =============
"""

from __future__ import annotations

from ssehpc import units
from ssehpc.forces import ForceCompute
from ssehpc.integrators.base import Integrator
from ssehpc.state import State


def momentum_step(state: State, dt: float) -> None:
    """``p += dt · F / MVV2E`` (in place); ``dt`` in fs."""
    state.momenta = state.momenta + (dt / units.MVV2E) * state.forces


def position_step(state: State, dt: float) -> None:
    """``x += dt · p / m`` (in place); ``dt`` in fs."""
    state.positions = state.positions + dt * state.momenta / state.masses[:, None]


class VelocityVerlet(Integrator):
    """Microcanonical velocity Verlet."""

    name = "nve"

    def step_one(self, state: State, forces: ForceCompute) -> None:
        momentum_step(state, 0.5 * self.dt)
        position_step(state, self.dt)

    def step_two(self, state: State, forces: ForceCompute) -> None:
        momentum_step(state, 0.5 * self.dt)
