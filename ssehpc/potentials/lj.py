"""Lennard-Jones pair potential, truncated and (by default) energy-shifted at the cutoff.

.. math::

    φ(r) = 4ε\\left[(σ/r)^{12} − (σ/r)^{6}\\right] − φ_{LJ}(r_c),\\qquad r < r_c

Forces are analytic: the pair force on ``j`` is ``f_j = −φ'(r) r_ij / r`` with
``φ'(r) = 4ε(−12 σ¹²/r¹³ + 6 σ⁶/r⁷)``, ``f_i = −f_j``.  Each pair's energy is split half and half
between its two atoms.  Equivalent to LAMMPS ``pair_style lj/cut`` with ``pair_modify shift yes``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from ase.data import atomic_numbers

from ssehpc.neighbors import NeighborList
from ssehpc.parallel.domain import LocalAtoms
from ssehpc.potentials.base import Potential, PotentialOutput, pair_virial


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
    """

    half_list = True

    def __init__(
        self,
        epsilon: float = 0.0104,
        sigma: float = 3.405,
        cutoff: float = 8.5,
        *,
        shift: bool = True,
        pairs: Mapping[tuple[str | int, str | int], tuple[float, float]] | None = None,
    ) -> None:
        super().__init__()
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
        pos = local.positions
        dtype = pos.dtype
        i, j = nl.i, nl.j
        rij = pos.index_select(0, j) - pos.index_select(0, i)
        r2 = torch.einsum("pk,pk->p", rij, rij)
        # Pairs in the skin (r >= r_c) are kept and given zero weight: masking is cheaper than
        # compacting the pair arrays every step (docs/performance.md).
        within = r2 < self.cutoff * self.cutoff
        if self.species is None:
            eps = float(self.epsilon[0, 0])
            sig2 = float(self.sigma[0, 0]) ** 2
        else:
            t = self._types(local.species)
            ti, tj = t.index_select(0, i), t.index_select(0, j)
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
        n_local = local.n_local
        half_e = 0.5 * e_pair
        energies = torch.zeros(n_local, dtype=dtype, device=pos.device)
        energies.index_add_(0, i, half_e).index_add_(0, j, half_e)
        on_j = torch.zeros((n_local, 3), dtype=dtype, device=pos.device).index_add_(0, j, fj)
        on_i = torch.zeros((n_local, 3), dtype=dtype, device=pos.device).index_add_(0, i, fj)
        forces = on_j - on_i
        if local.n_systems == 1:
            virial = (rij.T @ fj).unsqueeze(0)  # Σ_pairs r_ij ⊗ f_j as one matrix product
        else:
            virial = pair_virial(rij, fj, local.system_idx.index_select(0, i), local.n_systems)
        return PotentialOutput(energies=energies, forces=forces, virial=virial)
