"""Transport analysis of run stores: MSD (FFT, out of core), D*, σ, Haven ratio, Arrhenius/VTF.

See ``docs/analysis.md``.
"""

from ssehpc.analysis.arrhenius import ArrheniusFit, arrhenius_fit
from ssehpc.analysis.fit import SlopeFit, fit_window, model_slope, sandwich_slope
from ssehpc.analysis.msd import AnalysisError, RunMSD, msd_direct, msd_fft, msd_from_positions, run_msd
from ssehpc.analysis.report import StoreAnalysis, analyze_store, plot_analysis, write_analysis
from ssehpc.analysis.transport import PointResult, point_transport, run_transport

__all__ = [
    "AnalysisError",
    "ArrheniusFit",
    "PointResult",
    "RunMSD",
    "SlopeFit",
    "StoreAnalysis",
    "analyze_store",
    "arrhenius_fit",
    "fit_window",
    "model_slope",
    "msd_direct",
    "msd_fft",
    "msd_from_positions",
    "plot_analysis",
    "point_transport",
    "run_msd",
    "run_transport",
    "sandwich_slope",
    "write_analysis",
]
