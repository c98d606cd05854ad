"""Stochastic cell rescaling NPT: pressure at target, volume fluctuations against an independently
measured compressibility, anisotropic shape relaxation, effective-energy bookkeeping."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from pymbar.timeseries import statistical_inefficiency
from scipy import stats

from ssehpc import units
from ssehpc.forces import ForceCompute
from ssehpc.integrators import StochasticCellRescaling, make_integrator
from ssehpc.potentials.lj import LennardJones
from ssehpc.state import State, concatenate
from tests.integrators.helpers import argon_batch, argon_forces, mean_error, record, start, step

#: Solid fcc argon, 108 atoms per system, near its volume at P0 and T.
T = 40.0  # K
P0 = 0.1  # GPa
A0 = 5.30  # Å, P ≈ 0.09 GPa at 40 K
BETA = 0.4  # 1/GPa, barostat compressibility (close to the measured κ_T)
TAU_P = 100.0  # fs

NPT = {"temperature": T, "pressure": P0, "tau_t": 100.0, "tau_p": TAU_P, "compressibility": BETA}


def kappa_from_pressure_slope(volume: float) -> tuple[float, float]:
    """κ_T = −1/(V dP/dV) at ``volume`` (Å³) from Langevin NVT runs at 0.985, 1 and 1.015 times it
    (one batch); the weighted straight line through three symmetric points has the slope of P(V)
    at the middle one (curvature drops out).

    Returns:
        ``(κ_T, its standard error)``, 1/GPa.
    """
    a_mid = (volume / 27.0) ** (1.0 / 3.0)
    scales = [0.985 ** (1.0 / 3.0), 1.0, 1.015 ** (1.0 / 3.0)]
    state = argon_batch([a_mid * s for s in scales], [21, 22, 23])
    forces = argon_forces()
    nvt = make_integrator("langevin", 2.0, temperature=T, damping=100.0)
    start(state, forces, T, nvt)
    step(state, forces, nvt, 500)
    rec = record(state, forces, nvt, 5000, every=5)
    volumes = rec.volume[0]
    stats = [mean_error(rec.scalar_pressure[:, s]) for s in range(3)]
    p = np.array([m for m, _ in stats])
    w = 1.0 / np.array([e for _, e in stats]) ** 2
    design = np.stack([volumes, np.ones(3)], axis=1)
    cov = np.linalg.inv(design.T @ (design * w[:, None]))
    slope, _ = cov @ (design.T @ (w * p))
    kappa = -1.0 / (volumes[1] * slope)
    print(
        "NVT P(V): "
        + ", ".join(f"{v:.0f} Å³: {m:.4f} ± {e:.4f} GPa" for v, (m, e) in zip(volumes, stats, strict=True))
    )
    return kappa, kappa * math.sqrt(cov[0, 0]) / abs(slope)


@pytest.mark.slow
def test_isotropic_pressure_and_volume_fluctuations() -> None:
    n_rep = 4
    state = argon_batch([A0] * n_rep, [31, 32, 33, 34])
    forces = argon_forces()
    npt = make_integrator("npt", 2.0, **NPT)
    start(state, forces, T, npt)
    step(state, forces, npt, 1000)
    rec = record(state, forces, npt, 10000, every=5)  # 20 ps per replica
    n_atoms = state.n_atoms // n_rep
    kT = units.KB * T

    # mean pressure and temperature per replica (Langevin: 3N kinetic degrees of freedom)
    print()
    for s in range(n_rep):
        p_mean, p_err = mean_error(rec.scalar_pressure[:, s])
        t_mean, t_err = mean_error(2.0 * rec.kinetic[:, s] / (3 * n_atoms * units.KB))
        print(
            f"replica {s}: <P> = {p_mean:.4f} ± {p_err:.4f} GPa (P0 {P0}), <T> = {t_mean:.2f} ± {t_err:.2f} K, "
            f"<V> = {rec.volume[:, s].mean():.1f} Å³"
        )
        assert p_err < 0.01
        assert abs(p_mean - P0) < 3.5 * p_err
        assert abs(t_mean - T) < 3.5 * t_err

    # κ_T from volume fluctuations, <δV²> = k_B T <V> κ_T; error from the scatter of
    # (replica, 5-ps block) estimates around each replica's mean volume
    n_blocks = 4
    m = len(rec.volume) // n_blocks
    estimates = []
    for s in range(n_rep):
        v = rec.volume[: m * n_blocks, s]
        dv2 = ((v - v.mean()) ** 2).reshape(n_blocks, m).mean(axis=1)
        estimates.extend(dv2 / (kT * v.mean()) * units.GPA_TO_EV_PER_A3)
    estimates = np.array(estimates)
    kappa_fluct = float(estimates.mean())
    kappa_fluct_err = float(estimates.std(ddof=1) / math.sqrt(len(estimates)))

    # κ_T from the slope of P(V) in NVT, at the mean NPT volume
    kappa_slope, kappa_slope_err = kappa_from_pressure_slope(float(rec.volume.mean()))
    print(
        f"κ_T: volume fluctuations {kappa_fluct:.3f} ± {kappa_fluct_err:.3f} 1/GPa, "
        f"NVT pressure slope {kappa_slope:.3f} ± {kappa_slope_err:.3f} 1/GPa"
    )
    assert kappa_fluct_err < 0.15 * kappa_fluct, "too few independent volume samples"
    assert kappa_slope_err < 0.1 * kappa_slope
    assert abs(kappa_fluct - kappa_slope) < 3.5 * math.hypot(kappa_fluct_err, kappa_slope_err)


@pytest.mark.slow
def test_ideal_gas_volume_distribution_is_exact() -> None:
    """Ideal gas (ε = 0): the NPT volume density is ∝ V^N exp(−P0 V / k_B T), a gamma distribution of
    shape N + 1 and scale k_B T / P0 — 17 % wide for N = 32, so the Jacobian and the kinetic
    pressure of the barostat are tested far beyond the linear regime."""
    n_atoms, n_rep, t_gas, p_gas = 32, 12, 300.0, 0.1
    scale = units.KB * t_gas / (p_gas * units.GPA_TO_EV_PER_A3)  # Å³
    side = ((n_atoms + 1) * scale) ** (1.0 / 3.0)
    gen = torch.Generator().manual_seed(0)
    state = concatenate(
        [
            State.from_arrays(
                torch.rand((n_atoms, 3), generator=gen, dtype=torch.float64) * side,
                torch.full((n_atoms,), 39.948, dtype=torch.float64),
                torch.full((n_atoms,), 18),
                torch.eye(3, dtype=torch.float64) * side,
                seed=3 + k,  # each replica its own random streams (a batch keeps every seed)
            )
            for k in range(n_rep)
        ]
    )
    forces = ForceCompute(LennardJones(epsilon=0.0, cutoff=0.5), skin=2.0)
    npt = make_integrator(
        "npt", 2.0, temperature=t_gas, pressure=p_gas, tau_t=100.0, tau_p=100.0, compressibility=1.0 / p_gas
    )
    start(state, forces, t_gas, npt)
    step(state, forces, npt, 500)
    rec = record(state, forces, npt, 6000, every=5)
    x = rec.volume / scale  # ~ Gamma(N + 1) per frame
    means, variances = x.mean(axis=0), x.var(axis=0)
    mean, mean_err = means.mean(), means.std(ddof=1) / math.sqrt(n_rep)
    var, var_err = variances.mean(), variances.std(ddof=1) / math.sqrt(n_rep)
    samples = np.concatenate([x[:: math.ceil(statistical_inefficiency(x[:, s])), s] for s in range(n_rep)])
    p_ks = stats.kstest(samples, "gamma", (n_atoms + 1,)).pvalue
    p_wrong = stats.kstest(samples, "gamma", (n_atoms + 2,)).pvalue  # V^(N+1): one Jacobian too many
    print(
        f"\nideal gas N={n_atoms}: <V>/(kT/P0) = {mean:.2f} ± {mean_err:.2f} (exact {n_atoms + 1}), "
        f"var = {var:.1f} ± {var_err:.1f} (exact {n_atoms + 1}), KS p = {p_ks:.3f} on {len(samples)} samples "
        f"(vs shape N+2: {p_wrong:.1e})"
    )
    assert abs(mean - (n_atoms + 1)) < 3.5 * mean_err
    assert abs(var - (n_atoms + 1)) < 3.5 * var_err
    assert var_err < 0.1 * (n_atoms + 1)
    assert p_ks > 1e-3
    assert p_wrong < 1e-2, "the distribution test should tell V^N from V^(N+1)"


@pytest.mark.slow
def test_anisotropic_shape_relaxes_and_diagonal_pressures_at_target() -> None:
    n_rep = 2
    state = argon_batch([A0] * n_rep, [41, 42])
    strain = torch.tensor([1.02, 1.0, 0.98], dtype=torch.float64)  # 4 % x/z anisotropy
    state.positions = state.positions * strain
    state.cell = state.cell * strain
    forces = argon_forces()
    # τ_p = 50 fs: the shape modes (restoring modulus c11 − c12, softer than the bulk modulus) then
    # relax in ~0.2 ps, so 14 ps give enough independent samples of the diagonal pressures
    npt = make_integrator("npt", 2.0, **(NPT | {"tau_p": 50.0, "anisotropic": True}))
    start(state, forces, T, npt)
    step(state, forces, npt, 1500)
    rec = record(state, forces, npt, 7000, every=5)
    lengths = np.diagonal(rec.cell, axis1=2, axis2=3)  # [frames, S, 3]
    print()
    for s in range(n_rep):
        diag_p = [mean_error(rec.pressure[:, s, k, k]) for k in range(3)]
        ratio_xz = mean_error(lengths[:, s, 0] / lengths[:, s, 2])
        ratio_yz = mean_error(lengths[:, s, 1] / lengths[:, s, 2])
        print(
            f"replica {s}: P_xx, P_yy, P_zz = "
            + ", ".join(f"{m:.4f} ± {e:.4f}" for m, e in diag_p)
            + f" GPa; <Lx/Lz> = {ratio_xz[0]:.4f} ± {ratio_xz[1]:.4f}, <Ly/Lz> = {ratio_yz[0]:.4f} ± {ratio_yz[1]:.4f}"
        )
        for m, e in diag_p:
            assert e < 0.01
            assert abs(m - P0) < 3.5 * e
        for m, e in (ratio_xz, ratio_yz):
            assert e < 0.004
            assert abs(m - 1.0) < 3.5 * e + 1e-3  # cubic again (started 4 % off)
    off_diagonal = rec.cell - np.einsum("fsk,kl->fskl", lengths, np.eye(3))
    assert np.abs(off_diagonal).max() < 1e-12, "the diagonal variant keeps an orthorhombic cell orthorhombic"


@pytest.mark.parametrize("anisotropic", [False, True])
def test_volume_follows_target_pressure(anisotropic: bool) -> None:
    volumes = {}
    for p0 in (1.0, 0.1, -0.05):
        state = argon_batch([A0], [3])
        forces = argon_forces()
        npt = make_integrator("npt", 2.0, **(NPT | {"pressure": p0, "anisotropic": anisotropic}))
        start(state, forces, T, npt)
        v0 = state.volume.item()
        step(state, forces, npt, 300)
        volumes[p0] = state.volume.item() / v0
    print(f"\nV/V0 after 0.6 ps at P0 = 1.0, 0.1, -0.05 GPa: {volumes}")
    assert volumes[1.0] < 0.95
    assert abs(volumes[0.1] - 1.0) < 0.02
    assert volumes[-0.05] > 1.01


@pytest.mark.parametrize("anisotropic", [False, True])
def test_effective_energy_conserved(anisotropic: bool) -> None:
    """E_pot + K + P0 V + barostat integral − thermostat heat stays put while E + P0 V moves."""
    state = argon_batch([A0], [5])
    forces = argon_forces()
    npt = make_integrator("npt", 2.0, **(NPT | {"anisotropic": anisotropic}))
    start(state, forces, 2 * T, npt)  # hot start: thermostat and barostat both do work
    rec = record(state, forces, npt, 600, every=5)
    enthalpy = rec.kinetic[:, 0] + rec.potential[:, 0] + P0 * units.GPA_TO_EV_PER_A3 * rec.volume[:, 0]
    effective = rec.conserved[:, 0]
    print(
        f"\nNPT: E + P0 V changed by {np.ptp(enthalpy):.3f} eV, effective energy by {np.ptp(effective):.1e} eV"
    )
    assert np.ptp(enthalpy) > 0.1
    assert np.ptp(effective) < 0.01 * np.ptp(enthalpy)


def test_rescale_keeps_fractional_coordinates() -> None:
    state = argon_batch([A0, A0 + 0.1], [1, 2], jitter=0.1)
    state.momenta = torch.randn(
        state.positions.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0)
    )
    frac = torch.einsum("ni,nij->nj", state.positions, torch.linalg.inv(state.cell)[state.system_idx])
    px = (state.momenta * state.positions).sum(dim=0)  # p_k x_k per axis is invariant
    mu = torch.tensor([[1.01, 0.99, 1.02], [0.97, 1.0, 1.0]], dtype=torch.float64)
    volume = state.volume.clone()
    StochasticCellRescaling._rescale(state, mu)
    frac_after = torch.einsum("ni,nij->nj", state.positions, torch.linalg.inv(state.cell)[state.system_idx])
    torch.testing.assert_close(frac_after, frac, rtol=0, atol=1e-12)
    torch.testing.assert_close((state.momenta * state.positions).sum(dim=0), px)
    torch.testing.assert_close(state.volume, volume * mu.prod(dim=1))
