"""Models shipped with ssehpc, by name.

``resolve_model("lips")`` → the path of the current 4-member Li–P–S committee distilled from CHGNet
(``lips-v11``, ``ssehpc/data/lips/committee_v11.pt``; report, training config and training data next
to it, ``ssehpc/data/lips/README.md``).  The earlier committees that documented results or tests
use are kept (each was fine-tuned from the one before, v9 from v7): ``lips-v0`` (crystals and
short glass quenches), ``lips-v3`` (+ short melts, ZBL core, one active-learning iteration, a radial
floor; the default until data v2/v3: it collapses within picoseconds above ~800 K), ``lips-v5``
(+ teacher melts and close contacts, data v3: stable in 1000–1500 K liquids), ``lips-v6`` (+ one
active-learning iteration in its own glass at 600 K), ``lips-v9`` (v7 + a fourth one: 600 glass
labels, every member on all frames; about five times fewer frames above ``trust_hi`` in the glass
than v7), ``lips-v10`` (v9 + a fifth one: 350 more glass labels; 21 frames above ``trust_hi``
where v9 has 34 on the same 20,004 glass frames) and ``lips-v11`` (v10 + a sixth one: 286 more
glass labels from v10's upper tail; 30 frames above ``trust_hi`` where v10 has 33 on the same
40,008 glass frames, no real difference).  ``lips-v1``, ``lips-v2``, ``lips-v5a``, ``lips-v7`` and
``lips-v8`` are retired from the package (:data:`RETIRED_MODELS`: the shipped model data must stay
under 20 MB); their names raise an error that says how to get the file back from the git history.
Anything that is not a shipped name is taken as a file path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["RETIRED_MODELS", "SHIPPED_MODELS", "RetiredModel", "resolve_model"]

_DATA = Path(__file__).resolve().parent.parent / "data"

#: Shipped model name → file.
SHIPPED_MODELS: dict[str, Path] = {
    "lips": _DATA / "lips" / "committee_v11.pt",
    "lips-v11": _DATA / "lips" / "committee_v11.pt",
    "lips-v10": _DATA / "lips" / "committee_v10.pt",
    "lips-v9": _DATA / "lips" / "committee_v9.pt",
    "lips-v6": _DATA / "lips" / "committee_v6.pt",
    "lips-v5": _DATA / "lips" / "committee_v5.pt",
    "lips-v3": _DATA / "lips" / "committee_v3.pt",
    "lips-v0": _DATA / "lips" / "committee_v0.pt",
}


@dataclass(frozen=True)
class RetiredModel:
    """A committee once shipped, now only in the git history.

    Attributes:
        path: its path in the repository.
        commit: the last commit that ships it.
        sha256: SHA-256 of the file (a restored copy is recognised by it, e.g. for its trust levels).
        note: what it was and what replaces it.
    """

    path: str
    commit: str
    sha256: str
    note: str

    def restore_command(self, dest: str | Path | None = None) -> str:
        """The shell command, run in a clone of ssehpc, that writes the file to ``dest`` (a folder;
        default: the current one)."""
        name = Path(self.path).name
        return f"git show {self.commit}:{self.path} > {Path(dest) / name if dest else name}"


_LAST = "f88e3c230105aff8acfa40b986c5436344f10680"
_LAST_V7 = "4f91ae2e1a6e83437103568c1b5dd39684f4570e"

#: Retired model name → where it is in the git history (retired 2026-12-07 for the 20 MB budget).
RETIRED_MODELS: dict[str, RetiredModel] = {
    "lips-v7": RetiredModel(
        "ssehpc/data/lips/committee_v7.pt",
        _LAST_V7,
        "bc00764db1b0bdb14cb2ad4a6a28c8453fc4603d94a450023fd15afc48696b5e",
        "the second glass iteration, the default until lips-v9; superseded by lips-v9 and lips-v10",
    ),
    "lips-v8": RetiredModel(
        "ssehpc/data/lips/committee_v8.pt",
        _LAST,
        "5c797f90f55a134ed53d47ff6d571706dbad11192111a84357af6de0935ad400",
        "the third glass iteration from lips-v7, no better than lips-v7 in the glass; use lips",
    ),
    "lips-v5a": RetiredModel(
        "ssehpc/data/lips/committee_v5a.pt",
        _LAST,
        "c899fa187d8ae6679680a2d0f85a13b48bf3b20c5424dabcb2c66bfc6cab9ca4",
        "lips-v3 + teacher melts (data v2), superseded by lips-v5",
    ),
    "lips-v2": RetiredModel(
        "ssehpc/data/lips/committee_v2.pt",
        _LAST,
        "5fb2c7b281c98c4e92a3583b90fbfece4cf1ca47f56935fb150fcbda57d597ad",
        "lips-v1 + one active-learning iteration, superseded by lips-v3",
    ),
    "lips-v1": RetiredModel(
        "ssehpc/data/lips/committee_v1.pt",
        _LAST,
        "e784ec4177e3a9ba7a310b34d46f3f1678d1aa7cd39bbc2db23b62c73b7345c6",
        "lips-v0 + short melts and a ZBL core, superseded by lips-v2",
    ),
}


def resolve_model(model: str | Path) -> Path:
    """The file of a shipped model name, or ``model`` as a path.

    Raises:
        FileNotFoundError: a retired name (the message says how to restore the file from git), or
            neither a shipped name nor an existing file (the message lists the shipped names).
    """
    key = str(model).strip()
    if key.lower() in SHIPPED_MODELS:
        return SHIPPED_MODELS[key.lower()]
    if key.lower() in RETIRED_MODELS:
        r = RETIRED_MODELS[key.lower()]
        raise FileNotFoundError(
            f"model {key!r} is retired from the package ({r.note}); the file is in the git history: "
            f"`{r.restore_command()}` in a clone of ssehpc, then pass model: {Path(r.path).name}"
        )
    path = Path(key).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"model {key!r} is neither a shipped model ({', '.join(SHIPPED_MODELS)}) nor an existing file"
        )
    return path
