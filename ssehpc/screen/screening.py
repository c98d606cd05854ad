"""Screen a store: classify every frame by its committee deviation, pick diverse candidates.

:func:`screen_store` reads ``force_dev_max`` / ``force_dev_mean`` (``[frame, system]``, eV/Å) of
every run of a store that has them (committee runs; every status, so the frames before an
``extrapolating`` stop count too), classifies each configuration — one frame of one system —
as accurate / candidate / failed (:mod:`ssehpc.screen.config`), and selects candidates for
labelling:

1. per run, the candidates (at most ``pool`` of them, a seeded random subset beyond that) get a
   structural fingerprint (:func:`ssehpc.screen.descriptors.rdf_fingerprint`);
2. farthest-point sampling picks up to ``max_per_run`` of them, starting from the candidate with
   the largest deviation;
3. farthest-point sampling over the union picks up to ``max_total``, again starting from the
   largest deviation.

The selection is deterministic (same store, settings and ``seed`` → same picks) and listed in pick
order, so the first ``n`` picks of a selection are themselves spread out.

:func:`export_candidates` writes the picks as extended XYZ with their provenance in
``atoms.info``; :func:`write_screening` records the result in the store's ``screening/`` group
(``docs/screening.md``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

import ssehpc
from ssehpc.io.zarr_store import RunStore, StoreError, ZarrStore
from ssehpc.screen.config import (
    ACCURATE,
    CANDIDATE,
    DEFAULT_TRUST_HI,
    DEFAULT_TRUST_LO,
    FAILED,
    UNKNOWN,
)
from ssehpc.screen.descriptors import (
    DEFAULT_BINS,
    DEFAULT_CUTOFF,
    DEFAULT_SIGMA,
    farthest_point_sampling,
    rdf_fingerprint,
)

#: Name of the store group that holds the screening result.
SCREENING_GROUP = "screening"


def classify(force_dev_max: np.ndarray, trust_lo: float, trust_hi: float) -> np.ndarray:
    """Class of every value of ``max_i ε_i`` (eV/Å): ``accurate`` (0) below ``trust_lo``,
    ``candidate`` (1) in ``[trust_lo, trust_hi)``, ``failed`` (2) from ``trust_hi`` on, ``-1`` for
    NaN (no deviation recorded).  Same shape as the input, ``int8``.

    Raises:
        ValueError: unless ``0 < trust_lo < trust_hi``.
    """
    check_trust(trust_lo, trust_hi)
    dev = np.asarray(force_dev_max, dtype=np.float64)
    out = np.full(dev.shape, UNKNOWN, dtype=np.int8)
    ok = np.isfinite(dev) | np.isposinf(dev)
    out[ok & (dev < trust_lo)] = ACCURATE
    out[ok & (dev >= trust_lo) & (dev < trust_hi)] = CANDIDATE
    out[ok & (dev >= trust_hi)] = FAILED
    return out


def check_trust(trust_lo: float, trust_hi: float) -> None:
    """Raise a one-line ``ValueError`` unless ``0 < trust_lo < trust_hi`` (eV/Å)."""
    if not (np.isfinite(trust_lo) and np.isfinite(trust_hi) and 0 < trust_lo < trust_hi):
        raise ValueError(
            f"trust levels must satisfy 0 < trust_lo < trust_hi (eV/Å), got trust_lo={trust_lo}, trust_hi={trust_hi}"
        )


@dataclass(frozen=True)
class FrameRef:
    """One configuration: frame ``frame`` (system ``system``) of run ``run_id``.

    Attributes:
        run_id: the run group.
        frame: committed frame index.
        system: system index within the frame (0 for a single system).
        step: MD step of the frame.
        time_fs: simulated time, fs.
        temperature_K: kinetic temperature of the system, K.
        force_dev_max: ``max_i ε_i``, eV/Å.
        force_dev_mean: mean per-atom force deviation, eV/Å.
    """

    run_id: str
    frame: int
    system: int
    step: int
    time_fs: float
    temperature_K: float  # noqa: N815 (unit in the name)
    force_dev_max: float
    force_dev_mean: float

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "frame": self.frame,
            "system": self.system,
            "step": self.step,
            "force_dev_max": self.force_dev_max,
        }


@dataclass
class RunScreen:
    """The screening of one run.

    Attributes:
        run_id: the run group.
        status: the run's store status.
        classes: class of every configuration, ``int8 [frame, system]``.
        force_dev_max: ``max_i ε_i`` per configuration, eV/Å ``[frame, system]``.
        candidates: every candidate configuration.
        selected: the run's share of the final selection (pick order).
        temperature_K: the run's (thermostat) temperature attribute, K.
    """

    run_id: str
    status: str
    classes: np.ndarray
    force_dev_max: np.ndarray
    candidates: list[FrameRef] = field(default_factory=list)
    selected: list[FrameRef] = field(default_factory=list)
    temperature_K: float | None = None  # noqa: N815

    def count(self, cls: int) -> int:
        return int(np.count_nonzero(self.classes == cls))

    @property
    def n_configurations(self) -> int:
        """Configurations with a deviation (frames × systems, NaN entries excluded)."""
        return int(np.count_nonzero(self.classes != UNKNOWN))

    def fraction(self, cls: int) -> float:
        n = self.n_configurations
        return self.count(cls) / n if n else float("nan")

    @property
    def max_force_dev(self) -> float:
        """Largest ``max_i ε_i`` of the run, eV/Å (NaN without frames)."""
        finite = self.force_dev_max[~np.isnan(self.force_dev_max)]
        return float(finite.max()) if finite.size else float("nan")

    def summary(self) -> dict[str, Any]:
        """JSON-able counts and fractions (what ``screening/`` records per run)."""
        return {
            "status": self.status,
            "temperature_K": self.temperature_K,
            "configurations": self.n_configurations,
            "accurate": self.count(ACCURATE),
            "candidate": self.count(CANDIDATE),
            "failed": self.count(FAILED),
            "max_force_dev": _json_float(self.max_force_dev),
            "selected": len(self.selected),
        }


@dataclass
class ScreeningResult:
    """The screening of a store (:func:`screen_store`).

    Attributes:
        store: the store path.
        trust_lo, trust_hi: trust levels used, eV/Å.
        runs: screened runs, in store order.
        skipped: runs left out and why (no committee deviation, no frames).
        selected: the selected candidates, in pick order.
        settings: selection settings (caps, seed, fingerprint parameters).
    """

    store: Path
    trust_lo: float
    trust_hi: float
    runs: list[RunScreen]
    skipped: dict[str, str]
    selected: list[FrameRef]
    settings: dict[str, Any]

    def totals(self) -> dict[str, Any]:
        """Counts and fractions over every screened run (the campaign level)."""
        n = sum(r.n_configurations for r in self.runs)
        counts = {name: sum(r.count(c) for r in self.runs) for name, c in _CLASSES}
        return {
            "configurations": n,
            **counts,
            **{f"{name}_fraction": (counts[name] / n if n else None) for name, _ in _CLASSES},
            "selected": len(self.selected),
        }

    def run(self, run_id: str) -> RunScreen:
        for r in self.runs:
            if r.run_id == run_id:
                return r
        raise KeyError(run_id)


_CLASSES = (("accurate", ACCURATE), ("candidate", CANDIDATE), ("failed", FAILED))


def _json_float(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None


# ---------------------------------------------------------------------- trust levels
def trust_levels_of_runs(runs: Iterable[RunStore]) -> tuple[float, float] | None:
    """The trust levels the runs were run with (their spec's ``screening`` block), if every run
    that has one agrees; ``None`` otherwise."""
    levels = set()
    for run in runs:
        scr = (run.attrs.get("spec") or {}).get("screening")
        if scr:
            levels.add((float(scr["trust_lo"]), float(scr["trust_hi"])))
    return levels.pop() if len(levels) == 1 else None


# ---------------------------------------------------------------------- screening
def _frame_atoms(run: RunStore, positions: np.ndarray, cell: np.ndarray, system: int) -> Atoms:
    """One system of one frame as wrapped, periodic ``Atoms`` (positions Å, tag order)."""
    sys_idx = run.read_static("system_idx")
    numbers = run.read_static("species")
    mask = sys_idx == system
    atoms = Atoms(numbers=numbers[mask], positions=positions[mask], cell=cell[system], pbc=True)
    atoms.wrap()
    return atoms


def read_configurations(run: RunStore, refs: Sequence[FrameRef]) -> list[Atoms]:
    """``Atoms`` of ``refs`` (all of run ``run``), read with one orthogonal selection per array."""
    if not refs:
        return []
    frames = sorted({r.frame for r in refs})
    where = {f: k for k, f in enumerate(frames)}
    idx = np.asarray(frames, dtype=np.int64)
    pos = run.group["positions"].get_orthogonal_selection((idx, slice(None), slice(None)))
    cell = run.group["cell"].get_orthogonal_selection((idx, slice(None), slice(None), slice(None)))
    return [_frame_atoms(run, pos[where[r.frame]], cell[where[r.frame]], r.system) for r in refs]


def _screen_run(run: RunStore, trust_lo: float, trust_hi: float) -> RunScreen:
    data = run.read_frames(fields=["force_dev_max", "force_dev_mean", "step", "time_fs", "temperature_K"])
    dev = np.asarray(data["force_dev_max"], dtype=np.float64)
    classes = classify(dev, trust_lo, trust_hi)
    out = RunScreen(
        run.run_id, run.status, classes, dev, temperature_K=_opt_float(run.attrs.get("temperature_K"))
    )
    for f, s in zip(*np.nonzero(classes == CANDIDATE), strict=True):
        out.candidates.append(
            FrameRef(
                run_id=run.run_id,
                frame=int(f),
                system=int(s),
                step=int(data["step"][f]),
                time_fs=float(data["time_fs"][f]),
                temperature_K=float(data["temperature_K"][f, s]),
                force_dev_max=float(dev[f, s]),
                force_dev_mean=float(data["force_dev_mean"][f, s]),
            )
        )
    return out


def _opt_float(v: Any) -> float | None:
    return None if v is None else float(v)


def _argmax_dev(refs: Sequence[FrameRef]) -> int:
    return int(np.argmax([r.force_dev_max for r in refs]))


def screen_store(
    path: str | Path,
    *,
    trust_lo: float | None = None,
    trust_hi: float | None = None,
    max_per_run: int = 20,
    max_total: int = 200,
    pool: int = 500,
    seed: int = 0,
    run_ids: Sequence[str] | None = None,
    cutoff: float = DEFAULT_CUTOFF,
    n_bins: int = DEFAULT_BINS,
    sigma: float = DEFAULT_SIGMA,
) -> ScreeningResult:
    """Classify the frames of every committee run of the store and select diverse candidates.

    Args:
        path: the store (a run store or a campaign store).
        trust_lo, trust_hi: trust levels of ``max_i ε_i``, eV/Å; default: those of the runs'
            ``screening`` spec block when they all agree, else 0.05 / 0.15.
        max_per_run: most candidates selected from one run.
        max_total: most candidates selected in all.
        pool: most candidates of one run that get a fingerprint (a seeded random subset beyond).
        seed: seed of that subset.
        run_ids: screen only these runs (default every run).
        cutoff, n_bins, sigma: fingerprint cutoff (Å), bins and smoothing (Å).

    Raises:
        StoreError: missing store or run.
        ValueError: invalid trust levels or caps.
    """
    if max_per_run < 0 or max_total < 0 or pool < 1:
        raise ValueError(
            f"max_per_run and max_total must be >= 0 and pool >= 1, got {max_per_run}, {max_total}, {pool}"
        )
    zs = ZarrStore.open(path, "r")
    ids = list(run_ids) if run_ids is not None else zs.runs
    runs = [zs.run(rid) for rid in ids]
    if trust_lo is None or trust_hi is None:
        recorded = trust_levels_of_runs(runs)
        lo, hi = recorded if recorded is not None else (DEFAULT_TRUST_LO, DEFAULT_TRUST_HI)
        trust_lo = lo if trust_lo is None else trust_lo
        trust_hi = hi if trust_hi is None else trust_hi
    check_trust(trust_lo, trust_hi)
    screened: list[RunScreen] = []
    skipped: dict[str, str] = {}
    for run in runs:
        if "positions" not in run.group:
            skipped[run.run_id] = f"no frames (status {run.status})"
            continue
        if "force_dev_max" not in run.frame_fields:
            skipped[run.run_id] = "no committee deviation (not a committee run)"
            continue
        if run.n_frames == 0:
            skipped[run.run_id] = f"no committee frames (status {run.status})"
            continue
        screened.append(_screen_run(run, trust_lo, trust_hi))
    species = sorted({int(z) for r in screened for z in zs.run(r.run_id).read_static("species")})
    rng = np.random.default_rng(seed)
    pooled: list[FrameRef] = []
    fingerprints: list[np.ndarray] = []
    for rs in screened:
        cands = rs.candidates
        if not cands or max_per_run == 0:
            continue
        if len(cands) > pool:
            keep = np.sort(rng.choice(len(cands), size=pool, replace=False))
            cands = [cands[k] for k in keep]
        atoms = read_configurations(zs.run(rs.run_id), cands)
        fp = np.stack([rdf_fingerprint(a, species, cutoff=cutoff, n_bins=n_bins, sigma=sigma) for a in atoms])
        picks = farthest_point_sampling(fp, max_per_run, start=_argmax_dev(cands))
        pooled.extend(cands[k] for k in picks)
        fingerprints.extend(fp[k] for k in picks)
    selected: list[FrameRef] = []
    if pooled and max_total > 0:
        picks = farthest_point_sampling(np.stack(fingerprints), max_total, start=_argmax_dev(pooled))
        selected = [pooled[k] for k in picks]
    by_run = {rs.run_id: rs for rs in screened}
    for ref in selected:
        by_run[ref.run_id].selected.append(ref)
    settings = {
        "max_per_run": int(max_per_run),
        "max_total": int(max_total),
        "pool": int(pool),
        "seed": int(seed),
        "descriptor": {
            "kind": "smoothed partial neighbour densities (per ordered species pair)",
            "species": species,
            "cutoff_angstrom": float(cutoff),
            "n_bins": int(n_bins),
            "sigma_angstrom": float(sigma),
        },
    }
    return ScreeningResult(
        Path(path), float(trust_lo), float(trust_hi), screened, skipped, selected, settings
    )


# ---------------------------------------------------------------------- export
def _provenance(result: ScreeningResult, run: RunStore, ref: FrameRef) -> dict[str, Any]:
    attrs = run.attrs
    potential = attrs.get("potential") or {}
    info: dict[str, Any] = {
        "store": str(Path(result.store).expanduser().absolute()),
        "run_id": ref.run_id,
        "frame": ref.frame,
        "system": ref.system,
        "step": ref.step,
        "time_fs": ref.time_fs,
        "temperature_K": ref.temperature_K,
        "force_dev_max": ref.force_dev_max,
        "force_dev_mean": ref.force_dev_mean,
        "trust_lo": result.trust_lo,
        "trust_hi": result.trust_hi,
        "run_status": run.status,
        "potential": str(potential.get("name", "")),
    }
    model = (potential.get("params") or {}).get("model")
    if model is not None:
        info["model"] = str(model)
    for key in ("model_sha256", "model_hash", "model_id"):
        if attrs.get(key) is not None:
            info[key] = str(attrs[key])
    if attrs.get("temperature_K") is not None:
        info["run_temperature_K"] = float(attrs["temperature_K"])
    return info


def candidate_atoms(result: ScreeningResult, refs: Sequence[FrameRef] | None = None) -> list[Atoms]:
    """The selected configurations (or ``refs``) as ``Atoms`` with provenance in ``atoms.info``
    (in the order given)."""
    refs = list(result.selected if refs is None else refs)
    zs = ZarrStore.open(result.store, "r")
    out: list[Atoms | None] = [None] * len(refs)
    by_run: dict[str, list[int]] = {}
    for k, ref in enumerate(refs):
        by_run.setdefault(ref.run_id, []).append(k)
    for rid, ks in by_run.items():
        run = zs.run(rid)
        for k, atoms in zip(ks, read_configurations(run, [refs[k] for k in ks]), strict=True):
            atoms.info.update(_provenance(result, run, refs[k]))
            out[k] = atoms
    return [a for a in out if a is not None]


def export_candidates(result: ScreeningResult, out: str | Path) -> int:
    """Write the selected candidates to ``out`` as extended XYZ (``ase.io.write``), in pick order,
    with provenance in ``atoms.info`` (store, run_id, frame, system, step, time_fs, temperature_K,
    force_dev_max, force_dev_mean, trust_lo, trust_hi, run_status, potential, model, ...).

    Returns:
        The number of configurations written (an empty selection writes an empty file).
    """
    from ase.io import write

    atoms = candidate_atoms(result)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if atoms:
        write(out, atoms, format="extxyz")
    else:
        out.write_text("")
    return len(atoms)


# ---------------------------------------------------------------------- store
def write_screening(result: ScreeningResult, export: str | Path | None = None) -> str:
    """Record ``result`` in the store's ``screening/`` group (replacing an earlier screening).

    Layout::

        screening/                   attrs: created, ssehpc_version, trust_lo, trust_hi (eV/Å),
                                            settings, totals, runs {run_id: counts}, skipped,
                                            selected [{run_id, frame, system, step, force_dev_max}],
                                            export (path of the extxyz file or null)
          runs/<run_id>/frame_class  int8 [frame, system]  0 accurate, 1 candidate, 2 failed,
                                                            -1 no deviation

    Run groups are not touched.  Returns the group name.

    Raises:
        StoreError: the store is read-only or missing.
    """
    zs = ZarrStore.open(result.store, "r+")
    root = zs.group
    if root.read_only:
        raise StoreError(f"store '{result.store}' is open read-only")
    if SCREENING_GROUP in root:
        del root[SCREENING_GROUP]
    g = root.create_group(SCREENING_GROUP)
    runs_g = g.create_group("runs")
    for rs in result.runs:
        arr = runs_g.create_group(rs.run_id).create_array("frame_class", data=rs.classes.astype(np.int8))
        arr.attrs["codes"] = {
            "accurate": ACCURATE,
            "candidate": CANDIDATE,
            "failed": FAILED,
            "unknown": UNKNOWN,
        }
    g.update_attributes(
        {
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "ssehpc_version": ssehpc.__version__,
            "trust_lo": result.trust_lo,
            "trust_hi": result.trust_hi,
            "units": "eV/angstrom",
            "settings": result.settings,
            "totals": result.totals(),
            "runs": {rs.run_id: rs.summary() for rs in result.runs},
            "skipped": dict(result.skipped),
            "selected": [r.to_json() for r in result.selected],
            "export": None if export is None else str(Path(export).expanduser().absolute()),
        }
    )
    return SCREENING_GROUP


def deviations_by_run(path: str | Path) -> dict[str, np.ndarray]:
    """``max_i ε_i`` (eV/Å, finite values, flattened over systems) of every committee run with
    frames, by run id."""
    zs = ZarrStore.open(path, "r")
    out = {}
    for rid in zs.runs:
        run = zs.run(rid)
        if "force_dev_max" not in run.frame_fields or run.n_frames == 0:
            continue
        dev = np.asarray(run.read_frames(fields=["force_dev_max"])["force_dev_max"], dtype=np.float64).ravel()
        out[rid] = dev[np.isfinite(dev)]
    return out
