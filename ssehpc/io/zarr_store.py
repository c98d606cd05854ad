"""The Zarr v3 run store: trajectories, thermodynamics and checkpoints of MD runs.

Layout (``docs/store.md`` has the full schema)::

    store.zarr/                      attrs: schema_version, ssehpc_version, created, units, spec
      runs/<run_id>/                 attrs: status, error, n_frames, last_step, spec, ensemble,
                                            dt_fs, temperature_K, pressure_GPa, seed, steps, ...
        positions          float32 [frame, atom, 3]     Å, unwrapped, tag order
        cell               float64 [frame, system, 3, 3] Å, lattice vectors as rows
        step               int64   [frame]
        time_fs            float64 [frame]              fs
        energy_eV          float64 [frame, system]      eV, potential energy
        kinetic_energy_eV  float64 [frame, system]      eV
        temperature_K      float64 [frame, system]      K
        pressure_GPa       float64 [frame, system]      GPa
        conserved_energy_eV float64 [frame, system]     eV, Etot + thermostat/barostat energy
        species, masses, tag, system_idx   [atom]       static, tag order
        checkpoint/                  see :mod:`ssehpc.io.checkpoint`

Per-system values carry a trailing ``system`` axis (length 1 for a single system), so one run
group holds a whole batch and one commit counter covers every array.

**Commit rule.**  :meth:`RunStore.append_frames` resizes and writes every frame array (``step``
last), then sets the run attribute ``n_frames``.  Readers and resumed runs use only the first
``n_frames`` frames; anything past them (a crash mid-write) is ignored and later overwritten.  On a
local file system Zarr writes each key to a temporary file and renames it, so the attribute update
itself is atomic.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
import zarr

import ssehpc
from ssehpc import units
from ssehpc.state import State

#: Version of the layout described in docs/store.md.
SCHEMA_VERSION: int = 1

#: Lifecycle of a run.  ``pending`` marks a placeholder group declared by a campaign before the
#: run starts (attributes only, no arrays); ``extrapolating`` is reserved for runs stopped by the
#: committee uncertainty (adaptive campaigns).
STATUSES = ("pending", "created", "running", "stopped", "completed", "failed", "interrupted", "extrapolating")

#: Bytes per chunk that the frame chunking aims at.
TARGET_CHUNK_BYTES: int = 8 << 20
#: Atoms per chunk above which positions are split into atom blocks (huge cells).
MAX_ATOM_BLOCK: int = 1 << 17
#: Most frames in one chunk of ``positions``.
MAX_CHUNK_FRAMES: int = 128
#: Frames per chunk of the small per-frame arrays.
SCALAR_CHUNK_FRAMES: int = 4096


class StoreError(Exception):
    """The store or run is missing, malformed, or asked for something it does not hold."""


@dataclass(frozen=True)
class FrameField:
    """A per-frame array: dtype, shape of one frame (with ``"atom"``/``"system"`` placeholders),
    and unit."""

    dtype: str
    shape: tuple[int | str, ...]
    unit: str


#: The per-frame arrays of every run, in write order (``step`` last: it completes a frame).
FRAME_FIELDS: dict[str, FrameField] = {
    "positions": FrameField("float32", ("atom", 3), "angstrom"),
    "cell": FrameField("float64", ("system", 3, 3), "angstrom"),
    "time_fs": FrameField("float64", (), "fs"),
    "energy_eV": FrameField("float64", ("system",), "eV"),
    "kinetic_energy_eV": FrameField("float64", ("system",), "eV"),
    "temperature_K": FrameField("float64", ("system",), "K"),
    "pressure_GPa": FrameField("float64", ("system",), "GPa"),
    "conserved_energy_eV": FrameField("float64", ("system",), "eV"),
    "step": FrameField("int64", (), "step"),
}

#: Per-frame arrays of committee runs (filled from ``ForceCompute.extras``).
COMMITTEE_FRAME_FIELDS: dict[str, FrameField] = {
    "force_dev_max": FrameField("float64", ("system",), "eV/angstrom"),
    "force_dev_mean": FrameField("float64", ("system",), "eV/angstrom"),
}

#: Per-atom arrays written once, in tag order.
STATIC_FIELDS: dict[str, tuple[str, str]] = {
    "species": ("int64", "atomic number"),
    "masses": ("float64", "amu"),
    "tag": ("int64", "global atom id"),
    "system_idx": ("int64", "system index"),
}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def frame_chunks(n_atoms: int, itemsize: int = 4) -> tuple[int, int]:
    """``(frames, atoms)`` per chunk of ``positions``: many frames × all atoms, or atom blocks of
    :data:`MAX_ATOM_BLOCK` for huge cells, about :data:`TARGET_CHUNK_BYTES` each."""
    atom_block = max(1, min(n_atoms, MAX_ATOM_BLOCK))
    frames = TARGET_CHUNK_BYTES // (atom_block * 3 * itemsize)
    return int(max(1, min(MAX_CHUNK_FRAMES, frames))), atom_block


def _open_group(path: str | Path, mode: str) -> zarr.Group:
    try:
        return zarr.open_group(str(path), mode=mode, zarr_format=3)
    except FileNotFoundError as exc:
        if Path(path).exists():
            raise StoreError(f"'{path}' is not a Zarr v3 store (no group metadata)") from exc
        raise StoreError(f"store '{path}' does not exist") from exc
    except ValueError as exc:  # zarr's own errors and malformed JSON metadata
        raise StoreError(f"'{path}' is not a Zarr v3 store: {exc}") from exc


class ZarrStore:
    """A store file holding one or many runs.

    Args:
        group: the root Zarr group (use :meth:`open`).
        path: where it lives (for messages).
    """

    def __init__(self, group: zarr.Group, path: str | Path) -> None:
        self.group = group
        self.path = Path(path)

    @classmethod
    def open(cls, path: str | Path, mode: str = "r", *, spec: Mapping[str, Any] | None = None) -> ZarrStore:
        """Open (``mode="r"`` read only, ``"r+"`` read/write) or create (``"a"``) a store.

        Args:
            path: directory of the store.
            mode: ``r``, ``r+`` or ``a``.
            spec: recorded in the root attributes when the store is created.

        Raises:
            StoreError: missing store (``r``/``r+``), not an ssehpc store, or a newer schema.
        """
        path = Path(path)
        if mode in ("r", "r+") and not path.exists():
            raise StoreError(f"store '{path}' does not exist")
        group = _open_group(path, mode)
        attrs = group.attrs.asdict()
        if "schema_version" not in attrs:
            if mode == "a" and not list(group.keys()):
                group.update_attributes(
                    {
                        "schema_version": SCHEMA_VERSION,
                        "ssehpc_version": ssehpc.__version__,
                        "created": _now(),
                        "units": units.UNITS,
                        "spec": dict(spec) if spec is not None else None,
                    }
                )
            else:
                raise StoreError(f"'{path}' is not an ssehpc store (no schema_version attribute)")
        elif int(attrs["schema_version"]) > SCHEMA_VERSION:
            raise StoreError(
                f"store '{path}' has schema version {attrs['schema_version']}, newer than this "
                f"ssehpc ({ssehpc.__version__}) understands ({SCHEMA_VERSION})"
            )
        return cls(group, path)

    @property
    def attrs(self) -> dict[str, Any]:
        return self.group.attrs.asdict()

    def update_attrs(self, **changes: Any) -> None:
        """Set root attributes (one metadata write).  In a campaign only the controller calls
        this: workers write their own run groups only, never the root."""
        if self.group.read_only:
            raise StoreError(f"store '{self.path}' is open read-only")
        self.group.update_attributes(changes)

    @property
    def runs(self) -> list[str]:
        """Run ids, sorted."""
        if "runs" not in self.group:
            return []
        return sorted(self.group["runs"].group_keys())

    def run(self, run_id: str | None = None) -> RunStore:
        """The run ``run_id``; with ``None`` the only run of the store.

        Raises:
            StoreError: if the run does not exist, or ``None`` is ambiguous.
        """
        if run_id is not None and "/" not in run_id:
            # Direct lookup: listing every run reads one metadata file per run (campaign stores
            # hold thousands), so the listing is only made for the error message.
            try:
                group = self.group["runs"][run_id]
            except KeyError:
                group = None
            if isinstance(group, zarr.Group):
                return RunStore(group, self.path)
        runs = self.runs
        if run_id is None:
            if len(runs) != 1:
                raise StoreError(
                    f"store '{self.path}' holds {len(runs)} runs ({', '.join(runs) or 'none'}); name one"
                )
            run_id = runs[0]
        if run_id not in runs:
            raise StoreError(f"store '{self.path}' has no run {run_id!r} (runs: {', '.join(runs) or 'none'})")
        return RunStore(self.group["runs"][run_id], self.path)

    def declare_run(self, run_id: str, attrs: Mapping[str, Any]) -> RunStore:
        """Create a ``pending`` placeholder ``runs/<run_id>`` (attributes only, no arrays), which
        :meth:`create_run` replaces when the run starts.  Campaigns declare all their runs up
        front, so that every run of the campaign has a group and a status from the beginning.

        Raises:
            StoreError: for an invalid id or if the run already exists.
        """
        if not run_id or "/" in run_id:
            raise StoreError(f"invalid run id {run_id!r}")
        runs = self.group.require_group("runs")
        if run_id in runs:
            raise StoreError(f"run {run_id!r} already exists in store '{self.path}'")
        group = runs.create_group(run_id)
        now = _now()
        group.update_attributes(
            {
                **dict(attrs),
                "schema_version": SCHEMA_VERSION,
                "ssehpc_version": ssehpc.__version__,
                "n_frames": 0,
                "last_step": None,
                "status": "pending",
                "error": None,
                "created": now,
                "updated": now,
            }
        )
        return RunStore(group, self.path)

    def create_run(
        self,
        run_id: str,
        state: State,
        attrs: Mapping[str, Any],
        *,
        overwrite: bool = False,
        extra_frame_fields: Mapping[str, FrameField] | None = None,
    ) -> RunStore:
        """Create ``runs/<run_id>`` for ``state`` (empty trajectory, static arrays written).

        Args:
            run_id: name of the run group.
            state: initial state (defines atoms, species, masses, systems).
            attrs: run attributes (spec, ensemble, dt_fs, temperature_K, seed, steps, ...).
            overwrite: replace an existing run of that name instead of raising (a ``pending``
                placeholder from :meth:`declare_run` is always replaced).
            extra_frame_fields: additional per-frame arrays (e.g. committee force deviations).

        Raises:
            StoreError: if the run exists (and is not a placeholder) and ``overwrite`` is false.
        """
        if not run_id or "/" in run_id:
            raise StoreError(f"invalid run id {run_id!r}")
        runs = self.group.require_group("runs")
        reuse = False
        if run_id in runs:
            # A placeholder is filled in place (its group never disappears for a reader); arrays
            # left by a start that died before recording its status are replaced.
            reuse = runs[run_id].attrs.get("status") == "pending"
            if not reuse:
                if not overwrite:
                    raise StoreError(
                        f"run {run_id!r} already exists in store '{self.path}' (resume it, or overwrite it)"
                    )
                del runs[run_id]
        group = runs[run_id] if reuse else runs.create_group(run_id)
        n_atoms, n_sys = state.n_atoms, state.n_systems
        order = torch.argsort(state.tag)
        statics = {
            "species": state.species[order],
            "masses": state.masses[order].double(),
            "tag": state.tag[order],
            "system_idx": state.system_idx[order],
        }
        for name, (dtype, unit) in STATIC_FIELDS.items():
            arr = group.create_array(
                name, data=statics[name].detach().cpu().numpy().astype(dtype), overwrite=reuse
            )
            arr.attrs["units"] = unit
        fields = {**FRAME_FIELDS, **(extra_frame_fields or {})}
        frames_per_chunk, atom_block = frame_chunks(n_atoms)
        for name, f in fields.items():
            shape = tuple(n_atoms if d == "atom" else n_sys if d == "system" else int(d) for d in f.shape)
            if "atom" in f.shape:
                chunks = (
                    frames_per_chunk,
                    *(atom_block if d == "atom" else s for d, s in zip(f.shape, shape, strict=True)),
                )
            else:
                chunks = (SCALAR_CHUNK_FRAMES, *shape)
            fill = 0 if f.dtype.startswith("int") else math.nan
            arr = group.create_array(
                name, shape=(0, *shape), chunks=chunks, dtype=f.dtype, fill_value=fill, overwrite=reuse
            )
            arr.attrs["units"] = f.unit
        group.update_attributes(
            {
                **dict(attrs),
                "schema_version": SCHEMA_VERSION,
                "ssehpc_version": ssehpc.__version__,
                "units": units.UNITS,
                "n_atoms": n_atoms,
                "n_systems": n_sys,
                "frame_fields": sorted(fields),
                "n_frames": 0,
                "last_step": None,
                "status": "created",
                "error": None,
                "created": _now(),
                "updated": _now(),
            }
        )
        return RunStore(group, self.path)


class RunStore:
    """One run group: committed frames, status and the checkpoint group.

    Args:
        group: the ``runs/<run_id>`` group (use :meth:`open` or :meth:`ZarrStore.run`).
        store_path: path of the store (for messages).
    """

    def __init__(self, group: zarr.Group, store_path: str | Path) -> None:
        self.group = group
        self.store_path = Path(store_path)
        self._attrs = group.attrs.asdict()
        self._chunk_frames: int | None = None

    @classmethod
    def open(cls, path: str | Path, run_id: str | None = None, *, mode: str = "r") -> RunStore:
        """Open run ``run_id`` (or the only run) of the store at ``path``."""
        return ZarrStore.open(path, mode).run(run_id)

    # ------------------------------------------------------------------ attributes
    @property
    def run_id(self) -> str:
        return self.group.basename

    @property
    def attrs(self) -> dict[str, Any]:
        """Run attributes as last read or written by this handle (see :meth:`refresh`)."""
        return dict(self._attrs)

    def refresh(self) -> None:
        """Re-read the run metadata (another process may have committed frames)."""
        self.group = zarr.open_group(
            self.group.store, path=self.group.path, mode="r" if self.read_only else "r+"
        )
        self._attrs = self.group.attrs.asdict()

    @property
    def read_only(self) -> bool:
        return bool(self.group.read_only)

    def update_attrs(self, **changes: Any) -> None:
        """Set run attributes (one atomic metadata write)."""
        changes["updated"] = _now()
        self.group.update_attributes(changes)
        self._attrs.update(changes)

    @property
    def status(self) -> str:
        return str(self._attrs.get("status"))

    @property
    def error(self) -> str | None:
        return self._attrs.get("error")

    def set_status(self, status: str, error: str | None = None, *, step: int | None = None) -> None:
        """Record the run's status (one of :data:`STATUSES`) and, if given, the MD step the run
        has reached (attribute ``current_step``)."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        changes: dict[str, Any] = {"status": status, "error": error}
        if step is not None:
            changes["current_step"] = int(step)
        self.update_attrs(**changes)

    @property
    def current_step(self) -> int | None:
        """The MD step the run has reached (recorded at status changes and checkpoints)."""
        v = self._attrs.get("current_step")
        return None if v is None else int(v)

    @property
    def n_frames(self) -> int:
        """Number of committed frames."""
        return int(self._attrs.get("n_frames", 0))

    @property
    def n_atoms(self) -> int:
        return int(self._attrs["n_atoms"])

    @property
    def n_systems(self) -> int:
        return int(self._attrs["n_systems"])

    @property
    def last_step(self) -> int | None:
        """Step of the last committed frame (see also :attr:`current_step`)."""
        v = self._attrs.get("last_step")
        return None if v is None else int(v)

    @property
    def target_steps(self) -> int | None:
        """Total steps the run aims at (attribute ``steps``), if recorded."""
        v = self._attrs.get("steps")
        return None if v is None else int(v)

    @property
    def frame_fields(self) -> list[str]:
        return list(self._attrs.get("frame_fields", FRAME_FIELDS))

    @property
    def frame_chunk_frames(self) -> int:
        """Frames per chunk of ``positions`` (writers buffer to this boundary; read once: the
        chunk shape never changes, and reading the array metadata costs ~10 ms per frame)."""
        if self._chunk_frames is None:
            self._chunk_frames = int(self.group["positions"].chunks[0])
        return self._chunk_frames

    @property
    def checkpoint_group(self) -> zarr.Group:
        """``runs/<run_id>/checkpoint`` (created on first use when writable)."""
        if self.read_only:
            if "checkpoint" not in self.group:
                raise StoreError(f"run {self.run_id!r} of store '{self.store_path}' has no checkpoint")
            return self.group["checkpoint"]
        return self.group.require_group("checkpoint")

    # ------------------------------------------------------------------ writing
    def append_frames(self, frames: Sequence[Mapping[str, Any]]) -> None:
        """Write ``frames`` after the committed ones, then commit them.

        Each frame maps every name of :attr:`frame_fields` to its value for that frame
        (``positions`` ``[atom, 3]`` Å in tag order, ``cell`` ``[system, 3, 3]`` Å, ``step``, ...).

        Raises:
            StoreError: if a field is missing or has the wrong shape.
        """
        if not frames:
            return
        n0 = self.n_frames
        k = len(frames)
        names = self.frame_fields
        # ``step`` completes a frame, so it is written after every other array.
        names = [n for n in names if n != "step"] + ["step"]
        for name in names:
            arr = self.group[name]
            try:
                data = np.stack([np.asarray(f[name], dtype=arr.dtype) for f in frames])
            except KeyError as exc:
                raise StoreError(f"frame lacks field {name!r}") from exc
            if data.shape[1:] != arr.shape[1:]:
                raise StoreError(f"frame field {name!r} has shape {data.shape[1:]}, expected {arr.shape[1:]}")
            if arr.shape[0] != n0 + k:
                arr.resize((n0 + k, *arr.shape[1:]))
            arr[n0 : n0 + k] = data
        self.update_attrs(n_frames=n0 + k, last_step=int(frames[-1]["step"]))

    def truncate(self, n_frames: int) -> None:
        """Keep only the first ``n_frames`` committed frames (drop the rest and any uncommitted
        data), so that the frames a resumed run writes are never duplicated."""
        n_frames = max(0, min(int(n_frames), self.n_frames))
        last = int(self.group["step"][n_frames - 1]) if n_frames else None
        self.update_attrs(n_frames=n_frames, last_step=last)
        for name in self.frame_fields:
            arr = self.group[name]
            if arr.shape[0] != n_frames:
                arr.resize((n_frames, *arr.shape[1:]))

    def truncate_after_step(self, step: int) -> None:
        """Drop committed frames whose step is larger than ``step``."""
        steps = self.group["step"][: self.n_frames]
        self.truncate(int(np.searchsorted(steps, step, side="right")))

    # ------------------------------------------------------------------ reading
    def _frame_range(self, start: int, stop: int | None) -> tuple[int, int]:
        n = self.n_frames
        start = n + start if start < 0 else start
        stop = n if stop is None else (n + stop if stop < 0 else min(stop, n))
        return max(0, min(start, n)), max(0, stop)

    def read_frames(
        self,
        start: int = 0,
        stop: int | None = None,
        stride: int = 1,
        fields: Iterable[str] | None = None,
        atoms: slice | np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """Committed frames ``[start:stop:stride]`` as NumPy arrays.

        Args:
            start, stop, stride: frame selection (Python slice semantics, committed frames only).
            fields: per-frame arrays to read (default all).
            atoms: atom selection (index array or slice, tag order) applied to per-atom arrays.
        """
        a, b = self._frame_range(start, stop)
        sel = slice(a, b, stride)
        out = {}
        for name in fields if fields is not None else self.frame_fields:
            if name not in self.frame_fields:
                raise StoreError(f"run {self.run_id!r} has no frame array {name!r} (has {self.frame_fields})")
            arr = self.group[name]
            if name == "positions" and atoms is not None:
                out[name] = arr[sel][:, atoms] if isinstance(atoms, np.ndarray) else arr[sel, atoms]
            else:
                out[name] = arr[sel]
        return out

    def read_static(self, name: str) -> np.ndarray:
        """A per-atom static array (``species``, ``masses``, ``tag``, ``system_idx``)."""
        if name not in STATIC_FIELDS:
            raise StoreError(f"no static array {name!r} (have {sorted(STATIC_FIELDS)})")
        return self.group[name][:]

    def to_dask(self, name: str) -> Any:
        """The committed frames of ``name`` as a lazy ``dask.array`` (out-of-core analysis)."""
        import dask.array as da

        return da.from_zarr(self.group[name])[: self.n_frames]

    def summary(self) -> dict[str, Any]:
        """What ``ssehpc info`` prints for this run."""
        a = self._attrs
        last = self.current_step if self.current_step is not None else self.last_step
        dt = a.get("dt_fs")
        return {
            "run_id": self.run_id,
            "status": self.status,
            "error": self.error,
            "n_frames": self.n_frames,
            "last_step": last,
            "last_frame_step": self.last_step,
            "steps": a.get("steps"),
            "simulated_fs": None if last is None or dt is None else last * float(dt),
            "n_atoms": a.get("n_atoms"),
            "n_systems": a.get("n_systems"),
            "ensemble": a.get("ensemble"),
            "dt_fs": dt,
            "temperature_K": a.get("temperature_K"),
            "checkpoint_step": a.get("checkpoint_step"),
            "units": a.get("units"),
        }
