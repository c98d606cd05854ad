"""Lennard-Jones pair potential, truncated and (by default) energy-shifted at the cutoff.

.. math::

    φ(r) = 4ε\\left[(σ/r)^{12} − (σ/r)^{6}\\right] − φ_{LJ}(r_c),\\qquad r < r_c

Forces are analytic: the pair force on ``j`` is ``f_j = −φ'(r) r_ij / r`` with
``φ'(r) = 4ε(−12 σ¹²/r¹³ + 6 σ⁶/r⁷)``, ``f_i = −f_j``.  Each pair's energy is split half and half
between its two atoms.  Equivalent to LAMMPS ``pair_style lj/cut`` with ``pair_modify shift yes``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import torch
from ase.data import atomic_numbers

from ssehpc.neighbors import NeighborList
from ssehpc.parallel.domain import LocalAtoms
from ssehpc.potentials.base import Potential, PotentialOutput, fdotr_virial, pair_virial

_log = logging.getLogger(__name__)

#: The compiled single-species kernel (one per process; compiled at its first call).
_compiled_kernel = None
_compile_failed = False


def _single_species_kernel(
    pos: torch.Tensor, i: torch.Tensor, j: torch.Tensor, eps: float, sig2: float, rc2: float, e_shift: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """LJ on a half list for one species and one system (what ``torch.compile`` fuses).

    Returns per-atom energies ``[n_local]`` eV, forces ``[n_local, 3]`` eV/Å and the virial
    ``[1, 3, 3]`` eV; ``eps`` eV, ``sig2`` Å², ``rc2`` Å², ``e_shift = φ_LJ(r_c)`` eV.

    The virial is ``Σ_a x_a ⊗ F_a`` over the local rows (ghosts included), which equals
    ``Σ_pairs r_ij ⊗ f_j`` exactly in arithmetic (1e-14 relative in float64): no ``[P, 3]``
    array then leaves the fused pair loop (at 256,000 atoms those would be 264 MB each,
    page-faulted in at every step).
    """
    n_local = pos.shape[0]  # from the tensor: a Python int argument would be specialised
    rij = pos.index_select(0, j) - pos.index_select(0, i)
    r2 = torch.einsum("pk,pk->p", rij, rij)
    within = r2 < rc2
    inv_r2 = torch.where(within, 1.0 / r2, 0.0)
    s6 = (sig2 * inv_r2) ** 3
    s12 = s6 * s6
    half_e = torch.where(within, 0.5 * (4.0 * eps * (s12 - s6) - e_shift), 0.0)
    fj = (24.0 * eps * (2.0 * s12 - s6) * inv_r2)[:, None] * rij
    energies = torch.zeros(n_local, dtype=pos.dtype, device=pos.device)
    energies.index_add_(0, i, half_e)
    energies.index_add_(0, j, half_e)
    on_j = torch.zeros((n_local, 3), dtype=pos.dtype, device=pos.device).index_add_(0, j, fj)
    on_i = torch.zeros((n_local, 3), dtype=pos.dtype, device=pos.device).index_add_(0, i, fj)
    forces = on_j - on_i
    return energies, forces, (pos.T @ forces).unsqueeze(0)


def _z(symbol_or_z: str | int) -> int:
    if isinstance(symbol_or_z, int):
        return symbol_or_z
    if symbol_or_z not in atomic_numbers:
        raise ValueError(f"unknown element symbol {symbol_or_z!r}")
    return atomic_numbers[symbol_or_z]


class LennardJones(Potential):
    """Lennard-Jones potential.

    Args:
        epsilon: well depth ε, eV (used for every pair of species unless ``pairs`` is given).
        sigma: σ, Å.
        cutoff: r_c, Å.
        shift: subtract φ(r_c) so the energy is continuous at the cutoff.
        pairs: optional ``{(A, B): (ε eV, σ Å)}`` per pair of elements (symbols or Z); then only
            those elements are allowed and every pair among them must be listed.
        compile: evaluate the pair kernel with ``torch.compile`` (one fused loop, ~3x faster than
            the eager kernel on the CPU; the first call compiles for 3-30 s and needs a C++
            compiler).  Used for a single species and a single system; other cases, and a failed
            compile (logged once), run the eager kernel.  Results equal the eager ones to
            round-off (forces bitwise up to the order of two float additions).
    """

    half_list = True
    #: Pairs per block of the pair kernel (0: all pairs at once).  2¹⁶ pairs keep a block's
    #: temporaries (~5 MB in float64) in L2/L3 cache; the per-block overhead is ~0.1 ms.
    pair_chunk: int = 1 << 16

    def __init__(
        self,
        epsilon: float = 0.0104,
        sigma: float = 3.405,
        cutoff: float = 8.5,
        *,
        shift: bool = True,
        pairs: Mapping[tuple[str | int, str | int], tuple[float, float]] | None = None,
        compile: bool = False,
    ) -> None:
        super().__init__()
        self.compile = bool(compile)
        if cutoff <= 0:
            raise ValueError(f"cutoff must be positive (Å), got {cutoff}")
        self.cutoff = float(cutoff)
        self.shift = shift
        if pairs is None:
            if epsilon < 0 or sigma <= 0:
                raise ValueError(f"need epsilon >= 0 eV and sigma > 0 Å, got {epsilon}, {sigma}")
            self.species = None
            zs = [0]
            eps = torch.tensor([[float(epsilon)]], dtype=torch.float64)
            sig = torch.tensor([[float(sigma)]], dtype=torch.float64)
        else:
            zs = sorted({_z(z) for ab in pairs for z in ab})
            self.species = tuple(zs)
            k = len(zs)
            eps = torch.full((k, k), float("nan"), dtype=torch.float64)
            sig = torch.full((k, k), float("nan"), dtype=torch.float64)
            for (a, b), (e, s) in pairs.items():
                ia, ib = zs.index(_z(a)), zs.index(_z(b))
                eps[ia, ib] = eps[ib, ia] = e
                sig[ia, ib] = sig[ib, ia] = s
            if torch.isnan(eps).any():
                missing = [(zs[a], zs[b]) for a, b in torch.nonzero(torch.isnan(eps)).tolist() if a <= b]
                raise ValueError(f"LennardJones pairs lack parameters for element pairs {missing}")
        # Elements without parameters map to an extra all-NaN type: an unchecked state then fails
        # loudly (NonFiniteError) instead of borrowing another element's parameters.
        k = len(zs)
        nan_row = torch.full((1, k), float("nan"), dtype=torch.float64)
        eps = torch.cat(
            [torch.cat([eps, nan_row]), torch.full((k + 1, 1), float("nan"), dtype=torch.float64)], dim=1
        )
        sig = torch.cat(
            [torch.cat([sig, nan_row]), torch.full((k + 1, 1), float("nan"), dtype=torch.float64)], dim=1
        )
        type_of_z = torch.full((119,), k, dtype=torch.int64)
        for t, z in enumerate(zs):
            type_of_z[z] = t
        self.register_buffer("type_of_z", type_of_z, persistent=False)
        self.register_buffer("epsilon", eps, persistent=False)
        self.register_buffer("sigma", sig, persistent=False)

    def _types(self, species: torch.Tensor) -> torch.Tensor:
        if self.species is None:
            return torch.zeros_like(species)
        return self.type_of_z[species]

    def forward(self, local: LocalAtoms, nl: NeighborList) -> PotentialOutput:
        if self.compile and self.species is None and local.n_systems == 1:
            out = self._forward_compiled(local, nl)
            if out is not None:
                return out
        pos = local.positions
        dtype = pos.dtype
        n_local = local.n_local
        i_all, j_all = nl.i, nl.j
        types = self._types(local.species) if self.species is not None else None
        energies = torch.zeros(n_local, dtype=dtype, device=pos.device)
        on_j = torch.zeros((n_local, 3), dtype=dtype, device=pos.device)
        on_i = torch.zeros((n_local, 3), dtype=dtype, device=pos.device)
        virial = torch.zeros((local.n_systems, 3, 3), dtype=dtype, device=pos.device)
        # The pairs go through the kernel in blocks of ``pair_chunk``: the ~10 per-pair temporaries
        # of a block stay in cache and come from the allocator's free list, instead of being
        # [n_pairs]-sized arrays that each step page-faults in from fresh mmap'd memory and
        # streams through DRAM (2-3x slower per pair at 256,000 atoms; docs/performance.md §6).
        # Every scatter keeps the pair order, so forces are bitwise those of one block.
        step = self.pair_chunk if self.pair_chunk > 0 else max(int(i_all.numel()), 1)
        # Batches in float64: the virial from the local rows, Σ_a x_a ⊗ F_a (ghost rows are
        # explicit images, so it equals Σ_pairs r_ij ⊗ f_j): O(local rows) instead of a 3x3
        # outer product per pair scattered to its system, which was 40 % of a 64-replica step.
        # float32 keeps the per-pair sum (x_a ⊗ F_a cancels to ~1e-6 relative there).
        by_rows = local.n_systems > 1 and dtype == torch.float64
        for p0 in range(0, int(i_all.numel()), step):
            i, j = i_all[p0 : p0 + step], j_all[p0 : p0 + step]
            rij, fj = self._pair_block(pos, types, i, j, energies, on_i, on_j)
            if local.n_systems == 1:
                virial[0] += rij.T @ fj  # Σ_pairs r_ij ⊗ f_j as one matrix product
            elif not by_rows:
                virial += pair_virial(rij, fj, local.system_idx.index_select(0, i), local.n_systems)
        forces = on_j - on_i
        if by_rows:
            virial = fdotr_virial(local, forces)
        return PotentialOutput(energies=energies, forces=forces, virial=virial)

    def _forward_compiled(self, local: LocalAtoms, nl: NeighborList) -> PotentialOutput | None:
        global _compiled_kernel, _compile_failed
        if _compile_failed:
            return None
        if _compiled_kernel is None:
            # dynamic=False plus mark_dynamic on the atom and pair dimensions: one compile, no
            # recompile when the pair count changes at a rebuild; dynamic=True would also make
            # the coordinate dimension (3) symbolic, which is slower than eager.
            _compiled_kernel = torch.compile(_single_species_kernel, dynamic=False)
        pos = local.positions
        i, j = nl.i, nl.j  # NeighborList.i/.j return a new view on each access: mark these ones
        for t in (pos, i, j):
            torch._dynamo.mark_dynamic(t, 0)
        eps = float(self.epsilon[0, 0])
        sig2 = float(self.sigma[0, 0]) ** 2
        rc2 = self.cutoff * self.cutoff
        sc6 = (sig2 / rc2) ** 3
        e_shift = 4.0 * eps * (sc6 * sc6 - sc6) if self.shift else 0.0
        try:
            e, f, w = _compiled_kernel(pos, i, j, eps, sig2, rc2, e_shift)
        except Exception as exc:  # no compiler, unsupported platform: eager from now on
            _compile_failed = True
            _log.warning("LennardJones(compile=True): torch.compile failed (%s); using the eager kernel", exc)
            return None
        return PotentialOutput(energies=e, forces=f, virial=w)

    def _pair_block(
        self,
        pos: torch.Tensor,
        types: torch.Tensor | None,
        i: torch.Tensor,
        j: torch.Tensor,
        energies: torch.Tensor,
        on_i: torch.Tensor,
        on_j: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """LJ on the pairs ``(i, j)``: adds per-atom energies (eV) and pair forces (eV/Å) into the
        buffers, returns ``(r_ij [P, 3] Å, f_j [P, 3] eV/Å)`` for the virial."""
        dtype = pos.dtype
        rij = pos.index_select(0, j) - pos.index_select(0, i)
        r2 = torch.einsum("pk,pk->p", rij, rij)
        # Pairs in the skin (r >= r_c) are kept and given zero weight: masking is cheaper than
        # compacting the pair arrays every step (docs/performance.md).
        within = r2 < self.cutoff * self.cutoff
        if types is None:
            eps = float(self.epsilon[0, 0])
            sig2 = float(self.sigma[0, 0]) ** 2
        else:
            ti, tj = types.index_select(0, i), types.index_select(0, j)
            eps = self.epsilon.to(dtype)[ti, tj]
            sig2 = self.sigma.to(dtype)[ti, tj] ** 2
        inv_r2 = torch.where(within, 1.0 / r2, torch.zeros_like(r2))
        s6 = (sig2 * inv_r2) ** 3
        s12 = s6 * s6
        e_pair = 4.0 * eps * (s12 - s6)
        if self.shift:
            sc6 = (sig2 / self.cutoff**2) ** 3
            e_pair = torch.where(within, e_pair - 4.0 * eps * (sc6 * sc6 - sc6), torch.zeros_like(e_pair))
        # f_j = -φ'(r) r_ij / r = 24 ε (2 s12 − s6) / r² · r_ij
        fj = (24.0 * eps * (2.0 * s12 - s6) * inv_r2)[:, None] * rij
        half_e = 0.5 * e_pair
        energies.index_add_(0, i, half_e).index_add_(0, j, half_e)
        on_j.index_add_(0, j, fj)
        on_i.index_add_(0, i, fj)
        return rij, fj
