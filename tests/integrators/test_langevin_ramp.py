"""Langevin with a temperature ramp (melt–quench at a fixed rate): the thermostat target follows
the ramp, the kinetic temperature follows the target, bad ramps are refused."""

from __future__ import annotations

import numpy as np
import pytest

from ssehpc import thermo
from ssehpc.integrators import make_integrator
from tests.integrators.helpers import argon_batch, argon_forces, start


def test_kinetic_temperature_follows_a_quench() -> None:
    state = argon_batch([5.30, 5.32], [3, 4])
    forces = argon_forces(skin=0.5)
    # 120 K -> 30 K over 600 steps of 2 fs (75 K/ps), strong friction so T tracks the target
    integ = make_integrator(
        "langevin", 2.0, temperature=120.0, damping=20.0, temperature_end=30.0, ramp_steps=600
    )
    start(state, forces, 120.0, integ)
    temps, targets = [], []
    for _ in range(800):
        integ.step_one(state, forces)
        forces.compute(state)
        integ.step_two(state, forces)
        state.step += 1
        temps.append(thermo.temperature(state, forces.domain).mean().item())
        targets.append(float(integ.target_kT(state.step).mean() / 8.617333262e-5))
    temps, targets = np.array(temps), np.array(targets)
    assert targets[0] == pytest.approx(120.0 - 90.0 / 600, rel=1e-9)
    assert targets[-1] == pytest.approx(30.0)
    # the target is linear in the step, then flat
    np.testing.assert_allclose(targets[:600], 120.0 - 90.0 * np.arange(1, 601) / 600, rtol=1e-12)
    # kinetic T lags the target by about the friction time (20 fs = 10 steps) and fluctuates
    # (64 atoms: ~18 % per frame); block means over 100 steps follow it
    for lo in (100, 300, 500, 700):
        block = slice(lo, lo + 100)
        print(f"steps {lo}-{lo + 100}: T {temps[block].mean():.1f} K, target {targets[block].mean():.1f} K")
        assert temps[block].mean() == pytest.approx(targets[block].mean(), rel=0.12)
    assert temps[700:].mean() < 0.4 * temps[:100].mean()  # it really cooled


def test_bad_ramps_are_refused() -> None:
    with pytest.raises(ValueError, match="both temperature_end"):
        make_integrator("langevin", 1.0, temperature=300.0, temperature_end=100.0)
    with pytest.raises(ValueError, match="both temperature_end"):
        make_integrator("langevin", 1.0, temperature=300.0, ramp_steps=100)
    with pytest.raises(ValueError, match="ramp_steps"):
        make_integrator("langevin", 1.0, temperature=300.0, temperature_end=100.0, ramp_steps=-5)
