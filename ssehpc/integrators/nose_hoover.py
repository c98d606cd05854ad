"""Nosé–Hoover chain thermostat (NVT), Martyna–Klein–Tuckerman equations with the
Martyna–Tuckerman–Tobias–Klein (Mol. Phys. 87, 1117, 1996) Trotter factorisation.

Equations of motion for one system with ``M`` thermostats (``j = 1 … M``):

.. math::

    \\dot x = p/m,\\qquad \\dot p = F/c − v_{η_1} p,\\qquad \\dot η_j = v_{η_j}

    \\dot v_{η_1} = G_1 − v_{η_1} v_{η_2},\\qquad G_1 = (2K − N_f k_B T)/Q_1

    \\dot v_{η_j} = G_j − v_{η_j} v_{η_{j+1}},\\qquad G_j = (Q_{j−1} v_{η_{j−1}}^2 − k_B T)/Q_j

    \\dot v_{η_M} = G_M

with masses ``Q_1 = N_f k_B T τ²`` and ``Q_j = k_B T τ²``.  The conserved quantity is

.. math::

    H' = E_{pot} + K + \\sum_j ½ Q_j v_{η_j}^2 + N_f k_B T η_1 + k_B T \\sum_{j≥2} η_j

whose thermostat part is :meth:`NoseHooverChain.conserved_energy`.

One step is the symmetric Trotter splitting ``C(Δt/2) B A | forces | B C(Δt/2)``: ``C`` is the
chain propagator, applied in ``n_substeps × len(w)`` Suzuki–Yoshida sub-steps of length
``δ = w Δt / (2 n_substeps)``; each sub-step is (MTTK 1996)::

    v_M += ½δ G_M;  for j = M−1 … 1:  v_j ← (v_j e^{−¼δ v_{j+1}} + ½δ G_j) e^{−¼δ v_{j+1}}
    p ← p e^{−δ v_1};   η_j += δ v_j
    for j = 1 … M−1:    v_j ← (v_j e^{−¼δ v_{j+1}} + ½δ G_j) e^{−¼δ v_{j+1}};   v_M += ½δ G_M

The kinetic energy is reduced over ranks once per half step and then updated by the scale
factors, so the whole chain costs one collective per half step.  All chain variables are
per system (float64); ``N_f = 3N − 3`` per system (the chain conserves a zero total momentum,
which :func:`ssehpc.thermo.maxwell_boltzmann` sets up).

==========  ===========================  =============
symbol      variable                     unit
==========  ===========================  =============
x, p, m, F  state.positions/momenta/…    Å, amu·Å/fs, amu, eV/Å
c           units.MVV2E                  eV/(amu·Å²/fs²)
K           thermo.kinetic_energy        eV
N_f         self._dof                    1
T           self.temperature (/system)   K
τ           self.tau                     fs
Q_j         self._Q[:, j]                eV·fs²
η_j         self._eta[:, j]              1
v_{η_j}     self._v_eta[:, j]            1/fs
G_j         (local)                      1/fs²
w           YOSHIDA_WEIGHTS              1
==========  ===========================  =============
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ssehpc import thermo, units
from ssehpc.forces import ForceCompute
from ssehpc.integrators.base import Integrator
from ssehpc.integrators.langevin import check_time
from ssehpc.integrators.nve import momentum_step, position_step
from ssehpc.state import State

_W3 = 1.0 / (2.0 - 2.0 ** (1.0 / 3.0))
_W5 = 1.0 / (4.0 - 4.0 ** (1.0 / 3.0))

#: Suzuki–Yoshida weights (order → weights); 3 and 5 are fourth-order compositions.
YOSHIDA_WEIGHTS: dict[int, tuple[float, ...]] = {
    1: (1.0,),
    3: (_W3, 1.0 - 2.0 * _W3, _W3),
    5: (_W5, _W5, 1.0 - 4.0 * _W5, _W5, _W5),
}


class NoseHooverChain(Integrator):
    """NVT with a Nosé–Hoover chain per system.

    Args:
        dt: time step, fs.
        temperature: target temperature, K; one number or one per system.
        tau: thermostat period τ, fs (sets the masses ``Q``; ~100 fs for solids).
        chain_length: number of thermostats M in the chain (≥ 1).
        yoshida_order: number of Suzuki–Yoshida weights per sub-step (1, 3 or 5).  With
            τ ≫ Δt the chain is smooth and 1 (plain Trotter, as LAMMPS ``fix nvt``) conserves
            ``H'`` as well as 3 does (measured: LJ argon, Δt = 2 fs, τ = 100 fs), at less cost.
        n_substeps: RESPA sub-steps of the chain per half step.
    """

    name = "nose_hoover"

    def __init__(
        self,
        dt: float,
        temperature: float | Sequence[float],
        tau: float = 100.0,
        chain_length: int = 3,
        *,
        yoshida_order: int = 1,
        n_substeps: int = 1,
    ) -> None:
        super().__init__(dt)
        if not (isinstance(chain_length, int) and chain_length >= 1):
            raise ValueError(f"chain_length must be an integer >= 1, got {chain_length!r}")
        if yoshida_order not in YOSHIDA_WEIGHTS:
            raise ValueError(f"yoshida_order must be one of {sorted(YOSHIDA_WEIGHTS)}, got {yoshida_order!r}")
        if not (isinstance(n_substeps, int) and n_substeps >= 1):
            raise ValueError(f"n_substeps must be an integer >= 1, got {n_substeps!r}")
        self.temperature = temperature
        self.tau = check_time(tau, "tau")
        self.chain_length = chain_length
        self.yoshida_order = yoshida_order
        self.n_substeps = n_substeps
        self._eta: torch.Tensor | None = None  # [S, M]
        self._v_eta: torch.Tensor | None = None  # [S, M] 1/fs
        self._kT: torch.Tensor | None = None  # [S] eV
        self._dof: torch.Tensor | None = None  # [S]
        self._Q: torch.Tensor | None = None  # [S, M] eV·fs²

    # ------------------------------------------------------------------ setup
    def attach(self, state: State, forces: ForceCompute) -> None:
        shape = (state.n_systems, self.chain_length)
        self._eta = torch.zeros(shape, dtype=torch.float64, device=state.device)
        self._v_eta = torch.zeros(shape, dtype=torch.float64, device=state.device)
        self._set_masses(state, forces)

    def _set_masses(self, state: State, forces: ForceCompute) -> None:
        t = thermo.per_system(self.temperature, state, name="temperature", positive=True)
        self._kT = units.KB * t.to(torch.float64)
        self._dof = thermo.degrees_of_freedom(state, forces.domain).to(torch.float64).clamp_min(1.0)
        q = (self._kT * self.tau**2)[:, None].expand(state.n_systems, self.chain_length).clone()
        q[:, 0] *= self._dof
        self._Q = q

    def _setup(self, state: State, forces: ForceCompute) -> None:
        if self._eta is None:
            self.attach(state, forces)
        elif self._Q is None:  # after load_state_dict
            self._eta = self._eta.to(state.device)
            self._v_eta = self._v_eta.to(state.device)
            self._set_masses(state, forces)

    # ------------------------------------------------------------------ chain
    def _chain_half_step(self, state: State, forces: ForceCompute) -> None:
        """Propagate the chain over Δt/2 and scale the momenta (in place)."""
        M = self.chain_length
        kT, dof = self._kT, self._dof
        Q = list(self._Q.unbind(1))
        v = list(self._v_eta.unbind(1))
        eta = list(self._eta.unbind(1))
        ke = thermo.kinetic_energy(state, forces.domain).to(torch.float64)  # [S] eV
        scale = torch.ones_like(ke)

        def force(j: int) -> torch.Tensor:  # G_j, 1/fs²
            if j == 0:
                return (2.0 * ke - dof * kT) / Q[0]
            return (Q[j - 1] * v[j - 1] ** 2 - kT) / Q[j]

        for _ in range(self.n_substeps):
            for w in YOSHIDA_WEIGHTS[self.yoshida_order]:
                d = w * 0.5 * self.dt / self.n_substeps
                v[M - 1] = v[M - 1] + 0.5 * d * force(M - 1)
                for j in range(M - 2, -1, -1):
                    f = torch.exp(-0.25 * d * v[j + 1])
                    v[j] = (v[j] * f + 0.5 * d * force(j)) * f
                s = torch.exp(-d * v[0])  # p ← p e^{−δ v_1}
                scale = scale * s
                ke = ke * s * s
                for j in range(M):
                    eta[j] = eta[j] + d * v[j]
                for j in range(M - 1):
                    f = torch.exp(-0.25 * d * v[j + 1])
                    v[j] = (v[j] * f + 0.5 * d * force(j)) * f
                v[M - 1] = v[M - 1] + 0.5 * d * force(M - 1)

        self._v_eta = torch.stack(v, dim=1)
        self._eta = torch.stack(eta, dim=1)
        state.momenta = state.momenta * scale.to(state.dtype)[state.system_idx, None]

    # ------------------------------------------------------------------ step
    def step_one(self, state: State, forces: ForceCompute) -> None:
        self._setup(state, forces)
        self._chain_half_step(state, forces)
        momentum_step(state, 0.5 * self.dt)
        position_step(state, self.dt)

    def step_two(self, state: State, forces: ForceCompute) -> None:
        momentum_step(state, 0.5 * self.dt)
        self._chain_half_step(state, forces)

    def conserved_energy(self, state: State, forces: ForceCompute) -> torch.Tensor:
        """``[S]`` eV: ``Σ_j ½ Q_j v_j² + N_f k_B T η_1 + k_B T Σ_{j≥2} η_j``."""
        if self._eta is None:
            return super().conserved_energy(state, forces)
        self._setup(state, forces)
        kinetic = 0.5 * (self._Q * self._v_eta**2).sum(dim=1)
        potential = self._dof * self._kT * self._eta[:, 0] + self._kT * self._eta[:, 1:].sum(dim=1)
        return (kinetic + potential).to(state.dtype)

    def state_dict(self) -> dict[str, Any]:
        if self._eta is None:
            return {}
        return {"eta": self._eta.clone(), "v_eta": self._v_eta.clone()}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self._Q = self._kT = self._dof = None
        if "eta" not in d:
            self._eta = self._v_eta = None
            return
        if d["eta"].shape[1] != self.chain_length:
            raise ValueError(
                f"checkpoint has a chain of {d['eta'].shape[1]} thermostats, integrator has {self.chain_length}"
            )
        self._eta = d["eta"].clone()
        self._v_eta = d["v_eta"].clone()
