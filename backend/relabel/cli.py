"""``relabel show``, ``relabel repair`` and ``relabel lddtree``: argument parsing over the
same pipeline.

The flags mirror auditwheel's (same names, same short forms, same defaults, ``--plat``
defaulting to ``AUDITWHEEL_PLAT`` as the manylinux images set it), so switching tools means
changing one word; relabel's own additions have long names only. Exit status: 0 success
(for ``show``: the wheel meets the target as it is), 1 the wheel does not meet the target or
cannot be repaired to it, 2 bad input, 130 and 143 interrupted (SIGINT, SIGTERM). Relabel
errors are printed as one paragraph, never as a traceback; with ``show --json`` a JSON
object with an ``error`` key is printed on stdout as well. SIGTERM is turned into an
exception, as Python already does with SIGINT, so that an interrupted run removes its
temporary files and partial output on the way out (see :func:`interruptible`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from relabel import __version__, floor, policy, report
from relabel.config import lib_sdir_problem
from relabel.elf import is_loader
from relabel.errors import (
    ConfigError,
    ElfError,
    NotPlatformWheelError,
    RelabelError,
    ScratchError,
)
from relabel.repair import Options, analyze, repair
from relabel.resolve import Library, Resolver

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence
    from types import FrameType

    from relabel.elf import ElfInfo


class UsageError(RelabelError):
    """A command-line argument or environment variable relabel cannot use."""


class _ParseError(Exception):
    def __init__(self, parser: argparse.ArgumentParser, message: str) -> None:
        super().__init__(message)
        self.parser = parser
        self.message = message


class _Parser(argparse.ArgumentParser):
    """Raises instead of exiting, so that ``show --json`` can answer in JSON."""

    def error(self, message: str) -> NoReturn:
        raise _ParseError(self, message)


def _zip_level(text: str) -> int:
    try:
        level = int(text)
    except ValueError:
        level = -1
    if not 0 <= level <= 9:
        raise argparse.ArgumentTypeError(f"expected a compression level from 0 to 9, got {text!r}")
    return level


def _glibc_floor(text: str) -> str:
    try:
        floor.parse_setting(text)
    except ValueError as exc:
        raise ConfigError([f"--glibc-floor: {exc}"]) from None
    return text


def _glibc_floor_allow(text: str) -> str:
    if text not in floor.opt_in_groups():
        known = ", ".join(floor.opt_in_groups())
        raise ConfigError([f"--glibc-floor-allow: unknown group {text!r} (known: {known})"])
    return text


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--library-dir",
        dest="library_dirs",
        action="append",
        default=[],
        metavar="DIR",
        help="extra directory to search for shared libraries (repeatable)",
    )
    parser.add_argument(
        "--ldpaths",
        metavar="DIRS",
        help="colon-separated directories that replace the system library search directories",
    )
    parser.add_argument(
        "--exclude",
        "-e",
        dest="exclude",
        action="append",
        default=[],
        metavar="SONAME",
        help="soname, glob or path never grafted; its dependencies are left out too (repeatable)",
    )
    parser.add_argument(
        "--include",
        dest="include",
        action="append",
        default=[],
        metavar="SONAME_OR_PATH",
        help="library loaded with dlopen: grafted under its own soname (repeatable)",
    )
    parser.add_argument(
        "--skip-scan",
        dest="skip_scan",
        action="append",
        default=[],
        metavar="GLOB",
        help="wheel members never treated as ELF files (repeatable)",
    )
    parser.add_argument(
        "--disable-isa-ext-check",
        dest="isa_check",
        action="store_false",
        help="do not check the x86-64 ISA level (x86-64-v2/v3/v4) of ELF files",
    )
    parser.add_argument(
        "--sysroot",
        metavar="DIR",
        help="resolve system libraries under DIR instead of / (wheels of another architecture)",
    )
    parser.add_argument(
        "--glibc-floor",
        default="off",
        metavar="off|auto|VERSION|POLICY",
        help="rewrite glibc symbol versions so the files load on an older glibc"
        " (auto: as far as the safe rules allow; 2.17 or manylinux_2_17: at least that far)",
    )
    parser.add_argument(
        "--glibc-floor-allow",
        action="append",
        default=[],
        metavar="GROUP",
        help="also lower symbols whose old version behaves differently, by group name"
        " (c23-parsing; repeatable)",
    )
    parser.add_argument(
        "--allow-pure-python-wheel",
        action="store_true",
        help="accept wheels without ELF files instead of failing",
    )


_PLAT_HELP = (
    "target policy: a tag (manylinux_2_17_x86_64), a legacy alias (manylinux2014_x86_64)"
    " or a name without the architecture (manylinux_2_17); default: $AUDITWHEEL_PLAT when set,"
    " else auto"
)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="relabel", description="Audit and repair Linux wheels (manylinux / musllinux)."
    )
    parser.add_argument("--version", action="version", version=f"relabel {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    show = sub.add_parser("show", help="audit a wheel and explain every policy it misses")
    show.add_argument("wheel", type=Path, metavar="WHEEL")
    show.add_argument("--json", action="store_true", help="print a JSON report")
    show.add_argument("--plat", help=_PLAT_HELP + " (any manylinux/musllinux policy)")
    _common(show)

    rep = sub.add_parser("repair", help="graft external libraries and retag wheels")
    rep.add_argument("wheels", type=Path, nargs="+", metavar="WHEEL")
    rep.add_argument(
        "-w",
        "--wheel-dir",
        type=Path,
        default=Path("wheelhouse"),
        metavar="DIR",
        help="directory for the repaired wheels (default: wheelhouse)",
    )
    rep.add_argument("--plat", help=_PLAT_HELP + " (the best reachable policy)")
    rep.add_argument(
        "--only-plat",
        action="store_true",
        help="tag only with --plat, even when a more compatible policy is met",
    )
    rep.add_argument(
        "-L",
        "--lib-sdir",
        default=".libs",
        help="suffix of the directory for grafted libraries (default: .libs)",
    )
    rep.add_argument(
        "--no-update-tags",
        dest="update_tags",
        action="store_false",
        help="keep the file name and WHEEL tags as they are",
    )
    rep.add_argument(
        "--strip",
        action="store_true",
        help="strip symbols from grafted libraries and patched files",
    )
    rep.add_argument(
        "-z",
        "--zip-compression-level",
        type=_zip_level,
        default=6,
        metavar="LEVEL",
        help="deflate level for rewritten members, 0-9 (default: 6)",
    )
    rep.add_argument(
        "--patcher", choices=["patchelf"], default="patchelf", help="ELF patcher (only patchelf)"
    )
    _common(rep)

    tree = sub.add_parser(
        "lddtree",
        help="print the dependency tree of one ELF file as JSON (auditwheel lddtree's shape)",
    )
    tree.add_argument("file", type=Path, metavar="FILE")
    tree.add_argument(
        "--ldpaths",
        metavar="DIRS",
        help="colon-separated directories that replace the system library search directories",
    )
    return parser


def _plat_problem(value: str) -> str | None:
    """What is wrong with a ``--plat`` value, checked as the backend checks ``plat``."""
    if value == "auto" or value in policy.known_names():
        return None
    try:
        policy.lookup(value)
    except KeyError as exc:
        # lookup words the problem and suggests the nearest names
        return f"{exc.args[0]} (or 'auto' for the best policy the wheel meets)"
    return None


def target(args: argparse.Namespace, environ: Mapping[str, str]) -> tuple[str, str | None]:
    """The policy asked for and where it came from: ``--plat``, else ``AUDITWHEEL_PLAT``
    (ignored when empty, as auditwheel ignores it), else ``auto``."""
    if args.plat is not None:
        value, source = args.plat, "--plat"
    elif environ.get("AUDITWHEEL_PLAT"):
        value, source = environ["AUDITWHEEL_PLAT"], "AUDITWHEEL_PLAT"
    else:
        return "auto", None
    problem = _plat_problem(value)
    if problem:
        raise UsageError(f"{source} {value}: {problem}")
    return value, source


def _options(args: argparse.Namespace, plat: str, **extra: object) -> Options:
    return Options(
        plat=plat,
        exclude=tuple(args.exclude),
        library_dirs=tuple(args.library_dirs),
        ldpaths=tuple(p for p in args.ldpaths.split(":") if p) if args.ldpaths else None,
        include=tuple(args.include),
        skip_scan=tuple(args.skip_scan),
        isa_check=args.isa_check,
        sysroot=args.sysroot,
        glibc_floor=_glibc_floor(args.glibc_floor),
        glibc_floor_allow=tuple(_glibc_floor_allow(g) for g in args.glibc_floor_allow),
        **extra,  # type: ignore[arg-type]
    )


def _show(args: argparse.Namespace) -> int:
    plat, source = target(args, os.environ)
    analysis = analyze(args.wheel, _options(args, plat))
    if analysis.pure and not args.allow_pure_python_wheel:
        raise NotPlatformWheelError(args.wheel.name)
    if args.json:
        print(report.render_json(analysis, plat))
    else:
        print(report.render_text(analysis, plat, source))
    return 0 if report.meets_target(analysis, plat) else 1


def _missing_dirs(directory: Path) -> list[Path]:
    """``directory`` and those of its parents that do not exist, deepest first."""
    missing: list[Path] = []
    current = directory.absolute()
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    return missing


@contextlib.contextmanager
def _created_only_when_written(directory: Path) -> Iterator[None]:
    """Remove the output directories the run created if it fails before writing there:
    a failed repair leaves the file system as it found it."""
    missing = _missing_dirs(directory)
    try:
        yield
    except BaseException:
        for made in missing:
            try:
                made.rmdir()  # only when empty: a wheel written earlier stays
            except OSError:
                break
        raise


def _repair(args: argparse.Namespace) -> int:
    plat, _ = target(args, os.environ)
    problem = lib_sdir_problem(args.lib_sdir)
    if problem:
        raise UsageError(f"--lib-sdir: {problem}")
    options = _options(
        args,
        plat,
        only_plat=args.only_plat,
        lib_sdir=args.lib_sdir,
        update_tags=args.update_tags,
        strip=args.strip,
        compression_level=args.zip_compression_level,
        strict=True,
        allow_pure=args.allow_pure_python_wheel,
    )
    with _created_only_when_written(args.wheel_dir):
        for wheel in args.wheels:
            result = repair(wheel, args.wheel_dir, options)
            print(report.render_repair(result))
            lowered = result.analysis.glibc_floor
            floor_lines = lowered.lines() if lowered else []
            if floor_lines and options.glibc_floor != floor.OFF:
                print("\n".join(f"relabel:   {line}" for line in floor_lines))
    return 0


def _expand_path_list(entries: Sequence[str], origin: str, info: ElfInfo) -> list[str]:
    """DT_RPATH/DT_RUNPATH entries as the loader reads them, keeping existing directories.

    Relative entries are dropped: the loader would take them from the working directory.
    """
    values = {
        "ORIGIN": origin,
        "LIB": "lib64" if info.elf_class == 64 else "lib",
        "PLATFORM": info.arch or "",
    }
    out: list[str] = []
    for entry in entries:
        expanded = _DST.sub(lambda m: values[m.group(1) or m.group(2)], entry)
        if expanded.startswith("/") and Path(expanded).is_dir():
            out.append(os.path.normpath(expanded))
    return list(dict.fromkeys(out))


_DST = re.compile(r"\$(ORIGIN|LIB|PLATFORM)\b|\$\{(ORIGIN|LIB|PLATFORM)\}")


def _opened_as(soname: str, real: str, dirs: Sequence[str]) -> str:
    """The path the loader opens (``dir/soname``) before symbolic links are followed."""
    if "/" in soname:
        return soname
    for directory in dirs:
        candidate = Path(directory, soname)
        if candidate.is_file() and os.path.realpath(candidate) == real:
            return str(candidate)
    return real


def lddtree(file: Path, resolver: Resolver) -> dict[str, Any]:
    """``auditwheel lddtree``'s JSON object for ``file``, resolved as relabel resolves."""
    shown = str(file)
    real = os.path.realpath(file)
    try:
        info = resolver.parse(real, shown)
    except ElfError as exc:
        raise UsageError(f"{shown}: {exc.message}") from None
    # $ORIGIN is the directory of the path the file was opened by, links not followed
    opened = os.path.normpath(file.absolute())
    node = resolver.walk(shown, opened, info)
    origin = str(Path(opened).parent)
    entries: dict[str, dict[str, Any]] = {}
    if info.interpreter:
        interp = os.path.normpath(info.interpreter)
        name = Path(interp).name
        entries[name] = _entry(name, interp, os.path.realpath(interp), info, ())
    # depth first, in DT_NEEDED order: the order auditwheel lists libraries in
    stack = [(soname, opened, info) for soname in reversed(info.needed)]
    while stack:
        soname, needer_path, needer = stack.pop()
        if soname in entries:
            continue
        lib = node.libraries.get(soname)
        if lib is None and is_loader(soname):
            dirs = resolver.search_dirs(needer_path, needer, (), info, opened)
            found, found_info = resolver.find(soname, needer, dirs)
            lib = Library(soname, found, tuple(dirs), found_info)
        if lib is None:  # excluded
            continue
        if lib.path is None or lib.info is None:
            entries[soname] = {
                "soname": soname,
                "path": None,
                "realpath": None,
                "platform": None,
                "needed": [],
            }
            continue
        path = _opened_as(soname, lib.path, lib.searched)
        entries[soname] = _entry(soname, path, lib.path, lib.info, lib.info.needed)
        stack.extend((s, lib.path, lib.info) for s in reversed(lib.info.needed))
    return report.lddtree_json(
        path=shown,
        realpath=real,
        info=info,
        rpath=_expand_path_list(info.rpath, origin, info),
        runpath=_expand_path_list(info.runpath, origin, info),
        libraries=entries,
    )


def _entry(
    soname: str, path: str, real: str, info: ElfInfo, needed: Sequence[str]
) -> dict[str, Any]:
    return {
        "soname": soname,
        "path": path,
        "realpath": real,
        "platform": report.platform_json(info),
        "needed": list(needed),
    }


def _lddtree(args: argparse.Namespace) -> int:
    ldpaths = tuple(p for p in args.ldpaths.split(":") if p) if args.ldpaths is not None else None
    print(json.dumps(lddtree(args.file, Resolver(ldpaths=ldpaths)), indent=4))
    return 0


def _run(args: argparse.Namespace) -> int:
    if args.command == "show":
        return _show(args)
    if args.command == "lddtree":
        return _lddtree(args)
    return _repair(args)


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that ``finally`` blocks and context managers
    (the scratch directory, the unfinished output file) run before the process ends."""


@contextlib.contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """Turn SIGTERM into :class:`Terminated` while the block runs.

    Only from the main thread, and only when SIGTERM has its default action (a program that
    embeds relabel and handles or ignores SIGTERM keeps its choice). A second SIGTERM while
    the first one unwinds is ignored, so the clean-up is not cut short; SIGKILL still works.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous is not signal.SIG_DFL:
        yield
        return

    def terminate(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated

    signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


_HELD_BACK = {signal.SIGINT, signal.SIGTERM}


@contextlib.contextmanager
def _run_directory() -> Iterator[None]:
    """Every temporary file of the run inside one private directory, removed at the end
    with SIGINT and SIGTERM held back: a signal that lands while one of the run's temporary
    directories is being removed would otherwise leave the rest of it behind."""
    try:
        parent = tempfile.mkdtemp(prefix="relabel-run-")
    except OSError as exc:
        raise ScratchError(tempfile.gettempdir(), exc.strerror or str(exc)) from None
    previous = tempfile.tempdir
    tempfile.tempdir = parent
    try:
        yield
    finally:
        tempfile.tempdir = previous
        held = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD_BACK)
        try:
            shutil.rmtree(parent, ignore_errors=True)
        finally:
            # a signal held back is delivered here, once there is nothing left to remove
            signal.pthread_sigmask(signal.SIG_SETMASK, held)


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """SIGTERM unwinds like SIGINT, and the run's temporary files go, whenever either
    arrives. After SIGKILL only the run's directory under ``$TMPDIR`` can remain; the
    output directory never holds a partial file (see relabel.archive.atomic_output)."""
    with sigterm_unwinds(), _run_directory():
        yield


def _json_wanted(argv: Sequence[str]) -> bool:
    return "--json" in argv and "show" in argv


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except _ParseError as exc:
        exc.parser.print_usage(sys.stderr)
        print(f"{exc.parser.prog}: error: {exc.message}", file=sys.stderr)
        if _json_wanted(argv):
            print(report.error_json(exc.message))
        return 2
    try:
        with interruptible():
            return _run(args)
    except RelabelError as exc:
        print(f"relabel: error: {exc}", file=sys.stderr)
        if args.command == "show" and args.json:
            print(report.error_json(str(exc), args.wheel.name))
        return exc.exit_code
    except BrokenPipeError:
        # the reader went away (``relabel show ... | head``): nothing left to say to it
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except KeyboardInterrupt:
        print("relabel: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    except Terminated:
        print("relabel: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
