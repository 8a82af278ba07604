"""Wheel in, wheel out.

Reading: :class:`WheelFile` validates the zip and the wheel layout (name and tags parsed with
``packaging``, one ``.dist-info``, WHEEL and RECORD present and agreeing with the archive and
with the file name, no member escaping the wheel root, no links, no encryption) and extracts
single members by streaming. It accepts what installers accept: a file name whose tags
differ from WHEEL (the name rules, with a note), header lines after a blank line in WHEEL,
RECORD signatures. Only WHEEL, which has a size limit, is read whole into memory; RECORD
and the zip's central directory are parsed as they are read, and each member costs one
small record, as wheels with hundreds of thousands of members exist. Every member read is
checked against its size, CRC and RECORD hash.

Writing: :func:`write_wheel` produces the new wheel from the old one. Members that do not
change are copied as their compressed bytes, never inflated and deflated again; new and
patched members are deflated in parallel (zlib and hashlib release the GIL) into scratch
files and then copied the same way. Meanwhile other threads inflate every unchanged member
once to check it against RECORD, so a written wheel never carries a RECORD line that does not
match its member. WHEEL and RECORD are written last; RECORD's signatures are left out, as
they cannot match the new RECORD, and every name added passes :func:`check_member_name`.
The result goes to an unnamed file in the output directory (``O_TMPFILE``) that gets its
name only once complete, so the output directory holds either no new file or the complete
wheel, even when relabel is killed; where ``O_TMPFILE`` is missing, a hidden
``.NAME.*.part`` file is renamed into place instead and removed on every error and on
SIGTERM/SIGINT (which the command turns into exceptions).
Timestamps are deterministic: every new entry takes the input wheel's WHEEL timestamp, or
``SOURCE_DATE_EPOCH`` for all entries when set.

This module knows nothing about ELF files or policies.
"""

from __future__ import annotations

import base64
import codecs
import collections
import contextlib
import csv
import errno
import hashlib
import itertools
import operator
import os
import stat
import struct
import tempfile
import threading
import time
import zipfile
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Callable, Union

from packaging.tags import parse_tag
from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from relabel.errors import OutputError, WheelError

if TYPE_CHECKING:
    from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence

    from packaging.tags import Tag

CHUNK = 1 << 20
_ZIP64_LIMIT = 0xFFFFFFFF  # sizes and offsets from here on need zip64 fields
_MAX32 = 0xFFFFFFFF  # the placeholder a zip64 field leaves in the 32-bit one
_LOCAL_SIG = 0x04034B50
_CENTRAL_SIG = 0x02014B50
_LOCAL_HEADER = struct.Struct("<IHHHHHIIIHH")
_CENTRAL_HEADER = struct.Struct("<IHHHHHHIIIHHHHHII")
_EOCD = struct.Struct("<IHHHHIIH")
_ZIP64_EOCD = struct.Struct("<IQHHIIQQQQ")
_ZIP64_LOCATOR = struct.Struct("<IIQI")
_FLAG_UTF8 = 0x800
#: encrypted, "compressed patched data", strong encryption: nothing a wheel may use
_FLAGS_REFUSED = 0x1 | 0x20 | 0x40
_UNIX_MADE_BY = (3 << 8) | 20

#: WHEEL and RECORD are the only members read whole; beyond these sizes they are not real.
WHEEL_LIMIT = 1 << 20
RECORD_LIMIT = 128 << 20
#: RECORD lines that carry no hash (wheel spec: RECORD itself and its signatures)
_UNHASHED = ("RECORD", "RECORD.jws", "RECORD.p7s")
#: signatures of RECORD (wheel spec): invalid once RECORD changes
_SIGNATURES = ("RECORD.jws", "RECORD.p7s")
#: what RECORD may hash with: sha256 or stronger, as installers require
_RECORD_ALGORITHMS = frozenset({"sha256", "sha384", "sha512", "sha3_256", "sha3_384", "sha3_512"})
_SHOWN = 5  # names listed in one message before "and N more"


def record_hash(digest: bytes, algorithm: str = "sha256") -> str:
    """RECORD hash text for a digest (PEP 376 / wheel spec: urlsafe b64, no padding)."""
    return f"{algorithm}=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:_SHOWN])
    more = len(names) - _SHOWN
    return shown + (f" and {more} more" if more > 0 else "")


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


class Member:
    """One regular file of a wheel.

    Compact on purpose (slots, the timestamp packed as the zip stores it): a wheel may hold
    hundreds of thousands of members, and relabel keeps one of these for each.
    ``record_hash`` is the hash column of the member's RECORD line: ``None`` when RECORD does
    not list it (RECORD itself, signatures), ``""`` when listed without a hash.
    """

    __slots__ = (
        "_dos",
        "compressed_size",
        "crc",
        "method",
        "mode",
        "name",
        "offset",
        "record_hash",
        "size",
    )

    def __init__(
        self,
        *,
        name: str,
        size: int,
        compressed_size: int,
        crc: int,
        method: int,
        offset: int,
        mode: int,
        dos: int,
        record_hash: str | None = None,
    ) -> None:
        self.name = name
        self.size = size
        self.compressed_size = compressed_size
        self.crc = crc
        self.method = method
        self.offset = offset  # of the local header
        self.mode = mode  # unix permission bits (0 when the zip carries none)
        self._dos = dos  # the zip's date << 16 | time
        self.record_hash = record_hash

    @property
    def date_time(self) -> tuple[int, int, int, int, int, int]:
        date, time_ = self._dos >> 16, self._dos & 0xFFFF
        return (
            (date >> 9) + 1980,
            (date >> 5) & 0xF,
            date & 0x1F,
            time_ >> 11,
            (time_ >> 5) & 0x3F,
            (time_ & 0x1F) * 2,
        )

    def __repr__(self) -> str:
        return f"Member({self.name!r}, size={self.size})"


class WheelFile:
    """A read-only, validated wheel. Use as a context manager.

    ``notes`` lists what was accepted although it is unusual (a file name whose tags differ
    from WHEEL, RECORD signatures), for the reports to show.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.filename = self.path.name
        try:
            name, version, build, tags = parse_wheel_filename(self.filename)
        except InvalidWheelFilename as exc:
            raise WheelError(self.filename, f"not a valid wheel file name ({exc})") from None
        self.project = name
        self.version = version
        self.build = build
        self.tags: frozenset[Tag] = tags
        self.notes: list[str] = []
        self._verified: set[str] = set()  # members whose bytes matched RECORD once
        try:
            if not stat.S_ISREG(self.path.stat().st_mode):
                # a FIFO would block forever, a device never end
                raise WheelError(self.filename, "not a regular file")
            self._file = self.path.open("rb")
            self._size = os.fstat(self._file.fileno()).st_size
        except FileNotFoundError:
            raise WheelError(self.filename, "no such file") from None
        except OSError as exc:
            raise WheelError(self.filename, f"not a readable zip archive ({exc})") from None
        try:
            self.members = self._read_directory()
            self._load()
        except BaseException:
            self._file.close()
            raise

    def _read_directory(self) -> dict[str, Member]:
        """The zip's central directory as compact records, each entry checked."""
        members: dict[str, Member] = {}
        try:
            for name, flags, method, dos, crc, csize, size, attr, offset in _directory(
                self._file.fileno(), self._size
            ):
                if name.endswith("/"):
                    continue  # a directory entry
                member = self._member(name, flags, method, attr)
                if name in members:
                    raise WheelError(
                        self.filename, f"member {name!r} appears more than once", member=name
                    )
                members[name] = Member(
                    name=name,
                    size=size,
                    compressed_size=csize,
                    crc=crc,
                    method=method,
                    offset=offset,
                    mode=member,
                    dos=dos,
                )
        except (_BadZipError, OSError, ValueError, struct.error) as exc:
            raise WheelError(self.filename, f"not a readable zip archive ({exc})") from None
        return members

    def _member(self, name: str, flags: int, method: int, attr: int) -> int:
        """Check one entry; return its permission bits."""
        check_member_name(self.filename, name)
        mode = (attr >> 16) & 0xFFFF
        if stat.S_ISLNK(mode):
            raise WheelError(
                self.filename,
                f"member {name!r} is a symbolic link, which wheels cannot hold",
                member=name,
            )
        if flags & _FLAGS_REFUSED:
            raise WheelError(
                self.filename,
                f"member {name!r} is encrypted or stored as a patch, which wheels cannot be",
                member=name,
            )
        if method not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise WheelError(
                self.filename,
                f"member {name!r} uses zip compression method {method};"
                " wheels use stored or deflated members",
                member=name,
            )
        return stat.S_IMODE(mode)

    def _load(self) -> None:
        _check_no_file_is_a_directory(self.filename, self.members)
        _check_no_overlap(self.filename, self.members)
        dist_infos = {
            top for top in (n.partition("/")[0] for n in self.members) if top.endswith(".dist-info")
        }
        if len(dist_infos) != 1:
            found = ", ".join(sorted(dist_infos)) or "none"
            raise WheelError(
                self.filename, f"a wheel holds exactly one .dist-info directory (found: {found})"
            )
        self.dist_info = dist_infos.pop()
        self.data_dir = self.dist_info[: -len(".dist-info")] + ".data"
        for required in ("WHEEL", "RECORD"):
            if f"{self.dist_info}/{required}" not in self.members:
                raise WheelError(self.filename, f"{self.dist_info}/{required} is missing")
        self._read_record()
        self.wheel_metadata = parse_headers(self.read(f"{self.dist_info}/WHEEL", limit=WHEEL_LIMIT))
        self._check_wheel_metadata()
        for name in self.signatures:
            self.notes.append(
                f"{name} is a signature of RECORD; a repair rewrites RECORD, so the repaired"
                " wheel leaves this signature out (it would no longer match)"
            )

    def _check_wheel_metadata(self) -> None:
        where = f"{self.dist_info}/WHEEL"
        version = self._header("Wheel-Version").strip()
        if not version:
            raise WheelError(self.filename, f"{where} has no Wheel-Version")
        parts = version.split(".")
        if not all(part.isdigit() for part in parts):
            raise WheelError(self.filename, f"{where} has an invalid Wheel-Version: {version!r}")
        if int(parts[0]) != 1:
            # The wheel spec: a newer major version means "do not try to read this".
            raise WheelError(
                self.filename,
                f"{where} says Wheel-Version {version}; relabel reads version 1.x wheels only",
            )
        lines = [v for k, v in self.wheel_metadata if k.lower() == "tag"]
        declared: set[Tag] = set()
        for line in lines:
            try:
                declared |= parse_tag(line.strip())
            except ValueError:
                raise WheelError(
                    self.filename, f"{where} has an invalid Tag line: {line!r}"
                ) from None
        self._tag_lines = lines
        if declared != set(self.tags):
            # Vendors rename wheels (a linux_x86_64 build published as manylinux1_x86_64; a
            # py2.py3 build as py2-none-any). Installers read the tags of the file name only.
            in_name = ", ".join(sorted(map(str, self.tags)))
            in_wheel = ", ".join(sorted(map(str, declared))) or "none"
            self.notes.append(
                f"the tags of the file name ({in_name}) differ from the Tag lines of {where}"
                f" ({in_wheel}); relabel goes by the file name, as installers do, and a repair"
                " writes Tag lines that match the name it writes"
            )
            self._tag_lines = sorted(map(str, self.tags))

    def _record_lines(self, member: Member) -> Iterator[str]:
        """RECORD's text a line at a time, ``\\n`` kept (csv joins quoted fields that span
        lines); never the whole file at once."""
        decoder = codecs.getincrementaldecoder("utf-8")()
        pending = ""
        for data in self._inflate(member):
            lines = (pending + decoder.decode(data)).split("\n")
            pending = lines.pop()
            for line in lines:
                yield line + "\n"
        pending += decoder.decode(b"", final=True)
        if pending:
            yield pending

    def _read_record(self) -> None:
        """Give every member the hash of its RECORD line, checking that RECORD lists
        exactly the members, with the sizes of the zip directory and hashes of an allowed
        algorithm. The hashes themselves are checked whenever a member is read (``read``,
        ``extract``, ``verify``), so a wheel relabel writes never keeps a wrong one.
        """
        where = f"{self.dist_info}/RECORD"
        record = self.members[where]
        if record.size > RECORD_LIMIT:
            raise WheelError(
                self.filename,
                f"member {where!r} claims {record.size} bytes, more than the {RECORD_LIMIT}"
                " relabel reads of it; the wheel is corrupt or built to exhaust memory",
                member=where,
            )
        unhashed = {f"{self.dist_info}/{n}" for n in _UNHASHED}
        absent: list[str] = []
        problem: WheelError | None = None
        try:
            for row in csv.reader(self._record_lines(record)):
                if not row:
                    continue
                if len(row) != 3:
                    raise WheelError(self.filename, f"{where} has a malformed line: {row!r}")
                name, digest, size = row
                member = self.members.get(name)
                if member is None:
                    absent.append(name)
                    continue
                member.record_hash = digest
                if problem is None:
                    problem = self._record_line_problem(member, digest, size, unhashed)
        except UnicodeDecodeError as exc:
            raise WheelError(self.filename, f"{where} is not UTF-8 text ({exc})") from None
        except csv.Error as exc:
            raise WheelError(self.filename, f"{where} is not valid CSV ({exc})") from None
        unlisted = [
            n for n, m in self.members.items() if m.record_hash is None and n not in unhashed
        ]
        if unlisted:
            raise WheelError(
                self.filename,
                f"{where} does not list {_names(unlisted)}; the tool that built the wheel did"
                " not finish it. Rebuild it",
                member=unlisted[0],
            )
        if absent:
            raise WheelError(
                self.filename,
                f"{where} lists {_names(absent)}, which the wheel does not hold. Rebuild it",
                member=absent[0],
            )
        if problem is not None:
            raise problem

    def _record_line_problem(
        self, member: Member, digest: str, size: str, unhashed: set[str]
    ) -> WheelError | None:
        where = f"{self.dist_info}/RECORD"
        name = member.name
        if size and size != str(member.size):
            return WheelError(
                self.filename,
                f"{where} says member {name!r} is {size} bytes, the zip directory says"
                f" {member.size}; the wheel is corrupt or was changed after it was built."
                " Rebuild it",
                member=name,
            )
        algorithm = digest.partition("=")[0]
        if digest and algorithm not in _RECORD_ALGORITHMS:
            return WheelError(
                self.filename,
                f"{where} hashes member {name!r} with {algorithm!r}; wheels use sha256 or"
                " a stronger algorithm",
                member=name,
            )
        if not digest and name not in unhashed:
            return WheelError(
                self.filename, f"{where} has no hash for member {name!r}", member=name
            )
        return None

    # -- context manager -------------------------------------------------------------
    def __enter__(self) -> WheelFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    # -- reading ---------------------------------------------------------------------
    @property
    def wheel_tags(self) -> list[str]:
        """The Tag lines of WHEEL; those of the file name where the two disagree (a
        vendor-renamed wheel: see ``notes``), since installers go by the name."""
        return list(self._tag_lines)

    @property
    def signatures(self) -> list[str]:
        """RECORD's signature members (``RECORD.jws``, ``RECORD.p7s``) the wheel holds."""
        names = (f"{self.dist_info}/{n}" for n in _SIGNATURES)
        return [n for n in names if n in self.members]

    @property
    def root_is_purelib(self) -> bool:
        return self._header("Root-Is-Purelib").strip().lower() == "true"

    def _header(self, key: str) -> str:
        return next((v for k, v in self.wheel_metadata if k.lower() == key.lower()), "")

    def read(self, name: str, *, limit: int = WHEEL_LIMIT) -> bytes:
        """The content of a small member (metadata), checked against RECORD when it can be."""
        member = self.members[name]
        if member.size > limit:
            raise WheelError(
                self.filename,
                f"member {name!r} claims {member.size} bytes, more than the {limit} relabel"
                " reads of it; the wheel is corrupt or built to exhaust memory",
                member=name,
            )
        hasher = self._hasher(member)
        chunks = []
        for data in self._inflate(member):
            if hasher is not None:
                hasher.update(data)
            chunks.append(data)
        self._check_hash(member, hasher)
        self._verified.add(name)
        return b"".join(chunks)

    def head(self, name: str, size: int = 4) -> bytes:
        """The first ``size`` bytes of a member (unchecked: the member is not read whole)."""
        stream = self._inflate(self.members[name], read_size=4096)
        data = b""
        try:
            for chunk in stream:
                data += chunk
                if len(data) >= size:
                    break
        finally:
            stream.close()
        return data[:size]

    def extract(self, name: str, dest: Path) -> None:
        """Stream member ``name`` to ``dest`` (a file path), checking it against RECORD.

        The copy always lets its owner read and write it (patchelf rewrites it in place) and
        never has set-id bits; the new wheel gives the member its original permissions.
        """
        member = self.members[name]
        hasher = self._hasher(member)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            with dest.open("wb") as out:
                for data in self._inflate(member):
                    if hasher is not None:
                        hasher.update(data)
                    out.write(data)
            dest.chmod(((member.mode & 0o777) or 0o644) | 0o600)
        except OSError as exc:
            raise WheelError(
                self.filename,
                f"cannot extract member {name!r} into {dest.parent} ({exc.strerror or exc})",
                member=name,
            ) from None
        self._check_hash(member, hasher)
        self._verified.add(name)

    def verify(self, name: str) -> str:
        """Read member ``name`` once to check it; return its RECORD hash (computed with
        sha256 for the members RECORD does not hash). Safe to call from several threads."""
        member = self.members[name]
        if member.record_hash and name in self._verified:
            return member.record_hash
        hasher = self._hasher(member)
        computed = hasher or hashlib.sha256()
        for data in self._inflate(member):
            computed.update(data)
        self._check_hash(member, hasher)
        return member.record_hash or record_hash(computed.digest())

    @staticmethod
    def _hasher(member: Member) -> hashlib._Hash | None:
        digest = member.record_hash
        return hashlib.new(digest.partition("=")[0]) if digest else None

    def _check_hash(self, member: Member, hasher: hashlib._Hash | None) -> None:
        if hasher is None or not member.record_hash:
            return
        expected = member.record_hash
        if record_hash(hasher.digest(), expected.partition("=")[0]) != expected:
            raise WheelError(
                self.filename,
                f"member {member.name!r} does not match its hash in {self.dist_info}/RECORD;"
                " the wheel is corrupt or was changed after it was built. Rebuild it",
                member=member.name,
            )

    def _inflate(self, member: Member, read_size: int = CHUNK) -> Generator[bytes, None, None]:
        """The content of ``member``, a chunk at a time, inflated from its stored bytes with
        positional reads (so several threads can read at once). Its size and CRC-32 must
        match the zip directory; a member that inflates past its declared size (a zip bomb)
        is stopped there."""
        name = member.name
        span = self.raw_span(member)
        inflater = zlib.decompressobj(-15) if member.method == zipfile.ZIP_DEFLATED else None
        crc = written = 0
        offset, remaining = span.offset, span.length

        def checked(data: bytes) -> bytes:
            nonlocal crc, written
            written += len(data)
            if written > member.size:
                raise WheelError(
                    self.filename,
                    f"member {name!r} holds more data than the {member.size} bytes it declares",
                    member=name,
                )
            crc = zlib.crc32(data, crc)
            return data

        try:
            while remaining:
                chunk = os.pread(span.fd, min(read_size, remaining), offset)
                if not chunk:
                    raise WheelError(self.filename, f"member {name!r} is truncated", member=name)
                offset += len(chunk)
                remaining -= len(chunk)
                if inflater is None:
                    yield checked(chunk)
                    continue
                data = inflater.decompress(chunk, CHUNK)
                while True:
                    yield checked(data)
                    if not inflater.unconsumed_tail:
                        break
                    data = inflater.decompress(inflater.unconsumed_tail, CHUNK)
            if inflater is not None:
                yield checked(inflater.flush())
        except zlib.error as exc:
            raise WheelError(
                self.filename, f"member {name!r} is corrupt ({exc})", member=name
            ) from None
        except OSError as exc:
            raise WheelError(
                self.filename, f"cannot read member {name!r} ({exc.strerror or exc})", member=name
            ) from None
        if written != member.size or crc != member.crc:
            raise WheelError(
                self.filename,
                f"member {name!r} is corrupt: its data does not match the size and CRC-32"
                " recorded in the zip directory",
                member=name,
            )

    def raw_span(self, member: Member) -> Span:
        """Where the compressed bytes of ``member`` lie in the wheel file."""
        fd = self._file.fileno()
        # A positional read: threads extracting side by side share the file descriptor.
        try:
            header = os.pread(fd, _LOCAL_HEADER.size, member.offset)
        except OSError as exc:
            raise WheelError(
                self.filename, f"cannot read member {member.name!r} ({exc.strerror or exc})"
            ) from None
        if len(header) != _LOCAL_HEADER.size or _LOCAL_HEADER.unpack(header)[0] != _LOCAL_SIG:
            raise WheelError(
                self.filename,
                f"member {member.name!r} has a corrupt local header",
                member=member.name,
            )
        fields = _LOCAL_HEADER.unpack(header)
        start = member.offset + _LOCAL_HEADER.size + fields[9] + fields[10]
        if start + member.compressed_size > self._size:
            raise WheelError(
                self.filename, f"member {member.name!r} is truncated", member=member.name
            )
        return Span(fd, start, member.compressed_size)


class _BadZipError(Exception):
    """The central directory cannot be read (the message says why)."""


def _end_of_directory(fd: int, size: int) -> tuple[int, int, int]:
    """(size and start of the central directory, the shift of every offset): the start
    corrected, as zipfile corrects it, for data prepended to the archive."""
    tail_size = min(size, _EOCD.size + 0xFFFF)  # the record, then a comment of up to 64 KiB
    tail = os.pread(fd, tail_size, size - tail_size)
    at = len(tail) - _EOCD.size
    if at < 0 or tail[at : at + 4] != b"PK\x05\x06" or tail[-2:] != b"\0\0":
        at = tail.rfind(b"PK\x05\x06")  # not at the very end: behind it, a comment
    if at < 0 or at + _EOCD.size > len(tail):
        raise _BadZipError("File is not a zip file")
    _, disk, _, _, _, cd_size, cd_offset, _ = _EOCD.unpack_from(tail, at)
    end = size - tail_size + at  # where the end record starts
    locator_at = end - _ZIP64_LOCATOR.size
    if locator_at >= 0:
        locator = os.pread(fd, _ZIP64_LOCATOR.size, locator_at)
        if locator[:4] == b"PK\x06\x07":
            record_at = locator_at - _ZIP64_EOCD.size
            record = os.pread(fd, _ZIP64_EOCD.size, max(record_at, 0))
            if record_at < 0 or len(record) != _ZIP64_EOCD.size or record[:4] != b"PK\x06\x06":
                raise _BadZipError("Corrupt zip64 end of central directory record")
            fields = _ZIP64_EOCD.unpack(record)
            cd_size, cd_offset, end = fields[8], fields[9], record_at
    if disk != 0:
        raise _BadZipError("zipfiles that span multiple disks are not supported")
    shift = end - cd_size - cd_offset
    if shift < 0 or cd_offset + shift + cd_size > size:
        raise _BadZipError("Bad offset for central directory")
    return cd_size, cd_offset + shift, shift


def _zip64_values(extra: bytes, wanted: int) -> list[int]:
    """The ``wanted`` 64-bit values of the zip64 extra field (header id 1)."""
    at = 0
    while at + 4 <= len(extra):
        kind, length = struct.unpack_from("<HH", extra, at)
        if kind == 1:
            if length < 8 * wanted or at + 4 + length > len(extra):
                raise _BadZipError("Corrupt extra field 0001 (zip64)")
            return list(struct.unpack_from(f"<{wanted}Q", extra, at + 4))
        at += 4 + length
    raise _BadZipError("Corrupt zip64 extra field: missing")


def _directory(fd: int, size: int) -> Iterator[tuple[str, int, int, int, int, int, int, int, int]]:
    """The entries of the central directory: (name, flags, method, dos date << 16 | dos
    time, crc, compressed size, size, external attributes, local header offset). The
    directory is read as one block of bytes; nothing is kept per entry but what is
    yielded (a ``ZipInfo`` per entry costs half a kilobyte)."""
    cd_size, cd_start, shift = _end_of_directory(fd, size)
    data = os.pread(fd, cd_size, cd_start)
    if len(data) != cd_size:
        raise _BadZipError("Truncated central directory")
    at = 0
    while at < cd_size:
        if at + _CENTRAL_HEADER.size > cd_size:
            raise _BadZipError("Truncated central directory")
        fields = _CENTRAL_HEADER.unpack_from(data, at)
        if fields[0] != _CENTRAL_SIG:
            raise _BadZipError("Bad magic number for central directory")
        flags, method, dostime, dosdate, crc, csize, usize = fields[3:10]
        name_len, extra_len, comment_len = fields[10:13]
        attr, offset = fields[15:17]
        at += _CENTRAL_HEADER.size
        raw = data[at : at + name_len]
        extra = data[at + name_len : at + name_len + extra_len]
        at += name_len + extra_len + comment_len
        if at > cd_size:
            raise _BadZipError("Truncated central directory")
        # zip64: the 64-bit values in the order size, compressed size, offset, each only
        # where its 32-bit field holds the placeholder
        big = [usize == _MAX32, csize == _MAX32, offset == _MAX32]
        if any(big):
            values = iter(_zip64_values(extra, sum(big)))
            usize = next(values) if big[0] else usize
            csize = next(values) if big[1] else csize
            offset = next(values) if big[2] else offset
        name = raw.decode("utf-8" if flags & _FLAG_UTF8 else "cp437")
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


def check_member_name(wheel: str, name: str) -> None:
    """Refuse a member name that is not a plain relative path inside the wheel.

    Applied to every name read from a wheel and to every name relabel writes into one
    (``wheel`` is the file name the error names).
    """
    parts = name.split("/")
    if (
        name.startswith("/")
        or "\\" in name
        or "\0" in name
        or any(p in ("..", ".", "") for p in parts)
        or (len(name) > 1 and name[1] == ":")
    ):
        raise WheelError(
            wheel,
            f"member name {name!r} is not a plain relative path inside the wheel;"
            " refusing to process it",
            member=name,
        )


def _check_no_file_is_a_directory(wheel: str, members: Mapping[str, Member]) -> None:
    """``a`` and ``a/b`` cannot both be files: no installer could lay such a wheel out."""
    for name in members:
        parts = name.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if parent in members:
                raise WheelError(
                    wheel,
                    f"member {parent!r} is a file, but member {name!r} needs it to be a directory",
                    member=name,
                )


def _check_no_overlap(wheel: str, members: Mapping[str, Member]) -> None:
    """Each member's bytes lie apart from the others'. Overlapping entries are the trick of
    the worst zip bombs: one small stretch of deflate data read as thousands of members."""
    extents = sorted(members.values(), key=operator.attrgetter("offset"))
    for first, following in zip(extents, itertools.islice(extents, 1, None)):
        if first.offset + _LOCAL_HEADER.size + first.compressed_size > following.offset:
            raise WheelError(
                wheel,
                f"members {first.name!r} and {following.name!r} overlap in the zip file, as in"
                " a zip bomb; refusing to process it",
                member=following.name,
            )


# ---------------------------------------------------------------------------------------
# writing


@dataclass(frozen=True)
class _Prepared:
    """A member ready to be copied into the output: its deflated bytes and metadata."""

    name: str
    source: Path  # scratch file holding the raw deflated data
    size: int
    compressed_size: int
    crc: int
    method: int
    mode: int
    record_hash: str


BLOCK = 4 << 20  # bytes of a member compressed as one independent job
_WINDOW = 32 << 10  # deflate's history window


def _compress_block(data: bytes, history: bytes, level: int, final: bool) -> bytes:
    """Deflate one block as a continuation of a raw deflate stream (the pigz technique).

    Priming the compressor with the previous 32 KiB keeps back-references across the
    boundary; ending non-final blocks with a sync flush leaves them byte-aligned with no
    end-of-stream marker, so the blocks concatenate into one valid deflate stream whatever
    order they were compressed in. The result depends only on the input, never on timing.
    """
    if history:
        compressor = zlib.compressobj(level, zlib.DEFLATED, -15, zdict=history)
    else:
        compressor = zlib.compressobj(level, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush(
        zlib.Z_FINISH if final else zlib.Z_SYNC_FLUSH
    )


def _deflate_file(
    src: Path, scratch: Path, level: int, pool: ThreadPoolExecutor, depth: int = 4
) -> tuple[int, int, int, str]:
    """Deflate ``src`` into ``scratch`` in blocks compressed on ``pool``, at most ``depth``
    in flight (bounding memory); return (size, compressed size, crc, RECORD hash)."""
    digest = hashlib.sha256()
    crc = size = csize = 0
    pending: collections.deque[Future[bytes]] = collections.deque()
    with src.open("rb") as inp, scratch.open("wb") as out:
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
    return size, csize, crc, record_hash(digest.digest())


def _dos_date_time(date_time: tuple[int, int, int, int, int, int]) -> tuple[int, int]:
    year, month, day, hour, minute, second = date_time
    year = min(max(year, 1980), 2107)
    return (
        (hour << 11) | (minute << 5) | (second // 2),
        ((year - 1980) << 9) | (month << 5) | day,
    )


def source_date_epoch() -> tuple[int, int, int, int, int, int] | None:
    value = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not value:
        return None
    try:
        seconds = int(value)
    except ValueError:
        return None
    seconds = max(seconds, 315532800)  # zip cannot store times before 1980-01-01
    return time.gmtime(seconds)[:6]


class _ZipWriter:
    """Appends members to ``stream`` and writes the central directory (zip64 when needed).

    A write that fails (a full disk, a quota) is an :class:`OutputError` naming ``where``.
    """

    def __init__(self, stream: BinaryIO, where: str = "the new wheel") -> None:
        self._out = stream
        self._where = where
        # one bytearray, not an object per member: wheels may hold 100,000s of members
        self._central = bytearray()
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
        chunks: Iterable[bytes] | Span,
        size: int,
        compressed_size: int,
        crc: int,
        method: int,
        mode: int,
        date_time: tuple[int, int, int, int, int, int],
    ) -> None:
        encoded = name.encode("utf-8")
        flags = 0 if encoded.isascii() else _FLAG_UTF8
        dostime, dosdate = _dos_date_time(date_time)
        offset = self._offset
        big = size >= _ZIP64_LIMIT or compressed_size >= _ZIP64_LIMIT
        version = 45 if big else 20
        local_extra = struct.pack("<HHQQ", 1, 16, size, compressed_size) if big else b""
        self._write(
            _LOCAL_HEADER.pack(
                _LOCAL_SIG,
                version,
                flags,
                method,
                dostime,
                dosdate,
                crc,
                _MAX32 if big else compressed_size,
                _MAX32 if big else size,
                len(encoded),
                len(local_extra),
            )
            + encoded
            + local_extra
        )
        if isinstance(chunks, Span):
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
            size_field = _MAX32
        if compressed_size >= _ZIP64_LIMIT:
            values.append(compressed_size)
            csize_field = _MAX32
        if offset >= _ZIP64_LIMIT:
            values.append(offset)
            offset_field = _MAX32
        extra = struct.pack(f"<HH{len(values)}Q", 1, 8 * len(values), *values) if values else b""
        attr = ((stat.S_IFREG | (mode or 0o644)) & 0xFFFF) << 16
        self._count += 1
        self._central += (
            _CENTRAL_HEADER.pack(
                _CENTRAL_SIG,
                _UNIX_MADE_BY if not values else (3 << 8) | 45,
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

    def finish(self) -> None:
        start = self._offset
        self._write(self._central)
        size = self._offset - start
        count = self._count
        if count >= 0xFFFF or start >= _ZIP64_LIMIT or size >= _ZIP64_LIMIT:
            zip64_at = self._offset
            self._write(_ZIP64_EOCD.pack(0x06064B50, 44, 45, 45, 0, 0, count, count, size, start))
            self._write(_ZIP64_LOCATOR.pack(0x07064B50, 0, zip64_at, 1))
            self._write(_EOCD.pack(0x06054B50, 0, 0, 0xFFFF, 0xFFFF, _MAX32, _MAX32, 0))
        else:
            self._write(_EOCD.pack(0x06054B50, 0, 0, count, count, size, start, 0))


#: a member's new content: a file, or a function that produces the file when called (run in
#: a worker thread, so that producing one member overlaps compressing another)
Source = Union[Path, Callable[[], Path]]


def _deflate_all(
    files: Sequence[tuple[str, Source]], scratch: Path, level: int, jobs: int | None
) -> dict[str, _Prepared]:
    """Produce and deflate every (name, source) into scratch files.

    Members are produced (patched) and read by a few member threads; their blocks are
    compressed by a pool of one thread per core, so the cores stay busy to the end
    however the sizes of the members fall.
    """
    cores = max(1, jobs or os.cpu_count() or 1)

    def prepare(index: int) -> _Prepared:
        name, source = files[index]
        path = source() if callable(source) else source
        mode = stat.S_IMODE(path.stat().st_mode)
        target = scratch / f"member-{index}.deflated"
        size, csize, crc, digest = _deflate_file(path, target, level, blocks, depth=cores + 1)
        return _Prepared(name, target, size, csize, crc, zipfile.ZIP_DEFLATED, mode, digest)

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


def _size_hint(source: Source) -> int:
    hint = getattr(source, "size_hint", None)
    if isinstance(hint, int):
        return hint
    try:
        return source.stat().st_size if isinstance(source, Path) else 0
    except OSError:
        return 0


def _member_order(src: WheelFile, new_names: Iterable[str], dropped: Iterable[str]) -> list[str]:
    """The original order with new files before ``.dist-info`` and new metadata after it
    (RECORD is appended by the writer). Stable, so a rewrite of a rewrite keeps the order."""
    prefix = src.dist_info + "/"
    skip = {prefix + "RECORD", *dropped}
    old = [n for n in src.members if n not in skip]
    new = sorted(n for n in new_names if n not in src.members)
    return (
        [n for n in old if not n.startswith(prefix)]
        + [n for n in new if not n.startswith(prefix)]
        + [n for n in old if n.startswith(prefix)]
        + [n for n in new if n.startswith(prefix)]
    )


def _check_new_names(src: WheelFile, names: Iterable[str], where: str) -> None:
    """Names relabel adds pass the checks of names it reads: a plain relative path, and
    neither a file where the wheel has a directory nor below one of its files."""
    directories = {
        "/".join(parts[:depth])
        for parts in (n.split("/") for n in src.members)
        for depth in range(1, len(parts))
    }
    for name in names:
        if name in src.members:
            continue
        check_member_name(where, name)
        parts = name.split("/")
        parents = ("/".join(parts[:depth]) for depth in range(1, len(parts)))
        clash = (
            name if name in directories else next((p for p in parents if p in src.members), None)
        )
        if clash is not None:
            raise WheelError(
                where,
                f"new member {name!r} clashes with {clash!r}: one path cannot be both a file and"
                " a directory",
                member=name,
            )


class _Destination:
    """The file behind :func:`atomic_output` and how it gets its name.

    Preferred: an unnamed file in the output directory (Linux ``O_TMPFILE``), linked in
    under its name once complete (``linkat`` through ``/proc/self/fd``). Whenever the
    process dies, the kernel frees it: no partial file can ever be seen or left behind.
    Otherwise: a hidden ``.NAME.*.part`` file, renamed into place, removed on failure.
    """

    def __init__(self, final: Path) -> None:
        self.final = final
        self.part: Path | None = None
        self._proc = -1
        self.fd = self._open_unnamed()
        if self.fd < 0:
            fd, part = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent)
            self.fd, self.part = fd, Path(part)

    def _open_unnamed(self) -> int:
        flag = getattr(os, "O_TMPFILE", 0)
        if not flag or os.link not in os.supports_dir_fd:
            return -1
        try:
            self._proc = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            return -1  # no /proc: nothing could give the file a name
        try:
            return os.open(self.final.parent, flag | os.O_WRONLY | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            os.close(self._proc)
            self._proc = -1
            if exc.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT):
                return -1  # a kernel or file system without O_TMPFILE
            raise

    def publish(self) -> None:
        if self.part is not None:
            self.part.replace(self.final)
            self.part = None
            return
        fd_name = str(self.fd)
        try:
            os.link(fd_name, self.final, src_dir_fd=self._proc, follow_symlinks=True)
            return
        except FileExistsError:
            pass
        # The name is taken (an earlier build, or one running beside us): link the file in
        # under a fresh hidden name and rename that over the final name, which is atomic.
        for _ in range(100):
            part = self.final.with_name(f".{self.final.name}.{os.urandom(6).hex()}.part")
            try:
                os.link(fd_name, part, src_dir_fd=self._proc, follow_symlinks=True)
            except FileExistsError:
                continue
            self.part = part
            part.replace(self.final)
            self.part = None
            return
        raise FileExistsError(errno.EEXIST, "no free temporary name", str(self.final.parent))

    def close(self) -> None:
        if self.part is not None:
            with contextlib.suppress(OSError):
                self.part.unlink()
            self.part = None
        if self._proc >= 0:
            os.close(self._proc)
            self._proc = -1


@contextlib.contextmanager
def atomic_output(final: Path) -> Iterator[BinaryIO]:
    """A stream whose content appears at ``final`` only once complete (see _Destination).

    Problems of the output directory itself (missing and not creatable, read-only, full)
    are an :class:`OutputError`.
    """
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        destination = _Destination(final)
    except OSError as exc:
        raise OutputError(str(final), exc.strerror or str(exc)) from None
    try:
        with os.fdopen(destination.fd, "wb") as stream:
            yield stream
            try:
                stream.flush()
                os.fsync(destination.fd)
                os.fchmod(destination.fd, 0o644)
                destination.publish()
            except OSError as exc:
                raise OutputError(str(final), exc.strerror or str(exc)) from None
    finally:
        destination.close()


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
    _check_new_names(src, [*added, *small], out_path.name)
    rewritten = {*replaced, *added, *small, f"{src.dist_info}/RECORD"}
    dropped = set(src.signatures) - rewritten
    workers = max(1, jobs or os.cpu_count() or 1)
    # Unchanged members are copied as stored. A few threads check each one against its
    # size, CRC and RECORD hash (inflating it once) while the rest of the work runs; the
    # new wheel gets its name only once every check has passed. One task per thread, not
    # per member: a future per member costs a kilobyte, and wheels hold 100,000s of them.
    unchanged = [n for n in src.members if n not in rewritten and n not in dropped]
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
            prepared = _deflate_all(files, scratch, compression_level, jobs)
            order = _member_order(src, prepared, dropped)
            with atomic_output(out_path) as stream:
                writer = _ZipWriter(stream, str(out_path))
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


def record_line(name: str, digest: str, size: str) -> str:
    """One RECORD line, fields quoted as the csv module reads them back. A field holding
    ``,``, ``"``, CR or LF is quoted (csv.writer with ``lineterminator="\n"`` leaves a CR
    bare, which readers then take for the end of the line)."""
    fields = (
        f'"{f.replace(chr(34), 2 * chr(34))}"' if any(c in f for c in ',"\r\n') else f
        for f in (name, digest, size)
    )
    return ",".join(fields) + "\n"


def _write_members(
    src: WheelFile,
    writer: _ZipWriter,
    order: Sequence[str],
    prepared: Mapping[str, _Prepared],
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
            original = src.members.get(name)
            if item is not None:
                with item.source.open("rb") as stored:
                    writer.add(
                        name,
                        chunks=Span(stored.fileno(), 0, item.compressed_size),
                        size=item.size,
                        compressed_size=item.compressed_size,
                        crc=item.crc,
                        method=item.method,
                        # new content of an old member: its permissions stay as they were
                        mode=original.mode if original is not None and original.mode else item.mode,
                        date_time=new_time,
                    )
                record.write(record_line(name, item.record_hash, str(item.size)))
                continue
            member = src.members[name]
            writer.add(
                name,
                chunks=src.raw_span(member),
                size=member.size,
                compressed_size=member.compressed_size,
                crc=member.crc,
                method=member.method,
                mode=member.mode,
                date_time=epoch or member.date_time,
            )
            # every member copied unchanged has a hash: RECORD and its signatures, the
            # only ones without, are rewritten or left out
            record.write(record_line(name, member.record_hash or "", str(member.size)))
        record.write(record_line(record_name, "", ""))
    for future in verified:
        future.result()
    deflated = scratch / "RECORD.deflated"
    with ThreadPoolExecutor(max_workers=1) as pool:
        size, csize, crc, _ = _deflate_file(record_path, deflated, level, pool)
    with deflated.open("rb") as stored:
        writer.add(
            record_name,
            chunks=Span(stored.fileno(), 0, csize),
            size=size,
            compressed_size=csize,
            crc=crc,
            method=zipfile.ZIP_DEFLATED,
            mode=0o644,
            date_time=new_time,
        )
    writer.finish()


def _small_file(path: Path, data: bytes | Callable[[], bytes]) -> Callable[[], Path]:
    def produce() -> Path:
        path.write_bytes(data() if callable(data) else data)
        path.chmod(0o644)
        return path

    return produce


def parse_headers(data: bytes) -> list[tuple[str, str]]:
    """``Key: value`` lines (RFC 822 style, as WHEEL uses), continuation lines folded in.

    Every header line counts, also after a blank line: older generators (scikit-build)
    wrote a blank line between the first headers and the ``Tag`` lines, and installers,
    which never read the tags from WHEEL, accept such wheels. A few lines of our own
    instead of the email package, whose import costs more than relabel spends on a small
    wheel.
    """
    headers: list[tuple[str, str]] = []
    for line in data.decode("utf-8", "replace").splitlines():
        if not line.strip():
            continue
        if line[0] in " \t" and headers:
            key, value = headers[-1]
            headers[-1] = (key, f"{value} {line.strip()}")
            continue
        key, sep, value = line.partition(":")
        if sep and key.strip():
            headers.append((key.strip(), value.strip()))
    return headers


def render_wheel_metadata(original: Sequence[tuple[str, str]], tags: Sequence[str]) -> bytes:
    """WHEEL with its ``Tag`` lines replaced by ``tags``; every other header kept in order."""
    lines: list[str] = []
    tags_written = False
    for key, value in original:
        if key.lower() == "tag":
            if not tags_written:
                lines.extend(f"Tag: {t}" for t in tags)
                tags_written = True
            continue
        lines.append(f"{key}: {value}")
    if not tags_written:
        lines.extend(f"Tag: {t}" for t in tags)
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def copy_atomically(src: Path, out_dir: Path, name: str | None = None) -> Path:
    """Copy ``src`` into ``out_dir`` so that the final name appears only when complete."""
    final = out_dir / (name or src.name)
    with atomic_output(final) as out, src.open("rb") as inp:
        try:
            copy_span(Span(inp.fileno(), 0, os.fstat(inp.fileno()).st_size), out.fileno())
        except OSError as exc:
            raise OutputError(str(final), exc.strerror or str(exc)) from None
    return final
