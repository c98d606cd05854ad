"""FIRE energy minimisation (fixed cell) as an integrator, for a ``minimise`` stage.

Fast Inertial Relaxation Engine (E. Bitzek, P. Koskinen, F. Gähler, M. Moseler, P. Gumbsch,
Phys. Rev. Lett. 97, 170201 (2006)), in the velocity-Verlet form with the usual parameters
(N_min = 5, f_inc = 1.1, f_dec = 0.5, α_start = 0.1, f_α = 0.99) and a cap on the displacement
per step.  Per system of a batch: its own time step, mixing α and counter, and its own
convergence (``max_i |F_i| < fmax``); a converged system stops moving (momenta zero) for the
remaining steps of the stage, so the stage length is the *maximum* number of iterations and
the final state is the minimised one.  Momenta start at zero (a Maxwell–Boltzmann draw of the
run is discarded); a following stage draws new ones with ``velocities: maxwell_boltzmann``, or
continues from rest.

The FIRE time step is not physical time: ``time_fs`` of the frames is ``step · dt``.
"""

from __future__ import annotations

from typing import Any

import torch

from ssehpc.forces import ForceCompute
from ssehpc.integrators.base import Integrator
from ssehpc.state import State

N_MIN = 5
F_INC = 1.1
F_DEC = 0.5
ALPHA_START = 0.1
F_ALPHA = 0.99


class Fire(Integrator):
    """FIRE minimisation of the positions at fixed cell.

    Args:
        dt: initial FIRE time step, fs.
        fmax: convergence: largest atomic force below this, eV/Å.
        dt_max: largest FIRE time step, fs (default 10 × ``dt``).
        max_step: largest displacement of an atom in one step, Å.
    """

    name = "fire"
    conserves_momentum = False

    def __init__(
        self, dt: float, fmax: float = 0.05, dt_max: float | None = None, max_step: float = 0.2
    ) -> None:
        super().__init__(dt)
        for label, v in (("fmax", fmax), ("max_step", max_step)):
            if not (isinstance(v, (int, float)) and v > 0):
                raise ValueError(f"{label} must be positive, got {v!r}")
        self.fmax = float(fmax)
        self.dt_max = float(dt_max) if dt_max is not None else 10.0 * dt
        if self.dt_max < dt:
            raise ValueError(f"dt_max ({self.dt_max} fs) must be at least dt ({dt} fs)")
        self.max_step = float(max_step)
        self._dt: torch.Tensor | None = None  # [S] fs
        self._alpha: torch.Tensor | None = None  # [S]
        self._n: torch.Tensor | None = None  # [S] steps since the last uphill move
        self._done: torch.Tensor | None = None  # [S] bool, converged

    def attach(self, state: State, forces: ForceCompute) -> None:
        s, dev = state.n_systems, state.device
        self._dt = torch.full((s,), self.dt, dtype=torch.float64, device=dev)
        self._alpha = torch.full((s,), ALPHA_START, dtype=torch.float64, device=dev)
        self._n = torch.zeros(s, dtype=torch.int64, device=dev)
        self._done = self._converged(state, forces)
        state.momenta = torch.zeros_like(state.momenta)

    def _converged(self, state: State, forces: ForceCompute) -> torch.Tensor:
        fmax = torch.zeros(state.n_systems, dtype=state.dtype, device=state.device)
        fmax = fmax.scatter_reduce(0, state.system_idx, state.forces.norm(dim=1), "amax", include_self=True)
        fmax = forces.domain.allreduce_max(fmax)
        return fmax < self.fmax

    def _system_sum(self, values: torch.Tensor, state: State, forces: ForceCompute) -> torch.Tensor:
        out = torch.zeros(state.n_systems, dtype=values.dtype, device=values.device)
        out.index_add_(0, state.system_idx, values)
        return forces.domain.allreduce_sum(out)

    def step_one(self, state: State, forces: ForceCompute) -> None:
        if self._dt is None:
            self.attach(state, forces)
        sys = state.system_idx
        dt_atom = self._dt.to(state.dtype)[sys]
        active = (~self._done)[sys]
        v = (
            state.momenta / state.masses[:, None]
            + 0.5 * dt_atom[:, None] * state.forces / state.masses[:, None]
        )
        # FIRE mixing, per system: P = F·v decides between accelerating and stopping.
        power = self._system_sum((state.forces * v).sum(dim=1).double(), state, forces)
        vnorm = self._system_sum((v * v).sum(dim=1).double(), state, forces).sqrt()
        fnorm = self._system_sum((state.forces * state.forces).sum(dim=1).double(), state, forces).sqrt()
        uphill = power <= 0
        mix = (self._alpha * vnorm / fnorm.clamp_min(1e-30)).to(state.dtype)[sys]
        a = self._alpha.to(state.dtype)[sys]
        v = torch.where(
            uphill[sys][:, None], torch.zeros_like(v), (1.0 - a)[:, None] * v + mix[:, None] * state.forces
        )
        grow = ~uphill & (self._n > N_MIN)
        self._dt = torch.where(
            uphill,
            self._dt * F_DEC,
            torch.where(grow, torch.clamp(self._dt * F_INC, max=self.dt_max), self._dt),
        )
        self._alpha = torch.where(
            uphill,
            torch.full_like(self._alpha, ALPHA_START),
            torch.where(grow, self._alpha * F_ALPHA, self._alpha),
        )
        self._n = torch.where(uphill, torch.zeros_like(self._n), self._n + 1)
        dx = self._dt.to(state.dtype)[sys][:, None] * v
        # cap the largest displacement of each system at max_step
        dmax = torch.zeros(state.n_systems, dtype=state.dtype, device=state.device)
        dmax = forces.domain.allreduce_max(
            dmax.scatter_reduce(0, sys, dx.norm(dim=1), "amax", include_self=True)
        )
        scale = torch.clamp(self.max_step / dmax.clamp_min(1e-30), max=1.0)[sys]
        dx = dx * scale[:, None]
        state.positions = torch.where(active[:, None], state.positions + dx, state.positions)
        state.momenta = torch.where(active[:, None], v * state.masses[:, None], torch.zeros_like(v))

    def step_two(self, state: State, forces: ForceCompute) -> None:
        sys = state.system_idx
        active = (~self._done)[sys]
        v = (
            state.momenta / state.masses[:, None]
            + 0.5 * self._dt.to(state.dtype)[sys][:, None] * state.forces / state.masses[:, None]
        )
        state.momenta = torch.where(active[:, None], v * state.masses[:, None], torch.zeros_like(v))
        self._done = self._done | self._converged(state, forces)
        state.momenta = torch.where(self._done[sys][:, None], torch.zeros_like(state.momenta), state.momenta)

    @property
    def converged(self) -> torch.Tensor | None:
        """``[S]`` bool: which systems have converged (``None`` before the first step)."""
        return self._done

    def conserved_energy(self, state: State, forces: ForceCompute) -> torch.Tensor:
        return torch.zeros_like(state.energy)  # nothing is conserved; Econs = Epot + KE

    def state_dict(self) -> dict[str, Any]:
        if self._dt is None:
            return {}
        return {
            "dt": self._dt.clone(),
            "alpha": self._alpha.clone(),
            "n": self._n.clone(),
            "done": self._done.clone(),
        }

    def load_state_dict(self, d: dict[str, Any]) -> None:
        if "dt" not in d:
            self._dt = self._alpha = self._n = self._done = None
            return
        self._dt, self._alpha, self._n, self._done = (d[k].clone() for k in ("dt", "alpha", "n", "done"))
