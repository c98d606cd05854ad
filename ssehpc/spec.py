"""The MD run specification (a validated YAML file) and how a run is built from it.

A spec names the structure (a file or a builder), the potential and integrator (name + params),
the thermodynamic conditions, the time step and lengths, output intervals, seed, device and
dtype, and where the run goes in the store.  Example (``examples/lj_argon.yaml``)::

    run_id: lj-argon
    store: lj_argon.zarr            # relative paths are relative to the spec file
    structure: {builder: fcc, element: Ar, a: 5.26, repeat: [6, 6, 6]}
    potential: {name: lj, params: {epsilon: 0.0104, sigma: 3.405, cutoff: 8.5}}
    integrator: {name: langevin, params: {damping: 100.0}}
    temperature_K: 100.0
    dt_fs: 2.0
    steps: 2000

Validation errors name the field (``dt_fs: ...``).  :func:`prepare_run` checks everything that
can be checked — spec, structure, species against the potential, integrator parameters — before
anything is computed or written; :func:`prepare_resume` rebuilds a run from its store.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TextIO

import ase
import torch
import yaml
from ase.data import atomic_numbers
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

from ssehpc import builders, thermo
from ssehpc.forces import ForceCompute
from ssehpc.integrators.base import Integrator
from ssehpc.io.checkpoint import read_checkpoint
from ssehpc.io.structure import StructureError, atoms_to_state, check_structure, read_structure
from ssehpc.io.zarr_store import COMMITTEE_FRAME_FIELDS, RunStore, StoreError, ZarrStore
from ssehpc.parallel.domain import SerialDomain
from ssehpc.parallel.runtime import make_domain, rank_device
from ssehpc.potentials.base import Potential
from ssehpc.screen.config import ScreeningSpec
from ssehpc.screen.guard import ExtrapolationGuard
from ssehpc.simulation import (
    CheckpointWriter,
    On,
    Operation,
    Periodic,
    ProgressCallback,
    Simulation,
    ThermoLog,
    ZarrFrameWriter,
)
from ssehpc.state import State

#: Integrators that take the spec's ``temperature_K`` (as ``temperature``) unless params set it.
THERMOSTATTED = frozenset({"langevin", "nose_hoover", "npt"})
#: Integrators that take the spec's ``pressure_GPa`` (as ``pressure``) unless params set it.
BAROSTATTED = frozenset({"npt"})
#: Largest accepted time step, fs.
MAX_DT_FS = 20.0


class SpecError(ValueError):
    """The spec (or what it names) is invalid; the message is one line and names the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Repeat = Annotated[int, Field(ge=1)] | tuple[Annotated[int, Field(ge=1)], ...]


def _check_repeat(v: int | tuple[int, ...]) -> int | tuple[int, int, int]:
    if isinstance(v, tuple) and len(v) != 3:
        raise ValueError(f"repeat must be one integer or three, got {list(v)}")
    return v


# ---------------------------------------------------------------------- structure sources
class FileStructure(_Strict):
    """Read the structure from an ASE-readable file (CIF, POSCAR, extxyz, ...).

    A CIF with partially occupied or mixed sites (ASE reads the occupancies) is refused unless
    ``occupancy: random``, which draws one ordered configuration with ``seed``
    (:func:`ssehpc.structures.disorder.random_occupancy`, after the supercell is made) and then
    checks that its formal charge is zero (``allow_charged: true`` skips that check).

    Attributes:
        file: path (relative to the spec file).
        format: ASE format name; guessed when omitted.
        index: frame of a trajectory file (default the last).
        repeat: supercell repetitions applied after reading.
        target_atoms: instead of ``repeat``, the most isotropic supercell with about this many atoms.
        min_length: instead of ``repeat``, the smallest supercell whose perpendicular widths are
            all at least this long, Å (e.g. twice the potential cutoff plus skin).
        occupancy: partially occupied sites: ``error`` (refuse) or ``random`` (seeded ordering).
        seed: seed of the random occupancy.
        min_separation: two kept sites of one partially occupied kind are at least this far
            apart, Å (e.g. one Li per 1.8 Å 48h doublet of an argyrodite).
        allow_charged: accept a randomly ordered structure whose formal charge is not zero.
    """

    file: Path
    format: str | None = None
    index: int = -1
    repeat: Repeat = 1
    target_atoms: int | None = Field(default=None, ge=1)
    min_length: float | None = Field(default=None, gt=0, description="Å")
    occupancy: Literal["error", "random"] = "error"
    seed: int = Field(default=0, ge=0)
    min_separation: float = Field(default=1.5, ge=0, description="Å")
    allow_charged: bool = False

    _repeat = field_validator("repeat")(_check_repeat)
    _size = model_validator(mode="after")(lambda self: _check_size(self))

    def build(self) -> ase.Atoms:
        from ssehpc.structures.disorder import (
            describe_partial,
            formal_charge_of,
            partial_sites,
            random_occupancy,
        )

        atoms = read_structure(self.file, self.format, self.index, check=False)  # checked after repeat
        atoms = _resize(atoms, self.repeat, self.target_atoms, self.min_length)
        where = f"structure file '{self.file}'"
        try:
            partial = partial_sites(atoms)
        except ValueError as exc:
            raise SpecError(f"{where}: {exc}") from None
        if not partial:
            return atoms
        if self.occupancy == "error":
            raise SpecError(
                f"{where}: partially occupied sites ({describe_partial(atoms)}); set occupancy: random "
                "(with a seed) to draw one ordered configuration, or give an ordered structure"
            )
        try:
            ordered = random_occupancy(atoms, self.seed, self.min_separation)
            charge = 0 if self.allow_charged else formal_charge_of(ordered)
        except ValueError as exc:
            raise SpecError(f"{where}: {exc}") from None
        if charge != 0:
            raise SpecError(
                f"{where}: the randomly occupied {ordered.get_chemical_formula()} has net formal charge "
                f"{charge:+d} e (occupancies {describe_partial(atoms)}); change the supercell or the "
                "occupancies, or set allow_charged: true"
            )
        return ordered


def _check_size(model: Any) -> Any:
    """``repeat``, ``target_atoms`` and ``min_length`` are alternatives."""
    given = [k for k in ("target_atoms", "min_length") if getattr(model, k, None) is not None]
    if getattr(model, "repeat", 1) not in (1, (1, 1, 1)):
        given.append("repeat")
    if len(given) > 1:
        raise ValueError(
            f"{given[0]}: give only one of repeat, target_atoms, min_length (got {', '.join(given)})"
        )
    return model


def _resize(atoms: ase.Atoms, repeat: Any, target_atoms: int | None, min_length: float | None) -> ase.Atoms:
    """Apply ``target_atoms``, ``min_length`` (Å) or ``repeat``, in that order of preference."""
    from ssehpc.structures.disorder import repeat_to_min_length

    if target_atoms is not None:
        return builders.supercell(atoms, target_atoms)
    if min_length is not None:
        return repeat_to_min_length(atoms, min_length)
    r = (repeat,) * 3 if isinstance(repeat, int) else tuple(repeat)
    return atoms.repeat(r) if r != (1, 1, 1) else atoms


class FccStructure(_Strict):
    """:func:`ssehpc.builders.fcc`: ``element``, ``a`` (Å), ``repeat`` or ``target_atoms``."""

    builder: Literal["fcc"]
    element: str
    a: float = Field(gt=0, description="lattice constant, Å")
    repeat: Repeat = 1
    target_atoms: int | None = Field(default=None, ge=1)

    _repeat = field_validator("repeat")(_check_repeat)

    @field_validator("element")
    @classmethod
    def _element(cls, v: str) -> str:
        if v not in atomic_numbers:
            raise ValueError(f"unknown element symbol {v!r}")
        return v

    def build(self) -> ase.Atoms:
        return builders.fcc(self.element, self.a, self.repeat, target_atoms=self.target_atoms)


class BulkStructure(_Strict):
    """:func:`ssehpc.builders.bulk` (``ase.build.bulk``): e.g. rocksalt ``NaCl``, fluorite ``OLi2``."""

    builder: Literal["bulk"]
    name: str
    crystalstructure: str
    a: float = Field(gt=0, description="lattice constant, Å")
    c: float | None = Field(default=None, gt=0)
    cubic: bool = True
    repeat: Repeat = 1
    target_atoms: int | None = Field(default=None, ge=1)

    _repeat = field_validator("repeat")(_check_repeat)

    def build(self) -> ase.Atoms:
        return builders.bulk(
            self.name,
            self.crystalstructure,
            self.a,
            self.repeat,
            c=self.c,
            cubic=self.cubic,
            target_atoms=self.target_atoms,
        )


class PrototypeStructure(_Strict):
    """A crystal prototype (:func:`ssehpc.structures.lips.prototype`), repeated.

    Attributes:
        name: prototype key, e.g. ``beta-Li3PS4``, ``gamma-Li3PS4``, ``Li7P3S11``, ``Li2S``,
            ``Li4P2S6``, ``P4S10``, ``Li6PS5Cl`` (:func:`ssehpc.structures.lips.prototype_names`).
        target_atoms: the most isotropic supercell with about this many atoms
            (:func:`ssehpc.builders.supercell`); ``repeat`` is used when omitted.
        min_length: instead, the smallest supercell whose perpendicular widths are all at least
            this long, Å.
        repeat: repetitions of the conventional cell.
        seed: Li arrangement of disordered prototypes (``Li6PS5Cl``); ordered ones ignore it.
    """

    builder: Literal["prototype"]
    name: str
    target_atoms: int | None = Field(default=None, ge=1)
    min_length: float | None = Field(default=None, gt=0, description="Å")
    repeat: Repeat = 1
    seed: int = Field(default=0, ge=0)

    _repeat = field_validator("repeat")(_check_repeat)
    _size = model_validator(mode="after")(lambda self: _check_size(self))

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        from ssehpc.structures.lips import prototype_names

        if v not in prototype_names():
            raise ValueError(f"unknown Li-P-S prototype {v!r}; known: {', '.join(prototype_names())}")
        return v

    def build(self) -> ase.Atoms:
        from ssehpc.structures.lips import prototype

        return _resize(prototype(self.name, seed=self.seed), self.repeat, self.target_atoms, self.min_length)


class GlassStructure(_Strict):
    """A random xLi₂S–(1−x)P₂S₅ starting structure (:func:`ssehpc.structures.lips.random_glass`);
    melt and quench it (a hot first stage) before using it as a glass.

    Attributes:
        x: Li₂S mole fraction, 0.5 ≤ x < 1 (0.75: Li₃PS₄, 0.70: Li₇P₃S₁₁).
        atoms: about this many atoms (at least 12).
        density: box density, g/cm³.
        seed: packing seed (the same seed gives the same structure).
    """

    builder: Literal["glass"]
    x: float = Field(ge=0.5, lt=1.0, description="Li2S mole fraction")
    atoms: int = Field(ge=12, description="about this many atoms")
    density: float = Field(default=1.88, gt=0, description="g/cm^3")
    seed: int = Field(default=0, ge=0)

    def build(self) -> ase.Atoms:
        from ssehpc.structures.lips import random_glass

        return random_glass(self.x, self.atoms, self.density, self.seed)


def _base_kind(v: Any) -> str | None:
    if isinstance(v, dict):
        return str(v["builder"]) if "builder" in v else "file" if "file" in v else None
    return getattr(v, "builder", "file")


#: What a ``substitute`` builder may start from.
BaseStructureSpec = Annotated[
    Annotated[FileStructure, Tag("file")]
    | Annotated[FccStructure, Tag("fcc")]
    | Annotated[BulkStructure, Tag("bulk")]
    | Annotated[PrototypeStructure, Tag("prototype")]
    | Annotated[GlassStructure, Tag("glass")],
    Discriminator(
        _base_kind,
        custom_error_type="structure_source",
        custom_error_message="base needs either 'file: PATH' or 'builder: fcc|bulk|prototype|glass'",
    ),
]


class SubstituteStructure(_Strict):
    """Substitution, doping and vacancies on any structure (:func:`ssehpc.structures.disorder.substitute`).

    Example — Cl-rich argyrodites Li₆₋ₓPS₅₋ₓCl₁₊ₓ, scanned over the share of free S²⁻ replaced::

        structure:
          builder: substitute
          base: {builder: prototype, name: Li6PS5Cl, repeat: 2}
          replace: {S: Cl}
          exclude_bonded_to: [P]        # only the free S2-, not the S of PS4
          fraction: 0.25
          compensate: li_vacancy         # one Li+ leaves per S2- -> Cl-
          seed: 1
        grid: {fraction: [0.0, 0.25, 0.5]}

    The result must be neutral under the formal oxidation states
    (:data:`ssehpc.structures.disorder.OXIDATION_STATES`, overridable): a charged result is
    refused with its net charge unless ``allow_charged: true``. Charge errors that do not depend
    on the counts (e.g. S²⁻ → Cl⁻ with ``compensate: none``) are raised when the spec is read.

    Attributes:
        base: the parent structure (file, fcc, bulk, prototype or glass source).
        replace: ``{from: to}``; ``to`` is an element or ``vacancy``.
        fraction: share of the eligible ``from`` atoms replaced (one value or per element).
        count: or the number replaced (one value or per element).
        compensate: ``none`` or ``li_vacancy`` (remove random Li⁺ to cancel a positive excess).
        exclude_bonded_to: ``from`` atoms with one of these elements within ``bond_cutoff`` are kept.
        bond_cutoff: Å.
        oxidation_states: formal oxidation states overriding the built-in table.
        seed: which atoms are replaced and which Li leave.
        allow_charged: accept a result with a net formal charge.
    """

    builder: Literal["substitute"]
    base: BaseStructureSpec
    replace: dict[str, str] = Field(min_length=1)
    fraction: float | dict[str, float] | None = None
    count: int | dict[str, int] | None = None
    compensate: Literal["none", "li_vacancy"] = "none"
    exclude_bonded_to: list[str] = Field(default_factory=list)
    bond_cutoff: float = Field(default=2.4, gt=0, description="Å")
    oxidation_states: dict[str, int] = Field(default_factory=dict)
    seed: int = Field(default=0, ge=0)
    allow_charged: bool = False

    @model_validator(mode="after")
    def _static_checks(self) -> SubstituteStructure:
        from ssehpc.structures.disorder import VACANCY, oxidation_state

        if (self.fraction is None) == (self.count is None):
            raise ValueError("fraction: give either fraction or count (not both)")
        for name, amount, lo, hi in (("fraction", self.fraction, 0, 1), ("count", self.count, 0, None)):
            values = amount.values() if isinstance(amount, dict) else [] if amount is None else [amount]
            for v in values:
                if v < lo or (hi is not None and v > hi):
                    raise ValueError(f"{name}: {v} is outside [{lo}, {hi if hi is not None else 'inf'}]")
        for a, b in self.replace.items():
            if a == VACANCY:
                raise ValueError("replace: 'vacancy' can only be a target (from: vacancy)")
            for el in (a, b):
                try:
                    oxidation_state(el, self.oxidation_states)  # unknown element / unknown state
                except ValueError as exc:  # noqa: PERF203 - raises on the first bad element
                    raise ValueError(f"replace: {exc}") from None
            if a == b:
                raise ValueError(f"replace: {a} -> {b} replaces an element by itself")
            for amount in (self.fraction, self.count):
                if isinstance(amount, dict) and a not in amount:
                    raise ValueError(f"replace: no fraction/count given for {a}")
        for el in self.exclude_bonded_to:
            if el not in atomic_numbers:
                raise ValueError(f"exclude_bonded_to: unknown element symbol {el!r}")
        if self.allow_charged:
            return self
        # Charge per substitution; when every change has the same sign the outcome is known now.
        dq = {}
        for a, b in self.replace.items():
            amount = self.fraction if self.fraction is not None else self.count
            n = amount.get(a, 0) if isinstance(amount, dict) else amount
            if n:
                dq[f"{a}({oxidation_state(a, self.oxidation_states):+d}) -> {b}"] = oxidation_state(
                    b, self.oxidation_states
                ) - oxidation_state(a, self.oxidation_states)
        signs = {(q > 0) - (q < 0) for q in dq.values()}
        what = ", ".join(f"{k}: {q:+d} e each" for k, q in dq.items())
        if 1 in signs and -1 not in signs and self.compensate == "none":
            raise ValueError(
                f"replace: {what}; the result would carry a positive net formal charge "
                "(use compensate: li_vacancy, or allow_charged: true)"
            )
        if -1 in signs and 1 not in signs:
            raise ValueError(
                f"replace: {what}; the result would carry a negative net formal charge, which "
                "li_vacancy cannot compensate (add a compensating substitution, or allow_charged: true)"
            )
        return self

    def build(self) -> ase.Atoms:
        from ssehpc.structures.disorder import substitute

        return substitute(
            self.base.build(),
            self.replace,
            fraction=self.fraction,
            count=self.count,
            compensate=self.compensate,
            seed=self.seed,
            exclude_bonded_to=tuple(self.exclude_bonded_to),
            bond_cutoff=self.bond_cutoff,
            states=self.oxidation_states or None,
            allow_charged=self.allow_charged,
        )


class RunStructure(_Strict):
    """Continue from another run's final state: positions (unwrapped, so trajectories join
    without jumps), momenta and cell of its current checkpoint, in tag order.

    The new run counts its steps from 0 and builds its own integrator (thermostat variables are
    not carried over); use a different ``seed`` from the earlier run so that the noise differs.

    Attributes:
        from_run: run id of the earlier run.
        store: its store (relative to the spec file); default the spec's own store.
        velocities: ``continue`` (take the momenta) or ``maxwell_boltzmann`` (draw new ones at
            ``temperature_K``).
        require_completed: refuse a run that has not reached its target number of steps.
    """

    from_run: str
    store: Path | None = None
    velocities: Literal["continue", "maxwell_boltzmann"] = "continue"
    require_completed: bool = True

    @property
    def carries_momenta(self) -> bool:
        return self.velocities == "continue"

    def build(self, default_store: Path | None = None) -> ase.Atoms:
        """The earlier run's checkpointed state as ``ase.Atoms`` (momenta in ASE units).

        Raises:
            SpecError: no store, no such run, run not completed, no checkpoint, or a batch.
        """
        from ssehpc.io.structure import state_to_atoms

        store = self.store if self.store is not None else default_store
        if store is None:
            raise SpecError(f"structure.store: needed to find run {self.from_run!r}")
        where = f"run {self.from_run!r} of store '{store}'"
        try:
            run = RunStore.open(store, self.from_run)
            if self.require_completed and run.status != "completed":
                step = run.current_step if run.current_step is not None else "-"
                raise SpecError(
                    f"structure.from_run: {where} has status {run.status!r} (step {step} of "
                    f"{run.target_steps}); it must be completed first"
                )
            ckpt = read_checkpoint(run.checkpoint_group)
        except StoreError as exc:
            raise SpecError(f"structure.from_run: {_one_line(exc)} ({where})") from exc
        if ckpt.state.n_systems != 1:
            raise SpecError(f"structure.from_run: {where} holds {ckpt.state.n_systems} systems, not one")
        atoms = state_to_atoms(ckpt.state, unwrap=True)
        atoms.info.update({"from_run": self.from_run, "from_step": ckpt.step})
        return atoms


_STRUCTURE_TAGS = ("file", "fcc", "bulk", "prototype", "glass", "substitute", "run")


def _structure_kind(v: Any) -> str | None:
    if isinstance(v, dict):
        if "builder" in v:
            return str(v["builder"])
        return "file" if "file" in v else "run" if "from_run" in v else None
    if isinstance(v, RunStructure):
        return "run"
    return getattr(v, "builder", "file")


StructureSpec = Annotated[
    Annotated[FileStructure, Tag("file")]
    | Annotated[FccStructure, Tag("fcc")]
    | Annotated[BulkStructure, Tag("bulk")]
    | Annotated[PrototypeStructure, Tag("prototype")]
    | Annotated[GlassStructure, Tag("glass")]
    | Annotated[SubstituteStructure, Tag("substitute")]
    | Annotated[RunStructure, Tag("run")],
    Discriminator(
        _structure_kind,
        custom_error_type="structure_source",
        custom_error_message=(
            "structure needs either 'file: PATH' or 'builder: fcc|bulk|prototype|glass|substitute' with its "
            "parameters, or 'from_run: RUN_ID' (continue another run)"
        ),
    ),
]


class PotentialSpec(_Strict):
    """``make_potential(name, **params)``: ``lj``, ``buckingham_dsf``, ``sum``, ..."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class IntegratorSpec(_Strict):
    """``make_integrator(name, dt, **params)``: ``nve``, ``langevin``, ``nose_hoover``, ``npt``."""

    name: str = "nve"
    params: dict[str, Any] = Field(default_factory=dict)


# ---------------------------------------------------------------------- the spec
class MDSpec(_Strict):
    """One MD run.

    Attributes:
        run_id: name of the run group in the store.
        store: Zarr store directory (relative to the spec file).
        structure: a file or a builder.
        potential: potential name and parameters.
        integrator: integrator (ensemble) name and parameters.
        temperature_K: initial (Maxwell–Boltzmann) and thermostat temperature, K.
        pressure_GPa: barostat target pressure, GPa.
        dt_fs: time step, fs, in (0, 20].
        steps: total number of MD steps of the run.
        write_interval: steps between trajectory frames (0: none).
        checkpoint_interval: steps between checkpoints (0: only at the end).
        thermo_interval: steps between thermo-table rows (0: none).
        seed: seed of every random stream (velocities, thermostat noise).
        device: ``cpu`` or ``cuda``.
        dtype: ``float32`` or ``float64`` (use float64 for bitwise restarts and energy checks).
        skin: neighbour-list skin, Å.
        min_distance: smallest allowed interatomic distance in the input structure, Å.
        screening: committee screening (:class:`ssehpc.screen.ScreeningSpec`: ``trust_lo``,
            ``trust_hi`` eV/Å, ``stop_after`` consecutive checks, ``check_interval`` steps); with
            ``stop_after > 0`` a committee run stops with status ``extrapolating`` after that
            many consecutive checks above ``trust_hi``.  Needs a committee potential.
    """

    run_id: str = "run0"
    store: Path = Path("run.zarr")
    structure: StructureSpec
    potential: PotentialSpec
    integrator: IntegratorSpec = Field(default_factory=IntegratorSpec)
    temperature_K: float = Field(ge=0)  # noqa: N815 (unit in the name)
    pressure_GPa: float = 0.0  # noqa: N815
    dt_fs: float
    steps: int = Field(ge=0)
    write_interval: int = Field(default=100, ge=0)
    checkpoint_interval: int = Field(default=1000, ge=0)
    thermo_interval: int = Field(default=100, ge=0)
    seed: int = Field(default=0, ge=0, lt=2**63)
    device: Literal["cpu", "cuda"] = "cpu"
    dtype: Literal["float32", "float64"] = "float64"
    skin: float = Field(default=1.0, gt=0, le=5.0)
    min_distance: float = Field(default=0.5, ge=0)
    screening: ScreeningSpec | None = None

    @field_validator("run_id")
    @classmethod
    def _run_id(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]*", v):
            raise ValueError(f"run_id must be letters, digits, '_', '.', '-' (no '/'), got {v!r}")
        return v

    @field_validator("dt_fs")
    @classmethod
    def _dt(cls, v: float) -> float:
        if not v > 0:
            raise ValueError(f"the time step must be positive (fs), got {v}")
        if v > MAX_DT_FS:
            raise ValueError(
                f"the time step {v} fs is absurdly large for MD (at most {MAX_DT_FS} fs; typical 0.5-2 fs)"
            )
        return v

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if v == "cuda" and not torch.cuda.is_available():
            raise ValueError(
                f"device 'cuda' requested but CUDA is not available to torch {torch.__version__}"
            )
        return v

    @property
    def torch_dtype(self) -> torch.dtype:
        return torch.float64 if self.dtype == "float64" else torch.float32

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_dict(cls, data: Any, base_dir: str | Path | None = None) -> MDSpec:
        """Validate ``data``; relative paths are resolved against ``base_dir``.

        Raises:
            SpecError: one line naming the offending field(s).
        """
        if not isinstance(data, dict):
            raise SpecError(f"a spec must be a mapping of fields, got {type(data).__name__}")
        try:
            spec = cls.model_validate(data)
        except ValidationError as exc:
            raise SpecError(format_validation_error(exc)) from exc
        return spec.resolve_paths(base_dir) if base_dir is not None else spec

    @classmethod
    def from_yaml(cls, path: str | Path) -> MDSpec:
        """Read and validate a YAML spec (paths in it are relative to its directory)."""
        path = Path(path)
        data = read_yaml(path, "spec")
        try:
            return cls.from_dict(data, base_dir=path.parent.resolve())
        except SpecError as exc:
            raise SpecError(f"{path}: {exc}") from None

    def resolve_paths(self, base_dir: str | Path) -> MDSpec:
        """A copy whose relative store, structure-file and model-file paths are made absolute
        (a shipped model name such as ``lips`` is left alone)."""
        base = Path(base_dir)
        update: dict[str, Any] = {}
        if not self.store.is_absolute():
            update["store"] = base / self.store
        structure = resolve_structure_paths(self.structure, base)
        if structure is not self.structure:
            update["structure"] = structure
        potential = resolve_potential_paths(self.potential, base)
        if potential is not self.potential:
            update["potential"] = potential
        return self.model_copy(update=update) if update else self

    def to_json(self) -> dict[str, Any]:
        """JSON-able dict (what the store records)."""
        return self.model_dump(mode="json")


def read_yaml(path: Path, what: str = "spec") -> Any:
    """Parse the YAML file ``path``; a missing file or a syntax error is a one-line
    :class:`SpecError` naming the file (and the line and column)."""
    if not path.is_file():
        raise SpecError(f"{what} file '{path}' does not exist")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"cannot parse {what} '{path}'{where}: {problem}") from None


def resolve_structure_paths(structure: Any, base: Path) -> Any:
    """``structure`` with a relative structure file or source store made absolute against ``base``
    (the same object when nothing is relative)."""
    if isinstance(structure, FileStructure) and not structure.file.is_absolute():
        return structure.model_copy(update={"file": base / structure.file})
    if isinstance(structure, SubstituteStructure):
        inner = resolve_structure_paths(structure.base, base)
        return structure if inner is structure.base else structure.model_copy(update={"base": inner})
    if (
        isinstance(structure, RunStructure)
        and structure.store is not None
        and not structure.store.is_absolute()
    ):
        return structure.model_copy(update={"store": base / structure.store})
    return structure


def resolve_potential_paths(potential: PotentialSpec, base: Path) -> PotentialSpec:
    """``potential`` with a relative ``mlff`` model file (or ``chgnet`` ``model_path``) made absolute
    against ``base`` (a shipped model name is left alone; the same object when nothing changes)."""
    from ssehpc.ml.shipped import SHIPPED_MODELS

    model = potential.params.get("model")
    name = potential.name.strip().lower()
    if (
        name == "mlff"
        and isinstance(model, str)
        and model.strip().lower() not in SHIPPED_MODELS
        and not Path(model).expanduser().is_absolute()
    ):
        return potential.model_copy(update={"params": {**potential.params, "model": str(base / model)}})
    path = potential.params.get("model_path")  # a fine-tuned teacher checkpoint
    if name == "chgnet" and isinstance(path, str) and not Path(path).expanduser().is_absolute():
        return potential.model_copy(update={"params": {**potential.params, "model_path": str(base / path)}})
    return potential


def format_validation_error(exc: ValidationError) -> str:
    """``field.path: message; ...`` on one line."""
    parts = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        # union tags (after "structure" and a substitute's "base") are not fields
        loc = [
            p
            for k, p in enumerate(loc)
            if not (k and p in _STRUCTURE_TAGS and loc[k - 1] in ("structure", "base"))
        ]
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            msg = "required field is missing"
        elif err["type"] == "extra_forbidden":
            msg = "unknown field (typo?)"
        parts.append(f"{'.'.join(loc) or 'spec'}: {msg}")
    return "; ".join(parts)


# ---------------------------------------------------------------------- building a run
def build_structure(spec: MDSpec) -> ase.Atoms:
    """The input structure, checked (periodic, finite, no overlaps below ``min_distance``)."""
    source = spec.structure
    try:
        atoms = source.build(spec.store) if isinstance(source, RunStructure) else source.build()
    except (ValueError, KeyError, RuntimeError) as exc:
        if isinstance(exc, (SpecError, StructureError)):
            raise
        raise SpecError(f"structure: {_one_line(exc)}") from exc
    check_structure(atoms, min_distance=spec.min_distance, source=_structure_name(spec))
    return atoms


def _structure_name(spec: MDSpec) -> str:
    if isinstance(spec.structure, FileStructure):
        return f"structure file '{spec.structure.file}'"
    if isinstance(spec.structure, RunStructure):
        return f"structure (final state of run {spec.structure.from_run!r})"
    return f"structure ({spec.structure.builder} builder)"


def build_potential(spec: MDSpec) -> Potential:
    """``make_potential(name, **params)`` on the spec's device."""
    from ssehpc.potentials import make_potential

    name = spec.potential.name
    try:
        potential = make_potential(name, **dict(spec.potential.params))
    except (TypeError, ValueError, KeyError, OSError) as exc:
        raise SpecError(f"potential: {_one_line(exc)}") from exc
    return potential.to(spec.device)


def build_integrator(spec: MDSpec) -> Integrator:
    """``make_integrator(name, dt_fs, **params)``; thermostats get ``temperature=temperature_K``
    and barostats ``pressure=pressure_GPa`` unless their params set them."""
    from ssehpc.integrators import make_integrator

    name, params = spec.integrator.name, dict(spec.integrator.params)
    if name in THERMOSTATTED:
        params.setdefault("temperature", spec.temperature_K)
    if name in BAROSTATTED:
        params.setdefault("pressure", spec.pressure_GPa)
    try:
        return make_integrator(name, spec.dt_fs, **params)
    except (TypeError, ValueError, KeyError) as exc:
        raise SpecError(f"integrator: {_one_line(exc)}") from exc


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def build_forces(spec: MDSpec, potential: Potential, state: State, domain: Any = None) -> ForceCompute:
    """A :class:`ForceCompute`, checked against ``state`` (species the potential knows)."""
    forces = ForceCompute(potential, domain, skin=spec.skin)
    try:
        forces.check(state)
    except ValueError as exc:
        raise SpecError(f"potential {spec.potential.name!r}: {_one_line(exc)}") from exc
    return forces


@dataclass(eq=False)
class MDRun:
    """A run ready to go: ``execute()`` advances it to ``spec.steps``."""

    spec: MDSpec
    simulation: Simulation
    store: RunStore | None  # None on MPI ranks other than the writer rank

    @property
    def remaining_steps(self) -> int:
        return max(0, self.spec.steps - self.simulation.state.step)

    def execute(self) -> None:
        self.simulation.run(self.remaining_steps)


def _operations(
    spec: MDSpec, run: RunStore, thermo_stream: TextIO | None, *, committee: bool = False
) -> list[Operation]:
    ops: list[Operation] = []
    if spec.thermo_interval:
        ops.append(ThermoLog(Periodic(spec.thermo_interval), stream=thermo_stream))
    if spec.write_interval:
        ops.append(ZarrFrameWriter(run, Periodic(spec.write_interval)))
    scr = spec.screening
    if committee and scr is not None and scr.stop_after > 0:
        ops.append(
            ExtrapolationGuard(Periodic(scr.interval(spec.write_interval)), scr.trust_hi, scr.stop_after)
        )
    ckpt_trigger = Periodic(spec.checkpoint_interval) if spec.checkpoint_interval else On(())
    ops.append(CheckpointWriter(run, ckpt_trigger, metadata={"spec": spec.to_json(), "run_id": spec.run_id}))
    return ops


def _run_attrs(spec: MDSpec, atoms: ase.Atoms | None = None) -> dict[str, Any]:
    return {
        "spec": spec.to_json(),
        "ensemble": spec.integrator.name,
        "integrator_params": spec.to_json()["integrator"]["params"],
        "potential": spec.to_json()["potential"],
        "dt_fs": spec.dt_fs,
        "temperature_K": spec.temperature_K,
        "pressure_GPa": spec.pressure_GPa,
        "seed": spec.seed,
        "steps": spec.steps,
        "write_interval": spec.write_interval,
        "composition": atoms.get_chemical_formula() if atoms is not None else None,
        "device": spec.device,
        "dtype": spec.dtype,
    }


def prepare_run(
    spec: MDSpec,
    *,
    overwrite: bool = False,
    thermo_stream: TextIO | None = None,
    progress: ProgressCallback | None = None,
    extra_attrs: Mapping[str, Any] | None = None,
) -> MDRun:
    """Validate everything, then create the run in the store and return it ready to execute.

    Order: structure (read + checks) → state → potential and species check → integrator →
    Maxwell–Boltzmann momenta at ``temperature_K`` (keyed by seed and tag; a structure that
    continues another run keeps that run's momenta instead) → store.  Nothing is written before
    every check passed.

    Args:
        spec: the run.
        overwrite: replace an existing run of the same id (a ``pending`` placeholder is always
            replaced).
        thermo_stream: where the thermo table goes (default stdout).
        progress: ``progress(done, total)`` after every step.
        extra_attrs: more run attributes (e.g. the campaign's bookkeeping), written with the run.

    Raises:
        SpecError, StructureError, StoreError: one-line reasons.
    """
    domain = make_domain()
    device = rank_device(spec.device, domain)
    atoms = build_structure(spec)
    keep_momenta = isinstance(spec.structure, RunStructure) and spec.structure.carries_momenta
    state = atoms_to_state(atoms, dtype=spec.torch_dtype, device=device, seed=spec.seed, momenta=keep_momenta)
    potential = build_potential(spec)
    forces = build_forces(spec, potential, state, domain)
    integrator = build_integrator(spec)
    if spec.temperature_K > 0 and not keep_momenta:
        # On the full state, keyed by (seed, tag): every rank draws the same momenta.
        thermo.maxwell_boltzmann(state, SerialDomain(), spec.temperature_K)
    committee = getattr(potential, "n_members", 1) >= 2  # force deviations go to the store
    _check_screening(spec, potential)
    spec = with_calibrated_trust(spec)

    def create() -> RunStore:
        store = ZarrStore.open(spec.store, "a", spec=spec.to_json())
        return store.create_run(
            spec.run_id,
            state,
            {**_run_attrs(spec, atoms), **dict(extra_attrs or {})},
            overwrite=overwrite,
            extra_frame_fields=COMMITTEE_FRAME_FIELDS if committee else None,
        )

    run = _on_writer_rank(domain, create)
    state = domain.distribute(state)
    ops = _operations(spec, run, thermo_stream, committee=committee)
    sim = Simulation(state, forces, integrator, ops, store=run, progress=progress)
    return MDRun(spec, sim, run)


def calibrated_screening(scr: ScreeningSpec | None, potential: PotentialSpec) -> ScreeningSpec | None:
    """``scr`` with the calibrated trust levels of ``potential``'s shipped committee filled in
    where the block leaves ``trust_lo`` / ``trust_hi`` unset (otherwise the generic DP-GEN
    0.05 / 0.15 eV/Å would apply, which flag ordinary 600 K frames of ``lips``).  Levels given in
    the block always win; anything but an ``mlff`` potential with a calibrated model
    (:func:`ssehpc.screen.calibrated_trust`) is returned unchanged."""
    from ssehpc.screen import calibrated_trust

    if scr is None or potential.name != "mlff":
        return scr
    unset = {"trust_lo", "trust_hi"} - scr.model_fields_set
    levels = calibrated_trust(potential.params.get("model")) if unset else None
    if levels is None:
        return scr
    update = {k: v for k, v in zip(("trust_lo", "trust_hi"), levels, strict=True) if k in unset}
    try:
        return ScreeningSpec(**{**scr.model_dump(exclude_unset=True), **update})
    except ValidationError as exc:
        raise SpecError(f"screening: {format_validation_error(exc)}") from None


def with_calibrated_trust(spec: MDSpec) -> MDSpec:
    """``spec`` with :func:`calibrated_screening` applied (the levels are recorded with the run,
    so a resumed run and ``ssehpc screen`` use the same ones)."""
    filled = calibrated_screening(spec.screening, spec.potential)
    return spec if filled is spec.screening else spec.model_copy(update={"screening": filled})


def _check_screening(spec: MDSpec, potential: Potential) -> None:
    """A ``screening`` block that would stop runs needs a committee (before anything is written)."""
    k = getattr(potential, "n_members", 1)
    if spec.screening is not None and spec.screening.stop_after > 0 and k < 2:
        raise SpecError(
            f"screening.stop_after: needs a committee potential (n_members >= 2); potential "
            f"{spec.potential.name!r} has {k} member(s) (set stop_after: 0 or drop the screening block)"
        )


def _on_writer_rank(domain: Any, action: Any) -> Any:
    """Run ``action()`` on the writer rank only; every rank raises its error (no rank is left
    waiting in a collective while the writer has failed)."""
    result, error = None, None
    if domain.is_root:
        try:
            result = action()
        except Exception as exc:
            error = exc
    message = domain.broadcast_object(None if error is None else f"{type(error).__name__}\0{error}")
    if error is not None:
        raise error
    if message is not None:
        kind, text = message.split("\0", 1)
        raise (SpecError if kind == "SpecError" else StoreError)(text)
    return result


def prepare_resume(
    store_path: str | Path,
    run_id: str | None = None,
    *,
    steps: int | None = None,
    thermo_stream: TextIO | None = None,
    progress: ProgressCallback | None = None,
) -> MDRun:
    """Rebuild a run from its store: spec from the run attributes, state from the checkpoint.

    Committed frames after the checkpoint's step are dropped (they will be written again,
    identically), so no frame appears twice.

    Args:
        store_path: the store.
        run_id: the run (default: the only one).
        steps: new total number of steps (extends the run); default the spec's.
    """
    domain = make_domain()
    run = RunStore.open(store_path, run_id, mode="r+" if domain.is_root else "r")
    spec = MDSpec.from_dict(run.attrs["spec"])
    if steps is not None:
        if steps < 0:
            raise SpecError(f"steps must be non-negative, got {steps}")
        spec = spec.model_copy(update={"steps": int(steps)})
    ckpt = read_checkpoint(run.checkpoint_group, device=rank_device(spec.device, domain))
    if ckpt.step > spec.steps:
        raise SpecError(
            f"the checkpoint is at step {ckpt.step}, beyond the requested total of {spec.steps} steps"
        )
    potential = build_potential(spec)
    forces = build_forces(spec, potential, ckpt.state, domain)
    integrator = build_integrator(spec)
    _check_screening(spec, potential)

    # Everything checked: now the store may change (writer rank only).
    def update() -> RunStore:
        if steps is not None:
            run.update_attrs(steps=spec.steps, spec=spec.to_json())
        run.truncate_after_step(ckpt.step)
        return run

    run = _on_writer_rank(domain, update)
    ckpt.state = domain.distribute(ckpt.state)
    ops = _operations(spec, run, thermo_stream, committee=getattr(potential, "n_members", 1) >= 2)
    for op in ops:
        if isinstance(op, CheckpointWriter):
            op.last_step = ckpt.step
    sim = Simulation.from_checkpoint(ckpt, forces, integrator, ops, store=run, progress=progress)
    return MDRun(spec, sim, run)
