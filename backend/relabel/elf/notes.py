"""The notes relabel reads from an ELF file's note segments.

This module owns two notes: the NDK's Android ident (the API level a file was built for)
and the GNU property note's x86 ISA level (GNU_PROPERTY_X86_ISA_1_NEEDED). Both are read
from program headers (PT_NOTE, PT_GNU_PROPERTY), which a file keeps when its section
headers are stripped, and bounded by the file's size. Other notes are passed over; what
a level means for a policy is decided elsewhere.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from relabel.elf.gabi import (
    GNU_PROPERTY_X86_ISA_1_NEEDED,
    NT_GNU_PROPERTY_TYPE_0,
    PT_GNU_PROPERTY,
    PT_NOTE,
)
from relabel.elf.layout import MalformedError, table_data

if TYPE_CHECKING:
    from relabel.elf.layout import File, Layout

# GNU_PROPERTY_X86_ISA_1_NEEDED bits (x86-64 psABI, "ISA level" properties).
_X86_ISA_V2, _X86_ISA_V3, _X86_ISA_V4 = 0x2, 0x4, 0x8


def android_api(file: File, layout: Layout) -> int | None:
    """The API level in the NDK's Android ident note (owner "Android", type 1, the level as
    the first word of the description), written by its crtbegin objects. Read from the
    PT_NOTE segments, which a file keeps when its section headers are stripped."""
    for segment in layout.segments:
        if segment.type != PT_NOTE:
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


def x86_isa_level(file: File, layout: Layout) -> int:
    """The highest GNU_PROPERTY_X86_ISA_1_NEEDED level of the file's GNU property notes:
    those of PT_GNU_PROPERTY (what ld.so reads), else of every PT_NOTE segment (files
    linked before PT_GNU_PROPERTY existed)."""
    notes = [s for s in layout.segments if s.type == PT_GNU_PROPERTY]
    if not notes:
        notes = [s for s in layout.segments if s.type == PT_NOTE]
    level = 1
    word = 8 if layout.elf_class == 64 else 4  # property alignment (x86-64 psABI)
    budget = file.size + (1 << 20)
    for segment in notes:
        budget -= segment.filesz
        if budget < 0:
            raise MalformedError("the note segments overlap beyond any real file")
        data = table_data(file, 0, segment.offset, segment.filesz, "a note segment")
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
            if kind != NT_GNU_PROPERTY_TYPE_0 or name.rstrip(b"\0") != b"GNU":
                continue
            at = 0
            while at + 8 <= len(desc):
                pr_type, pr_datasz = struct.unpack_from(layout.endian + "II", desc, at)
                if pr_type == GNU_PROPERTY_X86_ISA_1_NEEDED and pr_datasz == 4:
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
