"""Analyse a (campaign) store: group runs by (system, T), fit, write ``analysis/``, plot.

``analysis/`` holds xarray datasets in xarray's Zarr encoding (``docs/analysis.md``), readable
with ``xarray.open_zarr(store, group="analysis/points")`` without ssehpc.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ssehpc.analysis.arrhenius import ArrheniusFit, arrhenius_fit
from ssehpc.analysis.msd import AnalysisError, RunMSD, _symbols, run_msd
from ssehpc.analysis.transport import PointResult, point_transport
from ssehpc.io.zarr_store import ZarrStore

#: Statuses whose committed frames are analysed.
USABLE = ("completed",)


@dataclass
class StoreAnalysis:
    """Everything ``ssehpc analyze`` reports."""

    species: str
    points: list[PointResult]
    msd: dict[str, RunMSD]
    arrhenius_D: dict[str, ArrheniusFit] = field(default_factory=dict)  # noqa: N815 (unit or symbol in the name)
    arrhenius_sigma: dict[str, ArrheniusFit] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _system_of(run_id: str, attrs: dict) -> str:
    camp = attrs.get("campaign") or {}
    if camp.get("system"):
        return str(camp["system"])
    comp = attrs.get("composition")
    return str(comp) if comp else run_id


def default_species(zs: ZarrStore, run_ids: list[str]) -> str:
    """``Li`` if present, else the only species of the first run."""
    syms = sorted(set(_symbols(zs.run(run_ids[0]).read_static("species"))))
    if "Li" in syms:
        return "Li"
    if len(syms) == 1:
        return syms[0]
    raise AnalysisError(
        f"no Li in the store; choose the mobile species with --species (species: {', '.join(syms)})"
    )


def analyze_store(
    path: str | Path,
    species: str | None = None,
    *,
    drift: str = "framework",
    charge: float | None = None,
    include_extrapolating: bool = False,
    stages: Sequence[str] | None = None,
) -> StoreAnalysis:
    """Fit D*, σ, σ_NE, H_R per (system, T) and Arrhenius per system, from completed runs.

    Args:
        path: the store.
        species: mobile species (default :func:`default_species`).
        drift: centre-of-mass drift removal (:func:`~ssehpc.analysis.msd.run_msd`).
        charge: charge of the mobile ion, e (default its formal charge, +1 if unknown).
        include_extrapolating: also fit the committed frames of runs stopped as
            ``extrapolating`` by the committee screening (left out by default: the model left its
            range, and the run is shorter than asked).
        stages: campaign stages to fit (by name).  Default: the last stage of each replica chain
            (production); earlier stages (a melt, a quench, an NPT relaxation, equilibration) are
            not transport runs.  A stage with a temperature ramp is never fitted.

    Raises:
        AnalysisError: no completed run with frames, species absent, too few frames.
    """
    zs = ZarrStore.open(path, "r")
    notes: list[str] = []
    groups: dict[tuple[str, float], list[str]] = defaultdict(list)
    usable = (*USABLE, "extrapolating") if include_extrapolating else USABLE
    runs = {rid: zs.run(rid) for rid in zs.runs}
    last_stage: dict[str, int] = {}  # chain -> index of its last stage in this store
    for run in runs.values():
        lab = run.attrs.get("campaign") or {}
        if "chain" in lab:
            last_stage[lab["chain"]] = max(last_stage.get(lab["chain"], -1), int(lab.get("stage_index", 0)))
    other_stage: dict[str, int] = defaultdict(int)  # stage -> runs left out by stage (one note each)
    for rid, run in runs.items():
        lab = run.attrs.get("campaign") or {}
        if "stage" in lab and "chain" in lab:
            chosen = (
                lab["stage"] in stages
                if stages is not None
                else (int(lab.get("stage_index", 0)) == last_stage[lab["chain"]])
            )
            if not chosen:
                other_stage[lab["stage"]] += 1
                continue
        params = ((run.attrs.get("spec") or {}).get("integrator") or {}).get("params") or {}
        if params.get("temperature_end") is not None:
            notes.append(f"skipped run {rid}: a temperature ramp, not an equilibrium run")
            continue
        if run.status not in usable:
            notes.append(f"skipped run {rid}: status {run.status}")
            continue
        if run.n_frames < 2:
            notes.append(f"skipped run {rid}: {run.n_frames} committed frames")
            continue
        T = run.attrs.get("temperature_K")
        if T is None:
            notes.append(f"skipped run {rid}: no temperature_K attribute")
            continue
        groups[(_system_of(rid, run.attrs), float(T))].append(rid)
    for stage, n in sorted(other_stage.items()):
        why = (
            f"not among {', '.join(stages)}"
            if stages is not None
            else "not the chains' last stage; --stage to fit it"
        )
        notes.append(f"skipped {n} run(s) of stage {stage!r} ({why})")
    if not groups:
        raise AnalysisError(f"store '{path}' has no completed run with frames ({len(zs.runs)} runs)")
    first = next(iter(groups.values()))
    species = species or default_species(zs, first)
    charges = None if charge is None else {species: float(charge)}
    points: list[PointResult] = []
    msds: dict[str, RunMSD] = {}
    for (system, _T), rids in sorted(groups.items()):
        data = [run_msd(zs.run(r), species, drift=drift, charges=charges) for r in rids]
        msds.update({d.run_id: d for d in data})
        point = point_transport(system, data)
        notes.extend(point.notes)
        points.append(point)
    out = StoreAnalysis(species=species, points=points, msd=msds, notes=notes)
    for system in sorted({p.system for p in points}):
        pts = [p for p in points if p.system == system]
        if len(pts) < 2:
            out.notes.append(f"system {system}: Arrhenius needs at least 2 temperatures, has {len(pts)}")
            continue
        T = [p.temperature_K for p in pts]
        try:
            out.arrhenius_D[system] = arrhenius_fit(T, [p.D for p in pts], [p.D_se for p in pts])
        except AnalysisError as exc:
            out.notes.append(f"system {system}: D Arrhenius: {exc}")
        if all(np.isfinite(p.sigma) for p in pts):
            try:
                out.arrhenius_sigma[system] = arrhenius_fit(
                    T, [p.sigma for p in pts], [p.sigma_se for p in pts], times_T=True
                )
            except AnalysisError as exc:
                out.notes.append(f"system {system}: σ Arrhenius: {exc}")
    return out


def _fmt(v: float, lo: float, hi: float) -> str:
    if not np.isfinite(v):
        return "-"
    return f"{v:.3g} [{lo:.3g}, {hi:.3g}]"


def render_tables(res: StoreAnalysis) -> list[object]:
    """Rich tables: one row per (system, T) point; one row per system's Arrhenius fit."""
    from rich.table import Table

    t = Table(title=f"Transport of {res.species} (95 % intervals)")
    for c in (
        "system",
        "T (K)",
        "runs",
        "D* (cm²/s)",
        "RSD He2018",
        "σ (mS/cm)",
        "σ_NE (mS/cm)",
        "H_R",
        "fit (ps)",
    ):
        t.add_column(c)
    for p in res.points:
        t.add_row(
            p.system,
            f"{p.temperature_K:g}",
            str(len(p.runs)),
            _fmt(p.D, p.D_lo, p.D_hi),
            f"{p.rsd_he2018:.2f}",
            _fmt(p.sigma, p.sigma_lo, p.sigma_hi),
            _fmt(p.sigma_NE, p.sigma_NE_lo, p.sigma_NE_hi),
            _fmt(p.haven, p.haven_lo, p.haven_hi),
            f"{p.t_fit_start_fs / 1000:.3g}-{p.t_fit_end_fs / 1000:.3g}",
        )
    tables: list[object] = [t]
    if res.arrhenius_D:
        a = Table(title="Arrhenius (extrapolated to 300 K, 95 % intervals)")
        for c in (
            "system",
            "Ea from D* (eV)",
            "D*(300 K) (cm²/s)",
            "Ea from σT (eV)",
            "σ(300 K) (mS/cm)",
            "flag",
        ):
            a.add_column(c)
        for s, f in res.arrhenius_D.items():
            g = res.arrhenius_sigma.get(s)
            a.add_row(
                s,
                f"{f.Ea:.3f} ± {f.Ea_se:.3f}",
                _fmt(f.y_extrap, f.y_extrap_lo, f.y_extrap_hi),
                "-" if g is None else f"{g.Ea:.3f} ± {g.Ea_se:.3f}",
                "-" if g is None else _fmt(g.y_extrap, g.y_extrap_lo, g.y_extrap_hi),
                f"non-Arrhenius: {f.reason}" if f.non_arrhenius else "",
            )
        tables.append(a)
    return tables


def _strings(values: list[str]) -> np.ndarray:
    """Variable-length strings (Zarr v3's specified ``string`` type, not fixed-width UTF-32)."""
    return np.array(values, dtype=object)


def to_datasets(res: StoreAnalysis) -> dict[str, object]:
    """The results as xarray datasets: ``points`` (dim point), ``msd`` (dims run, lag,
    direction), ``arrhenius`` (dim system)."""
    import xarray as xr

    P = res.points
    cols = [
        "D", "D_se", "D_lo", "D_hi", "sigma", "sigma_se", "sigma_lo", "sigma_hi", "sigma_NE", "sigma_NE_lo",
        "sigma_NE_hi", "haven", "haven_lo", "haven_hi", "rsd_he2018", "alpha", "t_fit_start_fs", "t_fit_end_fs", "volume_A3",
    ]  # fmt: skip
    unit = {
        "D": "cm^2/s",
        "sigma": "mS/cm",
        "haven": "1",
        "rsd": "1",
        "alpha": "1",
        "t_fit": "fs",
        "volume": "angstrom^3",
    }
    pts = xr.Dataset(
        {c: ("point", np.array([getattr(p, c) for p in P], dtype=np.float64)) for c in cols},
        coords={
            "system": ("point", _strings([p.system for p in P])),
            "temperature_K": ("point", np.array([p.temperature_K for p in P])),
            "n_replicas": ("point", np.array([len(p.runs) for p in P])),
            "n_atoms": ("point", np.array([p.n_atoms for p in P])),
            "runs": ("point", _strings([",".join(p.runs) for p in P])),
        },
        attrs={"species": res.species, "interval": "95 %", "notes": "; ".join(res.notes)},
    )
    for c in cols:
        pts[c].attrs["units"] = next((u for k, u in unit.items() if c.startswith(k)), "")
    runs = sorted(res.msd)
    L = max(res.msd[r].n_frames for r in runs)
    msd = np.full((len(runs), L, 3), np.nan)
    lag_t = np.full((len(runs), L), np.nan)
    for i, r in enumerate(runs):
        d = res.msd[r]
        msd[i, : d.n_frames] = d.msd_xyz
        lag_t[i, : d.n_frames] = d.lag_time_fs
    fit_t = {f.run_id: (f.D.t_start_fs, f.D.t_end_fs) for p in P for f in p.per_run}
    msd_ds = xr.Dataset(
        {
            "msd": (("run", "lag", "direction"), msd, {"units": "angstrom^2"}),
            "lag_time_fs": (("run", "lag"), lag_t, {"units": "fs"}),
            "t_fit_start_fs": ("run", np.array([fit_t[r][0] for r in runs])),
            "t_fit_end_fs": ("run", np.array([fit_t[r][1] for r in runs])),
        },
        coords={"run": _strings(runs), "direction": _strings(["x", "y", "z"])},
        attrs={"species": res.species},
    )
    out: dict[str, object] = {"points": pts, "msd": msd_ds}
    systems = sorted(res.arrhenius_D)
    if systems:
        fields = ["Ea", "Ea_se", "prefactor", "y_extrap", "y_extrap_lo", "y_extrap_hi", "chi2", "p_value",
                  "aic", "vtf_aic", "vtf_T0", "vtf_B"]  # fmt: skip
        data = {
            f"D_{f}": ("system", np.array([getattr(res.arrhenius_D[s], f) for s in systems])) for f in fields
        }
        data["non_arrhenius"] = ("system", np.array([res.arrhenius_D[s].non_arrhenius for s in systems]))
        for f in ("Ea", "Ea_se", "y_extrap", "y_extrap_lo", "y_extrap_hi"):
            data[f"sigma_{f}"] = (
                "system",
                np.array(
                    [
                        getattr(res.arrhenius_sigma[s], f) if s in res.arrhenius_sigma else np.nan
                        for s in systems
                    ]
                ),
            )
        out["arrhenius"] = xr.Dataset(
            data,
            coords={"system": _strings(systems)},
            attrs={"T_extrap_K": 300.0, "units": "Ea eV; D cm^2/s; sigma mS/cm", "interval": "95 %"},
        )
    return out


def write_analysis(path: str | Path, res: StoreAnalysis) -> list[str]:
    """Write the datasets under ``analysis/<name>`` of the store (replacing earlier results)."""
    written = []
    for name, ds in to_datasets(res).items():
        ds.to_zarr(str(path), group=f"analysis/{name}", mode="w", zarr_format=3, consolidated=False)  # type: ignore[attr-defined]
        written.append(f"analysis/{name}")
    return written


def plot_analysis(res: StoreAnalysis, outdir: str | Path) -> list[Path]:
    """PNG plots: MSD with the fit window per run, Arrhenius with 95 % bands per system."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    files = []
    for p in res.points:
        fig, ax = plt.subplots(figsize=(5, 4))
        for f in p.per_run:
            d = res.msd[f.run_id]
            t = d.lag_time_fs / 1000.0
            ax.plot(t, d.msd, label=f.run_id)
            tt = np.array([f.D.t_start_fs, f.D.t_end_fs])
            ax.plot(tt / 1000.0, f.D.intercept + f.D.slope * tt, "k--", lw=1)
            ax.axvspan(tt[0] / 1000.0, tt[1] / 1000.0, color="0.9")
        ax.set(
            xlabel="lag time (ps)",
            ylabel=f"MSD {res.species} (Å²)",
            title=f"{p.system} {p.temperature_K:g} K",
        )
        ax.legend(fontsize=6)
        fn = outdir / f"msd_{p.system}_T{p.temperature_K:g}.png"
        fig.savefig(fn, dpi=100, bbox_inches="tight")
        plt.close(fig)
        files.append(fn)
    for system, fit in res.arrhenius_D.items():
        pts = [p for p in res.points if p.system == system]
        T = np.array([p.temperature_K for p in pts])
        fig, ax = plt.subplots(figsize=(5, 4))
        D = np.array([p.D for p in pts])
        ax.errorbar(1000 / T, D, yerr=[D - [p.D_lo for p in pts], [p.D_hi for p in pts] - D], fmt="o")
        Tg = np.linspace(min(T.min(), fit.T_extrap), T.max(), 100)
        ax.plot(1000 / Tg, fit.prefactor * np.exp(-fit.Ea / (8.617333262e-5 * Tg)), "-")
        ax.errorbar([1000 / fit.T_extrap], [fit.y_extrap],
                    yerr=[[fit.y_extrap - fit.y_extrap_lo], [fit.y_extrap_hi - fit.y_extrap]], fmt="s")  # fmt: skip
        ax.set_yscale("log")
        ax.set(
            xlabel="1000/T (1/K)",
            ylabel="D* (cm²/s)",
            title=f"{system}: Ea = {fit.Ea:.3f} ± {fit.Ea_se:.3f} eV",
        )
        fn = outdir / f"arrhenius_{system}.png"
        fig.savefig(fn, dpi=100, bbox_inches="tight")
        plt.close(fig)
        files.append(fn)
    return files
