"""Screening settings: trust levels of the committee force deviation and the extrapolation stop.

A frame's committee deviation is ``max_i ε_i`` (eV/Å), the largest per-atom force deviation of the
committee (:func:`ssehpc.forces.committee_deviation`, as in DP-GEN).  With trust levels
``trust_lo < trust_hi`` a frame is

====================================  ==========  ===========================================
``max_i ε_i``                          class       meaning
====================================  ==========  ===========================================
``< trust_lo``                         accurate    the committee agrees: nothing to learn
``trust_lo ≤ · < trust_hi``            candidate   uncertain but physical: worth labelling
``≥ trust_hi``                         failed      beyond the model's range (often unphysical)
====================================  ==========  ===========================================

The generic defaults are DP-GEN's 0.05 / 0.15 eV/Å; the shipped ``lips`` committee is calibrated to
0.10 / 0.25 eV/Å (``docs/mlff.md``, ``docs/screening.md``), and a screening block of a run driven by
a shipped committee that leaves the levels unset gets those
(:func:`ssehpc.spec.calibrated_screening`).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: Generic trust levels, eV/Å (DP-GEN's defaults).
DEFAULT_TRUST_LO: float = 0.05
DEFAULT_TRUST_HI: float = 0.15

#: Calibrated trust levels of shipped committees, eV/Å (``docs/mlff.md``).
#: ``examples/lips_trust_calibration.py`` measures them on the held-out teacher frames.
CALIBRATED_TRUST: dict[str, tuple[float, float]] = {
    "lips": (0.10, 0.25),
    "lips-v11": (0.10, 0.25),
    "lips-v10": (0.10, 0.25),
    "lips-v9": (0.10, 0.25),
    "lips-v8": (0.10, 0.25),
    "lips-v7": (0.10, 0.25),
    "lips-v6": (0.10, 0.25),
    "lips-v5": (0.10, 0.25),
    "lips-v3": (0.10, 0.25),
}


def calibrated_trust(model: str | Path | None) -> tuple[float, float] | None:
    """The calibrated ``(trust_lo, trust_hi)`` (eV/Å) of a shipped committee, or ``None``.

    ``model`` is a shipped name (``"lips"``, ``"lips-v11"``, ...) or a file path; a file counts as
    the shipped committee whose content it has (SHA-256), so a spec naming
    ``ssehpc/data/lips/committee_v11.pt`` or a copy of it screens at the same levels as one naming
    ``lips``.  Any other model (a committee you trained) has no calibration here.
    """
    if model is None:
        return None
    key = str(model).strip()
    if key.lower() in CALIBRATED_TRUST:
        return CALIBRATED_TRUST[key.lower()]
    from ssehpc.ml.data import sha256_files
    from ssehpc.ml.shipped import RETIRED_MODELS, SHIPPED_MODELS

    path = Path(key).expanduser()
    try:
        if not path.is_file():
            return None
        digest = sha256_files(path)
        for name, shipped in SHIPPED_MODELS.items():
            if name in CALIBRATED_TRUST and shipped.is_file() and sha256_files(shipped) == digest:
                return CALIBRATED_TRUST[name]
        for name, retired in RETIRED_MODELS.items():  # a copy restored from the git history
            if name in CALIBRATED_TRUST and retired.sha256 == digest:
                return CALIBRATED_TRUST[name]
    except OSError:
        return None
    return None


#: Frame classes (the codes stored in ``screening/runs/<run_id>/frame_class``).
ACCURATE, CANDIDATE, FAILED, UNKNOWN = 0, 1, 2, -1
CLASS_NAMES: dict[int, str] = {
    ACCURATE: "accurate",
    CANDIDATE: "candidate",
    FAILED: "failed",
    UNKNOWN: "unknown",
}


class ScreeningSpec(BaseModel):
    """The ``screening`` block of a run or campaign spec.

    Attributes:
        trust_lo: lower trust level of ``max_i ε_i``, eV/Å (candidates start here).
        trust_hi: upper trust level, eV/Å (frames at or above it are ``failed``).
        stop_after: stop the run (status ``extrapolating``) after this many *consecutive* checks
            with ``max_i ε_i > trust_hi`` (0: never stop, only record the deviations).
        check_interval: steps between checks (default: the run's ``write_interval``, or 100 when
            it writes no frames).  Each check costs the committee's member forces at that step.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    trust_lo: float = Field(default=DEFAULT_TRUST_LO, gt=0, description="eV/Å")
    trust_hi: float = Field(default=DEFAULT_TRUST_HI, gt=0, description="eV/Å")
    stop_after: int = Field(default=3, ge=0)
    check_interval: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _levels(self) -> ScreeningSpec:
        if not self.trust_lo < self.trust_hi:
            raise ValueError(f"trust_lo ({self.trust_lo} eV/Å) must be below trust_hi ({self.trust_hi} eV/Å)")
        return self

    def interval(self, write_interval: int) -> int:
        """Steps between checks for a run writing a frame every ``write_interval`` steps."""
        if self.check_interval is not None:
            return self.check_interval
        return write_interval if write_interval > 0 else 100
