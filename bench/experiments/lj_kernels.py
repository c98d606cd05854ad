"""Scratch: faster Lennard-Jones pair kernels, measured against ``ssehpc.potentials.lj``.

Not part of the package.  Each ``Stage`` adds one change on top of the previous one, so
``bench/experiments/kernel_ablation.py`` can report the speed-up of every step separately.
The kernels compute exactly what :class:`ssehpc.potentials.lj.LennardJones` computes (a test
in ``kernel_ablation.py`` checks energies/forces/virial against it).
"""

from __future__ import annotations

import torch

from ssehpc.neighbors import NeighborList
from ssehpc.parallel.domain import LocalAtoms
from ssehpc.potentials.base import PotentialOutput
from ssehpc.potentials.lj import LennardJones

STAGES = ("baseline", "virial", "params", "nomask", "scatter", "compile")


def _kernel(
    pos: torch.Tensor,
    i: torch.Tensor,
    j: torch.Tensor,
    eps: float,
    sig2: float,
    rc2: float,
    e_shift: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Single-species LJ on a half list without compaction; virial as ``rij^T f``.

    Pairs beyond the cutoff (the skin shell, ~20% of the list) get a zero coefficient instead
    of being removed, which trades 20% more arithmetic for four fewer boolean-mask copies.
    """
    n_local = pos.shape[0]  # not an argument: a Python int would be specialised by torch.compile
    rij = pos.index_select(0, j) - pos.index_select(0, i)
    r2 = torch.einsum("pk,pk->p", rij, rij)
    inv_r2 = 1.0 / r2
    s6 = sig2 * inv_r2
    s6 = s6 * s6 * s6
    within = r2 < rc2
    e_half = torch.where(within, (2.0 * eps) * (s6 * s6 - s6) - 0.5 * e_shift, 0.0)
    coef = torch.where(within, (24.0 * eps) * (2.0 * s6 * s6 - s6) * inv_r2, 0.0)
    fj = coef[:, None] * rij
    energies = torch.zeros(n_local, dtype=pos.dtype, device=pos.device)
    energies.index_add_(0, i, e_half)
    energies.index_add_(0, j, e_half)
    f_on_j = torch.zeros((n_local, 3), dtype=pos.dtype, device=pos.device)
    f_on_j.index_add_(0, j, fj)
    f_on_i = torch.zeros((n_local, 3), dtype=pos.dtype, device=pos.device)
    f_on_i.index_add_(0, i, fj)
    virial = (rij.T @ fj)[None]
    return energies, f_on_j - f_on_i, virial


_compiled_kernel = None


class StagedLennardJones(LennardJones):
    """``LennardJones`` with the optimisations up to ``stage`` switched on (single system)."""

    def __init__(self, *args: object, stage: str = "baseline", **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
        self.stage = stage
        self.level = STAGES.index(stage)

    def forward(self, local: LocalAtoms, nl: NeighborList) -> PotentialOutput:
        if self.level == 0:
            return super().forward(local, nl)
        if local.n_systems != 1:
            raise NotImplementedError("the scratch kernels handle one system")
        pos = local.positions
        dtype = pos.dtype
        rc2 = self.cutoff * self.cutoff
        if self.level >= STAGES.index("scatter"):
            eps = float(self.epsilon[0, 0])
            sig2 = float(self.sigma[0, 0]) ** 2
            sc6 = (sig2 / rc2) ** 3
            e_shift = 4.0 * eps * (sc6 * sc6 - sc6) if self.shift else 0.0
            kernel = _kernel
            i, j = nl.i, nl.j  # NeighborList.i/j make a new view on every access
            if self.level >= STAGES.index("compile"):
                global _compiled_kernel
                if _compiled_kernel is None:
                    _compiled_kernel = torch.compile(_kernel, dynamic=False)
                kernel = _compiled_kernel
                # Only the atom and pair counts vary; dynamic=True would also make the
                # coordinate dimension (3) symbolic and vectorise over it (3x slower than eager).
                # Mark the very tensors passed in (a fresh nl.i view would not carry the mark, and
                # every rebuild would recompile for ~10 s).
                for t in (pos, i, j):
                    torch._dynamo.mark_dynamic(t, 0)
            e, f, w = kernel(pos, i, j, eps, sig2, rc2, e_shift)
            return PotentialOutput(energies=e, forces=f, virial=w)
        i, j = nl.i, nl.j
        rij = pos[j] - pos[i]
        r2 = (rij * rij).sum(dim=1)
        within = r2 < rc2
        if self.level < STAGES.index("nomask"):
            i, j, rij, r2 = i[within], j[within], rij[within], r2[within]
        if self.level >= STAGES.index("params"):
            # Single species: scalars instead of two [n_pairs] gathers per parameter.
            eps = self.epsilon[0, 0].to(dtype)
            sig2 = self.sigma[0, 0].to(dtype) ** 2
        else:
            t = self._types(local.species)
            ti, tj = t[i], t[j]
            eps = self.epsilon.to(dtype)[ti, tj]
            sig2 = (self.sigma.to(dtype)[ti, tj]) ** 2
        inv_r2 = 1.0 / r2
        s6 = (sig2 * inv_r2) ** 3
        s12 = s6 * s6
        e_pair = 4.0 * eps * (s12 - s6)
        if self.shift:
            sc6 = (sig2 / rc2) ** 3
            e_pair = e_pair - 4.0 * eps * (sc6 * sc6 - sc6)
        coef = 24.0 * eps * (2.0 * s12 - s6) * inv_r2
        if self.level >= STAGES.index("nomask"):
            e_pair = torch.where(within, e_pair, 0.0)
            coef = torch.where(within, coef, 0.0)
        fj = coef[:, None] * rij
        n_local = local.n_local
        energies = torch.zeros(n_local, dtype=dtype, device=pos.device)
        energies.index_add_(0, i, 0.5 * e_pair)
        energies.index_add_(0, j, 0.5 * e_pair)
        forces = torch.zeros((n_local, 3), dtype=dtype, device=pos.device)
        forces.index_add_(0, j, fj)
        forces.index_add_(0, i, -fj)
        # One system: W = Σ r_ij ⊗ f_j is a 3×P @ P×3 matrix product (no [P, 3, 3] temporary).
        virial = (rij.T @ fj)[None]
        return PotentialOutput(energies=energies, forces=forces, virial=virial)
