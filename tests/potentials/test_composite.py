"""SumPotential: attribute rules, sum of parts, and the half list cut out of a full list."""

from __future__ import annotations

import pytest
import torch

from ssehpc.forces import ForceCompute
from ssehpc.neighbors import NeighborList
from ssehpc.parallel.domain import SerialDomain
from ssehpc.potentials import BuckinghamDSF, LennardJones, SumPotential
from ssehpc.potentials.composite import HalfListView
from tests.potentials.conformance import FullListProbe, assert_close, evaluate
from tests.potentials.structures import SHEAR, argon, nacl

IONS = {"Na": 1.0, "Cl": -1.0}


class DeepProbe(FullListProbe):
    """A full-list, message-passing member (hops = 2)."""

    hops = 2


def test_attributes() -> None:
    coul = BuckinghamDSF(IONS, cutoff=9.0)
    lj_any = LennardJones(cutoff=6.0)
    lj_nacl_li = LennardJones(
        cutoff=5.0, pairs={(a, b): (0.01, 3.0) for a in ["Na", "Cl", "Li"] for b in ("Na", "Cl", "Li")}
    )
    s = SumPotential([coul, lj_any])
    assert (s.cutoff, s.hops, s.half_list, s.species) == (9.0, 0, True, (11, 17))
    assert s.ghost_range == 9.0
    s = SumPotential([lj_nacl_li, coul])
    assert s.species == (11, 17)  # intersection
    assert SumPotential([lj_any, LennardJones(cutoff=3.0)]).species is None
    deep = DeepProbe(cutoff=5.0)
    s = SumPotential([coul, deep])
    assert (s.cutoff, s.hops, s.half_list) == (9.0, 2, False)
    assert s.ghost_range == 15.0  # the members' largest need, not (2 + 1) x 9
    with pytest.raises(ValueError, match="at least one"):
        SumPotential([])
    with pytest.raises(ValueError, match="share no element"):
        SumPotential([coul, LennardJones(cutoff=5.0, pairs={("Ar", "Ar"): (0.01, 3.4)})])
    with pytest.raises(TypeError, match="not a Potential"):
        SumPotential([coul, torch.nn.Linear(2, 2)])


def test_sum_equals_sum_of_parts() -> None:
    state = nacl(2, jitter=0.1, deform=SHEAR, seed=2)
    parts = [
        BuckinghamDSF(IONS, {"Na-Cl": (1200.0, 0.32, 5.0)}, cutoff=8.0),
        LennardJones(
            cutoff=6.5,
            pairs={("Na", "Na"): (0.002, 2.5), ("Na", "Cl"): (0.004, 2.9), ("Cl", "Cl"): (0.006, 3.4)},
        ),
    ]
    total = evaluate(SumPotential(parts), state)
    each = [evaluate(p, state) for p in parts]
    for field in ("energy", "energies", "forces", "virial"):
        assert_close(getattr(total, field), sum(getattr(r, field) for r in each), 1e-12, field)
    assert float(each[1].forces.abs().max()) > 1e-3  # both parts matter


@pytest.mark.parametrize("triclinic", [False, True])
def test_half_view_of_full_list_is_the_half_list(triclinic: bool) -> None:
    """Cutting the full list with the tag/shift rule keeps every physical pair exactly once: the
    same pairs as the native half list (small cell, so atoms pair with their own images)."""
    state = argon(1, jitter=0.1, seed=3, deform=SHEAR if triclinic else None)
    local = SerialDomain().build_local(state.clone(), 7.0)
    half, full = NeighborList(6.0, 1.0, half=True), NeighborList(6.0, 1.0, half=False)
    half.build(local)
    full.build(local)
    view = HalfListView.from_full(local, full)
    pairs = lambda i, j: sorted(zip(i.tolist(), j.tolist(), strict=True))  # noqa: E731
    assert pairs(view.i, view.j) == pairs(half.i, half.j)
    assert full.n_pairs > view.n_pairs > 0
    assert bool((local.tag[half.i] == local.tag[half.j]).any())  # self-image pairs are present


def test_mixed_lists_use_a_full_list() -> None:
    fc = ForceCompute(SumPotential([BuckinghamDSF(IONS, cutoff=7.0), FullListProbe()]))
    fc.compute(nacl(1, jitter=0.05))
    assert not fc.nl.half
    assert fc.nl.n_pairs > 0


def test_full_list_member_rejects_a_half_list() -> None:
    local = SerialDomain().build_local(nacl(1), 8.0)
    nl = NeighborList(7.0, 1.0, half=True)
    nl.build(local)
    with pytest.raises(ValueError, match="full neighbour list"):
        SumPotential([FullListProbe()])(local, nl)


def test_extras_are_merged() -> None:
    class WithExtras(FullListProbe):
        def forward(self, local, nl):
            out = super().forward(local, nl)
            out.extras = {"deviation": torch.ones(local.n_local)}
            return out

    state = argon(1)
    fc = ForceCompute(SumPotential([WithExtras(), WithExtras(), LennardJones(cutoff=5.0)]))
    fc.compute(state)
    assert set(fc.extras) == {"deviation", "1.deviation"}
