"""What relabel adds to a build: each example project built by its own backend and by relabel.

    python benchmarks/bench_build.py [--projects hatch-pure,setuptools-bz2] [--repeat 5]

For every project under ``example_projects/`` the PEP 517 hook ``build_wheel`` is called in a
fresh interpreter, with no build isolation, three ways:

* ``inner``: the project's own backend (``[tool.relabel] build-backend``), relabel not
  imported at all;
* ``skip``: ``relabel.build_meta`` with the config setting ``relabel.mode=skip`` (the inner
  backend builds, relabel only copies the wheel out);
* ``repair``: ``relabel.build_meta`` with ``relabel.mode=repair`` (the default).

Each build starts from a fresh copy of the project (no build directory left over). One round
runs the three in a rotating order, and the figures are medians over ``--repeat`` rounds of the
paired differences within a round, so a load that changes slowly on a shared machine cancels:

* ``repair - skip``: the audit and repair of the built wheel;
* ``skip - inner``: importing and running relabel's wrapper (configuration, the private
  scratch directory, the copy);
* ``repair - inner``: all that relabel adds, the figure the goal is about (< 0.3 s on the
  small examples).

The wall time is of the whole child process (interpreter start, imports and the hook). The
hook's own time inside the child is reported as well (``hook s``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python < 3.11 only
    import tomli as tomllib

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_repair
import measure

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "example_projects"
KINDS = ("inner", "skip", "repair")
SMALL = ("hatch-pure", "setuptools-bz2", "setuptools-floor")

#: the child: call build_wheel of one backend and print the times as JSON
DRIVER = """\
import importlib, json, sys, time
t0 = time.perf_counter()
kind, out, inner = sys.argv[1], sys.argv[2], sys.argv[3]
if kind == "inner":
    backend = importlib.import_module(inner)
    settings = None
else:
    backend = importlib.import_module("relabel.build_meta")
    settings = {"relabel.mode": kind}
t1 = time.perf_counter()
name = backend.build_wheel(out, settings)
t2 = time.perf_counter()
print(json.dumps({"wheel": name, "import_s": t1 - t0, "hook_s": t2 - t1}))
"""


def inner_backend(project: Path) -> str:
    """The module name of the project's own backend."""
    data = tomllib.loads((project / "pyproject.toml").read_text())
    name: str = data["tool"]["relabel"]["build-backend"]
    return name


def build_once(project: Path, kind: str, scratch: Path, env: dict[str, str]) -> dict[str, float]:
    """One build of a fresh copy of ``project``; the wall time and the child's own figures."""
    work = Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=scratch))
    source = work / project.name
    shutil.copytree(project, source)
    out = work / "dist"
    out.mkdir()
    child_env = dict(env)
    child_env.pop("RELABEL_MODE", None)
    argv = [sys.executable, "-c", DRIVER, kind, str(out), inner_backend(project)]
    log = work / "child.log"
    with log.open("wb") as output:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=source, env=child_env, stdout=output, stderr=output)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    text = log.read_text(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        tail = "\n".join(text.splitlines()[-15:])
        raise SystemExit(f"{project.name} ({kind}) failed:\n{tail}")
    figures = json.loads(text.strip().splitlines()[-1])
    shutil.rmtree(work, ignore_errors=True)
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "import_s": figures["import_s"],
        "hook_s": figures["hook_s"],
    }


def bench_project(
    project: Path, repeat: int, scratch: Path, env: dict[str, str]
) -> dict[str, object]:
    """``repeat`` rounds of the three builds in a rotating order, plus one untimed round."""
    for kind in KINDS:
        build_once(project, kind, scratch, env)
    runs: dict[str, list[dict[str, float]]] = {kind: [] for kind in KINDS}
    for i in range(repeat):
        order = KINDS[i % 3 :] + KINDS[: i % 3]
        for kind in order:
            runs[kind].append(build_once(project, kind, scratch, env))

    def wall(kind: str) -> list[float]:
        return [r["wall_s"] for r in runs[kind]]

    def cpu(kind: str) -> list[float]:
        return [r["cpu_s"] for r in runs[kind]]

    def paired(a: str, b: str, of: Callable[[str], list[float]] = wall) -> float:
        return statistics.median(x - y for x, y in zip(of(a), of(b)))

    return {
        "project": project.name,
        "runs": runs,
        "inner_s": statistics.median(wall("inner")),
        "skip_s": statistics.median(wall("skip")),
        "repair_s": statistics.median(wall("repair")),
        "repair_minus_skip_s": paired("repair", "skip"),
        "skip_minus_inner_s": paired("skip", "inner"),
        "repair_minus_inner_s": paired("repair", "inner"),
        "cpu_repair_minus_skip_s": paired("repair", "skip", cpu),
        "cpu_skip_minus_inner_s": paired("skip", "inner", cpu),
        "cpu_repair_minus_inner_s": paired("repair", "inner", cpu),
        "hook_inner_s": statistics.median(r["hook_s"] for r in runs["inner"]),
        "hook_repair_s": statistics.median(r["hook_s"] for r in runs["repair"]),
        "import_repair_s": statistics.median(r["import_s"] for r in runs["repair"]),
    }


def table(rows: list[dict[str, object]], repeat: int) -> str:
    head = (
        f"{'project':<18}{'inner s':>9}{'skip s':>9}{'repair s':>10}"
        f"{'rep-skip':>10}{'skip-inn':>10}{'rep-inn':>9}{'hook inn':>10}{'hook rep':>10}"
        f"{'cpu r-s':>9}{'cpu s-i':>9}{'cpu r-i':>9}{'goal':>7}"
    )
    lines = [head, "-" * len(head)]
    for row in rows:
        added = float(row["repair_minus_inner_s"])  # type: ignore[arg-type]
        goal = ("PASS" if added < 0.3 else "FAIL") if row["project"] in SMALL else "-"
        lines.append(
            f"{row['project']:<18}{row['inner_s']:>9.3f}{row['skip_s']:>9.3f}"
            f"{row['repair_s']:>10.3f}{row['repair_minus_skip_s']:>10.3f}"
            f"{row['skip_minus_inner_s']:>10.3f}{added:>9.3f}"
            f"{row['hook_inner_s']:>10.3f}{row['hook_repair_s']:>10.3f}"
            f"{row['cpu_repair_minus_skip_s']:>9.3f}{row['cpu_skip_minus_inner_s']:>9.3f}"
            f"{row['cpu_repair_minus_inner_s']:>9.3f}{goal:>7}"
        )
    lines.append("")
    lines.append(
        f"wall seconds of the child, median of {repeat} rounds; the differences are medians"
        " of the paired differences within a round; cpu: the same differences in the CPU time"
        " (user + system) of the child and everything it ran, steadier than the wall time on"
        " a loaded machine. goal: rep-inn < 0.3 s on the small examples"
        f" ({', '.join(SMALL)})."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    names = sorted(p.name for p in EXAMPLES.iterdir() if (p / "pyproject.toml").is_file())
    parser.add_argument("--projects", default=",".join(names), help="comma-separated names")
    parser.add_argument("--repeat", type=int, default=5, help="timed rounds (default 5)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also save the results here")
    args = parser.parse_args(argv)
    chosen = [name for name in args.projects.split(",") if name]
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        parser.error(f"unknown project(s) {', '.join(unknown)}; known: {', '.join(names)}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="relabel-build-bench-") as tmp:
        scratch = Path(tmp)
        env = measure.child_env(scratch / "pycache")
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in [str(REPO / "backend"), env.get("PYTHONPATH", "")] if p
        )
        for name in chosen:
            print(f"  {name}: building ...", file=sys.stderr, flush=True)
            rows.append(bench_project(EXAMPLES / name, args.repeat, scratch, env))
    print(table(rows, args.repeat))
    if args.json:
        data = {"machine": bench_repair.machine(), "rows": rows}
        args.json.write_text(json.dumps(data, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
