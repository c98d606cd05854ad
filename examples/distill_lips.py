"""Generate the shipped Li–P–S teacher data (``ssehpc/data/lips``) with CHGNet.

Usage (one CPU thread, about half an hour on a 2020s laptop core; resumable)::

    OMP_NUM_THREADS=1 python examples/distill_lips.py --workdir distill_work
    python examples/distill_lips.py --dry-run            # the plan and its cost
    python examples/distill_lips.py --scale 0.05 --out /tmp/lips_smoke   # smoke test

Needs the optional teacher: ``pip install 'ssehpc[teacher]'``. See :mod:`ssehpc.ml.distill`.
"""

from ssehpc.ml.distill import main

if __name__ == "__main__":
    raise SystemExit(main())
