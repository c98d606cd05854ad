"""A strictly local, Cartesian-moment ML potential (``MomentPotential``) for K stacked members.

Energy is a sum of atomic energies; atom ``i`` sees its neighbours ``j`` with ``r_ij < r_c``
(one cutoff, ``hops = 0``).  The pipeline, with the symbols used in the code:

1. **Parameter-free pair basis** (computed once per evaluation, shared by every committee member)

   .. math::

       φ_{n k}(\\mathbf r_{ij}) = B_n(r_{ij})\\, Y_k(\\hat{\\mathbf r}_{ij}),\\qquad
       B_n(r) = \\sqrt{2/r_c}\\,\\frac{\\sin(nπ r/r_c)}{r}\\, f_c(r/r_c),\\qquad
       f_c(d) = 1 − 28d^6 + 48d^7 − 21d^8

   ``B_n`` are Bessel functions times the DimeNet polynomial envelope (``f_c`` and its first two
   derivatives vanish at ``r_c``, so forces and their derivatives are continuous).  ``Y_k`` are
   the Cartesian monomials ``u_x^a u_y^b u_z^c`` (``a+b+c = l ≤ l_max``) scaled by
   ``sqrt(l!/(a! b! c!))`` so that a plain dot product of two l-blocks is the full tensor
   contraction ``Σ_{α…} T_{α…} S_{α…}``.

2. **Element-resolved atomic moments** (the MTP / ACE "atomic base")

   .. math::  A_{i, z, n, k} = \\frac{1}{\\bar N}\\sum_{j:\\, z_j = z} φ_{nk}(\\mathbf r_{ij})

   one ``index_add`` over pairs into slot ``(i, z_j)``; ``\\bar N`` is the average neighbour count
   of the training data.

3. **Learned channel mixing** per member ``m`` and moment rank ``l``:
   ``M^{m}_{l,i,c} = Σ_{z,n} W^{m,l}_{(z,n),c} A_{i,z,n,k∈l}`` (``mixing="neighbour"``, like
   DeePMD's ``type_one_side``; with ``mixing="pair"`` the weights also depend on the centre's
   element) — the same as learning a radial function per neighbour element (or element pair) and
   rank, but done *after* the pair sum, so the pair work does not depend on the weights and a
   committee shares it.

4. **Invariants** of the moment tensors ``M_0`` (scalar), ``M_1`` (vector), ``M_2``, ``M_3``
   (symmetric rank-2/3 tensors).  ``contraction="gram"``: ``M_0^c``, every ``M_l^c · M_l^d``
   (``c ≤ d``, three-body) and ``M_1^c · M_2^d · M_1^c`` (four-body).  ``contraction="channelwise"``:
   ``M_0^c``, ``M_l^{c,a} · M_l^{c,b}`` of two independently mixed copies, and
   ``M_1^{c,a} · M_2^{c,c} · M_1^{c,a}`` — C invariants per rank, element-wise products only.
   Rotations act on ``M_l`` as orthogonal maps, so full contractions are invariant; translation and
   permutation invariance hold because only ``r_ij`` and sums over neighbours enter.

5. **Atomic energy** ``E_i = e_{z_i} + s · MLP(x_i, z_i)`` with ``x_i`` the standardised invariants,
   an MLP whose first layer has a per-element bias and whose read-out is per element, ``e_z`` the
   least-squares reference energies and ``s`` an energy scale (both set by training).

**Forces without autograd through the pairs.**  ``G = ∂E/∂A`` (per member) is one backward pass
through the small per-atom network: written out by hand for inference with gram invariants
(``_energy_and_grad_manual``: atoms innermost, GEMMs and element-wise products only, the member
mean summed inside the last GEMM), by autograd in training; the pair gradient then follows in
closed form,

.. math::

    \\mathbf g_{ij} = \\frac{∂E}{∂\\mathbf r_{ij}}
      = \\hat{\\mathbf r}\\sum_k Y_k \\sum_n G_{nk} B'_n
        + \\frac{1}{r}\\big(\\mathbb 1 − \\hat{\\mathbf r}\\hat{\\mathbf r}^{\\mathsf T}\\big)\\,
          ∇_{\\hat{\\mathbf r}}\\, p(\\hat{\\mathbf r}),\\qquad
    p(\\hat{\\mathbf r}) = \\sum_k h_k Y_k(\\hat{\\mathbf r}),\\quad h_k = \\sum_n G_{nk} B_n

where the gradient of the polynomial ``p`` is ``H_1 + 2 H_2·û + 3 (H_3·û)·û`` for the symmetric
tensors ``H_l`` that ``h`` represents, and the projection removes the radial part
(``û·∇p = Σ_l l p_l``, Euler).  Then ``F_j −= g_ij``, ``F_i += g_ij`` and the virial is
``W = −Σ_pairs r_ij ⊗ g_ij``.  ``G`` keeps its graph when training, so force losses are
differentiable.  Ghost rows receive forces through ``j``; the domain's reverse sum adds them to
their owners, which makes owned+ghost evaluation equal to the periodic one (and MPI-ready).

Every parameter and buffer carries a leading member axis ``K`` (``K = 1`` for a single model), so
a :class:`~ssehpc.ml.committee.Committee` is the same module with ``K > 1``.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
from ase.data import atomic_numbers, chemical_symbols
from torch import nn

from ssehpc.neighbors import NeighborList
from ssehpc.parallel.domain import LocalAtoms
from ssehpc.potentials.base import Potential, PotentialOutput

#: Version of the model file layout written by :meth:`MomentPotential.save`.
FILE_FORMAT = "ssehpc-moment-potential"
FILE_VERSION = 1
_MAX_Z = 119
_UNKNOWN = 1 << 40


# ------------------------------------------------------------------------------------ hyperparameters
@dataclass(frozen=True)
class ModelSpec:
    """Architecture hyperparameters (JSON-able; stored in model files).

    Attributes:
        species: atomic numbers the model knows (sorted).
        cutoff: r_c, Å.
        n_radial: number of Bessel functions ``B_n``.
        lmax: highest moment rank (0..3).
        channels: mixed channels ``c`` per moment rank.
        mixing: ``"neighbour"`` (channel weights depend on the neighbour's element, as DeePMD's
            ``type_one_side``; one GEMM per rank) or ``"pair"`` (on the centre's element too).
        contraction: ``"channelwise"`` (``M_l^{c,a}·M_l^{c,b}``: C invariants per rank, cheap) or
            ``"gram"`` (all ``M_l^c·M_l^d``, ``c ≤ d``: C(C+1)/2 per rank).
        four_body: add the ``M_1·M_2·M_1`` invariants (needs ``lmax ≥ 2``).
        hidden: widths of the MLP hidden layers.
        avg_neighbors: ``N̄``, average number of neighbours within ``r_c`` (set from data).
        n_members: committee size ``K``.
        core_inner, core_outer: Å; if ``core_outer > 0`` a fixed ZBL screened-nuclear repulsion
            acts at ``r < core_outer`` (full below ``core_inner``, switched off smoothly between),
            a safety net where no training data can exist (atoms pushed unphysically close).
        radial_floor: Å; the learned part sees pairs closer than this as if they were at this
            distance (its radial functions are frozen: no learned radial force below it), so only
            the core repulsion acts there.  At most the shortest distance in the training data,
            so predictions on the data do not change; 0 = off.
    """

    species: tuple[int, ...]
    cutoff: float = 5.0
    n_radial: int = 8
    lmax: int = 2
    channels: int = 8
    mixing: str = "neighbour"
    contraction: str = "gram"
    four_body: bool = True
    hidden: tuple[int, ...] = (64, 64)
    avg_neighbors: float = 20.0
    n_members: int = 1
    core_inner: float = 0.0
    core_outer: float = 0.0
    radial_floor: float = 0.0

    def __post_init__(self) -> None:
        species = tuple(sorted({_z(s) for s in self.species}))
        object.__setattr__(self, "species", species)
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        if not species:
            raise ValueError("ModelSpec.species must name at least one element")
        if not self.cutoff > 0:
            raise ValueError(f"cutoff must be positive (Å), got {self.cutoff}")
        if not 0 <= self.lmax <= 3:
            raise ValueError(f"lmax must be 0, 1, 2 or 3, got {self.lmax}")
        if self.four_body and self.lmax < 2:
            raise ValueError("four_body invariants need lmax >= 2")
        if self.mixing not in ("neighbour", "pair"):
            raise ValueError(f"mixing must be 'neighbour' or 'pair', got {self.mixing!r}")
        if self.contraction not in ("channelwise", "gram"):
            raise ValueError(f"contraction must be 'channelwise' or 'gram', got {self.contraction!r}")
        for name in ("n_radial", "channels", "n_members"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.hidden or min(self.hidden) < 1:
            raise ValueError(f"hidden must be a non-empty list of positive widths, got {self.hidden}")
        if self.core_outer > 0 and not 0 <= self.core_inner < self.core_outer <= self.cutoff:
            raise ValueError(
                f"need 0 <= core_inner < core_outer <= cutoff, got {self.core_inner}, {self.core_outer}, {self.cutoff}"
            )
        if not self.avg_neighbors > 0:
            raise ValueError(f"avg_neighbors must be positive, got {self.avg_neighbors}")
        if not 0 <= self.radial_floor < self.cutoff:
            raise ValueError(f"need 0 <= radial_floor < cutoff, got {self.radial_floor}, {self.cutoff}")

    @property
    def n_types(self) -> int:
        return len(self.species)

    @property
    def n_angular(self) -> int:
        """Number of Cartesian components ``Y_k`` up to ``lmax``: 1, 4, 10, 20."""
        return sum((rank + 1) * (rank + 2) // 2 for rank in range(self.lmax + 1))

    @property
    def n_features(self) -> int:
        c = self.channels
        if self.contraction == "gram":
            return c + self.lmax * c * (c + 1) // 2 + (c * c if self.four_body else 0)
        return c * (1 + self.lmax + int(self.four_body))

    def mixed_channels(self, rank: int) -> int:
        """Channels mixed for moment rank ``l``: ``C`` (gram, and l = 0); ``2C`` for the two sides of
        a channel-wise product (+ ``C`` for the rank-2 side of the four-body term)."""
        c = self.channels
        if self.contraction == "gram" or rank == 0:
            return c
        return 3 * c if (rank == 2 and self.four_body) else 2 * c

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["species"] = list(self.species)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelSpec:
        return cls(**{**d, "species": tuple(d["species"]), "hidden": tuple(d["hidden"])})


def _z(symbol_or_z: str | int) -> int:
    if isinstance(symbol_or_z, str):
        if symbol_or_z not in atomic_numbers:
            raise ValueError(f"unknown element symbol {symbol_or_z!r}")
        return atomic_numbers[symbol_or_z]
    z = int(symbol_or_z)
    if not 0 < z < _MAX_Z:
        raise ValueError(f"atomic number must be in 1..118, got {z}")
    return z


# ------------------------------------------------------------------------------------ pair basis
def bessel_basis(r: torch.Tensor, cutoff: float, n_radial: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``B_n(r)`` and ``dB_n/dr`` (``[P, n_radial]``, Å⁻¹ and Å⁻²), ``n = 1..n_radial``.

    ``B_n = sqrt(2/r_c) sin(nπr/r_c)/r · f_c(r/r_c)``, ``f_c(d) = 1 − 28d⁶ + 48d⁷ − 21d⁸``.
    """
    n = torch.arange(1, n_radial + 1, dtype=r.dtype, device=r.device)
    k = n * (math.pi / cutoff)  # [N]
    kr = r[:, None] * k
    inv_r = 1.0 / r[:, None]
    sin, cos = torch.sin(kr), torch.cos(kr)
    d = (r / cutoff)[:, None]
    d2 = d * d
    d5 = d2 * d2 * d
    d6 = d5 * d
    fc = 1.0 - 28.0 * d6 + 48.0 * d6 * d - 21.0 * d6 * d2
    dfc = (-168.0 * d5 + 336.0 * d6 - 168.0 * d6 * d) / cutoff
    norm = math.sqrt(2.0 / cutoff)
    s = sin * inv_r  # sin(kr)/r
    ds = (k * cos - s) * inv_r  # d/dr [sin(kr)/r]
    return norm * s * fc, norm * (ds * fc + s * dfc)


def angular_tables(lmax: int) -> dict[str, torch.Tensor]:
    """Index tables between the compact monomials ``Y_k`` and full Cartesian powers ``û^{⊗l}``.

    Full powers are laid out ``[1, u_a, u_a u_b, u_a u_b u_c]`` (1 + 3 + 9 + 27 columns).  Returns

    * ``rep [K]``: one full column per monomial ``k`` (ordered by rank, then descending
      exponents of x, y: offsets 0, 1, 4, 10);
    * ``coef [K]``: ``sqrt(l!/(a!b!c!))``, so that ``Y_k = coef_k · û^α``;
    * ``exps [K, 3]``: the exponents ``(a, b, c)`` of monomial ``k``;
    * ``sym [F]`` and ``weight [F]``: for every full column ``f`` its monomial and ``1/coef``, so that
      ``H_f = h_{sym(f)} · weight_f`` is the symmetric tensor with ``Σ_f H_f û^{⊗l}_f = Σ_k h_k Y_k``.
    """
    full = [()]
    for deg in range(1, lmax + 1):
        full += list(itertools.product(range(3), repeat=deg))
    exps = [
        (a, b, deg - a - b)
        for deg in range(lmax + 1)
        for a in range(deg, -1, -1)
        for b in range(deg - a, -1, -1)
    ]

    def exponents(idx: tuple[int, ...]) -> tuple[int, int, int]:
        return (idx.count(0), idx.count(1), idx.count(2))

    rep = [next(f for f, idx in enumerate(full) if exponents(idx) == e) for e in exps]
    coef = [math.sqrt(math.factorial(sum(e)) / math.prod(math.factorial(x) for x in e)) for e in exps]
    sym = [exps.index(exponents(idx)) for idx in full]
    return {
        "exps": torch.tensor(exps, dtype=torch.int64).reshape(-1, 3),
        "rep": torch.tensor(rep, dtype=torch.int64),
        "coef": torch.tensor(coef, dtype=torch.float64),
        "sym": torch.tensor(sym, dtype=torch.int64),
        "weight": torch.tensor([1.0 / coef[k] for k in sym], dtype=torch.float64),
    }


def full_powers(u: torch.Tensor, lmax: int) -> torch.Tensor:
    """``[P, 1 + 3 + … + 3^lmax]``: ``1, û, û⊗û, û⊗û⊗û`` flattened (row-major)."""
    cols = [torch.ones_like(u[:, :1])]
    cur = u.new_ones((u.shape[0], 1))
    for _ in range(lmax):
        cur = (cur[:, :, None] * u[:, None, :]).reshape(u.shape[0], 3 * cur.shape[1])
        cols.append(cur)
    return torch.cat(cols, dim=1)


def polynomial_gradient(h_full: torch.Tensor, u: torch.Tensor, lmax: int) -> torch.Tensor:
    """``∇_û Σ_f H_f û^{⊗l}_f`` ``[P, K, 3]`` for symmetric full tensors ``h_full`` ``[P, K, F]``:
    ``H_1 + 2 H_2·û + 3 (H_3·û)·û``."""
    p, k = h_full.shape[:2]
    grad = h_full.new_zeros((p, k, 3))
    if lmax >= 1:
        grad = grad + h_full[..., 1:4]
    if lmax >= 2:
        h2 = h_full[..., 4:13].reshape(p, k, 3, 3)
        grad = grad + 2.0 * (h2 * u[:, None, None, :]).sum(-1)
    if lmax >= 3:
        h3 = h_full[..., 13:40].reshape(p, k, 3, 3, 3)
        grad = grad + 3.0 * ((h3 * u[:, None, None, None, :]).sum(-1) * u[:, None, None, :]).sum(-1)
    return grad


def _sym_outer(v: torch.Tensor) -> torch.Tensor:
    """``v ⊗ v`` ``[..., 6]`` in the scaled symmetric basis ``[xx, √2xy, √2xz, yy, √2yz, zz]`` of the
    rank-2 moments, so ``⟨v⊗v, M_2⟩ = v·M_2·v`` is a plain dot product."""
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    r2 = 2.0**0.5
    return torch.stack([x * x, r2 * x * y, r2 * x * z, y * y, r2 * y * z, z * z], dim=-1)


def _outer_sum(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """``Σ_k p[:, c, k, :] q[:, e, k, :]`` → ``[K, C, C, n]`` for ``p, q`` ``[K, C, d, n]`` (atoms
    innermost), one ``[K, C, C, n]`` term per rank component ``k`` (no ``d``-fold temporary in eager
    mode; the compiler fuses the loop)."""
    out = p[:, :, None, 0] * q[:, None, :, 0]
    for k in range(1, p.shape[2]):
        out = out + p[:, :, None, k] * q[:, None, :, k]
    return out


def _contract_channels(s: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """``Σ_e s[:, c, e, :] m[:, e, k, :]`` → ``[K, C, d, n]`` for ``s`` ``[K, C, C, n]`` and ``m``
    ``[K, C, d, n]`` (one ``[K, C, n]`` product per ``e``)."""
    out = s[:, :, 0, None] * m[:, None, 0]
    for e in range(1, s.shape[2]):
        out = out + s[:, :, e, None] * m[:, None, e]
    return out


# ------------------------------------------------------------------------------------ the module
#: float32 bytes of the stored pair basis per pair: b, db (N = 8 each), y (10), u (3), 1/r, slot.
_BASIS_BYTES_PER_PAIR = 4 * (8 + 8 + 10 + 3 + 1) + 8


class PairBasis:
    """The per-pair basis of a model, recomputed from ``rij`` chunk by chunk instead of stored.

    Million-atom domains (tens of millions of pairs) would otherwise keep ~130 bytes per pair
    between the moment pass and the force pass; recomputing costs one more Bessel/monomial
    evaluation per pair.
    """

    def __init__(self, model: MomentPotential, rij: torch.Tensor, slot: torch.Tensor) -> None:
        self.model, self.rij, self.slot = model, rij, slot

    @property
    def n_pairs(self) -> int:
        return int(self.rij.shape[0])

    def part(self, start: int, stop: int) -> tuple[torch.Tensor, ...]:
        """``(slot, b, db, y, u, inv_r)`` of pairs ``start:stop``."""
        return (self.slot[start:stop], *self.model.pair_basis(self.rij[start:stop]))


class SlotPairs(NamedTuple):
    """The pairs for the C++ force pass: ``slot`` ``[P]``, ``rij`` ``[P, 3]`` and the moment pass's
    per-pair basis (``[P, 2N + 4 n_ang + 4]``, ~250 bytes per pair), or an empty ``cache`` above
    :attr:`MomentPotential.basis_memory`, when the force pass recomputes it from ``rij``."""

    slot: torch.Tensor
    rij: torch.Tensor
    cache: torch.Tensor  # the moment pass's per-pair basis, or empty (recomputed)


class MomentPotential(Potential):
    """Cartesian-moment ML potential with ``K`` stacked members (see the module docstring).

    ``forward`` returns the member mean; a :class:`~ssehpc.ml.committee.Committee` adds the
    per-member forces.  Float32 by default (``.double()`` for float64); device-agnostic.

    Args:
        spec: architecture (:class:`ModelSpec`).
        seed: seed of the weight initialisation (member ``m`` draws from ``seed + m``).
    """

    half_list = False
    hops = 0
    #: Per-pair gradient entries (pairs × N × K × n_ang) processed at once in the force pass.
    pair_chunk: int = 1 << 20
    #: Atoms whose per-atom network runs at once in CPU inference: bounds memory on million-atom
    #: domains, and keeps the ``[K, C, C, n]`` gram intermediates in a core's L2 cache (1,536
    #: atoms, K = 4, one thread: the compiled force call 18.8 → 17.3 ms with 384 instead of
    #: 8,192; K = 1 unchanged; cells below 384 atoms run in one block as before).
    atom_chunk: int = 384
    #: The same on GPUs (bounds memory only; larger blocks keep kernels busy).
    atom_chunk_gpu: int = 8192
    #: Pairs per thread at least before the C++ pair kernels use a second thread (fork/join ~10 µs).
    cpp_min_pairs: int = 16384
    #: Bytes the stored pair basis may take (eager inference and the C++ kernels); above it the
    #: basis is recomputed in the force pass instead of kept (:class:`PairBasis`, :class:`SlotPairs`).
    basis_memory: int = 512 << 20

    def __init__(self, spec: ModelSpec, *, seed: int = 0) -> None:
        super().__init__()
        self.spec = spec
        self.cutoff = float(spec.cutoff)
        self.species = spec.species
        self.metadata: dict[str, Any] = {}
        self._checked_species: torch.Tensor | None = None
        self._checked_types: torch.Tensor | None = None
        self._compiled: dict[str, Any] | None = None
        self._cpp: Any = None  # the C++ pair kernels (compile_inference), or None
        k, t, c, f = spec.n_members, spec.n_types, spec.channels, spec.n_features
        # Unknown elements map far out of range, so an unchecked one fails loudly in any gather.
        type_of_z = torch.full((_MAX_Z,), _UNKNOWN, dtype=torch.int64)
        for i, z in enumerate(spec.species):
            type_of_z[z] = i
        self.register_buffer("type_of_z", type_of_z, persistent=False)
        self.register_buffer("z_of_type", torch.tensor(spec.species, dtype=torch.int64), persistent=False)
        for name, table in angular_tables(spec.lmax).items():
            self.register_buffer(f"ang_{name}", table, persistent=False)
        # Gram matrices: upper triangle c <= d, as flat indices into [C, C].
        iu = torch.triu_indices(c, c)
        self.register_buffer("triu", iu[0] * c + iu[1], persistent=False)
        self._rank_slices = [
            (r * (r + 1) * (r + 2) // 6, (r + 1) * (r + 2) // 2) for r in range(spec.lmax + 1)
        ]

        na = t * spec.n_radial
        # Learned parameters, all stacked over members.
        tc = t if spec.mixing == "pair" else 1
        self.mix = nn.ParameterList(
            [nn.Parameter(torch.empty(k, tc, na, spec.mixed_channels(r))) for r in range(spec.lmax + 1)]
        )
        widths = [f, *spec.hidden]
        self.weights = nn.ParameterList(
            [nn.Parameter(torch.empty(k, a, b)) for a, b in itertools.pairwise(widths)]
        )
        self.bias0 = nn.Parameter(torch.zeros(k, t, spec.hidden[0]))
        self.biases = nn.ParameterList([nn.Parameter(torch.zeros(k, 1, h)) for h in spec.hidden[1:]])
        self.readout = nn.Parameter(torch.empty(k, spec.hidden[-1], t))
        # Set by training (data statistics); stacked over members.
        self.register_buffer("feature_mean", torch.zeros(k, f))
        self.register_buffer("feature_std", torch.ones(k, f))
        self.register_buffer("energy_ref", torch.zeros(k, t))
        self.register_buffer("energy_scale", torch.ones(k))
        self.reset_parameters(seed)

    # ------------------------------------------------------------------ setup
    @property
    def n_members(self) -> int:
        return self.spec.n_members

    @torch.no_grad()
    def reset_parameters(self, seed: int = 0) -> None:
        """Random weights (member ``m`` from ``torch.Generator().manual_seed(seed + m)``)."""
        for m in range(self.n_members):
            g = torch.Generator().manual_seed(int(seed) + m)

            def draw(p: torch.Tensor, fan_in: int, gain: float = 1.0, g: torch.Generator = g) -> None:
                p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * (gain / math.sqrt(fan_in)))

            for w in self.mix:
                draw(w[m], self.spec.n_radial)
            for w in self.weights:
                draw(w[m], w.shape[1], gain=1.7)  # SiLU gain
            draw(self.readout[m], self.readout.shape[1], gain=0.1)
            self.bias0[m].zero_()
            for b in self.biases:
                b[m].zero_()

    # ------------------------------------------------------------------ per-atom network
    @property
    def dtype(self) -> torch.dtype:
        return self.readout.dtype

    def rank_blocks(self, a: torch.Tensor) -> list[torch.Tensor]:
        """Atomic moments ``a`` ``[n, T·N, n_ang]`` split by rank into GEMM-ready ``[n·d_l, T·N]``."""
        n, na, _ = a.shape
        return [a[:, :, off : off + d].transpose(1, 2).reshape(n * d, na) for off, d in self._rank_slices]

    def features(self, a: torch.Tensor, centre_type: torch.Tensor) -> torch.Tensor:
        """Invariants ``[K, n, F]`` of atomic moments ``a`` ``[n, T·N, n_ang]`` (for statistics)."""
        kk = self.n_members
        return self.invariants([b.expand(kk, -1, -1) for b in self.rank_blocks(a)], centre_type)

    def invariants(self, blocks: list[torch.Tensor], centre_type: torch.Tensor) -> torch.Tensor:
        """Rotation-invariant features ``[K, n, F]`` from the rank blocks of the atomic moments
        (``[K, n·d_l, T·N]`` each; the same for every member — the member axis is there so that one
        backward gives every member's ``∂E_m/∂A``)."""
        spec = self.spec
        n = centre_type.shape[0]
        kk = blocks[0].shape[0]
        t = spec.n_types
        moments = []
        for rank, (_, d) in enumerate(self._rank_slices):
            c = spec.mixed_channels(rank)
            w = self.mix[rank]  # [K, T_centre or 1, T·N, C_l]
            if spec.mixing == "neighbour":
                m = torch.bmm(blocks[rank], w[:, 0]).view(kk, n, d, c)
            else:  # mix for every centre element in one GEMM, then pick the centre's
                w = w.permute(0, 2, 1, 3).reshape(kk, -1, t * c)
                m_all = torch.bmm(blocks[rank], w).view(kk, n, d, t, c)
                m = m_all.gather(3, centre_type.view(1, n, 1, 1, 1).expand(kk, n, d, 1, c)).squeeze(3)
            moments.append(m.transpose(2, 3))  # [K, n, C_l, d]
        c = spec.channels
        feats = [moments[0][..., 0]]
        if spec.contraction == "gram":
            # [K, n, C, C] products per atom: tiny GEMMs in eager mode, fused loops when compiled
            fused = self._compiled is not None
            for ml in moments[1:]:
                gram = (
                    (ml[:, :, :, None, :] * ml[:, :, None, :, :]).sum(-1)
                    if fused
                    else ml @ ml.transpose(-1, -2)
                )
                feats.append(gram.flatten(-2).index_select(-1, self.triu))  # M_l^c · M_l^d, c <= d
            if spec.four_body:
                o6, m2 = _sym_outer(moments[1]), moments[2]
                four = (
                    (o6[:, :, :, None, :] * m2[:, :, None, :, :]).sum(-1)
                    if fused
                    else o6 @ m2.transpose(-1, -2)
                )
                feats.append(four.flatten(-2))
        else:
            feats.extend(
                (ml[:, :, :c] * ml[:, :, c : 2 * c]).sum(-1) for ml in moments[1:]
            )  # M^{c,a}·M^{c,b}
            if spec.four_body:
                feats.append((_sym_outer(moments[1][:, :, :c]) * moments[2][:, :, 2 * c :]).sum(-1))
        return torch.cat(feats, dim=-1)

    def atomic_energies(self, blocks: list[torch.Tensor], centre_type: torch.Tensor) -> torch.Tensor:
        """``[K, n]`` eV: ``E_i = e_{z_i} + s · MLP(x_i, z_i)``."""
        x = (self.invariants(blocks, centre_type) - self.feature_mean[:, None, :]) / self.feature_std[
            :, None, :
        ]
        h = torch.nn.functional.silu(torch.bmm(x, self.weights[0]) + self.bias0[:, centre_type])
        for w, b in zip(self.weights[1:], self.biases, strict=True):
            h = torch.nn.functional.silu(torch.baddbmm(b, h, w))
        out = torch.bmm(h, self.readout)  # [K, n, T]
        k = out.shape[0]
        e = out.gather(2, centre_type[None, :, None].expand(k, -1, 1)).squeeze(2)
        return self.energy_ref[:, centre_type] + self.energy_scale[:, None] * e

    # ------------------------------------------------------------------ core evaluation
    def pair_basis(self, rij: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(b, db, y, u, inv_r)`` of pairs ``rij`` ``[P, 3]``: Bessel radial functions and their
        derivatives ``[P, N]``, Cartesian angular monomials ``[P, n_ang]``, ``r̂`` ``[P, 3]``, ``1/r``."""
        spec = self.spec
        r = torch.linalg.vector_norm(rij, dim=1)
        inv_r = 1.0 / r
        u = rij * inv_r[:, None]
        if spec.radial_floor > 0:  # frozen below the floor: the core repulsion alone acts there
            b, db = bessel_basis(r.clamp(min=spec.radial_floor), self.cutoff, spec.n_radial)
            db = db.masked_fill((r < spec.radial_floor)[:, None], 0.0)
        else:
            b, db = bessel_basis(r, self.cutoff, spec.n_radial)
        y = full_powers(u, spec.lmax).index_select(1, self.ang_rep) * self.ang_coef.to(u.dtype)
        return b, db, y, u, inv_r

    def atomic_moments(
        self,
        rij: torch.Tensor,
        i: torch.Tensor,
        j: torch.Tensor,
        types: torch.Tensor,
        n_centres: int,
        *,
        keep_basis: bool = True,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | PairBasis]:
        """``A`` ``[n_centres, T·N, n_ang]`` and the per-pair basis for the force pass: the tensors
        ``(slot, b, db, y, u, inv_r)``, or with ``keep_basis=False`` a :class:`PairBasis` that
        recomputes them chunk by chunk (≈ 130 bytes per pair less; for million-atom domains)."""
        spec = self.spec
        slot = i * spec.n_types + types[j]
        width = spec.n_radial * spec.n_angular
        a = torch.zeros((n_centres * spec.n_types, width), dtype=rij.dtype, device=rij.device)
        n_pairs = rij.shape[0]
        step = max(1, self.pair_chunk // width)
        if not keep_basis and not torch.compiler.is_compiling():
            for s in range(0, n_pairs, step):
                b, _, y, _, _ = self.pair_basis(rij[s : s + step])
                a.index_add_(0, slot[s : s + step], (b[:, :, None] * y[:, None, :]).reshape(-1, width))
            basis: tuple[torch.Tensor, ...] | PairBasis = PairBasis(self, rij, slot)
        else:
            b, db, y, u, inv_r = self.pair_basis(rij)
            if torch.compiler.is_compiling() or n_pairs <= step:
                # (compiled: the outer product is fused into the scatter, nothing [P, N·n_ang] is stored)
                a.index_add_(0, slot, (b[:, :, None] * y[:, None, :]).reshape(n_pairs, width))
            else:  # eager, many pairs: bound the [P, N·n_ang] temporary
                for s in range(0, n_pairs, step):
                    e = s + step
                    a.index_add_(0, slot[s:e], (b[s:e, :, None] * y[s:e, None, :]).reshape(-1, width))
            basis = (slot, b, db, y, u, inv_r)
        a = (a * (1.0 / spec.avg_neighbors)).view(n_centres, spec.n_types * spec.n_radial, spec.n_angular)
        return a, basis

    def evaluate(
        self,
        rij: torch.Tensor,
        i: torch.Tensor,
        j: torch.Tensor,
        types: torch.Tensor,
        n_centres: int,
        n_rows: int,
        *,
        create_graph: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-member atomic energies, forces and pair gradients.

        Args:
            rij: ``[P, 3]`` Å, ``x_j − x_i`` for pairs with ``r_ij < r_c`` (model dtype).
            i: ``[P]`` centre rows, ``< n_centres``.
            j: ``[P]`` neighbour rows, ``< n_rows``.
            types: ``[n_rows]`` type index (``type_of_z[species]``).
            n_centres: rows that get an energy (owned atoms).
            n_rows: rows that can receive a force (owned + ghost, or owners when ``j`` is
                already mapped to periodic owners as in training).
            create_graph: keep the graph of the forces (training).

        Returns:
            ``energies [K, n_centres]`` eV, ``forces [n_rows, K, 3]`` eV/Å and
            ``g = ∂E/∂r_ij`` ``[P, K, 3]`` eV/Å (virial ``W = −Σ r_ij ⊗ g``).
        """
        e, slots, _, basis, gradient = self._energies_and_gradients(
            rij, i, j, types, n_centres, create_graph, members=True, mean=False
        )
        forces, g = self.pair_forces(slots, basis, i, j, n_rows, gradient=gradient)
        return self._add_core(e, forces, g, rij, types, i, j)

    def evaluate_mean(
        self,
        rij: torch.Tensor,
        i: torch.Tensor,
        j: torch.Tensor,
        types: torch.Tensor,
        n_centres: int,
        n_rows: int,
        *,
        member_forces: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Inference: per-member energies, the member-mean forces, and member forces on request.

        The pair gradient ``g_ij`` is linear in ``G = ∂E/∂A``, so the mean force of K members is
        the force of the mean ``G``: one pair pass whatever K is (only the per-atom network runs K
        times).  Per-member forces (for the force deviation) cost K more pair-gradient columns and
        are computed only when ``member_forces`` is set (on frames that are written).  The mean
        force never depends on that flag, so a trajectory does not depend on the write interval.

        Returns:
            ``energies [K, n_centres]`` eV, mean ``forces [n_rows, 3]`` eV/Å, mean
            ``g [P, 3]`` eV/Å and ``member_forces [n_rows, K, 3]`` eV/Å or None.
        """
        kk = self.spec.n_members
        e, slots, mean_slots, basis, gradient = self._energies_and_gradients(
            rij, i, j, types, n_centres, False, members=member_forces
        )
        forces, g = self.pair_forces(mean_slots, basis, i, j, n_rows, gradient=gradient)
        e, forces, g = self._add_core(e, forces, g, rij, types, i, j)
        members = None
        if member_forces:
            if kk == 1:
                members = forces
            else:
                members, g_members = self.pair_forces(slots, basis, i, j, n_rows, gradient=gradient)
                _, members, _ = self._add_core(None, members, g_members, rij, types, i, j)
        return e, forces[:, 0], g[:, 0], members

    def _energies_and_gradients(
        self,
        rij: torch.Tensor,
        i: torch.Tensor,
        j: torch.Tensor,
        types: torch.Tensor,
        n_centres: int,
        create_graph: bool,
        *,
        members: bool = True,
        mean: bool = True,
    ) -> tuple[torch.Tensor, Any, Any, tuple[torch.Tensor, ...], Any]:
        """``E_i [K, n]``; ``∂E/∂A`` per slot and member (:meth:`slot_gradients`, ``[n·T, N·K·n_ang]``;
        None unless ``members``); its member mean (``[n·T, N·n_ang]``; None unless ``mean``); the
        pair basis; the pair-gradient kernel.

        The mean is computed the same way whether ``members`` is set or not, so MD forces never
        depend on whether member forces were asked for."""
        centre_type = types[:n_centres]
        fast = (
            self._compiled if (self._compiled and not create_graph and not torch.is_grad_enabled()) else None
        )
        if fast is not None:
            a, basis = self._moments_inference(rij, i, j, types, n_centres)
            gradient = fast["pair_gradient"]
            network = fast["energy_and_slots"]
        else:
            keep = create_graph or rij.shape[0] * _BASIS_BYTES_PER_PAIR <= self.basis_memory
            with torch.no_grad():
                a, basis = self.atomic_moments(rij.detach(), i, j, types, n_centres, keep_basis=keep)
            network, gradient = self._energy_and_slots, None
        # Large domains: the per-atom network (and its autograd graph, ~30 kB per atom for K = 4)
        # in blocks of atoms; slots are atom-major, so the gradients concatenate in order.
        chunk = self.atom_chunk if a.device.type == "cpu" else self.atom_chunk_gpu
        step = n_centres if create_graph else max(1, chunk)
        parts = [
            network(
                a[s : s + step],
                centre_type[s : s + step],
                members=members,
                mean=mean,
                create_graph=create_graph,
            )
            for s in range(0, max(n_centres, 1), step)
        ]
        if len(parts) == 1:
            e, slots, mean_slots = parts[0]
            return e, slots, mean_slots, basis, gradient

        def join(k: int) -> torch.Tensor | None:
            return None if parts[0][k] is None else torch.cat([p[k] for p in parts])

        return torch.cat([p[0] for p in parts], dim=1), join(1), join(2), basis, gradient

    def _energy_and_slots(
        self,
        a: torch.Tensor,
        centre_type: torch.Tensor,
        *,
        members: bool = True,
        mean: bool = True,
        create_graph: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """``E_i [K, n]``, the slot gradients per member (None unless ``members``) and of the member
        mean (None unless ``mean``): the hand-written backward for gram models (inference),
        autograd otherwise."""
        kk = self.spec.n_members
        if not create_graph and self.spec.contraction == "gram":
            with torch.no_grad():
                e, grads, mean_grads = self._energy_and_grad_manual(a, centre_type, members=members)
        else:
            if create_graph:
                e, grads = self._energy_and_grad_autograd(a, centre_type, True)
            elif self._compiled is not None:  # compiling a non-gram model: vjp, no autograd.grad
                e, grads = self._energy_and_grad(a, centre_type)
            else:
                e, grads = self._energy_and_grad_autograd(a, centre_type, False)
            mean_grads = grads if kk == 1 else [gr.mean(0, keepdim=True) for gr in grads]
        mean_slots = self.slot_gradients(mean_grads) if mean else None
        if not members:
            return e, None, mean_slots
        slots = mean_slots if kk == 1 and mean_slots is not None else self.slot_gradients(grads)
        return e, slots, mean_slots

    def _energy_and_grad_autograd(
        self, a: torch.Tensor, centre_type: torch.Tensor, create_graph: bool
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``E_i [K, n]`` and ``∂E/∂A`` per rank (``[K, T·N, d_l, n]`` views) by
        ``torch.autograd.grad`` (eager; training keeps the graph)."""
        kk = self.spec.n_members
        with torch.no_grad():
            blocks = self.rank_blocks(a)
        with torch.enable_grad():
            blocks = [b.expand(kk, -1, -1).requires_grad_(True) for b in blocks]
            e = self.atomic_energies(blocks, centre_type)
            grads = torch.autograd.grad(e.sum(), blocks, create_graph=create_graph)
        return (e if create_graph else e.detach()), self._native_layout(list(grads), a.shape[0])

    def _native_layout(self, grads: list[torch.Tensor], n: int) -> list[torch.Tensor]:
        """Rank-block gradients ``[K, n·d_l, T·N]`` as ``[K, T·N, d_l, n]`` views."""
        na = self.spec.n_types * self.spec.n_radial
        return [
            gr.view(gr.shape[0], n, d, na).permute(0, 3, 2, 1)
            for gr, (_, d) in zip(grads, self._rank_slices, strict=True)
        ]

    def _energy_and_grad_manual(
        self, a: torch.Tensor, centre_type: torch.Tensor, *, members: bool = True
    ) -> tuple[torch.Tensor, list[torch.Tensor] | None, list[torch.Tensor]]:
        """``E_i [K, n]``, ``∂E/∂A`` per rank and member (``[K, T·N, d_l, n]``; None unless
        ``members``) and its member mean (``[1, T·N, d_l, n]``, the sum over members done inside one
        GEMM), with the backward pass written out (inference, ``contraction="gram"``).

        Everything is laid out with the atoms innermost (``[K, C, d, n]``, ``[K, H, n]``), so the
        gram products and their gradients are element-wise over atoms (vectorised, in eager mode
        and compiled) and the mixing and MLP layers are plain GEMMs; autograd and the
        ``[C, d]``-per-atom layout spent most of the committee's time in tiny reductions and the
        gather/scatter of the upper triangles.  Equal to :meth:`_energy_and_grad_autograd` to
        round-off (tested).
        """
        spec = self.spec
        kk, t, c = self.n_members, spec.n_types, spec.channels
        n, na = a.shape[0], a.shape[1]
        at = a.permute(1, 2, 0).contiguous()  # [T·N, n_ang, n]
        pair = spec.mixing == "pair"
        onehot = None
        if pair:
            onehot = torch.nn.functional.one_hot(centre_type, t).t().to(a.dtype)  # [T, n]
        # ---- forward: moments M_l [K, C, d, n]
        moments, mix_w = [], []
        for rank, (off, d) in enumerate(self._rank_slices):
            w = self.mix[rank]  # [K, T_centre or 1, T·N, C]
            x_l = at[:, off : off + d, :].reshape(na, d * n)
            if pair:
                w_all = w.permute(0, 2, 1, 3).reshape(kk, na, t * c)  # [K, T·N, T·C]
                m_all = torch.matmul(w_all.transpose(1, 2), x_l).view(kk, t, c, d, n)
                m = (m_all * onehot[None, :, None, None, :]).sum(1)
                mix_w.append(w_all)
            else:
                m = torch.matmul(w[:, 0].transpose(1, 2), x_l).view(kk, c, d, n)
                mix_w.append(w[:, 0])
            moments.append(m)
        feats = [moments[0][:, :, 0]]
        feats += [_outer_sum(m, m).view(kk, c * c, n).index_select(1, self.triu) for m in moments[1:]]
        if spec.four_body:
            m1, m2 = moments[1], moments[2]
            x, y, z = m1[:, :, 0], m1[:, :, 1], m1[:, :, 2]
            r2 = 2.0**0.5
            o6 = torch.stack([x * x, r2 * x * y, r2 * x * z, y * y, r2 * y * z, z * z], dim=2)
            feats.append(_outer_sum(o6, m2).view(kk, c * c, n))
        inv_std = 1.0 / self.feature_std[:, :, None]
        h = (torch.cat(feats, dim=1) - self.feature_mean[:, :, None]) * inv_std  # [K, F, n]
        pre = []
        bias = self.bias0.transpose(1, 2).index_select(2, centre_type)  # [K, H, n]
        for layer, w in enumerate(self.weights):
            zl = torch.baddbmm(bias, w.transpose(1, 2), h)
            pre.append(zl)
            h = torch.nn.functional.silu(zl)
            if layer + 1 < len(self.weights):
                bias = self.biases[layer].transpose(1, 2)
        out = torch.bmm(self.readout.transpose(1, 2), h)  # [K, T, n]
        e = out.gather(1, centre_type.view(1, 1, n).expand(kk, 1, n)).squeeze(1)
        scale = self.energy_scale[:, None]
        energies = self.energy_ref[:, centre_type] + scale * e
        # ---- backward: dE_i/dh, through the MLP to the features
        dh = self.readout.index_select(2, centre_type) * scale[:, :, None]  # [K, H, n]
        for layer in range(len(self.weights) - 1, -1, -1):
            zl = pre[layer]
            sig = torch.sigmoid(zl)
            dz = dh * sig * (1.0 + zl * (1.0 - sig))
            dh = torch.bmm(self.weights[layer], dz)  # [K, F or H_prev, n]
        df = dh * inv_std
        # ---- to the moments
        grads_m = [df[:, :c, None, :]]
        off = c
        n_upper = self.triu.shape[0]
        for m in moments[1:]:
            dg = df.new_zeros((kk, c * c, n)).index_copy(1, self.triu, df[:, off : off + n_upper])
            off += n_upper
            dg = dg.view(kk, c, c, n)
            sym = dg + dg.transpose(1, 2)
            grads_m.append(_contract_channels(sym, m))  # Σ_e S_ce M_e
        if spec.four_body:
            d4 = df[:, off : off + c * c].view(kk, c, c, n)
            d_o6 = _contract_channels(d4, m2)  # [K, C, 6, n]
            grads_m[2] = grads_m[2] + _contract_channels(d4.transpose(1, 2), o6)
            q = [d_o6[:, :, k] for k in range(6)]
            dx = 2.0 * x * q[0] + r2 * (y * q[1] + z * q[2])
            dy = 2.0 * y * q[3] + r2 * (x * q[1] + z * q[4])
            dz3 = 2.0 * z * q[5] + r2 * (x * q[2] + y * q[4])
            grads_m[1] = grads_m[1] + torch.stack([dx, dy, dz3], dim=2)
        # ---- to the atomic moments A: per member [K, T·N, d, n]; the mean as one GEMM over (K, C)
        grads, mean_grads = [], []
        for rank, (_, d) in enumerate(self._rank_slices):
            dm = grads_m[rank]
            if pair:
                dm = dm[:, None] * onehot[None, :, None, None, :]  # [K, T, C, d, n]
            cols = dm.shape[1] * (dm.shape[2] if pair else 1)
            w = mix_w[rank]  # [K, T·N, C or T·C]
            dm = dm.reshape(kk, cols, d * n)
            if members or kk == 1:
                grads.append(torch.bmm(w, dm).view(kk, na, d, n))
            if kk == 1:
                mean_grads.append(grads[-1])
            else:
                w_cat = w.permute(1, 0, 2).reshape(na, kk * cols) * (1.0 / kk)
                mean_grads.append(torch.mm(w_cat, dm.reshape(kk * cols, d * n)).view(1, na, d, n))
        return energies, (grads if members else None), mean_grads

    def _add_core(
        self,
        e: torch.Tensor | None,
        forces: torch.Tensor,
        g: torch.Tensor,
        rij: torch.Tensor,
        types: torch.Tensor,
        i: torch.Tensor,
        j: torch.Tensor,
    ) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
        """Add the ZBL core repulsion (the same for every member) to ``e``, ``forces`` and ``g``;
        evaluated on the (few) pairs closer than ``core_outer`` only."""
        if self.spec.core_outer <= 0:
            return e, forces, g
        r2 = (rij * rij).sum(1)
        close = torch.nonzero(r2 < self.spec.core_outer**2).squeeze(1)
        if close.numel() == 0:
            return e, forces, g
        ic, jc, rc = i[close], j[close], rij[close]
        inv_r = torch.rsqrt(r2[close])
        u = rc * inv_r[:, None]
        phi, dphi = self.core_repulsion(inv_r, types[ic], types[jc])
        # Each physical pair appears twice in a full list (once per centre): half each.
        if e is not None:
            e = e + torch.zeros_like(e[0]).index_add(0, ic, 0.5 * phi)[None]
        g_core = (0.5 * dphi)[:, None] * u
        forces = (
            forces
            + (torch.zeros_like(forces[:, 0]).index_add(0, ic, g_core).index_add(0, jc, -g_core))[:, None]
        )
        g = g.index_add(0, close, g_core[:, None, :].expand(-1, g.shape[1], -1))
        return e, forces, g

    def core_repulsion(
        self, inv_r: torch.Tensor, type_i: torch.Tensor, type_j: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """ZBL repulsion switched off between ``core_inner`` and ``core_outer``: ``φ`` (eV) and
        ``dφ/dr`` (eV/Å) per pair.

        .. math::

            φ(r) = \\frac{Z_i Z_j e^2}{4πε_0 r} \\sum_k c_k e^{-b_k r/a} \\; S(r),\\quad
            a = \\frac{0.46850}{Z_i^{0.23} + Z_j^{0.23}},\\quad S = 1 − x^3(10 − 15x + 6x^2)

        with ``x = (r − r_in)/(r_out − r_in)`` clamped to [0, 1] (``S`` is C² at both ends).
        """
        spec = self.spec
        z = self.z_of_type.to(inv_r.dtype)
        zi, zj = z[type_i], z[type_j]
        r = 1.0 / inv_r
        a = 0.46850 / (zi**0.23 + zj**0.23)
        c = torch.tensor([0.18175, 0.50986, 0.28022, 0.02817], dtype=r.dtype, device=r.device)
        b = torch.tensor([3.19980, 0.94229, 0.40290, 0.20162], dtype=r.dtype, device=r.device)
        ex = c * torch.exp(-b * (r / a)[:, None])  # [P, 4]
        screen = ex.sum(1)
        dscreen = -(ex * b).sum(1) / a
        coulomb = 14.399645 * zi * zj * inv_r
        zbl = coulomb * screen
        dzbl = coulomb * (dscreen - screen * inv_r)
        x = ((r - spec.core_inner) / (spec.core_outer - spec.core_inner)).clamp(0.0, 1.0)
        sw = 1.0 - x**3 * (10.0 - 15.0 * x + 6.0 * x * x)
        dsw = -30.0 * x * x * (1.0 - x) ** 2 / (spec.core_outer - spec.core_inner)
        return zbl * sw, dzbl * sw + zbl * dsw

    def pair_forces(
        self,
        grad_slots: torch.Tensor,
        basis: tuple[torch.Tensor, ...],
        i: torch.Tensor,
        j: torch.Tensor,
        n_rows: int,
        *,
        gradient: Any = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Forces ``[n_rows, K, 3]`` (``F_j −= g_ij``, ``F_i += g_ij``) and ``g`` ``[P, K, 3]``.

        Pairs are processed in chunks of about :attr:`pair_chunk` per-pair gradient entries, so
        the ``[P, N, K·n_ang]`` intermediates stay in cache (CPU) / bounded in memory (GPU).
        ``grad_slots`` is ``∂E/∂A`` per slot (:meth:`slot_gradients`); ``gradient`` replaces
        :meth:`pair_gradient` (its compiled version).
        """
        if isinstance(basis, SlotPairs):  # the C++ kernels: one call
            return self._cpp.pair_forces(
                grad_slots.contiguous(),
                basis.rij,
                basis.slot,
                basis.cache,
                i,
                j,
                n_rows,
                *self._basis_args(),
                self.cpp_min_pairs,
            )
        gradient = gradient or self.pair_gradient
        per_pair = grad_slots.shape[1]
        step = max(1, self.pair_chunk // max(per_pair, 1))
        if isinstance(basis, PairBasis):
            g = torch.cat(
                [gradient(grad_slots, *basis.part(s, s + step)) for s in range(0, basis.n_pairs, step)]
            )
        elif basis[0].shape[0] <= step:
            g = gradient(grad_slots, *basis)
        else:
            g = torch.cat(
                [
                    gradient(grad_slots, *(x[s : s + step] for x in basis))
                    for s in range(0, basis[0].shape[0], step)
                ]
            )
        forces = torch.zeros((n_rows, g.shape[1], 3), dtype=g.dtype, device=g.device)
        return forces.index_add(0, i, g).index_add(0, j, -g), g

    def slot_gradients(self, grads: list[torch.Tensor]) -> torch.Tensor:
        """``G = ∂E/∂A`` from per-rank ``[K, T·N, d_l, n]`` to ``[n·T, N·K·n_ang]`` (one row per
        (atom, neighbour element) slot, laid out so that ``Σ_n`` is one batched product)."""
        spec = self.spec
        kk, t, nr, na = grads[0].shape[0], spec.n_types, spec.n_radial, spec.n_angular
        n = grads[0].shape[-1]
        per_rank = [
            gr.view(kk, t, nr, d, n).permute(4, 1, 2, 0, 3)
            for gr, (_, d) in zip(grads, self._rank_slices, strict=True)
        ]
        return torch.cat(per_rank, dim=-1).reshape(n * t, nr * kk * na)

    def pair_gradient(
        self,
        grad_slots: torch.Tensor,
        slot: torch.Tensor,
        b: torch.Tensor,
        db: torch.Tensor,
        y: torch.Tensor,
        u: torch.Tensor,
        inv_r: torch.Tensor,
    ) -> torch.Tensor:
        """``g = ∂E/∂r_ij`` ``[P, K, 3]`` from the slot gradients (module docstring)."""
        spec = self.spec
        nr, na = spec.n_radial, spec.n_angular
        kk = grad_slots.shape[1] // (nr * na)
        gp = grad_slots.index_select(0, slot).view(-1, nr, kk * na)
        bd = torch.stack([db, b], dim=1) * (1.0 / spec.avg_neighbors)  # [P, 2, N]
        if self._compiled:  # element-wise: the compiler fuses it into one loop (no tiny GEMMs)
            h = (bd[:, :, :, None] * gp[:, None, :, :]).sum(2).view(-1, 2, kk, na)
        else:
            h = torch.bmm(bd, gp).view(-1, 2, kk, na)  # Σ_n G B'_n and Σ_n G B_n
        # Radial part: û Σ_k Y_k Σ_n G B'_n.  Angular part: the gradient of the polynomial
        # Σ_k h_k Y_k(û), projected perpendicular to û and divided by r.
        radial = (h[:, 0] * y[:, None, :]).sum(-1)  # [P, K]
        h_full = h[:, 1].index_select(-1, self.ang_sym) * self.ang_weight.to(h.dtype)
        grad_u = polynomial_gradient(h_full, u, spec.lmax)
        along = (grad_u * u[:, None, :]).sum(-1)  # û·∇ = Σ_l l·p_l (Euler)
        return (radial - along * inv_r[:, None])[..., None] * u[:, None, :] + grad_u * inv_r[:, None, None]

    def _energy_and_grad(
        self, a: torch.Tensor, centre_type: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``E_i`` ``[K, n]`` and ``∂E/∂A`` per rank and member (``[K, T·N, d_l, n]`` views) through
        ``torch.func.vjp`` (``torch.compile``-able)."""
        kk = self.spec.n_members
        blocks = tuple(b.expand(kk, -1, -1) for b in self.rank_blocks(a))
        e, vjp = torch.func.vjp(lambda *x: self.atomic_energies(list(x), centre_type), *blocks)
        return e, self._native_layout(list(vjp(torch.ones_like(e))), a.shape[0])

    def compile_inference(self, *, pair_kernels: str = "auto", **options: Any) -> MomentPotential:
        """Use compiled kernels for inference (MD; training stays eager).

        The three stages (pair moments, per-atom energies with their gradient, pair forces) are
        compiled with dynamic shapes, so a changing number of pairs or atoms does not recompile.
        The first call compiles (tens of seconds on CPU); results equal the eager path to round-off.

        Args:
            pair_kernels: the two pair passes on CPU tensors: ``"cpp"`` the hand-written C++
                kernels (:mod:`ssehpc.ml.kernels`; an error if they cannot be built), ``"torch"``
                ``torch.compile``, ``"auto"`` C++ when it builds, else ``torch.compile``.  CUDA
                tensors always use ``torch.compile``.
            **options: passed to ``torch.compile`` (default ``dynamic=True``).

        Raises:
            ValueError: unknown ``pair_kernels``.
            RuntimeError: ``pair_kernels="cpp"`` and the extension cannot be built.
        """
        if pair_kernels not in ("auto", "cpp", "torch"):
            raise ValueError(f"pair_kernels must be 'auto', 'cpp' or 'torch', got {pair_kernels!r}")
        options = {"dynamic": True, **options}
        self._compiled = {
            "moments": torch.compile(self.atomic_moments, **options),
            "energy_and_slots": torch.compile(self._energy_and_slots, **options),
            "pair_gradient": torch.compile(self.pair_gradient, **options),
        }
        self._cpp = None
        if pair_kernels != "torch":
            from ssehpc.ml import kernels

            spec = self.spec
            if spec.n_radial > 32 or spec.n_members > 64 or spec.n_angular > 20:
                if pair_kernels == "cpp":
                    raise ValueError(
                        "the C++ pair kernels need n_radial <= 32, n_members <= 64 and lmax <= 3; got "
                        f"n_radial={spec.n_radial}, n_members={spec.n_members}, lmax={spec.lmax}"
                    )
            else:
                self._cpp = kernels.load()
                if self._cpp is None and pair_kernels == "cpp":
                    raise RuntimeError(f"the C++ pair kernels cannot be built: {kernels.build_error}")
        return self

    def _basis_args(self) -> tuple[Any, ...]:
        """``(n_radial, exps, coef, cutoff, radial_floor, avg_neighbors)`` for the C++ kernels."""
        spec = self.spec
        coef = self.ang_coef if self.ang_coef.dtype == torch.float64 else self.ang_coef.double()
        return (
            spec.n_radial,
            self.ang_exps,
            coef,
            self.cutoff,
            float(spec.radial_floor),
            float(spec.avg_neighbors),
        )

    def _moments_inference(
        self, rij: torch.Tensor, i: torch.Tensor, j: torch.Tensor, types: torch.Tensor, n_centres: int
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """Compiled :meth:`atomic_moments`: the C++ kernel on CPU when built, else inductor's."""
        if self._cpp is None or rij.is_cuda:
            return self._compiled["moments"](rij, i, j, types, n_centres)
        t = self.spec.n_types
        rij = rij.contiguous()
        nr, na = self.spec.n_radial, self.spec.n_angular
        keep = rij.shape[0] * (2 * nr + 4 * na + 4) * rij.element_size() <= self.basis_memory
        a, slot, cache = self._cpp.moments(
            rij, i, j, types, n_centres, t, *self._basis_args(), keep, self.cpp_min_pairs
        )
        return a.view(n_centres, t * nr, na), SlotPairs(slot, rij, cache)

    def _types(self, species: torch.Tensor) -> torch.Tensor:
        return self.type_of_z[species]

    def members_forward(
        self, local: LocalAtoms, nl: NeighborList, *, member_forces: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """On ``local`` (full neighbour list, ``i`` owned; ghost rows get no energy): per-member
        ``energies [n_local, K]`` eV, member-mean ``forces [n_local, 3]`` eV/Å and ``virial
        [S, 3, 3]`` eV, and per-member ``forces [n_local, K, 3]`` eV/Å if ``member_forces``
        (else None); see :meth:`evaluate_mean`."""
        dtype = self.dtype
        pos = local.positions
        i, j = nl.i, nl.j
        # in the state's dtype, then cast: small differences of large coordinates
        if self._cpp is not None and not pos.is_cuda and not pos.requires_grad:
            i, j, rij = self._cpp.cutoff_pairs(pos.contiguous(), i, j, self.cutoff, dtype)
        else:
            rij = pos.index_select(0, j) - pos.index_select(0, i)
            keep = torch.nonzero((rij * rij).sum(dim=1) < self.cutoff * self.cutoff).squeeze(1)
            i, j, rij = i.index_select(0, keep), j.index_select(0, keep), rij.index_select(0, keep).to(dtype)
        if local.species is not self._checked_species:  # once per neighbour-list rebuild
            self.check_species(local.species)
            self._checked_species = local.species
            self._checked_types = self._types(local.species)
        types = self._checked_types
        with torch.no_grad():
            e, forces, g, members = self.evaluate_mean(
                rij, i, j, types, local.n_owned, local.n_local, member_forces=member_forces
            )
        kk = self.n_members
        energies = torch.zeros((local.n_local, kk), dtype=dtype, device=pos.device)
        energies[: local.n_owned] = e.t()
        # W = Σ_a x_a ⊗ F_a = −Σ_pairs r_ij ⊗ g_ij (of the member mean)
        if local.n_systems == 1:
            virial = -(rij.t() @ g)[None]
        else:
            outer = (rij[:, :, None] * g[:, None, :]).reshape(-1, 9)
            virial = torch.zeros((local.n_systems, 9), dtype=dtype, device=pos.device)
            virial = virial.index_add(0, local.system_idx[i], -outer).view(local.n_systems, 3, 3)
        return energies, forces, virial, members

    def forward(self, local: LocalAtoms, nl: NeighborList) -> PotentialOutput:
        energies, forces, virial, _ = self.members_forward(local, nl, member_forces=False)
        return PotentialOutput(energies=energies.mean(1), forces=forces, virial=virial)

    # ------------------------------------------------------------------ files
    def save(self, path: str | Path, **metadata: Any) -> None:
        """Write the model: plain tensors + JSON-able metadata, readable by
        ``torch.load(path, weights_only=True)``.

        Args:
            path: output file (``.pt``).
            **metadata: merged into :attr:`metadata` (teacher, data hash, report summary, ...).
        """
        from ssehpc import __version__

        meta = {**self.metadata, **metadata}
        meta.setdefault("units", {"length": "Å", "energy": "eV", "forces": "eV/Å", "stress": "eV/Å^3"})
        payload = {
            "format": FILE_FORMAT,
            "format_version": FILE_VERSION,
            "class": type(self).__name__,
            "ssehpc_version": __version__,
            "spec": self.spec.to_dict(),
            "species_symbols": [chemical_symbols[z] for z in self.spec.species],
            "dtype": str(self.dtype).removeprefix("torch."),
            # Round-trip through JSON: guarantees weights_only-loadable plain types.
            "metadata": json.loads(json.dumps(meta)),
            "state_dict": {k: v.detach().cpu().clone() for k, v in self.state_dict().items()},
        }
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        torch.save(payload, tmp)
        tmp.replace(path)


def load(path: str | Path, *, map_location: str | torch.device = "cpu") -> MomentPotential:
    """Load a model written by :meth:`MomentPotential.save` (``torch.load(weights_only=True)``).

    Returns a :class:`MomentPotential` (``K = 1``) or a :class:`~ssehpc.ml.committee.Committee`.

    Raises:
        ValueError: not an ssehpc model file, or a newer file format.
    """
    payload = torch.load(Path(path), map_location=map_location, weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != FILE_FORMAT:
        raise ValueError(f"{path} is not an ssehpc model file (format {FILE_FORMAT!r})")
    if int(payload["format_version"]) > FILE_VERSION:
        raise ValueError(
            f"{path} has model file version {payload['format_version']}; this ssehpc reads <= {FILE_VERSION}"
        )
    spec = ModelSpec.from_dict(payload["spec"])
    if payload["class"] == "Committee":
        from ssehpc.ml.committee import Committee

        model: MomentPotential = Committee(spec)
    else:
        model = MomentPotential(spec)
    model = model.to(getattr(torch, payload["dtype"]))
    model.load_state_dict(payload["state_dict"])
    model.metadata = dict(payload["metadata"])
    return model.to(map_location)
