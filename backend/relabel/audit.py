"""Pure: which policies a wheel meets, and exactly why it misses the others.

Input is the wheel's ELF files with their resolved dependency closures
(:class:`relabel.resolve.Node`) and the candidate policies; output is one
:class:`Verdict` per policy and the summary tags (as-is, symbol-only, reachable by repair).
Every reason a policy is ruled out is a :class:`Finding` naming the file, the library or
symbol, and the policies it blocks. No I/O happens here: paths arrive resolved (every
:class:`~relabel.resolve.Library` path is a real path, and so must ``wheel_root`` be), and
the host's musl, which only running its loader tells, is passed in by the caller.

The checks follow the manylinux/musllinux rules (PEP 513/571/599/600/656) as auditwheel
applies them: versioned symbols of the wheel's files and of the libraries that would be
grafted, allowed libraries, blacklisted symbols, the x86-64 ISA level, PyFPE and UCS2 use.
"""

from __future__ import annotations

import enum
import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from relabel.elf import ElfInfo, is_loader
from relabel.resolve import LIBPYTHON, Library, Node, is_path

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from relabel import musl
    from relabel.policy import Policy


class Kind(str, enum.Enum):
    """What a :class:`Finding` is about; the value is its name in the JSON report."""

    SYMBOL_VERSION = "symbol-version"
    BLACKLISTED = "blacklisted-symbol"
    EXTERNAL = "external-library"
    NOT_FOUND = "library-not-found"
    ISA = "isa-level"
    PYFPE = "pyfpe"
    UCS2 = "ucs2"
    LIBPYTHON = "libpython"
    #: a symbol (or the host's musl) needs a newer musl release
    MUSL_SYMBOL = "musl-release"
    PATH_NEEDED = "path-needed"
    INSTALL_LOCATION = "install-location"
    #: a graft the tag's Android API level cannot load
    ANDROID_API = "android-api-level"

    def __str__(self) -> str:
        return self.value


#: kinds that ``repair`` removes by grafting or patching, so they do not block a repair
REPAIRABLE = frozenset({Kind.EXTERNAL, Kind.LIBPYTHON})


@dataclass(frozen=True)
class Finding:
    """One reason one or more policies are out of reach."""

    file: str  # wheel member, or "<member> -> <soname>" for a library to be grafted
    kind: Kind
    library: str | None = None
    symbol: str | None = None
    version: str | None = None
    blocks: tuple[str, ...] = ()
    detail: str = ""
    searched: tuple[str, ...] = ()  # for library-not-found: every directory tried
    skipped: tuple[tuple[str, str], ...] = ()  # ... and files passed over, with the reason

    def describe(self) -> str:
        if self.kind == Kind.SYMBOL_VERSION:
            what = f"{self.symbol}@{self.version}" if self.symbol else f"{self.version}"
            return f"{self.file} -> {what} (from {self.library})"
        if self.kind == Kind.BLACKLISTED:
            return f"{self.file} -> {self.symbol} (blacklisted in {self.library})"
        if self.kind == Kind.ISA:
            return f"{self.file} -> {self.detail}"
        if self.kind in (Kind.EXTERNAL, Kind.LIBPYTHON):
            return f"{self.file} -> {self.library} (not on the allowed list)"
        if self.kind == Kind.PATH_NEEDED:
            return (
                f"{self.file} -> {self.library} (a path, not a library name: the loader opens"
                " it relative to the working directory of the process, so it cannot be made"
                " portable; link against the library's soname instead)"
            )
        if self.kind == Kind.INSTALL_LOCATION:
            return f"{self.file} -> {self.library} ({self.detail})"
        if self.kind == Kind.NOT_FOUND:
            return (
                f"{self.file} -> {self.library} (not found; searched: "
                f"{', '.join(self.searched) or 'no directory'}"
                + "".join(f"; skipped {path} ({why})" for path, why in self.skipped)
                + ")"
            )
        return f"{self.file} -> {self.detail or self.kind}"


@dataclass(frozen=True)
class Verdict:
    """How the wheel stands against one policy: what it needs from outside, and why it
    does not meet the policy."""

    policy: Policy
    #: soname -> resolved path (None: not found / libpython), for libraries outside the
    #: policy's allowed list that are not inside the wheel; when wheel files resolve one
    #: soname to several files, the first (in member order) -- see ``external_files``
    external: Mapping[str, str | None]
    #: wheel member -> its own external sonames (the ones reachable from it)
    external_by_member: Mapping[str, tuple[str, ...]]
    findings: tuple[Finding, ...]  # every reason, including the repairable ones
    #: real path -> soname of every distinct external file found: what a repair grafts
    external_files: Mapping[str, str] = field(default_factory=dict)

    @property
    def meets_as_is(self) -> bool:
        return not self.findings

    @property
    def blockers(self) -> tuple[Finding, ...]:
        """Findings a repair cannot remove."""
        return tuple(f for f in self.findings if f.kind not in REPAIRABLE)

    @property
    def reachable(self) -> bool:
        return not self.blockers


# read by attribute, never compared: no generated __eq__
@dataclass(frozen=True, eq=False)
class Audit:
    """The verdict of every policy of the wheel's architecture and C library."""

    arch: str
    libc: str | None
    verdicts: tuple[Verdict, ...]  # most compatible first, ``linux_<arch>`` last
    versioned_symbols: Mapping[str, tuple[str, ...]]  # library -> versions, the wheel's own
    skipped: tuple[tuple[str, str], ...] = ()  # (member, why) ELF files not audited
    nodes: tuple[Node, ...] = field(default=(), repr=False)

    def verdict(self, name: str) -> Verdict:
        """The verdict of a policy named by tag or legacy alias, with or without the arch."""
        for v in self.verdicts:
            tags = v.policy.tags()
            if name in tags or f"{name}_{self.arch}" in tags:
                return v
        raise KeyError(name)

    @property
    def most_permissive(self) -> Verdict:
        """The least demanding manylinux/musllinux policy (``linux`` when there is none):
        what it still rules out stands between the wheel and any such tag."""
        return self.verdicts[-2] if len(self.verdicts) > 1 else self.linux

    @property
    def linux(self) -> Verdict:
        return self.verdicts[-1]

    @property
    def overall(self) -> Verdict:
        """Best policy the wheel meets exactly as it is."""
        return next(v for v in self.verdicts if v.meets_as_is or v.policy.is_linux)

    @property
    def best_symbols(self) -> Verdict:
        """Best policy allowed by versioned symbols alone (grafted libraries included)."""
        return next(
            v
            for v in self.verdicts
            if v.policy.is_linux
            or not any(f.kind in (Kind.SYMBOL_VERSION, Kind.MUSL_SYMBOL) for f in v.findings)
        )

    @property
    def repairable(self) -> Verdict:
        """Best policy a repair reaches (``linux`` when none)."""
        return next(v for v in self.verdicts if v.reachable or v.policy.is_linux)

    def findings(self) -> list[Finding]:
        """Every finding once, with ``blocks`` listing each policy it rules out."""
        merged: dict[tuple[object, ...], list[str]] = {}
        first: dict[tuple[object, ...], Finding] = {}
        for verdict in self.verdicts:
            for f in verdict.findings:
                key = (f.file, f.kind, f.library, f.symbol, f.version, f.detail)
                merged.setdefault(key, []).append(verdict.policy.name)
                first.setdefault(key, f)
        return [
            Finding(
                f.file,
                f.kind,
                f.library,
                f.symbol,
                f.version,
                tuple(merged[k]),
                f.detail,
                f.searched,
                f.skipped,
            )
            for k, f in first.items()
        ]


_DATA = re.compile(r"^[^/]+\.data/([^/]+)/(.+)$")


def installed_path(member: str) -> str | None:
    """Where an installer puts ``member``, relative to site-packages (the wheel spec's
    scheme mapping): ``<name>.data/platlib/`` and ``purelib/`` contents land at the root;
    None for ``scripts``, ``headers`` and ``data``, whose directories the installing
    Python's scheme chooses, nowhere fixed relative to site-packages."""
    match = _DATA.match(member)
    if match is None:
        return member
    if match.group(1) in ("platlib", "purelib"):
        return match.group(2)
    return None


def _unreachable_location(member: str) -> str | None:
    """Why no RPATH from ``member``'s installed place can reach ``<dist>.libs``, if so.
    Scripts are not here: a repair moves them into platlib (see :class:`plan.Move`)."""
    match = _DATA.match(member)
    if match is None or match.group(1) in ("platlib", "purelib", "scripts"):
        return None
    return (
        f"files under {match.group(0).split('/', 1)[0]}/{match.group(1)}/ install to a"
        " directory the installer's scheme chooses (sys.prefix and friends), not one"
        " relative to site-packages, so no RPATH can reach grafted libraries from there;"
        " move the file into the package"
    )


def _inside(path: str | None, root: str) -> bool:
    """Whether ``path`` lies under ``root``; both are real paths (symbolic links resolved)."""
    if path is None:
        return False
    return os.path.normpath(path).startswith(os.path.normpath(root) + os.sep)


def _external(node: Node, policy: Policy, root: str) -> dict[str, Library]:
    """Libraries reachable from ``node`` that ``policy`` does not provide, walking through
    the ones it does not."""
    found: dict[str, Library] = {}
    todo = [s for s in node.info.needed if not is_loader(s)]
    seen: set[str] = set()
    while todo:
        soname = todo.pop()
        if soname in seen or policy.provides(soname):
            continue
        seen.add(soname)
        lib = node.libraries.get(soname)
        if lib is None:  # excluded by configuration
            continue
        if not _inside(lib.path, root):
            found[soname] = lib
        todo.extend(s for s in node.edges.get(soname, ()) if not is_loader(s))
    return found


def _android_runpath(member: str, soname: str, policy: Policy) -> list[Finding]:
    # A grafted library is found only through DT_RUNPATH=$ORIGIN/..., which bionic's
    # loader ignores before API level 24.
    if policy.api_level is None:
        return []
    from relabel import android  # noqa: PLC0415 - Android policies only

    if policy.api_level >= android.RUNPATH_API:
        return []
    finding = Finding(
        member,
        Kind.ANDROID_API,
        library=soname,
        detail=(
            f"{soname} would be grafted, and the Android loader finds grafted libraries"
            f" (through DT_RUNPATH) only from API level {android.RUNPATH_API};"
            f" {policy.name} is API level {policy.api_level}"
        ),
    )
    return [finding]


def _android_level(where: str, info: ElfInfo, policy: Policy) -> list[Finding]:
    if policy.api_level is None:
        return []
    from relabel import android  # noqa: PLC0415 - see _android_runpath

    why = android.newer_than(info, policy.api_level)
    return [] if why is None else [Finding(where, Kind.ANDROID_API, detail=why)]


def _symbol_findings(
    where: str, info: ElfInfo, policy: Policy, via: str | None = None
) -> Iterable[Finding]:
    label = f"{where} -> {via}" if via else where
    bad: set[tuple[str, str]] = {
        (library, version)
        for library, version in info.symbol_versions()
        if not policy.allows_symbol_version(version)
    }
    if not bad:
        return []
    out: list[Finding] = []
    covered: set[tuple[str, str]] = set()
    for sym in info.undefined:
        if sym.version and sym.library and (sym.library, sym.version) in bad:
            out.append(Finding(label, Kind.SYMBOL_VERSION, sym.library, sym.name, sym.version))
            covered.add((sym.library, sym.version))
    out.extend(
        Finding(label, Kind.SYMBOL_VERSION, library, None, version)
        for library, version in sorted(bad - covered)
    )
    return out


def _musl_findings(
    policy: Policy,
    nodes: Sequence[Node],
    grafted: Iterable[tuple[str, ElfInfo]],
    arch: str,
    host: musl.HostMusl | None,
) -> list[Finding]:
    """musl has no symbol versions: the names a file takes from libc tell its release."""
    if policy.libc != "musl" or policy.version is None:
        return []
    from relabel import musl  # noqa: PLC0415 - its data is read for musl wheels only

    evidence = [(n.member, n.info) for n in nodes] + sorted(grafted, key=lambda g: g[0])
    return [
        Finding(file, Kind.MUSL_SYMBOL, symbol=symbol, detail=text)
        for file, symbol, text in musl.policy_findings(policy.version, evidence, arch, host=host)
    ]


def _policy_independent(nodes: Sequence[Node], *, isa_check: bool) -> list[Finding]:
    """Findings that rule out every policy alike: ISA level, PyFPE, UCS2."""
    common: list[Finding] = []
    for node in nodes:
        info = node.info
        if isa_check and info.isa_level > 1:
            common.append(
                Finding(
                    node.member,
                    Kind.ISA,
                    detail=f"needs the x86-64-v{info.isa_level} instruction set",
                )
            )
        if info.is_python_extension and info.uses_pyfpe:
            common.append(
                Finding(node.member, Kind.PYFPE, detail="uses PyFPE_jbuf (fpectl builds only)")
            )
        if info.uses_ucs2 and info.python_init and not info.python_init.startswith("PyInit_"):
            common.append(
                Finding(node.member, Kind.UCS2, detail="built for a narrow-unicode (UCS2) Python")
            )
    return common


def audit(
    nodes: Sequence[Node],
    policies: Sequence[Policy],
    *,
    arch: str,
    libc: str | None,
    wheel_root: str,
    isa_check: bool = True,
    skipped: Sequence[tuple[str, str]] = (),
    musl_host: musl.HostMusl | None = None,
) -> Audit:
    """Evaluate every policy (most compatible first, ``linux`` last) against the wheel.

    ``wheel_root`` is the real path of the extracted wheel: a library resolved under it is
    the wheel's own, never external. ``musl_host`` is the musl of the machine the wheel is
    built or repaired on (:func:`relabel.musl.host_version`), None when that is not musl or
    not to be judged; a musllinux policy newer than it is out of reach.
    """
    own_versions: dict[str, set[str]] = {}
    for node in nodes:
        for library, version in node.info.symbol_versions():
            own_versions.setdefault(library, set()).add(version)

    common = _policy_independent(nodes, isa_check=isa_check)
    verdicts: list[Verdict] = []
    for policy in policies:
        if policy.is_linux:
            verdicts.append(Verdict(policy, {}, {}, ()))
            continue
        findings: list[Finding] = list(common)
        external: dict[str, str | None] = {}
        files: dict[str, str] = {}
        by_member: dict[str, tuple[str, ...]] = {}
        grafted: dict[str, tuple[str, ElfInfo]] = {}  # real path -> (soname, info)
        for node in nodes:
            findings.extend(_symbol_findings(node.member, node.info, policy))
            findings.extend(_android_level(node.member, node.info, policy))
            libs = _external(node, policy, wheel_root)
            if policy.links_libpython:
                libs = {s: lib for s, lib in libs.items() if not LIBPYTHON.match(s)}
            by_member[node.member] = tuple(sorted(libs))
            unreachable = _unreachable_location(node.member)
            for soname, lib in sorted(libs.items()):
                external.setdefault(soname, lib.path)
                if unreachable and not LIBPYTHON.match(soname):
                    findings.append(
                        Finding(
                            node.member, Kind.INSTALL_LOCATION, library=soname, detail=unreachable
                        )
                    )
                if LIBPYTHON.match(soname):
                    findings.append(Finding(node.member, Kind.LIBPYTHON, library=soname))
                    continue
                if is_path(soname):
                    findings.append(Finding(node.member, Kind.PATH_NEEDED, library=soname))
                    continue
                if lib.path is None:
                    findings.append(
                        Finding(
                            node.member,
                            Kind.NOT_FOUND,
                            library=soname,
                            searched=lib.searched,
                            skipped=lib.skipped,
                        )
                    )
                    continue
                findings.append(Finding(node.member, Kind.EXTERNAL, library=soname))
                findings.extend(_android_runpath(node.member, soname, policy))
                files.setdefault(lib.path, soname)
                if lib.info is not None and lib.path not in grafted:
                    grafted[lib.path] = (soname, lib.info)
            undefined = {s.name for s in node.info.undefined if not s.weak} | {"*"}
            for library in node.info.needed:
                banned = policy.blacklist.get(library)
                if banned:
                    findings.extend(
                        Finding(node.member, Kind.BLACKLISTED, library=library, symbol=name)
                        for name in sorted(banned & undefined)
                    )
        for soname, info in sorted(grafted.values(), key=lambda g: g[0]):
            findings.extend(_symbol_findings(soname, info, policy, via=None))
            findings.extend(_android_level(soname, info, policy))
            if isa_check and info.isa_level > 1:
                findings.append(
                    Finding(
                        soname,
                        Kind.ISA,
                        library=soname,
                        detail=f"needs the x86-64-v{info.isa_level} instruction set",
                    )
                )
        findings.extend(_musl_findings(policy, nodes, grafted.values(), arch, musl_host))
        verdicts.append(Verdict(policy, external, by_member, tuple(findings), files))

    return Audit(
        arch=arch,
        libc=libc,
        verdicts=tuple(verdicts),
        versioned_symbols={k: tuple(sorted(v)) for k, v in sorted(own_versions.items())},
        skipped=tuple(skipped),
        nodes=tuple(nodes),
    )
