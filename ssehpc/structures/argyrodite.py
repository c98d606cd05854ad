"""Lithium argyrodite Li₆PS₅Cl with a seeded ordered Li arrangement (Å, g/cm³).

The argyrodites Li₆PS₅X (X = Cl, Br, I) are cubic F-43m (No. 216): PS₄³⁻ tetrahedra on 4b, the
"free" S²⁻ and X⁻ on 4d / 4a (in Li₆PS₅Cl partly exchanged), and 24 Li⁺ per conventional cell
spread over the 48 sites of 48h at half occupancy. The 48h sites come in pairs ("doublets",
1.8 Å apart, across a 24g site) that cannot both hold a Li, and twelve of them form a cage
around each free S²⁻. An MD cell needs one ordered arrangement: :func:`li6ps5cl` keeps one
site of every doublet at random (seeded), which gives 6 Li per cage and no Li–Li pair closer
than 2.3 Å.
"""

from __future__ import annotations

import ase
import numpy as np
from ase.spacegroup import crystal

from ssehpc.structures.disorder import random_occupancy
from ssehpc.structures.lips import _AMU_PER_A3_TO_G_PER_CM3, Prototype, _tag

#: Li₆PS₅Cl cubic lattice constant, Å (ICSD 418490).
A_LI6PS5CL = 9.859

#: Asymmetric unit of Li₆PS₅Cl in F-43m (ASE standard setting) with site occupancies.
_LI6PS5CL = (
    ("Li", (0.3148, 0.3148, 0.9820), 0.5),  # 48h (x, x, z), half occupied
    ("P", (0.5, 0.5, 0.5), 1.0),  # 4b
    ("S", (0.61947, 0.61947, 0.61947), 1.0),  # 16e (x, x, x): the PS4 sulfur, P-S 2.04 Å
    ("S", (0.75, 0.75, 0.75), 1.0),  # 4d: free S2-
    ("Cl", (0.0, 0.0, 0.0), 1.0),  # 4a
)

_SOURCE = (
    "Deiseroth et al., Angew. Chem. Int. Ed. 47 (2008) 755 (structure type); "
    "coordinates of ICSD 418490 (a = 9.859 Å)"
)


def li6ps5cl(seed: int = 0, a: float = A_LI6PS5CL) -> ase.Atoms:
    """Li₆PS₅Cl argyrodite, F-43m (No. 216), conventional cell Li₂₄P₄S₂₀Cl₄ (52 atoms).

    Source: H.-J. Deiseroth, S.-T. Kong, H. Eckert, J. Vannahme, C. Reiner, T. Zaiß, M. Schlosser,
    *Angew. Chem. Int. Ed.* 47 (2008) 755–758, "Li₆PS₅X: a class of crystalline Li-rich solids
    with an unusually high Li⁺ mobility" (structure type, a ≈ 9.85 Å); the coordinates are
    those of ICSD collection code 418490 (a = 9.859 Å; Li 48h (0.3148, 0.3148, 0.982),
    P 4b, S 16e x = 0.61947, S 4d, Cl 4a) as listed in a public tutorial — quoted, not read from
    the CIF here. The anion-site exchange of the real material (some Cl on 4d, S on 4a) is not
    modelled: Cl is on 4a only. ICSD refines the 48h occupancy to 0.56; the charge-balanced
    0.5 (24 Li) is used.

    Geometry here: the published cell and coordinates; Li on one site of each 48h doublet,
    chosen at random with ``seed`` (:func:`ssehpc.structures.disorder.random_occupancy` with a
    2.0 Å separation). P–S 2.04 Å, Li–S ≥ 2.26 Å, Li–Cl ≥ 2.59 Å, Li–Li ≥ 2.33 Å. Not relaxed:
    relax or equilibrate (NPT) before production. Density 1.860 g/cm³.

    Args:
        seed: which site of each doublet holds the Li (the same seed gives the same cell).
        a: cubic lattice constant, Å.
    """
    if not a > 0:
        raise ValueError(f"lattice constant a must be positive (Å), got {a}")
    full = crystal(
        [s for s, _, _ in _LI6PS5CL],
        [p for _, p, _ in _LI6PS5CL],
        spacegroup=216,
        cellpar=[a, a, a, 90, 90, 90],
    )
    full.info["occupancy"] = {str(k): {s: o} for k, (s, _, o) in enumerate(_LI6PS5CL)}
    atoms = random_occupancy(full, seed=seed, min_separation=2.0)
    order = np.argsort(atoms.numbers, kind="stable")
    atoms = atoms[order]
    del atoms.arrays["spacegroup_kinds"]
    atoms.info["seed"] = int(seed)
    return _tag(atoms, "Li6PS5Cl", _SOURCE, "literature-sites-random-li")


def li6ps5cl_li_sites(a: float = A_LI6PS5CL) -> ase.Atoms:
    """All 48 Li sites (48h) of the Li₆PS₅Cl conventional cell as an ``Li48`` structure (half of
    them are occupied in any ordered cell): reference sites for
    :func:`ssehpc.analysis.structure.site_occupancy` (``.repeat(n)`` for a supercell)."""
    s, p, _ = _LI6PS5CL[0]
    return crystal([s], [p], spacegroup=216, cellpar=[a, a, a, 90, 90, 90])


def _density(a: float) -> float:
    from ase.data import atomic_masses, atomic_numbers

    mass = sum(n * atomic_masses[atomic_numbers[s]] for s, n in (("Li", 24), ("P", 4), ("S", 20), ("Cl", 4)))
    return mass / a**3 * _AMU_PER_A3_TO_G_PER_CM3


#: Prototypes beyond Li–P–S (not in the ML training set: the shipped ``lips`` model refuses Cl).
ARGYRODITES: dict[str, Prototype] = {
    "Li6PS5Cl": Prototype("Li6PS5Cl", li6ps5cl, _density(A_LI6PS5CL), _SOURCE, {"PS4": 4, "S": 4}),
}

#: Builders that take a seed (disordered prototypes).
SEEDED = {"Li6PS5Cl": li6ps5cl}
