"""Neighbour list against brute force over periodic images (property-based)."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ssehpc import space
from ssehpc.neighbors import NeighborList
from ssehpc.parallel import SerialDomain
from ssehpc.state import State, concatenate
from tests.conftest import fcc_argon

METHODS = ["kdtree", "bins"]


def brute_force_distances(state: State, system: int, rc: float) -> list[float]:
    """Sorted distances of all ordered pairs (i, j + image) with r < rc, over every image."""
    mask = state.system_idx == system
    cell = state.cell[system]
    pos, _ = space.wrap(state.positions[mask], cell[None], torch.zeros(int(mask.sum()), dtype=torch.int64))
    widths = space.perpendicular_widths(cell)[0]
    n_img = [int(torch.ceil(rc / w)) for w in widths]
    out: list[float] = []
    for shift in itertools.product(*[range(-k, k + 1) for k in n_img]):
        d = pos[None, :, :] + torch.tensor(shift, dtype=pos.dtype) @ cell - pos[:, None, :]
        r = d.norm(dim=-1)
        if shift == (0, 0, 0):
            r.fill_diagonal_(float("inf"))
        out.extend(r[r < rc].tolist())
    return sorted(out)


def listed_distances(state: State, rc: float, skin: float, half: bool, method: str) -> dict[int, list[float]]:
    local = SerialDomain().build_local(state, rc + skin)
    nl = NeighborList(rc, skin, half=half, method=method)
    nl.build(local, state)
    assert bool((nl.i < local.n_owned).all()), "i must be an owned atom"
    d = (local.positions[nl.j] - local.positions[nl.i]).norm(dim=1)
    sys = local.system_idx[nl.i]
    assert bool((local.system_idx[nl.j] == sys).all()), "pairs must not cross systems"
    out = {}
    for s in range(state.n_systems):
        ds = d[(sys == s) & (d < rc)].tolist()
        out[s] = sorted(ds + ds) if half else sorted(ds)
    return out


def random_triclinic_state(data, n_systems: int = 1) -> State:
    states = []
    for _ in range(n_systems):
        diag = [data.draw(st.floats(3.0, 12.0)) for _ in range(3)]
        off = [data.draw(st.floats(-0.45, 0.45)) for _ in range(3)]
        cell = torch.tensor(
            [
                [diag[0], 0.0, 0.0],
                [off[0] * diag[0], diag[1], 0.0],
                [off[1] * diag[0], off[2] * diag[1], diag[2]],
            ],
            dtype=torch.float64,
        )
        # Random rotation so no cell vector is axis-aligned.
        q, _ = torch.linalg.qr(
            torch.tensor(
                data.draw(st.lists(st.floats(-1, 1), min_size=9, max_size=9)), dtype=torch.float64
            ).reshape(3, 3)
            + 2 * torch.eye(3, dtype=torch.float64)
        )
        cell = cell @ q.T
        n = data.draw(st.integers(1, 24))
        frac = torch.tensor(
            data.draw(st.lists(st.floats(-0.5, 1.5), min_size=3 * n, max_size=3 * n)), dtype=torch.float64
        ).reshape(n, 3)
        states.append(
            State.from_arrays(frac @ cell, torch.ones(n, dtype=torch.float64), torch.full((n,), 18), cell)
        )
    return concatenate(states)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("half", [False, True])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_matches_brute_force_random_triclinic(method: str, half: bool, data) -> None:
    n_sys = data.draw(st.integers(1, 3))
    state = random_triclinic_state(data, n_sys)
    rc = data.draw(st.floats(1.5, 7.0))
    skin = data.draw(st.floats(0.0, 1.0))
    ref = [brute_force_distances(state, s, rc) for s in range(n_sys)]
    got = listed_distances(state, rc, skin, half, method)
    for s in range(n_sys):
        assert len(got[s]) == len(ref[s]), f"system {s}: {len(got[s])} listed vs {len(ref[s])} brute force"
        torch.testing.assert_close(torch.tensor(got[s]), torch.tensor(ref[s]), rtol=0, atol=1e-9)


def test_methods_agree_and_scale_linearly() -> None:
    """Both pair searches return the same pairs; pairs per atom do not grow with N (O(N))."""
    per_atom = []
    for rep in (3, 6):
        state = fcc_argon(rep, jitter=0.1)
        local = SerialDomain().build_local(state, 6.0)
        lists = {}
        for method in METHODS:
            nl = NeighborList(5.0, 1.0, half=True, method=method)
            nl.build(local, state)
            key = nl.i * local.n_local + nl.j
            lists[method] = torch.sort(key).values
        assert torch.equal(lists["kdtree"], lists["bins"])
        per_atom.append(lists["kdtree"].numel() / state.n_atoms)
    assert per_atom[0] == pytest.approx(per_atom[1], rel=0.02)


def test_capacity_overflow_flag_and_growth() -> None:
    state = fcc_argon(3, jitter=0.05)
    local = SerialDomain().build_local(state, 6.0)
    nl = NeighborList(5.0, 1.0, capacity=10)
    nl.build(local, state)
    assert nl.overflow
    assert nl.capacity >= nl.n_pairs > 10
    cap = nl.capacity
    nl.build(local, state)
    assert not nl.overflow
    assert nl.capacity == cap


def test_needs_rebuild_at_half_skin() -> None:
    state = fcc_argon(3)
    fc_local = SerialDomain().build_local(state, 6.0)
    nl = NeighborList(5.0, 1.0)
    nl.build(fc_local, state)
    assert not nl.needs_rebuild(state)
    moved = state.clone()
    moved.positions[7, 0] += 0.49
    assert not nl.needs_rebuild(moved)
    moved.positions[7, 0] += 0.02  # now 0.51 Å > skin / 2
    assert nl.needs_rebuild(moved)
    # A cell change moves ghost images even if no atom moves.
    strained = state.clone()
    strained.cell = strained.cell * 1.06
    assert nl.needs_rebuild(strained)


def test_small_cell_has_several_images_of_one_atom() -> None:
    """A 1-atom cell much smaller than the cutoff: every neighbour is an image of itself."""
    a = 2.0
    state = State.from_arrays(
        torch.zeros(1, 3, dtype=torch.float64),
        torch.ones(1),
        torch.tensor([18]),
        torch.eye(3, dtype=torch.float64) * a,
    )
    rc = 4.5
    local = SerialDomain().build_local(state, rc)
    nl = NeighborList(rc, 0.0, half=False)
    nl.build(local, state)
    ref = brute_force_distances(state, 0, rc)
    assert nl.n_pairs == len(ref) > 50
    assert bool((local.tag[nl.j] == 0).all())
