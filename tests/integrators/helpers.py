"""Shared pieces of the integrator tests: seeded argon systems, a step loop that records
per-system observables, and the statistics (block averages, decorrelation) the ensemble checks use."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import physical_validation as pv
import torch
from pymbar.timeseries import statistical_inefficiency

from ssehpc import thermo, units
from ssehpc.forces import ForceCompute
from ssehpc.integrators.base import Integrator
from ssehpc.potentials.lj import LennardJones
from ssehpc.state import State, concatenate
from tests.conftest import fcc_argon

#: Cutoff of the LJ argon model used by these tests, Å (2.5 σ).
CUTOFF = 8.5


def argon_forces(skin: float = 1.0) -> ForceCompute:
    return ForceCompute(LennardJones(epsilon=0.0104, sigma=3.405, cutoff=CUTOFF), skin=skin)


def argon_batch(lattice: list[float], seeds: list[int], repeat: int = 3, jitter: float = 0.02) -> State:
    """One fcc argon system per lattice constant (Å), each ``repeat``³ cubic cells, float64."""
    return concatenate(
        [fcc_argon(repeat, a=a, jitter=jitter, seed=s) for a, s in zip(lattice, seeds, strict=True)]
    )


def start(
    state: State, forces: ForceCompute, temperature: float | list[float], integrator: Integrator
) -> None:
    """Maxwell–Boltzmann momenta at ``temperature`` (K, per system), first forces, attach."""
    t = torch.as_tensor(temperature, dtype=state.dtype).expand(state.n_systems)
    thermo.maxwell_boltzmann(state, forces.domain, t)
    forces.compute(state)
    integrator.attach(state, forces)


def step(state: State, forces: ForceCompute, integrator: Integrator, n: int) -> None:
    for _ in range(n):
        integrator.step_one(state, forces)
        forces.compute(state)
        integrator.step_two(state, forces)
        state.step += 1


@dataclass
class Record:
    """Per-frame, per-system observables (numpy ``[frames, S, ...]``)."""

    time: np.ndarray  # fs
    kinetic: np.ndarray  # eV
    potential: np.ndarray  # eV
    extra: np.ndarray  # eV, integrator.conserved_energy
    pressure: np.ndarray  # GPa, [frames, S, 3, 3]
    volume: np.ndarray  # Å^3
    cell: np.ndarray  # Å, [frames, S, 3, 3]

    @property
    def conserved(self) -> np.ndarray:
        return self.kinetic + self.potential + self.extra

    @property
    def scalar_pressure(self) -> np.ndarray:
        return np.trace(self.pressure, axis1=2, axis2=3) / 3.0


def record(state: State, forces: ForceCompute, integrator: Integrator, n: int, every: int) -> Record:
    """Run ``n`` steps, recording observables every ``every`` steps."""
    rows: dict[str, list[np.ndarray]] = {k: [] for k in Record.__dataclass_fields__}
    for _ in range(n // every):
        step(state, forces, integrator, every)
        rows["time"].append(np.array(state.step * integrator.dt))
        rows["kinetic"].append(thermo.kinetic_energy(state, forces.domain).numpy().copy())
        rows["potential"].append(state.energy.numpy().copy())
        rows["extra"].append(integrator.conserved_energy(state, forces).numpy().copy())
        p = thermo.pressure_tensor(state, forces.domain) * units.EV_PER_A3_TO_GPA
        rows["pressure"].append(p.numpy().copy())
        rows["volume"].append(state.volume.numpy().copy())
        rows["cell"].append(state.cell.numpy().copy())
    return Record(**{k: np.array(v) for k, v in rows.items()})


def block_mean(x: np.ndarray, n_blocks: int = 20) -> tuple[float, float]:
    """Mean of a time series and its standard error from ``n_blocks`` block averages."""
    x = np.asarray(x, dtype=float)
    m = len(x) // n_blocks
    blocks = x[: m * n_blocks].reshape(n_blocks, m).mean(axis=1)
    return float(blocks.mean()), float(blocks.std(ddof=1) / math.sqrt(n_blocks))


def mean_error(x: np.ndarray) -> tuple[float, float]:
    """Mean of a correlated time series and a conservative standard error: the largest of the
    20-block and 8-block estimates and of ``std·sqrt(g/n)`` with ``g`` the statistical inefficiency
    (pymbar).

    Each estimate alone is noisy or biased low when the series has slow components (20 blocks of a
    16-ps run are shorter than a few shape-relaxation times of an anisotropic barostat); taking the
    largest keeps 3.5-σ checks from failing on an error bar that came out small.
    """
    x = np.asarray(x, dtype=float)
    mean, err20 = block_mean(x, n_blocks=20)
    _, err8 = block_mean(x, n_blocks=8)
    g = statistical_inefficiency(x)
    return mean, max(err20, err8, float(x.std(ddof=1) * math.sqrt(g / len(x))))


def drift_per_atom_ns(time_fs: np.ndarray, energy: np.ndarray, n_atoms: int) -> float:
    """Slope of a linear fit of ``energy`` (eV) against time, eV/atom/ns."""
    slope = np.polyfit(time_fs, energy, 1)[0]  # eV/fs
    return float(slope * units.FS_PER_NS / n_atoms)


#: physical_validation units for eV, Å, K, GPa, fs (conversions to kJ/mol, nm, bar, ps).
PV_UNITS = pv.data.UnitData(
    kb=units.KB,
    energy_conversion=96.48533212,
    length_conversion=0.1,
    volume_conversion=1e-3,
    temperature_conversion=1.0,
    pressure_conversion=1e4,
    time_conversion=1e-3,
    energy_str="eV",
    length_str="Å",
    volume_str="Å^3",
    temperature_str="K",
    pressure_str="GPa",
    time_str="fs",
)


def kinetic_energy_check(
    kinetic: np.ndarray, temperature: float, n_atoms: int, *, com_fixed: bool, strict: bool
) -> float | tuple[float, float]:
    """physical_validation's kinetic-energy distribution test on a per-frame KE series (eV).

    ``strict=True``: Kolmogorov–Smirnov p-value of the decorrelated kinetic energies against the
    gamma distribution of shape ``dof/2`` and scale ``k_B T``.  ``strict=False``: distances, in
    bootstrap standard errors, of the temperatures estimated from the mean and from the width of
    the distribution to ``temperature``.  ``dof = 3N − 3`` if ``com_fixed`` else ``3N``.
    """
    data = pv.data.SimulationData(
        units=PV_UNITS,
        ensemble=pv.data.EnsembleData("NVT", natoms=n_atoms, volume=1.0, temperature=temperature),
        system=pv.data.SystemData(
            natoms=n_atoms,
            nconstraints=0,
            ndof_reduction_tra=3 if com_fixed else 0,
            ndof_reduction_rot=0,
        ),
        observables=pv.data.ObservableData(kinetic_energy=kinetic),
    )
    if strict:
        return pv.kinetic_energy.distribution(data, strict=True, verbosity=0)
    return pv.kinetic_energy.distribution(data, strict=False, verbosity=0, bootstrap_seed=1)
