"""The manylinux, musllinux and Android platform policies, as data.

This module owns the policy tables in ``relabel/_data`` and their interpretation: which
platform tags exist on which architecture, how they are ordered, which symbol versions each
one allows per namespace (``GLIBC``, ``GLIBCXX``, ``CXXABI``, ``GCC``, ``ZLIB``,
``LIBATOMIC``), which libraries a wheel may leave external, and which symbols of those
libraries it must not reference. The data format is described at the top of each data file.

It must not probe anything: it never inspects the host (no libc detection, no library
search paths, no subprocesses) and never reads a wheel or an ELF file. Deciding which policy
a binary satisfies is left to the callers that read the binaries; musl in particular is not
detected here: both musllinux policies are always offered, musllinux_1_1 first.

Android (PEP 738) differs: its tag names the API level the wheel was built for, which no
file records reliably, so the tag is kept and only judged (:func:`android_policies`);
Android policies are not among :func:`policies_for`'s or :func:`known_names`'s.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from relabel import _resources
from relabel.arch import ANDROID_PREFIX, ARCHITECTURES

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = [
    "ARCHITECTURES",
    "LINUX",
    "Libc",
    "Policy",
    "android_policies",
    "known_names",
    "lookup",
    "policies_for",
]


#: Base name of the unconstrained fallback policy (tags ``linux_<arch>``).
LINUX = "linux"


class Libc(str, enum.Enum):
    """The C library a policy is defined against."""

    GLIBC = "glibc"
    MUSL = "musl"
    ANDROID = "android"  # bionic

    def __str__(self) -> str:
        return self.value


_DATA_FILES = {Libc.GLIBC: "manylinux.json", Libc.MUSL: "musllinux.json"}
#: The C libraries of the PEP 600 families, whose policies are ordered by libc version.
_FAMILIES = (Libc.GLIBC, Libc.MUSL)
_NOTHING: Mapping[str, frozenset[str]] = MappingProxyType({})


#: musl's loader maps any DT_NEEDED named ``lib<one of these>.`` to itself: libc, libpthread,
#: librt, libm, libdl, libutil and libxnet are all one library there (ldso/dynlink.c,
#: load_library's "block attempts to reload the implementation itself").
_MUSL_ITSELF = ("libc.", "libpthread.", "librt.", "libm.", "libdl.", "libutil.", "libxnet.")


def is_musl_itself(soname: str) -> bool:
    """True for a soname musl's dynamic loader resolves to musl itself."""
    return soname.startswith(_MUSL_ITSELF)


@dataclass(frozen=True)
class Policy:
    """One platform tag on one architecture and everything it allows.

    ``priority`` orders the policies of one libc and architecture: larger is more widely
    compatible, ``linux`` is 0. ``symbol_versions`` maps a namespace (``"GLIBC"``) to the
    versions allowed in it, without the prefix (``"2.17"``, ``"ABI_DT_RELR"``).
    ``allowed_libs`` are the sonames a wheel may leave external and ``blacklist`` maps some
    of them to symbols that must not be referenced. ``linux`` has none of these: it checks
    nothing.
    """

    name: str
    base: str
    aliases: tuple[str, ...]
    libc: Libc | None
    arch: str
    priority: int
    version: tuple[int, int] | None
    symbol_versions: Mapping[str, frozenset[str]] = field(hash=False, repr=False)
    allowed_libs: frozenset[str] = field(repr=False)
    blacklist: Mapping[str, frozenset[str]] = field(hash=False, repr=False)
    #: namespace -> versions refused even when the namespace is not otherwise restricted
    #: (bionic's version nodes newer than an Android policy's API level)
    denied_symbol_versions: Mapping[str, frozenset[str]] = field(
        default_factory=lambda: _NOTHING, hash=False, repr=False
    )
    #: Android only: the API level of the tag
    api_level: int | None = None

    def __str__(self) -> str:
        return self.name

    @property
    def is_linux(self) -> bool:
        """True for the plain ``linux_<arch>`` policy, which checks nothing."""
        return self.libc is None

    def provides(self, soname: str) -> bool:
        """Whether a DT_NEEDED of ``soname`` may stay external: on the allowed list or, for
        musl, a name musl's loader answers with itself (``libc.so`` as maturin links it)."""
        return soname in self.allowed_libs or (self.libc is Libc.MUSL and is_musl_itself(soname))

    @property
    def links_libpython(self) -> bool:
        """True where extensions link libpython by design, so it is neither grafted nor
        removed: on Android (PEP 738) the loader gives an extension only the symbols of the
        libraries it names."""
        return self.libc is Libc.ANDROID

    @property
    def runpath_only(self) -> bool:
        """True where the loader reads DT_RUNPATH and ignores DT_RPATH (Android's bionic),
        so a repair writes search paths as DT_RUNPATH."""
        return self.libc is Libc.ANDROID

    def tags(self) -> tuple[str, ...]:
        """The policy's tag followed by its legacy aliases."""
        return (self.name, *self.aliases)

    def allows_symbol_version(self, version: str) -> bool:
        """Whether a reference to symbol version ``version`` is allowed.

        ``version`` is the full version-needed name, e.g. ``"GLIBC_2.17"`` or
        ``"CXXABI_TM_1"``; it is split at the first underscore into namespace and version.
        A namespace the policy does not list is not restricted; a listed one allows exactly
        its set, minus ``denied_symbol_versions``. ``linux`` allows everything.
        """
        namespace, _, number = version.partition("_")
        if number in self.denied_symbol_versions.get(namespace, ()):
            return False
        allowed = self.symbol_versions.get(namespace)
        return allowed is None or number in allowed


# internal, read once and taken apart: never compared, shown nor assigned to, so it gets
# no generated __eq__, __repr__ or frozen guards (each costs start-up time)
@dataclass(eq=False, repr=False)
class _Row:
    """One policy of a data file, as every architecture shares it."""

    index: int
    version: tuple[int, int]
    base: str
    aliases: tuple[str, ...]  # legacy alias base names
    caps: Mapping[str, str | None]  # namespace -> newest version allowed
    arch_caps: Mapping[str, Mapping[str, str | None]]
    lib_templates: tuple[str, ...]
    blacklist: Mapping[str, frozenset[str]]


# internal, read once and taken apart: never compared, shown nor assigned to, so it gets
# no generated __eq__, __repr__ or frozen guards (each costs start-up time)
@dataclass(eq=False, repr=False)
class _Family:
    """One data file, parsed; its policies are built per architecture, when asked for."""

    libc: Libc
    rows: tuple[_Row, ...]
    spans: Mapping[str, Mapping[str, str]]  # architecture -> first, last, libc_arch
    #: namespace -> architecture (or ``*``) -> every version known, with its sort key
    universe: Mapping[str, Mapping[str, tuple[tuple[str, tuple[int, ...]], ...]]]
    extras: tuple[dict[str, Any], ...]

    def arches(self, row: _Row) -> tuple[str, ...]:
        """The architectures ``row`` exists on, in :data:`ARCHITECTURES` order."""
        return tuple(
            arch
            for arch in ARCHITECTURES
            if arch in self.spans
            and _in_span(row.version, self.spans[arch].get("first"), self.spans[arch].get("last"))
        )


def _parse_version(text: str) -> tuple[int, int]:
    major, minor = text.split(".")
    return int(major), int(minor)


@functools.cache  # a handful of strings, asked for thousands of times
def _version_key(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def _in_span(version: tuple[int, int], first: str | None, last: str | None) -> bool:
    if first is not None and version < _parse_version(first):
        return False
    return last is None or version <= _parse_version(last)


def _expand(entries: Iterable[str]) -> list[str]:
    """Expand ``"A..B"`` runs (stepping the last component) in a version list."""
    versions: list[str] = []
    for entry in entries:
        first, dots, last = entry.partition("..")
        if not dots:
            versions.append(entry)
            continue
        head, _, start = first.rpartition(".")
        tail_head, _, stop = last.rpartition(".")
        if head != tail_head or int(start) >= int(stop):
            msg = f"invalid version run {entry!r} in the policy data"
            raise ValueError(msg)
        versions.extend(f"{head}.{n}" for n in range(int(start), int(stop) + 1))
    return versions


@functools.cache
def _load(libc: Libc) -> _Family:
    data = _resources.load(_DATA_FILES[libc])
    family: str = data["family"]
    version_namespace: str | None = data["version_namespace"]
    spans: dict[str, dict[str, str]] = data["architectures"]
    universe = {
        namespace: {
            arch: tuple((v, _version_key(v)) for v in _expand(versions))
            for arch, versions in per_arch.items()
        }
        for namespace, per_arch in data["universe"].items()
    }
    unknown = set(spans) - set(ARCHITECTURES)
    if unknown:
        msg = f"{family}: unknown architectures {sorted(unknown)} in the policy data"
        raise ValueError(msg)

    rows: list[_Row] = []
    caps: dict[str, str | None] = {}
    for index, row in enumerate(data["policies"]):
        version = _parse_version(row["version"])
        base = f"{family}_{version[0]}_{version[1]}"
        caps.update(row.get("caps", {}))
        if version_namespace is not None:
            caps[version_namespace] = row["version"]
        if set(caps) != set(universe):
            msg = f"{base}: caps {sorted(caps)} do not match namespaces {sorted(universe)}"
            raise ValueError(msg)
        blacklist: dict[str, frozenset[str]] = {}
        for entry in data["blacklist"]:
            if _in_span(version, entry.get("since"), entry.get("last")):
                for soname, symbols in entry["libs"].items():
                    blacklist[soname] = blacklist.get(soname, frozenset()) | frozenset(symbols)
        rows.append(
            _Row(
                index=index,
                version=version,
                base=base,
                aliases=tuple(row.get("aliases", ())),
                caps=dict(caps),
                arch_caps=row.get("arch_caps", {}),
                lib_templates=tuple(
                    lib
                    for entry in data["allowed_libs"]
                    if _in_span(version, entry.get("since"), entry.get("last"))
                    for lib in entry["libs"]
                ),
                blacklist=MappingProxyType(blacklist),
            )
        )
    return _Family(libc, tuple(rows), spans, universe, tuple(data["extras"]))


@functools.cache
def _policies(libc: Libc, arch: str) -> tuple[Policy, ...]:
    """The manylinux/musllinux policies of ``arch``, most compatible first (built only for
    the architectures a run asks about)."""
    family = _load(libc)
    span = family.spans.get(arch)
    if span is None:
        return ()
    libc_arch = span.get("libc_arch", arch)
    out = []
    for row in family.rows:
        if not _in_span(row.version, span.get("first"), span.get("last")):
            continue
        arch_caps = {**row.caps, **row.arch_caps.get(arch, {})}
        symbol_versions: dict[str, set[str]] = {}
        for namespace, per_arch in family.universe.items():
            cap = arch_caps[namespace]
            known = per_arch[arch] if arch in per_arch else per_arch["*"]
            limit = _version_key(cap) if cap is not None else None
            symbol_versions[namespace] = {
                v for v, key in known if limit is not None and key <= limit
            }
        for extra in family.extras:
            if _in_span(row.version, extra["since"], None) and (
                extra["arches"] == "*" or arch in extra["arches"]
            ):
                for namespace, names in extra["versions"].items():
                    symbol_versions[namespace].update(names)
        out.append(
            Policy(
                name=f"{row.base}_{arch}",
                base=row.base,
                aliases=tuple(f"{alias}_{arch}" for alias in row.aliases),
                libc=libc,
                arch=arch,
                priority=len(family.rows) - row.index,
                version=row.version,
                symbol_versions=MappingProxyType(
                    {ns: frozenset(v) for ns, v in symbol_versions.items()}
                ),
                allowed_libs=frozenset(t.format(libc_arch=libc_arch) for t in row.lib_templates),
                blacklist=MappingProxyType(dict(row.blacklist)),
            )
        )
    return tuple(out)


@functools.cache
def _linux(arch: str) -> Policy:
    return Policy(
        name=f"{LINUX}_{arch}",
        base=LINUX,
        aliases=(),
        libc=None,
        arch=arch,
        priority=0,
        version=None,
        symbol_versions=_NOTHING,
        allowed_libs=frozenset(),
        blacklist=_NOTHING,
    )


@functools.cache
def policies_for(libc: Libc, arch: str) -> tuple[Policy, ...]:
    """Every policy of ``libc`` on ``arch``, most compatible first, ending with linux.

    An architecture without manylinux/musllinux policies only gets ``linux_<arch>``, and
    so does Android, whose policy depends on the wheel's tag (:func:`android_policies`).
    """
    if Libc(libc) is Libc.ANDROID:
        return (_linux(arch),)
    return (*_policies(Libc(libc), arch), _linux(arch))


@functools.cache
def _index() -> Mapping[str, tuple[Libc | None, str, tuple[str, ...]]]:
    """Base name or legacy alias -> (libc, base name, architectures it exists on)."""
    index: dict[str, tuple[Libc | None, str, tuple[str, ...]]] = {}
    for libc in _FAMILIES:
        family = _load(libc)
        for row in family.rows:
            arches = family.arches(row)
            for name in (row.base, *row.aliases):
                index[name] = (libc, row.base, arches)
    index[LINUX] = (None, LINUX, ARCHITECTURES)
    return MappingProxyType(index)


def known_names() -> tuple[str, ...]:
    """Every base name and legacy alias (without architecture), and ``linux``."""
    return tuple(_index())


@functools.cache
def _all_tags() -> tuple[str, ...]:
    return tuple(
        tag
        for libc in _FAMILIES
        for arch in ARCHITECTURES
        for policy in policies_for(libc, arch)
        if libc is Libc.GLIBC or not policy.is_linux
        for tag in policy.tags()
    )


def _split_tag(name: str) -> tuple[str | None, str | None]:
    """Split ``name`` into a known base name or alias and an architecture (or None)."""
    # no family's names start with "linux" (the tests hold it): the data is not read for it
    if name == LINUX:
        return LINUX, None
    if name.startswith(f"{LINUX}_") and len(name) > len(LINUX) + 1:
        return LINUX, name[len(LINUX) + 1 :]
    index = _index()
    if name in index:
        return name, None
    for known in sorted(index, key=len, reverse=True):
        prefix = f"{known}_"
        if name.startswith(prefix) and len(name) > len(prefix):
            return known, name[len(prefix) :]
    return None, None


def _pep600_version(name: str) -> tuple[str, tuple[int, int]] | None:
    """``"manylinux_2_17"`` -> ``("manylinux", (2, 17))``; None for other shapes."""
    family, *parts = name.split("_")
    if len(parts) != 2 or not all(part.isdigit() for part in parts):
        return None
    return family, (int(parts[0]), int(parts[1]))


def _neighbours(stem: str, arch: str | None) -> list[str]:
    """For an unknown ``manylinux_X_Y``/``musllinux_X_Y``, the known ones just around it."""
    wanted = _pep600_version(stem)
    if wanted is None:
        return []
    candidates: list[tuple[tuple[int, int], str]] = []
    for base, (_, _, arches) in _index().items():
        known = _pep600_version(base)
        if known is not None and known[0] == wanted[0] and arch in (None, *arches):
            candidates.append((known[1], base))
    candidates.sort()
    older = [base for version, base in candidates if version < wanted[1]]
    newer = [base for version, base in candidates if version > wanted[1]]
    return [*older[-1:], *newer[:1]]


def _close(word: str, candidates: list[str] | tuple[str, ...], n: int) -> list[str]:
    # difflib costs more to import than the policy table takes to build; only errors use it
    import difflib  # noqa: PLC0415

    return difflib.get_close_matches(word, candidates, n=n)


def _unknown_name(name: str) -> str:
    index = _index()
    names = list(index)
    arch = next(
        (a for a in sorted(ARCHITECTURES, key=len, reverse=True) if name.endswith(f"_{a}")),
        None,
    )
    if arch is not None:
        stem = name[: -len(arch) - 1]
        close = _neighbours(stem, arch) or _close(stem, names, 3)
        matches = [f"{match}_{arch}" for match in close if arch in index[match][2]]
    else:
        matches = _neighbours(name, None) or _close(name, [*names, *_all_tags()], 3)
    if matches:
        hint = "did you mean " + " or ".join(repr(m) for m in matches) + "?"
    else:
        hint = "known policies are " + ", ".join(names)
    return f"unknown platform policy {name!r}; {hint}"


def _missing_on(name: str, arch: str, arches: tuple[str, ...]) -> str:
    text = f"{name} does not exist on {arch}; it exists on {', '.join(arches)}"
    close = _close(arch, arches, 1)
    if arch not in ARCHITECTURES and close:
        text += f" (did you mean {name}_{close[0]}?)"
    return text


def lookup(name: str, arch: str | None = None) -> Policy:
    """Find a policy by full tag, or by base name or legacy alias plus ``arch``.

    ``name`` is a full tag (``"manylinux_2_17_x86_64"``, ``"manylinux2014_x86_64"``,
    ``"linux_x86_64"``) or a name without architecture (``"manylinux_2_17"``,
    ``"manylinux2014"``, ``"musllinux_1_2"``, ``"linux"``) given together with ``arch``.
    Android tags (``"android_24_arm64_v8a"``) are only known in full.
    Raises KeyError for unknown names (suggesting the closest ones) and for policies that
    do not exist on the architecture (saying where they do).
    """
    if name.startswith(ANDROID_PREFIX):
        return _android_lookup(name, arch)
    known, tag_arch = _split_tag(name)
    if known is None:
        raise KeyError(_unknown_name(name))
    if tag_arch is not None:
        if arch is not None and arch != tag_arch:
            msg = f"{name!r} is a tag for {tag_arch}, not for the requested {arch}"
            raise KeyError(msg)
        arch = tag_arch
    if arch is None:
        msg = f"{name!r} needs an architecture: pass arch, or a full tag like '{name}_x86_64'"
        raise KeyError(msg)
    if known == LINUX:
        return _linux(arch)
    libc, base, arches = _index()[known]
    if libc is None:
        return _linux(arch)
    for policy in policies_for(libc, arch):
        if policy.base == base:
            return policy
    raise KeyError(_missing_on(known, arch, arches))


# -- Android (PEP 738) ------------------------------------------------------------------


# internal, read once and taken apart: never compared, shown nor assigned to, so it gets
# no generated __eq__, __repr__ or frozen guards (each costs start-up time)
@dataclass(eq=False, repr=False)
class _AndroidData:
    """``_data/android.json``, read."""

    system_libs: tuple[tuple[int, frozenset[str]], ...]  # (since API level, sonames)
    python_libs: frozenset[str]
    symbol_versions: Mapping[str, Mapping[str, int]]  # namespace -> version -> API level


@functools.cache
def _android_data() -> _AndroidData:
    data = _resources.load("android.json")
    return _AndroidData(
        system_libs=tuple(
            (int(entry["since"]), frozenset(entry["libs"])) for entry in data["system_libs"]
        ),
        python_libs=frozenset(data["python_libs"]),
        symbol_versions=MappingProxyType(
            {ns: MappingProxyType(dict(v)) for ns, v in data["symbol_versions"].items()}
        ),
    )


@functools.cache
def _android_policy(platform: str) -> Policy:
    from relabel import android  # noqa: PLC0415 - Android tags only

    tag = android.parse_tag(platform)
    if tag is None:  # pragma: no cover - callers pass android_ tags only
        raise KeyError(platform)
    if tag.api_level < android.MIN_API:
        msg = (
            f"{platform!r} names API level {tag.api_level}; Python supports Android from"
            f" API level {android.MIN_API} (PEP 738)"
        )
        raise KeyError(msg)
    data = _android_data()
    libs = frozenset().union(
        *(names for since, names in data.system_libs if since <= tag.api_level)
    )
    denied = {
        namespace: frozenset(v for v, level in versions.items() if level > tag.api_level)
        for namespace, versions in data.symbol_versions.items()
    }
    return Policy(
        name=platform,
        base=f"android_{tag.api_level}",
        aliases=(),
        libc=Libc.ANDROID,
        arch=tag.arch,
        priority=1,
        version=None,
        symbol_versions=_NOTHING,
        allowed_libs=libs | data.python_libs,
        blacklist=_NOTHING,
        denied_symbol_versions=MappingProxyType(denied),
        api_level=tag.api_level,
    )


def _android_lookup(name: str, arch: str | None) -> Policy:
    from relabel import android  # noqa: PLC0415 - see _android_policy

    try:
        tag = android.parse_tag(name)
    except ValueError as exc:
        raise KeyError(str(exc)) from None
    assert tag is not None  # noqa: S101 - name starts with the prefix
    if arch is not None and arch not in (tag.arch, tag.abi):
        msg = f"{name!r} is a tag for {tag.arch}, not for the requested {arch}"
        raise KeyError(msg)
    return _android_policy(name)


def android_policies(platform: str) -> tuple[Policy, ...]:
    """The policy of one Android platform tag, then ``linux`` for its architecture.

    As auditwheel does, the wheel's own tag is the policy: it names the API level the
    wheel was built for, and decides which system libraries may stay outside the wheel
    and which of bionic's symbol versions it may use. Raises KeyError (with a sentence
    saying why) for a malformed tag or an API level older than PEP 738 supports.
    """
    found = _android_lookup(platform, None)
    return (found, _linux(found.arch))
