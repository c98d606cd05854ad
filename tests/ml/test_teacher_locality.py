"""``examples/teacher_locality.py``: displacing atoms beyond ``r_in + 2 rc`` leaves the forces of a
teacher with cutoff ``rc`` unchanged near the centre, and moves those of a longer-ranged one."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.lj import LennardJones

from tests.ml.examples import load_example


def _frame(seed=3):
    atoms = bulk("Ar", "fcc", a=1.6, cubic=True).repeat((2, 2, 2))  # reduced LJ units, 32 atoms
    atoms.rattle(0.05, seed=seed)
    return atoms


def test_repeats_cover_the_far_shell():
    mod = load_example("teacher_locality")
    atoms = _frame()
    reps = mod.repeats_for(atoms, 6.2)
    assert reps == (4, 4, 4)  # width 3.2 per cell: 4 x 3.2 / 2 = 6.4 > 6.2, 3 x 3.2 / 2 = 4.8 < 6.2
    sc = atoms.repeat(reps)
    assert min(sc.cell.lengths()) / 2 > 6.2


def test_local_teacher_gives_zero_and_long_ranged_one_does_not():
    mod = load_example("teacher_locality")
    frames = [_frame()]
    rc = 2.5
    local = LennardJones(rc=rc, smooth=True)
    rows = mod.far_field_response(frames, local, rc=rc, r_in=1.2, sigma=0.1, centres_per_element=2, seed=1)
    assert rows
    assert all(r["n_far"] > 0 for r in rows)
    assert max(r["dF_teacher"] for r in rows) < 1e-10
    assert all(np.isnan(r["dF_student"]) for r in rows)
    far = LennardJones(rc=6.0, smooth=True)  # reaches past r_in + 2 rc = 6.2 from atoms near the centre
    rows = mod.far_field_response(
        frames, far, local, rc=rc, r_in=1.2, sigma=0.1, centres_per_element=2, seed=1
    )
    assert max(r["dF_teacher"] for r in rows) > 1e-6
    assert max(r["dF_student"] for r in rows) < 1e-10  # the local one as the student: unchanged
    assert "| Ar |" in mod.table(rows)


def test_many_body_local_model_needs_the_full_2rc_shell():
    """The shipped committee (5 Å atomic energies, three- and four-body) as the probed teacher: no
    change when atoms beyond r_in + 2 rc move, a change when the shell is only r_in + rc."""
    from ssehpc.ml import SSEHPCCalculator
    from ssehpc.potentials import make_potential
    from ssehpc.structures.lips import prototype, rattled

    mod = load_example("teacher_locality")
    frame = rattled(prototype("beta-Li3PS4"), 0.05, seed=4)
    calc = SSEHPCCalculator(make_potential("mlff", model="lips", dtype="float64"))
    rows = mod.far_field_response([frame], calc, rc=5.0, r_in=1.5, centres_per_element=1, seed=2)
    assert rows
    assert max(r["dF_teacher"] for r in rows) < 1e-9
    rows = mod.far_field_response([frame], calc, rc=2.5, r_in=1.5, centres_per_element=1, seed=2)
    assert max(r["dF_teacher"] for r in rows) > 1e-4  # atoms 6.5-11.5 Å away still matter


def test_non_periodic_frame_is_refused():
    mod = load_example("teacher_locality")
    atoms = _frame()
    atoms.pbc = False
    with pytest.raises(ValueError, match="periodic"):
        mod.far_field_response([atoms], LennardJones(), rc=2.5)
