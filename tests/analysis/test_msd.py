"""FFT MSD, per-direction MSD, drift removal, out-of-core blocks, σ by hand."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from synthetic import free_walk, run_msd_from

from ssehpc.analysis.fit import fit_window
from ssehpc.analysis.msd import AnalysisError, msd_direct, msd_fft, msd_from_positions
from ssehpc.analysis.transport import nernst_einstein_mS_cm, run_transport


def test_fft_msd_equals_direct():
    x = np.random.default_rng(0).normal(size=(37, 5, 3)).cumsum(axis=0)
    np.testing.assert_allclose(msd_fft(x), msd_direct(x), rtol=1e-10, atol=1e-10)


def test_per_direction_msd_is_isotropic():
    x = free_walk(np.random.default_rng(1), 200, 400, D=0.05)
    m = msd_fft(x).mean(axis=1)[1:100]  # [lag, 3]
    ratio = m / m.mean(axis=1, keepdims=True)
    assert np.all(np.abs(ratio - 1) < 0.1)
    np.testing.assert_allclose(m.sum(axis=1), 6 * 0.05 * np.arange(1, 100), rtol=0.1)


def test_out_of_core_blocks_match_in_memory():
    x = free_walk(np.random.default_rng(2), 40, 120, D=0.05)
    mobile = np.arange(40) < 30
    ref = ~mobile
    a = msd_from_positions(x, mobile=mobile, reference=ref)
    xd = da.from_array(x, chunks=(16, 40, 3))
    # budget 1 byte: one atom per read and per FFT block; the second budget reads all 30 atoms in
    # one pass and runs the FFT on sub-blocks of 2 (several FFT blocks inside one read block)
    for budget in (1, 2 * 120 * 3 * 128 * 2):
        b = msd_from_positions(xd, mobile=mobile, reference=ref, memory_budget_bytes=budget)
        for u, v in zip(a, b, strict=True):
            np.testing.assert_allclose(u, v, rtol=1e-12, atol=1e-12)


def test_framework_drift_removal_leaves_D_unchanged():
    rng = np.random.default_rng(3)
    D = 0.05
    walkers = free_walk(rng, 48, 300, D)
    framework = np.zeros((300, 48, 3)) + rng.normal(scale=0.05, size=(300, 48, 3))  # vibrating, immobile
    x = np.concatenate([walkers, framework], axis=1)
    mobile = np.arange(96) < 48
    drift = (np.arange(300)[:, None] * np.array([0.3, -0.1, 0.2]))[:, None, :]  # 0.3 Å/fs uniform drift
    clean = run_transport(run_msd_from(x, mobile, drift="framework"))
    drifted = run_transport(run_msd_from(x + drift, mobile, drift="framework"))
    assert drifted.D_cm2_s == pytest.approx(clean.D_cm2_s, rel=1e-3)
    assert abs(drifted.D_cm2_s / 0.1 - D) < 3 * drifted.D_se / 0.1
    with pytest.raises(AnalysisError, match="never becomes diffusive"):  # drift dominates without removal
        run_transport(run_msd_from(x + drift, mobile, drift="none"))


def test_sigma_by_hand_and_haven_ratio_of_independent_walkers():
    rng = np.random.default_rng(4)
    D, N, V, T = 0.02, 64, 2000.0, 500.0
    x = free_walk(rng, N, 1000, D)
    data = run_msd_from(x, volume=V, T=T)
    fit = run_transport(data)
    # By hand in SI: σ = slope / (6 V k_B T), slope of <|Σ q Δr|²> in (e·Å)²/fs.
    e, kB = 1.602176634e-19, 1.380649e-23
    slope_si = fit.sigma.slope * (e * 1e-10) ** 2 / 1e-15  # C²m²/s
    sigma_S_m = slope_si / (6 * V * 1e-30 * kB * T)
    assert fit.sigma_mS_cm == pytest.approx(sigma_S_m * 10, rel=1e-6)  # 1 S/m = 10 mS/cm
    # Independent walkers: σ = σ_NE (Haven ratio 1) within the error.
    ne = nernst_einstein_mS_cm(fit.D_cm2_s, N, 1.0, V, T)
    true = nernst_einstein_mS_cm(D * 0.1, N, 1.0, V, T)
    assert abs(fit.sigma_mS_cm - true) < 3 * fit.sigma_se
    assert abs(ne - true) < 3 * fit.D_se / fit.D_cm2_s * ne
    assert fit.D_cm2_s == pytest.approx(D * 0.1, rel=0.1)  # 1 Å²/fs = 0.1 cm²/s


def test_too_few_frames_is_named():
    m = np.arange(6) * 1.0
    with pytest.raises(AnalysisError, match="too few frames for the fit window"):
        fit_window(m)
    with pytest.raises(AnalysisError, match="at least 2 frames"):
        msd_fft(np.zeros((1, 2, 3)))


def test_replica_combination_inflates_disagreeing_replicas():
    from ssehpc.analysis.transport import combine

    est, se, lo, hi = combine([1.0, 1.02], [0.05, 0.05], [1, 1], [15, 15])
    assert est == pytest.approx(1.01)
    assert se == pytest.approx(0.05 / np.sqrt(2))  # consistent replicas: plain combination
    assert lo < est < hi
    _, se_bad, _, _ = combine([1.0, 2.0], [0.05, 0.05], [1, 1], [15, 15])
    assert se_bad == pytest.approx(0.5)  # Birge ratio √(χ²/(R−1)) = 10 → half the spread


def test_msd_is_computed_locally_with_a_distributed_client(tmp_path) -> None:
    """With a distributed Client as the default scheduler (a campaign controller analysing its
    store), the out-of-core MSD must still fill this process's arrays (it once read garbage)."""
    distributed = pytest.importorskip("distributed")
    rng = np.random.default_rng(3)
    x = np.cumsum(rng.normal(size=(60, 8, 3)), axis=0).astype(np.float32)
    want = msd_fft(x.astype(np.float64)).mean(axis=1)
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as c,
        distributed.Client(c),
    ):
        got = msd_from_positions(da.from_array(x, chunks=(16, 8, 3)), mobile=np.ones(8, dtype=bool))
    np.testing.assert_allclose(np.asarray(got[0]), want, rtol=1e-10, atol=1e-10)
