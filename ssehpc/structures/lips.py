"""Li–P–S structures: crystal prototypes, random glasses, defects and strain (Å, g/cm³, eV).

Crystal prototypes are built with :func:`ase.spacegroup.crystal` from a space group, lattice
constants and the asymmetric unit (Wyckoff positions). Every builder cites its source. Because
this package cannot download CIFs, the shipped geometries were *checked* rather than copied:

* lattice constants and space groups are the published ones (quoted in each docstring; the
  numbers were quoted from memory of the publications, not read from a CIF — only the γ-Li₃PS₄
  density, 1.93 g/cm³ in ICSD 180318, was cross-checked);
* fractional coordinates are either fixed by symmetry and ideal polyhedra (Li₂S, Li₄P₂S₆) or the
  result of a symmetry-constrained CHGNet (v0.3.0) relaxation of the internal coordinates
  **at the published cell**, started from an ideal-polyhedra construction in the published
  space group (β-/γ-Li₃PS₄) or from a seeded random packing of the right anions (Li₇P₃S₁₁,
  P₄S₁₀: models, not the refined structures). Each docstring says which;
* every structure passes the checks in ``tests/structures/test_lips.py``: formula and formal
  charge, density against the literature value, P–S bond lengths 1.9–2.2 Å in the expected
  thiophosphate units (PS₄³⁻, P₂S₇⁴⁻, P₂S₆⁴⁻, P₄S₁₀), no two atoms closer than 1.8 Å (the
  shortest contacts are P–S bonds, ≥ 1.93 Å), Li–S > 2.2 Å, Li–Li > 2.2 Å, Li–P > 2.6 Å;
* the CHGNet residual forces and stress and the change on a full cell relaxation are recorded in
  ``ssehpc/data/lips/README.md`` (the PBE-trained CHGNet teacher expands the cells by ~1–3 %;
  the published cells are shipped, not the teacher's).

Replace the coordinates with the CIF (``ase.io.read``) wherever the CIF is at hand.

Glass starting structures (:func:`random_glass`) place rigid PS₄³⁻ / P₂S₇⁴⁻ / P₄S₁₀ / S²⁻ / Li⁺
units at random with minimum distances, at a given density, for a later melt-quench.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import ase
import numpy as np
from ase.data import atomic_masses
from ase.geometry import get_distances
from ase.neighborlist import neighbor_list
from ase.spacegroup import crystal

from ssehpc.builders import supercell  # noqa: F401 - re-exported: one supercell rule for all builders

#: Avogadro-based conversion: (g/mol)/Å³ → g/cm³.
_AMU_PER_A3_TO_G_PER_CM3 = 1.66053906660

#: Bond lengths used for ideal polyanion units, Å (typical crystal values).
PS_TERMINAL = 2.03
PS_BRIDGING = 2.10
PS_P4S10_TERMINAL = 1.95
PS_P4S10_BRIDGING = 2.08


# --------------------------------------------------------------------------------------------
# analysis helpers


def density(atoms: ase.Atoms) -> float:
    """Mass density of a periodic cell, g/cm³."""
    return float(atoms.get_masses().sum() / atoms.get_volume() * _AMU_PER_A3_TO_G_PER_CM3)


def min_distance(atoms: ase.Atoms, pair: tuple[str, str] | None = None) -> float:
    """Smallest interatomic distance (minimum image), Å.

    Args:
        atoms: periodic or non-periodic structure with at least two atoms.
        pair: restrict to this pair of element symbols, e.g. ``("Li", "Li")``.

    Returns:
        The minimum distance, Å (``inf`` if no such pair exists).
    """
    d = atoms.get_all_distances(mic=any(atoms.pbc))
    np.fill_diagonal(d, np.inf)
    if pair is not None:
        sym = np.array(atoms.get_chemical_symbols())
        d = d[np.ix_(sym == pair[0], sym == pair[1])]
    return float(d.min()) if d.size else math.inf


def ps_bond_lengths(atoms: ase.Atoms, cutoff: float = 2.4) -> np.ndarray:
    """All P–S distances shorter than ``cutoff`` (each bond once), Å."""
    i, j, d = neighbor_list("ijd", atoms, cutoff)
    sym = np.array(atoms.get_chemical_symbols())
    return np.sort(d[(sym[i] == "P") & (sym[j] == "S")])


def _bond_graph(atoms: ase.Atoms, cutoff: float = 2.4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """P–S and P–P bonds (cutoff Å) as neighbour arrays over P atoms."""
    i, j, _ = neighbor_list("ijd", atoms, cutoff)
    sym = np.array(atoms.get_chemical_symbols())
    keep = (sym[i] == "P") & np.isin(sym[j], ("S", "P"))
    return i[keep], j[keep], sym


def thiophosphate_units(atoms: ase.Atoms, cutoff: float = 2.4) -> Counter:
    """Classify the P-centred polyanions (connected P–S/P–P clusters).

    A cluster with one P and four S is ``PS4``; two P sharing one S is ``P2S7``; two P bonded
    to each other with six S is ``P2S6``; four P and ten S is ``P4S10``. Anything else is named
    by its formula (``P{n}S{m}``). Sulfur with no P neighbour is counted as ``S`` (sulfide).

    Args:
        atoms: structure to analyse.
        cutoff: P–S / P–P bond cutoff, Å.

    Returns:
        A :class:`collections.Counter` of unit names.
    """
    i, j, sym = _bond_graph(atoms, cutoff)
    n = len(atoms)
    parent = np.arange(n)

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in zip(i, j, strict=True):
        ra, rb = find(int(a)), find(int(b))
        if ra != rb:
            parent[ra] = rb
    clusters: dict[int, list[int]] = {}
    for k in range(n):
        if sym[k] in ("P", "S"):
            clusters.setdefault(find(k), []).append(k)
    units: Counter = Counter()
    for members in clusters.values():
        n_p = sum(sym[k] == "P" for k in members)
        n_s = len(members) - n_p
        if n_p == 0:
            units["S" if n_s == 1 else f"S{n_s}"] += 1
            continue
        name = f"P{n_p}S{n_s}" if n_p > 1 else f"PS{n_s}"
        units[name] += 1
    return units


def formal_charge(atoms: ase.Atoms, cutoff: float = 2.4) -> int:
    """Formal charge with Li⁺, S²⁻ and P⁽⁵⁻ᵏ⁾⁺ where k is the number of P–P bonds of that P.

    Zero for every charge-balanced Li–P–S phase here (P(IV) in the P₂S₆⁴⁻ of Li₄P₂S₆).
    """
    sym = np.array(atoms.get_chemical_symbols())
    unknown = set(sym) - {"Li", "P", "S"}
    if unknown:
        raise ValueError(f"formal_charge knows Li, P, S only, got {sorted(unknown)}")
    i, j = neighbor_list("ij", atoms, cutoff)
    n_pp = int(np.sum((sym[i] == "P") & (sym[j] == "P")))  # each P–P bond counted twice
    return int(np.sum(sym == "Li") + 5 * np.sum(sym == "P") - n_pp - 2 * np.sum(sym == "S"))


# --------------------------------------------------------------------------------------------
# crystal prototypes


@dataclass(frozen=True)
class Prototype:
    """A crystal prototype: builder and literature reference values.

    Attributes:
        name: short key, e.g. ``"beta-Li3PS4"``.
        build: zero-argument builder returning the conventional cell.
        density: literature (or literature-cell) density, g/cm³.
        source: citation for the cell and structure.
        units: expected thiophosphate units per conventional cell.
    """

    name: str
    build: Callable[[], ase.Atoms]
    density: float
    source: str
    units: dict[str, int]


def _tag(atoms: ase.Atoms, name: str, source: str, geometry: str) -> ase.Atoms:
    atoms.info.update({"structure": name, "structure_source": source, "geometry": geometry})
    return atoms


def li2s(a: float = 5.708) -> ase.Atoms:
    """Li₂S, antifluorite, Fm-3m (No. 225), conventional cell (Z = 4, 12 atoms).

    Source: E. Zintl, A. Harder, B. Dauth, *Z. Elektrochem.* 40 (1934) 588 — a = 5.708 Å at
    room temperature (later room-temperature refinements give 5.69–5.72 Å, within 0.3 %).
    S on 4a (0, 0, 0), Li on 8c (¼, ¼, ¼); all coordinates are fixed by symmetry, so this is
    the literature geometry. Density 1.64 g/cm³.

    Args:
        a: cubic lattice constant, Å.
    """
    atoms = crystal(
        ["S", "Li"], [(0, 0, 0), (0.25, 0.25, 0.25)], spacegroup=225, cellpar=[a, a, a, 90, 90, 90]
    )
    return _tag(atoms, "Li2S", "Zintl, Harder & Dauth, Z. Elektrochem. 40 (1934) 588", "literature")


#: β-Li₃PS₄ asymmetric unit (Pnma, ASE standard setting).
_BETA_LI3PS4 = (
    ("P", (0.09244, 0.25, 0.16659)),  # 4c
    ("S", (0.09881, 0.25, 0.82828)),  # 4c
    ("S", (0.93426, 0.25, 0.22745)),  # 4c
    ("S", (0.15857, 0.46196, 0.28040)),  # 8d
    ("Li", (0.34283, 0.00231, 0.17864)),  # 8d
    ("Li", (0.41170, 0.25, 0.67721)),  # 4c
)


def beta_li3ps4() -> ase.Atoms:
    """β-Li₃PS₄, Pnma (No. 62), Z = 4 (32 atoms), ordered Li model.

    Source: K. Homma, M. Yonemura, T. Kobayashi, M. Nagao, M. Hirayama, R. Kanno, *Solid State
    Ionics* 182 (2011) 53–58, "Crystal structure and phase transitions of the lithium ionic
    conductor Li₃PS₄": a = 12.8190, b = 8.2195, c = 6.1236 Å (637 K), isolated PS₄ tetrahedra,
    P and two S on 4c, one S on 8d; Li partly disordered over 8d/4b/4c (cf. K. Kaup et al.,
    *ACS Energy Lett.* 2019, for the nanoporous β phase).

    Geometry here: the published cell; the PS₄ frame was built as an ideal tetrahedron
    (P–S 2.05 Å) on the 4c mirror at the position and orientation that maximises the
    inter-tetrahedral S–S distance (3.96 Å; the S sublattice is close packed), which lands P
    at (0.092, ¼, 0.167), i.e. where the publication has it. Li fills the fully occupied 8d
    site and one 4c site (12 Li per cell, an ordered stand-in for the partial occupancies);
    of the six ordered 8d + 4a/4b/4c choices, this is the lowest in CHGNet energy. Internal
    coordinates were then relaxed with CHGNet under Pnma symmetry at the published cell
    (|F| < 0.05 eV/Å). Density 1.853 g/cm³ (published cell, Z = 4).
    """
    atoms = crystal(
        [s for s, _ in _BETA_LI3PS4],
        [p for _, p in _BETA_LI3PS4],
        spacegroup=62,
        cellpar=[12.8190, 8.2195, 6.1236, 90, 90, 90],
    )
    return _tag(atoms, "beta-Li3PS4", "Homma et al., Solid State Ionics 182 (2011) 53", "chgnet-internal")


#: γ-Li₃PS₄ asymmetric unit (Pmn2₁, ASE standard setting).
_GAMMA_LI3PS4 = (
    ("S", (0.0, 0.87091, 0.01653)),  # 2a
    ("P", (0.0, 0.17026, 0.12405)),  # 2a
    ("S", (0.0, 0.17532, 0.45908)),  # 2a
    ("Li", (0.0, 0.84018, 0.62053)),  # 2a
    ("S", (0.22210, 0.31589, 0.01696)),  # 4b
    ("Li", (0.24951, 0.67271, 0.12252)),  # 4b
)


def gamma_li3ps4() -> ase.Atoms:
    """γ-Li₃PS₄, Pmn2₁ (No. 31), Z = 2 (16 atoms), enargite (Cu₃AsS₄) type.

    Source: Homma et al., *Solid State Ionics* 182 (2011) 53–58 (ICSD 180318): a = 7.70829,
    b = 6.53521, c = 6.1365 Å at 297 K, ρ = 1.93 g/cm³; all cations tetrahedral in a
    hexagonal close-packed S array, all PS₄ pointing the same way along c.

    Geometry here: the published cell; built as the enargite ordering of a 2×1×1
    orthohexagonal wurtzite cell (P on the 2a cation site, Li on 2a + 4b), then internal
    coordinates relaxed with CHGNet under Pmn2₁ symmetry at the published cell
    (|F| < 0.03 eV/Å; the polar z origin is arbitrary). Density 1.934 g/cm³.
    """
    atoms = crystal(
        [s for s, _ in _GAMMA_LI3PS4],
        [p for _, p in _GAMMA_LI3PS4],
        spacegroup=31,
        cellpar=[7.70829, 6.53521, 6.1365, 90, 90, 90],
    )
    return _tag(atoms, "gamma-Li3PS4", "Homma et al., Solid State Ionics 182 (2011) 53", "chgnet-internal")


def li4p2s6() -> ase.Atoms:
    """Li₄P₂S₆, P-31m (No. 162), Z = 1 (12 atoms), ordered hypothiodiphosphate.

    Sources: R. Mercier, J. P. Malugani, B. Fahys, J. Douglade, G. Robert, *J. Solid State
    Chem.* 43 (1982) 151 (P6₃/mcm with P disorder); S. Neuberger, S. P. Culver, H. Eckert,
    W. G. Zeier, J. Schmedt auf der Günne, *Dalton Trans.* 47 (2018) 11691 (ordered P-31m
    subcell); cell from H. Ben Yahia et al., *Z. Kristallogr.* 238 (2023) 209: supercell
    a = 10.5042, c = 6.5837 Å, i.e. subcell a = 10.5042/√3 = 6.0646 Å.

    Geometry here: Li on 2c (⅓, ⅔, 0) and 2d (⅓, ⅔, ½) (octahedral), staggered P₂S₆⁴⁻ with
    P on 2e (0, 0, z) and S on 6k (x, 0, z); z(P) = 0.170 gives P–P = 2.24 Å and (x, z)(S) =
    (0.3267, 0.2482) gives P–S = 2.05 Å — the symmetric CHGNet minimum at the published cell,
    within 0.01 of the ideal-geometry start. Density 2.234 g/cm³.
    """
    atoms = crystal(
        ["Li", "Li", "P", "S"],
        [(1 / 3, 2 / 3, 0.0), (1 / 3, 2 / 3, 0.5), (0.0, 0.0, 0.1700), (0.3267, 0.0, 0.2482)],
        spacegroup=162,
        cellpar=[6.0646, 6.0646, 6.5837, 90, 90, 120],
    )
    return _tag(atoms, "Li4P2S6", "Neuberger et al., Dalton Trans. 47 (2018) 11691", "chgnet-internal")


#: Li₇P₃S₁₁ model asymmetric unit (P-1, all sites 2i), see li7p3s11().
_LI7P3S11 = (
    ("S", (0.59610, 0.61087, 0.72258)),  # P2S7: bridging S
    ("P", (0.41522, 0.60245, 0.69924)),  # P2S7: P, P, then 3 + 3 terminal S
    ("P", (0.70905, 0.48659, 0.89079)),
    ("S", (0.30895, 0.74102, 0.54813)),
    ("S", (0.40237, 0.82049, 0.84530)),
    ("S", (0.40269, 0.27076, 0.68140)),
    ("S", (0.70381, 0.67180, 0.04651)),
    ("S", (0.86752, 0.47506, 0.88178)),
    ("S", (0.67495, 0.16023, 0.87027)),
    ("P", (0.00771, 0.12468, 0.30178)),  # PS4
    ("S", (0.97699, 0.84064, 0.33997)),
    ("S", (0.18260, 0.16014, 0.36279)),
    ("S", (0.90912, 0.43090, 0.35412)),
    ("S", (0.94868, 0.10891, 0.12092)),
    ("Li", (0.47778, 0.19257, 0.88437)),  # Li
    ("Li", (0.91778, 0.54013, 0.16186)),
    ("Li", (0.77205, 0.91450, 0.34111)),
    ("Li", (0.24831, 0.93355, 0.93067)),
    ("Li", (0.13920, 0.55266, 0.47091)),
    ("Li", (0.14924, 0.12352, 0.14781)),
    ("Li", (0.67653, 0.21002, 0.65103)),
)

#: P₄S₁₀ packing-model asymmetric unit (P-1, all sites 2i): one molecule, see p4s10().
_P4S10 = (
    ("P", (0.68865, 0.24698, 0.43029)),  # P4S10: P
    ("P", (0.47588, 0.25630, 0.74620)),
    ("P", (0.80336, 0.47193, 0.71525)),
    ("P", (0.82659, 0.08756, 0.74444)),
    ("S", (0.46050, 0.23155, 0.52199)),  # bridging S
    ("S", (0.79902, 0.45079, 0.49060)),
    ("S", (0.81520, 0.06444, 0.52069)),
    ("S", (0.92663, 0.29523, 0.81740)),
    ("S", (0.59977, 0.06952, 0.83379)),
    ("S", (0.57641, 0.46567, 0.80743)),
    ("S", (0.68131, 0.23212, 0.22407)),  # terminal S
    ("S", (0.26797, 0.25804, 0.83289)),
    ("S", (0.89533, 0.66902, 0.75994)),
    ("S", (0.97371, 0.93800, 0.82589)),
)
#: P₄S₁₀ model cell (a, b, c in Å; α, β, γ in degrees): two molecules at ρ = 2.09 g/cm³.
_P4S10_CELL = (8.4604, 8.9057, 9.3510, 90.0, 90.0, 90.0)


def li7p3s11() -> ase.Atoms:
    """Li₇P₃S₁₁, P-1 (No. 2), Z = 2 (42 atoms): 2 P₂S₇⁴⁻ + 2 PS₄³⁻ + 14 Li⁺ per cell.

    Source: H. Yamane, M. Shibata, Y. Shimane, T. Junke, Y. Seino, S. Adams, K. Minami,
    A. Hayashi, M. Tatsumisago, *Solid State Ionics* 178 (2007) 1163–1167, "Crystal structure
    of a superionic conductor, Li₇P₃S₁₁": a = 12.5009, b = 6.0316, c = 12.5303 Å,
    α = 102.845°, β = 113.2024°, γ = 74.467° (V = 829.3 Å³, ρ = 1.979 g/cm³).

    Geometry here: **a model at the published cell and anion inventory, not the refined
    coordinates** (not available offline): one P₂S₇⁴⁻ and one PS₄³⁻ of ideal geometry and seven
    Li were placed at random (seeded) in the asymmetric unit, the inversion images added, and
    internal coordinates relaxed with CHGNet under P-1 symmetry; the lowest-energy of the trial
    packings is shipped. Its P₂S₇ + PS₄ units, density (published cell) and bond lengths are
    those of the real phase; Li sites are the model's.
    """
    atoms = crystal(
        [s for s, _ in _LI7P3S11],
        [p for _, p in _LI7P3S11],
        spacegroup=2,
        cellpar=[12.5009, 6.0316, 12.5303, 102.845, 113.2024, 74.467],
    )
    return _tag(
        atoms, "Li7P3S11", "Yamane et al., Solid State Ionics 178 (2007) 1163", "model-chgnet-internal"
    )


def p4s10() -> ase.Atoms:
    """P₄S₁₀ ("P₂S₅"), molecular crystal model, P-1, two molecules (28 atoms).

    Source for the molecule and density: A. Vos, E. H. Wiebenga, *Acta Cryst.* 8 (1955) 217,
    "The crystal structures of P₄S₁₀ and P₄S₇" (P-1; adamantane-like P₄S₁₀ cages,
    P–S(bridging) 2.08 Å, P=S(terminal) 1.95 Å); density 2.09 g/cm³.

    Geometry here: **a packing model, not the refined structure**: the published cell holds
    four molecules; we pack two ideal Td molecules (a molecule and its inversion image) in a
    smaller triclinic P-1 cell chosen to give the published density, placed at random (seeded)
    with inter-molecular S–S ≥ 3.3 Å and relaxed with CHGNet under P-1 symmetry at that fixed
    cell; the lowest-energy trial is shipped. It is the P₂S₅-rich end member for teacher data,
    with the right molecule and density.
    """
    atoms = crystal([s for s, _ in _P4S10], [p for _, p in _P4S10], spacegroup=2, cellpar=list(_P4S10_CELL))
    return _tag(atoms, "P4S10", "Vos & Wiebenga, Acta Cryst. 8 (1955) 217", "model-chgnet-internal")


def _li_p_s_mass(n_li: float, n_p: float, n_s: float) -> float:
    return n_li * atomic_masses[3] + n_p * atomic_masses[15] + n_s * atomic_masses[16]


def _density_from_cell(cellpar: Sequence[float], n_li: float, n_p: float, n_s: float) -> float:
    from ase.cell import Cell

    return _li_p_s_mass(n_li, n_p, n_s) / Cell.fromcellpar(list(cellpar)).volume * _AMU_PER_A3_TO_G_PER_CM3


#: The prototypes by name, with literature densities (published cell and Z) and unit counts.
PROTOTYPES: dict[str, Prototype] = {
    p.name: p
    for p in (
        Prototype("Li2S", li2s, 1.640, "Zintl et al. 1934; a = 5.708 Å", {"S": 4}),
        Prototype(
            "beta-Li3PS4",
            beta_li3ps4,
            _density_from_cell([12.8190, 8.2195, 6.1236, 90, 90, 90], 12, 4, 16),
            "Homma et al. 2011",
            {"PS4": 4},
        ),
        Prototype("gamma-Li3PS4", gamma_li3ps4, 1.93, "Homma et al. 2011 (ICSD 180318)", {"PS4": 2}),
        Prototype(
            "Li7P3S11",
            li7p3s11,
            _density_from_cell([12.5009, 6.0316, 12.5303, 102.845, 113.2024, 74.467], 14, 6, 22),
            "Yamane et al. 2007",
            {"P2S7": 2, "PS4": 2},
        ),
        Prototype(
            "Li4P2S6",
            li4p2s6,
            _density_from_cell([6.0646, 6.0646, 6.5837, 90, 90, 120], 4, 2, 6),
            "Neuberger et al. 2018; Ben Yahia et al. 2023",
            {"P2S6": 1},
        ),
        Prototype("P4S10", p4s10, 2.09, "Vos & Wiebenga 1955", {"P4S10": 2}),
    )
}


def prototype_names() -> list[str]:
    """Every prototype name: :data:`PROTOTYPES` (Li–P–S) and the argyrodites
    (:data:`ssehpc.structures.argyrodite.ARGYRODITES`)."""
    from ssehpc.structures.argyrodite import ARGYRODITES

    return sorted({*PROTOTYPES, *ARGYRODITES})


def prototype(name: str, seed: int = 0) -> ase.Atoms:
    """Build a prototype by name (see :func:`prototype_names`).

    Args:
        name: prototype key.
        seed: random site occupancy of disordered prototypes (Li₆PS₅Cl); ignored by ordered ones.

    Raises:
        KeyError: for an unknown name, listing the known ones.
    """
    from ssehpc.structures.argyrodite import SEEDED

    if name in SEEDED:
        return SEEDED[name](seed=seed)
    try:
        return PROTOTYPES[name].build()
    except KeyError:
        raise KeyError(f"unknown prototype {name!r}; known: {prototype_names()}") from None


# --------------------------------------------------------------------------------------------
# supercells, defects, strain, rattling


def rattled(atoms: ase.Atoms, stdev: float, seed: int = 0) -> ase.Atoms:
    """Copy with Gaussian displacements of standard deviation ``stdev`` (Å) per component."""
    out = atoms.copy()
    rng = np.random.default_rng(seed)
    out.positions = out.positions + rng.normal(0.0, stdev, size=out.positions.shape)
    out.info["rattle"] = float(stdev)
    return out


def strained(atoms: ase.Atoms, strain: float | Sequence[float] | np.ndarray) -> ase.Atoms:
    """Copy under a homogeneous small strain (atoms move with the cell).

    Args:
        atoms: periodic structure.
        strain: ε as a scalar (isotropic, ε·I: 0.03 is +3 % on every length, ≈ +9 % volume),
            three normal components (εxx, εyy, εzz), six Voigt components
            (εxx, εyy, εzz, εyz, εxz, εxy; tensor, not engineering, shears) or a symmetric
            3×3 tensor. Dimensionless.

    Returns:
        The strained copy, with ``info["strain"]`` as the six Voigt components.
    """
    eps = np.asarray(strain, dtype=float)
    if eps.ndim == 0:
        e = np.eye(3) * float(eps)
    elif eps.shape == (3,):
        e = np.diag(eps)
    elif eps.shape == (6,):
        xx, yy, zz, yz, xz, xy = eps
        e = np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
    elif eps.shape == (3, 3):
        if not np.allclose(eps, eps.T):
            raise ValueError("a 3x3 strain must be symmetric (rotations are not strains)")
        e = eps
    else:
        raise ValueError(f"strain must be a scalar, 3, 6 or 3x3 values, got shape {eps.shape}")
    if np.abs(e).max() >= 0.5:
        raise ValueError(f"strain components must be small (|eps| < 0.5), got {np.abs(e).max():.3g}")
    out = atoms.copy()
    out.set_cell(atoms.cell.array @ (np.eye(3) + e), scale_atoms=True)
    out.info["strain"] = [
        float(e[0, 0]),
        float(e[1, 1]),
        float(e[2, 2]),
        float(e[1, 2]),
        float(e[0, 2]),
        float(e[0, 1]),
    ]
    return out


def _free_sulfur(atoms: ase.Atoms, cutoff: float = 2.4) -> np.ndarray:
    """Indices of S with no P within ``cutoff`` (sulfide anions)."""
    sym = np.array(atoms.get_chemical_symbols())
    i, j, _ = neighbor_list("ijd", atoms, cutoff)
    bonded = set(i[(sym[i] == "S") & (sym[j] == "P")].tolist())
    return np.array([k for k in np.flatnonzero(sym == "S") if k not in bonded], dtype=int)


def _isolated_ps4(atoms: ase.Atoms, cutoff: float = 2.4) -> list[list[int]]:
    """Index lists [P, S, S, S, S] of the isolated PS₄ units."""
    sym = np.array(atoms.get_chemical_symbols())
    i, j, _ = neighbor_list("ijd", atoms, cutoff)
    s_of_p: dict[int, list[int]] = {}
    p_of_s: dict[int, list[int]] = {}
    for a, b in zip(i, j, strict=True):
        if sym[a] == "P" and sym[b] == "S":
            s_of_p.setdefault(int(a), []).append(int(b))
            p_of_s.setdefault(int(b), []).append(int(a))
        if sym[a] == "P" and sym[b] == "P":
            s_of_p.setdefault(int(a), []).append(-1)  # mark P–P bonded
    units = []
    for p, ss in s_of_p.items():
        if len(ss) == 4 and -1 not in ss and all(len(p_of_s[s]) == 1 for s in ss):
            units.append([p, *sorted(set(ss))])
    return sorted(units)


def li_vacancies(atoms: ase.Atoms, n_li: int, seed: int = 0, compensation: str = "auto") -> ase.Atoms:
    """Remove ``n_li`` random Li, with charge compensation.

    Args:
        atoms: structure containing Li.
        n_li: number of Li⁺ to remove.
        seed: random seed (which Li, S or PS₄ are removed).
        compensation: how the cell stays neutral:

            * ``"sulfide"`` — a Li₂S Schottky defect: also remove one sulfide S²⁻ (an S with no
              P neighbour) per two Li; ``n_li`` must be even;
            * ``"thiophosphate"`` — a Li₃PS₄ Schottky defect: also remove one whole isolated
              PS₄³⁻ per three Li; ``n_li`` must be a multiple of 3;
            * ``"none"`` — remove Li only; the cell carries a formal charge −n_li (recorded
              in ``info["charge"]``). An ML or DFT label of such a cell describes an
              oxidised (hole-doped) host, not a compensated vacancy; use with care;
            * ``"auto"`` — ``"sulfide"`` if there are enough sulfide ions and ``n_li`` is
              even, else ``"thiophosphate"`` if possible, else an error.

    Returns:
        The defective copy; ``info["vacancies"]`` lists what was removed.

    Raises:
        ValueError: if the requested defect is impossible in this structure.
    """
    if n_li < 1:
        raise ValueError(f"n_li must be positive, got {n_li}")
    sym = np.array(atoms.get_chemical_symbols())
    li = np.flatnonzero(sym == "Li")
    if n_li > len(li):
        raise ValueError(f"cannot remove {n_li} Li from a cell with {len(li)}")
    rng = np.random.default_rng(seed)
    free_s = _free_sulfur(atoms)
    ps4 = _isolated_ps4(atoms)
    mode = compensation
    if mode == "auto":
        if n_li % 2 == 0 and len(free_s) >= n_li // 2:
            mode = "sulfide"
        elif n_li % 3 == 0 and len(ps4) >= n_li // 3:
            mode = "thiophosphate"
        else:
            raise ValueError(
                f"no charge-compensated defect for {n_li} Li vacancies: {len(free_s)} sulfide ions, "
                f"{len(ps4)} isolated PS4 (need n_li even with n_li/2 sulfides, or n_li divisible by 3 "
                "with n_li/3 PS4); pass compensation='none' for uncompensated vacancies"
            )
    remove = [int(k) for k in rng.choice(li, size=n_li, replace=False)]
    record = {"Li": n_li}
    if mode == "sulfide":
        if n_li % 2 or len(free_s) < n_li // 2:
            raise ValueError(
                f"sulfide compensation needs even n_li and {n_li // 2} sulfide ions (have {len(free_s)})"
            )
        remove += [int(k) for k in rng.choice(free_s, size=n_li // 2, replace=False)]
        record["S"] = n_li // 2
    elif mode == "thiophosphate":
        if n_li % 3 or len(ps4) < n_li // 3:
            raise ValueError(
                f"thiophosphate compensation needs n_li % 3 == 0 and {n_li // 3} PS4 (have {len(ps4)})"
            )
        for u in rng.choice(len(ps4), size=n_li // 3, replace=False):
            remove += ps4[int(u)]
        record["PS4"] = n_li // 3
    elif mode != "none":
        raise ValueError(
            f"compensation must be 'auto', 'sulfide', 'thiophosphate' or 'none', got {compensation!r}"
        )
    out = atoms.copy()
    del out[sorted(set(remove))]
    out.info["vacancies"] = record
    out.info["charge"] = 0 if mode != "none" else -n_li
    return out


# --------------------------------------------------------------------------------------------
# polyanion units and random glasses


def _tetrahedron() -> np.ndarray:
    """Unit vectors to the vertices of a regular tetrahedron, shape (4, 3)."""
    return np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=float) / math.sqrt(3.0)


def _rotation_to(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotation matrix taking unit vector u onto unit vector v."""
    u = u / np.linalg.norm(u)
    v = v / np.linalg.norm(v)
    c = float(u @ v)
    if c > 1 - 1e-12:
        return np.eye(3)
    if c < -1 + 1e-12:
        axis = np.cross(u, [1.0, 0, 0])
        if np.linalg.norm(axis) < 1e-6:
            axis = np.cross(u, [0, 1.0, 0])
        axis /= np.linalg.norm(axis)
        return 2 * np.outer(axis, axis) - np.eye(3)
    w = np.cross(u, v)
    k = np.array([[0, -w[2], w[1]], [w[2], 0, -w[0]], [-w[1], w[0], 0]])
    return np.eye(3) + k + k @ k / (1 + c)


def _axis_rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    a = axis / np.linalg.norm(axis)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k


def ps4_unit(bond: float = PS_TERMINAL) -> ase.Atoms:
    """An ideal PS₄³⁻ tetrahedron centred on P at the origin (P first), Å."""
    return ase.Atoms("PS4", positions=np.vstack([np.zeros(3), bond * _tetrahedron()]))


def p2s7_unit(angle: float = 106.0, bridge: float = PS_BRIDGING, terminal: float = PS_TERMINAL) -> ase.Atoms:
    """An ideal P₂S₇⁴⁻ (two corner-sharing PS₄), bridging S at the origin, Å and degrees.

    Args:
        angle: P–S–P angle at the bridging S, degrees (≈ 100–110° in crystals).
        bridge: P–S(bridging) length, Å.
        terminal: P–S(terminal) length, Å.

    Returns:
        Atoms ordered S(bridging), P, P, then three terminal S per P; staggered.
    """
    half = math.radians(angle) / 2
    p1 = bridge * np.array([-math.sin(half), 0.0, math.cos(half)])
    p2 = bridge * np.array([math.sin(half), 0.0, math.cos(half)])
    best = None
    for phi in np.linspace(0, 2 * math.pi / 3, 25):
        pos = [np.zeros(3), p1, p2]
        for sign, p in ((1, p1), (-1, p2)):
            u = -p / np.linalg.norm(p)  # P → bridging S
            rot = _axis_rotation(u, sign * phi) @ _rotation_to(_tetrahedron()[0], u)
            verts = _tetrahedron() @ rot.T
            pos += [p + terminal * v for v in verts[1:]]
        pos = np.array(pos)
        d = np.linalg.norm(pos[3:6, None] - pos[None, 6:9], axis=-1).min()
        if best is None or d > best[0]:
            best = (d, pos)
    assert best is not None
    return ase.Atoms("SP2S6", positions=best[1])


def p4s10_molecule(bridge: float = PS_P4S10_BRIDGING, terminal: float = PS_P4S10_TERMINAL) -> ase.Atoms:
    """The P₄S₁₀ cage (Td, adamantane-like), centred at the origin, Å.

    P at the vertices of a tetrahedron, one bridging S over each of its six edges (P–S–P
    109.5°), one terminal S on each P pointing outward. Bond lengths after Vos & Wiebenga
    (1955): P–S(bridging) 2.08 Å, P=S 1.95 Å.
    """
    d = bridge / math.sqrt(3.0)
    p = d * np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=float)
    s_b = 2 * d * np.vstack([np.eye(3), -np.eye(3)])
    s_t = p * (1 + terminal / np.linalg.norm(p[0]))
    return ase.Atoms("P4S10", positions=np.vstack([p, s_b, s_t]))


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


#: Minimum distances between atoms of different units used by :func:`random_glass`, Å.
GLASS_MIN_DISTANCES: dict[frozenset[str], float] = {
    frozenset(("S",)): 2.9,
    frozenset(("P", "S")): 3.0,
    frozenset(("P",)): 3.4,
    frozenset(("Li", "S")): 2.2,
    frozenset(("Li", "P")): 2.6,
    frozenset(("Li",)): 2.2,
}


def _insert(
    cell: np.ndarray,
    positions: list[np.ndarray],
    symbols: list[str],
    unit: ase.Atoms,
    rng: np.random.Generator,
    min_dist: dict[frozenset[str], float],
    tries: int,
    inversion: bool = False,
) -> bool:
    """Try to place ``unit`` (random position and orientation) without clashes."""
    usym = unit.get_chemical_symbols()
    centre = unit.positions.mean(axis=0)
    local = unit.positions - centre
    if positions:
        old = np.vstack(positions)
        old_sym = np.array(symbols)
    for _ in range(tries):
        rot = _random_rotation(rng) if len(unit) > 1 else np.eye(3)
        frac = rng.random(3)
        new = frac @ cell + local @ rot.T
        new_sym = list(usym)
        if inversion:
            new = np.vstack([new, -new])
            new_sym = new_sym + new_sym
            _, d_self = get_distances(new[: len(usym)], new[len(usym) :], cell=cell, pbc=True)
            lim = np.array([[min_dist[frozenset((a, b))] for b in usym] for a in usym])
            if (d_self < lim).any():
                continue
        if positions:
            _, d = get_distances(new, old, cell=cell, pbc=True)
            lim = np.array([[min_dist[frozenset((a, b))] for b in old_sym] for a in new_sym])
            if (d < lim).any():
                continue
        positions.append(new)
        symbols.extend(new_sym)
        return True
    return False


def glass_composition(x: float, n_atoms_target: int) -> dict[str, int]:
    """Integer, charge-balanced atom counts for xLi₂S–(1−x)P₂S₅ near ``n_atoms_target`` atoms.

    Li : P = x : (1−x) up to rounding, with Li + 5 P = 2 S exactly (all P(V), S(−II)).

    Args:
        x: Li₂S mole fraction, 0.5 ≤ x < 1.
        n_atoms_target: desired total number of atoms.

    Returns:
        ``{"Li": n_li, "P": n_p, "S": n_s}``.
    """
    if not 0.5 <= x < 1.0:
        raise ValueError(f"x must be in [0.5, 1) for xLi2S-(1-x)P2S5, got {x}")
    if n_atoms_target < 12:
        raise ValueError(f"n_atoms_target must be at least 12, got {n_atoms_target}")
    per_unit = 7 - 4 * x  # atoms per x Li2S + (1-x) P2S5
    n_p = max(2, round(n_atoms_target * 2 * (1 - x) / per_unit))
    best = None
    for n_li in range(max(1, math.floor(n_p * x / (1 - x)) - 2), math.ceil(n_p * x / (1 - x)) + 3):
        if (n_li + 5 * n_p) % 2:
            continue
        err = abs(n_li / (n_li + n_p) - x)
        if best is None or err < best[0]:
            best = (err, n_li)
    assert best is not None
    n_li = best[1]
    return {"Li": n_li, "P": n_p, "S": (n_li + 5 * n_p) // 2}


def _glass_units(n_p: int, n_s: int) -> dict[str, int]:
    """Split P and S into PS₄, P₂S₇, P₄S₁₀ and free S²⁻ (few bridging units as possible)."""
    best = None
    for n10 in range(n_p // 4 + 1):
        for n7 in range((n_p - 4 * n10) // 2 + 1):
            n4 = n_p - 4 * n10 - 2 * n7
            free = n_s - 4 * n4 - 7 * n7 - 10 * n10
            if free < 0:
                continue
            key = (free > 0 and (n7 > 0 or n10 > 0), free, n10, n7)
            if best is None or key < best[0]:
                best = (key, {"PS4": n4, "P2S7": n7, "P4S10": n10, "S": free})
    if best is None:
        raise ValueError(f"no PS4/P2S7/P4S10/S decomposition of P{n_p}S{n_s}")
    return best[1]


def _pack_cubic(
    pieces: Sequence[ase.Atoms],
    length: float,
    rng: np.random.Generator,
    min_dist: dict[frozenset[str], float],
    *,
    tries: int = 2000,
    expand: float = 1.35,
    step: float = 0.97,
    max_moves: int = 20000,
) -> ase.Atoms | None:
    """Pack rigid pieces into a cubic box of edge ``length`` (Å) without inter-piece clashes.

    Random sequential insertion into a box ``expand`` times larger (where it cannot jam), then
    isotropic compression of the piece centres in steps of ``step`` with Monte Carlo
    translations/rotations of clashing pieces after each step (moves accepted when they reduce
    the piece's overlap). Returns ``None`` if a clash cannot be removed.
    """
    symbols = [s for p in pieces for s in p.get_chemical_symbols()]
    owner = np.concatenate([np.full(len(p), k) for k, p in enumerate(pieces)])
    local = [p.positions - p.positions.mean(axis=0) for p in pieces]
    kinds = sorted(set(symbols))
    kind = np.array([kinds.index(s) for s in symbols])
    table = np.array([[min_dist[frozenset((a, b))] for b in kinds] for a in kinds])
    lim = table[kind[:, None], kind[None, :]]
    lim[owner[:, None] == owner[None, :]] = 0.0
    start = [int(np.searchsorted(owner, k)) for k in range(len(pieces))]
    centres = np.zeros((len(pieces), 3))
    rots = np.repeat(np.eye(3)[None], len(pieces), axis=0)
    box = length * expand
    pos = np.zeros((len(symbols), 3))

    def place(k: int) -> None:
        pos[start[k] : start[k] + len(local[k])] = centres[k] + local[k] @ rots[k].T

    def overlap(k: int, upto: int | None = None) -> float:
        sl = slice(start[k], start[k] + len(local[k]))
        other = slice(0, upto) if upto is not None else slice(None)
        d = pos[sl, None, :] - pos[None, other, :]
        d -= box * np.round(d / box)
        r = np.sqrt((d * d).sum(-1))
        return float(np.clip(lim[sl, other] - r, 0.0, None).sum())

    def overlaps() -> np.ndarray:
        d = pos[:, None, :] - pos[None, :, :]
        d -= box * np.round(d / box)
        o = np.clip(lim - np.sqrt((d * d).sum(-1)), 0.0, None).sum(axis=1)
        return np.bincount(owner, weights=o, minlength=len(pieces))

    for k, piece in enumerate(pieces):
        for _ in range(tries):
            centres[k] = rng.random(3) * box
            rots[k] = _random_rotation(rng) if len(piece) > 1 else np.eye(3)
            place(k)
            if overlap(k, upto=start[k]) == 0.0:
                break
        else:
            return None
    while box > length * (1 + 1e-9):
        new_box = max(length, box * step)
        centres *= new_box / box
        box = new_box
        for k in range(len(pieces)):
            place(k)
        for _ in range(max_moves):
            bad = np.flatnonzero(overlaps() > 0.0)
            if not len(bad):
                break
            k = int(bad[int(rng.integers(len(bad)))])
            old_c, old_r, old_o = centres[k].copy(), rots[k].copy(), overlap(k)
            centres[k] = centres[k] + rng.normal(0.0, 0.25, 3)
            if len(local[k]) > 1:
                axis = rng.normal(size=3)
                rots[k] = _axis_rotation(axis, rng.normal(0.0, 0.25)) @ rots[k]
            place(k)
            if overlap(k) >= old_o:
                centres[k], rots[k] = old_c, old_r
                place(k)
        else:
            return None
    atoms = ase.Atoms(symbols, positions=pos, cell=np.eye(3) * length, pbc=True)
    atoms.wrap()
    return atoms


def random_glass(
    x: float,
    n_atoms_target: int = 100,
    density: float = 1.88,
    seed: int = 0,
    *,
    min_dist: dict[frozenset[str], float] | None = None,
    tries: int = 2000,
    restarts: int = 20,
) -> ase.Atoms:
    """Random xLi₂S–(1−x)P₂S₅ starting structure in a cubic box, for melt-quench.

    The composition (:func:`glass_composition`) is split into rigid polyanions — PS₄³⁻
    (S/P = 4), corner-sharing P₂S₇⁴⁻ (3.5), P₄S₁₀ cages (2.5) and free S²⁻ — using as few
    bridged units as the S/P ratio allows (x = 0.75: only PS₄; x = 0.70: PS₄ + P₂S₇;
    x = 2/3: only P₂S₇; x < 2/3 adds P₄S₁₀; x > 0.75 adds S²⁻). Units are inserted
    largest first at random positions and orientations, then Li⁺, rejecting any trial closer
    than :data:`GLASS_MIN_DISTANCES` to what is already placed. The result is charge
    balanced, has ideal polyanions and no close contacts, but no medium-range order — melt
    and quench it (e.g. 1000 K → 300 K) before using it as a glass.

    Args:
        x: Li₂S mole fraction, 0.5 ≤ x < 1 (0.75 is Li₃PS₄, 0.70 is Li₇P₃S₁₁).
        n_atoms_target: about this many atoms.
        density: box density, g/cm³ (experimental 75Li₂S–25P₂S₅ glass ≈ 1.88).
        seed: random seed; the same seed gives the same structure.
        min_dist: override the inter-unit minimum distances, Å.
        tries: placement trials per unit before restarting.
        restarts: full restarts (each with fresh random numbers) before giving up.

    Returns:
        The structure with ``info`` keys ``structure``, ``x`` (realised), ``x_target``,
        ``units``, ``seed``, ``density_target``.

    Raises:
        RuntimeError: if the units cannot be packed at this density (lower it).
    """
    if not density > 0:
        raise ValueError(f"density must be positive (g/cm3), got {density}")
    comp = glass_composition(x, n_atoms_target)
    units = _glass_units(comp["P"], comp["S"])
    mass = _li_p_s_mass(comp["Li"], comp["P"], comp["S"])
    length = (mass * _AMU_PER_A3_TO_G_PER_CM3 / density) ** (1.0 / 3.0)
    cell = np.eye(3) * length
    md = dict(GLASS_MIN_DISTANCES if min_dist is None else min_dist)
    templates = [
        ("P4S10", p4s10_molecule()),
        ("P2S7", p2s7_unit()),
        ("PS4", ps4_unit()),
        ("S", ase.Atoms("S")),
        ("Li", ase.Atoms("Li")),
    ]
    counts = {**units, "Li": comp["Li"]}
    rng = np.random.default_rng(seed)
    anions = [unit for name, unit in templates if name != "Li" for _ in range(counts.get(name, 0))]
    for _attempt in range(restarts):
        packed = _pack_cubic(anions, length, rng, md, tries=tries)
        if packed is None:
            continue
        positions = [packed.positions]
        symbols = packed.get_chemical_symbols()
        if all(
            _insert(cell, positions, symbols, templates[-1][1], rng, md, tries) for _ in range(comp["Li"])
        ):
            atoms = ase.Atoms(symbols, positions=np.vstack(positions), cell=cell, pbc=True)
            atoms.wrap()
            order = np.argsort(atoms.numbers, kind="stable")
            atoms = atoms[order]
            atoms.info.update(
                {
                    "structure": f"glass-x{x:.3f}",
                    "x": comp["Li"] / (comp["Li"] + comp["P"]),
                    "x_target": float(x),
                    "units": {k: v for k, v in units.items() if v},
                    "seed": int(seed),
                    "density_target": float(density),
                    "geometry": "random-units",
                }
            )
            return atoms
    raise RuntimeError(
        f"could not pack {counts} into a {length:.2f} Å box at {density} g/cm3 after {restarts} restarts; "
        "lower the density or the minimum distances"
    )


def random_crystal_fill(
    cellpar: Sequence[float],
    units: Sequence[tuple[ase.Atoms, int]],
    seed: int,
    *,
    inversion: bool = True,
    min_dist: dict[frozenset[str], float] | None = None,
    tries: int = 20000,
) -> ase.Atoms | None:
    """Random P-1 (or P1) packing of units in a fixed cell; used to seed crystal models.

    Args:
        cellpar: a, b, c (Å), α, β, γ (degrees).
        units: (unit, count) pairs for the asymmetric unit; with ``inversion`` each placed
            unit also gets its image through the origin.
        seed: random seed.
        inversion: add inversion images (space group P-1).
        min_dist: inter-unit minimum distances, Å (default :data:`GLASS_MIN_DISTANCES`).
        tries: trials per unit.

    Returns:
        The packed structure, or ``None`` if a unit could not be placed.
    """
    from ase.cell import Cell

    cell = Cell.fromcellpar(list(cellpar)).array
    md = dict(GLASS_MIN_DISTANCES if min_dist is None else min_dist)
    rng = np.random.default_rng(seed)
    positions: list[np.ndarray] = []
    symbols: list[str] = []
    for unit, count in units:
        for _ in range(count):
            if not _insert(cell, positions, symbols, unit, rng, md, tries, inversion=inversion):
                return None
    atoms = ase.Atoms(symbols, positions=np.vstack(positions), cell=cell, pbc=True)
    atoms.wrap()
    return atoms
