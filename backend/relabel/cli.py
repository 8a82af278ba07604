"""``relabel show`` and ``relabel repair``: argument parsing over the same pipeline.

Exit status: 0 success (for ``show``: the wheel meets the target as it is), 1 the wheel does
not meet the target / cannot be repaired to it, 2 bad input. Relabel errors are printed as
one paragraph, never as a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from relabel import __version__, report
from relabel.errors import RelabelError
from relabel.repair import Options, analyze, repair

if TYPE_CHECKING:
    from collections.abc import Sequence


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--library-dir",
        "-L",
        dest="library_dirs",
        action="append",
        default=[],
        metavar="DIR",
        help="extra directory to search for shared libraries (repeatable)",
    )
    parser.add_argument(
        "--exclude",
        dest="exclude",
        action="append",
        default=[],
        metavar="SONAME",
        help="soname or glob never grafted (repeatable)",
    )
    parser.add_argument(
        "--disable-isa-ext-check",
        dest="isa_check",
        action="store_false",
        help="do not check the x86-64 ISA level (x86-64-v2/v3/v4) of ELF files",
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
    _common(rep)
    return parser


def _run(args: argparse.Namespace) -> int:
    if args.command == "show":
        options = Options(
            plat=args.plat,
            exclude=tuple(args.exclude),
            library_dirs=tuple(args.library_dirs),
            isa_check=args.isa_check,
        )
        analysis = analyze(args.wheel, options)
        print(
            report.render_json(analysis) if args.json else report.render_text(analysis, args.plat)
        )
        return 0 if report.meets_target(analysis, args.plat) else 1
    status = 0
    for wheel in args.wheels:
        options = Options(
            plat=args.plat,
            exclude=tuple(args.exclude),
            library_dirs=tuple(args.library_dirs),
            isa_check=args.isa_check,
            only_plat=args.only_plat,
            strict=True,
        )
        result = repair(wheel, args.wheel_dir, options)
        print(report.render_repair(result))
    return status


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except RelabelError as exc:
        print(f"relabel: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
