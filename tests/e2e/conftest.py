"""Session fixtures for the end-to-end tests.

* ``wheelhouse``: relabel-backend's wheel built from this checkout. Isolated builds find it
  through ``PIP_FIND_LINKS`` (pip, and pip inside ``python -m build``); PyPI has no
  ``relabel-backend``, so nothing else can satisfy the examples' requirement.
* ``builder``: builds an example through one route on a copy in a scratch directory, once
  per session, however many tests look at the result.
* ``oracles``: for every compiled example, the inner backend's own ``linux_*`` wheel
  (built through relabel with ``relabel.mode=skip``) and what auditwheel makes of it.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ._support import (
    EXAMPLES,
    NO_ISOLATION,
    Build,
    Builder,
    WheelContents,
    auditwheel_repair,
    auditwheel_show,
    base_environment,
    run,
    sha256_file,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

REPO = Path(__file__).resolve().parents[2]

# Build outputs and caches that have no place in a copy of the checkout.
_NOT_SOURCES = shutil.ignore_patterns(
    ".git",
    "build",
    "dist",
    "wheelhouse",
    "*.egg-info",
    "__pycache__",
    ".*_cache",
    ".hypothesis",
    ".venv",
    "venv",
    ".tox",
    ".nox",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if not sys.platform.startswith("linux"):
        skip = pytest.mark.skip(reason="relabel repairs Linux wheels; the examples need Linux")
        for item in items:
            if item.path.is_relative_to(Path(__file__).parent):
                item.add_marker(skip)


@pytest.fixture(scope="session")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="session")
def wheelhouse(scratch: Path) -> Path:
    """A directory holding only relabel-backend's wheel, built from this checkout.

    The wheel is built from a copy so that the checkout gets no build/ or egg-info.
    """
    source = scratch / "relabel-source"
    shutil.copytree(REPO, source, ignore=_NOT_SOURCES, symlinks=True)
    house = scratch / "wheelhouse"
    house.mkdir()
    env = base_environment(house)
    run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(house), str(source)],
        cwd=scratch,
        env=env,
    )
    shutil.rmtree(source)
    return house


@pytest.fixture(scope="session")
def env(wheelhouse: Path) -> dict[str, str]:
    """The environment for every frontend, oracle and venv command of the suite."""
    return base_environment(wheelhouse)


@pytest.fixture(scope="session")
def builder(scratch: Path, env: Mapping[str, str]) -> Builder:
    builds = scratch / "builds"
    builds.mkdir()
    return Builder(REPO, builds, env)


@dataclass(frozen=True)
class Original:
    """An external library as auditwheel resolved it for the unrepaired wheel."""

    soname: str
    path: Path  # real path at the time of the oracle build
    project_path: str | None  # relative to the project copy when the build left it there
    sha256: str


@dataclass(frozen=True)
class Oracle:
    inner: Build  # the inner backend's wheel, through relabel with relabel.mode=skip
    show: Mapping[str, object]  # auditwheel show --json of that wheel
    repaired: WheelContents  # auditwheel repair of that wheel
    originals: Mapping[str, Original]  # soname -> the library auditwheel grafts


class Oracles:
    def __init__(self, builder: Builder, scratch: Path, env: Mapping[str, str]) -> None:
        self.builder = builder
        self.scratch = scratch
        self.env = env
        self._cache: dict[str, Oracle] = {}

    def __getitem__(self, key: str) -> Oracle:
        if key not in self._cache:
            self._cache[key] = self._make(key)
        return self._cache[key]

    def _make(self, key: str) -> Oracle:
        example = EXAMPLES[key]
        inner = self.builder.build(
            example, NO_ISOLATION, config=["relabel.mode=skip"], keep_project=True
        )
        try:
            wheel = inner.wheel
            show = auditwheel_show(wheel, env=self.env)
            external = show["external_libs"]
            assert isinstance(external, dict)
            project = inner.project.resolve()
            originals = {}
            for soname, path in external.items():
                assert path, f"auditwheel cannot find {soname} for {wheel.name}"
                real = Path(path).resolve()
                inside = real.is_relative_to(project)
                originals[soname] = Original(
                    soname,
                    real,
                    str(real.relative_to(project)) if inside else None,
                    sha256_file(real),
                )
            repaired = auditwheel_repair(wheel, self.scratch / f"oracle-{key}", env=self.env)
        finally:
            shutil.rmtree(inner.project, ignore_errors=True)
        return Oracle(inner, show, WheelContents.read(repaired), originals)


@pytest.fixture(scope="session")
def oracles(builder: Builder, scratch: Path, env: Mapping[str, str]) -> Oracles:
    return Oracles(builder, scratch, env)
