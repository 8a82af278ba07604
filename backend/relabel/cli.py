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
import gc
import json
import os
import re
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from relabel import __version__, config, pipeline, report
from relabel._signals import Terminated, scratch_directory, sigterm_unwinds
from relabel.elf import is_loader
from relabel.errors import ConfigError, ElfError, RelabelError
from relabel.repair import Options
from relabel.resolve import Library, Resolver

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence
    from dataclasses import Field

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


def _bounded(setting: Field[Any]) -> Callable[[str], int]:
    """argparse's ``type`` for an integer setting: its range, in a message without a type
    name."""
    info = config.meta(setting)
    low, high = info.bounds or (0, 0)

    def number(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            msg = f"expected a {info.noun} from {low} to {high}, got {text!r}"
            raise argparse.ArgumentTypeError(msg)
        return value

    return number


def _add_flags(parser: argparse.ArgumentParser, command: str) -> None:
    """The flag of every setting the command takes (see :class:`relabel.config.Flag`)."""
    for setting in config.SETTINGS:
        flag = config.meta(setting).flag
        if flag is None or command not in flag.commands:
            continue
        options: dict[str, Any] = {
            "dest": setting.name,
            "help": flag.help + dict(flag.command_help).get(command, ""),
        }
        if flag.metavar is not None:
            options["metavar"] = flag.metavar
        kind = config.kind(setting)
        if kind == config.BOOL:
            options["action"] = "store_false" if flag.negative else "store_true"
        elif kind == config.LIST and not flag.joined:
            options.update(action="append", default=[])
        else:
            options["default"] = setting.default if flag.default is config.SAME else flag.default
            if kind == config.INT:
                options["type"] = _bounded(setting)
        parser.add_argument(*flag.names, **options)
    if command == "repair":
        parser.add_argument(
            "--patcher",
            choices=["patchelf"],
            default="patchelf",
            help="ELF patcher (only patchelf)",
        )


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command line; with ``command``, only that subcommand gets the settings' flags
    (argparse reads one subcommand's arguments, and ``relabel --help`` lists the
    subcommands by name and help alone)."""

    def flags(subparser: argparse.ArgumentParser, name: str) -> None:
        if command in (None, name):
            _add_flags(subparser, name)

    parser = _Parser(
        prog="relabel", description="Audit and repair Linux wheels (manylinux / musllinux)."
    )
    parser.add_argument("--version", action="version", version=f"relabel {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    show = sub.add_parser("show", help="audit a wheel and explain every policy it misses")
    show.add_argument("wheel", type=Path, metavar="WHEEL")
    show.add_argument("--json", action="store_true", help="print a JSON report")
    flags(show, "show")

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
    flags(rep, "repair")

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


def _flag_value(setting: Field[Any], raw: Any) -> tuple[Any, list[str]]:
    """A setting's value from its flag, and what is wrong with it (as the backend says)."""
    flag, kind = config.meta(setting).flag, config.kind(setting)
    if raw is None or kind in (config.BOOL, config.INT):
        return raw, []  # unset, or argparse has checked it
    if kind == config.LIST and flag is not None and not flag.joined:
        # one item per flag: a comma is part of a soname or glob here, never a separator
        check = config.meta(setting).check
        value = tuple(raw)
        return value, [p for p in map(check, value) if p] if check else []
    return config.parse(setting, raw, split=True)


def options(args: argparse.Namespace, environ: Mapping[str, str]) -> tuple[Options, str | None]:
    """The options the command line asks for, and where ``plat`` came from: ``--plat``,
    else ``AUDITWHEEL_PLAT`` (ignored when empty, as auditwheel ignores it), else None
    (the default, ``auto``)."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    source: str | None = None
    for setting in config.SETTINGS:
        flag = config.meta(setting).flag
        if flag is None or not hasattr(args, setting.name):
            continue
        raw, where = getattr(args, setting.name), max(flag.names, key=len)
        fallback = config.fallback_value(setting, environ)
        if raw is None and fallback is not None:
            raw, where = fallback, str(config.meta(setting).fallback_env)
        value, found = _flag_value(setting, raw)
        if config.meta(setting).fallback_env:
            # plat: named with its value and source, before any other problem
            source = where if raw is not None else None
            if found:
                raise UsageError(f"{where} {raw}: {found[0]}")
        problems += [f"{where}: {p}" for p in found]
        if value is not None or config.meta(setting).empty_is_unset:
            values[setting.name] = value
    if problems:
        raise ConfigError(problems)
    return Options(**values, strict=args.command == "repair"), source


def _show(args: argparse.Namespace, scratch: Path) -> int:
    chosen, source = options(args, os.environ)
    outcome = pipeline.run(args.wheel, None, chosen, pipeline.SHOW, scratch=scratch)
    analysis = outcome.analysis
    assert analysis is not None  # noqa: S101 - show always audits
    if args.json:
        print(report.render_json(analysis, chosen.plat))
    else:
        print(report.render_text(analysis, chosen.plat, source))
    return 0 if outcome.meets_target else 1


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


def _repair(args: argparse.Namespace, scratch: Path) -> int:
    chosen, _ = options(args, os.environ)
    with _created_only_when_written(args.wheel_dir):
        for wheel in args.wheels:
            outcome = pipeline.run(wheel, args.wheel_dir, chosen, "repair", scratch=scratch)
            assert outcome.result is not None  # noqa: S101 - repair always repairs
            print(report.render_repair(outcome.result))
            lowered = report.render_floor(outcome.result)
            if lowered:
                print(lowered)
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


def _run(args: argparse.Namespace, scratch: Path) -> int:
    if args.command == "show":
        return _show(args, scratch)
    if args.command == "lddtree":
        return _lddtree(args)
    return _repair(args, scratch)


@contextlib.contextmanager
def interruptible() -> Iterator[Path]:
    """SIGTERM unwinds like SIGINT, and the run's temporary files (all inside the one
    private directory this yields) go, whenever either arrives. After SIGKILL only that
    directory under ``$TMPDIR`` can remain; the output directory never holds a partial file
    (see relabel.archive.atomic_output)."""
    with sigterm_unwinds(), scratch_directory() as scratch:
        yield scratch


def _command(argv: Sequence[str]) -> str | None:
    """The subcommand ``argv`` names: its first word that is not an option (relabel's own
    options take no value)."""
    return next((word for word in argv if not word.startswith("-")), None)


def _json_wanted(argv: Sequence[str]) -> bool:
    return "--json" in argv and "show" in argv


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (the process's arguments when None); the exit status.

    Run as the program (``argv`` None), the process is short-lived: the objects of the
    modules loaded so far live until exit, so they are frozen out of the cycle collector
    (as :func:`relabel.__main__.run` does), which then never traverses them again, at exit
    included. This also covers console scripts that import this function directly.
    """
    if argv is None:
        gc.freeze()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser(_command(argv)).parse_args(argv)
    except _ParseError as exc:
        exc.parser.print_usage(sys.stderr)
        print(f"{exc.parser.prog}: error: {exc.message}", file=sys.stderr)
        if _json_wanted(argv):
            print(report.error_json(exc.message))
        return 2
    try:
        with interruptible() as scratch:
            return _run(args, scratch)
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
