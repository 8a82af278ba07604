"""The zip file format as relabel reads and writes it: record layouts, the central
directory, DOS timestamps, and copying a stretch of one file into another.

Owns the bytes of the format (APPNOTE.TXT): the reader and the writer both take their
layouts from here, so the two cannot drift apart. It must know nothing about wheels
(names, RECORD, WHEEL) and must not raise relabel's errors: a directory it cannot read is
a :class:`BadZipError`, which the reader turns into a message about the wheel.
"""

from __future__ import annotations

import os
import struct
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

CHUNK = 1 << 20  # bytes read, inflated or copied at a time
#: compression methods (APPNOTE 4.4.5); a wheel uses only these two
STORED = 0
DEFLATED = 8
MAX32 = 0xFFFFFFFF  # the placeholder a zip64 field leaves in the 32-bit one
LOCAL_SIG = 0x04034B50
CENTRAL_SIG = 0x02014B50
LOCAL_HEADER = struct.Struct("<IHHHHHIIIHH")
CENTRAL_HEADER = struct.Struct("<IHHHHHHIIIHHHHHII")
EOCD = struct.Struct("<IHHHHIIH")
ZIP64_EOCD = struct.Struct("<IQHHIIQQQQ")
ZIP64_LOCATOR = struct.Struct("<IIQI")
FLAG_UTF8 = 0x800
#: encrypted, "compressed patched data", strong encryption: nothing a wheel may use
FLAGS_REFUSED = 0x1 | 0x20 | 0x40
UNIX_MADE_BY = (3 << 8) | 20

#: one central directory entry: (name, flags, method, dos date << 16 | dos time, crc,
#: compressed size, size, external attributes, local header offset)
Entry = tuple[str, int, int, int, int, int, int, int, int]
DateTime = tuple[int, int, int, int, int, int]


class BadZipError(Exception):
    """The central directory cannot be read (the message says why)."""


@dataclass(frozen=True)
class Span:
    """``length`` bytes at ``offset`` of an open file: copied by the kernel, not by Python."""

    fd: int
    offset: int
    length: int


def copy_span(span: Span, out_fd: int) -> None:
    """Append ``span`` at ``out_fd``'s position (copy_file_range, else sendfile, else read)."""
    offset, remaining = span.offset, span.length
    while remaining:
        try:
            if hasattr(os, "copy_file_range"):
                done = os.copy_file_range(span.fd, out_fd, remaining, offset)
            else:  # pragma: no cover - Python < 3.8 or not Linux
                done = os.sendfile(out_fd, span.fd, offset, remaining)
        except OSError:
            done = -1
        if done <= 0:
            # Some file systems refuse both calls: fall back to plain reads and writes.
            data = os.pread(span.fd, min(CHUNK, remaining), offset)
            if not data:
                raise OSError(f"unexpected end of file at offset {offset}")
            done = os.write(out_fd, data)
        offset += done
        remaining -= done


def from_dos(dos: int) -> DateTime:
    """The date and time of a zip entry (its date << 16 | its time)."""
    date, time_ = dos >> 16, dos & 0xFFFF
    return (
        (date >> 9) + 1980,
        (date >> 5) & 0xF,
        date & 0x1F,
        time_ >> 11,
        (time_ >> 5) & 0x3F,
        (time_ & 0x1F) * 2,
    )


def to_dos(date_time: DateTime) -> tuple[int, int]:
    """(dos time, dos date) of a date and time, clamped to the years zip can store."""
    year, month, day, hour, minute, second = date_time
    year = min(max(year, 1980), 2107)
    return (
        (hour << 11) | (minute << 5) | (second // 2),
        ((year - 1980) << 9) | (month << 5) | day,
    )


def source_date_epoch() -> DateTime | None:
    """``SOURCE_DATE_EPOCH`` as a zip timestamp, or None when it is unset or not a number."""
    value = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not value:
        return None
    try:
        seconds = int(value)
    except ValueError:
        return None
    seconds = max(seconds, 315532800)  # zip cannot store times before 1980-01-01
    return time.gmtime(seconds)[:6]


def _end_of_directory(fd: int, size: int) -> tuple[int, int, int]:
    """(size and start of the central directory, the shift of every offset): the start
    corrected, as zipfile corrects it, for data prepended to the archive."""
    tail_size = min(size, EOCD.size + 0xFFFF)  # the record, then a comment of up to 64 KiB
    tail = os.pread(fd, tail_size, size - tail_size)
    at = len(tail) - EOCD.size
    if at < 0 or tail[at : at + 4] != b"PK\x05\x06" or tail[-2:] != b"\0\0":
        at = tail.rfind(b"PK\x05\x06")  # not at the very end: behind it, a comment
    if at < 0 or at + EOCD.size > len(tail):
        raise BadZipError("File is not a zip file")
    _, disk, _, _, _, cd_size, cd_offset, _ = EOCD.unpack_from(tail, at)
    end = size - tail_size + at  # where the end record starts
    locator_at = end - ZIP64_LOCATOR.size
    if locator_at >= 0:
        locator = os.pread(fd, ZIP64_LOCATOR.size, locator_at)
        if locator[:4] == b"PK\x06\x07":
            record_at = locator_at - ZIP64_EOCD.size
            record = os.pread(fd, ZIP64_EOCD.size, max(record_at, 0))
            if record_at < 0 or len(record) != ZIP64_EOCD.size or record[:4] != b"PK\x06\x06":
                raise BadZipError("Corrupt zip64 end of central directory record")
            fields = ZIP64_EOCD.unpack(record)
            cd_size, cd_offset, end = fields[8], fields[9], record_at
    if disk != 0:
        raise BadZipError("zipfiles that span multiple disks are not supported")
    shift = end - cd_size - cd_offset
    if shift < 0 or cd_offset + shift + cd_size > size:
        raise BadZipError("Bad offset for central directory")
    return cd_size, cd_offset + shift, shift


def _zip64_values(extra: bytes, wanted: int) -> list[int]:
    """The ``wanted`` 64-bit values of the zip64 extra field (header id 1)."""
    at = 0
    while at + 4 <= len(extra):
        kind, length = struct.unpack_from("<HH", extra, at)
        if kind == 1:
            if length < 8 * wanted or at + 4 + length > len(extra):
                raise BadZipError("Corrupt extra field 0001 (zip64)")
            return list(struct.unpack_from(f"<{wanted}Q", extra, at + 4))
        at += 4 + length
    raise BadZipError("Corrupt zip64 extra field: missing")


def central_directory(fd: int, size: int) -> Iterator[Entry]:
    """The entries of the central directory of the zip file open at ``fd``. The directory
    is read a window of about :data:`CHUNK` bytes at a time (it holds some 80 bytes per
    member, and wheels hold 100,000s), and nothing is kept per entry but what is yielded
    (a ``ZipInfo`` per entry costs half a kilobyte)."""
    cd_size, cd_start, shift = _end_of_directory(fd, size)
    data, at = b"", 0
    unread, position = cd_size, cd_start  # the directory's bytes not read yet
    while at < len(data) or unread:
        if at + CENTRAL_HEADER.size > len(data):
            data, unread, position = _window(fd, data[at:], CENTRAL_HEADER.size, unread, position)
            at = 0
        fields = CENTRAL_HEADER.unpack_from(data, at)
        if fields[0] != CENTRAL_SIG:
            raise BadZipError("Bad magic number for central directory")
        flags, method, dostime, dosdate, crc, csize, usize = fields[3:10]
        name_len, extra_len, comment_len = fields[10:13]
        attr, offset = fields[15:17]
        length = CENTRAL_HEADER.size + name_len + extra_len + comment_len
        if at + length > len(data):
            data, unread, position = _window(fd, data[at:], length, unread, position)
            at = 0
        at += CENTRAL_HEADER.size
        raw = data[at : at + name_len]
        extra = data[at + name_len : at + name_len + extra_len]
        at += name_len + extra_len + comment_len
        # zip64: the 64-bit values in the order size, compressed size, offset, each only
        # where its 32-bit field holds the placeholder
        big = [usize == MAX32, csize == MAX32, offset == MAX32]
        if any(big):
            values = iter(_zip64_values(extra, sum(big)))
            usize = next(values) if big[0] else usize
            csize = next(values) if big[1] else csize
            offset = next(values) if big[2] else offset
        name = raw.decode("utf-8" if flags & FLAG_UTF8 else "cp437")
        yield (
            name,
            flags,
            method,
            (dosdate << 16) | dostime,
            crc,
            csize,
            usize,
            attr,
            offset + shift,
        )


def _window(fd: int, kept: bytes, need: int, unread: int, position: int) -> tuple[bytes, int, int]:
    """``kept`` (the directory's bytes not parsed yet) followed by the next window of the
    directory, at least ``need`` bytes in all; what is left to read after it, and where."""
    want = max(need - len(kept), min(CHUNK, unread))
    if want > unread:
        raise BadZipError("Truncated central directory")
    more = os.pread(fd, want, position)
    if len(more) != want:
        raise BadZipError("Truncated central directory")
    return kept + more, unread - want, position + want
