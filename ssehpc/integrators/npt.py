"""NPT: stochastic cell rescaling barostat (Bernetti & Bussi, J. Chem. Phys. 153, 114107 (2020))
with a Langevin (BAOAB) particle thermostat.

Barostat.  The cell is a first-order stochastic variable.  Isotropic (``y = ln V``):

.. math::

    dy = −\\frac{β_T}{τ_p}(P_0 − P_{int})\\,dt + \\sqrt{\\frac{2 k_B T β_T}{V τ_p}}\\,dW

Anisotropic, *diagonal* variant (each Cartesian axis ``k`` scaled on its own, ``y_k = ln L_k``; the
off-diagonal stress is not controlled, as in GROMACS' semi-isotropic C-rescale generalised to three
independent axes; the full-tensor variant of Del Tatto et al. 2022 is not implemented):

.. math::

    dy_k = −\\frac{β_T}{3τ_p}(P_0 − P_{kk})\\,dt + \\sqrt{\\frac{2 k_B T β_T}{3 V τ_p}}\\,dW_k

(Itô; ``Σ_k dy_k`` reproduces the isotropic equation for ``ln V``).  Both sample
``exp[−β(U + K + P_0 V)]`` with the flat measure ``dV`` (``dL_x dL_y dL_z``) when positions are
scaled with the cell, ``x_k ← μ_k x_k``, and momenta inversely, ``p_k ← p_k/μ_k``, with
``μ_k = exp(Δy_k)`` (``exp(Δy/3)`` isotropic), and ``P_int`` uses the instantaneous kinetic energy:
``P = (Σ p⊗p/m + W)/V`` (:func:`ssehpc.thermo.pressure_tensor`).  ``β_T`` (the compressibility
argument) only sets how fast the volume relaxes, not the distribution.

Thermostat.  Langevin, as in :mod:`ssehpc.integrators.langevin` (per-atom noise keyed by tag:
local, so no collective beyond the energy tally, and exact for any friction).  A step is

::

    step_one:  B(½Δt) · C-draw · A(½Δt) · C-scale · O(Δt) · A(½Δt)      ── forces ──
    step_two:  C-close · B(½Δt)

``C-draw`` evaluates the drift ``a`` and diffusion ``D`` from the pressure at the start of the
drift (virial of the current positions, half-kicked momenta) and draws ``Δy = a Δt + sqrt(2DΔt) R``
(Euler–Maruyama, as the reference implementation; ``R`` from :func:`ssehpc.random.system_normal`
keyed by the system index); ``C-scale`` rescales cell, positions and momenta in the middle of the
drift, as in the time-reversible ("T") scheme of Bernetti & Bussi's SimpleMD code.  ``C-close``
re-evaluates ``a'``, ``D'`` at the end of the step and accumulates the effective-energy integral

.. math::

    ΔĨ = k_B T \\ln\\frac{P(y→y')}{P(y'→y)} − k_B T \\ln\\frac{V'}{V}

(Gaussian transition probabilities), which equals ``−Δ(U + K + P_0 V)`` for an exact step.
:meth:`StochasticCellRescaling.conserved_energy` returns ``P_0 V + Ĩ − Q_O`` (``Q_O``: energy put
in by the O steps), so ``E_pot + K + conserved_energy`` drifts only through integration error.

Requires ``state.virial`` from a force evaluation at the current positions before the first step.

==========  =================================  =============
symbol      variable                           unit
==========  =================================  =============
x, p, m, F  state.positions/momenta/…          Å, amu·Å/fs, amu, eV/Å
h           state.cell (rows = lattice vecs)   Å
V           state.volume                       Å³
P_int, P    thermo.pressure_tensor             eV/Å³
P_0         self.pressure (GPa)                eV/Å³ inside
β_T         self.compressibility (1/GPa)       Å³/eV inside
τ_p, τ_t    self.tau_p, self.tau_t (= 1/γ)     fs
T           self.temperature                   K
y, Δy, μ    ln V or ln L_k, its step, e^{Δy}   1
a, D        drift, diffusion of y              1/fs, 1/fs
Ĩ           self._baro                         eV
Q_O         self._heat                         eV
==========  =================================  =============
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from ssehpc import random as rng
from ssehpc import thermo, units
from ssehpc.forces import ForceCompute, NonFiniteError
from ssehpc.integrators.base import Integrator
from ssehpc.integrators.langevin import check_time, ornstein_uhlenbeck_step
from ssehpc.integrators.nve import momentum_step, position_step
from ssehpc.state import State

#: Random stream of the particle thermostat (O step).
STREAM_PARTICLES = 31
#: Random stream of the barostat (per system).
STREAM_BAROSTAT = 32


#: Largest |Δ ln L| (or |Δ ln V|) of one barostat step before the run is declared exploded.
MAX_LOG_SCALE_PER_STEP = 1.0


def diag_pressure_GPa(state: State, forces: ForceCompute) -> torch.Tensor:
    """``[S]`` GPa, the mean of the diagonal of the pressure tensor (for error messages)."""
    p = thermo.pressure_tensor(state, forces.domain)
    return torch.diagonal(p, dim1=1, dim2=2).mean(dim=1).double() * units.EV_PER_A3_TO_GPA


class StochasticCellRescaling(Integrator):
    """NPT with stochastic cell rescaling and a Langevin thermostat.

    Args:
        dt: time step, fs.
        temperature: target temperature, K; one number or one per system.
        pressure: target (hydrostatic) pressure P₀, GPa; one number or one per system.
        tau_t: Langevin friction time 1/γ, fs.
        tau_p: barostat relaxation time τ_p, fs.
        compressibility: β_T, 1/GPa: an estimate of the isothermal compressibility (sets the
            relaxation speed only; the default suits solid electrolytes, bulk moduli ~20–60 GPa).
        anisotropic: scale the three Cartesian axes independently (diagonal variant), each driven by
            its diagonal pressure component; otherwise scale the cell isotropically.
    """

    name = "npt"
    conserves_momentum = False

    def __init__(
        self,
        dt: float,
        temperature: float | Sequence[float],
        pressure: float | Sequence[float] = 0.0,
        tau_t: float = 100.0,
        tau_p: float = 1000.0,
        compressibility: float = 0.05,
        anisotropic: bool = False,
    ) -> None:
        super().__init__(dt)
        self.temperature = temperature
        self.pressure = pressure
        self.tau_t = check_time(tau_t, "tau_t")
        self.tau_p = check_time(tau_p, "tau_p")
        if not (
            isinstance(compressibility, (int, float))
            and math.isfinite(compressibility)
            and compressibility > 0
        ):
            raise ValueError(f"compressibility must be a positive number in 1/GPa, got {compressibility!r}")
        self.compressibility = float(compressibility)
        self.anisotropic = bool(anisotropic)
        self._beta = self.compressibility * units.EV_PER_A3_TO_GPA  # Å³/eV
        self._kT: torch.Tensor | None = None  # [S] eV (float64)
        self._P0: torch.Tensor | None = None  # [S] eV/Å³ (float64)
        self._heat: torch.Tensor | None = None  # [S] eV put in by the O steps
        self._baro: torch.Tensor | None = None  # [S] eV effective-energy integral of the barostat
        self._pending: tuple[torch.Tensor, ...] | None = None  # (Δy, a, D, V) between step_one and step_two

    # ------------------------------------------------------------------ setup
    def attach(self, state: State, forces: ForceCompute) -> None:
        self._set_targets(state)
        self._heat = torch.zeros(state.n_systems, dtype=torch.float64, device=state.device)
        self._baro = torch.zeros(state.n_systems, dtype=torch.float64, device=state.device)

    def _set_targets(self, state: State) -> None:
        t = thermo.per_system(self.temperature, state, name="temperature", positive=True)
        self._kT = units.KB * t.to(torch.float64)
        p = thermo.per_system(self.pressure, state, name="pressure")
        self._P0 = p.to(torch.float64) * units.GPA_TO_EV_PER_A3

    def _setup(self, state: State, forces: ForceCompute) -> None:
        if self._heat is None:
            self.attach(state, forces)
        elif self._kT is None:  # after load_state_dict
            self._set_targets(state)
            self._heat = self._heat.to(state.device)
            self._baro = self._baro.to(state.device)

    # ------------------------------------------------------------------ barostat
    def _drift_diffusion(self, state: State, forces: ForceCompute) -> tuple[torch.Tensor, ...]:
        """``(a [S, n] 1/fs, D [S] 1/fs, V [S] Å³)`` of the barostat SDE at the current state."""
        p = thermo.pressure_tensor(state, forces.domain).to(torch.float64)  # eV/Å³
        vol = state.volume.to(torch.float64)
        diag = torch.diagonal(p, dim1=1, dim2=2)  # [S, 3]
        if self.anisotropic:  # y_k = ln L_k:  a_k = −β_T/(3τ_p) (P₀ − P_kk),  D = k_B T β_T / (3 V τ_p)
            a = -(self._beta / (3.0 * self.tau_p)) * (self._P0[:, None] - diag)
            d = self._kT * self._beta / (3.0 * vol * self.tau_p)
        else:  # y = ln V:  a = −β_T/τ_p (P₀ − tr P/3),  D = k_B T β_T / (V τ_p)
            a = -(self._beta / self.tau_p) * (self._P0 - diag.mean(dim=1))[:, None]
            d = self._kT * self._beta / (vol * self.tau_p)
        return a, d, vol

    def _draw(self, state: State, forces: ForceCompute) -> torch.Tensor:
        """Draw the barostat step; returns ``μ`` ``[S, 3]`` (scale factor per Cartesian axis)."""
        a, d, vol = self._drift_diffusion(state, forces)
        n = a.shape[1]
        # keyed by each system's (system_seed, system_key): a batched replica draws what it would alone
        r = rng.state_system_normal(state, state.step, STREAM_BAROSTAT, n).to(torch.float64)
        dy = a * self.dt + torch.sqrt(2.0 * d * self.dt)[:, None] * r  # Δy = aΔt + sqrt(2DΔt) R
        # A solid under a sane barostat changes a length by far less than 1 % per step (an ideal
        # gas by ~10 %); an e-fold means the system exploded (pressures of 1e3-1e5 GPa): stop
        # with a clear error before the cell overflows.
        bad = ~torch.isfinite(dy).all(dim=1) | (dy.abs().amax(dim=1) > MAX_LOG_SCALE_PER_STEP)
        if bool(bad.any()):
            which = torch.nonzero(bad).flatten()[:5].tolist()
            raise NonFiniteError(
                f"barostat exploded at step {state.step}: cell scaling of systems {which} by "
                f"exp({dy[bad].abs().amax().item():.3g}) in one step (pressures "
                f"{[round(p, 1) for p in diag_pressure_GPa(state, forces)[bad][:5].tolist()]} GPa)"
            )
        self._pending = (dy, a, d, vol)
        return torch.exp(dy) if self.anisotropic else torch.exp(dy / 3.0).expand(-1, 3)

    def _close(self, state: State, forces: ForceCompute) -> None:
        """Add ``k_B T ln[P(y→y')/P(y'→y)] − k_B T ln(V'/V)`` to the barostat integral."""
        if self._pending is None:
            return
        dy, a, d, vol = self._pending
        a2, d2, vol2 = self._drift_diffusion(state, forces)
        n = dy.shape[1]
        # Gaussian transition densities (common 4πΔt factors cancel)
        log_forward = -((dy - a * self.dt) ** 2).sum(dim=1) / (4.0 * d * self.dt) - 0.5 * n * torch.log(d)
        log_backward = -((dy + a2 * self.dt) ** 2).sum(dim=1) / (4.0 * d2 * self.dt) - 0.5 * n * torch.log(d2)
        self._baro = self._baro + self._kT * (log_forward - log_backward - torch.log(vol2 / vol))
        self._pending = None

    @staticmethod
    def _rescale(state: State, mu: torch.Tensor) -> None:
        """``x_k ← μ_k x_k``, ``h_{ik} ← μ_k h_{ik}``, ``p_k ← p_k / μ_k`` (fractional coordinates kept)."""
        mu = mu.to(state.dtype)
        mu_atom = mu[state.system_idx]
        state.positions = state.positions * mu_atom
        state.momenta = state.momenta / mu_atom
        state.cell = state.cell * mu[:, None, :]

    # ------------------------------------------------------------------ step
    def step_one(self, state: State, forces: ForceCompute) -> None:
        self._setup(state, forces)
        h = 0.5 * self.dt
        momentum_step(state, h)
        mu = self._draw(state, forces)
        position_step(state, h)
        self._rescale(state, mu)
        dke = ornstein_uhlenbeck_step(state, forces.domain, self.dt, self.tau_t, self._kT, STREAM_PARTICLES)
        self._heat = self._heat + dke.to(torch.float64)
        position_step(state, h)

    def step_two(self, state: State, forces: ForceCompute) -> None:
        self._close(state, forces)
        momentum_step(state, 0.5 * self.dt)

    def conserved_energy(self, state: State, forces: ForceCompute) -> torch.Tensor:
        """``[S]`` eV: ``P₀V + Ĩ − Q_O`` (effective-energy terms of barostat and thermostat)."""
        if self._heat is None:
            return super().conserved_energy(state, forces)
        self._setup(state, forces)
        vol = state.volume.to(torch.float64)
        return (self._P0 * vol + self._baro - self._heat).to(state.dtype)

    def state_dict(self) -> dict[str, Any]:
        if self._heat is None:
            return {}
        return {"heat": self._heat.clone(), "baro": self._baro.clone()}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self._kT = self._P0 = None
        self._pending = None
        if "heat" not in d:
            self._heat = self._baro = None
            return
        self._heat = d["heat"].clone()
        self._baro = d["baro"].clone()
