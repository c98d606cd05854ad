"""``ssehpc screen STORE``: classify committee frames, select diverse candidates, export them.

Registered in :mod:`ssehpc.cli` as ``app.command("screen")(screen)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table


def _pct(x: float | None) -> str:
    return "-" if x is None or x != x else f"{100.0 * x:.1f} %"


def screen(
    store: Annotated[Path, typer.Argument(help="Zarr store (a run or a campaign).", show_default=False)],
    trust_lo: Annotated[
        float | None,
        typer.Option("--trust-lo", help="Lower trust level, eV/Å (default: the runs' spec, else 0.05)."),
    ] = None,
    trust_hi: Annotated[
        float | None,
        typer.Option("--trust-hi", help="Upper trust level, eV/Å (default: the runs' spec, else 0.15)."),
    ] = None,
    max_per_run: Annotated[int, typer.Option("--max-per-run", help="Most candidates per run.", min=0)] = 20,
    max_total: Annotated[int, typer.Option("--max-total", help="Most candidates in all.", min=0)] = 200,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the candidate subsampling.", min=0)] = 0,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Extended XYZ of the candidates (default: <store>_candidates.extxyz)."),
    ] = None,
    plots: Annotated[
        Path | None, typer.Option("--plots", help="Write the deviation histogram PNG into this folder.")
    ] = None,
    write: Annotated[
        bool, typer.Option("--write/--no-write", help="Record the result in the store's screening/ group.")
    ] = True,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
) -> None:
    """Committee screening: accurate / candidate / failed frames per run, diverse candidates as extxyz."""
    from ssehpc.cli import EXIT_BAD_INPUT, _err_console, _errors, _one_line
    from ssehpc.screen.config import ACCURATE, CANDIDATE, FAILED
    from ssehpc.screen.screening import export_candidates, screen_store, write_screening

    console = Console(highlight=False, soft_wrap=True)
    with _errors(debug):
        try:
            res = screen_store(
                store,
                trust_lo=trust_lo,
                trust_hi=trust_hi,
                max_per_run=max_per_run,
                max_total=max_total,
                seed=seed,
            )
        except ValueError as exc:
            _err_console().print(f"error: {_one_line(exc)}", markup=False)
            raise typer.Exit(EXIT_BAD_INPUT) from None
        if not res.runs:
            reasons = "; ".join(f"{k}: {v}" for k, v in res.skipped.items()) or "no runs"
            _err_console().print(
                f"error: store '{store}' has no committee run with frames ({reasons})", markup=False
            )
            raise typer.Exit(EXIT_BAD_INPUT)
        table = Table(
            title=f"Committee screening (trust_lo {res.trust_lo:g}, trust_hi {res.trust_hi:g} eV/Å)"
        )
        for col in (
            "run",
            "status",
            "T (K)",
            "frames",
            "accurate",
            "candidate",
            "failed",
            "max ε (eV/Å)",
            "picked",
        ):
            table.add_column(col, justify="left" if col in ("run", "status") else "right")
        for r in res.runs:
            table.add_row(
                r.run_id,
                r.status,
                "-" if r.temperature_K is None else f"{r.temperature_K:g}",
                str(r.n_configurations),
                _pct(r.fraction(ACCURATE)),
                _pct(r.fraction(CANDIDATE)),
                _pct(r.fraction(FAILED)),
                f"{r.max_force_dev:.3g}",
                str(len(r.selected)),
            )
        tot = res.totals()
        table.add_section()
        table.add_row(
            "all",
            "",
            "",
            str(tot["configurations"]),
            _pct(tot["accurate_fraction"]),
            _pct(tot["candidate_fraction"]),
            _pct(tot["failed_fraction"]),
            f"{max(r.max_force_dev for r in res.runs):.3g}",
            str(tot["selected"]),
        )
        console.print(table)
        for rid, why in res.skipped.items():
            console.print(f"note: skipped run {rid}: {why}", markup=False)
        path = (
            out if out is not None else store.parent / f"{store.name.removesuffix('.zarr')}_candidates.extxyz"
        )
        n = export_candidates(res, path)
        console.print(f"exported {n} candidates to {path}", markup=False)
        if write:
            group = write_screening(res, export=path)
            console.print(f"wrote {store}/{group}", markup=False)
        if plots is not None:
            from ssehpc.screen.plots import plot_deviation_histogram

            try:
                fn = plot_deviation_histogram(res, Path(plots) / "deviation_histogram.png")
            except ImportError:
                console.print("note: matplotlib is not installed; no plots", markup=False)
            else:
                console.print(f"wrote {fn}", markup=False)
