"""Site disorder: formal charges, seeded random site occupancy, substitution / doping / vacancies.

* :func:`formal_charge_of` — net formal charge from a table of oxidation states
  (:data:`OXIDATION_STATES`; P⁽⁵⁻ᵏ⁾⁺ with k P–P bonds, as in P₂S₆⁴⁻);
* :func:`random_occupancy` — turn the partially occupied sites of a CIF (ASE puts them into
  ``info["occupancy"]`` and ``arrays["spacegroup_kinds"]``) into one ordered, seeded configuration;
* :func:`substitute` — replace a fraction (or a number) of the atoms of one element by another
  element or by vacancies, seeded, with optional Li-vacancy charge compensation;
* :func:`repeat_to_min_length` — the smallest supercell whose perpendicular widths all reach a
  length (e.g. twice the cutoff).

Every problem raises :class:`ValueError` with one line that names it (the spec layer turns it
into a :class:`ssehpc.spec.SpecError`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import ase
import numpy as np
from ase.data import atomic_numbers
from ase.neighborlist import neighbor_list

#: Formal oxidation states (e) used for charge balance; override per call where needed.
OXIDATION_STATES: dict[str, int] = {
    "H": 1, "Li": 1, "Na": 1, "K": 1, "Rb": 1, "Cs": 1, "Ag": 1, "Cu": 1,
    "Be": 2, "Mg": 2, "Ca": 2, "Sr": 2, "Ba": 2, "Zn": 2,
    "B": 3, "Al": 3, "Ga": 3, "In": 3, "Sc": 3, "Y": 3, "La": 3, "Bi": 3, "Sb": 5, "As": 5,
    "Si": 4, "Ge": 4, "Sn": 4, "Ti": 4, "Zr": 4, "Hf": 4,
    "P": 5, "Nb": 5, "Ta": 5, "W": 6, "Mo": 6,
    "O": -2, "S": -2, "Se": -2, "Te": -2, "N": -3,
    "F": -1, "Cl": -1, "Br": -1, "I": -1,
}  # fmt: skip

#: Name of the "element" that means an empty site in :func:`substitute`.
VACANCY = "vacancy"


def oxidation_state(symbol: str, states: Mapping[str, int] | None = None) -> int:
    """Formal oxidation state of ``symbol`` (``states`` first, then :data:`OXIDATION_STATES`).

    Raises:
        ValueError: unknown element symbol, or no oxidation state known for it.
    """
    if symbol == VACANCY:
        return 0
    if symbol not in atomic_numbers:
        raise ValueError(f"unknown element symbol {symbol!r}")
    table = {**OXIDATION_STATES, **dict(states or {})}
    if symbol not in table:
        raise ValueError(
            f"no formal oxidation state known for {symbol}; give it, e.g. oxidation_states: {{{symbol}: 2}}"
        )
    return int(table[symbol])


def formal_charge_of(
    atoms: ase.Atoms, states: Mapping[str, int] | None = None, pp_cutoff: float = 2.4
) -> int:
    """Net formal charge (e) of ``atoms``: Σ oxidation states, P lowered by one per P–P bond.

    Args:
        atoms: the structure.
        states: oxidation states that override :data:`OXIDATION_STATES`.
        pp_cutoff: P–P bond cutoff, Å (P₂S₆⁴⁻ has P(IV) with a 2.2 Å P–P bond).
    """
    sym = np.array(atoms.get_chemical_symbols())
    total = sum(oxidation_state(s, states) * int(np.sum(sym == s)) for s in sorted(set(sym)))
    n_p = int(np.sum(sym == "P"))
    if n_p >= 2 and (states is None or "P" not in states):
        p = np.flatnonzero(sym == "P")
        i = neighbor_list("i", atoms[p], pp_cutoff)
        total -= len(i) // 2
    return int(total)


def _largest_remainder(weights: Mapping[str, float], n: int, total: int) -> dict[str, int]:
    """Integer counts summing to ``total`` in proportion to ``weights`` (largest remainders)."""
    wsum = sum(weights.values())
    raw = {k: total * w / wsum for k, w in weights.items()} if wsum > 0 else dict.fromkeys(weights, 0.0)
    counts = {k: math.floor(v) for k, v in raw.items()}
    for k in sorted(raw, key=lambda k: (counts[k] - raw[k], k))[: total - sum(counts.values())]:
        counts[k] += 1
    return counts


def _pick_separated(
    atoms: ase.Atoms, candidates: np.ndarray, n: int, min_separation: float, rng: np.random.Generator
) -> np.ndarray:
    """``n`` of ``candidates`` in random order, no two closer than ``min_separation`` Å (greedy)."""
    order = rng.permutation(candidates)
    if min_separation <= 0 or n == 0:
        return np.sort(order[:n])
    i, j = neighbor_list("ij", atoms, min_separation)
    close: dict[int, set[int]] = {}
    for a, b in zip(i.tolist(), j.tolist(), strict=True):
        close.setdefault(a, set()).add(b)
    chosen: list[int] = []
    blocked: set[int] = set()
    for k in order.tolist():
        if k in blocked:
            continue
        chosen.append(k)
        blocked |= close.get(k, set())
        if len(chosen) == n:
            return np.sort(np.array(chosen, dtype=int))
    raise ValueError(
        f"cannot place {n} atoms on {len(candidates)} sites at least {min_separation} Å apart "
        f"(got {len(chosen)}); lower the minimum separation"
    )


def partial_sites(atoms: ase.Atoms, tol: float = 1e-3) -> dict[int, dict[str, float]]:
    """The site kinds of a CIF read by ASE whose occupancy is partial or mixed.

    Returns:
        ``{kind: {symbol: occupancy}}`` for kinds with total occupancy < 1 or several species
        (empty for ordered structures or files without occupancies).
    """
    occ = atoms.info.get("occupancy")
    if not occ or "spacegroup_kinds" not in atoms.arrays:
        return {}
    present = set(np.unique(atoms.arrays["spacegroup_kinds"]).tolist())
    out = {}
    for key, species in occ.items():
        kind = int(key)
        if kind not in present:
            continue
        total = sum(species.values())
        if total > 1 + tol:
            raise ValueError(f"site kind {kind} has total occupancy {total:.3g} > 1 ({species})")
        if total < 1 - tol or len(species) > 1:
            out[kind] = {s: float(v) for s, v in species.items()}
    return out


def describe_partial(atoms: ase.Atoms) -> str:
    """``'Li 0.5 (48 sites); S 0.75 + Cl 0.25 (4 sites)'`` for messages."""
    kinds = atoms.arrays.get("spacegroup_kinds")
    parts = []
    for kind, species in partial_sites(atoms).items():
        n = int(np.sum(kinds == kind)) if kinds is not None else 0
        parts.append(" + ".join(f"{s} {v:g}" for s, v in species.items()) + f" ({n} sites)")
    return "; ".join(parts)


def random_occupancy(atoms: ase.Atoms, seed: int = 0, min_separation: float = 1.5) -> ase.Atoms:
    """One ordered configuration of a partially occupied structure (seeded).

    For each partially occupied site kind with n sites and occupancies {s: o_s}: round(n·Σo)
    sites are kept — chosen at random, no two of that kind closer than ``min_separation`` Å
    (e.g. one Li of each 1.8 Å 48h doublet of an argyrodite) — and split among the species in
    proportion to o_s (largest remainders); the rest become vacancies. Apply the supercell
    first: more sites give occupancies closer to the nominal ones.

    Args:
        atoms: structure read from a CIF by ASE (``info["occupancy"]``, ``arrays["spacegroup_kinds"]``).
        seed: random seed.
        min_separation: smallest distance between two kept sites of one kind, Å (0: any).

    Returns:
        The ordered structure; ``info["occupancy_realised"]`` holds the realised fractions per
        kind and ``info["occupancy_seed"]`` the seed.
    """
    partial = partial_sites(atoms)
    if not partial:
        return atoms.copy()
    rng = np.random.default_rng(seed)
    kinds = atoms.arrays["spacegroup_kinds"]
    symbols = np.array(atoms.get_chemical_symbols(), dtype=object)
    keep = np.ones(len(atoms), dtype=bool)
    realised = {}
    for kind, species in sorted(partial.items()):
        sites = np.flatnonzero(kinds == kind)
        n_keep = round(len(sites) * sum(species.values()))
        kept = _pick_separated(atoms, sites, n_keep, min_separation, rng)
        keep[np.setdiff1d(sites, kept)] = False
        counts = _largest_remainder(species, len(sites), n_keep)
        labels = np.array([s for s, c in sorted(counts.items()) for _ in range(c)], dtype=object)
        symbols[kept] = labels[rng.permutation(len(labels))]
        realised[str(kind)] = {s: c / len(sites) for s, c in counts.items()}
    out = atoms.copy()
    out.set_chemical_symbols(list(symbols))
    out = out[keep]
    del out.info["occupancy"]
    out.info.update({"occupancy_realised": realised, "occupancy_seed": int(seed)})
    return out


def substitute(
    atoms: ase.Atoms,
    replace: Mapping[str, str],
    *,
    fraction: float | Mapping[str, float] | None = None,
    count: int | Mapping[str, int] | None = None,
    compensate: str = "none",
    seed: int = 0,
    exclude_bonded_to: tuple[str, ...] = (),
    bond_cutoff: float = 2.4,
    states: Mapping[str, int] | None = None,
    allow_charged: bool = False,
) -> ase.Atoms:
    """Replace atoms of one element by another (or by vacancies), at random (seeded).

    Example: Li₆PS₅Cl → Li₅.₅PS₄.₅Cl₁.₅ (Cl-rich argyrodite) is
    ``substitute(li6ps5cl_supercell, {"S": "Cl"}, fraction=0.5, exclude_bonded_to=("P",),
    compensate="li_vacancy")``: half of the free S²⁻ (those with no P within 2.4 Å) become Cl⁻
    and one random Li⁺ leaves per substitution.

    Args:
        atoms: the parent structure (charge neutral under ``states``).
        replace: ``{from: to}``; ``to`` is an element or ``"vacancy"``.
        fraction: share of the eligible ``from`` atoms replaced, per mapping or one for all
            (rounded to the nearest count); or give ``count``.
        count: number of ``from`` atoms replaced, per mapping or one for all.
        compensate: ``"none"`` or ``"li_vacancy"`` (remove random Li⁺ until the formal charge
            is zero; only a positive excess can be compensated this way).
        seed: random seed (which atoms are replaced, which Li leave).
        exclude_bonded_to: ``from`` atoms with one of these elements within ``bond_cutoff`` Å
            are not eligible (e.g. ``("P",)`` keeps the S of PS₄³⁻).
        bond_cutoff: Å.
        states: oxidation states overriding :data:`OXIDATION_STATES`.
        allow_charged: accept a result whose formal charge is not zero.

    Returns:
        The new structure, with ``info["substitution"]`` (counts) and ``info["formal_charge"]``.

    Raises:
        ValueError: unknown element, element absent, too few eligible atoms or Li, or a charged
            result (naming the net charge) without ``allow_charged``.
    """
    if not replace:
        raise ValueError("replace: give at least one {from: to} pair")
    if (fraction is None) == (count is None):
        raise ValueError("give either fraction or count")
    if compensate not in ("none", "li_vacancy"):
        raise ValueError(f"compensate must be 'none' or 'li_vacancy', got {compensate!r}")
    for a, b in replace.items():
        oxidation_state(a, states)
        oxidation_state(b, states)
        if a == b:
            raise ValueError(f"replace: {a} -> {b} replaces an element by itself")
    q0 = formal_charge_of(atoms, states)
    if q0 != 0 and not allow_charged:
        raise ValueError(
            f"the parent structure {atoms.get_chemical_formula()} has net formal charge {q0:+d} e"
        )
    rng = np.random.default_rng(seed)
    sym = np.array(atoms.get_chemical_symbols(), dtype=object)
    bonded = np.zeros(len(atoms), dtype=bool)
    if exclude_bonded_to:
        i, j = neighbor_list("ij", atoms, bond_cutoff)
        bonded[i[np.isin(sym[j].astype(str), list(exclude_bonded_to))]] = True
    new = sym.copy()
    done: dict[str, int] = {}
    for a, b in replace.items():
        eligible = np.flatnonzero((sym == a) & ~bonded)
        if not np.any(sym == a):
            raise ValueError(f"replace: no {a} in {atoms.get_chemical_formula()}")
        if count is not None:
            n = int(count[a] if isinstance(count, Mapping) else count)
        else:
            f = float(fraction[a] if isinstance(fraction, Mapping) else fraction)  # type: ignore[index]
            if not 0.0 <= f <= 1.0:
                raise ValueError(f"fraction for {a} must be in [0, 1], got {f}")
            n = round(f * len(eligible))
        if n > len(eligible):
            why = f" not bonded to {'/'.join(exclude_bonded_to)}" if exclude_bonded_to else ""
            raise ValueError(f"replace {a}: asked for {n} of {len(eligible)} eligible {a}{why}")
        picked = rng.choice(eligible, size=n, replace=False)
        new[picked] = b
        done[f"{a}->{b}"] = int(n)
    keep = new != VACANCY
    out = atoms.copy()
    out.set_chemical_symbols([s if s != VACANCY else "X" for s in new])
    out = out[keep]
    q = formal_charge_of(out, states)
    if compensate == "li_vacancy" and q != 0:
        li = np.flatnonzero(np.array(out.get_chemical_symbols()) == "Li")
        if q < 0:
            raise ValueError(
                f"net formal charge {q:+d} e after substitution: li_vacancy compensation removes Li+ "
                "and can only cancel a positive excess (Li interstitials are not supported)"
            )
        if q > len(li):
            raise ValueError(f"net formal charge {q:+d} e but only {len(li)} Li to remove")
        drop = rng.choice(li, size=q, replace=False)
        out = out[np.setdiff1d(np.arange(len(out)), drop)]
        done["Li->vacancy (compensation)"] = int(q)
        q = formal_charge_of(out, states)
    if q != 0 and not allow_charged:
        raise ValueError(
            f"substitution {', '.join(f'{k} x{v}' for k, v in done.items())} leaves net formal charge "
            f"{q:+d} e in {out.get_chemical_formula()}; use compensate: li_vacancy, pair it with a "
            "compensating substitution, or set allow_charged: true"
        )
    out.info.update({"substitution": done, "formal_charge": int(q), "substitution_seed": int(seed)})
    return out


def repeat_to_min_length(atoms: ase.Atoms, min_length: float) -> ase.Atoms:
    """The smallest repeat (n₁, n₂, n₃) whose perpendicular widths are all ≥ ``min_length`` Å."""
    if not min_length > 0:
        raise ValueError(f"min_length must be positive (Å), got {min_length}")
    widths = 1.0 / np.linalg.norm(np.linalg.inv(atoms.cell.array), axis=0)
    reps = tuple(max(1, math.ceil(min_length / w - 1e-9)) for w in widths)
    out = atoms.repeat(reps)
    out.info["repeat"] = reps
    return out
