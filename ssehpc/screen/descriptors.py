"""A cheap structural fingerprint of a frame and farthest-point sampling over it.

**Fingerprint.**  For every ordered species pair ``(a, b)`` the smoothed partial neighbour
density around atoms of species ``a``:

.. math::  h_{ab}(r_k) = \\frac{1}{N_a} \\sum_{i \\in a} \\sum_{j \\in b,\\, r_{ij} < r_c}
           \\exp\\!\\big(-(r_{ij} - r_k)^2 / 2σ^2\\big)

on ``n_bins`` bin centres ``r_k`` in ``[0, r_c]`` (Å), concatenated over pairs.  Partial RDFs are
what distinguishes the configurations a Li–P–S committee fails on (short P–S and S–S contacts,
Li-rich clusters; ``docs/mlff.md``), they are computed from the stored positions and cell alone —
no model, no torch, any potential — and, being densities per centre atom, they are comparable
across cells of different size.  (The model's own invariant features would say what *this*
model finds new, but need the model and one network pass per frame; see ``docs/screening.md``.)

**Farthest-point sampling** picks, from a set of fingerprints, the one to start from and then
repeatedly the point farthest (Euclidean) from everything picked so far: the picks spread over the
clusters of the set before any cluster gets a second one.  Deterministic: the start is given and
ties go to the lowest index.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase import Atoms

#: Fingerprint defaults: cutoff (Å), bins, Gaussian width (Å).
DEFAULT_CUTOFF: float = 5.0
DEFAULT_BINS: int = 50
DEFAULT_SIGMA: float = 0.1


def rdf_fingerprint(
    atoms: Atoms,
    species: Sequence[int],
    *,
    cutoff: float = DEFAULT_CUTOFF,
    n_bins: int = DEFAULT_BINS,
    sigma: float = DEFAULT_SIGMA,
) -> np.ndarray:
    """Smoothed partial neighbour densities of ``atoms`` (see the module docstring).

    Args:
        atoms: a periodic frame.
        species: atomic numbers defining the layout (pairs in this order); species of ``atoms``
            that are not listed are ignored, listed species absent from ``atoms`` give zeros.
        cutoff: neighbour cutoff ``r_c``, Å.
        n_bins: bin centres in ``[0, r_c]``.
        sigma: Gaussian smoothing width, Å.

    Returns:
        ``[len(species)² · n_bins]`` float64: neighbours per centre atom per bin.
    """
    from ase.neighborlist import neighbor_list  # imports scipy: only when fingerprints are made

    species = [int(z) for z in species]
    n_s = len(species)
    out = np.zeros((n_s, n_s, n_bins))
    index = {z: k for k, z in enumerate(species)}
    numbers = atoms.numbers
    kind = np.array([index.get(int(z), -1) for z in numbers], dtype=np.int64)
    counts = np.bincount(kind[kind >= 0], minlength=n_s).astype(np.float64)
    centres = np.linspace(0.0, cutoff, n_bins)
    i, j, d = neighbor_list("ijd", atoms, cutoff)
    keep = (kind[i] >= 0) & (kind[j] >= 0)
    i, j, d = i[keep], j[keep], d[keep]
    if d.size:
        # Distances go onto a fine grid (linear split between the two nearest grid points, so the
        # result is continuous in every distance), then one matrix product applies the Gaussians:
        # O(pairs) instead of O(pairs × bins).
        step = min(sigma / 20.0, cutoff / (4 * n_bins))
        n_fine = int(np.ceil(cutoff / step)) + 2
        grid = np.arange(n_fine) * step
        f = d / step
        lo = np.floor(f).astype(np.int64)
        w = f - lo
        base = (kind[i] * n_s + kind[j]) * n_fine
        hist = np.bincount(base + lo, weights=1.0 - w, minlength=n_s * n_s * n_fine)
        hist += np.bincount(base + lo + 1, weights=w, minlength=n_s * n_s * n_fine)
        gauss = np.exp(-0.5 * ((grid[:, None] - centres[None, :]) / sigma) ** 2)  # [fine, bins]
        out = (hist.reshape(n_s * n_s, n_fine) @ gauss).reshape(n_s, n_s, n_bins)
    out /= np.maximum(counts, 1.0)[:, None, None]
    return out.reshape(-1)


def farthest_point_sampling(points: np.ndarray, k: int, start: int = 0) -> list[int]:
    """Indices of ``k`` rows of ``points`` picked by farthest-point sampling.

    Args:
        points: ``[n, d]`` fingerprints.
        k: how many to pick (all ``n`` when ``k ≥ n``).
        start: index of the first pick.

    Returns:
        Picked row indices, in pick order (no repeats).
    """
    points = np.asarray(points, dtype=np.float64)
    n = points.shape[0]
    if n == 0 or k <= 0:
        return []
    if not 0 <= start < n:
        raise ValueError(f"start index {start} is outside the {n} points")
    k = min(int(k), n)
    picked = [int(start)]
    dist = np.linalg.norm(points - points[start], axis=1)
    dist[start] = -np.inf
    while len(picked) < k:
        nxt = int(np.argmax(dist))  # first index among ties
        if dist[nxt] == -np.inf:
            break
        picked.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(points - points[nxt], axis=1))
        dist[picked] = -np.inf
    return picked
