"""Lowering the glibc floor: which version requirements of a file can move to an older glibc.

This module decides; :mod:`relabel.verneed` edits bytes. A toolchain on a current distribution
links ``pthread_create@GLIBC_2.34``, ``fcntl64@GLIBC_2.28``, ``exp@GLIBC_2.29`` even when the
code needs nothing new. For a defined set of symbols the requirement can name an older version
that old glibc has and new glibc binds to the same code, without injecting any code:

- **A** (moved library, automatic): the symbol moved into libc.so.6 and the old version (in
  libpthread.so.0, libdl.so.2, ...) is the same code in the newest glibc. ld.so binds by name
  and version, never by the Verneed's file, so the old provider only has to be loaded: it is
  added to DT_NEEDED. The newest old version at or below the target is used, never the oldest
  (``timer_create@GLIBC_2.2.5`` is a different ABI from ``@GLIBC_2.3.3``).
- **B** (same library, curated): the old version wraps the same core (libm), or is a superset
  (``memcpy@GLIBC_2.2.5``).
- **C** (rename, curated): an equivalent function old glibc has (``fcntl64`` -> ``fcntl``).
- **D** (behaviour differs, opt-in by name): ``__isoc23_strtol`` -> ``strtol``.
- **E** refused: new functions, changed ABIs (the ``stat`` family), the denylist, data symbols,
  names the file defines. **F** refused: version needs no symbol uses (``GLIBC_ABI_DT_RELR``).

The facts come from ``_data/glibc_floor.json`` (see ``backend/generate/glibc_symbols.py``).
Everything above :func:`lower_file` is pure; :func:`lower_file` reads, rewrites, re-reads with
:mod:`relabel.elf` (an independent parser) and checks the result against the target's symbols.
The setting's values, the releases covered and whether a wheel is worth loading this module
for live in :mod:`relabel.floor_setting`.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import elf
from .errors import RelabelError
from .floor_setting import (
    AUTO,
    OFF,
    Version,
    data,
    glibc_version,
    parse_setting,
    parse_version,
    releases,
    show,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from . import verneed


#: ELF e_machine -> tag architecture handled here
MACHINES = {62: "x86_64", 183: "aarch64"}
STT_FUNC = 2
STT_GNU_IFUNC = 10
_STAT_FAMILY = frozenset(
    [
        "stat",
        "stat64",
        "fstat",
        "fstat64",
        "lstat",
        "lstat64",
        "fstatat",
        "fstatat64",
        "mknod",
        "mknodat",
    ]
)
_OTHER_CAPS = {"GLIBCXX_": "libstdc++", "CXXABI_": "libstdc++", "GCC_": "libgcc_s"}


# --- the data ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    library: str
    kind: str
    first: Version
    last: Version | None  # None: the newest release still exports it

    def present(self, release: Version) -> bool:
        return self.first <= release and (self.last is None or release <= self.last)


class Table:
    """The generated facts for one architecture."""

    def __init__(self, data: dict[str, Any], arch: str) -> None:
        arch_data = data["arches"][arch]
        self.arch = arch
        self.releases = [parse_version(r) for r in arch_data["releases"]]
        self.newest = self.releases[-1]
        #: name -> version -> entries (one per library and release range)
        self.symbols: dict[str, dict[str, list[Entry]]] = {}
        for library, buckets in arch_data["symbols"].items():
            for key, names in buckets.items():
                kind, first, last = key.split()
                entry = Entry(
                    library,
                    kind,
                    parse_version(first),
                    None if last == "-" else parse_version(last),
                )
                for item in names.split():
                    name, _, version = item.partition("@")
                    self.symbols.setdefault(name, {}).setdefault(version, []).append(entry)
        self.same_code: dict[str, set[frozenset[str]]] = {}
        for library, groups in arch_data["same_code"].items():
            self.same_code[library] = {frozenset(g.split()) for g in groups}
        self.renames: dict[str, tuple[str, str]] = {
            k: (v[0], v[1]) for k, v in data["renames"].items()
        }
        self.same_library: dict[str, str] = dict(data["same_library"])
        self.opt_in: dict[str, tuple[str, str, str]] = {
            k: (v[0], v[1], v[2]) for k, v in data["opt_in"].items()
        }
        self.denylist: dict[str, str] = dict(data["denylist"])

    def entries(self, name: str, version: str) -> list[Entry]:
        return self.symbols.get(name, {}).get(version, [])

    def exists(self, name: str, version: str, release: Version) -> str | None:
        """The library exporting ``name@version`` in ``release``, or None."""
        for e in self.entries(name, version):
            if e.present(release):
                return e.library
        return None

    def is_function(self, name: str, version: str) -> bool:
        return any(e.kind == "F" for e in self.entries(name, version))

    def same(self, a: str, b: str) -> bool:
        return any({a, b} <= g for groups in self.same_code.values() for g in groups)

    @functools.cache  # noqa: B019 - one Table per architecture, kept for the process
    def defines(self, library: str, release: Version) -> frozenset[str]:
        """Versions ``library`` defines in ``release`` (what ld.so checks each Vernaux against)."""
        out = set()
        for versions in self.symbols.values():
            for version, entries in versions.items():
                if any(e.library == library and e.present(release) for e in entries):
                    out.add(version)
        return frozenset(out)


@functools.cache
def table(arch: str) -> Table | None:
    """The facts for ``arch`` (tag architecture), or None when it is not handled."""
    facts = data()
    return Table(facts, arch) if arch in facts["arches"] else None


# --- what a file needs ------------------------------------------------------------------


@dataclass(frozen=True)
class Need:
    """One undefined dynamic symbol bound to ``name@version`` from the Verneed file ``file``."""

    index: int
    name: str
    file: str
    version: str
    is_function: bool


@dataclass(frozen=True)
class Facts:
    path: str
    arch: str | None
    needed: tuple[str, ...]
    needs: tuple[Need, ...]
    #: (file, version) of every Vernaux, and whether a symbol uses it
    version_needs: tuple[tuple[str, str, bool], ...]
    defined: frozenset[str]


def facts(image: verneed.Image, shown: str | None = None) -> Facts:
    """What :func:`plan_file` needs, from a parsed file."""
    by_index = {a.index: (g.file, a.name) for g in image.verneed for a in g.entries}
    needs = []
    used: set[int] = set()
    for s in image.symbols:
        if s.defined or s.index == 0 or s.version_index < 2:
            continue
        used.add(s.version_index)
        pair = by_index.get(s.version_index)
        if pair is None:
            continue
        needs.append(
            Need(s.index, s.name, pair[0], pair[1], s.kind in (STT_FUNC, STT_GNU_IFUNC, 0))
        )
    return Facts(
        path=shown or image.path,
        arch=MACHINES.get(image.machine),
        needed=tuple(image.needed),
        needs=tuple(needs),
        version_needs=tuple(
            (g.file, a.name, a.index in used) for g in image.verneed for a in g.entries
        ),
        defined=frozenset(s.name for s in image.symbols if s.defined and s.name),
    )


# --- the plan ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    index: int  # the dynamic symbol's index
    symbol: str
    old_file: str
    old_version: str
    new_name: str
    new_file: str
    new_version: str
    provider: str  # the library defining it in the target release (added to DT_NEEDED)
    klass: str  # A, B, C or D
    why: str

    def describe(self) -> str:
        new = self.new_name if self.new_name != self.symbol else self.symbol
        head = f"{self.symbol}: {self.old_file} {self.old_version} -> "
        if new != self.symbol:
            head += f"{new} "
        return head + f"{self.provider} {self.new_version}"

    def as_json(self) -> dict[str, str]:
        return {
            "symbol": self.symbol,
            "from": f"{self.old_file} {self.old_version}",
            "to": f"{self.new_name}@{self.new_version}",
            "verneed_file": self.new_file,
            "provider": self.provider,
            "class": self.klass,
            "why": self.why,
        }


@dataclass(frozen=True)
class Blocker:
    symbol: str | None  # None: a version need no symbol uses
    file: str
    version: str
    klass: str  # D (not allowed), E or F
    reason: str

    def describe(self) -> str:
        what = (
            f"{self.symbol}@{self.version}" if self.symbol else f"{self.version} (from {self.file})"
        )
        return f"{what}: {self.reason}"


@dataclass(frozen=True)
class FilePlan:
    path: str
    target: Version | None
    changes: tuple[Change, ...] = ()
    blockers: tuple[Blocker, ...] = ()
    add_needed: tuple[str, ...] = ()
    reached: Version | None = None  # the glibc the file needs after the changes (None: none)
    caps: tuple[str, ...] = ()  # libstdc++/libgcc versions that hold the tag, untouched
    skipped: str | None = None  # why the file is not handled at all
    #: (file, version) required without a symbol, so that the rewritten file never claims a
    #: glibc older than the oldest release relabel's data checks
    pin: tuple[str, str] | None = None

    def rewrite(self) -> verneed.Rewrite:
        from . import verneed  # noqa: PLC0415 - see _wheel_facts

        return verneed.Rewrite(
            tuple(
                verneed.Retarget(c.index, c.symbol, c.new_name, c.new_file, c.new_version)
                for c in self.changes
            ),
            self.add_needed,
            (self.pin,) if self.pin else (),
        )


def _stat_reason(name: str) -> str:
    return (
        f"changed ABI: glibc before 2.33 has no {name} function, only __xstat-style wrappers"
        " taking a structure version; calling them needs different code"
    )


def _choose(t: Table, name: str, target: Version, newest: Version) -> tuple[str, str] | None:
    """(version, library at target) of the newest ``name@V`` with V <= target that exists in
    the target release and still in the newest release (so every release in between has it)."""
    best: tuple[Version, str, str] | None = None
    for version, entries in t.symbols.get(name, {}).items():
        v = glibc_version(version)
        if v is None or v > target or version.startswith("GLIBC_ABI"):
            continue
        at_target = next((e.library for e in entries if e.present(target)), None)
        if at_target is None or not any(e.present(newest) for e in entries):
            continue
        if not any(e.kind == "F" for e in entries):
            continue
        if best is None or v > best[0]:
            best = (v, version, at_target)
    return None if best is None else (best[1], best[2])


def _verneed_file(
    t: Table, provider: str, fallback: str, version: str, target: Version
) -> str | None:
    """The Verneed file for a requirement: the provider when it defines ``version`` in both the
    target and the newest release (ld.so checks each Vernaux against its file's definitions),
    else the original file when that does (binding ignores the Verneed's file)."""
    for library in (provider, fallback):
        if version in t.defines(library, target) and version in t.defines(library, t.newest):
            return library
    return None


def plan_file(f: Facts, target: Version, allow: Iterable[str] = ()) -> FilePlan:
    """Which requirements of ``f`` above ``target`` move below it, and which cannot and why."""
    allowed = set(allow)
    if f.arch is None:
        return FilePlan(f.path, target, skipped="only x86_64 and aarch64 files are lowered")
    t = table(f.arch)
    if t is None:  # pragma: no cover - the data covers every MACHINES arch
        return FilePlan(f.path, target, skipped=f"no glibc data for {f.arch}")
    changes: list[Change] = []
    indices: list[int] = []
    blockers: list[Blocker] = []
    add_needed: list[str] = []
    caps = sorted({v for _, v, _ in f.version_needs for p in _OTHER_CAPS if v.startswith(p)})
    for need in f.needs:
        v = glibc_version(need.version)
        if v is None or v <= target or need.version.startswith("GLIBC_ABI"):
            continue
        change_or_blocker = _plan_need(t, f, need, target, allowed)
        if isinstance(change_or_blocker, Blocker):
            blockers.append(change_or_blocker)
            continue
        changes.append(change_or_blocker)
        indices.append(need.index)
        if (
            change_or_blocker.provider not in f.needed
            and change_or_blocker.provider not in add_needed
        ):
            add_needed.append(change_or_blocker.provider)
    used = {(n.file, n.version) for n in f.needs}
    for file, version, has_symbol in f.version_needs:
        v = glibc_version(version)
        if v is None or v <= target:
            continue
        if not has_symbol and (file, version) not in used:
            reason = (
                "a version need no symbol uses (a linker or loader feature); it cannot be dropped"
            )
            blockers.append(Blocker(None, file, version, "F", reason))
    reached = _reached(f, changes, indices)
    pin = None
    oldest = t.releases[0]
    if changes and (reached is None or reached < oldest):
        # The old versions chosen may be older than any release the data covers; require the
        # oldest checked release explicitly (a version need with no symbol, which ld.so checks
        # like any other) rather than let the tag claim what was never checked.
        version = f"GLIBC_{show(oldest)}"
        if version in t.defines("libc.so.6", oldest) and "libc.so.6" in f.needed:
            pin, reached = ("libc.so.6", version), oldest
    return FilePlan(
        f.path,
        target,
        tuple(changes),
        tuple(blockers),
        tuple(add_needed),
        reached,
        tuple(caps),
        pin=pin,
    )


def _plan_need(
    t: Table, f: Facts, need: Need, target: Version, allowed: set[str]
) -> Change | Blocker:
    name = need.name

    def refuse(klass: str, reason: str) -> Blocker:
        return Blocker(name, need.file, need.version, klass, reason)

    if name in t.denylist:
        return refuse("E", t.denylist[name])
    if not need.is_function or not t.is_function(name, need.version):
        return refuse("E", "a data symbol: its layout, not only its code, belongs to that version")
    new_name, klass, why = name, "A", ""
    if name in t.opt_in:
        new_name, group, why = t.opt_in[name]
        if group not in allowed:
            return refuse(
                "D", f"behaviour differs ({why}); allow it with glibc-floor-allow = [{group!r}]"
            )
        klass = "D"
    elif name in t.renames:
        new_name, why = t.renames[name]
        klass = "C"
    if new_name != name and new_name in f.defined:
        return refuse("E", f"the file defines {new_name} itself")
    chosen = _choose(t, new_name, target, t.newest)
    if chosen is None:
        if name in _STAT_FAMILY:
            return refuse("E", _stat_reason(name))
        older = [
            v
            for v in t.symbols.get(name, {})
            if (g := glibc_version(v)) is not None and g <= target
        ]
        if older:
            return refuse(
                "E",
                f"no version of {new_name} at or below {show(target)} is in every later release",
            )
        return refuse(
            "E", f"a function new in {need.version}: glibc {show(target)} has no {new_name}"
        )
    version, provider = chosen
    if klass == "A":
        if t.same(f"{name}@{version}", f"{name}@{need.version}"):
            why = (
                "same code"
                if provider == need.file
                else f"moved from {provider} into {need.file}, same code"
            )
        elif name in t.same_library:
            klass, why = "B", t.same_library[name]
        elif name in _STAT_FAMILY:
            return refuse("E", _stat_reason(name))
        else:
            return refuse(
                "E",
                f"changed behaviour or ABI: {name}@{version} is other code than @{need.version}",
            )
    vn_file = _verneed_file(t, provider, need.file, version, target)
    if vn_file is None:
        return refuse(
            "E",
            f"neither {provider} nor {need.file} defines {version} in every release"
            f" from {show(target)}",
        )
    return Change(
        need.index, name, need.file, need.version, new_name, vn_file, version, provider, klass, why
    )


def _reached(f: Facts, changes: Sequence[Change], indices: Sequence[int]) -> Version | None:
    moved = set(indices)
    versions: list[Version] = []
    for need in f.needs:
        if need.index not in moved and (v := glibc_version(need.version)) is not None:
            versions.append(v)
    versions += [v for c in changes if (v := glibc_version(c.new_version)) is not None]
    moved_pairs = {(n.file, n.version) for n in f.needs if n.index in moved}
    still = {(n.file, n.version) for n in f.needs if n.index not in moved}
    for file, version, has_symbol in f.version_needs:
        v = glibc_version(version)
        if v is None:
            continue
        emptied = (file, version) in moved_pairs and (file, version) not in still
        if not emptied and (not has_symbol or (file, version) in still):
            versions.append(v)
    return max(versions, default=None)


def lowest(f: Facts, allow: Iterable[str] = ()) -> FilePlan:
    """The plan for the lowest release ``f`` can reach (``auto``)."""
    allow = tuple(allow)
    current = plan_file(f, (9999,), allow)
    if current.skipped:
        return current
    for release in releases():
        p = plan_file(f, release, allow)
        if p.reached is None or p.reached <= release:
            return p
    return current  # pragma: no cover - the newest release always fits


# --- checking a rewritten file ------------------------------------------------------------


def check(info: elf.ElfInfo, target: Version, arch: str) -> list[str]:
    """Problems that would stop ``info`` loading on glibc ``target``, per ld.so's rules:
    every Verneed file is in DT_NEEDED, defines each of its versions in the target release,
    and every versioned glibc symbol exists there."""
    t = table(arch)
    if t is None:
        return [f"no glibc data for {arch}"]
    problems = []
    glibc_libs = {e.library for v in t.symbols.values() for es in v.values() for e in es}
    for library, versions in info.version_needs:
        if library not in info.needed:
            problems.append(f"Verneed file {library} is not in DT_NEEDED (ld.so aborts)")
        if library not in glibc_libs:
            continue
        for version in versions:
            v = glibc_version(version)
            if v is not None and v > target:
                problems.append(f"{library} {version} is newer than glibc {show(target)}")
            elif version.startswith("GLIBC_2") and version not in t.defines(library, target):
                problems.append(f"{library} does not define {version} in glibc {show(target)}")
    for sym in info.undefined:
        if (
            sym.version is None
            or sym.library not in glibc_libs
            or not sym.version.startswith("GLIBC_2")
        ):
            continue
        if t.exists(sym.name, sym.version, target) is None:
            problems.append(f"{sym.name}@{sym.version} does not exist in glibc {show(target)}")
    return problems


# --- doing it ---------------------------------------------------------------------------


class LowerError(Exception):
    """A rewrite failed its checks; the original file was kept. ``str()`` says why."""


def lower_file(source: Path, dest: Path, plan: FilePlan, patchelf: str) -> elf.ElfInfo:
    """Apply ``plan`` writing ``dest``, re-read it with :mod:`relabel.elf` and check it.

    On any failure ``dest`` is removed (when distinct from ``source``) or restored, and
    :class:`LowerError` says why; the caller keeps the original.
    """
    if plan.target is None:
        raise LowerError(f"{plan.path}: no target glibc")
    from . import verneed  # noqa: PLC0415 - see _wheel_facts

    image = verneed.read(source)
    f = facts(image, plan.path)
    if f.arch is None:
        raise LowerError(f"{plan.path}: only x86_64 and aarch64 files are lowered")
    backup = _keep(source) if source == dest else None
    try:
        verneed.apply(source, dest, plan.rewrite(), patchelf)
        info = elf.read_elf(dest, plan.path)
        problems = check(info, plan.target, f.arch)
        for c in plan.changes:
            if not any(s.name == c.new_name and s.version == c.new_version for s in info.undefined):
                problems.append(f"{c.new_name}@{c.new_version} is not required after the rewrite")
        if problems:
            raise LowerError(
                f"{plan.path}: the rewritten file fails its check: " + "; ".join(problems)
            )
    except (verneed.RewriteError, LowerError, RelabelError, OSError) as exc:
        _restore(dest, backup)
        raise LowerError(
            str(exc) if isinstance(exc, LowerError) else f"{plan.path}: {exc}"
        ) from None
    except BaseException:
        _restore(dest, backup)
        raise
    if backup is not None:
        backup.unlink()
    return info


def _keep(source: Path) -> Path:
    """A second name for ``source``'s bytes, on disk rather than in memory.

    :func:`relabel.verneed.apply` replaces the file by a rename, never writes into it, so a
    hard link keeps the original; a copy does where links are not allowed.
    """
    backup = source.with_name(source.name + ".floor-orig")
    backup.unlink(missing_ok=True)
    try:
        os.link(source, backup)
    except OSError:
        shutil.copyfile(source, backup)
    return backup


def _restore(dest: Path, backup: Path | None) -> None:
    if backup is not None:
        backup.replace(dest)
    else:
        dest.unlink(missing_ok=True)


# --- a whole wheel ------------------------------------------------------------------------

#: the provenance file's name in ``.dist-info``
PROVENANCE = "relabel-glibc-floor.json"


class FloorError(RelabelError):
    """An explicit ``glibc-floor`` that some file cannot reach; lists every reason."""

    def __init__(self, target: str, problems: Sequence[str]) -> None:
        self.target = target
        self.problems = tuple(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"glibc-floor = {target!r} cannot be met:\n{lines}\n"
            "Raise glibc-floor to the lowest release named above, set it to 'auto' to lower"
            " as far as the safe rules allow, or build against an older glibc."
        )


@dataclass(frozen=True)
class WheelFloor:
    """What lowering did to a wheel's files (or, with ``off``, what ``auto`` would do)."""

    setting: str
    target: Version | None
    plans: tuple[FilePlan, ...]
    lowered: tuple[str, ...]  # members rewritten
    failed: tuple[tuple[str, str], ...] = ()  # (member, why the original was kept)
    skipped: tuple[tuple[str, str], ...] = ()  # (member, why it is not handled)
    #: (member, requirement) that keeps the member above the oldest release relabel checks
    holding: tuple[tuple[str, Blocker], ...] = ()

    def lines(self) -> list[str]:
        """The report: every rewrite, and what still holds each file up and why."""
        out = []
        if self.setting == OFF:
            if self.target is not None:
                out.append(
                    "glibc-floor = auto would lower this wheel's glibc needs to"
                    f" {show(self.target)} (manylinux_{self.target[0]}_{self.target[1]} unless"
                    " something else holds the tag)"
                )
            return out
        for p in self.plans:
            if p.path in self.lowered:
                out += [f"glibc-floor: {p.path}: {c.describe()}" for c in p.changes]
                if p.pin:
                    out.append(
                        f"glibc-floor: {p.path}: requires {p.pin[1]} from {p.pin[0]}, the oldest"
                        " glibc relabel checks"
                    )
            for cap in p.caps:
                out.append(f"glibc-floor: {p.path}: {cap} is untouched (libstdc++/libgcc)")
        out += [f"glibc-floor: {m}: kept {b.describe()}" for m, b in self.holding]
        out += [f"glibc-floor: {m}: kept as built: {why}" for m, why in self.failed]
        out += [f"glibc-floor: {m}: not lowered: {why}" for m, why in self.skipped]
        return out

    def provenance(self) -> bytes:
        """The JSON recorded in ``.dist-info``."""
        data = {
            "version": 1,
            "setting": self.setting,
            "target": show(self.target) if self.target else None,
            "files": {
                p.path: {
                    "rewrites": [c.as_json() for c in p.changes],
                    "added_needed": list(p.add_needed),
                    "pinned": " ".join(p.pin) if p.pin else None,
                }
                for p in self.plans
                if p.path in self.lowered
            },
        }
        return (json.dumps(data, indent=2) + "\n").encode()


def _wheel_facts(files: Mapping[str, Path]) -> tuple[list[Facts], list[tuple[str, str]]]:
    # the editor's reader is imported only when there is an ELF file to read: a pure wheel
    # does not pay for it
    from . import verneed  # noqa: PLC0415

    found, skipped = [], []
    for member, path in files.items():
        try:
            f = facts(verneed.read(path), member)
        except RelabelError as exc:
            skipped.append((member, str(exc).split(". ")[0]))
            continue
        except (struct.error, IndexError, ValueError) as exc:
            # the audit (elf.py) read this file: a table this reader cannot follow only
            # means the file is left as it is
            skipped.append((member, f"its dynamic tables cannot be followed ({exc})"))
            continue
        if f.arch is None:
            skipped.append((member, "only x86_64 and aarch64 files are lowered"))
            continue
        found.append(f)
    return found, skipped


def _needs_above(all_facts: Iterable[Facts], release: Version) -> bool:
    """Whether any file needs a glibc version (or version marker) newer than ``release``."""
    for f in all_facts:
        for _file, version, _used in f.version_needs:
            v = glibc_version(version)
            if v is not None and v > release:
                return True
    return False


def for_wheel(
    files: Mapping[str, Path], setting: str, allow: Iterable[str], patchelf: str | None
) -> WheelFloor:
    """Lower every file (wheel member -> where it is on disk) in place as ``setting`` says
    (``patchelf`` may be None with ``off``, which only computes what ``auto`` would reach)."""
    allow = tuple(allow)
    parsed = parse_setting(setting)
    all_facts, skipped = _wheel_facts(files)
    if parsed in (OFF, AUTO) and not _needs_above(all_facts, releases()[0]):
        # Nothing is above the oldest release covered: no release is lower to reach, and the
        # symbol tables (the costly part of the data) need not be built.
        return WheelFloor(str(parsed), None, (), (), (), tuple(skipped))
    if parsed in (OFF, AUTO):
        lowest_plans = [lowest(f, allow) for f in all_facts]
        current = [plan_file(f, (9999,), allow).reached for f in all_facts]
        reached = [p.target for p in lowest_plans if p.target is not None]
        target = max(reached, default=None)
        now = max((c for c in current if c is not None), default=None)
        if target is None or now is None or target >= now:
            return WheelFloor(str(parsed), None, (), (), (), tuple(skipped))
        if parsed == OFF:
            return WheelFloor(OFF, target, (), (), (), tuple(skipped))
    else:
        assert not isinstance(parsed, str)  # noqa: S101 - narrowed above
        target = parsed
    plans = [plan_file(f, target, allow) for f in all_facts]
    if parsed != AUTO:
        problems = [
            f"{p.path}: {b.describe()}"
            f" (the lowest this file can reach is {show(lowest(f, allow).target or target)})"
            for p, f in zip(plans, all_facts)
            for b in p.blockers
            if p.reached is not None and p.reached > target
        ]
        if problems:
            raise FloorError(setting, problems)
    if patchelf is None:  # pragma: no cover - the callers pass it except with off
        raise ValueError("patchelf is needed to lower the glibc floor")
    oldest = releases()[0]
    holding = tuple((f.path, b) for f in all_facts for b in plan_file(f, oldest, allow).blockers)
    lowered, failed = [], []
    for p in plans:
        if not p.changes:
            continue
        try:
            lower_file(files[p.path], files[p.path], p, patchelf)
        except LowerError as exc:
            if parsed != AUTO:
                raise FloorError(setting, [str(exc)]) from None
            failed.append((p.path, str(exc)))
            continue
        lowered.append(p.path)
    return WheelFloor(
        str(parsed) if isinstance(parsed, str) else setting,
        target,
        tuple(plans),
        tuple(lowered),
        tuple(failed),
        tuple(skipped),
        holding,
    )
