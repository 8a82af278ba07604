"""The ``include`` setting: libraries the wheel's files load with dlopen.

Each is found as the loader would find it from the wheel's files (or at the path given),
copied into the scratch tree under ``<dist>.libs/<soname>`` and audited like the wheel's
own files. Nothing outside the scratch tree is written.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from relabel import archive
from relabel.archive import check_member_name
from relabel.errors import LibraryError, LibraryNotFoundError, ScratchError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from relabel.elf import ElfInfo
    from relabel.resolve import Resolver


def _plain_soname(soname: str, library: str) -> str:
    """``soname`` when it can be a file name in ``<dist>.libs/``; else a clear refusal."""
    if soname in ("", ".", "..") or any(c in soname for c in "/\\\0"):
        raise LibraryError(
            library,
            f"its SONAME {soname!r} is not a plain file name, so it cannot name the copy"
            " put into the wheel; leave it out of include, or give it a proper soname"
            " (patchelf --set-soname)",
        )
    return soname


def _copy_library(source: str, dest: Path, tree: Path) -> None:
    """Copy an included library into the scratch tree; a source that cannot be read is
    the library's problem, a copy that cannot be written the scratch directory's."""
    try:
        reader = Path(source).open("rb")  # noqa: SIM115 -- closed below, errors told apart
    except OSError as exc:
        raise LibraryError(source, f"cannot be read ({exc.strerror or exc})") from None
    with reader:
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            writer = dest.open("wb")
        except OSError as exc:
            raise ScratchError(str(tree), exc.strerror or str(exc)) from None
        with writer:
            while True:
                try:
                    chunk = reader.read(archive.CHUNK)
                except OSError as exc:
                    raise LibraryError(source, f"cannot be read ({exc.strerror or exc})") from None
                if not chunk:
                    break
                try:
                    writer.write(chunk)
                except OSError as exc:
                    raise ScratchError(str(tree), exc.strerror or str(exc)) from None
    try:
        dest.chmod(0o755)
    except OSError as exc:
        raise ScratchError(str(tree), exc.strerror or str(exc)) from None


def place(
    include: Sequence[str], resolver: Resolver, tree: Path, libs_dir: str, infos: dict[str, ElfInfo]
) -> list[tuple[str, str]]:
    """Copy the ``include`` libraries into the tree under ``libs_dir/<soname>``; each
    copy's record joins ``infos``. (wheel member, real path) of every copy."""
    if not include:
        return []
    reference = next(iter(infos.values()))
    # dlopen from any of the wheel's files searches that file's directories
    search = list(
        dict.fromkeys(
            d for name, info in infos.items() for d in resolver.search_dirs(str(tree / name), info)
        )
    )
    placed: list[tuple[str, str]] = []
    missing: list[tuple[str, str, Sequence[str]]] = []
    for wanted in include:
        if "/" in wanted:
            # a path given by the user (not a DT_NEEDED): looked up in its own directory
            where = Path(wanted).resolve()
            dirs: Sequence[str] = [str(where.parent)]
            real, found = resolver.find(where.name, reference, dirs)
        else:
            dirs = search
            real, found = resolver.find(wanted, reference, dirs)
        if real is None or found is None:
            missing.append((wanted, "include (loaded with dlopen)", dirs))
            continue
        soname = _plain_soname(found.soname or Path(wanted).name, real)
        member = f"{libs_dir}/{soname}"
        check_member_name(real, member)
        _copy_library(real, tree / member, tree)
        # the copy is the file resolve parsed: only its name in the wheel is new
        infos[member] = dataclasses.replace(found, path=member)
        placed.append((member, real))
    if missing:
        raise LibraryNotFoundError(missing)
    return placed
