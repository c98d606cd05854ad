"""Calibration of the D* and σ intervals on synthetic trajectories with known D.

Each family: 250 independent trajectories (16 atoms × 200 frames) through the production fit
(:func:`~ssehpc.analysis.transport.run_transport`): the 95 % intervals must contain the true D in
91–99 % of the cases and the mean estimate must be within 3 % of the truth.
"""

from __future__ import annotations

import numpy as np
import pytest
from synthetic import free_walk, lattice_hops, run_msd_from

from ssehpc.analysis.transport import A2_PER_FS_TO_CM2_PER_S, nernst_einstein_mS_cm, run_transport

N_TRAJ, N_ATOMS, N_FRAMES = 250, 16, 200
V, T = 1000.0, 300.0


def _calibrate(make, D: float) -> dict[str, float]:
    D_true = D * A2_PER_FS_TO_CM2_PER_S
    s_true = nernst_einstein_mS_cm(D_true, N_ATOMS, 1.0, V, T)  # independent ions: σ = σ_NE
    hit_D = hit_s = 0
    est = []
    for seed in range(N_TRAJ):
        fit = run_transport(
            run_msd_from(make(np.random.default_rng(seed), N_ATOMS, N_FRAMES, D), volume=V, T=T)
        )
        d_lo, d_hi = fit.D.lo * A2_PER_FS_TO_CM2_PER_S / 6, fit.D.hi * A2_PER_FS_TO_CM2_PER_S / 6
        hit_D += d_lo <= D_true <= d_hi
        scale = fit.sigma_mS_cm / fit.sigma.slope
        hit_s += fit.sigma.lo * scale <= s_true <= fit.sigma.hi * scale
        est.append(fit.D_cm2_s / D_true)
    return {"coverage_D": hit_D / N_TRAJ, "coverage_sigma": hit_s / N_TRAJ, "bias": float(np.mean(est) - 1)}


@pytest.mark.parametrize(
    ("family", "make", "D"), [("free", free_walk, 0.05), ("lattice", lattice_hops, 0.02)]
)
def test_interval_coverage(family, make, D):
    r = _calibrate(make, D)
    print(f"{family}: {r}")
    assert 0.91 <= r["coverage_D"] <= 0.99, r
    assert 0.91 <= r["coverage_sigma"] <= 0.99, r
    assert abs(r["bias"]) < 0.03, r
