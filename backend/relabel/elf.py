"""Read one ELF file, once, into a plain :class:`ElfInfo` record.

This is the only module that uses pyelftools, and only to decode the ELF header into names
(``EM_X86_64``, ``ET_DYN``...). Everything else (the section and program header tables,
the dynamic section, the version-needed chains, the GNU property notes, the dynamic symbol
table) is read with ``struct``: faster than pyelftools' objects, and bounded. Files come
from wheels built elsewhere, so every table must lie inside the file, every loop is bounded
by the file's size, no read or allocation is bigger than the file, and names are looked up
under a budget; anything else is an :class:`~relabel.errors.ElfError`, never a hang or
another exception. It never executes anything, never follows ``DT_NEEDED``, and knows
nothing of policies.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from elftools.common.exceptions import ELFError
from elftools.construct.core import ConstructError
from elftools.elf.elffile import ELFFile

from relabel.errors import ElfError

if TYPE_CHECKING:
    from collections.abc import Iterator

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
_SHN_UNDEF = 0


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
    #: the API level the NDK built the file for (its .note.android.ident), None elsewhere
    android_api: int | None = None

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
    except (ELFError, ConstructError) as exc:
        # pyelftools decodes the header relabel has already checked; kept for safety
        raise ElfError(shown, str(exc) or type(exc).__name__) from None
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
_PHDR = {64: "IIQQQQ", 32: "IIIIII"}  # the leading fields of a program header
_PT_INTERP = 3
_PN_XNUM = _SHN_XINDEX = 0xFFFF
_SHF_COMPRESSED = 0x800
_SHT_STRTAB, _SHT_DYNAMIC, _SHT_NOTE, _SHT_NOBITS, _SHT_DYNSYM = 3, 6, 7, 8, 11
_SHT_GNU_VERNEED = 0x6FFFFFFE
_DT_NULL, _DT_NEEDED, _DT_SONAME, _DT_RPATH, _DT_RUNPATH = 0, 1, 14, 15, 29
_NT_GNU_PROPERTY_TYPE_0 = 5
_GNU_PROPERTY_X86_ISA_1_NEEDED = 0xC0008002
_PATH_MAX = 4096


@dataclass(frozen=True)
class _Section:
    index: int
    name: str
    type: int
    flags: int
    offset: int
    size: int
    link: int
    info: int


@dataclass(frozen=True)
class _Layout:
    endian: str  # struct byte order character
    elf_class: int
    sections: tuple[_Section, ...]
    by_name: dict[str, _Section]  # the last section of each name, as pyelftools looks up
    segments: int
    phoff: int


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
    return _Layout(
        endian, elf_class, sections, {s.name: s for s in sections if s.name}, phnum, phoff
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
            values[4],
            values[5],
            values[6],
            values[7],
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


def _section_data(file: _File, section: _Section) -> bytes:
    """The bytes of a section relabel reads, or _MalformedError when they cannot be real."""
    if section.type == _SHT_NOBITS:
        return b""
    return _data(file, section.flags, section.offset, section.size, section.name)


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


class _Tables:
    """The string tables of one file, each read once, found through ``sh_link``."""

    def __init__(self, file: _File, layout: _Layout) -> None:
        self.file = file
        self.layout = layout
        self._read: dict[int, _Strings] = {}

    def linked(self, section: _Section) -> _Strings:
        index = section.link
        found = self._read.get(index)
        if found is None:
            if not 0 < index < len(self.layout.sections):
                raise _MalformedError(
                    f"{section.name} links to section {index}, which does not exist"
                )
            linked = self.layout.sections[index]
            if linked.type != _SHT_STRTAB:
                raise _MalformedError(
                    f"{section.name} links to section {index}, not a string table"
                )
            found = _Strings(_section_data(self.file, linked), linked.name)
            self._read[index] = found
        return found


# ---------------------------------------------------------------------------------------
# the parts of ElfInfo


def _parse(file: _File, shown: str) -> ElfInfo:
    layout = _layout(file)
    header = ELFFile(file.stream).header  # checked above; decoded into names here
    machine = str(header["e_machine"])
    elf_class = layout.elf_class
    little = layout.endian == "<"
    arch = _ARCHES.get((machine, elf_class, little))
    arch_problem = None if arch else f"unsupported machine {machine} ({elf_class}-bit)"
    if arch == "armv7l":
        flags = int(header["e_flags"])
        if flags & _EF_ARM_EABIMASK != _EF_ARM_EABI_VER5:
            arch, arch_problem = None, "ARM EABI version is not 5"
        elif flags & _EF_ARM_ABI_FLOAT_HARD == 0:
            arch, arch_problem = None, "ARM code is not hard-float"

    tables = _Tables(file, layout)
    soname, needed, rpath, runpath = _dynamic(file, layout, tables)
    version_needs, version_index = _version_needs(file, layout, tables)
    undefined, python_init, pyfpe, ucs2 = _scan_dynsym(file, layout, tables, shown, version_index)
    return ElfInfo(
        path=shown,
        elf_class=elf_class,
        little_endian=little,
        machine=machine,
        osabi=str(header["e_ident"]["EI_OSABI"]),
        arch=arch,
        arch_problem=arch_problem,
        isa_level=_x86_isa_level(file, layout) if arch == "x86_64" else 1,
        elf_type=str(header["e_type"]),
        interpreter=_interpreter(file, layout),
        soname=soname,
        needed=tuple(needed),
        rpath=tuple(p for p in rpath if p),
        runpath=tuple(p for p in runpath if p),
        version_needs=tuple(version_needs),
        undefined=undefined,
        python_init=python_init,
        uses_pyfpe=pyfpe,
        uses_ucs2=ucs2,
        android_api=_android_api(file, layout),
    )


def _interpreter(file: _File, layout: _Layout) -> str | None:
    fmt = layout.endian + _PHDR[layout.elf_class]
    entry = _PHDR_SIZE[layout.elf_class]
    table = file.pread(layout.phoff, layout.segments * entry)
    for index in range(layout.segments):
        values = struct.unpack_from(fmt, table, index * entry)
        if values[0] != _PT_INTERP:
            continue
        # p_offset and p_filesz: 2nd and 5th fields, or 3rd and 6th in ELF64 (p_flags moved)
        offset, filesz = (values[2], values[5]) if layout.elf_class == 64 else values[1:5:3]
        return (
            file.pread(offset, min(filesz, _PATH_MAX)).split(b"\0", 1)[0].decode("utf-8", "replace")
        )
    return None


def _dynamic(
    file: _File, layout: _Layout, tables: _Tables
) -> tuple[str | None, list[str], list[str], list[str]]:
    """DT_SONAME, DT_NEEDED, DT_RPATH and DT_RUNPATH, up to DT_NULL or the section's end."""
    soname: str | None = None
    needed: list[str] = []
    rpath: list[str] = []
    runpath: list[str] = []
    section = layout.by_name.get(".dynamic")
    if section is None or section.type != _SHT_DYNAMIC:
        return soname, needed, rpath, runpath
    data = _section_data(file, section)
    fmt = layout.endian + ("qQ" if layout.elf_class == 64 else "iI")
    entry = struct.calcsize(fmt)
    for tag, value in struct.iter_unpack(fmt, data[: len(data) // entry * entry]):
        if tag == _DT_NULL:
            break
        if tag == _DT_NEEDED:
            name = tables.linked(section).get(value)
            if not name:
                raise _MalformedError("a DT_NEEDED entry has an empty name")
            needed.append(name)
        elif tag == _DT_SONAME:
            soname = tables.linked(section).get(value)
        elif tag == _DT_RPATH:
            rpath.extend(tables.linked(section).get(value).split(":"))
        elif tag == _DT_RUNPATH:
            runpath.extend(tables.linked(section).get(value).split(":"))
    return soname, needed, rpath, runpath


_VERNEED = "HHIII"  # vn_version vn_cnt vn_file vn_aux vn_next (16 bytes in both classes)
_VERNAUX = "IHHII"  # vna_hash vna_flags vna_other vna_name vna_next


def _version_needs(
    file: _File, layout: _Layout, tables: _Tables
) -> tuple[list[tuple[str, tuple[str, ...]]], dict[int, tuple[str, str]]]:
    """The ``.gnu.version_r`` chains. Like the loader, a chain ends at a zero ``vn_next``
    or ``vna_next``; an entry outside the section, or visited twice, is malformed."""
    section = layout.by_name.get(".gnu.version_r")
    if section is None or section.type != _SHT_GNU_VERNEED:
        return [], {}
    data = _section_data(file, section)
    names = tables.linked(section)
    need_fmt, aux_fmt = layout.endian + _VERNEED, layout.endian + _VERNAUX
    needs: list[tuple[str, tuple[str, ...]]] = []
    index: dict[int, tuple[str, str]] = {}
    seen: set[int] = set()
    offset = 0
    for _ in range(section.info):
        if offset in seen or offset + 16 > len(data):
            raise _MalformedError(".gnu.version_r has an entry outside the section or in a loop")
        seen.add(offset)
        _, count, file_name, aux, following = struct.unpack_from(need_fmt, data, offset)
        library = names.get(file_name)
        versions: list[str] = []
        where = offset + aux
        for _ in range(count):
            if where in seen or where + 16 > len(data):
                raise _MalformedError(
                    ".gnu.version_r has an entry outside the section or in a loop"
                )
            seen.add(where)
            _, _, other, name, step = struct.unpack_from(aux_fmt, data, where)
            version = names.get(name)
            versions.append(version)
            index[other & 0x7FFF] = (version, library)
            if not step:
                break
            where += step
        needs.append((library, tuple(versions)))
        if not following:
            break
        offset += following
    return needs, index


def _scan_dynsym(
    file: _File,
    layout: _Layout,
    tables: _Tables,
    shown: str,
    version_index: dict[int, tuple[str, str]],
) -> tuple[tuple[SymbolNeed, ...], str | None, bool, bool]:
    dynsym = layout.by_name.get(".dynsym")
    if dynsym is None or dynsym.type != _SHT_DYNSYM:
        return (), None, False, False
    data = _section_data(file, dynsym)
    strtab = tables.linked(dynsym)
    endian = layout.endian
    if layout.elf_class == 64:
        fmt, order = endian + "IBBHQQ", (0, 1, 3)
    else:
        fmt, order = endian + "IIIBBH", (0, 3, 5)
    entsize = struct.calcsize(fmt)
    count = len(data) // entsize
    versym = layout.by_name.get(".gnu.version")
    versions: tuple[int, ...] = ()
    if versym is not None:
        vdata = _section_data(file, versym)
        versions = struct.unpack(f"{endian}{len(vdata) // 2}H", vdata[: len(vdata) // 2 * 2])

    module = Path(shown).name.split(".", 1)[0]
    init_names = {prefix + module: prefix + module for prefix, _ in _PY_INIT_PREFIXES}
    undefined: list[SymbolNeed] = []
    python_init: str | None = None
    pyfpe = ucs2 = False
    for index, fields in enumerate(struct.iter_unpack(fmt, data[: count * entsize])):
        name_off, info, shndx = (fields[i] for i in order)
        if index == 0:
            continue
        bind, kind = info >> 4, info & 0xF
        if shndx != _SHN_UNDEF:
            if kind == _STT_FUNC and python_init is None:
                name = strtab.get(name_off)
                if name in init_names:
                    python_init = name
            continue
        name = strtab.get(name_off)
        version = library = None
        if index < len(versions):
            found = version_index.get(versions[index] & 0x7FFF)
            if found is not None:
                version, library = found
        undefined.append(SymbolNeed(name, version, library, bind == _STB_WEAK))
        if name in _PYFPE_SYMBOLS and kind in (_STT_FUNC, _STT_NOTYPE):
            pyfpe = True
        if "PyUnicodeUCS2_" in name and kind == _STT_FUNC:
            ucs2 = True
    return tuple(undefined), python_init, pyfpe, ucs2


def _android_api(file: _File, layout: _Layout) -> int | None:
    """The API level in the NDK's ``.note.android.ident`` (owner "Android", type 1, the
    level as the first word of the description), written by its crtbegin objects."""
    section = layout.by_name.get(".note.android.ident")
    if section is None or section.type != _SHT_NOTE:
        return None
    data = _section_data(file, section)
    if len(data) < 12:
        return None
    namesz, descsz, kind = struct.unpack_from(layout.endian + "III", data, 0)
    name = data[12 : 12 + namesz]
    desc_at = 12 + ((namesz + 3) & ~3)
    if kind != 1 or name.rstrip(b"\0") != b"Android" or descsz < 4:
        return None
    if desc_at + 4 > len(data):
        return None
    (level,) = struct.unpack_from(layout.endian + "I", data, desc_at)
    return int(level)


def _x86_isa_level(file: _File, layout: _Layout) -> int:
    """The highest GNU_PROPERTY_X86_ISA_1_NEEDED level of the file's GNU property notes."""
    level = 1
    word = 8 if layout.elf_class == 64 else 4  # property alignment (x86-64 psABI)
    for section in layout.sections:
        if section.type != _SHT_NOTE:
            continue
        data = _section_data(file, section)
        offset = 0
        while offset + 12 <= len(data):
            namesz, descsz, kind = struct.unpack_from(layout.endian + "III", data, offset)
            offset += 12
            name = data[offset : offset + namesz]
            offset += (namesz + 3) & ~3
            desc = data[offset : offset + descsz]
            offset += (descsz + 3) & ~3
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
