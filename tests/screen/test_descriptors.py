"""Farthest-point sampling and the structural fingerprint."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

from ssehpc.screen import farthest_point_sampling, rdf_fingerprint


def clusters(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """60 points: a big cluster of 50 and two small ones of 5, far apart (labels 0, 1, 2)."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [0.0, 10.0, 0.0]])
    labels = np.repeat([0, 1, 2], [50, 5, 5])
    rng.shuffle(labels)
    return centres[labels] + 0.3 * rng.standard_normal((60, 3)), labels


def test_fps_picks_every_cluster_before_a_second_point_of_any():
    pts, labels = clusters()
    picks = farthest_point_sampling(pts, 3, start=int(np.flatnonzero(labels == 0)[0]))
    assert sorted(labels[picks]) == [0, 1, 2]
    # random picks of 3 would mostly come from the big cluster: FPS is diverse by construction
    picks6 = farthest_point_sampling(pts, 6, start=0)
    assert len(set(picks6)) == 6
    assert set(labels[picks6[:3]]) == {0, 1, 2}


def test_fps_is_deterministic_and_bounded():
    pts, _ = clusters(1)
    assert farthest_point_sampling(pts, 10, start=4) == farthest_point_sampling(pts, 10, start=4)
    assert farthest_point_sampling(pts, 10, start=4)[0] == 4
    assert len(farthest_point_sampling(pts, 100)) == 60
    assert farthest_point_sampling(pts, 0) == []
    assert farthest_point_sampling(np.zeros((0, 3)), 5) == []
    with pytest.raises(ValueError, match="start index"):
        farthest_point_sampling(pts, 2, start=60)


def test_fingerprint_is_invariant_to_translation_and_order_but_sees_compression():
    atoms = bulk("NaCl", "rocksalt", a=5.64, cubic=True).repeat(2)
    atoms.rattle(0.05, seed=1)
    species = [11, 17]
    fp = rdf_fingerprint(atoms, species)
    assert fp.shape == (4 * 50,)
    moved = atoms.copy()
    moved.translate([1.3, -0.7, 2.2])
    moved.wrap()
    perm = moved[np.random.default_rng(0).permutation(len(moved))]
    np.testing.assert_allclose(rdf_fingerprint(perm, species), fp, atol=1e-10)
    # Na-Cl nearest neighbours: 6 per Na at a/2 = 2.82 Å; no Na-Na pair below 3.5 Å (a/√2 = 3.99 Å)
    r = np.linspace(0, 5.0, 50)
    na_cl = fp.reshape(2, 2, 50)[0, 1]
    na_na = fp.reshape(2, 2, 50)[0, 0]
    near = r < 3.5
    assert r[near][np.argmax(na_cl[near])] == pytest.approx(2.82, abs=0.11)
    spacing = r[1] - r[0]
    gauss_area = np.sqrt(2 * np.pi) * 0.1 / spacing  # one neighbour adds this much summed over bins
    assert na_cl[near].sum() / gauss_area == pytest.approx(6.0, rel=0.05)
    assert na_na[r < 3.5].max() < 1e-3 * na_cl.max()
    squeezed = atoms.copy()
    squeezed.set_cell(atoms.cell * 0.9, scale_atoms=True)
    assert (
        np.linalg.norm(rdf_fingerprint(squeezed, species) - fp)
        > 10 * np.linalg.norm(rdf_fingerprint(perm, species) - fp) + 1.0
    )
