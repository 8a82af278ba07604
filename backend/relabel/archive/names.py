"""Member names: what a path inside a wheel may be.

Owns the one check every name passes, whether relabel reads it from a wheel or writes it
into one (a plain relative path), and the layout rule that one path cannot be both a file
and a directory. Pure: it looks at names only, never at files or member data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from relabel.errors import WheelError

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Iterator


def check_member_name(wheel: str, name: str) -> None:
    """Refuse a member name that is not a plain relative path inside the wheel.

    Applied to every name read from a wheel and to every name relabel writes into one
    (``wheel`` is the file name the error names).
    """
    parts = name.split("/")
    if (
        name.startswith("/")
        or "\\" in name
        or "\0" in name
        or any(p in ("..", ".", "") for p in parts)
        or (len(name) > 1 and name[1] == ":")
    ):
        raise WheelError(
            wheel,
            f"member name {name!r} is not a plain relative path inside the wheel;"
            " refusing to process it",
            member=name,
        )


def parents(name: str) -> Iterator[str]:
    """The directories above member ``name``, outermost first (``a``, ``a/b`` for ``a/b/c``)."""
    parts = name.split("/")
    return ("/".join(parts[:depth]) for depth in range(1, len(parts)))


def check_no_file_is_a_directory(wheel: str, members: Collection[str]) -> None:
    """``a`` and ``a/b`` cannot both be files: no installer could lay such a wheel out."""
    for name in members:
        parent = next((p for p in parents(name) if p in members), None)
        if parent is not None:
            raise WheelError(
                wheel,
                f"member {parent!r} is a file, but member {name!r} needs it to be a directory",
                member=name,
            )


def check_new_names(wheel: str, members: Collection[str], names: Iterable[str]) -> None:
    """Names relabel adds to ``members`` pass the checks of names it reads: a plain
    relative path, and neither a file where the wheel has a directory nor below one of its
    files."""
    directories = {parent for name in members for parent in parents(name)}
    for name in names:
        if name in members:
            continue
        check_member_name(wheel, name)
        clash = (
            name if name in directories else next((p for p in parents(name) if p in members), None)
        )
        if clash is not None:
            raise WheelError(
                wheel,
                f"new member {name!r} clashes with {clash!r}: one path cannot be both a file and"
                " a directory",
                member=name,
            )
