"""Scratch: which formulation of the LJ pair kernel compiles best with torch.compile (CPU)?

All variants take ``(pos [n_local, 3], i, j)`` of a half list and return per-atom energies,
forces and the virial; they differ in what the compiler can fuse:

* ``rT_f``   virial as ``r_ij^T f_j`` (an extern mm: r_ij and f_j must be materialised, [P, 3] each)
* ``fdotr``  virial as ``Σ_a x_a ⊗ F_a`` over local rows after the scatter (LAMMPS's
  ``virial_fdotr``): nothing of size [P, 3] needs to leave the fused loop
* ``fdotr1`` as ``fdotr`` but one force buffer (``+f_j`` at j, ``-f_j`` at i)

    .venv/bin/python bench/experiments/compile_variants.py --dtype float64 --threads 1
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lj_argon import make_argon, make_forces

EPS, SIG2, RC2 = 0.0104, 3.405**2, 8.5**2
_SC6 = (SIG2 / RC2) ** 3
E_SHIFT = 4 * EPS * (_SC6 * _SC6 - _SC6)


def _pair(pos, i, j):
    rij = pos.index_select(0, j) - pos.index_select(0, i)
    r2 = (rij * rij).sum(1)
    inv_r2 = 1.0 / r2
    s6 = SIG2 * inv_r2
    s6 = s6 * s6 * s6
    within = r2 < RC2
    e_half = torch.where(within, (2.0 * EPS) * (s6 * s6 - s6) - 0.5 * E_SHIFT, 0.0)
    coef = torch.where(within, (24.0 * EPS) * (2.0 * s6 * s6 - s6) * inv_r2, 0.0)
    return rij, e_half, coef[:, None] * rij


def _energies(pos, i, j, e_half):
    e = torch.zeros(pos.shape[0], dtype=pos.dtype, device=pos.device)
    e.index_add_(0, i, e_half)
    e.index_add_(0, j, e_half)
    return e


def rT_f(pos, i, j):
    rij, e_half, fj = _pair(pos, i, j)
    fa = torch.zeros_like(pos).index_add_(0, j, fj)
    fb = torch.zeros_like(pos).index_add_(0, i, fj)
    return _energies(pos, i, j, e_half), fa - fb, (rij.T @ fj)[None]


def fdotr(pos, i, j):
    _, e_half, fj = _pair(pos, i, j)
    fa = torch.zeros_like(pos).index_add_(0, j, fj)
    fb = torch.zeros_like(pos).index_add_(0, i, fj)
    f = fa - fb
    return _energies(pos, i, j, e_half), f, (pos.T @ f)[None]


def fdotr1(pos, i, j):
    _, e_half, fj = _pair(pos, i, j)
    f = torch.zeros_like(pos)
    f.index_add_(0, j, fj)
    f.index_add_(0, i, -fj)
    return _energies(pos, i, j, e_half), f, (pos.T @ f)[None]


VARIANTS = {"rT_f": rT_f, "fdotr": fdotr, "fdotr1": fdotr1}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dtype", default="float64")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cells", type=int, default=20)
    ap.add_argument("--reps", type=int, default=10)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    clock = time.process_time if args.threads == 1 else time.perf_counter
    dtype = getattr(torch, args.dtype)
    state = make_argon(args.cells, dtype=dtype)
    g = torch.Generator().manual_seed(0)
    state.positions = state.positions + 0.1 * torch.randn(state.positions.shape, generator=g).to(dtype)
    fc = make_forces(1.0)
    fc.compute(state)
    pos, i, j = fc.local.positions, fc.nl.i, fc.nl.j
    ref = rT_f(pos.double(), i, j)
    print(
        f"{args.dtype}, {args.threads} thread(s), {i.numel()} pairs, load {os.getloadavg()[0]:.2f}, clock {clock.__name__}"
    )
    for name, fn in VARIANTS.items():
        for compiled in (False, True):
            f = torch.compile(fn, dynamic=False) if compiled else fn
            for t in (pos, i, j):
                torch._dynamo.mark_dynamic(t, 0)
            t0 = time.perf_counter()
            out = f(pos, i, j)
            first = time.perf_counter() - t0
            err = max(
                float((a.double() - b).abs().max() / b.abs().max()) for a, b in zip(out, ref, strict=True)
            )
            t0 = clock()
            for _ in range(args.reps):
                f(pos, i, j)
            dt = (clock() - t0) / args.reps
            print(
                f"{name:7s} {'compiled' if compiled else 'eager   '} {dt * 1e3:7.1f} ms"
                f"  (first call {first:5.1f} s)  max rel. deviation {err:.1e}",
                flush=True,
            )


if __name__ == "__main__":
    main()
