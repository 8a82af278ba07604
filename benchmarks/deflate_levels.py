"""Deflate throughput and ratio per compression level, on one core, for the files given.

    python benchmarks/deflate_levels.py FILE_OR_WHEEL... [--levels 0,1,3,6,9] [--mib 32]

A wheel argument stands for its shared libraries (``*.so*`` members, the largest ``--members``
of them): they are read from the zip into memory. A plain file is read as it is. At most
``--mib`` MiB of each file (from its start) are compressed, in 4 MiB blocks as relabel's
writer does, each block with its own ``zlib.compressobj`` and ``Z_SYNC_FLUSH``.

For every file and level it prints the compression ratio (compressed / original) and the
throughput in MiB/s of input on one core, the median of ``--repeat`` passes. It also prints
what a sample predicts: the ratio of the first 256 KiB at level 1, the cheap test a writer
could run to store a member that would not shrink (ratio > 0.95) instead of deflating it.
Level 0 is a stored deflate stream: the cost of the CRC and the copy only.
"""

from __future__ import annotations

import argparse
import statistics
import time
import zipfile
import zlib
from pathlib import Path

BLOCK = 4 << 20
SAMPLE = 256 << 10


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
    """(ratio, MiB/s) of deflating ``data`` at ``level``, median of ``repeat`` passes."""
    times = []
    size = 0
    for _ in range(repeat):
        start = time.perf_counter()
        size = _deflate(data, level)
        times.append(time.perf_counter() - start)
    return size / max(1, len(data)), len(data) / (1 << 20) / statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument("--levels", default="0,1,3,6,9")
    parser.add_argument("--mib", type=int, default=32, help="MiB of each file to compress")
    parser.add_argument("--members", type=int, default=2, help="libraries taken per wheel")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    levels = [int(x) for x in args.levels.split(",")]
    head = f"{'file':<70}{'MiB':>6}{'sample r':>9}" + "".join(
        f"{'L' + str(lv) + ' ratio':>10}{'MiB/s':>7}" for lv in levels
    )
    print(head)
    print("-" * len(head))
    for label, data in inputs(args.paths, args.mib << 20, args.members):
        sample = _deflate(data[:SAMPLE], 1) / max(1, len(data[:SAMPLE]))
        cells = []
        for level in levels:
            ratio, speed = measure(data, level, args.repeat)
            cells.append(f"{ratio:>10.3f}{speed:>7.0f}")
        size = len(data) / (1 << 20)
        print(f"{label:<70}{size:>6.1f}{sample:>9.3f}" + "".join(cells), flush=True)
    print(
        f"\nratio: compressed / original; MiB/s: input per second on one core, median of"
        f" {args.repeat}; sample r: level 1 on the first {SAMPLE >> 10} KiB."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
