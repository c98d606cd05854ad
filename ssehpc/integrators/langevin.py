"""Langevin dynamics, BAOAB splitting (Leimkuhler & Matthews, Appl. Math. Res. Express 2013, 34).

.. math::

    dx = \\frac{p}{m}\\,dt,\\qquad
    dp = \\frac{F}{c}\\,dt - γ p\\,dt + \\sqrt{2 γ m k_B T / c}\\; dW

integrated as ``B A O A`` in :meth:`Langevin.step_one` and ``B`` in :meth:`Langevin.step_two`::

    B: p ← p + ½Δt F/c                     (half kick)
    A: x ← x + ½Δt p/m                     (half drift)
    O: p ← c₁ p + c₂ σ R,   c₁ = exp(−γΔt),  c₂ = sqrt(1 − c₁²),  σ = sqrt(m k_B T / c)
    A: x ← x + ½Δt p/m
    ── forces ──
    B: p ← p + ½Δt F/c

The O step is the exact solution of the Ornstein–Uhlenbeck part, so any friction is stable;
BAOAB samples configurations with an O(Δt²) error that is unusually small (superconvergent in
the high-friction limit).  ``R`` are standard normals from :func:`ssehpc.random.normal` keyed by
``(seed, step, STREAM, tag)``, so the trajectory is independent of atom order, batch layout and MPI
decomposition.  The friction does not conserve total momentum: a system thermostatted this way has
``3N`` kinetic degrees of freedom (not ``3N − 3``).

:meth:`Langevin.conserved_energy` returns minus the energy the O steps put into each system, so
``E_pot + E_kin + conserved_energy`` is constant up to the splitting error (a Δt diagnostic, as
LAMMPS' ``fix langevin tally yes``).

==========  ===========================  =============
symbol      variable                     unit
==========  ===========================  =============
x           state.positions              Å
p           state.momenta                amu·Å/fs
m           state.masses                 amu
F           state.forces                 eV/Å
c           units.MVV2E                  eV/(amu·Å²/fs²)
Δt          self.dt                      fs
γ           1 / self.damping             1/fs
T           self.temperature (/system)   K
k_B         units.KB                     eV/K
R           ssehpc.random.normal         1
==========  ===========================  =============
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from ssehpc import random as rng
from ssehpc import thermo, units
from ssehpc.forces import ForceCompute
from ssehpc.integrators.base import Integrator
from ssehpc.integrators.nve import momentum_step, position_step
from ssehpc.parallel.domain import SerialDomain
from ssehpc.state import State

#: Random stream of the Langevin O step.
STREAM = 21


def check_time(value: float, name: str) -> float:
    """``value`` as a float if it is a finite positive time (fs), else ``ValueError``."""
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive time in fs, got {value!r}")
    return float(value)


def ornstein_uhlenbeck_step(
    state: State, domain: SerialDomain, dt: float, damping: float, kT: torch.Tensor, stream: int
) -> torch.Tensor:
    """O step ``p ← c₁ p + c₂ sqrt(m k_B T/c) R`` over ``dt`` fs (in place).

    Args:
        state: momenta are updated; noise keyed by ``(system seed, state.step, stream, tag)``
            (:func:`ssehpc.random.atom_normal`).
        domain: for the per-system reduction of the kinetic-energy change.
        dt: time the friction acts, fs.
        damping: 1/γ, fs.
        kT: ``[S]`` eV, k_B T per system.
        stream: random stream id.

    Returns:
        ``[S]`` eV, kinetic energy added to each system (summed over ranks).
    """
    c1 = math.exp(-dt / damping)
    c2 = math.sqrt(-math.expm1(-2.0 * dt / damping))  # sqrt(1 − c₁²) without cancellation
    sigma = torch.sqrt(state.masses * kT.to(state.dtype)[state.system_idx] / units.MVV2E)  # amu·Å/fs
    noise = rng.atom_normal(state, state.step, stream, 3).to(state.dtype)
    p_old = state.momenta
    p_new = c1 * p_old + (c2 * sigma)[:, None] * noise
    state.momenta = p_new
    dke = (0.5 * units.MVV2E) * ((p_new * p_new - p_old * p_old).sum(dim=1) / state.masses)
    return thermo.system_sum(dke, state, domain)


class Langevin(Integrator):
    """NVT Langevin dynamics (BAOAB).

    Args:
        dt: time step, fs.
        temperature: target temperature, K; one number or one per system of the batch.
        damping: friction time 1/γ, fs (100 fs is a gentle thermostat for most solids).
        temperature_end: with ``ramp_steps``, the target moves linearly from ``temperature`` at
            step 0 to this temperature (K; one or one per system) at step ``ramp_steps`` and stays
            there — a melt–quench at a fixed rate.  The target is a function of the step, so a
            resumed run follows the same ramp.
        ramp_steps: length of the ramp, steps (0: no ramp).
    """

    name = "langevin"
    conserves_momentum = False

    def __init__(
        self,
        dt: float,
        temperature: float | Sequence[float],
        damping: float = 100.0,
        temperature_end: float | Sequence[float] | None = None,
        ramp_steps: int = 0,
    ) -> None:
        super().__init__(dt)
        self.temperature = temperature
        self.damping = check_time(damping, "damping")
        if not isinstance(ramp_steps, int) or ramp_steps < 0:
            raise ValueError(f"ramp_steps must be a non-negative number of steps, got {ramp_steps!r}")
        if (temperature_end is None) != (ramp_steps == 0):
            raise ValueError("a temperature ramp needs both temperature_end (K) and ramp_steps > 0")
        self.temperature_end = temperature_end
        self.ramp_steps = ramp_steps
        self._kT_end: torch.Tensor | None = None
        self._kT: torch.Tensor | None = None
        self._heat: torch.Tensor | None = None  # [S] eV put in by the O steps

    def attach(self, state: State, forces: ForceCompute) -> None:
        self._set_targets(state)
        self._heat = torch.zeros(state.n_systems, dtype=torch.float64, device=state.device)

    def _set_targets(self, state: State) -> None:
        self._kT = units.KB * thermo.per_system(self.temperature, state, name="temperature", positive=True)
        if self.ramp_steps:
            self._kT_end = units.KB * thermo.per_system(
                self.temperature_end, state, name="temperature_end", positive=True
            )

    def target_kT(self, step: int) -> torch.Tensor:
        """``[S]`` eV, k_B T of the thermostat at ``step`` (on the ramp, if any)."""
        if not self.ramp_steps:
            return self._kT
        f = min(max(step, 0), self.ramp_steps) / self.ramp_steps
        return self._kT + f * (self._kT_end - self._kT)

    def _setup(self, state: State, forces: ForceCompute) -> None:
        if self._heat is None:
            self.attach(state, forces)
        elif self._kT is None:  # after load_state_dict
            self._set_targets(state)
            self._heat = self._heat.to(state.device)

    def step_one(self, state: State, forces: ForceCompute) -> None:
        self._setup(state, forces)
        h = 0.5 * self.dt
        momentum_step(state, h)
        position_step(state, h)
        kT = self.target_kT(state.step)
        dke = ornstein_uhlenbeck_step(state, forces.domain, self.dt, self.damping, kT, STREAM)
        self._heat = self._heat + dke.to(torch.float64)
        position_step(state, h)

    def step_two(self, state: State, forces: ForceCompute) -> None:
        momentum_step(state, 0.5 * self.dt)

    def conserved_energy(self, state: State, forces: ForceCompute) -> torch.Tensor:
        """``[S]`` eV, minus the energy the thermostat has put into each system."""
        if self._heat is None:
            return super().conserved_energy(state, forces)
        return (-self._heat).to(state.dtype)

    def state_dict(self) -> dict[str, Any]:
        return {} if self._heat is None else {"heat": self._heat.clone()}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self._kT = None
        self._heat = d["heat"].clone() if "heat" in d else None
