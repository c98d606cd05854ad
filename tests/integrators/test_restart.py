"""Checkpoint round trip: 2N steps == N steps, save (integrator, state, force compute), load into
fresh objects, N more steps — bitwise in float64 on CPU, for every integrator."""

from __future__ import annotations

import io

import pytest
import torch

from ssehpc.integrators import make_integrator
from ssehpc.state import State
from tests.integrators.helpers import argon_batch, argon_forces, start, step

N = 40
CASES = {
    "nve": ("nve", {}),
    "langevin": ("langevin", {"temperature": [50.0, 70.0], "damping": 50.0}),
    "langevin_ramp": (
        "langevin",
        {"temperature": [50.0, 70.0], "damping": 50.0, "temperature_end": 150.0, "ramp_steps": 60},
    ),
    "nose_hoover": ("nose_hoover", {"temperature": [50.0, 70.0], "tau": 50.0, "yoshida_order": 3}),
    "npt": ("npt", {"temperature": 60.0, "pressure": [0.1, 0.2], "tau_p": 200.0, "compressibility": 0.4}),
    "npt_aniso": (
        "npt",
        {"temperature": 60.0, "pressure": 0.1, "tau_p": 200.0, "compressibility": 0.4, "anisotropic": True},
    ),
}
FIELDS = [
    "positions", "momenta", "image", "cell", "forces", "energy", "virial", "tag", "system_idx",
    "system_seed", "system_key", "tag_base",
]  # fmt: skip


def fresh(name: str, params: dict) -> tuple[State, object, object]:
    state = argon_batch([5.30, 5.32], [11, 12])
    forces = argon_forces(skin=0.3)
    integrator = make_integrator(name, 2.0, **params)
    start(state, forces, [100.0, 140.0], integrator)
    return state, forces, integrator


def roundtrip(obj: object) -> object:
    """Through torch.save/torch.load, as a checkpoint file would go."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


@pytest.mark.parametrize("case", list(CASES))
def test_restart_is_bitwise(case: str) -> None:
    name, params = CASES[case]
    # uninterrupted
    ref, ref_forces, ref_integrator = fresh(name, params)
    step(ref, ref_forces, ref_integrator, 2 * N)
    assert ref_forces.nl.n_builds > 2, "the run should cross neighbour-list rebuilds"

    # interrupted after N steps
    state, forces, integrator = fresh(name, params)
    step(state, forces, integrator, N)
    saved = roundtrip(
        {
            "integrator": integrator.state_dict(),
            "forces": forces.state_dict(),
            "state": {f: getattr(state, f) for f in FIELDS}
            | {"masses": state.masses, "species": state.species},
            "step": state.step,
            "seed": state.seed,
        }
    )
    del state, forces, integrator
    fields = saved["state"]
    resumed = State(**fields, step=saved["step"], seed=saved["seed"])
    forces = argon_forces(skin=0.3)
    forces.load_state_dict(saved["forces"], resumed)
    integrator = make_integrator(name, 2.0, **params)
    integrator.load_state_dict(saved["integrator"])
    step(resumed, forces, integrator, N)

    for f in FIELDS:
        assert torch.equal(getattr(resumed, f), getattr(ref, f)), f"{case}: {f} differs after restart"
    assert torch.equal(
        integrator.conserved_energy(resumed, forces), ref_integrator.conserved_energy(ref, ref_forces)
    )
    assert resumed.step == ref.step == 2 * N


def test_restart_test_can_fail() -> None:
    """Dropping the integrator state changes the NHC trajectory: the comparison above has teeth."""
    name, params = CASES["nose_hoover"]
    ref, ref_forces, ref_integrator = fresh(name, params)
    step(ref, ref_forces, ref_integrator, 2 * N)
    state, forces, integrator = fresh(name, params)
    step(state, forces, integrator, N)
    integrator = make_integrator(name, 2.0, **params)  # thermostat state lost
    integrator.attach(state, forces)
    step(state, forces, integrator, N)
    assert not torch.equal(state.momenta, ref.momenta)
