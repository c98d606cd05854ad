"""Structure analysis of run stores: RDF, coordination, polyanions, PS₄ rotation, Li hops, sites.

Input is a :class:`Trajectory` (symbols, unwrapped positions in Å, a cell per frame, times in fs),
read from a run with :func:`read_trajectory`. Distances use each frame's (triclinic) cell: pair
searches count every periodic image within the cutoff (exact also beyond half the cell width),
short vectors (bonds, sites, neighbourhoods) take the minimum image.

* :func:`rdf` — partial g_ab(r) and running coordination numbers
  n_ab(r) = (number of b within r of an a) / N_a, first minimum and first-shell CN;
* :func:`polyanion_units` — centre (P) + ligand (S) units within a bond cutoff, classified
  PS₄ / P₂S₇ (corner sharing, one bridging S) / P₂S₆ (P–P bond) / P₂S₆-edge / other;
* :func:`rotational_acf` — C_l(t) = ⟨P_l(u(0)·u(t))⟩ of centre→ligand unit vectors (l = 1, 2)
  over all bonds and time origins (FFT);
* :func:`rotation_events` and :func:`li_hops` — jumps of a unit's orientation by more than an
  angle and of an ion by more than a distance from its last resting point (both on
  time-smoothed coordinates);
* :func:`hop_rotation_correlation` — P(a unit within r_c of a hopping ion rotates within ±Δt)
  against the same probability with each unit's rotation times circularly shifted at random
  (seeded), and the cross-correlation of the hop and rotation rates in time (paddle wheel);
* :func:`site_occupancy` — ions per reference site (first frame or given fractional sites);
* :func:`self_relaxation` — F_s(q, t), the α-relaxation time and the MSD exponent of one species
  with the centre-of-mass drift removed (did a melt melt: has the PS₄ network relaxed?);
* :func:`density` — mass density per frame (g/cm³): where an NPT run settled, and whether it had.

:func:`analyze_run` runs all of it; :func:`to_datasets` / :func:`write_structure_analysis` store it
as xarray datasets under ``analysis/structure/<run_id>/`` of the store.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase.data import atomic_masses, atomic_numbers, chemical_symbols

from ssehpc.analysis.msd import AnalysisError
from ssehpc.io.zarr_store import RunStore

_SHIFTS = np.array([(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)], dtype=float)


# ---------------------------------------------------------------------- input
@dataclass
class Trajectory:
    """Frames of one system.

    Attributes:
        symbols: ``[N]`` element symbols.
        positions: ``[F, N, 3]`` Å, unwrapped as in the store (RDF, units, rotation and sites use
            minimum images and work on wrapped positions too; hop detection needs unwrapped ones).
        cells: ``[F, 3, 3]`` Å, lattice vectors as rows.
        time_fs: ``[F]`` fs.
        run_id: where it came from.
    """

    symbols: np.ndarray
    positions: np.ndarray
    cells: np.ndarray
    time_fs: np.ndarray
    run_id: str = "trajectory"

    def __post_init__(self) -> None:
        self.symbols = np.array([str(x) for x in np.asarray(self.symbols).ravel()])
        self.positions = np.asarray(self.positions, dtype=np.float64)
        self.cells = np.asarray(self.cells, dtype=np.float64)
        if self.cells.ndim == 2:
            self.cells = np.broadcast_to(self.cells, (len(self.positions), 3, 3)).copy()
        self.time_fs = np.asarray(self.time_fs, dtype=np.float64)
        f, n = self.positions.shape[:2]
        if self.cells.shape != (f, 3, 3) or self.time_fs.shape != (f,) or self.symbols.shape != (n,):
            raise AnalysisError(
                f"trajectory shapes disagree: positions {self.positions.shape}, cells {self.cells.shape}, "
                f"time {self.time_fs.shape}, symbols {self.symbols.shape}"
            )

    @property
    def n_frames(self) -> int:
        return int(self.positions.shape[0])

    @property
    def dt_fs(self) -> float:
        """Time between frames, fs (frames must be equally spaced)."""
        if self.n_frames < 2:
            return math.nan
        d = np.diff(self.time_fs)
        if np.any(d <= 0) or np.ptp(d) > 1e-6 * max(1.0, abs(d.mean())):
            raise AnalysisError(f"run {self.run_id!r}: frames are not equally spaced in time")
        return float(d.mean())

    def indices(self, species: str) -> np.ndarray:
        """Atom indices of ``species`` (:class:`AnalysisError` if there is none)."""
        idx = np.flatnonzero(self.symbols == species)
        if not idx.size:
            raise AnalysisError(
                f"species {species!r} is not in run {self.run_id!r} (species: {', '.join(sorted(set(self.symbols)))})"
            )
        return idx


def read_trajectory(run: RunStore, start: int = 0, stop: int | None = None, stride: int = 1) -> Trajectory:
    """Committed frames ``[start:stop:stride]`` of a one-system run, in memory (float64: 24 bytes
    per atom and frame; use ``stride`` for long runs of large cells).

    Raises:
        AnalysisError: no frames, or several systems in the run.
    """
    if run.n_frames < 1:
        raise AnalysisError(f"run {run.run_id!r} has no committed frames")
    if int(run.attrs.get("n_systems", 1)) != 1:
        raise AnalysisError(
            f"run {run.run_id!r} holds {run.attrs.get('n_systems')} systems; analyse one at a time"
        )
    fr = run.read_frames(start, stop, stride, fields=["positions", "cell", "time_fs"])
    symbols = np.array([chemical_symbols[int(z)] for z in run.read_static("species")])
    return Trajectory(symbols, fr["positions"], np.asarray(fr["cell"])[:, 0], fr["time_fs"], run.run_id)


def minimum_image(d: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Shortest periodic images of the vectors ``d`` ``[..., 3]`` Å in a triclinic ``cell`` (rows):
    fractional rounding, then the best of the 27 neighbouring images (exact for skewed cells)."""
    inv = np.linalg.inv(cell)
    frac = d @ inv
    frac -= np.round(frac)
    cand = (frac[..., None, :] + _SHIFTS) @ cell
    best = np.argmin((cand * cand).sum(-1), axis=-1)
    return np.take_along_axis(cand, best[..., None, None], axis=-2)[..., 0, :]


def _sample(n_frames: int, max_frames: int | None) -> np.ndarray:
    if max_frames is None or n_frames <= max_frames:
        return np.arange(n_frames)
    return np.unique(np.linspace(0, n_frames - 1, max_frames).round().astype(int))


def _widths(cell: np.ndarray) -> np.ndarray:
    """Perpendicular widths of a cell, Å."""
    return 1.0 / np.linalg.norm(np.linalg.inv(cell), axis=0)


def _short_image(d: np.ndarray, cell: np.ndarray, r_max: float) -> np.ndarray:
    """Minimum image of vectors whose interesting length is below ``r_max`` Å: fractional
    rounding, which is exact for every vector shorter than half the smallest cell width (a vector
    with |s_k| ≥ ½ is at least ½ w_k long); the 27-image search otherwise."""
    if r_max <= 0.5 * float(_widths(cell).min()):
        frac = d @ np.linalg.inv(cell)
        return (frac - np.round(frac)) @ cell
    return minimum_image(d, cell)


def _pairs(traj: Trajectory, frame: int, cutoff: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(i, j, d)`` for all pairs (both directions, every periodic image) closer than ``cutoff`` Å.

    From the fractional difference wrapped to [−½, ½), an image with shift n is within the cutoff
    only if |n_k| ≤ cutoff / w_k + ½ (w_k: perpendicular widths), so those shifts are enough —
    one shift when the cutoff is below half the cell width. Vectorised in row chunks.
    """
    cell = traj.cells[frame]
    frac = traj.positions[frame] @ np.linalg.inv(cell)
    m = np.floor(cutoff / _widths(cell) + 0.5).astype(int)
    grid = np.meshgrid(*[np.arange(-k, k + 1) for k in m], indexing="ij")
    shifts = np.stack([g.ravel() for g in grid], axis=1).astype(float) @ cell  # [S, 3] Å
    n = len(frac)
    chunk = max(1, int(2_000_000 // (n * len(shifts))))
    out_i, out_j, out_d = [], [], []
    for a in range(0, n, chunk):
        df = frac[None, :, :] - frac[a : a + chunk, None, :]  # [c, n, 3]: j − i
        df -= np.round(df)
        d = (df @ cell)[:, :, None, :] + shifts  # [c, n, S, 3]
        r = np.sqrt((d * d).sum(-1))
        ii, jj, ss = np.nonzero(r < cutoff)
        rr = r[ii, jj, ss]
        keep = ~((ii + a == jj) & (rr < 1e-8))  # an atom is not its own neighbour (its images are)
        out_i.append(ii[keep] + a)
        out_j.append(jj[keep])
        out_d.append(rr[keep])
    return np.concatenate(out_i), np.concatenate(out_j), np.concatenate(out_d)


# ---------------------------------------------------------------------- RDF
@dataclass
class RDF:
    """Partial radial distribution functions.

    Attributes:
        r: ``[B]`` bin centres, Å.
        g: ``{(a, b): [B]}`` g_ab(r) for a ≤ b (symmetric).
        n: ``{(a, b): [B]}`` running coordination number: b within r_bin_upper of an a.
        r_peak: ``{(a, b): Å}`` position of the first peak of g_ab (NaN if g never exceeds 1).
        r_min: ``{(a, b): Å}`` first minimum of g_ab after its first peak (NaN if none).
        cn: ``{(a, b): }`` n_ab at the first minimum (or at the given cutoff).
        n_frames: frames averaged.
    """

    r: np.ndarray
    g: dict[tuple[str, str], np.ndarray]
    n: dict[tuple[str, str], np.ndarray]
    r_min: dict[tuple[str, str], float]
    cn: dict[tuple[str, str], float]
    n_frames: int
    r_peak: dict[tuple[str, str], float] = field(default_factory=dict)


def first_peak(r: np.ndarray, g: np.ndarray) -> float:
    """Position (Å) of the first maximum of ``g`` above 1 (the raw histogram, so a bond length
    is not shifted by smoothing; parabolic interpolation between bins).  NaN if ``g`` stays ≤ 1."""
    g = np.asarray(g, dtype=float)
    above = np.flatnonzero(g > 1.0)
    if not above.size:
        return math.nan
    p = int(above[0])
    while p + 1 < len(g) and g[p + 1] >= g[p]:
        p += 1
    if 0 < p < len(g) - 1:
        den = g[p - 1] - 2.0 * g[p] + g[p + 1]
        shift = 0.5 * (g[p - 1] - g[p + 1]) / den if den != 0 else 0.0
        return float(r[p] + float(np.clip(shift, -0.5, 0.5)) * (r[1] - r[0]))
    return float(r[p])


def shell_peak(
    r: np.ndarray, g: np.ndarray, n: np.ndarray, *, min_cn: float = 1.0, smooth: float = 0.3
) -> float:
    """Position (Å) of the maximum of ``g`` in its first shell that holds at least ``min_cn``
    neighbours per atom.  A shell is a stretch where the ``smooth`` Å box-smoothed ``g`` exceeds 1;
    ``n`` is the running coordination number, so a shell holds ``n(end) − n(start)``.

    Unlike :func:`first_peak` it skips a few odd close pairs, e.g. the P–P of 2–3 edge-sharing
    units in a glass (g is large there only because the shell volume is small), and returns the
    neighbour shell that sets the length scale of the structure (the P–P shell at ~5.3 Å).  NaN
    when no shell qualifies."""
    g = np.asarray(g, dtype=float)
    n = np.asarray(n, dtype=float)
    dr = float(r[1] - r[0]) if len(r) > 1 else 1.0
    w = max(1, round(smooth / dr))
    gs = np.convolve(g, np.ones(w) / w, mode="same") if w > 1 else g
    above = np.concatenate([[False], gs > 1.0, [False]])
    edges = np.flatnonzero(np.diff(above.astype(int)))
    for lo, hi in zip(edges[::2], edges[1::2] - 1, strict=True):
        if n[hi] - n[max(lo - 1, 0)] >= min_cn:
            return float(r[lo + int(np.argmax(g[lo : hi + 1]))])  # the raw maximum in the shell
    return math.nan


def first_minimum(r: np.ndarray, g: np.ndarray, smooth: float = 0.3, depth: float = 0.5) -> float:
    """Position (Å) of the first minimum of ``g`` after its first peak.

    ``g`` is smoothed with a ``smooth`` Å box first (so the split P–S(terminal)/P–S(bridging) peak
    of a static crystal counts as one shell), and a minimum counts only when it is below
    ``depth`` × the peak. A flat zero stretch (a crystal) gives its middle. NaN when ``g`` never
    exceeds 1 or never falls that deep.
    """
    dr = float(r[1] - r[0]) if len(r) > 1 else 1.0
    w = max(1, round(smooth / dr))
    gs = np.convolve(g, np.ones(w) / w, mode="same") if w > 1 else np.asarray(g, dtype=float)
    above = np.flatnonzero(gs > 1.0)
    if not above.size:
        return math.nan
    p = int(above[0])
    while p + 1 < len(gs) and gs[p + 1] >= gs[p]:
        p += 1  # climb to the first peak
    k = p + 1
    while k + 1 < len(gs):
        if gs[k] <= gs[k - 1] and gs[k] < gs[k + 1] and gs[k] < depth * gs[p]:
            flat = k
            while flat > p and gs[flat - 1] == gs[k]:
                flat -= 1
            return float(0.5 * (r[flat] + r[k]))
        k += 1
    return math.nan


def rdf(
    traj: Trajectory,
    pairs: Sequence[tuple[str, str]] | None = None,
    *,
    r_max: float | None = None,
    dr: float = 0.02,
    max_frames: int | None = 200,
    cutoffs: dict[tuple[str, str], float] | None = None,
) -> RDF:
    """Partial g_ab(r), averaged over (up to ``max_frames`` evenly spaced) frames.

    g_ab(r) = V / (N_a N'_b) · ⟨Σ_{i∈a, j∈b, j≠i} δ(r − r_ij)⟩ / (4π r² dr), with N'_b = N_b − 1
    for a = b (so an ideal gas gives g = 1), per frame with that frame's volume; n_ab(r) counts
    the b atoms (all images) within r of an a atom.

    Args:
        traj: frames.
        pairs: element pairs (default every pair of species present).
        r_max: largest distance, Å (default 8 Å; beyond half the cell width every periodic image
            is counted, as in the infinite periodic system).
        dr: bin width, Å.
        max_frames: frames used (evenly spaced; None: all).
        cutoffs: ``{(a, b): Å}`` first-shell cutoffs for ``cn`` instead of the first minimum.
    """
    species = sorted({str(x) for x in traj.symbols})
    if pairs is None:
        pairs = [(a, b) for k, a in enumerate(species) for b in species[k:]]
    pairs = [tuple(sorted((str(p[0]), str(p[1])))) for p in pairs]  # type: ignore[misc]
    for a, b in pairs:
        traj.indices(a), traj.indices(b)
    if r_max is None:
        r_max = 8.0
    if not (r_max > 0 and dr > 0):
        raise AnalysisError(f"r_max and dr must be positive (Å), got {r_max}, {dr}")
    edges = np.arange(0.0, r_max + 0.5 * dr, dr)
    r = 0.5 * (edges[1:] + edges[:-1])
    shell = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    count = {s: int(np.sum(traj.symbols == s)) for s in species}
    frames = _sample(traj.n_frames, max_frames)
    g = {p: np.zeros(len(r)) for p in pairs}
    hist = {p: np.zeros(len(r)) for p in pairs}
    for f in frames:
        i, j, d = _pairs(traj, int(f), float(edges[-1]))
        vol = abs(np.linalg.det(traj.cells[f]))
        si, sj = traj.symbols[i], traj.symbols[j]
        for a, b in pairs:
            sel = (si == a) & (sj == b)
            h = np.histogram(d[sel], bins=edges)[0].astype(float)
            nb = count[b] - 1 if a == b else count[b]
            g[(a, b)] += h * vol / (count[a] * max(nb, 1) * shell)
            hist[(a, b)] += h
    nf = len(frames)
    out_g, out_n, r_min, cn = {}, {}, {}, {}
    for a, b in pairs:
        out_g[(a, b)] = g[(a, b)] / nf
        cum = np.cumsum(hist[(a, b)]) / nf
        out_n[(a, b)] = cum / count[a]
        if a != b:
            out_n[(b, a)] = cum / count[b]
        rc = (cutoffs or {}).get((a, b), (cutoffs or {}).get((b, a)))
        r_min[(a, b)] = float(rc) if rc is not None else first_minimum(r, out_g[(a, b)])
        for x, y in {(a, b), (b, a)}:
            k = np.searchsorted(edges[1:], r_min[(a, b)] - 1e-12) if np.isfinite(r_min[(a, b)]) else -1
            cn[(x, y)] = float(out_n[(x, y)][min(k, len(r) - 1)]) if k >= 0 else math.nan
    r_peak = {pair: first_peak(r, out_g[pair]) for pair in pairs}
    return RDF(r, out_g, out_n, r_min, cn, nf, r_peak)


# ---------------------------------------------------------------------- polyanions
@dataclass
class Unit:
    """One polyanion: ``kind`` (``PS4``, ``P2S7``, ``P2S6``, ``P2S6-corner``, ``P2S6-edge``, ``P3S10``, ...),
    its centre and ligand atom indices, and the ligands shared by two centres (bridging)."""

    kind: str
    centers: list[int]
    ligands: list[int]
    bridging: list[int] = field(default_factory=list)


def polyanion_units(
    traj: Trajectory,
    frame: int = 0,
    *,
    center: str = "P",
    ligand: str = "S",
    cutoff: float = 2.4,
    center_cutoff: float = 2.4,
) -> list[Unit]:
    """Units of one frame: centres joined by bridging ligands or centre–centre bonds.

    Two centres sharing one ligand are corner sharing (P₂S₇; ``P2S6-corner`` when one centre has
    only three ligands), sharing two are edge sharing (``P2S6-edge``), bonded directly (closer
    than ``center_cutoff``) with no shared ligand are ``P2S6``-type (P–P); other clusters are
    named by formula (``P3S9``: three corner-sharing tetrahedra in a ring; ``P3S10``: a chain).

    Args:
        traj: frames.
        frame: which frame.
        center, ligand: element symbols (P and S for thiophosphates; e.g. Si and O for silicates).
        cutoff: centre–ligand bond cutoff, Å.
        center_cutoff: centre–centre bond cutoff, Å (P–P 2.2 Å in P₂S₆⁴⁻).
    """
    traj.indices(center), traj.indices(ligand)
    i, j, d = _pairs(traj, frame, max(cutoff, center_cutoff))
    si, sj = traj.symbols[i], traj.symbols[j]
    cl = (si == center) & (sj == ligand) & (d < cutoff)
    cc = (si == center) & (sj == center) & (d < center_cutoff)
    lig_of: dict[int, set[int]] = {}
    for a, b in zip(i[cl].tolist(), j[cl].tolist(), strict=True):
        lig_of.setdefault(a, set()).add(b)
    centers = traj.indices(center).tolist()
    parent = {c: c for c in centers}

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    owners: dict[int, list[int]] = {}
    for c in centers:
        for s in lig_of.get(c, ()):
            owners.setdefault(s, []).append(c)
    direct = set()
    for a, b in zip(i[cc].tolist(), j[cc].tolist(), strict=True):
        parent[find(a)] = find(b)
        direct.add(frozenset((a, b)))
    for cs in owners.values():
        for c in cs[1:]:
            parent[find(c)] = find(cs[0])
    groups: dict[int, list[int]] = {}
    for c in centers:
        groups.setdefault(find(c), []).append(c)
    units = []
    for cs in groups.values():
        ligs = sorted({s for c in cs for s in lig_of.get(c, ())})
        bridging = sorted(s for s in ligs if len(owners[s]) > 1)
        nc, nl = len(cs), len(ligs)
        if nc == 1:
            kind = f"{center}{ligand}{nl}"
        elif nc == 2 and frozenset(cs) in direct and not bridging:
            kind = f"{center}2{ligand}{nl}"  # centre-centre bond: P2S6 (P-P, hypodiphosphate)
        elif nc == 2 and len(bridging) == 1:
            # corner sharing: P2S7 when both are tetrahedra; a pair with a three-fold centre
            # (P2S6 without a P-P bond) must not read as the P-P bonded P2S6
            kind = f"{center}2{ligand}{nl}" if nl == 7 else f"{center}2{ligand}{nl}-corner"
        elif nc == 2 and len(bridging) == 2:
            kind = f"{center}2{ligand}{nl}-edge"
        else:
            kind = f"{center}{nc}{ligand}{nl}"
        units.append(Unit(kind, sorted(cs), ligs, bridging))
    return sorted(units, key=lambda u: u.centers[0])


@dataclass
class UnitStats:
    """Polyanion statistics over frames: mean number of each kind per frame, the share of units
    (``unit_fraction``) and of centres (``center_fraction``) in each kind; and the ligands outside
    every unit: ``free_ligands`` (mean per frame of ligands with no centre within the bond cutoff,
    e.g. S²⁻, S₂²⁻) and ``ligand_bonds`` (mean per frame of ligand–ligand pairs closer than
    ``ligand_cutoff``, e.g. S–S bonds of di- and polysulfides, whether or not bound to a centre)."""

    counts: dict[str, float]
    unit_fraction: dict[str, float]
    center_fraction: dict[str, float]
    n_frames: int
    free_ligands: float = 0.0
    ligand_bonds: float = 0.0
    ligand_cutoff: float = math.nan


def unit_statistics(
    traj: Trajectory, *, max_frames: int | None = 20, ligand_cutoff: float = 2.3, **kwargs: Any
) -> UnitStats:
    """:func:`polyanion_units` averaged over up to ``max_frames`` evenly spaced frames, plus the
    free ligands and the ligand–ligand bonds (closer than ``ligand_cutoff`` Å: S–S 2.05 Å in S₂²⁻,
    ~3.3 Å between the S of a PS₄)."""
    frames = _sample(traj.n_frames, max_frames)
    counts: Counter = Counter()
    centers: Counter = Counter()
    ligand = kwargs.get("ligand", "S")
    n_lig = int((traj.symbols == ligand).sum())
    free = bonds = 0
    for f in frames:
        units = polyanion_units(traj, int(f), **kwargs)
        for u in units:
            counts[u.kind] += 1
            centers[u.kind] += len(u.centers)
        free += n_lig - sum(len(u.ligands) for u in units)
        if n_lig >= 2:
            i, j, _ = _pairs(traj, int(f), ligand_cutoff)
            bonds += int(((traj.symbols[i] == ligand) & (traj.symbols[j] == ligand) & (i < j)).sum())
    nu, ncen = sum(counts.values()), sum(centers.values())
    kinds = sorted(counts)
    return UnitStats(
        {k: counts[k] / len(frames) for k in kinds},
        {k: counts[k] / nu for k in kinds},
        {k: centers[k] / ncen for k in kinds},
        len(frames),
        free / len(frames),
        bonds / len(frames),
        ligand_cutoff,
    )


# ---------------------------------------------------------------------- rotation
def _acf(x: np.ndarray) -> np.ndarray:
    """⟨x(t0) x(t0 + k)⟩ over all origins, per column of ``x`` ``[T, M]`` (FFT), ``[T, M]``."""
    t = x.shape[0]
    n = 1 << (2 * t - 1).bit_length()
    fx = np.fft.rfft(x, n=n, axis=0)
    c = np.fft.irfft(fx * np.conj(fx), n=n, axis=0)[:t]
    return c / (t - np.arange(t))[:, None]


def bond_vectors(traj: Trajectory, bonds: np.ndarray) -> np.ndarray:
    """Unit vectors ``[F, M, 3]`` along the bonds ``[M, 2]`` (centre → ligand, minimum image)."""
    d = traj.positions[:, bonds[:, 1]] - traj.positions[:, bonds[:, 0]]
    d = np.stack([_short_image(d[f], traj.cells[f], 3.0) for f in range(traj.n_frames)])
    return d / np.linalg.norm(d, axis=-1, keepdims=True)


def monomer_bonds(
    traj: Trajectory, center: str = "P", ligand: str = "S", cutoff: float = 2.4, n_ligands: int = 4
) -> np.ndarray:
    """Centre → ligand bonds ``[M, 2]`` of the isolated single-centre units with ``n_ligands``
    ligands (PS₄) in the first frame (broken or bridged units are left out)."""
    units = [
        u
        for u in polyanion_units(traj, 0, center=center, ligand=ligand, cutoff=cutoff)
        if len(u.centers) == 1 and len(u.ligands) == n_ligands
    ]
    return np.array([(u.centers[0], s) for u in units for s in u.ligands], dtype=int).reshape(-1, 2)


@dataclass
class RotationACF:
    """C_l(t) = ⟨P_l(u(0)·u(t))⟩ for l = 1, 2 at lag times ``time_fs``; ``tau1_fs`` /
    ``tau2_fs`` are the integrals of C_l up to its first zero crossing, fs (correlation times;
    NaN when C_l never falls below 1/e within the lags computed)."""

    time_fs: np.ndarray
    c1: np.ndarray
    c2: np.ndarray
    tau1_fs: float
    tau2_fs: float
    n_bonds: int


def _tau(t: np.ndarray, c: np.ndarray) -> float:
    below = np.flatnonzero(c < 1.0 / math.e)
    if not below.size:
        return math.nan
    stop = np.flatnonzero(c <= 0)
    k = int(stop[0]) if stop.size else len(c)
    return float(np.trapezoid(c[:k], t[:k]))


def rotational_acf(
    traj: Trajectory,
    bonds: np.ndarray | None = None,
    *,
    center: str = "P",
    ligand: str = "S",
    cutoff: float = 2.4,
    max_lag: int | None = None,
) -> RotationACF:
    """Rotational autocorrelation of centre→ligand bond vectors over all time origins.

    C₁(t) = ⟨u(0)·u(t)⟩ = Σ_a ⟨u_a u_a⟩_t and C₂(t) = ⟨(3 (u(0)·u(t))² − 1)/2⟩ with
    ⟨(u(0)·u(t))²⟩ = Σ_ab ⟨u_a u_b (0) · u_a u_b (t)⟩, each by FFT over origins.

    Args:
        traj: equally spaced frames.
        bonds: ``[M, 2]`` (centre, ligand) atom pairs (default :func:`monomer_bonds`: the PS₄ of
            the first frame; the same atoms are followed, so an S that leaves its P still counts).
        max_lag: largest lag in frames (default half the frames: longer lags have few origins).
    """
    bonds = monomer_bonds(traj, center, ligand, cutoff) if bonds is None else np.asarray(bonds, dtype=int)
    if not len(bonds):
        raise AnalysisError(f"no isolated {center}{ligand}4 units in the first frame of run {traj.run_id!r}")
    if traj.n_frames < 2:
        raise AnalysisError(f"run {traj.run_id!r}: a rotational ACF needs at least 2 frames")
    u = bond_vectors(traj, bonds)
    t, m = u.shape[:2]
    c1 = sum(_acf(u[:, :, a]).mean(axis=1) for a in range(3))
    x2 = sum(
        (1 if a == b else 2) * _acf(u[:, :, a] * u[:, :, b]).mean(axis=1)
        for a in range(3)
        for b in range(a, 3)
    )
    c2 = 1.5 * x2 - 0.5
    time = np.arange(t) * traj.dt_fs
    k = max(2, t // 2 + 1) if max_lag is None else min(t, max_lag + 1)
    return RotationACF(time[:k], c1[:k], c2[:k], _tau(time[:k], c1[:k]), _tau(time[:k], c2[:k]), m)


# ---------------------------------------------------------------------- melt relaxation
@dataclass
class SelfRelaxation:
    """Self motion of one species with the centre-of-mass drift removed: is a melt a liquid?

    Attributes:
        species: element.
        q: wave number of F_s, Å⁻¹.
        time_fs: ``[L]`` lag times, fs.
        fs: ``[L]`` self-intermediate scattering function F_s(q, t) = ⟨sin(q|Δr|)/(q|Δr|)⟩ (isotropic
            average over directions, atoms and time origins).
        msd: ``[L]`` mean squared displacement, Å².
        tau_alpha_fs: structural (α) relaxation time, the lag where F_s falls to 1/e (linear
            interpolation), fs; NaN when it does not within the lags computed.
        alpha: MSD exponent d ln MSD / d ln t fitted over the second half of the lags (1: diffusive,
            < 1: caged / sub-diffusive).
        d_cm2_s: MSD slope / 6 over the second half of the lags, cm²/s (meaningful when alpha ≈ 1).
        n_atoms: atoms of the species.
        duration_fs: time covered by the frames, fs.
    """

    species: str
    q: float
    time_fs: np.ndarray
    fs: np.ndarray
    msd: np.ndarray
    tau_alpha_fs: float
    alpha: float
    d_cm2_s: float
    n_atoms: int
    duration_fs: float

    @property
    def relaxed(self) -> bool:
        """F_s decayed below 1/e at a lag of at most a third of the run: the species' structure
        relaxed (for the network former of a melt: the melt is a liquid) several times over."""
        return math.isfinite(self.tau_alpha_fs) and self.tau_alpha_fs <= self.duration_fs / 3.0


def self_relaxation(
    traj: Trajectory,
    species: str,
    *,
    q: float | None = None,
    max_lag: int | None = None,
    max_origins: int = 200,
) -> SelfRelaxation:
    """F_s(q, t), τ_α and the drift-free MSD of ``species`` (unwrapped positions needed).

    The whole system's centre-of-mass displacement is subtracted frame by frame (a Langevin
    thermostat lets it wander by Å over tens of ps, which would look like diffusion).

    Args:
        traj: equally spaced, unwrapped frames.
        species: element to follow (e.g. P, the network former of a thiophosphate melt).
        q: wave number, Å⁻¹ (default 2π / the first neighbour shell of g_aa of the species holding
            at least one neighbour per atom (:func:`shell_peak`), from the RDF of 20 frames: the
            length over which its neighbour shell rearranges).
        max_lag: largest lag in frames (default half the frames).
        max_origins: time origins per lag, evenly spaced (bounds the cost on long runs).
    """
    from ase.data import atomic_masses, atomic_numbers

    idx = traj.indices(species)
    if traj.n_frames < 3:
        raise AnalysisError(f"run {traj.run_id!r}: relaxation needs at least 3 frames")
    masses = np.array([atomic_masses[atomic_numbers[x]] for x in traj.symbols])
    com = (traj.positions * masses[None, :, None]).sum(axis=1) / masses.sum()
    x = traj.positions[:, idx] - com[:, None, :]
    if q is None:
        rd = rdf(traj, [(species, species)], max_frames=20)
        key = (species, species)
        r_pk = shell_peak(rd.r, rd.g[key], rd.n[key]) if key in rd.g else math.nan
        if not math.isfinite(r_pk):
            raise AnalysisError(f"run {traj.run_id!r}: no {species}-{species} RDF peak to set q; give q")
        q = 2.0 * math.pi / r_pk
    if not q > 0:
        raise AnalysisError(f"q must be positive (1/Å), got {q}")
    t = traj.n_frames
    k_max = max(2, t // 2) if max_lag is None else max(1, min(t - 1, max_lag))
    dt = traj.dt_fs
    lags = np.arange(k_max + 1)
    fs = np.ones(len(lags))
    msd = np.zeros(len(lags))
    for k in lags[1:]:
        n_orig = t - k
        origins = np.unique(np.linspace(0, n_orig - 1, min(n_orig, max_origins)).round().astype(int))
        d = np.linalg.norm(x[origins + k] - x[origins], axis=-1)
        qd = q * d
        fs[k] = float(np.where(qd > 1e-8, np.sin(qd) / np.where(qd > 1e-8, qd, 1.0), 1.0).mean())
        msd[k] = float((d * d).mean())
    time = lags * dt
    below = np.flatnonzero(fs < 1.0 / math.e)
    if below.size:
        b = int(below[0])
        f0, f1 = fs[b - 1], fs[b]
        tau = float(time[b - 1] + (f0 - 1.0 / math.e) / (f0 - f1) * (time[b] - time[b - 1]))
    else:
        tau = math.nan
    half = slice(max(1, len(lags) // 2), len(lags))
    tt, mm = time[half], msd[half]
    ok = mm > 0
    if ok.sum() >= 2:
        alpha = float(np.polyfit(np.log(tt[ok]), np.log(mm[ok]), 1)[0])
        slope = float(np.polyfit(tt, mm, 1)[0])
    else:
        alpha, slope = math.nan, math.nan
    return SelfRelaxation(
        species, float(q), time, fs, msd, tau, alpha, slope / 6.0 * 0.1, len(idx), dt * (t - 1)
    )


# ---------------------------------------------------------------------- events
def _smooth(x: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average along axis 0 (window frames; edges use the available frames)."""
    if window <= 1:
        return x
    c = np.cumsum(np.concatenate([np.zeros((1, *x.shape[1:])), x]), axis=0)
    t = x.shape[0]
    lo = np.clip(np.arange(t) - window // 2, 0, t)
    hi = np.clip(np.arange(t) - window // 2 + window, 0, t)
    shape = (-1,) + (1,) * (x.ndim - 1)
    return (c[hi] - c[lo]) / (hi - lo).reshape(shape)


@dataclass
class Events:
    """Jump events: ``atom`` (the ion, or the unit's centre), ``frame`` at which the smoothed
    coordinate crossed the threshold, and the settled jump ``size`` (Å for hops, degrees for
    rotations); ``n_tracked`` ions or units were followed."""

    atom: np.ndarray
    frame: np.ndarray
    size: np.ndarray
    n_tracked: int

    def __len__(self) -> int:
        return len(self.frame)


def _threshold_events(
    x: np.ndarray, distance: Any, threshold: float, settle: int = 0
) -> tuple[list[int], list[int], list[float]]:
    """Events along axis 0 of ``x`` [T, M, ...] when ``distance(x[t], anchor) > threshold``.

    The event's size is the distance from the anchor to ``x[t + settle]`` (where the jump has
    settled), and the anchor moves there.
    """
    atoms, frames, sizes = [], [], []
    anchor = x[0].copy()
    last = x.shape[0] - 1
    for t in range(1, x.shape[0]):
        d = distance(x[t], anchor)
        jumped = np.flatnonzero(d > threshold)
        if not jumped.size:
            continue
        settled = x[min(t + settle, last)]
        size = distance(settled, anchor)
        for m in jumped.tolist():
            atoms.append(m)
            frames.append(t)
            sizes.append(float(size[m]))
        anchor[jumped] = settled[jumped]
    return atoms, frames, sizes


def li_hops(traj: Trajectory, species: str = "Li", *, threshold: float = 1.5, smooth: int = 5) -> Events:
    """Hops of ``species``: the time-smoothed (``smooth`` frames) unwrapped position moves more
    than ``threshold`` Å from where the ion last rested; the new resting point is the smoothed
    position ``smooth`` frames later (the hop's size is measured to it).

    Vibrations (≈ 0.3–0.5 Å) stay below a 1.5 Å threshold, Li–Li site distances in thiophosphates
    (≈ 1.8–3 Å) exceed it. The atom index of each event is the index in the trajectory.
    """
    idx = traj.indices(species)
    x = _smooth(traj.positions[:, idx], smooth)
    a, f, s = _threshold_events(x, lambda p, q: np.linalg.norm(p - q, axis=-1), threshold, smooth)
    return Events(idx[np.array(a, dtype=int)], np.array(f, dtype=int), np.array(s), len(idx))


def rotation_events(
    traj: Trajectory,
    bonds: np.ndarray | None = None,
    *,
    center: str = "P",
    ligand: str = "S",
    cutoff: float = 2.4,
    threshold_deg: float = 60.0,
    smooth: int = 5,
) -> Events:
    """Reorientations of units: some centre→ligand bond of a unit (time-smoothed over ``smooth``
    frames) turns by more than ``threshold_deg`` from its orientation at the unit's last event.

    A C₃ jump of a tetrahedron turns three bonds by 109.5°; librations stay well below 60°.
    The event's ``atom`` is the unit's centre.
    """
    bonds = monomer_bonds(traj, center, ligand, cutoff) if bonds is None else np.asarray(bonds, dtype=int)
    if not len(bonds):
        raise AnalysisError(f"no isolated {center}{ligand}4 units in the first frame of run {traj.run_id!r}")
    u = _smooth(bond_vectors(traj, bonds), smooth)
    u /= np.linalg.norm(u, axis=-1, keepdims=True)
    centers = np.unique(bonds[:, 0])
    unit_of = np.searchsorted(centers, bonds[:, 0])
    # Orientation state per unit: all its bond vectors; distance = largest bond angle change.
    n_b = np.bincount(unit_of)
    if np.any(n_b != n_b[0]):
        raise AnalysisError("rotation_events needs the same number of bonds in every unit")
    order = np.argsort(unit_of, kind="stable")
    x = u[:, order].reshape(u.shape[0], len(centers), int(n_b[0]), 3)

    def angle(p: np.ndarray, q: np.ndarray) -> np.ndarray:
        cos = np.clip((p * q).sum(-1), -1.0, 1.0)
        return np.degrees(np.arccos(cos)).max(axis=-1)

    a, f, s = _threshold_events(x, angle, threshold_deg, smooth)
    return Events(centers[np.array(a, dtype=int)], np.array(f, dtype=int), np.array(s), len(centers))


@dataclass
class HopRotationCorrelation:
    """Paddle-wheel statistics.

    Attributes:
        p_observed: share of hops with a rotation event of a unit within ``r_cut`` within ±``window``.
        p_random: the same with every unit's rotation times circularly shifted at random (mean of
            ``n_shuffles``); the value expected without correlation.
        enhancement: ``p_observed / p_random`` (> 1: hops and nearby rotations coincide).
        lag_fs, xcorr: Pearson cross-correlation of the hop-rate and rotation-rate series,
            hops at t against rotations at t + lag.
    """

    p_observed: float
    p_random: float
    enhancement: float
    n_hops: int
    n_rotations: int
    r_cut: float
    window_fs: float
    lag_fs: np.ndarray
    xcorr: np.ndarray


def hop_rotation_correlation(
    traj: Trajectory,
    hops: Events,
    rotations: Events,
    *,
    r_cut: float = 4.0,
    window: int = 5,
    n_shuffles: int = 20,
    seed: int = 0,
    max_lag: int = 50,
) -> HopRotationCorrelation:
    """Do ions hop when the polyanions next to them rotate?

    Args:
        traj: the trajectory the events came from.
        hops, rotations: from :func:`li_hops` and :func:`rotation_events`.
        r_cut: a unit counts as next to a hop when its centre is within this distance of the
            ion at the hop frame, Å.
        window: ± frames within which a rotation counts as simultaneous.
        n_shuffles: random circular shifts for the uncorrelated baseline (seeded).
        seed: seed of the shifts.
        max_lag: frames of the rate cross-correlation on each side.
    """
    t = traj.n_frames
    all_centers = np.unique(rotations.atom)  # units that never rotate cannot make a hit
    near: list[np.ndarray] = []
    for ion, f in zip(hops.atom.tolist(), hops.frame.tolist(), strict=True):
        if not len(all_centers):
            near.append(np.array([], dtype=int))
            continue
        d = _short_image(traj.positions[f, all_centers] - traj.positions[f, ion], traj.cells[f], r_cut)
        near.append(all_centers[np.linalg.norm(d, axis=-1) < r_cut])
    ev_by_center: dict[int, np.ndarray] = {
        int(c): rotations.frame[rotations.atom == c] for c in all_centers.tolist()
    }

    def share(shift: dict[int, int]) -> float:
        if not len(hops):
            return math.nan
        hit = 0
        for f, cs in zip(hops.frame.tolist(), near, strict=True):
            for c in cs.tolist():
                ev = (ev_by_center[c] + shift.get(c, 0)) % t
                if np.any(np.abs(ev - f) <= window):
                    hit += 1
                    break
        return hit / len(hops)

    p_obs = share({})
    rng = np.random.default_rng(seed)
    p_rand = (
        float(np.mean([share({c: int(rng.integers(0, t)) for c in ev_by_center}) for _ in range(n_shuffles)]))
        if len(hops) and ev_by_center
        else math.nan
    )
    h = np.bincount(hops.frame, minlength=t).astype(float) if len(hops) else np.zeros(t)
    r = np.bincount(rotations.frame, minlength=t).astype(float) if len(rotations) else np.zeros(t)
    lags = np.arange(-min(max_lag, t - 2), min(max_lag, t - 2) + 1) if t > 2 else np.array([0])
    xc = np.full(len(lags), np.nan)
    for k, lag in enumerate(lags.tolist()):
        a, b = (h[: t - lag], r[lag:]) if lag >= 0 else (h[-lag:], r[: t + lag])
        if a.std() > 0 and b.std() > 0:
            xc[k] = float(np.corrcoef(a, b)[0, 1])
    enh = p_obs / p_rand if p_rand and np.isfinite(p_rand) and p_rand > 0 else math.nan
    return HopRotationCorrelation(
        p_obs, p_rand, enh, len(hops), len(rotations), r_cut, window * traj.dt_fs, lags * traj.dt_fs, xc
    )


# ---------------------------------------------------------------------- sites
@dataclass
class SiteOccupancy:
    """Ions per reference site.

    Attributes:
        sites: ``[S, 3]`` fractional coordinates of the sites.
        occupancy: ``[S]`` mean number of ions on each site (an ion belongs to its nearest site
            when closer than ``r_site``).
        on_site_fraction: share of ion-frames on some site (the rest are between sites).
        labels: ``[S]`` site labels (e.g. Wyckoff letters); ``label_occupancy`` averages per label.
    """

    sites: np.ndarray
    occupancy: np.ndarray
    on_site_fraction: float
    r_site: float
    labels: np.ndarray
    label_occupancy: dict[str, float]
    n_frames: int


def site_occupancy(
    traj: Trajectory,
    species: str = "Li",
    sites: np.ndarray | None = None,
    *,
    labels: Sequence[str] | None = None,
    r_site: float = 1.0,
    max_frames: int | None = 200,
) -> SiteOccupancy:
    """Occupancy of reference sites by ``species``.

    Args:
        traj: frames.
        species: the ion.
        sites: ``[S, 3]`` fractional coordinates in the trajectory's cell (e.g. all 48h sites of a
            Li₆PS₅Cl supercell); default the ion positions of the first frame.
        labels: one label per site (default ``"site"``).
        r_site: an ion further than this from every site is between sites, Å.
        max_frames: frames used (evenly spaced).
    """
    idx = traj.indices(species)
    if sites is None:
        sites = traj.positions[0, idx] @ np.linalg.inv(traj.cells[0])
    sites = np.asarray(sites, dtype=float) % 1.0
    labels_arr = np.array(list(labels) if labels is not None else ["site"] * len(sites)).astype(str)
    if labels_arr.shape != (len(sites),):
        raise AnalysisError(f"labels: {len(labels_arr)} labels for {len(sites)} sites")
    frames = _sample(traj.n_frames, max_frames)
    occ = np.zeros(len(sites))
    on = 0
    for f in frames:
        cart = sites @ traj.cells[f]
        d = _short_image(traj.positions[f, idx][:, None, :] - cart[None, :, :], traj.cells[f], r_site)
        dist = np.linalg.norm(d, axis=-1)
        near = np.argmin(dist, axis=1)
        ok = dist[np.arange(len(idx)), near] < r_site
        occ += np.bincount(near[ok], minlength=len(sites))
        on += int(ok.sum())
    occ /= len(frames)
    by_label = {lab: float(occ[labels_arr == lab].mean()) for lab in sorted(set(labels_arr.tolist()))}
    return SiteOccupancy(sites, occ, on / (len(frames) * len(idx)), r_site, labels_arr, by_label, len(frames))


def reference_sites(sites: Any, species: str, cell: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fractional site coordinates in ``cell`` (Å, rows) from the ``species`` atoms of a
    reference structure (e.g. a CIF of the prototype: a partially occupied CIF lists every
    site), repeated to fit ``cell`` when that is an integer supercell of it.

    Returns:
        ``(frac [S, 3], labels [S])``; labels are the CIF site kinds (``kind0``, ...) when known.

    Raises:
        AnalysisError: no such species, or ``cell`` is not an integer repeat of the sites' cell.
    """
    sym = np.array(sites.get_chemical_symbols())
    keep = sym == species
    if not keep.any():
        raise AnalysisError(f"the reference sites hold no {species} (species: {', '.join(sorted(set(sym)))})")
    ratio = np.linalg.solve(sites.cell.array.T, np.asarray(cell).T).T  # cell = ratio @ site cell
    reps = np.round(np.diag(ratio)).astype(int)
    if np.any(reps < 1) or not np.allclose(ratio, np.diag(reps), atol=0.03 * reps.max()):
        raise AnalysisError(
            f"the run's cell is not an integer repeat of the reference sites' cell "
            f"(ratio {np.round(np.diag(ratio), 3).tolist()})"
        )
    kinds = sites.arrays.get("spacegroup_kinds")
    labels = np.array([f"kind{k}" for k in kinds] if kinds is not None else ["site"] * len(sites))
    big = sites.copy()
    big.arrays["site_label"] = labels
    big = big.repeat(tuple(int(r) for r in reps))
    mask = np.array(big.get_chemical_symbols()) == species
    return big.get_scaled_positions(wrap=True)[mask], big.arrays["site_label"][mask]


# ---------------------------------------------------------------------- density
#: amu/Å³ → g/cm³
_AMU_A3_TO_G_CM3 = 1.66053906660


@dataclass
class Density:
    """Mass density of each frame (an NPT run's volume, in the units of the experiment).

    Attributes:
        time_fs: ``[F]`` fs.
        g_cm3: ``[F]`` mass density, g/cm³.
    """

    time_fs: np.ndarray
    g_cm3: np.ndarray

    @property
    def mean(self) -> float:
        """Mean over all frames, g/cm³."""
        return float(self.g_cm3.mean())

    @property
    def second_half(self) -> tuple[float, float]:
        """Mean and standard deviation over the second half of the frames, g/cm³ (after the
        first half of an NPT stage has relaxed the volume)."""
        h = self.g_cm3[len(self.g_cm3) // 2 :]
        return float(h.mean()), float(h.std())

    @property
    def drift(self) -> float:
        """Mean of the last quarter minus the mean of the third quarter, g/cm³: a drift of the
        order of the spread means the volume has not settled."""
        n = len(self.g_cm3)
        if n < 4:
            return math.nan
        return float(self.g_cm3[3 * n // 4 :].mean() - self.g_cm3[n // 2 : 3 * n // 4].mean())


def density(traj: Trajectory) -> Density:
    """Mass density per frame from the frame's cell and the atoms' standard masses, g/cm³."""
    mass = float(sum(atomic_masses[atomic_numbers[x]] for x in traj.symbols))
    vol = np.abs(np.linalg.det(traj.cells))
    if not np.all(vol > 0):
        raise AnalysisError(f"run {traj.run_id!r}: a frame has a degenerate cell (volume 0)")
    return Density(traj.time_fs.copy(), mass / vol * _AMU_A3_TO_G_CM3)


# ---------------------------------------------------------------------- everything
@dataclass
class StructureAnalysis:
    """What ``ssehpc structure`` computes for one run (parts that do not apply are None, with a note)."""

    run_id: str
    rdf: RDF
    units: UnitStats | None = None
    rotation: RotationACF | None = None
    hops: Events | None = None
    rotations: Events | None = None
    correlation: HopRotationCorrelation | None = None
    sites: SiteOccupancy | None = None
    relaxation: dict[str, SelfRelaxation] = field(default_factory=dict)
    density: Density | None = None
    dt_fs: float = math.nan
    n_frames: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def duration_fs(self) -> float:
        """Time covered by the analysed frames, fs."""
        return self.dt_fs * (self.n_frames - 1) if self.n_frames > 1 else math.nan


def analyze_run(
    run: RunStore,
    *,
    species: str = "Li",
    center: str = "P",
    ligand: str = "S",
    bond_cutoff: float = 2.4,
    r_max: float | None = None,
    stride: int = 1,
    hop_threshold: float = 1.5,
    rotation_threshold_deg: float = 60.0,
    smooth: int = 5,
    r_cut: float = 4.0,
    window: int = 5,
    sites: Any = None,
    seed: int = 0,
    relaxation: Sequence[str] | None = None,
) -> StructureAnalysis:
    """RDF + coordination, polyanion units, rotation ACF and events, ion hops, their correlation,
    site occupancy and the self relaxation (:func:`self_relaxation`) of one run (frames ``[::stride]``).

    ``relaxation``: species whose F_s(q, t), τ_α and MSD exponent are computed (default the
    polyanion centre and ligand and the mobile ion, those present; ``()`` for none).

    ``sites`` is a reference structure (``ase.Atoms``, e.g. read from the prototype's CIF) whose
    ``species`` atoms are the sites (:func:`reference_sites`); default the first frame."""
    traj = read_trajectory(run, stride=stride)
    out = StructureAnalysis(run.run_id, rdf(traj, r_max=r_max), n_frames=traj.n_frames)
    out.density = density(traj)
    present = set(traj.symbols.tolist())
    if traj.n_frames >= 2:
        out.dt_fs = traj.dt_fs
    if {center, ligand} <= present:
        out.units = unit_statistics(traj, center=center, ligand=ligand, cutoff=bond_cutoff)
        bonds = monomer_bonds(traj, center, ligand, bond_cutoff)
        if len(bonds) and traj.n_frames >= 2:
            out.rotation = rotational_acf(traj, bonds)
            out.rotations = rotation_events(traj, bonds, threshold_deg=rotation_threshold_deg, smooth=smooth)
        elif not len(bonds):
            out.notes.append(f"no isolated {center}{ligand}4 units: no rotational analysis")
    else:
        out.notes.append(f"no {center}/{ligand}: no polyanion analysis")
    if species in present:
        if traj.n_frames >= 2:
            out.hops = li_hops(traj, species, threshold=hop_threshold, smooth=smooth)
            if out.rotations is not None:
                out.correlation = hop_rotation_correlation(
                    traj, out.hops, out.rotations, r_cut=r_cut, window=window, seed=seed
                )
        if sites is None:
            out.sites = site_occupancy(traj, species)
        else:
            frac, labels = reference_sites(sites, species, traj.cells[0])
            out.sites = site_occupancy(traj, species, frac, labels=labels)
    else:
        out.notes.append(f"no {species}: no hop or site analysis")
    if traj.n_frames >= 3:
        wanted = (
            [x for x in (center, ligand, species) if x in present] if relaxation is None else list(relaxation)
        )
        for x in dict.fromkeys(wanted):
            got = _relaxation_or_note(traj, x, strict=relaxation is not None)
            if isinstance(got, str):
                out.notes.append(got)
            else:
                out.relaxation[x] = got
    if traj.n_frames < 2:
        out.notes.append("one frame: no time-dependent analysis")
    return out


def _relaxation_or_note(traj: Trajectory, species: str, *, strict: bool) -> SelfRelaxation | str:
    """:func:`self_relaxation`, or (unless ``strict``) a note saying why it could not be computed."""
    try:
        return self_relaxation(traj, species)
    except AnalysisError as exc:
        if strict:
            raise
        return f"no self relaxation of {species}: {exc}"


def _s(values: Sequence[str]) -> np.ndarray:
    return np.array(list(values), dtype=object)


def to_datasets(res: StructureAnalysis) -> dict[str, Any]:
    """xarray datasets: ``rdf`` (dims pair, r), ``coordination`` (dim pair), ``units`` (dim kind),
    ``rotation`` (dim lag), ``events`` (dim event), ``correlation`` (dim lag), ``sites`` (dim site),
    ``relaxation`` (dims species, lag), ``density`` (dim frame)."""
    import xarray as xr

    r = res.rdf
    pairs = sorted(r.g)
    out: dict[str, Any] = {
        "rdf": xr.Dataset(
            {
                "g": (("pair", "r"), np.array([r.g[p] for p in pairs]), {"units": "1"}),
                "n": (
                    ("pair", "r"),
                    np.array([r.n[p] for p in pairs]),
                    {"units": "1", "long_name": "running CN"},
                ),
            },
            coords={"pair": _s([f"{a}-{b}" for a, b in pairs]), "r": ("r", r.r, {"units": "angstrom"})},
            attrs={"n_frames": r.n_frames, "run_id": res.run_id},
        ),
    }
    cpairs = sorted(r.cn)
    out["coordination"] = xr.Dataset(
        {
            "cn": ("pair", np.array([r.cn[p] for p in cpairs])),
            "r_min": (
                "pair",
                np.array([r.r_min.get(p, r.r_min.get((p[1], p[0]), math.nan)) for p in cpairs]),
                {"units": "angstrom"},
            ),
            "r_peak": (
                "pair",
                np.array([r.r_peak.get(p, r.r_peak.get((p[1], p[0]), math.nan)) for p in cpairs]),
                {"units": "angstrom"},
            ),
        },
        coords={"pair": _s([f"{a}-{b}" for a, b in cpairs])},
        attrs={"meaning": "cn: neighbours of the second species around the first, up to r_min"},
    )
    if res.units is not None:
        kinds = sorted(res.units.counts)
        u = res.units
        out["units"] = xr.Dataset(
            {
                "count": ("kind", np.array([u.counts[k] for k in kinds])),
                "unit_fraction": ("kind", np.array([u.unit_fraction[k] for k in kinds])),
                "center_fraction": ("kind", np.array([u.center_fraction[k] for k in kinds])),
            },
            coords={"kind": _s(kinds)},
            attrs={
                "n_frames": u.n_frames,
                "free_ligands_per_frame": u.free_ligands,
                "ligand_bonds_per_frame": u.ligand_bonds,
                "ligand_cutoff_A": u.ligand_cutoff,
            },
        )
    if res.rotation is not None:
        ro = res.rotation
        out["rotation"] = xr.Dataset(
            {"c1": ("lag", ro.c1), "c2": ("lag", ro.c2)},
            coords={"time_fs": ("lag", ro.time_fs, {"units": "fs"})},
            attrs={"tau1_fs": ro.tau1_fs, "tau2_fs": ro.tau2_fs, "n_bonds": ro.n_bonds},
        )
    ev = []
    if res.hops is not None:
        ev.append(("hop", res.hops))
    if res.rotations is not None:
        ev.append(("rotation", res.rotations))
    if ev:
        out["events"] = xr.Dataset(
            {
                "kind": ("event", _s([k for k, e in ev for _ in range(len(e))])),
                "atom": ("event", np.concatenate([e.atom for _, e in ev]).astype(np.int64)),
                "frame": ("event", np.concatenate([e.frame for _, e in ev]).astype(np.int64)),
                "size": (
                    "event",
                    np.concatenate([e.size for _, e in ev]).astype(float),
                    {"units": "angstrom (hop) or degree (rotation)"},
                ),
            },
            attrs={
                "dt_fs": res.dt_fs,
                "n_ions": res.hops.n_tracked if res.hops is not None else 0,
                "n_units": res.rotations.n_tracked if res.rotations is not None else 0,
            },
        )
    if res.correlation is not None:
        c = res.correlation
        out["correlation"] = xr.Dataset(
            {"xcorr": ("lag", c.xcorr)},
            coords={"lag_fs": ("lag", c.lag_fs, {"units": "fs"})},
            attrs={
                "p_observed": c.p_observed, "p_random": c.p_random, "enhancement": c.enhancement,
                "n_hops": c.n_hops, "n_rotations": c.n_rotations, "r_cut_A": c.r_cut, "window_fs": c.window_fs,
            },
        )  # fmt: skip
    if res.sites is not None:
        s = res.sites
        out["sites"] = xr.Dataset(
            {"occupancy": ("site", s.occupancy), "frac": (("site", "axis"), s.sites)},
            coords={"label": ("site", _s(s.labels.tolist()))},
            attrs={"on_site_fraction": s.on_site_fraction, "r_site_A": s.r_site, "n_frames": s.n_frames},
        )
    if res.relaxation:
        sp = list(res.relaxation)
        rl = [res.relaxation[x] for x in sp]
        n = min(len(r.time_fs) for r in rl)
        out["relaxation"] = xr.Dataset(
            {
                "fs": (("species", "lag"), np.array([r.fs[:n] for r in rl]), {"long_name": "F_s(q, t)"}),
                "msd": (("species", "lag"), np.array([r.msd[:n] for r in rl]), {"units": "angstrom**2"}),
                "q": ("species", np.array([r.q for r in rl]), {"units": "1/angstrom"}),
                "tau_alpha_fs": ("species", np.array([r.tau_alpha_fs for r in rl]), {"units": "fs"}),
                "alpha": ("species", np.array([r.alpha for r in rl]), {"long_name": "MSD exponent"}),
                "d_cm2_s": ("species", np.array([r.d_cm2_s for r in rl]), {"units": "cm**2/s"}),
                "relaxed": ("species", np.array([r.relaxed for r in rl])),
            },
            coords={"species": _s(sp), "time_fs": ("lag", rl[0].time_fs[:n], {"units": "fs"})},
            attrs={
                "meaning": "self motion, centre-of-mass drift removed; relaxed: tau_alpha <= duration / 3"
            },
        )
    if res.density is not None:
        dn = res.density
        out["density"] = xr.Dataset(
            {"density": ("frame", dn.g_cm3, {"units": "g/cm**3"})},
            coords={"time_fs": ("frame", dn.time_fs, {"units": "fs"})},
            attrs={
                "mean_g_cm3": dn.mean,
                "second_half_mean_g_cm3": dn.second_half[0],
                "second_half_std_g_cm3": dn.second_half[1],
                "drift_g_cm3": dn.drift,
            },
        )
    for ds in out.values():
        ds.attrs["run_id"] = res.run_id
        ds.attrs["notes"] = "; ".join(res.notes)
    return out


def write_structure_analysis(path: str | Path, res: StructureAnalysis) -> list[str]:
    """Write the datasets under ``analysis/structure/<run_id>/<name>`` (replacing earlier ones);
    read them with ``xarray.open_zarr(store, group="analysis/structure/<run_id>/rdf")``."""
    written = []
    for name, ds in to_datasets(res).items():
        group = f"analysis/structure/{res.run_id}/{name}"
        ds.to_zarr(str(path), group=group, mode="w", zarr_format=3, consolidated=False)
        written.append(group)
    return written
