"""Scratch: how much do atom order and pair order matter for the pair kernel?

* ``sorted``   : the package's list (pairs sorted by (i, j)), atoms in lattice order
* ``unsorted`` : the k-d tree's pair order (what skipping the final argsort in _pairs_kdtree gives)
* ``shuffled`` : atoms randomly permuted (what a diffusive system looks like after a while
                 without spatial sorting of atoms, cf. LAMMPS ``atom_modify sort``), pairs sorted

Times the package's eager ``LennardJones.forward`` and the compiled ``fdotr`` kernel of
``compile_variants.py`` on each list (best of ``--reps`` calls, CPU time with one thread).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from compile_variants import fdotr  # noqa: E402
from lj_argon import make_argon, make_forces  # noqa: E402
from scipy.spatial import cKDTree  # noqa: E402

from ssehpc.neighbors import _half_rule  # noqa: E402


def unsorted_pairs(local, r_list):
    """``_pairs_kdtree`` without its final argsort (one system, half list)."""
    pairs = cKDTree(local.positions.numpy()).query_pairs(r_list, output_type="ndarray")
    p = torch.from_numpy(pairs).to(torch.int64)
    lo, hi = torch.minimum(p[:, 0], p[:, 1]), torch.maximum(p[:, 0], p[:, 1])
    keep = lo < local.n_owned
    lo, hi = lo[keep], hi[keep]
    m = _half_rule(local, lo, hi)
    return lo[m], hi[m]


def best_time(f, reps, clock):
    f()
    best = float("inf")
    for _ in range(reps):
        t0 = clock()
        f()
        best = min(best, clock() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", type=int, default=20)
    ap.add_argument("--reps", type=int, default=7)
    args = ap.parse_args()
    torch.set_num_threads(1)
    clock = time.process_time
    compiled = torch.compile(fdotr, dynamic=False)
    base = make_argon(args.cells)
    g = torch.Generator().manual_seed(0)
    base.positions = base.positions + 0.1 * torch.randn(base.positions.shape, generator=g, dtype=base.dtype)
    print(
        f"{base.n_atoms} atoms, 1 thread, load {os.getloadavg()[0]:.2f}, best of {args.reps}, clock process_time"
    )
    for case in ("sorted", "unsorted", "shuffled"):
        state = base.clone()
        if case == "shuffled":
            state = state.index_atoms(torch.randperm(state.n_atoms, generator=g))
        fc = make_forces(1.0)
        fc.compute(state)
        nl, local = fc.nl, fc.local
        if case == "unsorted":
            i, j = unsorted_pairs(local, nl.list_cutoff)
            nl._i[: i.numel()], nl._j[: i.numel()] = i, j
        pot = fc.potential
        i, j, pos = nl.i, nl.j, local.positions
        for t in (pos, i, j):
            torch._dynamo.mark_dynamic(t, 0)
        eager = best_time(lambda pot=pot, local=local, nl=nl: pot(local, nl), args.reps, clock)
        comp = best_time(lambda pos=pos, i=i, j=j: compiled(pos, i, j), args.reps, clock)
        print(
            f"{case:9s} eager LennardJones.forward {eager * 1e3:7.1f} ms   compiled fdotr kernel {comp * 1e3:6.1f} ms",
            flush=True,
        )


if __name__ == "__main__":
    main()
