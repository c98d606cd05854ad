"""Buckingham (Born–Mayer–Huggins) short-range pairs plus damped shifted-force Coulomb.

For a pair ``i, j`` at distance ``r`` the energy is ``φ(r) = φ_sr(r) + φ_c(r)``:

.. math::

    φ_{sr}(r) &= A\\,e^{(σ − r)/ρ} − C/r^6 + D/r^8 − φ^0_{sr},   \\qquad r < r_s

    φ_c(r) &= k\\,q_i q_j \\Big[\\frac{\\mathrm{erfc}(αr)}{r} − \\frac{\\mathrm{erfc}(αr_c)}{r_c}
              − f_{sh}\\,(r − r_c)\\Big],                            \\qquad r < r_c

    f_{sh} &= −\\Big[\\frac{\\mathrm{erfc}(αr_c)}{r_c^2} + \\frac{2α}{\\sqrt{π}}\\frac{e^{−α^2 r_c^2}}{r_c}\\Big]

The Buckingham potential ``A e^{−r/ρ} − C/r⁶`` is ``σ = D = 0``; ``σ`` and ``D`` are kept so that
Born–Mayer–Huggins / Tosi–Fumi parameters can be used as published.  ``φ_c`` is the damped
shifted-force (DSF) Coulomb kernel of Fennell & Gezelter (J. Chem. Phys. 124, 234104 (2006)): both
``φ_c`` and its derivative vanish at ``r_c``.  ``k`` is ``coulomb_constant`` (default
:data:`ssehpc.units.COULOMB`), ``q`` in e.  ``φ⁰_sr`` is ``φ_sr(r_s)`` without the shift when ``shift=True`` (continuous energy), else 0.

Each atom also carries a constant DSF self energy (it does not change forces or the virial):

.. math::

    E^{self}_i = −k\\,q_i^2 \\Big(\\frac{e_{sh}}{2} + \\frac{α}{\\sqrt{π}}\\Big),\\qquad
    e_{sh} = \\frac{\\mathrm{erfc}(αr_c)}{r_c} − f_{sh}\\,r_c,

i.e. ``½ k q_i² lim_{r→0} [v(r) − 1/r]`` for the DSF kernel ``v(r) = φ_c / (k q_i q_j)``.  This is the
convention of LAMMPS ``pair_style born/coul/dsf`` and ``coul/dsf`` (whose ``e_shift`` contains the
``−f_sh r_c`` term, unlike the ``erfc(αr_c)/2r_c`` written for the Wolf sum); with it a neutral
crystal's energy approaches the Ewald energy.

Analytic pair force on ``j`` (``f_i = −f_j``), ``r_ij = x_j − x_i``:

.. math::

    f_j = \\Big[\\frac{A}{ρ}e^{(σ−r)/ρ} − \\frac{6C}{r^7} + \\frac{8D}{r^9}
          + k q_i q_j\\Big(\\frac{\\mathrm{erfc}(αr)}{r^2} + \\frac{2α}{\\sqrt{π}}\\frac{e^{−α^2r^2}}{r}
          + f_{sh}\\Big)\\Big]\\frac{\\mathbf r_{ij}}{r}

The potential uses a half list; each pair's energy is split half and half between its atoms, the
self energy goes to owned atoms only.  Identical (to round-off) to LAMMPS
``pair_style born/coul/dsf α r_s r_c`` with ``pair_modify shift yes|no`` and
``pair_coeff A ρ σ C D`` (LAMMPS's ``D`` enters as ``+D/r⁸``, as here) when
``coulomb_constant=14.399645``, the rounded value of LAMMPS metal units.

Like every Buckingham potential, ``φ_sr → −∞`` as ``r → 0`` when ``C > 0`` (the "Buckingham
catastrophe"): start from sensible structures and do not run at very high temperature.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence

import torch
from ase.data import atomic_numbers, chemical_symbols

from ssehpc import units
from ssehpc.neighbors import NeighborList
from ssehpc.parallel.domain import LocalAtoms
from ssehpc.potentials.base import Potential, PotentialOutput, pair_virial

PairKey = str | tuple[str | int, str | int]
PairParams = Mapping[str, float] | Sequence[float]

_SQRT_PI = math.sqrt(math.pi)
_PAIR_FIELDS = ("A", "rho", "C", "sigma", "D")


def element_z(symbol_or_z: str | int) -> int:
    """Atomic number of an element symbol (``"Li"``) or of an int ``Z``."""
    if isinstance(symbol_or_z, numbers.Integral) and not isinstance(symbol_or_z, bool):
        if not 0 < int(symbol_or_z) < len(chemical_symbols):
            raise ValueError(f"unknown atomic number {symbol_or_z}")
        return int(symbol_or_z)
    if isinstance(symbol_or_z, str) and symbol_or_z.strip() in atomic_numbers:
        return atomic_numbers[symbol_or_z.strip()]
    raise ValueError(f"unknown element {symbol_or_z!r} (expected a symbol such as 'Li' or an atomic number)")


def parse_pair_key(key: PairKey) -> tuple[int, int]:
    """``("Li", "S")``, ``(3, 16)`` or the string ``"Li-S"`` → ``(3, 16)``."""
    if isinstance(key, str):
        parts = key.replace("-", " ").split()
        if len(parts) != 2:
            raise ValueError(f"pair key {key!r} must name two elements, e.g. 'Li-S'")
        return element_z(parts[0]), element_z(parts[1])
    if isinstance(key, Sequence) and len(key) == 2:
        return element_z(key[0]), element_z(key[1])
    raise ValueError(f"pair key {key!r} must be 'A-B' or a pair of elements")


def _pair_params(key: object, params: PairParams) -> dict[str, float]:
    """Normalise ``(A, ρ, C)`` or ``{"A":…, "rho":…, "C":…, "sigma":…, "D":…}`` to a dict."""
    if isinstance(params, Mapping):
        canonical = {name.lower(): name for name in _PAIR_FIELDS}  # keys are case-insensitive
        unknown = sorted(str(n) for n in params if str(n).lower() not in canonical)
        if unknown:
            raise ValueError(f"pair {key!r}: unknown parameters {unknown}; allowed {_PAIR_FIELDS}")
        given = {canonical[str(n).lower()]: float(v) for n, v in params.items()}
        missing = {"A", "rho"} - set(given)
        if missing:
            raise ValueError(f"pair {key!r}: missing parameters {sorted(missing)}")
        out = {name: given.get(name, 0.0) for name in _PAIR_FIELDS}
    elif isinstance(params, Sequence) and not isinstance(params, str) and len(params) == 3:
        out = dict(zip(_PAIR_FIELDS, (*map(float, params), 0.0, 0.0), strict=True))
    else:
        raise ValueError(
            f"pair {key!r}: parameters must be (A eV, rho Å, C eV·Å⁶) or a mapping with keys {_PAIR_FIELDS}"
        )
    if not out["rho"] > 0:
        raise ValueError(f"pair {key!r}: rho must be positive (Å), got {out['rho']}")
    return out


class BuckinghamDSF(Potential):
    """Buckingham / Born–Mayer–Huggins pairs plus damped shifted-force Coulomb (module docstring).

    Args:
        charges: ``{element: q}`` fixed charge of each element, e.  Defines the elements the
            potential knows.
        pairs: ``{pair: params}`` short-range parameters per pair of elements.  ``pair`` is
            ``("Li", "S")``, ``(3, 16)`` or ``"Li-S"``; ``params`` is ``(A eV, ρ Å, C eV·Å⁶)`` or
            ``{"A": eV, "rho": Å, "C": eV·Å⁶, "sigma": Å, "D": eV·Å⁸}`` (keys case-insensitive;
            ``sigma``, ``D``, ``C`` default to 0).  Pairs not listed have no short-range term (Coulomb only), as is usual for
            cation–cation pairs.
        alpha: DSF damping parameter α, Å⁻¹ (0 gives undamped shifted-force Coulomb).
        cutoff: Coulomb cutoff r_c, Å.
        short_cutoff: cutoff r_s of the short-range term, Å (default ``cutoff``).
        shift: subtract ``φ_sr(r_s)`` so the short-range energy is continuous at ``r_s``
            (LAMMPS ``pair_modify shift yes``).
        coulomb_constant: ``k = e²/4πε₀``, eV·Å (default :data:`ssehpc.units.COULOMB`, CODATA 2018;
            LAMMPS metal units use the rounded ``14.399645``, 3e-8 relative smaller).

    Attributes:
        cutoff: ``max(r_c, r_s)``, Å.
    """

    half_list = True

    def __init__(
        self,
        charges: Mapping[str | int, float],
        pairs: Mapping[PairKey, PairParams] | None = None,
        *,
        alpha: float = 0.2,
        cutoff: float = 10.0,
        short_cutoff: float | None = None,
        shift: bool = True,
        coulomb_constant: float = units.COULOMB,
    ) -> None:
        super().__init__()
        if not cutoff > 0:
            raise ValueError(f"cutoff must be positive (Å), got {cutoff}")
        short_cutoff = float(cutoff) if short_cutoff is None else float(short_cutoff)
        if not short_cutoff > 0:
            raise ValueError(f"short_cutoff must be positive (Å), got {short_cutoff}")
        if not alpha >= 0:
            raise ValueError(f"alpha must be non-negative (1/Å), got {alpha}")
        if not charges:
            raise ValueError("BuckinghamDSF needs the charge of every element it should know")
        self.alpha = float(alpha)
        self.coulomb_cutoff = float(cutoff)
        self.short_cutoff = short_cutoff
        self.cutoff = max(self.coulomb_cutoff, self.short_cutoff)
        self.shift = bool(shift)
        self.coulomb_constant = float(coulomb_constant)

        q_of_z = {element_z(el): float(q) for el, q in charges.items()}
        zs = sorted(q_of_z)
        self.species = tuple(zs)
        k = len(zs)
        # Type k stands for every element without parameters; its NaN charge and parameters make a
        # state that skipped ForceCompute.check fail loudly (NonFiniteError), not silently.
        table = {name: torch.zeros((k + 1, k + 1), dtype=torch.float64) for name in _PAIR_FIELDS}
        table["rho"].fill_(1.0)  # unused where A = 0; avoids 0/0
        for t in table.values():
            t[k, :] = t[:, k] = float("nan")
        seen: dict[tuple[int, int], dict[str, float]] = {}
        for key, params in (pairs or {}).items():
            za, zb = parse_pair_key(key)
            for z in (za, zb):
                if z not in q_of_z:
                    raise ValueError(
                        f"pair {key!r} uses {chemical_symbols[z]}, which has no charge in 'charges'"
                    )
            p = _pair_params(key, params)
            canon = (min(za, zb), max(za, zb))
            if canon in seen and seen[canon] != p:
                raise ValueError(f"pair {key!r} is given twice with different parameters")
            seen[canon] = p
            ia, ib = zs.index(za), zs.index(zb)
            for name in _PAIR_FIELDS:
                table[name][ia, ib] = table[name][ib, ia] = p[name]
        self.pair_parameters = {
            f"{chemical_symbols[a]}-{chemical_symbols[b]}": p for (a, b), p in sorted(seen.items())
        }

        # Short-range energy at r_s (LAMMPS init_one "offset").
        rs = self.short_cutoff
        offset = (
            table["A"] * torch.exp((table["sigma"] - rs) / table["rho"])
            - table["C"] / rs**6
            + table["D"] / rs**8
        )
        if not self.shift:
            offset.zero_()

        # DSF constants (LAMMPS init_style), in float64.
        rc = self.coulomb_cutoff
        erfc_c = math.erfc(self.alpha * rc)
        self.f_shift = -(
            erfc_c / rc**2 + 2.0 * self.alpha / _SQRT_PI * math.exp(-((self.alpha * rc) ** 2)) / rc
        )
        self.e_shift = erfc_c / rc - self.f_shift * rc
        charge = torch.tensor([q_of_z[z] for z in zs] + [float("nan")], dtype=torch.float64)
        self_energy = -(self.e_shift / 2.0 + self.alpha / _SQRT_PI) * self.coulomb_constant * charge**2

        type_of_z = torch.full((len(chemical_symbols),), k, dtype=torch.int64)
        for t, z in enumerate(zs):
            type_of_z[z] = t
        self.register_buffer("type_of_z", type_of_z, persistent=False)
        self.register_buffer("charge", charge, persistent=False)
        self.register_buffer("self_energy", self_energy, persistent=False)
        self.register_buffer("offset", offset, persistent=False)
        for name in _PAIR_FIELDS:
            self.register_buffer(f"pair_{name}", table[name], persistent=False)

    @property
    def charges(self) -> dict[str, float]:
        """``{symbol: q}`` in e."""
        return {
            chemical_symbols[z]: float(q)
            for z, q in zip(self.species, self.charge.tolist()[: len(self.species)], strict=True)
        }

    def extra_repr(self) -> str:
        return (
            f"charges={self.charges}, alpha={self.alpha}, cutoff={self.coulomb_cutoff}, "
            f"short_cutoff={self.short_cutoff}, shift={self.shift}, pairs={self.pair_parameters}"
        )

    def forward(self, local: LocalAtoms, nl: NeighborList) -> PotentialOutput:
        pos = local.positions
        dtype, device = pos.dtype, pos.device
        i, j = nl.i, nl.j
        rij = pos[j] - pos[i]
        r2 = (rij * rij).sum(dim=1)
        within = r2 < self.cutoff * self.cutoff
        i, j, rij, r2 = i[within], j[within], rij[within], r2[within]
        t = self.type_of_z[local.species]
        ti, tj = t[i], t[j]
        r = torch.sqrt(r2)
        inv_r = 1.0 / r

        # Damped shifted-force Coulomb: e = k qq [erfc(αr)/r − e_sh − r f_sh].
        kqq = self.coulomb_constant * (self.charge.to(dtype)[ti] * self.charge.to(dtype)[tj])
        erfc_r = torch.special.erfc(self.alpha * r)
        gauss = (2.0 * self.alpha / _SQRT_PI) * torch.exp(-((self.alpha * r) ** 2))
        e_c = kqq * (erfc_r * inv_r - self.e_shift - r * self.f_shift)
        f_c = kqq * (erfc_r * inv_r * inv_r + gauss * inv_r + self.f_shift)  # −dφ_c/dr
        if self.coulomb_cutoff < self.cutoff:
            in_c = r2 < self.coulomb_cutoff**2
            e_c = torch.where(in_c, e_c, torch.zeros_like(e_c))
            f_c = torch.where(in_c, f_c, torch.zeros_like(f_c))

        # Born–Mayer–Huggins: e = A exp((σ − r)/ρ) − C/r⁶ + D/r⁸ − offset.
        a = self.pair_A.to(dtype)[ti, tj]
        rho = self.pair_rho.to(dtype)[ti, tj]
        c = self.pair_C.to(dtype)[ti, tj]
        d = self.pair_D.to(dtype)[ti, tj]
        rexp = a * torch.exp((self.pair_sigma.to(dtype)[ti, tj] - r) / rho)
        inv_r6 = (inv_r * inv_r) ** 3
        inv_r8 = inv_r6 * inv_r * inv_r
        e_s = rexp - c * inv_r6 + d * inv_r8 - self.offset.to(dtype)[ti, tj]
        f_s = rexp / rho - 6.0 * c * inv_r6 * inv_r + 8.0 * d * inv_r8 * inv_r  # −dφ_sr/dr
        if self.short_cutoff < self.cutoff:
            in_s = r2 < self.short_cutoff**2
            e_s = torch.where(in_s, e_s, torch.zeros_like(e_s))
            f_s = torch.where(in_s, f_s, torch.zeros_like(f_s))

        e_pair = e_c + e_s
        fj = ((f_c + f_s) * inv_r)[:, None] * rij
        n_local = local.n_local
        energies = torch.zeros(n_local, dtype=dtype, device=device)
        energies.index_add_(0, i, 0.5 * e_pair)
        energies.index_add_(0, j, 0.5 * e_pair)
        # Self energy on owned rows only: ghost rows are summed onto their owners afterwards.
        energies[: local.n_owned] += self.self_energy.to(dtype)[t[: local.n_owned]]
        forces = torch.zeros((n_local, 3), dtype=dtype, device=device)
        forces.index_add_(0, j, fj)
        forces.index_add_(0, i, -fj)
        virial = pair_virial(rij, fj, local.system_idx[i], local.n_systems)
        return PotentialOutput(energies=energies, forces=forces, virial=virial)


def _si_to_ev_angstrom(value: float, power: int) -> float:
    """``value`` in J·mᵖ → eV·Åᵖ."""
    return value * 1e10**power / 1.602176634e-19


def _tosi_fumi_nacl() -> dict[str, object]:
    # Fumi & Tosi, J. Phys. Chem. Solids 25, 31 (1964); Tosi & Fumi, ibid. 25, 45 (1964):
    # φ_rep = c_ij b exp((σ_i + σ_j − r)/ρ) with b = 0.338e-19 J, ρ = 0.317 Å (NaCl),
    # σ_Na = 1.170 Å, σ_Cl = 1.585 Å, Pauling factors c_++ = 1.25, c_+- = 1, c_-- = 0.75.
    # Dispersion (Mayer, J. Chem. Phys. 1, 270 (1933)): C_ij/r⁶ + d_ij/r⁸ with
    # C = 1.68, 11.2, 116 × 1e-79 J m⁶ and d = 0.8, 13.9, 233 × 1e-99 J m⁸ (++, +-, --),
    # as tabulated e.g. by Anwar, Frenkel & Noro, J. Chem. Phys. 118, 728 (2003).
    b = _si_to_ev_angstrom(0.338e-19, 0)
    rho = 0.317
    table = {
        "Na-Na": (1.25, 2.340, 1.68, 0.8),
        "Na-Cl": (1.00, 2.755, 11.2, 13.9),
        "Cl-Cl": (0.75, 3.170, 116.0, 233.0),
    }
    pairs = {
        key: {
            "A": c_pauling * b,
            "rho": rho,
            "sigma": sigma,
            "C": _si_to_ev_angstrom(c6 * 1e-79, 6),
            # Attractive −d/r⁸ in Tosi–Fumi is D = −d in the +D/r⁸ (LAMMPS) convention.
            "D": -_si_to_ev_angstrom(d8 * 1e-99, 8),
        }
        for key, (c_pauling, sigma, c6, d8) in table.items()
    }
    return {"charges": {"Na": 1.0, "Cl": -1.0}, "pairs": pairs}


#: Named parameter sets: ``{name: {"charges": …, "pairs": …}}`` for :class:`BuckinghamDSF`.
#:
#: ``"NaCl-TosiFumi"``: rigid-ion Born–Mayer–Huggins model of rock-salt NaCl (formal charges ±1),
#: the standard classical reference for ionic solids and melts (Fumi & Tosi 1964; dispersion from
#: Mayer 1933; see :func:`_tosi_fumi_nacl`).  With DSF Coulomb use α ≈ 0.2 Å⁻¹ and r_c ≳ 10 Å
#: (Fennell & Gezelter 2006).
PARAMETER_SETS: dict[str, dict[str, object]] = {"NaCl-TosiFumi": _tosi_fumi_nacl()}


def tosi_fumi_nacl(*, alpha: float = 0.2, cutoff: float = 12.0, shift: bool = True) -> BuckinghamDSF:
    """Tosi–Fumi NaCl (``PARAMETER_SETS["NaCl-TosiFumi"]``) with DSF Coulomb.

    Args:
        alpha: DSF damping, Å⁻¹.
        cutoff: Coulomb and short-range cutoff, Å.
        shift: shift the short-range energy to zero at the cutoff.
    """
    p = PARAMETER_SETS["NaCl-TosiFumi"]
    return BuckinghamDSF(p["charges"], p["pairs"], alpha=alpha, cutoff=cutoff, shift=shift)
