"""Checkpoints: everything needed to continue a run bitwise, stored inside its run group.

Layout under ``runs/<run_id>/checkpoint/``::

    checkpoint/                      attrs: current = "ckpt_<step>_<uid>"   (the pointer)
      ckpt_000000001000_1a2b3c4d/    attrs: step, seed, n_systems_total, integrator (tree),
                                            forces (tree), metadata (spec, ...), created, complete
        state/positions, momenta, masses, species, tag, image, system_idx, cell, forces,
              energy, virial        every per-atom and per-system State field, native dtype
        integrator/t0, t1, ...      tensors of ``integrator.state_dict()``
        forces/t0, ...              tensors of ``forces.state_dict()``

**Atomicity.**  A checkpoint is written completely into a new, uniquely named group; only then
is the pointer attribute ``current`` swapped to it (one metadata write, atomic on a local file
system since Zarr writes a temporary file and renames it), and older groups are deleted.  A
crash at any moment leaves ``current`` naming a complete checkpoint.

**Exactness.**  Tensors are stored in their own dtype with lossless compression and read back
bit for bit; integers and floats of the state dicts go to JSON attributes (Python's ``repr`` of a
float round-trips exactly).  Random numbers need no state: they are keyed by
``(seed, step, tag)`` (:mod:`ssehpc.random`).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np
import torch
import zarr

import ssehpc
from ssehpc.io.zarr_store import SCHEMA_VERSION, StoreError
from ssehpc.state import State

#: Attribute of the checkpoint group naming the current checkpoint.
POINTER = "current"


#: State fields a checkpoint may lack (written since schema 1 as well; filled from ``seed``).
OPTIONAL_STATE_FIELDS = frozenset({"system_seed", "system_key", "tag_base"})


class CheckpointError(StoreError):
    """No usable checkpoint, or one that cannot be read."""


@dataclass(eq=False)
class Checkpoint:
    """A checkpoint read back from a store.

    Attributes:
        state: the full state (every field, step and seed).
        integrator: ``integrator.state_dict()`` at that step.
        forces: ``forces.state_dict()`` (neighbour-list reference) at that step.
        metadata: what the writer added (spec, ensemble, dt_fs, ...).
        name: name of the checkpoint group.
    """

    state: State
    integrator: dict[str, Any]
    forces: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)
    name: str = ""

    @property
    def step(self) -> int:
        return self.state.step


# ---------------------------------------------------------------------- (de)serialising trees
def _encode(obj: Any, tensors: dict[str, torch.Tensor | np.ndarray]) -> Any:
    """JSON tree of ``obj`` with tensors replaced by references into ``tensors``."""
    if isinstance(obj, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = obj
        return {"__tensor__": key}
    if isinstance(obj, np.ndarray):
        key = f"t{len(tensors)}"
        tensors[key] = obj
        return {"__ndarray__": key}
    if isinstance(obj, Mapping):
        if not all(isinstance(k, str) for k in obj):
            raise TypeError(f"checkpointed dicts need string keys, got {list(obj)}")
        return {"__dict__": {k: _encode(v, tensors) for k, v in obj.items()}}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, tensors) for v in obj]}
    if isinstance(obj, list):
        return [_encode(v, tensors) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return {"__float__": repr(obj)}
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        return _encode(obj.item(), tensors)
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot checkpoint a value of type {type(obj).__name__}")


def _decode(tree: Any, arrays: zarr.Group | None, device: torch.device | str | None) -> Any:
    if isinstance(tree, list):
        return [_decode(v, arrays, device) for v in tree]
    if isinstance(tree, dict):
        if "__tensor__" in tree:
            t = torch.from_numpy(np.array(arrays[tree["__tensor__"]][...]))
            return t.to(device) if device is not None else t
        if "__ndarray__" in tree:
            return np.asarray(arrays[tree["__ndarray__"]][...])
        if "__dict__" in tree:
            return {k: _decode(v, arrays, device) for k, v in tree["__dict__"].items()}
        if "__tuple__" in tree:
            return tuple(_decode(v, arrays, device) for v in tree["__tuple__"])
        if "__float__" in tree:
            return float(tree["__float__"])
        raise CheckpointError(f"malformed checkpoint tree node {tree!r}")
    return tree


def _write_array(group: zarr.Group, name: str, value: torch.Tensor | np.ndarray) -> None:
    data = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
    # One chunk per array; lossless compression keeps every bit.
    arr = group.create_array(
        name, shape=data.shape, chunks=tuple(max(1, s) for s in data.shape), dtype=data.dtype
    )
    arr[...] = data


# ---------------------------------------------------------------------- write / read
def write_checkpoint(
    parent: zarr.Group,
    state: State,
    integrator_state: Mapping[str, Any],
    forces_state: Mapping[str, Any],
    metadata: Mapping[str, Any] | None = None,
    *,
    keep: int = 1,
) -> str:
    """Write a checkpoint into ``parent`` (the ``checkpoint`` group) and make it current.

    Args:
        parent: the run's ``checkpoint`` group.
        state: the state to save (all fields).
        integrator_state: ``integrator.state_dict()``.
        forces_state: ``forces.state_dict()``.
        metadata: JSON-able extras (the spec, ensemble, ...) stored with it.
        keep: how many complete checkpoints to keep (the newest; at least 1).

    Returns:
        The name of the new checkpoint group.
    """
    name = f"ckpt_{state.step:012d}_{uuid.uuid4().hex[:8]}"
    group = parent.create_group(name)
    sgroup = group.create_group("state")
    for fname, scope in State.scopes.items():
        if scope != "global":
            _write_array(sgroup, fname, getattr(state, fname))
    trees = {}
    for part, d in (("integrator", integrator_state), ("forces", forces_state)):
        tensors: dict[str, torch.Tensor | np.ndarray] = {}
        trees[part] = _encode(dict(d), tensors)
        pgroup = group.create_group(part)
        for key, t in tensors.items():
            _write_array(pgroup, key, t)
    group.update_attributes(
        {
            "step": int(state.step),
            "seed": int(state.seed),
            "n_systems_total": int(state.n_systems_total),
            "integrator": trees["integrator"],
            "forces": trees["forces"],
            "metadata": _encode(dict(metadata or {}), {}),
            "schema_version": SCHEMA_VERSION,
            "ssehpc_version": ssehpc.__version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "complete": True,
        }
    )
    # The swap: from here on the new checkpoint is the one a restart sees.
    history = [*list(parent.attrs.get("history", [])), name][-max(1, keep) :]
    parent.update_attributes({POINTER: name, "history": history})
    for old in list(parent.group_keys()):
        if old not in history:
            del parent[old]
    return name


def read_checkpoint(
    parent: zarr.Group, *, device: torch.device | str | None = None, name: str | None = None
) -> Checkpoint:
    """Read the current (or the named) checkpoint of a run's ``checkpoint`` group.

    Args:
        parent: the run's ``checkpoint`` group.
        device: move tensors there (default: CPU, as stored).
        name: a specific checkpoint group instead of the current one.

    Raises:
        CheckpointError: if there is no complete checkpoint.
    """
    name = name or parent.attrs.get(POINTER)
    if not name:
        raise CheckpointError("the run has no checkpoint yet")
    if name not in parent:
        raise CheckpointError(f"checkpoint {name!r} named by the pointer is missing")
    group = parent[name]
    a = group.attrs.asdict()
    if not a.get("complete"):
        raise CheckpointError(f"checkpoint {name!r} is incomplete")
    sgroup = group["state"]
    fields: dict[str, Any] = {}
    for fname, scope in State.scopes.items():
        if scope == "global" or (fname in OPTIONAL_STATE_FIELDS and fname not in sgroup):
            continue  # checkpoints older than the per-system random keys: defaults from the seed
        t = torch.from_numpy(np.array(sgroup[fname][...]))
        fields[fname] = t.to(device) if device is not None else t
    state = State(
        **fields, step=int(a["step"]), seed=int(a["seed"]), n_systems_total=int(a["n_systems_total"])
    )
    return Checkpoint(
        state=state,
        integrator=_decode(a["integrator"], group["integrator"], device),
        forces=_decode(a["forces"], group["forces"], device),
        metadata=_decode(a.get("metadata", {"__dict__": {}}), None, None),
        name=name,
    )


def has_checkpoint(parent: zarr.Group) -> bool:
    """Whether the ``checkpoint`` group names a current checkpoint."""
    return bool(parent.attrs.get(POINTER))
