"""Counter-based random numbers keyed by ``(seed, step, tag, stream)``.

Every random number of the engine is a pure function of those four integers, so a trajectory does
not depend on atom order, batch composition, device or the number of MPI ranks (as in HOOMD-blue).
The generator is the SplitMix64 finaliser applied to a combination of the keys; two 64-bit
words per atom give the uniform variates for Box–Muller normals.

All integer arithmetic is done on int64 tensors, whose multiplication wraps modulo 2^64 on CPU
and CUDA; right shifts are made logical by masking.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from ssehpc.state import State

_GOLDEN = -7046029254386353131  # 0x9E3779B97F4A7C15 as a signed int64
_M1 = -4658895280553007687  # 0xBF58476D1CE4E5B9
_M2 = -7723592293110705685  # 0x94D049BB133111EB


def _lsr(x: torch.Tensor, k: int) -> torch.Tensor:
    """Logical right shift of int64 ``x`` by ``k`` bits."""
    return (x >> k) & ((1 << (64 - k)) - 1)


def _mix(z: torch.Tensor) -> torch.Tensor:
    z = (z ^ _lsr(z, 30)) * _M1
    z = (z ^ _lsr(z, 27)) * _M2
    return z ^ _lsr(z, 31)


def _signed64(v: int) -> int:
    v &= (1 << 64) - 1
    return v - (1 << 64) if v >= (1 << 63) else v


def random_bits(seed: int | torch.Tensor, step: int, stream: int, tag: torch.Tensor, n: int) -> torch.Tensor:
    """``[len(tag), n]`` int64 pseudo-random words for each tag.

    ``seed`` is one integer, or an int64 tensor with one seed per tag (batched replicas with
    their own seeds); both give the same words for the same ``(seed, tag)``.
    """
    if isinstance(seed, torch.Tensor):
        s = seed.to(device=tag.device, dtype=torch.int64)
        key = _mix(s * _signed64(0x2545F4914F6CDD1D) + stream)  # int64 arithmetic wraps mod 2^64
    else:
        key = _mix(torch.tensor(_signed64(seed * 0x2545F4914F6CDD1D + stream), dtype=torch.int64))
    key = _mix(key ^ _signed64(step * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019))
    base = _mix(tag.to(torch.int64) * _GOLDEN ^ key.to(tag.device))
    ctr = torch.arange(1, n + 1, dtype=torch.int64, device=tag.device) * _GOLDEN
    return _mix(base[:, None] + ctr[None, :])


def uniform(seed: int | torch.Tensor, step: int, stream: int, tag: torch.Tensor, n: int) -> torch.Tensor:
    """``[len(tag), n]`` uniform variates in the open interval (0, 1)."""
    bits = _lsr(random_bits(seed, step, stream, tag, n), 11)  # 53 random bits
    return (bits.to(torch.float64) + 0.5) * (1.0 / 9007199254740992.0)


def normal(
    seed: int | torch.Tensor,
    step: int,
    stream: int,
    tag: torch.Tensor,
    n: int = 3,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """``[len(tag), n]`` standard normal variates (Box–Muller), computed in float64."""
    m = 2 * ((n + 1) // 2)
    u = uniform(seed, step, stream, tag, m)
    u1, u2 = u[:, 0::2], u[:, 1::2]
    r = torch.sqrt(-2.0 * torch.log(u1))
    z = torch.cat([r * torch.cos(2.0 * math.pi * u2), r * torch.sin(2.0 * math.pi * u2)], dim=1)
    return z[:, :n].to(dtype)


def system_normal(
    seed: int | torch.Tensor, step: int, stream: int, system_ids: torch.Tensor, n: int = 1
) -> torch.Tensor:
    """Per-system normals (thermostat/barostat noise), keyed by the system's id (and seed)."""
    return normal(seed, step, stream + 1_000_003, system_ids, n)


def atom_normal(state: State, step: int, stream: int, n: int = 3) -> torch.Tensor:
    """``[N, n]`` float64 normals for the atoms of ``state``, keyed by each atom's system seed and
    its tag relative to its system (:meth:`ssehpc.state.State.atom_random_keys`)."""
    seeds, tags = state.atom_random_keys()
    return normal(seeds, step, stream, tags, n)


def state_system_normal(state: State, step: int, stream: int, n: int = 1) -> torch.Tensor:
    """``[S, n]`` float64 normals for the systems of ``state``, keyed by ``(system_seed, system_key)``."""
    return system_normal(state.system_seed, step, stream, state.system_key, n)
