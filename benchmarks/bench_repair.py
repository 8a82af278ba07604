"""Time ``relabel repair`` (or ``show``) against ``auditwheel`` on deterministic wheels.

    python benchmarks/bench_repair.py [--sizes small,medium,...] [--repeat N] [--keep DIR]
                                      [--command repair|show] [--json FILE]

Both tools run as child processes of this script, one after the other, on the same input
wheel, each writing into its own fresh temporary directory. The order alternates from one
run to the next. Before each pair, the input wheel and the external libraries are read
once, so both tools find them in the page cache. See README.md for what is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import measure
import wheelgen

MIB = 1 << 20

#: relabel's wall time as a fraction of auditwheel's, per wheel (repair only)
WALL_TARGETS = {
    "small": 0.5,
    "medium": 0.5,
    "large": 0.35,
    "inside": 0.15,
    "files-4000": 0.15,
    "files-16000": 0.15,
}
#: ``show``: at most half of ``auditwheel show`` on every wheel
SHOW_TARGET = 0.5
#: relabel's own peak RSS, every wheel and command
PEAK_TARGET_MIB = 200


@dataclass
class Result:
    """Every run on one wheel, and the checks made on the outputs."""

    built: wheelgen.BuiltWheel
    samples: list[measure.Sample] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def runs(self, tool: str) -> list[measure.Sample]:
        return [sample for sample in self.samples if sample.tool == tool]

    def wall(self, tool: str) -> float:
        return statistics.median(sample.wall_s for sample in self.runs(tool))

    def peak_mib(self, tool: str, kind: str = "self") -> float | None:
        values = [getattr(sample, f"{kind}_kib") for sample in self.runs(tool)]
        known = [value for value in values if value is not None]
        return max(known) / 1024 if known else None


# ---------------------------------------------------------------------------------------------
# the machine


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / (1 << 20):.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _patchelf_versions() -> str:
    path = shutil.which("patchelf", path=measure.child_env()["PATH"])
    if not path:
        return "not found"
    proc = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
    return f"{proc.stdout.strip()} ({path})"


def _source_revision() -> str | None:
    """The commit of the checkout these benchmarks belong to, with ``+dirty`` if changed."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        )
        status = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+dirty" if status.stdout.strip() else "")


def machine() -> dict[str, str]:
    cores = os.cpu_count() or 0
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    return {
        "cpu": _cpu_model(),
        "cores": f"{cores} ({usable} usable)",
        "memory": _memory_gib(),
        "kernel": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}"
        f" ({sys.executable})",
        "relabel": measure.version_of("relabel"),
        "auditwheel": measure.version_of("auditwheel"),
        "source commit": _source_revision() or "unknown",
        "patchelf (first on PATH)": _patchelf_versions(),
        "compiler": wheelgen.compiler_version(),
    }


# ---------------------------------------------------------------------------------------------
# running


def _tool_args(tool: str, command: str, wheel: Path, out: Path) -> tuple[str, list[str]]:
    if command == "repair":
        return tool, ["repair", "--plat", "auto", "-w", str(out), str(wheel)]
    return tool, ["show", str(wheel)]


def _outcome(out: Path) -> tuple[str | None, set[str], str | None]:
    """(platform tag, members under <dist>.libs/, problem) of the one wheel in *out*."""
    wheels = sorted(out.glob("*.whl"))
    if len(wheels) != 1:
        return None, set(), f"expected one output wheel, found {len(wheels)}"
    tag = wheels[0].name[: -len(".whl")].split("-")[-1]
    with zipfile.ZipFile(wheels[0]) as archive:
        libs = {
            name
            for name in archive.namelist()
            if name.split("/", 1)[0].endswith(".libs") and not name.endswith("/")
        }
    return tag, libs, None


def bench_wheel(
    built: wheelgen.BuiltWheel, command: str, repeat: int, index: int, scratch_root: Path
) -> Result:
    """*repeat* runs of each tool on *built*; the first pair's outputs are compared."""
    result = Result(built)
    env = measure.child_env(scratch_root / "pycache")
    for number in range(repeat):
        order = ("relabel", "auditwheel")
        if (index + number) % 2:
            order = order[::-1]
        measure.warm([built.wheel, *built.external_libs])
        outputs: dict[str, tuple[str | None, set[str], str | None]] = {}
        for position, tool in enumerate(order):
            scratch = Path(tempfile.mkdtemp(prefix=f"{tool}-", dir=scratch_root))
            try:
                out = scratch / "out"
                out.mkdir()
                module, args = _tool_args(tool, command, built.wheel, out)
                sample = measure.run_module(
                    tool, module, args, scratch=scratch, position=position, env=env
                )
                result.samples.append(sample)
                acceptable = (0, 1) if command == "show" else (0,)
                if sample.returncode not in acceptable:
                    result.warnings.append(
                        f"{tool} {command} exited with {sample.returncode}:\n" + sample.stderr_tail
                    )
                if command == "repair" and sample.returncode == 0:
                    outputs[tool] = _outcome(out)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
                # no write-back of one tool's output while the other one runs
                os.sync()
        if number == 0 and len(outputs) == 2:
            result.warnings.extend(_compare(outputs["relabel"], outputs["auditwheel"]))
    return result


def _compare(
    relabel: tuple[str | None, set[str], str | None],
    auditwheel: tuple[str | None, set[str], str | None],
) -> list[str]:
    warnings = [
        f"{tool}: {outcome[2]}"
        for tool, outcome in (("relabel", relabel), ("auditwheel", auditwheel))
        if outcome[2]
    ]
    if warnings:
        return warnings
    if relabel[0] != auditwheel[0]:
        warnings.append(f"platform tags differ: relabel {relabel[0]}, auditwheel {auditwheel[0]}")
    if relabel[1] != auditwheel[1]:
        only_r = sorted(relabel[1] - auditwheel[1])
        only_a = sorted(auditwheel[1] - relabel[1])
        warnings.append(f".libs members differ: only relabel {only_r}, only auditwheel {only_a}")
    return warnings


# ---------------------------------------------------------------------------------------------
# reporting


def _fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("PASS" if ok else "FAIL")


def summarize(result: Result, command: str) -> dict[str, object]:
    name = result.built.shape.name
    rl_wall, aw_wall = result.wall("relabel"), result.wall("auditwheel")
    rl_peak, aw_peak = result.peak_mib("relabel"), result.peak_mib("auditwheel")
    wall_ratio = rl_wall / aw_wall if aw_wall else None
    peak_ratio = rl_peak / aw_peak if rl_peak is not None and aw_peak else None
    target = WALL_TARGETS.get(name) if command == "repair" else SHOW_TARGET
    wall_ok = None if target is None or wall_ratio is None else wall_ratio <= target
    peak_ok = None if rl_peak is None else rl_peak < PEAK_TARGET_MIB
    return {
        "wheel": name,
        "description": result.built.shape.description,
        "wheel_file": str(result.built.wheel),
        "wheel_mib": result.built.wheel_size / MIB,
        "external_mib": result.built.external_size / MIB,
        "relabel_wall_s": rl_wall,
        "auditwheel_wall_s": aw_wall,
        "wall_ratio": wall_ratio,
        "wall_target": target,
        "wall_ok": wall_ok,
        "relabel_peak_mib": rl_peak,
        "auditwheel_peak_mib": aw_peak,
        "peak_ratio": peak_ratio,
        "peak_target_mib": PEAK_TARGET_MIB,
        "peak_ok": peak_ok,
        "relabel_tree_peak_mib": result.peak_mib("relabel", "tree"),
        "auditwheel_tree_peak_mib": result.peak_mib("auditwheel", "tree"),
        "relabel_children_maxrss_mib": result.peak_mib("relabel", "desc"),
        "auditwheel_children_maxrss_mib": result.peak_mib("auditwheel", "desc"),
        "warnings": result.warnings,
        "samples": [sample.to_json() for sample in result.samples],
    }


COLUMNS = (
    ("wheel", "wheel", "<", 12),
    ("wheel MiB", "wheel_mib", ">", 9),
    ("ext MiB", "external_mib", ">", 8),
    ("rl wall s", "relabel_wall_s", ">", 9),
    ("aw wall s", "auditwheel_wall_s", ">", 9),
    ("ratio", "wall_ratio", ">", 6),
    ("target", "wall_target", ">", 7),
    ("wall", "wall_ok", ">", 5),
    ("rl peak MiB", "relabel_peak_mib", ">", 11),
    ("aw peak MiB", "auditwheel_peak_mib", ">", 11),
    ("ratio", "peak_ratio", ">", 6),
    ("<200", "peak_ok", ">", 5),
    ("rl tree MiB", "relabel_tree_peak_mib", ">", 11),
    ("aw tree MiB", "auditwheel_tree_peak_mib", ">", 11),
)


def _cell(key: str, value: object) -> str:
    if key in ("wall_ok", "peak_ok"):
        return _verdict(value if isinstance(value, bool) else None)
    if key == "wall_target":
        return "-" if value is None else f"<={value}x"
    if isinstance(value, float):
        digits = 3 if key.endswith("ratio") else (1 if key.endswith("mib") else 2)
        return _fmt(value, digits)
    return "n/a" if value is None else str(value)


def table(rows: list[dict[str, object]]) -> str:
    header = "  ".join(f"{title:{align}{width}}" for title, _, align, width in COLUMNS)
    lines = [header, "-" * len(header)]
    for row in rows:
        cells = (f"{_cell(key, row[key]):{align}{width}}" for _, key, align, width in COLUMNS)
        lines.append("  ".join(cells))
    return "\n".join(lines)


def _parse_sizes(text: str) -> list[str]:
    names: list[str] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        if item == "all":
            names.extend(wheelgen.DEFAULT_SIZES)
        elif item == "files":
            names.extend(f"files-{count}" for count in wheelgen.FILES_COUNTS)
        else:
            wheelgen.shape(item)  # validates the name
            names.append(item)
    return list(dict.fromkeys(names))


def build_parser(command: str = "repair") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        default="all",
        help="comma-separated wheels: small, medium, large, inside, files-N, 'files' (the"
        " four files-N) or 'all' (default: all)",
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of each tool per wheel (default: 3)"
    )
    parser.add_argument(
        "--keep",
        type=Path,
        metavar="DIR",
        help="build the wheels in DIR and keep them there; wheels already in DIR that were"
        " built with the same parameters are reused (default: a temporary directory that"
        " is removed at the end)",
    )
    parser.add_argument(
        "--command",
        choices=("repair", "show"),
        default=command,
        help=f"what to benchmark (default: {command})",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also save the results here")
    return parser


def _run_all(
    sizes: list[str], command: str, repeat: int, cache: Path, scratch_root: Path
) -> list[Result]:
    print(f"wheels in {cache}:", flush=True)
    pool: list[bytes] = []
    built = [wheelgen.build(name, cache, pool) for name in sizes]
    pool.clear()
    # One untimed pair on the small wheel: both tools compile and cache their bytecode,
    # and their files are in the page cache, before anything is timed.
    warmup = next(
        (wheel for wheel in built if wheel.shape.name == "small"), None
    ) or wheelgen.build("small", cache, pool)
    print(f"warm-up: {command} {warmup.wheel.name}", flush=True)
    bench_wheel(warmup, command, 1, 0, scratch_root)
    print(flush=True)
    results: list[Result] = []
    for index, wheel in enumerate(built):
        print(f"{command} {wheel.shape.name}: {wheel.wheel.name} ...", flush=True)
        result = bench_wheel(wheel, command, repeat, index, scratch_root)
        results.append(result)
        print(
            f"  relabel {result.wall('relabel'):.2f} s,"
            f" auditwheel {result.wall('auditwheel'):.2f} s",
            flush=True,
        )
        for warning in result.warnings:
            print(f"  WARNING: {warning}", flush=True)
    return results


def _report(command: str, rows: list[dict[str, object]], results: list[Result]) -> None:
    print()
    print(f"{command}: relabel (rl) vs auditwheel (aw)")
    print(table(rows))
    print()
    print(
        "wheel MiB: the input wheel; ext MiB: the external libraries it needs from outside;"
        " wall: median of the runs."
    )
    print(
        "peak MiB: the tool's own process (VmHWM); tree MiB: the largest peak in its process"
        " tree, children (patchelf, ...) included; both the maximum of the runs."
    )
    for result in results:
        for warning in result.warnings:
            print(f"WARNING {result.built.shape.name}: {warning.splitlines()[0]}")


def main(argv: list[str] | None = None, command: str = "repair") -> int:
    args = build_parser(command).parse_args(argv)
    if args.repeat < 1:
        print("--repeat must be at least 1", file=sys.stderr)
        return 2
    try:
        sizes = _parse_sizes(args.sizes)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2

    info = machine()
    print(f"relabel benchmark: {args.command}")
    for key, value in info.items():
        print(f"  {key + ':':26}{value}")
    print(f"  {'repeats:':26}{args.repeat} (wall: median; peak RSS: maximum)")
    print(flush=True)

    if args.keep:
        cache = args.keep.resolve()
        cache.mkdir(parents=True, exist_ok=True)
    else:
        cache = Path(tempfile.mkdtemp(prefix="relabel-bench-"))
    scratch_root = Path(tempfile.mkdtemp(prefix="relabel-bench-runs-"))
    try:
        results = _run_all(sizes, args.command, args.repeat, cache, scratch_root)
        rows = [summarize(result, args.command) for result in results]
    finally:
        shutil.rmtree(scratch_root, ignore_errors=True)
        if not args.keep:
            shutil.rmtree(cache, ignore_errors=True)

    _report(args.command, rows, results)
    if args.json:
        document = {
            "command": args.command,
            "repeat": args.repeat,
            "machine": info,
            "wall_targets": WALL_TARGETS if args.command == "repair" else SHOW_TARGET,
            "peak_target_mib": PEAK_TARGET_MIB,
            "results": rows,
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")
        print(f"results saved to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
