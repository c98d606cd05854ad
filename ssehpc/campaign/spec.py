"""The campaign specification: a validated YAML file describing many MD runs.

A campaign is systems (structures, optionally expanded over a parameter grid) × temperatures ×
replicas, each replica running an ordered list of stages (e.g. melt → quench → production),
with one potential (a stage may name its own), written into one Zarr store.  Example (``examples/campaign_lj.yaml``)::

    name: lj-demo
    store: lj_campaign.zarr                # relative paths are relative to the spec file
    systems:
      - id: ar
        structure: {builder: fcc, element: Ar, a: 5.26, repeat: 2}
        grid: {a: [5.20, 5.26, 5.32]}      # three systems: ar_a5.2, ar_a5.26, ar_a5.32
    temperatures_K: [60, 80, 100]
    replicas: 4
    potential: {name: lj, params: {epsilon: 0.0104, sigma: 3.405, cutoff: 6.0}}
    dt_fs: 5.0
    seed: 2024
    stages:
      - {name: equil, integrator: {name: langevin, params: {damping: 100.0}}, ps: 0.5,
         write_interval: 0}
      - {name: prod, integrator: {name: nve}, steps: 400, write_interval: 20}
    resources: {kind: local, n_workers: 2}

Errors are one line and name the field (``stages.1.ps: ...``, ``systems.0.grid.b: ...``), and
are raised by :meth:`CampaignSpec.from_yaml` before anything is computed.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from ssehpc.screen.config import ScreeningSpec
from ssehpc.spec import (
    MAX_DT_FS,
    IntegratorSpec,
    PotentialSpec,
    SpecError,
    StructureSpec,
    read_yaml,
    resolve_potential_paths,
    resolve_structure_paths,
)

#: Characters allowed in system ids and stage names (they become parts of run ids).
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-]*")
#: Union tags that pydantic puts into error locations; they are not fields.
_UNION_TAGS = frozenset({"file", "fcc", "bulk", "prototype", "glass", "run", "local", "slurm"})
_UNIONS = frozenset({"structure", "resources"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_id(v: str, what: str) -> str:
    if not _ID.fullmatch(v):
        raise ValueError(
            f"{what} must start with a letter or digit and contain only letters, digits, '.' and '-' "
            f"(it becomes part of run ids, where '_' separates the parts), got {v!r}"
        )
    return v


# ---------------------------------------------------------------------- systems
class SystemSpec(_Strict):
    """A structure, or a family of structures over a parameter grid.

    Attributes:
        id: name of the system (part of every run id).
        structure: any structure source of :class:`ssehpc.spec.MDSpec` (file, ``fcc``, ``bulk``,
            Li–P–S ``prototype``, ``glass``, or ``from_run`` of another store).
        grid: ``{parameter: [values]}`` over parameters of ``structure`` (e.g. glass ``x``, a
            lattice constant ``a``, a substitution ``fraction`` or ``seed``; ``base.<parameter>``
            reaches into a ``substitute`` builder's base); the Cartesian product becomes one
            system per combination, named ``<id>_<param><value>``. Every point is validated
            when the spec is read (unknown parameter, empty list, unknown element, a charge
            imbalance that does not depend on counts); structures are built once per system
            before any run starts (``check_systems``).
    """

    id: str
    structure: StructureSpec
    grid: dict[str, list[float | int | str]] | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        return _check_id(v, "a system id")

    @field_validator("structure", mode="wrap")
    @classmethod
    def _structure(cls, v: Any, handler: Any) -> Any:
        """Name the field inside the structure source without the union tags (``replace: ...``
        rather than ``substitute.replace: ...``)."""
        try:
            return handler(v)
        except ValidationError as exc:
            tags = _UNION_TAGS | {"substitute"}
            parts = []
            for err in exc.errors():
                loc = [str(p) for p in err["loc"]]
                loc = [p for k, p in enumerate(loc) if not (p in tags and (k == 0 or loc[k - 1] == "base"))]
                msg = err["msg"].removeprefix("Value error, ")
                if err["type"] == "missing":
                    msg = "required field is missing"
                elif err["type"] == "extra_forbidden":
                    msg = "unknown field (typo?)"
                parts.append(f"{'.'.join(loc)}: {msg}" if loc else msg)
            raise ValueError("; ".join(parts)) from None

    @model_validator(mode="after")
    def _grid(self) -> SystemSpec:
        if self.grid is None:
            return self
        if not self.grid:
            raise ValueError("grid: empty; give {parameter: [values, ...]} or leave the grid out")
        for key, values in self.grid.items():
            owner, name = self.structure, key
            if key.startswith("base.") and hasattr(self.structure, "base"):
                owner, name = self.structure.base, key.removeprefix("base.")
            fields = set(type(owner).model_fields) - {"builder"}
            if name not in fields:
                prefix = key[: len(key) - len(name)]
                known = [f"{prefix}{f}" for f in sorted(fields)]
                if not prefix and hasattr(self.structure, "base"):
                    known.append("base.<parameter>")
                raise ValueError(
                    f"grid.{key}: not a parameter of this structure source (has {', '.join(known)})"
                )
            if not isinstance(values, list):
                raise ValueError(f"grid.{key}: needs a list of values, got {values!r}")
            if not values:
                raise ValueError(f"grid.{key}: needs at least one value")
            if len({_format_value(v) for v in values}) != len(values):
                raise ValueError(f"grid.{key}: duplicate values {values}")
        for combo in self.grid_points():
            try:
                self._structure_at(combo)
            except ValidationError as exc:  # noqa: PERF203 - raises on the first bad point
                msg = re.sub(
                    r"\.base\.(file|fcc|bulk|prototype|glass)\b",
                    ".base",
                    _format_errors(exc, prefix="structure"),
                )
                raise ValueError(f"grid {combo}: {msg}") from None
        return self

    def grid_points(self) -> list[dict[str, Any]]:
        """Every combination of grid values, in the order written (last key varies fastest)."""
        points: list[dict[str, Any]] = [{}]
        for key, values in (self.grid or {}).items():
            points = [{**p, key: v} for p in points for v in values]
        return points

    def _structure_at(self, combo: dict[str, Any]) -> Any:
        data = self.structure.model_dump(mode="json", exclude_unset=True)
        for key, value in combo.items():
            if key.startswith("base.") and isinstance(data.get("base"), dict):
                data["base"] = {**data["base"], key.removeprefix("base."): value}
            else:
                data[key] = value
        return type(self.structure).model_validate(data)

    def expand(self) -> list[tuple[str, Any, dict[str, Any]]]:
        """``(system_id, structure, grid point)`` for every grid point (one without a grid)."""
        if not self.grid:
            return [(self.id, self.structure, {})]
        out = []
        for combo in self.grid_points():
            suffix = "_".join(f"{k.removeprefix('base.')}{_format_value(v)}" for k, v in combo.items())
            out.append((f"{self.id}_{suffix}", self._structure_at(combo), combo))
        return out


def _format_value(v: Any) -> str:
    """A grid value as it appears in ids: ``0.7``, ``5.26``, ``1e-05``; strings sanitised."""
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return f"{v:g}"
    return re.sub(r"[^A-Za-z0-9.\-]", "-", str(v))


# ---------------------------------------------------------------------- stages
class StageSpec(_Strict):
    """One stage of every replica, started from the previous stage's final state.

    Attributes:
        name: stage name (part of the run id).
        integrator: integrator name and parameters (``nve``, ``langevin``, ``nose_hoover``, ``npt``).
        steps: number of MD steps; or give ``ps``.
        ps: length in picoseconds (``steps = round(ps·1000/dt_fs)``).
        temperature_K: override the point's temperature for this stage (e.g. a melt), K.
        pressure_GPa: barostat target, GPa (``npt``).
        dt_fs: override the campaign's time step, fs.
        write_interval: steps between frames (0: none).
        checkpoint_interval: steps between checkpoints (0: only at the end of the stage); a
            killed run restarts from its last checkpoint, so this bounds the work lost.
        thermo_interval: steps between thermo-table rows in the worker's log (0: none).
        velocities: for stages after the first, ``continue`` the previous stage's momenta or draw
            ``maxwell_boltzmann`` ones at this stage's temperature.
        screening: this stage's committee screening instead of the campaign's (e.g. looser levels
            for a melt, which leaves the crystal's trust region on purpose); ``false``: none.
        potential: this stage's potential instead of the campaign's, e.g. a melt driven by the
            teacher (``{name: chgnet}``) at temperatures the distilled model does not survive.  The
            next stage continues from its final state with its own potential.
    """

    name: str
    integrator: IntegratorSpec = Field(default_factory=IntegratorSpec)
    potential: PotentialSpec | None = None
    steps: int | None = Field(default=None, ge=0)
    ps: float | None = Field(default=None, ge=0)
    temperature_K: float | None = Field(default=None, ge=0)  # noqa: N815 (unit in the name)
    pressure_GPa: float = 0.0  # noqa: N815
    dt_fs: float | None = Field(default=None, gt=0, le=MAX_DT_FS)
    write_interval: int = Field(default=100, ge=0)
    checkpoint_interval: int = Field(default=1000, ge=0)
    thermo_interval: int = Field(default=0, ge=0)
    velocities: Literal["continue", "maxwell_boltzmann"] = "continue"
    screening: ScreeningSpec | Literal[False] | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _check_id(v, "a stage name")

    @model_validator(mode="after")
    def _length(self) -> StageSpec:
        if (self.steps is None) == (self.ps is None):
            raise ValueError("give the stage length as either 'steps' or 'ps' (not both)")
        return self

    def n_steps(self, dt_fs: float) -> int:
        """Number of MD steps at time step ``dt_fs`` (fs)."""
        if self.steps is not None:
            return self.steps
        assert self.ps is not None
        return round(self.ps * 1000.0 / dt_fs)


# ---------------------------------------------------------------------- resources
class BatchSpec(_Strict):
    """Pack small replicas into one batched state per worker task.

    Runs of the same stage that share the model, integrator kind, time step, length and output
    intervals are run together as one batched :class:`ssehpc.state.State` (one force call for all
    of them); each keeps its own structure, temperature, seed, thermostat state, run group,
    frames and checkpoint, and its trajectory is the one it would have alone.

    Attributes:
        max_replicas: runs per batched task (1: no batching).
        max_atoms: atoms per batched task (a run larger than this runs alone).
    """

    max_replicas: int = Field(default=1, ge=1)
    max_atoms: int = Field(default=20_000, ge=1)


class LocalResources(_Strict):
    """A Dask ``LocalCluster`` of worker processes on this machine.

    Attributes:
        n_workers: worker processes (default: CPU cores // threads_per_worker).
        threads_per_worker: torch threads of each run (each worker runs one replica at a time).
        memory_limit: per worker (``"auto"``, ``"4GB"``, ...); the worker restarts above it.
        dashboard_address: where the Dask dashboard listens (``":0"``: any free port).
        batch: pack small replicas into batched tasks (:class:`BatchSpec`).
    """

    kind: Literal["local"] = "local"
    n_workers: int | None = Field(default=None, ge=1)
    threads_per_worker: int = Field(default=1, ge=1)
    memory_limit: str = "auto"
    dashboard_address: str = ":8787"
    batch: BatchSpec = Field(default_factory=BatchSpec)


class SlurmResources(_Strict):
    """A dask-jobqueue ``SLURMCluster`` built from a profile (jobqueue-style YAML).

    Attributes:
        profile: a profile name (``schedulers/profiles/<name>.yaml``) or a path to one.
        jobs: Slurm jobs to start (each runs ``processes`` workers).
        threads_per_worker: torch threads of each run.
        tls: encrypt scheduler–worker traffic with temporary self-signed certificates (written
            to the profile's ``shared-temp-directory``).
        overrides: jobqueue keys that replace the profile's (e.g. ``walltime``, ``account``).
        dashboard_address: where the Dask dashboard listens.
        ranks_per_member: MPI ranks of each run; above 1 every stage runs as an
            ``srun -n R --mpi=<mpi>`` step inside the worker's Slurm job (give each job
            ``cores >= processes * R``).
        mpi: the ``srun --mpi`` plugin of those steps (``pmi2``: the pip ``mpich`` wheel, most MPICH
            and Open MPI builds; ``pmix`` for Open MPI 5).
        srun_args: more ``srun`` arguments of those steps (e.g. ``["--gpus-per-task=1"]``).
        batch: pack small replicas into batched tasks (:class:`BatchSpec`; only with
            ``ranks_per_member: 1``).
    """

    kind: Literal["slurm"]
    profile: str
    jobs: int = Field(default=1, ge=1)
    threads_per_worker: int = Field(default=1, ge=1)
    ranks_per_member: int = Field(default=1, ge=1)
    mpi: str = "pmi2"
    srun_args: list[str] = Field(default_factory=list)
    tls: bool = True
    overrides: dict[str, Any] = Field(default_factory=dict)
    dashboard_address: str = ":8787"
    batch: BatchSpec = Field(default_factory=BatchSpec)

    @model_validator(mode="after")
    def _batch_single_rank(self) -> SlurmResources:
        if self.batch.max_replicas > 1 and self.ranks_per_member > 1:
            raise ValueError("batch.max_replicas: batching needs ranks_per_member: 1")
        return self


def _resources_kind(v: Any) -> str | None:
    if isinstance(v, dict):
        return str(v.get("kind", "local"))
    return getattr(v, "kind", None)


ResourcesSpec = Annotated[
    Annotated[LocalResources, Tag("local")] | Annotated[SlurmResources, Tag("slurm")],
    Discriminator(
        _resources_kind,
        custom_error_type="resources_kind",
        custom_error_message="resources.kind must be 'local' or 'slurm'",
    ),
]


# ---------------------------------------------------------------------- adaptive extension
class AdaptiveSpec(_Strict):
    """Extend production runs until every point's tracer D meets a relative error.

    After the campaign's runs are done, the controller analyses the store (``ssehpc analyze``),
    and for each (system, temperature) point whose ``SE(D*)/D*`` is above the target extends the
    ``stage`` runs of all its replicas (more steps appended to the same run groups, resumed from
    their checkpoints), points with the largest error first, until every point meets the target,
    ``max_rounds`` rounds are done, or the ``max_extra_ps`` budget is spent.

    Attributes:
        target_rel_error: wanted standard error of D* relative to D* (e.g. 0.1).
        species: mobile species (default: as ``ssehpc analyze`` picks it).
        stage: the stage to extend (default: the last).
        max_rounds: extension rounds per invocation.
        max_growth: one round multiplies a run's length by at most this.
        max_extra_ps: budget of simulated time added over all runs, ps (default: no cap).
    """

    target_rel_error: float = Field(gt=0, lt=1)
    species: str | None = None
    stage: str | None = None
    max_rounds: int = Field(default=3, ge=1)
    max_growth: float = Field(default=2.0, gt=1)
    max_extra_ps: float | None = Field(default=None, gt=0)


# ---------------------------------------------------------------------- the campaign
class CampaignSpec(_Strict):
    """A campaign: systems × temperatures × replicas, each replica a chain of stages.

    Attributes:
        name: campaign name (recorded in the store).
        store: the campaign's Zarr store (relative to the spec file).
        systems: structures (with optional parameter grids).
        temperatures_K: temperatures of the grid, K.
        replicas: independent replicas per (system, temperature) point.
        stages: what every replica runs, in order; stage k starts from stage k−1's final state.
        potential: potential name and parameters (``make_potential``).
        dt_fs: time step, fs (stages may override it).
        seed: campaign seed; every run's seed is derived from it, the system, the temperature,
            the replica and the stage (:func:`ssehpc.campaign.plan.derive_seed`).
        device: ``cpu`` or ``cuda``.
        dtype: ``float32`` or ``float64``.
        skin: neighbour-list skin, Å.
        min_distance: smallest allowed interatomic distance of input structures, Å.
        resources: where the runs execute (``local`` or ``slurm``).
        screening: committee screening of every run (:class:`ssehpc.screen.ScreeningSpec`:
            ``trust_lo``, ``trust_hi`` eV/Å, ``stop_after``, ``check_interval``); a run that stays
            above ``trust_hi`` for ``stop_after`` consecutive checks stops as ``extrapolating``.
        adaptive: extend production runs until D* meets a relative error (:class:`AdaptiveSpec`).
    """

    name: str
    store: Path
    systems: list[SystemSpec] = Field(min_length=1)
    temperatures_K: list[float] = Field(min_length=1)  # noqa: N815 (unit in the name)
    replicas: int = Field(default=1, ge=1)
    stages: list[StageSpec] = Field(min_length=1)
    potential: PotentialSpec
    dt_fs: float = Field(gt=0, le=MAX_DT_FS)
    seed: int = Field(default=0, ge=0, lt=2**63)
    device: Literal["cpu", "cuda"] = "cpu"
    dtype: Literal["float32", "float64"] = "float64"
    skin: float = Field(default=1.0, gt=0, le=5.0)
    min_distance: float = Field(default=0.5, ge=0)
    resources: ResourcesSpec = Field(default_factory=LocalResources)
    screening: ScreeningSpec | None = None
    adaptive: AdaptiveSpec | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return v

    @field_validator("temperatures_K")
    @classmethod
    def _temperatures(cls, v: list[float]) -> list[float]:
        for t in v:
            if not (math.isfinite(t) and t >= 0):
                raise ValueError(f"temperatures must be finite and non-negative (K), got {t}")
        labels = [_format_value(float(t)) for t in v]
        if len(set(labels)) != len(labels):
            raise ValueError(f"duplicate temperatures {v}")
        return v

    @model_validator(mode="after")
    def _consistency(self) -> CampaignSpec:
        ids = [sid for s in self.systems for sid, _, _ in s.expand()]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"systems: duplicate system ids after grid expansion: {', '.join(dup)}")
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"stages: duplicate stage names {names}")
        for k, stage in enumerate(self.stages):
            dt = stage.dt_fs or self.dt_fs
            if stage.ps is not None and stage.ps > 0 and stage.n_steps(dt) < 1:
                raise ValueError(f"stages.{k}.ps: {stage.ps} ps is shorter than one time step of {dt} fs")
        if self.adaptive is not None:
            stage = self.adaptive_stage
            if stage is None:
                raise ValueError(f"adaptive.stage: no stage named {self.adaptive.stage!r} (stages: {names})")
            if not stage.write_interval:
                raise ValueError(f"adaptive.stage: stage {stage.name!r} writes no frames (write_interval 0)")
        return self

    @property
    def adaptive_stage(self) -> StageSpec | None:
        """The stage adaptive extension lengthens (``None``: no such stage)."""
        if self.adaptive is None:
            return None
        if self.adaptive.stage is None:
            return self.stages[-1]
        return next((s for s in self.stages if s.name == self.adaptive.stage), None)

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_dict(cls, data: Any, base_dir: str | Path | None = None) -> CampaignSpec:
        """Validate ``data``; relative paths are resolved against ``base_dir``.

        Raises:
            SpecError: one line naming the offending field(s).
        """
        if not isinstance(data, dict):
            raise SpecError(f"a campaign spec must be a mapping of fields, got {type(data).__name__}")
        try:
            spec = cls.model_validate(data)
        except ValidationError as exc:
            raise SpecError(_format_errors(exc)) from None
        return spec.resolve_paths(base_dir) if base_dir is not None else spec

    @classmethod
    def from_yaml(cls, path: str | Path) -> CampaignSpec:
        """Read and validate a YAML campaign spec (paths in it are relative to its directory)."""
        path = Path(path)
        data = read_yaml(path, "campaign spec")
        try:
            return cls.from_dict(data, base_dir=path.parent.resolve())
        except SpecError as exc:
            raise SpecError(f"{path}: {exc}") from None

    def resolve_paths(self, base_dir: str | Path) -> CampaignSpec:
        """A copy whose relative paths (store, structure files, other stores, model file, Slurm
        profile file) are made absolute against ``base_dir``."""
        base = Path(base_dir)
        update: dict[str, Any] = {}
        if not self.store.is_absolute():
            update["store"] = base / self.store
        update["systems"] = [
            s.model_copy(update={"structure": resolve_structure_paths(s.structure, base)})
            for s in self.systems
        ]
        update["potential"] = resolve_potential_paths(self.potential, base)
        update["stages"] = [
            st.model_copy(update={"potential": resolve_potential_paths(st.potential, base)})
            if st.potential is not None
            else st
            for st in self.stages
        ]
        res = self.resources
        if isinstance(res, SlurmResources) and res.profile.endswith((".yaml", ".yml")):
            profile = Path(res.profile)
            if not profile.is_absolute():
                update["resources"] = res.model_copy(update={"profile": str(base / profile)})
        return self.model_copy(update=update)

    def to_json(self) -> dict[str, Any]:
        """JSON-able dict (what the store records)."""
        return self.model_dump(mode="json")

    # ------------------------------------------------------------------ derived
    def stage_potential(self, stage: StageSpec) -> PotentialSpec:
        """Potential of ``stage``: its own, or the campaign's."""
        return stage.potential if stage.potential is not None else self.potential

    def stage_dt(self, stage: StageSpec) -> float:
        """Time step of ``stage``, fs."""
        return stage.dt_fs if stage.dt_fs is not None else self.dt_fs


def _format_errors(exc: ValidationError, prefix: str = "") -> str:
    """``field.path: message; ...`` on one line (union tags dropped from the paths)."""
    parts = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        loc = [p for k, p in enumerate(loc) if not (k and p in _UNION_TAGS and loc[k - 1] in _UNIONS)]
        if prefix:
            loc = [prefix, *loc]
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            msg = "required field is missing"
        elif err["type"] == "extra_forbidden":
            msg = "unknown field (typo?)"
        where = ".".join(loc)
        # Validators that check several fields name the one at fault: "grid.x: ...".
        head, sep, rest = msg.partition(": ")
        if sep and re.fullmatch(r"[A-Za-z_]\w*(\.\w+)*", head):
            where, msg = (f"{where}.{head}" if where else head), rest
        parts.append(f"{where or 'spec'}: {msg}")
    return "; ".join(parts)
