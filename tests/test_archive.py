"""relabel.archive: reading, validation, raw copies, zip64, atomic output."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from relabel import archive
from relabel.archive import WheelFile, parse_headers, render_wheel_metadata, write_wheel, writer
from relabel.errors import WheelError

from .conftest import make_wheel, record_hash


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
    # Wheels with 100,000s of members exist; relabel keeps a compact record per member
    # and streams RECORD. Reading and rewriting a wheel of 20,000 tiny members measured
    # about 0.8 KiB per member at its peak (3.2 KiB before records were made compact and
    # the per-member futures of the writer went away).
    import tracemalloc

    count = 20_000
    files: dict[str, bytes | Path] = {
        f"pkg/sub{i // 100}/m{i}.py": b"x = %d\n" % i for i in range(count)
    }
    wheel = make_wheel(tmp_path / "in", files)
    tracemalloc.start()
    try:
        out = rewrite(wheel, tmp_path / "out")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak / count < 1536, f"{peak / count:.0f} bytes per member"
    with zipfile.ZipFile(out) as zf:
        assert len(zf.namelist()) == count + 3
        assert zf.testzip() is None


def test_central_directory_is_read_as_zipfile_reads_it(tmp_path: Path) -> None:
    # relabel reads the central directory itself (a ZipInfo per member costs too much
    # memory); an archive comment, data prepended to the archive (as self-extracting
    # archives have) and zip64 records must read exactly as zipfile reads them.
    wheel = make_wheel(tmp_path / "in", {"pkg/a.py": b"a = 1\n", "pkg/ü.txt": b"x" * 3000})
    with zipfile.ZipFile(wheel, "a") as zf:
        zf.comment = b"an archive comment"
    shifted = tmp_path / "shifted" / wheel.name
    shifted.parent.mkdir()
    shifted.write_bytes(b"#!/bin/sh\nexit 0\n" + wheel.read_bytes())
    for path in (wheel, shifted):
        with zipfile.ZipFile(path) as zf, WheelFile(path) as wf:
            infos = {i.filename: i for i in zf.infolist()}
            assert set(wf.members) == set(infos)
            for name, member in wf.members.items():
                info = infos[name]
                assert (member.size, member.compressed_size, member.crc, member.offset) == (
                    info.file_size,
                    info.compress_size,
                    info.CRC,
                    info.header_offset,
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
