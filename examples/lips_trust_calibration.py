"""Calibrate the trust levels of a shipped committee on held-out teacher frames.

For every frame of the held-out files the committee's per-frame deviation ``max_i ε_i`` (eV/Å,
the screening's quantity) is set against the true largest per-atom force error
``max_i |F_i − F_i^teacher|`` (eV/Å), evaluated through :class:`~ssehpc.ml.SSEHPCCalculator`
(the MD code path: ``ForceCompute``, float64 state).  Prints, per file and pooled, the Pearson
correlation of the two and a table binned by the deviation (median / 90th percentile of the
true error), which is what ``docs/mlff.md`` reports as the calibration of ``lips``.

    OMP_NUM_THREADS=1 .venv/bin/python examples/lips_trust_calibration.py            # ~1-2 min
    .venv/bin/python examples/lips_trust_calibration.py --model lips-v3 --files test.extxyz.xz
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ssehpc.ml import SSEHPCCalculator
from ssehpc.ml.data import read_frames
from ssehpc.potentials import make_potential

DATA = Path(__file__).resolve().parents[1] / "ssehpc" / "data" / "lips"
FILES = ("test.extxyz.xz", "test_hot.extxyz.xz", "test_contact.extxyz.xz")
EDGES = (0.0, 0.10, 0.15, 0.25, 0.5, np.inf)  # eV/Å


def evaluate(frames, calc):
    """Per frame: (max_i ε_i, max_i |ΔF_i|), eV/Å."""
    dev, err = [], []
    for a in frames:
        f_ref = a.get_forces()
        b = a.copy()
        b.calc = calc
        f = b.get_forces()
        dev.append(calc.results["force_dev_max"])
        err.append(float(np.linalg.norm(f - f_ref, axis=1).max()))
    return np.array(dev), np.array(err)


def table(dev, err):
    rows = [
        "| `max_i ε_i` (eV/Å) | frames | true max error, median / 90th percentile (eV/Å) |",
        "|---|---:|---|",
    ]
    for lo, hi in itertools.pairwise(EDGES):
        m = (dev >= lo) & (dev < hi)
        label = f"≥ {lo:.2f}" if not np.isfinite(hi) else (f"< {hi:.2f}" if lo == 0 else f"{lo:.2f}–{hi:.2f}")
        if m.any():
            rows.append(
                f"| {label} | {int(m.sum())} | {np.median(err[m]):.2f} / {np.percentile(err[m], 90):.2f} |"
            )
        else:
            rows.append(f"| {label} | 0 | – |")
    return "\n".join(rows)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="lips")
    p.add_argument("--files", nargs="+", default=list(FILES), help=f"files in {DATA} (or paths)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    calc = SSEHPCCalculator(make_potential("mlff", model=args.model))
    pooled_d, pooled_e = [], []
    for name in args.files:
        path = Path(name) if Path(name).exists() else DATA / name
        dev, err = evaluate(read_frames(path), calc)
        pooled_d.append(dev)
        pooled_e.append(err)
        r = np.corrcoef(dev, err)[0, 1]
        print(
            f"\n## {path.name}: {len(dev)} frames, deviation median {np.median(dev):.3f} eV/Å, correlation {r:.2f}\n"
        )
        print(table(dev, err))
    if len(args.files) > 1:
        dev, err = np.concatenate(pooled_d), np.concatenate(pooled_e)
        print(f"\n## pooled: {len(dev)} frames, correlation {np.corrcoef(dev, err)[0, 1]:.2f}\n")
        print(table(dev, err))


if __name__ == "__main__":
    main()
