"""The layout of an ELF file: its header, section headers and program headers, and the
addresses its PT_LOAD segments map (gABI, "ELF Header" and on).

This module owns the bounded access to the file (:class:`File`: positional reads that
never pass its end), the checked header tables (:func:`read_layout`), string tables under
a budget (:class:`Strings`) and the translation of addresses to file offsets the way
``mmap`` lays the segments out (:class:`Image`). Every later loop of the reader is bounded
by the counts checked here, so by the file's size.

It reads only what it is asked to and interprets no table: the dynamic array, symbols and
notes are read by their own modules. Structural problems are raised as
:class:`MalformedError`, which :func:`relabel.elf.read_elf` turns into an ``ElfError``.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import BinaryIO

from relabel.elf.gabi import (
    E_MACHINE_NAMES,
    E_TYPE_NAMES,
    EI_OSABI_NAMES,
    ELF_MAGIC,
    PN_XNUM,
    PT_LOAD,
    SHF_COMPRESSED,
    SHN_XINDEX,
)


class MalformedError(Exception):
    """A structural problem found while parsing; becomes an ElfError."""


class File:
    """Positional reads that never go past the end of the file, nor allocate beyond it."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self._fd = stream.fileno()
        self.size = os.fstat(self._fd).st_size

    def pread(self, offset: int, size: int) -> bytes:
        if offset < 0 or size <= 0 or offset >= self.size:
            return b""
        return os.pread(self._fd, min(size, self.size - offset), offset)


#: after e_ident: type machine version entry phoff shoff flags ehsize phentsize phnum
#: shentsize shnum shstrndx
_HEADER = {64: "HHIQQQIHHHHHH", 32: "HHIIIIIHHHHHH"}
#: name type flags addr offset size link info addralign entsize
_SHDR = {64: "IIQQQQIIQQ", 32: "IIIIIIIIII"}
_PHDR_SIZE = {64: 56, 32: 32}
#: type flags offset vaddr paddr filesz memsz align (ELF64), type offset vaddr paddr filesz
#: memsz flags align (ELF32)
_PHDR = {64: "IIQQQQQQ", 32: "IIIIIIII"}


# internal, parsed once and taken apart: never compared, shown nor assigned to, so it gets
# no generated __eq__, __repr__ or frozen guards (each costs start-up time)
@dataclass(eq=False, repr=False)
class Section:
    """One section header, its name read from the section name table."""

    index: int
    name: str
    type: int
    flags: int
    addr: int
    offset: int
    size: int
    link: int


# internal, parsed once and taken apart: never compared, shown nor assigned to, so it gets
# no generated __eq__, __repr__ or frozen guards (each costs start-up time)
@dataclass(eq=False, repr=False)
class Segment:
    """One program header (the fields relabel reads, alike in both classes)."""

    type: int
    offset: int
    vaddr: int
    filesz: int
    memsz: int
    align: int


# internal, parsed once and taken apart: never compared, shown nor assigned to, so it gets
# no generated __eq__, __repr__ or frozen guards (each costs start-up time)
@dataclass(eq=False, repr=False)
class Layout:
    """The ELF header's facts and its two header tables, checked against the file."""

    endian: str  # struct byte order character
    elf_class: int
    machine: str  # e_machine, EI_OSABI and e_type by their gABI names
    osabi: str
    elf_type: str
    flags: int  # e_flags
    sections: tuple[Section, ...]
    segments: tuple[Segment, ...]


def read_layout(file: File) -> Layout:
    """The header tables, checked: inside the file, entry sizes as the spec says. Every
    later loop is bounded by these counts, so by the file size."""
    size = file.size
    head = file.pread(0, 64)
    if head[:4] != ELF_MAGIC:
        raise MalformedError("not an ELF file (no ELF magic number)")
    if len(head) < 16 or head[4] not in (1, 2) or head[5] not in (1, 2):
        raise MalformedError("invalid ELF identification (class or byte order)")
    elf_class = 64 if head[4] == 2 else 32
    endian = "<" if head[5] == 1 else ">"
    fmt = endian + _HEADER[elf_class]
    if len(head) < 16 + struct.calcsize(fmt):
        raise MalformedError(f"the file is {size} bytes long, shorter than an ELF header")
    fields = struct.unpack_from(fmt, head, 16)
    phoff, shoff = fields[4], fields[5]
    phentsize, phnum, shentsize, shnum, shstrndx = fields[8:13]
    shdr_fmt = endian + _SHDR[elf_class]
    shdr = struct.calcsize(shdr_fmt)

    raw: list[tuple[int, ...]] = []
    if shoff:
        if shentsize != shdr:
            raise MalformedError(f"section headers are {shentsize} bytes each instead of {shdr}")
        first = file.pread(shoff, shdr)
        if len(first) < shdr:
            raise MalformedError("the section header table starts past the end of the file")
        zero = struct.unpack(shdr_fmt, first)
        # Extended numbering (gABI): counts that do not fit the header live in section 0.
        count = shnum or zero[5]
        if shoff + count * shdr > size:
            raise MalformedError(
                f"the section header table ({count} entries) runs past the end of the"
                f" file ({size} bytes)"
            )
        raw = list(struct.iter_unpack(shdr_fmt, file.pread(shoff, count * shdr)))
        if shstrndx == SHN_XINDEX:
            shstrndx = zero[6]
        if count and shstrndx >= count:
            raise MalformedError(f"the section name table index {shstrndx} is out of range")
        if phnum == PN_XNUM:
            phnum = zero[7]
    sections = _named_sections(file, raw, shstrndx)

    segments: tuple[Segment, ...] = ()
    if phnum:
        if phentsize != _PHDR_SIZE[elf_class]:
            raise MalformedError(
                f"program headers are {phentsize} bytes each instead of {_PHDR_SIZE[elf_class]}"
            )
        if phoff + phnum * phentsize > size:
            raise MalformedError(
                f"the program header table ({phnum} entries) runs past the end of the"
                f" file ({size} bytes)"
            )
        table = file.pread(phoff, phnum * phentsize)
        if elf_class == 64:
            segments = tuple(
                Segment(v[0], v[2], v[3], v[5], v[6], v[7])
                for v in struct.iter_unpack(endian + _PHDR[64], table)
            )
        else:
            segments = tuple(
                Segment(v[0], v[1], v[2], v[4], v[5], v[7])
                for v in struct.iter_unpack(endian + _PHDR[32], table)
            )
    machine, flags = fields[1], fields[6]
    return Layout(
        endian,
        elf_class,
        E_MACHINE_NAMES.get(machine, str(machine)),
        EI_OSABI_NAMES.get(head[7], str(head[7])),
        E_TYPE_NAMES.get(fields[0], str(fields[0])),
        flags,
        sections,
        segments,
    )


def _named_sections(file: File, raw: list[tuple[int, ...]], shstrndx: int) -> tuple[Section, ...]:
    names: Strings | None = None
    if raw and shstrndx:
        table = raw[shstrndx]
        names = Strings(
            table_data(file, table[2], table[4], table[5], "the section name table"), ""
        )
    return tuple(
        Section(
            index,
            names.get(values[0], default="") if names else "",
            values[1],
            values[2],
            values[3],
            values[4],
            values[5],
            values[6],
        )
        for index, values in enumerate(raw)
    )


def table_data(file: File, flags: int, offset: int, size: int, what: str) -> bytes:
    if flags & SHF_COMPRESSED:
        # gABI: SHF_COMPRESSED never applies to allocated sections, which these all are.
        raise MalformedError(f"{what} is marked compressed")
    if offset + size > file.size:
        raise MalformedError(f"{what} runs past the end of the file (truncated?)")
    return file.pread(offset, size)


class Strings:
    """A string table: bounded lookups, one ``str`` per distinct offset, and a budget on
    the total length handed out, so that a table of long overlapping names cannot make
    relabel scan or allocate quadratically."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.what = what
        self._cache: dict[int, str] = {}
        self._budget = 8 * len(data) + (1 << 20)

    def get(self, offset: int, default: str | None = None) -> str:
        cached = self._cache.get(offset)
        if cached is not None:
            return cached
        end = self.data.find(b"\0", offset) if offset < len(self.data) else -1
        if end < 0:
            if default is not None:
                return default
            raise MalformedError(f"a name lies outside {self.what}")
        self._budget -= end - offset
        if self._budget < 0:
            raise MalformedError(f"the names in {self.what} overlap beyond any real file")
        text = self.data[offset:end].decode("utf-8", "replace")
        self._cache[offset] = text
        return text

    def offsets_of(self, name: str) -> set[int]:
        """Every offset at which ``name`` can be read (whole, or as the tail of a longer
        string: linkers share suffixes)."""
        needle = name.encode("utf-8") + b"\0"
        found: set[int] = set()
        at = self.data.find(needle)
        while at >= 0:
            found.add(at)
            at = self.data.find(needle, at + 1)
        return found


class Image:
    """Addresses to file offsets through the PT_LOAD segments, as ``mmap`` lays them out.

    Tables must lie in the part of a segment backed by the file: the rest is zero-filled
    memory, where no linker puts a table.
    """

    def __init__(self, file: File, segments: tuple[Segment, ...]) -> None:
        self.file = file
        self.loads = [s for s in segments if s.type == PT_LOAD]

    def locate(self, addr: int, what: str) -> tuple[int, int]:
        """(file offset, bytes readable from there) of ``addr``."""
        for segment in self.loads:
            if segment.vaddr <= addr < segment.vaddr + segment.filesz:
                offset = segment.offset + (addr - segment.vaddr)
                available = min(segment.vaddr + segment.filesz - addr, self.file.size - offset)
                if available <= 0:
                    raise MalformedError(f"{what} lies past the end of the file (truncated?)")
                return offset, available
        raise MalformedError(
            f"{what} (address {addr:#x}) is not in the file part of any PT_LOAD segment"
        )

    def read(self, addr: int, size: int, what: str) -> bytes:
        offset, available = self.locate(addr, what)
        if size > available:
            raise MalformedError(
                f"{what} runs past the end of its PT_LOAD segment or of the file (truncated?)"
            )
        return self.file.pread(offset, size)
