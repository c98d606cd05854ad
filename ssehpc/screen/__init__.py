"""Committee screening: classify frames by their force deviation, pick diverse candidates for
labelling, export them with provenance, and stop runs that extrapolate (``docs/screening.md``).

* :class:`ScreeningSpec` — the ``screening`` block of run and campaign specs;
* :class:`ExtrapolationGuard` / :class:`ExtrapolationStop` — the in-run stop (status
  ``extrapolating``);
* :func:`screen_store`, :func:`export_candidates`, :func:`write_screening` — ``ssehpc screen``;
* :func:`plot_deviation_histogram` — the deviation histogram of ``ssehpc analyze``.

This package does not import :mod:`ssehpc.spec` (which imports it).
"""

from ssehpc.screen.config import (
    CALIBRATED_TRUST,
    DEFAULT_TRUST_HI,
    DEFAULT_TRUST_LO,
    ScreeningSpec,
    calibrated_trust,
)
from ssehpc.screen.descriptors import farthest_point_sampling, rdf_fingerprint
from ssehpc.screen.guard import ExtrapolationGuard, ExtrapolationStop
from ssehpc.screen.plots import plot_deviation_histogram
from ssehpc.screen.screening import (
    FrameRef,
    RunScreen,
    ScreeningResult,
    candidate_atoms,
    classify,
    deviations_by_run,
    export_candidates,
    screen_store,
    write_screening,
)

__all__ = [
    "CALIBRATED_TRUST",
    "DEFAULT_TRUST_HI",
    "DEFAULT_TRUST_LO",
    "ExtrapolationGuard",
    "ExtrapolationStop",
    "FrameRef",
    "RunScreen",
    "ScreeningResult",
    "ScreeningSpec",
    "calibrated_trust",
    "candidate_atoms",
    "classify",
    "deviations_by_run",
    "export_candidates",
    "farthest_point_sampling",
    "plot_deviation_histogram",
    "rdf_fingerprint",
    "screen_store",
    "write_screening",
]
