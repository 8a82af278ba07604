"""Which musl release line a wheel needs, read from the names its files take from libc.

musl has no symbol versions, so nothing in a binary says "musl 1.2". What does say it is a
reference to a name that musl 1.2 exports and 1.1 does not: the 64-bit ``time_t`` symbols
that musl 1.2's headers redirect to on 32-bit targets (``__clock_gettime64``,
``__stat_time64``...) and the functions added in 1.2.x (``qsort_r``, ``statx``...). Such a
file fails to load on musl 1.1, so its wheel needs ``musllinux_1_2``. A name musl does not
export at all (the Python C API, another library's) says nothing either way.

The names come from ``_data/musl_symbols.json``, generated from musl's own sources by
``backend/generate/musl_symbols.py``. Everything here is pure except :func:`host_version`,
which on a musl host (only there) asks the host's dynamic loader for its version, as
auditwheel does, so that a build on an old Alpine cannot claim a newer musllinux.
"""

from __future__ import annotations

import functools
import re
import sys
from typing import TYPE_CHECKING, Any

from relabel import _resources
from relabel._process import ask
from relabel.arch import is_musl_interpreter, is_musl_libc
from relabel.elf import read_elf
from relabel.errors import ElfError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from relabel.elf import ElfInfo

__all__ = [
    "HostMusl",
    "added_symbols",
    "detect_host",
    "host_version",
    "links_musl",
    "needs_from_musl",
    "newest_line",
    "parse_loader_banner",
    "policy_findings",
]

Release = tuple[int, int]  # a release line, as in the musllinux tag: (1, 2)
HostMusl = tuple[tuple[int, int, int], str]  # (version, loader path)


def _data() -> dict[str, Any]:
    return _resources.load("musl_symbols.json")


@functools.cache
def added_symbols(arch: str) -> Mapping[str, str]:
    """Symbol -> first release exporting it (``"1.2.3"``), for every name musl exports on
    ``arch`` since 1.2 and not in 1.1. Empty for an architecture without musl 1.1."""
    added: dict[str, dict[str, list[str]]] = _data()["added"]
    if arch not in added:
        return {}
    return {
        name: release
        for group in (added["*"], added[arch])
        for release, names in group.items()
        for name in names
    }


def _line(release: str) -> Release:
    major, minor, *_ = release.split(".")
    return int(major), int(minor)


def newest_line() -> Release:
    """The newest release line the data knows (the musllinux policies stop there too)."""
    releases: list[str] = _data()["releases"]
    return _line(releases[-1].lstrip("v"))


def links_musl(info: ElfInfo) -> bool:
    """Whether the file loads musl's libc (its Alpine soname, its plain one, or its loader)."""
    return any(is_musl_libc(n) for n in info.needed) or (
        info.interpreter is not None and is_musl_interpreter(info.interpreter)
    )


def _blind(info: ElfInfo) -> bool:
    """The file loads musl, yet no symbol it takes from outside could be read. (A file that
    loads nothing and takes nothing, a static or static-pie executable, needs no musl: its
    dynamic array is read through PT_DYNAMIC, so "nothing" there is a fact.)"""
    return not info.undefined and links_musl(info)


def needs_from_musl(
    infos: Iterable[tuple[str, ElfInfo]], arch: str
) -> dict[Release, list[tuple[str, str]]]:
    """Release line -> every (file, symbol) of ``infos`` that needs it, newer than 1.1 only.

    ``infos`` pairs a name to show (the wheel member, or the library to be grafted) with its
    record. Weak references do not count: musl's loader binds a missing weak symbol to
    null, and a weak declaration is how code says it checks for that at run time (Rust's
    standard library references ``gettid`` this way in wheels published as musllinux_1_1).
    """
    added = added_symbols(arch)
    out: dict[Release, list[tuple[str, str]]] = {}
    for file, info in infos:
        strong = {s.name for s in info.undefined if s.version is None and not s.weak}
        for name in sorted(strong & added.keys()):
            out.setdefault(_line(added[name]), []).append((file, name))
    return out


def policy_findings(
    version: Release,
    infos: Iterable[tuple[str, ElfInfo]],
    arch: str,
    host: HostMusl | None = None,
) -> list[tuple[str, str | None, str]]:
    """Why the musllinux policy of release line ``version`` does not fit, as
    (file, symbol or None, sentence) triples: each symbol of a newer musl; each file that
    loads musl but whose symbols cannot be read (no evidence means the newest line, never
    an older one); and the host's musl when it is older than the policy."""
    files = list(infos)
    out: list[tuple[str, str | None, str]] = []
    added = added_symbols(arch)
    for line, pairs in sorted(needs_from_musl(files, arch).items()):
        if line > version:
            out.extend(
                (file, symbol, f"{symbol} (musl {added[symbol]} and later; not in musl 1.1)")
                for file, symbol in pairs
            )
    if version < newest_line():
        out.extend(
            (file, None, "no dynamic symbol could be read, so the musl release it needs is unknown")
            for file, info in files
            if _blind(info)
        )
    if host is not None and host[0][:2] < version:
        (major, minor, patch), loader = host
        out.append(
            (
                loader,
                None,
                f"this machine's musl is {major}.{minor}.{patch}, older than "
                f"musllinux_{version[0]}_{version[1]} needs",
            )
        )
    return out


_BANNER = re.compile(r"^Version (\d+)\.(\d+)\.(\d+)", re.MULTILINE)


def parse_loader_banner(text: str) -> tuple[int, int, int] | None:
    """The version in what musl's dynamic loader prints when run without a program."""
    match = _BANNER.search(text)
    if match is None:
        return None
    major, minor, patch = (int(g) for g in match.groups())
    return major, minor, patch


def _run_loader(loader: str) -> str:
    # the interpreter of the running Python, printing its banner (it exits 1)
    proc = ask([loader], timeout=10)
    return "" if proc is None else proc.stderr


def detect_host(executable: str, run: Callable[[str], str] = _run_loader) -> HostMusl | None:
    """The musl version of the C library ``executable`` runs on, or None when it is not
    musl (a glibc host: no subprocess is started) or cannot be told."""
    try:
        interpreter = read_elf(executable).interpreter if executable else None
    except ElfError:
        return None
    if interpreter is None or not is_musl_interpreter(interpreter):
        return None
    version = parse_loader_banner(run(interpreter))
    return None if version is None else (version, interpreter)


@functools.cache
def host_version() -> HostMusl | None:
    """This machine's musl, judged by the interpreter of the running Python (a glibc host
    may have a musl loader installed beside it, as Debian's musl package does; that does not
    make it a musl host)."""
    return detect_host(sys.executable)
