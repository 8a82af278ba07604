"""The installed-layout check: a repaired wheel works once installed, on its own.

Every repair the suite performs ends here (see ``conftest.py``: the in-process ``repair``
is wrapped, and the helpers that run the command call :func:`check_repair_output`). The
check:

1. installs the wheel with ``installer`` into a fresh virtual-environment layout (purelib
   and platlib are one ``site-packages``, as in a venv; scripts, headers and data where a
   venv puts them), so RPATHs are exercised from where an installer really puts the files;
2. makes the directories the original libraries came from unreachable (renamed for the
   duration of the check) and runs the loaders with ``LD_LIBRARY_PATH`` cleared and
   ``LD_BIND_NOW=1``, in a working directory that holds nothing;
3. loads every ELF file this machine can run: libraries in a namespace of their own each
   (``dlmopen(LM_ID_NEWLM)``, so that one library loaded first cannot stand in for another's
   missing dependency), Python extensions for this interpreter by import (one process for
   each extension that needs a library shipped in the wheel, for the same reason),
   executables and the launchers installed for them by running them;
4. compares the result of ``relabel_probe()`` (exported by the C fixtures) and the output of
   executables with what the unrepaired files give on this machine, where the libraries
   are still found where the repair found them.

Only a manylinux/musllinux tag promises the wheel works elsewhere, so only then is the
build tree hidden; a wheel that keeps its linux tag (warn mode delivers such wheels) is
loaded where it was built. A library that another file of the wheel needs may be unable
to load on its own (ld.so lets a DT_RPATH serve the whole loading chain): it passes when
it was mapped as that file's dependency.

ELF files for another machine or C library (aarch64, musl), relocatable objects,
extensions for another Python, and members the repair was told not to touch
(``skip_scan``) or whose libraries it was told to leave out (``exclude``) are not loaded:
nothing on this machine can tell whether they would work.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile

#: where the suite's temporary files live (set by conftest); only directories under it
#: are ever renamed
BASETEMP: Path | None = None

#: how many libraries one loader process opens, each in a namespace of its own (glibc
#: has 16 namespaces, the main one included)
NAMESPACES_PER_PROCESS = 12

#: (wheel name, ELF files loaded, launchers run) for each check this session
CHECKED: list[tuple[str, int, int]] = []
#: the time spent in checks this session
SECONDS = [0.0]

_HIDDEN_SUFFIX = ".relabel-hidden"
_PY_ABI_SUFFIXES = tuple(
    s for s in (sysconfig.get_config_var("EXT_SUFFIX"), ".abi3.so") if s is not None
)


class InstalledCheckError(AssertionError):
    """The repaired wheel does not work once installed."""


# ---------------------------------------------------------------------------------------
# what is in the wheel


@dataclass(frozen=True)
class Elf:
    """The dynamic facts of one ELF file that decide how to load it."""

    path: Path
    machine: str
    elf_class: int
    elf_type: str
    interpreter: str | None
    soname: str | None
    needed: tuple[str, ...]
    runpath: tuple[str, ...]
    exports_probe: bool
    python_init: str | None
    uses_python: bool  # refers to the Python C API: loads only into an interpreter
    pie: bool  # DF_1_PIE: an executable, static-pie ones (no PT_INTERP) included

    @property
    def in_interpreter(self) -> bool:
        """Whether it must be loaded where the interpreter's symbols are (main namespace)."""
        return self.python_init is not None or self.uses_python

    @property
    def is_executable(self) -> bool:
        return self.elf_type == "ET_EXEC" or (
            self.elf_type == "ET_DYN"
            and (self.interpreter is not None or self.pie)
            and not self.in_interpreter
        )


def read_elf(path: Path) -> Elf | None:
    """The facts of ``path``, or None when it is not an ELF file pyelftools can read."""
    try:
        with path.open("rb") as stream:
            if stream.read(4) != b"\x7fELF":
                return None
            stream.seek(0)
            elf = ELFFile(stream)
            interpreter = None
            for segment in elf.iter_segments():
                if segment["p_type"] == "PT_INTERP":
                    interpreter = segment.get_interp_name()
            needed: list[str] = []
            runpath: list[str] = []
            soname = None
            probe = False
            init = None
            python = False
            pie = False
            for section in elf.iter_sections():
                if isinstance(section, DynamicSection):
                    for tag in section.iter_tags():
                        kind = tag.entry.d_tag
                        if kind == "DT_NEEDED":
                            needed.append(tag.needed)
                        elif kind == "DT_FLAGS_1":
                            pie = bool(tag.entry.d_val & 0x08000000)  # DF_1_PIE
                        elif kind == "DT_SONAME":
                            soname = tag.soname
                        elif kind in ("DT_RPATH", "DT_RUNPATH"):
                            runpath.extend(getattr(tag, kind[3:].lower()).split(":"))
                elif section.name == ".dynsym":
                    for symbol in section.iter_symbols():
                        if symbol["st_shndx"] == "SHN_UNDEF":
                            python = python or symbol.name.startswith(("Py", "_Py"))
                            continue
                        if symbol.name == "relabel_probe":
                            probe = True
                        elif symbol.name.startswith("PyInit_"):
                            init = symbol.name[len("PyInit_") :]
            return Elf(
                path,
                elf["e_machine"],
                elf.elfclass,
                elf["e_type"],
                interpreter,
                soname,
                tuple(needed),
                tuple(runpath),
                probe,
                init,
                python,
                pie,
            )
    except (ELFError, OSError, ValueError, KeyError, AssertionError, UnicodeDecodeError):
        return None


def _host() -> tuple[str, int]:
    info = read_elf(Path(os.path.realpath(sys.executable)))
    assert info is not None
    return info.machine, info.elf_class


def runs_here(info: Elf) -> bool:
    """True for files this machine's glibc loader can load (same machine, not musl)."""
    if (info.machine, info.elf_class) != _host():
        return False
    if info.elf_type not in ("ET_DYN", "ET_EXEC"):
        return False
    musl = any(n.startswith("libc.musl-") or n == "libc.so" for n in info.needed)
    return not (musl or (info.interpreter or "").find("musl") >= 0)


# ---------------------------------------------------------------------------------------
# installing


@dataclass(frozen=True)
class Layout:
    """A virtual environment holding one installed wheel."""

    prefix: Path
    python: Path
    site: Path  # purelib == platlib
    scripts: Path


def install_wheel(wheel: Path, prefix: Path) -> Layout:
    """Install ``wheel`` with ``installer`` into a new venv at ``prefix``."""
    from installer import install
    from installer.destinations import SchemeDictionaryDestination
    from installer.sources import WheelFile

    base = Path(getattr(sys, "_base_executable", sys.executable))
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    paths = sysconfig.get_paths(
        "posix_prefix",
        vars={k: str(prefix) for k in ("base", "platbase", "installed_base", "installed_platbase")},
    )
    (prefix / "bin").mkdir(parents=True)
    (prefix / "pyvenv.cfg").write_text(
        f"home = {base.parent}\ninclude-system-site-packages = false\nversion = {version}\n"
    )
    python = prefix / "bin" / "python"
    python.symlink_to(base)
    with WheelFile.open(wheel) as source:
        scheme = {
            "purelib": paths["purelib"],
            "platlib": paths["platlib"],
            "scripts": paths["scripts"],
            "data": paths["data"],
            # where pip puts headers in a venv
            "headers": str(prefix / "include" / "site" / f"python{version}" / source.distribution),
        }
        destination = SchemeDictionaryDestination(
            scheme, interpreter=str(python), script_kind="posix"
        )
        install(source, destination, additional_metadata={})
    return Layout(prefix, python, Path(paths["platlib"]), Path(paths["scripts"]))


# ---------------------------------------------------------------------------------------
# loading


LOADER = r"""
import ctypes, importlib.util, json, os, sys

jobs = json.loads(sys.argv[1])
out = {}
libdl = ctypes.CDLL(None)
libdl.dlmopen.restype = ctypes.c_void_p
libdl.dlmopen.argtypes = [ctypes.c_long, ctypes.c_char_p, ctypes.c_int]
libdl.dlsym.restype = ctypes.c_void_p
libdl.dlsym.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
libdl.dlerror.restype = ctypes.c_char_p
PROBE = ctypes.CFUNCTYPE(ctypes.c_int)

for path in jobs["libraries"]:
    handle = libdl.dlmopen(-1, path.encode(), 2)  # LM_ID_NEWLM, RTLD_NOW
    if not handle:
        out[path] = {"error": (libdl.dlerror() or b"?").decode(errors="replace")}
        continue
    symbol = libdl.dlsym(handle, b"relabel_probe")
    out[path] = {"probe": PROBE(symbol)() if symbol else None}

for path, name in jobs["extensions"]:
    try:
        if name is not None:
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        symbol = getattr(ctypes.CDLL(path), "relabel_probe", None)
        out[path] = {"probe": symbol() if symbol is not None else None}
    except BaseException as exc:
        out[path] = {"error": f"{type(exc).__name__}: {exc}"}

maps = sorted({line.split(None, 5)[5].strip() for line in open("/proc/self/maps")
               if len(line.split(None, 5)) == 6})
print(json.dumps({"results": out, "maps": maps}))
"""


def clean_environment() -> dict[str, str]:
    """The environment of the loaders: nothing that changes where libraries are found."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LD_", "PYTHON", "RELABEL_")) and k != "VIRTUAL_ENV"
    }
    env["LD_BIND_NOW"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


@dataclass
class Loaded:
    """What the loaders saw: per file, its probe result or its error; every mapped file."""

    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    maps: set[str] = field(default_factory=set)


def _run_loader(
    python: Path,
    libraries: Sequence[str],
    extensions: Sequence[tuple[str, str]],
    cwd: Path,
    env: Mapping[str, str],
) -> Loaded:
    jobs = json.dumps({"libraries": list(libraries), "extensions": [list(e) for e in extensions]})
    proc = subprocess.run(
        [str(python), "-I", "-c", LOADER, jobs],
        capture_output=True,
        text=True,
        env=dict(env),
        cwd=cwd,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        raise InstalledCheckError(
            f"the loader died ({proc.returncode}) on {libraries} {extensions}:\n{proc.stderr}"
        )
    data = json.loads(proc.stdout.splitlines()[-1])
    return Loaded(data["results"], set(data["maps"]))


def _run_executable(path: Path, env: Mapping[str, str], cwd: Path) -> dict[str, Any]:
    try:
        proc = subprocess.run(
            [str(path)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            env=dict(env),
            cwd=cwd,
            timeout=30,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"probe": ["still running after 30 s", ""]}  # it did start
    except OSError as exc:
        return {"error": str(exc)}
    output = proc.stdout.decode(errors="replace")
    if proc.returncode == 127 or "error while loading shared libraries" in proc.stderr.decode(
        errors="replace"
    ):
        return {"error": proc.stderr.decode(errors="replace")}
    return {"probe": [proc.returncode, output]}


def load_all(
    python: Path,
    files: Sequence[Elf],
    cwd: Path,
    env: Mapping[str, str],
    *,
    provided: set[str],
    module_names: Mapping[Path, str],
) -> Loaded:
    """Load ``files``: a process per group of libraries, one more per extension that needs
    a library ``provided`` by the wheel itself, executables run one by one."""
    libraries = [str(f.path) for f in files if not f.is_executable and not f.in_interpreter]
    # Python extensions need the interpreter's symbols: the main namespace. One whose file
    # name does not match its PyInit_ cannot be imported, only loaded (ctypes).
    extensions = [f for f in files if f.in_interpreter]
    shared = [e for e in extensions if set(e.needed) & provided]
    alone = [e for e in extensions if not set(e.needed) & provided]
    groups: list[tuple[list[str], list[Elf]]] = []
    for start in range(0, max(len(libraries), 1), NAMESPACES_PER_PROCESS):
        groups.append((libraries[start : start + NAMESPACES_PER_PROCESS], []))
    groups[0][1].extend(alone)
    if shared:
        groups[0][1].append(shared[0])
        groups.extend(([], [e]) for e in shared[1:])
    loaded = Loaded()
    for libs, exts in groups:
        if not libs and not exts:
            continue
        part = _run_loader(
            python, libs, [(str(e.path), module_names.get(e.path)) for e in exts], cwd, env
        )
        loaded.results.update(part.results)
        loaded.maps |= part.maps
    for f in files:
        if f.is_executable:
            loaded.results[str(f.path)] = _run_executable(f.path, env, cwd)
    return loaded


# ---------------------------------------------------------------------------------------
# hiding the build tree


@contextlib.contextmanager
def unreachable(directories: Iterable[Path], keep: Iterable[Path]) -> Iterator[list[Path]]:
    """Rename each of ``directories`` that lies under the suite's temporary directory (and
    holds none of ``keep``) for the duration; yields the directories hidden."""
    base = BASETEMP.resolve() if BASETEMP is not None else None
    keep = [k.resolve() for k in keep]
    chosen: list[Path] = []
    for directory in sorted({Path(os.path.realpath(d)) for d in directories}):
        if base is None or not directory.is_dir() or not directory.is_relative_to(base):
            continue
        if directory == base or any(k.is_relative_to(directory) for k in keep):
            continue
        if any(directory.is_relative_to(c) for c in chosen):
            continue
        chosen.append(directory)
    moved: list[tuple[Path, Path]] = []
    try:
        for directory in chosen:
            hidden = directory.with_name(directory.name + _HIDDEN_SUFFIX)
            directory.rename(hidden)
            moved.append((directory, hidden))
        yield chosen
    finally:
        for directory, hidden in reversed(moved):
            hidden.rename(directory)


# ---------------------------------------------------------------------------------------
# the unrepaired files, on the build machine


_C_RUNTIME = {
    "libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1",
    "ld-linux-x86-64.so.2", "libstdc++.so.6", "libgcc_s.so.1", "libutil.so.1",
}  # fmt: skip
_EXPECTED: dict[tuple[str, tuple[str, ...]], dict[str, Any]] = {}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def unrepaired_results(
    originals: Mapping[str, Path], search: Sequence[str], scratch: Path
) -> dict[str, dict[str, Any]]:
    """member -> result of loading the unrepaired file (``originals``: member -> a copy of
    it or its source), with ``search`` on LD_LIBRARY_PATH as where the repair found the
    libraries. Cached by content: the suite repairs the same fixtures again and again."""
    out: dict[str, dict[str, Any]] = {}
    todo: dict[str, tuple[Path, tuple[str, str]]] = {}
    for member, path in originals.items():
        key = (_digest(path), tuple(search))
        if key in _EXPECTED:
            out[member] = _EXPECTED[key]
        else:
            todo[member] = (path, key)  # type: ignore[assignment]
    if not todo:
        return out
    env = clean_environment()
    env["LD_LIBRARY_PATH"] = os.pathsep.join(search)
    infos = {m: read_elf(p) for m, (p, _) in todo.items()}
    files = [i for i in infos.values() if i is not None and runs_here(i)]
    names = {i.path: i.python_init for i in files if i.python_init}
    cwd = scratch / "cwd-unrepaired"
    cwd.mkdir(exist_ok=True)
    python = Path(getattr(sys, "_base_executable", sys.executable))
    # each extension that needs more than the C runtime gets a process of its own: two
    # extensions needing libraries of one soname each find their own (the probe's meaning)
    beyond = {n for i in files for n in i.needed} - _C_RUNTIME
    loaded = load_all(python, files, cwd, env, provided=beyond, module_names=names)  # type: ignore[arg-type]
    for member, (path, key) in todo.items():
        result = loaded.results.get(str(path))
        if result is not None:
            _EXPECTED[key] = result  # type: ignore[index]
            out[member] = result
    return out


# ---------------------------------------------------------------------------------------
# the check


@dataclass(frozen=True)
class Repair:
    """What a repair was asked to do and did, as far as the check needs it."""

    input: Path | None  # None when the unrepaired wheel is not at hand (no probe to compare)
    output: Path
    grafts: Mapping[str, str] = field(default_factory=dict)  # member -> source path
    moves: Mapping[str, str] = field(default_factory=dict)  # new member -> old member
    exclude: tuple[str, ...] = ()
    skip_scan: tuple[str, ...] = ()
    search: tuple[str, ...] = ()  # where the repair looked besides the files' own RPATHs


def _members_installed_at(layout: Layout, wheel: Path) -> dict[Path, str]:
    """installed path -> member name, for every file the wheel installs."""
    with zipfile.ZipFile(wheel) as zf:
        names = [n for n in zf.namelist() if not n.endswith("/")]
    dist_info = next(n.split("/")[0] for n in names if ".dist-info/" in n)
    data_dir = dist_info[: -len(".dist-info")] + ".data"
    out: dict[Path, str] = {}
    for name in names:
        if name.startswith(data_dir + "/"):
            _, scheme, rest = name.split("/", 2)
            base = {
                "purelib": layout.site,
                "platlib": layout.site,
                "scripts": layout.scripts,
                "data": layout.prefix,
            }.get(scheme)
            if base is None:  # headers
                continue
            out[base / rest] = name
        else:
            out[layout.site / name] = name
    return out


def _excluded(name: str, patterns: Iterable[str], dirs: Sequence[str]) -> bool:
    """Whether an exclude pattern covers the needed ``name``: a soname glob, or a path
    glob matching where the library was found (one of ``dirs``)."""
    for pattern in patterns:
        if "/" not in pattern:
            if fnmatch.fnmatch(name, pattern):
                return True
            continue
        for directory in dirs:
            path = Path(directory, name)
            if fnmatch.fnmatch(str(path), pattern) and path.exists():
                return True
    return False


def _skipped(infos: Mapping[str, Elf], repair: Repair, dirs: Sequence[str]) -> set[str]:
    """Members not to load: skip-scan ones, and those needing (maybe through another
    member) an excluded library."""
    skipped = {m for m in infos if any(fnmatch.fnmatch(m, p) for p in repair.skip_scan)}
    missing = set(repair.exclude)
    changed = True
    while changed:
        changed = False
        for member, info in infos.items():
            if member in skipped:
                continue
            if any(_excluded(n, missing, dirs) for n in info.needed):
                skipped.add(member)
                if info.soname:
                    missing.add(info.soname)
                changed = True
    return skipped


def _originals(repair: Repair, members: Iterable[str], scratch: Path) -> dict[str, Path]:
    """member of the output -> the unrepaired file it was made from."""
    out: dict[str, Path] = {m: Path(repair.grafts[m]) for m in members if m in repair.grafts}
    if repair.input is None:
        return {m: p for m, p in out.items() if p.is_file()}
    with zipfile.ZipFile(repair.input) as zf:
        names = set(zf.namelist())
        for member in members:
            if member in repair.grafts:
                out[member] = Path(repair.grafts[member])
                continue
            old = repair.moves.get(member, member)
            if old in names:
                target = scratch / "unrepaired" / old
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(zf.read(old))
                target.chmod(0o755)
                out[member] = target
    return out


def check_repair_output(repair: Repair, workdir: Path) -> Loaded | None:
    """Install ``repair.output`` and load every ELF file in it (see the module docstring);
    raise InstalledCheckError when one does not load or gives another result."""
    started = time.monotonic()
    try:
        return _check_repair_output(repair, workdir)
    finally:
        SECONDS[0] += time.monotonic() - started


def _check_repair_output(repair: Repair, workdir: Path) -> Loaded | None:
    workdir.mkdir(parents=True, exist_ok=True)
    layout = install_wheel(repair.output, workdir / "venv")
    installed = _members_installed_at(layout, repair.output)
    infos = {m: read_elf(p) for p, m in installed.items()}
    elves = {m: i for m, i in infos.items() if i is not None}
    originals = _originals(repair, elves, workdir)
    first = {m: read_elf(p) for m, p in originals.items()}
    dirs = [*repair.search, *(d for i in first.values() if i for d in i.runpath)]
    skipped = _skipped(elves, repair, [d for d in dirs if d.startswith("/")])
    if not for_this_python(repair.output):
        # extensions for another Python cannot be loaded by this one
        skipped |= {m for m, i in elves.items() if i.in_interpreter}
    if "musllinux_" in repair.output.name:
        # built for musl, whatever its files name (musl answers libc.so, libm.so... itself)
        skipped |= set(elves)
    to_load = {m: i for m, i in elves.items() if m not in skipped and runs_here(i)}
    if not to_load:
        CHECKED.append((repair.output.name, 0, 0))
        return None
    module_names = {}
    for info in to_load.values():
        if info.python_init and info.path.name.endswith(_PY_ABI_SUFFIXES):
            stem = info.path.name.split(".", 1)[0]
            if stem == info.python_init:
                module_names[info.path] = stem
    expected = unrepaired_results(
        {m: p for m, p in originals.items() if m in to_load}, _search_path(repair), workdir
    )
    provided = {i.soname or i.path.name for i in elves.values()}
    cwd = workdir / "cwd"
    cwd.mkdir()
    # A manylinux/musllinux tag promises the wheel works on other machines: without the
    # build tree. A wheel that keeps its linux tag promises this machine only (relabel's warn
    # mode delivers one on purpose): it is loaded with the build tree in place.
    promise = "manylinux" in repair.output.name or "musllinux" in repair.output.name
    hide: set[Path] = set()
    if promise:
        hide = {Path(s).parent for s in repair.grafts.values()} | {Path(d) for d in repair.search}
        hide |= {Path(d) for i in elves.values() for d in i.runpath if d.startswith("/")}
    with unreachable(hide, keep=[workdir, repair.output]) as hidden:
        loaded = load_all(
            layout.python,
            list(to_load.values()),
            cwd,
            clean_environment(),
            provided=provided,
            module_names=module_names,
        )
    problems = _compare(to_load, loaded, expected, promise=promise, dependencies=_needed(elves))
    problems += _check_launchers(repair, layout, expected, cwd)
    problems += _check_maps(loaded, repair, hidden)
    CHECKED.append((repair.output.name, len(to_load), len(repair.moves)))
    if problems:
        raise InstalledCheckError(
            f"{repair.output.name} installed in {layout.prefix}:\n  " + "\n  ".join(problems)
        )
    return loaded


def _needed(elves: Mapping[str, Elf]) -> set[str]:
    """Members that another ELF file of the wheel needs (by SONAME, or by file name)."""
    needed = {n for i in elves.values() for n in i.needed}
    return {m for m, i in elves.items() if (i.soname or i.path.name) in needed}


def _compare(
    to_load: Mapping[str, Elf],
    loaded: Loaded,
    expected: Mapping[str, dict[str, Any]],
    *,
    promise: bool,
    dependencies: set[str],
) -> list[str]:
    """Each file loaded, and gave what the unrepaired one gives."""
    problems = []
    mapped = {os.path.realpath(m) for m in loaded.maps}
    for member, info in sorted(to_load.items()):
        got = loaded.results.get(str(info.path), {"error": "not loaded"})
        want = expected.get(member)
        # Where the unrepaired file of a linux-tagged wheel does not load here either (a
        # library that was never found), the repaired one need not.
        if "error" in got and want is not None and "error" in want and not promise:
            continue
        # An extension that fails the same way unrepaired fails for a reason of this
        # machine, not of the repair
        if "error" in got and want is not None and got["error"] == want.get("error"):
            continue
        # Its module init ran, so ld.so had mapped it and bound every symbol (LD_BIND_NOW):
        # what failed is a Python import of something not installed here (tkinter)
        if str(got.get("error", "")).startswith("ModuleNotFoundError: No module named"):
            continue
        # A library another file needs may find its own dependencies only through that
        # file's DT_RPATH (ld.so searches the RPATHs of the loading chain): loaded on its
        # own it fails, loaded as what it is, a dependency, it must have been mapped.
        if "error" in got and member in dependencies and os.path.realpath(info.path) in mapped:
            continue
        # The same, where the files that load it cannot be loaded here (extensions for
        # another Python): the wheel as it came did not load it on its own either.
        if "error" in got and member in dependencies and want is not None and "error" in want:
            continue
        if "error" in got:
            problems.append(f"{member}: does not load once installed: {got['error']}")
        elif want is not None and "error" not in want and got.get("probe") != want.get("probe"):
            problems.append(
                f"{member}: gives {got.get('probe')!r} once installed, {want.get('probe')!r}"
                " unrepaired"
            )
    return problems


def _check_maps(loaded: Loaded, repair: Repair, hidden: Sequence[Path]) -> list[str]:
    """Nothing was loaded from the build tree, nor the original of a grafted library."""
    problems = []
    sources = {os.path.realpath(s) for s in repair.grafts.values()}
    for mapped in sorted(loaded.maps):
        if _HIDDEN_SUFFIX in mapped or any(mapped.startswith(f"{h}/") for h in hidden):
            problems.append(f"a file of the build tree was loaded: {mapped}")
        elif os.path.realpath(mapped) in sources:
            problems.append(f"the original of a grafted library was loaded: {mapped}")
    return problems


def _check_launchers(
    repair: Repair, layout: Layout, expected: Mapping[str, dict[str, Any]], cwd: Path
) -> list[str]:
    """Run the launcher installed in place of each executable the repair moved."""
    problems = []
    for new, old in sorted(repair.moves.items()):
        launcher = layout.scripts / old.split("/scripts/", 1)[1]
        got = _run_executable(launcher, clean_environment(), cwd)
        want = expected.get(new)
        if "error" in got:
            problems.append(f"{old}: the launcher fails once installed: {got['error']}")
        elif want is not None and "error" not in want and got.get("probe") != want.get("probe"):
            problems.append(f"{old}: the launcher gives {got['probe']!r}, {want['probe']!r} before")
    return problems


def _search_path(repair: Repair) -> list[str]:
    """LD_LIBRARY_PATH for the unrepaired files: the directories the repair was given.
    Not the directories of the grafted libraries: on LD_LIBRARY_PATH they would take
    precedence over each file's own RUNPATH (two libraries of one soname, one per file)."""
    return list(dict.fromkeys(repair.search))


# ---------------------------------------------------------------------------------------
# ways in


_COUNTER = itertools.count(1)  # next() is atomic: checks may run in worker threads


def workdir_for(output: Path) -> Path:
    """A fresh directory for one check, under the suite's temporary directory."""
    base = BASETEMP if BASETEMP is not None else output.parent
    return base / "installed" / f"{next(_COUNTER):05d}-{output.stem[:40]}"


def for_this_python(wheel: Path) -> bool:
    """Whether the wheel's extensions are built for the running interpreter (its tags
    share an interpreter and ABI with this one's)."""
    from packaging.tags import sys_tags
    from packaging.utils import parse_wheel_filename

    try:
        tags = parse_wheel_filename(wheel.name)[3]
    except ValueError:
        return True
    ours = {(t.interpreter, t.abi) for t in sys_tags()}
    return any((t.interpreter, t.abi) in ours for t in tags)


def check_result(wheel: Path, result: Any, options: Any) -> None:
    """The check for an in-process ``relabel.repair.repair(wheel, out, options)``."""
    plan = getattr(result, "plan", None)
    grafts = {g.member: g.source for g in plan.grafts} if plan is not None else {}
    moves = {m.new_member: m.member for m in plan.moves} if plan is not None else {}
    search = [*options.library_dirs, *(options.ldpaths or ())]
    search += [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(":") if d]
    repair = Repair(
        Path(wheel),
        Path(result.output),
        grafts,
        moves,
        tuple(options.exclude),
        tuple(options.skip_scan),
        tuple(search),
    )
    work = workdir_for(repair.output)
    try:
        check_repair_output(repair, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


_GRAFTED = re.compile(r"grafted (\S+) from (.+) as (\S+)$")


def grafts_reported(output: str) -> dict[str, str]:
    """member -> source of each library the command's report says it grafted."""
    grafts = {}
    for line in output.splitlines():
        match = _GRAFTED.search(line.strip())
        if match:
            grafts[match.group(3)] = match.group(2)
    return grafts


def check_command(
    args: Sequence[str],
    stdout: str,
    stderr: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> None:
    """The check for a successful ``relabel repair`` command (``args`` without the program):
    finds the input, the output directory and the options in ``args``, the grafts in the
    report the command printed."""
    if not args or args[0] != "repair":
        return
    values: dict[str, list[str]] = {}
    positional: list[str] = []
    with_value = {
        "-w", "--wheel-dir", "--plat", "--library-dir", "-L", "--lib-sdir", "--exclude",
        "-e", "--include", "--skip-scan", "--ldpaths", "--sysroot", "-z",
        "--zip-compression-level", "--patcher",
    }  # fmt: skip
    items = list(args[1:])
    while items:
        item = items.pop(0)
        if "=" in item and item.split("=", 1)[0] in with_value:
            key, value = item.split("=", 1)
            values.setdefault(key, []).append(value)
        elif item in with_value and items:
            values.setdefault(item, []).append(items.pop(0))
        elif not item.startswith("-"):
            positional.append(item)
    here = Path(cwd) if cwd is not None else Path.cwd()
    out_dir = here / (values.get("-w") or values.get("--wheel-dir") or ["wheelhouse"])[-1]
    grafts = grafts_reported(stdout + stderr)
    search = [*values.get("--library-dir", []), *values.get("-L", [])]
    search += [d for d in (env or {}).get("LD_LIBRARY_PATH", "").split(":") if d]
    written = {
        m.group(1) or m.group(2): m.group(3)
        for m in re.finditer(
            r"(?:repaired (\S+) -> |relabel: (\S+): kept its linux tag; written as )(\S+\.whl)",
            stdout + stderr,
        )
    }
    for wheel in (here / p for p in positional):
        named = [out_dir / written[wheel.name]] if wheel.name in written else []
        for output in named or _outputs_for(wheel, out_dir):
            repair = Repair(
                wheel,
                output,
                grafts,
                {},
                tuple(values.get("--exclude", []) + values.get("-e", [])),
                tuple(values.get("--skip-scan", [])),
                tuple(search),
            )
            work = workdir_for(output)
            try:
                check_repair_output(repair, work)
            finally:
                shutil.rmtree(work, ignore_errors=True)


def _outputs_for(wheel: Path, out_dir: Path) -> list[Path]:
    """The wheels in ``out_dir`` that a repair of ``wheel`` wrote (same name and version)."""
    parts = wheel.name.split("-")
    prefix = "-".join(parts[:2]) + "-"
    if not out_dir.is_dir():
        return []
    return sorted(p for p in out_dir.glob(prefix + "*.whl") if p != wheel)


__all__ = [
    "BASETEMP",
    "InstalledCheckError",
    "Repair",
    "check_command",
    "check_repair_output",
    "check_result",
    "install_wheel",
]
