"""Pure: from an audit and the settings to the exact changes a repair makes.

A :class:`Plan` lists the target tags, the libraries to graft (with their hash-mangled
names), and one :class:`Patch` per ELF file, so that applying it is one patchelf call per
file. When the requested policy cannot be met the plan carries every blocker instead
(:func:`make_plan` raises :class:`~relabel.errors.PolicyError` for an explicit target and
returns a "keep the linux tag" plan for ``auto``). An executable in ``.data/scripts/`` that
needs grafted libraries moves into platlib (a :class:`Move`, with its patch), and
:func:`launcher` is the script left in its place; :func:`retag` gives the repaired wheel's
file name and WHEEL tags. No I/O happens here: file hashes come in as an argument.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from packaging.tags import Tag, parse_tag
from packaging.utils import parse_wheel_filename

from relabel import policy
from relabel.audit import Audit, Finding, Kind, Verdict, installed_path
from relabel.errors import PolicyError
from relabel.report import advice
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
    to ``<name>.scripts/`` in platlib and a small Python launcher takes its place. A move
    always comes with the patch that gives the executable its new RPATH.
    """

    member: str
    new_member: str
    patch: Patch

    def __post_init__(self) -> None:
        if self.patch.member != self.member:
            msg = f"the patch of moved {self.member!r} is for {self.patch.member!r}"
            raise ValueError(msg)


#: installers keep the subdirectories of scripts (bin/sub/name): those move as well
SCRIPTS = re.compile(r"^[^/]+\.data/scripts/(.+)$")

_LAUNCHER = """\
#!python
# Launcher written by relabel: the real executable lives in platlib next to the
# libraries it needs, at {target!r}.
import os
import sys
import sysconfig

if __name__ == "__main__":
    target = os.path.join(sysconfig.get_path("platlib"), {target!r})
    os.execv(target, [target, *sys.argv[1:]])
"""


def launcher(move: Move) -> str:
    """The Python script that takes a moved executable's place in ``.data/scripts/``."""
    return _LAUNCHER.format(target=move.new_member)


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

    def __post_init__(self) -> None:
        # every moved file is patched: its patch is among the plan's, whoever built it
        missing = tuple(m.patch for m in self.moves if m.patch not in self.patches)
        if missing:
            object.__setattr__(self, "patches", self.patches + missing)

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
        if f.kind == Kind.NOT_FOUND:
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
        if location != node.member:
            moves.append(Move(node.member, location, patch))

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


def retag(
    filename: str,
    tag_lines: Sequence[str],
    new_platforms: Sequence[str],
    arch: str,
    *,
    libc_free: bool = False,
) -> tuple[str, list[str]]:
    """New file name and WHEEL Tag lines for a wheel repaired to ``new_platforms``.

    The name keeps its interpreter and ABI tags. Of its platform tags for ``arch``, only
    those the repair vouches for stay: the new ones and older policies of the same C
    library, which a wheel meeting a newer one meets too. ``linux_<arch>`` goes, and so
    does any claim the audit contradicts (a vendor-renamed ``manylinux1`` wheel that needs
    a newer glibc). The Tag lines are exactly the tags the new name stands for: kept lines
    in their order, then the new ones. With ``libc_free`` (no file of the wheel names a C
    library: static executables), claims for the other C library's policies stay as well:
    the audit judged one family, and such files run under both.
    """
    _, _, _, tags = parse_wheel_filename(filename)
    targets = [policy.lookup(p) for p in new_platforms]

    def vouched(platform: str) -> bool:
        if platform in new_platforms:
            return True
        try:
            claimed = policy.lookup(platform)
        except KeyError:
            return True  # not a Linux policy: nothing the audit could contradict
        if claimed.arch != arch:
            return True
        if libc_free and not claimed.is_linux and all(claimed.libc != t.libc for t in targets):
            return True
        return any(
            not claimed.is_linux and claimed.libc == t.libc and claimed.priority <= t.priority
            for t in targets
        )

    old_platforms = sorted({t.platform for t in tags})
    platforms = [p for p in old_platforms if vouched(p)]
    platforms += [p for p in new_platforms if p not in platforms]
    if "any" in platforms and len(platforms) > 1:
        platforms.remove("any")
    pairs = sorted({(t.interpreter, t.abi) for t in tags})
    wanted = {Tag(i, a, p) for i, a in pairs for p in platforms}
    lines: list[str] = []
    for line in tag_lines:
        lines += [str(t) for t in sorted(parse_tag(line), key=str) if t in wanted]
    for interpreter, abi in pairs:
        lines += [f"{interpreter}-{abi}-{p}" for p in platforms]
    lines = list(dict.fromkeys(lines))
    # the file name spells the interpreter, ABI and build parts as it did
    head = filename[: -len(".whl")].rsplit("-", 1)[0]
    return f"{head}-{'.'.join(sorted(platforms))}.whl", lines
