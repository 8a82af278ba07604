"""Android wheels (PEP 738): their platform tags and what their files may need.

An Android wheel is tagged ``android_<api>_<abi>``: the API level is the oldest Android
release it runs on, the ABI one of the NDK's four. Android is always cross-compiled, so
nothing here looks at the host. This module only parses names and reads ELF records
already parsed; the policies themselves live in :mod:`relabel.policy`. Every run asks
whether a file is built for Android (:func:`relabel.libc.is_android_file`, from the names
in :mod:`relabel.arch`); this module is loaded for Android wheels and policies only.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from relabel.arch import ANDROID_PREFIX

if TYPE_CHECKING:
    from relabel.elf import ElfInfo

__all__ = [
    "ABIS",
    "MIN_API",
    "PREFIX",
    "RUNPATH_API",
    "AndroidTag",
    "arch_for_abi",
    "newer_than",
    "parse_tag",
]

PREFIX = ANDROID_PREFIX

#: The oldest API level PEP 738 supports (Android 5.0).
MIN_API = 21
#: The first API level whose loader honours DT_RUNPATH with ``$ORIGIN`` (bionic's
#: android-changes-for-ndk-developers.md); grafted libraries are reached only that way.
RUNPATH_API = 24

#: ABI of the tag -> the architecture name relabel gives the ELF machine (PEP 738).
ABIS: dict[str, str] = {
    "arm64_v8a": "aarch64",
    "x86_64": "x86_64",
    "armeabi_v7a": "armv7l",
    "x86": "i686",
}

_TAG = re.compile(r"^android_(?P<api>[1-9][0-9]*)_(?P<abi>[a-z0-9_]+)$")


@dataclass(frozen=True)
class AndroidTag:
    """One ``android_<api>_<abi>`` platform tag, taken apart."""

    platform: str
    api_level: int
    abi: str

    @property
    def arch(self) -> str:
        """The ELF architecture (as :mod:`relabel.elf` names it) the ABI runs."""
        return ABIS[self.abi]


def parse_tag(platform: str) -> AndroidTag | None:
    """``"android_24_arm64_v8a"`` -> its parts; None for a tag of another platform.

    Raises ValueError, naming what is wrong, for an ``android_`` tag of an unknown shape
    or ABI.
    """
    if not platform.startswith(PREFIX):
        return None
    match = _TAG.match(platform)
    if match is None:
        msg = f"{platform!r} is not an Android tag of the form android_<api level>_<abi>"
        raise ValueError(msg)
    abi = match["abi"]
    if abi not in ABIS:
        msg = f"{platform!r} names the ABI {abi!r}; Android ABIs are {', '.join(ABIS)}"
        raise ValueError(msg)
    return AndroidTag(platform, int(match["api"]), abi)


def newer_than(info: ElfInfo, api_level: int) -> str | None:
    """Why ``info`` cannot load at ``api_level`` by its own word, or None.

    The NDK records the API level a file was compiled for; code built for a newer level
    may call what older releases lack, in libraries bionic does not version (libandroid,
    liblog, ...), so the symbol versions alone would not catch it.
    """
    if info.android_api is None or info.android_api <= api_level:
        return None
    return (
        f"built for Android API level {info.android_api} (its .note.android.ident),"
        f" newer than the tag's {api_level}"
    )


def arch_for_abi(info: ElfInfo, abi: str) -> ElfInfo:
    """``info`` with its architecture as Android's ``abi`` sees it.

    armeabi-v7a passes floating-point arguments in integer registers (soft-float calls,
    "softfp"), which the manylinux armv7l rules refuse; on Android that is the ABI itself.
    Every other file is returned unchanged.
    """
    if (
        abi == "armeabi_v7a"
        and info.arch is None
        and info.machine == "EM_ARM"
        and info.arch_problem == "ARM code is not hard-float"
    ):
        return dataclasses.replace(info, arch=ABIS[abi], arch_problem=None)
    return info
