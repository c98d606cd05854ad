"""The MD state: a dataclass of tensors whose fields carry a scope.

Scopes decide what the generic operations do with a field:

* ``atom``   — one row per *owned* atom; migrates between MPI ranks, is reordered by sorts,
  is split/concatenated with its system.
* ``system`` — one row per system of a batch (``system_idx`` says which system an atom is in);
  replicated on every MPI rank.
* ``global`` — Python scalars shared by the whole state (step counter, seed).

The state holds owned atoms only.  Ghost atoms (periodic images, or atoms of neighbouring MPI
bricks) live in :class:`ssehpc.parallel.LocalAtoms`, which the domain builds from the state on
every neighbour-list rebuild; see ``docs/architecture.md``.

Positions are kept wrapped into the cell at each neighbour-list rebuild; ``image`` counts the
cell vectors removed so that ``unwrapped = positions + image @ cell``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch

from ssehpc import units

Scope = Literal["atom", "system", "global"]


@dataclass(eq=False)
class State:
    """Positions, momenta and everything else that defines an MD configuration.

    Attributes:
        positions: ``[N, 3]`` Å, wrapped into the cell at neighbour-list rebuilds.
        momenta: ``[N, 3]`` amu·Å/fs.
        masses: ``[N]`` amu.
        species: ``[N]`` int64 atomic numbers.
        tag: ``[N]`` int64 global atom id, unique within the whole (batched) state; fixes the
            random-number stream of the atom and the order of atoms in output.
        image: ``[N, 3]`` int64 image flags (cell vectors removed by wrapping).
        system_idx: ``[N]`` int64 index of the system each atom belongs to (sorted is not
            required).
        cell: ``[S, 3, 3]`` Å, lattice vectors as *rows* (ASE convention).
        forces: ``[N, 3]`` eV/Å from the last force evaluation.
        energy: ``[S]`` eV potential energy per system from the last force evaluation.
        virial: ``[S, 3, 3]`` eV, ``W = Σ_a x_a ⊗ F_a`` (positive for repulsion).
        step: MD step counter.
        seed: seed of every random stream of the run.
        n_systems_total: systems of the whole batch (all ranks).
        system_seed: ``[S]`` int64 seed of each system's random streams (default: ``seed`` for
            every system).  Batched replicas keep their own seeds here.
        system_key: ``[S]`` int64 id of each system in its random streams (default ``0..S-1``;
            thermostat/barostat noise of the system is keyed by ``(system_seed, system_key)``).
        tag_base: ``[S]`` int64 subtracted from the tags of the system's atoms to key their
            random numbers (default 0).  :func:`concatenate` offsets tags to keep them unique
            and records the offset here, so a replica draws the same random numbers batched
            as alone.
    """

    positions: torch.Tensor
    momenta: torch.Tensor
    masses: torch.Tensor
    species: torch.Tensor
    tag: torch.Tensor
    image: torch.Tensor
    system_idx: torch.Tensor
    cell: torch.Tensor
    forces: torch.Tensor
    energy: torch.Tensor
    virial: torch.Tensor
    step: int = 0
    seed: int = 0
    n_systems_total: int = field(default=-1)
    system_seed: torch.Tensor | None = None  # type: ignore[assignment]  (filled in __post_init__)
    system_key: torch.Tensor | None = None  # type: ignore[assignment]
    tag_base: torch.Tensor | None = None  # type: ignore[assignment]

    scopes: ClassVar[dict[str, Scope]] = {
        "positions": "atom",
        "momenta": "atom",
        "masses": "atom",
        "species": "atom",
        "tag": "atom",
        "image": "atom",
        "system_idx": "atom",
        "forces": "atom",
        "cell": "system",
        "energy": "system",
        "virial": "system",
        "step": "global",
        "seed": "global",
        "n_systems_total": "global",
        "system_seed": "system",
        "system_key": "system",
        "tag_base": "system",
    }

    def __post_init__(self) -> None:
        if self.n_systems_total < 0:
            self.n_systems_total = int(self.cell.shape[0])
        n_sys, dev = int(self.cell.shape[0]), self.cell.device
        if self.system_seed is None:
            self.system_seed = torch.full((n_sys,), int(self.seed), dtype=torch.int64, device=dev)
        if self.system_key is None:
            self.system_key = torch.arange(n_sys, dtype=torch.int64, device=dev)
        if self.tag_base is None:
            self.tag_base = torch.zeros(n_sys, dtype=torch.int64, device=dev)
        self.validate()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_arrays(
        cls,
        positions: torch.Tensor,
        masses: torch.Tensor,
        species: torch.Tensor,
        cell: torch.Tensor,
        *,
        momenta: torch.Tensor | None = None,
        system_idx: torch.Tensor | None = None,
        tag: torch.Tensor | None = None,
        image: torch.Tensor | None = None,
        seed: int = 0,
        step: int = 0,
    ) -> State:
        """Build a state, filling optional fields with zeros / defaults.

        ``cell`` may be ``[3, 3]`` (one system) or ``[S, 3, 3]``.
        """
        positions = torch.as_tensor(positions)
        n = positions.shape[0]
        dtype, device = positions.dtype, positions.device
        cell = torch.as_tensor(cell, dtype=dtype, device=device)
        if cell.ndim == 2:
            cell = cell.unsqueeze(0)
        n_sys = cell.shape[0]
        zeros3 = torch.zeros((n, 3), dtype=dtype, device=device)
        return cls(
            positions=positions,
            momenta=zeros3.clone()
            if momenta is None
            else torch.as_tensor(momenta, dtype=dtype, device=device),
            masses=torch.as_tensor(masses, dtype=dtype, device=device),
            species=torch.as_tensor(species, dtype=torch.int64, device=device),
            tag=torch.arange(n, device=device)
            if tag is None
            else torch.as_tensor(tag, dtype=torch.int64, device=device),
            image=torch.zeros((n, 3), dtype=torch.int64, device=device)
            if image is None
            else torch.as_tensor(image, dtype=torch.int64, device=device),
            system_idx=torch.zeros(n, dtype=torch.int64, device=device)
            if system_idx is None
            else torch.as_tensor(system_idx, dtype=torch.int64, device=device),
            cell=cell,
            forces=zeros3.clone(),
            energy=torch.zeros(n_sys, dtype=dtype, device=device),
            virial=torch.zeros((n_sys, 3, 3), dtype=dtype, device=device),
            step=step,
            seed=seed,
        )

    # ------------------------------------------------------------------ properties
    @property
    def n_atoms(self) -> int:
        """Number of owned atoms."""
        return int(self.positions.shape[0])

    @property
    def n_systems(self) -> int:
        return int(self.cell.shape[0])

    @property
    def dtype(self) -> torch.dtype:
        return self.positions.dtype

    @property
    def device(self) -> torch.device:
        return self.positions.device

    @property
    def volume(self) -> torch.Tensor:
        """``[S]`` cell volumes, Å³."""
        return torch.linalg.det(self.cell).abs()

    @property
    def velocities(self) -> torch.Tensor:
        """``[N, 3]`` Å/fs."""
        return self.momenta / self.masses[:, None]

    def atom_random_keys(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(seed [N], tag [N])`` that key each atom's random numbers: its system's seed and its
        tag relative to the system's ``tag_base`` (see :mod:`ssehpc.random`)."""
        return self.system_seed[self.system_idx], self.tag - self.tag_base[self.system_idx]

    def unwrapped_positions(self) -> torch.Tensor:
        """``[N, 3]`` Å, positions with the image flags undone."""
        cell_of_atom = self.cell[self.system_idx]
        return self.positions + torch.einsum("ni,nij->nj", self.image.to(self.dtype), cell_of_atom)

    # ------------------------------------------------------------------ generic operations
    def fields(self, scope: Scope) -> list[str]:
        return [name for name, s in self.scopes.items() if s == scope]

    def replace(self, **changes: object) -> State:
        """A copy with ``changes``; a new ``seed`` also re-seeds every system (unless
        ``system_seed`` is given too)."""
        if "seed" in changes and "system_seed" not in changes:
            changes["system_seed"] = torch.full_like(self.system_seed, int(changes["seed"]))  # type: ignore[arg-type]
        return dataclasses.replace(self, **changes)

    def clone(self) -> State:
        return self.replace(
            **{name: getattr(self, name).clone() for name, scope in self.scopes.items() if scope != "global"}
        )

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> State:
        """Copy to a device and/or floating dtype (integer fields keep their dtype)."""
        changes = {}
        for name, scope in self.scopes.items():
            if scope == "global":
                continue
            t = getattr(self, name)
            if dtype is not None and t.is_floating_point():
                t = t.to(dtype=dtype)
            if device is not None:
                t = t.to(device=device)
            changes[name] = t
        return self.replace(**changes)

    def index_atoms(self, index: torch.Tensor) -> State:
        """A state whose atoms are ``index`` (a permutation or subset) of this state's atoms."""
        return self.replace(**{name: getattr(self, name)[index] for name in self.fields("atom")})

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field whose shape or values are inconsistent."""
        n = self.positions.shape[0]
        if self.positions.ndim != 2 or self.positions.shape[1] != 3:
            raise ValueError(f"positions must have shape [N, 3], got {tuple(self.positions.shape)}")
        for name in self.fields("atom"):
            t = getattr(self, name)
            if t.shape[0] != n:
                raise ValueError(f"per-atom field {name!r} has {t.shape[0]} rows, expected {n}")
        if self.cell.ndim != 3 or self.cell.shape[1:] != (3, 3):
            raise ValueError(f"cell must have shape [S, 3, 3], got {tuple(self.cell.shape)}")
        s = self.cell.shape[0]
        for name in self.fields("system"):
            t = getattr(self, name)
            if t.shape[0] != s:
                raise ValueError(f"per-system field {name!r} has {t.shape[0]} rows, expected {s}")
        if n and (int(self.system_idx.min()) < 0 or int(self.system_idx.max()) >= s):
            raise ValueError(
                f"system_idx must lie in [0, {s}), got [{int(self.system_idx.min())}, {int(self.system_idx.max())}]"
            )
        if n and not bool(torch.isfinite(self.positions).all()):
            bad = torch.nonzero(~torch.isfinite(self.positions).all(dim=1)).flatten()[:5].tolist()
            raise ValueError(f"positions contain NaN/inf (atoms {bad} ...)")
        if n and bool((self.masses <= 0).any()):
            raise ValueError("masses must be positive")
        if not bool(torch.isfinite(self.cell).all()):
            raise ValueError("cell contains NaN/inf")
        vol = torch.linalg.det(self.cell)
        if bool((vol.abs() < 1e-6).any()):
            raise ValueError(f"cell is singular (volumes {vol.tolist()} Å^3)")

    # ------------------------------------------------------------------ thermodynamics
    def kinetic_energy_tensor(self) -> torch.Tensor:
        """``[S, 3, 3]`` eV, ``Σ p⊗p / m`` per system (twice the kinetic energy tensor)."""
        pp = self.momenta[:, :, None] * self.momenta[:, None, :] / self.masses[:, None, None]
        out = torch.zeros((self.n_systems, 3, 3), dtype=self.dtype, device=self.device)
        out.index_add_(0, self.system_idx, pp)
        return out * units.MVV2E

    def kinetic_energy(self) -> torch.Tensor:
        """``[S]`` eV."""
        return 0.5 * torch.diagonal(self.kinetic_energy_tensor(), dim1=1, dim2=2).sum(-1)

    def atoms_per_system(self) -> torch.Tensor:
        """``[S]`` number of owned atoms per system."""
        return torch.bincount(self.system_idx, minlength=self.n_systems)


def concatenate(states: list[State]) -> State:
    """Batch several states into one (systems appended in order, tags made unique).

    Each system keeps its seed and random keys (``system_seed``, ``system_key``, ``tag_base``),
    so its thermostat noise and momenta draws are those it would get alone.  The result takes
    the global fields (``step``, ``seed``) of the first state; ``n_systems_total`` is the sum.
    """
    if not states:
        raise ValueError("concatenate needs at least one state")
    sys_offset = 0
    tag_offset = 0
    atom_parts: dict[str, list[torch.Tensor]] = {name: [] for name in states[0].fields("atom")}
    sys_parts: dict[str, list[torch.Tensor]] = {name: [] for name in states[0].fields("system")}
    for st in states:
        for name in atom_parts:
            t = getattr(st, name)
            if name == "system_idx":
                t = t + sys_offset
            elif name == "tag":
                t = t + tag_offset
            atom_parts[name].append(t)
        for name in sys_parts:
            t = getattr(st, name)
            if name == "tag_base":  # the random keys of every atom stay what they were
                t = t + tag_offset
            sys_parts[name].append(t)
        sys_offset += st.n_systems
        tag_offset += int(st.tag.max()) + 1 if st.n_atoms else 0
    return dataclasses.replace(
        states[0],
        **{k: torch.cat(v) for k, v in atom_parts.items()},
        **{k: torch.cat(v) for k, v in sys_parts.items()},
        n_systems_total=sys_offset,
    )


def split(state: State) -> list[State]:
    """Inverse of :func:`concatenate` (tags are kept as they are; so are the random keys, so a
    system split off continues with the random numbers it had in the batch)."""
    out = []
    for s in range(state.n_systems):
        mask = state.system_idx == s
        sub = state.index_atoms(torch.nonzero(mask).flatten())
        sub = sub.replace(
            system_idx=torch.zeros_like(sub.system_idx),
            **{name: getattr(state, name)[s : s + 1] for name in state.fields("system")},
            n_systems_total=1,
        )
        out.append(sub)
    return out
