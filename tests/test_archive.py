"""relabel.archive: reading, validation, raw copies, zip64, atomic output."""

from __future__ import annotations

import random
import zipfile
from pathlib import Path

import pytest

from relabel import archive
from relabel.archive import (
    WheelFile,
    parse_headers,
    reader,
    render_wheel_metadata,
    write_wheel,
    writer,
    zipformat,
)
from relabel.errors import WheelError

from .conftest import make_wheel, record_hash
from .hostile.support import patch_member


def rewrite(wheel: Path, out: Path, **kwargs: object) -> Path:
    with WheelFile(wheel) as wf:
        text = render_wheel_metadata(wf.wheel_metadata, wf.wheel_tags)
        return write_wheel(
            wf,
            out / wheel.name,
            replaced=kwargs.get("replaced", {}),  # type: ignore[arg-type]
            added=kwargs.get("added", {}),
            wheel_text=text,  # type: ignore[arg-type]
        )


def test_reads_name_tags_and_record(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, {"pkg/a.py": b"a = 1\n"})
    with WheelFile(wheel) as wf:
        assert wf.project == "demo"
        assert wf.dist_info == "demo-1.0.dist-info"
        assert str(wf.members["pkg/a.py"].record_hash) == record_hash(b"a = 1\n")
        assert {t.platform for t in wf.tags} == {"linux_x86_64"}


def test_rewrite_with_changes_keeps_everything_consistent(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "in", {"pkg/a.py": b"a = 1\n", "pkg/b.bin": b"\0" * 1000})
    new_b = tmp_path / "b.bin"
    new_b.write_bytes(b"patched")
    extra = tmp_path / "lib.so"
    extra.write_bytes(b"library bytes")
    extra.chmod(0o755)
    out = rewrite(
        wheel, tmp_path / "out", replaced={"pkg/b.bin": new_b}, added={"demo.libs/lib.so": extra}
    )
    with zipfile.ZipFile(out) as zf:
        assert zf.testzip() is None
        names = zf.namelist()
        assert names[-1] == "demo-1.0.dist-info/RECORD"
        assert names.index("demo.libs/lib.so") < names.index("demo-1.0.dist-info/METADATA")
        assert zf.read("pkg/b.bin") == b"patched"
        assert (zf.getinfo("demo.libs/lib.so").external_attr >> 16) & 0o777 == 0o755
        record = zf.read("demo-1.0.dist-info/RECORD").decode()
    assert f"pkg/b.bin,{record_hash(b'patched')},7" in record
    assert f"demo.libs/lib.so,{record_hash(b'library bytes')},13" in record


def test_zip64_records_are_written_when_needed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Shrink the 4 GiB limit so every member and offset needs zip64 fields; zipfile must
    # still read the result, which proves the records are laid out correctly.
    monkeypatch.setattr(writer, "_ZIP64_LIMIT", 16)
    wheel = make_wheel(tmp_path / "in", {"pkg/a.py": b"a = 1\n" * 100, "pkg/c.txt": b"x" * 5000})
    out = rewrite(wheel, tmp_path / "out")
    with zipfile.ZipFile(out) as zf:
        assert zf.testzip() is None
        assert zf.read("pkg/c.txt") == b"x" * 5000


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "in", {"pkg/a.py": b"a"})
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with WheelFile(wheel) as wf, pytest.raises(FileNotFoundError):
        write_wheel(
            wf,
            out_dir / wheel.name,
            replaced={"pkg/a.py": tmp_path / "missing"},
            added={},
            wheel_text=b"Wheel-Version: 1.0\n",
        )
    assert list(out_dir.iterdir()) == []


@pytest.mark.parametrize(
    "name",
    ["../evil.py", "/abs.py", "pkg\\win.py", "pkg/../../x.py", "C:/x.py"],
)
def test_member_names_escaping_the_wheel_are_refused(tmp_path: Path, name: str) -> None:
    wheel = make_wheel(tmp_path, {name: b"x"})
    with pytest.raises(WheelError, match="not a plain relative path"):
        WheelFile(wheel)


def test_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "demo-1.0-py3-none-any.whl"
    path.write_bytes(b"hello")
    with pytest.raises(WheelError, match="not a readable zip archive"):
        WheelFile(path)


def test_bad_filename(tmp_path: Path) -> None:
    path = tmp_path / "nope.whl"
    path.write_bytes(b"")
    with pytest.raises(WheelError, match="not a valid wheel file name"):
        WheelFile(path)


def test_missing_record(tmp_path: Path) -> None:
    path = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("demo-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\n")
    with pytest.raises(WheelError, match="RECORD is missing"):
        WheelFile(path)


def test_render_wheel_metadata_replaces_only_tags() -> None:
    msg = parse_headers(
        b"Wheel-Version: 1.0\nGenerator: x\nRoot-Is-Purelib: false\nTag: a-b-linux\nBuild: 1\n\n"
    )
    text = render_wheel_metadata(msg, ["a-b-manylinux_2_5"]).decode()
    assert text == (
        "Wheel-Version: 1.0\nGenerator: x\nRoot-Is-Purelib: false\nTag: a-b-manylinux_2_5\n"
        "Build: 1\n\n"
    )


def test_large_members_are_deflated_in_blocks_into_one_valid_stream(tmp_path: Path) -> None:
    import random

    rng = random.Random(7)
    # Mixed data over several compression blocks: random stretches and repeats, so the
    # blocks' shared history matters.
    pieces = [rng.randbytes(300_000) if i % 3 else b"relabel" * 60_000 for i in range(40)]
    blob = b"".join(pieces)
    assert len(blob) > 3 * archive.BLOCK
    big = tmp_path / "big.so"
    big.write_bytes(blob)
    wheel = make_wheel(tmp_path / "in", {"pkg/a.py": b"a"})
    first = rewrite(wheel, tmp_path / "one", added={"demo.libs/big.so": big})
    again = rewrite(wheel, tmp_path / "two", added={"demo.libs/big.so": big})
    assert first.read_bytes() == again.read_bytes()  # independent of thread timing
    with zipfile.ZipFile(first) as zf:
        assert zf.testzip() is None
        info = zf.getinfo("demo.libs/big.so")
        assert zf.read(info) == blob
        assert info.compress_size < len(blob)


def test_memory_per_member_stays_small(tmp_path: Path) -> None:
    # Wheels with 100,000s of members exist. relabel keeps one packed record per member
    # (its name, a dict slot and one bytes object: measured 200 bytes with a sha256 hash,
    # 640 when each field was an object), streams RECORD and the zip's directory, and
    # spills the new wheel's directory to a scratch file. Rewriting a wheel of 20,000 tiny
    # members measured about 500 bytes per member at its peak, fixed costs included
    # (800 before the records were packed, 3,200 before they had slots).
    import tracemalloc

    count = 20_000
    files: dict[str, bytes | Path] = {
        f"pkg/sub{i // 100}/m{i}.py": b"x = %d\n" % i for i in range(count)
    }
    wheel = make_wheel(tmp_path / "in", files)
    tracemalloc.start()
    try:
        with WheelFile(wheel) as wf:
            kept, _ = tracemalloc.get_traced_memory()
            assert len(wf.members) == count + 3
        tracemalloc.reset_peak()
        out = rewrite(wheel, tmp_path / "out")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert kept / count < 300, f"{kept / count:.0f} bytes kept per member"
    assert peak / count < 768, f"{peak / count:.0f} bytes per member at the peak"
    with zipfile.ZipFile(out) as zf:
        assert len(zf.namelist()) == count + 3
        assert zf.testzip() is None


def test_new_central_directory_spilled_to_scratch_is_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The new wheel's central directory moves to a scratch file once it is large; the
    # wheel must come out byte for byte as when it is kept in memory, zip64 fields too.
    files: dict[str, bytes | Path] = {f"pkg/m{i}.py": b"x = %d\n" % i for i in range(50)}
    wheel = make_wheel(tmp_path / "in", files)
    for limit in (0xFFFFFFFF, 16):
        monkeypatch.setattr(writer, "_ZIP64_LIMIT", limit)
        monkeypatch.setattr(writer, "_SPILL_AT", 1 << 30)
        kept = rewrite(wheel, tmp_path / f"kept-{limit}").read_bytes()
        monkeypatch.setattr(writer, "_SPILL_AT", 100)
        spilled = rewrite(wheel, tmp_path / f"spilled-{limit}")
        assert spilled.read_bytes() == kept
        with zipfile.ZipFile(spilled) as zf:
            assert zf.testzip() is None
            assert len(zf.namelist()) == 53


def test_overlap_is_found_in_a_directory_out_of_offset_order(tmp_path: Path) -> None:
    # A directory in offset order is checked as it stands; one out of order is sorted
    # first, and the overlap found between the two members sharing their bytes.
    files: dict[str, bytes | Path] = {f"pkg/m{i}.py": b"x = %d\n" % i for i in range(5)}
    wheel = make_wheel(tmp_path, files)
    with zipfile.ZipFile(wheel) as zf:
        last = zf.getinfo("pkg/m4.py").header_offset
    patch_member(wheel, "pkg/m1.py", header_offset=last)
    with pytest.raises(WheelError, match=r"'pkg/m1\.py' and 'pkg/m4\.py' overlap in the zip file"):
        WheelFile(wheel)


@pytest.mark.parametrize("window", [zipformat.CHUNK, 7, 100])
def test_central_directory_is_read_as_zipfile_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, window: int
) -> None:
    # relabel reads the central directory itself (a ZipInfo per member costs too much
    # memory), a window at a time; an archive comment, data prepended to the archive (as
    # self-extracting archives have) and zip64 records must read exactly as zipfile reads
    # them, wherever the windows cut the entries.
    monkeypatch.setattr(zipformat, "CHUNK", window)
    wheel = make_wheel(tmp_path / "in", {"pkg/a.py": b"a = 1\n", "pkg/ü.txt": b"x" * 3000})
    with zipfile.ZipFile(wheel, "a") as zf:
        zf.comment = b"an archive comment"
    shifted = tmp_path / "shifted" / wheel.name
    shifted.parent.mkdir()
    shifted.write_bytes(b"#!/bin/sh\nexit 0\n" + wheel.read_bytes())
    for path in (wheel, shifted):
        with zipfile.ZipFile(path) as zf, WheelFile(path) as wf:
            infos = {i.filename: i for i in zf.infolist()}
            assert list(wf.members) == list(infos)
            for name, member in wf.members.items():
                info = infos[name]
                assert (
                    member.size,
                    member.compressed_size,
                    member.crc,
                    member.offset,
                    member.method,
                    member.mode,
                ) == (
                    info.file_size,
                    info.compress_size,
                    info.CRC,
                    info.header_offset,
                    info.compress_type,
                    (info.external_attr >> 16) & 0o7777,
                )
                assert member.date_time == info.date_time
                assert wf.read(name, limit=1 << 20) == zf.read(name)


def test_zip64_output_reads_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer, "_ZIP64_LIMIT", 16)
    wheel = make_wheel(tmp_path / "in", {"pkg/a.py": b"a = 1\n" * 100, "pkg/c.txt": b"x" * 5000})
    out = rewrite(wheel, tmp_path / "out")
    with WheelFile(out) as wf:
        assert wf.members["pkg/c.txt"].size == 5000
        assert wf.read("pkg/c.txt", limit=1 << 20) == b"x" * 5000
        assert wf.read("pkg/a.py", limit=1 << 20) == b"a = 1\n" * 100


def test_blocks_that_would_not_shrink_are_stored(tmp_path: Path) -> None:
    import os
    import random

    from relabel.archive import deflate

    rng = random.Random(11)
    noise = rng.randbytes(archive.BLOCK)
    text = b"".join(b"def f%d(x): return x * %d\n" % (i, i % 7) for i in range(200_000))
    text = text[: archive.BLOCK]
    assert deflate.incompressible(noise)
    assert not deflate.incompressible(text)
    # one compressible sample is enough to deflate the block
    mostly_noise = noise[: archive.BLOCK // 2] + text[: archive.BLOCK // 2]
    assert not deflate.incompressible(mostly_noise)
    # a stored block is what level 0 writes; deflating it would give other bytes
    assert deflate._compress_block(noise, b"", 6, final=False) == deflate._compress_block(
        noise, b"", 0, final=False
    )
    # noise and code in one member: one valid stream, the code part still compressed
    blob = text + noise + text + os.urandom(1000)
    big = tmp_path / "mixed.so"
    big.write_bytes(blob)
    wheel = make_wheel(tmp_path / "in", {"pkg/a.py": b"a"})
    first = rewrite(wheel, tmp_path / "one", added={"demo.libs/mixed.so": big})
    with zipfile.ZipFile(first) as zf:
        assert zf.testzip() is None
        info = zf.getinfo("demo.libs/mixed.so")
        assert zf.read(info) == blob
        assert info.compress_size < len(noise) + len(text) // 4


def test_a_stream_deflates_as_the_same_file_does(tmp_path: Path) -> None:
    # patchelf's output arrives through a pipe in pieces of any size; the member's bytes
    # must not depend on how the pipe split them.
    import io
    import random
    from concurrent.futures import ThreadPoolExecutor

    from relabel.archive import deflate

    rng = random.Random(5)
    blob = b"".join(rng.randbytes(50_000) + b"code" * 30_000 for _ in range(60))
    assert len(blob) > 2 * archive.BLOCK
    source = tmp_path / "lib.so"
    source.write_bytes(blob)
    stream = io.BytesIO(blob)

    def trickle(size: int) -> bytes:
        return stream.read(min(size, rng.randrange(1, 70_000)))

    with ThreadPoolExecutor(2) as pool:
        whole = deflate.deflate_file(source, tmp_path / "a", 6, pool)
        piecemeal = deflate.deflate_stream(trickle, tmp_path / "b", 6, pool)
    assert (whole.size, whole.crc, whole.hash) == (piecemeal.size, piecemeal.crc, piecemeal.hash)
    assert whole.path.read_bytes() == piecemeal.path.read_bytes()
    assert zlib_inflate(piecemeal.path.read_bytes()) == blob


def zlib_inflate(raw: bytes) -> bytes:
    import zlib

    return zlib.decompress(raw, -15)


@pytest.mark.parametrize("size", [1000, 400_000])  # read whole in one go, and in chunks
@pytest.mark.parametrize("damage", ["crc", "data"])
def test_unchanged_member_that_does_not_match_its_directory_is_refused(
    tmp_path: Path, size: int, damage: str
) -> None:
    content = random.Random(size).randbytes(size)
    wheel = make_wheel(tmp_path / "in", {"pkg/a.bin": content, "pkg/b.py": b"b = 1\n"})
    with zipfile.ZipFile(wheel) as zf:
        info = zf.getinfo("pkg/a.bin")
        assert (info.compress_size > reader.SMALL_SPAN) == (size > reader.SMALL_SPAN)
        start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    if damage == "crc":
        patch_member(wheel, "pkg/a.bin", crc=info.CRC ^ 1)
    else:  # stored bytes changed: the deflate stream breaks or the CRC-32 differs
        data = bytearray(wheel.read_bytes())
        data[start + info.compress_size // 2] ^= 0xFF
        wheel.write_bytes(bytes(data))
    out = tmp_path / "out"
    out.mkdir()
    with WheelFile(wheel) as wf:
        with pytest.raises(WheelError, match=r"'pkg/a\.bin' is corrupt"):
            wf.verify("pkg/a.bin")
        wf.verify("pkg/b.py")
    with pytest.raises(WheelError, match=r"'pkg/a\.bin' is corrupt"):
        rewrite(wheel, out)
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("damage", [False, True])
def test_small_member_with_a_long_local_extra_field_is_copied_and_checked(
    tmp_path: Path, damage: bool
) -> None:
    # Its local header is longer than what is read ahead with a small member, so the
    # member is copied as a span and checked by a second read.
    made = make_wheel(tmp_path / "made", {"pkg/a.bin": b"abc" * 1000, "pkg/b.py": b"b = 1\n"})
    wheel = tmp_path / "in" / made.name
    wheel.parent.mkdir()
    extra = b"\xfe\xca" + (496).to_bytes(2, "little") + b"\0" * 496
    with zipfile.ZipFile(made) as src, zipfile.ZipFile(wheel, "w") as dst:
        for info in src.infolist():
            if info.filename == "pkg/a.bin":
                info.extra = extra
            dst.writestr(info, src.read(info))
    if damage:
        with zipfile.ZipFile(wheel) as zf:
            crc = zf.getinfo("pkg/a.bin").CRC
        patch_member(wheel, "pkg/a.bin", crc=crc ^ 1)
    out = tmp_path / "out"
    out.mkdir()
    if damage:
        with pytest.raises(WheelError, match=r"'pkg/a\.bin' is corrupt"):
            rewrite(wheel, out)
        assert list(out.iterdir()) == []
        return
    with zipfile.ZipFile(rewrite(wheel, out)) as zf:
        assert zf.testzip() is None
        assert zf.read("pkg/a.bin") == b"abc" * 1000
