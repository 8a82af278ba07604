"""Where the time of one ``relabel`` run goes: start-up, imports, phases and child processes.

    python benchmarks/profile_startup.py [--wheel small] [--command repair] [--repeat 7]

Every figure is the median of ``--repeat`` runs of a fresh interpreter (bytecode cached, as an
installed tool has it), so a shared machine gives usable figures. It prints:

* the wall time of ``python -c pass``, of importing ``relabel.cli`` and ``auditwheel.main``
  alone, and of the whole ``relabel`` and ``auditwheel`` command (the same command line the
  benchmarks time);
* ``-X importtime``: the modules with the largest cumulative and self import times, and the
  total per package (``relabel``, ``elftools``, ``packaging``, the standard library);
* a run in-process with every child process logged: each command line, how long it ran, and
  the time from interpreter start to the first child and to the end;
* a profile (``cProfile``) of the run after the imports: the functions with the largest
  cumulative time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import measure
import wheelgen

#: run in the child: log every subprocess and the phases of one run of ``relabel``
TRACER = """\
import json, subprocess, sys, time
t0 = time.perf_counter()
out = sys.argv[1]
log = {"children": []}
_Popen_init = subprocess.Popen.__init__
_Popen_wait = subprocess.Popen.wait
def _init(self, args, *a, **k):
    self._relabel_t = time.perf_counter()
    _Popen_init(self, args, *a, **k)
    self._relabel_args = [str(x) for x in (args if isinstance(args, (list, tuple)) else [args])]
def _wait(self, *a, **k):
    rc = _Popen_wait(self, *a, **k)
    if not getattr(self, "_relabel_logged", False) and hasattr(self, "_relabel_args"):
        self._relabel_logged = True
        log["children"].append({"args": self._relabel_args,
            "start": self._relabel_t - t0, "seconds": time.perf_counter() - self._relabel_t})
    return rc
subprocess.Popen.__init__ = _init
subprocess.Popen.wait = _wait
import relabel.cli
log["imported"] = time.perf_counter() - t0
sys.argv = ["relabel"] + sys.argv[2:]
try:
    code = relabel.cli.main()
finally:
    log["end"] = time.perf_counter() - t0
    with open(out, "w") as f:
        json.dump(log, f)
sys.exit(code)
"""

PROFILER = """\
import cProfile, pstats, sys, io
import relabel.cli
out = sys.argv[1]
sys.argv = ["relabel"] + sys.argv[2:]
prof = cProfile.Profile()
prof.enable()
try:
    relabel.cli.main()
except SystemExit:
    pass
prof.disable()
prof.dump_stats(out)
"""


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def _tool_argv(tool: str, command: str, wheel: Path, out: Path) -> list[str]:
    if command == "repair":
        return [sys.executable, "-m", tool, "repair", "--plat", "auto", "-w", str(out), str(wheel)]
    return [sys.executable, "-m", tool, "show", str(wheel)]


def wall_times(wheel: Path, command: str, repeat: int, env: dict[str, str], tmp: Path) -> None:
    """Median wall time of start-up, imports and the two tools, interleaved run by run."""
    cases = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "import relabel.cli": [sys.executable, "-c", "import relabel.cli"],
        "import auditwheel.main": [sys.executable, "-c", "import auditwheel.main"],
    }
    times: dict[str, list[float]] = {name: [] for name in [*cases, "relabel", "auditwheel"]}
    for i in range(repeat):
        for name, argv in cases.items():
            times[name].append(_timed(argv, env))
        tools = ["relabel", "auditwheel"] if i % 2 == 0 else ["auditwheel", "relabel"]
        for tool in tools:
            out = tmp / f"out-{tool}-{i}"
            times[tool].append(_timed(_tool_argv(tool, command, wheel, out), env))
    print(f"wall time, median of {repeat} (ms)")
    for name, values in times.items():
        print(f"  {name:<28} {1000 * _median(values):8.1f}")
    ratio = _median(times["relabel"]) / _median(times["auditwheel"])
    print(f"  {'ratio relabel/auditwheel':<28} {ratio:8.3f}")


def _importtime_lines(text: str) -> list[tuple[str, int, int]]:
    rows = []
    for line in text.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative_us, name = line[len("import time:") :].split("|")
        rows.append((name.rstrip(), int(self_us), int(cumulative_us)))
    return rows


def import_times(wheel: Path, command: str, repeat: int, env: dict[str, str], tmp: Path) -> None:
    """Median ``-X importtime`` figures of a whole run of ``relabel``."""
    self_us: dict[str, list[int]] = {}
    cumulative_us: dict[str, list[int]] = {}
    for i in range(repeat):
        argv = _tool_argv("relabel", command, wheel, tmp / f"imp-{i}")
        argv.insert(1, "-X")
        argv.insert(2, "importtime")
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        for name, own, total in _importtime_lines(proc.stderr):
            self_us.setdefault(name, []).append(own)
            cumulative_us.setdefault(name, []).append(total)
    med_self = {name: _median([float(v) for v in vs]) for name, vs in self_us.items()}
    med_cum = {name: _median([float(v) for v in vs]) for name, vs in cumulative_us.items()}
    groups: dict[str, float] = {}
    for name, value in med_self.items():
        top = name.strip().split(".")[0]
        key = top if top in ("relabel", "elftools", "packaging") else "stdlib and others"
        groups[key] = groups.get(key, 0.0) + value
    print(f"\n-X importtime of a whole run, median of {repeat} (ms)")
    print(f"  {len(med_self)} modules imported; self time per package:")
    for key, value in sorted(groups.items(), key=lambda kv: -kv[1]):
        print(f"    {key:<24} {value / 1000:8.1f}")
    print("  largest cumulative (module: cumulative / self):")
    for name, value in sorted(med_cum.items(), key=lambda kv: -kv[1])[:25]:
        print(f"    {name:<40} {value / 1000:8.1f} {med_self[name] / 1000:8.1f}")


def children(wheel: Path, command: str, repeat: int, env: dict[str, str], tmp: Path) -> None:
    """Phases of a run and every child process it starts, median of the runs."""
    logs = []
    for i in range(repeat):
        log_file = tmp / f"trace-{i}.json"
        argv = _tool_argv("relabel", command, wheel, tmp / f"trace-out-{i}")
        argv[1:3] = ["-c", TRACER, str(log_file)]
        subprocess.run(argv, env=env, capture_output=True, check=False)
        logs.append(json.loads(log_file.read_text()))
    print(f"\nphases of one run, in-process, median of {repeat} (ms from interpreter start)")
    print(f"  relabel.cli imported       {1000 * _median([g['imported'] for g in logs]):8.1f}")
    firsts = [g["children"][0]["start"] for g in logs if g["children"]]
    if firsts:
        print(f"  first child started        {1000 * _median(firsts):8.1f}")
    print(f"  end                        {1000 * _median([g['end'] for g in logs]):8.1f}")
    print(f"  child processes: {len(logs[0]['children'])} per run")
    for k, child in enumerate(logs[0]["children"]):
        args = " ".join(Path(a).name if os.sep in a else a for a in child["args"])
        seconds = [g["children"][k]["seconds"] for g in logs if len(g["children"]) > k]
        starts = [g["children"][k]["start"] for g in logs if len(g["children"]) > k]
        print(
            f"    at {1000 * _median(starts):7.1f} ran {1000 * _median(seconds):6.1f}: {args[:110]}"
        )


def profile(wheel: Path, command: str, env: dict[str, str], tmp: Path, top: int) -> None:
    """cProfile of the run after ``relabel.cli`` is imported (one run)."""
    import pstats

    stats_file = tmp / "profile.out"
    argv = _tool_argv("relabel", command, wheel, tmp / "profile-out")
    argv[1:3] = ["-c", PROFILER, str(stats_file)]
    subprocess.run(argv, env=env, capture_output=True, check=False)
    print(f"\ncProfile of the run after the imports (one run), top {top} by cumulative time")
    stats = pstats.Stats(str(stats_file))
    stats.sort_stats("cumulative").print_stats(top)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheel", default="small", help="a wheel of wheelgen (default small)")
    parser.add_argument("--wheel-file", type=Path, help="time this wheel file instead")
    parser.add_argument("--command", choices=["repair", "show"], default="repair")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--keep", type=Path, help="build or reuse the wheels in this directory")
    parser.add_argument("--top", type=int, default=30, help="rows of the profile")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="relabel-startup-") as scratch:
        tmp = Path(scratch)
        cache = args.keep or tmp / "wheels"
        wheel = args.wheel_file or wheelgen.build(args.wheel, cache, []).wheel
        env = measure.child_env(tmp / "pycache")
        for tool in ("relabel", "auditwheel"):
            warm = _tool_argv(tool, args.command, wheel, tmp / f"warm-{tool}")
            subprocess.run(warm, env=env, capture_output=True, check=False)
        print(f"wheel {wheel.name}, command {args.command}")
        wall_times(wheel, args.command, args.repeat, env, tmp)
        import_times(wheel, args.command, args.repeat, env, tmp)
        children(wheel, args.command, args.repeat, env, tmp)
        profile(wheel, args.command, env, tmp, args.top)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
