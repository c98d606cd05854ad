"""Importing external trajectories: minimum-jump unwrapping, streaming in batches, errors."""

from __future__ import annotations

import ase
import ase.io
import numpy as np
import pytest

from ssehpc.analysis import analyze_store
from ssehpc.io.import_traj import TrajectoryImportError, import_trajectory, unwrap_positions
from ssehpc.io.zarr_store import RunStore

CUBIC = np.eye(3) * 6.0
TRICLINIC = np.array([[6.0, 0.0, 0.0], [1.5, 5.5, 0.0], [-1.0, 0.8, 6.2]])


def _walk(seed: int, n_frames: int, n_li: int, step_A: float, cell: np.ndarray) -> np.ndarray:
    """Unwrapped ``[T, n_li + 4, 3]`` Å: Li random walkers (``step_A`` per direction and frame)
    plus 4 S atoms vibrating about fixed sites."""
    rng = np.random.default_rng(seed)
    start = rng.uniform(0, 1, (n_li + 4, 3)) @ cell
    steps = rng.normal(scale=step_A, size=(n_frames - 1, n_li + 4, 3))
    steps[:, n_li:] = 0.0
    pos = np.concatenate([start[None], start[None] + steps.cumsum(axis=0)])
    pos[:, n_li:] += rng.normal(scale=0.03, size=(n_frames, 4, 3))
    return pos


def _wrapped_images(pos: np.ndarray, cell: np.ndarray, n_li: int) -> list[ase.Atoms]:
    images = []
    for p in pos:
        a = ase.Atoms(["Li"] * n_li + ["S"] * 4, positions=p, cell=cell, pbc=True)
        a.wrap()
        images.append(a)
    return images


@pytest.mark.parametrize("cell", [CUBIC, TRICLINIC], ids=["cubic", "triclinic"])
def test_unwrapping_recovers_the_true_displacements(tmp_path, cell):
    pos = _walk(0, 300, 12, 0.4, cell)  # walkers cross the 6 Å cell many times
    images = _wrapped_images(pos, cell, 12)
    wrapped = np.stack([a.positions for a in images])
    assert np.abs(np.diff(wrapped, axis=0)).max() > 3.0  # the input really has boundary jumps
    run = import_trajectory(
        images, tmp_path / "s.zarr", "r", dt_fs=10.0, temperature_K=500.0, batch_frames=64
    )
    got = run.read_frames(fields=["positions"])["positions"].astype(np.float64)
    np.testing.assert_allclose(got - got[0], pos - pos[0], atol=2e-4)
    np.testing.assert_allclose(got[0], wrapped[0], atol=1e-5)  # starts from the first frame as given
    assert run.status == "completed"
    assert run.n_frames == 300
    np.testing.assert_allclose(run.read_frames(fields=["time_fs"])["time_fs"], np.arange(300) * 10.0)
    assert run.attrs["temperature_K"] == 500.0


def test_batches_do_not_change_the_result(tmp_path):
    pos = _walk(1, 50, 6, 0.5, CUBIC)
    images = _wrapped_images(pos, CUBIC, 6)
    a = import_trajectory(images, tmp_path / "a.zarr", "r", dt_fs=1.0, temperature_K=300.0, batch_frames=7)
    b = import_trajectory(images, tmp_path / "b.zarr", "r", dt_fs=1.0, temperature_K=300.0)
    np.testing.assert_array_equal(a.read_frames()["positions"], b.read_frames()["positions"])
    direct = unwrap_positions(
        np.stack([x.get_scaled_positions(wrap=False) for x in images]), np.stack([CUBIC] * 50)
    )
    np.testing.assert_allclose(a.read_frames()["positions"], direct, atol=1e-5)


def test_imported_file_analyses_to_the_true_D(tmp_path):
    """extended XYZ of wrapped frames → store → ``analyze_store``: D* covers the true value,
    which the wrapped positions (bounded displacements) would not give."""
    D, dt = 0.02, 2.0  # Å²/fs, fs → 0.28 Å per direction and frame
    pos = _walk(2, 400, 48, np.sqrt(2 * D * dt), CUBIC)
    path = tmp_path / "traj.extxyz"
    ase.io.write(path, _wrapped_images(pos, CUBIC, 48))
    import_trajectory(path, tmp_path / "s.zarr", "aimd", dt_fs=dt, temperature_K=600.0)
    p = analyze_store(tmp_path / "s.zarr").points[0]
    assert p.D_lo <= D * 0.1 <= p.D_hi, (p.D, p.D_lo, p.D_hi)
    assert p.runs == ["aimd"]
    assert p.temperature_K == 600.0


def test_bad_input_is_named(tmp_path):
    pos = _walk(3, 20, 4, 0.3, CUBIC)
    images = _wrapped_images(pos, CUBIC, 4)
    with pytest.raises(TrajectoryImportError, match="dt_fs must be positive"):
        import_trajectory(images, tmp_path / "a.zarr", "r", dt_fs=0.0, temperature_K=300.0)
    jumpy = [a.copy() for a in images]
    jumpy[5].positions[0] += [2.7, 0.0, 0.0]  # 0.45 of the cell in one frame
    with pytest.raises(TrajectoryImportError, match=r"frame 5: .* unwrapping is ambiguous"):
        import_trajectory(jumpy, tmp_path / "b.zarr", "r", dt_fs=1.0, temperature_K=300.0)
    assert RunStore.open(tmp_path / "b.zarr", "r").status == "failed"
    other = [*images[:3], ase.Atoms(["S"] * 8, positions=pos[3], cell=CUBIC, pbc=True)]
    with pytest.raises(TrajectoryImportError, match="frame 3: the atoms differ"):
        import_trajectory(other, tmp_path / "c.zarr", "r", dt_fs=1.0, temperature_K=300.0)
    with pytest.raises(TrajectoryImportError, match="1 frame"):
        import_trajectory(images[:1], tmp_path / "d.zarr", "r", dt_fs=1.0, temperature_K=300.0)
    with pytest.raises(TrajectoryImportError, match="does not exist"):
        import_trajectory(tmp_path / "missing.xyz", tmp_path / "e.zarr", "r", dt_fs=1.0, temperature_K=300.0)
