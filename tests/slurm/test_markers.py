"""The ``slurm`` marker is what skips a test on a machine without Slurm (CI's default run), so it
must sit on every test that talks to Slurm, and only on tests (pytest ignores marks on helpers)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

HERE = Path(__file__).parent
# Calls that need a running slurmctld (bash on a template, or sinfo on PATH, do not).
SLURM_WORDS = ("sbatch", "squeue", "scancel", "run_campaign", "_submit_and_wait")


def _marks(fn: ast.FunctionDef) -> set[str]:
    out = set()
    for dec in fn.decorator_list:
        node = dec.func if isinstance(dec, ast.Call) else dec
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Attribute)
            and isinstance(node.value.value, ast.Name)
            and node.value.value.id == "pytest"
        ):
            out.add(node.attr)
    return out


def _module_marks(tree: ast.Module) -> set[str]:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets
        ):
            return {seg for seg in ("slurm",) if seg in ast.unparse(node.value)}
    return set()


def _calls(fn: ast.FunctionDef, helpers: dict[str, ast.FunctionDef], seen=None) -> set[str]:
    """Names called in ``fn`` and, transitively, in the module's helpers it calls."""
    seen = set() if seen is None else seen
    names: set[str] = set()
    for node in ast.walk(fn):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            names.update(w for w in SLURM_WORDS if node.value == w)
        if isinstance(node, ast.Call):
            f = node.func
            name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
            if name:
                names.add(name)
                if name in helpers and name not in seen:
                    seen.add(name)
                    names |= _calls(helpers[name], helpers, seen)
    return names


@pytest.mark.parametrize("path", sorted(HERE.glob("test_*.py")), ids=lambda p: p.name)
def test_slurm_marker_is_on_every_test_that_needs_slurm_and_only_on_tests(path: Path) -> None:
    tree = ast.parse(path.read_text())
    funcs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    module = _module_marks(tree)
    for name, fn in funcs.items():
        marked = "slurm" in (_marks(fn) | module)
        if not name.startswith("test_"):
            assert "slurm" not in _marks(fn), (
                f"{path.name}: @pytest.mark.slurm on helper {name}() does nothing"
            )
            continue
        needs = _calls(fn, funcs) & set(SLURM_WORDS)
        if needs:
            assert marked, f"{path.name}::{name} uses {sorted(needs)} but has no @pytest.mark.slurm"
