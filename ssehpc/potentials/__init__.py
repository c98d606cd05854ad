"""Interatomic potentials and the name → constructor registry used by run specifications.

:func:`make_potential` builds a potential from a name and plain keyword parameters, as they come
from YAML: numbers, element symbols as strings, and pair keys written ``"Li-S"``::

    make_potential("lj", epsilon=0.0104, sigma=3.405, cutoff=8.5)
    make_potential("lj", pairs={"Ar-Ar": [0.0104, 3.405]}, cutoff=8.5)
    make_potential("buckingham_dsf", preset="NaCl-TosiFumi", alpha=0.2, cutoff=12.0)
    make_potential(
        "buckingham_dsf",
        charges={"Li": 1.0, "S": -2.0},
        pairs={"Li-S": {"A": 1000.0, "rho": 0.3, "C": 0.0}},
        alpha=0.2,
        cutoff=10.0,
    )
    make_potential("sum", terms=[{"name": "lj", "cutoff": 8.5}, {"name": "buckingham_dsf", ...}])
    make_potential("mlff", model="lips-v0")            # the shipped Li-P-S committee
    make_potential("mlff", model="my_model.pt", compile=True, dtype="float64")
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ssehpc.potentials.base import Potential, PotentialOutput, fdotr_virial, pair_virial
from ssehpc.potentials.buckingham import PARAMETER_SETS, BuckinghamDSF, parse_pair_key, tosi_fumi_nacl
from ssehpc.potentials.composite import SumPotential
from ssehpc.potentials.lj import LennardJones

__all__ = [
    "PARAMETER_SETS",
    "POTENTIALS",
    "BuckinghamDSF",
    "LennardJones",
    "Potential",
    "PotentialOutput",
    "SumPotential",
    "fdotr_virial",
    "make_potential",
    "pair_virial",
    "parse_pair_key",
    "tosi_fumi_nacl",
]


def _pairs_by_z(pairs: Mapping[Any, Any]) -> dict[tuple[int, int], Any]:
    """Pair keys ``"Li-S"`` / ``["Li", "S"]`` / ``(3, 16)`` → ``(3, 16)``; list values → tuples."""
    out = {}
    for key, value in pairs.items():
        out[parse_pair_key(key)] = tuple(value) if isinstance(value, list) else value
    return out


def _make_lj(**params: Any) -> Potential:
    if params.get("pairs") is not None:
        params["pairs"] = _pairs_by_z(params["pairs"])
    return LennardJones(**params)


def _make_buckingham_dsf(*, preset: str | None = None, **params: Any) -> Potential:
    charges: dict[Any, float] = {}
    pairs: dict[Any, Any] = {}
    if preset is not None:
        if preset not in PARAMETER_SETS:
            raise ValueError(f"unknown buckingham_dsf preset {preset!r}; known: {sorted(PARAMETER_SETS)}")
        charges.update(PARAMETER_SETS[preset]["charges"])
        pairs.update(_pairs_by_z(PARAMETER_SETS[preset]["pairs"]))
    # Explicit charges/pairs override (or extend) the preset.
    charges.update(params.pop("charges", None) or {})
    pairs.update(_pairs_by_z(params.pop("pairs", None) or {}))
    return BuckinghamDSF(charges, pairs, **params)


def _make_sum(*, terms: list[Mapping[str, Any]]) -> Potential:
    built = []
    for k, term in enumerate(terms):
        if not isinstance(term, Mapping) or "name" not in term:
            raise ValueError(f"sum term {k} must be a mapping with a 'name' key, got {term!r}")
        term = dict(term)
        built.append(make_potential(term.pop("name"), **term))
    return SumPotential(built)


def _make_mlff(
    *,
    model: str,
    compile: bool = False,
    dtype: str | None = None,
    members: list[int] | None = None,
    pair_kernels: str = "auto",
) -> Potential:
    """A built-in ML force field: a shipped model name (``lips-v0``) or a ``.pt`` file."""
    from ssehpc.ml import load, resolve_model

    pot = load(resolve_model(model))
    if members is not None:
        from ssehpc.ml import Committee

        if not isinstance(pot, Committee):
            raise ValueError(f"members= needs a committee; {model!r} is a single model")
        picked = [pot.member(int(k)) for k in members]
        pot = picked[0] if len(picked) == 1 else Committee.from_members(picked)
    if dtype is not None:
        if dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
        pot = pot.to(getattr(__import__("torch"), dtype))
    if compile:
        pot.compile_inference(pair_kernels=pair_kernels)
    elif pair_kernels != "auto":
        raise ValueError(f"pair_kernels={pair_kernels!r} needs compile: true")
    return pot


def _make_chgnet(*, threads: int | None = None, model_path: str | None = None) -> Potential:
    """The pretrained CHGNet teacher (``ssehpc[teacher]``) through :class:`ASECalculatorPotential`:
    one rank, CPU; e.g. a melt stage far outside a distilled model's range."""
    from ssehpc.ml.adapters import ASECalculatorPotential
    from ssehpc.ml.labeler import Labeler

    calc = Labeler.chgnet(num_threads=threads, model_path=model_path).calculator
    return ASECalculatorPotential(calc, species=tuple(range(1, 95)))  # CHGNet: H to Pu


_REGISTRY: dict[str, Callable[..., Potential]] = {
    "lj": _make_lj,
    "mlff": _make_mlff,
    "chgnet": _make_chgnet,
    "buckingham_dsf": _make_buckingham_dsf,
    "sum": _make_sum,
}

#: Names accepted by :func:`make_potential`.
POTENTIALS: tuple[str, ...] = tuple(_REGISTRY)


def make_potential(name: str, **params: Any) -> Potential:
    """Build a potential from its registry name and keyword parameters.

    Args:
        name: ``"lj"`` (:class:`LennardJones`), ``"buckingham_dsf"`` (:class:`BuckinghamDSF`;
            ``preset=`` one of :data:`PARAMETER_SETS` supplies charges and pairs, which explicit
            ``charges``/``pairs`` then override) or ``"sum"`` (:class:`SumPotential`; ``terms=`` a
            list of ``{"name": ..., **params}``) or ``"mlff"`` (a built-in ML force field:
            ``model=`` a shipped name such as ``"lips-v0"`` or a ``.pt`` file, ``compile=`` use
            ``torch.compile``-d kernels, with the pair passes in hand-written C++ on CPU unless
            ``pair_kernels=`` ``"torch"``, ``dtype=`` ``"float32"``/``"float64"``, ``members=``
            a subset of a committee's members) or ``"chgnet"`` (the pretrained CHGNet teacher on
            one rank: ``threads=`` torch threads, ``model_path=`` a fine-tuned checkpoint).
        **params: constructor arguments, units as documented by each class (Å, eV, e).

    Raises:
        ValueError: unknown name, or parameters the constructor rejects.
    """
    key = name.strip().lower()
    if key not in _REGISTRY:
        raise ValueError(f"unknown potential {name!r}; known: {', '.join(POTENTIALS)}")
    try:
        return _REGISTRY[key](**params)
    except TypeError as exc:
        raise ValueError(f"bad parameters for potential {name!r}: {exc}") from exc
