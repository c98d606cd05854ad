"""Arrhenius and VTF fits of D(T) (or σT) weighted by the per-point uncertainties.

Arrhenius: ``ln y = ln A − Ea/(k_B T)``, weighted linear least squares in ``1/T`` with
``σ_ln y = SE(y)/y``; the parameter covariance is scaled by the reduced χ² when it exceeds 1.
VTF: ``ln y = ln A − B/(T − T0)``, ``T0`` scanned on a grid below ``min T`` (linear WLS at
each ``T0``).  Models are compared with AIC = χ² + 2k and BIC = χ² + k ln n.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from ssehpc import units
from ssehpc.analysis.msd import AnalysisError

#: ΔAIC (Arrhenius − VTF) above which the data are flagged non-Arrhenius.
DELTA_AIC_FLAG = 4.0
#: p-value of the Arrhenius χ² below which the data are flagged non-Arrhenius.
P_FLAG = 0.01


@dataclass(frozen=True)
class ArrheniusFit:
    """Fit results.  ``Ea`` in eV, ``prefactor`` in the unit of ``y``; ``y300`` (``lo``/``hi``:
    95 % interval) is the model value at ``T_extrap`` K (for σT fits divide by T yourself:
    :func:`arrhenius_fit` with ``times_T=True`` already does)."""

    Ea: float
    Ea_se: float
    prefactor: float
    ln_prefactor_se: float
    chi2: float
    dof: int
    p_value: float
    aic: float
    bic: float
    T_extrap: float
    y_extrap: float
    y_extrap_lo: float
    y_extrap_hi: float
    vtf_A: float  # noqa: N815 (unit or symbol in the name)
    vtf_B: float  # noqa: N815 (unit or symbol in the name)
    vtf_T0: float  # noqa: N815 (unit or symbol in the name)
    vtf_aic: float
    vtf_bic: float
    non_arrhenius: bool
    reason: str


def _wls(x: np.ndarray, y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    X = np.column_stack([np.ones_like(x), x])
    W = 1.0 / s**2
    M = X.T @ (X * W[:, None])
    cov = np.linalg.inv(M)
    beta = cov @ (X.T @ (W * y))
    chi2 = float(np.sum(W * (y - X @ beta) ** 2))
    return beta, cov, chi2


def arrhenius_fit(
    T: ArrayLike, y: ArrayLike, y_se: ArrayLike, *, T_extrap: float = 300.0, times_T: bool = False
) -> ArrheniusFit:
    """Weighted Arrhenius (and VTF) fit.

    Args:
        T: temperatures, K.
        y: D (cm²/s) or σ (mS/cm) per temperature.
        y_se: standard errors of ``y``.
        T_extrap: temperature of the extrapolation, K.
        times_T: fit ``σT`` instead of ``y`` (the Arrhenius form of conductivity); the
            extrapolated value is returned as ``y`` again.

    Raises:
        AnalysisError: fewer than 2 temperatures, non-positive values or errors.
    """
    T = np.asarray(T, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    se = np.asarray(y_se, dtype=np.float64)
    ok = np.isfinite(y) & np.isfinite(se) & (y > 0) & (se > 0)
    T, y, se = T[ok], y[ok], se[ok]
    if np.unique(T).size < 2:
        raise AnalysisError(
            f"an Arrhenius fit needs at least 2 temperatures with positive values, got {T.size}"
        )
    yy = y * T if times_T else y
    ly, sl = np.log(yy), se / y
    x = 1.0 / T
    beta, cov, chi2 = _wls(x, ly, sl)
    n = T.size
    dof = n - 2
    scale = max(1.0, chi2 / dof) if dof > 0 else 1.0
    cov = cov * scale
    p = float(stats.chi2.sf(chi2, dof)) if dof > 0 else 1.0
    xe = np.array([1.0, 1.0 / T_extrap])
    lext = float(xe @ beta)
    lext_se = float(np.sqrt(xe @ cov @ xe))
    q = stats.t.ppf(0.975, dof) if (dof > 0 and scale > 1.0) else stats.norm.ppf(0.975)
    div = T_extrap if times_T else 1.0
    aic, bic = chi2 + 4.0, chi2 + 2.0 * np.log(n)
    # VTF: scan T0 (needs ≥ 4 points for a residual degree of freedom beyond Arrhenius's).
    v_A = v_B = v_T0 = v_aic = v_bic = np.nan
    if n >= 4:
        best = (np.inf, 0.0, np.zeros(2))
        for T0 in np.linspace(0.0, 0.98 * T.min(), 200)[1:]:
            b, _, c2 = _wls(1.0 / (T - T0), ly, sl)
            if b[1] < 0 and c2 < best[0]:
                best = (c2, T0, b)
        if np.isfinite(best[0]):
            v_T0, v_A, v_B = best[1], float(np.exp(best[2][0])), float(-best[2][1])
            v_aic, v_bic = best[0] + 6.0, best[0] + 3.0 * np.log(n)
    reasons = []
    if dof > 0 and p < P_FLAG:
        reasons.append(f"Arrhenius χ²={chi2:.1f} for {dof} dof (p={p:.2g})")
    if np.isfinite(v_aic) and aic - v_aic > DELTA_AIC_FLAG:
        reasons.append(f"VTF preferred: ΔAIC={aic - v_aic:.1f}, T0={v_T0:.0f} K")
    return ArrheniusFit(
        Ea=float(-beta[1] * units.KB),
        Ea_se=float(np.sqrt(cov[1, 1]) * units.KB),
        prefactor=float(np.exp(beta[0])),
        ln_prefactor_se=float(np.sqrt(cov[0, 0])),
        chi2=chi2,
        dof=dof,
        p_value=p,
        aic=float(aic),
        bic=float(bic),
        T_extrap=T_extrap,
        y_extrap=float(np.exp(lext)) / div,
        y_extrap_lo=float(np.exp(lext - q * lext_se)) / div,
        y_extrap_hi=float(np.exp(lext + q * lext_se)) / div,
        vtf_A=v_A,
        vtf_B=v_B,
        vtf_T0=float(v_T0),
        vtf_aic=float(v_aic),
        vtf_bic=float(v_bic),
        non_arrhenius=bool(reasons),
        reason="; ".join(reasons),
    )
