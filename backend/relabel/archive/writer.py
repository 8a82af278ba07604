"""Writing a wheel: :func:`write_wheel` produces the new wheel from the old one.

Owns the zip writer and the order and timestamps of the new wheel's members. Members that
do not change are copied as their compressed bytes, never inflated and deflated again;
new and patched members are deflated in parallel (see :mod:`relabel.archive.deflate`) into
scratch files and then copied the same way. Every unchanged member is inflated once to
check it against its size, CRC and RECORD hash (small ones by the loop that copies them,
from the bytes it read, larger ones by other threads meanwhile), so a written wheel never
carries a RECORD line that does not match its member. WHEEL and RECORD are written last; RECORD's
signatures are left out, as they cannot match the new RECORD, and every name added passes
the checks of names read. Timestamps are deterministic: every new entry takes the input
wheel's WHEEL timestamp, or ``SOURCE_DATE_EPOCH`` for all entries when set.

It writes only into the stream :func:`relabel.archive.output.atomic_output` gives it and a
scratch directory; it must not read the input wheel other than through
:class:`relabel.archive.reader.WheelFile`, and knows nothing about ELF files or policies.
"""

from __future__ import annotations

import os
import stat
import struct
import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Callable

from relabel.archive.deflate import Deflated, Prepared, Source, deflate_all, deflate_file
from relabel.archive.names import check_new_names
from relabel.archive.output import atomic_output
from relabel.archive.reader import SMALL_SPAN
from relabel.archive.record import RecordEntry, record_line
from relabel.archive.zipformat import (
    CENTRAL_HEADER,
    CENTRAL_SIG,
    DEFLATED,
    EOCD,
    FLAG_UTF8,
    LOCAL_HEADER,
    LOCAL_SIG,
    MAX32,
    UNIX_MADE_BY,
    ZIP64_EOCD,
    ZIP64_LOCATOR,
    DateTime,
    Span,
    copy_span,
    source_date_epoch,
    to_dos,
)
from relabel.errors import OutputError, ScratchError, WheelError

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence

    from relabel.archive.reader import WheelFile

_ZIP64_LIMIT = 0xFFFFFFFF  # sizes and offsets from here on need zip64 fields
_SPILL_AT = 1 << 20  # bytes of central directory kept in memory before they are spilled


class _ZipWriter:
    """Appends members to ``stream`` and writes the central directory (zip64 when needed).

    A write that fails (a full disk, a quota) is an :class:`OutputError` naming ``where``.
    """

    def __init__(
        self, stream: BinaryIO, where: str = "the new wheel", spill: Path | None = None
    ) -> None:
        self._out = stream
        self._where = where
        # The central directory grows by one entry per member (about 80 bytes), and wheels
        # may hold 100,000s of members: beyond _SPILL_AT bytes it moves to the scratch file
        # ``spill``, and only the tail not yet moved stays in memory.
        self._central = bytearray()
        self._spill_path = spill
        self._spilled = 0
        self._count = 0
        self._offset = 0

    def _write(self, data: bytes | bytearray) -> None:
        try:
            self._out.write(data)
        except OSError as exc:
            raise OutputError(self._where, exc.strerror or str(exc)) from None
        self._offset += len(data)

    def add(
        self,
        name: str,
        *,
        chunks: Iterable[bytes] | Span | bytes,
        size: int,
        compressed_size: int,
        crc: int,
        method: int,
        mode: int,
        date_time: DateTime,
    ) -> None:
        encoded = name.encode("utf-8")
        flags = 0 if encoded.isascii() else FLAG_UTF8
        dostime, dosdate = to_dos(date_time)
        offset = self._offset
        big = size >= _ZIP64_LIMIT or compressed_size >= _ZIP64_LIMIT
        version = 45 if big else 20
        local_extra = struct.pack("<HHQQ", 1, 16, size, compressed_size) if big else b""
        self._write(
            LOCAL_HEADER.pack(
                LOCAL_SIG,
                version,
                flags,
                method,
                dostime,
                dosdate,
                crc,
                MAX32 if big else compressed_size,
                MAX32 if big else size,
                len(encoded),
                len(local_extra),
            )
            + encoded
            + local_extra
        )
        if isinstance(chunks, bytes):
            # a small member read whole: through the buffer, no system call of its own
            if len(chunks) != compressed_size:
                raise WheelError(name, "member data does not have its declared size")
            self._write(chunks)
            written = compressed_size
        elif isinstance(chunks, Span):
            if chunks.length != compressed_size:
                raise WheelError(name, "member data does not have its declared size")
            try:
                self._out.flush()
                copy_span(chunks, self._out.fileno())
            except OSError as exc:
                raise OutputError(self._where, exc.strerror or str(exc)) from None
            self._offset += chunks.length
            written = chunks.length
        else:
            written = 0
            for chunk in chunks:
                written += len(chunk)
                self._write(chunk)
        if written != compressed_size:
            raise WheelError(name, "member data ended early while copying")
        values: list[int] = []
        csize_field, size_field, offset_field = compressed_size, size, offset
        if size >= _ZIP64_LIMIT:
            values.append(size)
            size_field = MAX32
        if compressed_size >= _ZIP64_LIMIT:
            values.append(compressed_size)
            csize_field = MAX32
        if offset >= _ZIP64_LIMIT:
            values.append(offset)
            offset_field = MAX32
        extra = struct.pack(f"<HH{len(values)}Q", 1, 8 * len(values), *values) if values else b""
        attr = ((stat.S_IFREG | (mode or 0o644)) & 0xFFFF) << 16
        self._count += 1
        self._central += (
            CENTRAL_HEADER.pack(
                CENTRAL_SIG,
                UNIX_MADE_BY if not values else (3 << 8) | 45,
                45 if values else version,
                flags,
                method,
                dostime,
                dosdate,
                crc,
                csize_field,
                size_field,
                len(encoded),
                len(extra),
                0,
                0,
                0,
                attr,
                offset_field,
            )
            + encoded
            + extra
        )
        if len(self._central) >= _SPILL_AT and self._spill_path is not None:
            self._spill(self._spill_path)

    def _spill(self, path: Path) -> None:
        """Move the central directory's entries kept in memory to the end of ``path``."""
        try:
            with path.open("ab") as spilled:
                spilled.write(self._central)
        except OSError as exc:
            raise ScratchError(str(path.parent), exc.strerror or str(exc)) from None
        self._spilled += len(self._central)
        self._central.clear()

    def _write_central(self) -> None:
        if self._spill_path is None or not self._spilled:
            self._write(self._central)
            return
        self._spill(self._spill_path)
        try:
            self._out.flush()
            with self._spill_path.open("rb") as spilled:
                copy_span(Span(spilled.fileno(), 0, self._spilled), self._out.fileno())
        except OSError as exc:
            raise OutputError(self._where, exc.strerror or str(exc)) from None
        self._offset += self._spilled

    def add_deflated(self, name: str, data: Deflated, mode: int, date_time: DateTime) -> None:
        """Add a member whose raw deflate data lies in a scratch file."""
        with data.path.open("rb") as stored:
            self.add(
                name,
                chunks=Span(stored.fileno(), 0, data.compressed_size),
                size=data.size,
                compressed_size=data.compressed_size,
                crc=data.crc,
                method=DEFLATED,
                mode=mode,
                date_time=date_time,
            )

    def finish(self) -> None:
        start = self._offset
        self._write_central()
        size = self._offset - start
        count = self._count
        if count >= 0xFFFF or start >= _ZIP64_LIMIT or size >= _ZIP64_LIMIT:
            zip64_at = self._offset
            self._write(ZIP64_EOCD.pack(0x06064B50, 44, 45, 45, 0, 0, count, count, size, start))
            self._write(ZIP64_LOCATOR.pack(0x07064B50, 0, zip64_at, 1))
            self._write(EOCD.pack(0x06054B50, 0, 0, 0xFFFF, 0xFFFF, MAX32, MAX32, 0))
        else:
            self._write(EOCD.pack(0x06054B50, 0, 0, count, count, size, start, 0))


def _member_order(
    src: WheelFile, new_names: Iterable[str], dropped: Iterable[str]
) -> Iterator[str]:
    """The original order with new files before ``.dist-info`` and new metadata after it
    (RECORD is appended by the writer). Stable, so a rewrite of a rewrite keeps the order.
    Yielded, not listed: a wheel can hold 100,000s of members."""
    prefix = src.dist_info + "/"
    skip = {prefix + "RECORD", *dropped}
    new = sorted(n for n in new_names if n not in src.members)
    for in_dist_info in (False, True):
        yield from (
            n for n in src.members if n not in skip and n.startswith(prefix) == in_dist_info
        )
        yield from (n for n in new if n.startswith(prefix) == in_dist_info)


def write_wheel(
    src: WheelFile,
    out_path: Path,
    *,
    replaced: Mapping[str, Source],
    added: Mapping[str, Source],
    wheel_text: bytes,
    extra_files: Mapping[str, bytes | Callable[[], bytes]] | None = None,
    compression_level: int = 6,
    jobs: int | None = None,
) -> Path:
    """Write a new wheel to ``out_path``.

    ``replaced`` maps existing members to their new contents and ``added`` maps new member
    names to theirs (files, or functions producing them); ``extra_files`` maps new member
    names (small, e.g. an SBOM) to contents, or to functions returning them. Unchanged
    members are copied compressed. WHEEL becomes ``wheel_text`` and RECORD is regenerated;
    signatures of the old RECORD are left out. Every new name is checked as names read
    are. Returns ``out_path``.
    """
    small = {**(extra_files or {}), f"{src.dist_info}/WHEEL": wheel_text}
    check_new_names(out_path.name, src.members, [*added, *small])
    rewritten = {*replaced, *added, *small, f"{src.dist_info}/RECORD"}
    dropped = set(src.signatures) - rewritten
    workers = max(1, jobs or os.cpu_count() or 1)
    # Unchanged members are copied as stored. A few threads check the larger ones against
    # their size, CRC and RECORD hash (inflating each once) while the rest of the work runs;
    # the new wheel gets its name only once every check has passed. One task per thread,
    # not per member: a future per member costs a kilobyte, and wheels hold 100,000s of
    # them. Small members are checked by the loop that copies them, from the bytes it
    # reads anyway: for them a thread costs more in handing over the GIL than it saves.
    unchanged = [
        name
        for name, size, compressed_size in src.members.sizes()
        if not _checked_on_copy(size, compressed_size)
        and name not in rewritten
        and name not in dropped
    ]
    stop = threading.Event()

    def check(share: Sequence[str]) -> None:
        for name in share:
            if stop.is_set():
                return
            src.verify(name)

    checks = ThreadPoolExecutor(max_workers=workers)
    try:
        verified = [checks.submit(check, unchanged[i::workers]) for i in range(workers)]
        del unchanged
        with tempfile.TemporaryDirectory(prefix="relabel-zip-") as scratch_dir:
            scratch = Path(scratch_dir)
            files: list[tuple[str, Source]] = [*replaced.items(), *added.items()]
            for index, (name, data) in enumerate(small.items()):
                files.append((name, _small_file(scratch / f"small-{index}", data)))
            prepared = deflate_all(files, scratch, compression_level, jobs)
            order = _member_order(src, prepared, dropped)
            with atomic_output(out_path) as stream:
                writer = _ZipWriter(stream, str(out_path), spill=scratch / "central")
                _write_members(
                    src,
                    writer,
                    order,
                    prepared,
                    verified=verified,
                    level=compression_level,
                    scratch=scratch,
                )
    finally:
        stop.set()
        checks.shutdown(wait=True, cancel_futures=True)
    return out_path


def _write_members(
    src: WheelFile,
    writer: _ZipWriter,
    order: Iterable[str],
    prepared: Mapping[str, Prepared],
    *,
    verified: Sequence[Future[None]],
    level: int,
    scratch: Path,
) -> None:
    record_name = f"{src.dist_info}/RECORD"
    epoch = source_date_epoch()
    new_time = epoch or src.members[f"{src.dist_info}/WHEEL"].date_time
    record_path = scratch / "RECORD"
    # RECORD goes to a scratch file line by line, never whole into memory.
    with record_path.open("w", encoding="utf-8", newline="") as record:
        for name in order:
            item = prepared.get(name)
            if item is not None:
                original = src.members.get(name)
                # new content of an old member: its permissions stay as they were
                mode = original.mode if original is not None and original.mode else item.mode
                writer.add_deflated(name, item.data, mode, new_time)
                record.write(RecordEntry(name, item.data.hash, item.data.size).line())
                continue
            member = src.members[name]
            span, whole = src.raw_data(member)
            if _checked_on_copy(member.size, member.compressed_size):
                if whole is not None:
                    src.check_whole(member, whole)
                else:  # a local header longer than read ahead: checked as the threads do
                    src.verify(name)
            writer.add(
                name,
                chunks=span if whole is None else whole,
                size=member.size,
                compressed_size=member.compressed_size,
                crc=member.crc,
                method=member.method,
                mode=member.mode,
                date_time=epoch or member.date_time,
            )
            # every member copied unchanged has a hash: RECORD and its signatures, the
            # only ones without, are rewritten or left out
            digest = member.record_hash
            record.write(record_line(name, "" if digest is None else str(digest), str(member.size)))
        record.write(RecordEntry(record_name, None, None).line())
    for future in verified:
        future.result()
    # one worker: a block read ahead while one compresses is all it can use; more queued
    # blocks only hold memory (a RECORD of 500k members is about 60 MB)
    with ThreadPoolExecutor(max_workers=1) as pool:
        deflated = deflate_file(record_path, scratch / "RECORD.deflated", level, pool, depth=2)
    writer.add_deflated(record_name, deflated, 0o644, new_time)
    writer.finish()


def _checked_on_copy(size: int, compressed_size: int) -> bool:
    """Whether a member copied unchanged is checked as it is copied (not by a thread)."""
    return size <= SMALL_SPAN and compressed_size <= SMALL_SPAN


def _small_file(path: Path, data: bytes | Callable[[], bytes]) -> Callable[[], Path]:
    def produce() -> Path:
        path.write_bytes(data() if callable(data) else data)
        path.chmod(0o644)
        return path

    return produce
