"""The campaign's side of the store: what the controller (and only the controller) writes.

Layout additions to ``docs/store.md``::

    campaign.zarr/
      attrs: schema_version, ..., spec (the campaign spec), campaign (see below)
      runs/<system>_T<T>_r<replica>_<stage>/   one run group per stage of every replica;
            attrs: status ("pending" until a worker starts it), spec, campaign (labels:
            chain, system, temperature_K, replica, stage, stage_index, grid),
            campaign_attempts ([{start_step, host, pid, at}, ...] one per start or resume)
      locks/                                   a group; <chain_id>.lock files (flock)

Root attribute ``campaign``: ``name``, ``spec`` (validated, JSON), ``runs`` (ids in plan order),
``created``, ``updated``, ``invocations`` (how often the controller was started) and ``summary``
(counts by status, written at the end of each invocation).

**Who writes what.**  The controller writes the root attributes, creates ``locks/``, declares
the ``pending`` placeholders and, for runs no worker can be running (a system whose structure
cannot be built, a task Dask gave up on), their ``failed`` status.  Workers write only the run
groups of the chain whose lock they hold.  Zarr v3 keeps no child list in a parent group, so
creating run groups never rewrites a shared key.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import zarr

from ssehpc.campaign.plan import CampaignPlan, RunSpec
from ssehpc.campaign.task import LOCKS_GROUP, chain_lock, lock_path
from ssehpc.io.zarr_store import RunStore, StoreError, ZarrStore
from ssehpc.spec import SpecError

#: Store status → campaign status (``docs/campaign.md``).
CAMPAIGN_STATUS = {
    None: "pending",
    "pending": "pending",
    "created": "partial",
    "running": "partial",
    "stopped": "partial",
    "interrupted": "partial",
    "completed": "done",
    "failed": "failed",
    "extrapolating": "extrapolating",
}

#: Run attributes the controller reads while polling.
_POLLED = (
    "status",
    "error",
    "current_step",
    "checkpoint_step",
    "n_frames",
    "steps",
    "dt_fs",
    "campaign_attempts",
)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _diff(a: Any, b: Any, path: str = "") -> list[str]:
    """Dotted paths where two JSON trees differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _diff(a.get(k), b.get(k), f"{path}.{k}" if path else str(k))
        return out
    return [] if a == b else [path or "(value)"]


class CampaignStore:
    """The controller's handle on a campaign store.

    Args:
        store: the opened store (read/write).
    """

    def __init__(self, store: ZarrStore) -> None:
        self.store = store
        self._known: set[str] = set(store.runs)

    @classmethod
    def open(cls, plan: CampaignPlan, *, create: bool = True) -> CampaignStore | None:
        """Open the store of ``plan``; create it when ``create`` (else ``None`` if it is absent).

        Raises:
            StoreError: the store belongs to another campaign, or is not an ssehpc store.
        """
        spec = plan.spec
        if not create and not plan.store.exists():
            return None
        store = ZarrStore.open(plan.store, "a" if create else "r+", spec=spec.to_json())
        info = store.attrs.get("campaign")
        if info is not None and info.get("name") != spec.name:
            raise StoreError(
                f"store '{plan.store}' belongs to campaign {info.get('name')!r}, not {spec.name!r} "
                "(give this campaign its own store)"
            )
        if info is None and store.runs:
            raise StoreError(f"store '{plan.store}' already holds runs that are not part of a campaign")
        return cls(store)

    # ------------------------------------------------------------------ setup
    def check_specs(self, plan: CampaignPlan) -> None:
        """Refuse a spec that changed what existing runs are (started runs only).

        Raises:
            SpecError: naming the first runs and fields that differ.
        """
        problems = []
        for run in plan.runs:
            if run.run_id not in self._known:
                continue
            attrs = self._attrs(run.run_id)
            if attrs.get("status") == "pending":
                continue
            stored = {k: v for k, v in (attrs.get("spec") or {}).items() if k != "store"}
            wanted = {k: v for k, v in run.md.items() if k != "store"}
            if int(stored.get("steps") or 0) > int(wanted.get("steps") or 0):  # extended (adaptive)
                stored["steps"] = wanted.get("steps")
            fields = _diff(stored, wanted)
            if fields:
                problems.append(f"run {run.run_id} ({', '.join(fields[:4])})")
        if problems:
            more = f" and {len(problems) - 3} more" if len(problems) > 3 else ""
            raise SpecError(
                f"the spec changed runs that already exist in store '{self.store.path}': "
                f"{'; '.join(problems[:3])}{more}; use a new store, or delete those runs and their later stages"
            )

    def declare(self, plan: CampaignPlan) -> int:
        """Create ``pending`` placeholders for runs not yet in the store (and refresh the spec of
        placeholders whose spec changed).  Returns how many were created."""
        created = 0
        for run in plan.runs:
            attrs = _placeholder_attrs(run)
            if run.run_id in self._known:
                current = self._attrs(run.run_id)
                if current.get("status") == "pending" and current.get("spec") != run.md:
                    self._group(run.run_id, "r+").update_attributes({**attrs, "updated": _now()})
                continue
            self.store.declare_run(run.run_id, attrs)
            self._known.add(run.run_id)
            created += 1
        return created

    def record_start(self, plan: CampaignPlan) -> None:
        """Root attribute ``campaign`` at the start of an invocation (and the ``locks`` group)."""
        self.store.group.require_group(LOCKS_GROUP)
        info = dict(self.store.attrs.get("campaign") or {})
        now = _now()
        info.update(
            {
                "name": plan.spec.name,
                "spec": plan.spec.to_json(),
                "runs": [r.run_id for r in plan.runs],
                "systems": plan.systems,
                "created": info.get("created", now),
                "updated": now,
                "invocations": int(info.get("invocations", 0)) + 1,
            }
        )
        self.store.update_attrs(campaign=info)

    def record_summary(self, counts: dict[str, int]) -> None:
        """Root attribute ``campaign.summary`` at the end of an invocation."""
        info = dict(self.store.attrs.get("campaign") or {})
        info.update({"summary": dict(counts), "updated": _now()})
        self.store.update_attrs(campaign=info)

    # ------------------------------------------------------------------ reading
    def _group(self, run_id: str, mode: str = "r") -> zarr.Group:
        return zarr.open_group(self.store.group.store, path=f"runs/{run_id}", mode=mode, zarr_format=3)

    def _attrs(self, run_id: str) -> dict[str, Any]:
        try:
            return self._group(run_id).attrs.asdict()
        except (FileNotFoundError, KeyError, ValueError):
            # Absent, or being replaced by a worker right now (pending → created).
            return {}

    def poll(self, run_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The polled attributes (status, current_step, ...) of each run; ``{}`` if unreadable."""
        out = {}
        for rid in run_ids:
            a = self._attrs(rid)
            out[rid] = {k: a.get(k) for k in _POLLED} if a else {}
        return out

    # ------------------------------------------------------------------ controller-owned writes
    def mark_failed(self, run: RunSpec, error: str) -> bool:
        """Record ``failed`` for a run no worker can be writing (takes the chain lock without
        waiting; returns ``False`` if a live process holds it)."""
        from ssehpc.campaign.task import ChainBusyError

        try:
            with chain_lock(lock_path(self.store.path, run.chain_id), timeout_s=0):
                RunStore(self._group(run.run_id, "r+"), self.store.path).set_status("failed", error)
        except ChainBusyError:
            return False
        return True


def _placeholder_attrs(run: RunSpec) -> dict[str, Any]:
    md = run.md
    return {
        "spec": md,
        "campaign": run.labels(),
        "ensemble": md["integrator"]["name"],
        "dt_fs": md["dt_fs"],
        "temperature_K": md["temperature_K"],
        "pressure_GPa": md["pressure_GPa"],
        "seed": md["seed"],
        "steps": md["steps"],
        "write_interval": md["write_interval"],
    }
