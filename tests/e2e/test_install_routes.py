"""Every way the README gives to get relabel-backend into a build, end to end.

relabel-backend is not on PyPI: a project reaches it through a wheelhouse (``pip
--find-links``, ``PIP_FIND_LINKS`` for pip and ``python -m build``, ``uv build
--find-links`` or ``UV_FIND_LINKS``) or through a direct reference in
``[build-system].requires`` (a wheel file, a git repository). Each route builds a copy of
``example_projects/setuptools-bz2`` as a user would, with nothing else pointing at the
wheelhouse, and must hand back the repaired manylinux wheel: auditwheel's tags and grafted
libraries, running from a fresh venv on the grafted libbz2.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ._support import EXAMPLES, WheelContents, git_commit_all, run
from .conftest import _NOT_SOURCES, REPO
from .test_examples import install_and_probe, local_relabel_wheel

if TYPE_CHECKING:
    from collections.abc import Callable

    from .conftest import Oracles

pytestmark = pytest.mark.e2e

EXAMPLE = EXAMPLES["bz2"]
REQUIREMENT = '"relabel-backend"'


@dataclass(frozen=True)
class Route:
    """One way of building: the command, the environment, the project's requirement."""

    command: list[str]
    env: dict[str, str]
    requirement: str = REQUIREMENT


def without_wheelhouse(env: dict[str, str]) -> dict[str, str]:
    """The suite's environment minus its ``PIP_FIND_LINKS``: a route must bring its own."""
    return {k: v for k, v in env.items() if k != "PIP_FIND_LINKS"}


def pip_certificate(env: dict[str, str]) -> str | None:
    """The CA bundle pip is configured with (``PIP_CERT`` or ``cert`` in a pip.conf)."""
    if env.get("PIP_CERT"):
        return env["PIP_CERT"]
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    for line in proc.stdout.splitlines():
        name, _, value = line.partition("=")
        if name.endswith(".cert"):
            return value.strip().strip("'\"")
    return None


def uv_environment(env: dict[str, str], cache: Path) -> dict[str, str]:
    """uv reads neither pip.conf nor ``PIP_*``. Where the index is reached through a proxy
    whose CA only pip is told about, uv needs the same bundle as ``SSL_CERT_FILE``."""
    uv_env = without_wheelhouse(env)
    uv_env = {k: v for k, v in uv_env.items() if not k.startswith("UV_")}
    uv_env["UV_CACHE_DIR"] = str(cache)
    uv_env["UV_NO_PROGRESS"] = "1"
    certificate = pip_certificate(env)
    if certificate and not uv_env.get("SSL_CERT_FILE"):
        uv_env["SSL_CERT_FILE"] = certificate
    return uv_env


def uv_executable() -> str:
    for directory in (Path(sys.executable).parent, *map(Path, os.get_exec_path())):
        if (directory / "uv").is_file():
            return str(directory / "uv")
    pytest.skip("uv is not installed (pip install uv; it is in the test extra)")


def source_repository(where: Path, env: dict[str, str]) -> Path:
    """A git repository holding this checkout's sources, committed."""
    source = where / "relabel"
    shutil.copytree(REPO, source, ignore=_NOT_SOURCES, symlinks=True)
    git_commit_all(source, env)
    return source


# Each takes (wheelhouse, work directory, suite environment) and gives the route.
ROUTES: dict[str, Callable[[Path, Path, dict[str, str]], Route]] = {
    "pip-find-links": lambda house, work, env: Route(
        [sys.executable, "-m", "pip", "wheel", "--find-links", str(house), "-w", "out", "."],
        without_wheelhouse(env),
    ),
    "pip-PIP_FIND_LINKS": lambda house, work, env: Route(
        [sys.executable, "-m", "pip", "wheel", "-w", "out", "."],
        {**without_wheelhouse(env), "PIP_FIND_LINKS": str(house)},
    ),
    "build-PIP_FIND_LINKS": lambda house, work, env: Route(
        [sys.executable, "-m", "build", "-o", "out", "."],
        {**without_wheelhouse(env), "PIP_FIND_LINKS": str(house)},
    ),
    "uv-build-find-links": lambda house, work, env: Route(
        [
            uv_executable(),
            "build",
            "--find-links",
            str(house),
            "--python",
            sys.executable,
            "-o",
            "out",
            ".",
        ],
        uv_environment(env, work / "uv-cache"),
    ),
    "uv-build-UV_FIND_LINKS": lambda house, work, env: Route(
        [uv_executable(), "build", "--python", sys.executable, "-o", "out", "."],
        {**uv_environment(env, work / "uv-cache"), "UV_FIND_LINKS": str(house)},
    ),
    "direct-file-reference": lambda house, work, env: Route(
        [sys.executable, "-m", "pip", "wheel", "-w", "out", "."],
        without_wheelhouse(env),
        f'"relabel-backend @ {local_relabel_wheel(house).as_uri()}"',
    ),
    "direct-git-reference": lambda house, work, env: Route(
        [sys.executable, "-m", "pip", "wheel", "-w", "out", "."],
        without_wheelhouse(env),
        f'"relabel-backend @ git+{source_repository(work, env).as_uri()}"',
    ),
}


@pytest.mark.parametrize("name", list(ROUTES))
def test_route_gives_the_repaired_wheel(
    name: str, tmp_path: Path, wheelhouse: Path, env: dict[str, str], oracles: Oracles
) -> None:
    route = ROUTES[name](wheelhouse, tmp_path, env)
    project = tmp_path / EXAMPLE.directory
    shutil.copytree(REPO / "example_projects" / EXAMPLE.directory, project)
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    assert REQUIREMENT in text
    pyproject.write_text(text.replace(REQUIREMENT, route.requirement, 1), encoding="utf-8")

    result = run(route.command, cwd=project, env=route.env)

    wheels = sorted((project / "out").glob("*.whl"))
    assert len(wheels) == 1, result.describe()
    ours = WheelContents.read(wheels[0])
    expected = oracles[EXAMPLE.key].repaired
    assert ours.tags == expected.tags, result.describe()
    assert all(tag.platform.startswith("manylinux") for tag in ours.tags)
    assert set(ours.libs(EXAMPLE.libs_dir)) == set(expected.libs(EXAMPLE.libs_dir))
    assert ours.libs(EXAMPLE.libs_dir), "nothing grafted"
    shutil.rmtree(project / "build", ignore_errors=True)
    install_and_probe(wheels[0], EXAMPLE, tmp_path, env)


def test_no_route_without_a_source_for_relabel(tmp_path: Path, env: dict[str, str]) -> None:
    """Without a wheelhouse or a direct reference the build cannot find relabel-backend:
    each route above passes because of what it adds, not because of the machine."""
    project = tmp_path / EXAMPLE.directory
    shutil.copytree(REPO / "example_projects" / EXAMPLE.directory, project)
    command = [sys.executable, "-m", "pip", "wheel", "-w", "out", "."]
    result = run(command, cwd=project, env=without_wheelhouse(env), check=False)
    assert result.returncode != 0
    assert "relabel-backend" in result.output
    assert not (project / "out").exists() or not list((project / "out").iterdir())
