"""Cost of writing a Zarr trajectory (and checkpoints) during an LJ run, at the default intervals.

LJ argon of ``bench/lj_argon.py`` (``--atoms``, default 32,000; float64, NVE, Δt = 2 fs), run
through ``Simulation`` with the operations a spec run gets by default (``MDSpec``:
``write_interval`` = 100 steps, ``checkpoint_interval`` = 1,000 steps; both read from
``ssehpc.spec.MDSpec`` so the bench follows the defaults).  Two measurements:

1. **Components** (robust on a shared machine): the step time without operations (eager and,
   with ``--compile``, the compiled kernel: the faster the step, the larger the relative
   overhead), the cost of one ``ZarrFrameWriter`` call (gather, thermo, float32 copy), of one
   chunk commit (``RunStore.append_frames`` of a full chunk of buffered frames) and of one
   ``CheckpointWriter`` call; the overhead at the default intervals is
   ``(frame/write_interval + chunk/(write_interval·frames per chunk)) / step`` for the
   trajectory and ``checkpoint/checkpoint_interval / step`` for the checkpoints.  Each component
   is the median of ``--samples`` calls.
2. **End to end**: ``--steps`` steps with the frame writer on and off, interleaved and repeated
   ``--repeats`` times (best of each kept), at ``--interval`` (default: the spec default) — the
   direct check of 1, noisier.

    .venv/bin/python bench/zarr_overhead.py               # 32,000 atoms, ~2 min
    .venv/bin/python bench/zarr_overhead.py --compile     # also against the compiled kernel's step
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Table, append_results, describe_machine, load_average, machine_info
from lj_argon import cells_for, make_argon, make_forces

from ssehpc.integrators.nve import VelocityVerlet
from ssehpc.io.zarr_store import ZarrStore
from ssehpc.simulation import CheckpointWriter, On, Periodic, Simulation, ZarrFrameWriter
from ssehpc.spec import MDSpec

BENCH = "zarr_overhead"
GOAL_PCT = 3.0


def _defaults() -> tuple[int, int]:
    fields = MDSpec.model_fields
    return int(fields["write_interval"].default), int(fields["checkpoint_interval"].default)


def _median_time(fn: Any, samples: int) -> float:
    ts = []
    for _ in range(samples):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def _new_run(tmp: Path, name: str, state: Any) -> Any:
    store = ZarrStore.open(tmp / f"{name}.zarr", "a")
    return store.create_run(name, state, {"bench": BENCH, "dt_fs": 2.0})


def main(argv: list[str] | None = None) -> None:
    write_default, ckpt_default = _defaults()
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--atoms", type=int, default=32000, help="4·n³ atoms")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--compile", action="store_true", help="also relate the cost to the compiled step")
    ap.add_argument("--samples", type=int, default=5, help="calls per component (median)")
    ap.add_argument("--step-samples", type=int, default=20, help="steps timed for the step cost")
    ap.add_argument("--steps", type=int, default=200, help="steps per end-to-end window")
    ap.add_argument(
        "--interval", type=int, default=write_default, help="frame interval of the end-to-end run"
    )
    ap.add_argument("--repeats", type=int, default=2, help="end-to-end windows per variant (interleaved)")
    ap.add_argument("--no-save", action="store_true", help=f"do not append to bench/results/{BENCH}.jsonl")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    info = machine_info()
    print(describe_machine(info))
    print(
        f"{args.atoms} atoms, float64, {args.threads} thread(s); defaults: write_interval {write_default}, "
        f"checkpoint_interval {ckpt_default} steps\n"
    )
    initial = make_argon(cells_for(args.atoms))
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="ssehpc-zarr-") as tmpdir:
        tmp = Path(tmpdir)
        # ---------------------------------------------------------------- step cost
        step_s: dict[str, float] = {}
        for label, compiled in [("eager", False)] + ([("compiled", True)] if args.compile else []):
            state = initial.clone()
            fc = make_forces(1.0, compile=compiled)
            fc.compute(state)
            sim = Simulation(state, fc, VelocityVerlet(2.0), [])
            sim.run(3)
            t0 = time.perf_counter()
            sim.run(args.step_samples)
            step_s[label] = (time.perf_counter() - t0) / args.step_samples
        # ---------------------------------------------------------------- components
        state = initial.clone()
        fc = make_forces(1.0)
        fc.compute(state)
        run = _new_run(tmp, "components", state)
        writer = ZarrFrameWriter(run, On(()))
        ckpt = CheckpointWriter(run, On(()), at_end=False)
        sim = Simulation(state, fc, VelocityVerlet(2.0), [writer, ckpt])
        sim.run(1)
        chunk = run.frame_chunk_frames
        frame_s = _median_time(lambda: writer.frame(sim), args.samples)
        frames = [writer.frame(sim) for _ in range(chunk)]
        for k, f in enumerate(frames):
            f["step"] = k
        commit_times = []
        for _ in range(max(2, args.samples // 2)):
            t0 = time.perf_counter()
            run.append_frames(frames)
            commit_times.append(time.perf_counter() - t0)
            run.truncate(0)
        commit_s = statistics.median(commit_times)
        ckpt_s = _median_time(lambda: ckpt(sim), args.samples)
        chunk_bytes = chunk * args.atoms * 3 * 4
        for label, t_step in step_s.items():
            traj_pct = 100.0 * (frame_s / write_default + commit_s / (write_default * chunk)) / t_step
            ckpt_pct = 100.0 * (ckpt_s / ckpt_default) / t_step
            rows.append(
                {
                    "atoms": args.atoms,
                    "kernel": label,
                    "step_ms": 1e3 * t_step,
                    "frame_ms": 1e3 * frame_s,
                    "chunk_frames": chunk,
                    "chunk_MB": chunk_bytes / 1e6,
                    "commit_ms": 1e3 * commit_s,
                    "checkpoint_ms": 1e3 * ckpt_s,
                    "traj_pct": traj_pct,
                    "ckpt_pct": ckpt_pct,
                    "total_pct": traj_pct + ckpt_pct,
                    "goal_met": traj_pct <= GOAL_PCT,
                    "load": load_average()[0],
                }
            )
        # ---------------------------------------------------------------- end to end
        best: dict[str, float] = {}
        best_cpu: dict[str, float] = {}
        for rep in range(args.repeats):
            for variant in ("off", "on"):
                state = initial.clone()
                fc = make_forces(1.0)
                fc.compute(state)
                ops = []
                if variant == "on":
                    run = _new_run(tmp, f"e2e{rep}", state)
                    ops = [ZarrFrameWriter(run, Periodic(args.interval))]
                sim = Simulation(state, fc, VelocityVerlet(2.0), ops)
                sim.run(2)
                t0, c0 = time.perf_counter(), time.process_time()
                sim.run(args.steps)  # the frame buffer is committed at the end of run()
                dt, dc = time.perf_counter() - t0, time.process_time() - c0
                best[variant] = min(best.get(variant, float("inf")), dt)
                best_cpu[variant] = min(best_cpu.get(variant, float("inf")), dc)
                print(
                    f"  end-to-end repeat {rep + 1}: writer {variant}: {1e3 * dt / args.steps:.2f} ms/step "
                    f"({1e3 * dc / args.steps:.2f} CPU ms/step)",
                    file=sys.stderr,
                )
        e2e_pct = 100.0 * (best["on"] - best["off"]) / best["off"]
        e2e_cpu_pct = 100.0 * (best_cpu["on"] - best_cpu["off"]) / best_cpu["off"]

    table = Table(
        [
            ("atoms", "atoms"),
            ("kernel", "step kernel"),
            ("step_ms", "step ms"),
            ("frame_ms", "frame ms"),
            ("chunk_frames", "frames/chunk"),
            ("chunk_MB", "chunk MB"),
            ("commit_ms", "chunk commit ms"),
            ("checkpoint_ms", "checkpoint ms"),
            ("traj_pct", f"trajectory % (every {write_default})"),
            ("ckpt_pct", f"checkpoint % (every {ckpt_default})"),
            ("total_pct", "total %"),
            ("load", "load"),
        ],
        {
            "step_ms": ".2f",
            "frame_ms": ".2f",
            "chunk_MB": ".1f",
            "commit_ms": ".1f",
            "checkpoint_ms": ".1f",
            "traj_pct": ".3f",
            "ckpt_pct": ".3f",
            "total_pct": ".3f",
            "load": ".2f",
        },
    )
    for r in rows:
        table.add(r)
    print()
    table.print()
    print(
        f"\nEnd to end ({args.steps} steps, frame every {args.interval}, eager kernel, best of {args.repeats}): "
        f"writer off {1e3 * best['off'] / args.steps:.2f} ms/step, on {1e3 * best['on'] / args.steps:.2f} ms/step, "
        f"overhead {e2e_pct:+.2f} %; CPU time: off {1e3 * best_cpu['off'] / args.steps:.2f}, "
        f"on {1e3 * best_cpu['on'] / args.steps:.2f} ms/step, overhead {e2e_cpu_pct:+.2f} % "
        "(noise on a shared machine is a few %)"
    )
    for r in rows:
        print(
            f"Goal (trajectory overhead <= {GOAL_PCT} %), {r['kernel']} step: {r['traj_pct']:.3f} % -> "
            + ("met" if r["goal_met"] else "MISSED")
        )
    if not args.no_save:
        for r in rows:
            r["e2e_pct"] = e2e_pct
            r["e2e_cpu_pct"] = e2e_cpu_pct
            r["e2e_ms_off"] = 1e3 * best["off"] / args.steps
            r["e2e_ms_on"] = 1e3 * best["on"] / args.steps
        path = append_results(BENCH, rows, info, **vars(args))
        print(f"\nrows appended to {path}")


if __name__ == "__main__":
    main()
