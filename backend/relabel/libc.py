"""Which C library and architecture a wheel's files are built for, and the policies that
follow (for Android: the one its tag names).

Decided from the ELF records and the wheel's tags, as auditwheel decides; the only look
at the file system is for the C library of the system the libraries are resolved in
(:func:`system_libc`), when nothing in the wheel says.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from relabel import policy
from relabel.arch import (
    ANDROID_PREFIX,
    is_android_name,
    is_bionic_linker,
    is_glibc_libc,
    is_musl_interpreter,
    is_musl_libc,
)
from relabel.errors import WheelError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from relabel import android, archive
    from relabel.elf import ElfInfo


def android_tag(wheel: archive.WheelFile) -> android.AndroidTag | None:
    """The wheel's first valid ``android_`` tag taken apart, or None."""
    for tag in wheel.tags:
        if not tag.platform.startswith(ANDROID_PREFIX):
            continue
        from relabel import android  # noqa: PLC0415 - Android wheels only

        try:
            found = android.parse_tag(tag.platform)
        except ValueError:
            continue  # reported once the files say Android (android_policies)
        if found is not None:
            return found
    return None


def wheel_arch(wheel: archive.WheelFile) -> str | None:
    """The architecture the file name's Linux platform tags name (installers go by it)."""
    tagged = android_tag(wheel)
    if tagged is not None:
        return tagged.arch
    for tag in sorted(wheel.tags, key=str):
        platform = tag.platform
        try:
            arch: str | None = policy.lookup(platform).arch
        except KeyError:
            # a policy newer than relabel's data, or one missing on this architecture,
            # still ends with the architecture
            linux = platform.startswith(("manylinux", "musllinux_"))
            arch = next((a for a in policy.ARCHITECTURES if linux and platform.endswith(a)), None)
        if arch in policy.ARCHITECTURES:
            return arch
    return None


def detect(wheel: archive.WheelFile, infos: Mapping[str, ElfInfo], root: str = "/") -> policy.Libc:
    """musl or glibc, as auditwheel decides: from the ELF files (interpreter, DT_NEEDED),
    then CPython's extension suffix, then the wheel's tags when they name one C library
    family, then the C library of the system the libraries are resolved in (``root``).

    Android comes first: bionic's soname is plain ``libc.so`` too, so an ``android_`` tag
    (or bionic's linker, or CPython's Android extension suffix) decides before musl's rules.
    """
    if any(t.platform.startswith(ANDROID_PREFIX) for t in wheel.tags) or any(
        is_android_file(name, info) for name, info in infos.items()
    ):
        return policy.Libc.ANDROID
    for info in infos.values():
        if info.interpreter:
            return policy.Libc.MUSL if is_musl_interpreter(info.interpreter) else policy.Libc.GLIBC
        for needed in info.needed:
            # musl's soname is libc.musl-<arch>.so.1 on Alpine and plain libc.so elsewhere;
            # glibc's is libc.so.6 on every architecture.
            if is_musl_libc(needed):
                return policy.Libc.MUSL
            if is_glibc_libc(needed):
                return policy.Libc.GLIBC
    for name in infos:
        # CPython's extension suffix names the C library (...-x86_64-linux-musl.so); before
        # 3.11 musl builds said -linux-gnu too, so that one counts from 3.11 on.
        if name.endswith(("-linux-musl.so", "-linux-musleabihf.so")):
            return policy.Libc.MUSL
        soabi = name.rsplit("/", 1)[-1].split(".")[-2:-1]
        if name.endswith(("-linux-gnu.so", "-linux-gnueabihf.so")) and soabi:
            implementation, _, rest = soabi[0].partition("-")
            if implementation == "cpython" and rest[:3].isdigit() and int(rest[:3]) >= 311:
                return policy.Libc.GLIBC
    # Tags that name one C library family decide next, as auditwheel's wheel-name rule does;
    # a wheel tagged for both (a static executable) or for neither falls to the system.
    families = {
        policy.Libc.MUSL if t.platform.startswith("musllinux_") else policy.Libc.GLIBC
        for t in wheel.tags
        if t.platform.startswith(("musllinux_", "manylinux"))
    }
    if len(families) == 1:
        return families.pop()
    system = system_libc(root)
    return policy.Libc.GLIBC if system is None else system


def is_android_file(name: str, info: ElfInfo) -> bool:
    """Whether an ELF file was built for Android: the NDK's note, bionic's linker, or
    CPython's extension suffix."""
    if info.android_api is not None:
        return True
    if info.interpreter:
        return is_bionic_linker(info.interpreter)
    return is_android_name(name)


def system_libc(root: str) -> policy.Libc | None:
    """The C library of the system under ``root``: musl where Alpine's ``libc.musl-*``
    is (auditwheel's test; a glibc system with the musl package installed has only
    ``ld-musl-*``), glibc where ``libc.so.6`` is; None for a bare sysroot."""
    base = Path(root)
    if any(base.glob("lib/libc.musl-*.so.1")):
        return policy.Libc.MUSL
    for pattern in ("lib*/libc.so.6", "lib*/*/libc.so.6", "usr/lib*/libc.so.6"):
        if any(base.glob(pattern)):
            return policy.Libc.GLIBC
    return None


def android_policies(wheel: archive.WheelFile, arch: str) -> tuple[policy.Policy, ...]:
    """The policy of an Android wheel's one platform tag, checked against its files."""
    platforms = sorted({t.platform for t in wheel.tags})
    problem = None
    if len(platforms) != 1 or not platforms[0].startswith(ANDROID_PREFIX):
        problem = (
            "its files are built for Android, so it needs exactly one android_<api>_<abi>"
            f" platform tag (PEP 738), not {', '.join(platforms)}"
        )
    else:
        try:
            policies = policy.android_policies(platforms[0])
        except KeyError as exc:
            problem = str(exc.args[0])
        else:
            if policies[0].arch == arch:
                return policies
            problem = f"its tag {platforms[0]} is for {policies[0].arch}, its files are {arch}"
    raise WheelError(wheel.filename, problem + ". Build it for the tag it carries, or rename it.")
