"""Scratch: ``bench/lj_argon.py`` with a kernel stage of ``lj_kernels.py`` in place of the package's LJ.

Same system, same LAMMPS runs, same table; results go to ``bench/results/lj_argon_staged.jsonl``.
The first force call (untimed) compiles the kernel for the ``compile`` stage.

    .venv/bin/python bench/experiments/lj_argon_staged.py --stage compile --threads 1
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import lj_argon  # noqa: E402
from lj_kernels import STAGES, StagedLennardJones  # noqa: E402

from ssehpc.forces import ForceCompute  # noqa: E402


def main() -> None:
    argv = sys.argv[1:]
    stage = "compile"
    if "--stage" in argv:
        k = argv.index("--stage")
        stage = argv[k + 1]
        del argv[k : k + 2]
    if stage not in STAGES:
        sys.exit(f"--stage must be one of {STAGES}")

    def make_forces(skin: float) -> ForceCompute:
        pot = StagedLennardJones(lj_argon.EPSILON, lj_argon.SIGMA, lj_argon.CUTOFF, stage=stage)
        return ForceCompute(pot, skin=skin)

    lj_argon.make_forces = make_forces
    lj_argon.BENCH = "lj_argon_staged"
    lj_argon.VARIANT = f"kernel '{stage}'"
    print(f"ssehpc rows use the scratch kernel stage '{stage}' (bench/experiments/lj_kernels.py)")
    lj_argon.main(argv)


if __name__ == "__main__":
    main()
