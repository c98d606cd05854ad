"""Arrhenius / VTF fits on synthetic D(T)."""

from __future__ import annotations

import numpy as np
import pytest

from ssehpc.analysis.arrhenius import arrhenius_fit
from ssehpc.analysis.msd import AnalysisError
from ssehpc.units import KB

T = np.array([500.0, 600.0, 700.0, 800.0, 900.0, 1000.0])


def _noisy(y: np.ndarray, rel: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return y * np.exp(rel * rng.normal(size=y.size)), rel * y


def test_known_activation_energy_recovered():
    Ea, A = 0.25, 1e-3
    hits = 0
    for seed in range(50):
        y, se = _noisy(A * np.exp(-Ea / (KB * T)), 0.1, seed)
        f = arrhenius_fit(T, y, se)
        hits += abs(f.Ea - Ea) < 1.96 * f.Ea_se
        true300 = A * np.exp(-Ea / (KB * 300))
        assert f.y_extrap_lo < true300 * 3
        assert f.y_extrap_hi > true300 / 3
        assert not f.non_arrhenius or f.p_value < 0.01
    assert hits >= 42  # ~95 % of 50
    f = arrhenius_fit(T, *_noisy(A * np.exp(-Ea / (KB * T)), 0.05, 1))
    assert f.Ea == pytest.approx(Ea, abs=3 * f.Ea_se)
    assert f.y_extrap_lo < A * np.exp(-Ea / (KB * 300)) < f.y_extrap_hi


def test_sigma_T_form_extrapolates_sigma():
    Ea, A = 0.3, 5e5  # σT = A exp(−Ea/kT)
    s = A * np.exp(-Ea / (KB * T)) / T
    f = arrhenius_fit(T, s, 0.02 * s, times_T=True)
    assert f.Ea == pytest.approx(Ea, rel=1e-6)
    assert f.y_extrap == pytest.approx(A * np.exp(-Ea / (KB * 300)) / 300, rel=1e-6)


def test_curved_vtf_data_are_flagged():
    D = 1e-3 * np.exp(-800.0 / (T - 350.0))
    f = arrhenius_fit(T, *_noisy(D, 0.03, 2))
    assert f.non_arrhenius, f
    assert f.vtf_aic < f.aic
    assert 250 < f.vtf_T0 < 450


def test_straight_data_not_flagged():
    f = arrhenius_fit(T, *_noisy(1e-3 * np.exp(-0.2 / (KB * T)), 0.03, 3))
    assert not f.non_arrhenius, f.reason


def test_too_few_temperatures():
    with pytest.raises(AnalysisError, match="at least 2 temperatures"):
        arrhenius_fit([500.0], [1e-5], [1e-6])
