"""Synthetic trajectories with known diffusion coefficients (vectorised NumPy, seeded)."""

from __future__ import annotations

import numpy as np

from ssehpc.analysis.msd import RunMSD, msd_from_positions


def free_walk(rng: np.random.Generator, n_atoms: int, n_frames: int, D: float, dt: float = 1.0) -> np.ndarray:
    """Gaussian random walk, ``D`` in Å²/fs, frames every ``dt`` fs: ``[T, N, 3]`` Å."""
    steps = rng.normal(scale=np.sqrt(2 * D * dt), size=(n_frames - 1, n_atoms, 3))
    return np.concatenate([np.zeros((1, n_atoms, 3)), steps.cumsum(axis=0)])


def lattice_hops(
    rng: np.random.Generator, n_atoms: int, n_frames: int, D: float, dt: float = 1.0, a: float = 1.0
) -> np.ndarray:
    """Hops to one of 6 cubic-lattice neighbours (spacing ``a`` Å) with probability
    ``6 D dt / a²`` per frame, so ``MSD = 6 D t`` exactly: ``[T, N, 3]`` Å."""
    p = 6 * D * dt / a**2
    assert p <= 1
    hop = rng.random((n_frames - 1, n_atoms)) < p
    d = rng.integers(0, 6, (n_frames - 1, n_atoms))
    steps = np.zeros((n_frames - 1, n_atoms, 3))
    np.put_along_axis(steps, (d % 3)[..., None], (np.where(d < 3, a, -a) * hop)[..., None], axis=2)
    return np.concatenate([np.zeros((1, n_atoms, 3)), steps.cumsum(axis=0)])


def run_msd_from(
    positions: np.ndarray,
    mobile: np.ndarray | None = None,
    *,
    dt: float = 1.0,
    T: float = 300.0,
    volume: float = 1000.0,
    charge: float = 1.0,
    drift: str = "none",
) -> RunMSD:
    """A :class:`RunMSD` from positions in memory (``drift``: ``"none"`` or ``"framework"``)."""
    n = positions.shape[1]
    mobile = np.ones(n, dtype=bool) if mobile is None else mobile
    ref = ~mobile if drift == "framework" else None
    msd_xyz, per_atom, grid, coll, com = msd_from_positions(
        positions, mobile=mobile, reference=ref, charge=charge
    )
    return RunMSD(
        run_id="synthetic",
        species="Li",
        n_atoms=int(mobile.sum()),
        n_frames=positions.shape[0],
        dt_frame_fs=dt,
        temperature_K=T,
        volume_A3=volume,
        charge=charge,
        drift=drift,
        msd_xyz=msd_xyz,
        per_atom=per_atom,
        grid=grid,
        collective=coll,
        com=com,
    )
