"""Screening fixtures: one small store with two real ``lips`` committee runs (built once per session)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.campaign.conftest import dask_client  # noqa: F401 (the campaign test's cluster)

#: The two runs: 300 K stays accurate, 20 000 K is driven out of the model's range.
COLD, HOT = "t300", "t20000"


def lips_spec(store: Path, run_id: str, temperature_K: float, **overrides: Any) -> dict[str, Any]:
    """A 16-atom γ-Li₃PS₄ Langevin run with the shipped ``lips`` committee, a frame every 5 steps,
    a checkpoint every 10, and the calibrated trust levels of ``lips`` (0.10 / 0.25 eV/Å)."""
    data: dict[str, Any] = {
        "run_id": run_id,
        "store": str(store),
        "structure": {"builder": "prototype", "name": "gamma-Li3PS4"},
        "potential": {"name": "mlff", "params": {"model": "lips"}},
        "integrator": {"name": "langevin", "params": {"damping": 20.0}},
        "temperature_K": temperature_K,
        "dt_fs": 1.0,
        "steps": 60,
        "write_interval": 5,
        "checkpoint_interval": 10,
        "thermo_interval": 0,
        "seed": 0,
        "screening": {"trust_lo": 0.10, "trust_hi": 0.25, "stop_after": 3},
    }
    data.update(overrides)
    return data


@pytest.fixture(scope="session")
def lips_store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Runs ``t300`` (completes) and ``t20000`` (stops as extrapolating) in one store; returns the
    store path and the ``ExtrapolationStop`` the hot run raised."""
    import torch

    from ssehpc.screen import ExtrapolationStop
    from ssehpc.spec import MDSpec, prepare_run

    torch.set_num_threads(1)
    store = tmp_path_factory.mktemp("screen") / "lips.zarr"
    prepare_run(MDSpec.from_dict(lips_spec(store, COLD, 300.0))).execute()
    stop = None
    try:
        prepare_run(MDSpec.from_dict(lips_spec(store, HOT, 20000.0))).execute()
    except ExtrapolationStop as exc:
        stop = exc
    return {"store": store, "stop": stop}
