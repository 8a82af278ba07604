"""Read one ELF file, once, into a plain :class:`ElfInfo` record.

This is the only module that uses pyelftools. It reads headers, the dynamic section, the
version-needed section, the GNU property notes, and the dynamic symbol table (parsed with
``struct`` directly, because pyelftools' per-symbol objects are slow on large libraries).
It never executes anything, never follows ``DT_NEEDED``, and knows nothing of policies.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from elftools.common.exceptions import ELFError, ELFParseError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerNeedSection
from elftools.elf.sections import NoteSection
from elftools.elf.segments import InterpSegment

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
            return _parse(stream, shown)
    except ElfError:
        raise
    except (ELFError, ELFParseError, struct.error, ValueError, KeyError, IndexError) as exc:
        raise ElfError(shown, str(exc) or type(exc).__name__) from None
    except (AssertionError, TypeError, AttributeError, OverflowError, UnicodeDecodeError) as exc:
        # pyelftools asserts and trips over impossible header values in garbled files.
        raise ElfError(shown, f"malformed ({type(exc).__name__}: {exc})") from None
    except OSError as exc:
        raise ElfError(shown, exc.strerror or str(exc)) from None


def _parse(stream: BinaryIO, shown: str) -> ElfInfo:
    elf = ELFFile(stream)
    header = elf.header
    machine = str(header["e_machine"])
    elf_class = int(elf.elfclass)
    little = bool(elf.little_endian)
    arch = _ARCHES.get((machine, elf_class, little))
    arch_problem = None if arch else f"unsupported machine {machine} ({elf_class}-bit)"
    if arch == "armv7l":
        flags = int(header["e_flags"])
        if flags & _EF_ARM_EABIMASK != _EF_ARM_EABI_VER5:
            arch, arch_problem = None, "ARM EABI version is not 5"
        elif flags & _EF_ARM_ABI_FLOAT_HARD == 0:
            arch, arch_problem = None, "ARM code is not hard-float"

    interpreter = None
    for segment in elf.iter_segments():
        if isinstance(segment, InterpSegment):
            interpreter = segment.get_interp_name()
            break

    soname: str | None = None
    needed: list[str] = []
    rpath: list[str] = []
    runpath: list[str] = []
    dynamic = elf.get_section_by_name(".dynamic")
    if isinstance(dynamic, DynamicSection):
        for tag in dynamic.iter_tags():
            # pyelftools sets the decoded string as an attribute named after the tag.
            kind = tag.entry.d_tag
            if kind == "DT_NEEDED":
                needed.append(str(getattr(tag, "needed", "")))
            elif kind == "DT_SONAME":
                soname = str(getattr(tag, "soname", ""))
            elif kind == "DT_RPATH":
                rpath.extend(str(getattr(tag, "rpath", "")).split(":"))
            elif kind == "DT_RUNPATH":
                runpath.extend(str(getattr(tag, "runpath", "")).split(":"))

    version_needs: list[tuple[str, tuple[str, ...]]] = []
    version_index: dict[int, tuple[str, str]] = {}
    verneed = elf.get_section_by_name(".gnu.version_r")
    if isinstance(verneed, GNUVerNeedSection):
        for need, auxes in verneed.iter_versions():
            library = str(need.name)
            names = []
            for aux in auxes:
                names.append(str(aux.name))
                version_index[int(aux["vna_other"]) & 0x7FFF] = (str(aux.name), library)
            version_needs.append((library, tuple(names)))

    undefined, python_init, pyfpe, ucs2 = _scan_dynsym(elf, shown, version_index)

    return ElfInfo(
        path=shown,
        elf_class=elf_class,
        little_endian=little,
        machine=machine,
        osabi=str(header["e_ident"]["EI_OSABI"]),
        arch=arch,
        arch_problem=arch_problem,
        isa_level=_x86_isa_level(elf) if arch == "x86_64" else 1,
        elf_type=str(header["e_type"]),
        interpreter=interpreter,
        soname=soname,
        needed=tuple(needed),
        rpath=tuple(p for p in rpath if p),
        runpath=tuple(p for p in runpath if p),
        version_needs=tuple(version_needs),
        undefined=undefined,
        python_init=python_init,
        uses_pyfpe=pyfpe,
        uses_ucs2=ucs2,
    )


def _scan_dynsym(
    elf: ELFFile, shown: str, version_index: dict[int, tuple[str, str]]
) -> tuple[tuple[SymbolNeed, ...], str | None, bool, bool]:
    dynsym = elf.get_section_by_name(".dynsym")
    if dynsym is None or dynsym["sh_type"] != "SHT_DYNSYM":
        return (), None, False, False
    strtab = elf.get_section(int(dynsym["sh_link"])).data()
    data = dynsym.data()
    endian = "<" if elf.little_endian else ">"
    if elf.elfclass == 64:
        fmt, order = endian + "IBBHQQ", (0, 1, 3)
    else:
        fmt, order = endian + "IIIBBH", (0, 3, 5)
    entsize = struct.calcsize(fmt)
    count = len(data) // entsize
    versym = elf.get_section_by_name(".gnu.version")
    versions: tuple[int, ...] = ()
    if versym is not None:
        vdata = versym.data()
        versions = struct.unpack(f"{endian}{len(vdata) // 2}H", vdata[: len(vdata) // 2 * 2])

    def name_at(offset: int) -> str:
        end = strtab.find(b"\0", offset)
        if offset >= len(strtab) or end < 0:
            raise ElfError(shown, "symbol name outside the string table")
        return strtab[offset:end].decode("utf-8", "replace")

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
                name = name_at(name_off)
                if name in init_names:
                    python_init = name
            continue
        name = name_at(name_off)
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


def _x86_isa_level(elf: ELFFile) -> int:
    level = 1
    for section in elf.iter_sections():
        if not isinstance(section, NoteSection):
            continue
        for note in section.iter_notes():
            if note["n_type"] != "NT_GNU_PROPERTY_TYPE_0" or note["n_name"] != "GNU":
                continue
            for prop in note["n_desc"]:
                if prop.pr_type != "GNU_PROPERTY_X86_ISA_1_NEEDED" or prop.pr_datasz != 4:
                    continue
                bits = int(prop.pr_data)
                if bits & _X86_ISA_V4:
                    level = max(level, 4)
                elif bits & _X86_ISA_V3:
                    level = max(level, 3)
                elif bits & _X86_ISA_V2:
                    level = max(level, 2)
    return level
