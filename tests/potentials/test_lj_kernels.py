"""The blocked and compiled LJ kernels give the results of the one-block eager kernel."""

from __future__ import annotations

import pytest
import torch

from ssehpc.forces import ForceCompute
from ssehpc.potentials import LennardJones
from ssehpc.state import concatenate
from tests.potentials.conformance import assert_close
from tests.potentials.structures import SHEAR, argon, nacl

EPS, SIG, CUT = 0.0104, 3.405, 8.5


def _raw(pot: LennardJones, state):
    """Potential output on the local atoms of a fresh ForceCompute (ghost rows included)."""
    fc = ForceCompute(pot, skin=1.0)
    st = state.clone()
    fc.compute(st)
    return fc.potential(fc.local, fc.nl), fc.nl.n_pairs


@pytest.mark.parametrize("kind", ["argon", "two-species", "two-systems"])
def test_pair_blocks_equal_one_block(kind: str) -> None:
    """Splitting the pair list into blocks (cache-sized temporaries) changes nothing but the
    summation order of energies and virial: forces are bitwise equal, energies and virial to
    1e-14 relative; the block size is smaller than the list, so several blocks are exercised."""
    if kind == "argon":
        state = argon(4, jitter=0.15, seed=2, deform=SHEAR)
        kw: dict = {}
    elif kind == "two-species":
        state = nacl(2, jitter=0.1, seed=4)
        kw = {"pairs": {("Na", "Na"): (0.01, 2.5), ("Na", "Cl"): (0.02, 2.9), ("Cl", "Cl"): (0.03, 3.4)}}
    else:
        state = concatenate([argon(3, jitter=0.1, seed=5), argon(4, jitter=0.2, seed=6, deform=SHEAR)])
        kw = {}
    one = LennardJones(EPS, SIG, CUT, **kw)
    one.pair_chunk = 0
    blocked = LennardJones(EPS, SIG, CUT, **kw)
    blocked.pair_chunk = 997  # odd size: the last block is partial
    ref, n_pairs = _raw(one, state)
    out, _ = _raw(blocked, state)
    assert n_pairs > 3 * blocked.pair_chunk
    assert torch.equal(out.forces, ref.forces)
    assert_close(out.energies, ref.energies, 1e-14, "per-atom energies")
    assert_close(out.virial, ref.virial, 1e-14, "virial")
    assert float(ref.forces.abs().max()) > 1e-3  # a real (jittered) configuration, not zero forces


def test_compiled_kernel_equals_eager() -> None:
    """``compile=True`` (torch.compile of the single-species kernel) equals the eager kernel to
    1e-12 relative in float64, also after a rebuild with a different pair count (no stale
    shapes).  Skipped where inductor cannot compile (no C++ compiler)."""
    state = argon(4, jitter=0.15, seed=7)
    eager = LennardJones(EPS, SIG, CUT)
    compiled = LennardJones(EPS, SIG, CUT, compile=True)
    for scale in (1.0, 0.97):  # a compressed copy has more pairs: new pair count, new atom count
        st = state.replace(positions=state.positions * scale, cell=state.cell * scale)
        ref, _ = _raw(eager, st)
        out, _ = _raw(compiled, st)
        import ssehpc.potentials.lj as lj_module

        if lj_module._compile_failed:
            pytest.skip("torch.compile is not available here")
        assert_close(out.forces, ref.forces, 1e-12, "forces")
        assert_close(out.energies, ref.energies, 1e-12, "per-atom energies")
        assert_close(out.virial, ref.virial, 1e-12, "virial")
