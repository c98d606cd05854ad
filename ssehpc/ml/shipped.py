"""Models shipped with ssehpc, by name.

``resolve_model("lips")`` → the path of the current 4-member Li–P–S committee distilled from CHGNet
(``lips-v9``, ``ssehpc/data/lips/committee_v9.pt``; report, training config and training data next
to it, ``ssehpc/data/lips/README.md``).  The earlier committees are kept for reproducibility (each
was fine-tuned from the one before, v9 from v7): ``lips-v0`` (crystals and short glass quenches), ``lips-v1``
(+ short melts, ZBL core), ``lips-v2`` (+ one active-learning iteration), ``lips-v3`` (v2 with a
radial floor; the default until data v2/v3: it collapses within picoseconds above ~800 K),
``lips-v5a`` (+ ~8 ps teacher melts, data v2), ``lips-v5`` (+ close contacts, data v3: stable in
1000–1500 K liquids), ``lips-v6`` (+ one active-learning iteration in its own glass at 600 K),
``lips-v7`` (+ a second one, over four new glass packings through quench, NPT and 600 K),
``lips-v8`` (+ a third one, the same way over four more packings; no better than v7 in the glass,
``docs/mlff.md``) and ``lips-v9`` (v7 + a fourth one: 600 glass labels, every member on all
frames; about five times fewer frames above ``trust_hi`` in the glass than v7).  Anything
that is not a shipped name is taken as a file path.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["SHIPPED_MODELS", "resolve_model"]

_DATA = Path(__file__).resolve().parent.parent / "data"

#: Shipped model name → file.
SHIPPED_MODELS: dict[str, Path] = {
    "lips": _DATA / "lips" / "committee_v9.pt",
    "lips-v9": _DATA / "lips" / "committee_v9.pt",
    "lips-v8": _DATA / "lips" / "committee_v8.pt",
    "lips-v7": _DATA / "lips" / "committee_v7.pt",
    "lips-v6": _DATA / "lips" / "committee_v6.pt",
    "lips-v5": _DATA / "lips" / "committee_v5.pt",
    "lips-v5a": _DATA / "lips" / "committee_v5a.pt",
    "lips-v3": _DATA / "lips" / "committee_v3.pt",
    "lips-v2": _DATA / "lips" / "committee_v2.pt",
    "lips-v1": _DATA / "lips" / "committee_v1.pt",
    "lips-v0": _DATA / "lips" / "committee_v0.pt",
}


def resolve_model(model: str | Path) -> Path:
    """The file of a shipped model name, or ``model`` as a path.

    Raises:
        FileNotFoundError: neither a shipped name nor an existing file (the message lists the
            shipped names).
    """
    key = str(model).strip()
    if key.lower() in SHIPPED_MODELS:
        return SHIPPED_MODELS[key.lower()]
    path = Path(key).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"model {key!r} is neither a shipped model ({', '.join(SHIPPED_MODELS)}) nor an existing file"
        )
    return path
