"""Wheels that are broken, or built to attack: one clear message, nothing written.

Most cases run ``relabel.cli.main`` in-process (the same code path as the command, and an
unexpected exception fails the test with its traceback); a few run the real command to
check the exit status and that no traceback reaches the user.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import stat
import subprocess
import sys
import tempfile
import tracemalloc
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.utils import parse_wheel_filename
from packaging.version import Version

from relabel import archive
from relabel.archive import WheelFile
from relabel.cli import main
from relabel.errors import OutputError, WheelError
from tests.conftest import EXT_SUFFIX, Fixtures, make_wheel, platforms

from .support import (
    DEFAULT_TAG,
    Entry,
    assert_clean_failure,
    assert_valid_wheel,
    member_data_offset,
    patch_member,
    record_for,
    run_relabel,
    time_limit,
    tree,
    wheel_members,
    wheel_path,
    write_zip,
)

EXT = f"pkg/_foo{EXT_SUFFIX}"
DIST = "demo-1.0.dist-info"


@dataclass
class Runner:
    """``relabel`` in-process, with its temporary directories and output in known places."""

    capsys: pytest.CaptureFixture[str]
    out: Path
    scratch: Path

    def cli(self, *args: object) -> tuple[int, str]:
        code = main([str(a) for a in args])
        return code, self.capsys.readouterr().err

    def repaired(self, wheel: Path, *args: object) -> tuple[Path, str]:
        """``relabel repair ARGS -w OUT WHEEL`` succeeds: the one wheel written, and what
        was said on stderr."""
        code, message = self.cli("repair", *args, "-w", self.out, wheel)
        assert code == 0, message
        [result] = self.out.iterdir()
        return result, message

    def refused(
        self, wheel: Path, *fragments: str, commands: tuple[str, ...] = ("show", "repair")
    ) -> str:
        """Each command fails with status 2 and one message holding every fragment; the
        output and scratch directories hold nothing afterwards."""
        message = ""
        for command in commands:
            args = ("show", wheel) if command == "show" else ("repair", "-w", self.out, wheel)
            code, message = self.cli(*args)
            assert code == 2, message
            assert message.startswith(f"relabel: error: {wheel.name}: "), message
            for fragment in fragments:
                assert fragment in message, (fragment, message)
        assert tree(self.out) == []
        assert tree(self.scratch) == []
        return message


@pytest.fixture
def run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Runner:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    return Runner(capsys, tmp_path / "out", scratch)


def ext_wheel(fixtures: Fixtures, **extra: bytes) -> dict[str, bytes]:
    """Members of a wheel that a repair rewrites (it grafts libfoo for ``_foo``)."""
    return wheel_members({EXT: fixtures.ext_foo.read_bytes(), "pkg/__init__.py": b"", **extra})


# ---------------------------------------------------------------------------------------
# not a zip, truncated zip, damaged members


@pytest.mark.parametrize(
    "content",
    [b"", b"hello", b"\x89PNG\r\n\x1a\n" + b"\0" * 100, b"PK\x03\x04" + b"\xff" * 200],
    ids=["empty", "text", "png", "zip-magic-only"],
)
def test_not_a_zip(run: Runner, tmp_path: Path, content: bytes) -> None:
    wheel = wheel_path(tmp_path)
    wheel.write_bytes(content)
    run.refused(wheel, "not a readable zip archive")


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, -30, -1])
def test_truncated_zip(
    fixtures: Fixtures,
    tmp_path: Path,
    run: Runner,
    keep: float,
) -> None:
    good = write_zip(wheel_path(tmp_path / "good"), ext_wheel(fixtures))
    data = good.read_bytes()
    cut = int(len(data) * keep) if keep > 0 else len(data) + int(keep)
    wheel = wheel_path(tmp_path)
    wheel.write_bytes(data[:cut])
    run.refused(wheel)


def test_damaged_elf_member_is_named(
    fixtures: Fixtures,
    tmp_path: Path,
    run: Runner,
) -> None:
    wheel = write_zip(wheel_path(tmp_path), ext_wheel(fixtures))
    start, length = member_data_offset(wheel, EXT)
    data = bytearray(wheel.read_bytes())
    data[start + length // 2 : start + length // 2 + 64] = b"\xa5" * 64
    wheel.write_bytes(bytes(data))
    run.refused(wheel, repr(EXT))


@pytest.mark.parametrize("damage", ["bytes", "crc"])
def test_damaged_data_member_stops_the_repair(
    fixtures: Fixtures,
    tmp_path: Path,
    run: Runner,
    damage: str,
) -> None:
    # relabel copies unchanged members without recompressing them; the copy must not carry
    # damaged bytes (or a RECORD line that no longer matches) into the repaired wheel.
    payload = os.urandom(200_000)
    members = ext_wheel(fixtures, **{"pkg/data.bin": payload})
    wheel = write_zip(wheel_path(tmp_path), members)
    if damage == "crc":
        patch_member(wheel, "pkg/data.bin", crc=zlib.crc32(payload) ^ 1)
    else:
        start, length = member_data_offset(wheel, "pkg/data.bin")
        data = bytearray(wheel.read_bytes())
        data[start + length // 2] ^= 0xFF
        wheel.write_bytes(bytes(data))
    run.refused(wheel, "'pkg/data.bin'", commands=("repair",))


# ---------------------------------------------------------------------------------------
# member names and kinds


@pytest.mark.parametrize(
    "name",
    [
        "../evil.py",
        "pkg/../../evil.py",
        "/tmp/relabel-hostile-evil.py",
        "pkg\\..\\..\\evil.py",
        "C:/evil.py",
        "pkg//evil.py",
        "./pkg/evil.py",
    ],
)
def test_member_names_escaping_the_wheel(
    fixtures: Fixtures,
    tmp_path: Path,
    run: Runner,
    name: str,
) -> None:
    sandbox = tmp_path / "a" / "b"
    sandbox.mkdir(parents=True)
    members = ext_wheel(fixtures, **{name: fixtures.libfoo.read_bytes()})
    wheel = write_zip(wheel_path(sandbox), members)
    before = tree(tmp_path)
    run.refused(wheel, "not a plain relative path", repr(name))
    # Only the (empty) output directory may appear; nothing lands beside or above the input.
    assert [p for p in tree(tmp_path) if p != "out"] == before
    assert not Path("/tmp/relabel-hostile-evil.py").exists()


def test_symlink_member(
    fixtures: Fixtures,
    tmp_path: Path,
    run: Runner,
) -> None:
    members = ext_wheel(fixtures, **{"pkg/libc.so.6": b"/etc/passwd"})
    entries = [
        Entry(n, d, mode=0o120777 if n == "pkg/libc.so.6" else 0o100644) for n, d in members.items()
    ]
    wheel = write_zip(wheel_path(tmp_path), entries)
    run.refused(wheel, "'pkg/libc.so.6' is a symbolic link")


def test_duplicate_member(
    fixtures: Fixtures,
    tmp_path: Path,
    run: Runner,
) -> None:
    members = ext_wheel(fixtures)
    entries = [Entry(n, d) for n, d in members.items()]
    entries.insert(1, Entry(EXT, fixtures.libbar.read_bytes()))
    wheel = write_zip(wheel_path(tmp_path), entries)
    run.refused(wheel, f"{EXT!r} appears more than once")


def test_file_that_is_also_a_directory(
    fixtures: Fixtures,
    tmp_path: Path,
    run: Runner,
) -> None:
    members = ext_wheel(fixtures, **{f"{EXT}/inner.so": fixtures.libfoo.read_bytes()})
    wheel = write_zip(wheel_path(tmp_path), members)
    run.refused(wheel, "needs it to be a directory")


@pytest.mark.parametrize(
    ("entry_kwargs", "fragment"),
    [
        ({"flag_bits": 0x1}, "encrypted"),
        ({"compress": zipfile.ZIP_BZIP2}, "compression method 12"),
    ],
    ids=["encrypted", "bzip2"],
)
def test_members_wheels_cannot_hold(
    fixtures: Fixtures,
    tmp_path: Path,
    run: Runner,
    entry_kwargs: dict[str, int],
    fragment: str,
) -> None:
    members = ext_wheel(fixtures)
    entries = [
        Entry(n, d, **(entry_kwargs if n == "pkg/__init__.py" else {}))  # type: ignore[arg-type]
        for n, d in members.items()
    ]
    wheel = write_zip(wheel_path(tmp_path), entries)
    run.refused(wheel, "'pkg/__init__.py'", fragment)


# ---------------------------------------------------------------------------------------
# WHEEL and RECORD


def _without(members: dict[str, bytes], name: str) -> dict[str, bytes]:
    return {n: d for n, d in members.items() if n != name}


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (lambda m: _without(m, f"{DIST}/WHEEL"), f"{DIST}/WHEEL is missing"),
        (lambda m: _without(m, f"{DIST}/RECORD"), f"{DIST}/RECORD is missing"),
        (
            lambda m: {**m, "other-1.0.dist-info/METADATA": b"x"},
            "exactly one .dist-info directory",
        ),
        (
            lambda m: {k.replace(DIST, "pkg"): v for k, v in m.items()},
            "exactly one .dist-info directory (found: none)",
        ),
    ],
    ids=["no-WHEEL", "no-RECORD", "two-dist-info", "no-dist-info"],
)
def test_wheel_layout(
    fixtures: Fixtures,
    tmp_path: Path,
    run: Runner,
    edit: object,
    fragment: str,
) -> None:
    members = edit(ext_wheel(fixtures))  # type: ignore[operator]
    wheel = write_zip(wheel_path(tmp_path), members)
    run.refused(wheel, fragment)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (b"Generator: tests\nRoot-Is-Purelib: false\n", "has no Wheel-Version"),
        (b"Wheel-Version: 2.0\n", "relabel reads version 1.x wheels only"),
        (b"Wheel-Version: banana\n", "invalid Wheel-Version: 'banana'"),
        (b"\x00\xff\xfe binary junk \x01\x02", "has no Wheel-Version"),
        (b"Wheel-Version: 1.0\nTag: not-a-tag-at-all-here\n", "invalid Tag line"),
    ],
    ids=["no-version", "version-2", "version-junk", "binary", "bad-tag"],
)
def test_malformed_wheel_metadata(
    fixtures: Fixtures,
    tmp_path: Path,
    run: Runner,
    text: bytes,
    fragment: str,
) -> None:
    members = ext_wheel(fixtures)
    members[f"{DIST}/WHEEL"] = text
    members[f"{DIST}/RECORD"] = record_for(members, DIST)
    wheel = write_zip(wheel_path(tmp_path), members)
    run.refused(wheel, fragment)


def _record_edit(members: dict[str, bytes], old: bytes, new: bytes) -> dict[str, bytes]:
    record = members[f"{DIST}/RECORD"]
    assert old in record
    return {**members, f"{DIST}/RECORD": record.replace(old, new)}


def _set_line(members: dict[str, bytes], name: str, digest: str, size: str) -> dict[str, bytes]:
    """RECORD with the hash and size columns of ``name`` replaced."""
    return {**members, f"{DIST}/RECORD": record_for(members, DIST, {name: (digest, size)})}


def _drop_line(members: dict[str, bytes], start: bytes) -> dict[str, bytes]:
    lines = members[f"{DIST}/RECORD"].splitlines(keepends=True)
    kept = b"".join(line for line in lines if not line.startswith(start))
    return {**members, f"{DIST}/RECORD": kept}


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (lambda m: _record_edit(m, b"pkg/__init__.py,", b"pkg/__init__.py\n"), "malformed line"),
        (lambda m: _record_edit(m, b"pkg/__init__.py", b"pkg/\xff\xfe.py"), "not UTF-8"),
        (lambda m: _drop_line(m, b"pkg/__init__.py,"), "does not list 'pkg/__init__.py'"),
        (
            lambda m: _record_edit(
                m, b"pkg/__init__.py,", b"pkg/ghost.py,sha256=x,1\npkg/__init__.py,"
            ),
            "lists 'pkg/ghost.py', which the wheel does not hold",
        ),
        (lambda m: _record_edit(m, b",0\n", b",7\n"), "says member 'pkg/__init__.py' is 7 bytes"),
        (
            lambda m: _set_line(m, "pkg/__init__.py", "md5=1B2M2Y8AsgTpgAmY7PhCfg", "0"),
            "with 'md5'",
        ),
        (lambda m: _set_line(m, "pkg/__init__.py", "", "0"), "no hash for member"),
    ],
    ids=["columns", "encoding", "unlisted", "absent", "size", "weak-hash", "no-hash"],
)
def test_malformed_record(
    fixtures: Fixtures,
    tmp_path: Path,
    run: Runner,
    edit: object,
    fragment: str,
) -> None:
    members = edit(ext_wheel(fixtures))  # type: ignore[operator]
    wheel = write_zip(wheel_path(tmp_path), members)
    run.refused(wheel, fragment)


def test_record_hash_of_an_elf_member_that_does_not_match(
    fixtures: Fixtures,
    tmp_path: Path,
    run: Runner,
) -> None:
    # Same size, other bytes: only the hash tells. relabel reads ELF members anyway.
    members = ext_wheel(fixtures)
    data = bytearray(members[EXT])
    data[-1] ^= 0xFF
    members[EXT] = bytes(data)
    wheel = write_zip(wheel_path(tmp_path), members)
    run.refused(wheel, f"{EXT!r} does not match its hash")


def test_record_hash_of_a_data_member_that_does_not_match(
    fixtures: Fixtures,
    tmp_path: Path,
    run: Runner,
) -> None:
    # An unchanged member is copied as it is stored; its RECORD line would be reused as it
    # is, and the repaired wheel would carry a wrong RECORD line. relabel refuses instead.
    members = ext_wheel(fixtures, **{"pkg/data.txt": b"the real content\n"})
    record = members[f"{DIST}/RECORD"]
    members["pkg/data.txt"] = b"the fake content\n"
    members[f"{DIST}/RECORD"] = record
    wheel = write_zip(wheel_path(tmp_path), members)
    run.refused(wheel, "'pkg/data.txt' does not match its hash", commands=("repair",))


# ---------------------------------------------------------------------------------------
# sizes that lie, and zip bombs


def test_metadata_claiming_a_huge_size_is_not_read(
    fixtures: Fixtures,
    tmp_path: Path,
    run: Runner,
) -> None:
    wheel = write_zip(wheel_path(tmp_path), ext_wheel(fixtures))
    patch_member(wheel, f"{DIST}/RECORD", file_size=0xFFFFFFF0)
    run.refused(wheel, "claims 4294967280 bytes")


@pytest.mark.parametrize("lie", ["smaller", "larger"])
@pytest.mark.parametrize("member", ["pkg/data.bin", EXT, f"{DIST}/WHEEL"])
def test_member_whose_declared_size_lies(
    fixtures: Fixtures,
    tmp_path: Path,
    run: Runner,
    lie: str,
    member: str,
) -> None:
    members = ext_wheel(fixtures, **{"pkg/data.bin": b"\0" * 5_000_000})
    wheel = write_zip(wheel_path(tmp_path), members)
    size = len(members[member])
    patch_member(wheel, member, file_size=size // 2 if lie == "smaller" else size * 2)
    # The RECORD size check may speak first; any refusal naming the member will do.
    message = run.refused(wheel, commands=("repair",))
    assert repr(member) in message or member in message


def test_overlapping_members_are_refused(fixtures: Fixtures, tmp_path: Path, run: Runner) -> None:
    # The overlap trick: many directory entries reading the same deflate stream, each one
    # inflating to the full size, so a small file holds terabytes.
    blob = b"\0" * 1_000_000
    members = ext_wheel(fixtures, **{"pkg/a.bin": blob, "pkg/b.bin": blob})
    wheel = write_zip(wheel_path(tmp_path), members)
    with zipfile.ZipFile(wheel) as zf:
        first = zf.getinfo("pkg/a.bin").header_offset
    patch_member(wheel, "pkg/b.bin", header_offset=first)
    run.refused(wheel, "overlap in the zip file")


def test_zip_bomb_is_streamed_not_loaded(fixtures: Fixtures, tmp_path: Path, run: Runner) -> None:
    # 256 MiB of zeros deflate to a quarter MiB. The repair inflates the member to check it,
    # a chunk at a time; it must never hold it in memory.
    chunk, count = b"\0" * (1 << 20), 256
    digest = hashlib.sha256()
    for _ in range(count):
        digest.update(chunk)
    members = ext_wheel(fixtures, **{"pkg/bomb.bin": b""})
    members[f"{DIST}/RECORD"] = record_for(
        members,
        DIST,
        {"pkg/bomb.bin": (str(archive.Hash.of(digest.digest())), str(len(chunk) * count))},
    )
    wheel = wheel_path(tmp_path)
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o100644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            if name != "pkg/bomb.bin":
                zf.writestr(info, data)
                continue
            with zf.open(info, "w") as stream:
                for _ in range(count):
                    stream.write(chunk)
    assert wheel.stat().st_size < 2 << 20

    reads: list[int] = []
    original = zipfile.ZipExtFile.read

    def spy(self: zipfile.ZipExtFile, n: int | None = -1) -> bytes:
        if self.name == "pkg/bomb.bin":  # type: ignore[attr-defined]
            reads.append(-1 if n is None else n)
        return original(self, n)

    tracemalloc.start()
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(zipfile.ZipExtFile, "read", spy)
            assert main(["repair", "-w", str(run.out), str(wheel)]) == 0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20, f"peak {peak >> 20} MiB"
    assert all(0 <= n <= 4 << 20 for n in reads), reads
    [result] = run.out.iterdir()
    with zipfile.ZipFile(result) as zf:
        assert zf.getinfo("pkg/bomb.bin").file_size == len(chunk) * count
        assert zf.testzip() is None
    assert tree(run.scratch) == []


# ---------------------------------------------------------------------------------------
# what the path names


def test_input_that_is_a_directory(run: Runner, tmp_path: Path) -> None:
    wheel = wheel_path(tmp_path)
    wheel.mkdir()
    run.refused(wheel, "not a regular file")


def test_input_that_is_a_fifo_does_not_hang(run: Runner, tmp_path: Path) -> None:
    wheel = wheel_path(tmp_path)
    os.mkfifo(wheel)
    with time_limit(20):
        run.refused(wheel, "not a regular file")


def test_input_that_does_not_exist(run: Runner, tmp_path: Path) -> None:
    run.refused(wheel_path(tmp_path), "no such file")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_input(
    fixtures: Fixtures,
    tmp_path: Path,
    run: Runner,
) -> None:
    wheel = write_zip(wheel_path(tmp_path), ext_wheel(fixtures))
    wheel.chmod(0)
    try:
        run.refused(wheel, "Permission denied")
    finally:
        wheel.chmod(stat.S_IRUSR | stat.S_IWUSR)


def test_unreadable_input_simulated(
    fixtures: Fixtures, tmp_path: Path, run: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same refusal where chmod cannot stop the reader (root): opening the wheel fails."""
    wheel = write_zip(wheel_path(tmp_path), ext_wheel(fixtures))
    real_open = Path.open
    refused = []

    def guarded_open(self: Path, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        if self.resolve() == wheel.resolve():
            refused.append(self)
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)  # type: ignore[arg-type]

    # Path.open, not io.open: before 3.11 pathlib bound io.open when it was imported
    monkeypatch.setattr(Path, "open", guarded_open)
    run.refused(wheel, "Permission denied")
    assert refused  # the wheel really was opened, and refused


def test_output_that_cannot_be_written_is_one_message(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    target = blocker / "demo-1.0-py3-none-any.whl"
    with (
        pytest.raises(OutputError, match=r"cannot write .*a-file") as excinfo,
        archive.atomic_output(target) as stream,
    ):
        stream.write(b"x")
    assert "writable" in str(excinfo.value)
    assert blocker.read_text() == "not a directory"


def test_output_directory_that_is_a_file_through_the_command(
    fixtures: Fixtures, tmp_path: Path
) -> None:
    wheel = make_wheel(tmp_path / "in", {EXT: fixtures.ext_foo})
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    proc = run_relabel("repair", "-w", blocker, wheel, tmpdir=tmp_path / "tmp")
    assert_clean_failure(proc, "cannot write", str(blocker))


# ---------------------------------------------------------------------------------------
# the real command: status 2, no traceback, nothing written


@pytest.mark.parametrize("command", ["show", "repair"])
def test_command_reports_broken_wheels_without_traceback(
    fixtures: Fixtures, tmp_path: Path, command: str
) -> None:
    members = ext_wheel(fixtures, **{"../../escape.so": fixtures.libfoo.read_bytes()})
    wheel = write_zip(wheel_path(tmp_path), members)
    out = tmp_path / "out"
    args = ["show", wheel] if command == "show" else ["repair", "-w", out, wheel]
    proc = run_relabel(*args, tmpdir=tmp_path / "tmp")
    assert_clean_failure(proc, wheel.name, "'../../escape.so'", "not a plain relative path")
    assert tree(out) == []
    assert tree(tmp_path / "tmp") == []
    assert not (tmp_path.parent / "escape.so").exists()


def test_valid_wheel_still_repairs(
    fixtures: Fixtures,
    tmp_path: Path,
    run: Runner,
) -> None:
    """The control case: the checks above do not refuse a healthy wheel."""
    members = ext_wheel(fixtures, **{"pkg/data.bin": os.urandom(100_000)})
    wheel = write_zip(wheel_path(tmp_path), members)
    result, _ = run.repaired(wheel)
    assert_valid_wheel(result)
    assert tree(run.scratch) == []
    with WheelFile(result) as again:
        assert again.members["pkg/data.bin"].size == 100_000


def test_wheel_error_names_the_member(tmp_path: Path) -> None:
    members = wheel_members({"pkg/x.so": b"one", "pkg/__init__.py": b""})
    entries = [Entry(n, d) for n, d in members.items()]
    entries.insert(1, Entry("pkg/x.so", b"two"))
    wheel = write_zip(wheel_path(tmp_path), entries)
    with pytest.raises(WheelError) as excinfo, WheelFile(wheel):
        pass
    assert excinfo.value.member == "pkg/x.so"
    assert str(excinfo.value) == f"{wheel.name}: member 'pkg/x.so' appears more than once"


# ---------------------------------------------------------------------------------------
# wheels from the wild that installers accept


def installs(wheel: Path, where: Path) -> None:
    """The wheel installs: with ``installer`` checking every RECORD line (signatures
    included) where it can (0.8 and later; the last release for Python 3.9 is 0.7, which
    installs without the check), else with pip into a target directory."""
    try:
        import installer
    except ImportError:
        cmd = ["-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(where)]
    else:
        new = Version(installer.__version__) >= Version("0.8")
        validate = ["--validate-record", "all"] if new else []
        cmd = ["-m", "installer", *validate, "--destdir", str(where)]
    proc = subprocess.run(
        [sys.executable, *cmd, str(wheel)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert any(p.name == "RECORD" for p in where.rglob("RECORD")), tree(where)


def command(run: Runner, *args: object) -> tuple[int, str]:
    """``relabel ARGS`` in-process: the status and everything printed."""
    code = main([str(a) for a in args])
    captured = run.capsys.readouterr()
    return code, captured.out + captured.err


def tag_lines(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as zf:
        text = zf.read(f"{DIST}/WHEEL").decode()
    return {line[len("Tag: ") :] for line in text.splitlines() if line.startswith("Tag: ")}


def name_tags(wheel: Path) -> set[str]:
    return {str(t) for t in parse_wheel_filename(wheel.name)[3]}


def test_wheel_metadata_with_a_blank_line_before_the_tags(
    fixtures: Fixtures, tmp_path: Path, run: Runner
) -> None:
    # As old scikit-build wrote it: the Tag lines after a blank line.
    text = (
        "Wheel-Version: 1.0\nGenerator: skbuild 0.11.1\nRoot-Is-Purelib: false\n"
        f"\nTag: {DEFAULT_TAG}\n\n"
    )
    members = wheel_members(
        {EXT: fixtures.ext_foo.read_bytes(), "pkg/__init__.py": b""}, wheel_text=text
    )
    wheel = write_zip(wheel_path(tmp_path), members)
    code, message = command(run, "show", wheel)
    assert code == 1, message  # read, and found to need a repair
    assert "after `relabel repair`:      manylinux_2_5_x86_64" in message
    result, message = run.repaired(wheel)
    assert tag_lines(result) == name_tags(result)
    assert "manylinux_2_5_x86_64" in result.name
    with zipfile.ZipFile(result) as zf:
        assert b"\n\n" not in zf.read(f"{DIST}/WHEEL").rstrip(b"\n")
    assert_valid_wheel(result)
    installs(result, tmp_path / "installed")


def test_vendor_renamed_wheel_is_accepted_with_a_note(
    fixtures: Fixtures, tmp_path: Path, run: Runner
) -> None:
    # A linux_x86_64 build published as manylinux1_x86_64: installers go by the name.
    members = ext_wheel(fixtures)
    tag = DEFAULT_TAG.replace("linux_x86_64", "manylinux1_x86_64")
    wheel = write_zip(wheel_path(tmp_path, tag=tag), members)
    code, message = command(run, "show", wheel)
    assert code == 1
    assert "note: the tags of the file name" in message
    assert main(["show", "--json", str(wheel)]) in (0, 1)
    report = json.loads(run.capsys.readouterr().out)
    [note] = [n for n in report["notes"] if "differ from the Tag lines" in n]
    assert f"({tag})" in note
    assert f"({DEFAULT_TAG})" in note
    code, message = command(run, "repair", "-w", run.out, wheel)
    assert code == 0, message
    [result] = run.out.iterdir()
    assert "note: the tags of the file name" in message
    assert "linux_x86_64" not in result.name.replace("manylinux", "")
    assert tag_lines(result) == name_tags(result)
    assert_valid_wheel(result)
    installs(result, tmp_path / "installed")


def test_vendor_renamed_claim_the_audit_contradicts_is_dropped(
    fixtures: Fixtures, tmp_path: Path, run: Runner
) -> None:
    # _newsym needs GLIBC_2.34; a name claiming manylinux1 must not survive a repair.
    members = wheel_members({f"pkg/_newsym{EXT_SUFFIX}": fixtures.ext_new.read_bytes()})
    tag = DEFAULT_TAG.replace("linux_x86_64", "manylinux1_x86_64")
    wheel = write_zip(wheel_path(tmp_path, tag=tag), members)
    result, _ = run.repaired(wheel)
    tags = platforms(result)
    assert tags, result.name
    assert not tags & {"manylinux1_x86_64", "manylinux_2_5_x86_64", "linux_x86_64"}
    assert all(p.startswith(("manylinux_2_3", "manylinux_2_4")) for p in tags)
    assert tag_lines(result) == name_tags(result)
    installs(result, tmp_path / "installed")


def test_pure_wheel_renamed_to_one_python(tmp_path: Path, run: Runner) -> None:
    # A py2.py3 build published as py2-none-any.
    text = (
        "Wheel-Version: 1.0\nGenerator: bdist_wheel\nRoot-Is-Purelib: true\n"
        "Tag: py2-none-any\nTag: py3-none-any\n\n"
    )
    members = wheel_members({"pkg/__init__.py": b"x = 1\n"}, wheel_text=text)
    wheel = write_zip(wheel_path(tmp_path, tag="py2-none-any"), members)
    code, message = command(run, "show", "--allow-pure-python-wheel", wheel)
    assert code == 0
    assert "note: the tags of the file name (py2-none-any) differ" in message
    result, message = run.repaired(wheel, "--allow-pure-python-wheel")
    assert result.read_bytes() == wheel.read_bytes()  # passed through
    pytest.importorskip("installer")  # pip refuses py2 tags on Python 3
    installs(result, tmp_path / "installed")


def test_renamed_wheel_whose_elf_contradicts_its_name(
    fixtures: Fixtures, tmp_path: Path, run: Runner
) -> None:
    # WHEEL says x86_64, the file name aarch64: the name rules, and the x86_64 ELF file
    # contradicts it.
    members = ext_wheel(fixtures)
    tag = DEFAULT_TAG.replace("linux_x86_64", "manylinux2014_aarch64")
    wheel = write_zip(wheel_path(tmp_path, tag=tag), members)
    run.refused(wheel, "built for x86_64, the wheel is aarch64")


@pytest.mark.parametrize("listed", [True, False], ids=["listed", "unlisted"])
@pytest.mark.parametrize("signature", ["RECORD.jws", "RECORD.p7s"])
def test_record_signatures_are_accepted_and_dropped_by_a_repair(
    fixtures: Fixtures, tmp_path: Path, run: Runner, signature: str, listed: bool
) -> None:
    members = ext_wheel(fixtures)
    record = members.pop(f"{DIST}/RECORD")
    members[f"{DIST}/{signature}"] = b'{"signatures": []}'
    if listed:  # with an empty hash, as the wheel spec allows
        members[f"{DIST}/RECORD"] = record_for(members, DIST, {f"{DIST}/{signature}": ("", "")})
    else:
        members[f"{DIST}/RECORD"] = record
    wheel = write_zip(wheel_path(tmp_path), members)
    code, message = command(run, "show", wheel)
    assert code == 1, message
    assert f"note: {DIST}/{signature} is a signature of RECORD" in message
    code, message = command(run, "repair", "-w", run.out, wheel)
    assert code == 0, message
    assert "leaves this signature out" in message
    [result] = run.out.iterdir()
    with zipfile.ZipFile(result) as zf:
        assert not [n for n in zf.namelist() if n.startswith(f"{DIST}/RECORD.")]
    assert_valid_wheel(result)
    installs(result, tmp_path / "installed")


ODD_NAMES = ("pkg/a,b.txt", 'pkg/quo"te.txt', "pkg/line\nfeed.txt", "pkg/carriage\rreturn.txt")


def test_odd_member_names_are_quoted_in_the_record_written(
    fixtures: Fixtures, tmp_path: Path, run: Runner
) -> None:
    members = ext_wheel(fixtures, **{n: n.encode() for n in ODD_NAMES})
    # quote every field, so the input RECORD does not depend on relabel's quoting
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)
    for name, data in members.items():
        if name != f"{DIST}/RECORD":
            writer.writerow((name, str(archive.Hash.of(hashlib.sha256(data).digest())), len(data)))
    writer.writerow((f"{DIST}/RECORD", "", ""))
    members[f"{DIST}/RECORD"] = out.getvalue().encode()
    wheel = write_zip(wheel_path(tmp_path), members)
    result, _ = run.repaired(wheel)
    with zipfile.ZipFile(result) as zf:
        text = zf.read(f"{DIST}/RECORD").decode()
        names = set(zf.namelist())
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert {r[0] for r in rows} == names
    assert '"pkg/carriage\rreturn.txt"' in text
    with WheelFile(result) as again:  # relabel reads back what it wrote
        assert set(ODD_NAMES) <= set(again.members)
        assert all(again.members[n].record_hash for n in ODD_NAMES)


def test_odd_member_names_round_trip_through_an_installer(
    fixtures: Fixtures, tmp_path: Path, run: Runner
) -> None:
    # installer splits RECORD with str.splitlines before parsing it, which breaks a
    # quoted CR or LF: the names it can read are tested here.
    names = [n for n in ODD_NAMES if "\r" not in n and "\n" not in n]
    members = ext_wheel(fixtures, **{n: n.encode() for n in names})
    wheel = write_zip(wheel_path(tmp_path), members)
    result, _ = run.repaired(wheel)
    pytest.importorskip("installer")
    installs(result, tmp_path / "installed")
    found = {p.name for p in (tmp_path / "installed").rglob("*")}
    assert {n.split("/")[1] for n in names} <= found


@pytest.mark.parametrize("name", ["../x.so", "pkg.libs/../../x.so", "pkg.libs/.", "/abs.so"])
def test_names_relabel_writes_pass_the_member_name_check(tmp_path: Path, name: str) -> None:
    with pytest.raises(WheelError, match="not a plain relative path"):
        archive.check_member_name("demo.whl", name)
    wheel = make_wheel(tmp_path / "in", {"pkg/a.py": b"a"})
    lib = tmp_path / "lib.so"
    lib.write_bytes(b"lib")
    out = tmp_path / "out"
    with WheelFile(wheel) as wf, pytest.raises(WheelError, match=re.escape(repr(name))):
        archive.write_wheel(
            wf,
            out / wheel.name,
            replaced={},
            added={name: lib},
            wheel_text=wf.read(f"{DIST}/WHEEL"),
        )
    assert tree(out) == []


def test_new_member_that_clashes_with_a_file_is_refused(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "in", {"pkg/a.py": b"a"})
    lib = tmp_path / "lib.so"
    lib.write_bytes(b"lib")
    with WheelFile(wheel) as wf, pytest.raises(WheelError, match="both a file and a directory"):
        archive.write_wheel(
            wf,
            tmp_path / "out" / wheel.name,
            replaced={},
            added={"pkg/a.py/lib.so": lib},
            wheel_text=wf.read(f"{DIST}/WHEEL"),
        )
    archive.check_member_name("demo.whl", "pkg.libs/libfoo-12345678.so.1")  # a plain name
