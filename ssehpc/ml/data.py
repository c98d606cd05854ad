"""Training data: labelled frames from extxyz / ASE databases, as neighbour graphs in tensors.

A frame is read with ASE (``ase.io.read(path, index=":")``, which also reads ``.gz`` / ``.bz2`` /
``.xz``-compressed files, as the shipped ``*.extxyz.xz``; or ``ase.db`` for ``.db`` files) and
its labels are taken from the attached calculator (the ``SinglePointCalculator`` convention:
``atoms.get_potential_energy()``, ``get_forces()``, ``get_stress()``), or from ``atoms.info`` /
``atoms.arrays`` keys when given.  Units: Å, eV, eV/Å, and ASE stress in eV/Å³ (positive in
tension), stored as the virial ``W = −σ V`` (eV) to match :class:`~ssehpc.state.State`.

Each frame becomes a :class:`FrameGraph`: the pairs within the model cutoff found by the engine's
own domain + neighbour list (so training and MD see exactly the same pairs), with ``j`` mapped to
the periodic *owner* of the image.  Pair vectors are fixed per frame, so they are computed once.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import ase
import ase.db
import ase.io
import numpy as np
import torch

from ssehpc.neighbors import candidate_pairs
from ssehpc.parallel.domain import SerialDomain
from ssehpc.state import State


class DataError(ValueError):
    """A training file or frame cannot be used (the message names the file and frame)."""


# ------------------------------------------------------------------------------------ reading
def read_frames(paths: str | Path | Sequence[str | Path], *, index: str = ":") -> list[ase.Atoms]:
    """All frames of one or more files (extxyz, ASE ``.db``, any ASE-readable trajectory).

    Each frame gets ``atoms.info["source"] = "<file>:<index>"`` for error messages and reports.

    Raises:
        DataError: a missing or unreadable file, or a file without frames.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    frames: list[ase.Atoms] = []
    for p in paths:
        path = Path(p)
        if not path.is_file():
            raise DataError(f"training data file '{path}' does not exist")
        try:
            if path.suffix == ".db":
                with ase.db.connect(path) as db:
                    got = [row.toatoms(add_additional_information=True) for row in db.select()]
                for a in got:  # ase.db puts key-value pairs under info["key_value_pairs"]
                    a.info.update(a.info.pop("key_value_pairs", {}) or {})
            elif path.suffix in _COMPRESSED:
                got = _read_compressed(path, index)
            else:
                got = ase.io.read(path, index=index)
                got = got if isinstance(got, list) else [got]
        except Exception as exc:
            raise DataError(f"cannot read training data '{path}': {type(exc).__name__}: {exc}") from exc
        if not got:
            raise DataError(f"training data file '{path}' holds no frames")
        for k, a in enumerate(got):
            a.info["source"] = f"{path.name}:{k}"
        frames.extend(got)
    return frames


#: Compressed file suffixes ASE reads transparently, and how to open them.
_COMPRESSED = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}


def open_data(path: str | Path) -> BinaryIO:
    """Open a data file for reading bytes, decompressing ``.gz`` / ``.bz2`` / ``.xz``."""
    path = Path(path)
    return _COMPRESSED.get(path.suffix, open)(path, "rb")


def _read_compressed(path: Path, index: str) -> list[ase.Atoms]:
    """Frames of a compressed file, decompressed in memory first: ``ase.io.read`` on the file
    itself decompresses from the start again for every frame (250 s instead of 1 s for the
    1,088 frames of ``train_hot.extxyz.xz``)."""
    from ase.io.formats import filetype, ioformats

    fmt = filetype(str(path), read=False)
    with open_data(path) as f:
        raw = f.read()
    handle: io.IOBase = io.BytesIO(raw) if ioformats[fmt].isbinary else io.StringIO(raw.decode())
    got = ase.io.read(handle, index=index, format=fmt)
    return got if isinstance(got, list) else [got]


def sha256_files(paths: str | Path | Iterable[str | Path]) -> str:
    """Hex sha256 of the concatenated *content* of ``paths`` (in the given order).

    Compressed files (``.gz``, ``.bz2``, ``.xz``) are hashed decompressed, so a data set keeps its
    hash when it is shipped compressed (``train.extxyz`` and ``train.extxyz.xz`` hash alike).
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    h = hashlib.sha256()
    for p in paths:
        with open_data(p) as f:
            for block in iter(lambda f=f: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class Labels:
    """Where the labels are: ``None`` = the attached calculator, else an ``info``/``arrays`` key."""

    energy_key: str | None = None
    forces_key: str | None = None
    stress_key: str | None = None


def frame_labels(atoms: ase.Atoms, labels: Labels = Labels()) -> tuple[float, np.ndarray, np.ndarray | None]:
    """``(energy eV, forces [n, 3] eV/Å, stress [3, 3] eV/Å³ or None)`` of one frame.

    Raises:
        DataError: energy or forces missing (names the frame).
    """
    src = atoms.info.get("source", "frame")
    calc = atoms.calc
    results = getattr(calc, "results", {}) if calc is not None else {}

    def get(key: str | None, default_name: str, per_atom: bool) -> object:
        if key is not None:
            store = atoms.arrays if per_atom else atoms.info
            return store.get(key)
        if default_name in results:
            return results[default_name]
        store = atoms.arrays if per_atom else atoms.info
        return store.get(default_name)

    energy = get(labels.energy_key, "energy", per_atom=False)
    if energy is None and labels.energy_key is None:
        energy = results.get("free_energy")
    forces = get(labels.forces_key, "forces", per_atom=True)
    if energy is None:
        raise DataError(f"{src}: no energy label (key {labels.energy_key or 'energy'!r})")
    if forces is None:
        raise DataError(f"{src}: no forces label (key {labels.forces_key or 'forces'!r})")
    forces = np.asarray(forces, dtype=np.float64)
    if forces.shape != (len(atoms), 3):
        raise DataError(f"{src}: forces have shape {forces.shape}, expected ({len(atoms)}, 3)")
    stress = get(labels.stress_key, "stress", per_atom=False)
    if stress is not None:
        stress = np.asarray(stress, dtype=np.float64)
        if stress.shape == (6,):  # Voigt xx yy zz yz xz xy
            xx, yy, zz, yz, xz, xy = stress
            stress = np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
        if stress.shape != (3, 3):
            raise DataError(f"{src}: stress has shape {stress.shape}, expected (6,) or (3, 3)")
    if not (np.isfinite(energy) and np.isfinite(forces).all()):
        raise DataError(f"{src}: non-finite energy or forces")
    return float(energy), forces, stress


# ------------------------------------------------------------------------------------ structures
def atoms_to_state(atoms: ase.Atoms, *, dtype: torch.dtype = torch.float64, pad: float = 10.0) -> State:
    """One-system :class:`State` (tags = atom order) from ``atoms``.

    Fully periodic frames keep their cell.  Non-periodic frames (molecules, clusters) are put in
    an orthorhombic box ``pad`` Å wider than the atoms on each side, so no periodic image comes
    within ``pad`` of any atom.

    Raises:
        DataError: mixed periodicity, or a periodic frame with a singular cell.
    """
    pbc = np.asarray(atoms.pbc, dtype=bool)
    pos = np.asarray(atoms.positions, dtype=np.float64)
    if pbc.all():
        cell = np.asarray(atoms.cell.array, dtype=np.float64)
        if abs(np.linalg.det(cell)) < 1e-6:
            raise DataError(f"{atoms.info.get('source', 'frame')}: periodic frame with a singular cell")
    elif not pbc.any():
        lo = pos.min(axis=0) if len(pos) else np.zeros(3)
        hi = pos.max(axis=0) if len(pos) else np.zeros(3)
        cell = np.diag(hi - lo + 2.0 * pad)
        pos = pos - lo + pad
    else:
        raise DataError(
            f"{atoms.info.get('source', 'frame')}: mixed periodicity pbc={pbc.tolist()} is not supported "
            "(use a fully periodic cell, or no periodicity)"
        )
    return State.from_arrays(
        torch.tensor(pos, dtype=dtype),
        torch.tensor(np.asarray(atoms.get_masses()), dtype=dtype),
        torch.tensor(np.asarray(atoms.numbers), dtype=torch.int64),
        torch.tensor(cell, dtype=dtype),
    )


def periodic_pairs(state: State, cutoff: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All ordered pairs within ``cutoff`` Å of a single-system state, periodic images included.

    Returns ``(i, j, rij)``: centre and neighbour *owner* indices ``[P]`` and ``rij = x_j' − x_i``
    ``[P, 3]`` Å (``x_j'`` the image).  Uses the engine's serial domain and neighbour search.
    """
    st = state.clone()
    local = SerialDomain().build_local(st, cutoff)
    i, j = candidate_pairs(local, cutoff, half=False)
    rij = local.positions[j] - local.positions[i]
    n = local.n_owned
    owner = torch.cat([torch.arange(n, dtype=torch.int64), local.ghost_origin])
    return i, owner[j], rij


# ------------------------------------------------------------------------------------ graphs
@dataclass(eq=False)
class FrameGraph:
    """One labelled frame as a graph.

    Attributes:
        species: ``[n]`` atomic numbers.
        i, j: ``[P]`` centre and neighbour (owner) indices, pairs with ``r < cutoff``.
        rij: ``[P, 3]`` Å pair vectors (float64).
        energy: eV.
        forces: ``[n, 3]`` eV/Å.
        virial: ``[3, 3]`` eV (``−σV``), or ``None`` without stress label.
        volume: cell volume, Å³ (NaN for a non-periodic frame).
        source: ``"<file>:<index>"``.
    """

    species: torch.Tensor
    i: torch.Tensor
    j: torch.Tensor
    rij: torch.Tensor
    energy: float
    forces: torch.Tensor
    virial: torch.Tensor | None
    volume: float
    source: str

    @property
    def n_atoms(self) -> int:
        return int(self.species.numel())


def build_graph(atoms: ase.Atoms, cutoff: float, labels: Labels = Labels()) -> FrameGraph:
    """:class:`FrameGraph` of ``atoms`` within ``cutoff`` Å (labels read by :func:`frame_labels`)."""
    energy, forces, stress = frame_labels(atoms, labels)
    state = atoms_to_state(atoms, pad=cutoff + 1.0)
    i, j, rij = periodic_pairs(state, cutoff)
    virial = None
    if stress is not None and all(atoms.pbc):
        virial = -torch.tensor(stress, dtype=torch.float64) * float(atoms.get_volume())
    return FrameGraph(
        species=torch.as_tensor(np.asarray(atoms.numbers), dtype=torch.int64),
        i=i,
        j=j,
        rij=rij,
        energy=energy,
        forces=torch.tensor(forces, dtype=torch.float64),
        virial=virial,
        volume=float(atoms.get_volume()) if all(atoms.pbc) else math.nan,
        source=str(atoms.info.get("source", "frame")),
    )


@dataclass(eq=False)
class Batch:
    """Several frames concatenated (atoms and pairs offset), ready for
    :meth:`~ssehpc.ml.model.MomentPotential.evaluate`.

    Attributes:
        species: ``[N]``; frame_of_atom: ``[N]``; n_atoms: ``[B]``.
        i, j: ``[P]`` batch-global atom indices; rij: ``[P, 3]`` Å; frame_of_pair: ``[P]``.
        energy: ``[B]`` eV; forces: ``[N, 3]`` eV/Å; virial: ``[B, 3, 3]`` eV (zeros where
        ``has_virial`` is false); volume: ``[B]`` Å³.
        index: ``[B]`` frame indices in the dataset (for per-member bootstrap weights).
    """

    species: torch.Tensor
    frame_of_atom: torch.Tensor
    n_atoms: torch.Tensor
    i: torch.Tensor
    j: torch.Tensor
    rij: torch.Tensor
    frame_of_pair: torch.Tensor
    energy: torch.Tensor
    forces: torch.Tensor
    virial: torch.Tensor
    has_virial: torch.Tensor
    volume: torch.Tensor
    index: torch.Tensor

    @property
    def n_frames(self) -> int:
        return int(self.n_atoms.numel())

    def to(self, device: torch.device | str, dtype: torch.dtype) -> Batch:
        """Floating tensors to ``dtype``, all to ``device``."""
        out = {}
        for name, t in vars(self).items():
            t = t.to(device)
            out[name] = t.to(dtype) if t.is_floating_point() else t
        return Batch(**out)


def collate(graphs: Sequence[FrameGraph], index: Sequence[int]) -> Batch:
    """Concatenate ``graphs[k]`` for ``k`` in ``index`` into one :class:`Batch`."""
    parts = [graphs[k] for k in index]
    counts = torch.tensor([g.n_atoms for g in parts], dtype=torch.int64)
    offsets = torch.cumsum(counts, 0) - counts
    n_pairs = torch.tensor([g.i.numel() for g in parts], dtype=torch.int64)
    b = len(parts)
    return Batch(
        species=torch.cat([g.species for g in parts]),
        frame_of_atom=torch.repeat_interleave(torch.arange(b), counts),
        n_atoms=counts,
        i=torch.cat([g.i + o for g, o in zip(parts, offsets.tolist(), strict=True)]),
        j=torch.cat([g.j + o for g, o in zip(parts, offsets.tolist(), strict=True)]),
        rij=torch.cat([g.rij for g in parts]),
        frame_of_pair=torch.repeat_interleave(torch.arange(b), n_pairs),
        energy=torch.tensor([g.energy for g in parts], dtype=torch.float64),
        forces=torch.cat([g.forces for g in parts]),
        virial=torch.stack(
            [g.virial if g.virial is not None else torch.zeros(3, 3, dtype=torch.float64) for g in parts]
        ),
        has_virial=torch.tensor([g.virial is not None for g in parts]),
        volume=torch.tensor([g.volume for g in parts], dtype=torch.float64),
        index=torch.as_tensor(list(index), dtype=torch.int64),
    )


# ------------------------------------------------------------------------------------ statistics
def composition_matrix(graphs: Sequence[FrameGraph], species: Sequence[int]) -> torch.Tensor:
    """``[n_frames, T]`` float64 atom counts of each element per frame."""
    zs = torch.tensor(list(species), dtype=torch.int64)
    return torch.stack([(g.species[:, None] == zs[None, :]).sum(0) for g in graphs]).to(torch.float64)


def reference_energies(graphs: Sequence[FrameGraph], species: Sequence[int]) -> torch.Tensor:
    """``[T]`` eV per-element energies ``e_z`` minimising ``Σ_frames (E − Σ_z n_z e_z)²``.

    Least squares with the minimum-norm solution when compositions are collinear (e.g. all frames
    of one stoichiometry), which still removes the composition-linear part of the energy.
    """
    a = composition_matrix(graphs, species)
    e = torch.tensor([g.energy for g in graphs], dtype=torch.float64)
    return torch.linalg.lstsq(a, e[:, None], driver="gelsd").solution[:, 0]


def average_neighbors(graphs: Sequence[FrameGraph]) -> float:
    """Mean number of neighbours within the cutoff per atom."""
    pairs = sum(int(g.i.numel()) for g in graphs)
    atoms = sum(g.n_atoms for g in graphs)
    return pairs / max(atoms, 1)


def force_rms(graphs: Sequence[FrameGraph]) -> float:
    """RMS force component, eV/Å."""
    f = torch.cat([g.forces.flatten() for g in graphs])
    return float(f.pow(2).mean().sqrt()) if f.numel() else 1.0
