"""Teacher-data protocol: a deterministic plan, static frames, MD tasks, resume, assembly, README."""

from __future__ import annotations

import ase.io
import numpy as np
import pytest
from ase.calculators.calculator import Calculator, all_changes

from ssehpc.ml import distill
from ssehpc.ml.distill import Segment, Task
from ssehpc.ml.labeler import Labeler


class Harmonic(Calculator):
    """Cheap stand-in teacher: springs to the initial positions (eV, eV/Å), zero stress."""

    implemented_properties = ("energy", "forces", "stress")

    def __init__(self):
        super().__init__()
        self.ref = None

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        if self.ref is None or len(self.ref) != len(atoms):
            self.ref = atoms.positions.copy()
        d = atoms.positions - self.ref
        self.results = {"energy": float((d * d).sum()), "forces": -2 * d, "stress": np.zeros(6)}


def test_plan_is_deterministic_and_sized():
    a, b = distill.plan(seed=1), distill.plan(seed=1)
    assert a == b
    assert len({t.name for t in a}) == len(a)
    assert [t.seed for t in distill.plan(seed=2)] != [t.seed for t in a]
    frames = sum(t.expected_frames for t in a)
    test = sum(t.expected_frames for t in a if t.split == "test")
    assert 800 <= frames <= 1500
    assert 0.08 < test / frames < 0.16
    assert {t.x for t in a if t.kind == "glass" and t.split == "train"} == {0.67, 0.70, 0.75}
    assert {t.phase for t in a if t.kind == "md"} >= {"Li2S", "beta-Li3PS4", "Li7P3S11", "P4S10"}
    assert any(t.vacancies for t in a)
    assert any(t.strain for t in a)
    assert max(t.n_atoms for t in a) <= 120
    assert sum(t.cost() for t in a) < 800_000  # about 40 min of CHGNet on one core (data v1)


def test_static_frames_reproducible_and_bounded():
    task = Task("t/static", "static", "train", "beta-Li3PS4", seed=5, n_atoms=32, n_frames=6)
    f1, f2 = distill.static_frames(task), distill.static_frames(task)
    assert all(np.array_equal(a.positions, b.positions) for a, b in zip(f1, f2, strict=True))
    assert all(0.01 <= a.info["rattle"] <= 0.08 for a in f1)
    assert np.allclose(f1[0].info["strain"], 0)
    assert np.ptp(f1[1].info["strain"][:3]) == 0  # isotropic
    assert f1[2].info["strain"][5] != 0  # shear
    vac = Task("t/vac", "static", "train", "Li2S", seed=5, n_atoms=96, n_frames=1, vacancies=2)
    assert distill.static_frames(vac)[0].get_chemical_formula() == "Li62S31"


def test_run_resume_assemble_readme(tmp_path):
    lab = Labeler(Harmonic, name="harmonic", version="v0")
    tasks = [
        Task("train/static/gamma", "static", "train", "gamma-Li3PS4", seed=1, n_atoms=16, n_frames=3),
        Task(
            "train/md/gamma",
            "md",
            "train",
            "gamma-Li3PS4",
            seed=2,
            n_atoms=16,
            segments=(Segment(300.0, 2, 2, 2), Segment(600.0, 1, 2, 2)),
        ),
        Task("test/static/li2s", "static", "test", "Li2S", seed=3, n_atoms=12, n_frames=2),
    ]
    summaries = distill.run(tasks, lab, tmp_path / "work")
    assert [s["frames"] for s in summaries] == [3, 6, 2]  # 4 snapshots + 2 rattled copies
    again = distill.run(tasks, lab, tmp_path / "work")
    assert again == summaries  # finished tasks are reused, not recomputed
    asm = distill.assemble(tasks, tmp_path / "work", tmp_path / "out")
    train = ase.io.read(asm.files["train"], index=":")
    assert len(train) == 9
    assert len(ase.io.read(asm.files["test"], index=":")) == 2
    md = [a for a in train if a.info["origin"] == "md"]
    assert [a.info["temperature_K"] for a in md] == [300.0, 300.0, 600.0, 600.0]
    assert all(a.info["teacher"] == "harmonic" for a in train)
    readme = distill.write_readme(tmp_path / "out", tasks, asm, lab, seed=0, scale=1.0, summaries=summaries)
    text = readme.read_text()
    assert asm.hashes["train"] in text
    assert distill.sha256(asm.files["train"]) == asm.hashes["train"]
    assert "| train | gamma-Li3PS4 | md | 600 | 2 |" in text


def test_hot_plan_samples_the_melt_and_its_quench():
    a = distill.plan_hot(seed=1)
    assert a == distill.plan_hot(seed=1)
    assert not {t.name for t in a} & {t.name for t in distill.plan(seed=1)}  # new tasks, new seeds
    glass = [t for t in a if t.kind == "glass" and t.split == "train"]
    assert {t.x for t in glass} == {0.67, 0.70, 0.75}
    temps = {s.temperature for t in glass for s in t.segments}
    assert max(temps) >= 1500.0
    assert min(temps) <= 600.0
    # each melt spends at least 2.5 ps at its top temperature (several PS4 relaxation times of the teacher)
    assert all(t.segments[0].steps * t.dt_fs >= 2500.0 for t in glass)
    assert any(t.density and t.density < distill.GLASS_DENSITY for t in glass)
    assert any(t.split == "test" for t in a)
    assert {distill._origin(t) for t in glass} == {"glass-hot", "glass-hot-low"}
    assert distill._origin(distill.plan(seed=1)[-1]) == "glass-melt"
    assert {distill._origin(t) for t in distill.plan(seed=1) if t.name.startswith("train/glass/")} == {
        "glass-mq"
    }


def test_glass_task_density_sets_the_box():
    dense = Task("t/g", "glass", "train", "glass", seed=3, n_atoms=64, x=0.75)
    light = Task("t/g", "glass", "train", "glass", seed=3, n_atoms=64, x=0.75, density=1.65)
    from ssehpc.structures import lips

    assert abs(lips.density(distill.initial_structure(dense)) - distill.GLASS_DENSITY) < 1e-6
    assert abs(lips.density(distill.initial_structure(light)) - 1.65) < 1e-6
    assert distill.initial_structure(light).info["density_g_cm3"] == 1.65


def test_compressed_data_keeps_its_hash(tmp_path):
    import gzip
    import lzma

    from ssehpc.ml import data as mldata

    src = tmp_path / "a.extxyz"
    frames = [
        ase.Atoms("LiS", positions=[[0, 0, 0], [2.4 + 0.1 * k, 0, 0]], cell=[5, 5, 5], pbc=True)
        for k in range(3)
    ]
    ase.io.write(src, frames)
    xz, gz = tmp_path / "a.extxyz.xz", tmp_path / "b.extxyz.gz"
    xz.write_bytes(lzma.compress(src.read_bytes()))
    gz.write_bytes(gzip.compress(src.read_bytes()))
    assert (
        mldata.sha256_files(xz) == mldata.sha256_files(src) == distill.sha256(xz) == mldata.sha256_files(gz)
    )
    got = mldata.read_frames([xz, gz])
    assert [round(a.get_distance(0, 1), 3) for a in got] == [2.4, 2.5, 2.6] * 2
    assert got[4].info["source"] == "b.extxyz.gz:1"


def test_contact_frames_push_one_pair_into_its_range():
    from ssehpc.structures import lips

    base = [lips.random_glass(0.75, 64, 1.88, seed=s) for s in range(3)]
    for k, a in enumerate(base):
        a.info.update(task=f"t{k}", frame=k, phase="glass-x0.75")
    ranges = {("Li", "Li"): (1.3, 1.5), ("P", "S"): (1.5, 1.6)}
    frames = distill.contact_frames(base, 12, seed=5, ranges=ranges)
    again = distill.contact_frames(base, 12, seed=5, ranges=ranges)
    assert all(np.array_equal(a.positions, b.positions) for a, b in zip(frames, again, strict=True))
    assert {a.info["contact_pair"] for a in frames} == {"Li-Li", "P-S"}
    for a in frames:
        i, j = a.info["contact_atoms"]
        lo, hi = ranges[tuple(a.info["contact_pair"].split("-"))]
        assert lo <= a.get_distance(i, j, mic=True) <= hi
        assert a.get_distance(i, j, mic=True) == pytest.approx(a.info["contact_distance"])
        src = base[int(a.info["base_source"].split(":")[1])]
        moved = np.flatnonzero(np.linalg.norm(a.positions - src.positions, axis=1) > 1e-9)
        assert set(moved) == {i, j}  # only the pair moved, symmetrically
        assert np.allclose(a.positions[moved].sum(0), src.positions[moved].sum(0))
        assert a.info["origin"] == "contact"
        assert a.calc is None
