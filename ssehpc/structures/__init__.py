"""Structure builders for solid-state electrolytes (``ase.Atoms`` out; Å, g/cm³).

:mod:`ssehpc.structures.lips` — the Li–P–S system: crystalline prototypes (Li₂S, β-/γ-Li₃PS₄,
Li₇P₃S₁₁, Li₄P₂S₆, P₄S₁₀), random xLi₂S–(1−x)P₂S₅ glass starting structures, supercells,
charge-compensated Li vacancies, strained and rattled copies, and the structural checks
(density, P–S bonds, thiophosphate units, minimum distance) used to validate them.
:mod:`ssehpc.structures.argyrodite` — Li₆PS₅Cl with a seeded ordered Li arrangement.
:mod:`ssehpc.structures.disorder` — formal charges, seeded random occupancy of partially
occupied (CIF) sites, substitution / doping / vacancies with charge compensation, supercells to a
minimum length.
"""

from ssehpc.structures.argyrodite import ARGYRODITES, li6ps5cl, li6ps5cl_li_sites
from ssehpc.structures.disorder import (
    OXIDATION_STATES,
    formal_charge_of,
    random_occupancy,
    repeat_to_min_length,
    substitute,
)
from ssehpc.structures.lips import (
    PROTOTYPES,
    beta_li3ps4,
    density,
    formal_charge,
    gamma_li3ps4,
    glass_composition,
    li2s,
    li4p2s6,
    li7p3s11,
    li_vacancies,
    min_distance,
    p2s7_unit,
    p4s10,
    p4s10_molecule,
    prototype,
    prototype_names,
    ps4_unit,
    ps_bond_lengths,
    random_glass,
    rattled,
    strained,
    supercell,
    thiophosphate_units,
)

__all__ = [
    "ARGYRODITES",
    "OXIDATION_STATES",
    "PROTOTYPES",
    "beta_li3ps4",
    "density",
    "formal_charge",
    "formal_charge_of",
    "gamma_li3ps4",
    "glass_composition",
    "li2s",
    "li4p2s6",
    "li6ps5cl",
    "li6ps5cl_li_sites",
    "li7p3s11",
    "li_vacancies",
    "min_distance",
    "p2s7_unit",
    "p4s10",
    "p4s10_molecule",
    "prototype",
    "prototype_names",
    "ps4_unit",
    "ps_bond_lengths",
    "random_glass",
    "random_occupancy",
    "rattled",
    "repeat_to_min_length",
    "strained",
    "substitute",
    "supercell",
    "thiophosphate_units",
]
