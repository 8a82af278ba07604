"""Find shared libraries the way the dynamic loader would, without running it.

For one object the glibc loader searches (ld.so(8)): the DT_RPATH of the object and of the
objects that loaded it (only when the object has no DT_RUNPATH), LD_LIBRARY_PATH, the
object's DT_RUNPATH, the ld.so cache (``/etc/ld.so.conf`` and its includes), then the
default directories. musl reads ``/etc/ld-musl-<arch>.path`` instead of ld.so.conf.
relabel's ``library-dirs`` are searched right after LD_LIBRARY_PATH, as if appended to it.
``$ORIGIN`` is expanded; ``$LIB`` and ``$PLATFORM`` are expanded as this host's glibc loader
expands them (its ``--list-diagnostics``: Debian's makes ``$LIB`` ``lib/x86_64-linux-gnu``,
``$PLATFORM`` the CPU's name), and refused where that cannot be known (another root, another
architecture, musl, a glibc before 2.33): a guess would graft another library. A candidate
whose ELF class or machine differs from the loading object is skipped, as the loader skips it.

The environment part follows auditwheel: ``AUDITWHEEL_LD_LIBRARY_PATH`` first, then
``LD_LIBRARY_PATH`` (which is left out when the system directories are replaced, as with
auditwheel's ``--ldpaths``, and under a sysroot, where the host's directories mean
nothing). An empty entry means the working directory to ld.so; relabel ignores it,
because the working directory of the installing process has nothing to do with the
directory relabel happens to run in.

A DT_NEEDED holding a ``/`` is a path the loader opens as it is, relative to the working
directory of the process: relabel never resolves it (audit reports it as not portable).

A wheel is resolved as a graph (:meth:`Resolver.resolve_wheel`): the roots are the wheel's
ELF files that no other wheel file loads through DT_NEEDED; a wheel library reached from
roots is resolved with the DT_RPATH chain its loaders pass down (the union over the roots
that reach it), a wheel library reached from none is resolved alone.
Each file is parsed once per run, through a cache shared by the whole walk.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import re
import sys
from collections import deque
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import TYPE_CHECKING

from relabel._process import ask
from relabel.arch import (
    MUSL_LOADER,
    is_glibc_libc,
    is_loader,
    is_musl_interpreter,
    is_musl_libc,
)
from relabel.elf import ElfInfo, read_elf
from relabel.errors import ElfError, LibraryError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

_TOKEN = re.compile(r"\$(ORIGIN|LIB|PLATFORM)\b|\$\{(ORIGIN|LIB|PLATFORM)\}")
LIBPYTHON = re.compile(r"^libpython\d+\.\d+m?\.so(\.\d+)*$")

_HOST_TOKEN = re.compile(r"\$(LIB|PLATFORM)\b|\$\{(LIB|PLATFORM)\}")
_DIAGNOSTICS = re.compile(r'^(dl_dst_lib|dl_platform)="([^"]*)"$', re.MULTILINE)


# a result read by attribute, never compared nor shown: no generated __eq__ and __repr__
@dataclass(frozen=True, eq=False, repr=False)
class Library:
    """Where one soname resolved, seen from the object that needs it."""

    soname: str
    path: str | None  # resolved real path, None when not found (or libpython)
    searched: tuple[str, ...] = ()
    info: ElfInfo | None = None
    #: files of that name the loader would pass over, and why (when not found)
    skipped: tuple[tuple[str, str], ...] = ()


# a result read by attribute, never compared nor shown: no generated __eq__ and __repr__
@dataclass(frozen=True, eq=False, repr=False)
class Node:
    """An ELF file of the wheel with its whole resolved dependency closure.

    Inside one closure a soname names one file (the loader maps a soname once per
    process); two nodes may resolve one soname to two different files.
    """

    member: str  # name inside the wheel
    path: str  # extracted location on disk
    info: ElfInfo
    #: soname -> resolution, for every library reachable through DT_NEEDED (loaders skipped)
    libraries: Mapping[str, Library]
    #: soname -> the sonames it needs (the edges), for the libraries that resolved
    edges: Mapping[str, tuple[str, ...]]
    #: wheel members whose closure loads this file (empty: a root, loaded by nothing)
    loaded_by: tuple[str, ...] = ()
    #: the DT_RPATH entries its loaders pass down, as resolved (empty for a root)
    inherited: tuple[str, ...] = ()


# a run's context and caches, compared with nothing: no generated __eq__ and __repr__
@dataclass(eq=False, repr=False)
class Resolver:
    """Resolution context shared across one run (caches parsed files and directory listings)."""

    library_dirs: Sequence[str] = ()
    exclude: Sequence[str] = ()
    #: replaces the ld.so.conf and default directories (auditwheel's ``--ldpaths``)
    ldpaths: Sequence[str] | None = None
    root: str = "/"
    env_paths: Sequence[str] | None = None
    _elf_cache: dict[str, ElfInfo] = field(default_factory=dict)
    _system_dirs: dict[str, tuple[str, ...]] = field(default_factory=dict)
    _dst_values: dict[str, dict[str, str] | None] = field(default_factory=dict)

    # -- parsing --------------------------------------------------------------------
    def parse(self, path: str, display: str | None = None) -> ElfInfo:
        real = os.path.realpath(path)
        cached = self._elf_cache.get(real)
        if cached is None:
            cached = read_elf(real, display)
            self._elf_cache[real] = cached
        return cached

    def seed(self, path: str, info: ElfInfo) -> None:
        """Register an already parsed file (a wheel member) so it is never parsed again."""
        self._elf_cache[os.path.realpath(path)] = info

    # -- search paths ---------------------------------------------------------------
    def _ld_library_path(self) -> tuple[str, ...]:
        if self.env_paths is not None:
            return tuple(self.env_paths)
        # auditwheel's order: its own variable, then the loader's, which means nothing
        # under another root or with the system directories replaced (--ldpaths).
        value = os.environ.get("AUDITWHEEL_LD_LIBRARY_PATH", "")
        if self.root == "/" and self.ldpaths is None:
            value += ":" + os.environ.get("LD_LIBRARY_PATH", "")
        # An empty entry is the working directory to ld.so; that of the installing
        # process is unrelated to ours, so it is ignored rather than followed.
        return tuple(_dedupe(os.path.normpath(p) for p in value.split(":") if p))

    def system_dirs(self, info: ElfInfo) -> tuple[str, ...]:
        if self.ldpaths is not None:
            return tuple(os.path.abspath(d) for d in self.ldpaths)
        musl = bool(info.interpreter and is_musl_interpreter(info.interpreter))
        key = f"{'musl' if musl else 'glibc'}-{info.elf_class}"
        cached = self._system_dirs.get(key)
        if cached is not None:
            return cached
        root = self.root.rstrip("/")
        dirs: list[str] = []
        if musl:
            paths = sorted(glob.glob(f"{root}/etc/{MUSL_LOADER}*.path"))
            text = _read_config(paths[0]) if paths else None
            if text is not None:
                dirs += [root + p.strip() for p in re.split(r"[:\n]", text) if p.strip()]
            else:
                dirs += [f"{root}/lib", f"{root}/usr/local/lib", f"{root}/usr/lib"]
        else:
            dirs += _parse_ld_so_conf(f"{root}/etc/ld.so.conf", root, set())
            if info.elf_class == 64:
                dirs += [f"{root}/lib64", f"{root}/usr/lib64"]
            dirs += [f"{root}/lib", f"{root}/usr/lib"]
        interp = info.interpreter
        if interp:
            dirs += [root + os.path.dirname(interp), root + "/usr" + os.path.dirname(interp)]
        result = tuple(_dedupe(os.path.normpath(d) for d in dirs if os.path.isdir(d)))
        self._system_dirs[key] = result
        return result

    def _host_dst(self, info: ElfInfo) -> dict[str, str] | None:
        """``$LIB`` and ``$PLATFORM`` as this host's loader expands them for ``info``, None
        when no loader here would load it (another root or architecture, musl, no answer)."""
        key = f"{info.machine}-{info.elf_class}-{info.interpreter or ''}"
        if key not in self._dst_values:
            self._dst_values[key] = self._ask_loader(info)
        return self._dst_values[key]

    def _ask_loader(self, info: ElfInfo) -> dict[str, str] | None:
        if self.root != "/" or (info.interpreter and "ld-musl-" in info.interpreter):
            return None
        try:
            python = self.parse(sys.executable)
        except (ElfError, OSError):
            return None
        interp = python.interpreter
        if not interp or "ld-musl-" in interp or not python.same_platform(info):
            return None
        # glibc 2.33+; prints dl_dst_lib and dl_platform, the values of the two tokens
        proc = ask([interp, "--list-diagnostics"], timeout=30)
        if proc is None:
            return None
        found = dict(_DIAGNOSTICS.findall(proc.stdout))
        if proc.returncode != 0 or set(found) != {"dl_dst_lib", "dl_platform"}:
            return None
        return {"LIB": found["dl_dst_lib"], "PLATFORM": found["dl_platform"]}

    def _expand(self, entries: Sequence[str], origin: str, info: ElfInfo) -> list[str]:
        values = {"ORIGIN": origin}
        if any(_HOST_TOKEN.search(e) for e in entries):
            host = self._host_dst(info)
            if host is None:
                entry = next(e for e in entries if _HOST_TOKEN.search(e))
                raise LibraryError(
                    info.path,
                    f"the search path entry {entry!r} uses $LIB or $PLATFORM, which relabel"
                    " expands only as this machine's glibc loader does, for files it would"
                    " load (not under a sysroot, for another architecture or for musl)."
                    " Replace the entry with the directory it means, or repair on a machine"
                    " of the wheel's platform",
                )
            values.update(host)

        def token(match: re.Match[str]) -> str:
            return values[match.group(1) or match.group(2)]

        out = []
        for entry in entries:
            expanded = _TOKEN.sub(token, entry)
            if not expanded.startswith("/"):
                # The loader resolves relative entries against the working directory; that is
                # never meaningful for an installed wheel, so such entries are ignored.
                continue
            if "$ORIGIN" not in entry and "${ORIGIN}" not in entry and self.root != "/":
                expanded = self.root.rstrip("/") + expanded
            out.append(os.path.normpath(expanded))
        return out

    # -- lookup ---------------------------------------------------------------------
    def find(
        self,
        soname: str,
        needer: ElfInfo,
        dirs: Sequence[str],
        skipped: list[tuple[str, str]] | None = None,
    ) -> tuple[str | None, ElfInfo | None]:
        """The first candidate the loader would map; ``skipped`` collects the others.

        A name with a slash is a path to the loader, opened relative to the working
        directory of the process: nothing relabel can resolve (:func:`is_path`).
        """
        if is_path(soname):
            return None, None
        for candidate in (os.path.join(d, soname) for d in dirs):
            if not os.path.isfile(candidate):
                continue
            real = os.path.realpath(candidate)
            try:
                info = self.parse(real)
            except ElfError as exc:
                # the loader skips files it cannot map, and so do we
                if skipped is not None:
                    skipped.append((candidate, exc.message))
                continue
            if not needer.same_platform(info):
                if skipped is not None:
                    skipped.append((candidate, f"built for {info.arch or info.machine}"))
                continue
            theirs, ours = c_library(info), c_library(needer)
            if theirs is not None and ours is not None and theirs[0] != ours[0]:
                # built against the other C library: no system of the needer's kind provides
                # what it links to, so it is passed over like a file of another architecture
                if skipped is not None:
                    skipped.append((candidate, f"built for {theirs[0]} (needs {theirs[1]})"))
                continue
            return real, info
        return None, None

    def excluded(self, soname: str, path: str | None = None) -> bool:
        return any(
            fnmatch(soname, pattern) or (path is not None and fnmatch(path, pattern))
            for pattern in self.exclude
        )

    def search_dirs(
        self,
        obj_path: str,
        obj: ElfInfo,
        inherited: Sequence[str] = (),
        root: ElfInfo | None = None,
        root_path: str | None = None,
    ) -> list[str]:
        """Directories searched, in order, for a DT_NEEDED (or dlopen) of ``obj``.

        ``inherited`` is the DT_RPATH chain of the objects that loaded ``obj``; ``root`` is
        the wheel file whose closure is being walked (its DT_RUNPATH is the last resort).
        """
        origin = os.path.dirname(os.path.abspath(obj_path))
        own_rpath = self._expand(obj.rpath, origin, obj)
        runpath = self._expand(obj.runpath, origin, obj)
        # The loader uses DT_RPATH (own, then the loaders') only without DT_RUNPATH.
        rpath = [] if obj.runpath else [*own_rpath, *inherited]
        extra = [os.path.abspath(d) for d in self.library_dirs]
        system = self.system_dirs(root or obj)
        fallback: list[str] = []
        if root is not None and root_path is not None:
            # Last resort, after the loader's own order: the wheel file's RUNPATH also for
            # its indirect dependencies. The loader would not use it there, but a library
            # built next to its dependencies in one build tree is meant to be found this way.
            fallback = self._expand(root.runpath, os.path.dirname(os.path.abspath(root_path)), root)
        return _dedupe([*rpath, *self._ld_library_path(), *extra, *runpath, *system, *fallback])

    def walk(self, member: str, path: str, info: ElfInfo, inherited: Sequence[str] = ()) -> Node:
        """Resolve the dependency closure of one wheel file.

        ``inherited`` is the DT_RPATH chain the file's loaders pass down to it.
        """
        return self._walk(member, path, info, tuple(inherited))[0]

    def _walk(
        self, member: str, path: str, info: ElfInfo, inherited: tuple[str, ...]
    ) -> tuple[Node, dict[str, tuple[str, ...]]]:
        """The node, and for every file mapped, the DT_RPATH chain passed down to it."""
        self.seed(path, info)
        libraries: dict[str, Library] = {}
        # The loader matches a DT_NEEDED against the sonames already mapped, the file's
        # own included: a library that needs its own soname is satisfied by itself.
        present = {info.soname} if info.soname else set()
        chains: dict[str, tuple[str, ...]] = {}
        # (object path, its info, the DT_RPATH chain of the objects that loaded it), in the
        # loader's breadth-first order: who maps a soname first decides the chain it gets
        queue: deque[tuple[str, ElfInfo, tuple[str, ...]]] = deque([(path, info, inherited)])
        while queue:
            obj_path, obj, chain = queue.popleft()
            dirs = self.search_dirs(obj_path, obj, chain, info, path)
            # A loader that has DT_RUNPATH passes no DT_RPATH down (glibc's cache_rpath).
            own = self._expand(obj.rpath, os.path.dirname(os.path.abspath(obj_path)), obj)
            passed_down = chain if obj.runpath else tuple(_dedupe([*own, *chain]))
            for soname in obj.needed:
                if is_loader(os.path.basename(soname)) or soname in libraries:
                    continue
                if soname in present:
                    continue
                if self.excluded(soname):
                    # before libpython, as auditwheel does: excluded means not listed at all
                    continue
                if LIBPYTHON.match(soname):
                    libraries[soname] = Library(soname, None, ())
                    continue
                passed_over: list[tuple[str, str]] = []
                real, dep = self.find(soname, obj, dirs, passed_over)
                if real is not None and self.excluded(soname, real):
                    continue
                libraries[soname] = Library(
                    soname,
                    real,
                    () if is_path(soname) else tuple(dirs),
                    dep,
                    tuple(passed_over) if real is None else (),
                )
                if real is not None and dep is not None:
                    if dep.soname:
                        present.add(dep.soname)
                    chains.setdefault(real, passed_down)
                    queue.append((real, dep, passed_down))
        edges = {
            soname: tuple(s for s in lib.info.needed if s in libraries)
            for soname, lib in libraries.items()
            if lib.info is not None
        }
        return Node(member, path, info, libraries, edges, inherited=inherited), chains

    def resolve_wheel(self, files: Sequence[tuple[str, str, ElfInfo]]) -> tuple[Node, ...]:
        """Nodes of every (member, extracted path, info) of a wheel, resolved from the roots.

        Every file is first walked as if loaded alone; the files no other walk reaches are
        the roots. A file the roots reach is walked again with the union of the DT_RPATH
        chains they pass down to it (ld.so(8): DT_RPATH serves everything loaded below,
        unless the loadee has DT_RUNPATH, which the walk honours).
        """
        by_real = {os.path.realpath(path): member for member, path, _ in files}
        alone: dict[str, tuple[Node, dict[str, tuple[str, ...]]]] = {
            member: self._walk(member, path, info, ()) for member, path, info in files
        }
        loaders: dict[str, list[str]] = {}
        for member, (_, chains) in alone.items():
            for real in chains:
                loaded = by_real.get(real)
                if loaded is not None and loaded != member:
                    loaders.setdefault(loaded, []).append(member)
        roots = [member for member, _, _ in files if member not in loaders]
        passed: dict[str, list[str]] = {}
        reached_from: dict[str, list[str]] = {}
        for root in roots:
            for real, chain in alone[root][1].items():
                loaded = by_real.get(real)
                if loaded is not None and loaded != root:
                    passed.setdefault(loaded, []).extend(chain)
                    reached_from.setdefault(loaded, []).append(root)
        nodes: list[Node] = []
        for member, path, info in files:
            node = alone[member][0]
            if member in reached_from:
                node = self.walk(member, path, info, tuple(_dedupe(passed[member])))
            nodes.append(
                dataclasses.replace(node, loaded_by=tuple(_dedupe(reached_from.get(member, ()))))
            )
        return tuple(nodes)


def c_library(info: ElfInfo) -> tuple[str, str] | None:
    """(``glibc``, ``musl`` or ``bionic``, the evidence) for a file whose C library is known: its
    interpreter, else the C library it needs; None when it shows neither."""
    interp = os.path.basename(info.interpreter or "")
    if info.android_api is not None or interp.startswith("linker"):
        return "bionic", interp or "an Android API level"
    if interp:
        if is_musl_interpreter(interp):
            return "musl", interp
        if is_glibc_libc(interp):
            return "glibc", interp
    for needed in info.needed:
        if is_glibc_libc(needed):
            return "glibc", needed
        if is_musl_libc(needed):
            return "musl", needed
    return None


def is_path(needed: str) -> bool:
    """A DT_NEEDED the loader opens as a path (it holds a slash), not by a search."""
    return "/" in needed


def _read_config(path: str) -> str | None:
    """A loader configuration file's text, None when it cannot be read (the loader, and
    ldconfig, pass over such a file too)."""
    try:
        return Path(path).read_text(errors="replace")
    except (OSError, ValueError):
        return None


def _parse_ld_so_conf(conf: str, root: str, seen: set[str]) -> list[str]:
    if conf in seen:
        return []
    seen.add(conf)
    text = _read_config(conf)
    if text is None:
        return []
    dirs: list[str] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("include"):
            pattern = line[len("include") :].strip()
            if not pattern.startswith("/"):
                pattern = os.path.join(os.path.dirname(conf), pattern)
            else:
                pattern = root + pattern
            for included in sorted(glob.glob(pattern)):
                dirs += _parse_ld_so_conf(included, root, seen)
        elif line.startswith("hwcap"):
            continue
        else:
            dirs.append(root + line)
    return dirs


def _dedupe(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
