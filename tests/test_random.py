"""Counter-based random numbers: distribution and keying."""

from __future__ import annotations

import pytest
import torch
from scipy import stats

from ssehpc import random as rng


def test_normals_are_standard_normal() -> None:
    z = rng.normal(seed=7, step=3, stream=0, tag=torch.arange(200_000), n=3).flatten()
    ks = stats.kstest(z.numpy(), "norm")
    assert ks.pvalue > 1e-3
    assert z.mean().abs() < 5 * 1 / len(z) ** 0.5
    assert z.std().item() == pytest.approx(1.0, abs=5 * (2 / len(z)) ** 0.5)


def test_keyed_by_tag_not_position() -> None:
    tags = torch.tensor([5, 17, 3, 1_000_000_007])
    full = rng.normal(1, 10, 0, tags)
    perm = torch.tensor([2, 0, 3, 1])
    torch.testing.assert_close(rng.normal(1, 10, 0, tags[perm]), full[perm], rtol=0, atol=0)


def test_streams_steps_and_seeds_differ() -> None:
    tags = torch.arange(1000)
    base = rng.normal(1, 10, 0, tags)
    for other in (rng.normal(2, 10, 0, tags), rng.normal(1, 11, 0, tags), rng.normal(1, 10, 1, tags)):
        corr = torch.corrcoef(torch.stack([base.flatten(), other.flatten()]))[0, 1]
        assert corr.abs() < 0.1


def test_adjacent_keys_uncorrelated() -> None:
    """Neighbouring tags and steps must not give correlated numbers (a weak hash would)."""
    tags = torch.arange(50_000)
    a = rng.normal(0, 0, 0, tags, 1).flatten()
    assert abs(torch.corrcoef(torch.stack([a[:-1], a[1:]]))[0, 1]) < 0.02
    b = rng.normal(0, 1, 0, tags, 1).flatten()
    assert abs(torch.corrcoef(torch.stack([a, b]))[0, 1]) < 0.02
