"""Teacher labelling: labels and provenance, failures kept apart, incremental files, resume, chunks."""

from __future__ import annotations

import functools
import importlib.util
import pickle
import sys

import ase.io
import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.lj import LennardJones

from ssehpc.ml.labeler import (
    Labeler,
    append_extxyz,
    complete_frames,
    label_chunk,
    labelled_indices,
    read_failures,
)


def make_lj() -> Calculator:
    return LennardJones(sigma=3.4, epsilon=0.0104, rc=8.0, smooth=True)


class FailOn(Calculator):
    """LJ that raises for structures tagged ``info['fail']`` via a position marker."""

    implemented_properties = ("energy", "forces", "stress")

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        if atoms.positions[0, 0] < -50:  # the marker
            raise RuntimeError("SCF did not converge")
        lj = make_lj()
        lj.calculate(atoms, properties, system_changes)
        self.results = dict(lj.results)


def frames(n: int = 4) -> list[ase.Atoms]:
    out = []
    for k in range(n):
        a = bulk("Ar", "fcc", a=5.26, cubic=True).repeat(2)
        a.rattle(0.05, seed=k)
        a.info.update({"config_type": "argon", "seed": k, "temperature_K": 100.0 * k, "units": {"x": 1}})
        out.append(a)
    return out


def test_labels_match_calculator_and_carry_provenance(tmp_path):
    lab = Labeler(make_lj, name="LJ", version="v1.0")
    fs = frames(3)
    res = lab.label(fs, out=tmp_path / "d.extxyz")
    assert len(res.frames) == 3
    assert not res.failures
    assert res.atoms_evaluated == 96
    back = ase.io.read(tmp_path / "d.extxyz", index=":")
    for k, (a, b) in enumerate(zip(fs, back, strict=True)):
        ref = a.copy()
        ref.calc = make_lj()
        assert b.get_potential_energy() == pytest.approx(ref.get_potential_energy(), rel=1e-9)
        assert np.allclose(b.get_forces(), ref.get_forces(), atol=1e-8)
        assert np.allclose(b.get_stress(), ref.get_stress(), atol=1e-10)
        assert b.info["teacher"] == "LJ"
        assert b.info["teacher_version"] == "v1.0"
        assert b.info["label_index"] == k
        assert b.info["config_type"] == "argon"
        assert b.info["seed"] == k
        assert b.info["units"] == '{"x": 1}'  # dicts are stored as JSON strings
        assert "momenta" not in b.arrays


def test_failures_recorded_and_others_kept(tmp_path):
    lab = Labeler(FailOn, name="flaky")
    fs = frames(4)
    fs[1].positions[0, 0] = -100.0
    out = tmp_path / "d.extxyz"
    res = lab.label(fs, out=out)
    assert [f.index for f in res.failures] == [1]
    assert "SCF did not converge" in res.failures[0].error
    assert labelled_indices(out) == {0, 2, 3}
    assert [f.index for f in read_failures(out.with_name("d.extxyz.failures.jsonl"))] == [1]
    # a resumed run skips both the done and the failed frame ...
    again = lab.label(fs, out=out)
    assert again.n_skipped == 4
    assert not again.frames
    # ... unless asked to retry failures
    fs[1].positions[0, 0] = 0.0
    retry = lab.label(fs, out=out, retry_failed=True)
    assert [a.info["label_index"] for a in retry.frames] == [1]


def test_resume_after_interruption_and_torn_frame(tmp_path):
    lab = Labeler(make_lj, name="LJ")
    fs = frames(5)
    out = tmp_path / "d.extxyz"
    lab.label(fs[:2], out=out)  # "interrupted" after two frames
    with open(out, "a") as f:  # and a torn third frame
        f.write('32\nLattice="1 0 0 0 1 0 0 0 1" Properties=species:S:1:pos:R:3\nAr 0 0 0\n')
    assert complete_frames(out, repair=False) == 2
    res = lab.label(fs, out=out)
    assert res.n_skipped == 2
    assert len(res.frames) == 3
    back = ase.io.read(out, index=":")
    assert [a.info["label_index"] for a in back] == [0, 1, 2, 3, 4]
    fresh = lab.label(fs, out=out, resume=False)
    assert len(fresh.frames) == 5
    assert complete_frames(out) == 5


def test_max_force_and_nonperiodic(tmp_path):
    lab = Labeler(make_lj, name="LJ", max_force=1e-6)
    res = lab.label(frames(1))
    assert len(res.failures) == 1
    assert "max_force" in res.failures[0].error
    mol = ase.Atoms("Ar2", positions=[[0, 0, 0], [0, 0, 3.8]])
    out = Labeler(make_lj, name="LJ").label_one(mol)
    assert "stress" not in out.calc.results
    assert np.isfinite(out.get_potential_energy())


def test_label_chunk_is_picklable_and_pure(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    lab = Labeler(functools.partial(LennardJones, sigma=3.4, epsilon=0.0104, rc=8.0, smooth=True), name="LJ")
    lab.calculator  # a built calculator is not shipped  # noqa: B018
    remote = pickle.loads(pickle.dumps(lab))
    assert remote._calc is None
    fs = frames(5)
    chunks = Labeler.chunks(fs, 2)
    assert [(s, len(c)) for s, c in chunks] == [(0, 2), (2, 2), (4, 1)]
    results = [label_chunk(remote, c, s) for s, c in chunks]
    got = [a for r in results for a in r.frames]
    assert [a.info["label_index"] for a in got] == [0, 1, 2, 3, 4]
    assert list(tmp_path.iterdir()) == []  # no files written
    append_extxyz(tmp_path / "all.extxyz", got)
    assert complete_frames(tmp_path / "all.extxyz") == 5
    direct = lab.label(fs)
    assert np.allclose(
        [a.get_potential_energy() for a in got], [a.get_potential_energy() for a in direct.frames]
    )
    with pytest.raises(ValueError, match="positive"):
        Labeler.chunks(fs, 0)


def test_chgnet_missing_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "chgnet", None)
    with pytest.raises(ImportError, match=r"ssehpc\[teacher\]"):
        Labeler.chgnet()


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("chgnet") is None,
    reason="needs the optional teacher: pip install ssehpc[teacher]",
)
def test_chgnet_stress_is_ase_convention():
    """σ = (1/V) ∂E/∂ε by central differences of the teacher energy (positive in tension)."""
    from ssehpc.structures import prototype, rattled, strained

    lab = Labeler.chgnet(num_threads=1)
    atoms = rattled(prototype("gamma-Li3PS4"), 0.03, seed=1)
    stress = lab.label_one(atoms).get_stress()
    v = atoms.get_volume()
    h = 2e-3
    for comp in (0, 2, 5):
        eps = np.zeros(6)
        eps[comp] = h
        ep = lab.label_one(strained(atoms, eps)).get_potential_energy()
        em = lab.label_one(strained(atoms, -eps)).get_potential_energy()
        factor = 1.0 if comp < 3 else 2.0  # tensor shear strain enters twice
        fd = (ep - em) / (2 * h) / v / factor
        assert stress[comp] == pytest.approx(fd, abs=2e-4)
