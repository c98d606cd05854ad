"""Scratch: where one ssehpc MD step of LJ argon spends its time (phase timers + torch profiler).

Runs the same ``ForceCompute`` / ``VelocityVerlet`` step as ``bench/lj_argon.py``, but with the
parts of ``ForceCompute.compute`` and of ``LennardJones.forward`` (mirrored from
``ssehpc/potentials/lj.py``, forward unchanged from 1d9a219 to 360fe97) called one at a time
between timers.  Rebuilds are rare (every ~60 steps at 100 K), so the rebuild is timed on its
own and amortised with the rebuild interval measured over ``--interval-steps`` steps.

    .venv/bin/python bench/experiments/profile_step.py --threads 1 --dtype float64
    .venv/bin/python bench/experiments/profile_step.py --torch-profiler     # add the op table
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from lj_argon import CUTOFF, EPSILON, SIGMA, make_argon, make_forces  # noqa: E402

from ssehpc.forces import ForceCompute  # noqa: E402
from ssehpc.integrators.nve import VelocityVerlet  # noqa: E402
from ssehpc.neighbors import _half_rule  # noqa: E402
from ssehpc.potentials.base import pair_virial  # noqa: E402

T: dict[str, float] = defaultdict(float)

#: Clock of every timer: ``time.thread_time`` (CPU time of this thread; with one torch thread all
#: work runs here; time-slicing with other users of the cores inflates it far less than wall time,
#: though their cache pollution still shows) or ``time.perf_counter``.
CLOCK = time.thread_time


@contextmanager
def timer(key: str):
    t0 = CLOCK()
    yield
    T[key] += CLOCK() - t0


def lj_forward(pot, local, nl):
    """``LennardJones.forward`` split into timed parts (same operations, same order)."""
    with timer("pair: gather r_ij = x[j] - x[i]"):
        pos = local.positions
        dtype = pos.dtype
        i, j = nl.i, nl.j
        rij = pos[j] - pos[i]
    with timer("pair: r² = (r_ij·r_ij).sum(1)"):
        r2 = (rij * rij).sum(dim=1)
    with timer("pair: within-cutoff mask compaction"):
        within = r2 < pot.cutoff * pot.cutoff
        i, j, rij, r2 = i[within], j[within], rij[within], r2[within]
    with timer("pair: type/parameter gathers"):
        t = pot._types(local.species)
        ti, tj = t[i], t[j]
        eps = pot.epsilon.to(dtype)[ti, tj]
        sig2 = (pot.sigma.to(dtype)[ti, tj]) ** 2
    with timer("pair: LJ arithmetic (energy, force coefficient, f_j)"):
        inv_r2 = 1.0 / r2
        s6 = (sig2 * inv_r2) ** 3
        s12 = s6 * s6
        e_pair = 4.0 * eps * (s12 - s6)
        if pot.shift:
            sc6 = (sig2 / pot.cutoff**2) ** 3
            e_pair = e_pair - 4.0 * eps * (sc6 * sc6 - sc6)
        fj = (24.0 * eps * (2.0 * s12 - s6) * inv_r2)[:, None] * rij
    n_local = local.n_local
    with timer("scatter: energies index_add_ (i, j)"):
        energies = torch.zeros(n_local, dtype=dtype, device=pos.device)
        energies.index_add_(0, i, 0.5 * e_pair)
        energies.index_add_(0, j, 0.5 * e_pair)
    with timer("scatter: forces index_add_ (j, then i with -f_j)"):
        forces = torch.zeros((n_local, 3), dtype=dtype, device=pos.device)
        forces.index_add_(0, j, fj)
        forces.index_add_(0, i, -fj)
    with timer("pair: virial Σ r_ij ⊗ f_j ([P,3,3] + index_add_)"):
        virial = pair_virial(rij, fj, local.system_idx[i], local.n_systems)
    return energies, forces, virial


def step(state, fc, vv, *, count_rebuild: bool) -> bool:
    """One step, timed by part; returns whether the neighbour list was rebuilt."""
    with timer("integrator (both half kicks + drift)"):
        vv.step_one(state, fc)
    with timer("rebuild check (max displacement)"):
        rebuild = bool(fc.domain.allreduce_max(fc.nl.max_displacement(state)) > fc.nl.skin)
    if rebuild:
        with timer("rebuild: wrap + ghost images" if count_rebuild else "_rebuild"):
            fc.local = fc.domain.build_local(state, fc.ghost_width)
        with timer("rebuild: neighbour list (k-d tree)" if count_rebuild else "_rebuild"):
            fc.nl.build(fc.local, state)
    else:
        with timer("ghost update (x_owner + shift·cell, cat)"):
            fc.domain.update_ghosts(state, fc.local)
    local = fc.local
    if getattr(fc.potential, "level", 0) == 0:
        e, f, w = lj_forward(fc.potential, local, fc.nl)
    else:
        with timer(f"pair kernel, stage '{fc.potential.stage}' (all of forward)"):
            out = fc.potential(local, fc.nl)
            e, f, w = out.energies, out.forces, out.virial
    with timer("reverse sum ghosts → owners"):
        energies = fc.domain.reverse_sum(local, e)
        forces = fc.domain.reverse_sum(local, f)
    with timer("reductions, finite check, store"):
        energy = torch.zeros(state.n_systems, dtype=state.dtype)
        energy.index_add_(0, state.system_idx, energies)
        bad = ~torch.isfinite(forces).all(dim=1) | (forces.abs().amax(dim=1) > fc.max_force)
        bool(bad.any())
        state.forces, state.energy, state.virial = forces, energy, w
    with timer("integrator (both half kicks + drift)"):
        vv.step_two(state, fc)
    state.step += 1
    return rebuild


def rebuild_breakdown(state, fc, repeats: int = 3) -> dict[str, float]:
    """Seconds per rebuild, by part (wrap+ghosts, k-d tree, pair post-processing)."""
    from scipy.spatial import cKDTree

    out: dict[str, float] = defaultdict(float)
    for _ in range(repeats):
        t0 = CLOCK()
        local = fc.domain.build_local(state, fc.ghost_width)
        t1 = CLOCK()
        x = local.positions.detach().numpy()
        pairs = cKDTree(x).query_pairs(fc.nl.list_cutoff, output_type="ndarray")
        t2 = CLOCK()
        p = torch.from_numpy(pairs).to(torch.int64)
        a, b = p[:, 0], p[:, 1]
        lo, hi = torch.minimum(a, b), torch.maximum(a, b)
        keep = lo < local.n_owned
        lo, hi = lo[keep], hi[keep]
        m = _half_rule(local, lo, hi)
        i, j = lo[m], hi[m]
        t3 = CLOCK()
        order = torch.argsort(i * (local.n_local + 1) + j)
        i, j = i[order], j[order]
        t4 = CLOCK()
        out["wrap + ghost images"] += (t1 - t0) / repeats
        out["cKDTree build + query_pairs"] += (t2 - t1) / repeats
        out["drop ghost-ghost pairs + half rule"] += (t3 - t2) / repeats
        out["final argsort + gather"] += (t4 - t3) / repeats
    out["raw pairs (ghost-ghost included)"] = float(len(pairs))
    out["listed pairs"] = float(i.numel())
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", type=int, default=20)
    ap.add_argument("--dtype", default="float64")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=20, help="timed steps without a rebuild")
    ap.add_argument("--interval-steps", type=int, default=300, help="steps to measure the rebuild interval")
    ap.add_argument("--torch-profiler", action="store_true")
    ap.add_argument(
        "--stage", default="baseline", help="kernel stage of lj_kernels.py (default: the package's LJ)"
    )
    ap.add_argument(
        "--clock",
        choices=["cpu", "wall"],
        default=None,
        help="cpu (thread time; default with 1 thread) or wall (default with more)",
    )
    args = ap.parse_args()
    global CLOCK
    if (args.clock or ("cpu" if args.threads == 1 else "wall")) == "wall":
        CLOCK = time.perf_counter
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)

    # Rebuild interval with the package's own step (no timers).
    state = make_argon(args.cells, dtype=dtype)
    fc = make_forces(1.0)
    if args.stage != "baseline":
        from lj_kernels import StagedLennardJones

        fc = ForceCompute(StagedLennardJones(EPSILON, SIGMA, CUTOFF, stage=args.stage), skin=1.0)
    vv = VelocityVerlet(2.0)
    fc.compute(state)
    for _ in range(2):  # first calls (torch.compile) are not part of the interval timing
        vv.step_one(state, fc)
        fc.compute(state)
        vv.step_two(state, fc)
        state.step += 1
    b0 = fc.nl.n_builds
    t0 = CLOCK()
    for _ in range(args.interval_steps):
        vv.step_one(state, fc)
        fc.compute(state)
        vv.step_two(state, fc)
        state.step += 1
    plain = (CLOCK() - t0) / args.interval_steps
    builds = fc.nl.n_builds - b0
    interval = args.interval_steps / max(builds, 1)

    for _ in range(2):
        step(state, fc, vv, count_rebuild=False)
    T.clear()
    t0 = CLOCK()
    n = 0
    while n < args.steps:
        if step(state, fc, vv, count_rebuild=False):
            continue  # rebuild steps are accounted for separately below
        n += 1
    no_rebuild = (CLOCK() - t0) / n
    T.pop("_rebuild", None)
    parts = {k: v / n for k, v in T.items()}
    rb = rebuild_breakdown(state, fc)
    rb_parts = (
        "wrap + ghost images",
        "cKDTree build + query_pairs",
        "drop ghost-ghost pairs + half rule",
        "final argsort + gather",
    )
    rb_total = sum(rb[k] for k in rb_parts)
    amortised = rb_total / interval
    total = no_rebuild + amortised
    print(
        f"{4 * args.cells**3} atoms, {args.dtype}, {args.threads} thread(s), kernel {args.stage}, load {os.getloadavg()[0]:.2f}, "
        f"clock {CLOCK.__name__}"
    )
    print(
        f"plain step loop over {args.interval_steps} steps: {plain * 1e3:.1f} ms/step, {builds} rebuilds "
        f"(one every {interval:.0f} steps); {fc.nl.n_pairs} listed pairs, {fc.local.n_ghost} ghosts"
    )
    print(
        f"step without rebuild {no_rebuild * 1e3:.1f} ms; rebuild {rb_total * 1e3:.0f} ms, amortised "
        f"{amortised * 1e3:.1f} ms/step\n"
    )
    print("| part | ms/step | % of step |\n|---|---:|---:|")
    for k, v in sorted(parts.items(), key=lambda kv: -kv[1]):
        print(f"| {k} | {v * 1e3:.2f} | {100 * v / total:.1f} |")
    print(
        f"| timer overhead / unaccounted | {(no_rebuild - sum(parts.values())) * 1e3:.2f} | "
        f"{100 * (no_rebuild - sum(parts.values())) / total:.1f} |"
    )
    for k in rb_parts:
        print(
            f"| rebuild: {k} (÷ {interval:.0f} steps) | {rb[k] / interval * 1e3:.2f} | "
            f"{100 * rb[k] / interval / total:.1f} |"
        )
    print(
        "\nrebuild itself: "
        + ", ".join(f"{k} {rb[k] * 1e3:.0f} ms" for k in rb_parts)
        + f"; {rb['raw pairs (ghost-ghost included)']:.0f} raw pairs from the tree, {rb['listed pairs']:.0f} kept"
    )

    if args.torch_profiler:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(5):
                vv.step_one(state, fc)
                fc.compute(state)
                vv.step_two(state, fc)
                state.step += 1
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


if __name__ == "__main__":
    main()
