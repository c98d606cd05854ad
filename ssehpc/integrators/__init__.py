"""Integrators (velocity-Verlet split ``step_one`` / forces / ``step_two``) and their registry.

``make_integrator(name, dt, **params)`` builds one from a spec: ``name`` is a key of
:data:`INTEGRATORS`, ``dt`` the time step in fs, ``params`` the constructor keywords of the class
(``temperature`` in K, ``pressure`` in GPa, times in fs).
"""

from __future__ import annotations

import inspect
from typing import Any

from ssehpc.integrators.base import Integrator
from ssehpc.integrators.fire import Fire
from ssehpc.integrators.langevin import Langevin
from ssehpc.integrators.nose_hoover import NoseHooverChain
from ssehpc.integrators.npt import StochasticCellRescaling
from ssehpc.integrators.nve import VelocityVerlet

#: Integrator classes by the name used in specs.
INTEGRATORS: dict[str, type[Integrator]] = {
    "nve": VelocityVerlet,
    "langevin": Langevin,
    "nose_hoover": NoseHooverChain,
    "npt": StochasticCellRescaling,
    "fire": Fire,
}


def make_integrator(name: str, dt: float, **params: Any) -> Integrator:
    """Build the integrator called ``name`` with time step ``dt`` (fs) and keyword ``params``.

    Raises:
        ValueError: for an unknown name (listing the valid ones) or parameters the class does not
            take (naming them); the class raises ``ValueError`` for bad values.
    """
    if name not in INTEGRATORS:
        raise ValueError(f"unknown integrator {name!r}; valid names are {', '.join(sorted(INTEGRATORS))}")
    cls = INTEGRATORS[name]
    try:
        inspect.signature(cls).bind(dt, **params)
    except TypeError as err:
        valid = [p for p in inspect.signature(cls).parameters if p != "dt"]
        raise ValueError(
            f"bad parameters for integrator {name!r}: {err}; it takes {', '.join(valid)}"
        ) from err
    return cls(dt, **params)


__all__ = [
    "INTEGRATORS",
    "Fire",
    "Integrator",
    "Langevin",
    "NoseHooverChain",
    "StochasticCellRescaling",
    "VelocityVerlet",
    "make_integrator",
]
