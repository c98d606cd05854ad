"""``examples/lips_reencode.py``: atom lines rounded to the stated precision, everything else kept
byte for byte, frames that carry other columns refused."""

from __future__ import annotations

import lzma

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write

from tests.ml.examples import load_example


def _frames(n=3):
    rng = np.random.default_rng(7)
    out = []
    for k in range(n):
        a = bulk("Li", "bcc", a=3.44, cubic=True).repeat((2, 2, 2))
        a.rattle(0.1, seed=k)
        a.info["config_type"] = f"f{k}"
        a.calc = SinglePointCalculator(
            a, energy=-1.234567891 * (k + 1), forces=rng.normal(0, 0.5, (len(a), 3))
        )
        out.append(a)
    return out


def test_reencode_rounds_atom_lines_and_keeps_headers(tmp_path):
    mod = load_example("lips_reencode")
    path = tmp_path / "f.extxyz.xz"
    frames = _frames()
    with lzma.open(path, "wt") as fh:
        write(fh, frames, format="extxyz")
    before = lzma.decompress(path.read_bytes()).decode().splitlines()
    mod.reencode_file(path)
    after = lzma.decompress(path.read_bytes()).decode().splitlines()
    assert len(after) == len(before)
    n = len(frames[0])
    for i, (b, a) in enumerate(zip(before, after, strict=True)):
        if i % (n + 2) < 2:
            assert a == b  # count and header lines untouched
    back = read(str(path), index=":")
    for a0, a1 in zip(frames, back, strict=True):
        assert np.abs(a1.positions - a0.positions).max() <= 5e-6 + 1e-12
        assert np.abs(a1.get_forces() - a0.get_forces()).max() <= 5e-5 + 1e-12
        assert np.abs(a1.positions - a0.positions).max() > 0  # it did round
        assert a1.get_potential_energy() == a0.get_potential_energy()
        assert a1.info["config_type"] == a0.info["config_type"]
    # idempotent: a second pass changes nothing
    text = path.read_bytes()
    mod.reencode_file(path)
    assert lzma.decompress(path.read_bytes()) == lzma.decompress(text)


def test_reencode_refuses_extra_columns(tmp_path):
    mod = load_example("lips_reencode")
    path = tmp_path / "g.extxyz"
    a = _frames(1)[0]
    a.set_initial_charges(np.ones(len(a)))
    write(str(path), a, format="extxyz")
    original = path.read_bytes()
    with pytest.raises(mod.ReencodeError, match="columns"):
        mod.reencode_file(path)
    assert path.read_bytes() == original  # nothing written on refusal


def test_reencode_refuses_a_truncated_file(tmp_path):
    mod = load_example("lips_reencode")
    path = tmp_path / "t.extxyz"
    write(str(path), _frames(2), format="extxyz")
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-3]) + "\n")  # the last frame loses three atoms
    original = path.read_bytes()
    with pytest.raises(mod.ReencodeError, match="truncated"):
        mod.reencode_file(path)
    assert path.read_bytes() == original
