"""The ``glibc-floor`` setting: its values, the glibc releases the floor's data covers, and
whether a wheel's files give lowering anything to do.

Cheap to import on purpose: the configuration checks the setting and every run asks
:func:`may_lower` before :mod:`relabel.floor` (the decisions, and the symbol tables behind
them) and :mod:`relabel.verneed` (the second ELF reader) are loaded. Most wheels need
nothing above the oldest release covered and never load either. Nothing here reads a file
but the floor's data file, and that only when the release list is asked for.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from relabel import _resources

if TYPE_CHECKING:
    from collections.abc import Iterable

    from relabel.elf import ElfInfo

__all__ = [
    "AUTO",
    "OFF",
    "OLDEST",
    "Version",
    "data",
    "glibc_version",
    "may_lower",
    "opt_in_groups",
    "parse_setting",
    "parse_version",
    "releases",
    "show",
]

Version = tuple[int, ...]

OFF = "off"
AUTO = "auto"

_GLIBC = re.compile(r"GLIBC_(\d+(?:\.\d+)+)")
#: version names that carry no symbol but need a glibc release
_MARKERS = {
    "GLIBC_ABI_DT_RELR": (2, 36),
    "GLIBC_ABI_GNU2_TLS": (2, 42),
    "GLIBC_ABI_GNU_TLS": (2, 42),
}
_POLICY = re.compile(r"manylinux_(\d+)_(\d+)")
#: the oldest release the data covers, ``releases()[0]`` (the tests hold the two equal): a
#: run asks :func:`may_lower` without parsing the data file, the largest of the package
OLDEST: Version = (2, 17)


def parse_version(text: str) -> Version:
    return tuple(int(p) for p in text.split("."))


def show(version: Version) -> str:
    return ".".join(map(str, version))


def glibc_version(name: str) -> Version | None:
    """``GLIBC_2.2.5`` -> (2, 2, 5); version markers map to the release that defines them."""
    m = _GLIBC.fullmatch(name)
    if m:
        return parse_version(m.group(1))
    return _MARKERS.get(name)


def data() -> dict[str, Any]:
    """The floor's facts (``_data/glibc_floor.json``, see
    ``backend/generate/glibc_symbols.py``)."""
    return _resources.load("glibc_floor.json")


def releases() -> list[Version]:
    """The glibc releases the data covers, oldest first."""
    return [parse_version(r) for r in data()["arches"]["x86_64"]["releases"]]


def opt_in_groups() -> list[str]:
    """The names ``glibc-floor-allow`` accepts."""
    return sorted({v[1] for v in data()["opt_in"].values()})


def parse_setting(value: str) -> Version | str:
    """``off``/``auto``, or the glibc release of ``2.17`` / ``manylinux_2_17`` /
    ``manylinux2014``; raises ValueError with a sentence otherwise."""
    text = value.strip()
    if text in (OFF, AUTO):
        return text
    aliases = {"manylinux2014": (2, 17), "manylinux2010": (2, 12), "manylinux1": (2, 5)}
    m = _POLICY.fullmatch(text)
    if m:
        version: Version = (int(m.group(1)), int(m.group(2)))
    elif text in aliases:
        version = aliases[text]
    elif re.fullmatch(r"\d+\.\d+", text):
        version = parse_version(text)
    else:
        raise ValueError(
            f"{value!r} is not 'off', 'auto', a glibc release such as '2.17' or a policy such"
            " as 'manylinux_2_28'"
        )
    known = releases()
    if version not in known:
        raise ValueError(
            f"glibc {show(version)} is outside what relabel can lower to"
            f" ({show(known[0])} to {show(known[-1])})"
        )
    return version


def may_lower(infos: Iterable[ElfInfo]) -> bool:
    """Whether any file names a glibc version (or version marker) newer than the oldest
    release covered: only then can lowering reach anything, and only then is
    :func:`relabel.floor.for_wheel` worth loading. Read from the same version needs
    (every Vernaux entry, used by a symbol or not) that the floor reads."""
    return any(
        (version := glibc_version(name)) is not None and version > OLDEST
        for info in infos
        for _library, names in info.version_needs
        for name in names
    )
