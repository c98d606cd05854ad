"""FIRE minimisation (``integrator: fire``): a rattled crystal relaxes to its minimum (forces
below fmax, energy down to the perfect lattice's), per system of a batch; bad parameters are
refused (the campaign stage: tests/campaign/test_minimise.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ssehpc.integrators import make_integrator
from ssehpc.state import concatenate
from tests.conftest import fcc_argon
from tests.integrators.helpers import argon_forces


def test_fire_relaxes_each_system_of_a_batch() -> None:
    perfect = fcc_argon(3, a=5.26)
    forces = argon_forces(skin=0.5)
    forces.compute(perfect)
    e_min = float(perfect.energy[0])
    # two rattled copies, different amplitudes (0.15 and 0.3 Å): they converge at different steps
    state = concatenate([fcc_argon(3, a=5.26, jitter=0.15, seed=1), fcc_argon(3, a=5.26, jitter=0.3, seed=2)])
    fire = make_integrator("fire", 2.0, fmax=1e-3)
    forces.compute(state)
    e0 = state.energy.clone()
    fire.attach(state, forces)
    for _ in range(600):
        fire.step_one(state, forces)
        forces.compute(state)
        fire.step_two(state, forces)
        state.step += 1
    assert bool(fire.converged.all()), fire.state_dict()
    fmax = torch.zeros(2, dtype=state.dtype).scatter_reduce(
        0, state.system_idx, state.forces.norm(dim=1), "amax"
    )
    assert (fmax < 1e-3).all()
    assert (state.momenta == 0).all()  # converged systems stand still
    print(f"\nE0 {e0.tolist()} -> {state.energy.tolist()} eV (perfect lattice {e_min:.6f} eV)")
    assert (state.energy < e0).all()
    np.testing.assert_allclose(state.energy.numpy(), e_min, atol=2e-4)  # the same minimum


def test_bad_fire_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="fmax"):
        make_integrator("fire", 1.0, fmax=0.0)
    with pytest.raises(ValueError, match="dt_max"):
        make_integrator("fire", 1.0, dt_max=0.5)
