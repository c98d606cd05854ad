"""Scratch: the LJ half-list kernel as a plain C++ loop (torch.utils.cpp_extension.load_inline).

The ceiling for "pair kernel in ssehpc": the same loop LAMMPS's ``pair_lj_cut`` runs, on ssehpc's
own neighbour list and LocalAtoms (i, j int64, positions [n_local, 3]).  Compared with the eager
package kernel and the compiled ``fdotr`` kernel; first run compiles the extension (~1 min).

    .venv/bin/python bench/experiments/cpp_kernel.py
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch
from torch.utils.cpp_extension import load_inline

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from compile_variants import fdotr  # noqa: E402
from lj_argon import make_argon, make_forces  # noqa: E402

CPP = r"""
#include <torch/extension.h>
#include <vector>

std::vector<torch::Tensor> lj_half(torch::Tensor pos, torch::Tensor i, torch::Tensor j,
                                   double eps, double sig2, double rc2, double e_shift) {
  auto n = pos.size(0);
  auto P = i.size(0);
  auto energies = torch::zeros({n}, pos.options());
  auto forces = torch::zeros({n, 3}, pos.options());
  auto virial = torch::zeros({1, 3, 3}, pos.options());
  const double* x = pos.data_ptr<double>();
  const int64_t* ii = i.data_ptr<int64_t>();
  const int64_t* jj = j.data_ptr<int64_t>();
  double* e = energies.data_ptr<double>();
  double* f = forces.data_ptr<double>();
  double w[9] = {0, 0, 0, 0, 0, 0, 0, 0, 0};
  for (int64_t p = 0; p < P; ++p) {
    const int64_t a = ii[p], b = jj[p];
    const double dx = x[3 * b] - x[3 * a], dy = x[3 * b + 1] - x[3 * a + 1], dz = x[3 * b + 2] - x[3 * a + 2];
    const double r2 = dx * dx + dy * dy + dz * dz;
    if (r2 >= rc2) continue;
    const double inv = 1.0 / r2;
    double s6 = sig2 * inv; s6 = s6 * s6 * s6;
    const double eh = 2.0 * eps * (s6 * s6 - s6) - 0.5 * e_shift;
    const double c = 24.0 * eps * (2.0 * s6 * s6 - s6) * inv;
    const double fx = c * dx, fy = c * dy, fz = c * dz;
    e[a] += eh; e[b] += eh;
    f[3 * b] += fx; f[3 * b + 1] += fy; f[3 * b + 2] += fz;
    f[3 * a] -= fx; f[3 * a + 1] -= fy; f[3 * a + 2] -= fz;
    w[0] += dx * fx; w[1] += dx * fy; w[2] += dx * fz;
    w[3] += dy * fx; w[4] += dy * fy; w[5] += dy * fz;
    w[6] += dz * fx; w[7] += dz * fy; w[8] += dz * fz;
  }
  double* wv = virial.data_ptr<double>();
  for (int k = 0; k < 9; ++k) wv[k] = w[k];
  return {energies, forces, virial};
}
"""


def main() -> None:
    torch.set_num_threads(1)
    ext = load_inline(
        "ssehpc_lj_scratch",
        cpp_sources=CPP,
        functions=["lj_half"],
        extra_cflags=["-O3", "-march=native"],
        verbose=False,
    )
    state = make_argon(20)
    g = torch.Generator().manual_seed(0)
    state.positions = state.positions + 0.1 * torch.randn(
        state.positions.shape, generator=g, dtype=state.dtype
    )
    fc = make_forces(1.0)
    fc.compute(state)
    local, nl = fc.local, fc.nl
    pos, i, j = local.positions.contiguous(), nl.i.contiguous(), nl.j.contiguous()
    sig2, rc2, eps = 3.405**2, 8.5**2, 0.0104
    sc6 = (sig2 / rc2) ** 3
    e_shift = 4 * eps * (sc6 * sc6 - sc6)
    compiled = torch.compile(fdotr, dynamic=False)
    for t in (pos, i, j):
        torch._dynamo.mark_dynamic(t, 0)
    ref = fc.potential(local, nl)
    out = ext.lj_half(pos, i, j, eps, sig2, rc2, e_shift)
    err = max(
        float((a - b).abs().max() / b.abs().max())
        for a, b in zip(out, (ref.energies, ref.forces, ref.virial), strict=True)
    )
    print(f"{i.numel()} pairs, load {os.getloadavg()[0]:.2f}; C++ vs package max rel. deviation {err:.1e}")
    cases = {
        "package LennardJones.forward (eager)": lambda: fc.potential(local, nl),
        "torch.compile fdotr kernel": lambda: compiled(pos, i, j),
        "C++ loop (load_inline, -O3)": lambda: ext.lj_half(pos, i, j, eps, sig2, rc2, e_shift),
    }
    for name, f in cases.items():
        f()
        best = float("inf")
        for _ in range(7):
            t0 = time.process_time()
            f()
            best = min(best, time.process_time() - t0)
        print(f"{name:38s} {best * 1e3:7.1f} ms (CPU, best of 7)", flush=True)


if __name__ == "__main__":
    main()
