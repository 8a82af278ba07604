"""The dynamic array and the tables ld.so reads through it, and the section cross-check.

This module owns PT_DYNAMIC (read at its address, up to DT_NULL), the dynamic string
table, the version needs (DT_VERNEED, walked as ``_dl_check_map_versions`` walks them)
and the check that section headers, where a file has them, place the dynamic tables where
the dynamic array does. It reads tables through :class:`~relabel.elf.layout.Image`, so
only what the PT_LOAD segments map from the file; symbols and their hash tables are
:mod:`relabel.elf.symbols`' business, and nothing here decides what a value means for a
wheel.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from relabel.elf.gabi import (
    DT_NEEDED,
    DT_NULL,
    DT_RPATH,
    DT_RUNPATH,
    DT_SONAME,
    DT_STRSZ,
    DT_STRTAB,
    DT_SYMTAB,
    DT_VERNEED,
    DT_VERSYM,
    PT_DYNAMIC,
    SHF_ALLOC,
    SHF_COMPRESSED,
    SHT_DYNAMIC,
    SHT_DYNSYM,
    SHT_GNU_VERNEED,
    SHT_GNU_VERSYM,
    SHT_NOBITS,
    SHT_STRTAB,
    SYM_SIZE,
)
from relabel.elf.layout import MalformedError, Strings

if TYPE_CHECKING:
    from relabel.elf.layout import File, Image, Layout, Section, Segment


# parsed once and taken apart, never compared nor shown: no generated __eq__ and __repr__
@dataclass(eq=False, repr=False)
class Dynamic:
    """The dynamic array, read through PT_DYNAMIC up to DT_NULL."""

    segment: Segment
    needed: list[int]  # string table offsets, in order
    #: single-valued tags; a repeated tag keeps its last value, as ld.so's
    #: elf_get_dynamic_info does
    tags: dict[int, int]
    #: how many DT_RPATH and DT_RUNPATH entries the array holds (tags keeps one of each)
    search_paths: int = 0


def read_dynamic(file: File, layout: Layout, image: Image) -> Dynamic | None:
    """None when there is no PT_DYNAMIC: nothing is loaded for the file (a static
    executable, an object file)."""
    found = [s for s in layout.segments if s.type == PT_DYNAMIC]
    if not found:
        return None
    if len(found) > 1:
        raise MalformedError(f"there are {len(found)} PT_DYNAMIC segments instead of one")
    segment = found[0]
    entry = 16 if layout.elf_class == 64 else 8
    if segment.filesz < entry:
        raise MalformedError("the PT_DYNAMIC segment is empty")
    # ld.so reads the array at p_vaddr; tools (and patchelf) at p_offset: both must agree.
    offset, _ = image.locate(segment.vaddr, "the dynamic array (PT_DYNAMIC)")
    if offset != segment.offset:
        raise MalformedError(
            "PT_DYNAMIC's address and file offset point at different bytes"
            f" ({segment.vaddr:#x} maps to {offset:#x}, not {segment.offset:#x})"
        )
    data = image.read(segment.vaddr, segment.filesz, "the dynamic array (PT_DYNAMIC)")
    fmt = layout.endian + ("qQ" if layout.elf_class == 64 else "iI")
    needed: list[int] = []
    tags: dict[int, int] = {}
    search_paths = 0
    for tag, value in struct.iter_unpack(fmt, data[: len(data) // entry * entry]):
        if tag == DT_NULL:
            return Dynamic(segment, needed, tags, search_paths)
        if tag == DT_NEEDED:
            needed.append(value)
        else:
            tags[tag] = value
            search_paths += tag in (DT_RPATH, DT_RUNPATH)
    # ld.so would read on past the segment: what it finds there is not knowable from here.
    raise MalformedError("the dynamic array has no DT_NULL end within its PT_DYNAMIC segment")


def dynamic_strings(image: Image, dynamic: Dynamic) -> Strings:
    tags = dynamic.tags
    if DT_STRTAB not in tags:
        if dynamic.needed or tags.keys() & {
            DT_SONAME,
            DT_RPATH,
            DT_RUNPATH,
            DT_SYMTAB,
            DT_VERNEED,
        }:
            raise MalformedError("the dynamic array names strings but has no DT_STRTAB")
        return Strings(b"", ".dynstr")
    if DT_STRSZ not in tags:
        raise MalformedError("the dynamic array has DT_STRTAB but no DT_STRSZ")
    data = image.read(tags[DT_STRTAB], tags[DT_STRSZ], "the dynamic string table (DT_STRTAB)")
    return Strings(data, ".dynstr")


_VERNEED = "HHIII"  # vn_version vn_cnt vn_file vn_aux vn_next (16 bytes in both classes)
_VERNAUX = "IHHII"  # vna_hash vna_flags vna_other vna_name vna_next


def version_needs(
    file: File, layout: Layout, image: Image, tags: dict[int, int], names: Strings
) -> tuple[list[tuple[str, tuple[str, ...]]], dict[int, tuple[str, str]]]:
    """The DT_VERNEED chains, walked as ld.so's _dl_check_map_versions walks them: from
    entry to entry by ``vn_next`` and ``vna_next`` until a zero (the counts are not
    consulted). Every entry must lie in the table's segment (and in its section, when
    section headers say where it is); one visited twice is malformed."""
    address = tags.get(DT_VERNEED)
    if not address:
        return [], {}
    offset, limit = image.locate(address, "the version needs (DT_VERNEED)")
    what = ".gnu.version_r has an entry outside the loaded segment or in a loop"
    for section in layout.sections:
        if section.type == SHT_GNU_VERNEED and section.addr == address:
            limit = min(limit, section.size)
            what = ".gnu.version_r has an entry outside the section or in a loop"
    window = _Window(file, offset, limit)
    need_fmt, aux_fmt = layout.endian + _VERNEED, layout.endian + _VERNAUX
    needs: list[tuple[str, tuple[str, ...]]] = []
    index: dict[int, tuple[str, str]] = {}
    seen: set[int] = set()

    def visit(at: int, fmt: str) -> tuple[int, ...]:
        if at in seen or not window.has(at, 16):
            raise MalformedError(what)
        seen.add(at)
        return struct.unpack_from(fmt, window.data, at)

    where = 0
    while True:
        _, _, file_name, aux, following = visit(where, need_fmt)
        library = names.get(file_name)
        versions: list[str] = []
        at = where + aux
        while True:
            _, _, other, name, step = visit(at, aux_fmt)
            version = names.get(name)
            versions.append(version)
            index[other & 0x7FFF] = (version, library)
            if not step:
                break
            at += step
        needs.append((library, tuple(versions)))
        if not following:
            return needs, index
        where += following


class _Window:
    """Bytes of a table whose size is only known by walking it: read a page at first,
    more (doubling) when an entry lies further, never past ``limit``."""

    def __init__(self, file: File, offset: int, limit: int) -> None:
        self.file = file
        self.offset = offset
        self.limit = limit
        self.data = file.pread(offset, min(limit, 4096))

    def has(self, at: int, size: int) -> bool:
        end = at + size
        if end > self.limit:
            return False
        if end > len(self.data):
            self.data = self.file.pread(self.offset, min(self.limit, max(end, 2 * len(self.data))))
        return end <= len(self.data)


# ---------------------------------------------------------------------------------------
# section headers: a cross-check only


def check_sections(file: File, layout: Layout, dynamic: Dynamic | None, count: int | None) -> None:
    """Section headers, where the file has them, must describe the dynamic tables where
    the dynamic segment puts them. patchelf edits a file through its sections (and then
    points PT_DYNAMIC at its ``.dynamic``), so a file whose sections say something else
    than its segments would be audited on one set of tables and repaired on another."""
    expected: dict[int, int | None] = {}
    if dynamic is not None:
        tags = dynamic.tags
        expected = {
            SHT_DYNAMIC: dynamic.segment.vaddr,
            SHT_DYNSYM: tags.get(DT_SYMTAB),
            SHT_GNU_VERSYM: tags.get(DT_VERSYM),
            SHT_GNU_VERNEED: tags.get(DT_VERNEED),
        }
    for section in layout.sections:
        if section.type not in (SHT_DYNAMIC, SHT_DYNSYM, SHT_GNU_VERSYM, SHT_GNU_VERNEED):
            continue
        _data_in_file(file, section, section.name)
        if section.type != SHT_GNU_VERSYM:
            linked = _linked(layout, section)
            _data_in_file(file, linked, linked.name)
            if dynamic is not None and linked.addr != dynamic.tags.get(DT_STRTAB):
                raise _disagree(section.name + "'s string table", "DT_STRTAB")
        if dynamic is None:
            if layout.segments and section.flags & SHF_ALLOC:
                raise MalformedError(f"the file has a {section.name} section but no PT_DYNAMIC")
            continue
        if section.addr != expected[section.type]:
            raise _disagree(section.name, "the dynamic array")
        if section.type == SHT_DYNAMIC and section.offset != dynamic.segment.offset:
            raise _disagree(section.name, "PT_DYNAMIC")
        if (
            section.type == SHT_DYNSYM
            and count is not None
            and section.size // SYM_SIZE[layout.elf_class] != count
        ):
            raise _disagree(section.name + "'s length", "the symbol hash table")


def _disagree(what: str, other: str) -> MalformedError:
    return MalformedError(
        f"the section headers place {what} elsewhere than {other} does; the dynamic loader"
        " reads one and patchelf would rewrite the other"
    )


def _data_in_file(file: File, section: Section, what: str) -> None:
    if section.type == SHT_NOBITS:
        return
    if section.flags & SHF_COMPRESSED:
        raise MalformedError(f"{what} is marked compressed")
    if section.offset + section.size > file.size:
        raise MalformedError(f"{what} runs past the end of the file (truncated?)")


def _linked(layout: Layout, section: Section) -> Section:
    index = section.link
    if not 0 < index < len(layout.sections):
        raise MalformedError(f"{section.name} links to section {index}, which does not exist")
    linked = layout.sections[index]
    if linked.type != SHT_STRTAB:
        raise MalformedError(f"{section.name} links to section {index}, not a string table")
    return linked
