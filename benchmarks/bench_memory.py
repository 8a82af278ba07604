"""Peak memory of ``relabel`` and ``auditwheel`` side by side on a wheel of many tiny members.

    python benchmarks/bench_memory.py [--members N] [--commands repair,show] [--keep DIR]
                                      [--tools relabel,auditwheel] [--json FILE]

The wheel is the ``files-N`` benchmark wheel (one extension, one external library to graft
and N small Python files; N = 100,000 by default), where the cost per member decides the
peak. Each tool runs once per command as a child process (see measure.py for how its peak
RSS is taken: ``VmHWM`` of the tool's own process, and the largest ``ru_maxrss`` of its
descendants). The script prints, per command, both tools' wall time and peak RSS and the
ratios relabel / auditwheel (``--tools relabel`` leaves auditwheel out, which takes minutes
on the largest wheels), and relabel's peak per member beyond a fixed 30 MiB. It exits with
status 1 when relabel's own peak exceeds ``PEAK_TARGET_MIB`` or a tool fails.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import measure
import wheelgen
from bench_repair import PEAK_TARGET_MIB, _tool_args

TOOLS = ("relabel", "auditwheel")
FIXED_MIB = 30


def _mib(kib: int | None) -> float | None:
    return None if kib is None else kib / 1024


def _fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _ratio(a: float | None, b: float | None) -> str:
    return "n/a" if a is None or not b else f"{a / b:.2f}"


def run(
    built: wheelgen.BuiltWheel, command: str, scratch_root: Path, tools: tuple[str, ...] = TOOLS
) -> dict[str, measure.Sample]:
    """One run of each tool on *built*, in a fresh directory each."""
    env = measure.child_env(scratch_root / "pycache")
    samples: dict[str, measure.Sample] = {}
    for position, tool in enumerate(tools):
        measure.warm([built.wheel, *built.external_libs])
        scratch = Path(tempfile.mkdtemp(prefix=f"{tool}-", dir=scratch_root))
        try:
            out = scratch / "out"
            out.mkdir()
            module, args = _tool_args(tool, command, built.wheel, out)
            samples[tool] = measure.run_module(
                tool, module, args, scratch=scratch, position=position, env=env
            )
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return samples


def report(command: str, samples: dict[str, measure.Sample], members: int) -> list[str]:
    """Table lines for one command, and the problems found (empty when all is well)."""
    print(f"\n{command}:")
    print(f"  {'tool':<11} {'exit':>4} {'wall s':>8} {'peak MiB':>9} {'tree MiB':>9}")
    for tool, s in samples.items():
        print(
            f"  {tool:<11} {s.returncode:>4} {s.wall_s:>8.1f} {_fmt(_mib(s.self_kib)):>9}"
            f" {_fmt(_mib(s.tree_kib)):>9}"
        )
    r, a = samples["relabel"], samples.get("auditwheel")
    if a is not None:
        print(
            f"  relabel / auditwheel: peak {_ratio(_mib(r.self_kib), _mib(a.self_kib))},"
            f" tree {_ratio(_mib(r.tree_kib), _mib(a.tree_kib))},"
            f" wall {_ratio(r.wall_s, a.wall_s)}"
        )
    if r.self_kib is not None:
        # the interpreter, the imports and the buffers take about this much at any size
        per_member = (r.self_kib - FIXED_MIB * 1024) * 1024 / members
        print(f"  relabel: {per_member:.0f} bytes per member beyond {FIXED_MIB} MiB")
    problems = []
    acceptable = (0, 1) if command == "show" else (0,)
    for tool, s in samples.items():
        if s.returncode not in acceptable:
            problems.append(f"{tool} {command} failed:\n{s.stderr_tail}")
    peak = _mib(r.self_kib)
    if peak is None or peak > PEAK_TARGET_MIB:
        problems.append(f"relabel {command}: peak {_fmt(peak)} MiB > {PEAK_TARGET_MIB} MiB")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=100_000, help="Python files in the wheel")
    parser.add_argument("--commands", default="repair,show", help="comma-separated commands")
    parser.add_argument("--keep", type=Path, help="build the wheel here and keep it")
    parser.add_argument("--json", type=Path, help="also write the samples to this file")
    parser.add_argument("--tools", default=",".join(TOOLS), help="comma-separated tools")
    args = parser.parse_args(argv)
    commands = [c for c in args.commands.split(",") if c]
    tools = tuple(t for t in TOOLS if t in args.tools.split(","))
    if "relabel" not in tools:
        parser.error("--tools must include relabel")
    with tempfile.TemporaryDirectory(prefix="relabel-bench-memory-") as tmp:
        cache = args.keep or Path(tmp) / "wheels"
        built = wheelgen.build(f"files-{args.members}", cache, [])
        print(f"wheel: {built.wheel.name} ({built.wheel.stat().st_size >> 20} MiB)")
        problems: list[str] = []
        results: dict[str, dict[str, object]] = {}
        for command in commands:
            samples = run(built, command, Path(tmp), tools)
            problems += report(command, samples, args.members)
            results[command] = {tool: s.to_json() for tool, s in samples.items()}
    if args.json:
        args.json.write_text(json.dumps({"members": args.members, "runs": results}, indent=2))
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
