"""Frame classes at the trust levels and the per-run / per-campaign fractions."""

from __future__ import annotations

import numpy as np
import pytest

from ssehpc.screen import ScreeningSpec, classify
from ssehpc.screen.config import ACCURATE, CANDIDATE, FAILED, UNKNOWN
from ssehpc.screen.screening import RunScreen, ScreeningResult
from ssehpc.spec import MDSpec, SpecError


def test_classes_at_the_boundaries():
    lo, hi = 0.05, 0.15
    dev = np.array([0.0, np.nextafter(lo, 0), lo, 0.1, np.nextafter(hi, 0), hi, 3.0, np.inf, np.nan])
    np.testing.assert_array_equal(
        classify(dev, lo, hi),
        [ACCURATE, ACCURATE, CANDIDATE, CANDIDATE, CANDIDATE, FAILED, FAILED, FAILED, UNKNOWN],
    )
    # shape [frame, system] is kept
    assert classify(np.full((4, 2), 0.1), lo, hi).shape == (4, 2)


@pytest.mark.parametrize(("lo", "hi"), [(0.15, 0.05), (0.1, 0.1), (0.0, 0.1), (np.nan, 0.2)])
def test_invalid_trust_levels_are_refused(lo, hi):
    with pytest.raises(ValueError, match="trust_lo"):
        classify(np.zeros(3), lo, hi)


def test_fractions_per_run_and_campaign(tmp_path):
    def run(rid, dev):
        dev = np.asarray(dev, dtype=float)[:, None]
        return RunScreen(rid, "completed", classify(dev, 0.1, 0.2), dev)

    a = run("a", [0.01, 0.02, 0.15, 0.3])  # 2 accurate, 1 candidate, 1 failed
    b = run("b", [0.12, 0.13, 0.14, np.nan])  # 3 candidates, 1 frame without a deviation
    assert (a.fraction(ACCURATE), a.fraction(CANDIDATE), a.fraction(FAILED)) == (0.5, 0.25, 0.25)
    assert b.n_configurations == 3
    assert b.fraction(CANDIDATE) == 1.0
    assert a.max_force_dev == 0.3
    res = ScreeningResult(tmp_path, 0.1, 0.2, [a, b], {}, [], {})
    tot = res.totals()
    assert tot["configurations"] == 7
    assert (tot["accurate"], tot["candidate"], tot["failed"]) == (2, 4, 1)
    assert tot["candidate_fraction"] == pytest.approx(4 / 7)


def test_screening_spec_defaults_and_validation():
    spec = ScreeningSpec()
    assert (spec.trust_lo, spec.trust_hi, spec.stop_after) == (0.05, 0.15, 3)
    assert spec.interval(write_interval=50) == 50
    assert spec.interval(write_interval=0) == 100
    assert ScreeningSpec(check_interval=7).interval(50) == 7
    base = {
        "structure": {"builder": "fcc", "element": "Ar", "a": 5.26},
        "potential": {"name": "lj"},
        "temperature_K": 10.0,
        "dt_fs": 1.0,
        "steps": 1,
    }
    with pytest.raises(SpecError, match=r"screening: trust_lo \(0.3 eV/Å\) must be below trust_hi"):
        MDSpec.from_dict({**base, "screening": {"trust_lo": 0.3, "trust_hi": 0.2}})
    with pytest.raises(SpecError, match=r"screening\.stop_afte: unknown field"):
        MDSpec.from_dict({**base, "screening": {"stop_afte": 2}})
    assert MDSpec.from_dict(base).screening is None


def test_calibrated_trust_by_name_path_and_copy(tmp_path):
    """A shipped committee named by its file, or by a byte-identical copy, screens at its
    calibrated levels; a different file gets none (the generic defaults apply)."""
    import shutil

    from ssehpc.ml.shipped import SHIPPED_MODELS
    from ssehpc.screen import CALIBRATED_TRUST, calibrated_trust

    assert calibrated_trust("LIPS ") == CALIBRATED_TRUST["lips"] == (0.10, 0.25)
    shipped = SHIPPED_MODELS["lips-v6"]
    assert calibrated_trust(shipped) == CALIBRATED_TRUST["lips-v6"]
    copy = tmp_path / "mine.pt"
    shutil.copyfile(shipped, copy)
    assert calibrated_trust(str(copy)) == CALIBRATED_TRUST["lips-v6"]
    # one byte changed: no longer that committee
    data = bytearray(copy.read_bytes())
    data[-1] ^= 0xFF
    copy.write_bytes(bytes(data))
    assert calibrated_trust(copy) is None
    # uncalibrated shipped committees, missing files and None
    assert "lips-v0" not in CALIBRATED_TRUST
    assert calibrated_trust(SHIPPED_MODELS["lips-v0"]) is None
    assert calibrated_trust(tmp_path / "absent.pt") is None
    assert calibrated_trust(None) is None
