"""Langevin (BAOAB) and Nosé–Hoover chain: canonical kinetic energy, per-system temperatures,
conserved energies."""

from __future__ import annotations

import numpy as np
import pytest

from ssehpc import units
from ssehpc.integrators import make_integrator
from tests.integrators.helpers import (
    argon_batch,
    argon_forces,
    drift_per_atom_ns,
    kinetic_energy_check,
    mean_error,
    record,
    start,
    step,
)

#: Two solid-argon systems (108 atoms each) in one batch, each with its own target temperature.
TEMPERATURES = [40.0, 70.0]
#: |drift| bound of the conserved / effective energy, eV/atom/ns (measured: NHC ≲ 3e-5,
#: Langevin ≲ 5e-6 over 20 ps at dt = 2 fs).
DRIFT_BOUND = 5e-4

PARAMS = {
    "langevin": {"temperature": TEMPERATURES, "damping": 100.0},
    "nose_hoover": {"temperature": TEMPERATURES, "tau": 100.0, "chain_length": 3},
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["langevin", "nose_hoover"])
def test_canonical_kinetic_energy(kind: str) -> None:
    state = argon_batch([5.30, 5.30], [1, 2])
    forces = argon_forces()
    integrator = make_integrator(kind, 2.0, **PARAMS[kind])
    start(state, forces, [2 * t for t in TEMPERATURES], integrator)  # start hot: must be cooled
    step(state, forces, integrator, 800)
    rec = record(state, forces, integrator, 8000, every=5)  # 16 ps, 1600 frames
    n = state.n_atoms // 2
    com_fixed = kind == "nose_hoover"  # Langevin friction does not conserve total momentum
    dof = 3 * n - (3 if com_fixed else 0)
    print()
    for s, t0 in enumerate(TEMPERATURES):
        kinetic = rec.kinetic[:, s]
        mean, err = mean_error(2.0 * kinetic / (dof * units.KB))
        p_ks = kinetic_energy_check(kinetic, t0, n, com_fixed=com_fixed, strict=True)
        d_mean, d_width = kinetic_energy_check(kinetic, t0, n, com_fixed=com_fixed, strict=False)
        p_wrong = kinetic_energy_check(kinetic, 1.05 * t0, n, com_fixed=com_fixed, strict=True)
        drift = drift_per_atom_ns(rec.time, rec.conserved[:, s], n)
        print(
            f"{kind} system {s}: T0 {t0} K, <T> = {mean:.2f} ± {err:.2f} K, KS p = {p_ks:.3f} "
            f"(vs 1.05 T0: {p_wrong:.1e}), T from mean/width {d_mean:.2f}/{d_width:.2f} σ off, "
            f"conserved drift {drift:+.1e} eV/atom/ns"
        )
        assert err < 0.01 * t0, "error bar too wide for the test to mean anything"
        assert abs(mean - t0) < 3.5 * err
        assert p_ks > 1e-3
        assert d_mean < 3.5
        assert d_width < 3.5
        assert p_wrong < 1e-3, "the distribution test should reject a 5 % wrong temperature"
        assert abs(drift) < DRIFT_BOUND


def test_nose_hoover_conserved_energy_short() -> None:
    """H' = E + Σ ½Q v² + N_f kT η₁ + kT Σ η_j stays put while E itself changes a lot."""
    state = argon_batch([5.30], [3])
    forces = argon_forces()
    nhc = make_integrator("nose_hoover", 2.0, temperature=40.0, tau=50.0)
    start(state, forces, 120.0, nhc)  # far from the target: the thermostat removes energy
    rec = record(state, forces, nhc, 1000, every=5)
    total = rec.kinetic[:, 0] + rec.potential[:, 0]
    conserved = rec.conserved[:, 0]
    print(f"\nNHC: E changed by {np.ptp(total):.3f} eV, H' by {np.ptp(conserved):.1e} eV")
    assert np.ptp(total) > 0.05
    assert np.ptp(conserved) < 1e-3 * np.ptp(total)


def test_langevin_effective_energy_short() -> None:
    state = argon_batch([5.30], [4])
    forces = argon_forces()
    langevin = make_integrator("langevin", 2.0, temperature=40.0, damping=50.0)
    start(state, forces, 120.0, langevin)
    rec = record(state, forces, langevin, 1000, every=5)
    total = rec.kinetic[:, 0] + rec.potential[:, 0]
    print(
        f"\nLangevin: E changed by {np.ptp(total):.3f} eV, E - heat by {np.ptp(rec.conserved[:, 0]):.1e} eV"
    )
    assert np.ptp(total) > 0.05
    assert np.ptp(rec.conserved[:, 0]) < 1e-3 * np.ptp(total)


@pytest.mark.parametrize("kind", ["langevin", "nose_hoover", "npt"])
def test_per_system_temperature_validation(kind: str) -> None:
    state = argon_batch([5.30, 5.30], [1, 2])
    forces = argon_forces()
    integrator = make_integrator(kind, 2.0, temperature=[40.0, 50.0, 60.0])
    forces.compute(state)
    with pytest.raises(ValueError, match="one value per system"):
        integrator.attach(state, forces)
    with pytest.raises(ValueError, match="positive"):
        make_integrator(kind, 2.0, temperature=-1.0).attach(state, forces)
    step(state, forces, make_integrator(kind, 2.0, temperature=[40.0, 50.0]), 2)
