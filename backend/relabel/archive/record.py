"""RECORD: its lines as typed entries, read and written.

Owns the format of RECORD (PEP 376 and the wheel spec's ``.dist-info`` section): the csv
dialect, hashes as ``algorithm=urlsafe-base64`` without padding, which algorithms a wheel
may hash with, and which lines carry no hash. It works on text and digests: it must not
open files or know about zip archives, and checking RECORD against the members of a wheel
is the reader's.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import csv
import hashlib
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

#: RECORD is parsed as it is inflated, never whole; beyond this size it is not real.
RECORD_LIMIT = 128 << 20
#: RECORD lines that carry no hash (wheel spec: RECORD itself and its signatures)
UNHASHED = ("RECORD", "RECORD.jws", "RECORD.p7s")
#: signatures of RECORD (wheel spec): invalid once RECORD changes
SIGNATURES = ("RECORD.jws", "RECORD.p7s")
#: what RECORD may hash with: sha256 or stronger, as installers require
ALGORITHMS = frozenset({"sha256", "sha384", "sha512", "sha3_256", "sha3_384", "sha3_512"})
#: the first byte of a packed hash: the algorithm of a raw digest (its index here, plus one)
_PACKED = ("sha256", "sha384", "sha512", "sha3_256", "sha3_384", "sha3_512")
_CODES = {name: code for code, name in enumerate(_PACKED, 1)}
#: the first byte of a packed hash held as its text (a weak algorithm, a value that is not
#: the canonical encoding of a digest): kept as written, so that it fails as it would
_TEXT = 0xFF
#: base64 to its URL-safe alphabet, as :func:`base64.urlsafe_b64encode` makes it
_URLSAFE = bytes.maketrans(b"+/", b"-_")


class InvalidRecordError(ValueError):
    """RECORD, or one line of it, cannot be read; ``str()`` says why, after the name
    of RECORD (``"… RECORD has a malformed line: …"``)."""


class Hash:
    """The hash column of a RECORD line. Compact (slots, the algorithm name interned):
    a wheel may hold hundreds of thousands of members, and each keeps its hash."""

    __slots__ = ("name", "value")

    def __init__(self, name: str, value: str) -> None:
        self.name = name
        self.value = value

    @classmethod
    def parse(cls, text: str) -> Hash:
        """A hash from RECORD's ``name=value`` text. Text without ``=`` gives an empty
        value, which no digest matches; whether the name is allowed is :attr:`strong`."""
        name, _, value = text.partition("=")
        return cls(sys.intern(name), value)

    @classmethod
    def of(cls, digest: bytes, name: str = "sha256") -> Hash:
        """The hash of a digest made with algorithm ``name``."""
        text = binascii.b2a_base64(digest, newline=False).translate(_URLSAFE)
        return cls(name, text.rstrip(b"=").decode("ascii"))

    @property
    def strong(self) -> bool:
        """Whether installers accept this algorithm (sha256 or stronger)."""
        return self.name in ALGORITHMS

    def pack(self) -> bytes:
        """The hash in a compact form for :meth:`unpack`: a byte naming the algorithm and the
        raw digest (33 bytes for sha256 instead of two objects holding its text); a hash
        that is not a digest in canonical text is kept as its text."""
        code = _CODES.get(self.name)
        if code is not None:
            try:
                digest = base64.urlsafe_b64decode(self.value + "=" * (-len(self.value) % 4))
            except (binascii.Error, ValueError):
                pass
            else:
                if Hash.of(digest, self.name).value == self.value:
                    return bytes((code,)) + digest
        return bytes((_TEXT,)) + str(self).encode("utf-8")

    @classmethod
    def unpack(cls, packed: bytes) -> Hash:
        """The hash :meth:`pack` gave ``packed``."""
        code = packed[0]
        if code == _TEXT:
            return cls.parse(packed[1:].decode("utf-8"))
        return cls.of(packed[1:], _PACKED[code - 1])

    def hasher(self) -> hashlib._Hash:
        """A new hash object of this algorithm, to feed a member's bytes to."""
        return hashlib.new(self.name)

    def matches(self, hasher: hashlib._Hash) -> bool:
        """Whether the bytes fed to ``hasher`` (from :meth:`hasher`) have this hash."""
        return Hash.of(hasher.digest(), self.name).value == self.value

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Hash):
            return NotImplemented
        return (self.name, self.value) == (other.name, other.value)

    def __hash__(self) -> int:
        return hash((self.name, self.value))

    def __str__(self) -> str:
        return f"{self.name}={self.value}"

    def __repr__(self) -> str:
        return f"Hash({self.name!r}, {self.value!r})"


@dataclass(frozen=True)
class RecordEntry:
    """One RECORD line: a member, its hash and its size in bytes (either may be absent)."""

    path: str
    hash: Hash | None
    size: int | None

    @classmethod
    def from_row(cls, row: Sequence[str]) -> RecordEntry:
        """An entry from the three csv fields of a line. A size must be written as
        ``str(int)`` writes it; anything else is an :class:`InvalidRecordError`."""
        path, digest, size = row
        if size and not (size.isascii() and size.isdigit() and str(int(size)) == size):
            raise InvalidRecordError(
                f"gives member {path!r} the size {size!r}, not a number of bytes"
            )
        return cls(path, Hash.parse(digest) if digest else None, int(size) if size else None)

    def line(self) -> str:
        """The entry as a RECORD line (see :func:`record_line`)."""
        return record_line(
            self.path,
            "" if self.hash is None else str(self.hash),
            "" if self.size is None else str(self.size),
        )


def record_line(path: str, digest: str, size: str) -> str:
    """A RECORD line of three fields, quoted as the csv module reads them back. A field
    holding ``,``, ``"``, CR or LF is quoted (csv.writer with ``lineterminator="\\n"``
    leaves a CR bare, which readers then take for the end of the line)."""
    line = f"{path},{digest},{size}\n"
    if line.count(",") == 2 and line.count("\n") == 1 and '"' not in line and "\r" not in line:
        return line  # nothing to quote: the common case, one line per member
    return ",".join(_quoted(f) for f in (path, digest, size)) + "\n"


def _quoted(field: str) -> str:
    return (
        f'"{field.replace(chr(34), 2 * chr(34))}"' if any(c in field for c in ',"\r\n') else field
    )


def rows(chunks: Iterable[bytes]) -> Iterator[list[str]]:
    """The csv rows of RECORD's bytes, blank lines skipped, each of exactly three fields.

    The text is decoded a line at a time, ``\\n`` kept (csv joins quoted fields that span
    lines), never whole, as RECORD lists every member. Undecodable text, bad csv and a
    line of another width are an :class:`InvalidRecordError`.
    """
    try:
        for row in csv.reader(_lines(chunks)):
            if not row:
                continue
            if len(row) != 3:
                raise InvalidRecordError(f"has a malformed line: {row!r}")
            yield row
    except UnicodeDecodeError as exc:
        raise InvalidRecordError(f"is not UTF-8 text ({exc})") from None
    except csv.Error as exc:
        raise InvalidRecordError(f"is not valid CSV ({exc})") from None


def _lines(chunks: Iterable[bytes]) -> Iterator[str]:
    decoder = codecs.getincrementaldecoder("utf-8")()
    pending = ""
    for data in chunks:
        lines = (pending + decoder.decode(data)).split("\n")
        pending = lines.pop()
        for line in lines:
            yield line + "\n"
    pending += decoder.decode(b"", final=True)
    if pending:
        yield pending
