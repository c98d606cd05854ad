"""Thermodynamic observables per system, reduced over MPI ranks through the domain.

All functions take the domain so the same call is correct on one rank and on many.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ssehpc import random as rng
from ssehpc import units
from ssehpc.parallel.domain import SerialDomain
from ssehpc.state import State

#: Random stream used for initial velocities.
STREAM_VELOCITIES = 11


def per_system(
    value: float | Sequence[float] | torch.Tensor,
    state: State,
    *,
    name: str = "value",
    positive: bool = False,
) -> torch.Tensor:
    """``[S]`` tensor (state dtype and device) from a scalar or one value per system.

    Raises:
        ValueError: if a sequence does not have one entry per system, or (``positive``) a value is not > 0.
    """
    t = torch.as_tensor(value, dtype=state.dtype, device=state.device).flatten()
    if t.numel() == 1:
        t = t.expand(state.n_systems).clone()
    elif t.numel() != state.n_systems:
        raise ValueError(
            f"{name} must be a number or one value per system ({state.n_systems}), got {t.numel()} values"
        )
    if positive and not bool((t > 0).all()):
        raise ValueError(f"{name} must be positive, got {t.tolist()}")
    return t


def system_sum(values: torch.Tensor, state: State, domain: SerialDomain) -> torch.Tensor:
    """``[S, ...]`` sum of per-atom ``values`` (``[N, ...]``) over the atoms of each system, all ranks."""
    out = torch.zeros((state.n_systems, *values.shape[1:]), dtype=values.dtype, device=values.device)
    out.index_add_(0, state.system_idx, values)
    return domain.allreduce_sum(out)


def atoms_per_system(state: State, domain: SerialDomain) -> torch.Tensor:
    """``[S]`` global atom count per system (float, for dof arithmetic)."""
    return domain.allreduce_sum(state.atoms_per_system().to(state.dtype))


def degrees_of_freedom(state: State, domain: SerialDomain, *, remove_com: bool = True) -> torch.Tensor:
    """``[S]`` kinetic degrees of freedom: 3N, minus 3 when centre-of-mass momentum is conserved."""
    n = atoms_per_system(state, domain)
    return 3.0 * n - (3.0 if remove_com else 0.0)


def kinetic_energy(state: State, domain: SerialDomain) -> torch.Tensor:
    """``[S]`` eV."""
    return domain.allreduce_sum(state.kinetic_energy())


def temperature(state: State, domain: SerialDomain, dof: torch.Tensor | None = None) -> torch.Tensor:
    """``[S]`` K, ``2 KE / (dof k_B)``."""
    if dof is None:
        dof = degrees_of_freedom(state, domain)
    return 2.0 * kinetic_energy(state, domain) / (dof.clamp_min(1.0) * units.KB)


def pressure_tensor(state: State, domain: SerialDomain) -> torch.Tensor:
    """``[S, 3, 3]`` eV/Å³, ``(Σ p⊗p/m + W) / V``; ``state.virial`` must be current."""
    kin = domain.allreduce_sum(state.kinetic_energy_tensor())
    return (kin + state.virial) / state.volume[:, None, None]


def pressure(state: State, domain: SerialDomain) -> torch.Tensor:
    """``[S]`` GPa, a third of the trace of the pressure tensor."""
    p = pressure_tensor(state, domain)
    return torch.diagonal(p, dim1=1, dim2=2).mean(-1) * units.EV_PER_A3_TO_GPA


def remove_com_momentum(state: State, domain: SerialDomain) -> None:
    """Subtract each system's centre-of-mass velocity (in place)."""
    p = torch.zeros((state.n_systems, 3), dtype=state.dtype, device=state.device)
    p.index_add_(0, state.system_idx, state.momenta)
    m = torch.zeros(state.n_systems, dtype=state.dtype, device=state.device)
    m.index_add_(0, state.system_idx, state.masses)
    p, m = domain.allreduce_sum(p), domain.allreduce_sum(m)
    v_com = p / m.clamp_min(1e-30)[:, None]
    state.momenta = state.momenta - state.masses[:, None] * v_com[state.system_idx]


def maxwell_boltzmann(
    state: State,
    domain: SerialDomain,
    temperature_K: torch.Tensor | float,
    *,
    stream: int = STREAM_VELOCITIES,
) -> None:
    """Draw momenta from the Maxwell–Boltzmann distribution at ``temperature_K`` (per system),
    keyed by ``(seed, tag)``, remove the centre-of-mass motion and rescale to the exact
    temperature (in place)."""
    t = torch.as_tensor(temperature_K, dtype=state.dtype, device=state.device).expand(state.n_systems)
    z = rng.atom_normal(state, 0, stream, 3).to(state.dtype)
    sigma = torch.sqrt(state.masses * units.KB * t[state.system_idx] / units.MVV2E)  # amu·Å/fs
    state.momenta = z * sigma[:, None]
    remove_com_momentum(state, domain)
    current = temperature(state, domain)
    scale = torch.where(current > 0, torch.sqrt(t / current.clamp_min(1e-30)), torch.zeros_like(t))
    state.momenta = state.momenta * scale[state.system_idx, None]
