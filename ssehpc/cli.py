"""The ``ssehpc`` command line.

* ``ssehpc md SPEC.yaml`` — validate the spec, structure and potential, then run with a progress
  bar (steps, ns/day) and a thermo table; prints the store path at the end.
* ``ssehpc md --resume STORE`` — continue a run from its checkpoint to the spec's total steps
  (``--steps N`` extends it), appending frames.
* ``ssehpc info STORE`` — runs, status, frames, last step, simulated time, units.
* ``ssehpc campaign SPEC.yaml`` — run (or resume) a campaign of many runs on Dask
  (``docs/campaign.md``); exits non-zero if any run failed, with a summary table.
* ``ssehpc analyze STORE`` — transport (D*, σ, Haven ratio, Arrhenius) of the completed runs,
  written to the store's ``analysis/`` group (``docs/analysis.md``).
* ``ssehpc screen STORE`` — committee screening: accurate / candidate / failed frames, diverse
  candidates exported as extxyz with provenance (``docs/screening.md``).
* ``ssehpc structure STORE`` — RDFs, coordination, polyanion units and rotations, Li hops
  (``docs/structures.md``).
* ``ssehpc learn CONFIG.yaml`` — active learning: explore (campaign) → screen → label (teacher on
  Dask) → fine-tune the committee → repeat (``docs/learning.md``).

Bad input exits non-zero with a single ``error: ...`` line (``--debug`` shows the traceback).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ssehpc import __version__
from ssehpc.parallel.runtime import abort_on_error

if TYPE_CHECKING:
    from ssehpc.spec import MDRun

app = typer.Typer(
    name="ssehpc",
    help="ML-force-field molecular dynamics of solid-state electrolytes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

#: Exit codes: bad input (spec, structure, store) and a run that failed while running.
EXIT_BAD_INPUT = 2
EXIT_RUN_FAILED = 1
EXIT_INTERRUPTED = 130


def _err_console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


@contextlib.contextmanager
def _errors(debug: bool) -> Iterator[None]:
    """Turn exceptions into one ``error:`` line and an exit code (re-raise with ``debug``)."""
    from ssehpc.io.structure import StructureError
    from ssehpc.io.zarr_store import StoreError
    from ssehpc.spec import SpecError

    try:
        yield
    except (typer.Exit, typer.Abort):
        raise
    except KeyboardInterrupt:
        if debug:
            raise
        _err_console().print("error: interrupted", markup=False)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except (SpecError, StructureError, StoreError, FileNotFoundError) as exc:
        if debug:
            raise
        _err_console().print(f"error: {_one_line(exc)}", markup=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except Exception as exc:
        if debug:
            raise
        _err_console().print(f"error: {type(exc).__name__}: {_one_line(exc)}", markup=False)
        raise typer.Exit(EXIT_RUN_FAILED) from None


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"ssehpc {__version__}")
        raise typer.Exit(0)


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """ML-force-field molecular dynamics of solid-state electrolytes."""
    if os.environ.get("SSEHPC_MPI_READY"):  # started by an MPI launcher: report MPI up before any work
        from ssehpc.parallel.runtime import mark_mpi_ready, mpi_size

        mpi_size()
        mark_mpi_ready()


class _ProgressBar:
    """Rich progress bar fed by :class:`~ssehpc.simulation.Simulation`'s progress callback."""

    def __init__(self, progress: Progress, dt_fs: float, label: str) -> None:
        self.progress = progress
        self.dt_fs = dt_fs
        self.label = label
        self.task: TaskID | None = None
        self.t0 = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if self.task is None:
            self.task = self.progress.add_task(self.label, total=total, nsday="")
            self.t0 = now
        elapsed = now - self.t0
        nsday = done * self.dt_fs * 1e-6 / (elapsed / 86400.0) if elapsed > 0 and done else 0.0
        self.progress.update(self.task, completed=done, nsday=f"{nsday:.3g} ns/day" if done else "")


def _execute(mdrun: MDRun, *, show_progress: bool) -> float:
    """Run ``mdrun`` to its end; returns the wall time, s."""
    t0 = time.perf_counter()
    if not show_progress or mdrun.remaining_steps == 0:
        mdrun.execute()
        return time.perf_counter() - t0
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[nsday]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=False,
    )
    with progress:
        mdrun.simulation.progress = _ProgressBar(progress, mdrun.spec.dt_fs, mdrun.spec.run_id)
        mdrun.execute()
    return time.perf_counter() - t0


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM (Slurm time limit, ``scancel``) like Ctrl-C, so the run commits its frames and
    records status ``interrupted`` instead of dying silently as ``running``."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"terminated by signal {signum}")

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _report_failure(mdrun: MDRun) -> None:
    run = mdrun.store
    ckpt = run.attrs.get("checkpoint_step")
    kept = f"{run.n_frames} frames " + (
        "(no checkpoint)" if ckpt is None else f"and the checkpoint at step {ckpt}"
    )
    hint = "" if ckpt is None else f"; continue with: ssehpc md --resume {run.store_path}"
    if run.status == "extrapolating":  # resuming would replay the same trajectory into the same stop
        hint = f"; the model extrapolates here: screen it with ssehpc screen {run.store_path}"
    _err_console().print(
        f"run {run.run_id!r} stopped at step {mdrun.simulation.state.step} (status: {run.status}); "
        f"{kept} are kept in {run.store_path}{hint}",
        markup=False,
    )


@app.command()
def md(
    spec: Annotated[Path | None, typer.Argument(help="Run spec (YAML).", show_default=False)] = None,
    resume: Annotated[
        Path | None, typer.Option("--resume", help="Continue the run in this store from its checkpoint.")
    ] = None,
    run_id: Annotated[str | None, typer.Option("--run-id", help="Run to create or resume.")] = None,
    steps: Annotated[
        int | None, typer.Option("--steps", help="Total number of steps (overrides the spec).")
    ] = None,
    store: Annotated[Path | None, typer.Option("--store", help="Store path (overrides the spec).")] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing run of the same id.")
    ] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
    thermo: Annotated[bool, typer.Option("--thermo/--no-thermo", help="Print the thermo table.")] = True,
    threads: Annotated[
        int | None, typer.Option("--threads", help="CPU threads for torch (default: torch's choice).", min=1)
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
) -> None:
    """Run molecular dynamics from a spec, or resume a run from its store."""
    from ssehpc.spec import MDSpec, SpecError, prepare_resume, prepare_run

    out = Console(highlight=False, soft_wrap=True)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    thermo_stream = None if thermo else open(os.devnull, "w")  # noqa: SIM115 - closed below
    try:
        with _errors(debug):
            if (spec is None) == (resume is None):
                raise SpecError("give either a spec file (ssehpc md SPEC.yaml) or --resume STORE")
            if resume is not None:
                if store is not None or overwrite:
                    raise SpecError("--store and --overwrite do not apply to --resume")
                mdrun = prepare_resume(resume, run_id, steps=steps, thermo_stream=thermo_stream)
                if mdrun.store is None:
                    out = Console(file=open(os.devnull, "w"))  # noqa: SIM115 - quiet non-writer ranks
                elif mdrun.store.status == "running":
                    _err_console().print(
                        "warning: the run's status is 'running'; if another process is still running it, "
                        "stop that one first (two writers corrupt a store)",
                        markup=False,
                    )
                out.print(
                    f"resuming run {mdrun.spec.run_id!r} at step {mdrun.simulation.state.step}", markup=False
                )
            else:
                md_spec = MDSpec.from_yaml(spec)
                overrides = {
                    k: v for k, v in (("steps", steps), ("store", store), ("run_id", run_id)) if v is not None
                }
                if overrides:
                    if "store" in overrides:
                        overrides["store"] = Path(overrides["store"]).resolve()
                    md_spec = MDSpec.from_dict({**md_spec.to_json(), **overrides})
                mdrun = prepare_run(md_spec, overwrite=overwrite, thermo_stream=thermo_stream)
                if mdrun.store is None:
                    out = Console(file=open(os.devnull, "w"))  # noqa: SIM115 - quiet non-writer ranks
                out.print(
                    f"run {md_spec.run_id!r}: {mdrun.store.n_atoms if mdrun.store else 0} atoms, {md_spec.integrator.name}, "
                    f"{md_spec.steps} steps of {md_spec.dt_fs} fs -> {md_spec.store}",
                    markup=False,
                )
            domain = mdrun.simulation.forces.domain
            try:
                # An error on one MPI rank ends every rank (no rank left in a collective).
                with abort_on_error(domain), _sigterm_as_interrupt():
                    wall = _execute(
                        mdrun, show_progress=progress and domain.is_root and _err_console().is_terminal
                    )
            except BaseException:
                if mdrun.store is not None:
                    _report_failure(mdrun)
                raise
            run = mdrun.store
            if run is None:  # not the writer rank
                return
            step = mdrun.simulation.state.step
            out.print(
                f"store: {run.store_path}  run: {run.run_id}  status: {run.status}  frames: {run.n_frames}  "
                f"step: {step}  simulated: {_format_time(step * mdrun.spec.dt_fs)}  wall: {wall:.1f} s",
                markup=False,
            )
    finally:
        if thermo_stream is not None:
            thermo_stream.close()


def _format_time(fs: float | None) -> str:
    if fs is None:
        return "-"
    if fs >= 1e6:
        return f"{fs * 1e-6:.4g} ns"
    if fs >= 1e3:
        return f"{fs * 1e-3:.4g} ps"
    return f"{fs:.4g} fs"


@app.command()
def info(
    store: Annotated[Path, typer.Argument(help="Zarr store written by ssehpc.", show_default=False)],
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
) -> None:
    """Runs of a store: status, frames, last step, simulated time, units."""
    from ssehpc.io.zarr_store import ZarrStore

    out = Console(highlight=False, soft_wrap=True)
    with _errors(debug):
        zs = ZarrStore.open(store, "r")
        a = zs.attrs
        out.print(
            f"store: {store}  (schema {a.get('schema_version')}, written by ssehpc {a.get('ssehpc_version')})"
        )
        units = a.get("units") or {}
        out.print("units: " + ", ".join(f"{k} {v}" for k, v in units.items()), markup=False)
        runs = zs.runs
        if not runs:
            out.print("no runs")
        for rid in runs:
            s = zs.run(rid).summary()
            target = f" of {s['steps']}" if s.get("steps") is not None else ""
            last = "-" if s["last_step"] is None else str(s["last_step"])
            out.print(
                f"run {rid}: status {s['status']}, {s['n_frames']} frames, last step {last}{target}, "
                f"{_format_time(s['simulated_fs'])} simulated, {'-' if s['n_atoms'] is None else s['n_atoms']} atoms, {s['ensemble']}, "
                f"{s['temperature_K']} K, dt {s['dt_fs']} fs, checkpoint at step "
                f"{'-' if s['checkpoint_step'] is None else s['checkpoint_step']}",
                markup=False,
            )
            if s.get("error"):
                out.print(f"  error: {s['error']}", markup=False)


@app.command()
def campaign(
    spec: Annotated[Path, typer.Argument(help="Campaign spec (YAML).", show_default=False)],
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Resume runs recorded as failed instead of reporting them.")
    ] = False,
    workers: Annotated[
        int | None, typer.Option("--workers", help="Local worker processes (overrides the spec).", min=1)
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Validate, list the runs and build every system once; run no MD."),
    ] = False,
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler",
            help="Use a running Dask scheduler at this address instead of the spec's resources.",
        ),
    ] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress.")] = True,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
) -> None:
    """Run a campaign (systems × temperatures × replicas × stages) on Dask; run it again to resume."""
    from ssehpc.campaign import CampaignSpec, expand, run_campaign
    from ssehpc.campaign.controller import summary_line
    from ssehpc.campaign.spec import LocalResources
    from ssehpc.spec import SpecError

    out = Console(highlight=False, soft_wrap=True)
    with _errors(debug):
        cspec = CampaignSpec.from_yaml(spec)
        if workers is not None:
            if not isinstance(cspec.resources, LocalResources):
                raise SpecError("--workers applies to local resources only (Slurm: set jobs in the spec)")
            cspec = cspec.model_copy(
                update={"resources": cspec.resources.model_copy(update={"n_workers": workers})}
            )
        if dry_run:
            plan = expand(cspec)
            for run in plan.runs:
                out.print(
                    f"{run.run_id}  T={run.md['temperature_K']} K  {run.md['integrator']['name']}  "
                    f"{run.steps} steps of {run.dt_fs} fs  {run.md['potential']['name']}  seed {run.md['seed']}",
                    markup=False,
                )
            out.print(
                f"{len(plan.runs)} runs in {len(plan.chains)} replica chains -> {plan.store}", markup=False
            )
            # Build and check every system once (structure files, occupancies, charge balance,
            # species the potential knows), as the real run does before any compute.
            from ssehpc.campaign.controller import check_systems

            errors = check_systems(plan, {c.runs[0].system for c in plan.chains})
            for system_id, error in sorted(errors.items()):
                _err_console().print(f"error: system {system_id}: {error}", markup=False)
            if errors:
                raise typer.Exit(2)
            out.print(
                f"all {len({c.runs[0].system for c in plan.chains})} systems build and check", markup=False
            )
            return
        client = None
        if scheduler is not None:
            from distributed import Client

            client = Client(scheduler, timeout="30s")
        try:
            with _sigterm_as_interrupt():
                result = run_campaign(cspec, client=client, retry_failed=retry_failed, show_progress=progress)
        except KeyboardInterrupt:
            _err_console().print(
                f"campaign interrupted; runs keep their checkpoints: run `ssehpc campaign {spec}` again to resume",
                markup=False,
            )
            raise
        finally:
            if client is not None:
                client.close()
        out.print(result.table())
        out.print(summary_line(result), markup=False)
        n_extra = result.counts().get("extrapolating", 0)
        if n_extra and result.settled:
            out.print(
                f"note: {n_extra} run(s) stopped as extrapolating (committee screening): the model left its "
                "range there; `ssehpc analyze` leaves them out, `ssehpc screen` exports their candidates",
                markup=False,
            )
        if not result.settled:  # failed, or not finished
            raise typer.Exit(EXIT_RUN_FAILED)


@app.command()
def train(
    config: Annotated[Path, typer.Argument(help="Training config (YAML/JSON, fields of TrainConfig).")],
    threads: Annotated[
        int | None, typer.Option("--threads", help="CPU threads for torch (default: torch's choice).", min=1)
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
) -> None:
    """Train an ML force field (or a committee) on labelled frames; writes the model and a report."""
    with _errors(debug):
        if threads is not None:
            import torch

            torch.set_num_threads(threads)
        from ssehpc.ml.train import train_main

        train_main(config)


@app.command()
def analyze(
    store: Annotated[Path, typer.Argument(help="Zarr store (a run or a campaign).", show_default=False)],
    species: Annotated[
        str | None, typer.Option("--species", help="Mobile species (default: Li, or the only species).")
    ] = None,
    drift: Annotated[
        str, typer.Option("--drift", help="Centre-of-mass drift removed: framework, all or none.")
    ] = "framework",
    charge: Annotated[
        float | None, typer.Option("--charge", help="Charge of the mobile ion, e (default: formal charge).")
    ] = None,
    plots: Annotated[Path | None, typer.Option("--plots", help="Write PNG plots into this folder.")] = None,
    write: Annotated[
        bool, typer.Option("--write/--no-write", help="Write results into the store's analysis/ group.")
    ] = True,
    report: Annotated[
        Path | None,
        typer.Option("--report", help="Write a Markdown report (report.md + PNG plots) into this folder."),
    ] = None,
    stage: Annotated[
        list[str] | None,
        typer.Option(
            "--stage", help="Campaign stage to fit (repeatable; default: each replica chain's last stage)."
        ),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
) -> None:
    """Transport of completed runs: D*, σ, σ_NE, Haven ratio per (system, T); Arrhenius per system."""
    out = Console(highlight=False, soft_wrap=True)
    if not out.is_terminal:  # logs and pipes: whole table rows, not 80 columns
        out = Console(highlight=False, soft_wrap=True, width=200)
    with _errors(debug):
        from ssehpc.analysis.msd import AnalysisError
        from ssehpc.analysis.report import analyze_store, plot_analysis, render_tables, write_analysis

        try:
            res = analyze_store(store, species, drift=drift, charge=charge, stages=stage or None)
        except AnalysisError as exc:
            _err_console().print(f"error: {_one_line(exc)}", markup=False)
            raise typer.Exit(EXIT_BAD_INPUT) from None
        for table in render_tables(res):
            for col in table.columns:  # wrap, never cut, numbers in a narrow terminal
                col.overflow = "fold"
            out.print(table)
        for note in res.notes:
            out.print(f"note: {note}", markup=False)
        if write:
            for g in write_analysis(store, res):
                out.print(f"wrote {store}/{g}", markup=False)
        if plots is not None:
            try:
                files = plot_analysis(res, plots)
                from ssehpc.screen import plot_deviation_histogram

                with contextlib.suppress(ValueError):  # no committee runs: no deviation histogram
                    files.append(plot_deviation_histogram(store, plots / "deviation_histogram.png"))
            except ImportError:
                out.print("note: matplotlib is not installed; no plots", markup=False)
            else:
                out.print(f"wrote {len(files)} plots to {plots}", markup=False)
        if report is not None:
            try:
                from ssehpc.analysis.markdown_report import write_report

                path = write_report(store, report, analysis=res)
            except ImportError:
                out.print("note: matplotlib is not installed; no report", markup=False)
            else:
                out.print(f"wrote {path}", markup=False)


# Commands that live with their subsystems (registered once the app exists).
from ssehpc.analysis.structure_cli import structure  # noqa: E402
from ssehpc.ml.learn_cli import learn  # noqa: E402
from ssehpc.screen.cli import screen  # noqa: E402

app.command("screen")(screen)
app.command("structure")(structure)
app.command("learn")(learn)
