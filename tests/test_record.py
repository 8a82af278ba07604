"""relabel.archive.record: RECORD lines as typed entries, read and written."""

from __future__ import annotations

import csv
import hashlib
import io

import pytest

from relabel.archive.record import Hash, InvalidRecordError, RecordEntry, rows

from .conftest import record_hash


def test_hash_text_round_trips_and_checks_digests() -> None:
    text = record_hash(b"data")
    parsed = Hash.parse(text)
    assert (parsed.name, str(parsed)) == ("sha256", text)
    assert parsed == Hash.of(hashlib.sha256(b"data").digest())
    hasher = parsed.hasher()
    hasher.update(b"data")
    assert parsed.matches(hasher)
    hasher.update(b"!")
    assert not parsed.matches(hasher)
    assert not Hash.parse("md5=x").strong
    assert Hash.parse("sha256").value == ""  # no "=": a hash nothing matches


@pytest.mark.parametrize(
    "text",
    [
        record_hash(b"data"),
        "sha512=" + Hash.of(hashlib.sha512(b"data").digest(), "sha512").value,
        "sha3_256=" + Hash.of(hashlib.sha3_256(b"").digest(), "sha3_256").value,
        record_hash(b"data") + "=",  # padded: not how a digest is written, so no match
        "sha256=not base64!",
        "sha256=",
        "sha256",
        "md5=XUFAKrxLKna5cZ2REBfFkg",
        "=x=y",
        "sha256=ü",
    ],
)
def test_packed_hashes_give_back_their_text(text: str) -> None:
    # A wheel keeps every member's hash packed (raw digests); what is read back, and
    # written into a new RECORD, is the text RECORD had, odd or not.
    parsed = Hash.parse(text)
    unpacked = Hash.unpack(parsed.pack())
    assert (unpacked.name, unpacked.value) == (parsed.name, parsed.value)
    assert str(unpacked) == str(parsed)
    if text == record_hash(b"data"):
        assert len(parsed.pack()) == 33  # one byte and the sha256 digest


@pytest.mark.parametrize(
    "path", ["pkg/plain.py", "pkg/comma,name.py", 'pkg/quote"name.py', "pkg/cr\rname.py"]
)
def test_lines_read_back_as_the_same_entry(path: str) -> None:
    entry = RecordEntry(path, Hash.parse(record_hash(b"x")), 1)
    [row] = rows([entry.line().encode()])
    assert RecordEntry.from_row(row) == entry
    assert next(csv.reader(io.StringIO(entry.line(), newline=""))) == row


def test_entries_without_hash_or_size_and_bad_sizes() -> None:
    assert RecordEntry.from_row(["d.dist-info/RECORD", "", ""]) == RecordEntry(
        "d.dist-info/RECORD", None, None
    )
    assert RecordEntry("d.dist-info/RECORD", None, None).line() == "d.dist-info/RECORD,,\n"
    for size in ("007", "-1", "1e3", " 7", "٣"):
        with pytest.raises(InvalidRecordError, match="not a number of bytes"):
            RecordEntry.from_row(["a.py", record_hash(b""), size])


def test_rows_refuse_what_is_not_record_text() -> None:
    assert list(rows([b"a.py,h,1\n", b"\n", b"b.py,h,2"])) == [
        ["a.py", "h", "1"],
        ["b.py", "h", "2"],
    ]
    with pytest.raises(InvalidRecordError, match="malformed line"):
        list(rows([b"a.py,h\n"]))
    with pytest.raises(InvalidRecordError, match="not UTF-8"):
        list(rows([b"\xff,h,1\n"]))
