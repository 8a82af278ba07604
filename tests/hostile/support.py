"""Shared helpers of the hostile-input tests: crafted zips, garbled ELF files, fake tools.

Everything here writes into directories the tests give it; nothing touches the checkout.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import signal
import struct
import subprocess
import sys
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tests import installed
from tests.conftest import PY_TAG, record_hash, run_module

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence
    from types import FrameType

RELABEL = (sys.executable, "-m", "relabel")
DEFAULT_TAG = f"{PY_TAG}-{PY_TAG}-linux_x86_64"


# ---------------------------------------------------------------------------------------
# running relabel


def clean_env(tmpdir: Path | None = None, **extra: str) -> dict[str, str]:
    """The environment of a child relabel: no RELABEL_* of the caller, its own TMPDIR."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELABEL_")}
    env.pop("SOURCE_DATE_EPOCH", None)
    if tmpdir is not None:
        tmpdir.mkdir(parents=True, exist_ok=True)
        env["TMPDIR"] = str(tmpdir)
    env.update(extra)
    return env


def run_relabel(
    *args: str | os.PathLike[str],
    tmpdir: Path | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
    check_installed: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run the command; a successful ``repair`` goes through the installed-layout check
    unless ``check_installed`` is false."""
    full_env = clean_env(tmpdir, **(env or {}))
    proc = run_module("relabel", *args, env=full_env, cwd=cwd, timeout=timeout)
    if proc.returncode == 0 and check_installed:
        installed.check_command([str(a) for a in args], proc.stdout, proc.stderr, full_env, cwd)
    return proc


def default_signals() -> None:
    """In a child, before exec: SIGINT and SIGTERM as a terminal delivers them, even where
    this test run inherited them ignored (a background job of a non-interactive shell
    ignores SIGINT), so that Python installs its KeyboardInterrupt handler."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def start_relabel(
    *args: str | os.PathLike[str], tmpdir: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*RELABEL, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(tmpdir, **(env or {})),
        preexec_fn=default_signals,  # noqa: PLW1509 - no threads in the test process here
    )


def assert_clean_failure(
    proc: subprocess.CompletedProcess[str], *fragments: str, status: int = 2
) -> str:
    """A failure reported as one relabel message with ``status``; returns stderr."""
    assert proc.returncode == status, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("relabel: error: "), proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr, (fragment, proc.stderr)
    return proc.stderr


def tree(directory: Path) -> list[str]:
    """Every path under ``directory`` (relative, sorted), hidden ones included."""
    if not directory.exists():
        return []
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


# ---------------------------------------------------------------------------------------
# wheels


@dataclass(frozen=True)
class Entry:
    """One zip entry, written exactly as given (no validation at all)."""

    name: str
    data: bytes
    mode: int = 0o100644  # st_mode, file type bits included
    flag_bits: int = 0
    compress: int = zipfile.ZIP_DEFLATED


def wheel_members(
    files: Mapping[str, bytes],
    *,
    name: str = "demo",
    version: str = "1.0",
    tag: str = DEFAULT_TAG,
    wheel_text: str | None = None,
) -> dict[str, bytes]:
    """Members of a valid wheel, RECORD last: edit the dict, then :func:`write_zip` it."""
    dist_info = f"{name}-{version}.dist-info"
    members = dict(files)
    members[f"{dist_info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    )
    if wheel_text is None:
        wheel_text = f"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: false\nTag: {tag}\n\n"
    members[f"{dist_info}/WHEEL"] = wheel_text.encode()
    members[f"{dist_info}/RECORD"] = record_for(members, dist_info)
    return members


def record_for(
    members: Mapping[str, bytes],
    dist_info: str,
    overrides: Mapping[str, tuple[str, str]] | None = None,
) -> bytes:
    """RECORD text for ``members``; ``overrides`` gives (hash, size) columns for some."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for member, data in members.items():
        if member in (overrides or {}):
            writer.writerow((member, *(overrides or {})[member]))
        elif member != f"{dist_info}/RECORD":
            writer.writerow((member, record_hash(data), len(data)))
    writer.writerow((f"{dist_info}/RECORD", "", ""))
    return out.getvalue().encode()


def write_zip(path: Path, entries: Sequence[Entry] | Mapping[str, bytes]) -> Path:
    """Write ``entries`` as a zip, duplicates, links and odd names included."""
    if not isinstance(entries, (list, tuple)):
        entries = [Entry(n, d) for n, d in entries.items()]  # type: ignore[union-attr]
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Duplicate name": wanted here
        with zipfile.ZipFile(path, "w") as zf:
            for entry in entries:
                info = zipfile.ZipInfo(entry.name, date_time=(2020, 1, 1, 0, 0, 0))
                info.external_attr = (entry.mode & 0xFFFF) << 16
                info.compress_type = entry.compress
                zf.writestr(info, entry.data)
    if any(e.flag_bits for e in entries):
        # zipfile writes the local headers before flag_bits could be changed: patch them.
        for entry in entries:
            if entry.flag_bits:
                patch_member(path, entry.name, flag_bits=entry.flag_bits)
    return path


def wheel_path(directory: Path, *, name: str = "demo", tag: str = DEFAULT_TAG) -> Path:
    return directory / f"{name}-1.0-{tag}.whl"


def patch_member(
    path: Path,
    member: str,
    *,
    file_size: int | None = None,
    compress_size: int | None = None,
    crc: int | None = None,
    flag_bits: int | None = None,
    header_offset: int | None = None,
) -> None:
    """Overwrite fields of ``member`` in both its local and its central header (the
    ``header_offset`` where its local header is said to be: central directory only)."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        start = zf.start_dir  # type: ignore[attr-defined]
    offset = start
    found = False
    while data[offset : offset + 4] == b"PK\x01\x02":
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", data, offset + 28)
        name = bytes(data[offset + 46 : offset + 46 + name_len]).decode("utf-8")
        (local,) = struct.unpack_from("<I", data, offset + 42)
        if name == member:
            found = True
            if header_offset is not None:
                struct.pack_into("<I", data, offset + 42, header_offset)
            for base, flags_at, crc_at in ((offset, 8, 16), (local, 6, 14)):
                if flag_bits is not None:
                    old = struct.unpack_from("<H", data, base + flags_at)[0]
                    struct.pack_into("<H", data, base + flags_at, old | flag_bits)
                if crc is not None:
                    struct.pack_into("<I", data, base + crc_at, crc)
                if compress_size is not None:
                    struct.pack_into("<I", data, base + crc_at + 4, compress_size)
                if file_size is not None:
                    struct.pack_into("<I", data, base + crc_at + 8, file_size)
        offset += 46 + name_len + extra_len + comment_len
    assert found, member
    path.write_bytes(bytes(data))


def member_data_offset(path: Path, member: str) -> tuple[int, int]:
    """(offset, length) of the stored bytes of ``member`` in the zip file."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(member)
    raw = path.read_bytes()
    name_len, extra_len = struct.unpack_from("<HH", raw, info.header_offset + 26)
    return info.header_offset + 30 + name_len + extra_len, info.compress_size


def grafted(wheel: Path) -> list[str]:
    """The members under ``<dist>.libs/``: what a repair grafted."""
    with zipfile.ZipFile(wheel) as zf:
        return sorted(n for n in zf.namelist() if n.split("/", 1)[0].endswith(".libs"))


def assert_valid_wheel(path: Path) -> None:
    """A complete zip whose RECORD lists every member with its true hash and size."""
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None
        names = zf.namelist()
        [record_name] = [n for n in names if n.endswith(".dist-info/RECORD")]
        rows = list(csv.reader(io.StringIO(zf.read(record_name).decode())))
        listed = {r[0]: (r[1], r[2]) for r in rows if r}
        assert set(listed) == set(names), set(listed) ^ set(names)
        for name in names:
            if name == record_name:
                continue
            data = zf.read(name)
            assert listed[name] == (record_hash(data), str(len(data))), name


# ---------------------------------------------------------------------------------------
# ELF files (64-bit little endian, as the fixtures are)

#: ELF64 header fields: name -> (offset, size)
ELF64_HEADER = {
    "EI_CLASS": (4, 1),
    "EI_DATA": (5, 1),
    "EI_VERSION": (6, 1),
    "EI_OSABI": (7, 1),
    "e_type": (16, 2),
    "e_machine": (18, 2),
    "e_version": (20, 4),
    "e_phoff": (32, 8),
    "e_shoff": (40, 8),
    "e_flags": (48, 4),
    "e_ehsize": (52, 2),
    "e_phentsize": (54, 2),
    "e_phnum": (56, 2),
    "e_shentsize": (58, 2),
    "e_shnum": (60, 2),
    "e_shstrndx": (62, 2),
}
#: ELF64 section header fields: name -> (offset inside the header, size)
ELF64_SECTION = {
    "sh_name": (0, 4),
    "sh_type": (4, 4),
    "sh_flags": (8, 8),
    "sh_addr": (16, 8),
    "sh_offset": (24, 8),
    "sh_size": (32, 8),
    "sh_link": (40, 4),
    "sh_info": (44, 4),
    "sh_addralign": (48, 8),
    "sh_entsize": (56, 8),
}


def poke(data: bytes, offset: int, size: int, value: int) -> bytes:
    """``data`` with ``size`` bytes at ``offset`` replaced by ``value`` (little endian)."""
    out = bytearray(data)
    if offset + size <= len(out):
        out[offset : offset + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
    return bytes(out)


def set_header(data: bytes, field: str, value: int) -> bytes:
    offset, size = ELF64_HEADER[field]
    return poke(data, offset, size, value)


def sections(data: bytes) -> dict[str, int]:
    """Section name -> offset of its section header, for a well-formed ELF64 file."""
    (shoff,) = struct.unpack_from("<Q", data, 40)
    shnum, shstrndx = struct.unpack_from("<HH", data, 60)
    names_at = struct.unpack_from("<Q", data, shoff + shstrndx * 64 + 24)[0]
    found = {}
    for index in range(shnum):
        header = shoff + index * 64
        (name,) = struct.unpack_from("<I", data, header)
        end = data.index(b"\0", names_at + name)
        found[data[names_at + name : end].decode()] = header
    return found


def set_section(data: bytes, section: str, field: str, value: int) -> bytes:
    offset, size = ELF64_SECTION[field]
    return poke(data, sections(data)[section] + offset, size, value)


def section_field(data: bytes, section: str, field: str) -> int:
    offset, size = ELF64_SECTION[field]
    at = sections(data)[section] + offset
    return int.from_bytes(data[at : at + size], "little")


# ---------------------------------------------------------------------------------------
# processes and time


def fake_tool(path: Path, body: str) -> Path:
    """An executable shell script (the tests' stand-in for patchelf)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


class Hang(BaseException):
    """Raised by :func:`time_limit`. A BaseException, like KeyboardInterrupt: the code under
    test turns OSError (TimeoutError included) into its own errors, and must not be able to
    turn a hang into an accepted refusal."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Fail with :class:`Hang` instead of hanging (SIGALRM: main thread only)."""

    def expire(signum: int, frame: FrameType | None) -> None:
        raise Hang(f"took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
