"""Seeded Li–P–S-like test cells and small models with non-trivial weights (shared by tests/ml)."""

from __future__ import annotations

import numpy as np
import torch
from ase import Atoms
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

from ssehpc.ml.data import atoms_to_state, periodic_pairs
from ssehpc.ml.model import ModelSpec, MomentPotential
from ssehpc.state import State

LI, P, S = 3, 15, 16


def random_cell(
    numbers: list[int], length: float, *, seed: int = 0, min_distance: float = 1.9, tilt: float = 0.3
) -> Atoms:
    """Atoms at random positions (rejection sampling, periodic minimum distance) in a slightly
    triclinic cell of edge ``length`` Å."""
    rng = np.random.default_rng(seed)
    cell = np.eye(3) * length + tilt * rng.standard_normal((3, 3))
    frac: list[np.ndarray] = []
    while len(frac) < len(numbers):
        f = rng.random(3)
        ok = True
        for g in frac:
            d = f - g
            d -= np.round(d)
            if np.linalg.norm(d @ cell) < min_distance:
                ok = False
                break
        if ok:
            frac.append(f)
    return Atoms(numbers=numbers, scaled_positions=np.array(frac), cell=cell, pbc=True)


def lips_atoms(seed: int = 0, n_formula: int = 1, length: float | None = None) -> Atoms:
    """A random Li3PS4-stoichiometry cell (8 atoms per formula unit)."""
    numbers = ([LI] * 3 + [P] + [S] * 4) * n_formula
    if length is None:
        length = (len(numbers) / 0.05) ** (1 / 3)  # ~0.05 atoms/Å^3, as in Li3PS4
    return random_cell(numbers, length, seed=seed)


def lips_state(seed: int = 0, n_formula: int = 1, length: float | None = None) -> State:
    return atoms_to_state(lips_atoms(seed, n_formula, length))


def make_model(
    *,
    lmax: int = 2,
    four_body: bool = True,
    n_members: int = 1,
    cutoff: float = 4.0,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    channels: int = 4,
    hidden: tuple[int, ...] = (16, 16),
    contraction: str = "gram",
    mixing: str = "neighbour",
    core: tuple[float, float] = (0.0, 0.0),
    radial_floor: float = 0.0,
    n_radial: int = 6,
) -> MomentPotential:
    """A small Li/P/S model whose features are standardised on a random cell, so that the random
    network is far from linear (a meaningful test subject)."""
    from ssehpc.ml.committee import Committee

    spec = ModelSpec(
        species=(LI, P, S),
        cutoff=cutoff,
        n_radial=n_radial,
        lmax=lmax,
        channels=channels,
        four_body=four_body,
        contraction=contraction,
        mixing=mixing,
        core_inner=core[0],
        core_outer=core[1],
        radial_floor=radial_floor,
        hidden=hidden,
        avg_neighbors=10.0,
        n_members=n_members,
    )
    model = (Committee(spec, seed=seed) if n_members > 1 else MomentPotential(spec, seed=seed)).to(dtype)
    st = lips_state(seed=99, n_formula=2)
    i, j, rij = periodic_pairs(st, cutoff)
    types = model.type_of_z[st.species]
    with torch.no_grad():
        a, _ = model.atomic_moments(rij.to(dtype), i, j, types, st.n_atoms)
        x = model.features(a, types)
        model.feature_mean.copy_(x.mean(1))
        model.feature_std.copy_(x.std(1) + 1e-3)
        model.energy_ref.copy_(torch.tensor([-1.9, -5.4, -4.1], dtype=dtype))
        model.energy_scale.fill_(0.7)
    return model


def emt_frames(
    n: int, *, seed: int = 0, repeat: int = 2, rattle: float = 0.1, alloy: bool = True
) -> list[Atoms]:
    """Rattled, strained fcc Cu (and Cu–Al) cells labelled with ASE's EMT (energy, forces, stress)."""
    from ase.build import bulk

    rng = np.random.default_rng(seed)
    frames = []
    for k in range(n):
        a = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((repeat, repeat, repeat))
        if alloy and k % 2:
            a.numbers[rng.choice(len(a), len(a) // 4, replace=False)] = 13
        a.set_cell(a.cell.array @ (np.eye(3) + 0.02 * rng.standard_normal((3, 3))), scale_atoms=True)
        a.rattle(rattle, seed=int(rng.integers(1 << 30)))
        label(a, EMT())
        frames.append(a)
    return frames


def label(atoms: Atoms, calc: object) -> Atoms:
    """Attach ``calc``'s energy, forces and stress as a SinglePointCalculator (the data convention)."""
    atoms.calc = calc
    e, f, s = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
    atoms.calc = SinglePointCalculator(atoms, energy=e, forces=f, stress=s)
    return atoms
