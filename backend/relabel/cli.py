"""``relabel show`` and ``relabel repair``: argument parsing over the same pipeline.

The flags of ``repair`` mirror ``auditwheel repair`` (same names, same short forms, same
defaults), so switching tools means changing one word; relabel's own additions have long
names only. Exit status: 0 success (for ``show``: the wheel meets the target as it is), 1
the wheel does not meet the target or cannot be repaired to it, 2 bad input, 130 and 143
interrupted (SIGINT, SIGTERM). Relabel errors are printed as one paragraph, never as a
traceback. SIGTERM is turned into an exception, as Python already does with SIGINT, so that
an interrupted run removes its temporary files and partial output on the way out (see
:func:`interruptible`).
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from relabel import __version__, floor, report
from relabel.errors import ConfigError, NotPlatformWheelError, RelabelError, ScratchError
from relabel.repair import Options, analyze, repair

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from types import FrameType


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="relabel", description="Audit and repair Linux wheels (manylinux / musllinux)."
    )
    parser.add_argument("--version", action="version", version=f"relabel {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    show = sub.add_parser("show", help="audit a wheel and explain every policy it misses")
    show.add_argument("wheel", type=Path, metavar="WHEEL")
    show.add_argument("--json", action="store_true", help="print a JSON report")
    show.add_argument(
        "--plat",
        default="auto",
        help="policy the exit status is about (default: any manylinux/musllinux policy)",
    )
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
    rep.add_argument("--plat", default="auto", help="target policy (default: the best reachable)")
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
    return parser


def _options(args: argparse.Namespace, **extra: object) -> Options:
    return Options(
        plat=args.plat,
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


def _run(args: argparse.Namespace) -> int:
    if args.command == "show":
        analysis = analyze(args.wheel, _options(args))
        if analysis.pure and not args.allow_pure_python_wheel:
            raise NotPlatformWheelError(args.wheel.name)
        print(
            report.render_json(analysis) if args.json else report.render_text(analysis, args.plat)
        )
        return 0 if report.meets_target(analysis, args.plat) else 1
    options = _options(
        args,
        only_plat=args.only_plat,
        lib_sdir=args.lib_sdir,
        update_tags=args.update_tags,
        strip=args.strip,
        compression_level=args.zip_compression_level,
        strict=True,
        allow_pure=args.allow_pure_python_wheel,
    )
    for wheel in args.wheels:
        result = repair(wheel, args.wheel_dir, options)
        print(report.render_repair(result))
        floor_lines = result.analysis.glibc_floor.lines() if result.analysis.glibc_floor else []
        if floor_lines and options.glibc_floor != floor.OFF:
            print("\n".join(f"relabel:   {line}" for line in floor_lines))
    return 0


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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with interruptible():
            return _run(args)
    except RelabelError as exc:
        print(f"relabel: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("relabel: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    except Terminated:
        print("relabel: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
