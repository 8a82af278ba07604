"""The architectures relabel knows, and the names the loaders and C libraries go by.

One table says, for every architecture a manylinux or musllinux policy exists on, how an
ELF file built for it is recognised (e_machine, class, byte order) and what the dynamic
loader substitutes for ``$PLATFORM`` in a search path. Beside it are the names by which a
file says which C library it loads: musl's loader ``ld-musl-<arch>.so.1`` (also the stem
of musl's search path file ``/etc/ld-musl-<arch>.path``), musl's sonames, glibc's.

Pure data and predicates on names: it reads no file and knows no policy. Other modules
take every architecture name and every loader name from here, so that a new
architecture or loader is added in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath

__all__ = [
    "ANDROID_PREFIX",
    "ARCHES",
    "ARCHITECTURES",
    "MUSL_LOADER",
    "Arch",
    "from_elf",
    "is_android_name",
    "is_bionic_linker",
    "is_glibc_libc",
    "is_loader",
    "is_musl_interpreter",
    "is_musl_libc",
]


# table rows read by attribute, never compared nor shown: no generated __eq__ and __repr__
@dataclass(frozen=True, eq=False, repr=False)
class Arch:
    """One architecture as wheel tags name it and as ELF headers and the loader see it."""

    name: str  # in wheel tags: manylinux_2_17_<name>
    machine: str  # e_machine, as pyelftools names it
    elf_class: int  # 32 or 64
    little_endian: bool


#: Every architecture some manylinux or musllinux policy exists on, in policy order.
ARCHES: tuple[Arch, ...] = (
    Arch("x86_64", "EM_X86_64", 64, True),
    Arch("i686", "EM_386", 32, True),
    Arch("aarch64", "EM_AARCH64", 64, True),
    Arch("ppc64le", "EM_PPC64", 64, True),
    Arch("ppc64", "EM_PPC64", 64, False),
    Arch("s390x", "EM_S390", 64, False),
    Arch("armv7l", "EM_ARM", 32, True),
    Arch("riscv64", "EM_RISCV", 64, True),
    Arch("loongarch64", "EM_LOONGARCH", 64, True),
)

#: Their names, as wheel tags spell them.
ARCHITECTURES: tuple[str, ...] = tuple(a.name for a in ARCHES)

_BY_ELF = {(a.machine, a.elf_class, a.little_endian): a.name for a in ARCHES}
_BY_NAME = {a.name: a for a in ARCHES}

#: musl's dynamic loader is ``ld-musl-<arch>.so.1``; its search path ``/etc/ld-musl-<arch>.path``.
MUSL_LOADER = "ld-musl-"
_GLIBC_LOADERS = ("ld-linux", "ld64.so.")


def from_elf(machine: str, elf_class: int, little_endian: bool) -> str | None:
    """The tag architecture of an ELF file's e_machine, class and byte order, if known."""
    return _BY_ELF.get((machine, elf_class, little_endian))


def is_loader(soname: str) -> bool:
    """The ELF interpreter (ld-linux*, ld64.so.*, ld-musl-*), never grafted or checked."""
    return soname.startswith(("ld-linux", MUSL_LOADER)) or soname in ("ld64.so.1", "ld64.so.2")


def is_musl_interpreter(path: str) -> bool:
    """Whether a PT_INTERP path names musl's dynamic loader."""
    return PurePath(path).name.startswith(MUSL_LOADER)


def is_musl_libc(needed: str) -> bool:
    """Whether a DT_NEEDED names musl: ``libc.musl-<arch>.so.1`` on Alpine, plain
    ``libc.so`` elsewhere, or its loader."""
    return needed.startswith(("libc.musl-", MUSL_LOADER)) or needed == "libc.so"


def is_glibc_libc(needed: str) -> bool:
    """Whether a DT_NEEDED names glibc: ``libc.so.6`` on every architecture, or its loader."""
    return needed == "libc.so.6" or needed.startswith(_GLIBC_LOADERS)


#: The platform tags of Android wheels: ``android_<api level>_<abi>`` (PEP 738).
ANDROID_PREFIX = "android_"

# bionic's dynamic linker; on every other Linux libc the interpreter is ld-*.
_BIONIC_LINKERS = ("/system/bin/linker", "/system/bin/linker64")
# CPython's extension suffixes on Android (sysconfig's SOABI ends in the target triple).
_ANDROID_SUFFIXES = ("-linux-android.so", "-linux-androideabi.so")


def is_bionic_linker(interpreter: str) -> bool:
    """Whether a PT_INTERP names Android's dynamic linker."""
    return interpreter in _BIONIC_LINKERS


def is_android_name(name: str) -> bool:
    """Whether a file name ends in one of CPython's extension suffixes on Android."""
    return name.endswith(_ANDROID_SUFFIXES)
