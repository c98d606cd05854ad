"""A Markdown report of a (campaign) store: what ran, transport with intervals, Arrhenius,
committee screening, a little structure, plots and honest notes.

:func:`write_report` writes ``OUTDIR/report.md`` and its PNG plots next to it (relative links, so
the folder can be moved or attached as it is).  Every number comes from the existing analysis:
:func:`ssehpc.analysis.report.analyze_store` (D*, σ, σ_NE, Haven ratio per (system, T) with 95 %
intervals, Arrhenius/VTF per system), :func:`ssehpc.screen.screen_store` (accurate / candidate /
failed fractions of the committee deviation) and :mod:`ssehpc.analysis.structure` (P–S RDF,
polyanion units); nothing is re-fitted here.

Units: D* cm²/s, σ mS/cm, Ea eV, T K, times ps, distances Å, deviations eV/Å.
"""

from __future__ import annotations

import contextlib
import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

import ssehpc
from ssehpc.analysis.arrhenius import ArrheniusFit
from ssehpc.analysis.msd import AnalysisError
from ssehpc.analysis.report import StoreAnalysis, analyze_store, plot_analysis
from ssehpc.io.zarr_store import ZarrStore

#: Name of the Markdown file in the output folder.
REPORT_NAME = "report.md"
#: Temperature the Arrhenius fits extrapolate to, K (that of :func:`arrhenius_fit`'s default).
T_EXTRAP_K = 300.0
#: Highest temperature at which the shipped ``lips`` committee has been shown stable with 1 fs steps, K
#: (``docs/mlff.md``, known limits).
LIPS_MAX_T_K = 700.0


# ---------------------------------------------------------------------- formatting
def _g(v: float | None, spec: str = ".3g") -> str:
    if v is None or not np.isfinite(v):
        return "–"
    return format(v, spec)


def _iv(v: float, lo: float, hi: float, spec: str = ".3g") -> str:
    """``v [lo, hi]`` or ``–``."""
    if not np.isfinite(v):
        return "–"
    return f"{format(v, spec)} [{_g(lo, spec)}, {_g(hi, spec)}]"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def _pct(x: float) -> str:
    return "–" if not np.isfinite(x) else f"{100.0 * x:.1f} %"


def _share(k: int, n: int) -> str:
    """``k`` of ``n`` as a percentage that never reads 0.0 % or 100.0 % unless it is exactly that
    (one failed frame in 2,004 is "0.05 %", not "0.0 %"): up to four decimals, as many as needed."""
    if n <= 0:
        return "–"
    x = 100.0 * k / n
    for d in range(1, 5):
        text = f"{x:.{d}f}"
        if (k == 0 or float(text) != 0.0) and (k == n or float(text) != 100.0):
            return f"{text} %"
    return "< 0.0001 %" if k < n / 2 else "> 99.9999 %"


def ea_interval(fit: ArrheniusFit) -> tuple[float, float]:
    """95 % interval of Ea, eV: Ea ± q·SE with the quantile :func:`arrhenius_fit` uses for its
    extrapolation (Student t on the residual dof when the covariance was scaled by χ²/dof > 1,
    else normal)."""
    scaled = fit.dof > 0 and fit.chi2 / fit.dof > 1.0
    q = float(stats.t.ppf(0.975, fit.dof) if scaled else stats.norm.ppf(0.975))
    return fit.Ea - q * fit.Ea_se, fit.Ea + q * fit.Ea_se


# ---------------------------------------------------------------------- campaign summary
@dataclass
class RunRow:
    """One run of the store, for the summary (``simulated_ps``: steps done × Δt)."""

    run_id: str
    system: str
    temperature_K: float  # noqa: N815 (unit in the name)
    stage: str
    status: str
    n_atoms: int
    n_frames: int
    simulated_ps: float
    composition: str


def _run_rows(zs: ZarrStore) -> list[RunRow]:
    rows = []
    for rid in zs.runs:
        run = zs.run(rid)
        a = run.attrs
        camp = a.get("campaign") or {}
        step = a.get("current_step", a.get("last_step")) or 0
        dt = float(a.get("dt_fs") or 0.0)
        T = a.get("temperature_K", camp.get("temperature_K"))
        rows.append(
            RunRow(
                run_id=rid,
                system=str(camp.get("system") or a.get("composition") or rid),
                temperature_K=float(T) if T is not None else math.nan,
                stage=str(camp.get("stage") or "-"),
                status=str(a.get("status", "?")),
                n_atoms=int(a.get("n_atoms") or 0),
                n_frames=int(a.get("n_frames") or 0),
                simulated_ps=float(step) * dt / 1000.0,
                composition=str(a.get("composition") or "-"),
            )
        )
    return rows


def _campaign_section(zs: ZarrStore, rows: list[RunRow]) -> list[str]:
    camp = zs.attrs.get("campaign") or {}
    name = camp.get("name") or (zs.attrs.get("spec") or {}).get("name") or Path(str(zs.path)).name
    statuses = Counter(r.status for r in rows)
    total_ps = sum(r.simulated_ps for r in rows)
    lines = [
        "## Campaign",
        "",
        f"Store `{zs.path}` (campaign `{name}`): **{len(rows)} runs**, "
        + ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
        + f"; **{total_ps:.3g} ps simulated** in all.",
        "",
    ]
    groups: dict[tuple[str, float], list[RunRow]] = defaultdict(list)
    for r in rows:
        groups[(r.system, r.temperature_K)].append(r)
    table_rows = []
    for (system, T), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        st = Counter(r.status for r in rs)
        stages = Counter(r.stage for r in rs)
        prod = [r for r in rs if r.n_frames > 0]
        table_rows.append(
            [
                system,
                _g(T, "g"),
                rs[0].composition,
                str(rs[0].n_atoms),
                ", ".join(f"{n}× {s}" for s, n in sorted(stages.items())),
                ", ".join(f"{n} {s}" for s, n in sorted(st.items())),
                _g(sum(r.simulated_ps for r in rs), ".3g"),
                _g(max((r.simulated_ps for r in prod), default=math.nan), ".3g"),
                str(sum(r.n_frames for r in rs)),
            ]
        )
    lines += _table(
        [
            "system",
            "T (K)",
            "composition",
            "atoms",
            "runs per stage",
            "status",
            "simulated (ps)",
            "longest run with frames (ps)",
            "frames",
        ],
        table_rows,
    )
    return [*lines, ""]


# ---------------------------------------------------------------------- transport
def _transport_section(res: StoreAnalysis) -> list[str]:
    rows = [
        [
            p.system,
            _g(p.temperature_K, "g"),
            str(len(p.runs)),
            str(p.n_atoms),
            _iv(p.D, p.D_lo, p.D_hi),
            _iv(p.sigma, p.sigma_lo, p.sigma_hi),
            _iv(p.sigma_NE, p.sigma_NE_lo, p.sigma_NE_hi),
            _iv(p.haven, p.haven_lo, p.haven_hi, ".2f"),
            f"{p.alpha:.2f}",
            f"{p.rsd_he2018:.2f}",
            f"{p.t_fit_start_fs / 1000:.3g}–{p.t_fit_end_fs / 1000:.3g}",
        ]
        for p in res.points
    ]
    lines = [
        f"## Transport of {res.species} (95 % intervals)",
        "",
        "D* is the tracer diffusion coefficient (per-ion MSD), σ the conductivity from the collective "
        "(Einstein–Helfand) MSD, σ_NE the Nernst–Einstein conductivity from D*, H_R = D*/D_σ the Haven "
        "ratio; replicas of a point are combined (docs/analysis.md).  α is the MSD exponent in the fit "
        "window (1 = diffusive), RSD the relative standard deviation of D* expected from the number of "
        "observed hops, N_eff = N_ion·MSD(t_end)/(4 Å²) (He et al., npj Comput. Mater. 4, 18 (2018); a "
        "cross-check, not the interval).",
        "",
    ]
    lines += _table(
        [
            "system",
            "T (K)",
            "replicas",
            f"{res.species} ions",
            "D* (cm²/s)",
            "σ (mS/cm)",
            "σ_NE (mS/cm)",
            "H_R",
            "α",
            "RSD",
            "fit window (ps)",
        ],
        rows,
    )
    return [*lines, ""]


def _arrhenius_section(res: StoreAnalysis) -> list[str]:
    lines = [
        f"## Arrhenius fits (extrapolated to {T_EXTRAP_K:g} K, 95 % intervals)",
        "",
        "`ln D* = ln A − Ea/(k_B T)` and `ln σT = ln A' − Ea/(k_B T)`, weighted by the per-point "
        "intervals; a fit is flagged non-Arrhenius when its χ² p-value is below 0.01 or VTF wins "
        "by ΔAIC > 4 (VTF needs ≥ 4 temperatures).  An extrapolation over hundreds of kelvin "
        "inherits every error of the slope: read the intervals.",
        "",
    ]
    if not res.arrhenius_D:
        return [*lines, "No system has two temperatures or more: no Arrhenius fit.", ""]
    rows = []
    for system, f in res.arrhenius_D.items():
        g = res.arrhenius_sigma.get(system)
        lo, hi = ea_interval(f)
        if g is not None:
            glo, ghi = ea_interval(g)
            ea_s = f"{g.Ea:.3f} ± {g.Ea_se:.3f} [{glo:.3f}, {ghi:.3f}]"
            s300 = _iv(g.y_extrap, g.y_extrap_lo, g.y_extrap_hi)
        else:
            ea_s = s300 = "–"
        flag = f"non-Arrhenius: {f.reason}" if f.non_arrhenius else "no"
        if g is not None and g.non_arrhenius:
            flag += f"; σT: {g.reason}"
        rows.append(
            [
                system,
                str(f.dof + 2),
                f"{f.Ea:.3f} ± {f.Ea_se:.3f} [{lo:.3f}, {hi:.3f}]",
                _iv(f.y_extrap, f.y_extrap_lo, f.y_extrap_hi),
                ea_s,
                s300,
                flag,
            ]
        )
    lines += _table(
        [
            "system",
            "temperatures",
            "Ea from D* (eV), ± SE [95 %]",
            f"D*({T_EXTRAP_K:g} K) (cm²/s)",
            "Ea from σT (eV), ± SE [95 %]",
            f"σ({T_EXTRAP_K:g} K) (mS/cm)",
            "non-Arrhenius flag",
        ],
        rows,
    )
    return [*lines, ""]


# ---------------------------------------------------------------------- screening
def _trust_levels(zs: ZarrStore) -> tuple[float, float] | None:
    """The runs' own trust levels, else the calibrated ones of their shipped committee."""
    from ssehpc.screen.config import calibrated_trust
    from ssehpc.screen.screening import trust_levels_of_runs

    runs = [zs.run(r) for r in zs.runs]
    recorded = trust_levels_of_runs(runs)
    if recorded is not None:
        return recorded
    models = {str(((r.attrs.get("potential") or {}).get("params") or {}).get("model")) for r in runs}
    if len(models) == 1:
        return calibrated_trust(models.pop())
    return None


def _screening_section(store: Path, zs: ZarrStore, outdir: Path) -> tuple[list[str], list[str]]:
    """Lines of the section and the names of the PNGs written."""
    from ssehpc.screen import plot_deviation_histogram, screen_store
    from ssehpc.screen.config import ACCURATE, CANDIDATE, FAILED

    lines = ["## Committee screening", ""]
    levels = _trust_levels(zs)
    lo, hi = levels if levels is not None else (None, None)
    # max_per_run=0: classify only, no candidate fingerprints (cheap).
    res = screen_store(store, trust_lo=lo, trust_hi=hi, max_per_run=0, max_total=0)
    if not res.runs:
        return [*lines, "No run recorded committee force deviations: no screening.", ""], []
    by_t: dict[float, list[Any]] = defaultdict(list)
    for rs in res.runs:
        by_t[rs.temperature_K if rs.temperature_K is not None else math.nan].append(rs)
    rows = []
    for T, rss in sorted(by_t.items()):
        n = sum(r.n_configurations for r in rss)
        counts = [sum(r.count(c) for r in rss) for c in (ACCURATE, CANDIDATE, FAILED)]
        devs = np.concatenate([r.force_dev_max[np.isfinite(r.force_dev_max)].ravel() for r in rss])
        rows.append(
            [
                _g(T, "g"),
                str(len(rss)),
                str(n),
                *(_share(k, n) for k in counts),
                _g(float(np.median(devs)) if devs.size else math.nan),
                _g(float(devs.max()) if devs.size else math.nan),
            ]
        )
    n_all = sum(r.n_configurations for r in res.runs)
    tot_counts = [sum(r.count(c) for r in res.runs) for c in (ACCURATE, CANDIDATE, FAILED)]
    lines += [
        f"Each frame is classified by the committee deviation max_i ε_i (eV/Å): accurate below "
        f"trust_lo = {res.trust_lo:g}, candidate up to trust_hi = {res.trust_hi:g}, failed above "
        f"({'the levels the runs recorded or the calibrated ones of the shipped committee' if levels else 'generic defaults'}; "
        "docs/screening.md).  Frames of every status count, equilibration frames too when written.",
        "",
    ]
    lines += _table(
        [
            "T (K)",
            "runs",
            "frames",
            "accurate",
            "candidate",
            "failed",
            "median max_i ε_i (eV/Å)",
            "largest (eV/Å)",
        ],
        rows,
    )
    n_acc, n_cand, n_fail = tot_counts
    failed_frames = f" ({n_fail} frame{'s' if n_fail > 1 else ''})" if n_fail else ""
    lines += [
        "",
        f"All runs: {n_all} frames, {_share(n_acc, n_all)} accurate, {_share(n_cand, n_all)} candidate, "
        f"{_share(n_fail, n_all)} failed{failed_frames}.",
        "",
    ]
    pngs = []
    try:
        png = plot_deviation_histogram(res, outdir / "deviation_histogram.png")
    except (ImportError, ValueError) as exc:
        lines += [f"(no deviation histogram: {exc})", ""]
    else:
        pngs.append(png.name)
        lines += [f"![committee deviation histogram]({png.name})", ""]
    return lines, pngs


# ---------------------------------------------------------------------- framework
def _framework_section(zs: ZarrStore, res: StoreAnalysis, symbols: set[str]) -> list[str]:
    """MSD of the mobile species against the other species of the first replica of each point:
    a framework whose MSD keeps growing is melting or rotating, not vibrating."""
    from ssehpc.analysis.msd import run_msd

    others = sorted(symbols - {res.species})
    if not others:
        return []
    lines = [
        "## Framework check",
        "",
        f"MSD (Å²) of each species at the start → end of the {res.species} fit window, first replica "
        "of each point (drift of the other species removed).  Vibrating framework atoms plateau "
        "(≲ 1 Å², no growth); a framework MSD that keeps growing means rotating units or a melting "
        "framework, and then the cell is no longer the crystal its name says.",
        "",
    ]
    rows = []
    for p in res.points:
        rid = p.runs[0]
        cells = [p.system, _g(p.temperature_K, "g"), rid]
        for sp in [res.species, *others]:
            try:
                m = res.msd[rid] if sp == res.species else run_msd(zs.run(rid), sp)
            except AnalysisError:
                cells.append("–")
                continue
            t, msd = m.lag_time_fs, m.msd
            k0 = min(int(np.searchsorted(t, p.t_fit_start_fs)), len(t) - 1)
            k1 = min(int(np.searchsorted(t, p.t_fit_end_fs)), len(t) - 1)
            cells.append(f"{msd[k0]:.3g} → {msd[k1]:.3g}")
        rows.append(cells)
    header = ["system", "T (K)", "run"]
    header += [f"{sp} MSD (Å²)" for sp in [res.species, *others]]
    lines += _table(header, rows)
    return [*lines, ""]


# ---------------------------------------------------------------------- structure
def _first_peak(r: np.ndarray, g: np.ndarray) -> float:
    return float(r[int(np.argmax(g))]) if g.size and np.max(g) > 0 else math.nan


def _structure_section(zs: ZarrStore, res: StoreAnalysis, max_frames: int) -> list[str]:
    """P–S first peak and polyanion fractions of the first replica of each analysed point."""
    from ssehpc.analysis.structure import polyanion_units, rdf, read_trajectory

    lines = [
        "## Structure (P–S first shell and polyanions)",
        "",
        f"From the first replica of each point, {max_frames} evenly spaced frames: the position of the "
        "first P–S RDF peak and the share of P atoms in PS₄ (ortho), P₂S₇ (pyro, corner sharing) and "
        "P₂S₆ (hypo, P–P bond) units (P–S bond cutoff 2.4 Å, `ssehpc structure` for the rest).",
        "",
    ]
    rows = []
    for p in res.points:
        rid = p.runs[0]
        try:
            run = zs.run(rid)
            stride = max(1, run.n_frames // max_frames)
            traj = read_trajectory(run, stride=stride)
            g = rdf(traj, [("P", "S")], r_max=4.0, max_frames=max_frames)
            frames = np.unique(np.linspace(0, traj.n_frames - 1, min(max_frames, traj.n_frames)).astype(int))
            kinds: Counter = Counter()
            for f in frames:
                for u in polyanion_units(traj, int(f)):
                    kinds[u.kind] += len(u.centers)
        except AnalysisError as exc:
            lines.append(f"- {p.system} {p.temperature_K:g} K: no structure ({exc})")
            continue
        n_p = sum(kinds.values())

        def share(kind: str, kinds: Counter = kinds, n_p: int = n_p) -> str:
            return _pct(kinds[kind] / n_p) if n_p else "–"

        other = n_p - sum(kinds[k] for k in ("PS4", "P2S7", "P2S6"))
        rows.append(
            [
                p.system,
                _g(p.temperature_K, "g"),
                rid,
                _g(_first_peak(g.r, g.g[("P", "S")]), ".2f"),
                _g(g.cn.get(("P", "S"), math.nan), ".2f"),
                share("PS4"),
                share("P2S7"),
                share("P2S6"),
                _pct(other / n_p) if n_p else "–",
            ]
        )
    if rows:
        lines += _table(
            [
                "system",
                "T (K)",
                "run",
                "P–S peak (Å)",
                "S per P (first shell)",
                "P in PS₄",
                "P in P₂S₇",
                "P in P₂S₆",
                "P in other units",
            ],
            rows,
        )
    return [*lines, ""]


# ---------------------------------------------------------------------- notes
def _honest_notes(res: StoreAnalysis, rows: list[RunRow], zs: ZarrStore) -> list[str]:
    notes = []
    prod = [r for r in rows if r.n_frames > 1]
    if prod:
        lens = sorted({round(r.simulated_ps, 3) for r in prod})
        notes.append(
            f"Runs with frames are {', '.join(f'{x:.3g}' for x in lens)} ps long.  Published D* and σ "
            "from MD of sulfide electrolytes use tens to hundreds of ps per temperature; at a few ps the "
            "intervals above are wide and the MSD may not yet be diffusive (see α)."
        )
    wide = [p for p in res.points if np.isfinite(p.sigma) and p.sigma_hi > 3.0 * max(p.sigma, 1e-300)]
    if wide:
        notes.append(
            "σ (collective MSD) is far less certain than D*: a cell has one charge displacement per run, "
            "so its interval is wide at "
            + ", ".join(f"{p.system} {p.temperature_K:g} K" for p in wide)
            + "; σ_NE (from D*) and the Haven ratio put it in context."
        )
    models = {
        str(((zs.run(r.run_id).attrs.get("potential") or {}).get("params") or {}).get("model")) for r in rows
    }
    if models & {"lips", "lips-v3"}:
        hot = sorted({r.temperature_K for r in rows if r.temperature_K > LIPS_MAX_T_K})
        notes.append(
            f"Model: the shipped `lips` committee (distilled from CHGNet, no tuning to experiment); shown "
            f"stable with 1 fs steps up to {LIPS_MAX_T_K:g} K (docs/mlff.md)"
            + (
                f"; runs above that ({', '.join(f'{t:g}' for t in hot)} K) are outside its range."
                if hot
                else "."
            )
            + "  Its accuracy is that of its teacher (CHGNet) at best; σ(300 K) is an extrapolation."
        )
    dts = {float(zs.run(r.run_id).attrs.get("dt_fs") or 0) for r in rows}
    if any(d > 1.0 for d in dts) and models & {"lips", "lips-v3"}:
        notes.append("Some runs use Δt > 1 fs, beyond the tested range of `lips`.")
    return notes


# ---------------------------------------------------------------------- the report
def write_report(
    store: str | Path,
    outdir: str | Path,
    *,
    species: str | None = "Li",
    drift: str = "framework",
    charge: float | None = None,
    analysis: StoreAnalysis | None = None,
    screening: bool = True,
    framework: bool = True,
    structure: bool = True,
    structure_frames: int = 10,
    title: str | None = None,
) -> Path:
    """Write ``outdir/report.md`` and its PNGs (MSD, Arrhenius, deviation histogram).

    Args:
        store: the (campaign) store.
        outdir: output folder (created).
        species: mobile species (None: :func:`~ssehpc.analysis.report.default_species`).
        drift: centre-of-mass drift removal of the MSD (``framework``, ``all``, ``none``).
        charge: charge of the mobile ion, e (default its formal charge).
        analysis: a result of :func:`~ssehpc.analysis.report.analyze_store` for this store, to
            avoid analysing it twice (``species``, ``drift`` and ``charge`` are then ignored).
        screening: include the committee screening (fractions, deviation histogram).
        framework: include the MSD of the other species (is the framework a solid?).
        structure: include the P–S structure section (skipped for stores without P and S).
        structure_frames: frames per run used for the structure section.
        title: report title (default from the store's name).

    Returns:
        The path of ``report.md``.

    Raises:
        AnalysisError: nothing to analyse (no completed run with frames, species absent, ...).
        ImportError: matplotlib is missing (``pip install ssehpc[plot]``).
    """
    store = Path(store)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    res = analysis if analysis is not None else analyze_store(store, species, drift=drift, charge=charge)
    zs = ZarrStore.open(store, "r")
    rows = _run_rows(zs)
    pngs = [Path(f).name for f in plot_analysis(res, outdir)]
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    lines = [
        f"# {title or f'Transport report: {store.name}'}",
        "",
        f"Generated {now} by ssehpc {ssehpc.__version__} from `{store}`; mobile species {res.species}. "
        "Units: T in K, D* in cm²/s, σ in mS/cm, Ea in eV, times in ps, distances in Å; "
        "intervals are 95 %.",
        "",
    ]
    lines += _campaign_section(zs, rows)
    lines += _transport_section(res)
    lines += _arrhenius_section(res)
    if screening:
        scr_lines, scr_png = _screening_section(store, zs, outdir)
        lines += scr_lines
        pngs += scr_png
    symbols = set()
    with contextlib.suppress(Exception):
        from ase.data import chemical_symbols

        symbols = {chemical_symbols[int(z)] for z in zs.run(res.points[0].runs[0]).read_static("species")}
    if framework:
        lines += _framework_section(zs, res, symbols)
    if structure and {"P", "S"} <= symbols:
        lines += _structure_section(zs, res, structure_frames)
    lines += ["## Plots", ""]
    for name in pngs:
        if name.startswith("msd_"):
            lines.append(f"![MSD {name[4:-4]}]({name})")
    lines.append("")
    for name in pngs:
        if name.startswith("arrhenius_"):
            lines.append(f"![Arrhenius {name[10:-4]}]({name})")
    lines += ["", "## Notes", ""]
    lines += [f"- {n}" for n in _honest_notes(res, rows, zs)]
    lines += [f"- {n}" for n in res.notes if not n.startswith("skipped run") or "0 committed" not in n]
    skipped = [n for n in res.notes if n.startswith("skipped run") and "0 committed" in n]
    if skipped:
        lines.append(f"- {len(skipped)} runs without frames (equilibration stages) are not analysed.")
    path = outdir / REPORT_NAME
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
