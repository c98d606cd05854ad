"""Re-encode labelled extxyz(.xz) files at a fixed precision of their atom lines, in place.

Each atom line (``symbol x y z fx fy fz``) is rewritten with positions to ``--pos-decimals``
(Å) and forces to ``--force-decimals`` (eV/Å); every other line (the atom count, the header with
cell, energy, stress and provenance) is kept byte for byte (line ends are written as LF, as ASE
writes them).  A file with other per-atom columns, or a truncated one, is refused before anything
is written.  This is how the held-out files ``test``, ``test_indep`` and ``test_glass`` of
``ssehpc/data/lips`` were shrunk on 2026-12-07 (5 / 4 decimals, 0.95 MB freed; ``README.md``
there); from the files of commit 717d0a4 it reproduces the shipped ones byte for byte:

    git show 717d0a4:ssehpc/data/lips/test.extxyz.xz > test.extxyz.xz
    .venv/bin/python examples/lips_reencode.py test.extxyz.xz
    cmp test.extxyz.xz ssehpc/data/lips/test.extxyz.xz

For training data prefer ``label_decimals`` in the learning config: the teacher then labels the
rounded positions, so the file stays exact for what it holds.
"""

from __future__ import annotations

import argparse
import lzma
from collections.abc import Sequence
from pathlib import Path


class ReencodeError(ValueError):
    """A frame that is not ``symbol x y z fx fy fz`` per atom, or a truncated file."""


def reencode_lines(lines: Sequence[str], pos_decimals: int = 5, force_decimals: int = 4) -> list[str]:
    """Rewrite the atom lines of an extxyz text (a list of lines without newlines)."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        head = lines[i].strip()
        if not head:
            out.append(lines[i])
            i += 1
            continue
        try:
            n = int(head)
        except ValueError:
            raise ReencodeError(f"line {i + 1}: expected an atom count, got {head[:40]!r}") from None
        if i + 1 >= len(lines) or "Properties=species:S:1:pos:R:3:forces:R:3" not in lines[i + 1]:
            raise ReencodeError(
                f"line {i + 2}: the frame's columns are not species, pos, forces (refusing to drop any)"
            )
        if i + 2 + n > len(lines):
            raise ReencodeError(f"line {i + 1}: a frame of {n} atoms, but the file ends first (truncated?)")
        out += [lines[i], lines[i + 1]]
        for k in range(i + 2, i + 2 + n):
            t = lines[k].split()
            if len(t) != 7:
                raise ReencodeError(f"line {k + 1}: {len(t)} columns, expected 7")
            p = [float(x) for x in t[1:4]]
            f = [float(x) for x in t[4:7]]
            out.append(
                f"{t[0]:<2s} "
                + " ".join(f"{v:15.{pos_decimals}f}" for v in p)
                + " "
                + " ".join(f"{v:12.{force_decimals}f}" for v in f)
            )
        i += 2 + n
    return out


def reencode_file(path: str | Path, pos_decimals: int = 5, force_decimals: int = 4) -> tuple[int, int]:
    """Re-encode ``path`` in place (xz-compressed when it ends in ``.xz``); returns (bytes before, after)."""
    path = Path(path)
    xz = path.suffix == ".xz"
    if xz:
        with lzma.open(path, "rt") as fh:
            text = fh.read()
    else:
        text = path.read_text()
    data = ("\n".join(reencode_lines(text.splitlines(), pos_decimals, force_decimals)) + "\n").encode()
    before = path.stat().st_size
    path.write_bytes(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME) if xz else data)
    return before, path.stat().st_size


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+")
    p.add_argument("--pos-decimals", type=int, default=5, help="Å")
    p.add_argument("--force-decimals", type=int, default=4, help="eV/Å")
    args = p.parse_args(argv)
    for f in args.files:
        before, after = reencode_file(f, args.pos_decimals, args.force_decimals)
        print(f"{Path(f).name}: {before} -> {after} bytes")


if __name__ == "__main__":
    main()
