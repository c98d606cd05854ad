"""Tracer diffusion D*, Einstein–Helfand conductivity σ, Nernst–Einstein σ_NE and Haven ratio.

Units: D in cm²/s, σ in mS/cm.  ``1 Å²/fs = 0.1 cm²/s``; ``1 e²/(Å·fs·eV) = 1.602176634e7 mS/cm``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from ssehpc import units
from ssehpc.analysis.fit import (
    LINEARITY_TOLERANCE,
    MIN_FIT_LAGS,
    N_FIT_LAGS,
    SlopeFit,
    _interval,
    fit_window,
    he2018_rsd,
    loglog_exponent,
    model_slope,
    sandwich_slope,
)
from ssehpc.analysis.msd import AnalysisError, RunMSD

#: Å²/fs → cm²/s.
A2_PER_FS_TO_CM2_PER_S = 1e-16 / 1e-15
#: e²/(Å·fs·eV) → mS/cm  (e/(V·Å·fs) in S/m is 1.602176634e-19/1e-25 = 1.602e6; ×10 for mS/cm).
SIGMA_TO_MS_PER_CM = 1.602176634e-19 / (1e-10 * 1e-15) * 10.0


@dataclass
class RunTransport:
    """Per-run fits (D in cm²/s, σ in mS/cm)."""

    run_id: str
    D: SlopeFit
    sigma: SlopeFit | None
    window: tuple[int, int]
    D_cm2_s: float
    D_se: float
    sigma_mS_cm: float  # noqa: N815 (unit or symbol in the name)
    sigma_se: float
    weight: float
    alpha: float


def run_transport(
    data: RunMSD, *, dim: int = 3, t_start_fs: float | None = None, t_end_fs: float | None = None
) -> RunTransport:
    """Fit D* (atoms as independent units, :func:`sandwich_slope`) and σ (collective MSD, model
    covariance, :func:`model_slope`) of one run in the same fit window.

    σ is left out (``None``) when the drift reference contains the mobile ions themselves
    (a one-species system: the charge displacement relative to the centre of mass vanishes).
    """
    ks = None if t_start_fs is None else round(t_start_fs / data.dt_frame_fs)
    ke = None if t_end_fs is None else round(t_end_fs / data.dt_frame_fs)
    try:
        start, end = fit_window(data.msd, t_start=ks, t_end=ke)
    except AnalysisError as exc:
        raise AnalysisError(f"run {data.run_id!r}: {exc}") from None
    # Per-atom MSDs exist on the stored grid only: fit at grid lags inside the window.
    in_win = data.grid[(data.grid >= start) & (data.grid <= end)]
    pick = np.unique(np.linspace(0, in_win.size - 1, min(N_FIT_LAGS, in_win.size)).round().astype(int))
    lags = in_win[pick] if in_win.size else in_win
    if lags.size < MIN_FIT_LAGS:
        raise AnalysisError(
            f"run {data.run_id!r}: too few stored lags ({lags.size}) in the fit window {start}..{end}; "
            "store per-atom MSDs on a finer grid (n_grid)"
        )
    rows = np.searchsorted(data.grid, lags)
    dfit = sandwich_slope(data.per_atom[rows], lags, data.dt_frame_fs, data.n_frames, dim)
    scale_D = A2_PER_FS_TO_CM2_PER_S / (2 * dim)
    sfit = None
    sigma = sigma_se = np.nan
    if data.drift != "all" and np.isfinite(data.temperature_K):
        coll = data.collective_msd_xyz.sum(axis=1)
        sfit = model_slope(coll, lags, data.dt_frame_fs, data.n_frames, dim)
        s_scale = SIGMA_TO_MS_PER_CM / (2 * dim * data.volume_A3 * units.KB * data.temperature_K)
        sigma, sigma_se = sfit.slope * s_scale, sfit.se * s_scale
    return RunTransport(
        run_id=data.run_id,
        D=dfit,
        sigma=sfit,
        window=(start, end),
        D_cm2_s=dfit.slope * scale_D,
        D_se=dfit.se * scale_D,
        sigma_mS_cm=sigma,
        sigma_se=sigma_se,
        weight=float(data.n_atoms * data.n_frames),
        alpha=loglog_exponent(data.msd, lags),
    )


def nernst_einstein_mS_cm(D_cm2_s: float, n_ions: int, charge: float, volume_A3: float, T: float) -> float:
    """σ_NE = N q² D* / (V k_B T), mS/cm (D in cm²/s, V in Å³, T in K)."""
    D_A2_fs = D_cm2_s / A2_PER_FS_TO_CM2_PER_S
    return n_ions * charge**2 * D_A2_fs / (volume_A3 * units.KB * T) * SIGMA_TO_MS_PER_CM


def combine(
    values: list[float], ses: list[float], weights: list[float], dofs: list[float]
) -> tuple[float, float, float, float]:
    """Combine replica estimates: weights fixed by information (atoms × frames), not by the
    estimates (inverse-variance weights with SEs that scale with the estimate bias low).

    The SE is inflated by the Birge ratio ``√(χ²/(R−1))`` when the replicas scatter more than
    their SEs allow.  Returns ``(value, se, lo, hi)`` (95 %)."""
    v, s, w = np.asarray(values), np.asarray(ses), np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    est = float(w @ v)
    se = float(np.sqrt(np.sum(w**2 * s**2)))
    if v.size >= 2 and np.all(s > 0):
        chi2 = float(np.sum((v - est) ** 2 / s**2))
        se *= max(1.0, np.sqrt(chi2 / (v.size - 1)))
    dof = float(np.sum(dofs)) if np.all(np.isfinite(dofs)) else np.inf
    lo, hi = _interval(est, se, dof)
    return est, se, lo, hi


@dataclass
class PointResult:
    """Transport at one (system, temperature) point, replicas combined (cm²/s, mS/cm)."""

    system: str
    temperature_K: float  # noqa: N815 (unit or symbol in the name)
    species: str
    runs: list[str]
    n_atoms: int
    volume_A3: float  # noqa: N815 (unit or symbol in the name)
    charge: float
    D: float
    D_se: float
    D_lo: float
    D_hi: float
    sigma: float
    sigma_se: float
    sigma_lo: float
    sigma_hi: float
    sigma_NE: float  # noqa: N815 (unit or symbol in the name)
    sigma_NE_lo: float  # noqa: N815 (unit or symbol in the name)
    sigma_NE_hi: float  # noqa: N815 (unit or symbol in the name)
    haven: float
    haven_lo: float
    haven_hi: float
    rsd_he2018: float
    alpha: float
    t_fit_start_fs: float
    t_fit_end_fs: float
    per_run: list[RunTransport] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("per_run",)}


def point_transport(system: str, runs: list[RunMSD], *, dim: int = 3) -> PointResult:
    """Fit each replica of one (system, T) point and combine them."""
    if not runs:
        raise AnalysisError(f"point {system}: no runs")
    fits = [run_transport(r, dim=dim) for r in runs]
    D, D_se, D_lo, D_hi = combine(
        [f.D_cm2_s for f in fits], [f.D_se for f in fits], [f.weight for f in fits], [f.D.dof for f in fits]
    )
    notes: list[str] = []
    alpha = float(np.mean([f.alpha for f in fits]))
    if not abs(alpha - 1.0) <= LINEARITY_TOLERANCE:
        notes.append(
            f"{system} {runs[0].temperature_K:g} K: MSD not linear in the fit window (MSD ∝ t^{alpha:.2f}); "
            "D* and σ describe the fitted lags only — run longer"
        )
    T = runs[0].temperature_K
    V = float(np.mean([r.volume_A3 for r in runs]))
    n, q = runs[0].n_atoms, runs[0].charge
    if any(np.isfinite(f.sigma_mS_cm) for f in fits):
        ok = [f for f in fits if np.isfinite(f.sigma_mS_cm)]
        S, S_se, S_lo, S_hi = combine(
            [f.sigma_mS_cm for f in ok], [f.sigma_se for f in ok], [f.weight for f in ok], [np.inf] * len(ok)
        )
    else:
        S = S_se = S_lo = S_hi = np.nan
        notes.append("σ not computed: the drift reference includes the mobile ions (one-species system)")
    ne = nernst_einstein_mS_cm(D, n, q, V, T)
    ne_lo, ne_hi = nernst_einstein_mS_cm(D_lo, n, q, V, T), nernst_einstein_mS_cm(D_hi, n, q, V, T)
    if np.isfinite(S) and S > 0:
        haven = ne / S
        # Relative errors of independent-ish estimates added in quadrature (log scale).
        rel = np.hypot(D_se / D if D > 0 else np.inf, S_se / S)
        z = stats.norm.ppf(0.975)
        haven_lo, haven_hi = haven * np.exp(-z * rel), haven * np.exp(z * rel)
    else:
        haven = haven_lo = haven_hi = np.nan
    msd_end = float(np.mean([r.msd[f.window[1]] for r, f in zip(runs, fits, strict=True)]))
    rsd = he2018_rsd(msd_end, n * len(runs))
    return PointResult(
        system=system,
        temperature_K=T,
        species=runs[0].species,
        runs=[r.run_id for r in runs],
        n_atoms=n,
        volume_A3=V,
        charge=q,
        D=D,
        D_se=D_se,
        D_lo=D_lo,
        D_hi=D_hi,
        sigma=S,
        sigma_se=S_se,
        sigma_lo=S_lo,
        sigma_hi=S_hi,
        sigma_NE=ne,
        sigma_NE_lo=ne_lo,
        sigma_NE_hi=ne_hi,
        haven=haven,
        haven_lo=haven_lo,
        haven_hi=haven_hi,
        rsd_he2018=rsd,
        alpha=alpha,
        t_fit_start_fs=fits[0].D.t_start_fs,
        t_fit_end_fs=fits[0].D.t_end_fs,
        per_run=fits,
        notes=notes,
    )
