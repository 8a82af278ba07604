"""Find shared libraries the way the dynamic loader would, without running it.

For one object the glibc loader searches (ld.so(8)): the DT_RPATH of the object and of the
objects that loaded it (only when the object has no DT_RUNPATH), LD_LIBRARY_PATH, the
object's DT_RUNPATH, the ld.so cache (``/etc/ld.so.conf`` and its includes), then the
default directories. musl reads ``/etc/ld-musl-<arch>.path`` instead of ld.so.conf.
relabel's ``library-dirs`` are searched right after LD_LIBRARY_PATH, as if appended to it.
``$ORIGIN``, ``$LIB`` and ``$PLATFORM`` are expanded. A candidate whose ELF class or
machine differs from the loading object is skipped, as the loader skips it.

The result is a plain graph: for every ELF file of the wheel, every library reachable
through DT_NEEDED with where it resolved (or the directories searched when it did not).
Each file is parsed once per run, through a cache shared by the whole walk.
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import TYPE_CHECKING

from relabel.elf import ElfInfo, is_loader, read_elf
from relabel.errors import ElfError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

_TOKEN = re.compile(r"\$(ORIGIN|LIB|PLATFORM)\b|\$\{(ORIGIN|LIB|PLATFORM)\}")
LIBPYTHON = re.compile(r"^libpython\d+\.\d+m?\.so(\.\d+)*$")

_PLATFORM_NAMES = {
    "x86_64": "x86_64",
    "i686": "i686",
    "aarch64": "aarch64",
    "ppc64le": "ppc64le",
    "ppc64": "ppc64",
    "s390x": "s390x",
    "armv7l": "v7l",
    "riscv64": "riscv64",
    "loongarch64": "loongarch64",
}


@dataclass(frozen=True)
class Library:
    """Where one soname resolved, seen from the object that needs it."""

    soname: str
    path: str | None  # resolved real path, None when not found (or libpython)
    searched: tuple[str, ...] = ()
    info: ElfInfo | None = None
    #: files of that name the loader would pass over, and why (when not found)
    skipped: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Node:
    """An ELF file of the wheel with its whole resolved dependency closure."""

    member: str  # name inside the wheel
    path: str  # extracted location on disk
    info: ElfInfo
    #: soname -> resolution, for every library reachable through DT_NEEDED (loaders skipped)
    libraries: Mapping[str, Library]
    #: soname -> the sonames it needs (the edges), for the libraries that resolved
    edges: Mapping[str, tuple[str, ...]]


@dataclass
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
        value = os.environ.get("LD_LIBRARY_PATH", "")
        return tuple(p for p in value.split(":") if p) if self.root == "/" else ()

    def system_dirs(self, info: ElfInfo) -> tuple[str, ...]:
        if self.ldpaths is not None:
            return tuple(os.path.abspath(d) for d in self.ldpaths)
        musl = bool(info.interpreter and "ld-musl-" in info.interpreter)
        key = f"{'musl' if musl else 'glibc'}-{info.elf_class}"
        cached = self._system_dirs.get(key)
        if cached is not None:
            return cached
        root = self.root.rstrip("/")
        dirs: list[str] = []
        if musl:
            paths = sorted(glob.glob(f"{root}/etc/ld-musl-*.path"))
            if paths:
                text = Path(paths[0]).read_text(errors="replace")
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

    def _expand(self, entries: Sequence[str], origin: str, info: ElfInfo) -> list[str]:
        lib = "lib64" if info.elf_class == 64 else "lib"
        platform = _PLATFORM_NAMES.get(info.arch or "", "")
        values = {"ORIGIN": origin, "LIB": lib, "PLATFORM": platform}

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
        """The first candidate the loader would map; ``skipped`` collects the others."""
        # A DT_NEEDED with a slash is a path, used as is (ld.so(8)).
        candidates = [soname] if "/" in soname else [os.path.join(d, soname) for d in dirs]
        for candidate in candidates:
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
            if needer.same_platform(info):
                return real, info
            if skipped is not None:
                skipped.append((candidate, f"built for {info.arch or info.machine}"))
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

    def walk(self, member: str, path: str, info: ElfInfo) -> Node:
        """Resolve the dependency closure of one wheel file."""
        self.seed(path, info)
        libraries: dict[str, Library] = {}
        # (object path, its info, the DT_RPATH chain of the objects that loaded it)
        stack: list[tuple[str, ElfInfo, tuple[str, ...]]] = [(path, info, ())]
        while stack:
            obj_path, obj, inherited = stack.pop()
            dirs = self.search_dirs(obj_path, obj, inherited, info, path)
            # A loader that has DT_RUNPATH passes no DT_RPATH down (glibc's cache_rpath).
            own = self._expand(obj.rpath, os.path.dirname(os.path.abspath(obj_path)), obj)
            passed_down = inherited if obj.runpath else tuple(_dedupe([*own, *inherited]))
            for soname in obj.needed:
                if is_loader(soname) or soname in libraries:
                    continue
                if LIBPYTHON.match(soname):
                    libraries[soname] = Library(soname, None, ())
                    continue
                if self.excluded(soname):
                    continue
                passed_over: list[tuple[str, str]] = []
                real, dep = self.find(soname, obj, dirs, passed_over)
                if real is not None and self.excluded(soname, real):
                    continue
                libraries[soname] = Library(
                    soname, real, tuple(dirs), dep, tuple(passed_over) if real is None else ()
                )
                if real is not None and dep is not None:
                    stack.append((real, dep, passed_down))
        edges = {
            soname: tuple(s for s in lib.info.needed if s in libraries)
            for soname, lib in libraries.items()
            if lib.info is not None
        }
        return Node(member, path, info, libraries, edges)


def _parse_ld_so_conf(conf: str, root: str, seen: set[str]) -> list[str]:
    if conf in seen:
        return []
    seen.add(conf)
    try:
        text = Path(conf).read_text(errors="replace")
    except OSError:
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
