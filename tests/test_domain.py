"""Serial domain: ghost images and the reverse sum."""

from __future__ import annotations

import pytest
import torch

from ssehpc.parallel import SerialDomain
from tests.conftest import fcc_argon


def test_ghost_shell_matches_volume_estimate() -> None:
    s = fcc_argon(4)
    L = float(s.cell[0, 0, 0])
    s.positions = (
        torch.rand(s.positions.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3)) * L
    )
    w = 3.0
    local = SerialDomain().build_local(s, w)
    expected = s.n_atoms * (((L + 2 * w) / L) ** 3 - 1)
    assert local.n_ghost == pytest.approx(expected, rel=0.1)
    # Every ghost is an exact image of its owner.
    o = local.ghost_origin
    img = s.positions[o] + local.ghost_shift.to(torch.float64) @ s.cell[0]
    torch.testing.assert_close(local.positions[s.n_atoms :], img)
    assert torch.equal(local.tag[s.n_atoms :], s.tag[o])


def test_ghosts_follow_cell_between_rebuilds() -> None:
    s = fcc_argon(2)
    dom = SerialDomain()
    local = dom.build_local(s, 3.0)
    s.cell = s.cell * 1.01
    s.positions = s.positions * 1.01
    dom.update_ghosts(s, local)
    o = local.ghost_origin
    torch.testing.assert_close(
        local.positions[s.n_atoms :], s.positions[o] + local.ghost_shift.to(torch.float64) @ s.cell[0]
    )


def test_reverse_sum_conserves_totals() -> None:
    s = fcc_argon(2)
    dom = SerialDomain()
    local = dom.build_local(s, 3.0)
    vals = torch.randn(local.n_local, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    owned = dom.reverse_sum(local, vals)
    torch.testing.assert_close(owned.sum(0), vals.sum(0))


def test_build_rejects_bad_width() -> None:
    with pytest.raises(ValueError, match="ghost width"):
        SerialDomain().build_local(fcc_argon(2), float("nan"))
