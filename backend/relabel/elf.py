"""Read one ELF file, once, into a plain :class:`ElfInfo` record, the way ld.so reads it.

The dynamic loader needs no section headers: it finds the dynamic array through the
PT_DYNAMIC program header and every table the array names (DT_STRTAB, DT_SYMTAB,
DT_VERSYM, DT_VERNEED, DT_HASH / DT_GNU_HASH) by mapping its address through the PT_LOAD
segments. relabel does the same, so a file whose section headers were stripped (sstrip)
or renamed is audited on what the loader will load. Section headers, when present, are
only a cross-check: where they place a dynamic table elsewhere than the segments do, the
file is refused (patchelf would rewrite the one the loader does not read). A file with no
PT_DYNAMIC loads nothing (a static executable, an object file); a file with a PT_DYNAMIC
whose tables cannot be read is refused, never taken to need nothing.

This is the only module that uses pyelftools, and only for its tables of names
(``EM_X86_64``, ``ET_DYN``...); the file is read with ``struct`` and ``pread``, only what
is needed. Files come from wheels built elsewhere, so every table must lie
inside the file, every loop is bounded by the file's size, no read or allocation is bigger
than the file, and names are looked up under a budget; anything else is an
:class:`~relabel.errors.ElfError`, never a hang or another exception. It never executes
anything, never follows ``DT_NEEDED``, and knows nothing of policies.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from elftools.elf.enums import ENUM_E_MACHINE, ENUM_E_TYPE, ENUM_EI_OSABI

from relabel.errors import ElfError

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

ELF_MAGIC = b"\x7fELF"

#: (e_machine, ELF class, little endian) -> the architecture name used in wheel tags.
_ARCHES = {
    ("EM_X86_64", 64, True): "x86_64",
    ("EM_386", 32, True): "i686",
    ("EM_AARCH64", 64, True): "aarch64",
    ("EM_PPC64", 64, True): "ppc64le",
    ("EM_PPC64", 64, False): "ppc64",
    ("EM_S390", 64, False): "s390x",
    ("EM_ARM", 32, True): "armv7l",
    ("EM_RISCV", 64, True): "riscv64",
    ("EM_LOONGARCH", 64, True): "loongarch64",
}

# ARM EABI flags (ELF for the ARM architecture, section 4.3.1): armv7l wheels must be
# EABI version 5 and hard-float, as the manylinux armv7l images are.
_EF_ARM_EABIMASK = 0xFF000000
_EF_ARM_EABI_VER5 = 0x05000000
_EF_ARM_ABI_FLOAT_HARD = 0x00000400

# GNU_PROPERTY_X86_ISA_1_NEEDED bits (x86-64 psABI, "ISA level" properties).
_X86_ISA_V2, _X86_ISA_V3, _X86_ISA_V4 = 0x2, 0x4, 0x8

_PY_INIT_PREFIXES = (("PyInit_", 3), ("init", 2), ("_cffi_pypyinit_", 2))
_PYFPE_SYMBOLS = frozenset({"PyFPE_jbuf", "PyFPE_dummy", "PyFPE_counter"})

_STB_WEAK = 2
_STT_FUNC = 2
_STT_NOTYPE = 0


@dataclass(frozen=True)
class SymbolNeed:
    """An undefined dynamic symbol and, when versioned, the version and library it binds to."""

    name: str
    version: str | None  # e.g. "GLIBC_2.17"
    library: str | None  # the verneed file, e.g. "libc.so.6"
    weak: bool


@dataclass(frozen=True)
class ElfInfo:
    """Everything relabel needs to know about one ELF file."""

    path: str
    elf_class: int
    little_endian: bool
    machine: str
    osabi: str
    arch: str | None  # tag architecture, None when unknown or unsupported
    arch_problem: str | None  # why arch is None (e.g. soft-float ARM)
    isa_level: int  # x86-64 micro-architecture level needed (1 = baseline)
    elf_type: str  # "ET_DYN", "ET_EXEC", ...
    interpreter: str | None
    soname: str | None
    needed: tuple[str, ...]
    rpath: tuple[str, ...]
    runpath: tuple[str, ...]
    #: library -> symbol versions needed from it (from .gnu.version_r)
    version_needs: tuple[tuple[str, tuple[str, ...]], ...]
    undefined: tuple[SymbolNeed, ...]
    python_init: str | None  # the defined PyInit_* (or py2 init*) symbol, if any
    uses_pyfpe: bool
    uses_ucs2: bool
    #: False for a file whose section header table was removed (sstrip): the loader does
    #: not need it, patchelf does
    has_section_headers: bool = True
    #: the API level the NDK built the file for (its .note.android.ident), None elsewhere
    android_api: int | None = None
    #: DT_RPATH plus DT_RUNPATH entries: rpath and runpath hold the last of each; patchelf
    #: rewrites only the first, so a file with several must lose them all before a new one
    search_path_entries: int = 0

    @property
    def is_python_extension(self) -> bool:
        return self.python_init is not None

    def same_platform(self, other: ElfInfo) -> bool:
        """True when the dynamic loader would accept ``other`` as a dependency of this file."""
        abis = {self.osabi, other.osabi}
        compatible = {"ELFOSABI_NONE", "ELFOSABI_SYSV", "ELFOSABI_GNU", "ELFOSABI_LINUX"}
        return (
            (len(abis) == 1 or abis <= compatible)
            and self.elf_class == other.elf_class
            and self.little_endian == other.little_endian
            and self.machine == other.machine
        )

    def symbol_versions(self) -> Iterator[tuple[str, str]]:
        """(library, version) pairs needed, ignoring the dynamic loader's own versions."""
        for library, versions in self.version_needs:
            if is_loader(library):
                continue
            for version in versions:
                yield library, version


def is_loader(soname: str) -> bool:
    """The ELF interpreter (ld-linux*, ld64.so.*, ld-musl-*), never grafted or checked."""
    return soname.startswith(("ld-linux", "ld-musl-")) or soname in ("ld64.so.1", "ld64.so.2")


def looks_like_elf(head: bytes) -> bool:
    return head[:4] == ELF_MAGIC


def read_elf(path: str | os.PathLike[str], display: str | None = None) -> ElfInfo:
    """Parse ``path``; raise :class:`ElfError` (naming ``display``) if it is not a sane ELF."""
    shown = display if display is not None else os.fspath(path)
    try:
        with Path(path).open("rb") as stream:
            return _parse(_File(stream), shown)
    except _MalformedError as exc:
        raise ElfError(shown, str(exc)) from None
    except OSError as exc:
        raise ElfError(shown, exc.strerror or str(exc)) from None


class _MalformedError(Exception):
    """A structural problem found while parsing; becomes an ElfError."""


class _File:
    """Positional reads that never go past the end of the file, nor allocate beyond it."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self._fd = stream.fileno()
        self.size = os.fstat(self._fd).st_size

    def pread(self, offset: int, size: int) -> bytes:
        if offset < 0 or size <= 0 or offset >= self.size:
            return b""
        return os.pread(self._fd, min(size, self.size - offset), offset)


# ---------------------------------------------------------------------------------------
# the layout: ELF header, section headers, program headers (gABI, "ELF Header" and on)

#: after e_ident: type machine version entry phoff shoff flags ehsize phentsize phnum
#: shentsize shnum shstrndx
_HEADER = {64: "HHIQQQIHHHHHH", 32: "HHIIIIIHHHHHH"}
#: name type flags addr offset size link info addralign entsize
_SHDR = {64: "IIQQQQIIQQ", 32: "IIIIIIIIII"}
_PHDR_SIZE = {64: 56, 32: 32}
#: type flags offset vaddr paddr filesz memsz align (ELF64), type offset vaddr paddr filesz
#: memsz flags align (ELF32)
_PHDR = {64: "IIQQQQQQ", 32: "IIIIIIII"}
_SYM_SIZE = {64: 24, 32: 16}
_PT_LOAD, _PT_DYNAMIC, _PT_INTERP, _PT_NOTE = 1, 2, 3, 4
_PT_GNU_PROPERTY = 0x6474E553
_PN_XNUM = _SHN_XINDEX = 0xFFFF
_SHF_ALLOC, _SHF_COMPRESSED = 0x2, 0x800
_SHT_STRTAB, _SHT_DYNAMIC, _SHT_NOBITS, _SHT_DYNSYM = 3, 6, 8, 11
_SHT_GNU_VERNEED, _SHT_GNU_VERSYM = 0x6FFFFFFE, 0x6FFFFFFF
_DT_NULL, _DT_NEEDED, _DT_HASH, _DT_STRTAB, _DT_SYMTAB = 0, 1, 4, 5, 6
_DT_STRSZ, _DT_SYMENT, _DT_SONAME, _DT_RPATH, _DT_RUNPATH = 10, 11, 14, 15, 29
_DT_GNU_HASH, _DT_VERSYM, _DT_VERNEED = 0x6FFFFEF5, 0x6FFFFFF0, 0x6FFFFFFE
_DT_PLTRELSZ, _DT_RELA, _DT_RELASZ, _DT_REL, _DT_RELSZ, _DT_PLTREL, _DT_JMPREL = (
    2,
    7,
    8,
    17,
    18,
    20,
    23,
)
_NT_GNU_PROPERTY_TYPE_0 = 5
_GNU_PROPERTY_X86_ISA_1_NEEDED = 0xC0008002
_PATH_MAX = 4096


@dataclass(frozen=True)
class _Section:
    index: int
    name: str
    type: int
    flags: int
    addr: int
    offset: int
    size: int
    link: int


@dataclass(frozen=True)
class _Segment:
    type: int
    offset: int
    vaddr: int
    filesz: int
    memsz: int
    align: int


def _names(enum: Mapping[str, object]) -> dict[int, str]:
    """pyelftools' value -> name table (where two names share a value, the last one, as
    pyelftools' own decoding does); values it does not know are shown as numbers."""
    return {value: name for name, value in enum.items() if isinstance(value, int)}


_MACHINES, _TYPES, _OSABIS = _names(ENUM_E_MACHINE), _names(ENUM_E_TYPE), _names(ENUM_EI_OSABI)


@dataclass(frozen=True)
class _Layout:
    endian: str  # struct byte order character
    elf_class: int
    machine: str  # e_machine, EI_OSABI and e_type by their gABI names
    osabi: str
    elf_type: str
    flags: int  # e_flags
    sections: tuple[_Section, ...]
    segments: tuple[_Segment, ...]


def _layout(file: _File) -> _Layout:
    """The header tables, checked: inside the file, entry sizes as the spec says. Every
    later loop is bounded by these counts, so by the file size."""
    size = file.size
    head = file.pread(0, 64)
    if head[:4] != ELF_MAGIC:
        raise _MalformedError("not an ELF file (no ELF magic number)")
    if len(head) < 16 or head[4] not in (1, 2) or head[5] not in (1, 2):
        raise _MalformedError("invalid ELF identification (class or byte order)")
    elf_class = 64 if head[4] == 2 else 32
    endian = "<" if head[5] == 1 else ">"
    fmt = endian + _HEADER[elf_class]
    if len(head) < 16 + struct.calcsize(fmt):
        raise _MalformedError(f"the file is {size} bytes long, shorter than an ELF header")
    fields = struct.unpack_from(fmt, head, 16)
    phoff, shoff = fields[4], fields[5]
    phentsize, phnum, shentsize, shnum, shstrndx = fields[8:13]
    shdr_fmt = endian + _SHDR[elf_class]
    shdr = struct.calcsize(shdr_fmt)

    raw: list[tuple[int, ...]] = []
    if shoff:
        if shentsize != shdr:
            raise _MalformedError(f"section headers are {shentsize} bytes each instead of {shdr}")
        first = file.pread(shoff, shdr)
        if len(first) < shdr:
            raise _MalformedError("the section header table starts past the end of the file")
        zero = struct.unpack(shdr_fmt, first)
        # Extended numbering (gABI): counts that do not fit the header live in section 0.
        count = shnum or zero[5]
        if shoff + count * shdr > size:
            raise _MalformedError(
                f"the section header table ({count} entries) runs past the end of the"
                f" file ({size} bytes)"
            )
        raw = list(struct.iter_unpack(shdr_fmt, file.pread(shoff, count * shdr)))
        if shstrndx == _SHN_XINDEX:
            shstrndx = zero[6]
        if count and shstrndx >= count:
            raise _MalformedError(f"the section name table index {shstrndx} is out of range")
        if phnum == _PN_XNUM:
            phnum = zero[7]
    sections = _named_sections(file, raw, shstrndx)

    segments: tuple[_Segment, ...] = ()
    if phnum:
        if phentsize != _PHDR_SIZE[elf_class]:
            raise _MalformedError(
                f"program headers are {phentsize} bytes each instead of {_PHDR_SIZE[elf_class]}"
            )
        if phoff + phnum * phentsize > size:
            raise _MalformedError(
                f"the program header table ({phnum} entries) runs past the end of the"
                f" file ({size} bytes)"
            )
        table = file.pread(phoff, phnum * phentsize)
        if elf_class == 64:
            segments = tuple(
                _Segment(v[0], v[2], v[3], v[5], v[6], v[7])
                for v in struct.iter_unpack(endian + _PHDR[64], table)
            )
        else:
            segments = tuple(
                _Segment(v[0], v[1], v[2], v[4], v[5], v[7])
                for v in struct.iter_unpack(endian + _PHDR[32], table)
            )
    machine, flags = fields[1], fields[6]
    return _Layout(
        endian,
        elf_class,
        _MACHINES.get(machine, str(machine)),
        _OSABIS.get(head[7], str(head[7])),
        _TYPES.get(fields[0], str(fields[0])),
        flags,
        sections,
        segments,
    )


def _named_sections(file: _File, raw: list[tuple[int, ...]], shstrndx: int) -> tuple[_Section, ...]:
    names: _Strings | None = None
    if raw and shstrndx:
        table = raw[shstrndx]
        names = _Strings(_data(file, table[2], table[4], table[5], "the section name table"), "")
    return tuple(
        _Section(
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


def _data(file: _File, flags: int, offset: int, size: int, what: str) -> bytes:
    if flags & _SHF_COMPRESSED:
        # gABI: SHF_COMPRESSED never applies to allocated sections, which these all are.
        raise _MalformedError(f"{what} is marked compressed")
    if offset + size > file.size:
        raise _MalformedError(f"{what} runs past the end of the file (truncated?)")
    return file.pread(offset, size)


class _Strings:
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
            raise _MalformedError(f"a name lies outside {self.what}")
        self._budget -= end - offset
        if self._budget < 0:
            raise _MalformedError(f"the names in {self.what} overlap beyond any real file")
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


# ---------------------------------------------------------------------------------------
# the file as the dynamic loader sees it: PT_LOAD maps addresses, PT_DYNAMIC lists tables


class _Image:
    """Addresses to file offsets through the PT_LOAD segments, as ``mmap`` lays them out.

    Tables must lie in the part of a segment backed by the file: the rest is zero-filled
    memory, where no linker puts a table.
    """

    def __init__(self, file: _File, segments: tuple[_Segment, ...]) -> None:
        self.file = file
        self.loads = [s for s in segments if s.type == _PT_LOAD]

    def locate(self, addr: int, what: str) -> tuple[int, int]:
        """(file offset, bytes readable from there) of ``addr``."""
        for segment in self.loads:
            if segment.vaddr <= addr < segment.vaddr + segment.filesz:
                offset = segment.offset + (addr - segment.vaddr)
                available = min(segment.vaddr + segment.filesz - addr, self.file.size - offset)
                if available <= 0:
                    raise _MalformedError(f"{what} lies past the end of the file (truncated?)")
                return offset, available
        raise _MalformedError(
            f"{what} (address {addr:#x}) is not in the file part of any PT_LOAD segment"
        )

    def read(self, addr: int, size: int, what: str) -> bytes:
        offset, available = self.locate(addr, what)
        if size > available:
            raise _MalformedError(
                f"{what} runs past the end of its PT_LOAD segment or of the file (truncated?)"
            )
        return self.file.pread(offset, size)


@dataclass
class _Dynamic:
    """The dynamic array, read through PT_DYNAMIC up to DT_NULL."""

    segment: _Segment
    needed: list[int]  # string table offsets, in order
    #: single-valued tags; a repeated tag keeps its last value, as ld.so's
    #: elf_get_dynamic_info does
    tags: dict[int, int]
    #: how many DT_RPATH and DT_RUNPATH entries the array holds (tags keeps one of each)
    search_paths: int = 0


def _read_dynamic(file: _File, layout: _Layout, image: _Image) -> _Dynamic | None:
    """None when there is no PT_DYNAMIC: nothing is loaded for the file (a static
    executable, an object file)."""
    found = [s for s in layout.segments if s.type == _PT_DYNAMIC]
    if not found:
        return None
    if len(found) > 1:
        raise _MalformedError(f"there are {len(found)} PT_DYNAMIC segments instead of one")
    segment = found[0]
    entry = 16 if layout.elf_class == 64 else 8
    if segment.filesz < entry:
        raise _MalformedError("the PT_DYNAMIC segment is empty")
    # ld.so reads the array at p_vaddr; tools (and patchelf) at p_offset: both must agree.
    offset, _ = image.locate(segment.vaddr, "the dynamic array (PT_DYNAMIC)")
    if offset != segment.offset:
        raise _MalformedError(
            "PT_DYNAMIC's address and file offset point at different bytes"
            f" ({segment.vaddr:#x} maps to {offset:#x}, not {segment.offset:#x})"
        )
    data = image.read(segment.vaddr, segment.filesz, "the dynamic array (PT_DYNAMIC)")
    fmt = layout.endian + ("qQ" if layout.elf_class == 64 else "iI")
    needed: list[int] = []
    tags: dict[int, int] = {}
    search_paths = 0
    for tag, value in struct.iter_unpack(fmt, data[: len(data) // entry * entry]):
        if tag == _DT_NULL:
            return _Dynamic(segment, needed, tags, search_paths)
        if tag == _DT_NEEDED:
            needed.append(value)
        else:
            tags[tag] = value
            search_paths += tag in (_DT_RPATH, _DT_RUNPATH)
    # ld.so would read on past the segment: what it finds there is not knowable from here.
    raise _MalformedError("the dynamic array has no DT_NULL end within its PT_DYNAMIC segment")


def _dynamic_strings(image: _Image, dynamic: _Dynamic) -> _Strings:
    tags = dynamic.tags
    if _DT_STRTAB not in tags:
        if dynamic.needed or tags.keys() & {
            _DT_SONAME,
            _DT_RPATH,
            _DT_RUNPATH,
            _DT_SYMTAB,
            _DT_VERNEED,
        }:
            raise _MalformedError("the dynamic array names strings but has no DT_STRTAB")
        return _Strings(b"", ".dynstr")
    if _DT_STRSZ not in tags:
        raise _MalformedError("the dynamic array has DT_STRTAB but no DT_STRSZ")
    data = image.read(tags[_DT_STRTAB], tags[_DT_STRSZ], "the dynamic string table (DT_STRTAB)")
    return _Strings(data, ".dynstr")


# ---------------------------------------------------------------------------------------
# the parts of ElfInfo


def _parse(file: _File, shown: str) -> ElfInfo:
    layout = _layout(file)
    machine = layout.machine
    elf_class = layout.elf_class
    little = layout.endian == "<"
    arch = _ARCHES.get((machine, elf_class, little))
    arch_problem = None if arch else f"unsupported machine {machine} ({elf_class}-bit)"
    if arch == "armv7l":
        flags = layout.flags
        if flags & _EF_ARM_EABIMASK != _EF_ARM_EABI_VER5:
            arch, arch_problem = None, "ARM EABI version is not 5"
        elif flags & _EF_ARM_ABI_FLOAT_HARD == 0:
            arch, arch_problem = None, "ARM code is not hard-float"

    image = _Image(file, layout.segments)
    dynamic = _read_dynamic(file, layout, image)
    linked = _Linked() if dynamic is None else _linked_info(file, layout, image, dynamic, shown)
    _check_sections(file, layout, dynamic, linked.exact_count)
    return ElfInfo(
        path=shown,
        elf_class=elf_class,
        little_endian=little,
        machine=machine,
        osabi=layout.osabi,
        arch=arch,
        arch_problem=arch_problem,
        isa_level=_x86_isa_level(file, layout) if arch == "x86_64" else 1,
        elf_type=layout.elf_type,
        interpreter=_interpreter(file, layout),
        soname=linked.soname,
        needed=linked.needed,
        rpath=linked.rpath,
        runpath=linked.runpath,
        version_needs=linked.version_needs,
        undefined=linked.symbols.undefined,
        python_init=linked.symbols.python_init,
        uses_pyfpe=linked.symbols.pyfpe,
        uses_ucs2=linked.symbols.ucs2,
        has_section_headers=bool(layout.sections),
        android_api=_android_api(file, layout),
        search_path_entries=0 if dynamic is None else dynamic.search_paths,
    )


@dataclass(frozen=True)
class _Symbols:
    undefined: tuple[SymbolNeed, ...] = ()
    python_init: str | None = None
    pyfpe: bool = False
    ucs2: bool = False


@dataclass(frozen=True)
class _Linked:
    """What the dynamic array says: the file's part of ElfInfo about linking."""

    soname: str | None = None
    needed: tuple[str, ...] = ()
    rpath: tuple[str, ...] = ()
    runpath: tuple[str, ...] = ()
    version_needs: tuple[tuple[str, tuple[str, ...]], ...] = ()
    symbols: _Symbols = _Symbols()
    exact_count: int | None = 0  # DT_SYMTAB's length where a hash table gives it


def _linked_info(
    file: _File, layout: _Layout, image: _Image, dynamic: _Dynamic, shown: str
) -> _Linked:
    strings = _dynamic_strings(image, dynamic)
    needed = tuple(strings.get(offset) for offset in dynamic.needed)
    if not all(needed):
        raise _MalformedError("a DT_NEEDED entry has an empty name")
    tags = dynamic.tags

    def path_list(tag: int) -> tuple[str, ...]:
        return tuple(p for p in strings.get(tags[tag]).split(":") if p) if tag in tags else ()

    version_needs, version_index = _version_needs(file, layout, image, tags, strings)
    count, exact = _symbol_count(file, layout, image, tags, layout.machine)
    symbols = _Symbols()
    if count:
        table = _SymbolTable(layout, image, tags[_DT_SYMTAB], count)
        versym = b""
        if tags.get(_DT_VERSYM):
            versym = image.read(tags[_DT_VERSYM], count * 2, "the symbol versions (DT_VERSYM)")
        module = Path(shown).name.split(".", 1)[0]
        symbols = _scan_dynsym(table, versym, strings, version_index, module)
    return _Linked(
        soname=strings.get(tags[_DT_SONAME]) if _DT_SONAME in tags else None,
        needed=needed,
        rpath=path_list(_DT_RPATH),
        runpath=path_list(_DT_RUNPATH),
        version_needs=tuple(version_needs),
        symbols=symbols,
        exact_count=count if exact else None,
    )


def _interpreter(file: _File, layout: _Layout) -> str | None:
    for segment in layout.segments:
        if segment.type == _PT_INTERP:
            data = file.pread(segment.offset, min(segment.filesz, _PATH_MAX))
            return data.split(b"\0", 1)[0].decode("utf-8", "replace")
    return None


_VERNEED = "HHIII"  # vn_version vn_cnt vn_file vn_aux vn_next (16 bytes in both classes)
_VERNAUX = "IHHII"  # vna_hash vna_flags vna_other vna_name vna_next


def _version_needs(
    file: _File, layout: _Layout, image: _Image, tags: dict[int, int], names: _Strings
) -> tuple[list[tuple[str, tuple[str, ...]]], dict[int, tuple[str, str]]]:
    """The DT_VERNEED chains, walked as ld.so's _dl_check_map_versions walks them: from
    entry to entry by ``vn_next`` and ``vna_next`` until a zero (the counts are not
    consulted). Every entry must lie in the table's segment (and in its section, when
    section headers say where it is); one visited twice is malformed."""
    address = tags.get(_DT_VERNEED)
    if not address:
        return [], {}
    offset, limit = image.locate(address, "the version needs (DT_VERNEED)")
    what = ".gnu.version_r has an entry outside the loaded segment or in a loop"
    for section in layout.sections:
        if section.type == _SHT_GNU_VERNEED and section.addr == address:
            limit = min(limit, section.size)
            what = ".gnu.version_r has an entry outside the section or in a loop"
    window = _Window(file, offset, limit)
    need_fmt, aux_fmt = layout.endian + _VERNEED, layout.endian + _VERNAUX
    needs: list[tuple[str, tuple[str, ...]]] = []
    index: dict[int, tuple[str, str]] = {}
    seen: set[int] = set()
    where = 0
    while True:
        if where in seen or not window.has(where, 16):
            raise _MalformedError(what)
        seen.add(where)
        _, _, file_name, aux, following = struct.unpack_from(need_fmt, window.data, where)
        library = names.get(file_name)
        versions: list[str] = []
        at = where + aux
        while True:
            if at in seen or not window.has(at, 16):
                raise _MalformedError(what)
            seen.add(at)
            _, _, other, name, step = struct.unpack_from(aux_fmt, window.data, at)
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

    def __init__(self, file: _File, offset: int, limit: int) -> None:
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


def _symbol_count(
    file: _File, layout: _Layout, image: _Image, tags: dict[int, int], machine: str
) -> tuple[int, bool]:
    """How many entries of DT_SYMTAB matter, and whether that is the table's exact length.

    DT_HASH's nchain is the length. DT_GNU_HASH gives it through the end of its last
    chain, unless no symbol is hashed (a library exporting nothing): then the symbols
    the loader ever looks at are those its relocations name. Section headers are the
    last resort before that and never overrule a hash table.
    """
    if _DT_SYMTAB not in tags:
        return 0, True
    syment = tags.get(_DT_SYMENT, _SYM_SIZE[layout.elf_class])
    if syment != _SYM_SIZE[layout.elf_class]:
        raise _MalformedError(f"DT_SYMENT is {syment}, not {_SYM_SIZE[layout.elf_class]}")
    if tags.get(_DT_HASH):
        # 64-bit s390 (like Alpha) has 8-byte hash table entries
        wide = machine == "EM_S390" and layout.elf_class == 64
        fmt = layout.endian + ("QQ" if wide else "II")
        head = image.read(tags[_DT_HASH], struct.calcsize(fmt), "the symbol hash table (DT_HASH)")
        return int(struct.unpack(fmt, head)[1]), True
    least = 0
    if tags.get(_DT_GNU_HASH):
        least, exact = _gnu_hash_count(file, layout, image, tags[_DT_GNU_HASH])
        if exact:
            return least, True
    for section in layout.sections:
        if section.type == _SHT_DYNSYM and section.addr == tags[_DT_SYMTAB]:
            return section.size // syment, True
    return max(least, _referenced_symbols(layout, image, tags)), False


def _gnu_hash_count(file: _File, layout: _Layout, image: _Image, address: int) -> tuple[int, bool]:
    """Symbols below ``symoffset`` are not hashed; the hashed ones end where the chain
    of the highest bucket has its low bit set (the GNU hash layout ld.so reads). With
    every bucket empty, ``symoffset`` is only a lower bound (ld writes 1 there)."""
    what = "the GNU symbol hash table (DT_GNU_HASH)"
    offset, available = image.locate(address, what)
    head = file.pread(offset, 16)
    if len(head) < 16 or available < 16:
        raise _MalformedError(f"{what} runs past the end of its segment")
    nbuckets, symoffset, bloom_size, _ = struct.unpack(layout.endian + "IIII", head)
    if not nbuckets:
        raise _MalformedError(f"{what} has no buckets")
    buckets_at = 16 + bloom_size * (8 if layout.elf_class == 64 else 4)
    chains_at = buckets_at + nbuckets * 4
    if chains_at > available:
        raise _MalformedError(f"{what} runs past the end of its segment")
    data = file.pread(offset + buckets_at, nbuckets * 4)
    last = max(struct.unpack(f"{layout.endian}{nbuckets}I", data))
    if last == 0:
        return int(symoffset), False
    if last < symoffset:
        raise _MalformedError(f"{what} has a bucket below its first hashed symbol")
    at = chains_at + (last - symoffset) * 4
    index = int(last)
    while at + 4 <= available:
        size = min(available - at, 4096) // 4
        for value in struct.unpack(f"{layout.endian}{size}I", file.pread(offset + at, size * 4)):
            if value & 1:
                return index + 1, True
            index += 1
        at += size * 4
    raise _MalformedError(f"{what} has a chain that runs past the end of its segment")


def _referenced_symbols(layout: _Layout, image: _Image, tags: dict[int, int]) -> int:
    """One more than the highest symbol index the relocation tables use."""
    word = 8 if layout.elf_class == 64 else 4
    shift = 32 if layout.elf_class == 64 else 8  # ELF64_R_SYM / ELF32_R_SYM
    plt_entry = 3 if tags.get(_DT_PLTREL) == _DT_RELA else 2
    tables = (
        (_DT_RELA, _DT_RELASZ, 3, "DT_RELA"),
        (_DT_REL, _DT_RELSZ, 2, "DT_REL"),
        (_DT_JMPREL, _DT_PLTRELSZ, plt_entry, "DT_JMPREL"),
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


class _SymbolTable:
    """DT_SYMTAB's ``count`` entries and, per entry, whether it is defined.

    A big library has tens of thousands of defined symbols and a few hundred undefined
    ones: ``st_shndx == SHN_UNDEF`` is found with byte-level operations on the whole
    column, and only the undefined entries are unpacked one by one.
    """

    def __init__(self, layout: _Layout, image: _Image, address: int, count: int) -> None:
        self.entsize = entsize = _SYM_SIZE[layout.elf_class]
        if count > image.file.size // entsize:
            raise _MalformedError(f"the dynamic symbol table cannot hold {count} symbols")
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
            and self.data[i * self.entsize + self.at_info] & 0xF == _STT_FUNC
        ]
        return min(found, default=None)


def _aligned_finds(data: bytearray, needle: bytes) -> Iterator[int]:
    at = data.find(needle)
    while at >= 0:
        if at % 4 == 0:
            yield at
        at = data.find(needle, at + 1)


def _scan_dynsym(
    table: _SymbolTable,
    versym: bytes,
    strings: _Strings,
    version_index: dict[int, tuple[str, str]],
    module: str,
) -> _Symbols:
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
        undefined.append(SymbolNeed(name, version, library, info >> 4 == _STB_WEAK))
        if name in _PYFPE_SYMBOLS and kind in (_STT_FUNC, _STT_NOTYPE):
            pyfpe = True
        if "PyUnicodeUCS2_" in name and kind == _STT_FUNC:
            ucs2 = True
    python_init: tuple[int, str] | None = None
    for prefix, _ in _PY_INIT_PREFIXES:
        name = prefix + module
        at = table.defined_function_named(strings.offsets_of(name))
        if at is not None and (python_init is None or at < python_init[0]):
            python_init = (at, name)
    return _Symbols(tuple(undefined), python_init[1] if python_init else None, pyfpe, ucs2)


# ---------------------------------------------------------------------------------------
# section headers: a cross-check only


def _check_sections(
    file: _File, layout: _Layout, dynamic: _Dynamic | None, count: int | None
) -> None:
    """Section headers, where the file has them, must describe the dynamic tables where
    the dynamic segment puts them. patchelf edits a file through its sections (and then
    points PT_DYNAMIC at its ``.dynamic``), so a file whose sections say something else
    than its segments would be audited on one set of tables and repaired on another."""
    expected: dict[int, int | None] = {}
    if dynamic is not None:
        tags = dynamic.tags
        expected = {
            _SHT_DYNAMIC: dynamic.segment.vaddr,
            _SHT_DYNSYM: tags.get(_DT_SYMTAB),
            _SHT_GNU_VERSYM: tags.get(_DT_VERSYM),
            _SHT_GNU_VERNEED: tags.get(_DT_VERNEED),
        }
    for section in layout.sections:
        if section.type not in (_SHT_DYNAMIC, _SHT_DYNSYM, _SHT_GNU_VERSYM, _SHT_GNU_VERNEED):
            continue
        _data_in_file(file, section, section.name)
        if section.type != _SHT_GNU_VERSYM:
            linked = _linked(layout, section)
            _data_in_file(file, linked, linked.name)
            if dynamic is not None and linked.addr != dynamic.tags.get(_DT_STRTAB):
                raise _disagree(section.name + "'s string table", "DT_STRTAB")
        if dynamic is None:
            if layout.segments and section.flags & _SHF_ALLOC:
                raise _MalformedError(f"the file has a {section.name} section but no PT_DYNAMIC")
            continue
        if section.addr != expected[section.type]:
            raise _disagree(section.name, "the dynamic array")
        if section.type == _SHT_DYNAMIC and section.offset != dynamic.segment.offset:
            raise _disagree(section.name, "PT_DYNAMIC")
        if (
            section.type == _SHT_DYNSYM
            and count is not None
            and section.size // _SYM_SIZE[layout.elf_class] != count
        ):
            raise _disagree(section.name + "'s length", "the symbol hash table")


def _disagree(what: str, other: str) -> _MalformedError:
    return _MalformedError(
        f"the section headers place {what} elsewhere than {other} does; the dynamic loader"
        " reads one and patchelf would rewrite the other"
    )


def _data_in_file(file: _File, section: _Section, what: str) -> None:
    if section.type == _SHT_NOBITS:
        return
    if section.flags & _SHF_COMPRESSED:
        raise _MalformedError(f"{what} is marked compressed")
    if section.offset + section.size > file.size:
        raise _MalformedError(f"{what} runs past the end of the file (truncated?)")


def _linked(layout: _Layout, section: _Section) -> _Section:
    index = section.link
    if not 0 < index < len(layout.sections):
        raise _MalformedError(f"{section.name} links to section {index}, which does not exist")
    linked = layout.sections[index]
    if linked.type != _SHT_STRTAB:
        raise _MalformedError(f"{section.name} links to section {index}, not a string table")
    return linked


# ---------------------------------------------------------------------------------------
# notes


def _android_api(file: _File, layout: _Layout) -> int | None:
    """The API level in the NDK's Android ident note (owner "Android", type 1, the level as
    the first word of the description), written by its crtbegin objects. Read from the
    PT_NOTE segments, which a file keeps when its section headers are stripped."""
    for segment in layout.segments:
        if segment.type != _PT_NOTE:
            continue
        data = file.pread(segment.offset, min(segment.filesz, 1 << 16))
        at = 0
        while at + 12 <= len(data):
            namesz, descsz, kind = struct.unpack_from(layout.endian + "III", data, at)
            name_at = at + 12
            desc_at = name_at + ((namesz + 3) & ~3)
            name = data[name_at : name_at + namesz].rstrip(b"\0")
            if kind == 1 and name == b"Android" and descsz >= 4 and desc_at + 4 <= len(data):
                return int(struct.unpack_from(layout.endian + "I", data, desc_at)[0])
            at = desc_at + ((descsz + 3) & ~3)
    return None


def _x86_isa_level(file: _File, layout: _Layout) -> int:
    """The highest GNU_PROPERTY_X86_ISA_1_NEEDED level of the file's GNU property notes:
    those of PT_GNU_PROPERTY (what ld.so reads), else of every PT_NOTE segment (files
    linked before PT_GNU_PROPERTY existed)."""
    notes = [s for s in layout.segments if s.type == _PT_GNU_PROPERTY]
    if not notes:
        notes = [s for s in layout.segments if s.type == _PT_NOTE]
    level = 1
    word = 8 if layout.elf_class == 64 else 4  # property alignment (x86-64 psABI)
    budget = file.size + (1 << 20)
    for segment in notes:
        budget -= segment.filesz
        if budget < 0:
            raise _MalformedError("the note segments overlap beyond any real file")
        data = _data(file, 0, segment.offset, segment.filesz, "a note segment")
        # gABI note layout as glibc's ELF_NOTE_NEXT_OFFSET computes it: name and
        # descriptor each start at the segment's alignment
        align = 8 if segment.align == 8 else 4
        offset = 0
        while offset + 12 <= len(data):
            namesz, descsz, kind = struct.unpack_from(layout.endian + "III", data, offset)
            name = data[offset + 12 : offset + 12 + namesz]
            start = (offset + 12 + namesz + align - 1) & -align
            desc = data[start : start + descsz]
            offset = (start + descsz + align - 1) & -align
            if kind != _NT_GNU_PROPERTY_TYPE_0 or name.rstrip(b"\0") != b"GNU":
                continue
            at = 0
            while at + 8 <= len(desc):
                pr_type, pr_datasz = struct.unpack_from(layout.endian + "II", desc, at)
                if pr_type == _GNU_PROPERTY_X86_ISA_1_NEEDED and pr_datasz == 4:
                    if at + 12 > len(desc):
                        break
                    (bits,) = struct.unpack_from(layout.endian + "I", desc, at + 8)
                    if bits & _X86_ISA_V4:
                        level = max(level, 4)
                    elif bits & _X86_ISA_V3:
                        level = max(level, 3)
                    elif bits & _X86_ISA_V2:
                        level = max(level, 2)
                at += 8 + ((pr_datasz + word - 1) & ~(word - 1))
    return level
