"""Models shipped with ssehpc, by name.

``resolve_model("lips-v0")`` → the path of the 4-member Li–P–S committee distilled from CHGNet
(``ssehpc/data/lips/committee_v0.pt``; report and training set next to it).  Anything that is not a
shipped name is taken as a file path.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["SHIPPED_MODELS", "resolve_model"]

_DATA = Path(__file__).resolve().parent.parent / "data"

#: Shipped model name → file.
SHIPPED_MODELS: dict[str, Path] = {
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
