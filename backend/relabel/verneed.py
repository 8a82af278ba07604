"""Symbol version requirements of one ELF file, read and rewritten in place.

This module owns the bytes of ``.gnu.version_r`` (Verneed/Vernaux records), ``.gnu.version``
(one 2-byte version index per dynamic symbol) and the ``st_name`` of undefined dynamic
symbols. It reads them the way ld.so does: the dynamic array through PT_DYNAMIC, and each
table through its DT_* address mapped by the PT_LOAD headers; section headers are only
updated when present so that binutils and pyelftools keep agreeing with the loader.

It never moves or grows a table itself. New strings and DT_NEEDED entries are added by
patchelf, which moves ``.dynstr`` (and the tables around it) to a new segment and fills the old
place with ``Z`` bytes; a version table that no longer fits where it was is written into that
freed, still mapped place. It decides nothing: :mod:`relabel.floor` says what to rewrite.

Only 64-bit little-endian files (x86_64, aarch64) are handled; anything else is refused.

It shares the format's numbers with :mod:`relabel.elf` (:mod:`relabel.elf.gabi`) but not
its reader, on purpose. That reader answers "what does this file need" from bounded
``pread`` calls and keeps no positions; this module must know the file offset of every
record it may rewrite, maps the whole file (read-only to report, writable only for the private
copy it rewrites, so only the pages of the tables it touches are ever read), and maps
it again after patchelf has moved tables. Every file it sees has been read by
:func:`relabel.elf.read_elf` first (the audit reads every file before the floor is
lowered), so the stricter checks happen there once; tying the floor to that reader's
private layout would make either change the other's behaviour.
"""

from __future__ import annotations

import mmap
import os
import shutil
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Union

from .elf.gabi import (
    DT_GNU_HASH,
    DT_HASH,
    DT_NEEDED,
    DT_NULL,
    DT_STRSZ,
    DT_STRTAB,
    DT_SYMTAB,
    DT_VERDEF,
    DT_VERDEFNUM,
    DT_VERNEED,
    DT_VERNEEDNUM,
    DT_VERSYM,
    ELF_MAGIC,
    PT_DYNAMIC,
    PT_LOAD,
    SHN_UNDEF,
    SHT_DYNSYM,
    SHT_GNU_VERNEED,
    VERSYM_HIDDEN,
)
from .errors import ElfError
from .patchelf import run

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

#: Bounds that keep a hostile file from making the reader loop or allocate without end.
MAX_DYNAMIC = 1 << 16
MAX_SYMBOLS = 1 << 22
MAX_VERSIONS = 1 << 14
VERNEED_SIZE = 16
VERNAUX_SIZE = 16

#: the bytes of a file: a mapping of it, or a copy in memory (tests)
Data = Union[bytes, bytearray, mmap.mmap]


def elf_hash(name: bytes) -> int:
    """The SysV ELF hash that ``vna_hash`` and ``vd_hash`` hold."""
    h = 0
    for c in name:
        h = ((h << 4) + c) & 0xFFFFFFFF
        g = h & 0xF0000000
        if g:
            h ^= g >> 24
        h &= ~g & 0xFFFFFFFF
    return h


@dataclass
class Vernaux:
    """One required version: ``name`` (e.g. GLIBC_2.17) under version index ``index``."""

    name: str
    index: int
    flags: int = 0
    hash: int = -1  # -1: compute from name when serialising
    name_offset: int = -1  # where the name sits in .dynstr (-1: look it up when serialising)


@dataclass
class Verneed:
    """One Verneed group: the versions required from the file ``file`` (a DT_NEEDED name)."""

    file: str
    entries: list[Vernaux] = field(default_factory=list)
    version: int = 1
    file_offset: int = -1


@dataclass(frozen=True)
class DynSymbol:
    index: int
    name: str
    name_offset: int
    info: int
    shndx: int
    version_index: int  # from .gnu.version, hidden bit cleared; 0 without a version table

    @property
    def defined(self) -> bool:
        return self.shndx != SHN_UNDEF

    @property
    def kind(self) -> int:
        return self.info & 0xF  # STT_*

    @property
    def binding(self) -> int:
        return self.info >> 4  # STB_*


@dataclass
class Image:
    """Everything :mod:`relabel.floor` needs from one file, with the file offsets to edit it."""

    path: str
    machine: int
    data: Data
    loads: list[tuple[int, int, int, int]]  # (vaddr, memsz, offset, filesz)
    dynamic_offset: int
    dynamic: list[tuple[int, int]]
    needed: list[str]
    strtab_offset: int
    strtab_size: int
    symbols: list[DynSymbol]
    symtab_offset: int
    versym_offset: int | None
    verneed: list[Verneed]
    verneed_offset: int | None
    verneed_size: int
    verdef_indices: set[int]

    def string(self, offset: int) -> str:
        return _cstring(self.data, self.strtab_offset, self.strtab_size, offset, self.path)

    def find_string(self, text: str) -> int | None:
        """Offset in .dynstr of ``text`` as a whole string or the tail of one (ld shares tails)."""
        table = bytes(self.data[self.strtab_offset : self.strtab_offset + self.strtab_size])
        at = table.find(text.encode() + b"\0") if text else 0
        return None if at == -1 else at

    def max_version_index(self) -> int:
        indices = [a.index for g in self.verneed for a in g.entries] + list(self.verdef_indices)
        return max(indices, default=1)

    def dynamic_value(self, tag: int) -> int | None:
        for t, v in self.dynamic:
            if t == tag:
                return v
        return None


def _cstring(data: Data, base: int, size: int, offset: int, path: str) -> str:
    if not 0 <= offset < size:
        raise ElfError(path, f"string offset {offset} outside .dynstr ({size} bytes)")
    end = data.find(b"\0", base + offset, base + size)
    if end == -1:
        raise ElfError(path, "unterminated string in .dynstr")
    try:
        return bytes(data[base + offset : end]).decode()
    except UnicodeDecodeError:
        raise ElfError(path, "a .dynstr string is not UTF-8") from None


def _offset_of(loads: Sequence[tuple[int, int, int, int]], vaddr: int, size: int, path: str) -> int:
    """File offset of ``size`` bytes at ``vaddr``, which one PT_LOAD must map from the file."""
    for start, _memsz, offset, filesz in loads:
        if start <= vaddr and vaddr + size <= start + filesz:
            return offset + (vaddr - start)
    raise ElfError(path, f"address {vaddr:#x} (+{size}) is not mapped from the file by a PT_LOAD")


def _vaddr_of(loads: Sequence[tuple[int, int, int, int]], offset: int) -> int | None:
    for start, _memsz, off, filesz in loads:
        if off <= offset < off + filesz:
            return start + (offset - off)
    return None


def read(path: str | os.PathLike[str]) -> Image:
    """Parse the dynamic symbol and version tables of the file at ``path``.

    The file is mapped, not copied: only the pages of the tables are read, so a 150 MiB
    library costs a few pages of memory, not its size.
    """
    return parse(_map(path, writable=False), str(path))


def _map(path: str | os.PathLike[str], *, writable: bool) -> Data:
    with Path(path).open("r+b" if writable else "rb") as fh:
        if os.fstat(fh.fileno()).st_size < 64:
            # mmap refuses an empty file; anything this short is no ELF file anyway
            return fh.read()
        access = mmap.ACCESS_WRITE if writable else mmap.ACCESS_READ
        return mmap.mmap(fh.fileno(), 0, access=access)


def _segments(
    data: Data, shown: str
) -> tuple[int, list[tuple[int, int, int, int]], int, list[tuple[int, int]]]:
    """e_machine, the PT_LOAD mappings, and the dynamic array (offset, entries before DT_NULL)."""
    if len(data) < 64 or data[:4] != ELF_MAGIC:
        raise ElfError(shown, "not an ELF file")
    if data[4] != 2 or data[5] != 1:
        raise ElfError(shown, "only 64-bit little-endian files have their glibc floor lowered")
    (machine,) = struct.unpack_from("<H", data, 18)
    (phoff,) = struct.unpack_from("<Q", data, 32)
    phentsize, phnum = struct.unpack_from("<HH", data, 54)
    if phentsize != 56 or phoff + phnum * 56 > len(data):
        raise ElfError(shown, "program headers outside the file")
    loads: list[tuple[int, int, int, int]] = []
    dyn: tuple[int, int] | None = None
    for i in range(phnum):
        p_type, _flags, p_offset, p_vaddr, _paddr, p_filesz, p_memsz = struct.unpack_from(
            "<IIQQQQQ", data, phoff + i * 56
        )
        if p_type == PT_LOAD:
            if p_offset + p_filesz > len(data):
                raise ElfError(shown, "a PT_LOAD segment extends past the end of the file")
            loads.append((p_vaddr, p_memsz, p_offset, p_filesz))
        elif p_type == PT_DYNAMIC:
            dyn = (p_offset, p_filesz)
    if dyn is None:
        raise ElfError(shown, "no PT_DYNAMIC: not a dynamically linked file")
    dyn_offset, dyn_size = dyn
    if dyn_offset + dyn_size > len(data):
        raise ElfError(shown, "PT_DYNAMIC extends past the end of the file")
    dynamic: list[tuple[int, int]] = []
    for i in range(min(dyn_size // 16, MAX_DYNAMIC)):
        tag, value = struct.unpack_from("<qQ", data, dyn_offset + i * 16)
        if tag == DT_NULL:
            break
        dynamic.append((tag, value))
    return machine, loads, dyn_offset, dynamic


def parse(data: Data, shown: str) -> Image:
    """Parse a whole file held in ``data`` (edited in place by :func:`apply`)."""
    machine, loads, dyn_offset, dynamic = _segments(data, shown)
    values: dict[int, int] = {}
    for tag, value in dynamic:
        values.setdefault(tag, value)
    for tag, name in ((DT_STRTAB, "DT_STRTAB"), (DT_STRSZ, "DT_STRSZ"), (DT_SYMTAB, "DT_SYMTAB")):
        if tag not in values:
            raise ElfError(shown, f"no {name} in the dynamic array")
    strsz = values[DT_STRSZ]
    stroff = _offset_of(loads, values[DT_STRTAB], strsz, shown)
    image_needed = []
    for tag, value in dynamic:
        if tag == DT_NEEDED:
            image_needed.append(_cstring(data, stroff, strsz, value, shown))
    count = max(_symbol_count(data, loads, values, shown), _section_symbol_count(data, values))
    symoff = _offset_of(loads, values[DT_SYMTAB], count * 24, shown)
    versym_offset = None
    if DT_VERSYM in values:
        versym_offset = _offset_of(loads, values[DT_VERSYM], count * 2, shown)
    symbols: list[DynSymbol] = []
    for i in range(count):
        st_name, st_info, _other, st_shndx = struct.unpack_from("<IBBH", data, symoff + i * 24)
        ver = 0
        if versym_offset is not None:
            (ver,) = struct.unpack_from("<H", data, versym_offset + i * 2)
        name = _cstring(data, stroff, strsz, st_name, shown) if st_name else ""
        symbols.append(DynSymbol(i, name, st_name, st_info, st_shndx, ver & ~VERSYM_HIDDEN))
    verneed: list[Verneed] = []
    verneed_offset = None
    verneed_size = 0
    if DT_VERNEED in values:
        num = values.get(DT_VERNEEDNUM, 0)
        if num > MAX_VERSIONS:
            raise ElfError(shown, f"DT_VERNEEDNUM {num} is implausible")
        verneed_offset = _offset_of(loads, values[DT_VERNEED], VERNEED_SIZE, shown)
        verneed, verneed_size = parse_verneed(
            data,
            verneed_offset,
            num,
            lambda o: _cstring(data, stroff, strsz, o, shown),
            shown,
        )
    verdef_indices: set[int] = set()
    if DT_VERDEF in values:
        verdef_indices = _verdef_indices(data, loads, values, shown)
    return Image(
        path=shown,
        machine=machine,
        data=data,
        loads=loads,
        dynamic_offset=dyn_offset,
        dynamic=dynamic,
        needed=image_needed,
        strtab_offset=stroff,
        strtab_size=strsz,
        symbols=symbols,
        symtab_offset=symoff,
        versym_offset=versym_offset,
        verneed=verneed,
        verneed_offset=verneed_offset,
        verneed_size=verneed_size,
        verdef_indices=verdef_indices,
    )


def _section_symbol_count(data: Data, values: dict[int, int]) -> int:
    """Entries of the SHT_DYNSYM section at DT_SYMTAB, when section headers exist.

    A GNU hash table covers only the symbols a file exports: an executable exporting
    nothing has an empty one, and its undefined symbols are counted only here. Without
    section headers they stay uncounted, which can only make requirements look unused
    (refused), never rewrite a symbol that is not there.
    """
    (shoff,) = struct.unpack_from("<Q", data, 40)
    shentsize, shnum = struct.unpack_from("<HH", data, 58)
    if shoff == 0 or shentsize != 64 or shoff + shnum * 64 > len(data):
        return 0
    for i in range(shnum):
        _name, sh_type, _flags, sh_addr, _off, sh_size = struct.unpack_from(
            "<IIQQQQ", data, shoff + i * 64
        )
        if sh_type == SHT_DYNSYM and sh_addr == values[DT_SYMTAB]:
            return min(int(sh_size) // 24, MAX_SYMBOLS)
    return 0


def _symbol_count(
    data: Data, loads: list[tuple[int, int, int, int]], values: dict[int, int], shown: str
) -> int:
    """Number of dynamic symbols, as ld.so would bound them: DT_HASH nchain or DT_GNU_HASH."""
    if DT_HASH in values:
        off = _offset_of(loads, values[DT_HASH], 8, shown)
        (nchain,) = struct.unpack_from("<I", data, off + 4)
        if nchain > MAX_SYMBOLS:
            raise ElfError(shown, f"DT_HASH claims {nchain} symbols")
        return int(nchain)
    if DT_GNU_HASH not in values:
        raise ElfError(shown, "neither DT_HASH nor DT_GNU_HASH: the symbol count is unknown")
    off = _offset_of(loads, values[DT_GNU_HASH], 16, shown)
    nbuckets, symoffset, bloom_size, _shift = struct.unpack_from("<IIII", data, off)
    if nbuckets > MAX_SYMBOLS or bloom_size > MAX_SYMBOLS:
        raise ElfError(shown, "DT_GNU_HASH header is implausible")
    buckets_at = off + 16 + bloom_size * 8
    _offset_of(loads, values[DT_GNU_HASH], 16 + bloom_size * 8 + nbuckets * 4, shown)
    top = 0
    for i in range(nbuckets):
        (b,) = struct.unpack_from("<I", data, buckets_at + i * 4)
        top = max(top, b)
    if top < symoffset:
        return int(symoffset)
    chains_at = buckets_at + nbuckets * 4
    index = top
    while True:
        at = chains_at + (index - symoffset) * 4
        if at + 4 > len(data) or index > MAX_SYMBOLS:
            raise ElfError(shown, "DT_GNU_HASH chain runs off the file")
        (value,) = struct.unpack_from("<I", data, at)
        index += 1
        if value & 1:
            return index


def parse_verneed(
    data: Data, offset: int, count: int, name_at: Callable[[int], str], shown: str
) -> tuple[list[Verneed], int]:
    """Parse ``count`` Verneed records at ``offset``; returns them and the bytes they span."""
    groups: list[Verneed] = []
    at = offset
    end = offset
    for _ in range(count):
        if at + VERNEED_SIZE > len(data):
            raise ElfError(shown, "a Verneed record runs off the file")
        version, cnt, file_off, aux, nxt = struct.unpack_from("<HHIII", data, at)
        if cnt > MAX_VERSIONS:
            raise ElfError(shown, "a Verneed record claims too many versions")
        group = Verneed(name_at(file_off), [], version, file_off)
        end = max(end, at + VERNEED_SIZE)
        a = at + aux
        for _ in range(cnt):
            if a + VERNAUX_SIZE > len(data) or a < offset:
                raise ElfError(shown, "a Vernaux record runs off the file")
            h, flags, other, name_off, anext = struct.unpack_from("<IHHII", data, a)
            group.entries.append(Vernaux(name_at(name_off), other, flags, h, name_off))
            end = max(end, a + VERNAUX_SIZE)
            if anext == 0:
                break
            a += anext
        groups.append(group)
        if nxt == 0:
            break
        at += nxt
    return groups, end - offset


def serialise_verneed(groups: Sequence[Verneed], offset_of: Callable[[str], int]) -> bytes:
    """The records ``ld`` would write: each group followed by its entries, all 16 bytes long.

    ``offset_of(text)`` gives the .dynstr offset of a string; an entry's own ``name_offset``
    (from parsing) is kept when it is set, so parse then serialise gives the same bytes.
    """
    out = bytearray()
    for gi, group in enumerate(groups):
        last_group = gi == len(groups) - 1
        size = VERNEED_SIZE + VERNAUX_SIZE * len(group.entries)
        file_off = group.file_offset if group.file_offset >= 0 else offset_of(group.file)
        out += struct.pack(
            "<HHIII",
            group.version,
            len(group.entries),
            file_off,
            VERNEED_SIZE if group.entries else 0,
            0 if last_group else size,
        )
        for ai, aux in enumerate(group.entries):
            name_off = aux.name_offset if aux.name_offset >= 0 else offset_of(aux.name)
            h = aux.hash if aux.hash >= 0 else elf_hash(aux.name.encode())
            nxt = 0 if ai == len(group.entries) - 1 else VERNAUX_SIZE
            out += struct.pack("<IHHII", h, aux.flags, aux.index, name_off, nxt)
    return bytes(out)


def _verdef_indices(
    data: Data, loads: list[tuple[int, int, int, int]], values: dict[int, int], shown: str
) -> set[int]:
    out: set[int] = set()
    at = _offset_of(loads, values[DT_VERDEF], 20, shown)
    for _ in range(min(values.get(DT_VERDEFNUM, 0), MAX_VERSIONS)):
        if at + 20 > len(data):
            raise ElfError(shown, "a Verdef record runs off the file")
        _version, _flags, ndx, _cnt, _hash, _aux, nxt = struct.unpack_from("<HHHHIII", data, at)
        out.add(ndx & ~VERSYM_HIDDEN)
        if nxt == 0:
            break
        at += nxt
    return out


# --- rewriting ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Retarget:
    """Make dynamic symbol ``index`` (``name``) require ``new_name@new_version`` of ``new_file``."""

    index: int
    name: str
    new_name: str
    new_file: str
    new_version: str


@dataclass(frozen=True)
class Rewrite:
    """Everything to change in one file; ``add_needed`` are providers missing from DT_NEEDED."""

    retargets: tuple[Retarget, ...]
    add_needed: tuple[str, ...]
    #: (file, version) requirements to hold without a symbol: a floor the file must keep
    pins: tuple[tuple[str, str], ...] = ()


class RewriteError(Exception):
    """The file cannot be rewritten as asked; the caller keeps the original and reports why."""


def _patchelf(patchelf: str, args: list[str], path: Path) -> None:
    # patchelf.run: a failure to start it, and output that is not UTF-8, are clean errors too
    run([patchelf, *args, str(path)], path.name)


def plan_layout(image: Image, rewrite: Rewrite) -> tuple[list[Verneed], dict[int, int]]:
    """The new Verneed groups, and dynsym index -> new version index.

    Existing indices are never renumbered; a (file, version) pair already required keeps its
    index; new pairs get fresh indices above every Verdef/Vernaux index. An entry is dropped
    only when the rewrite itself moved every symbol off it.
    """
    groups = [
        Verneed(g.file, [Vernaux(a.name, a.index, a.flags, a.hash) for a in g.entries], g.version)
        for g in image.verneed
    ]
    by_pair = {(g.file, a.name): a for g in groups for a in g.entries}
    next_index = image.max_version_index() + 1
    new_index: dict[int, int] = {}
    moved_from: set[int] = set()
    for rt in rewrite.retargets:
        sym = image.symbols[rt.index]
        moved_from.add(sym.version_index)
        aux = by_pair.get((rt.new_file, rt.new_version))
        if aux is None:
            flags = _flags_of(image, sym.version_index)
            aux = Vernaux(rt.new_version, next_index, flags)
            next_index += 1
            group = next((g for g in groups if g.file == rt.new_file), None)
            if group is None:
                group = Verneed(rt.new_file)
                groups.append(group)
            group.entries.append(aux)
            by_pair[(rt.new_file, rt.new_version)] = aux
        new_index[rt.index] = aux.index
    for file, version in rewrite.pins:
        if (file, version) not in by_pair:
            aux = Vernaux(version, next_index)
            next_index += 1
            group = next((g for g in groups if g.file == file), None)
            if group is None:
                group = Verneed(file)
                groups.append(group)
            group.entries.append(aux)
            by_pair[(file, version)] = aux
    if next_index >= VERSYM_HIDDEN:
        raise RewriteError("too many version indices")
    still_used = {s.version_index for s in image.symbols if s.index not in new_index}
    still_used |= set(new_index.values())
    emptied = moved_from - still_used
    for g in groups:
        g.entries = [a for a in g.entries if a.index not in emptied]
    groups = [g for g in groups if g.entries]
    return groups, new_index


def _flags_of(image: Image, index: int) -> int:
    for g in image.verneed:
        for a in g.entries:
            if a.index == index:
                return a.flags
    return 0


def apply(source: Path, dest: Path, rewrite: Rewrite, patchelf: str) -> None:
    """Write ``source`` rewritten as ``rewrite`` says to ``dest`` (``dest`` untouched on error)."""
    image = read(source)
    groups, new_index = plan_layout(image, rewrite)
    strings = [g.file for g in groups] + [a.name for g in groups for a in g.entries]
    strings += [rt.new_name for rt in rewrite.retargets]
    missing = sorted({s for s in strings if image.find_string(s) is None} - set(rewrite.add_needed))
    size = len(serialise_verneed(groups, lambda _s: 0))
    grows = size > image.verneed_size
    tmp = dest.with_name(dest.name + ".floor-tmp")
    shutil.copyfile(source, tmp)
    try:
        old_strtab = (image.dynamic_value(DT_STRTAB), image.strtab_size)
        add = list(rewrite.add_needed) + missing
        if grows and not add:
            # Nothing to add, but the table must move: have patchelf move .dynstr anyway.
            missing = ["relabel-floor"]
            add = missing
        if add:
            args: list[str] = []
            for name in add:
                args += ["--add-needed", name]
            _patchelf(patchelf, args, tmp)
        if missing:
            args = []
            for name in missing:
                args += ["--remove-needed", name]
            _patchelf(patchelf, args, tmp)
        image = parse(_map(tmp, writable=True), str(tmp))
        _write(image, groups, new_index, rewrite, old_strtab if add else None)
        _close(image.data)
        tmp.replace(dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write(
    image: Image,
    groups: list[Verneed],
    new_index: dict[int, int],
    rewrite: Rewrite,
    freed: tuple[int | None, int] | None,
) -> None:
    if image.verneed_offset is None or image.versym_offset is None:
        raise RewriteError("the file has no symbol version tables")
    data = image.data
    if isinstance(data, bytes):
        raise RewriteError("the file was read, not mapped for writing")

    def offset_of(text: str) -> int:
        at = image.find_string(text)
        if at is None:
            raise RewriteError(f"the string {text!r} is missing from .dynstr after patchelf")
        return at

    for g in groups:
        g.file_offset = -1
        for a in g.entries:
            a.name_offset = -1
    blob = serialise_verneed(groups, offset_of)
    if len(blob) <= image.verneed_size:
        where = image.verneed_offset
        data[where : where + image.verneed_size] = blob + b"\0" * (image.verneed_size - len(blob))
    else:
        where = _freed_place(image, freed, len(blob))
        data[where : where + len(blob)] = blob
        _set_dynamic(image, DT_VERNEED, _vaddr(image, where))
    _set_dynamic(image, DT_VERNEEDNUM, len(groups))
    _update_section_header(image, where, len(blob), len(groups))
    for rt in rewrite.retargets:
        sym = image.symbols[rt.index]
        if sym.name != rt.name or sym.defined:
            raise RewriteError(f"dynamic symbol {rt.index} is not the undefined {rt.name}")
        slot = image.versym_offset + 2 * rt.index
        struct.pack_into("<H", image.data, slot, new_index[rt.index])
        if rt.new_name != rt.name:
            struct.pack_into(
                "<I", image.data, image.symtab_offset + 24 * rt.index, offset_of(rt.new_name)
            )


def _close(data: Data) -> None:
    """Write a writable mapping's edits back to its file and release it."""
    if isinstance(data, mmap.mmap):
        data.flush()
        data.close()


def _freed_place(image: Image, freed: tuple[int | None, int] | None, size: int) -> int:
    """File offset of ``size`` bytes in the .dynstr space patchelf vacated (8-byte aligned)."""
    if freed is None:
        raise RewriteError("the version table needs more room and no freed space exists")
    vaddr, length = freed
    if vaddr is None:
        raise RewriteError("the version table needs more room and no freed space exists")
    start = (vaddr + 7) & ~7
    if start + size > vaddr + length:
        raise RewriteError(f"the version table needs {size} bytes; the freed space has {length}")
    try:
        at = _offset_of(image.loads, start, size, image.path)
    except ElfError:
        raise RewriteError("the freed space is no longer mapped") from None
    if any(b != ord("Z") for b in image.data[at : at + size]):
        raise RewriteError("the space patchelf freed is in use")
    for tag in (DT_STRTAB, DT_SYMTAB, DT_HASH, DT_GNU_HASH, DT_VERSYM, DT_VERDEF):
        value = image.dynamic_value(tag)
        if value is not None and start <= value < start + size:
            raise RewriteError("the space patchelf freed holds a dynamic table")
    for _idx, sh_off, sh_size, _type in _sections(image):
        if sh_size and sh_off < at + size and at < sh_off + sh_size and _type != 8:
            raise RewriteError("the space patchelf freed overlaps a section")
    return at


def _sections(image: Image) -> Iterable[tuple[int, int, int, int]]:
    data = image.data
    (shoff,) = struct.unpack_from("<Q", data, 40)
    shentsize, shnum = struct.unpack_from("<HH", data, 58)
    if shoff == 0 or shentsize != 64 or shoff + shnum * 64 > len(data):
        return
    for i in range(shnum):
        _name, sh_type, _flags, _addr, sh_offset, sh_size = struct.unpack_from(
            "<IIQQQQ", data, shoff + i * 64
        )
        yield i, sh_offset, sh_size, sh_type


def _update_section_header(image: Image, where: int, size: int, count: int) -> None:
    data = image.data
    (shoff,) = struct.unpack_from("<Q", data, 40)
    for i, _off, _size, sh_type in list(_sections(image)):
        if sh_type != SHT_GNU_VERNEED:
            continue
        base = shoff + i * 64
        struct.pack_into(
            "<QQQ", data, base + 16, _vaddr(image, where), where, size
        )  # sh_addr, sh_offset, sh_size
        struct.pack_into("<I", data, base + 44, count)  # sh_info: number of Verneed records


def _vaddr(image: Image, offset: int) -> int:
    vaddr = _vaddr_of(image.loads, offset)
    if vaddr is None:
        raise RewriteError(f"file offset {offset:#x} is not mapped by a PT_LOAD")
    return vaddr


def _set_dynamic(image: Image, tag: int, value: int) -> None:
    for i in range(len(image.dynamic)):
        at = image.dynamic_offset + 16 * i
        (t,) = struct.unpack_from("<q", image.data, at)
        if t == tag:
            struct.pack_into("<Q", image.data, at + 8, value)
            return
    raise RewriteError(f"the dynamic array has no tag {tag:#x}")
