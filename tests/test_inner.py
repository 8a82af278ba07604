"""Loading the inner backend (relabel.inner): references, backend-path, import failures, calls."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from relabel import inner
from relabel.errors import InnerBackendError

from .hooks_support import MANDATORY_HOOKS, backend_source, isolated_imports

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture(autouse=True)
def _isolation(tmp_path: Path) -> Iterator[None]:
    with isolated_imports(tmp_path):
        yield


def write_module(directory: Path, dotted: str, source: str = "") -> Path:
    """Write module ``dotted`` (packages get an ``__init__.py``) under ``directory``."""
    *packages, module = dotted.split(".")
    where = directory
    for package in packages:
        where = where / package
        where.mkdir(parents=True, exist_ok=True)
        init = where / "__init__.py"
        if not init.exists():
            init.write_text("")
    where.mkdir(parents=True, exist_ok=True)
    path = where / f"{module}.py"
    path.write_text(textwrap.dedent(source))
    return path


HOOKS_SOURCE = """
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return "from-" + __name__ + ".whl"

def build_sdist(sdist_directory, config_settings=None):
    return "from-" + __name__ + ".tar.gz"
"""


def test_load_a_module(tmp_path: Path) -> None:
    write_module(tmp_path / "project" / "b", "plain_backend", HOOKS_SOURCE)
    backend = inner.load("plain_backend", ["b"], tmp_path / "project")
    assert backend.reference == "plain_backend"
    assert backend.call("build_wheel", "out") == "from-plain_backend.whl"


def test_load_a_module_object(tmp_path: Path) -> None:
    source = """
        class _Backend:
            def build_wheel(self, wheel_directory, config_settings=None, metadata_directory=None):
                return "from-object.whl"

        backend = _Backend()
        nested = type("N", (), {"inner": backend})
    """
    write_module(tmp_path / "project" / "b", "pkg_backend.api", source)
    for reference in ("pkg_backend.api:backend", "pkg_backend.api:nested.inner"):
        backend = inner.load(reference, ["b"], tmp_path / "project")
        assert backend.has("build_wheel")
        assert not backend.has("build_sdist")
        assert backend.call("build_wheel", "out") == "from-object.whl"


def test_missing_object_is_named(tmp_path: Path) -> None:
    write_module(tmp_path / "project" / "b", "plain_backend", HOOKS_SOURCE)
    with pytest.raises(InnerBackendError) as excinfo:
        inner.load("plain_backend:api.hooks", ["b"], tmp_path / "project")
    assert excinfo.value.backend == "plain_backend:api.hooks"
    assert "module 'plain_backend' has no attribute 'api'" in str(excinfo.value)


@pytest.mark.parametrize("reference", ["not_installed_backend", "not_installed_backend.sub:obj"])
def test_backend_not_installed(reference: str) -> None:
    with pytest.raises(InnerBackendError) as excinfo:
        inner.load(reference)
    message = str(excinfo.value)
    assert excinfo.value.backend == reference
    assert "'not_installed_backend' is not installed" in message
    assert "[build-system].requires" in message


def test_submodule_not_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_module(tmp_path / "site", "half_backend.other", "")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(InnerBackendError) as excinfo:
        inner.load("half_backend.build")
    message = str(excinfo.value)
    assert (
        f"package 'half_backend' is installed (in {tmp_path / 'site' / 'half_backend'})" in message
    )
    assert "has no module 'build'" in message
    assert "not installed" not in message


def test_missing_dependency_of_the_backend_is_not_the_backend_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backend that imports a module of its own package that is missing is broken."""
    write_module(tmp_path / "site", "broken_backend.build", "import broken_backend._native\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(InnerBackendError) as excinfo:
        inner.load("broken_backend.build")
    message = str(excinfo.value)
    assert "import failed" in message
    assert "broken_backend._native" in message
    assert "is not installed" not in message


def test_import_error_keeps_the_backends_message(tmp_path: Path) -> None:
    write_module(
        tmp_path / "p" / "b", "angry_backend", "raise ValueError('bad toolchain: gcc 4.8')"
    )
    with pytest.raises(InnerBackendError) as excinfo:
        inner.load("angry_backend", ["b"], tmp_path / "p")
    assert "import failed: ValueError: bad toolchain: gcc 4.8" in str(excinfo.value)
    assert isinstance(excinfo.value.__cause__, ValueError)


def test_relative_backend_path_resolves_against_the_project_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_module(tmp_path / "project" / "tools" / "backend", "rel_backend", HOOKS_SOURCE)
    # A module of the same name relative to the current directory must not be used.
    write_module(tmp_path / "elsewhere" / "tools" / "backend", "rel_backend", "raise ImportError")
    monkeypatch.chdir(tmp_path / "elsewhere")
    backend = inner.load("rel_backend", ["tools/backend"], tmp_path / "project")
    assert Path(backend.obj.__file__).parent == tmp_path / "project" / "tools" / "backend"


def test_backend_path_comes_before_an_installed_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_module(tmp_path / "site", "twin_backend", "raise ImportError('the installed one')")
    write_module(tmp_path / "project" / "b", "twin_backend", HOOKS_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    # The in-tree directory may already be on sys.path, behind the installed one.
    monkeypatch.setattr(sys, "path", [*sys.path, str(tmp_path / "project" / "b")])
    backend = inner.load("twin_backend", ["b"], tmp_path / "project")
    assert Path(backend.obj.__file__) == tmp_path / "project" / "b" / "twin_backend.py"


def test_backend_path_with_several_entries(tmp_path: Path) -> None:
    write_module(tmp_path / "project" / "second", "multi_backend", HOOKS_SOURCE)
    (tmp_path / "project" / "first").mkdir()
    backend = inner.load("multi_backend", ["first", "second"], tmp_path / "project")
    assert backend.call("build_sdist", "out") == "from-multi_backend.tar.gz"


def test_backend_outside_backend_path_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    installed = write_module(tmp_path / "site", "outside_backend", HOOKS_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    (tmp_path / "project" / "b").mkdir(parents=True)
    with pytest.raises(InnerBackendError) as excinfo:
        inner.load("outside_backend", ["b"], tmp_path / "project")
    message = str(excinfo.value)
    assert "backend-path" in message
    assert "['b']" in message
    assert str(installed) in message


def test_builtin_module_outside_backend_path(tmp_path: Path) -> None:
    (tmp_path / "project" / "b").mkdir(parents=True)
    with pytest.raises(InnerBackendError) as excinfo:
        inner.load("sys", ["b"], tmp_path / "project")
    assert "built-in" in str(excinfo.value)
    assert str(Path.cwd()) not in str(excinfo.value)


def test_backend_missing_from_backend_path(tmp_path: Path) -> None:
    (tmp_path / "project" / "b").mkdir(parents=True)
    with pytest.raises(InnerBackendError) as excinfo:
        inner.load("absent_backend", ["b"], tmp_path / "project")
    message = str(excinfo.value)
    assert "'absent_backend'" in message
    assert "backend-path" in message
    assert str(tmp_path / "project" / "b") in message


def test_package_backend_inside_backend_path(tmp_path: Path) -> None:
    write_module(tmp_path / "project" / "b", "intree.backend", HOOKS_SOURCE)
    backend = inner.load("intree.backend", ["b"], tmp_path / "project")
    assert backend.call("build_wheel", "out") == "from-intree.backend.whl"


def test_backend_path_through_a_symlink(tmp_path: Path) -> None:
    write_module(tmp_path / "real", "linked_backend", HOOKS_SOURCE)
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "b").symlink_to(tmp_path / "real")
    backend = inner.load("linked_backend", ["b"], tmp_path / "project")
    assert backend.has("build_wheel")


def test_relabel_cannot_wrap_itself() -> None:
    with pytest.raises(InnerBackendError, match="cannot wrap itself"):
        inner.load("relabel.build_meta")


def test_has_only_callable_hooks(tmp_path: Path) -> None:
    write_module(tmp_path / "p" / "b", "odd_backend", HOOKS_SOURCE + "build_editable = 'no'\n")
    backend = inner.load("odd_backend", ["b"], tmp_path / "p")
    assert backend.has("build_sdist")
    assert not backend.has("build_editable")
    assert not backend.has("prepare_metadata_for_build_wheel")
    with pytest.raises(InnerBackendError, match="has no hook 'build_editable'"):
        backend.call("build_editable", "out")


def test_hook_failure_keeps_message_and_origin(tmp_path: Path) -> None:
    log = tmp_path / "calls.jsonl"
    spec = {"log": str(log), "behaviour": {"build_sdist": {"raise": "no MANIFEST.in"}}}
    module = tmp_path / "p" / "b" / "raising_backend.py"
    module.parent.mkdir(parents=True)
    module.write_text(backend_source(hooks=MANDATORY_HOOKS, spec=spec))
    backend = inner.load("raising_backend", ["b"], tmp_path / "p")
    with pytest.raises(InnerBackendError) as excinfo:
        backend.call("build_sdist", str(tmp_path), {"x": "y"})
    message = str(excinfo.value)
    assert excinfo.value.backend == "raising_backend"
    assert "build_sdist failed: RuntimeError: no MANIFEST.in" in message
    assert f"raised at {module}:" in message
    assert isinstance(excinfo.value.__cause__, RuntimeError)
    (call,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert call == {
        "hook": "build_sdist",
        "sdist_directory": str(tmp_path),
        "config_settings": {"x": "y"},
    }


def test_system_exit_from_a_hook_is_not_rewritten(tmp_path: Path) -> None:
    source = """
        def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
            raise SystemExit("error: setup.py failed")
    """
    write_module(tmp_path / "p" / "b", "exiting_backend", source)
    backend = inner.load("exiting_backend", ["b"], tmp_path / "p")
    with pytest.raises(SystemExit, match=r"setup\.py failed"):
        backend.call("build_wheel", "out")
