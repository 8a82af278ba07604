"""Numbers of the ELF format that relabel reads (gABI, the GNU extensions, glibc's elf.h).

Only constants: names for the values found in headers, segments, sections, the dynamic
array and symbol tables. Shared by the reader (:mod:`relabel.elf`) and by the version
table editor (:mod:`relabel.verneed`), so that each number is written down once.
"""

from __future__ import annotations

ELF_MAGIC = b"\x7fELF"

#: size of one symbol table entry (Elf64_Sym, Elf32_Sym)
SYM_SIZE = {64: 24, 32: 16}

PT_LOAD = 1
PT_DYNAMIC = 2
PT_INTERP = 3
PT_NOTE = 4
PT_GNU_PROPERTY = 0x6474E553

PN_XNUM = SHN_XINDEX = 0xFFFF
SHN_UNDEF = 0
SHF_ALLOC = 0x2
SHF_COMPRESSED = 0x800
SHT_STRTAB = 3
SHT_DYNAMIC = 6
SHT_NOBITS = 8
SHT_DYNSYM = 11
SHT_GNU_VERNEED = 0x6FFFFFFE
SHT_GNU_VERSYM = 0x6FFFFFFF

DT_NULL = 0
DT_NEEDED = 1
DT_PLTRELSZ = 2
DT_HASH = 4
DT_STRTAB = 5
DT_SYMTAB = 6
DT_RELA = 7
DT_RELASZ = 8
DT_STRSZ = 10
DT_SYMENT = 11
DT_SONAME = 14
DT_RPATH = 15
DT_REL = 17
DT_RELSZ = 18
DT_PLTREL = 20
DT_JMPREL = 23
DT_RUNPATH = 29
DT_GNU_HASH = 0x6FFFFEF5
DT_VERSYM = 0x6FFFFFF0
DT_VERDEF = 0x6FFFFFFC
DT_VERDEFNUM = 0x6FFFFFFD
DT_VERNEED = 0x6FFFFFFE
DT_VERNEEDNUM = 0x6FFFFFFF

#: the "hidden" bit of a .gnu.version entry; the index is the rest
VERSYM_HIDDEN = 0x8000

STB_WEAK = 2
STT_NOTYPE = 0
STT_FUNC = 2

NT_GNU_PROPERTY_TYPE_0 = 5
GNU_PROPERTY_X86_ISA_1_NEEDED = 0xC0008002

PATH_MAX = 4096
