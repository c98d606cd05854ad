"""Generalised least squares of MSD(t) = a + b·t with the covariance of all-origin MSDs.

* :func:`brownian_msd_covariance` — the exact covariance of the all-origins MSD of a Gaussian
  random walk (independent increments), ``Cov(m_k, m_l) = 2 d s⁴ tr(A_k A_l)`` where ``m_k = εᵀ
  A_k ε`` is a quadratic form of the increments (the Bullerjahn et al. / kinisi idea, computed
  exactly instead of approximated).
* :func:`fit_window` — the documented fit-window rule.
* :func:`gls_line` — GLS weights ``a = (XᵀΣ⁻¹X)⁻¹XᵀΣ⁻¹``; the slope is linear in the MSD, so
  its variance follows either from the model (``aᵀΣa``) or, for independent units (atoms,
  blocks), from their scatter (:func:`sandwich_slope`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from ssehpc.analysis.msd import AnalysisError

#: Fit-window defaults (fractions of the trajectory length, see ``docs/analysis.md``).
WINDOW_END_FRACTION = 0.5
WINDOW_START_FRACTION = 0.1
#: Local exponent d ln MSD / d ln t above which the motion is still ballistic/transient.
BALLISTIC_ALPHA = 1.3
#: |α − 1| above which the MSD is reported as not linear in the fit window (α: log-log slope).
LINEARITY_TOLERANCE = 0.15
#: Lags used in a GLS fit (the covariance of many close lags is nearly singular).
N_FIT_LAGS = 24
MIN_FIT_LAGS = 4


def _trace_products(lags: NDArray[np.int64], n_frames: int) -> NDArray[np.float64]:
    """``tr(A_k A_l)`` for the all-origin MSD quadratic forms of a walk of ``n_frames`` frames."""
    return _trace_products_cached(tuple(int(k) for k in lags), int(n_frames)).copy()


@functools.lru_cache(maxsize=64)
def _trace_products_cached(lags_t: tuple[int, ...], n_frames: int) -> NDArray[np.float64]:
    lags = np.asarray(lags_t, dtype=np.int64)
    K = lags.size
    out = np.empty((K, K))
    for i in range(K):
        k = int(lags[i])
        for j in range(i, K):
            ell = int(lags[j])
            delta = np.arange(-(ell - 1), k)  # offset t' − t with overlapping windows
            ov = np.minimum(k, delta + ell) - np.maximum(0, delta)
            cnt = np.minimum(n_frames - 1 - k, n_frames - 1 - ell - delta) - np.maximum(0, -delta) + 1
            cnt = np.clip(cnt, 0, None)
            val = float(np.sum(cnt * ov.astype(np.float64) ** 2)) / ((n_frames - k) * (n_frames - ell))
            out[i, j] = out[j, i] = val
    return out


def brownian_msd_covariance(
    lags: NDArray[np.int64], n_frames: int, step_var: float, dim: int = 3
) -> NDArray[np.float64]:
    """Covariance of the all-origin MSD (directions summed) of one Gaussian random walker.

    Args:
        lags: lag indices (frames), each in ``1 .. n_frames − 1``.
        n_frames: trajectory length, frames.
        step_var: variance of one frame's displacement per direction, Å² (``2 D δt``).
        dim: number of directions summed.

    Returns:
        ``[K, K]`` covariance, Å⁴.  Divide by the number of independent walkers for a mean.
    """
    return 2.0 * dim * step_var**2 * _trace_products(np.asarray(lags, dtype=np.int64), n_frames)


def fit_window(
    msd: NDArray[np.float64],
    *,
    start_fraction: float = WINDOW_START_FRACTION,
    end_fraction: float = WINDOW_END_FRACTION,
    t_start: int | None = None,
    t_end: int | None = None,
) -> tuple[int, int]:
    """The fit window ``[start, end]`` (lag indices) of an MSD over ``T`` frames.

    Rule: ``end = ⌊end_fraction · (T − 1)⌋`` (longer lags have few independent origins);
    ``start`` is the larger of ``⌈start_fraction · end⌉`` and the first lag whose local exponent
    ``d ln MSD / d ln t`` is below :data:`BALLISTIC_ALPHA` (end of the ballistic regime).  Explicit ``t_start``/``t_end`` (lag indices) override the rule.

    Raises:
        AnalysisError: fewer than :data:`MIN_FIT_LAGS` lags in the window.
    """
    T = msd.shape[0]
    end = int(np.floor(end_fraction * (T - 1))) if t_end is None else int(t_end)
    end = min(end, T - 1)
    if t_start is None:
        start = max(1, int(np.ceil(start_fraction * end)))
        k = np.arange(1, end + 1)
        if k.size > 2:
            with np.errstate(divide="ignore", invalid="ignore"):
                alpha = np.gradient(np.log(np.maximum(msd[1 : end + 1], 1e-300)), np.log(k))
            # First lag at which the local exponent has dropped below the threshold: later
            # excursions are noise (acting on them would select windows on steep noise).
            below = np.flatnonzero(alpha < BALLISTIC_ALPHA)
            if below.size == 0:
                raise AnalysisError(
                    f"the MSD never becomes diffusive: d ln MSD/d ln t ≥ {BALLISTIC_ALPHA} at every lag up to "
                    f"{end} of {T} frames (ballistic motion or an unremoved drift; run longer or check --drift)"
                )
            start = max(start, int(k[below[0]]))
    else:
        start = int(t_start)
    if end - start + 1 < MIN_FIT_LAGS:
        raise AnalysisError(
            f"too few frames for the fit window: lags {start}..{end} of a {T}-frame trajectory "
            f"(need at least {MIN_FIT_LAGS} lags; run longer or write frames more often)"
        )
    return start, end


def fit_lags(start: int, end: int, n: int = N_FIT_LAGS) -> NDArray[np.int64]:
    """At most ``n`` lag indices evenly spread over ``[start, end]``."""
    return np.unique(np.linspace(start, end, min(n, end - start + 1)).round().astype(np.int64))


def gls_weights(
    t: NDArray[np.float64], cov: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """GLS of ``y = a + b t``: returns ``(A [2, K], (XᵀΣ⁻¹X)⁻¹ [2, 2])`` with ``(a, b) = A y``."""
    X = np.column_stack([np.ones_like(t), t])
    scale = float(np.mean(np.diag(cov)))
    c = cov / scale + 1e-10 * np.eye(len(t))
    try:
        L = np.linalg.cholesky(c)
        Xw = np.linalg.solve(L, X)
        cinv_X = np.linalg.solve(L.T, Xw)
    except np.linalg.LinAlgError:
        cinv_X = np.linalg.lstsq(c, X, rcond=None)[0]
    M = X.T @ cinv_X
    Minv = np.linalg.inv(M)
    return Minv @ cinv_X.T, Minv * scale


@dataclass(frozen=True)
class SlopeFit:
    """Slope of MSD(t), Å²/fs (or e²Å²/fs), with its standard error and a 95 % interval.

    ``dof`` is the degrees of freedom of the Student-t interval (``inf``: normal).
    """

    slope: float
    intercept: float
    se: float
    lo: float
    hi: float
    dof: float
    t_start_fs: float
    t_end_fs: float
    n_lags: int
    method: str


def _interval(est: float, se: float, dof: float, level: float = 0.95) -> tuple[float, float]:
    """Interval for a positive slope whose standard error scales with the slope itself.

    The pivot ``(b − β)/(c β)`` (``c = se/b`` the relative error) is Student-t/normal; solving
    for ``β`` gives ``[b/(1 + q c), b/(1 − q c)]`` (upper end infinite when ``q c ≥ 1``).  The
    symmetric ``b ± q·se`` under-covers because a low estimate comes with a low SE.
    """
    q = stats.norm.ppf(0.5 + level / 2) if not np.isfinite(dof) else stats.t.ppf(0.5 + level / 2, dof)
    if est <= 0 or se <= 0:
        return est - q * se, est + q * se
    c = se / est
    return est / (1.0 + q * c), (est / (1.0 - q * c) if q * c < 1.0 else np.inf)


def sandwich_slope(
    per_unit: NDArray[np.float64], lags: NDArray[np.int64], dt_fs: float, n_frames: int, dim: int = 3
) -> SlopeFit:
    """GLS slope of the unit-averaged MSD with the variance from the scatter of the units.

    Args:
        per_unit: ``[K, U]`` MSD of ``U`` independent units (atoms) at ``lags``, Å².
        lags: lag indices (frames).
        dt_fs: time between frames, fs.
        n_frames: trajectory length, frames (for the covariance model of the weights).
        dim: directions summed in the MSD.

    The weights come from :func:`brownian_msd_covariance` at the OLS slope (two iterations);
    the slope is ``b = a·m̄ = mean_u(a·m_u)``, so ``SE(b) = std_u(a·m_u)/√U`` — valid whatever the
    true covariance, for independent units.  Interval: Student t with ``U − 1`` dof.
    """
    U = per_unit.shape[1]
    if U < 2:
        raise AnalysisError("the scatter estimate needs at least 2 atoms")
    t = lags * dt_fs
    mean = per_unit.mean(axis=1)
    slope = max(float(np.polyfit(t, mean, 1)[0]), 1e-30)
    for _ in range(2):
        cov = brownian_msd_covariance(lags, n_frames, slope * dt_fs / dim, dim) / U
        A, _ = gls_weights(t, cov)
        slope = max(float(A[1] @ mean), 1e-30)
    unit_slopes = A[1] @ per_unit
    b = float(unit_slopes.mean())
    se = float(unit_slopes.std(ddof=1) / np.sqrt(U))
    lo, hi = _interval(b, se, U - 1)
    return SlopeFit(b, float(A[0] @ mean), se, lo, hi, float(U - 1), t[0], t[-1], lags.size, "gls-sandwich")


def model_slope(
    msd: NDArray[np.float64], lags: NDArray[np.int64], dt_fs: float, n_frames: int, dim: int = 3
) -> SlopeFit:
    """GLS slope of one MSD curve (e.g. the collective displacement) with the model covariance.

    ``Var(b) = aᵀΣa`` with ``Σ`` the Gaussian-random-walk covariance at the fitted slope
    (iterated to self-consistency); normal interval.  Calibrated when the displacement is
    Gaussian with independent increments in the fit window (a sum over many ions is, by the
    central limit theorem).
    """
    t = lags * dt_fs
    y = msd[lags]
    slope = max(float(np.polyfit(t, y, 1)[0]), 1e-30)
    for _ in range(3):
        cov = brownian_msd_covariance(lags, n_frames, slope * dt_fs / dim, dim)
        A, _ = gls_weights(t, cov)
        slope = max(float(A[1] @ y), 1e-30)
    cov = brownian_msd_covariance(lags, n_frames, slope * dt_fs / dim, dim)
    b = float(A[1] @ y)
    se = float(np.sqrt(A[1] @ cov @ A[1]))
    lo, hi = _interval(b, se, np.inf)
    return SlopeFit(b, float(A[0] @ y), se, lo, hi, np.inf, t[0], t[-1], lags.size, "gls-model")


def loglog_exponent(msd: NDArray[np.float64], lags: NDArray[np.int64]) -> float:
    """Exponent α of ``MSD ∝ t^α`` over ``lags`` (least squares in log-log); 1 when diffusive."""
    y = msd[lags]
    if np.any(y <= 0):
        return float("nan")
    return float(np.polyfit(np.log(lags.astype(np.float64)), np.log(y), 1)[0])


def he2018_rsd(msd_end: float, n_atoms: int, mean_sq_jump: float = 4.0) -> float:
    """Relative SD of D after He et al., npj Comput. Mater. 4, 18 (2018): ``3.43/√N_eff + 0.04``.

    Args:
        msd_end: MSD at the end of the fit window, Å² (the total squared displacement per ion).
        n_atoms: number of diffusing ions (summed over replicas).
        mean_sq_jump: squared jump length ``a²``, Å² (default 4 Å², i.e. 2 Å hops; pass the
            squared ion–ion hop distance of the material when known).

    ``N_eff = n_atoms · msd_end / a²`` is the number of effective hops.  A cross-check printed
    next to the calibrated interval, not used for it.
    """
    n_eff = max(n_atoms * msd_end / mean_sq_jump, 1e-12)
    return float(3.43 / np.sqrt(n_eff) + 0.04)
