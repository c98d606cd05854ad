"""Hand-written CPU pair kernels of :class:`~ssehpc.ml.model.MomentPotential` (C++).

The two per-pair passes of a force evaluation — the atomic moments ``A`` (scatter of
``B_n(r) Y_k(û)`` into the slots) and the pair gradient ``g_ij`` from ``G = ∂E/∂A`` — are single
loops over the pairs in ``csrc/pair_kernels.cpp``: ``sin(nπr/r_c)`` comes from a Chebyshev
recurrence (one sine and cosine per pair), the moment pass may keep the per-pair basis for the
force pass (within ``basis_memory``), the moment pass splits the pairs between threads at
centre-atom boundaries and the force pass per pair, each only above ``min_pairs`` pairs per thread.  ``torch.compile`` (inductor) turns the same two passes into strided scalar
scatters with an integer division per element; at ~200 atoms they were ~60 % of a committee
force call (``docs/performance.md`` §4).

The extension is compiled on first use with :func:`torch.utils.cpp_extension.load_inline` (a C++
compiler and ``ninja``; ~30 s once, then cached in ``TORCH_EXTENSIONS_DIR``).  If it cannot be
built, :func:`load` returns None with the reason in :data:`build_error`, and callers keep the
``torch.compile`` kernels.  CUDA tensors always use the torch path.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_SOURCE = Path(__file__).with_name("csrc") / "pair_kernels.cpp"
_lock = threading.Lock()
_module: Any = None
_tried = False
#: Why the extension could not be built (None if it was, or was not tried).
build_error: str | None = None


def load() -> Any:
    """The compiled extension module (``moments``, ``pair_gradient``, ``pair_forces``,
    ``cutoff_pairs``; signatures in ``csrc/pair_kernels.cpp``), or None if it
    cannot be built here (the reason is in :data:`build_error` and logged once).

    ``SSEHPC_CPP_KERNELS=0`` disables it (the torch kernels are used)."""
    global _module, _tried, build_error
    if _tried:
        return _module
    with _lock:
        if _tried:
            return _module
        if os.environ.get("SSEHPC_CPP_KERNELS", "1").strip().lower() in ("0", "false", "no", "off"):
            build_error = "disabled by SSEHPC_CPP_KERNELS=0"
        else:
            try:
                import hashlib
                import sys

                import torch
                from torch.utils.cpp_extension import load_inline

                source = _SOURCE.read_text()
                flags = ["-O3", "-fopenmp"]
                # The name hashes the source, the flags and the torch build it links against, so an
                # edited kernel never meets a stale build and two environments sharing one
                # TORCH_EXTENSIONS_DIR (a checkout and a CI venv) never rebuild each other's.
                key = "\0".join(
                    [source, torch.__version__, str(Path(torch.__file__).parent), sys.version, *flags]
                )
                tag = hashlib.sha256(key.encode()).hexdigest()[:12]
                _module = load_inline(
                    name=f"ssehpc_pair_kernels_{tag}",
                    cpp_sources=[source],
                    functions=["moments", "pair_gradient", "pair_forces", "cutoff_pairs"],
                    extra_cflags=flags,
                    extra_ldflags=["-fopenmp"],
                    verbose=False,
                )
            except Exception as exc:  # no compiler, no ninja, a read-only cache, ...
                build_error = f"{type(exc).__name__}: {' '.join(str(exc).split())[:400]}"
                log.warning("ssehpc C++ pair kernels unavailable (%s); using the torch kernels", build_error)
        _tried = True
        return _module
