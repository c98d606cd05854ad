"""Expanding a campaign into small, serialisable run specifications.

A :class:`CampaignSpec` expands into one :class:`ChainSpec` per replica — a (system,
temperature, replica) point — holding one :class:`RunSpec` per stage.  A RunSpec is plain data: ids,
labels and the full :class:`~ssehpc.spec.MDSpec` as a JSON dict, so it pickles in microseconds and
no tensor ever travels through Dask.  Each run is its own run group::

    runs/<system>_T<temperature>_r<replica>_<stage>      e.g. runs/glass_x0.75_T600_r3_prod

Stage ``k > 0`` starts from stage ``k−1``'s final checkpoint (``structure: {from_run: ...}``:
unwrapped positions, momenta, cell), so a chain must run its stages in order, and one Dask task
runs one whole chain.  (A later batching layer can put several chains of the same model into one
task as one batched state; :class:`ChainSpec` is the unit it would group.)

Seeds: the seed of a run is :func:`derive_seed` of the campaign seed and the run's labels
(system id, temperature, replica, stage name), a hash that does not depend on the order of the
grid or on the machine, so adding temperatures or replicas later leaves existing runs unchanged.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssehpc.campaign.spec import CampaignSpec, StageSpec, _format_value
from ssehpc.spec import MDSpec, SpecError, calibrated_screening


def _stage_screening(spec: CampaignSpec, stage: StageSpec) -> dict[str, Any] | None:
    """The screening block of a stage's runs: the stage's own, none (``false``), or the campaign's,
    with the calibrated levels of the stage's shipped committee where the block names none."""
    chosen = spec.screening if stage.screening is None else (stage.screening or None)
    chosen = calibrated_screening(chosen, spec.stage_potential(stage))
    return chosen.model_dump(mode="json") if chosen is not None else None


def derive_seed(campaign_seed: int, *labels: object) -> int:
    """A 63-bit seed from the campaign seed and labels (BLAKE2b of their text), stable across
    machines, Python versions and the order in which runs are listed."""
    text = "\x1f".join([str(int(campaign_seed)), *(str(x) for x in labels)])
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def temperature_label(t: float) -> str:
    """``300.0`` → ``"300"``, ``712.5`` → ``"712.5"`` (as in run ids)."""
    return _format_value(float(t))


def chain_id(system: str, temperature_K: float, replica: int) -> str:
    """``<system>_T<temperature>_r<replica>``: the replica, and the prefix of its run ids."""
    return f"{system}_T{temperature_label(temperature_K)}_r{replica}"


@dataclass(frozen=True)
class RunSpec:
    """One stage of one replica: a run group of the store.

    Attributes:
        run_id: the run group name (``<chain_id>_<stage>``).
        chain_id: the replica this run belongs to.
        system: system id (after grid expansion).
        temperature_K: the point's temperature, K (a stage may run at another one; see ``md``).
        replica: replica index, 0-based.
        stage: stage name.
        stage_index: position of the stage in the chain.
        md: the full run spec (:meth:`MDSpec.to_json`).
        grid: the grid point of the system (``{"x": 0.75}``), empty without a grid.
    """

    run_id: str
    chain_id: str
    system: str
    temperature_K: float  # noqa: N815 (unit in the name)
    replica: int
    stage: str
    stage_index: int
    md: dict[str, Any]
    grid: dict[str, Any] = field(default_factory=dict)

    @property
    def steps(self) -> int:
        return int(self.md["steps"])

    @property
    def dt_fs(self) -> float:
        return float(self.md["dt_fs"])

    @property
    def simulated_fs(self) -> float:
        """Length of the run, fs."""
        return self.steps * self.dt_fs

    def mdspec(self) -> MDSpec:
        """The validated :class:`MDSpec`."""
        return MDSpec.from_dict(self.md)

    def labels(self) -> dict[str, Any]:
        """What the run group records about its place in the campaign (attribute ``campaign``)."""
        return {
            "chain": self.chain_id,
            "system": self.system,
            "temperature_K": self.temperature_K,
            "replica": self.replica,
            "stage": self.stage,
            "stage_index": self.stage_index,
            "grid": dict(self.grid),
        }


@dataclass(frozen=True)
class ChainSpec:
    """A replica: its stages in order, all in the store at ``store``.

    Attributes:
        chain_id: ``<system>_T<temperature>_r<replica>``.
        store: the campaign store (absolute path, as text).
        runs: one :class:`RunSpec` per stage, in order.
    """

    chain_id: str
    store: str
    runs: tuple[RunSpec, ...]

    @property
    def simulated_fs(self) -> float:
        return sum(r.simulated_fs for r in self.runs)


@dataclass(frozen=True)
class CampaignPlan:
    """The expanded campaign.

    Attributes:
        spec: the campaign spec.
        chains: every replica chain, in grid order (system, temperature, replica).
        systems: structure source (as JSON) of every system id.
    """

    spec: CampaignSpec
    chains: tuple[ChainSpec, ...]
    systems: dict[str, dict[str, Any]]

    @property
    def runs(self) -> list[RunSpec]:
        return [r for c in self.chains for r in c.runs]

    @property
    def store(self) -> Path:
        return Path(self.spec.store)

    def run(self, run_id: str) -> RunSpec:
        for r in self.runs:
            if r.run_id == run_id:
                return r
        raise KeyError(run_id)


def expand(spec: CampaignSpec) -> CampaignPlan:
    """Every replica chain and run of ``spec`` (no I/O, no structure is built).

    Raises:
        SpecError: if an expanded run spec is invalid (named by run id).
    """
    # Workers may start elsewhere (Slurm jobs): every path they see is absolute.
    spec = spec.resolve_paths(Path.cwd())
    store = Path(spec.store).expanduser().absolute()
    chains: list[ChainSpec] = []
    systems: dict[str, dict[str, Any]] = {}
    for system in spec.systems:
        for system_id, structure, grid in system.expand():
            systems[system_id] = structure.model_dump(mode="json")
            for t in spec.temperatures_K:
                for rep in range(spec.replicas):
                    cid = chain_id(system_id, t, rep)
                    runs = []
                    for k, stage in enumerate(spec.stages):
                        run_id = f"{cid}_{stage.name}"
                        if k == 0:
                            source = structure.model_dump(mode="json")
                        else:
                            # The previous stage of this replica, in the same store.
                            source = {"from_run": runs[-1].run_id, "velocities": stage.velocities}
                        dt = spec.stage_dt(stage)
                        md = {
                            "run_id": run_id,
                            "store": str(store),
                            "structure": source,
                            "potential": spec.stage_potential(stage).model_dump(mode="json"),
                            "integrator": stage.integrator.model_dump(mode="json"),
                            "temperature_K": stage.temperature_K if stage.temperature_K is not None else t,
                            "pressure_GPa": stage.pressure_GPa,
                            "dt_fs": dt,
                            "steps": stage.n_steps(dt),
                            "write_interval": stage.write_interval,
                            "checkpoint_interval": stage.checkpoint_interval,
                            "thermo_interval": stage.thermo_interval,
                            "seed": derive_seed(spec.seed, system_id, temperature_label(t), rep, stage.name),
                            "device": spec.device,
                            "dtype": spec.dtype,
                            "skin": spec.skin,
                            "min_distance": spec.min_distance,
                            "screening": _stage_screening(spec, stage),
                        }
                        # Validated once here, so a worker never meets an invalid spec.
                        try:
                            md = MDSpec.from_dict(md).to_json()
                        except SpecError as exc:
                            raise SpecError(f"stages.{k} ({stage.name}) of run {run_id}: {exc}") from None
                        runs.append(
                            RunSpec(
                                run_id=run_id,
                                chain_id=cid,
                                system=system_id,
                                temperature_K=float(t),
                                replica=rep,
                                stage=stage.name,
                                stage_index=k,
                                md=md,
                                grid=dict(grid),
                            )
                        )
                    chains.append(ChainSpec(chain_id=cid, store=str(store), runs=tuple(runs)))
    return CampaignPlan(spec=spec, chains=tuple(chains), systems=systems)
