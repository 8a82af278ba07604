"""Deflate throughput and ratio per compression level, on one core, for the files given.

    python benchmarks/deflate_levels.py FILE_OR_WHEEL... [--levels 0,1,3,6,9] [--mib 32]

A wheel argument stands for its shared libraries (``*.so*`` members, the largest ``--members``
of them): they are read from the zip into memory. A plain file is read as it is. At most
``--mib`` MiB of each file (from its start) are compressed, in 4 MiB blocks as relabel's
writer does, each block with its own ``zlib.compressobj`` and ``Z_SYNC_FLUSH``.

For every file and level it prints the compression ratio (compressed / original) and the
throughput in MiB of input per CPU second (the thread's own CPU time, so that other work on
the machine changes it little), the best of ``--repeat`` passes. It also prints
the share of blocks that relabel's writer stores instead of deflating
(:func:`relabel.archive.deflate.incompressible`: samples of the block do not shrink at
level 1); the levels above are timed without that test. Level 0 is a stored deflate
stream: the cost of the copy only.
"""

from __future__ import annotations

import argparse
import time
import zipfile
import zlib
from pathlib import Path

from relabel.archive.deflate import incompressible

BLOCK = 4 << 20


def _deflate(data: bytes, level: int) -> int:
    size = 0
    for start in range(0, len(data), BLOCK):
        compressor = zlib.compressobj(level, zlib.DEFLATED, -15)
        size += len(compressor.compress(data[start : start + BLOCK]))
        size += len(compressor.flush(zlib.Z_SYNC_FLUSH))
    return size


def inputs(paths: list[Path], limit: int, members: int) -> list[tuple[str, bytes]]:
    """(label, first ``limit`` bytes) of every file, and of the largest libraries of wheels."""
    found = []
    for path in paths:
        if path.suffix == ".whl":
            with zipfile.ZipFile(path) as wheel:
                libs = [i for i in wheel.infolist() if ".so" in i.filename.rsplit("/", 1)[-1]]
                libs.sort(key=lambda i: -i.file_size)
                for info in libs[:members]:
                    with wheel.open(info) as member:
                        label = f"{path.name[:28]}:{info.filename[-40:]}"
                        found.append((label, member.read(limit)))
        else:
            with path.open("rb") as stream:
                found.append((path.name, stream.read(limit)))
    return found


def measure(data: bytes, level: int, repeat: int) -> tuple[float, float]:
    """(ratio, MiB per CPU second) of deflating ``data`` at ``level``, best of ``repeat``."""
    times = []
    size = 0
    for _ in range(repeat):
        start = time.thread_time()
        size = _deflate(data, level)
        times.append(time.thread_time() - start)
    return size / max(1, len(data)), len(data) / (1 << 20) / max(1e-9, min(times))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument("--levels", default="0,1,3,6,9")
    parser.add_argument("--mib", type=int, default=32, help="MiB of each file to compress")
    parser.add_argument("--members", type=int, default=2, help="libraries taken per wheel")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    levels = [int(x) for x in args.levels.split(",")]
    head = f"{'file':<70}{'MiB':>6}{'stored':>7}" + "".join(
        f"{'L' + str(lv) + ' ratio':>10}{'MiB/s':>7}" for lv in levels
    )
    print(head)
    print("-" * len(head))
    for label, data in inputs(args.paths, args.mib << 20, args.members):
        blocks = [data[i : i + BLOCK] for i in range(0, len(data), BLOCK)]
        stored = sum(map(incompressible, blocks)) / max(1, len(blocks))
        cells = []
        for level in levels:
            ratio, speed = measure(data, level, args.repeat)
            cells.append(f"{ratio:>10.3f}{speed:>7.0f}")
        size = len(data) / (1 << 20)
        print(f"{label:<70}{size:>6.1f}{stored:>7.0%}" + "".join(cells), flush=True)
    print(
        f"\nratio: compressed / original; MiB/s: input per CPU second, best of"
        f" {args.repeat}; stored: share of {BLOCK >> 20} MiB blocks the writer stores."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
