"""MDSpec validation (errors name the field), building runs from specs, and the builders."""

from __future__ import annotations

from pathlib import Path

import ase.io
import numpy as np
import pytest
import torch
from ase.build import bulk as ase_bulk

from ssehpc import builders
from ssehpc.io.structure import StructureError
from ssehpc.spec import FccStructure, FileStructure, MDSpec, SpecError, prepare_run

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def base(**kw) -> dict:
    data = {
        "run_id": "t",
        "store": "out.zarr",
        "structure": {"builder": "fcc", "element": "Ar", "a": 5.26, "repeat": 2},
        "potential": {"name": "lj", "params": {"cutoff": 6.0}},
        "integrator": {"name": "nve"},
        "temperature_K": 50.0,
        "dt_fs": 2.0,
        "steps": 10,
    }
    data.update(kw)
    return data


def test_example_spec_is_valid():
    spec = MDSpec.from_yaml(EXAMPLES / "lj_argon.yaml")
    assert isinstance(spec.structure, FccStructure)
    assert spec.store == EXAMPLES / "lj_argon.zarr"
    assert spec.integrator.name == "langevin"
    assert spec.dt_fs == 2.0
    assert spec.torch_dtype == torch.float64


@pytest.mark.parametrize(
    ("dt", "message"),
    [(-1.0, "must be positive"), (0.0, "must be positive"), (50.0, "absurdly large")],
)
def test_bad_time_step_names_the_field(dt, message):
    with pytest.raises(SpecError, match=rf"dt_fs: .*{message}"):
        MDSpec.from_dict(base(dt_fs=dt))


def test_errors_name_fields():
    with pytest.raises(SpecError, match="temperature_K: required field is missing"):
        MDSpec.from_dict({k: v for k, v in base().items() if k != "temperature_K"})
    with pytest.raises(SpecError, match="tempreature: unknown field"):
        MDSpec.from_dict(base(tempreature=3))
    with pytest.raises(SpecError, match=r"structure\.a: Input should be greater than 0"):
        MDSpec.from_dict(base(structure={"builder": "fcc", "element": "Ar", "a": -1}))
    with pytest.raises(SpecError, match=r"structure\.element: unknown element symbol 'Xx'"):
        MDSpec.from_dict(base(structure={"builder": "fcc", "element": "Xx", "a": 5}))
    with pytest.raises(SpecError, match="structure: structure needs either 'file: PATH' or 'builder"):
        MDSpec.from_dict(base(structure={"element": "Ar"}))
    with pytest.raises(SpecError, match="structure: structure needs"):
        MDSpec.from_dict(base(structure={"builder": "diamond"}))
    with pytest.raises(SpecError, match="steps: Input should be greater than or equal to 0"):
        MDSpec.from_dict(base(steps=-5))
    with pytest.raises(SpecError, match=r"dtype: Input should be 'float32' or 'float64'"):
        MDSpec.from_dict(base(dtype="float16"))
    with pytest.raises(SpecError, match="run_id"):
        MDSpec.from_dict(base(run_id="a/b"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_requested_but_unavailable():
    with pytest.raises(SpecError, match="device: device 'cuda' requested but CUDA is not available"):
        MDSpec.from_dict(base(device="cuda"))


def test_yaml_paths_are_relative_to_the_spec(tmp_path):
    (tmp_path / "sub").mkdir()
    ase.io.write(tmp_path / "sub" / "ar.extxyz", builders.fcc("Ar", 5.26, 2))
    spec_file = tmp_path / "sub" / "spec.yaml"
    spec_file.write_text(
        "store: out.zarr\nstructure: {file: ar.extxyz}\npotential: {name: lj}\n"
        "temperature_K: 10\ndt_fs: 1\nsteps: 1\n"
    )
    spec = MDSpec.from_yaml(spec_file)
    assert isinstance(spec.structure, FileStructure)
    assert spec.structure.file == tmp_path / "sub" / "ar.extxyz"
    assert spec.store == tmp_path / "sub" / "out.zarr"


def test_yaml_errors(tmp_path):
    with pytest.raises(SpecError, match="does not exist"):
        MDSpec.from_yaml(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: 10\nstructure: [unclosed\n")
    with pytest.raises(SpecError, match=r"cannot parse spec .* at line"):
        MDSpec.from_yaml(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(SpecError, match="must be a mapping"):
        MDSpec.from_yaml(listy)


def test_prepare_run_species_the_potential_lacks(tmp_path):
    data = base(
        store=str(tmp_path / "s.zarr"),
        structure={"builder": "bulk", "name": "NaCl", "crystalstructure": "rocksalt", "a": 5.64},
        potential={"name": "lj", "params": {"pairs": {"Ar-Ar": [0.0104, 3.405]}, "cutoff": 6.0}},
    )
    with pytest.raises(SpecError, match=r"no parameters for Na \(Z=11\), Cl \(Z=17\); it knows Ar"):
        prepare_run(MDSpec.from_dict(data))
    assert not (tmp_path / "s.zarr").exists()  # nothing written before validation passed


def test_prepare_run_bad_potential_and_integrator(tmp_path):
    with pytest.raises(SpecError, match="potential: unknown potential 'morse'"):
        prepare_run(MDSpec.from_dict(base(store=str(tmp_path / "s.zarr"), potential={"name": "morse"})))
    with pytest.raises(SpecError, match=r"integrator: .*nve"):
        prepare_run(
            MDSpec.from_dict(
                base(store=str(tmp_path / "s.zarr"), integrator={"name": "nve", "params": {"tau": 1}})
            )
        )
    assert not (tmp_path / "s.zarr").exists()


def test_prepare_run_structure_problems(tmp_path):
    atoms = builders.fcc("Ar", 5.26, 2)
    atoms.positions[3] = atoms.positions[2] + [0.3, 0, 0]
    ase.io.write(tmp_path / "overlap.extxyz", atoms)
    spec = MDSpec.from_dict(
        base(store=str(tmp_path / "s.zarr"), structure={"file": "overlap.extxyz"}), tmp_path
    )
    with pytest.raises(StructureError, match=r"atoms 2 and 3 are 0\.300 Å apart"):
        prepare_run(spec)
    spec = MDSpec.from_dict(base(structure={"file": "missing.cif"}), tmp_path)
    with pytest.raises(StructureError, match=r"missing\.cif' does not exist"):
        prepare_run(spec)


def test_prepare_run_initial_velocities_and_store(tmp_path):
    spec = MDSpec.from_dict(base(store=str(tmp_path / "s.zarr"), temperature_K=123.0, seed=5))
    run = prepare_run(spec)
    sim = run.simulation
    assert float(sim.thermo().temperature_K[0]) == pytest.approx(123.0)
    assert sim.state.seed == 5
    attrs = run.store.attrs
    assert attrs["ensemble"] == "nve"
    assert attrs["dt_fs"] == 2.0
    assert attrs["temperature_K"] == 123.0
    assert attrs["seed"] == 5
    assert attrs["status"] == "created"
    assert attrs["composition"] == "Ar32"
    assert MDSpec.from_dict(attrs["spec"]) == spec
    # same seed, same velocities
    again = prepare_run(spec, overwrite=True)
    assert torch.equal(again.simulation.state.momenta, sim.state.momenta)


def test_thermostat_gets_the_spec_temperature(tmp_path):
    spec = MDSpec.from_dict(
        base(store=str(tmp_path / "s.zarr"), integrator={"name": "langevin"}, temperature_K=77.0)
    )
    integ = prepare_run(spec).simulation.integrator
    assert integ.temperature == 77.0


# ---------------------------------------------------------------------- builders
def test_fcc_builder():
    atoms = builders.fcc("Ar", 5.26, (2, 3, 4))
    assert len(atoms) == 4 * 24
    np.testing.assert_allclose(np.diag(atoms.cell.array), [10.52, 15.78, 21.04])


def test_bulk_builders():
    nacl = builders.bulk("NaCl", "rocksalt", 5.64, 2)
    assert nacl.get_chemical_formula() == "Cl32Na32"
    li2o = builders.bulk("OLi2", "fluorite", 4.61)
    assert li2o.get_chemical_formula() == "Li8O4"
    assert sorted(li2o.get_all_distances(mic=True)[li2o.numbers == 8][:, li2o.numbers == 3].min(axis=1)) == (
        pytest.approx([4.61 * np.sqrt(3) / 4] * 4)
    )
    with pytest.raises(ValueError, match="lattice constant"):
        builders.bulk("NaCl", "rocksalt", -1.0)
    with pytest.raises(ValueError, match="cannot build"):
        builders.bulk("NaCl", "nonsense", 5.0)


def test_supercell_to_target():
    assert len(builders.fcc("Ar", 5.26, target_atoms=32000)) == 32000
    prim = ase_bulk("Cu", "fcc", a=3.6)  # 1-atom primitive cell, skewed
    cell = builders.supercell(prim, 1000)
    assert 700 <= len(cell) <= 1400
    with pytest.raises(ValueError, match="repeat"):
        builders.fcc("Ar", 5.26, (1, 2))


def test_min_distance_is_configurable(tmp_path):
    atoms = builders.fcc("Ar", 5.26, 2)
    atoms.positions[3] = atoms.positions[2] + [0.4, 0, 0]
    ase.io.write(tmp_path / "close.extxyz", atoms)
    data = base(store=str(tmp_path / "s.zarr"), structure={"file": "close.extxyz"}, steps=0)
    with pytest.raises(StructureError, match=r"closer than 0\.5 Å"):
        prepare_run(MDSpec.from_dict(data, tmp_path))
    spec = MDSpec.from_dict({**data, "min_distance": 0.3, "temperature_K": 0.0}, tmp_path)
    assert prepare_run(spec).simulation.state.n_atoms == 32
