"""Scratch: time one MD step of LJ argon with each kernel stage of ``lj_kernels.py``.

Stages are cumulative (see ``lj_kernels.STAGES``).  Every stage is first checked against the
package's ``LennardJones`` on a thermally displaced configuration (energy, forces, virial), then
timed in interleaved rounds (stage order rotated each round, so load from other users spreads
over all stages); the median and the best round are reported.

    .venv/bin/python bench/experiments/kernel_ablation.py --dtype float64 --threads 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from lj_argon import make_argon  # noqa: E402
from lj_kernels import STAGES, StagedLennardJones  # noqa: E402

from ssehpc.forces import ForceCompute  # noqa: E402
from ssehpc.integrators.nve import VelocityVerlet  # noqa: E402


def _check(stage: str, cells: int, dtype: torch.dtype) -> float:
    """Largest relative deviation (energy, forces, virial) from the package's LennardJones."""
    state = make_argon(cells, dtype=torch.float64)
    g = torch.Generator().manual_seed(3)
    state.positions = state.positions + 0.15 * torch.randn(
        state.positions.shape, generator=g, dtype=torch.float64
    )
    outs = []
    for st in ("baseline", stage):
        s = state.to(dtype=dtype if st == stage else torch.float64).clone()
        fc = ForceCompute(StagedLennardJones(0.0104, 3.405, 8.5, stage=st), skin=1.0)
        fc.compute(s)
        outs.append([s.energy.double(), s.forces.double(), s.virial.double()])
    return max(float((a - b).abs().max() / b.abs().max()) for a, b in zip(outs[1], outs[0], strict=True))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dtype", default="float64")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cells", type=int, default=20)
    ap.add_argument("--steps", type=int, default=10, help="steps per timed round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--stages", nargs="+", default=list(STAGES))
    ap.add_argument(
        "--clock",
        choices=["cpu", "wall"],
        default=None,
        help="cpu (process time; default with 1 thread, insensitive to other users) or wall",
    )
    args = ap.parse_args()
    clock = (
        time.process_time
        if (args.clock or ("cpu" if args.threads == 1 else "wall")) == "cpu"
        else time.perf_counter
    )
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    runs = {}
    for stage in args.stages:
        err = _check(stage, 6, dtype)
        state = make_argon(args.cells, dtype=dtype)
        fc = ForceCompute(StagedLennardJones(0.0104, 3.405, 8.5, stage=stage), skin=1.0)
        vv = VelocityVerlet(2.0)
        fc.compute(state)
        for _ in range(3):
            vv.step_one(state, fc)
            fc.compute(state)
            vv.step_two(state, fc)
            state.step += 1
        runs[stage] = (state, fc, vv, err, [])
    for r in range(args.rounds):
        order = args.stages[r % len(args.stages) :] + args.stages[: r % len(args.stages)]
        for stage in order:
            state, fc, vv, _, times = runs[stage]
            t0 = clock()
            for _ in range(args.steps):
                vv.step_one(state, fc)
                fc.compute(state)
                vv.step_two(state, fc)
                state.step += 1
            times.append((clock() - t0) / args.steps)
    base = statistics.median(runs[args.stages[0]][4])
    print(
        f"{args.dtype}, {args.threads} thread(s), {4 * args.cells**3} atoms, load {os.getloadavg()[0]:.2f}, clock {clock.__name__}"
    )
    for stage in args.stages:
        state, fc, _, err, times = runs[stage]
        med = statistics.median(times)
        print(
            f"{stage:9s} median {med * 1e3:7.1f} ms/step (best {min(times) * 1e3:7.1f})"
            f"  {state.n_atoms / med / 1e6:6.3f} M atom-steps/s  x{base / med:5.2f}"
            f"  max rel. deviation {err:.1e}  NL builds {fc.nl.n_builds}",
            flush=True,
        )


if __name__ == "__main__":
    main()
