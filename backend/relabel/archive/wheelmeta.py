"""WHEEL: the wheel's own metadata file, parsed, checked and written.

Owns the ``Key: value`` format of WHEEL, the Wheel-Version rule and which Tag lines a
repair goes by. It works on bytes and header lists: it must not open files or know about
zip archives, and never touches METADATA (frontends compare it with the metadata they
prepared).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from packaging.tags import parse_tag

from relabel.errors import WheelError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from packaging.tags import Tag

#: WHEEL is read whole into memory; beyond this size it is not real.
WHEEL_LIMIT = 1 << 20

Headers = list[tuple[str, str]]


def parse_headers(data: bytes) -> Headers:
    """``Key: value`` lines (RFC 822 style, as WHEEL uses), continuation lines folded in.

    Every header line counts, also after a blank line: older generators (scikit-build)
    wrote a blank line between the first headers and the ``Tag`` lines, and installers,
    which never read the tags from WHEEL, accept such wheels. A few lines of our own
    instead of the email package, whose import costs more than relabel spends on a small
    wheel.
    """
    headers: Headers = []
    for line in data.decode("utf-8", "replace").splitlines():
        if not line.strip():
            continue
        if line[0] in " \t" and headers:
            key, value = headers[-1]
            headers[-1] = (key, f"{value} {line.strip()}")
            continue
        key, sep, value = line.partition(":")
        if sep and key.strip():
            headers.append((key.strip(), value.strip()))
    return headers


def header(headers: Sequence[tuple[str, str]], key: str) -> str:
    """The value of the first header ``key`` (case-insensitive), or ``""``."""
    return next((v for k, v in headers if k.lower() == key.lower()), "")


def check_version(headers: Sequence[tuple[str, str]], wheel: str, where: str) -> None:
    """Refuse a WHEEL without a Wheel-Version relabel can read (1.x)."""
    version = header(headers, "Wheel-Version").strip()
    if not version:
        raise WheelError(wheel, f"{where} has no Wheel-Version")
    parts = version.split(".")
    if not all(part.isdigit() for part in parts):
        raise WheelError(wheel, f"{where} has an invalid Wheel-Version: {version!r}")
    if int(parts[0]) != 1:
        # The wheel spec: a newer major version means "do not try to read this".
        raise WheelError(
            wheel, f"{where} says Wheel-Version {version}; relabel reads version 1.x wheels only"
        )


def tag_lines(
    headers: Sequence[tuple[str, str]], name_tags: frozenset[Tag], wheel: str, where: str
) -> tuple[list[str], str | None]:
    """The Tag lines a repair goes by, and a note when they are not WHEEL's own: where
    WHEEL's tags differ from those of the file name (``name_tags``), the file name's."""
    lines = [v for k, v in headers if k.lower() == "tag"]
    declared: set[Tag] = set()
    for line in lines:
        try:
            declared |= parse_tag(line.strip())
        except ValueError:
            raise WheelError(wheel, f"{where} has an invalid Tag line: {line!r}") from None
    if declared == set(name_tags):
        return lines, None
    # Vendors rename wheels (a linux_x86_64 build published as manylinux1_x86_64; a
    # py2.py3 build as py2-none-any). Installers read the tags of the file name only.
    in_name = ", ".join(sorted(map(str, name_tags)))
    in_wheel = ", ".join(sorted(map(str, declared))) or "none"
    note = (
        f"the tags of the file name ({in_name}) differ from the Tag lines of {where}"
        f" ({in_wheel}); relabel goes by the file name, as installers do, and a repair"
        " writes Tag lines that match the name it writes"
    )
    return sorted(map(str, name_tags)), note


def render_wheel_metadata(original: Sequence[tuple[str, str]], tags: Sequence[str]) -> bytes:
    """WHEEL with its ``Tag`` lines replaced by ``tags``; every other header kept in order."""
    lines: list[str] = []
    tags_written = False
    for key, value in original:
        if key.lower() == "tag":
            if not tags_written:
                lines.extend(f"Tag: {t}" for t in tags)
                tags_written = True
            continue
        lines.append(f"{key}: {value}")
    if not tags_written:
        lines.extend(f"Tag: {t}" for t in tags)
    return ("\n".join(lines) + "\n\n").encode("utf-8")
