"""Wheel in, wheel out.

Reading: :class:`WheelFile` validates the zip and the wheel layout (name and tags parsed with
``packaging``, one ``.dist-info``, WHEEL and RECORD present, no member escaping the wheel root)
and extracts single members by streaming.

Writing: :func:`write_wheel` produces the new wheel from the old one. Members that do not
change are copied as their compressed bytes, never inflated and deflated again; new and
patched members are deflated in parallel (zlib and hashlib release the GIL) into scratch
files and then copied the same way. WHEEL and RECORD are written last. The result is written
to a temporary file in the output directory and renamed into place, so the output directory
holds either no new file or the complete wheel. Timestamps are deterministic: every new entry
takes the input wheel's WHEEL timestamp, or ``SOURCE_DATE_EPOCH`` for all entries when set.

This module knows nothing about ELF files or policies.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import csv
import hashlib
import io
import os
import shutil
import stat
import struct
import tempfile
import time
import zipfile
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Callable, Union

from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from relabel.errors import WheelError

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence

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
_UNIX_MADE_BY = (3 << 8) | 20


def record_hash(digest: bytes) -> str:
    """RECORD hash text for a sha256 digest (PEP 376 / wheel spec: urlsafe b64, no padding)."""
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


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


@dataclass(frozen=True)
class Member:
    """One regular file of a wheel."""

    name: str
    size: int
    compressed_size: int
    crc: int
    method: int
    offset: int  # of the local header
    mode: int  # unix permission bits (0 when the zip carries none)
    date_time: tuple[int, int, int, int, int, int]

    @property
    def executable(self) -> bool:
        return bool(self.mode & 0o111)


class WheelFile:
    """A read-only, validated wheel. Use as a context manager."""

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
        try:
            self._zip = zipfile.ZipFile(self.path)
        except FileNotFoundError:
            raise WheelError(self.filename, "no such file") from None
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise WheelError(self.filename, f"not a readable zip archive ({exc})") from None
        try:
            self._load()
        except BaseException:
            self._zip.close()
            raise

    def _load(self) -> None:
        self.members: dict[str, Member] = {}
        for info in self._zip.infolist():
            name = info.filename
            if info.is_dir():
                continue
            _check_member_name(self.filename, name)
            mode = (info.external_attr >> 16) & 0xFFFF
            if stat.S_ISLNK(mode):
                raise WheelError(
                    self.filename, f"member {name!r} is a symbolic link, which wheels cannot hold"
                )
            if name in self.members:
                raise WheelError(self.filename, f"member {name!r} appears more than once")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise WheelError(
                    self.filename,
                    f"member {name!r} uses zip compression method {info.compress_type};"
                    " wheels use stored or deflated members",
                )
            self.members[name] = Member(
                name=name,
                size=info.file_size,
                compressed_size=info.compress_size,
                crc=info.CRC,
                method=info.compress_type,
                offset=info.header_offset,
                mode=stat.S_IMODE(mode),
                date_time=info.date_time,
            )
        dist_infos = {
            n.split("/", 1)[0] for n in self.members if n.split("/", 1)[0].endswith(".dist-info")
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
        self.wheel_metadata = parse_headers(self.read(f"{self.dist_info}/WHEEL"))
        if not self._header("Wheel-Version"):
            raise WheelError(self.filename, f"{self.dist_info}/WHEEL has no Wheel-Version")
        self.record = self._read_record()

    def _read_record(self) -> dict[str, tuple[str, str]]:
        text = self.read(f"{self.dist_info}/RECORD").decode("utf-8", "replace")
        record: dict[str, tuple[str, str]] = {}
        for row in csv.reader(io.StringIO(text)):
            if not row:
                continue
            if len(row) != 3:
                raise WheelError(
                    self.filename, f"{self.dist_info}/RECORD has a malformed line: {row!r}"
                )
            record[row[0]] = (row[1], row[2])
        return record

    # -- context manager -------------------------------------------------------------
    def __enter__(self) -> WheelFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._zip.close()

    # -- reading ---------------------------------------------------------------------
    @property
    def wheel_tags(self) -> list[str]:
        return [v for k, v in self.wheel_metadata if k.lower() == "tag"]

    @property
    def root_is_purelib(self) -> bool:
        return self._header("Root-Is-Purelib").strip().lower() == "true"

    def _header(self, key: str) -> str:
        return next((v for k, v in self.wheel_metadata if k.lower() == key.lower()), "")

    def open(self, name: str) -> BinaryIO:
        try:
            return self._zip.open(name)  # type: ignore[return-value]
        except (zipfile.BadZipFile, OSError, zlib.error, KeyError) as exc:
            raise WheelError(self.filename, f"cannot read member {name!r} ({exc})") from None

    def read(self, name: str) -> bytes:
        with self.open(name) as stream:
            try:
                return stream.read()
            except (zipfile.BadZipFile, OSError, zlib.error, EOFError) as exc:
                raise WheelError(self.filename, f"cannot read member {name!r} ({exc})") from None

    def head(self, name: str, size: int = 4) -> bytes:
        with self.open(name) as stream:
            try:
                return stream.read(size)
            except (zipfile.BadZipFile, OSError, zlib.error, EOFError) as exc:
                raise WheelError(self.filename, f"cannot read member {name!r} ({exc})") from None

    def extract(self, name: str, dest: Path) -> None:
        """Stream member ``name`` to ``dest`` (a file path), keeping its permission bits.

        The member is inflated straight from its stored bytes (positional reads, so several
        threads can extract at once), never holding more than one chunk in memory. Its
        size and CRC-32 must match the zip directory: a member that inflates to more than
        it declares (a zip bomb) is stopped at the declared size.
        """
        member = self.members[name]
        span = self.raw_span(member)
        dest.parent.mkdir(parents=True, exist_ok=True)
        inflater = zlib.decompressobj(-15) if member.method == zipfile.ZIP_DEFLATED else None
        crc = written = 0
        offset, remaining = span.offset, span.length

        def emit(data: bytes) -> None:
            nonlocal crc, written
            written += len(data)
            if written > member.size:
                raise WheelError(
                    self.filename,
                    f"member {name!r} holds more data than the {member.size} bytes it declares",
                )
            crc = zlib.crc32(data, crc)
            out.write(data)

        try:
            with dest.open("wb") as out:
                while remaining:
                    chunk = os.pread(span.fd, min(CHUNK, remaining), offset)
                    if not chunk:
                        raise WheelError(self.filename, f"member {name!r} is truncated")
                    offset += len(chunk)
                    remaining -= len(chunk)
                    if inflater is None:
                        emit(chunk)
                        continue
                    data = inflater.decompress(chunk, CHUNK)
                    while True:
                        emit(data)
                        if not inflater.unconsumed_tail:
                            break
                        data = inflater.decompress(inflater.unconsumed_tail, CHUNK)
                if inflater is not None:
                    emit(inflater.flush())
        except zlib.error as exc:
            raise WheelError(self.filename, f"member {name!r} is corrupt ({exc})") from None
        if written != member.size or crc != member.crc:
            raise WheelError(
                self.filename,
                f"member {name!r} is corrupt: its data does not match the size and CRC-32"
                " recorded in the zip directory",
            )
        dest.chmod((member.mode & 0o7777) or 0o644)

    def raw_span(self, member: Member) -> Span:
        """Where the compressed bytes of ``member`` lie in the wheel file."""
        fp = self._zip.fp
        if fp is None:  # pragma: no cover - closed archive is a programming error
            raise ValueError("wheel is closed")
        fp.seek(member.offset)
        header = fp.read(_LOCAL_HEADER.size)
        if len(header) != _LOCAL_HEADER.size or _LOCAL_HEADER.unpack(header)[0] != _LOCAL_SIG:
            raise WheelError(self.filename, f"member {member.name!r} has a corrupt local header")
        fields = _LOCAL_HEADER.unpack(header)
        start = member.offset + _LOCAL_HEADER.size + fields[9] + fields[10]
        if start + member.compressed_size > self.path.stat().st_size:
            raise WheelError(self.filename, f"member {member.name!r} is truncated")
        return Span(fp.fileno(), start, member.compressed_size)


def _check_member_name(wheel: str, name: str) -> None:
    parts = name.split("/")
    if (
        name.startswith("/")
        or "\\" in name
        or "\0" in name
        or any(p in ("..", ".") for p in parts)
        or (len(name) > 1 and name[1] == ":")
    ):
        raise WheelError(
            wheel,
            f"member name {name!r} is not a plain relative path inside the wheel;"
            " refusing to process it",
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
    """Appends members to ``stream`` and writes the central directory (zip64 when needed)."""

    def __init__(self, stream: BinaryIO) -> None:
        self._out = stream
        self._central: list[bytes] = []
        self._offset = 0

    def _write(self, data: bytes) -> None:
        self._out.write(data)
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
            self._out.flush()
            copy_span(chunks, self._out.fileno())
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
        self._central.append(
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
        for entry in self._central:
            self._write(entry)
        size = self._offset - start
        count = len(self._central)
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
    with (
        ThreadPoolExecutor(max_workers=cores) as blocks,
        ThreadPoolExecutor(max_workers=min(8, cores + 1)) as members,
    ):
        return {p.name: p for p in members.map(prepare, order)}


def _size_hint(source: Source) -> int:
    hint = getattr(source, "size_hint", None)
    if isinstance(hint, int):
        return hint
    try:
        return source.stat().st_size if isinstance(source, Path) else 0
    except OSError:
        return 0


def _member_order(src: WheelFile, new_names: Iterable[str]) -> list[str]:
    """The original order with new files before ``.dist-info`` and new metadata after it
    (RECORD is appended by the writer). Stable, so a rewrite of a rewrite keeps the order."""
    prefix = src.dist_info + "/"
    old = [n for n in src.members if n != prefix + "RECORD"]
    new = sorted(n for n in new_names if n not in src.members)
    return (
        [n for n in old if not n.startswith(prefix)]
        + [n for n in new if not n.startswith(prefix)]
        + [n for n in old if n.startswith(prefix)]
        + [n for n in new if n.startswith(prefix)]
    )


@contextlib.contextmanager
def atomic_output(final: Path) -> Iterator[BinaryIO]:
    """A stream whose content appears at ``final`` only once complete (rename in place)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent)
    tmp_path = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        tmp_path.chmod(0o644)
        tmp_path.replace(final)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise


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
    members are copied compressed. WHEEL becomes ``wheel_text`` and RECORD is regenerated.
    Returns ``out_path``.
    """
    record_name = f"{src.dist_info}/RECORD"
    epoch = source_date_epoch()
    new_time = epoch or src.members[f"{src.dist_info}/WHEEL"].date_time
    with tempfile.TemporaryDirectory(prefix="relabel-zip-") as scratch_dir:
        scratch = Path(scratch_dir)
        files: list[tuple[str, Source]] = [*replaced.items(), *added.items()]
        small = {**(extra_files or {}), f"{src.dist_info}/WHEEL": wheel_text}
        for index, (name, data) in enumerate(small.items()):
            files.append((name, _small_file(scratch / f"small-{index}", data)))
        prepared = _deflate_all(files, scratch, compression_level, jobs)

        with atomic_output(out_path) as stream:
            writer = _ZipWriter(stream)
            rows: list[tuple[str, str, str]] = []
            for name in _member_order(src, prepared):
                item = prepared.get(name)
                if item is not None:
                    with item.source.open("rb") as stored:
                        writer.add(
                            name,
                            chunks=Span(stored.fileno(), 0, item.compressed_size),
                            size=item.size,
                            compressed_size=item.compressed_size,
                            crc=item.crc,
                            method=item.method,
                            mode=item.mode,
                            date_time=new_time,
                        )
                    rows.append((name, item.record_hash, str(item.size)))
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
                rows.append((name, *_record_entry(src, member)))
            record = io.StringIO()
            csv.writer(record, lineterminator="\n").writerows([*rows, (record_name, "", "")])
            data = record.getvalue().encode("utf-8")
            deflated = _deflate_bytes(data, compression_level)
            writer.add(
                record_name,
                chunks=[deflated],
                size=len(data),
                compressed_size=len(deflated),
                crc=zlib.crc32(data),
                method=zipfile.ZIP_DEFLATED,
                mode=0o644,
                date_time=new_time,
            )
            writer.finish()
    return out_path


def _small_file(path: Path, data: bytes | Callable[[], bytes]) -> Callable[[], Path]:
    def produce() -> Path:
        path.write_bytes(data() if callable(data) else data)
        path.chmod(0o644)
        return path

    return produce


def _record_entry(src: WheelFile, member: Member) -> tuple[str, str]:
    """RECORD hash and size of an unchanged member, computed when RECORD lacks them."""
    digest, size = src.record.get(member.name, ("", ""))
    if digest and size == str(member.size):
        return digest, size
    hasher = hashlib.sha256()
    with src.open(member.name) as stream:
        while chunk := stream.read(CHUNK):
            hasher.update(chunk)
    return record_hash(hasher.digest()), str(member.size)


def _deflate_bytes(data: bytes, level: int) -> bytes:
    compressor = zlib.compressobj(level, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush()


def parse_headers(data: bytes) -> list[tuple[str, str]]:
    """``Key: value`` lines (RFC 822 style, as WHEEL uses), continuation lines folded in.

    A few lines of our own instead of the email package, whose import costs more than
    relabel spends on a small wheel.
    """
    headers: list[tuple[str, str]] = []
    for line in data.decode("utf-8", "replace").splitlines():
        if not line.strip():
            if headers:
                break  # the body starts after the first blank line
            continue
        if line[0] in " \t" and headers:
            key, value = headers[-1]
            headers[-1] = (key, f"{value} {line.strip()}")
            continue
        key, sep, value = line.partition(":")
        if sep:
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
        shutil.copyfileobj(inp, out, CHUNK)
    return final
