"""The integrator registry and argument checking; dtype is preserved."""

from __future__ import annotations

import pytest
import torch

from ssehpc.integrators import INTEGRATORS, make_integrator
from tests.integrators.helpers import argon_batch, argon_forces, start, step

PARAMS = {
    "nve": {},
    "langevin": {"temperature": 50.0},
    "nose_hoover": {"temperature": 50.0},
    "npt": {"temperature": 50.0, "pressure": 0.1, "anisotropic": True},
    "fire": {"fmax": 0.01},
}


def test_registry_names() -> None:
    assert set(INTEGRATORS) == {"nve", "langevin", "nose_hoover", "npt", "fire"}
    for name, cls in INTEGRATORS.items():
        assert cls.name == name
        assert isinstance(make_integrator(name, 1.0, **PARAMS[name]), cls)


def test_make_integrator_errors() -> None:
    with pytest.raises(ValueError, match=r"unknown integrator 'nvt'.*fire, langevin, nose_hoover, npt, nve"):
        make_integrator("nvt", 1.0)
    with pytest.raises(ValueError, match=r"'langevin'.*gamma.*temperature, damping"):
        make_integrator("langevin", 1.0, temperature=300.0, gamma=0.01)
    with pytest.raises(ValueError, match="temperature"):
        make_integrator("nose_hoover", 1.0)  # temperature is required
    with pytest.raises(ValueError, match="dt"):
        make_integrator("nve", -1.0)
    with pytest.raises(ValueError, match="damping"):
        make_integrator("langevin", 1.0, temperature=300.0, damping=0.0)
    with pytest.raises(ValueError, match="tau_p"):
        make_integrator("npt", 1.0, temperature=300.0, tau_p=float("nan"))
    with pytest.raises(ValueError, match="compressibility"):
        make_integrator("npt", 1.0, temperature=300.0, compressibility=-1.0)
    with pytest.raises(ValueError, match="chain_length"):
        make_integrator("nose_hoover", 1.0, temperature=300.0, chain_length=0)
    with pytest.raises(ValueError, match="yoshida_order"):
        make_integrator("nose_hoover", 1.0, temperature=300.0, yoshida_order=4)


@pytest.mark.parametrize("name", list(PARAMS))
def test_float32_state_stays_float32(name: str) -> None:
    state = argon_batch([5.30, 5.30], [1, 2]).to(dtype=torch.float32)
    forces = argon_forces()
    integrator = make_integrator(name, 2.0, **PARAMS[name])
    start(state, forces, 50.0, integrator)
    step(state, forces, integrator, 5)
    for field in ("positions", "momenta", "cell", "forces", "energy", "virial"):
        assert getattr(state, field).dtype == torch.float32, field
    assert integrator.conserved_energy(state, forces).dtype == torch.float32
