"""``ssehpc structure STORE``: RDF, coordination, polyanions, rotation, hops and sites per run.

Registered in :mod:`ssehpc.cli` as ``app.command("structure")(structure)``. Results go to the
store's ``analysis/structure/<run_id>/`` groups (:func:`ssehpc.analysis.structure.to_datasets`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from ssehpc.analysis.structure import StructureAnalysis


def _fmt(v: float, spec: str = ".3g") -> str:
    return "-" if v is None or not math.isfinite(v) else format(v, spec)


def structure(
    store: Annotated[Path, typer.Argument(help="Run store (a campaign store or an ssehpc md store).")],
    run: Annotated[
        list[str] | None, typer.Option("--run", help="Run id (repeatable); default every run with frames.")
    ] = None,
    species: Annotated[str, typer.Option(help="Mobile ion for hops and sites.")] = "Li",
    center: Annotated[str, typer.Option(help="Polyanion centre element.")] = "P",
    ligand: Annotated[str, typer.Option(help="Polyanion ligand element.")] = "S",
    bond_cutoff: Annotated[float, typer.Option(help="Centre–ligand bond cutoff, Å.")] = 2.4,
    r_max: Annotated[float | None, typer.Option(help="RDF range, Å (default 8).")] = None,
    stride: Annotated[int, typer.Option(min=1, help="Use every n-th frame.")] = 1,
    hop_threshold: Annotated[float, typer.Option(help="Hop distance threshold, Å.")] = 1.5,
    rotation_threshold: Annotated[
        float, typer.Option(help="Rotation event angle threshold, degrees.")
    ] = 60.0,
    smooth: Annotated[
        int, typer.Option(min=1, help="Frames of the moving average before event detection.")
    ] = 5,
    r_cut: Annotated[float, typer.Option(help="Hop–rotation neighbourhood, Å.")] = 4.0,
    window: Annotated[int, typer.Option(min=0, help="Hop–rotation coincidence window, ± frames.")] = 5,
    sites: Annotated[
        Path | None,
        typer.Option(
            "--sites",
            help="Reference sites: a structure file (e.g. the prototype's CIF, partial occupancies "
            "included) whose --species atoms are the sites; default the first frame.",
        ),
    ] = None,
    plots: Annotated[
        Path | None, typer.Option("--plots", help="Write PNG plots into this directory.")
    ] = None,
    write: Annotated[
        bool, typer.Option("--write/--no-write", help="Write results into the store's analysis/ group.")
    ] = True,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
) -> None:
    """Structure of runs: partial RDFs and coordination numbers, polyanion units (PS4/P2S7/P2S6),
    PS4 rotational autocorrelation, Li hops and their correlation with PS4 rotations, site occupancy,
    self relaxation (F_s, tau_alpha, MSD exponent: has a melt melted?)."""
    from rich.console import Console
    from rich.table import Table

    from ssehpc.cli import EXIT_BAD_INPUT, _err_console, _errors, _one_line

    out = Console(highlight=False, soft_wrap=True)
    with _errors(debug):
        from ssehpc.analysis.msd import AnalysisError
        from ssehpc.analysis.structure import analyze_run, write_structure_analysis
        from ssehpc.io.structure import read_structure
        from ssehpc.io.zarr_store import ZarrStore

        reference = read_structure(sites, check=False) if sites is not None else None
        zs = ZarrStore.open(store, "r")
        unknown = sorted(set(run or []) - set(zs.runs))
        if unknown:
            _err_console().print(
                f"error: no run {', '.join(unknown)} in store '{store}' (runs: {', '.join(zs.runs) or 'none'})",
                markup=False,
            )
            raise typer.Exit(EXIT_BAD_INPUT)
        run_ids = list(run) if run else [r for r in zs.runs if zs.run(r).n_frames >= 1]
        if not run_ids:
            _err_console().print(f"error: store '{store}' has no run with frames", markup=False)
            raise typer.Exit(EXIT_BAD_INPUT)
        for rid in run_ids:
            try:
                res = analyze_run(
                    zs.run(rid),
                    species=species,
                    center=center,
                    ligand=ligand,
                    bond_cutoff=bond_cutoff,
                    r_max=r_max,
                    stride=stride,
                    hop_threshold=hop_threshold,
                    rotation_threshold_deg=rotation_threshold,
                    smooth=smooth,
                    r_cut=r_cut,
                    window=window,
                    sites=reference,
                )
            except AnalysisError as exc:
                _err_console().print(f"error: run {rid}: {_one_line(exc)}", markup=False)
                raise typer.Exit(EXIT_BAD_INPUT) from None
            t = Table(title=f"{rid}: coordination ({res.rdf.n_frames} frames)")
            for c in ("pair", "first peak (Å)", "first min (Å)", "CN"):
                t.add_column(c)
            for (a, b), cn in sorted(res.rdf.cn.items()):
                rmin = res.rdf.r_min.get((a, b), res.rdf.r_min.get((b, a), math.nan))
                rpk = res.rdf.r_peak.get((a, b), res.rdf.r_peak.get((b, a), math.nan))
                t.add_row(f"{a}-{b}", _fmt(rpk), _fmt(rmin), _fmt(cn))
            out.print(t)
            if res.units is not None:
                u = Table(title=f"{rid}: {center}{ligand} units per frame")
                for c in ("unit", "count", "share of units", f"share of {center}"):
                    u.add_column(c)
                for k in sorted(res.units.counts):
                    u.add_row(
                        k,
                        _fmt(res.units.counts[k]),
                        _fmt(res.units.unit_fraction[k], ".3f"),
                        _fmt(res.units.center_fraction[k], ".3f"),
                    )
                out.print(u)
                out.print(
                    f"{rid}: {ligand} outside every {center} unit: {_fmt(res.units.free_ligands)} per frame; "
                    f"{ligand}-{ligand} bonds (< {res.units.ligand_cutoff:g} Å): {_fmt(res.units.ligand_bonds)} per frame",
                    markup=False,
                )
            d = Table(title=f"{rid}: dynamics")
            d.add_column("quantity")
            d.add_column("value")
            if res.rotation is not None:
                d.add_row(
                    "tau C1 / C2 (ps)",
                    f"{_fmt(res.rotation.tau1_fs / 1e3)} / {_fmt(res.rotation.tau2_fs / 1e3)}",
                )
            if res.hops is not None:
                rate = len(res.hops) / (res.hops.n_tracked * res.duration_fs / 1e3)
                d.add_row(f"{species} hops", f"{len(res.hops)} ({_fmt(rate)} per ion per ps)")
            if res.rotations is not None:
                d.add_row(f"{center}{ligand}4 rotation events", str(len(res.rotations)))
            if res.correlation is not None:
                c = res.correlation
                d.add_row(
                    f"P(rotation within {c.r_cut:g} Å, ±{c.window_fs:g} fs | hop)",
                    f"{_fmt(c.p_observed)} (random {_fmt(c.p_random)}, x{_fmt(c.enhancement)})",
                )
            if res.sites is not None:
                where = "reference" if sites is not None else "first-frame"
                d.add_row(f"{species} on {where} sites", _fmt(res.sites.on_site_fraction, ".3f"))
                for label, occ in res.sites.label_occupancy.items():
                    d.add_row(f"  mean occupancy of {label} sites", _fmt(occ, ".3f"))
            if res.density is not None and res.n_frames >= 2:
                dn = res.density
                m2, s2 = dn.second_half
                d.add_row(
                    "density (g/cm3)",
                    f"{m2:.3f} ± {s2:.3f} over the second half, drift {dn.drift:+.3f} over its last "
                    f"quarter; {dn.g_cm3[0]:.3f} -> {dn.g_cm3[-1]:.3f}",
                )
            elif res.density is not None:
                d.add_row("density (g/cm3)", f"{res.density.mean:.3f}")
            for x, rl in res.relaxation.items():
                d.add_row(
                    f"{x} self relaxation (q = {rl.q:.2f} 1/Å)",
                    f"tau_alpha {_fmt(rl.tau_alpha_fs / 1e3)} ps, MSD exponent {_fmt(rl.alpha, '.2f')}, "
                    f"D {_fmt(rl.d_cm2_s)} cm2/s, {'relaxed' if rl.relaxed else 'NOT relaxed'} in "
                    f"{_fmt(rl.duration_fs / 1e3)} ps",
                )
            out.print(d)
            for note in res.notes:
                out.print(f"note: {rid}: {note}", markup=False)
            if write:
                groups = write_structure_analysis(store, res)
                out.print(f"wrote {store}/analysis/structure/{rid}/ ({len(groups)} datasets)", markup=False)
            if plots is not None:
                files = _plot(res, plots)
                out.print(f"wrote {len(files)} plots to {plots}", markup=False)


def _plot(res: StructureAnalysis, outdir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outdir.mkdir(parents=True, exist_ok=True)
    files = []
    fig, ax = plt.subplots(figsize=(5, 4))
    for (a, b), g in sorted(res.rdf.g.items()):
        ax.plot(res.rdf.r, g, label=f"{a}-{b}")
    ax.set(xlabel="r (Å)", ylabel="g(r)", title=res.run_id)
    ax.legend(fontsize=6)
    fn = outdir / f"rdf_{res.run_id}.png"
    fig.savefig(fn, dpi=100, bbox_inches="tight")
    plt.close(fig)
    files.append(fn)
    rot = res.rotation
    if rot is not None:
        fig, ax = plt.subplots(figsize=(5, 4))
        ax.plot(rot.time_fs / 1e3, rot.c1, label="C1")
        ax.plot(rot.time_fs / 1e3, rot.c2, label="C2")
        ax.set(xlabel="t (ps)", ylabel="C_l(t)", title=f"{res.run_id}: rotation")
        ax.legend()
        fn = outdir / f"rotation_{res.run_id}.png"
        fig.savefig(fn, dpi=100, bbox_inches="tight")
        plt.close(fig)
        files.append(fn)
    return files
