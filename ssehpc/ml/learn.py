"""Active learning: explore → screen → label → retrain, repeated (``ssehpc learn``, ``docs/learning.md``).

Iteration ``k`` of :func:`run_learning` works in ``<workdir>/iter_<k>/``:

(a) **explore** — the exploration campaign (:mod:`ssehpc.campaign`) with its potential replaced by
    the current committee (``mlff``, model = the shipped model for ``k = 0``, else
    ``iter_<k-1>/model.pt``) and a ``screening`` block (runs that extrapolate stop as
    ``extrapolating``), into ``explore.zarr``; marker ``explore.json``;
(b) **screen** — :func:`ssehpc.screen.screen_store` classifies every committee frame (accurate /
    candidate / failed); the loop stops when the accurate fraction reaches
    ``target_accurate_fraction`` (``converged``), or after ``max_iterations`` retrainings
    (``max_iterations``: the last iteration only explores and screens, so the last retrained
    model is measured on fresh trajectories); marker ``screen.json``;
(c) **select** — farthest-point sampling of the candidates (caps per run and in all), exported
    with provenance to ``candidates.extxyz``;
(d) **label** — the teacher (:class:`~ssehpc.ml.labeler.Labeler`: CHGNet by default, or any
    ``module:function`` ASE-calculator factory, e.g. a DFT code through ASE) labels the candidates
    in chunks submitted to Dask (``client.submit(label_chunk, ...)``); every finished chunk is
    appended to ``labels.extxyz`` (failures to ``labels.extxyz.failures.jsonl``), so an
    interrupted labelling resumes with the missing chunks only; marker ``labels.json``;
(e) **retrain** — the ``train`` template (old data, held-out data, epochs, learning rate, ...) plus
    the labels of iterations ``0..k``, warm-started from the current committee (its architecture,
    core repulsion and radial floor are taken from the model file), into ``model.pt`` with
    ``model.report.{json,md}``; the held-out errors of the old and the new committee are recorded;
    marker ``train.json``;
(f) **summary** — ``summary.json`` of the iteration (fractions, counts, label and train times,
    held-out errors) and ``<workdir>/learning.json`` of the whole loop.

Running it again resumes: finished steps (their marker exists) are skipped; the exploration
campaign and the labelling resume themselves.  Units: Å, eV, fs, K; deviations and force errors in
eV/Å (meV/Å in the reports), energies per atom in meV/atom.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
import math
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import ase
import ase.io
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

__all__ = [
    "LabelDecimals",
    "LearnConfig",
    "LearnError",
    "LearnScreening",
    "LearningResult",
    "ResolvedLearnConfig",
    "load_learn_config",
    "make_labeler",
    "mlff_teacher",
    "run_learning",
]

#: Training fields the loop sets itself (an error names them when a template sets them).
_LOOP_TRAIN_FIELDS = ("init", "output", "report")
#: Architecture fields taken from the current model when the template does not set them.
_ARCH_FIELDS = (
    "cutoff",
    "n_radial",
    "lmax",
    "channels",
    "mixing",
    "contraction",
    "four_body",
    "hidden",
    "n_members",
    "core_inner",
    "core_outer",
    "radial_floor",
)


class LearnError(ValueError):
    """Bad learning configuration or an iteration that cannot proceed (one line, names the field)."""


# ---------------------------------------------------------------------------------------- config
class LearnScreening(BaseModel):
    """Screening of the exploration and candidate selection.

    Attributes:
        trust_lo, trust_hi: trust levels of the committee deviation ``max_i ε_i``, eV/Å (default:
            the campaign's ``screening`` block, else the calibrated levels of a shipped model, else
            0.05 / 0.15).
        stop_after: exploration runs stop as ``extrapolating`` after this many consecutive checks
            above ``trust_hi`` (0: never; used when the campaign has no ``screening`` block).
        max_per_run: candidates selected from one run (farthest-point sampling).
        max_total: candidates selected per iteration in all (the labelling cost cap).
        pool: candidates of one run that get a fingerprint (seeded subset beyond).
        seed: seed of that subset.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    trust_lo: float | None = Field(None, gt=0, description="eV/Å")
    trust_hi: float | None = Field(None, gt=0, description="eV/Å")
    stop_after: int = Field(3, ge=0)
    max_per_run: int = Field(20, ge=1)
    max_total: int = Field(200, ge=1)
    pool: int = Field(500, ge=1)
    seed: int = 0


class LabelDecimals(BaseModel):
    """Decimals kept in the labelled frames (``labels.extxyz``), so a label set ships smaller.

    Positions are rounded *before* the teacher sees them, so every label is exact for the
    coordinates written; forces are rounded after.  Energy and stress are written in full.
    Rounding the positions costs no accuracy (the labels belong to the rounded coordinates; 1e-3 Å
    is far below thermal displacements); forces to 1e-3 eV/Å err by ≤ 0.5 meV/Å, two orders below
    a useful model's force error.  On 600 glass frames of 192 atoms, 3 / 3 decimals shrink the
    xz-compressed file from 3.36 to 1.66 MB.

    Attributes:
        positions: decimals of the Cartesian positions, Å.
        forces: decimals of the force components, eV/Å.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    positions: int = Field(4, ge=1, le=12)
    forces: int = Field(3, ge=1, le=12)


class LearnConfig(BaseModel):
    """An active-learning loop (YAML keys are these field names; paths relative to the YAML file).

    Attributes:
        campaign: the exploration: a campaign spec file or an inline campaign spec (its ``store``
            is replaced by ``<workdir>/iter_<k>/explore.zarr``, its potential by the current model).
        model: the starting committee: a shipped name (``lips``) or a ``.pt`` file.
        train: training template (:class:`~ssehpc.ml.train.TrainConfig` fields: ``data``,
            ``validation_data``, ``epochs``, ``lr``, ...); ``init``/``output``/``report`` are set by
            the loop, the architecture is taken from the current model.
        replay_frames: train on a seeded random subset of this many frames of ``train.data`` plus
            all new labels (``None``: all old frames).
        teacher: ``"chgnet"`` or ``"module:function"``, a factory returning an ASE calculator.
        teacher_params: keyword arguments of the factory.
        teacher_name: name recorded in the labels (default: ``CHGNet`` or the factory path).
        teacher_version: version recorded in the labels.
        teacher_threads: torch threads in each labelling worker process.
        label_chunk: frames per Dask labelling task.
        label_decimals: round positions and forces of the labelled frames (``None``: full
            precision).
        screening: trust levels, extrapolation stop and candidate caps.
        target_accurate_fraction: stop when this fraction of the explored frames is accurate.
        max_iterations: most retrainings; the iteration after the last one only explores and
            screens (so 1 = explore, label, retrain, then measure the new model).
        reseed: give each iteration's exploration a new campaign seed (``seed + k``); else the
            same trajectories' starting conditions every iteration.
        workdir: where the iterations go.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    campaign: str | dict[str, Any]
    model: str = "lips"
    train: dict[str, Any]
    replay_frames: int | None = Field(None, ge=1)
    teacher: str = "chgnet"
    teacher_params: dict[str, Any] = Field(default_factory=dict)
    teacher_name: str | None = None
    teacher_version: str = ""
    teacher_threads: int = Field(1, ge=1)
    label_chunk: int = Field(4, ge=1)
    label_decimals: LabelDecimals | None = None
    screening: LearnScreening = Field(default_factory=LearnScreening)
    target_accurate_fraction: float = Field(0.9, gt=0.0, le=1.0)
    max_iterations: int = Field(3, ge=0)
    reseed: bool = True
    workdir: str = "learn"

    @field_validator("teacher")
    @classmethod
    def _teacher(cls, v: str) -> str:
        v = v.strip()
        if v.lower() == "chgnet":
            return "chgnet"
        if ":" not in v:
            raise ValueError(
                f"unknown teacher {v!r}: use 'chgnet' or 'module:function' (an ASE calculator factory)"
            )
        return v


def _format(exc: ValidationError, prefix: str = "") -> str:
    parts = []
    for e in exc.errors():
        loc = ".".join(str(x) for x in (prefix, *e["loc"]) if x != "") or "config"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "missing":
            msg = "required field is missing"
        elif e["type"] == "extra_forbidden":
            msg = "unknown field (typo?)"
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)


@functools.lru_cache(maxsize=8)
def _import_factory(path: str) -> Callable[..., Any]:
    module, _, name = path.partition(":")
    try:
        obj: Any = importlib.import_module(module)
        for part in name.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise LearnError(f"teacher: cannot import {path!r}: {type(exc).__name__}: {exc}") from None
    if not callable(obj):
        raise LearnError(f"teacher: {path!r} is not callable")
    return obj


class ResolvedLearnConfig:
    """A validated config with its paths resolved, the campaign parsed and the teacher checked.

    Attributes:
        cfg: the :class:`LearnConfig`.
        workdir: absolute working directory.
        model_path: the starting model file.
        campaign: the exploration :class:`~ssehpc.campaign.CampaignSpec` (paths absolute).
        trust_lo, trust_hi: the trust levels used, eV/Å.
        train: the training template with absolute data paths.
    """

    def __init__(self, cfg: LearnConfig, base: Path) -> None:
        from ssehpc.campaign import CampaignSpec
        from ssehpc.ml.shipped import SHIPPED_MODELS, resolve_model
        from ssehpc.ml.train import TrainConfig
        from ssehpc.spec import SpecError

        self.cfg = cfg
        self.base = base
        self.workdir = (base / cfg.workdir).resolve()
        # model
        if cfg.model.strip().lower() in SHIPPED_MODELS:
            self.model_path = resolve_model(cfg.model)
        else:
            p = Path(cfg.model).expanduser()
            p = p if p.is_absolute() else base / p
            if not p.is_file():
                raise LearnError(
                    f"model: {cfg.model!r} is neither a shipped model ({', '.join(SHIPPED_MODELS)}) "
                    "nor an existing file"
                )
            self.model_path = p.resolve()
        try:
            from ssehpc.ml.model import load

            spec = load(self.model_path).spec
        except Exception as exc:
            raise LearnError(f"model: cannot load {self.model_path}: {exc}") from None
        if spec.n_members < 2:
            raise LearnError(
                f"model: {cfg.model!r} is a single model; screening needs a committee (n_members >= 2)"
            )
        self.model_spec = spec
        # campaign
        try:
            if isinstance(cfg.campaign, str):
                cpath = Path(cfg.campaign)
                cpath = cpath if cpath.is_absolute() else base / cpath
                if not cpath.is_file():
                    raise LearnError(f"campaign: spec file '{cpath}' does not exist")
                self.campaign = CampaignSpec.from_yaml(cpath)
            else:
                data = {"store": "explore.zarr", **cfg.campaign}
                self.campaign = CampaignSpec.from_dict(data, base_dir=base)
        except SpecError as exc:
            raise LearnError(f"campaign: {exc}") from None
        # trust levels: learn block, then the campaign's, then the model's calibration, then generic
        from ssehpc.screen import DEFAULT_TRUST_HI, DEFAULT_TRUST_LO, calibrated_trust

        camp = self.campaign.screening
        calibrated = calibrated_trust(self.model_path)  # resolved: a shipped name or a file
        lo = (
            cfg.screening.trust_lo
            or (camp.trust_lo if camp else None)
            or (calibrated or (DEFAULT_TRUST_LO,))[0]
        )
        hi = (
            cfg.screening.trust_hi
            or (camp.trust_hi if camp else None)
            or (calibrated or (None, DEFAULT_TRUST_HI))[1]
        )
        if not lo < hi:
            raise LearnError(f"screening: trust_lo ({lo} eV/Å) must be below trust_hi ({hi} eV/Å)")
        self.trust_lo, self.trust_hi = float(lo), float(hi)
        # training template
        tmpl = dict(cfg.train)
        for key in _LOOP_TRAIN_FIELDS:
            if key in tmpl:
                raise LearnError(
                    f"train.{key}: set by the loop (the current model / iter_<k>/model.pt); remove it"
                )
        if "data" not in tmpl:
            raise LearnError("train.data: required field is missing (the old labelled data)")
        for key in ("data", "validation_data"):
            if isinstance(tmpl.get(key), str):
                tmpl[key] = [tmpl[key]]
            if key in tmpl:
                paths = [str(p if Path(p).is_absolute() else (base / p).resolve()) for p in tmpl[key]]
                for p in paths:
                    if not Path(p).is_file():
                        raise LearnError(f"train.{key}: file '{p}' does not exist")
                tmpl[key] = paths
        if "species" not in tmpl:
            from ase.data import chemical_symbols

            tmpl["species"] = [chemical_symbols[z] for z in spec.species]
        try:
            TrainConfig(**tmpl)
        except ValidationError as exc:
            raise LearnError(_format(exc, "train")) from None
        self.train = tmpl
        # teacher
        if cfg.teacher == "chgnet":
            from ssehpc.ml.labeler import chgnet_version

            try:
                chgnet_version()
            except ImportError as exc:
                raise LearnError(f"teacher: {exc}") from None
        else:
            _import_factory(cfg.teacher)


def load_learn_config(
    config: LearnConfig | Mapping[str, Any] | str | Path, base_dir: str | Path | None = None
) -> ResolvedLearnConfig:
    """Validate a learning config (object, mapping or YAML file) and resolve its paths.

    Args:
        config: the config; relative paths in a file are relative to the file.
        base_dir: base of relative paths of a mapping/object (default: the current directory).

    Raises:
        LearnError: one line naming the field (``train.epochs: ...``, ``teacher: ...``, ``model: ...``).
    """
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    if isinstance(config, (str, Path)):
        path = Path(config)
        if not path.is_file():
            raise LearnError(f"learning config '{path}' does not exist")
        import yaml

        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise LearnError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
        if not isinstance(data, Mapping):
            raise LearnError(f"{path}: a learning config must be a mapping of fields")
        config, base = data, path.resolve().parent
    if not isinstance(config, LearnConfig):
        try:
            config = LearnConfig(**dict(config))
        except ValidationError as exc:
            raise LearnError(_format(exc)) from None
    return ResolvedLearnConfig(config, base.resolve())


# --------------------------------------------------------------------------------------- teachers
def mlff_teacher(model: str = "lips", members: list[int] | None = None, dtype: str = "float64") -> Any:
    """An ASE calculator of an ssehpc ML model (a cheap stand-in teacher for tests and demos).

    ``teacher: ssehpc.ml.learn:mlff_teacher`` with ``teacher_params: {model: lips-v0, members: [0]}``.
    """
    from ssehpc.ml.calculator import SSEHPCCalculator
    from ssehpc.potentials import make_potential

    return SSEHPCCalculator(make_potential("mlff", model=model, members=members, dtype=dtype))


def _build_teacher(path: str, params: dict[str, Any], threads: int) -> Any:
    """Worker-side: set the torch thread count, import the factory, build the calculator."""
    import torch

    torch.set_num_threads(int(threads))
    return _import_factory(path)(**params)


def label_chunk_quietly(labeler: Any, frames: list[ase.Atoms], start: int = 0) -> Any:
    """:func:`~ssehpc.ml.labeler.label_chunk` with the teacher's ``UserWarning`` noise silenced
    (CHGNet warns once per frame); the Dask unit of work of the labelling step."""
    import warnings

    from ssehpc.ml.labeler import label_chunk

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return label_chunk(labeler, frames, start)


def make_labeler(cfg: LearnConfig) -> Any:
    """The :class:`~ssehpc.ml.labeler.Labeler` of ``cfg.teacher`` (picklable: built on the workers)."""
    from ssehpc.ml.labeler import Labeler

    if cfg.teacher == "chgnet":
        lab = Labeler.chgnet(num_threads=cfg.teacher_threads, **cfg.teacher_params)
        if cfg.teacher_name:
            lab.name = cfg.teacher_name
        return lab
    factory = functools.partial(_build_teacher, cfg.teacher, dict(cfg.teacher_params), cfg.teacher_threads)
    return Labeler(factory, name=cfg.teacher_name or cfg.teacher, version=cfg.teacher_version)


# ------------------------------------------------------------------------------------------ loop
class LearningResult(BaseModel):
    """What :func:`run_learning` did.

    Attributes:
        status: ``converged``, ``max_iterations``, ``no_candidates`` or ``no_labels``.
        iterations: the per-iteration summaries (``summary.json`` contents).
        accurate_fractions: accurate fraction of each iteration's exploration (before → after).
        model: the final model file.
        workdir: the working directory.
    """

    status: str
    iterations: list[dict[str, Any]]
    accurate_fractions: list[float | None]
    model: str
    workdir: str


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=_json_default) + "\n")
    os.replace(tmp, path)


def _json_default(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, float) and not math.isfinite(v):
        return None
    raise TypeError(f"not JSON-able: {type(v).__name__}")


class _LazyClient:
    """The Dask client: the one given, else the campaign's cluster opened on first use."""

    def __init__(
        self, client: Any, resources: Any, stack: contextlib.ExitStack, log: Callable[[str], None]
    ) -> None:
        self._client = client
        self._resources = resources
        self._stack = stack
        self._log = log
        self.submit_kwargs: dict[str, Any] = {}
        self.handle: Any = None  # the ClusterHandle of a cluster opened here

    @property
    def client(self) -> Any:
        if self._client is None:
            from ssehpc.campaign.cluster import open_cluster

            handle = self._stack.enter_context(open_cluster(self._resources))
            self._log(f"dask: {handle.description}")
            self._client = handle.client
            self.handle = handle
            self.submit_kwargs = dict(handle.submit_kwargs)
        return self._client

    @property
    def for_campaign(self) -> Any:
        """What ``run_campaign(client=...)`` takes: the cluster handle (with its worker
        resources, e.g. Slurm's one-chain-per-worker) when the cluster was opened here."""
        client = self.client
        return self.handle if self.handle is not None else client


def _explore(
    r: ResolvedLearnConfig, k: int, model: Path, it_dir: Path, lazy: _LazyClient, log: Callable[[str], None]
) -> dict[str, Any]:
    from rich.console import Console

    from ssehpc.campaign import run_campaign
    from ssehpc.screen import ScreeningSpec

    spec = r.campaign
    params = dict(spec.potential.params) if spec.potential.name == "mlff" else {}
    params["model"] = str(model)
    update: dict[str, Any] = {
        "store": it_dir / "explore.zarr",
        "potential": type(spec.potential).model_validate({"name": "mlff", "params": params}),
        "name": f"{spec.name}-learn-iter{k}",
        "screening": ScreeningSpec(
            trust_lo=r.trust_lo,
            trust_hi=r.trust_hi,
            stop_after=spec.screening.stop_after if spec.screening else r.cfg.screening.stop_after,
            check_interval=spec.screening.check_interval if spec.screening else None,
        ),
    }
    if r.cfg.reseed:
        update["seed"] = spec.seed + k
    spec_k = spec.model_copy(update=update)
    t0 = time.perf_counter()
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    result = run_campaign(spec_k, client=lazy.for_campaign, console=console, show_progress=False)
    counts = result.counts()
    log(f"iter {k}: exploration done in {time.perf_counter() - t0:.0f} s: {counts}")
    return {
        "store": str(spec_k.store),
        "model": str(model),
        "seed": spec_k.seed,
        "runs": counts,
        "wall_s": time.perf_counter() - t0,
        "simulated_ps_this_call": result.simulated_fs / 1000.0,
    }


def _screen(r: ResolvedLearnConfig, it_dir: Path, log: Callable[[str], None], k: int) -> dict[str, Any]:
    from ssehpc.screen import export_candidates, screen_store, write_screening

    s = r.cfg.screening
    t0 = time.perf_counter()
    res = screen_store(
        it_dir / "explore.zarr",
        trust_lo=r.trust_lo,
        trust_hi=r.trust_hi,
        max_per_run=s.max_per_run,
        max_total=s.max_total,
        pool=s.pool,
        seed=s.seed + k,
    )
    cand = it_dir / "candidates.extxyz"
    n = export_candidates(res, cand)
    write_screening(res, export=cand)
    totals = res.totals()
    out = {
        "trust_lo": r.trust_lo,
        "trust_hi": r.trust_hi,
        "totals": totals,
        "accurate_fraction": totals["accurate_fraction"],
        "candidate_fraction": totals["candidate_fraction"],
        "failed_fraction": totals["failed_fraction"],
        "n_candidates_exported": n,
        "runs": {rs.run_id: rs.summary() for rs in res.runs},
        "skipped": res.skipped,
        "wall_s": time.perf_counter() - t0,
    }
    log(
        f"iter {k}: {totals['configurations']} frames: accurate {_pct(totals['accurate_fraction'])}, "
        f"candidate {_pct(totals['candidate_fraction'])}, failed {_pct(totals['failed_fraction'])}; "
        f"{n} candidates selected"
    )
    return out


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def _label(
    r: ResolvedLearnConfig, k: int, it_dir: Path, lazy: _LazyClient, log: Callable[[str], None]
) -> dict[str, Any]:
    from ssehpc.ml.labeler import (
        Labeler,
        LabelFailure,
        append_extxyz,
        labelled_indices,
        read_failures,
        round_forces,
    )

    cand = it_dir / "candidates.extxyz"
    frames = ase.io.read(cand, index=":", format="extxyz") if cand.stat().st_size else []
    for a in frames:
        a.info.update(al_iteration=k, origin="active-learning", config_type=f"al-iter{k}")
    decimals = r.cfg.label_decimals
    if decimals is not None:
        for a in frames:
            a.positions = np.round(a.positions, decimals.positions)
            a.info["label_decimals"] = f"positions {decimals.positions} forces {decimals.forces}"
    out = it_dir / "labels.extxyz"
    fail_path = out.with_name(out.name + ".failures.jsonl")
    done = labelled_indices(out) | {f.index for f in read_failures(fail_path)}
    # a chunk's labels are appended in one write: a chunk is done or not
    chunks = Labeler.chunks(frames, r.cfg.label_chunk) if frames else []
    todo = [(s, c) for s, c in chunks if not set(range(s, s + len(c))) <= done]
    labeler = make_labeler(r.cfg)
    t0 = time.perf_counter()
    teacher_s = 0.0
    atoms_eval = 0
    if todo:
        log(
            f"iter {k}: labelling {sum(len(c) for _, c in todo)} frames in {len(todo)} chunks with {labeler.name}"
        )
        from distributed import as_completed

        client = lazy.client
        futures = [
            client.submit(label_chunk_quietly, labeler, c, s, pure=False, **lazy.submit_kwargs)
            for s, c in todo
        ]
        n_done = 0
        for fut in as_completed(futures):
            res = fut.result()
            if decimals is not None:
                round_forces(res.frames, decimals.forces)
            if res.frames:
                append_extxyz(out, res.frames)
            if res.failures:
                with open(fail_path, "a") as f:
                    for fl in res.failures:
                        f.write(json.dumps(fl.__dict__, default=_json_default) + "\n")
            teacher_s += res.seconds
            atoms_eval += res.atoms_evaluated
            n_done += len(res.frames) + len(res.failures)
            fut.release()
        log(f"iter {k}: labelled {n_done} frames in {time.perf_counter() - t0:.0f} s")
        _sort_labels(out)
    n_labels = len(labelled_indices(out))
    failures: list[LabelFailure] = read_failures(fail_path)
    return {
        "teacher": labeler.name,
        "teacher_version": labeler.version,
        "n_candidates": len(frames),
        "n_labelled": n_labels,
        "n_failed": len(failures),
        "failures": [f.error for f in failures][:20],
        "wall_s": time.perf_counter() - t0,
        "teacher_s": teacher_s,
        "atoms_per_s": atoms_eval / teacher_s if teacher_s > 0 else None,
        "chunk": r.cfg.label_chunk,
    }


def _sort_labels(path: Path) -> None:
    """Rewrite ``path`` in ``label_index`` order (chunks finish in any order; training should not
    depend on it), atomically."""
    frames = ase.io.read(path, index=":", format="extxyz") if path.is_file() and path.stat().st_size else []
    order = sorted(range(len(frames)), key=lambda i: int(frames[i].info.get("label_index", -1)))
    if order == list(range(len(frames))):
        return
    tmp = path.with_name(path.name + ".sorting")
    ase.io.write(tmp, [frames[i] for i in order], format="extxyz")
    os.replace(tmp, path)


def _model_arch(model: Path) -> dict[str, Any]:
    from ssehpc.ml.model import load

    d = load(model).spec.to_dict()
    return {key: d[key] for key in _ARCH_FIELDS}


def _heldout_errors(model: Any, frames: list[ase.Atoms], cutoff: float) -> dict[str, Any]:
    from ssehpc.ml import data as mldata
    from ssehpc.ml.train import metrics

    if not frames:
        return {}
    graphs = [mldata.build_graph(a, cutoff) for a in frames]
    m = metrics(model, graphs)
    return {
        "n_frames": m["n_frames"],
        "energy_mae_meV_per_atom": m["energy_meV_per_atom"]["mae"],
        "forces_mae_meV_per_A": m["forces_meV_per_A"]["mae"],
        "forces_rmse_meV_per_A": m["forces_meV_per_A"]["rmse"],
        "forces_per_element_mae_meV_per_A": {
            el: v["mae"] for el, v in m["forces_per_element_meV_per_A"].items()
        },
        "force_dev_mean_meV_per_A": m["force_dev_mean_meV_per_A"],
    }


def _train(
    r: ResolvedLearnConfig, k: int, model: Path, it_dir: Path, log: Callable[[str], None]
) -> dict[str, Any]:
    from ssehpc.ml import data as mldata
    from ssehpc.ml.model import load
    from ssehpc.ml.train import TrainConfig, train, write_report

    labels = [
        p
        for j in range(k + 1)
        if (p := r.workdir / f"iter_{j}" / "labels.extxyz").is_file() and p.stat().st_size > 0
    ]
    tmpl = dict(r.train)
    data = list(tmpl.pop("data"))
    if r.cfg.replay_frames is not None:
        old = mldata.read_frames(data)
        if len(old) > r.cfg.replay_frames:
            rng = np.random.default_rng(int(tmpl.get("seed", 0)) + k)
            keep = np.sort(rng.choice(len(old), size=r.cfg.replay_frames, replace=False))
            replay = it_dir / "replay.extxyz"
            ase.io.write(replay, [_strip_source(old[i]) for i in keep], format="extxyz")
            data = [str(replay)]
    arch = {key: v for key, v in _model_arch(model).items() if key not in tmpl}
    cfg_dict = {
        **arch,
        **tmpl,
        "data": [*data, *[str(p) for p in labels]],
        "init": str(model),
        "output": str(it_dir / "model.pt"),
        "report": str(it_dir / "model.report"),
    }
    cfg_dict.setdefault(
        "teacher", r.cfg.teacher_name or ("CHGNet" if r.cfg.teacher == "chgnet" else r.cfg.teacher)
    )
    cfg_dict.setdefault("log_every", 0)
    try:
        cfg = TrainConfig(**cfg_dict)
    except ValidationError as exc:
        raise LearnError(_format(exc, "train")) from None
    import yaml

    (it_dir / "train.yaml").write_text(yaml.safe_dump(cfg.model_dump(), sort_keys=False))
    log(
        f"iter {k}: fine-tuning {model.name} on {', '.join(Path(p).name for p in cfg.data)} ({cfg.epochs} epochs max)"
    )
    t0 = time.perf_counter()
    result = train(cfg)
    partial = it_dir / "model.pt.partial"
    result.model.save(partial)
    os.replace(partial, it_dir / "model.pt")
    write_report(result.report, cfg.report_stem)
    train_s = time.perf_counter() - t0
    # held-out errors, old vs new (the template's validation data; else the training split's)
    heldout = mldata.read_frames(cfg.validation_data) if cfg.validation_data else []
    new_labels = (
        mldata.read_frames([it_dir / "labels.extxyz"]) if (it_dir / "labels.extxyz") in labels else []
    )
    old_model, new_model = load(model), result.model
    errors = {
        "heldout": {
            "old": _heldout_errors(old_model, heldout, old_model.spec.cutoff),
            "new": _heldout_errors(new_model, heldout, new_model.spec.cutoff),
        },
        "new_labels": {
            "old": _heldout_errors(old_model, new_labels, old_model.spec.cutoff),
            "new": _heldout_errors(new_model, new_labels, new_model.spec.cutoff),
        },
    }
    val = result.report["validation"]
    out = {
        "model": str(it_dir / "model.pt"),
        "init": str(model),
        "data": list(cfg.data),
        "n_train_frames": result.report["n_train_frames"],
        "n_validation_frames": result.report["n_validation_frames"],
        "epochs_run": result.report["epochs_run"],
        "stopped_by": result.report["stopped_by"],
        "train_s": train_s,
        "validation_energy_mae_meV_per_atom": val["energy_meV_per_atom"]["mae"],
        "validation_forces_mae_meV_per_A": val["forces_meV_per_A"]["mae"],
        "errors": errors,
        "wall_s": time.perf_counter() - t0,
    }
    h = errors["heldout"]
    if h["old"]:
        log(
            f"iter {k}: held-out force MAE {h['old']['forces_mae_meV_per_A']:.1f} → "
            f"{h['new']['forces_mae_meV_per_A']:.1f} meV/Å, energy MAE {h['old']['energy_mae_meV_per_atom']:.2f} → "
            f"{h['new']['energy_mae_meV_per_atom']:.2f} meV/atom"
        )
    return out


def _strip_source(a: ase.Atoms) -> ase.Atoms:
    a.info.pop("source", None)
    return a


def _step(
    path: Path, fn: Callable[[], dict[str, Any]], log: Callable[[str], None], what: str
) -> dict[str, Any]:
    done = _read_json(path)
    if done is not None:
        log(f"{what}: done before ({path.name}), skipped")
        return done
    out = fn()
    _write_json(path, out)
    return out


def run_learning(
    config: LearnConfig | Mapping[str, Any] | str | Path,
    client: Any = None,
    *,
    max_iterations: int | None = None,
    n_workers: int | None = None,
    workdir: str | Path | None = None,
    base_dir: str | Path | None = None,
    log: Callable[[str], None] | None = None,
) -> LearningResult:
    """Run (or resume) the active-learning loop.

    Args:
        config: a :class:`LearnConfig`, a mapping of its fields, or a YAML file.
        client: a ``distributed.Client`` for the exploration and the labelling (default: the
            campaign's ``resources`` cluster, opened once when first needed).
        max_iterations: override ``config.max_iterations``.
        n_workers: override the local cluster's worker count.
        workdir: override ``config.workdir`` (relative: to the current directory).
        base_dir: base of relative paths for a mapping/object config.
        log: progress lines (default: print to stderr).

    Returns:
        The :class:`LearningResult`; also written to ``<workdir>/learning.json``.

    Raises:
        LearnError: invalid configuration (before anything runs) or a step that cannot proceed.
    """
    import sys

    r = load_learn_config(config, base_dir)
    if log is None:

        def log(msg: str) -> None:
            print(msg, file=sys.stderr, flush=True)

    if workdir is not None:
        r.workdir = Path(workdir).expanduser().resolve()
    cap = r.cfg.max_iterations if max_iterations is None else int(max_iterations)
    if cap < 0:
        raise LearnError(f"max_iterations: must be >= 0, got {cap}")
    resources = r.campaign.resources
    if n_workers is not None and getattr(resources, "kind", "") == "local":
        resources = resources.model_copy(update={"n_workers": int(n_workers)})
    r.workdir.mkdir(parents=True, exist_ok=True)
    _write_json(r.workdir / "learn_config.json", r.cfg.model_dump())
    summaries: list[dict[str, Any]] = []
    model = r.model_path
    status = "max_iterations"
    with contextlib.ExitStack() as stack:
        lazy = _LazyClient(client, resources, stack, log)
        k = 0
        while True:
            it_dir = r.workdir / f"iter_{k}"
            it_dir.mkdir(exist_ok=True)
            t_it = time.perf_counter()
            summary: dict[str, Any] = {"iteration": k, "model": str(model)}
            explore = _step(
                it_dir / "explore.json",
                functools.partial(_explore, r, k, model, it_dir, lazy, log),
                log,
                f"iter {k} explore",
            )
            screen = _step(
                it_dir / "screen.json", functools.partial(_screen, r, it_dir, log, k), log, f"iter {k} screen"
            )
            summary["explore"] = explore
            summary["screen"] = {key: v for key, v in screen.items() if key != "runs"}
            acc = screen["accurate_fraction"]
            stop = None
            if acc is not None and acc >= r.cfg.target_accurate_fraction:
                stop = "converged"
            elif k >= cap:
                stop = "max_iterations"
            elif screen["n_candidates_exported"] == 0:
                stop = "no_candidates"
            if stop is None:
                label = _step(
                    it_dir / "labels.json",
                    functools.partial(_label, r, k, it_dir, lazy, log),
                    log,
                    f"iter {k} label",
                )
                summary["label"] = label
                if label["n_labelled"] == 0:
                    stop = "no_labels"
                else:
                    trained = _step(
                        it_dir / "train.json",
                        functools.partial(_train, r, k, model, it_dir, log),
                        log,
                        f"iter {k} train",
                    )
                    summary["train"] = trained
            summary["stop"] = stop
            summary["accurate_fraction"] = acc
            summary["wall_s_this_call"] = time.perf_counter() - t_it
            _write_json(it_dir / "summary.json", summary)
            summaries.append(summary)
            if stop is not None:
                status = stop
                break
            model = it_dir / "model.pt"
            k += 1
    fractions = [s["accurate_fraction"] for s in summaries]
    log(
        f"learning: {status} after {len(summaries)} exploration(s); accurate fraction "
        + " → ".join(_pct(f) for f in fractions)
    )
    result = LearningResult(
        status=status,
        iterations=summaries,
        accurate_fractions=fractions,
        model=str(model),
        workdir=str(r.workdir),
    )
    _write_json(r.workdir / "learning.json", result.model_dump())
    return result
