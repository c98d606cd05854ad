"""Mean squared displacements by FFT over all time origins, out of core from a run store.

Conventions (``docs/analysis.md``): positions are unwrapped, in Å, frames equally spaced by
``dt_frame`` fs.  For a trajectory of ``T`` frames the MSD at lag ``k`` (``0 ≤ k < T``) averages
over all ``T − k`` origins::

    MSD(k) = 1/(T − k) · Σ_{t=0}^{T−k−1} |r(t + k) − r(t)|²

computed per atom and per Cartesian direction with the Wiener–Khinchin theorem in
``O(T log T)`` (Calandrini et al., *Collection SFN* 12, 201 (2011)).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ssehpc.io.zarr_store import RunStore

#: Formal charges (e) of common mobile ions and framework species; unknown species get none.
FORMAL_CHARGES: dict[str, float] = {
    "H": 1.0,
    "Li": 1.0,
    "Na": 1.0,
    "K": 1.0,
    "Rb": 1.0,
    "Cs": 1.0,
    "Ag": 1.0,
    "Cu": 1.0,
    "Mg": 2.0,
    "Ca": 2.0,
    "Zn": 2.0,
    "F": -1.0,
    "Cl": -1.0,
    "Br": -1.0,
    "I": -1.0,
    "O": -2.0,
    "S": -2.0,
}


class AnalysisError(ValueError):
    """Input an analysis cannot use (names the problem: run, species, frame counts)."""


def msd_fft(x: NDArray[np.floating]) -> NDArray[np.float64]:
    """MSD over all time origins, per trailing index, by FFT.

    Args:
        x: positions ``[T, ...]`` (any trailing shape, e.g. ``[T, atom, 3]``), Å.

    Returns:
        ``[T, ...]`` float64: ``MSD[k, ...] = mean_t (x[t+k, ...] − x[t, ...])²``, Å²; row 0 is 0.
    """
    x = np.asarray(x, dtype=np.float64)
    T = x.shape[0]
    if T < 2:
        raise AnalysisError(f"an MSD needs at least 2 frames, got {T}")
    counts = (T - np.arange(T)).reshape((T,) + (1,) * (x.ndim - 1)).astype(np.float64)
    # S2(k) = Σ_t x(t) x(t+k): autocorrelation by zero-padded FFT (power spectrum in place of the
    # spectrum, so that at most one complex array of length nfft/2 is alive at a time).
    nfft = 1 << int(np.ceil(np.log2(2 * T)))
    f = np.fft.rfft(x, n=nfft, axis=0)
    power = f.real * f.real
    power += f.imag * f.imag
    del f
    s2 = np.fft.irfft(power, n=nfft, axis=0)[:T]
    del power
    # S1(k) = Σ_{t<T-k} x(t)² + x(t+k)² = head(k) + tail(k) via one cumulative sum.
    csum = np.cumsum(x * x, axis=0)
    out = np.empty_like(x)
    out[0] = csum[-1]
    np.subtract(csum[-1], csum[:-1], out=out[1:])  # tail(k) = Σ_{t ≥ k} x(t)²
    out += csum[::-1]  # head(k) = Σ_{t ≤ T-1-k} x(t)²
    del csum
    out -= s2
    out -= s2
    out /= counts
    out[0] = 0.0
    return np.maximum(out, 0.0, out=out)


#: Bytes of work memory per position value (frame × atom × direction) of :func:`msd_fft`: the
#: float64 input, cumulative sums, output and the FFT arrays of length ``nfft ≤ 4 T`` (measured
#: peak 6.6–9.4 float64 per value for ``T`` = 10⁵ and 7·10⁴; 16 leaves room).
FFT_BYTES_PER_VALUE = 16 * 8


def msd_direct(x: NDArray[np.floating]) -> NDArray[np.float64]:
    """The same as :func:`msd_fft` by the direct ``O(T²)`` double loop (reference for tests)."""
    x = np.asarray(x, dtype=np.float64)
    T = x.shape[0]
    out = np.zeros_like(x)
    for k in range(1, T):
        out[k] = ((x[k:] - x[:-k]) ** 2).mean(axis=0)
    return out


def lag_grid(n_frames: int, n_max: int = 256) -> NDArray[np.int64]:
    """At most ``n_max`` lag indices, evenly spaced over ``1 .. n_frames − 1`` (per-atom MSDs are
    kept only there, so the fit needs ``O(n_max · atoms)`` memory whatever the length)."""
    if n_frames < 2:
        return np.zeros(0, dtype=np.int64)
    return np.unique(np.linspace(1, n_frames - 1, min(n_max, n_frames - 1)).round().astype(np.int64))


@dataclass
class RunMSD:
    """MSD data of one run and one mobile species (all lengths Å, times fs).

    Attributes:
        run_id: the run.
        species: element symbol analysed.
        n_atoms: number of atoms of ``species``.
        n_frames: committed frames used.
        dt_frame_fs: time between frames, fs.
        temperature_K: target temperature of the run, K.
        volume_A3: mean cell volume over the frames, Å³.
        charge: charge per ion used for the collective MSD, e.
        drift: what was subtracted (``"framework"``, ``"all"`` or ``"none"``).
        msd_xyz: ``[lag, 3]`` species-averaged MSD per direction, Å².
        per_atom: ``[n_grid, n_atoms]`` per-atom MSD (directions summed) at ``grid``, Å².
        grid: lag indices of ``per_atom``.
        collective: ``[frame, 3]`` charge displacement ``Σ_i q (r_i(t) − r_com(t))``, e·Å.
        com: ``[frame, 3]`` displacement of the reference centre of mass that was removed, Å.
    """

    run_id: str
    species: str
    n_atoms: int
    n_frames: int
    dt_frame_fs: float
    temperature_K: float  # noqa: N815 (unit or symbol in the name)
    volume_A3: float  # noqa: N815 (unit or symbol in the name)
    charge: float
    drift: str
    msd_xyz: NDArray[np.float64]
    per_atom: NDArray[np.float64]
    grid: NDArray[np.int64]
    collective: NDArray[np.float64]
    com: NDArray[np.float64]
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def lag_time_fs(self) -> NDArray[np.float64]:
        return np.arange(self.n_frames) * self.dt_frame_fs

    @property
    def msd(self) -> NDArray[np.float64]:
        """Species-averaged MSD (directions summed), Å²."""
        return self.msd_xyz.sum(axis=1)

    @property
    def collective_msd_xyz(self) -> NDArray[np.float64]:
        """``⟨|Σ q Δr|²⟩`` per direction over all origins, e²Å²."""
        return msd_fft(self.collective)


def msd_from_positions(
    positions: Any,
    *,
    mobile: NDArray[np.bool_],
    reference: NDArray[np.bool_] | None = None,
    masses: NDArray[np.floating] | None = None,
    charge: float = 1.0,
    n_grid: int = 256,
    memory_budget_bytes: int = 256 * 2**20,
) -> tuple[
    NDArray[np.float64], NDArray[np.float64], NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]
]:
    """Species MSD, per-atom MSD on a lag grid and the charge displacement, out of core.

    Args:
        positions: ``[frame, atom, 3]`` unwrapped positions, Å — a NumPy or dask array (only
            one block of atoms is in memory at a time).
        mobile: ``[atom]`` mask of the analysed species.
        reference: ``[atom]`` mask whose centre-of-mass displacement is removed from every atom
            (``None``: no drift removal).
        masses: ``[atom]`` masses, amu (for the centre of mass; default equal).
        charge: charge per mobile ion, e.
        n_grid: number of lags at which per-atom MSDs are kept (:func:`lag_grid`).
        memory_budget_bytes: memory for the atom blocks, bytes: half for the block read from the
            store (stored dtype), half for the FFT work arrays of a sub-block
            (:data:`FFT_BYTES_PER_VALUE`).  Peak use is about this plus ``O(T)`` arrays.

    Returns:
        ``(msd_xyz [T, 3], per_atom [n_grid, n_mobile], grid, collective [T, 3], com [T, 3])``.
    """
    import dask.array as da

    pos = positions if isinstance(positions, da.Array) else da.from_array(np.asarray(positions))
    T, n_all = int(pos.shape[0]), int(pos.shape[1])
    mobile = np.asarray(mobile, dtype=bool)
    idx = np.flatnonzero(mobile)
    if idx.size == 0:
        raise AnalysisError("no atoms of the analysed species")
    m = np.ones(n_all) if masses is None else np.asarray(masses, dtype=np.float64)

    # Pass 1 (streamed over frame chunks): centre of mass of the reference and Σ q r of the ions.
    sums = [pos[:, idx].astype(np.float64).sum(axis=1) * charge]
    if reference is not None and np.any(reference):
        ref = np.flatnonzero(reference)
        w = m[ref] / m[ref].sum()
        sums.append(da.einsum("tai,a->ti", pos[:, ref].astype(np.float64), w))
    # Always on local threads: a distributed Client that happens to be the default scheduler
    # (inside a campaign controller) would read the store on its workers, and ``da.store`` below
    # would fill a copy of ``raw`` there instead of this process's array.
    computed = da.compute(*sums, scheduler="threads")
    coll = np.asarray(computed[0])
    if len(computed) > 1:
        com = np.asarray(computed[1])
        com = com - com[0]
    else:
        com = np.zeros((T, 3))
    collective = coll - charge * idx.size * com

    # Pass 2: FFT MSD per block of atoms.  Stores chunk positions by frames (every chunk holds all
    # atoms of a frame range), so each read of an atom block decodes the whole array: read wide
    # blocks in the stored dtype with half the budget, one pass over the store per block, and run
    # the float64 FFT on narrower sub-blocks with the other half.
    grid = lag_grid(T, n_grid)
    itemsize = np.dtype(pos.dtype).itemsize
    read_block = max(1, int(memory_budget_bytes // 2 // (T * 3 * itemsize)))
    fft_block = max(1, int(memory_budget_bytes // 2 // (T * 3 * FFT_BYTES_PER_VALUE)))
    msd_sum = np.zeros((T, 3))
    per_atom = np.empty((grid.size, idx.size))
    for r0 in range(0, idx.size, read_block):
        sel = idx[r0 : r0 + read_block]
        raw = np.empty((T, sel.size, 3), dtype=pos.dtype)
        # da.store writes chunk by chunk into ``raw`` (no concatenated copy of the block).
        da.store(pos[:, sel], raw, lock=False, scheduler="threads")
        for b0 in range(0, sel.size, fft_block):
            block = raw[:, b0 : b0 + fft_block].astype(np.float64)
            block -= com[:, None, :]
            msd = msd_fft(block)  # [T, a, 3]
            del block
            msd_sum += msd.sum(axis=1)
            a0 = r0 + b0
            per_atom[:, a0 : a0 + msd.shape[1]] = msd[grid].sum(axis=2)
            del msd
        del raw
    return msd_sum / idx.size, per_atom, grid, collective, com


def _symbols(numbers: Sequence[int]) -> list[str]:
    from ase.data import chemical_symbols

    return [chemical_symbols[int(z)] for z in numbers]


def run_msd(
    run: RunStore,
    species: str,
    *,
    drift: str = "framework",
    charges: dict[str, float] | None = None,
    n_grid: int = 256,
    memory_budget_bytes: int = 256 * 2**20,
) -> RunMSD:
    """MSD data of ``species`` in one run, from its committed frames.

    Args:
        run: the run.
        species: element symbol of the mobile ion (``"Li"``).
        drift: ``"framework"`` removes the centre-of-mass displacement of all *other* species
            (the immobile framework; falls back to all atoms for a one-species system),
            ``"all"`` that of all atoms, ``"none"`` nothing.
        charges: species → charge (e); default :data:`FORMAL_CHARGES`, else +1 for the ion.
        n_grid, memory_budget_bytes: see :func:`msd_from_positions`.

    Raises:
        AnalysisError: species not in the run, fewer than 2 committed frames, several systems,
            frames not equally spaced.
    """
    if drift not in ("framework", "all", "none"):
        raise AnalysisError(f"drift must be 'framework', 'all' or 'none', got {drift!r}")
    n = run.n_frames
    if n < 2:
        raise AnalysisError(f"run {run.run_id!r} has {n} committed frames; an MSD needs at least 2")
    if int(run.attrs.get("n_systems", 1)) != 1:
        raise AnalysisError(
            f"run {run.run_id!r} holds {run.attrs.get('n_systems')} systems; analyse one at a time"
        )
    symbols = np.array(_symbols(run.read_static("species")))
    mobile = symbols == species
    if not mobile.any():
        raise AnalysisError(
            f"species {species!r} is not in run {run.run_id!r} (species: {', '.join(sorted(set(symbols)))})"
        )
    frames = run.read_frames(fields=["time_fs", "cell"])
    t = np.asarray(frames["time_fs"], dtype=np.float64)
    steps = np.diff(t)
    if steps.size == 0 or np.any(steps <= 0) or np.ptp(steps) > 1e-6 * max(1.0, abs(steps.mean())):
        raise AnalysisError(f"run {run.run_id!r}: frames are not equally spaced in time")
    volume = float(np.mean(np.abs(np.linalg.det(np.asarray(frames["cell"])[:, 0]))))
    if drift == "none":
        reference = None
    elif drift == "all" or mobile.all():
        reference = np.ones_like(mobile)
        drift = "all" if drift == "framework" and mobile.all() else drift
    else:
        reference = ~mobile
    table = FORMAL_CHARGES if charges is None else charges
    charge = float(table.get(species, 1.0))
    msd_xyz, per_atom, grid, collective, com = msd_from_positions(
        run.to_dask("positions"),
        mobile=mobile,
        reference=reference,
        masses=run.read_static("masses"),
        charge=charge,
        n_grid=n_grid,
        memory_budget_bytes=memory_budget_bytes,
    )
    return RunMSD(
        run_id=run.run_id,
        species=species,
        n_atoms=int(mobile.sum()),
        n_frames=n,
        dt_frame_fs=float(steps.mean()),
        temperature_K=float(run.attrs.get("temperature_K") or np.nan),
        volume_A3=volume,
        charge=charge,
        drift=drift,
        msd_xyz=msd_xyz,
        per_atom=per_atom,
        grid=grid,
        collective=collective,
        com=com,
        attrs=run.attrs,
    )
