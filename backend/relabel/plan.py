"""Pure: from an audit and the settings to the exact changes a repair makes.

A :class:`Plan` lists the target tags, the libraries to graft (with their hash-mangled
names), and one :class:`Patch` per ELF file, so that applying it is one patchelf call per
file. When the requested policy cannot be met the plan carries every blocker instead
(:func:`make_plan` raises :class:`~relabel.errors.PolicyError` for an explicit target and
returns a "keep the linux tag" plan for ``auto``). No I/O happens here: file hashes come in
as an argument.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from relabel.audit import (
    INSTALL_LOCATION,
    NOT_FOUND,
    PATH_NEEDED,
    Audit,
    Finding,
    Verdict,
    installed_path,
)
from relabel.errors import PolicyError
from relabel.resolve import LIBPYTHON

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from relabel.resolve import Library

_TOKENS = ("$ORIGIN", "${ORIGIN}")


@dataclass(frozen=True)
class Graft:
    """One external file copied into the wheel. Grafts are keyed by the file: two files
    with one soname are two grafts under two names; one content is grafted once."""

    soname: str  # as needed by the wheel's files
    source: str  # real path on this machine
    new_name: str  # file name and new SONAME inside the libs directory
    member: str  # path inside the wheel
    #: wheel members whose closure loads this file
    needed_by: tuple[str, ...] = ()


@dataclass(frozen=True)
class Patch:
    member: str
    set_soname: str | None = None
    replace_needed: tuple[tuple[str, str], ...] = ()
    remove_needed: tuple[str, ...] = ()
    set_rpath: str | None = None
    remove_rpath: bool = False
    #: write set_rpath as DT_RUNPATH instead of DT_RPATH (Android's loader reads only that)
    runpath: bool = False
    #: remove every DT_RPATH/DT_RUNPATH before set_rpath (the file has several)
    clear_rpath: bool = False

    @property
    def empty(self) -> bool:
        return not (
            self.set_soname
            or self.replace_needed
            or self.remove_needed
            or self.set_rpath is not None
            or self.remove_rpath
        )


@dataclass(frozen=True)
class Move:
    """An executable in ``<name>.data/scripts/`` that needs grafted libraries.

    Scripts are installed to a bin directory whose place relative to platlib is unknown, so
    no RPATH could reach the libraries from there. As auditwheel does, the executable moves
    to ``<name>.scripts/`` in platlib and a small Python launcher takes its place.
    """

    member: str
    new_member: str


#: installers keep the subdirectories of scripts (bin/sub/name): those move as well
SCRIPTS = re.compile(r"^[^/]+\.data/scripts/(.+)$")


@dataclass(frozen=True)
class Plan:
    target: Verdict  # the policy the wheel is repaired to (linux when none)
    platform_tags: tuple[str, ...]  # new platform tags, most compatible first
    grafts: tuple[Graft, ...] = ()
    patches: tuple[Patch, ...] = ()
    moves: tuple[Move, ...] = ()
    #: why the wheel keeps its linux tag (auto target, nothing reachable)
    unmet: tuple[Finding, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def keeps_linux(self) -> bool:
        return self.target.policy.is_linux


def mangled_name(file_name: str, sha256_hex: str, length: int = 8) -> str:
    """``libbz2.so.1.0.4`` + hash -> ``libbz2-<8 hex>.so.1.0.4`` (auditwheel's rule)."""
    short = sha256_hex[:length]
    base, dot, rest = file_name.partition(".")
    if base.endswith("-" + short):
        return file_name
    return f"{base}-{short}{dot}{rest}"


def choose_target(
    audit: Audit, plat: str, *, only_plat: bool = False
) -> tuple[Verdict, tuple[Verdict, ...]]:
    """The verdict to graft for and every verdict whose tags the wheel gets.

    Raises PolicyError for an explicit ``plat`` that cannot be reached.
    """
    best = audit.repairable
    if plat == "auto":
        return best, (best,)
    requested = _find_verdict(audit, plat)
    if not requested.reachable:
        raise PolicyError(
            requested.policy.name,
            describe_blockers(requested.blockers),
            advice=advice(requested.blockers),
        )
    if only_plat or best.policy.priority <= requested.policy.priority:
        return requested, (requested,)
    return best, (best, requested)


def _find_verdict(audit: Audit, plat: str) -> Verdict:
    try:
        return audit.verdict(plat)
    except KeyError:
        pass
    known = ", ".join(v.policy.name for v in audit.verdicts)
    families = {"musl": "musllinux", "glibc": "manylinux", "android": "android"}
    wanted_libc = next(
        (libc for libc, family in families.items() if plat.startswith(family)), "glibc"
    )
    if audit.libc and audit.libc != wanted_libc:
        problem = (
            f"{plat!r} is a {wanted_libc} policy, but this wheel's files are linked against"
            f" {audit.libc}; {audit.libc} wheels take "
            + families.get(audit.libc, "manylinux")
            + f" policies (here: {known})"
        )
    elif audit.libc == "android":
        problem = (
            f"an Android wheel keeps the tag it was built for (here: {known}); build it"
            f" again for {plat!r} instead"
        )
    else:
        problem = f"no policy {plat!r} exists for {audit.arch} (known here: {known})"
    full = plat.endswith(audit.arch) or plat.startswith("android_")
    raise PolicyError(plat if full else f"{plat}_{audit.arch}", [problem])


def _unique(findings: Sequence[Finding]) -> list[Finding]:
    return list(dict.fromkeys(findings))


#: missing libraries named one by one in a message; the rest are counted
MISSING_SHOWN = 50


def describe_blockers(findings: Sequence[Finding]) -> list[str]:
    """One line per blocker, the missing libraries grouped by the directories searched
    (named once per group, at most :data:`MISSING_SHOWN` libraries each): a wheel missing
    thousands of libraries gives a message of a few kilobytes, not megabytes."""
    lines: list[str] = []
    groups: dict[tuple[tuple[str, ...], tuple[tuple[str, str], ...]], list[Finding]] = {}
    for f in _unique(findings):
        if f.kind == NOT_FOUND:
            groups.setdefault((f.searched, f.skipped), []).append(f)
        else:
            lines.append(f.describe())
    for (searched, skipped), group in groups.items():
        if len(group) == 1:
            lines.append(group[0].describe())
            continue
        named = ", ".join(f"{f.library} (needed by {f.file})" for f in group[:MISSING_SHOWN])
        more = len(group) - MISSING_SHOWN
        lines.append(
            f"{len(group)} libraries not found: {named}"
            + (f" and {more} more" if more > 0 else "")
            + f"; searched for each: {', '.join(searched) or 'no directory'}"
            + "".join(f"; skipped {path} ({why})" for path, why in skipped)
        )
    return lines


def advice(blockers: Sequence[Finding]) -> str:
    kinds = {f.kind for f in blockers}
    tips = []
    # bionic's version nodes are LIBC_<release>; glibc's are GLIBC_<version>
    bionic = any(
        f.kind == "symbol-version" and (f.version or "").startswith("LIBC_") for f in blockers
    )
    if bionic:
        tips.append(
            "build for the API level of the wheel's tag (the NDK's --target"
            " <triple><api level>), or tag the wheel for the API level it needs"
        )
    levels = [f for f in blockers if f.kind == "android-api-level"]
    if any(f.library is None for f in levels):  # a file's own note names a newer level
        tips.append(
            "tag the wheel for the API level its files were built for, or build them for"
            " the tag's (the NDK's --target <triple><api level>)"
        )
    if any(f.library is not None for f in levels):
        tips.append(
            "tag the wheel for API level 24 or newer, or link the C++ runtime statically"
            " (ANDROID_STL=c++_static)"
        )
    if "symbol-version" in kinds and not bionic:
        tips.append(
            "build on an older system (a manylinux container image) so the toolchain"
            " links against older symbol versions"
        )
    if NOT_FOUND in kinds:
        tips.append("make the missing libraries findable with library-dirs, or exclude them")
    if "isa-level" in kinds:
        tips.append("build for the baseline x86-64 instruction set (-march=x86-64)")
    if "blacklisted-symbol" in kinds:
        tips.append("stop using the blacklisted symbols")
    if PATH_NEEDED in kinds:
        tips.append("link against libraries that have a SONAME, so DT_NEEDED holds no path")
    if INSTALL_LOCATION in kinds:
        tips.append(
            "ship files that need external libraries inside the package, not in .data/data"
            " or .data/headers"
        )
    return ("To fix: " + "; ".join(tips) + ".") if tips else ""


def install_dir(member: str) -> str:
    """The directory ``member`` is installed to, relative to site-packages (its archive
    directory for members that land elsewhere: scripts, headers, data)."""
    installed = installed_path(member)
    return posixpath.dirname(member if installed is None else installed)


def rpath_inside_wheel(entry: str, member_dir: str) -> bool:
    """True when an RPATH entry stays inside the wheel once installed."""
    root = "/__wheel_root__"
    origin = posixpath.join(root, member_dir)
    expanded = entry
    for token in _TOKENS:
        expanded = expanded.replace(token, origin)
    if not expanded.startswith(root):
        return False
    return (
        posixpath.normpath(expanded).startswith(root + "/") or posixpath.normpath(expanded) == root
    )


def make_plan(
    audit: Audit,
    *,
    plat: str,
    libs_dir: str,
    hashes: Mapping[str, str],
    only_plat: bool = False,
    rpath_members: frozenset[str] = frozenset(),
    scripts_dir: str | None = None,
) -> Plan:
    """Plan the repair of the audited wheel.

    ``hashes`` maps the real path of every library that may be grafted to its sha256 hex.
    ``libs_dir`` is the wheel-relative directory for grafted libraries (``<dist>.libs``).
    ``rpath_members`` must reach ``libs_dir`` through their RPATH even without a grafted
    DT_NEEDED (extensions that dlopen an included library). Executables under
    ``<name>.data/scripts/`` that need grafted libraries move to ``scripts_dir``.
    """
    target, tagged = choose_target(audit, plat, only_plat=only_plat)
    tags = tuple(t for v in tagged for t in v.policy.tags())
    if target.policy.is_linux:
        unmet = _unique(audit.most_permissive.blockers)
        return Plan(target, tags, unmet=tuple(unmet))

    by_source = _grafts(audit, target, libs_dir, hashes)
    grafts = tuple(dict.fromkeys(by_source.values()))

    patches: list[Patch] = []
    moves: list[Move] = []
    keep_libpython = target.policy.links_libpython
    runpath = target.policy.runpath_only
    for node in audit.nodes:
        own = target.external_by_member.get(node.member, ())
        resolved = _resolved(node.libraries, node.info.soname)
        replace = tuple(
            (s, by_source[p].new_name)
            for s in node.info.needed
            if (p := resolved.get(s)) is not None and p in by_source
        )
        # only the libpython entries resolve lists: an excluded one stays, as in auditwheel
        remove = (
            ()
            if keep_libpython
            else tuple(s for s in node.info.needed if LIBPYTHON.match(s) and s in resolved)
        )
        needs_libs = any(resolved.get(s) in by_source for s in own) or node.member in rpath_members
        location = node.member
        script = SCRIPTS.match(node.member) if needs_libs and scripts_dir else None
        if script is not None:
            location = f"{scripts_dir}/{script[1]}"
            moves.append(Move(node.member, location))
        member_dir = install_dir(location)
        entries = node.info.runpath or node.info.rpath
        kept = [e for e in entries if rpath_inside_wheel(e, install_dir(node.member))]
        if location != node.member:
            kept = []  # relative entries meant the old place
        if needs_libs:
            rel = posixpath.relpath(libs_dir, member_dir or ".")
            kept.append("$ORIGIN" if rel == "." else f"$ORIGIN/{rel}")
        kept = list(dict.fromkeys(kept))
        set_rpath: str | None = None
        remove_rpath = False
        has_own = node.info.runpath if runpath else node.info.rpath
        if kept != list(entries) or (needs_libs and not has_own):
            # DT_RPATH (--force-rpath), as auditwheel writes: unlike DT_RUNPATH it also
            # serves the dependencies' lookups and dlopen calls made from the file.
            set_rpath = ":".join(kept) if kept else None
            remove_rpath = not kept
        clear = set_rpath is not None and node.info.search_path_entries > 1
        patch = Patch(node.member, None, replace, remove, set_rpath, remove_rpath, runpath, clear)
        if not patch.empty:
            patches.append(patch)

    deps = _dependencies(audit)
    path_entries = {
        lib.path: lib.info.search_path_entries
        for node in audit.nodes
        for lib in node.libraries.values()
        if lib.path is not None and lib.info is not None
    }
    for graft in grafts:
        needed = deps.get(graft.source, {})
        replace = tuple((s, by_source[p].new_name) for s, p in needed.items() if p in by_source)
        patches.append(
            Patch(
                graft.member,
                set_soname=graft.new_name,
                replace_needed=replace,
                set_rpath="$ORIGIN" if replace else None,
                remove_rpath=not replace,
                runpath=runpath,
                clear_rpath=bool(replace) and path_entries.get(graft.source, 0) > 1,
            )
        )
    return Plan(target, tags, grafts, tuple(patches), tuple(moves))


def _grafts(
    audit: Audit, target: Verdict, libs_dir: str, hashes: Mapping[str, str]
) -> dict[str, Graft]:
    """real path -> its graft: one per external file, except that files of one content
    and one file name (the new name carries the content hash) share one."""
    users: dict[str, list[str]] = {}
    for node in audit.nodes:
        for soname in target.external_by_member.get(node.member, ()):
            lib = node.libraries.get(soname)
            if lib is not None and lib.path is not None:
                users.setdefault(lib.path, []).append(node.member)
    # (name, full hash) -> sources: never one graft for two contents, even when the
    # eight hex digits of the name agree
    groups: dict[tuple[str, str], list[str]] = {}
    for source, soname in sorted(target.external_files.items()):
        if not LIBPYTHON.match(soname):
            key = (mangled_name(posixpath.basename(source), hashes[source]), hashes[source])
            groups.setdefault(key, []).append(source)
    grafts: dict[str, Graft] = {}
    taken: set[str] = set()
    for (short_name, digest), sources in groups.items():
        first = sources[0]
        name = short_name
        if name in taken:
            name = mangled_name(posixpath.basename(first), digest, 16)
        taken.add(name)
        needed_by = tuple(dict.fromkeys(m for s in sources for m in users.get(s, ())))
        graft = Graft(target.external_files[first], first, name, f"{libs_dir}/{name}", needed_by)
        grafts.update(dict.fromkeys(sources, graft))
    return grafts


def _dependencies(audit: Audit) -> dict[str, dict[str, str]]:
    """real path -> (soname -> real path) of what each resolved library needs, as the
    first node (in member order) that maps it resolved it."""
    out: dict[str, dict[str, str]] = {}
    for node in audit.nodes:
        resolved = _resolved(node.libraries, node.info.soname)
        for lib in node.libraries.values():
            if lib.path is None or lib.info is None or lib.path in out:
                continue
            out[lib.path] = {
                s: path for s in lib.info.needed if (path := resolved.get(s)) is not None
            }
    return out


def _resolved(libraries: Mapping[str, Library], own: str | None) -> dict[str, str | None]:
    """soname -> real path for one closure, including the names the loader matches by
    the SONAME of a library mapped under another name (a DT_NEEDED of ``libcol.so``, a
    link to the file whose SONAME is ``libcol.so.1``, also serves ``libcol.so.1``); the
    walked file's own SONAME names the file itself."""
    out: dict[str, str | None] = {
        lib.info.soname: lib.path
        for lib in libraries.values()
        if lib.info is not None and lib.info.soname and lib.path is not None
    }
    out.pop(own or "", None)
    out.update((s, lib.path) for s, lib in libraries.items())
    return out
