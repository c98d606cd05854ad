"""``ssehpc learn CONFIG.yaml``: the active-learning loop (explore → screen → label → retrain).

Registered in :mod:`ssehpc.cli` as ``app.command("learn")(learn)``; see ``docs/learning.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table


def _pct(x: float | None) -> str:
    return "-" if x is None or x != x else f"{100.0 * x:.1f} %"


def _f(x: float | None, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def learn(
    config: Annotated[Path, typer.Argument(help="Learning config (YAML).", show_default=False)],
    iterations: Annotated[
        int | None,
        typer.Option("--iterations", help="Most retrainings (overrides max_iterations).", min=0),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option("--workers", help="Dask worker processes of the local cluster.", min=1),
    ] = None,
    workdir: Annotated[
        Path | None,
        typer.Option("--workdir", help="Working directory (overrides the config's workdir)."),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
) -> None:
    """Active learning: explore with the committee, screen, label candidates with the teacher, retrain.

    Runs again resume: finished steps of finished iterations are skipped.
    """
    from ssehpc.cli import EXIT_BAD_INPUT, _err_console, _errors, _one_line
    from ssehpc.ml.learn import LearnError, run_learning

    console = Console(highlight=False, soft_wrap=True)
    with _errors(debug):
        try:
            result = run_learning(config, max_iterations=iterations, n_workers=workers, workdir=workdir)
        except LearnError as exc:
            if debug:
                raise
            _err_console().print(f"error: {_one_line(exc)}", markup=False)
            raise typer.Exit(EXIT_BAD_INPUT) from None
        table = Table(title=f"Active learning ({result.status})")
        for col in (
            "iter",
            "frames",
            "accurate",
            "candidate",
            "failed",
            "labelled",
            "label (s)",
            "held-out F MAE, meV/Å",
        ):
            table.add_column(col, justify="right")
        for s in result.iterations:
            tot = s["screen"]["totals"]
            lab = s.get("label") or {}
            tr = (s.get("train") or {}).get("errors", {}).get("heldout", {})
            err = (
                f"{tr['old']['forces_mae_meV_per_A']:.1f}→{tr['new']['forces_mae_meV_per_A']:.1f}"
                if tr.get("old") and tr.get("new")
                else "-"
            )
            table.add_row(
                str(s["iteration"]),
                str(tot["configurations"]),
                _pct(tot["accurate_fraction"]),
                _pct(tot["candidate_fraction"]),
                _pct(tot["failed_fraction"]),
                str(lab.get("n_labelled", "-")),
                _f(lab.get("wall_s"), ".0f"),
                err,
            )
        console.print(table)
        fr = " → ".join(_pct(x) for x in result.accurate_fractions)
        console.print(f"accurate fraction per exploration: {fr}", markup=False)
        console.print(f"model: {result.model}", markup=False)
        console.print(f"summary: {Path(result.workdir) / 'learning.json'}", markup=False)
