"""Reading a wheel: :class:`WheelFile` validates it and streams its members out.

Owns what makes a zip a wheel relabel accepts: the name and tags parsed with
``packaging``, one ``.dist-info``, WHEEL and RECORD present and agreeing with the archive
and with the file name, no member escaping the wheel root, no links, no encryption. It
accepts what installers accept: a file name whose tags differ from WHEEL (the name rules,
with a note), header lines after a blank line in WHEEL, RECORD signatures. Only WHEEL,
which has a size limit, is read whole into memory; RECORD and the zip's central directory
are parsed as they are read, a window at a time, and each member costs its name and one
packed bytes record (:class:`Members`), as wheels with hundreds of thousands of members
exist. Every member read is checked against its size, CRC and RECORD hash.

It must not write anything but the one file :meth:`WheelFile.extract` is asked for, and
knows nothing about ELF files or policies.
"""

from __future__ import annotations

import hashlib
import operator
import os
import stat
import struct
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from relabel.archive import wheelmeta
from relabel.archive.names import check_member_name, check_no_file_is_a_directory
from relabel.archive.record import (
    RECORD_LIMIT,
    SIGNATURES,
    UNHASHED,
    Hash,
    InvalidRecordError,
    RecordEntry,
    rows,
)
from relabel.archive.zipformat import (
    CHUNK,
    DEFLATED,
    FLAGS_REFUSED,
    LOCAL_HEADER,
    LOCAL_SIG,
    STORED,
    BadZipError,
    DateTime,
    Span,
    central_directory,
    from_dos,
)
from relabel.errors import WheelError

if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterable, Iterator, Sequence

    from packaging.tags import Tag

_SHOWN = 5  # names listed in one message before "and N more"


def _listing(names: Sequence[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:_SHOWN])
    more = len(names) - _SHOWN
    return shown + (f" and {more} more" if more > 0 else "")


#: what a member costs beside its name, packed as bytes: size, compressed size, offset of
#: its local header, CRC-32, the zip's date << 16 | time, permission bits, method. Then
#: nothing while RECORD does not list the member, else the byte 0 when its line has no
#: hash, or its packed hash (:meth:`Hash.pack`, which never starts with 0).
_FIXED = struct.Struct("<QQQIIHH")
_SPAN = struct.Struct("<QQ")  # compressed size and offset, at byte 8
_SIZES = struct.Struct("<QQ")  # size and compressed size, at byte 0
_LISTED_UNHASHED = b"\0"
#: members of at most this many compressed bytes are read whole with their local header
SMALL_SPAN = 256 << 10
_LOCAL_EXTRA_GUESS = 64  # bytes of local extra field read ahead along with a small member
_LOCAL_SIG_BYTES = struct.pack("<I", LOCAL_SIG)
_LOCAL_LENGTHS = struct.Struct("<HH")  # name and extra field lengths of a local header
_LOCAL_LENGTHS_AT = LOCAL_HEADER.size - _LOCAL_LENGTHS.size


class Member:
    """One regular file of a wheel, as :class:`Members` gives it out (made on each look-up
    from the packed record the wheel keeps; read-only). ``record_hash`` is the hash of the
    member's RECORD line: ``None`` when RECORD lists it without one (RECORD itself,
    signatures) or does not list it.
    """

    __slots__ = (
        "_dos",
        "_hash",
        "_record",
        "compressed_size",
        "crc",
        "method",
        "mode",
        "name",
        "offset",
        "size",
    )
    _hash: Hash | None

    def __init__(self, name: str, record: bytes) -> None:
        self.name = name
        self._record = record
        (
            self.size,
            self.compressed_size,
            self.offset,  # of the local header
            self.crc,
            self._dos,  # the zip's date << 16 | time
            self.mode,  # unix permission bits (0 when the zip carries none)
            self.method,
        ) = _FIXED.unpack_from(record)

    @property
    def record_hash(self) -> Hash | None:
        try:
            return self._hash
        except AttributeError:  # unpacked on first use, then kept
            tail = self._record[_FIXED.size :]
            self._hash = Hash.unpack(tail) if tail and tail != _LISTED_UNHASHED else None
            return self._hash

    @property
    def date_time(self) -> DateTime:
        return from_dos(self._dos)

    def __repr__(self) -> str:
        return f"Member({self.name!r}, size={self.size})"


class Members(Mapping[str, Member]):
    """The regular files of a wheel by name, in the order of the zip's directory.

    A wheel may hold hundreds of thousands of members, and relabel keeps them all: each
    costs its name, a slot of one dict and one bytes object (about 110 bytes with a sha256
    hash), not an object per field. A :class:`Member` is made on each look-up.
    """

    __slots__ = ("_records",)

    def __init__(self) -> None:
        self._records: dict[str, bytes] = {}

    def add(
        self,
        name: str,
        *,
        size: int,
        compressed_size: int,
        offset: int,
        crc: int,
        dos: int,
        mode: int,
        method: int,
    ) -> None:
        self._records[name] = _FIXED.pack(size, compressed_size, offset, crc, dos, mode, method)

    def list_in_record(self, name: str, record_hash: Hash | None) -> None:
        """Note that RECORD lists member ``name``, with ``record_hash`` (a later line for
        the same member wins, as it did for installers)."""
        fixed = self._records[name][: _FIXED.size]
        tail = _LISTED_UNHASHED if record_hash is None else record_hash.pack()
        self._records[name] = fixed + tail

    def unlisted(self) -> Iterator[str]:
        """The members RECORD does not list, in order."""
        return (n for n, r in self._records.items() if len(r) == _FIXED.size)

    def sizes(self) -> Iterator[tuple[str, int, int]]:
        """(name, size, compressed size) of each member, in order."""
        for name, record in self._records.items():
            size, compressed_size = _SIZES.unpack_from(record)
            yield name, size, compressed_size

    def spans(self) -> Iterator[tuple[int, int, str]]:
        """(offset, compressed size, name) of each member, in order."""
        for name, record in self._records.items():
            compressed_size, offset = _SPAN.unpack_from(record, 8)
            yield offset, compressed_size, name

    def __getitem__(self, name: str) -> Member:
        return Member(name, self._records[name])

    def __contains__(self, name: object) -> bool:
        return name in self._records

    def __iter__(self) -> Iterator[str]:
        return iter(self._records)

    def __len__(self) -> int:
        return len(self._records)


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

    def _read_directory(self) -> Members:
        """The zip's central directory as compact records, each entry checked."""
        members = Members()
        try:
            for name, flags, method, dos, crc, csize, size, attr, offset in central_directory(
                self._file.fileno(), self._size
            ):
                if name.endswith("/"):
                    continue  # a directory entry
                mode = self._member(name, flags, method, attr)
                if name in members:
                    raise WheelError(
                        self.filename, f"member {name!r} appears more than once", member=name
                    )
                members.add(
                    name,
                    size=size,
                    compressed_size=csize,
                    offset=offset,
                    crc=crc,
                    dos=dos,
                    mode=mode,
                    method=method,
                )
        except (BadZipError, OSError, ValueError, struct.error) as exc:
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
        if flags & FLAGS_REFUSED:
            raise WheelError(
                self.filename,
                f"member {name!r} is encrypted or stored as a patch, which wheels cannot be",
                member=name,
            )
        if method not in (STORED, DEFLATED):
            raise WheelError(
                self.filename,
                f"member {name!r} uses zip compression method {method};"
                " wheels use stored or deflated members",
                member=name,
            )
        return stat.S_IMODE(mode)

    def _load(self) -> None:
        check_no_file_is_a_directory(self.filename, self.members)
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
        where = f"{self.dist_info}/WHEEL"
        self.wheel_metadata = wheelmeta.parse_headers(self.read(where, limit=wheelmeta.WHEEL_LIMIT))
        wheelmeta.check_version(self.wheel_metadata, self.filename, where)
        self._tag_lines, note = wheelmeta.tag_lines(
            self.wheel_metadata, self.tags, self.filename, where
        )
        if note is not None:
            self.notes.append(note)
        for name in self.signatures:
            self.notes.append(
                f"{name} is a signature of RECORD; a repair rewrites RECORD, so the repaired"
                " wheel leaves this signature out (it would no longer match)"
            )

    def _read_record(self) -> None:
        """Give every member the hash of its RECORD line, checking that RECORD lists
        exactly the members, with the sizes of the zip directory and hashes of an allowed
        algorithm. The hashes themselves are checked whenever a member is read (``read``,
        ``extract``, ``verify``), so a wheel relabel writes never keeps a wrong one.
        """
        where = f"{self.dist_info}/RECORD"
        record = self.members[where]
        self._check_size(record, RECORD_LIMIT)
        unhashed = {f"{self.dist_info}/{n}" for n in UNHASHED}
        absent: list[str] = []
        problem: WheelError | None = None
        try:
            for row in rows(self._inflate(record)):
                name = row[0]
                if name not in self.members:
                    absent.append(name)
                    continue
                try:
                    entry = RecordEntry.from_row(row)
                except InvalidRecordError as exc:
                    self.members.list_in_record(name, None)
                    problem = problem or WheelError(self.filename, f"{where} {exc}", member=name)
                    continue
                self.members.list_in_record(name, entry.hash)
                problem = problem or self._entry_problem(self.members[name], entry, unhashed)
        except InvalidRecordError as exc:
            raise WheelError(self.filename, f"{where} {exc}") from None
        unlisted = [n for n in self.members.unlisted() if n not in unhashed]
        if unlisted:
            raise WheelError(
                self.filename,
                f"{where} does not list {_listing(unlisted)}; the tool that built the wheel did"
                " not finish it. Rebuild it",
                member=unlisted[0],
            )
        if absent:
            raise WheelError(
                self.filename,
                f"{where} lists {_listing(absent)}, which the wheel does not hold. Rebuild it",
                member=absent[0],
            )
        if problem is not None:
            raise problem

    def _entry_problem(
        self, member: Member, entry: RecordEntry, unhashed: set[str]
    ) -> WheelError | None:
        where = f"{self.dist_info}/RECORD"
        name = member.name
        if entry.size is not None and entry.size != member.size:
            return WheelError(
                self.filename,
                f"{where} says member {name!r} is {entry.size} bytes, the zip directory says"
                f" {member.size}; the wheel is corrupt or was changed after it was built."
                " Rebuild it",
                member=name,
            )
        if entry.hash is not None and not entry.hash.strong:
            return WheelError(
                self.filename,
                f"{where} hashes member {name!r} with {entry.hash.name!r}; wheels use sha256"
                " or a stronger algorithm",
                member=name,
            )
        if entry.hash is None and name not in unhashed:
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
        names = (f"{self.dist_info}/{n}" for n in SIGNATURES)
        return [n for n in names if n in self.members]

    @property
    def root_is_purelib(self) -> bool:
        return wheelmeta.header(self.wheel_metadata, "Root-Is-Purelib").strip().lower() == "true"

    def _check_size(self, member: Member, limit: int) -> None:
        if member.size > limit:
            raise WheelError(
                self.filename,
                f"member {member.name!r} claims {member.size} bytes, more than the {limit}"
                " relabel reads of it; the wheel is corrupt or built to exhaust memory",
                member=member.name,
            )

    def read(self, name: str, *, limit: int = wheelmeta.WHEEL_LIMIT) -> bytes:
        """The content of a small member (metadata), checked against RECORD when it can be."""
        member = self.members[name]
        self._check_size(member, limit)
        chunks: list[bytes] = []
        self._check_hash(member, self._copy(member, chunks.append))
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
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            with dest.open("wb") as out:
                hasher = self._copy(member, out.write)
            dest.chmod(((member.mode & 0o777) or 0o644) | 0o600)
        except OSError as exc:
            raise WheelError(
                self.filename,
                f"cannot extract member {name!r} into {dest.parent} ({exc.strerror or exc})",
                member=name,
            ) from None
        self._check_hash(member, hasher)
        self._verified.add(name)

    def verify(self, name: str) -> Hash:
        """Read member ``name`` once to check it; return its RECORD hash (computed with
        sha256 for the members RECORD does not hash). Safe to call from several threads."""
        member = self.members[name]
        expected = member.record_hash
        if expected is not None and name in self._verified:
            return expected
        if expected is not None and member.size <= SMALL_SPAN:
            # most members are small: read whole, inflated and hashed in a few calls
            whole = self.raw_data(member)[1]
            if whole is not None:
                self.check_whole(member, whole)
                return expected
        computed = hashlib.sha256()
        hasher = self._copy(member, computed.update if member.record_hash is None else None)
        self._check_hash(member, hasher)
        return member.record_hash or Hash.of(computed.digest())

    def check_whole(self, member: Member, raw: bytes) -> None:
        """Check a member of at most :data:`SMALL_SPAN` bytes against its size, CRC and
        RECORD hash from ``raw``, all its stored bytes (from :meth:`raw_data`)."""
        data = self._inflate_whole(member, raw)
        if member.record_hash is not None:
            fed = member.record_hash.hasher()
            fed.update(data)
            self._check_hash(member, fed)

    def _copy(self, member: Member, sink: Callable[[bytes], object] | None) -> hashlib._Hash | None:
        """Inflate ``member`` into ``sink``; return the hash object fed with its bytes
        (None when RECORD gives it no hash)."""
        hasher = None if member.record_hash is None else member.record_hash.hasher()
        for data in self._inflate(member):
            if hasher is not None:
                hasher.update(data)
            if sink is not None:
                sink(data)
        return hasher

    def _check_hash(self, member: Member, hasher: hashlib._Hash | None) -> None:
        if hasher is None or member.record_hash is None:
            return
        if not member.record_hash.matches(hasher):
            raise self._hash_mismatch(member)

    def _hash_mismatch(self, member: Member) -> WheelError:
        return WheelError(
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
        span, whole = self.raw_data(member, min(SMALL_SPAN, read_size))
        inflater = zlib.decompressobj(-15) if member.method == DEFLATED else None
        crc = written = 0
        offset, remaining = span.offset, span.length

        def checked(data: bytes) -> bytes:
            nonlocal crc, written
            written += len(data)
            if written > member.size:
                raise self._too_long(member)
            crc = zlib.crc32(data, crc)
            return data

        try:
            while remaining:
                if whole is not None:
                    chunk, whole = whole, None
                else:
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
            raise self._mismatch(member)

    def _inflate_whole(self, member: Member, raw: bytes) -> bytes:
        """The content of a small ``member`` from all its stored bytes ``raw``, checked as
        :meth:`_inflate` checks it, in one call instead of a generator's many."""
        data = raw
        if member.method == DEFLATED:
            inflater = zlib.decompressobj(-15)
            try:
                # one byte more than declared tells a member that holds too much
                data = inflater.decompress(raw, member.size + 1)
                if len(data) <= member.size:
                    data += inflater.flush()
            except zlib.error as exc:
                raise WheelError(
                    self.filename, f"member {member.name!r} is corrupt ({exc})", member=member.name
                ) from None
        if len(data) > member.size:
            raise self._too_long(member)
        if len(data) != member.size or zlib.crc32(data) != member.crc:
            raise self._mismatch(member)
        return data

    def _too_long(self, member: Member) -> WheelError:
        return WheelError(
            self.filename,
            f"member {member.name!r} holds more data than the {member.size} bytes it declares",
            member=member.name,
        )

    def _mismatch(self, member: Member) -> WheelError:
        return WheelError(
            self.filename,
            f"member {member.name!r} is corrupt: its data does not match the size and CRC-32"
            " recorded in the zip directory",
            member=member.name,
        )

    def raw_span(self, member: Member) -> Span:
        """Where the compressed bytes of ``member`` lie in the wheel file."""
        return self.raw_data(member, small=0)[0]

    def raw_data(self, member: Member, small: int = SMALL_SPAN) -> tuple[Span, bytes | None]:
        """Where the compressed bytes of ``member`` lie in the wheel file, and those bytes
        too when there are at most ``small`` of them: read with its local header in one
        positional read, as a call per member is most of the cost of a small one."""
        fd = self._file.fileno()
        name = member.name
        csize = member.compressed_size
        want = LOCAL_HEADER.size
        if csize <= small:
            # the local header repeats the member's name, perhaps with an extra field
            want += 4 * len(name) + _LOCAL_EXTRA_GUESS + csize
        # A positional read: threads extracting side by side share the file descriptor.
        try:
            header = os.pread(fd, want, member.offset)
        except OSError as exc:
            raise WheelError(
                self.filename, f"cannot read member {name!r} ({exc.strerror or exc})"
            ) from None
        if len(header) < LOCAL_HEADER.size or header[:4] != _LOCAL_SIG_BYTES:
            raise WheelError(
                self.filename,
                f"member {name!r} has a corrupt local header",
                member=name,
            )
        name_len, extra_len = _LOCAL_LENGTHS.unpack_from(header, _LOCAL_LENGTHS_AT)
        skip = LOCAL_HEADER.size + name_len + extra_len
        start = member.offset + skip
        if start + csize > self._size:
            raise WheelError(self.filename, f"member {name!r} is truncated", member=name)
        span = Span(fd, start, csize)
        if csize > small or skip + csize > len(header):
            return span, None
        return span, header[skip : skip + csize]


def _check_no_overlap(wheel: str, members: Members) -> None:
    """Each member's bytes lie apart from the others'. Overlapping entries are the trick of
    the worst zip bombs: one small stretch of deflate data read as thousands of members."""
    previous: tuple[int, int, str] | None = None
    for following in _in_offset_order(members):
        if previous is not None and previous[0] + LOCAL_HEADER.size + previous[1] > following[0]:
            raise WheelError(
                wheel,
                f"members {previous[2]!r} and {following[2]!r} overlap in the zip file, as in"
                " a zip bomb; refusing to process it",
                member=following[2],
            )
        previous = following


def _in_offset_order(members: Members) -> Iterable[tuple[int, int, str]]:
    """``members.spans()`` sorted by offset, stably; a directory already in that order (as
    zip writers make it) is not copied into a list."""
    last = -1
    for offset, _, _ in members.spans():
        if offset < last:
            return sorted(members.spans(), key=operator.itemgetter(0))
        last = offset
    return members.spans()
