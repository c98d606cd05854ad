"""Controller + store overhead of a campaign, as a fraction of the pure MD time of its runs.

Goal (issue "campaign controller"): ≤ 5 %.

The same runs are timed twice in one invocation:

* **pure MD** — in this process, for each run: the state the campaign would start from (same
  structure, seed, Maxwell–Boltzmann momenta), a ``ForceCompute`` and the Langevin integrator,
  ``steps`` steps with no output at all; the sum over runs.
* **campaign** — ``run_campaign`` of the same spec on a Dask ``LocalCluster`` of one worker with
  one thread (started and warmed up before the clock starts, as a long campaign amortises it):
  spec expansion, the store, declaring the runs, Dask, per-run preparation, frames every
  ``write_interval`` steps (the campaign default, 100), checkpoints every ``checkpoint_interval``
  steps (default 1000), status updates, progress polling and the summary.  Its wall time from call
  to return.

overhead = campaign wall / Σ pure MD − 1, and the same in CPU seconds (the controller process —
which hosts the Dask scheduler — plus the nanny and worker processes, against the pure-MD
process time), which a loaded machine does not distort.  With ``--batch N`` the campaign packs N replicas per
batched task (``resources.batch.max_replicas``) and the pure-MD side runs the same batches.

Cases (``--case``): ``lips`` — β-Li₃PS₄ 192 atoms with the shipped committee (float32, 1 fs;
committee deviations computed at every frame, as a production run does); ``lj`` — 500-atom argon,
5 fs, float64.

Usage::

    .venv/bin/python bench/campaign_overhead.py --case lj
    .venv/bin/python bench/campaign_overhead.py --case lips --runs 4 --steps 2000
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Table, append_results, describe_machine, load_average, machine_info

BENCH = "campaign_overhead"
GOAL = 0.05

CASES: dict[str, dict[str, Any]] = {
    "lj": {
        "structure": {"builder": "fcc", "element": "Ar", "a": 5.26, "repeat": 5},
        "potential": {"name": "lj", "params": {"epsilon": 0.0104, "sigma": 3.405, "cutoff": 8.5}},
        "dt_fs": 5.0,
        "dtype": "float64",
        "temperature": 60.0,
        "steps": 4000,
    },
    "lips": {
        "structure": {"builder": "prototype", "name": "beta-Li3PS4", "target_atoms": 192},
        "potential": {"name": "mlff", "params": {"model": "lips"}},
        "dt_fs": 1.0,
        "dtype": "float32",
        "temperature": 600.0,
        "steps": 2000,
    },
}


def campaign_dict(case: dict[str, Any], store: Path, runs: int, steps: int, batch: int) -> dict[str, Any]:
    return {
        "name": "overhead",
        "store": str(store),
        "systems": [{"id": "sys", "structure": case["structure"]}],
        "temperatures_K": [case["temperature"]],
        "replicas": runs,
        "potential": case["potential"],
        "dt_fs": case["dt_fs"],
        "dtype": case["dtype"],
        "seed": 11,
        "stages": [
            {"name": "md", "integrator": {"name": "langevin", "params": {"damping": 100.0}}, "steps": steps}
        ],
        "resources": {
            "kind": "local",
            "n_workers": 1,
            "threads_per_worker": 1,
            "dashboard_address": ":0",
            "batch": {"max_replicas": batch},
        },
    }


def pure_md(spec: Any, batch: int) -> float:
    """Σ wall seconds of the campaign's runs as bare MD loops (no output), in this process."""
    from ssehpc import thermo
    from ssehpc.campaign import expand
    from ssehpc.forces import ForceCompute
    from ssehpc.integrators import make_integrator
    from ssehpc.io.structure import atoms_to_state
    from ssehpc.parallel.domain import SerialDomain
    from ssehpc.spec import build_potential, build_structure
    from ssehpc.state import concatenate

    torch.set_num_threads(1)
    runs = [c.runs[0] for c in expand(spec).chains]
    total = 0.0
    for k in range(0, len(runs), batch):
        group = runs[k : k + batch]
        specs = [r.mdspec() for r in group]
        states = []
        for md in specs:
            st = atoms_to_state(build_structure(md), dtype=md.torch_dtype, seed=md.seed)
            thermo.maxwell_boltzmann(st, SerialDomain(), md.temperature_K)
            states.append(st)
        state = concatenate(states)
        md = specs[0]
        forces = ForceCompute(build_potential(md), skin=md.skin)
        integ = make_integrator(
            "langevin", md.dt_fs, temperature=[s.temperature_K for s in specs], damping=100.0
        )
        t0 = time.perf_counter()
        forces.compute(state, extras=False)
        integ.attach(state, forces)
        for _ in range(md.steps):
            integ.step_one(state, forces)
            forces.compute(state, extras=False)
            integ.step_two(state, forces)
            state.step += 1
        total += time.perf_counter() - t0
    return total


def _tree_cpu_s() -> float:
    """CPU seconds (user + system) of this process and all its descendants (workers, nannies)."""
    import psutil

    me = psutil.Process()
    total = 0.0
    for p in [me, *me.children(recursive=True)]:
        try:
            t = p.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system
    return total


def _warm() -> None:
    import ssehpc.campaign.batch
    import ssehpc.campaign.task
    import ssehpc.potentials  # noqa: F401


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--case", choices=list(CASES), default="lj")
    ap.add_argument("--runs", type=int, default=4, help="replicas (runs)")
    ap.add_argument("--steps", type=int, default=None, help="MD steps per run (default per case)")
    ap.add_argument("--batch", type=int, default=1, help="replicas per batched task (1: none)")
    ap.add_argument("--repeats", type=int, default=2, help="interleaved repeats; fastest kept")
    ap.add_argument("--quick", action="store_true", help="smoke test: 2 runs, 200 steps, 1 repeat")
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.runs, args.steps, args.repeats = 2, 200, 1
    case = CASES[args.case]
    steps = args.steps or case["steps"]
    info = machine_info()
    print(describe_machine(info))

    from distributed import Client, LocalCluster

    from ssehpc.campaign import CampaignSpec, run_campaign

    tmp = Path(tempfile.mkdtemp(prefix="ssehpc-overhead-"))
    campaign_s = campaign_cpu = md_s = md_cpu = float("inf")
    try:
        with (
            LocalCluster(
                n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0"
            ) as cluster,
            Client(cluster) as client,
        ):
            client.run(_warm)
            # Interleaved (campaign, pure MD, campaign, ...), fastest of each kept: load that
            # comes and goes on a shared machine hits both sides alike.
            for k in range(args.repeats):
                spec = CampaignSpec.from_dict(
                    campaign_dict(case, tmp / f"c{k}.zarr", args.runs, steps, args.batch)
                )
                c0 = _tree_cpu_s()
                t0 = time.perf_counter()
                result = run_campaign(spec, client=client, show_progress=False)
                campaign_s = min(campaign_s, time.perf_counter() - t0)
                campaign_cpu = min(campaign_cpu, _tree_cpu_s() - c0)
                if not result.ok:
                    raise SystemExit(f"campaign failed: {result.counts()}")
                p0, t0 = time.process_time(), time.perf_counter()
                pure_md(spec, args.batch)
                md_s = min(md_s, time.perf_counter() - t0)
                md_cpu = min(md_cpu, time.process_time() - p0)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    overhead = campaign_s / md_s - 1.0
    overhead_cpu = campaign_cpu / md_cpu - 1.0
    row = {
        "case": args.case,
        "runs": args.runs,
        "steps": steps,
        "batch": args.batch,
        "repeats": args.repeats,
        "pure MD s": md_s,
        "campaign s": campaign_s,
        "overhead": 100.0 * overhead,
        "pure MD cpu s": md_cpu,
        "campaign cpu s": campaign_cpu,
        "overhead cpu": 100.0 * overhead_cpu,
        "goal": f"<= {100 * GOAL:.0f}% {'met' if min(overhead, overhead_cpu) <= GOAL else 'NOT met'}",
        "load": load_average()[0],
    }
    table = Table(
        [
            (k, k + (" %" if k.startswith("overhead") else ""))
            for k in (
                "case",
                "runs",
                "steps",
                "batch",
                "pure MD s",
                "campaign s",
                "overhead",
                "pure MD cpu s",
                "campaign cpu s",
                "overhead cpu",
                "goal",
            )
        ],
        formats=dict.fromkeys(("pure MD s", "campaign s", "pure MD cpu s", "campaign cpu s"), ".2f")
        | {"overhead": ".1f", "overhead cpu": ".1f"},
    )
    table.add(row)
    table.print()
    if not args.no_save:
        append_results(BENCH, [row], info)


if __name__ == "__main__":
    main()
