"""A campaign with a FIRE minimisation stage before MD (minimise -> NVT)."""

from __future__ import annotations

import pytest

from ssehpc.campaign import CampaignSpec, run_campaign
from ssehpc.io.zarr_store import RunStore
from tests.campaign.helpers import lj_campaign


def test_minimise_then_md_campaign(tmp_path, dask_client) -> None:
    store = tmp_path / "min.zarr"
    spec = CampaignSpec.from_dict(
        lj_campaign(
            store,
            systems=[{"id": "ar", "structure": {"builder": "fcc", "element": "Ar", "a": 5.4, "repeat": 2}}],
            stages=[
                {"name": "min", "integrator": {"name": "fire", "params": {"fmax": 0.001}}, "steps": 200,
                 "write_interval": 50, "checkpoint_interval": 0},
                {"name": "md", "integrator": {"name": "langevin"}, "steps": 40, "write_interval": 10,
                 "checkpoint_interval": 0, "velocities": "maxwell_boltzmann"},
            ],
        )
    )  # fmt: skip
    result = run_campaign(spec, client=dask_client, show_progress=False)
    assert result.ok, result.counts()
    mini = RunStore.open(store, "ar_T60_r0_min").read_frames(fields=["energy_eV", "temperature_K"])
    assert mini["energy_eV"][-1, 0] <= mini["energy_eV"][0, 0]
    assert mini["temperature_K"][-1, 0] == 0.0  # minimised, standing still
    md = RunStore.open(store, "ar_T60_r0_md").read_frames(fields=["temperature_K"])
    assert md["temperature_K"][0, 0] == pytest.approx(60.0, rel=0.05)  # new momenta for the MD stage
