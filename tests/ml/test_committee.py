"""Committee: one batched pass == K separate members; deviation after the ghost reverse sum."""

from __future__ import annotations

import pytest
import torch

from ssehpc.forces import ForceCompute, force_deviation
from ssehpc.ml.committee import Committee
from ssehpc.ml.model import MomentPotential
from ssehpc.state import concatenate
from tests.ml.systems import lips_state, make_model
from tests.potentials import conformance


def test_one_pass_equals_separate_members() -> None:
    committee = make_model(n_members=3)
    assert isinstance(committee, Committee)
    members = [committee.member(k) for k in range(3)]
    assert all(type(m) is MomentPotential and m.n_members == 1 for m in members)
    st = lips_state(seed=11, n_formula=2)
    fc = ForceCompute(committee)
    s = st.clone()
    fc.compute(s)
    sep = [conformance.evaluate(m, st) for m in members]
    forces = torch.stack([r.forces for r in sep], dim=1)  # [n, K, 3]
    conformance.assert_close(fc.extras["member_forces"], forces, 1e-12, "member forces")
    conformance.assert_close(s.forces, forces.mean(1), 1e-12, "mean forces")
    conformance.assert_close(s.energy, torch.stack([r.energy for r in sep]).mean(0), 1e-12, "mean energy")
    conformance.assert_close(s.virial, torch.stack([r.virial for r in sep]).mean(0), 1e-12, "mean virial")
    # members really differ, so the deviation is not trivially zero
    assert float((forces[:, 0] - forces[:, 1]).abs().max()) > 1e-2


def test_from_members_round_trip() -> None:
    committee = make_model(n_members=2)
    again = Committee.from_members([committee.member(0), committee.member(1)])
    for name, t in committee.state_dict().items():
        assert torch.equal(again.state_dict()[name], t), name
    with pytest.raises(ValueError, match="at least 2"):
        Committee.from_members([committee.member(0)])
    with pytest.raises(ValueError, match="different architecture"):
        Committee.from_members([committee.member(0), make_model(lmax=3)])


def test_committee_passes_conformance() -> None:
    """The member mean is itself a conservative, invariant potential."""
    conformance.check_all(make_model(n_members=2), lips_state(seed=12), lips_state(seed=13, n_formula=2))


def test_force_deviation_uses_reverse_summed_member_forces() -> None:
    """ε_i from ForceCompute equals sqrt(mean_m |F_i^m − F̄_i|²) of the separately evaluated
    members — on an 8-atom cell where every atom has several ghost images, so per-member forces on
    local rows *before* the reverse sum would give a different (wrong) answer."""
    committee = make_model(n_members=4)
    st = lips_state(seed=14)
    fc = ForceCompute(committee)
    s = st.clone()
    fc.compute(s)
    assert fc.local.n_ghost > 4 * st.n_atoms
    sep = torch.stack([conformance.evaluate(committee.member(k), st).forces for k in range(4)], dim=1)
    mean = sep.mean(1, keepdim=True)
    expected = ((sep - mean) ** 2).sum(-1).mean(-1).sqrt()
    conformance.assert_close(fc.extras["force_dev"], expected, 1e-10, "force deviation")
    conformance.assert_close(force_deviation(sep), expected, 1e-14, "force_deviation formula")
    # owned rows of the raw (pre-reverse-sum) member forces are not the answer
    raw = committee(fc.local, fc.nl).extras["member_forces"][: st.n_atoms]
    assert float((force_deviation(raw) - expected).abs().max()) > 1e-3
    assert float(fc.extras["force_dev_max"][0]) == pytest.approx(float(expected.max()), rel=1e-12)
    assert float(fc.extras["force_dev_mean"][0]) == pytest.approx(float(expected.mean()), rel=1e-12)


def test_deviation_per_system_in_a_batch() -> None:
    committee = make_model(n_members=3)
    a, b = lips_state(seed=15), lips_state(seed=16, n_formula=2)
    fc = ForceCompute(committee)
    both = concatenate([a, b])
    fc.compute(both)
    dev = fc.extras["force_dev"]
    for s, sub in enumerate((a, b)):
        f2 = ForceCompute(committee)
        x = sub.clone()
        f2.compute(x)
        rows = both.system_idx == s
        conformance.assert_close(dev[rows], f2.extras["force_dev"], 1e-12, f"deviation of system {s}")
        assert float(fc.extras["force_dev_max"][s]) == pytest.approx(float(f2.extras["force_dev_max"][0]))
        assert float(fc.extras["force_dev_mean"][s]) == pytest.approx(float(f2.extras["force_dev_mean"][0]))


def test_identical_members_have_zero_deviation() -> None:
    one = make_model()
    committee = Committee.from_members([one, one, one])
    st = lips_state(seed=17)
    fc = ForceCompute(committee)
    fc.compute(st)
    assert float(fc.extras["force_dev"].max()) < 1e-12
    conformance.assert_close(
        st.forces, conformance.evaluate(one, lips_state(seed=17)).forces, 1e-12, "forces"
    )


def test_member_forces_only_on_request_and_mean_forces_unchanged() -> None:
    """``extras=False`` skips the K-member pair pass; the mean forces are the same either way."""
    committee = make_model(n_members=3)
    st = lips_state(seed=5, n_formula=2)
    fc = ForceCompute(committee)
    with_members, without = st.clone(), st.clone()
    fc.compute(with_members, extras=True)
    assert fc.extras["member_forces"].shape == (st.n_atoms, 3, 3)
    fc.compute(without, extras=False)
    assert "member_forces" not in fc.extras
    assert "force_dev_max" not in fc.extras
    # bitwise: the MD forces never depend on whether a frame is written at this step
    assert torch.equal(with_members.forces, without.forces)
    assert torch.equal(with_members.energy, without.energy)
    assert torch.equal(with_members.virial, without.virial)


def test_trajectory_does_not_depend_on_the_write_interval(tmp_path) -> None:
    """Deviation frames every 2 or every 5 steps: the same trajectory, bitwise."""
    from ssehpc.integrators import make_integrator
    from ssehpc.io.zarr_store import COMMITTEE_FRAME_FIELDS, ZarrStore
    from ssehpc.simulation import Periodic, Simulation, ZarrFrameWriter

    committee = make_model(n_members=2)
    finals, devs = [], []
    for interval in (2, 5):
        st = lips_state(seed=3, n_formula=2)
        run = ZarrStore.open(tmp_path / f"w{interval}.zarr", "a").create_run(
            "r", st, {}, extra_frame_fields=COMMITTEE_FRAME_FIELDS
        )
        sim = Simulation(
            st,
            ForceCompute(committee),
            make_integrator("langevin", 1.0, temperature=600.0),
            [ZarrFrameWriter(run, Periodic(interval))],
            store=run,
        )
        sim.run(10)
        finals.append(sim.state.positions.clone())
        devs.append(run.group["force_dev_max"][:])
    assert torch.equal(finals[0], finals[1])
    # frames at steps 0 and 10 are common to both runs and carry the same deviation
    assert devs[0][0] == pytest.approx(devs[1][0], rel=1e-12)
    assert devs[0][-1] == pytest.approx(devs[1][-1], rel=1e-12)
    assert float(devs[0][-1].max()) > 0


def _compare_with_overrides(committee, st, **overrides) -> ForceCompute:
    """Evaluate ``st`` with the model's defaults and with ``overrides`` (class attributes such as
    chunk sizes set on the instance); results must agree to round-off. Returns the second ForceCompute."""
    reference, changed = st.clone(), st.clone()
    ForceCompute(committee).compute(reference)
    for name, value in overrides.items():
        setattr(committee, name, value)
    try:
        fc = ForceCompute(committee)
        fc.compute(changed)
    finally:
        for name in overrides:
            delattr(committee, name)
    conformance.assert_close(changed.forces, reference.forces, 1e-12, "forces")
    conformance.assert_close(changed.energy, reference.energy, 1e-12, "energy")
    conformance.assert_close(changed.virial, reference.virial, 1e-12, "virial")
    return fc


def test_chunked_evaluation_equals_one_pass() -> None:
    """Pair and atom chunks (memory bounds for million-atom domains) give the same result."""
    _compare_with_overrides(
        make_model(n_members=3), lips_state(seed=8, n_formula=2), atom_chunk=5, pair_chunk=7 * 80
    )


def test_recomputed_pair_basis_equals_stored_basis() -> None:
    """``basis_memory`` exceeded: the force pass recomputes the pair basis per chunk, same result
    (with a ZBL core that acts on a close pair)."""
    committee = make_model(n_members=2, core=(0.5, 2.2))
    st = lips_state(seed=9, n_formula=2)
    fc = _compare_with_overrides(committee, st, basis_memory=0, pair_chunk=11 * 80)
    assert fc.extras["force_dev_max"].item() > 0
