"""The deviation histogram: distribution of ``max_i ε_i`` per temperature (or run), with the
trust levels marked (PNG, matplotlib Agg)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ssehpc.io.zarr_store import ZarrStore
from ssehpc.screen.config import DEFAULT_TRUST_HI, DEFAULT_TRUST_LO
from ssehpc.screen.screening import ScreeningResult, trust_levels_of_runs


def _groups_of_store(path: str | Path, group_by: str) -> dict[str, np.ndarray]:
    zs = ZarrStore.open(path, "r")
    groups: dict[str, list[np.ndarray]] = {}
    keys: dict[str, float] = {}
    for rid in zs.runs:
        run = zs.run(rid)
        if "force_dev_max" not in run.frame_fields or run.n_frames == 0:
            continue
        dev = np.asarray(run.read_frames(fields=["force_dev_max"])["force_dev_max"], dtype=np.float64).ravel()
        T = run.attrs.get("temperature_K")
        if group_by == "temperature" and T is not None:
            label, key = f"{float(T):g} K", float(T)
        else:
            label, key = rid, float("inf")
        groups.setdefault(label, []).append(dev)
        keys[label] = key
    return {k: np.concatenate(groups[k]) for k in sorted(groups, key=lambda k: (keys[k], k))}


def plot_deviation_histogram(
    source: str | Path | ScreeningResult | Mapping[str, np.ndarray],
    out: str | Path,
    *,
    trust_lo: float | None = None,
    trust_hi: float | None = None,
    group_by: str = "temperature",
    title: str | None = None,
) -> Path:
    """Histogram of the committee deviation ``max_i ε_i`` (eV/Å, log-spaced bins, fraction of
    configurations per bin), one step line per group, the accurate / candidate / failed regions
    shaded at the trust levels.

    Args:
        source: a store path (committee runs grouped by ``group_by``), a
            :class:`ScreeningResult` (its runs, its trust levels), or ``{label: values}``.
        out: the PNG file to write (parent folders are created).
        trust_lo, trust_hi: trust levels to mark, eV/Å (default: the result's, the runs' recorded
            ones, or 0.05 / 0.15).
        group_by: ``temperature`` (the runs' ``temperature_K`` attribute) or ``run``.
        title: plot title.

    Returns:
        ``out`` as a ``Path``.

    Raises:
        ValueError: no deviation values to plot (no committee run with frames), or a bad ``group_by``.
    """
    if group_by not in ("temperature", "run"):
        raise ValueError(f"group_by must be 'temperature' or 'run', got {group_by!r}")
    if isinstance(source, ScreeningResult):
        groups: dict[str, np.ndarray] = {}
        order: dict[str, float] = {}
        for rs in source.runs:
            by_t = group_by == "temperature" and rs.temperature_K is not None
            label = f"{rs.temperature_K:g} K" if by_t else rs.run_id
            order[label] = float(rs.temperature_K) if by_t else float("inf")
            groups[label] = np.concatenate([groups.get(label, np.zeros(0)), rs.force_dev_max.ravel()])
        groups = {k: groups[k] for k in sorted(groups, key=lambda k: (order[k], k))}
        trust_lo = source.trust_lo if trust_lo is None else trust_lo
        trust_hi = source.trust_hi if trust_hi is None else trust_hi
    elif isinstance(source, Mapping):
        groups = {str(k): np.asarray(v, dtype=np.float64).ravel() for k, v in source.items()}
    else:
        groups = _groups_of_store(source, group_by)
        if trust_lo is None or trust_hi is None:
            zs = ZarrStore.open(source, "r")
            recorded = trust_levels_of_runs(zs.run(r) for r in zs.runs)
            if recorded is not None:
                trust_lo = recorded[0] if trust_lo is None else trust_lo
                trust_hi = recorded[1] if trust_hi is None else trust_hi
    trust_lo = DEFAULT_TRUST_LO if trust_lo is None else float(trust_lo)
    trust_hi = DEFAULT_TRUST_HI if trust_hi is None else float(trust_hi)
    groups = {k: v[np.isfinite(v) & (v > 0)] for k, v in groups.items()}
    groups = {k: v for k, v in groups.items() if v.size}
    if not groups:
        raise ValueError("no committee force deviations to plot (no committee run with frames)")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    allv = np.concatenate(list(groups.values()))
    lo = min(float(allv.min()), trust_lo) / 1.5
    hi = max(float(allv.max()), trust_hi) * 1.5
    bins = np.geomspace(lo, hi, 50)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.axvspan(lo, trust_lo, color="tab:green", alpha=0.08, lw=0)
    ax.axvspan(trust_lo, trust_hi, color="tab:orange", alpha=0.12, lw=0)
    ax.axvspan(trust_hi, hi, color="tab:red", alpha=0.08, lw=0)
    for label, v in groups.items():
        ax.hist(
            v,
            bins=bins,
            weights=np.full(v.size, 1.0 / v.size),
            histtype="step",
            lw=1.5,
            label=f"{label} ({v.size})",
        )
    ax.axvline(trust_lo, color="k", ls="--", lw=1)
    ax.axvline(trust_hi, color="k", ls="-", lw=1)
    ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    ax.set(
        xlabel="committee deviation max$_i$ ε$_i$ (eV/Å)",
        ylabel="fraction of frames",
        title=title or f"committee deviation (trust_lo {trust_lo:g}, trust_hi {trust_hi:g} eV/Å)",
    )
    ax.legend(fontsize=7, title="group (frames)", title_fontsize=7)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return out
