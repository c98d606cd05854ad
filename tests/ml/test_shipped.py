"""The shipped Li–P–S committee through the potential registry and the run spec."""

from __future__ import annotations

import pytest
import torch

from ssehpc.ml import Committee, MomentPotential, resolve_model
from ssehpc.potentials import make_potential


def test_shipped_committee_by_name() -> None:
    pot = make_potential("mlff", model="lips-v0")
    assert isinstance(pot, Committee)
    assert pot.n_members == 4
    assert pot.cutoff == pytest.approx(5.0)
    assert sorted(pot.spec.species) == [3, 15, 16]
    assert pot.metadata["teacher"].startswith("CHGNet")
    # the default name is the newest committee, with its ZBL core below 1.6 Å
    assert resolve_model("lips") == resolve_model("lips-v3")
    assert make_potential("mlff", model="lips").spec.core_outer == pytest.approx(1.6)
    single = make_potential("mlff", model="lips-v0", members=[1], dtype="float64")
    assert type(single) is MomentPotential
    assert single.dtype == torch.float64
    pair = make_potential("mlff", model="lips-v0", members=[0, 2])
    assert isinstance(pair, Committee)
    assert pair.n_members == 2


def test_unknown_model_names_the_choices(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="lips-v0"):
        resolve_model("lips-v9")
    with pytest.raises(ValueError, match="dtype"):
        make_potential("mlff", model="lips-v0", dtype="float16")
    with pytest.raises(ValueError, match="bad parameters"):
        make_potential("mlff", model="lips-v0", nonsense=1)


def test_spec_with_an_element_the_model_does_not_know(tmp_path) -> None:
    """Na in a Li–P–S model: a one-line error before anything runs or is written."""
    import ase.io
    from ase import Atoms

    from ssehpc.spec import MDSpec, SpecError, prepare_run

    atoms = Atoms(
        "Li2NaS2",
        scaled_positions=[[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5], [0.25] * 3],
        cell=[6.0, 6.0, 6.0],
        pbc=True,
    )
    ase.io.write(tmp_path / "bad.extxyz", atoms)
    spec = MDSpec.from_dict(
        {
            "structure": {"file": "bad.extxyz"},
            "potential": {"name": "mlff", "params": {"model": "lips-v0"}},
            "temperature_K": 300,
            "dt_fs": 1.0,
            "steps": 10,
            "store": "out.zarr",
        },
        base_dir=tmp_path,
    )
    with pytest.raises(SpecError, match="Na"):
        prepare_run(spec)
    assert not (tmp_path / "out.zarr").exists()


def test_spec_with_a_missing_model_file(tmp_path) -> None:
    from ssehpc.spec import MDSpec, SpecError, build_potential

    spec = MDSpec.from_dict(
        {
            "structure": {"builder": "fcc", "element": "Ar", "a": 5.26, "repeat": 2},
            "potential": {"name": "mlff", "params": {"model": "missing.pt"}},
            "temperature_K": 300,
            "dt_fs": 1.0,
            "steps": 10,
        },
        base_dir=tmp_path,
    )
    with pytest.raises(SpecError, match=r"missing\.pt"):
        build_potential(spec)
