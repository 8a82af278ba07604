"""Deflating new members on worker threads, ahead of the zip writer.

Owns turning a member's new content (a file, a function that produces one, or a stream
another program writes it to) into raw deflate data in a scratch file, with its size,
CRC-32 and RECORD hash. Members are produced by a few member threads, their blocks
compressed by one thread per core (zlib and hashlib release the GIL); blocks that would not
shrink are stored. The output depends only on the input, never on timing. It must not
write anywhere but the scratch directory it is given, and knows nothing about the zip
layout or wheels.
"""

from __future__ import annotations

import collections
import hashlib
import os
import stat
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol, Union

from relabel.archive.record import Hash

if TYPE_CHECKING:
    from collections.abc import Sequence


class Stream(Protocol):
    """A member's content as another program writes it (patchelf into a pipe): read to
    the end, then closed; ``close`` raises when the content is not whole and right."""

    #: permission bits of the member
    mode: int

    def read(self, size: int, /) -> bytes: ...

    def close(self) -> None: ...

    def abort(self) -> None:
        """Stop the producer and release everything; the content is not used."""


#: a member's new content: a file, or a function that produces the file or a stream when
#: called (run in a worker thread, so that producing one member overlaps compressing another)
Source = Union[Path, Callable[[], Union[Path, Stream]]]

BLOCK = 4 << 20  # bytes of a member compressed as one independent job
_WINDOW = 32 << 10  # deflate's history window
#: a block is stored, not deflated, when every one of these samples of it keeps at least
#: this share of its size at level 1 (compressed, encrypted or random data)
PROBES, PROBE_SIZE, STORE_ABOVE = 4, 16 << 10, 0.99


@dataclass(frozen=True)
class Deflated:
    """A file's content as raw deflate data in ``path``, and what the zip and RECORD say
    of it."""

    path: Path
    size: int
    compressed_size: int
    crc: int
    hash: Hash


@dataclass(frozen=True)
class Prepared:
    """A new member ready to be copied into the output: its name, permission bits and data."""

    name: str
    mode: int
    data: Deflated


def incompressible(data: bytes) -> bool:
    """Whether deflating ``data`` would not pay: samples spread over it do not shrink.

    Deflate is as slow on data that does not compress (already compressed, encrypted) as
    on data that does, and its output is then a little larger than the input. The first
    sample that shrinks ends the test, so on ordinary data it costs one small level 1 pass.
    """
    if len(data) < PROBES * PROBE_SIZE:
        return False
    view = memoryview(data)
    step = len(data) // PROBES
    for index in range(PROBES):
        start = index * step + (step - PROBE_SIZE) // 2
        compressor = zlib.compressobj(1, zlib.DEFLATED, -15)
        size = len(compressor.compress(view[start : start + PROBE_SIZE]))
        size += len(compressor.flush())
        if size < PROBE_SIZE * STORE_ABOVE:
            return False
    return True


def _compress_block(data: bytes, history: bytes, level: int, final: bool) -> bytes:
    """Deflate one block as a continuation of a raw deflate stream (the pigz technique).

    Priming the compressor with the previous 32 KiB keeps back-references across the
    boundary; ending non-final blocks with a sync flush leaves them byte-aligned with no
    end-of-stream marker, so the blocks concatenate into one valid deflate stream whatever
    order they were compressed in. A block that would not shrink goes in as stored
    deflate blocks (level 0), which is valid anywhere in the stream. The result depends
    only on the input, never on timing.
    """
    if level > 0 and incompressible(data):
        level = 0
    if history and level > 0:
        compressor = zlib.compressobj(level, zlib.DEFLATED, -15, zdict=history)
    else:
        compressor = zlib.compressobj(level, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush(
        zlib.Z_FINISH if final else zlib.Z_SYNC_FLUSH
    )


def deflate_file(
    src: Path, scratch: Path, level: int, pool: ThreadPoolExecutor, depth: int = 4
) -> Deflated:
    """Deflate ``src`` into ``scratch`` in blocks compressed on ``pool``, at most ``depth``
    in flight (bounding memory)."""
    with src.open("rb") as inp:
        return deflate_stream(inp.read, scratch, level, pool, depth)


def deflate_stream(
    read: Callable[[int], bytes],
    scratch: Path,
    level: int,
    pool: ThreadPoolExecutor,
    depth: int = 4,
) -> Deflated:
    """Deflate what ``read`` returns until it returns nothing into ``scratch``, as
    :func:`deflate_file` does (the blocks do not depend on how ``read`` splits the data)."""
    digest = hashlib.sha256()
    crc = size = csize = 0
    pending: collections.deque[Future[bytes]] = collections.deque()
    inp = _Reader(read)
    with scratch.open("wb") as out:
        history = b""
        block = inp.read(BLOCK)
        while True:
            following = inp.read(BLOCK) if block else b""
            size += len(block)
            crc = zlib.crc32(block, crc)
            digest.update(block)
            pending.append(pool.submit(_compress_block, block, history, level, not following))
            history = block[-_WINDOW:]
            while pending and (len(pending) >= depth or not following):
                data = pending.popleft().result()
                csize += len(data)
                out.write(data)
            if not following:
                break
            block = following
    return Deflated(scratch, size, csize, crc, Hash.of(digest.digest()))


def deflate_all(
    files: Sequence[tuple[str, Source]], scratch: Path, level: int, jobs: int | None
) -> dict[str, Prepared]:
    """Produce and deflate every (name, source) into scratch files.

    Members are produced (patched) and read by a few member threads; their blocks are
    compressed by a pool of one thread per core, so the cores stay busy to the end
    however the sizes of the members fall.
    """
    cores = max(1, jobs or os.cpu_count() or 1)

    def prepare(index: int) -> Prepared:
        name, source = files[index]
        produced = source() if callable(source) else source
        target = scratch / f"member-{index}.deflated"
        if isinstance(produced, Path):
            mode = stat.S_IMODE(produced.stat().st_mode)
            return Prepared(
                name, mode, deflate_file(produced, target, level, blocks, depth=cores + 1)
            )
        try:
            data = deflate_stream(produced.read, target, level, blocks, depth=cores + 1)
        except BaseException:
            produced.abort()
            raise
        produced.close()
        return Prepared(name, produced.mode, data)

    # Biggest first; one member thread more than cores, so that while one waits for
    # patchelf another keeps the compression pool fed.
    order = sorted(range(len(files)), key=lambda i: -_size_hint(files[i][1]))
    blocks = ThreadPoolExecutor(max_workers=cores)
    members = ThreadPoolExecutor(max_workers=min(8, cores + 1))
    try:
        return {p.name: p for p in members.map(prepare, order)}
    finally:
        # After an error, SIGINT or SIGTERM nothing queued starts any more; what runs ends.
        members.shutdown(wait=False, cancel_futures=True)
        blocks.shutdown(wait=False, cancel_futures=True)
        members.shutdown(wait=True)
        blocks.shutdown(wait=True)


class _Reader:
    """``read(n)`` that returns ``n`` bytes until the end, over one that may return fewer
    (a pipe)."""

    def __init__(self, read: Callable[[int], bytes]) -> None:
        self._read = read

    def read(self, size: int) -> bytes:
        data = self._read(size)
        if not data or len(data) == size:
            return data
        parts = [data]
        missing = size - len(data)
        while missing:
            more = self._read(missing)
            if not more:
                break
            parts.append(more)
            missing -= len(more)
        return b"".join(parts)


def _size_hint(source: Source) -> int:
    hint = getattr(source, "size_hint", None)
    if isinstance(hint, int):
        return hint
    try:
        return source.stat().st_size if isinstance(source, Path) else 0
    except OSError:
        return 0
