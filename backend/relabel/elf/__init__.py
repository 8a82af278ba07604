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

The file is read with ``struct`` and ``pread``, only what is needed; the header values are
named (``EM_X86_64``, ``ET_DYN``...) from the tables in :mod:`relabel.elf.gabi`. Files come
from wheels built elsewhere, so every table must lie inside the file, every loop is bounded
by the file's size, no read or allocation is bigger than the file, and names are looked up
under a budget; anything else is an :class:`~relabel.errors.ElfError`, never a hang or
another exception. It never executes anything, never follows ``DT_NEEDED``, and knows
nothing of policies.

The package is split by what each part owns: :mod:`~relabel.elf.layout` (headers, bounded
reads, the PT_LOAD mapping), :mod:`~relabel.elf.dynamic` (the dynamic array, version
needs, the section cross-check), :mod:`~relabel.elf.symbols` (the dynamic symbol table
and its hash tables), :mod:`~relabel.elf.notes` and :mod:`~relabel.elf.gabi` (the
format's numbers). This module holds the public record and :func:`read_elf`, which puts
them together; architecture names come from :mod:`relabel.arch`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from relabel.arch import from_elf, is_loader
from relabel.elf.dynamic import (
    check_sections,
    dynamic_strings,
    read_dynamic,
    version_needs,
)
from relabel.elf.gabi import (
    DT_RPATH,
    DT_RUNPATH,
    DT_SONAME,
    DT_SYMTAB,
    DT_VERSYM,
    ELF_MAGIC,
    PATH_MAX,
    PT_INTERP,
)
from relabel.elf.layout import File, Image, MalformedError, read_layout
from relabel.elf.notes import android_api, x86_isa_level
from relabel.elf.symbols import SymbolNeed, Symbols, SymbolTable, scan_dynsym, symbol_count
from relabel.errors import ElfError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from relabel.elf.dynamic import Dynamic
    from relabel.elf.layout import Layout

__all__ = ["ELF_MAGIC", "ElfInfo", "SymbolNeed", "is_loader", "looks_like_elf", "read_elf"]

# ARM EABI flags (ELF for the ARM architecture, section 4.3.1): armv7l wheels must be
# EABI version 5 and hard-float, as the manylinux armv7l images are.
_EF_ARM_EABIMASK = 0xFF000000
_EF_ARM_EABI_VER5 = 0x05000000
_EF_ARM_ABI_FLOAT_HARD = 0x00000400


# read by attribute, never compared: no generated __eq__ (each costs start-up time)
@dataclass(frozen=True, eq=False)
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


def looks_like_elf(head: bytes) -> bool:
    return head[:4] == ELF_MAGIC


def read_elf(path: str | os.PathLike[str], display: str | None = None) -> ElfInfo:
    """Parse ``path``; raise :class:`ElfError` (naming ``display``) if it is not a sane ELF."""
    shown = display if display is not None else os.fspath(path)
    try:
        with Path(path).open("rb") as stream:
            return _parse(File(stream), shown)
    except MalformedError as exc:
        raise ElfError(shown, str(exc)) from None
    except OSError as exc:
        raise ElfError(shown, exc.strerror or str(exc)) from None


def _parse(file: File, shown: str) -> ElfInfo:
    layout = read_layout(file)
    machine = layout.machine
    elf_class = layout.elf_class
    little = layout.endian == "<"
    arch = from_elf(machine, elf_class, little)
    arch_problem = None if arch else f"unsupported machine {machine} ({elf_class}-bit)"
    if arch == "armv7l":
        flags = layout.flags
        if flags & _EF_ARM_EABIMASK != _EF_ARM_EABI_VER5:
            arch, arch_problem = None, "ARM EABI version is not 5"
        elif flags & _EF_ARM_ABI_FLOAT_HARD == 0:
            arch, arch_problem = None, "ARM code is not hard-float"

    image = Image(file, layout.segments)
    dynamic = read_dynamic(file, layout, image)
    linked = _Linked() if dynamic is None else _linked_info(file, layout, image, dynamic, shown)
    check_sections(file, layout, dynamic, linked.exact_count)
    return ElfInfo(
        path=shown,
        elf_class=elf_class,
        little_endian=little,
        machine=machine,
        osabi=layout.osabi,
        arch=arch,
        arch_problem=arch_problem,
        isa_level=x86_isa_level(file, layout) if arch == "x86_64" else 1,
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
        android_api=android_api(file, layout),
        search_path_entries=0 if dynamic is None else dynamic.search_paths,
    )


# internal, parsed once and taken apart: never compared, shown nor assigned to, so it gets
# no generated __eq__, __repr__ or frozen guards (each costs start-up time)
@dataclass(eq=False, repr=False)
class _Linked:
    """What the dynamic array says: the file's part of ElfInfo about linking."""

    soname: str | None = None
    needed: tuple[str, ...] = ()
    rpath: tuple[str, ...] = ()
    runpath: tuple[str, ...] = ()
    version_needs: tuple[tuple[str, tuple[str, ...]], ...] = ()
    symbols: Symbols = field(default_factory=Symbols)
    exact_count: int | None = 0  # DT_SYMTAB's length where a hash table gives it


def _linked_info(file: File, layout: Layout, image: Image, dynamic: Dynamic, shown: str) -> _Linked:
    strings = dynamic_strings(image, dynamic)
    needed = tuple(strings.get(offset) for offset in dynamic.needed)
    if not all(needed):
        raise MalformedError("a DT_NEEDED entry has an empty name")
    tags = dynamic.tags

    def path_list(tag: int) -> tuple[str, ...]:
        return tuple(p for p in strings.get(tags[tag]).split(":") if p) if tag in tags else ()

    needs, version_index = version_needs(file, layout, image, tags, strings)
    count, exact = symbol_count(file, layout, image, tags, layout.machine)
    symbols = Symbols()
    if count:
        table = SymbolTable(layout, image, tags[DT_SYMTAB], count)
        versym = b""
        if tags.get(DT_VERSYM):
            versym = image.read(tags[DT_VERSYM], count * 2, "the symbol versions (DT_VERSYM)")
        module = Path(shown).name.split(".", 1)[0]
        symbols = scan_dynsym(table, versym, strings, version_index, module)
    return _Linked(
        soname=strings.get(tags[DT_SONAME]) if DT_SONAME in tags else None,
        needed=needed,
        rpath=path_list(DT_RPATH),
        runpath=path_list(DT_RUNPATH),
        version_needs=tuple(needs),
        symbols=symbols,
        exact_count=count if exact else None,
    )


def _interpreter(file: File, layout: Layout) -> str | None:
    for segment in layout.segments:
        if segment.type == PT_INTERP:
            data = file.pread(segment.offset, min(segment.filesz, PATH_MAX))
            return data.split(b"\0", 1)[0].decode("utf-8", "replace")
    return None
