"""The dynamic symbol table: how long it is, its undefined symbols, the module's init.

This module owns DT_SYMTAB and what bounds it (DT_HASH, DT_GNU_HASH, or the relocations
when no hash table covers a symbol), DT_VERSYM's link from a symbol to the version it
needs, and the search for a Python module's init function. Big tables are read column-wise
with byte operations, never one entry at a time; every count is checked against the file's
size first. It reads through :class:`~relabel.elf.layout.Image` and knows nothing of
policies: which versions or symbols matter is decided elsewhere.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from relabel.elf.gabi import (
    DT_GNU_HASH,
    DT_HASH,
    DT_JMPREL,
    DT_PLTREL,
    DT_PLTRELSZ,
    DT_REL,
    DT_RELA,
    DT_RELASZ,
    DT_RELSZ,
    DT_SYMENT,
    DT_SYMTAB,
    SHT_DYNSYM,
    STB_WEAK,
    STT_FUNC,
    STT_NOTYPE,
    SYM_SIZE,
)
from relabel.elf.layout import MalformedError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from relabel.elf.layout import File, Image, Layout, Strings

_PY_INIT_PREFIXES = (("PyInit_", 3), ("init", 2), ("_cffi_pypyinit_", 2))
_PYFPE_SYMBOLS = frozenset({"PyFPE_jbuf", "PyFPE_dummy", "PyFPE_counter"})


# read by attribute, never compared nor shown: no generated __eq__ and __repr__
@dataclass(frozen=True, eq=False, repr=False)
class SymbolNeed:
    """An undefined dynamic symbol and, when versioned, the version and library it binds to."""

    name: str
    version: str | None  # e.g. "GLIBC_2.17"
    library: str | None  # the verneed file, e.g. "libc.so.6"
    weak: bool


# internal, parsed once and taken apart: never compared, shown nor assigned to, so it gets
# no generated __eq__, __repr__ or frozen guards (each costs start-up time)
@dataclass(eq=False, repr=False)
class Symbols:
    """What the dynamic symbol table says: the ElfInfo fields about symbols."""

    undefined: tuple[SymbolNeed, ...] = ()
    python_init: str | None = None
    pyfpe: bool = False
    ucs2: bool = False


def symbol_count(
    file: File, layout: Layout, image: Image, tags: dict[int, int], machine: str
) -> tuple[int, bool]:
    """How many entries of DT_SYMTAB matter, and whether that is the table's exact length.

    DT_HASH's nchain is the length. DT_GNU_HASH gives it through the end of its last
    chain, unless no symbol is hashed (a library exporting nothing): then the symbols
    the loader ever looks at are those its relocations name. Section headers are the
    last resort before that and never overrule a hash table.
    """
    if DT_SYMTAB not in tags:
        return 0, True
    syment = tags.get(DT_SYMENT, SYM_SIZE[layout.elf_class])
    if syment != SYM_SIZE[layout.elf_class]:
        raise MalformedError(f"DT_SYMENT is {syment}, not {SYM_SIZE[layout.elf_class]}")
    if tags.get(DT_HASH):
        # 64-bit s390 (like Alpha) has 8-byte hash table entries
        wide = machine == "EM_S390" and layout.elf_class == 64
        fmt = layout.endian + ("QQ" if wide else "II")
        head = image.read(tags[DT_HASH], struct.calcsize(fmt), "the symbol hash table (DT_HASH)")
        return int(struct.unpack(fmt, head)[1]), True
    least = 0
    if tags.get(DT_GNU_HASH):
        least, exact = _gnu_hash_count(file, layout, image, tags[DT_GNU_HASH])
        if exact:
            return least, True
    for section in layout.sections:
        if section.type == SHT_DYNSYM and section.addr == tags[DT_SYMTAB]:
            return section.size // syment, True
    return max(least, _referenced_symbols(layout, image, tags)), False


def _gnu_hash_count(file: File, layout: Layout, image: Image, address: int) -> tuple[int, bool]:
    """Symbols below ``symoffset`` are not hashed; the hashed ones end where the chain
    of the highest bucket has its low bit set (the GNU hash layout ld.so reads). With
    every bucket empty, ``symoffset`` is only a lower bound (ld writes 1 there)."""
    what = "the GNU symbol hash table (DT_GNU_HASH)"
    offset, available = image.locate(address, what)
    head = file.pread(offset, 16)
    if len(head) < 16 or available < 16:
        raise MalformedError(f"{what} runs past the end of its segment")
    nbuckets, symoffset, bloom_size, _ = struct.unpack(layout.endian + "IIII", head)
    if not nbuckets:
        raise MalformedError(f"{what} has no buckets")
    buckets_at = 16 + bloom_size * (8 if layout.elf_class == 64 else 4)
    chains_at = buckets_at + nbuckets * 4
    if chains_at > available:
        raise MalformedError(f"{what} runs past the end of its segment")
    data = file.pread(offset + buckets_at, nbuckets * 4)
    last = max(struct.unpack(f"{layout.endian}{nbuckets}I", data))
    if last == 0:
        return int(symoffset), False
    if last < symoffset:
        raise MalformedError(f"{what} has a bucket below its first hashed symbol")
    at = chains_at + (last - symoffset) * 4
    index = int(last)
    while at + 4 <= available:
        size = min(available - at, 4096) // 4
        for value in struct.unpack(f"{layout.endian}{size}I", file.pread(offset + at, size * 4)):
            if value & 1:
                return index + 1, True
            index += 1
        at += size * 4
    raise MalformedError(f"{what} has a chain that runs past the end of its segment")


def _referenced_symbols(layout: Layout, image: Image, tags: dict[int, int]) -> int:
    """One more than the highest symbol index the relocation tables use."""
    word = 8 if layout.elf_class == 64 else 4
    shift = 32 if layout.elf_class == 64 else 8  # ELF64_R_SYM / ELF32_R_SYM
    plt_entry = 3 if tags.get(DT_PLTREL) == DT_RELA else 2
    tables = (
        (DT_RELA, DT_RELASZ, 3, "DT_RELA"),
        (DT_REL, DT_RELSZ, 2, "DT_REL"),
        (DT_JMPREL, DT_PLTRELSZ, plt_entry, "DT_JMPREL"),
    )
    highest = 0
    for address_tag, size_tag, words, what in tables:
        address, size = tags.get(address_tag), tags.get(size_tag, 0)
        count = size // (words * word)
        if not address or not count:
            continue
        data = image.read(address, count * words * word, f"the relocations ({what})")
        values = struct.unpack(f"{layout.endian}{count * words}{'Q' if word == 8 else 'I'}", data)
        highest = max(highest, max(values[1::words]) >> shift)
    return highest + 1


class SymbolTable:
    """DT_SYMTAB's ``count`` entries and, per entry, whether it is defined.

    A big library has tens of thousands of defined symbols and a few hundred undefined
    ones: ``st_shndx == SHN_UNDEF`` is found with byte-level operations on the whole
    column, and only the undefined entries are unpacked one by one.
    """

    def __init__(self, layout: Layout, image: Image, address: int, count: int) -> None:
        self.entsize = entsize = SYM_SIZE[layout.elf_class]
        if count > image.file.size // entsize:
            raise MalformedError(f"the dynamic symbol table cannot hold {count} symbols")
        self.data = image.read(address, count * entsize, "the dynamic symbol table (DT_SYMTAB)")
        self.endian = layout.endian
        if layout.elf_class == 64:
            self.fmt, self.order, self.at_info, at_shndx = "IBBHQQ", (0, 1, 3), 4, 6
        else:
            self.fmt, self.order, self.at_info, at_shndx = "IIIBBH", (0, 3, 5), 12, 14
        self.fmt = self.endian + self.fmt
        low = int.from_bytes(self.data[at_shndx::entsize], "little")
        high = int.from_bytes(self.data[at_shndx + 1 :: entsize], "little")
        #: one byte per symbol, zero where the symbol is undefined
        self.defined = (low | high).to_bytes(count, "little")

    def undefined(self) -> Iterator[tuple[int, int, int]]:
        """(index, st_name, st_info) of each undefined symbol but the reserved entry 0."""
        index = self.defined.find(0, 1)
        while index >= 0:
            fields = struct.unpack_from(self.fmt, self.data, index * self.entsize)
            yield index, fields[self.order[0]], fields[self.order[1]]
            index = self.defined.find(0, index + 1)

    def defined_function_named(self, offsets: set[int]) -> int | None:
        """The lowest index of a defined function whose st_name is one of ``offsets``.

        Searched in the ``st_name`` column gathered into one contiguous run of 4-byte
        values, so that other fields cannot produce false hits; a name found at
        implausibly many offsets is checked symbol by symbol instead (still linear).
        """
        count = len(self.defined)
        names = bytearray(4 * count)
        for byte in range(4):
            names[byte::4] = self.data[byte :: self.entsize]
        if len(offsets) > 64:
            wanted = {struct.pack(self.endian + "I", offset) for offset in offsets}
            hits = (i for i in range(1, count) if names[4 * i : 4 * i + 4] in wanted)
        else:
            hits = (
                at // 4
                for offset in offsets
                for at in _aligned_finds(names, struct.pack(self.endian + "I", offset))
            )
        found = [
            i
            for i in hits
            if i > 0
            and self.defined[i]
            and self.data[i * self.entsize + self.at_info] & 0xF == STT_FUNC
        ]
        return min(found, default=None)


def _aligned_finds(data: bytearray, needle: bytes) -> Iterator[int]:
    at = data.find(needle)
    while at >= 0:
        if at % 4 == 0:
            yield at
        at = data.find(needle, at + 1)


def scan_dynsym(
    table: SymbolTable,
    versym: bytes,
    strings: Strings,
    version_index: dict[int, tuple[str, str]],
    module: str,
) -> Symbols:
    """Undefined symbols with their versions, and the module's init function (found by
    looking its name up in the string table first)."""
    undefined: list[SymbolNeed] = []
    pyfpe = ucs2 = False
    for index, name_off, info in table.undefined():
        name = strings.get(name_off)
        version = library = None
        if versym:
            (ndx,) = struct.unpack_from(table.endian + "H", versym, index * 2)
            found = version_index.get(ndx & 0x7FFF)
            if found is not None:
                version, library = found
        kind = info & 0xF
        undefined.append(SymbolNeed(name, version, library, info >> 4 == STB_WEAK))
        if name in _PYFPE_SYMBOLS and kind in (STT_FUNC, STT_NOTYPE):
            pyfpe = True
        if "PyUnicodeUCS2_" in name and kind == STT_FUNC:
            ucs2 = True
    python_init: tuple[int, str] | None = None
    for prefix, _ in _PY_INIT_PREFIXES:
        name = prefix + module
        at = table.defined_function_named(strings.offsets_of(name))
        if at is not None and (python_init is None or at < python_init[0]):
            python_init = (at, name)
    return Symbols(tuple(undefined), python_init[1] if python_init else None, pyfpe, ucs2)
