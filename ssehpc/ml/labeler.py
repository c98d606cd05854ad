"""Teacher labelling: energies, forces and stresses from any ASE calculator, written as extxyz.

A :class:`Labeler` wraps a *factory* for an ASE calculator — a DFT code through ASE in
production, or the CHGNet foundation model (:meth:`Labeler.chgnet`, optional extra
``pip install ssehpc[teacher]``) — and turns ``ase.Atoms`` into labelled frames:

* energy (eV), forces (eV/Å) and, for 3D-periodic cells, stress (eV/Å³, ASE convention:
  Voigt order xx yy zz yz xz xy, positive in tension) attached as a
  :class:`~ase.calculators.singlepoint.SinglePointCalculator`, which ``ase.io`` writes to and
  reads back from extxyz;
* provenance in ``atoms.info``: ``teacher``, ``teacher_version``, ``label_index`` (position in
  the input list) plus whatever the generator put there (``config_type``, ``origin``, ``seed``,
  ``temperature_K``, ``strain`` …). The key ``source`` is left alone: ``ssehpc.ml.data``
  overwrites it with ``file:index`` on reading;
* a frame whose calculation fails (SCF not converged, non-finite numbers, …) is skipped and
  recorded as a :class:`LabelFailure` with the error text; completed labels are never lost.

:meth:`Labeler.label` appends each frame to the output extxyz as soon as it is labelled (one
``write`` + ``fsync`` per frame) and records failures in ``<out>.failures.jsonl``; run it again
on the same input list and it skips the frames already in either file (a torn last frame from
an interrupted write is cut off first). :func:`label_chunk` is the pure, picklable unit of work
for farming chunks out with Dask (``client.map(label_chunk, [labeler] * n, chunks, starts)``):
no file I/O, and the calculator is built once per worker process.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ase
import ase.io
import numpy as np
from ase.calculators.calculator import Calculator
from ase.calculators.singlepoint import SinglePointCalculator

log = logging.getLogger(__name__)

#: Install hint shown when the default teacher is missing.
TEACHER_EXTRA_HINT = "pip install 'ssehpc[teacher]'  (or: pip install chgnet)"

#: ``atoms.info`` keys that extxyz cannot write (ASE spacegroup objects) and are dropped.
_DROP_INFO = ("spacegroup", "unit_cell", "occupancy")

#: Per-process calculator cache for :func:`label_chunk` (key: :attr:`Labeler.key`).
_CALCULATORS: dict[str, Calculator] = {}


class LabelError(RuntimeError):
    """A teacher calculation gave no usable label (message says why)."""


@dataclass(frozen=True)
class LabelFailure:
    """One frame the teacher could not label.

    Attributes:
        index: position of the frame in the input list.
        error: ``"<ExceptionType>: <message>"``.
        info: the frame's ``atoms.info`` provenance (JSON-safe subset).
    """

    index: int
    error: str
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class LabelResult:
    """Frames labelled in one call (or chunk), and the failures.

    Attributes:
        frames: labelled copies, each with a ``SinglePointCalculator``.
        failures: frames that could not be labelled.
        n_skipped: frames skipped because a previous run already did them (resume).
        seconds: wall time of the teacher calls, s.
        atoms_evaluated: sum of the atom counts of the frames the teacher evaluated.
    """

    frames: list[ase.Atoms] = field(default_factory=list)
    failures: list[LabelFailure] = field(default_factory=list)
    n_skipped: int = 0
    seconds: float = 0.0
    atoms_evaluated: int = 0

    @property
    def atoms_per_second(self) -> float:
        """Teacher throughput, atom-evaluations per second."""
        return self.atoms_evaluated / self.seconds if self.seconds > 0 else math.nan


# -------------------------------------------------------------------------------- factories


def _make_chgnet(
    device: str = "cpu", num_threads: int | None = None, model_path: str | None = None
) -> Calculator:
    """Build a CHGNet ASE calculator (pretrained weights shipped in the wheel; offline)."""
    try:
        from chgnet.model import CHGNet
        from chgnet.model.dynamics import CHGNetCalculator
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            f"the default teacher needs the optional 'chgnet' package: {TEACHER_EXTRA_HINT}"
        ) from exc
    if num_threads is not None:
        import torch

        torch.set_num_threads(int(num_threads))
    with contextlib.redirect_stdout(io.StringIO()):  # CHGNet prints its banner and device
        model = CHGNet.from_file(model_path) if model_path else CHGNet.load(verbose=False)
        return CHGNetCalculator(model=model, use_device=device)


def chgnet_version() -> str:
    """``"chgnet <package version> (model <weights version>)"``, or raise ImportError."""
    try:
        import chgnet
    except ImportError as exc:
        raise ImportError(
            f"the default teacher needs the optional 'chgnet' package: {TEACHER_EXTRA_HINT}"
        ) from exc
    return f"chgnet {chgnet.__version__} (pretrained model 0.3.0)"


def _returns(calc: Calculator) -> Callable[[], Calculator]:
    return lambda: calc


# --------------------------------------------------------------------------------- labeller


def _json_safe(value: Any) -> Any:
    if isinstance(value, (str, bool, int, float)) or value is None:
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    return str(value)


def clean_info(info: dict[str, Any]) -> dict[str, Any]:
    """``atoms.info`` reduced to what extxyz can round-trip.

    Scalars, strings and numeric sequences stay; dicts become JSON strings; ASE spacegroup
    objects and other values are dropped or turned into strings.
    """
    out: dict[str, Any] = {}
    for key, value in info.items():
        if key in _DROP_INFO:
            continue
        if isinstance(value, dict):
            out[key] = json.dumps(_json_safe(value), sort_keys=True)
        elif isinstance(value, (list, tuple, np.ndarray)):
            arr = np.asarray(value)
            if arr.dtype.kind in "iufb" and arr.ndim == 1:
                out[key] = arr
            else:
                out[key] = json.dumps(_json_safe(value))
        elif isinstance(value, (str, bool, int, float, np.generic)):
            out[key] = value.item() if isinstance(value, np.generic) else value
        else:
            out[key] = str(value)
    return out


class Labeler:
    """Label structures with a teacher ASE calculator.

    Args:
        factory: zero-argument callable returning the ASE calculator. Make it picklable (a
            module-level function or :func:`functools.partial` of one) to use
            :func:`label_chunk` on other processes.
        name: teacher name written to ``info["teacher"]``, e.g. ``"CHGNet"`` or ``"VASP-PBE"``.
        version: teacher version string written to ``info["teacher_version"]`` (write
            ``"v1.0"`` rather than ``"1.0"``: extxyz reads a numeric-looking value back as a number).
        stress: request the stress (only for cells periodic in all three directions).
        max_force: a label with any force component above this (eV/Å) is treated as a failure
            (teacher blow-up or atoms on top of each other); ``None`` disables the check.

    Example:
        >>> lab = Labeler.chgnet()  # doctest: +SKIP
        >>> result = lab.label(frames, out="train.extxyz")  # doctest: +SKIP
    """

    def __init__(
        self,
        factory: Callable[[], Calculator],
        *,
        name: str,
        version: str = "",
        stress: bool = True,
        max_force: float | None = 100.0,
    ) -> None:
        self.factory = factory
        self.name = name
        self.version = version or "unspecified"  # extxyz cannot round-trip an empty value
        self.stress = stress
        self.max_force = max_force
        self._calc: Calculator | None = None

    # construction ------------------------------------------------------------------------
    @classmethod
    def from_calculator(
        cls, calc: Calculator, *, name: str | None = None, version: str = "", **kw: Any
    ) -> Labeler:
        """Wrap an existing calculator instance (pickles only if the calculator does)."""
        lab = cls(_returns(calc), name=name or type(calc).__name__, version=version, **kw)
        lab._calc = calc
        return lab

    @classmethod
    def chgnet(
        cls, device: str = "cpu", num_threads: int | None = None, model_path: str | None = None, **kw: Any
    ) -> Labeler:
        """The default teacher: pretrained CHGNet (weights ship with the package; offline).

        Args:
            device: ``"cpu"`` or ``"cuda"``.
            num_threads: torch intra-op threads in the labelling process (``None``: leave).
            model_path: a fine-tuned CHGNet checkpoint instead of the pretrained model.
            **kw: passed to :class:`Labeler` (``stress``, ``max_force``).

        Raises:
            ImportError: chgnet is not installed; the message names ``pip install ssehpc[teacher]``.
        """
        version = chgnet_version()
        factory = functools.partial(_make_chgnet, device, num_threads, model_path)
        name = "CHGNet" if model_path is None else f"CHGNet:{Path(model_path).name}"
        return cls(factory, name=name, version=version, **kw)

    # pickling: never ship the built calculator -------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_calc"] = None
        return state

    @property
    def key(self) -> str:
        """Identity of the teacher for per-process calculator caching."""
        return f"{self.name}|{self.version}|{self.factory!r}"

    @property
    def calculator(self) -> Calculator:
        """The teacher calculator, built on first use."""
        if self._calc is None:
            self._calc = self.factory()
        return self._calc

    # labelling -----------------------------------------------------------------------------
    def provenance(self) -> dict[str, Any]:
        """Info keys stamped on every labelled frame."""
        return {"teacher": self.name, "teacher_version": self.version}

    def attach(
        self,
        atoms: ase.Atoms,
        energy: float,
        forces: np.ndarray,
        stress: np.ndarray | None,
        index: int | None = None,
    ) -> ase.Atoms:
        """A clean labelled copy of ``atoms`` from given results (e.g. from teacher MD).

        Keeps numbers, positions, cell, pbc and the extxyz-safe part of ``info``; drops
        momenta, masses and other arrays so the files stay small.

        Raises:
            LabelError: non-finite values or forces above ``max_force``.
        """
        forces = np.asarray(forces, dtype=float)
        if not (np.isfinite(energy) and np.isfinite(forces).all()):
            raise LabelError("non-finite energy or forces")
        if stress is not None:
            stress = np.asarray(stress, dtype=float)
            if stress.shape == (3, 3):
                stress = stress[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
            if not np.isfinite(stress).all():
                raise LabelError("non-finite stress")
        fmax = float(np.abs(forces).max()) if forces.size else 0.0
        if self.max_force is not None and fmax > self.max_force:
            raise LabelError(f"force component {fmax:.1f} eV/Å above max_force={self.max_force}")
        out = ase.Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
        out.info.update(clean_info(atoms.info))
        out.info.update(self.provenance())
        if index is not None:
            out.info["label_index"] = int(index)
        results: dict[str, Any] = {"energy": float(energy), "forces": forces}
        if stress is not None:
            results["stress"] = stress
        out.calc = SinglePointCalculator(out, **results)
        return out

    def label_one(self, atoms: ase.Atoms, index: int | None = None) -> ase.Atoms:
        """Label one structure.

        Args:
            atoms: the structure (not modified).
            index: its position in the input list, stored as ``info["label_index"]``.

        Returns:
            A labelled copy (``SinglePointCalculator`` with energy, forces[, stress]).

        Raises:
            Exception: whatever the teacher raises; :class:`LabelError` for unusable output.
        """
        work = ase.Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
        work.calc = self.calculator
        energy = work.get_potential_energy()
        forces = work.get_forces()
        stress = work.get_stress(voigt=True) if (self.stress and all(work.pbc)) else None
        return self.attach(atoms, energy, forces, stress, index)

    def label(
        self,
        frames: Sequence[ase.Atoms],
        out: str | Path | None = None,
        *,
        resume: bool = True,
        retry_failed: bool = False,
        log_every: int = 25,
    ) -> LabelResult:
        """Label a list of structures, optionally appending each to an extxyz file.

        Args:
            frames: structures to label, in a reproducible order (resume relies on it).
            out: extxyz path; each labelled frame is appended (and fsync'ed) as soon as it is
                done, failures go to ``<out>.failures.jsonl``.
            resume: skip frames whose ``label_index`` is already in ``out`` or in its failure
                log (a torn final frame is removed first). ``False`` starts the files afresh.
            retry_failed: with ``resume``, try previously failed frames again.
            log_every: log progress (frames, atoms/s, ETA) every this many frames.

        Returns:
            A :class:`LabelResult` with the frames labelled *in this call* (earlier ones are
            in the file) and all failures of this call.
        """
        done: set[int] = set()
        fail_path = None
        if out is not None:
            out = Path(out)
            out.parent.mkdir(parents=True, exist_ok=True)
            fail_path = out.with_name(out.name + ".failures.jsonl")
            if resume:
                done |= labelled_indices(out)
                if not retry_failed:
                    done |= {f.index for f in read_failures(fail_path)}
            else:
                for p in (out, fail_path):
                    if p.exists():
                        p.unlink()
        result = LabelResult()
        todo = [k for k in range(len(frames)) if k not in done]
        result.n_skipped = len(frames) - len(todo)
        if result.n_skipped:
            log.info("%s: resuming, %d of %d frames already done", out, result.n_skipped, len(frames))
        n_atoms_todo = sum(len(frames[k]) for k in todo)
        for count, k in enumerate(todo, 1):
            t0 = time.perf_counter()
            try:
                labelled = self.label_one(frames[k], index=k)
            except Exception as exc:  # a failed frame must not lose the others
                failure = LabelFailure(
                    k, f"{type(exc).__name__}: {exc}", _json_safe(clean_info(frames[k].info))
                )
                result.failures.append(failure)
                log.warning("frame %d failed: %s", k, failure.error)
                if fail_path is not None:
                    with open(fail_path, "a") as f:
                        f.write(json.dumps(failure.__dict__) + "\n")
                continue
            finally:
                result.seconds += time.perf_counter() - t0
                result.atoms_evaluated += len(frames[k])
            result.frames.append(labelled)
            if out is not None:
                append_extxyz(out, labelled)
            if log_every and (count % log_every == 0 or count == len(todo)):
                rate = result.atoms_per_second
                left = n_atoms_todo - result.atoms_evaluated
                log.info(
                    "labelled %d/%d frames (%.0f atoms/s, ETA %.0f s)",
                    count,
                    len(todo),
                    rate,
                    left / rate if rate else math.nan,
                )
        return result

    @staticmethod
    def chunks(frames: Sequence[ase.Atoms], size: int) -> list[tuple[int, list[ase.Atoms]]]:
        """Split ``frames`` into ``(start_index, chunk)`` pairs of at most ``size`` frames."""
        if size < 1:
            raise ValueError(f"chunk size must be positive, got {size}")
        return [(s, list(frames[s : s + size])) for s in range(0, len(frames), size)]


def label_chunk(labeler: Labeler, frames: Sequence[ase.Atoms], start: int = 0) -> LabelResult:
    """Label a chunk without touching any file (pure and picklable; for Dask/multiprocessing).

    The calculator is built once per process and reused by later chunks of the same teacher.

    Args:
        labeler: the teacher (pickled to the worker without its calculator).
        frames: structures of this chunk.
        start: index of ``frames[0]`` in the full list (becomes ``label_index``).

    Returns:
        The chunk's :class:`LabelResult`; write its ``frames`` with :func:`append_extxyz`.
    """
    if labeler._calc is None:
        calc = _CALCULATORS.get(labeler.key)
        if calc is None:
            calc = _CALCULATORS[labeler.key] = labeler.factory()
        labeler._calc = calc
    result = LabelResult()
    for k, atoms in enumerate(frames):
        t0 = time.perf_counter()
        try:
            result.frames.append(labeler.label_one(atoms, index=start + k))
        except Exception as exc:
            result.failures.append(
                LabelFailure(start + k, f"{type(exc).__name__}: {exc}", _json_safe(clean_info(atoms.info)))
            )
        finally:
            result.seconds += time.perf_counter() - t0
            result.atoms_evaluated += len(atoms)
    return result


# ------------------------------------------------------------------------------------ files


def append_extxyz(path: str | Path, atoms: ase.Atoms | Iterable[ase.Atoms]) -> None:
    """Append frame(s) to an extxyz file in one write, then flush and fsync."""
    frames = [atoms] if isinstance(atoms, ase.Atoms) else list(atoms)
    buf = io.StringIO()
    ase.io.write(buf, frames, format="extxyz")
    with open(path, "a") as f:
        f.write(buf.getvalue())
        f.flush()
        os.fsync(f.fileno())


def round_forces(frames: Iterable[ase.Atoms], decimals: int) -> None:
    """Round the labelled forces (eV/Å) of ``frames`` in place to ``decimals`` decimals."""
    for a in frames:
        if a.calc is not None and "forces" in a.calc.results:
            a.calc.results["forces"] = np.round(a.calc.results["forces"], decimals)
        elif "forces" in a.arrays:
            a.arrays["forces"] = np.round(a.arrays["forces"], decimals)
        else:
            raise ValueError("round_forces: a frame has no forces to round")


def complete_frames(path: str | Path, *, repair: bool = True) -> int:
    """Number of complete frames in an (x)yz file; optionally cut off a torn last frame.

    Args:
        path: the file (missing: 0).
        repair: truncate the file after the last complete frame.

    Returns:
        The number of complete frames.
    """
    path = Path(path)
    if not path.exists():
        return 0
    n = 0
    end = 0
    with open(path, "rb") as f:
        while True:
            line = f.readline()
            if not line:
                break
            try:
                n_atoms = int(line.strip())
            except ValueError:
                break
            ok = f.readline().endswith(b"\n")
            for _ in range(n_atoms):
                if not ok:
                    break
                ok = f.readline().endswith(b"\n")
            if not ok:
                break
            n += 1
            end = f.tell()
    if repair and path.stat().st_size > end:
        log.warning("%s: removing a torn frame after %d complete frames", path, n)
        with open(path, "r+b") as f:
            f.truncate(end)
    return n


def labelled_indices(path: str | Path) -> set[int]:
    """``label_index`` values of the complete frames in an extxyz file (after repair)."""
    n = complete_frames(path)
    if n == 0:
        return set()
    frames = ase.io.read(path, index=":", format="extxyz")
    return {int(a.info["label_index"]) for a in frames if "label_index" in a.info}


def read_failures(path: str | Path) -> list[LabelFailure]:
    """Failures recorded in a ``*.failures.jsonl`` log (missing file: none)."""
    path = Path(path)
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                d = json.loads(line)
            except json.JSONDecodeError:
                continue  # torn last line of an interrupted run
            out.append(LabelFailure(int(d["index"]), str(d["error"]), d.get("info", {})))
    return out
