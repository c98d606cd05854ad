"""Scratch: a cheaper k-d tree half list (same pairs as ``ssehpc.neighbors._pairs_kdtree``).

Changes, one system, serial or MPI alike:

1. ``query_pairs`` already returns ``i < j``: no ``minimum``/``maximum``.
2. The tag/shift half rule is evaluated only on owned–ghost pairs (owned–owned pairs with
   ``i < j`` are always kept), instead of on every pair.
3. No final ``argsort`` by ``(i, j)`` (``locality.py`` shows the kernel is not slower on the
   k-d tree's order).

Checks that the pair *set* is identical, then times both (best of ``--reps``, CPU time).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch
from scipy.spatial import cKDTree

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from lj_argon import make_argon, make_forces  # noqa: E402

from ssehpc.neighbors import _half_rule, _pairs_kdtree  # noqa: E402


def pairs_kdtree_lean(local, r_list):
    pairs = cKDTree(local.positions.detach().numpy()).query_pairs(r_list, output_type="ndarray")
    p = torch.from_numpy(pairs)
    lo, hi = p[:, 0], p[:, 1]  # SciPy returns i < j; owned rows come first
    keep = lo < local.n_owned
    lo, hi = lo[keep], hi[keep]
    ghost = hi >= local.n_owned
    gi, gj = lo[ghost], hi[ghost]
    m = _half_rule(local, gi, gj)
    owned = ~ghost
    return torch.cat([lo[owned], gi[m]]), torch.cat([hi[owned], gj[m]])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", type=int, default=20)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    state = make_argon(args.cells)
    fc = make_forces(1.0)
    fc.compute(state)
    local, r = fc.local, fc.nl.list_cutoff
    a = _pairs_kdtree(local, r, half=True)
    b = pairs_kdtree_lean(local, r)
    n = local.n_local + 1
    same = torch.equal(torch.sort(a[0] * n + a[1]).values, torch.sort(b[0] * n + b[1]).values)
    print(
        f"{state.n_atoms} atoms, {a[0].numel()} pairs, same pair set: {same}, load {os.getloadavg()[0]:.2f}"
    )
    for name, f in (("package _pairs_kdtree", _pairs_kdtree), ("lean", None)):
        best = float("inf")
        for _ in range(args.reps):
            t0 = time.process_time()
            if f is None:
                pairs_kdtree_lean(local, r)
            else:
                f(local, r, half=True)
            best = min(best, time.process_time() - t0)
        print(f"{name:22s} {best * 1e3:7.1f} ms (CPU, best of {args.reps})")
    t0 = time.process_time()
    cKDTree(local.positions.numpy()).query_pairs(r, output_type="ndarray")
    print(f"{'of which cKDTree+query':22s} {(time.process_time() - t0) * 1e3:7.1f} ms")


if __name__ == "__main__":
    main()
