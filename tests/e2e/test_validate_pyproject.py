"""validate-pyproject finds the ``[tool.relabel]`` schema through relabel-backend's plugin
entry point once both are installed, as a user (or a pre-commit hook) installs them. With
cibuildwheel's plugin beside it, the README's TOML snippets are checked too.

The schema itself, and its agreement with relabel's own checks, is tested in
``tests/test_schema.py``.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest

from ._support import fresh_venv, pip_into, run
from .conftest import REPO
from .test_examples import local_relabel_wheel

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(sys.version_info < (3, 10), reason="validate-pyproject needs 3.10"),
]

EXAMPLES = sorted((REPO / "example_projects").glob("*/pyproject.toml"))
BAD = {
    # (what is appended to the [tool.relabel] table, what the message must name)
    "wrong-key": ('plaat = "manylinux_2_28"\n', "`tool.relabel` must not contain {'plaat'}"),
    "wrong-type": ('strip = "yes"\n', "`tool.relabel.strip` must be boolean"),
    "wrong-value": ('mode = "repiar"\n', "`tool.relabel.mode` must be one of"),
}


@pytest.fixture(scope="module")
def validate(
    tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path, env: dict[str, str]
) -> Path:
    """validate-pyproject's command in a fresh venv that also holds relabel-backend."""
    where = tmp_path_factory.mktemp("validate-pyproject")
    python = fresh_venv(where / "venv", env)
    requirements = [str(local_relabel_wheel(wheelhouse)), "validate-pyproject[all]"]
    if sys.version_info >= (3, 11):
        requirements.append("cibuildwheel")  # its [tool.cibuildwheel] plugin; needs 3.11
    pip_into(python, ["install", *requirements], cwd=where, env=env)
    return python.parent / "validate-pyproject"


def test_plugin_is_listed(validate: Path, tmp_path: Path, env: dict[str, str]) -> None:
    result = run([str(validate), "--help"], cwd=tmp_path, env=env)
    # validate-pyproject shows the plugin's docstring, first letter lowered
    assert "* 'relabel': the JSON schema of [tool.relabel], the settings of relabel-backend" in (
        result.output
    )


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.parent.name for p in EXAMPLES])
def test_example_projects_pass(validate: Path, path: Path, env: dict[str, str]) -> None:
    assert "[tool.relabel]" in path.read_text(encoding="utf-8")
    result = run([str(validate), str(path)], cwd=path.parent, env=env)
    assert "Valid file" in result.output


@pytest.mark.parametrize("case", list(BAD))
def test_mistakes_fail_naming_the_key(
    validate: Path, case: str, tmp_path: Path, env: dict[str, str]
) -> None:
    line, message = BAD[case]
    pyproject = tmp_path / "pyproject.toml"
    shutil.copyfile(REPO / "example_projects/setuptools-bz2/pyproject.toml", pyproject)
    text = pyproject.read_text(encoding="utf-8")
    assert text.rstrip().endswith('build-backend = "setuptools.build_meta"'), "table not last"
    pyproject.write_text(text.rstrip() + "\n" + line, encoding="utf-8")

    result = run([str(validate), str(pyproject)], cwd=tmp_path, env=env, check=False)
    assert result.returncode != 0, result.describe()
    assert message in result.output, result.describe()

    # The plugin is what catches it: without it, validate-pyproject knows no tool.relabel.
    unchecked = run([str(validate), "-D", "relabel", str(pyproject)], cwd=tmp_path, env=env)
    assert "Valid file" in unchecked.output


def readme_toml_blocks() -> list[str]:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    return re.findall(r"^```toml\n(.*?)^```$", readme, flags=re.MULTILINE | re.DOTALL)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="cibuildwheel needs 3.11")
@pytest.mark.parametrize("index", range(len(readme_toml_blocks())))
def test_readme_snippets_validate(
    validate: Path, index: int, tmp_path: Path, env: dict[str, str]
) -> None:
    block = readme_toml_blocks()[index]
    tools = set(re.findall(r"^\[+tool\.(\w+)", block, flags=re.MULTILINE))
    assert tools <= {"relabel", "cibuildwheel"}, tools
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(block, encoding="utf-8")
    result = run(
        [str(validate), str(pyproject), "-E", "relabel", "cibuildwheel"], cwd=tmp_path, env=env
    )
    assert "Valid file" in result.output


def test_readme_has_the_snippets() -> None:
    blocks = readme_toml_blocks()
    assert any("[tool.relabel]" in b for b in blocks)
    assert any("[tool.cibuildwheel]" in b for b in blocks)
    assert any("relabel-backend @ file://" in b for b in blocks)
