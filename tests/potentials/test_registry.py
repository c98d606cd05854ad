"""make_potential: names, YAML-shaped parameters, presets and errors."""

from __future__ import annotations

import pytest
import yaml

from ssehpc.potentials import (
    POTENTIALS,
    BuckinghamDSF,
    LennardJones,
    SumPotential,
    make_potential,
    tosi_fumi_nacl,
)
from tests.potentials.conformance import assert_close, evaluate
from tests.potentials.structures import argon, nacl

SPEC = """
potential:
  name: sum
  terms:
    - name: buckingham_dsf
      preset: NaCl-TosiFumi
      alpha: 0.2
      cutoff: 9.0
    - name: lj
      cutoff: 6.0
      pairs:
        Na-Na: [0.002, 2.5]
        Na-Cl: [0.004, 2.9]
        Cl-Cl: [0.006, 3.4]
"""


def test_names() -> None:
    assert set(POTENTIALS) == {"lj", "buckingham_dsf", "sum", "mlff", "chgnet"}


def test_lj_from_plain_and_pair_parameters() -> None:
    state = argon(2, jitter=0.1, seed=1)
    ref = evaluate(LennardJones(0.0104, 3.405, 8.5), state).energy
    plain = make_potential("lj", epsilon=0.0104, sigma=3.405, cutoff=8.5)
    by_pair = make_potential("LJ", pairs={"Ar-Ar": [0.0104, 3.405]}, cutoff=8.5)
    assert isinstance(plain, LennardJones)
    assert by_pair.species == (18,)
    assert_close(evaluate(plain, state).energy, ref, 0.0, "lj plain")
    assert_close(evaluate(by_pair, state).energy, ref, 0.0, "lj pairs")


def test_yaml_spec_builds_the_same_potential_as_python() -> None:
    params = yaml.safe_load(SPEC)["potential"]
    pot = make_potential(**params)
    assert isinstance(pot, SumPotential)
    assert isinstance(pot.terms[0], BuckinghamDSF)
    direct = SumPotential(
        [
            tosi_fumi_nacl(alpha=0.2, cutoff=9.0),
            LennardJones(
                cutoff=6.0,
                pairs={("Na", "Na"): (0.002, 2.5), ("Na", "Cl"): (0.004, 2.9), ("Cl", "Cl"): (0.006, 3.4)},
            ),
        ]
    )
    state = nacl(1, jitter=0.1, seed=2)
    a, b = evaluate(pot, state), evaluate(direct, state)
    assert_close(a.energy, b.energy, 0.0, "energy")
    assert_close(a.forces, b.forces, 0.0, "forces")


def test_buckingham_preset_can_be_overridden() -> None:
    custom = make_potential(
        "buckingham_dsf",
        preset="NaCl-TosiFumi",
        charges={"Na": 0.8, "Cl": -0.8},
        pairs={"Na-Cl": {"A": 1300.0, "rho": 0.3, "C": 0.0}},
        cutoff=8.0,
    )
    assert custom.charges == {"Na": 0.8, "Cl": -0.8}
    assert custom.pair_parameters["Na-Cl"]["A"] == 1300.0
    assert custom.pair_parameters["Cl-Cl"]["C"] == pytest.approx(72.40, rel=1e-3)  # kept from the preset
    yaml_style = make_potential(
        "buckingham_dsf", charges={"Li": 1.0, "S": -2.0}, pairs={"Li-S": [500.0, 0.3, 0.0]}, cutoff=8.0
    )
    assert yaml_style.species == (3, 16)


@pytest.mark.parametrize(
    ("name", "params", "match"),
    [
        ("morse", {}, "unknown potential 'morse'; known: lj, mlff, chgnet, buckingham_dsf, sum"),
        ("lj", {"epsilon": 0.01, "sigmaa": 3.4}, "bad parameters for potential 'lj'"),
        ("buckingham_dsf", {"preset": "LiPS"}, "unknown buckingham_dsf preset"),
        ("buckingham_dsf", {"charges": {"Na": 1.0}, "pairs": {"Na-Q": [1.0, 0.3, 0.0]}}, "unknown element"),
        ("sum", {"terms": [{"cutoff": 3.0}]}, "'name'"),
        ("sum", {"terms": []}, "at least one"),
    ],
    ids=["unknown-name", "bad-keyword", "unknown-preset", "unknown-element", "term-without-name", "no-terms"],
)
def test_errors(name: str, params: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_potential(name, **params)
