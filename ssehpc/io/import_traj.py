"""Import an external trajectory (AIMD, another MD code) into a run store for ``ssehpc analyze``.

Any format ASE reads works (VASP ``XDATCAR``/``vasprun.xml``, extended XYZ, LAMMPS dumps, ASE
``.traj``, …; ``.gz`` files are opened transparently), as does a sequence of ``ase.Atoms``.
The frames become one run with status ``completed``, so :func:`ssehpc.analysis.analyze_store`
and ``ssehpc analyze`` treat it like a run made by ssehpc::

    from ssehpc.io.import_traj import import_trajectory
    import_trajectory("XDATCAR.gz", "aimd.zarr", "li6ps5cl_600K", dt_fs=100.0, temperature_K=600.0)
    # then: ssehpc analyze aimd.zarr

**Unwrapping.**  Most codes write positions wrapped into the cell, and a wrapped trajectory has
jumps of a lattice vector whenever an atom crosses the cell boundary.  Positions are unwrapped
by the *minimum-jump* rule: between consecutive frames each atom moves by the fractional
displacement ``Δs − round(Δs)`` (the nearest periodic image), converted to Å with the cell of the
later frame and accumulated from the first frame's positions.  This is exact when no atom moves
by half a cell or more between stored frames; a fractional step of more than
:data:`MAX_FRACTIONAL_STEP` is rejected as ambiguous (store frames more often).  Already
unwrapped input is left unchanged by the rule as long as that condition holds (pass
``unwrap=False`` to skip it).

Frames are streamed: only ``batch_frames`` frames are held in memory (ASE's ``iread`` for files).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ssehpc.io.zarr_store import RunStore, StoreError, ZarrStore

#: Largest accepted per-frame displacement in fractional coordinates (a jump near 0.5 cannot be
#: told from its periodic image).
MAX_FRACTIONAL_STEP = 0.4


class TrajectoryImportError(StoreError):
    """The trajectory cannot be imported (names the frame and the problem)."""


def _frames(source: str | Path | Iterable[Any], fmt: str | None, index: str) -> Iterator[Any]:
    if isinstance(source, (str, Path)):
        import ase.io

        path = Path(source)
        if not path.exists():
            raise TrajectoryImportError(f"trajectory file '{path}' does not exist")
        return iter(ase.io.iread(str(path), index=index, format=fmt))
    return iter(source)


def unwrap_positions(
    frac: np.ndarray, cells: np.ndarray, first_cartesian: np.ndarray | None = None, *, first_frame: int = 0
) -> np.ndarray:
    """Unwrapped Cartesian positions of a wrapped trajectory by the minimum-jump rule.

    Args:
        frac: ``[frame, atom, 3]`` fractional coordinates (any image).
        cells: ``[frame, 3, 3]`` lattice vectors as rows, Å.
        first_cartesian: ``[atom, 3]`` Cartesian positions of frame 0, Å (default ``frac[0] @
            cells[0]``).
        first_frame: index of ``frac[0]`` in the whole trajectory (for messages).

    Returns:
        ``[frame, atom, 3]`` float64, Å.

    Raises:
        TrajectoryImportError: a fractional step larger than :data:`MAX_FRACTIONAL_STEP`.
    """
    frac = np.asarray(frac, dtype=np.float64)
    step = np.diff(frac, axis=0)
    step -= np.round(step)
    big = np.abs(step).max(axis=(1, 2)) if step.size else np.zeros(0)
    bad = np.flatnonzero(big > MAX_FRACTIONAL_STEP)
    if bad.size:
        raise TrajectoryImportError(
            f"frame {first_frame + bad[0] + 1}: an atom moved {big[bad[0]]:.2f} of a cell vector since the previous "
            f"frame (more than {MAX_FRACTIONAL_STEP}); unwrapping is ambiguous — store frames more often"
        )
    start = frac[0] @ cells[0] if first_cartesian is None else np.asarray(first_cartesian, dtype=np.float64)
    disp = np.einsum("tai,tij->taj", step, np.asarray(cells, dtype=np.float64)[1:])
    return np.concatenate([start[None], start[None] + np.cumsum(disp, axis=0)])


def import_trajectory(
    source: str | Path | Iterable[Any],
    store: str | Path | ZarrStore,
    run_id: str,
    dt_fs: float,
    temperature_K: float,
    *,
    format: str | None = None,
    index: str = ":",
    unwrap: bool = True,
    attrs: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    batch_frames: int = 1024,
) -> RunStore:
    """Write a trajectory into ``store`` as run ``run_id`` (status ``completed``).

    Args:
        source: a trajectory file ASE can read, or a sequence/iterator of ``ase.Atoms`` (same
            atoms in the same order in every frame).
        store: the store (created if missing) or an open writable :class:`ZarrStore`.
        run_id: name of the new run.
        dt_fs: time between consecutive *stored* frames, fs (MD time step × output interval; for
            VASP ``POTIM × NBLOCK``).
        temperature_K: temperature of the run, K (the analysis groups and converts σ with it).
        format: ASE format name when the file name does not tell it (``"vasp-xdatcar"``).
        index: ASE frame selection for files (``":"`` all, ``"100:"`` drop the first 100, ``"::2"``).
        unwrap: unwrap by the minimum-jump rule (module docstring); ``False`` takes the
            positions as they are (already unwrapped input).
        attrs: extra run attributes (``composition``, ``source``, …).
        overwrite: replace an existing run of that name.
        batch_frames: frames held in memory at a time.

    Returns:
        The new run.

    Raises:
        TrajectoryImportError: fewer than 2 frames, atoms that change between frames, a non-positive
            ``dt_fs``, or ambiguous unwrapping.
    """
    from ssehpc.io.structure import atoms_to_state

    if not dt_fs > 0:
        raise TrajectoryImportError(f"dt_fs must be positive (time between stored frames, fs), got {dt_fs}")
    if not temperature_K > 0:
        raise TrajectoryImportError(f"temperature_K must be positive, got {temperature_K}")
    zs = store if isinstance(store, ZarrStore) else ZarrStore.open(store, "a")
    frames = _frames(source, format, index)
    try:
        first = next(frames)
    except StopIteration:
        raise TrajectoryImportError("the trajectory has no frames") from None
    numbers = np.asarray(first.numbers).copy()
    n_atoms = numbers.size
    run_attrs = {
        "ensemble": "external",
        "dt_fs": float(dt_fs),
        "temperature_K": float(temperature_K),
        "composition": first.get_chemical_formula(mode="metal"),
        "source": str(source) if isinstance(source, (str, Path)) else "ase.Atoms sequence",
        "unwrapped_on_import": bool(unwrap),
        **dict(attrs or {}),
    }
    run = zs.create_run(run_id, atoms_to_state(first), run_attrs, overwrite=overwrite)
    run.set_status("running")
    nan = np.full(1, np.nan)
    prev_frac: np.ndarray | None = None
    prev_cart: np.ndarray | None = None
    n = 0

    def flush(batch: list[tuple[np.ndarray, np.ndarray]]) -> None:
        nonlocal prev_frac, prev_cart, n
        frac = np.stack([f for f, _ in batch])
        cells = np.stack([c for _, c in batch])
        if unwrap:
            if prev_frac is not None:
                # Prepend the last frame of the previous batch so that its step is unwrapped too.
                pos = unwrap_positions(
                    np.concatenate([prev_frac[None], frac]),
                    np.concatenate([cells[:1], cells]),
                    prev_cart,
                    first_frame=n - 1,
                )[1:]
            else:
                pos = unwrap_positions(frac, cells)
        else:
            pos = np.einsum("tai,tij->taj", frac, cells)
        run.append_frames(
            [
                {
                    "positions": pos[i],
                    "cell": cells[i][None],
                    "time_fs": (n + i) * float(dt_fs),
                    "energy_eV": nan,
                    "kinetic_energy_eV": nan,
                    "temperature_K": nan,
                    "pressure_GPa": nan,
                    "conserved_energy_eV": nan,
                    "step": n + i,
                }
                for i in range(len(batch))
            ]
        )
        prev_frac, prev_cart = frac[-1], pos[-1]
        n += len(batch)

    batch: list[tuple[np.ndarray, np.ndarray]] = []
    try:
        for k, atoms in enumerate(_chain(first, frames)):
            if atoms.numbers.size != n_atoms or np.any(atoms.numbers != numbers):
                raise TrajectoryImportError(
                    f"frame {k}: the atoms differ from frame 0 (same atoms, same order needed)"
                )
            cell = np.asarray(atoms.cell.array, dtype=np.float64)
            if abs(np.linalg.det(cell)) < 1e-12:
                raise TrajectoryImportError(f"frame {k}: no periodic cell (a 3-D cell is needed to unwrap)")
            frac = atoms.positions @ np.linalg.inv(cell)
            batch.append((frac, cell))
            if len(batch) >= batch_frames:
                flush(batch)
                batch = []
        if batch:
            flush(batch)
        if n < 2:
            raise TrajectoryImportError(f"the trajectory has {n} frame(s); an analysis needs at least 2")
    except Exception as exc:
        run.set_status("failed", f"import: {exc}")
        raise
    run.update_attrs(steps=n - 1)
    run.set_status("completed", step=n - 1)
    return run


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest
