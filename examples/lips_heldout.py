"""Held-out errors of shipped committees, per file: energy per atom and force components.

For each model and each file of teacher-labelled frames: the committee mean's energy MAE
(meV/atom), force-component MAE / RMSE (meV/Å) overall and per element, and stress MAE (GPa)
where the frames carry stress — :func:`ssehpc.ml.train.metrics`, the numbers of the training
report.  A per-trajectory bootstrap (frames grouped by their ``task`` and ``seed`` provenance, so
correlated MD snapshots are resampled together) gives a 95 % interval of the force MAE where a file
holds at least 5 such groups.

    OMP_NUM_THREADS=2 .venv/bin/python examples/lips_heldout.py          # lips on test_indep, ~1 min
    .venv/bin/python examples/lips_heldout.py --models lips-v3 lips-v5a lips-v5 \\
        --files test.extxyz.xz test_hot.extxyz.xz test_contact.extxyz.xz test_indep.extxyz.xz
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ssehpc.ml import data as mldata
from ssehpc.ml.model import load
from ssehpc.ml.shipped import resolve_model
from ssehpc.ml.train import metrics, predict

DATA = Path(__file__).resolve().parents[1] / "ssehpc" / "data" / "lips"


def group_of(atoms) -> str:
    """Trajectory a frame came from (frames of one teacher run are correlated)."""
    info = atoms.info
    return (
        f"{info.get('task') or info.get('origin') or info.get('config_type') or 'all'}:{info.get('seed', '')}"
    )


def per_frame_force_error(model, graphs, batch_size: int = 16) -> np.ndarray:
    """``[F, 2]``: per frame, the sum of |ΔF| over force components (meV/Å) and their count."""
    rows = []
    with torch.no_grad():
        for s in range(0, len(graphs), batch_size):
            batch = mldata.collate(graphs, range(s, min(s + batch_size, len(graphs)))).to("cpu", model.dtype)
            _, forces, _ = predict(model, batch)  # committee mean below, as in metrics()
            err = (forces.mean(1) - batch.forces).abs().sum(-1).double()
            total = torch.zeros(batch.n_frames, dtype=torch.float64).index_add(0, batch.frame_of_atom, err)
            rows += [(1e3 * float(t), 3 * int(n)) for t, n in zip(total, batch.n_atoms, strict=True)]
    return np.array(rows)


def bootstrap_force_mae(per_frame, groups, n_boot: int, seed: int) -> tuple[float, float]:
    """95 % interval of the force MAE, resampling whole trajectories (meV/Å)."""
    keys = sorted(set(groups))
    idx = {k: np.array([i for i, g in enumerate(groups) if g == k]) for k in keys}
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_boot):
        pick = rng.integers(len(keys), size=len(keys))
        rows = np.concatenate([idx[keys[p]] for p in pick])
        s, n = per_frame[rows].sum(0)
        out.append(s / n)
    return float(np.percentile(out, 2.5)), float(np.percentile(out, 97.5))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["lips"])
    p.add_argument("--files", nargs="+", default=["test_indep.extxyz.xz"], help=f"files in {DATA} (or paths)")
    p.add_argument("--bootstrap", type=int, default=500, help="trajectory bootstrap resamples (0: none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(
        "| model | file | frames | E MAE (meV/atom) | F MAE (meV/Å) [95 % CI] | F RMSE (meV/Å) "
        "| Li / P / S F MAE (meV/Å) | stress MAE (GPa) |"
    )
    print("|---|---|---:|---:|---|---:|---|---:|")
    for name in args.models:
        model = load(resolve_model(name)).eval()
        for f in args.files:
            path = Path(f) if Path(f).exists() else DATA / f
            frames = mldata.read_frames(path)
            graphs = [mldata.build_graph(a, model.spec.cutoff) for a in frames]
            m = metrics(model, graphs)
            el = m["forces_per_element_meV_per_A"]
            per_el = " / ".join(f"{el[s]['mae']:.1f}" if s in el else "–" for s in ("Li", "P", "S"))
            ci = ""
            groups = [group_of(a) for a in frames]
            if args.bootstrap and len(set(groups)) >= 5:
                per_frame = per_frame_force_error(model, graphs)
                lo, hi = bootstrap_force_mae(per_frame, groups, args.bootstrap, args.seed)
                ci = f" [{lo:.1f}, {hi:.1f}] ({len(set(groups))} trajectories)"
            elif args.bootstrap:  # too few independent groups for an interval
                ci = f" (no interval: {len(set(groups))} trajectories)"
            stress = f"{m['stress_GPa']['mae']:.3f}" if "stress_GPa" in m else "–"
            print(
                f"| {name} | {path.name} | {m['n_frames']} | {m['energy_meV_per_atom']['mae']:.2f} "
                f"| {m['forces_meV_per_A']['mae']:.1f}{ci} | {m['forces_meV_per_A']['rmse']:.1f} | {per_el} | {stress} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
