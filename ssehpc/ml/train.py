"""Training a :class:`~ssehpc.ml.model.MomentPotential` or a committee on labelled frames.

``ssehpc train config.yaml`` calls :func:`train_main`; Python code calls :func:`train`.

What happens, in order:

1. read the frames (:func:`ssehpc.ml.data.read_frames`), split train/validation (seeded), build the
   neighbour graphs once (pair vectors are fixed per frame);
2. data statistics: per-element reference energies by least squares, ``N̄`` (average neighbours),
   the energy scale (RMS force component), and per-member feature standardisation;
3. K members are trained *together* as one stacked module: member ``m`` is initialised from
   ``seed + m`` and (for ``K > 1`` with ``bootstrap``) sees frame ``f`` with the multiplicity of a
   bootstrap resample drawn from ``seed + 1000 + m``.  Adam is element-wise, so the stacked
   members do not influence each other's updates;
4. loss per member ``m`` (weights ``w_f`` = bootstrap multiplicities):

   .. math::

       L_m = \\frac{\\sum_f w_f \\big[λ_E (ΔE_f/N_f)^2 + λ_F \\overline{|ΔF|^2}_f/3
             + λ_W (ΔW_f/N_f)^2/9\\big]}{\\sum_f w_f},\\qquad L = \\sum_m L_m

   (energies per atom in eV/atom, force components in eV/Å, virials per atom in eV/atom);
5. after each epoch the validation loss of every member is computed with the exponential moving
   average of its weights (``ema_decay``); each member keeps its best averaged weights; training stops when no member improved for ``patience`` epochs (or ``epochs`` /
   ``max_time_s`` is reached); the learning rate halves on a plateau;
6. a report (JSON + Markdown): MAE/RMSE of energy per atom, force components and stress, overall
   and per element, train and validation, for the committee mean and per member.

Same seed, same data, same thread count → bitwise identical weights on CPU.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from ase.data import chemical_symbols
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ssehpc.ml import data as mldata
from ssehpc.ml.committee import Committee
from ssehpc.ml.data import Batch, FrameGraph, Labels, collate
from ssehpc.ml.model import ModelSpec, MomentPotential, _z, load

#: 1 eV/Å³ in GPa.
EV_PER_A3_IN_GPA = 160.21766208


class TrainConfig(BaseModel):
    """Everything a training run needs (YAML/JSON keys are these field names)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # data
    data: list[str] = Field(
        min_length=1, description="labelled frames: extxyz, ASE .db, any ASE-readable file"
    )
    validation_data: list[str] = Field(
        default_factory=list, description="held-out files; else split from data"
    )
    validation_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    energy_key: str | None = Field(None, description="atoms.info key of the energy (default: the calculator)")
    forces_key: str | None = Field(
        None, description="atoms.arrays key of the forces (default: the calculator)"
    )
    stress_key: str | None = Field(None, description="atoms.info key of the stress (default: the calculator)")
    teacher: str | None = Field(None, description="who labelled the data (recorded in the model file)")
    # output
    init: str | None = Field(
        None,
        description="start from this model's weights (fine-tuning, active learning): same species and "
        "architecture; its feature statistics and reference energies are kept, core_inner/core_outer "
        "may change",
    )
    output: str = Field("model.pt", description="model file")
    report: str | None = Field(None, description="report stem (default: output without suffix + '.report')")
    # architecture
    species: list[str] | None = Field(None, description="element symbols (default: those in the data)")
    cutoff: float = Field(5.0, gt=0.0, le=15.0, description="Å")
    n_radial: int = Field(8, ge=1, le=32)
    lmax: int = Field(2, ge=0, le=3)
    channels: int = Field(8, ge=1, le=128)
    mixing: Literal["neighbour", "pair"] = "neighbour"
    contraction: Literal["gram", "channelwise"] = "gram"
    four_body: bool = True
    hidden: list[int] = Field(default_factory=lambda: [64, 64], min_length=1)
    core_inner: float = Field(0.0, ge=0.0, description="Å, ZBL repulsion at full strength below this")
    core_outer: float = Field(0.0, ge=0.0, description="Å, ZBL repulsion off above this (0 = no repulsion)")
    radial_floor: float = Field(
        0.0,
        ge=0.0,
        description="Å, learned radial functions frozen below this (≤ shortest distance in the data)",
    )
    n_members: int = Field(1, ge=1, le=64)
    bootstrap: bool = Field(True, description="committee members train on bootstrap resamples")
    feature_frames: Literal["spread", "first"] = Field(
        "spread",
        description="training frames whose invariants set the feature mean/std (from-scratch runs): "
        "64 spread evenly over the set, or the first 64 (before 2026-12-07; committee_v0)",
    )
    dtype: Literal["float32", "float64"] = "float32"
    # optimisation
    seed: int = 0
    epochs: int = Field(200, ge=1)
    batch_size: int = Field(4, ge=1, description="frames per optimiser step")
    lr: float = Field(5e-3, gt=0.0)
    lr_min: float = Field(1e-5, ge=0.0)
    lr_patience: int = Field(
        10, ge=1, description="epochs without improvement before the learning rate halves"
    )
    weight_decay: float = Field(0.0, ge=0.0)
    ema_decay: float = Field(0.99, ge=0.0, lt=1.0, description="weight averaging per step (0 = off)")
    energy_weight: float = Field(10.0, ge=0.0, description="λ_E on (ΔE/N)², eV²/atom²")
    force_weight: float = Field(1.0, ge=0.0, description="λ_F on ΔF², eV²/Å²")
    stress_weight: float = Field(0.0, ge=0.0, description="λ_W on (ΔW/N)², eV²/atom²")
    patience: int = Field(30, ge=1, description="early stopping: epochs without a better validation loss")
    max_time_s: float | None = Field(None, gt=0.0)
    threads: int | None = Field(None, ge=1, description="torch CPU threads (default: leave as is)")
    device: str = "cpu"
    log_every: int = Field(10, ge=0, description="print a line every this many epochs (0 = quiet)")

    @field_validator("hidden")
    @classmethod
    def _positive_widths(cls, v: list[int]) -> list[int]:
        if any(h < 1 for h in v):
            raise ValueError(f"hidden widths must be positive, got {v}")
        return v

    @field_validator("species")
    @classmethod
    def _known_elements(cls, v: list[str] | None) -> list[str] | None:
        if v is not None:
            for s in v:
                _z(s)
        return v

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        if self.four_body and self.lmax < 2:
            raise ValueError("four_body needs lmax >= 2 (set four_body: false or lmax: 2)")
        if not self.validation_data and self.validation_fraction <= 0.0:
            raise ValueError(
                "need validation_data or validation_fraction > 0 (early stopping needs a validation set)"
            )
        return self

    def spec(self, species: Sequence[int], avg_neighbors: float) -> ModelSpec:
        return ModelSpec(
            species=tuple(species),
            cutoff=self.cutoff,
            n_radial=self.n_radial,
            lmax=self.lmax,
            channels=self.channels,
            mixing=self.mixing,
            contraction=self.contraction,
            four_body=self.four_body,
            hidden=tuple(self.hidden),
            avg_neighbors=avg_neighbors,
            n_members=self.n_members,
            core_inner=self.core_inner,
            core_outer=self.core_outer,
            radial_floor=self.radial_floor,
        )

    @property
    def report_stem(self) -> Path:
        return (
            Path(self.report)
            if self.report
            else Path(self.output).with_suffix("").with_name(Path(self.output).stem + ".report")
        )


@dataclass
class TrainResult:
    """Trained model, its report (JSON-able dict) and where they were written (if anywhere)."""

    model: MomentPotential
    report: dict[str, Any]
    model_path: Path | None = None
    report_paths: tuple[Path, ...] = ()


# ------------------------------------------------------------------------------------ evaluation
def predict(
    model: MomentPotential, batch: Batch, *, create_graph: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-member ``energy [K, B]`` eV, ``forces [N, K, 3]`` eV/Å and ``virial [K, B, 3, 3]`` eV."""
    types = model.type_of_z[batch.species]
    n = int(batch.species.numel())
    e_atom, forces, g = model.evaluate(batch.rij, batch.i, batch.j, types, n, n, create_graph=create_graph)
    kk = e_atom.shape[0]
    energy = torch.zeros((kk, batch.n_frames), dtype=e_atom.dtype, device=e_atom.device)
    energy = energy.index_add(1, batch.frame_of_atom, e_atom)
    outer = (batch.rij[:, None, :, None] * g[:, :, None, :]).reshape(-1, kk * 9)
    virial = torch.zeros((batch.n_frames, kk * 9), dtype=g.dtype, device=g.device).index_add(
        0, batch.frame_of_pair, -outer
    )
    return energy, forces, virial.view(batch.n_frames, kk, 3, 3).transpose(0, 1)


def member_losses(
    model: MomentPotential, batch: Batch, cfg: TrainConfig, weights: torch.Tensor, *, create_graph: bool
) -> torch.Tensor:
    """``[K]`` loss per member (module docstring), ``weights`` ``[K, B]`` frame multiplicities."""
    energy, forces, virial = predict(model, batch, create_graph=create_graph)
    n = batch.n_atoms.to(energy.dtype)
    de = ((energy - batch.energy[None]) / n[None]) ** 2  # [K, B]
    df = ((forces - batch.forces[:, None, :]) ** 2).sum(-1)  # [N, K]
    df_frame = torch.zeros_like(de).index_add(1, batch.frame_of_atom, df.t()) / (3.0 * n[None])
    dw = (((virial - batch.virial[None]) / n[None, :, None, None]) ** 2).sum((-1, -2)) / 9.0
    dw = dw * batch.has_virial.to(dw.dtype)[None]
    per_frame = cfg.energy_weight * de + cfg.force_weight * df_frame + cfg.stress_weight * dw
    return (weights * per_frame).sum(1) / weights.sum(1).clamp_min(1e-12)


@torch.no_grad()
def _feature_statistics(
    model: MomentPotential, graphs: Sequence[FrameGraph], device: str, frames: str = "spread"
) -> None:
    """Per-member mean/std of the invariants over (up to 64) training frames: spread evenly over the
    training set (data files are often ordered by kind: crystals first, melts last), or the first
    64 (``frames="first"``, the earlier behaviour)."""
    n_frames = len(graphs)
    if n_frames > 64 and frames == "spread":
        take = sorted({round(k * (n_frames - 1) / 63) for k in range(64)})
    else:
        take = list(range(min(n_frames, 64)))
    batch = collate(graphs, take).to(device, model.dtype)
    types = model.type_of_z[batch.species]
    n = int(batch.species.numel())
    a, _ = model.atomic_moments(batch.rij, batch.i, batch.j, types, n)
    x = model.features(a, types)  # [K, n, F]
    model.feature_mean.copy_(x.mean(1))
    model.feature_std.copy_(x.std(1).clamp_min(1e-4 * float(x.std(1).max()) + 1e-12))


# ------------------------------------------------------------------------------------ metrics
def metrics(
    model: MomentPotential, graphs: Sequence[FrameGraph], *, batch_size: int = 16, device: str = "cpu"
) -> dict[str, Any]:
    """Errors of the committee mean (and per member for forces) on ``graphs``.

    Energies in meV/atom, forces in meV/Å (components), stress in GPa; per element for forces.
    """
    if not graphs:
        return {}
    dtype = model.dtype
    e_err, f_err, f_species, w_err, member_f_err, dev = [], [], [], [], [], []
    for s in range(0, len(graphs), batch_size):
        batch = collate(graphs, range(s, min(s + batch_size, len(graphs)))).to(device, dtype)
        energy, forces, virial = predict(model, batch)
        n = batch.n_atoms.to(dtype)
        e_err.append(((energy.mean(0) - batch.energy) / n).double().cpu())
        f_err.append((forces.mean(1) - batch.forces).double().cpu())
        member_f_err.append((forces - batch.forces[:, None, :]).double().cpu())
        f_species.append(batch.species.cpu())
        mf = forces - forces.mean(1, keepdim=True)
        dev.append((mf * mf).sum(-1).mean(-1).sqrt().double().cpu())
        ok = batch.has_virial
        if bool(ok.any()):  # Δσ = −ΔW / V
            w_err.append(((virial.mean(0) - batch.virial)[ok] / batch.volume[ok, None, None]).double().cpu())
    e = torch.cat(e_err)
    f = torch.cat(f_err)
    sp = torch.cat(f_species)
    mfe = torch.cat(member_f_err)

    def mae_rmse(x: torch.Tensor, scale: float) -> dict[str, float]:
        return {"mae": float(x.abs().mean()) * scale, "rmse": float(x.pow(2).mean().sqrt()) * scale}

    out: dict[str, Any] = {
        "n_frames": len(graphs),
        "n_atoms": int(sp.numel()),
        "energy_meV_per_atom": mae_rmse(e, 1e3),
        "forces_meV_per_A": mae_rmse(f, 1e3),
        "forces_per_element_meV_per_A": {
            chemical_symbols[int(z)]: {**mae_rmse(f[sp == z], 1e3), "n_atoms": int((sp == z).sum())}
            for z in torch.unique(sp).tolist()
        },
        "member_forces_mae_meV_per_A": [float(mfe[:, k].abs().mean()) * 1e3 for k in range(mfe.shape[1])],
        "force_dev_mean_meV_per_A": float(torch.cat(dev).mean()) * 1e3,
    }
    if w_err:
        out["stress_GPa"] = mae_rmse(torch.cat(w_err), EV_PER_A3_IN_GPA)
    return out


# ------------------------------------------------------------------------------------ training
def _split(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    g = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(n, generator=g).tolist()
    n_val = max(1, round(fraction * n)) if fraction > 0 else 0
    if n - n_val < 1:
        raise ValueError(
            f"cannot split {n} frames into train and validation (validation_fraction={fraction})"
        )
    return sorted(perm[n_val:]), sorted(perm[:n_val])


def _bootstrap_weights(n_members: int, n_train: int, seed: int, enabled: bool) -> torch.Tensor:
    """``[K, n_train]`` multiplicities (ones without bootstrap)."""
    w = torch.ones((n_members, n_train), dtype=torch.float64)
    if enabled and n_members > 1:
        for m in range(n_members):
            g = torch.Generator().manual_seed(int(seed) + 1000 + m)
            draw = torch.randint(n_train, (n_train,), generator=g)
            w[m] = torch.bincount(draw, minlength=n_train).to(torch.float64)
    return w


def _init_spec(config: TrainConfig, spec: ModelSpec) -> ModelSpec:
    """The architecture of ``config.init`` (with this config's core repulsion), checked against the
    config: a warm start must not silently change species, cutoff or network shape."""
    init = load(config.init)
    mine, theirs = spec.to_dict(), init.spec.to_dict()
    differ = [
        k
        for k in mine
        if k not in ("avg_neighbors", "core_inner", "core_outer", "radial_floor") and mine[k] != theirs.get(k)
    ]
    if differ:
        raise ValueError(
            f"init model {config.init} differs from the config in "
            + ", ".join(f"{k} ({theirs.get(k)} vs {mine[k]})" for k in differ)
        )
    return ModelSpec.from_dict(
        {
            **theirs,
            "core_inner": config.core_inner,
            "core_outer": config.core_outer,
            "radial_floor": config.radial_floor,
        }
    )


def train(
    config: TrainConfig,
    frames: Sequence[Any] | None = None,
    validation_frames: Sequence[Any] | None = None,
) -> TrainResult:
    """Train a model (``n_members = 1``) or a committee; nothing is written to disk.

    Args:
        config: the run configuration.
        frames: ASE ``Atoms`` with labels, instead of reading ``config.data``.
        validation_frames: held-out ``Atoms``, instead of ``config.validation_data`` / the split.

    Raises:
        ValueError / :class:`~ssehpc.ml.data.DataError`: unusable data or configuration.
    """
    t_start = time.perf_counter()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    labels = Labels(config.energy_key, config.forces_key, config.stress_key)
    all_frames = list(frames) if frames is not None else mldata.read_frames(config.data)
    if validation_frames is not None:
        train_atoms, val_atoms = all_frames, list(validation_frames)
    elif config.validation_data:
        train_atoms, val_atoms = all_frames, mldata.read_frames(config.validation_data)
    else:
        tr, va = _split(len(all_frames), config.validation_fraction, config.seed)
        train_atoms, val_atoms = [all_frames[k] for k in tr], [all_frames[k] for k in va]
    present = sorted({int(z) for a in [*train_atoms, *val_atoms] for z in a.numbers})
    species = sorted(_z(s) for s in config.species) if config.species else present
    unknown = sorted(set(present) - set(species))
    if unknown:
        raise ValueError(
            f"the data contain elements {[chemical_symbols[z] for z in unknown]} not in species {config.species}"
        )
    train_g = [mldata.build_graph(a, config.cutoff, labels) for a in train_atoms]
    val_g = [mldata.build_graph(a, config.cutoff, labels) for a in val_atoms]

    dtype = getattr(torch, config.dtype)
    device = config.device
    spec = config.spec(species, mldata.average_neighbors(train_g))
    if config.init:
        spec = _init_spec(config, spec)
    model = (
        Committee(spec, seed=config.seed) if spec.n_members > 1 else MomentPotential(spec, seed=config.seed)
    ).to(device, dtype)
    if config.init:
        init = load(config.init)
        model.load_state_dict({k: v.to(device, dtype) for k, v in init.state_dict().items()})
    else:
        with torch.no_grad():
            model.energy_ref.copy_(
                mldata.reference_energies(train_g, species)[None].expand(spec.n_members, -1)
            )
            model.energy_scale.fill_(mldata.force_rms(train_g))
        _feature_statistics(model, train_g, device, config.feature_frames)

    kk = spec.n_members
    boot = _bootstrap_weights(kk, len(train_g), config.seed, config.bootstrap).to(device, dtype)
    ones_val = torch.ones((kk, len(val_g)), dtype=dtype, device=device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, factor=0.5, patience=config.lr_patience, min_lr=config.lr_min
    )
    params = list(model.parameters())
    # Exponential moving average of the weights (validated, kept and saved): smooths the noise of
    # small batches, as in NequIP/MACE.  ema ← d·ema + (1 − d)·θ after every step.
    ema = [p.detach().clone() for p in params] if config.ema_decay > 0 else None
    best = {name: t.detach().clone() for name, t in model.state_dict().items()}
    best_val = torch.full((kk,), math.inf, dtype=torch.float64)
    best_epoch = [0] * kk
    gen = torch.Generator().manual_seed(int(config.seed) + 7)
    history: list[dict[str, float]] = []
    stopped = "epochs"
    epoch = 0
    for epoch in range(1, config.epochs + 1):
        model.train()
        order = torch.randperm(len(train_g), generator=gen).tolist()
        train_loss = torch.zeros(kk, dtype=torch.float64)
        for s in range(0, len(order), config.batch_size):
            idx = order[s : s + config.batch_size]
            batch = collate(train_g, idx).to(device, dtype)
            w = boot[:, idx]
            if float(w.sum()) == 0.0:
                continue
            losses = member_losses(model, batch, config, w, create_graph=True)
            opt.zero_grad(set_to_none=True)
            losses.sum().backward()
            opt.step()
            if ema is not None:
                with torch.no_grad():
                    for e, p in zip(ema, params, strict=True):
                        e.lerp_(p, 1.0 - config.ema_decay)
            train_loss += losses.detach().double().cpu() * len(idx)
        train_loss /= len(order)
        if ema is not None:  # validate (and keep) the averaged weights; train on the raw ones
            raw = [p.detach().clone() for p in params]
            with torch.no_grad():
                for e, p in zip(ema, params, strict=True):
                    p.copy_(e)
        val_loss = _validation_loss(model, val_g, config, ones_val, device, dtype)
        sched.step(float(val_loss.mean()))
        improved = val_loss < best_val
        for m in torch.nonzero(improved).flatten().tolist():
            best_val[m] = val_loss[m]
            best_epoch[m] = epoch
            for name, t in model.state_dict().items():
                best[name][m].copy_(t[m])
        if ema is not None:
            with torch.no_grad():
                for r, p in zip(raw, params, strict=True):
                    p.copy_(r)
        history.append(
            {
                "epoch": epoch,
                "train_loss": float(train_loss.mean()),
                "val_loss": float(val_loss.mean()),
                "lr": opt.param_groups[0]["lr"],
            }
        )
        if config.log_every and (epoch % config.log_every == 0 or epoch == 1):
            print(
                f"epoch {epoch:4d}  train {float(train_loss.mean()):.3e}  val {float(val_loss.mean()):.3e}  "
                f"lr {opt.param_groups[0]['lr']:.1e}  {time.perf_counter() - t_start:.0f} s",
                flush=True,
            )
        if epoch - max(best_epoch) >= config.patience:
            stopped = "early stopping"
            break
        if config.max_time_s is not None and time.perf_counter() - t_start > config.max_time_s:
            stopped = "max_time_s"
            break
    model.load_state_dict(best)
    model.eval()
    elapsed = time.perf_counter() - t_start
    report = {
        "ssehpc_model": type(model).__name__,
        "spec": spec.to_dict(),
        "config": config.model_dump(),
        "n_train_frames": len(train_g),
        "n_validation_frames": len(val_g),
        "epochs_run": epoch,
        "stopped_by": stopped,
        "best_epoch_per_member": best_epoch,
        "best_validation_loss_per_member": best_val.tolist(),
        "train_time_s": elapsed,
        "reference_energies_eV": {
            chemical_symbols[z]: float(e) for z, e in zip(species, model.energy_ref[0].tolist(), strict=True)
        },
        "train": metrics(model, train_g, device=device),
        "validation": metrics(model, val_g, device=device),
        "history": history,
    }
    model.metadata = {
        "teacher": config.teacher,
        "data_sha256": mldata.sha256_files(config.data) if frames is None else None,
        "data_files": [Path(p).name for p in config.data] if frames is None else [],
        "report_summary": summary(report),
    }
    return TrainResult(model=model, report=report)


@torch.no_grad()
def _validation_loss(
    model: MomentPotential,
    graphs: Sequence[FrameGraph],
    cfg: TrainConfig,
    ones: torch.Tensor,
    device: str,
    dtype: torch.dtype,
) -> torch.Tensor:
    """``[K]`` mean per-frame loss on ``graphs``."""
    total = torch.zeros(ones.shape[0], dtype=torch.float64)
    bs = max(cfg.batch_size, 16)
    for s in range(0, len(graphs), bs):
        idx = list(range(s, min(s + bs, len(graphs))))
        batch = collate(graphs, idx).to(device, dtype)
        total += member_losses(model, batch, cfg, ones[:, idx], create_graph=False).double().cpu() * len(idx)
    return total / max(len(graphs), 1)


# ------------------------------------------------------------------------------------ report
def summary(report: Mapping[str, Any]) -> dict[str, Any]:
    """Headline numbers of a report (stored in the model file's metadata)."""
    out: dict[str, Any] = {
        "n_train_frames": report["n_train_frames"],
        "n_validation_frames": report["n_validation_frames"],
    }
    for part in ("train", "validation"):
        m = report.get(part) or {}
        if m:
            out[part] = {
                "energy_mae_meV_per_atom": m["energy_meV_per_atom"]["mae"],
                "forces_mae_meV_per_A": m["forces_meV_per_A"]["mae"],
            }
    return out


def report_markdown(report: Mapping[str, Any]) -> str:
    """The report as Markdown tables."""
    spec = report["spec"]
    lines = [
        f"# Training report: {report['ssehpc_model']} ({spec['n_members']} member(s))",
        "",
        f"Species {', '.join(chemical_symbols[z] for z in spec['species'])}; cutoff {spec['cutoff']} Å; "
        f"lmax {spec['lmax']}, {spec['mixing']} mixing, {spec['contraction']} contraction, channels {spec['channels']}, "
        f"four-body {spec['four_body']}, hidden {spec['hidden']}.",
        f"{report['n_train_frames']} training / {report['n_validation_frames']} validation frames; "
        f"{report['epochs_run']} epochs ({report['stopped_by']}); {report['train_time_s']:.0f} s.",
        "",
        "| set | frames | E MAE (meV/atom) | E RMSE (meV/atom) | F MAE (meV/Å) | F RMSE (meV/Å) | ⟨ε⟩ (meV/Å) |",
        "|---|---|---|---|---|---|---|",
    ]
    for part in ("train", "validation"):
        m = report.get(part) or {}
        if m:
            e, f = m["energy_meV_per_atom"], m["forces_meV_per_A"]
            lines.append(
                f"| {part} | {m['n_frames']} | {e['mae']:.2f} | {e['rmse']:.2f} | {f['mae']:.1f} | {f['rmse']:.1f} | "
                f"{m['force_dev_mean_meV_per_A']:.1f} |"
            )
    lines += [
        "",
        "Force components per element:",
        "",
        "| set | element | atoms | MAE (meV/Å) | RMSE (meV/Å) |",
        "|---|---|---|---|---|",
    ]
    for part in ("train", "validation"):
        for el, v in ((report.get(part) or {}).get("forces_per_element_meV_per_A") or {}).items():
            lines.append(f"| {part} | {el} | {v['n_atoms']} | {v['mae']:.1f} | {v['rmse']:.1f} |")
    val = report.get("validation") or {}
    if val.get("stress_GPa"):
        v = val["stress_GPa"]
        lines += ["", f"Validation stress components: MAE {v['mae']:.3f} GPa, RMSE {v['rmse']:.3f} GPa."]
    if val.get("member_forces_mae_meV_per_A"):
        lines += [
            "",
            "Validation force MAE per member (meV/Å): "
            + ", ".join(f"{x:.1f}" for x in val["member_forces_mae_meV_per_A"]),
        ]
    return "\n".join(lines) + "\n"


def write_report(report: Mapping[str, Any], stem: str | Path) -> tuple[Path, Path]:
    """Write ``<stem>.json`` and ``<stem>.md``."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    js, md = stem.with_name(stem.name + ".json"), stem.with_name(stem.name + ".md")
    js.write_text(json.dumps(report, indent=1) + "\n")
    md.write_text(report_markdown(report))
    return js, md


def load_config(config: TrainConfig | Mapping[str, Any] | str | Path) -> TrainConfig:
    """A :class:`TrainConfig` from itself, a mapping, or a YAML/JSON file.

    Raises:
        ValueError: unreadable file, or field errors (one line per field, pydantic's wording).
    """
    if isinstance(config, TrainConfig):
        return config
    base: Path | None = None
    if isinstance(config, (str, Path)):
        path = Path(config)
        if not path.is_file():
            raise ValueError(f"training config '{path}' does not exist")
        import yaml

        config = yaml.safe_load(path.read_text()) or {}
        base = path.parent
        if not isinstance(config, Mapping):
            raise ValueError(f"training config '{path}' must be a mapping of fields")
    cfg = dict(config)
    if isinstance(cfg.get("data"), str):
        cfg["data"] = [cfg["data"]]
    if isinstance(cfg.get("validation_data"), str):
        cfg["validation_data"] = [cfg["validation_data"]]
    if base is not None:  # relative paths in a config file are relative to the file
        for key in ("data", "validation_data"):
            if key in cfg:
                cfg[key] = [str(p if Path(p).is_absolute() else base / p) for p in cfg[key]]
        for key in ("output", "report", "init"):
            if cfg.get(key) and not Path(cfg[key]).is_absolute():
                cfg[key] = str(base / cfg[key])
    try:
        return TrainConfig(**cfg)
    except ValidationError as exc:
        errs = "; ".join(
            f"{'.'.join(str(x) for x in e['loc']) or 'config'}: {e['msg']}" for e in exc.errors()
        )
        raise ValueError(f"invalid training config: {errs}") from exc


def train_main(config: TrainConfig | Mapping[str, Any] | str | Path) -> TrainResult:
    """Entry point of ``ssehpc train``: train, then write the model and the report files.

    Args:
        config: a :class:`TrainConfig`, a mapping of its fields, or a YAML/JSON file of them.

    Returns:
        :class:`TrainResult` with ``model_path`` and ``report_paths`` set.
    """
    cfg = load_config(config)
    result = train(cfg)
    model_path = Path(cfg.output)
    result.model.save(model_path)
    paths = write_report(result.report, cfg.report_stem)
    s = result.report["validation"]
    print(
        f"wrote {model_path} and {paths[1]}: validation energy MAE {s['energy_meV_per_atom']['mae']:.2f} meV/atom, "
        f"force MAE {s['forces_meV_per_A']['mae']:.1f} meV/Å",
        flush=True,
    )
    result.model_path = model_path
    result.report_paths = paths
    return result
