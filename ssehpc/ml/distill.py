"""Teacher-data generation for distilling a Li–P–S force field (the shipped ``ssehpc/data/lips``).

The protocol is a list of :class:`Task` s (see :func:`plan`), each a deterministic function of
its seed, labelled by a teacher :class:`~ssehpc.ml.labeler.Labeler` (CHGNet by default):

* ``static`` — rattled (σ = 0.01–0.08 Å) and strained (isotropic ±5 % or random anisotropic /
  shear ≤ 3 %) copies of the crystal prototypes, optionally with charge-compensated Li
  vacancies; one teacher call per frame;
* ``md`` — short Langevin NVT runs driven by the teacher (ASE, 2 fs) at 300/600/1000 K on
  small supercells (≈ 50–100 atoms), plus strained and Li-vacancy cells; a snapshot every few
  steps, the teacher's own energy/forces/stress at that step is the label (no extra call), and
  every other snapshot also gets a rattled copy (σ = 0.04 Å, one extra call);
* ``glass`` — melt-quench-like runs of random xLi₂S–(1−x)P₂S₅ structures
  (:func:`ssehpc.structures.random_glass`, x = 0.67, 0.70, 0.75): a short FIRE relaxation, then
  1000 → 700 → 450 → 300 K segments, sampled in each;
* ``glass-hot`` (data v2, :func:`plan_hot`, ``--set hot`` → ``train_hot`` / ``test_hot``) — ~8 ps
  teacher melts of random packings, 1500 → 1200 → 900 → 600 K: the equilibrated liquid a real
  melt-quench passes through, which the short v1 melts do not reach.

The test set is made of *separate tasks with their own seeds* (independent trajectories), not a
random subset of the training frames, so that correlated MD neighbours do not leak into it.

Resumable: each task labels into ``<workdir>/tasks/<task>.extxyz`` frame by frame; a finished
task gets a ``.done`` marker; an unfinished static task resumes where it stopped, an unfinished
MD task restarts (they are short). :func:`assemble` then concatenates the tasks into
``train.extxyz`` / ``test.extxyz`` and writes ``README.md`` with counts and sha256 hashes.

Run it with ``python examples/distill_lips.py`` (or ``python -m ssehpc.ml.distill``); see
:func:`main` for the options. Use one core: ``OMP_NUM_THREADS=1`` and ``--threads 1``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import math
import shutil
import sys
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import ase
import ase.io
import numpy as np
from ase import units
from ase.neighborlist import neighbor_list

from ssehpc.ml.data import read_frames, sha256_files
from ssehpc.ml.labeler import Labeler, LabelError, append_extxyz, complete_frames
from ssehpc.structures import lips

log = logging.getLogger(__name__)

#: Crystal prototypes used for teacher data and their supercell sizes (atoms).
CRYSTALS: dict[str, int] = {
    "Li2S": 96,
    "beta-Li3PS4": 64,
    "gamma-Li3PS4": 64,
    "Li7P3S11": 84,
    "Li4P2S6": 96,
    "P4S10": 56,
}

#: Li-vacancy cells: phase → (Li removed, compensation).
VACANCIES: dict[str, tuple[int, str]] = {
    "Li2S": (2, "sulfide"),
    "beta-Li3PS4": (3, "thiophosphate"),
    "Li7P3S11": (3, "thiophosphate"),
}

#: Training MD temperatures (K) per crystal (Li₄P₂S₆ and γ-Li₃PS₄, minor phases, get fewer).
MD_TEMPERATURES: dict[str, tuple[float, ...]] = {
    "Li2S": (300.0, 600.0, 1000.0),
    "beta-Li3PS4": (300.0, 600.0, 1000.0),
    "gamma-Li3PS4": (300.0, 600.0),
    "Li7P3S11": (300.0, 600.0, 1000.0),
    "Li4P2S6": (600.0,),
    "P4S10": (300.0, 600.0, 1000.0),
}

#: Glass compositions (Li₂S fraction x), atoms per cell and box density (g/cm³).
GLASSES: tuple[float, ...] = (0.67, 0.70, 0.75)
#: Independent melt-quench replicas per glass composition in the training set.
GLASS_REPLICAS: dict[float, int] = {0.67: 1, 0.70: 2, 0.75: 2}
GLASS_ATOMS = 100
GLASS_DENSITY = 1.88


#: Fixed caveats written into the data README.
README_NOTES: tuple[str, ...] = (
    "* Structures: β-Li₃PS₄ is an ordered-Li model (8d + 4c) at the published 637 K cell; Li₇P₃S₁₁ and",
    "  P₄S₁₀ are models at the published cell / density with the right anions, not the refined",
    "  structures (see the docstrings in `ssehpc/structures/lips.py`). All cells are the published",
    "  ones, not the teacher's: CHGNet sees −0.4 to −1.4 GPa there (PBE expands cells).",
    "* P₄S₁₀: CHGNet (PBE, no dispersion) expands the molecular crystal by ~21 % on relaxation; the",
    "  P₄S₁₀ frames are at the experimental density and carry about −1 GPa of stress.",
    "* In 600–1000 K teacher MD a fraction of the P–P bonds of Li₄P₂S₆ and of the bridging P–S bonds",
    "  of P₂S₇ (Li₇P₃S₁₁, x = 0.67/0.70 glasses) are stretched beyond 2.4 Å in a snapshot (≈ 10 % of",
    "  the P₂S₆ units at 600 K); these are the teacher's dynamics, kept as data.",
    "* Static frames reach force components of ~13 eV/Å (a few percent of frames above 5 eV/Å) and",
    "  the −5 % compressed cells stresses of about −15 GPa; MD snapshots stay below ~5 eV/Å (their",
    "  rattled copies below ~7.5 eV/Å).",
    "* `temperature_K` is the Langevin target; `temperature_inst_K` the instantaneous kinetic",
    "  temperature of the snapshot (small cells fluctuate by ±20 %).",
)


@dataclass(frozen=True)
class Segment:
    """One temperature stage of a teacher MD run.

    Attributes:
        temperature: Langevin target temperature, K.
        n_equil: unsampled steps at the start of the stage.
        n_samples: snapshots taken in the stage.
        interval: steps between snapshots.
    """

    temperature: float
    n_equil: int
    n_samples: int
    interval: int

    @property
    def steps(self) -> int:
        """MD steps in the stage."""
        return self.n_equil + self.n_samples * self.interval


@dataclass(frozen=True)
class Task:
    """A deterministic unit of teacher-data generation.

    Attributes:
        name: unique id, also the file stem (``/`` allowed, mapped to ``__``).
        kind: ``"static"``, ``"md"`` or ``"glass"``.
        split: ``"train"`` or ``"test"``.
        phase: prototype name (:data:`ssehpc.structures.lips.PROTOTYPES`) or ``"glass"``.
        seed: random seed of everything in the task.
        n_atoms: supercell / glass size target.
        n_frames: static frames.
        segments: MD stages.
        strain: isotropic strain of the MD cell (dimensionless), 0 for none.
        vacancies: Li removed (charge compensated, :data:`VACANCIES`), 0 for none.
        x: glass composition (Li₂S fraction).
        density: glass box density, g/cm³ (0: :data:`GLASS_DENSITY`).
        relax_steps: FIRE steps before glass MD.
        rattle_every: rattled copy of every n-th MD snapshot (0: none).
        dt_fs: MD time step, fs.
    """

    name: str
    kind: str
    split: str
    phase: str
    seed: int
    n_atoms: int = 0
    n_frames: int = 0
    segments: tuple[Segment, ...] = ()
    strain: float = 0.0
    vacancies: int = 0
    x: float = 0.0
    relax_steps: int = 0
    rattle_every: int = 2
    dt_fs: float = 2.0
    density: float = 0.0

    @property
    def file_stem(self) -> str:
        """File name stem of the task's extxyz."""
        return self.name.replace("/", "__")

    @property
    def md_steps(self) -> int:
        """Total MD steps (0 for static tasks)."""
        return sum(s.steps for s in self.segments)

    @property
    def expected_frames(self) -> int:
        """Frames the task writes if nothing fails."""
        if self.kind == "static":
            return self.n_frames
        n = sum(s.n_samples for s in self.segments)
        return n + (n // self.rattle_every if self.rattle_every else 0)

    def cost(self) -> int:
        """Teacher atom-evaluations (teacher calls × atoms), approximately."""
        if self.kind == "static":
            return self.n_frames * self.n_atoms
        n = sum(s.n_samples for s in self.segments)
        extra = n // self.rattle_every if self.rattle_every else 0
        return (self.md_steps + self.relax_steps + extra + 1) * self.n_atoms


def _stable_seed(*parts: Any) -> int:
    return int(hashlib.sha256(repr(parts).encode()).hexdigest()[:8], 16)


def plan(seed: int = 2024, scale: float = 1.0) -> list[Task]:
    """The default Li–P–S distillation protocol.

    Args:
        seed: master seed; every task derives its own from it and its name.
        scale: multiplies frame and sample counts (0.1 gives a smoke-test plan).

    Returns:
        Train tasks first, then test tasks (independent seeds).
    """

    def n(k: int) -> int:
        return max(1, round(k * scale))

    def seg(t: float, eq: int, ns: int, iv: int = 6) -> Segment:
        return Segment(t, eq, n(ns), iv)

    tasks: list[Task] = []

    def add(name: str, kind: str, split: str, phase: str, **kw: Any) -> None:
        tasks.append(Task(name, kind, split, phase, _stable_seed(seed, name), **kw))

    for split, n_static, n_md in (("train", 40, 10), ("test", 6, 6)):
        for phase, size in CRYSTALS.items():
            add(f"{split}/static/{phase}", "static", split, phase, n_atoms=size, n_frames=n(n_static))
        for phase, size in CRYSTALS.items():
            if split == "test" and phase in ("gamma-Li3PS4", "P4S10"):
                continue
            for t in MD_TEMPERATURES[phase] if split == "train" else (600.0,):
                add(
                    f"{split}/md/{phase}/T{t:.0f}",
                    "md",
                    split,
                    phase,
                    n_atoms=size,
                    segments=(seg(t, 15, n_md),),
                )
    for phase, strains in (("Li2S", (0.04,)), ("beta-Li3PS4", (-0.04, 0.04)), ("Li7P3S11", (-0.04, 0.04))):
        for eps in strains:
            add(
                f"train/md-strain/{phase}/e{eps:+.2f}",
                "md",
                "train",
                phase,
                n_atoms=CRYSTALS[phase],
                strain=eps,
                segments=(seg(600.0, 15, 10),),
            )
    for phase, (n_li, _) in VACANCIES.items():
        add(
            f"train/static-vac/{phase}",
            "static",
            "train",
            phase,
            n_atoms=CRYSTALS[phase],
            n_frames=n(14),
            vacancies=n_li,
        )
        for t in (600.0, 1000.0) if phase == "beta-Li3PS4" else (600.0,):
            add(
                f"train/md-vac/{phase}/T{t:.0f}",
                "md",
                "train",
                phase,
                n_atoms=CRYSTALS[phase],
                vacancies=n_li,
                segments=(seg(t, 15, 10),),
            )
    add(
        "test/md-vac/beta-Li3PS4/T600",
        "md",
        "test",
        "beta-Li3PS4",
        n_atoms=64,
        vacancies=3,
        segments=(seg(600.0, 15, 6),),
    )
    quench = (seg(1000.0, 20, 8), seg(700.0, 8, 6), seg(450.0, 8, 6), seg(300.0, 8, 6))
    for x in GLASSES:
        for rep in range(GLASS_REPLICAS[x]):
            add(
                f"train/glass/x{x:.2f}/r{rep}",
                "glass",
                "train",
                "glass",
                n_atoms=GLASS_ATOMS,
                x=x,
                relax_steps=20,
                segments=quench,
            )
    # Longer melts from the raw random packing (no relaxation: Li-rich clusters and close
    # contacts of the packing are sampled too), 1000 K → 800 K → 600 K: the hot liquid and the
    # quenched glass the engine's own melt-quench protocol passes through (data v1).
    melt = (seg(1000.0, 10, 30, 10), seg(800.0, 20, 10, 10), seg(600.0, 20, 15, 10))
    for x in GLASSES:
        for rep in range(2):
            add(
                f"train/glass-melt/x{x:.2f}/r{rep}",
                "glass",
                "train",
                "glass",
                n_atoms=GLASS_ATOMS,
                x=x,
                relax_steps=0,
                segments=melt,
            )
    for x in (0.70, 0.75):
        add(
            f"test/glass/x{x:.2f}/r0",
            "glass",
            "test",
            "glass",
            n_atoms=GLASS_ATOMS,
            x=x,
            relax_steps=20,
            segments=(seg(1000.0, 20, 4), seg(600.0, 8, 4), seg(300.0, 8, 4)),
        )
    add(
        "test/glass-melt/x0.75/r0",
        "glass",
        "test",
        "glass",
        n_atoms=GLASS_ATOMS,
        x=0.75,
        relax_steps=0,
        segments=(seg(1000.0, 10, 8, 10), seg(600.0, 20, 8, 10)),
    )
    return tasks


#: Data v2 ("hot"): the equilibrated hot liquid and its quench, which the melt-quench of a glass
#: passes through (:func:`plan_hot`).  Melt temperatures, K.
HOT_MELT: tuple[float, ...] = (1500.0, 1200.0, 900.0, 600.0)


def plan_hot(seed: int = 2024, scale: float = 1.0) -> list[Task]:
    """Data v2: long teacher melts of random xLi₂S–(1−x)P₂S₅ packings, and hot crystals.

    Data v1 (:func:`plan`) samples the liquid only in its first 0.6 ps at 1000 K, so a committee
    trained on it leaves its range within picoseconds of a real melt (≥ 1000 K, several structural
    relaxation times of the PS₄ framework).  Here each glass task runs the teacher for ~8 ps:
    20 FIRE steps, then 1500 K (0.5 ps unsampled + 50 snapshots every 50 fs) → 1200 K → 900 K →
    600 K (0.2 ps unsampled + 40 / 30 / 20 snapshots), so the liquid, its bond breaking and
    re-forming (PS₃, S–S, P₂S₇ / P₂S₆ in the teacher's melt) and the quenched glass are all sampled.
    Compositions x = 0.75 (two replicas), 0.70, 0.67 at 1.88 g/cm³, and x = 0.75 at 1.65 g/cm³
    (the density the model's glass relaxes to under NPT; 1200 K → 600 K only); plus 2 ps of
    β-Li₃PS₄ and Li₇P₃S₁₁ at 1000 K (data v0 has 0.2 ps there).  Test: an independent x = 0.75
    melt (1500 → 900 → 600 K, no rattled copies).

    Args:
        seed: master seed (task seeds derive from it and the task name, as in :func:`plan`).
        scale: multiplies the snapshot counts.
    """

    def n(k: int) -> int:
        return max(1, round(k * scale))

    tasks: list[Task] = []

    def add(name: str, kind: str, split: str, phase: str, **kw: Any) -> None:
        tasks.append(Task(name, kind, split, phase, _stable_seed(seed, name), **kw))

    t15, t12, t9, t6 = HOT_MELT
    melt = (
        Segment(t15, 250, n(50), 25),
        Segment(t12, 100, n(40), 25),
        Segment(t9, 100, n(30), 25),
        Segment(t6, 100, n(20), 25),
    )
    for x, rep in ((0.75, 0), (0.75, 1), (0.70, 0), (0.67, 0)):
        add(
            f"train/glass-hot/x{x:.2f}/r{rep}",
            "glass",
            "train",
            "glass",
            n_atoms=GLASS_ATOMS,
            x=x,
            relax_steps=20,
            segments=melt,
        )
    add(
        "train/glass-hot-low/x0.75/r0",
        "glass",
        "train",
        "glass",
        n_atoms=GLASS_ATOMS,
        x=0.75,
        relax_steps=20,
        density=1.65,
        segments=(Segment(t12, 250, n(40), 25), Segment(t9, 100, n(25), 25), Segment(t6, 100, n(20), 25)),
    )
    for phase in ("beta-Li3PS4", "Li7P3S11"):
        add(
            f"train/md-hot/{phase}/T1000",
            "md",
            "train",
            phase,
            n_atoms=CRYSTALS[phase],
            segments=(Segment(1000.0, 50, n(40), 25),),
        )
    add(
        "test/glass-hot/x0.75/r0",
        "glass",
        "test",
        "glass",
        n_atoms=GLASS_ATOMS,
        x=0.75,
        relax_steps=20,
        rattle_every=0,
        segments=(Segment(t15, 250, n(20), 25), Segment(t9, 100, n(10), 25), Segment(t6, 100, n(10), 25)),
    )
    return tasks


#: Close contacts (data v3): pair → (shortest, longest) distance the pair is pushed to, Å.  The
#: upper ends are about the shortest distances of data v0–v2 (Li–Li 1.72, Li–S 1.73, Li–P 1.74,
#: P–S 1.66, S–S 1.77, P–P 1.98 Å); the lower ends keep the teacher's forces below ~30 eV/Å.
CONTACT_RANGES: dict[tuple[str, str], tuple[float, float]] = {
    ("Li", "Li"): (1.25, 1.85),
    ("Li", "S"): (1.35, 1.85),
    ("Li", "P"): (1.35, 1.90),
    ("P", "S"): (1.45, 1.75),
    ("S", "S"): (1.45, 1.85),
    ("P", "P"): (1.70, 2.05),
}


def contact_frames(
    base: Sequence[ase.Atoms],
    n_frames: int,
    seed: int,
    ranges: dict[tuple[str, str], tuple[float, float]] | None = None,
    *,
    search: float = 3.6,
) -> list[ase.Atoms]:
    """Snapshots with one atom pair pushed closer than any MD of the teacher went (data v3).

    A committee learns nothing about the energy of a Li pair at 1.5 Å, or of a Li inside a PS₄
    tetrahedron, from thermal MD, where such contacts are too rare to sample; its energy there
    is an extrapolation, and in 1000–1500 K MD it was attractive: runs collapsed within
    picoseconds (Li–Li 1.54 Å, then a Li into a PS₄, in 50 fs).  Each frame here is a random
    base frame (e.g. the hot liquid of :func:`plan_hot`) with a random pair of a type drawn
    uniformly from ``ranges``, among those within ``search`` Å, moved symmetrically along its
    bond to a distance uniform in the type's range (other atoms fixed), then labelled by the
    teacher: the repulsion the committee must learn.  Deterministic in ``seed``.

    Returns:
        Unlabelled frames with ``info``: ``origin`` ``"contact"``, ``contact_pair`` (symbols),
        ``contact_atoms``, ``contact_distance`` (Å), ``base_source`` (the base frame's ``task``
        and ``frame``).
    """
    ranges = dict(CONTACT_RANGES if ranges is None else ranges)
    rng = np.random.default_rng(seed)
    kinds = sorted(ranges)
    out: list[ase.Atoms] = []
    tries = 0
    while len(out) < n_frames:
        tries += 1
        if tries > 50 * n_frames:
            raise RuntimeError(f"found only {len(out)} of {n_frames} contact pairs in the base frames")
        atoms = base[int(rng.integers(len(base)))]
        x, y = kinds[int(rng.integers(len(kinds)))]
        sym = np.array(atoms.get_chemical_symbols())
        i, j, d, vec = neighbor_list("ijdD", atoms, search)
        ok = np.flatnonzero((sym[i] == x) & (sym[j] == y) & (i < j if x == y else True))
        if not ok.size:
            continue
        k = int(ok[rng.integers(ok.size)])
        lo, hi = ranges[(x, y)]
        r = float(rng.uniform(lo, hi))
        u = vec[k] / d[k]
        frame = atoms.copy()
        frame.calc = None
        shift = 0.5 * (d[k] - r) * u
        frame.positions[i[k]] += shift
        frame.positions[j[k]] -= shift
        frame.info = {
            key: atoms.info[key] for key in ("phase", "task", "split", "temperature_K") if key in atoms.info
        }
        frame.info.update(
            config_type=f"{frame.info.get('phase', 'frame')}/contact",
            origin="contact",
            contact_pair=f"{x}-{y}",
            contact_atoms=[int(i[k]), int(j[k])],
            contact_distance=r,
            base_source=f"{atoms.info.get('task', '?')}:{atoms.info.get('frame', '?')}",
            frame=len(out),
        )
        out.append(frame)
    return out


# ----------------------------------------------------------------------------- structures


def initial_structure(task: Task) -> ase.Atoms:
    """The (deterministic) starting structure of a task, with provenance in ``info``."""
    if task.phase == "glass":
        density = task.density or GLASS_DENSITY
        atoms = lips.random_glass(task.x, task.n_atoms, density, seed=task.seed % 2**31)
        phase = f"glass-x{task.x:.2f}"
    else:
        atoms = lips.supercell(lips.prototype(task.phase), task.n_atoms)
        phase = task.phase
    info = {"phase": phase, "task": task.name, "seed": int(task.seed), "split": task.split}
    if task.density:
        info["density_g_cm3"] = float(task.density)
    if task.vacancies:
        _, comp = VACANCIES[task.phase]
        atoms = lips.li_vacancies(atoms, task.vacancies, seed=task.seed % 2**31, compensation=comp)
        info["vacancies"] = atoms.info["vacancies"]
    if task.strain:
        atoms = lips.strained(atoms, task.strain)
    info["strain"] = atoms.info.get("strain", [0.0] * 6)
    atoms.info = info
    return atoms


def _random_strain(rng: np.random.Generator, kind: int) -> np.ndarray:
    if kind == 0:
        return np.zeros(6)
    if kind == 1:
        e = rng.uniform(-0.05, 0.05)
        return np.array([e, e, e, 0.0, 0.0, 0.0])
    return rng.uniform(-0.03, 0.03, 6)


def static_frames(task: Task) -> list[ase.Atoms]:
    """Rattled and strained copies for a static task (deterministic in ``task.seed``).

    Frame k uses strain kind k mod 3 (none / isotropic ±5 % / random Voigt ≤ 3 %) and a
    rattle σ drawn uniformly from 0.01–0.08 Å (about the thermal amplitudes of 300–1500 K;
    larger rattles push P–S bonds to 1.4 Å and forces to 70 eV/Å, far outside MD).
    """
    base = initial_structure(task)
    rng = np.random.default_rng(task.seed)
    frames = []
    for k in range(task.n_frames):
        eps = _random_strain(rng, k % 3)
        sigma = float(rng.uniform(0.01, 0.08))
        atoms = lips.strained(base, eps) if np.any(eps) else base.copy()
        atoms = lips.rattled(atoms, sigma, seed=int(rng.integers(2**31)))
        atoms.info = {
            **base.info,
            "config_type": f"{base.info['phase']}/static",
            "origin": "static",
            "strain": [float(v) for v in eps],
            "rattle": sigma,
            "temperature_K": 0.0,
            "frame": k,
        }
        frames.append(atoms)
    return frames


# ------------------------------------------------------------------------------------ MD


def _snapshot_ok(atoms: ase.Atoms, forces: np.ndarray) -> str | None:
    d = lips.min_distance(atoms)
    if d < 0.9:
        return f"atoms {d:.2f} Å apart"
    f = float(np.abs(forces).max())
    if f > 50.0:
        return f"force component {f:.1f} eV/Å"
    return None


def teacher_md(task: Task, labeler: Labeler) -> Iterator[ase.Atoms]:
    """Run a task's Langevin MD with the teacher and yield labelled snapshots.

    Snapshots carry the teacher's own energy/forces/stress at that step; every
    ``rattle_every``-th also yields a rattled (σ = 0.04 Å) copy labelled by a separate call.

    Raises:
        LabelError: the trajectory became unphysical (atoms < 0.9 Å apart or forces > 50 eV/Å).
    """
    from ase.constraints import FixCom
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary
    from ase.optimize import FIRE

    atoms = initial_structure(task)
    base_info = dict(atoms.info)
    atoms.calc = labeler.calculator
    rng = np.random.default_rng(task.seed)
    if task.relax_steps:
        with contextlib.redirect_stdout(sys.stderr):
            FIRE(atoms, logfile=None, maxstep=0.1).run(fmax=0.2, steps=task.relax_steps)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        MaxwellBoltzmannDistribution(atoms, temperature_K=task.segments[0].temperature, rng=rng)
    Stationary(atoms)
    atoms.set_constraint(FixCom())
    dyn = Langevin(
        atoms,
        timestep=task.dt_fs * units.fs,
        temperature_K=task.segments[0].temperature,
        friction=0.02 / units.fs,
        fixcm=False,
        rng=rng,
    )
    origin = _origin(task)
    n_snap = 0
    step = 0
    for seg in task.segments:
        dyn.set_temperature(temperature_K=seg.temperature)
        dyn.run(seg.n_equil)
        step += seg.n_equil
        for _ in range(seg.n_samples):
            dyn.run(seg.interval)
            step += seg.interval
            energy = atoms.get_potential_energy()
            forces = atoms.get_forces()
            stress = atoms.get_stress(voigt=True)
            bad = _snapshot_ok(atoms, forces)
            if bad:
                raise LabelError(f"{task.name}: unphysical trajectory at step {step}: {bad}")
            snap = atoms.copy()
            snap.info = {
                **base_info,
                "config_type": f"{base_info['phase']}/{origin}",
                "origin": origin,
                "temperature_K": float(seg.temperature),
                "temperature_inst_K": float(atoms.get_temperature()),
                "md_time_fs": float(step * task.dt_fs),
                "frame": n_snap,
            }
            yield labeler.attach(snap, energy, forces, stress)
            if task.rattle_every and n_snap % task.rattle_every == 0:
                rat = lips.rattled(snap, 0.04, seed=int(rng.integers(2**31)))
                rat.info = {**snap.info, "origin": f"{origin}+rattle", "rattle": 0.04}
                rat.info["config_type"] = f"{base_info['phase']}/{origin}+rattle"
                yield labeler.label_one(rat)
            n_snap += 1


def _origin(task: Task) -> str:
    """The ``origin`` label of a task's MD snapshots: ``md`` for crystals; for glasses the task
    family (``train/glass-hot/...`` → ``glass-hot``), with the first family ``glass`` → ``glass-mq``."""
    if task.kind != "glass":
        return "md"
    family = task.name.split("/")[1]
    return "glass-mq" if family == "glass" else family


# ------------------------------------------------------------------------------- running


def run_task(task: Task, labeler: Labeler, workdir: Path) -> dict[str, Any]:
    """Run one task into ``workdir/tasks``; resumable. Returns a summary dict."""
    tdir = workdir / "tasks"
    tdir.mkdir(parents=True, exist_ok=True)
    path = tdir / f"{task.file_stem}.extxyz"
    done = tdir / f"{task.file_stem}.done"
    if done.exists():
        return json.loads(done.read_text())
    t0 = time.perf_counter()
    summary: dict[str, Any] = {"task": task.name, "error": None}
    if task.kind == "static":
        res = labeler.label(static_frames(task), out=path, resume=True, log_every=0)
        summary["failures"] = [f.error for f in res.failures]
        evaluated = res.atoms_evaluated
    else:
        if path.exists():
            path.unlink()  # an interrupted MD task restarts from its seed
        evaluated = 0
        try:
            for frame in teacher_md(task, labeler):
                append_extxyz(path, frame)
        except Exception as exc:  # keep the frames before the failure, record why
            summary["error"] = f"{type(exc).__name__}: {exc}"
            log.warning("%s stopped: %s", task.name, summary["error"])
        evaluated = task.cost()
    seconds = time.perf_counter() - t0
    summary.update(
        frames=complete_frames(path),
        seconds=round(seconds, 1),
        atoms_per_second=round(evaluated / seconds, 1) if seconds > 0 else None,
    )
    done.write_text(json.dumps(summary))
    return summary


def run(tasks: Sequence[Task], labeler: Labeler, workdir: str | Path) -> list[dict[str, Any]]:
    """Run all tasks in order (skipping finished ones), logging progress and ETA."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "plan.json").write_text(json.dumps([asdict(t) for t in tasks], indent=1))
    total = sum(t.cost() for t in tasks)
    log.info(
        "plan: %d tasks, %d frames expected, %.0f k teacher atom-evaluations",
        len(tasks),
        sum(t.expected_frames for t in tasks),
        total / 1e3,
    )
    remaining = sum(t.cost() for t in tasks if not (workdir / "tasks" / f"{t.file_stem}.done").exists())
    log.info("%.0f k atom-evaluations left to do (the rest is done and is reused)", remaining / 1e3)
    summaries = []
    for k, task in enumerate(tasks, 1):
        was_done = (workdir / "tasks" / f"{task.file_stem}.done").exists()
        s = run_task(task, labeler, workdir)
        summaries.append(s)
        if not was_done:
            remaining -= task.cost()
        rate = _rate(summaries)
        eta = max(remaining, 0) / rate if rate else math.nan
        log.info(
            "[%d/%d] %s: %d frames, %.0f s, %s atoms/s%s | ETA %.1f min",
            k,
            len(tasks),
            task.name,
            s["frames"],
            s["seconds"],
            s.get("atoms_per_second"),
            f" | ERROR {s['error']}" if s.get("error") else "",
            eta / 60,
        )
    return summaries


def _rate(summaries: Sequence[dict[str, Any]]) -> float:
    pairs = [
        (s["atoms_per_second"], s["seconds"]) for s in summaries if s.get("atoms_per_second") and s["seconds"]
    ]
    if not pairs:
        return math.nan
    return sum(r * t for r, t in pairs) / sum(t for _, t in pairs)


# ------------------------------------------------------------------------------ assembling


def sha256(path: str | Path) -> str:
    """Hex sha256 of a file's content (decompressed for ``.gz`` / ``.bz2`` / ``.xz``)."""
    return sha256_files(path)


@dataclass
class Assembly:
    """What :func:`assemble` wrote.

    Attributes:
        files: split → path.
        counts: split → Counter of (phase, origin, temperature) → frames.
        atoms: split → total atoms.
        hashes: split → sha256.
    """

    files: dict[str, Path] = field(default_factory=dict)
    counts: dict[str, Counter] = field(default_factory=dict)
    atoms: dict[str, int] = field(default_factory=dict)
    hashes: dict[str, str] = field(default_factory=dict)


def assemble(tasks: Sequence[Task], workdir: str | Path, outdir: str | Path, suffix: str = "") -> Assembly:
    """Concatenate finished task files into ``outdir/{train,test}<suffix>.extxyz`` (plan order)."""
    workdir, outdir = Path(workdir), Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    result = Assembly()
    for split in ("train", "test"):
        path = outdir / f"{split}{suffix}.extxyz"
        counts: Counter = Counter()
        n_atoms = 0
        with open(path, "w") as out:
            for task in tasks:
                if task.split != split:
                    continue
                src = workdir / "tasks" / f"{task.file_stem}.extxyz"
                if not src.exists():
                    continue
                complete_frames(src)
                for a in ase.io.iread(src, format="extxyz"):
                    counts[
                        (a.info.get("phase"), a.info.get("origin"), int(a.info.get("temperature_K", 0)))
                    ] += 1
                    n_atoms += len(a)
                with open(src) as f:
                    shutil.copyfileobj(f, out)
        result.files[split] = path
        result.counts[split] = counts
        result.atoms[split] = n_atoms
        result.hashes[split] = sha256(path)
    return result


def counts_table(assembly: Assembly, suffix: str = "") -> str:
    """Files, hashes and frame counts per (phase, origin, temperature) as Markdown."""
    lines = ["| file | frames | atoms | sha256 |", "|---|---:|---:|---|"]
    for split, counts in assembly.counts.items():
        lines.append(
            f"| `{split}{suffix}.extxyz` | {sum(counts.values())} | {assembly.atoms[split]} | `{assembly.hashes[split]}` |"
        )
    lines += ["", "| split | phase | origin | T (K) | frames |", "|---|---|---|---:|---:|"]
    for split, counts in assembly.counts.items():
        for (phase, origin, temp), k in sorted(
            counts.items(), key=lambda kv: (str(kv[0][0]), str(kv[0][1]), kv[0][2])
        ):
            lines.append(f"| {split} | {phase} | {origin} | {temp} | {k} |")
    return "\n".join(lines)


# ------------------------------------------------------------------------ prototype checks


def verify_prototypes(labeler: Labeler, relax_steps: int = 300) -> list[dict[str, Any]]:
    """Structural checks of every prototype plus the teacher's view of it.

    For each prototype: density vs literature, minimum distance, P–S bond range, units;
    teacher max force and stress at the shipped geometry; and the cell change on a full
    relaxation (FIRE + :class:`ase.filters.FrechetCellFilter`, ``relax_steps`` steps).
    """
    from ase.filters import FrechetCellFilter
    from ase.optimize import FIRE

    rows = []
    for name, proto in lips.PROTOTYPES.items():
        atoms = proto.build()
        ps = lips.ps_bond_lengths(atoms)
        row: dict[str, Any] = {
            "name": name,
            "formula": atoms.get_chemical_formula(),
            "n_atoms": len(atoms),
            "density": lips.density(atoms),
            "density_lit": proto.density,
            "min_distance": lips.min_distance(atoms),
            "ps_min": float(ps.min()) if len(ps) else math.nan,
            "ps_max": float(ps.max()) if len(ps) else math.nan,
            "units": dict(lips.thiophosphate_units(atoms)),
            "source": proto.source,
        }
        atoms.calc = labeler.calculator
        row["fmax"] = float(np.abs(atoms.get_forces()).max())
        row["stress_GPa"] = [float(v) for v in atoms.get_stress() / units.GPa]
        e0 = atoms.get_potential_energy() / len(atoms)
        v0 = atoms.get_volume()
        cell0 = atoms.cell.cellpar()
        FIRE(FrechetCellFilter(atoms), logfile=None).run(fmax=0.02, steps=relax_steps)
        row["relaxed_energy_change_meV"] = 1e3 * (atoms.get_potential_energy() / len(atoms) - e0)
        row["relaxed_volume_change_pct"] = 100 * (atoms.get_volume() / v0 - 1)
        row["relaxed_length_change_pct"] = [
            float(v) for v in 100 * (atoms.cell.cellpar()[:3] / cell0[:3] - 1)
        ]
        row["relaxed_angle_change_deg"] = [float(v) for v in atoms.cell.cellpar()[3:] - cell0[3:]]
        row["relaxed_min_distance"] = lips.min_distance(atoms)
        rows.append(row)
        log.info("verified %s: %s", name, json.dumps(row, default=str))
    return rows


def measure_speed(
    labeler: Labeler, sizes: Sequence[int] = (32, 64, 96, 128), repeats: int = 3
) -> dict[int, float]:
    """Teacher atom-evaluations per second on β-Li₃PS₄ supercells of about ``sizes`` atoms."""
    out = {}
    base = lips.beta_li3ps4()
    for n in sizes:
        atoms = lips.supercell(base, n)
        labeler.label_one(lips.rattled(atoms, 0.05, seed=0))  # warm-up
        t0 = time.perf_counter()
        for r in range(repeats):
            labeler.label_one(lips.rattled(atoms, 0.05, seed=r + 1))
        out[len(atoms)] = len(atoms) * repeats / (time.perf_counter() - t0)
    return out


def write_readme(
    outdir: str | Path,
    tasks: Sequence[Task],
    assembly: Assembly,
    labeler: Labeler,
    *,
    seed: int,
    scale: float,
    summaries: Sequence[dict[str, Any]] = (),
    speed: dict[int, float] | None = None,
    prototypes: Sequence[dict[str, Any]] = (),
) -> Path:
    """Write ``outdir/README.md``: protocol, counts per phase/origin/temperature, hashes."""
    outdir = Path(outdir)
    lines = [
        "# Li–P–S teacher-labelled data for the shipped ssehpc committee",
        "",
        f"Generated by `ssehpc.ml.distill` (`python examples/distill_lips.py --seed {seed} --scale {scale}`).",
        f"Teacher: **{labeler.name}**, {labeler.version}. Labels: energy (eV), forces (eV/Å), stress",
        "(eV/Å³, ASE sign: positive in tension, Voigt xx yy zz yz xz xy) as extxyz `SinglePointCalculator`",
        "results; provenance in each frame's info (`phase`, `config_type`, `origin`, `task`, `seed`,",
        "`temperature_K`, `strain` (Voigt), `vacancies`, `rattle`, `teacher`, `teacher_version`).",
        "",
        "| file | frames | atoms | sha256 |",
        "|---|---:|---:|---|",
    ]
    for split in ("train", "test"):
        n = sum(assembly.counts[split].values())
        lines.append(f"| `{split}.extxyz` | {n} | {assembly.atoms[split]} | `{assembly.hashes[split]}` |")
    lines += [
        "",
        "## Protocol",
        "",
        "All structures from `ssehpc.structures.lips` (sources cited there). Supercells: "
        + ", ".join(f"{k} {v}" for k, v in CRYSTALS.items())
        + f" atoms; glasses {GLASS_ATOMS} atoms at {GLASS_DENSITY} g/cm³.",
        "",
        "* **static**: per crystal, rattled copies (σ uniform 0.01–0.08 Å) cycling through no strain,",
        "  isotropic strain uniform ±5 %, random symmetric strain (all six Voigt components uniform ±3 %).",
        "* **static-vac / md-vac**: charge-compensated Li vacancies — Li₂S: −2 Li −1 S²⁻ (Schottky);",
        "  β-Li₃PS₄ and Li₇P₃S₁₁: −3 Li −1 PS₄³⁻.",
        "* **md**: ASE Langevin NVT driven by the teacher, 2 fs steps, friction 0.02 fs⁻¹, Maxwell–Boltzmann",
        "  start, 15 unsampled steps then a snapshot every 6 steps (12 fs); labels are the teacher's own",
        "  results at that step. Every second snapshot also gets a rattled copy (σ = 0.04 Å, `origin=md+rattle`).",
        "  Li₂S, β-Li₃PS₄, Li₇P₃S₁₁, P₄S₁₀ at 300, 600, 1000 K; γ-Li₃PS₄ at 300, 600 K; Li₄P₂S₆ at 600 K;",
        "  ±4 % isotropically strained β-Li₃PS₄ and Li₇P₃S₁₁ and +4 % Li₂S at 600 K; vacancy cells at 600 K",
        "  (β-Li₃PS₄ also 1000 K).",
        "* **glass-mq**: `random_glass(x)` for x = 0.67 (one replica), 0.70 and 0.75 (two each), 20 FIRE steps,",
        "  then 1000 K (20 + 8×6 steps) → 700 K → 450 K → 300 K (8 + 6×6 steps each), sampled in every stage.",
        "  This is a short quench for data coverage, not an equilibrated glass.",
        "* **test set**: separate tasks with their own seeds (independent trajectories and rattles):",
        "  static frames of every crystal, 600 K MD of Li₂S, β-Li₃PS₄, Li₇P₃S₁₁, Li₄P₂S₆, a β-Li₃PS₄",
        "  vacancy run, and 1000 → 600 → 300 K runs of x = 0.70 and 0.75 glasses.",
        "",
        "Reproduce: same seed and scale give the same task list and structures; MD on CPU with one thread",
        "reproduces to floating-point summation order. Interrupted runs resume (`--workdir` kept).",
        "",
        "## Counts (phase / origin / target temperature)",
        "",
        "| split | phase | origin | T (K) | frames |",
        "|---|---|---|---:|---:|",
    ]
    for split in ("train", "test"):
        for (phase, origin, temp), n in sorted(
            assembly.counts[split].items(), key=lambda kv: (str(kv[0][0]), str(kv[0][1]), kv[0][2])
        ):
            lines.append(f"| {split} | {phase} | {origin} | {temp} | {n} |")
    per_phase: dict[str, Counter] = defaultdict(Counter)
    for split in ("train", "test"):
        for (phase, _, _), n in assembly.counts[split].items():
            per_phase[phase][split] += n
    lines += ["", "| phase | train | test |", "|---|---:|---:|"]
    for phase, c in sorted(per_phase.items()):
        lines.append(f"| {phase} | {c['train']} | {c['test']} |")
    lines += ["", "## Notes and caveats", "", *README_NOTES]
    failed = [s for s in summaries if s.get("error") or s.get("failures")]
    if failed:
        lines += ["", "## Failed or truncated tasks", ""]
        lines += [
            f"* `{s['task']}`: {s.get('error') or s.get('failures')} ({s['frames']} frames kept)"
            for s in failed
        ]
    if summaries:
        secs = sum(s["seconds"] for s in summaries)
        lines += ["", f"Generation time: {secs / 60:.1f} min of teacher time on one CPU thread."]
    if speed:
        lines += [
            "",
            "## Teacher speed (one CPU thread)",
            "",
            "| atoms | atom-evaluations/s |",
            "|---:|---:|",
        ]
        lines += [f"| {n} | {r:.0f} |" for n, r in speed.items()]
    if prototypes:
        lines += [
            "",
            "## Prototype checks (teacher at the shipped geometry; full FIRE + FrechetCellFilter relaxation)",
            "",
            "| structure | atoms | ρ (g/cm³) | ρ lit. | d_min (Å) | P–S (Å) | units | F_max (eV/Å) | σ (GPa, xx yy zz) | ΔV relaxed (%) | Δa Δb Δc (%) |",
            "|---|---:|---:|---:|---:|---|---|---:|---|---:|---|",
        ]
        for r in prototypes:
            ps = "–" if math.isnan(r["ps_min"]) else f"{r['ps_min']:.3f}–{r['ps_max']:.3f}"
            units_ = ", ".join(f"{k}×{v}" for k, v in sorted(r["units"].items()))
            stress = " ".join(f"{v:.2f}" for v in r["stress_GPa"][:3])
            dl = " ".join(f"{v:+.1f}" for v in r["relaxed_length_change_pct"])
            lines.append(
                f"| {r['name']} | {r['n_atoms']} | {r['density']:.3f} | {r['density_lit']:.3f} | {r['min_distance']:.3f} | {ps} | "
                f"{units_} | {r['fmax']:.3f} | {stress} | {r['relaxed_volume_change_pct']:+.1f} | {dl} |"
            )
    path = outdir / "README.md"
    path.write_text("\n".join(lines) + "\n")
    return path


# ------------------------------------------------------------------------------------- CLI
#: Contact frames per split at ``--scale 1`` (data v3).
CONTACT_FRAMES = {"train": 600, "test": 60}
#: Contact frames whose teacher forces exceed this (eV/Å) are dropped (far steeper than MD).
CONTACT_MAX_FORCE = 30.0


def _main_contact(args: argparse.Namespace) -> int:
    """``--set contact``: label close-contact frames made from data v2, per split."""
    import torch

    torch.set_num_threads(args.threads)
    labeler = Labeler.chgnet(num_threads=args.threads)
    out, work = Path(args.out), Path(args.workdir)
    lines = ["| file | frames | atoms | sha256 |", "|---|---:|---:|---|"]
    counts: Counter = Counter()
    for split, n in CONTACT_FRAMES.items():
        base_path = next(
            (p for p in (out / f"{split}_hot.extxyz", out / f"{split}_hot.extxyz.xz") if p.exists()), None
        )
        if base_path is None:
            raise SystemExit(f"--set contact needs {out}/{split}_hot.extxyz[.xz] (data v2, --set hot)")
        base = read_frames(base_path)
        frames = contact_frames(
            base, max(1, round(n * args.scale)), _stable_seed(args.seed, "contact", split)
        )
        raw = work / f"{split}_contact.labelled.extxyz"
        res = labeler.label(frames, out=raw, resume=True, log_every=50)
        log.info("%s: %d labelled in this call, %d failures", split, len(res.frames), len(res.failures))
        kept = [a for a in ase.io.iread(raw) if float(np.abs(a.get_forces()).max()) <= CONTACT_MAX_FORCE]
        kept.sort(key=lambda a: int(a.info["label_index"]))
        path = out / f"{split}_contact.extxyz"
        ase.io.write(path, kept, format="extxyz")
        for a in kept:
            counts[(split, a.info["contact_pair"])] += 1
        lines.append(f"| `{path.name}` | {len(kept)} | {sum(len(a) for a in kept)} | `{sha256(path)}` |")
    lines += ["", "| split | pair | frames |", "|---|---|---:|"]
    lines += [f"| {split} | {pair} | {k} |" for (split, pair), k in sorted(counts.items())]
    print("\n".join(lines))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: generate, assemble and document the Li–P–S teacher data.

    Options: ``--workdir`` (task files, resumable), ``--out`` (default ``ssehpc/data/lips``),
    ``--seed``, ``--scale`` (0.05 for a smoke test), ``--threads`` (torch threads, default 1),
    ``--only`` (substring filter on task names), ``--dry-run`` (print the plan and its cost),
    ``--no-verify`` (skip the prototype relaxations in the README), ``--speed`` (measure the
    teacher's atoms/s for the README).
    """
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", default="distill_work")
    p.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "data" / "lips"))
    p.add_argument("--seed", type=int, default=2024)
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--only", default=None)
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--no-verify", action="store_true")
    p.add_argument("--speed", action="store_true")
    p.add_argument("--assemble-only", action="store_true")
    p.add_argument(
        "--set",
        choices=("base", "hot", "contact"),
        default="base",
        help="base: data v0/v1 (train/test.extxyz, README.md); hot: data v2 (train_hot/test_hot.extxyz, "
        "counts printed as a Markdown table for the README); contact: data v3, close contacts in the "
        "frames of data v2 (train_contact/test_contact.extxyz; needs train_hot/test_hot in --out)",
    )
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    warnings.filterwarnings("ignore", module="chgnet")
    warnings.filterwarnings("ignore", message=".*requires_grad.*")
    warnings.filterwarnings("ignore", message=".*FixAtoms and FixCartesian.*")
    if args.set == "contact":
        return _main_contact(args)
    tasks = (plan_hot if args.set == "hot" else plan)(args.seed, args.scale)
    if args.only:
        tasks = [t for t in tasks if args.only in t.name]
    if args.dry_run:
        for t in tasks:
            print(f"{t.name:45s} {t.kind:7s} frames={t.expected_frames:4d} cost={t.cost() / 1e3:7.1f}k")
        print(
            f"total: {len(tasks)} tasks, {sum(t.expected_frames for t in tasks)} frames, {sum(t.cost() for t in tasks) / 1e3:.0f}k atom-evaluations"
        )
        return 0
    import torch

    torch.set_num_threads(args.threads)
    labeler = Labeler.chgnet(num_threads=args.threads)
    summaries = [] if args.assemble_only else run(tasks, labeler, args.workdir)
    if args.assemble_only:
        for t in tasks:
            done = Path(args.workdir) / "tasks" / f"{t.file_stem}.done"
            if done.exists():
                summaries.append(json.loads(done.read_text()))
    if args.set == "hot":
        if args.only:  # a partial set is not assembled over the full one
            return 0
        assembly = assemble(tasks, args.workdir, args.out, suffix="_hot")
        print(counts_table(assembly, suffix="_hot"))
        return 0
    assembly = assemble(tasks, args.workdir, args.out)
    speed = measure_speed(labeler) if args.speed else None
    protos = [] if args.no_verify else verify_prototypes(labeler)
    readme = write_readme(
        args.out,
        tasks,
        assembly,
        labeler,
        seed=args.seed,
        scale=args.scale,
        summaries=summaries,
        speed=speed,
        prototypes=protos,
    )
    log.info("wrote %s, %s and %s", assembly.files["train"], assembly.files["test"], readme)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
