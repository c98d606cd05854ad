"""Campaign spec validation (errors name the field, before any compute) and expansion."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ssehpc.campaign import CampaignSpec, derive_seed, expand
from ssehpc.campaign.spec import LocalResources, SlurmResources
from ssehpc.spec import MDSpec, SpecError
from tests.campaign.helpers import lj_campaign

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_example_campaign_is_valid():
    spec = CampaignSpec.from_yaml(EXAMPLES / "campaign_lj.yaml")
    plan = expand(spec)
    assert spec.store == EXAMPLES / "lj_campaign.zarr"
    assert len(plan.chains) == 3 * 3 * 2
    assert len(plan.runs) == 2 * len(plan.chains)
    assert plan.runs[0].steps == 400  # 2 ps at 5 fs


def test_expansion_grid_stages_seeds(tmp_path):
    spec = CampaignSpec.from_dict(
        lj_campaign(
            tmp_path / "c.zarr",
            systems=[
                {
                    "id": "glass",
                    "structure": {"builder": "glass", "x": 0.75, "atoms": 40},
                    "grid": {"x": [0.67, 0.70, 0.75]},
                }
            ],
            temperatures_K=[500, 712.5],
            replicas=2,
            stages=[
                {"name": "melt", "ps": 0.1, "temperature_K": 1000, "integrator": {"name": "langevin"}},
                {"name": "prod", "steps": 30, "velocities": "maxwell_boltzmann"},
            ],
        )
    )
    plan = expand(spec)
    assert [c.chain_id for c in plan.chains[:3]] == [
        "glass_x0.67_T500_r0",
        "glass_x0.67_T500_r1",
        "glass_x0.67_T712.5_r0",
    ]
    assert len(plan.runs) == 3 * 2 * 2 * 2
    melt, prod = plan.chains[0].runs
    assert melt.run_id == "glass_x0.67_T500_r0_melt"
    assert melt.steps == 20
    assert melt.md["temperature_K"] == 1000
    assert prod.md["temperature_K"] == 500
    assert melt.md["structure"]["x"] == 0.67
    assert prod.md["structure"] == {
        "from_run": melt.run_id,
        "store": None,
        "velocities": "maxwell_boltzmann",
        "require_completed": True,
    }
    MDSpec.from_dict(prod.md)  # a valid run spec
    # Seeds: distinct per run, reproducible, independent of the grid's other entries.
    seeds = [r.md["seed"] for r in plan.runs]
    assert len(set(seeds)) == len(seeds)
    assert melt.md["seed"] == derive_seed(7, "glass_x0.67", "500", 0, "melt")
    again = expand(spec.model_copy(update={"temperatures_K": [712.5]}))
    assert again.chains[0].runs[0].md["seed"] == plan.chains[2].runs[0].md["seed"]


def test_yaml_paths_are_relative_to_the_spec(tmp_path):
    (tmp_path / "sub").mkdir()
    data = lj_campaign(Path("out.zarr"))
    data["systems"] = [{"id": "f", "structure": {"file": "ar.xyz"}}]
    data["resources"] = {"kind": "slurm", "profile": "my.yaml"}
    path = tmp_path / "sub" / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    spec = CampaignSpec.from_yaml(path)
    assert spec.store == tmp_path / "sub" / "out.zarr"
    assert spec.systems[0].structure.file == tmp_path / "sub" / "ar.xyz"
    assert isinstance(spec.resources, SlurmResources)
    assert spec.resources.profile == str(tmp_path / "sub" / "my.yaml")
    assert isinstance(CampaignSpec.from_dict(lj_campaign(Path("x"), resources={})).resources, LocalResources)


def _stage(**kw):
    return [{"name": "md", "steps": 10, **kw}]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"name": None}, r"^name: Input should be a valid string"),
        ({"replicas": 0}, r"^replicas: Input should be greater than or equal to 1"),
        ({"temperatures_K": []}, r"^temperatures_K: List should have at least 1 item"),
        ({"temperatures_K": [300, 300.0]}, r"^temperatures_K: duplicate temperatures"),
        ({"temperatures_K": [-5]}, r"^temperatures_K: temperatures must be finite and non-negative"),
        ({"dt_fs": 50}, r"^dt_fs: Input should be less than or equal to 20"),
        ({"tempratures_K": [1]}, r"^tempratures_K: unknown field \(typo\?\)"),
        ({"stages": _stage(steps=None)}, r"^stages\.0: give the stage length as either 'steps' or 'ps'"),
        ({"stages": _stage(ps=1.0)}, r"^stages\.0: give the stage length as either 'steps' or 'ps'"),
        (
            {"stages": _stage(steps=None, ps=0.001)},
            r"^stages\.0\.ps: 0\.001 ps is shorter than one time step",
        ),
        ({"stages": [{"name": "a_b", "steps": 1}]}, r"^stages\.0\.name: a stage name must start"),
        (
            {"stages": [{"name": "a", "steps": 1}, {"name": "a", "steps": 2}]},
            r"^stages: duplicate stage names",
        ),
        ({"stages": _stage(write_interval=-1)}, r"^stages\.0\.write_interval: Input should be greater"),
        (
            {"systems": [{"id": "x", "structure": {"builder": "glass", "x": 0.3, "atoms": 20}}]},
            r"^systems\.0\.structure\.x: Input should be greater than or equal to 0\.5",
        ),
        (
            {
                "systems": [
                    {"id": "x", "structure": {"builder": "fcc", "element": "Ar", "a": 5}, "grid": {"b": [1]}}
                ]
            },
            r"^systems\.0\.grid\.b: not a parameter of this structure source",
        ),
        (
            {
                "systems": [
                    {
                        "id": "x",
                        "structure": {"builder": "fcc", "element": "Ar", "a": 5},
                        "grid": {"a": [5, -1]},
                    }
                ]
            },
            r"^systems\.0: grid \{'a': -1\}: structure\.a: Input should be greater than 0",
        ),
        (
            {"systems": [{"id": "x", "structure": {"builder": "prototype", "name": "Li9PS"}}]},
            r"^systems\.0\.structure\.name: unknown Li-P-S prototype 'Li9PS'",
        ),
        (
            {"systems": [{"id": "x", "structure": {"element": "Ar"}}]},
            r"^systems\.0\.structure: structure needs",
        ),
        (
            {"systems": [{"id": "a", "structure": {"builder": "fcc", "element": "Ar", "a": 5}}] * 2},
            r"^systems: duplicate system ids after grid expansion: a",
        ),
        ({"resources": {"kind": "cloud"}}, r"^resources: resources\.kind must be 'local' or 'slurm'"),
        ({"resources": {"kind": "local", "n_workers": 0}}, r"^resources\.n_workers: Input should be greater"),
        ({"resources": {"kind": "slurm"}}, r"^resources\.profile: required field is missing"),
        ({"potential": {"params": {}}}, r"^potential\.name: required field is missing"),
    ],
)
def test_malformed_specs_name_the_field(tmp_path, overrides, message):
    data = lj_campaign(tmp_path / "c.zarr")
    data.update(overrides)
    with pytest.raises(SpecError, match=message) as info:
        CampaignSpec.from_dict(data)
    assert "\n" not in str(info.value)


def test_yaml_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nstore: [unclosed\n")
    with pytest.raises(SpecError, match=r"cannot parse campaign spec .*bad\.yaml.* at line"):
        CampaignSpec.from_yaml(bad)
    with pytest.raises(SpecError, match="does not exist"):
        CampaignSpec.from_yaml(tmp_path / "missing.yaml")
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(yaml.safe_dump({**lj_campaign(Path("s.zarr")), "replicas": "many"}))
    with pytest.raises(SpecError, match=r"wrong\.yaml: replicas: Input should be a valid integer"):
        CampaignSpec.from_yaml(wrong)
