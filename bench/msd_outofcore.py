"""Out-of-core MSD: ``ssehpc analyze`` of a 2,000-atom × 100,000-frame store under 1 GB, vs kinisi.

1. **Store.**  A run store of ``--atoms`` atoms (half Li random walkers with a known D*, half S
   vibrating about fixed sites, so the framework drift reference is exercised) × ``--frames``
   frames of float32 unwrapped positions (2,000 × 100,000: 2.4 GB of positions) is written batch
   by batch through :meth:`RunStore.append_frames`; only one batch (1,024 frames) is ever in
   memory.  Batches are seeded by ``(seed, batch index)``, so a shorter store holds exactly the
   first frames of a longer one.
2. **ssehpc.**  :func:`ssehpc.analysis.analyze_store` (the path of ``ssehpc analyze``: MSD by
   FFT over all origins, out of core, then the GLS fits) runs in a child process under a memory
   limit (``--mem-limit-mb``, default 1,024 MiB of resident memory).  The limit is enforced by a
   watchdog that reads the child's ``VmRSS`` from ``/proc`` every 20 ms and kills it above the
   limit; the reported peak is the kernel's exact high-water mark ``VmHWM`` of the child.
   ``prlimit --as``/``RLIMIT_AS`` is not usable: importing torch alone reserves ~0.9 GB of
   *virtual* address space (``VmPeak``) while only ~0.35 GB is resident.
3. **kinisi** (``kinisi.analyze.DiffusionAnalyzer.from_ase``) needs the trajectory in memory
   as ASE ``Atoms`` and loops over lags in ``O(T · N)`` each, so it runs on a slice (first
   ``--kinisi-frames`` frames, all atoms), given ``--kinisi-lags`` time intervals evenly spread
   up to ssehpc's fit-window end and ssehpc's window start as ``start_dt``.  ssehpc is timed on
   the same slice (its own store) for the ratio.  kinisi runs in a child process too (peak RSS
   reported; killed above ``--kinisi-mem-limit-mb``, default 8 GiB, to protect a shared machine).

Throughput is ``atoms × frames / seconds`` of the whole analysis (read + MSD + fits).

    .venv/bin/python bench/msd_outofcore.py                         # full size, ~2.4 GB in /tmp
    .venv/bin/python bench/msd_outofcore.py --frames 20000 --kinisi-frames 2000   # quick
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Table, append_results, describe_machine, machine_info

BENCH = "msd_outofcore"
#: D* of the Li walkers, Å²/fs (1e-5 cm²/s), frames every DT_FS fs; cubic cell side L_A Å.
D_TRUE = 1e-4
DT_FS = 100.0
L_A = 60.0
BATCH = 1024
TEMPERATURE_K = 600.0


# ---------------------------------------------------------------------------- store
def generate(path: Path, n_atoms: int, n_frames: int, seed: int = 0) -> float:
    """Write the synthetic store batch by batch; returns seconds."""
    import ase

    from ssehpc.io.structure import atoms_to_state
    from ssehpc.io.zarr_store import ZarrStore

    t0 = time.perf_counter()
    n_li = n_atoms // 2
    rng0 = np.random.default_rng([seed, 1 << 30])
    sites = rng0.uniform(0, L_A, (n_atoms, 3))
    atoms = ase.Atoms(["Li"] * n_li + ["S"] * (n_atoms - n_li), positions=sites, cell=[L_A] * 3, pbc=True)
    zs = ZarrStore.open(path, "a")
    run = zs.create_run(
        "bench",
        atoms_to_state(atoms),
        {"ensemble": "synthetic", "dt_fs": DT_FS, "temperature_K": TEMPERATURE_K, "D_true_A2_fs": D_TRUE},
        overwrite=True,
    )
    cell = np.eye(3)[None] * L_A
    pos = sites[:n_li].copy()  # current walker positions, float64
    nan = np.full(1, np.nan)
    for b, f0 in enumerate(range(0, n_frames, BATCH)):
        k = min(BATCH, n_frames - f0)
        rng = np.random.default_rng([seed, b])
        steps = rng.normal(scale=np.sqrt(2 * D_TRUE * DT_FS), size=(BATCH, n_li, 3))[:k]
        if f0 == 0:
            steps[0] = 0.0
        walk = pos + np.cumsum(steps, axis=0)
        pos = walk[-1].copy()
        vib = sites[n_li:] + rng.normal(scale=0.05, size=(BATCH, n_atoms - n_li, 3))[:k]
        block = np.concatenate([walk, vib], axis=1).astype(np.float32)
        run.append_frames(
            [
                {
                    "positions": block[i],
                    "cell": cell,
                    "time_fs": (f0 + i) * DT_FS,
                    "energy_eV": nan,
                    "kinetic_energy_eV": nan,
                    "temperature_K": nan,
                    "pressure_GPa": nan,
                    "conserved_energy_eV": nan,
                    "step": f0 + i,
                }
                for i in range(k)
            ]
        )
    run.set_status("completed", step=n_frames - 1)
    return time.perf_counter() - t0


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def vm_hwm_mb() -> float:
    """Peak resident memory of this process (kernel high-water mark), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# ---------------------------------------------------------------------------- children
def child_ssehpc(store: str) -> dict[str, Any]:
    import ssehpc.analysis.report as report

    msd_s = 0.0
    orig = report.run_msd

    def timed(*a: Any, **k: Any) -> Any:
        nonlocal msd_s
        t = time.perf_counter()
        out = orig(*a, **k)
        msd_s += time.perf_counter() - t
        return out

    report.run_msd = timed
    t0 = time.perf_counter()
    res = report.analyze_store(store)
    total = time.perf_counter() - t0
    p = res.points[0]
    return {
        "seconds": total,
        "msd_seconds": msd_s,
        "D_cm2_s": p.D,
        "D_lo": p.D_lo,
        "D_hi": p.D_hi,
        "t_fit_start_fs": p.t_fit_start_fs,
        "t_fit_end_fs": p.t_fit_end_fs,
        "peak_rss_mb": vm_hwm_mb(),
    }


def child_kinisi(store: str, n_lags: int, start_fs: float, end_fs: float) -> dict[str, Any]:
    import warnings

    import ase
    import scipp as sc
    from kinisi.analyze import DiffusionAnalyzer

    from ssehpc.io.zarr_store import RunStore

    warnings.filterwarnings("ignore")
    run = RunStore.open(store)
    t0 = time.perf_counter()
    pos = run.read_frames(fields=["positions"])["positions"]
    numbers = run.read_static("species")
    images = [ase.Atoms(numbers=numbers, positions=p, cell=[L_A] * 3, pbc=True) for p in pos]
    del pos
    t_load = time.perf_counter() - t0
    k_end = round(end_fs / DT_FS)
    lags = np.unique(np.linspace(1, k_end, min(n_lags, k_end)).round().astype(int))
    t1 = time.perf_counter()
    a = DiffusionAnalyzer.from_ase(
        images,
        specie="Li",
        time_step=DT_FS * sc.Unit("fs"),
        step_skip=1 * sc.Unit("dimensionless"),
        dt=sc.array(dims=["time interval"], values=lags * DT_FS, unit="fs"),
        progress=False,
    )
    t_msd = time.perf_counter() - t1
    start = float(lags[np.searchsorted(lags, round(start_fs / DT_FS))] * DT_FS)
    a.diffusion(start * sc.Unit("fs"), progress=False, random_state=np.random.RandomState(0))
    total = time.perf_counter() - t0
    s = a.D.values
    return {
        "seconds": total,
        "load_seconds": t_load,
        "msd_seconds": t_msd,
        "D_cm2_s": float(np.median(s)),
        "D_lo": float(np.percentile(s, 2.5)),
        "D_hi": float(np.percentile(s, 97.5)),
        "n_lags": int(lags.size),
        "peak_rss_mb": vm_hwm_mb(),
    }


def run_child(args: list[str], limit_mb: float | None) -> dict[str, Any]:
    """Run this script as a child; kill it when its resident memory exceeds ``limit_mb``."""
    proc = subprocess.Popen(
        [sys.executable, __file__, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    status = Path(f"/proc/{proc.pid}/status")
    max_rss = 0.0
    killed = False
    while proc.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmRSS:"):
                    max_rss = max(max_rss, int(line.split()[1]) / 1024)
        except (OSError, ValueError):
            pass
        if limit_mb is not None and max_rss > limit_mb and not killed:
            proc.kill()
            killed = True
        time.sleep(0.02)
    out, err = proc.communicate()
    if killed:
        return {"error": f"killed: resident memory {max_rss:.0f} MiB > limit {limit_mb:.0f} MiB"}
    if proc.returncode != 0:
        return {"error": f"exit {proc.returncode}: {err.strip().splitlines()[-1] if err.strip() else ''}"}
    res = json.loads(out.strip().splitlines()[-1])
    res["watchdog_max_rss_mb"] = max_rss
    return res


# ---------------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--atoms", type=int, default=2000)
    ap.add_argument("--frames", type=int, default=100_000)
    ap.add_argument("--dir", type=Path, default=None, help="where the stores go (default: a temp dir)")
    ap.add_argument("--mem-limit-mb", type=float, default=1024.0)
    ap.add_argument("--kinisi-frames", type=int, default=10_000)
    ap.add_argument("--kinisi-lags", type=int, default=100)
    ap.add_argument("--kinisi-mem-limit-mb", type=float, default=8192.0, help="kill kinisi above this RSS")
    ap.add_argument("--no-kinisi", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the stores")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-record", action="store_true", help="do not append to bench/results")
    ap.add_argument("--child-ssehpc", help=argparse.SUPPRESS)
    ap.add_argument("--child-kinisi", nargs=4, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child_ssehpc:
        print(json.dumps(child_ssehpc(a.child_ssehpc)))
        return
    if a.child_kinisi:
        s, n, t0, t1 = a.child_kinisi
        print(json.dumps(child_kinisi(s, int(n), float(t0), float(t1))))
        return

    info = machine_info()
    print(describe_machine(info))
    base = Path(tempfile.mkdtemp(prefix="msd_outofcore_", dir=a.dir))
    free_gb = shutil.disk_usage(base).free / 1e9
    need_gb = a.atoms * a.frames * 12 / 1e9
    print(f"stores in {base} (free {free_gb:.1f} GB, need ~{need_gb:.2f} GB)", flush=True)
    if need_gb * 1.2 > free_gb:
        sys.exit(f"not enough disk space in {base}: need ~{need_gb:.1f} GB, {free_gb:.1f} GB free")
    D_true = D_TRUE * 0.1
    rows: list[dict[str, Any]] = []
    try:
        sizes = [a.frames]
        if not a.no_kinisi and a.kinisi_frames < a.frames:
            sizes.append(a.kinisi_frames)
        fits: dict[int, dict[str, Any]] = {}
        for frames in sizes:
            path = base / f"s{frames}.zarr"
            gen_s = generate(path, a.atoms, frames, a.seed)
            gb = a.atoms * frames * 12 / 1e9
            print(f"generated {a.atoms} atoms × {frames} frames ({gb:.2f} GB positions, "
                  f"{dir_bytes(path) / 1e9:.2f} GB on disk) in {gen_s:.1f} s", flush=True)  # fmt: skip
            r = run_child(["--child-ssehpc", str(path)], a.mem_limit_mb)
            fits[frames] = r
            rows.append(
                {
                    "code": "ssehpc",
                    "atoms": a.atoms,
                    "frames": frames,
                    "positions_GB": gb,
                    "mem_limit_mb": a.mem_limit_mb,
                    "generate_s": gen_s,
                    **r,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
        if not a.no_kinisi:
            kf = a.kinisi_frames
            fit = fits.get(kf, {})
            if "error" in fit:
                print(f"kinisi skipped: ssehpc failed on the slice ({fit['error']})")
            else:
                r = run_child(
                    [
                        "--child-kinisi",
                        str(base / f"s{kf}.zarr"),
                        str(a.kinisi_lags),
                        str(fit["t_fit_start_fs"]),
                        str(fit["t_fit_end_fs"]),
                    ],
                    a.kinisi_mem_limit_mb,
                )
                rows.append(
                    {
                        "code": "kinisi",
                        "atoms": a.atoms,
                        "frames": kf,
                        "positions_GB": a.atoms * kf * 12 / 1e9,
                        **r,
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    finally:
        if not a.keep:
            shutil.rmtree(base, ignore_errors=True)

    for r in rows:
        if "seconds" in r:
            r["atom_frames_per_s"] = r["atoms"] * r["frames"] / r["seconds"]
            r["D_rel"] = r["D_cm2_s"] / D_true
            r["covers_truth"] = bool(r["D_lo"] <= D_true <= r["D_hi"])
    ref = {r["frames"]: r["seconds"] for r in rows if r["code"] == "ssehpc" and "seconds" in r}
    for r in rows:
        if r["code"] == "kinisi" and "seconds" in r and r["frames"] in ref:
            r["time_vs_ssehpc"] = r["seconds"] / ref[r["frames"]]
    t = Table(
        [
            ("code", "code"),
            ("atoms", "atoms"),
            ("frames", "frames"),
            ("positions_GB", "positions (GB)"),
            ("seconds", "analysis (s)"),
            ("msd_seconds", "MSD (s)"),
            ("atom_frames_per_s", "atom·frames/s"),
            ("peak_rss_mb", "peak RSS (MiB)"),
            ("mem_limit_mb", "limit (MiB)"),
            ("D_rel", "D*/D_true"),
            ("covers_truth", "95 % covers"),
            ("time_vs_ssehpc", "time / ssehpc"),
            ("error", "error"),
        ],
        formats={
            "positions_GB": ".3g",
            "seconds": ".1f",
            "msd_seconds": ".1f",
            "atom_frames_per_s": ".3g",
            "peak_rss_mb": ".0f",
            "D_rel": ".3f",
            "time_vs_ssehpc": ".1f",
        },
    )
    for r in rows:
        t.add(r)
    t.print()
    if not a.no_record:
        run_args = {k: v for k, v in vars(a).items() if not k.startswith("child")}
        print(f"appended {len(rows)} rows to {append_results(BENCH, rows, info, **run_args)}")


if __name__ == "__main__":
    main()
