"""Adaptive extension: lengthen production runs until each point's D* meets a relative error.

With ``adaptive: {target_rel_error: 0.1}`` in the campaign spec, once every run is done the
controller (:func:`ssehpc.campaign.controller.run_campaign`) repeats, at most ``max_rounds`` times:

1. analyse the adaptive stage's runs as ``ssehpc analyze`` does (GLS fit of the MSD with its
   covariance, replicas combined; :func:`point_errors`) → per (system, T) point ``D*`` and its
   standard error;
2. rank the points whose ``SE(D*)/D*`` exceeds the target, largest first;
3. for each, in that order and while the budget (``max_extra_ps`` of simulated time over all
   runs) lasts, extend the ``stage`` runs of all its replicas to the length the error needs —
   ``SE ∝ t^{-1/2}`` for a diffusive MSD, so ``t_new = t (rel / target)²`` — capped at
   ``max_growth`` × the current length and rounded up to whole frames;
4. run the extensions (each resumes its run from the final checkpoint and appends frames to the
   same run group, so the trajectory is one continuous run) and go back to 1.

Points whose D* cannot be fitted yet (the MSD is not diffusive within the run) or is not
positive cannot be judged by a relative error; they are extended by ``max_growth`` until the
budget or the rounds are spent.  What each round
decided is recorded in the store's root attribute ``campaign.adaptive``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ssehpc.campaign.plan import CampaignPlan, ChainSpec, RunSpec
from ssehpc.campaign.spec import AdaptiveSpec


@dataclass(frozen=True)
class PointError:
    """One (system, temperature) point as the analysis saw it."""

    system: str
    temperature_K: float  # noqa: N815 (unit in the name)
    D: float  # cm²/s
    D_se: float  # cm²/s
    runs: tuple[str, ...]  # the adaptive stage's runs of the point

    @property
    def rel_error(self) -> float:
        """``SE(D*)/D*`` (inf when D* is not positive)."""
        return self.D_se / self.D if self.D > 0 and math.isfinite(self.D_se) else math.inf


def point_errors(
    store: str | Path, plan: CampaignPlan, stage: str, species: str | None = None
) -> tuple[list[PointError], list[str]]:
    """D* and its standard error per (system, T) point from the ``stage`` runs of ``plan``,
    replicas combined, exactly as ``ssehpc analyze`` fits them.  A point whose MSD cannot be
    fitted yet (e.g. not diffusive within the run) gets ``D = nan`` (it needs a longer run).
    Returns the points and notes."""
    from ssehpc.analysis.msd import AnalysisError, run_msd
    from ssehpc.analysis.report import default_species
    from ssehpc.analysis.transport import point_transport
    from ssehpc.io.zarr_store import ZarrStore

    zs = ZarrStore.open(store, "r")
    groups: dict[tuple[str, float], list[str]] = defaultdict(list)
    for run in plan.runs:
        if run.stage == stage:
            groups[(run.system, run.temperature_K)].append(run.run_id)
    species = species or default_species(zs, next(iter(groups.values())))
    points, notes = [], []
    for (system, t), rids in sorted(groups.items()):
        try:
            point = point_transport(system, [run_msd(zs.run(r), species) for r in rids])
            D, se = float(point.D), float(point.D_se)
        except AnalysisError as exc:
            notes.append(f"{system} {t:g} K: {' '.join(str(exc).split())}")
            D, se = math.nan, math.nan
        points.append(PointError(system, t, D, se, tuple(rids)))
    return points, notes


@dataclass(frozen=True)
class Extension:
    """A run asked to go on to ``steps`` (from ``current``)."""

    run: RunSpec
    current: int
    steps: int

    @property
    def extra_fs(self) -> float:
        return (self.steps - self.current) * self.run.dt_fs


def plan_extensions(
    points: list[PointError],
    adaptive: AdaptiveSpec,
    plan: CampaignPlan,
    current_steps: dict[str, int],
    budget_fs: float,
) -> tuple[list[Extension], list[dict[str, Any]]]:
    """Decide one round: the extensions and one record per point (JSON-able).

    Args:
        points: the points of the adaptive stage with their errors.
        adaptive: the spec's ``adaptive`` block.
        plan: the campaign plan (run specs).
        current_steps: each run's current target steps (its ``steps`` attribute).
        budget_fs: simulated time still allowed, fs (``inf``: no cap).
    """
    by_id = {r.run_id: r for r in plan.runs}
    target = adaptive.target_rel_error
    records: list[dict[str, Any]] = []
    exts: list[Extension] = []
    for p in sorted(points, key=lambda q: -q.rel_error):
        rec: dict[str, Any] = {
            "system": p.system,
            "temperature_K": p.temperature_K,
            "D_cm2_s": p.D if math.isfinite(p.D) else None,
            "D_se_cm2_s": p.D_se if math.isfinite(p.D_se) else None,
            "rel_error": p.rel_error if math.isfinite(p.rel_error) else None,
        }
        if p.rel_error <= target:
            rec["action"] = "meets target"
            records.append(rec)
            continue
        factor = adaptive.max_growth if not math.isfinite(p.rel_error) else (p.rel_error / target) ** 2
        factor = min(adaptive.max_growth, max(factor * 1.15, 1.0))  # a margin: SE itself is noisy
        point_exts = []
        for rid in p.runs:
            run = by_id[rid]
            cur = current_steps.get(rid, run.steps)
            every = int(run.md.get("write_interval") or 1)
            new = int(math.ceil(cur * factor / every) * every)
            if new > cur:
                point_exts.append(Extension(replace(run, md={**run.md, "steps": new}), cur, new))
        extra = sum(e.extra_fs for e in point_exts)
        if not point_exts:
            rec["action"] = "nothing to extend"
        elif extra > budget_fs:
            rec["action"] = f"over budget ({extra / 1000:.3g} ps asked, {budget_fs / 1000:.3g} ps left)"
        else:
            budget_fs -= extra
            exts.extend(point_exts)
            rec["action"] = f"extend x{factor:.2f}"
            rec["extra_ps"] = extra / 1000.0
        records.append(rec)
    return exts, records


def extension_chain(ext: Extension, chain: ChainSpec) -> ChainSpec:
    """A one-run chain that resumes the completed run ``ext.run`` to ``ext.steps``."""
    return replace(chain, runs=(ext.run,))


__all__ = ["Extension", "PointError", "extension_chain", "plan_extensions", "point_errors"]
