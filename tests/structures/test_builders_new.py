"""Li6PS5Cl, CIF reading (round trip, partial occupancy, malformed), supercells to a length,
substitution / doping / vacancies with charge balance, and composition grids in campaigns."""

from __future__ import annotations

import ase.io
import numpy as np
import pytest

from ssehpc.campaign.spec import CampaignSpec
from ssehpc.io.structure import StructureError
from ssehpc.spec import MDSpec, SpecError, build_structure, prepare_run
from ssehpc.structures import (
    ARGYRODITES,
    density,
    formal_charge_of,
    li6ps5cl,
    min_distance,
    prototype,
    ps_bond_lengths,
    repeat_to_min_length,
    substitute,
    thiophosphate_units,
)

LJ = {"name": "lj", "params": {"epsilon": 0.01, "sigma": 3.0, "cutoff": 5.0}}

#: Li6PS5Cl in F-43m with the 48h Li half occupied (as a CIF would give it).
ARGYRODITE_CIF = """data_Li6PS5Cl
_cell_length_a 9.859
_cell_length_b 9.859
_cell_length_c 9.859
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_symmetry_space_group_name_H-M 'F -4 3 m'
_symmetry_Int_Tables_number 216
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_occupancy
Li1 Li 0.3148 0.3148 0.982 0.5
P1 P 0.5 0.5 0.5 1.0
S1 S 0.61947 0.61947 0.61947 1.0
S2 S 0.75 0.75 0.75 1.0
Cl1 Cl 0.0 0.0 0.0 1.0
"""

#: Antifluorite Li2S with a mixed S/Cl anion site (charged unless compensated).
MIXED_CIF = ARGYRODITE_CIF.split("loop_")[0].replace("9.859", "5.708").replace("216", "225") + (
    "loop_\n_atom_site_label\n_atom_site_type_symbol\n_atom_site_fract_x\n_atom_site_fract_y\n"
    "_atom_site_fract_z\n_atom_site_occupancy\nS1 S 0 0 0 0.75\nCl1 Cl 0 0 0 0.25\nLi1 Li 0.25 0.25 0.25 1.0\n"
).replace("'F -4 3 m'", "'F m -3 m'")


def spec(structure: dict, tmp_path=None, **kw) -> MDSpec:
    data = {"structure": structure, "potential": LJ, "temperature_K": 300.0, "dt_fs": 1.0, "steps": 0, **kw}
    return MDSpec.from_dict(data, base_dir=tmp_path)


# ---------------------------------------------------------------------- Li6PS5Cl
def test_li6ps5cl_composition_charge_and_geometry():
    atoms = li6ps5cl(seed=0)
    assert atoms.get_chemical_formula() == "Cl4Li24P4S20"  # Li24 P4 S20 Cl4 per conventional cell
    assert formal_charge_of(atoms) == 0
    assert np.allclose(atoms.cell.cellpar(), [9.859, 9.859, 9.859, 90, 90, 90])
    ps = ps_bond_lengths(atoms)
    assert len(ps) == 16
    assert np.allclose(ps, 2.04, atol=0.01)
    assert dict(thiophosphate_units(atoms)) == {"PS4": 4, "S": 4}  # PS4 + free S2-
    # one Li per 1.8 Å 48h doublet: no Li-Li pair closer than the 2.33 Å intracage distance
    assert min_distance(atoms, ("Li", "Li")) > 2.3
    assert min_distance(atoms, ("Li", "S")) > 2.2
    assert min_distance(atoms, ("Li", "Cl")) > 2.5
    assert density(atoms) == pytest.approx(ARGYRODITES["Li6PS5Cl"].density)
    assert "Deiseroth" in atoms.info["structure_source"]


def test_li6ps5cl_random_li_is_seeded():
    a, b, c = li6ps5cl(seed=1), li6ps5cl(seed=1), li6ps5cl(seed=2)
    assert np.array_equal(a.positions, b.positions)
    assert not np.array_equal(a.positions, c.positions)
    assert prototype("Li6PS5Cl", seed=2).get_chemical_formula() == c.get_chemical_formula()


def test_li6ps5cl_in_a_spec_with_min_length_and_the_ml_model_refuses_cl(tmp_path):
    atoms = build_structure(spec({"builder": "prototype", "name": "Li6PS5Cl", "min_length": 15.0, "seed": 3}))
    assert atoms.info["repeat"] == (2, 2, 2)
    assert len(atoms) == 8 * 52
    mlff = spec(
        {"builder": "prototype", "name": "Li6PS5Cl"},
        potential={"name": "mlff", "params": {"model": "lips"}},
        store=str(tmp_path / "s.zarr"),
    )
    with pytest.raises(SpecError, match=r"no parameters for Cl \(Z=17\); it knows Li, P, S"):
        prepare_run(mlff)
    assert not (tmp_path / "s.zarr").exists()


def test_repeat_to_min_length_is_smallest():
    beta = prototype("beta-Li3PS4")  # 12.8 x 8.2 x 6.1 Å
    big = repeat_to_min_length(beta, 16.0)
    assert big.info["repeat"] == (2, 2, 3)
    widths = 1 / np.linalg.norm(np.linalg.inv(big.cell.array), axis=0)
    assert np.all(widths >= 16.0)
    assert np.all(widths / np.array(big.info["repeat"]) * (np.array(big.info["repeat"]) - 1) < 16.0)


# ---------------------------------------------------------------------- CIF
def test_cif_round_trip_through_the_spec(tmp_path):
    beta = prototype("beta-Li3PS4")
    ase.io.write(tmp_path / "beta.cif", beta)
    atoms = build_structure(spec({"file": "beta.cif"}, tmp_path))
    assert atoms.get_chemical_formula() == beta.get_chemical_formula()
    assert np.allclose(atoms.cell.array, beta.cell.array, atol=1e-4)
    d = atoms.get_scaled_positions()[:, None] - beta.get_scaled_positions()[None]
    d -= np.round(d)
    assert np.abs(d).sum(-1).min(axis=1).max() < 1e-4  # every atom found again
    sup = build_structure(spec({"file": "beta.cif", "target_atoms": 250}, tmp_path))
    assert len(sup) == 256
    assert formal_charge_of(sup) == 0
    # a relative CIF inside a substitution's base is found relative to the spec too
    doped = {"builder": "substitute", "base": {"file": "beta.cif"}, "replace": {"Li": "Na"}, "count": 3}
    assert build_structure(spec(doped, tmp_path)).get_chemical_formula() == "Li9Na3P4S16"


def test_cif_with_partial_occupancy_refused_or_ordered(tmp_path):
    (tmp_path / "argy.cif").write_text(ARGYRODITE_CIF)
    with pytest.raises(
        SpecError, match=r"partially occupied sites \(Li 0.5 \(48 sites\)\); set occupancy: random"
    ):
        build_structure(spec({"file": "argy.cif"}, tmp_path))
    src = {"file": "argy.cif", "occupancy": "random", "seed": 4, "min_separation": 2.0}
    atoms = build_structure(spec(src, tmp_path))
    assert atoms.get_chemical_formula() == "Cl4Li24P4S20"
    assert min_distance(atoms, ("Li", "Li")) > 2.3
    again = build_structure(spec(src, tmp_path))
    assert np.array_equal(atoms.positions, again.positions)  # seeded
    big = build_structure(spec({**src, "repeat": 2}, tmp_path))
    assert big.get_chemical_formula() == "Cl32Li192P32S160"


def test_cif_mixed_site_charge_is_checked(tmp_path):
    (tmp_path / "mixed.cif").write_text(MIXED_CIF)
    src = {"file": "mixed.cif", "occupancy": "random", "repeat": 2}
    with pytest.raises(SpecError, match=r"Cl8Li64S24 has net formal charge \+8 e"):
        build_structure(spec(src, tmp_path))
    atoms = build_structure(spec({**src, "allow_charged": True}, tmp_path))
    assert atoms.get_chemical_formula() == "Cl8Li64S24"  # 1/4 of the 32 anion sites are Cl


def test_malformed_cif_and_bad_sources(tmp_path):
    (tmp_path / "bad.cif").write_text(
        "data_x\n_cell_length_a 5.0\nloop_\n_atom_site_label\nthis is not a cif\n"
    )
    with pytest.raises(StructureError, match=r"cannot parse structure file '.*bad.cif'"):
        build_structure(spec({"file": "bad.cif"}, tmp_path))
    (tmp_path / "over.cif").write_text(ARGYRODITE_CIF.replace("0.982 0.5", "0.982 1.2"))
    with pytest.raises(SpecError, match=r"over.cif': site kind 0 has total occupancy 1.2 > 1"):
        build_structure(spec({"file": "over.cif"}, tmp_path))
    with pytest.raises(StructureError, match="does not exist"):
        build_structure(spec({"file": "missing.cif"}, tmp_path))
    with pytest.raises(SpecError, match="give only one of repeat, target_atoms, min_length"):
        spec({"file": "x.cif", "repeat": 2, "min_length": 10.0}, tmp_path)
    with pytest.raises(SpecError, match=r"structure.occupancy: Input should be 'error' or 'random'"):
        spec({"file": "x.cif", "occupancy": "guess"}, tmp_path)


# ---------------------------------------------------------------------- substitution
CL_RICH = {
    "builder": "substitute",
    "base": {"builder": "prototype", "name": "Li6PS5Cl"},
    "replace": {"S": "Cl"},
    "exclude_bonded_to": ["P"],
    "fraction": 0.5,
    "compensate": "li_vacancy",
    "seed": 1,
}


def test_cl_rich_argyrodite_is_balanced_and_seeded():
    atoms = build_structure(spec(CL_RICH))
    assert atoms.get_chemical_formula() == "Cl6Li22P4S18"  # Li5.5 P S4.5 Cl1.5
    assert formal_charge_of(atoms) == 0
    assert dict(thiophosphate_units(atoms)) == {"PS4": 4, "S": 2}  # the PS4 sulfur is kept
    assert atoms.info["substitution"] == {"S->Cl": 2, "Li->vacancy (compensation)": 2}
    assert np.array_equal(atoms.positions, build_structure(spec(CL_RICH)).positions)
    other = build_structure(spec({**CL_RICH, "seed": 2, "base": {**CL_RICH["base"], "repeat": 2}}))
    assert other.get_chemical_formula() == "Cl48Li176P32S144"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"compensate": "none"},
            r"structure: replace: S\(-2\) -> Cl: \+1 e each; .*positive net formal charge",
        ),
        ({"replace": {"S": "Xx"}}, r"structure: replace: unknown element symbol 'Xx'"),
        ({"replace": {"S": "Pm"}}, r"no formal oxidation state known for Pm; give it"),
        ({"replace": {"P": "Ge"}, "exclude_bonded_to": []}, r"-1 e each; .*negative net formal charge"),
        ({"fraction": 1.5}, r"structure: fraction: 1.5 is outside \[0, 1\]"),
        ({"count": 2}, r"give either fraction or count"),
        (
            {"base": {"builder": "prototype", "name": "Li9"}},
            r"structure.base.name: unknown Li-P-S prototype 'Li9'",
        ),
    ],
)
def test_substitution_errors_when_the_spec_is_read(change, message):
    with pytest.raises(SpecError, match=message):
        spec({**CL_RICH, **change})


def test_substitution_charge_errors_at_build_time():
    schottky = {
        "builder": "substitute",
        "base": {"builder": "prototype", "name": "Li2S", "repeat": 2},
        "replace": {"Li": "vacancy", "S": "vacancy"},
        "count": {"Li": 2, "S": 1},
    }
    atoms = build_structure(spec(schottky))
    assert atoms.get_chemical_formula() == "Li62S31"
    assert formal_charge_of(atoms) == 0
    bad = {**schottky, "count": {"Li": 2, "S": 2}}
    with pytest.raises(SpecError, match=r"leaves net formal charge \+2 e in Li62S30"):
        build_structure(spec(bad))
    charged = build_structure(spec({**bad, "allow_charged": True}))
    assert charged.info["formal_charge"] == 2
    with pytest.raises(SpecError, match=r"asked for 5 of 4 eligible S not bonded to P"):
        build_structure(spec({**CL_RICH, "fraction": None, "count": 5}))


def test_substitute_function_keeps_a_neutral_parent_neutral():
    li2s = prototype("Li2S").repeat(2)
    out = substitute(li2s, {"S": "Cl"}, count=3, compensate="li_vacancy", seed=0)
    assert out.get_chemical_formula() == "Cl3Li61S29"
    with pytest.raises(ValueError, match="parent structure"):
        substitute(out[:-1], {"S": "Cl"}, count=1)


# ---------------------------------------------------------------------- composition grids
def campaign(systems: list[dict]) -> dict:
    return {
        "name": "scan",
        "store": "scan.zarr",
        "systems": systems,
        "temperatures_K": [600.0],
        "potential": LJ,
        "dt_fs": 2.0,
        "stages": [{"name": "prod", "steps": 10}],
    }


def test_dopant_fraction_and_glass_grids_expand_and_build():
    spec_ = CampaignSpec.from_dict(
        campaign(
            [
                {"id": "argy", "structure": CL_RICH, "grid": {"fraction": [0.0, 0.25, 0.5]}},
                {
                    "id": "glass",
                    "structure": {"builder": "glass", "x": 0.75, "atoms": 60},
                    "grid": {"x": [0.67, 0.7, 0.75]},
                },
                {"id": "seeds", "structure": CL_RICH, "grid": {"base.seed": [1, 2]}},
            ]
        )
    )
    points = [p for s in spec_.systems for p in s.expand()]
    assert [sid for sid, _, _ in points] == [
        "argy_fraction0", "argy_fraction0.25", "argy_fraction0.5",
        "glass_x0.67", "glass_x0.7", "glass_x0.75", "seeds_seed1", "seeds_seed2",
    ]  # fmt: skip
    formulas = [
        build_structure(spec(s.model_dump(exclude_unset=True))).get_chemical_formula()
        for _, s, _ in points[:3]
    ]
    assert formulas == ["Cl4Li24P4S20", "Cl5Li23P4S19", "Cl6Li22P4S18"]
    assert points[7][1].base.seed == 2


@pytest.mark.parametrize(
    ("system", "message"),
    [
        ({"id": "a", "structure": CL_RICH, "grid": {}}, r"systems.0.grid: empty"),
        (
            {"id": "a", "structure": CL_RICH, "grid": {"fraction": []}},
            r"systems.0.grid.fraction: needs at least one value",
        ),
        (
            {"id": "a", "structure": CL_RICH, "grid": {"dopant": [0.1]}},
            r"systems.0.grid.dopant: not a parameter",
        ),
        (
            {"id": "a", "structure": CL_RICH, "grid": {"base.x": [0.1]}},
            r"grid.base.x: not a parameter .*base.name",
        ),
        (
            {"id": "a", "structure": {**CL_RICH, "compensate": "none"}, "grid": {"fraction": [0.0, 0.25]}},
            r"systems.0.structure.replace: S\(-2\) -> Cl: \+1 e each",
        ),
        (
            {
                "id": "a",
                "structure": {**CL_RICH, "fraction": 0.0, "compensate": "none"},
                "grid": {"fraction": [0.0, 0.25]},
            },
            r"grid \{'fraction': 0.25\}: structure.replace: .*positive net formal charge",
        ),
        (
            {"id": "a", "structure": {**CL_RICH, "replace": {"S": "Qq"}}},
            r"structure.replace: unknown element symbol 'Qq'",
        ),
        (
            {"id": "a", "structure": CL_RICH, "grid": {"base.name": ["Li6PS5Cl", "Li6PS5Q"]}},
            r"grid \{'base.name': 'Li6PS5Q'\}: structure.base.name: unknown Li-P-S prototype",
        ),
        (
            {"id": "g", "structure": {"builder": "glass", "x": 0.75, "atoms": 60}, "grid": {"x": [0.7, 0.4]}},
            r"grid \{'x': 0.4\}: structure.x: Input should be greater than or equal to 0.5",
        ),
    ],
)
def test_composition_grid_errors_before_compute(system, message):
    with pytest.raises(SpecError, match=message):
        CampaignSpec.from_dict(campaign([system]))


def test_check_systems_names_bad_cif_and_charged_point_before_compute(tmp_path):
    """The campaign's pre-compute structure check (one build per system) gives one-line reasons."""
    from ssehpc.campaign.controller import check_systems
    from ssehpc.campaign.plan import expand

    (tmp_path / "bad.cif").write_text("data_x\nloop_\n_atom_site_label\nnot a cif\n")
    (tmp_path / "argy.cif").write_text(ARGYRODITE_CIF)
    schottky = {
        "builder": "substitute",
        "base": {"builder": "prototype", "name": "Li2S", "repeat": 2},
        "replace": {"Li": "vacancy", "S": "vacancy"},
        "count": {"Li": 2, "S": 1},
    }
    data = campaign(
        [
            {"id": "bad", "structure": {"file": "bad.cif"}},
            {"id": "partial", "structure": {"file": "argy.cif"}},
            {"id": "sch", "structure": schottky},
            {"id": "sch2", "structure": {**schottky, "count": {"Li": 2, "S": 2}}},
        ]
    )
    plan = expand(CampaignSpec.from_dict(data, base_dir=tmp_path))
    errors = check_systems(plan, {"bad", "partial", "sch", "sch2"})
    assert set(errors) == {"bad", "partial", "sch2"}
    assert "cannot parse structure file" in errors["bad"]
    assert "partially occupied sites (Li 0.5 (48 sites))" in errors["partial"]
    assert "net formal charge +2 e in Li62S30" in errors["sch2"]
