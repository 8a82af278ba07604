"""What the backend says, and what it leaves behind, when things go sideways.

Hook calls against tiny fake inner backends (``tests/hooks_support``), read as a user reads
them: the ``relabel: error:`` message of a failed hook, the ``relabel: warning:`` lines on
stderr, the files in the output and temporary directories. The last tests run a real
``pip wheel -v``, since what a frontend shows is what counts.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import pytest

import relabel._signals
import relabel.patchelf
from relabel import build_meta

from .conftest import EXT_SUFFIX, Fixtures, make_wheel
from .hooks_support import ALL_HOOKS, FakeProject, hook_failure, isolated_hooks, make_project

if TYPE_CHECKING:
    from collections.abc import Iterator

REPO = Path(__file__).resolve().parents[1]
ProjectFactory = Callable[..., FakeProject]


@pytest.fixture(autouse=True)
def _isolation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Isolated hooks (see isolated_hooks), with a TMPDIR of the test's own."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", None)
    with isolated_hooks(tmp_path, monkeypatch):
        yield


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    """The test's TMPDIR."""
    return tmp_path / "tmp"


@pytest.fixture
def pure_wheel(tmp_path: Path) -> Path:
    return make_wheel(tmp_path / "prebuilt", {"fake/__init__.py": b"VALUE = 1\n"}, name="fake")


@pytest.fixture
def foo_wheel(fixtures: Fixtures, tmp_path: Path) -> Path:
    """An extension that needs libfoo.so.1 from outside the wheel (found through RUNPATH)."""
    return make_wheel(tmp_path / "prebuilt-foo", {f"pkg/_foo{EXT_SUFFIX}": fixtures.ext_foo})


@pytest.fixture
def new_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pure_wheel: Path
) -> ProjectFactory:
    """Write a fake project (see make_project) and make it the current directory."""

    def factory(**kwargs: Any) -> FakeProject:
        kwargs.setdefault("wheel", pure_wheel)
        project = make_project(tmp_path / "project", **kwargs)
        monkeypatch.chdir(project.root)
        return project

    return factory


def with_build_wheel(source: str) -> dict[str, Any]:
    """make_project arguments for a backend whose build_wheel is ``source``."""
    return {"hooks": [h for h in ALL_HOOKS if h != "build_wheel"], "prelude": source}


def tree(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


def warnings_in(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("relabel: warning: ")]


# ---------------------------------------------------------------------------------------
# An inner backend that keeps writing after build_wheel returned

LATE_WRITER = """
import os, threading, time

STOP = threading.Event()

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    def scribble():
        end = time.monotonic() + {seconds}
        count = 0
        while time.monotonic() < end and not STOP.is_set():
            try:
                os.makedirs(wheel_directory, exist_ok=True)
                Path(wheel_directory, "late-%d.o" % count).write_bytes(b"object code")
            except OSError:
                pass
            count += 1
            time.sleep(0.001)

    threading.Thread(target=scribble, name="late-writer", daemon=True).start()
    return _copy(SPEC["wheel"], wheel_directory)
"""


def join_late_writers() -> None:
    for thread in threading.enumerate():
        if thread.name == "late-writer":
            thread.join(timeout=60)


def test_backend_writing_after_build_wheel_returned_leaves_nothing_behind(
    new_project: ProjectFactory,
    tmp_path: Path,
    scratch: Path,
    pure_wheel: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    new_project(**with_build_wheel(LATE_WRITER.format(seconds=0.5)))
    # the writer pauses 1 ms between files; a loaded test machine may stall it far longer
    monkeypatch.setattr(build_meta, "_QUIET_SECONDS", 0.3)
    dist = tmp_path / "dist"
    try:
        name = build_meta.build_wheel(str(dist))
    finally:
        join_late_writers()
    assert name == pure_wheel.name
    assert tree(dist) == [name]
    assert (dist / name).read_bytes() == pure_wheel.read_bytes()
    assert tree(scratch) == []


def test_backend_that_never_stops_writing_gets_its_wheel_and_a_warning(  # noqa: PLR0917
    new_project: ProjectFactory,
    tmp_path: Path,
    scratch: Path,
    pure_wheel: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The wheel was taken away from the writer before it was read, so it is delivered;
    the directory that cannot be removed is named."""
    project = new_project(**with_build_wheel(LATE_WRITER.format(seconds=600)))
    monkeypatch.setattr(relabel._signals, "SETTLE_SECONDS", 0.5)
    dist = tmp_path / "dist"
    try:
        name = build_meta.build_wheel(str(dist))
    finally:
        sys.modules[project.module].STOP.set()
        join_late_writers()
    assert tree(dist) == [name]
    assert (dist / name).read_bytes() == pure_wheel.read_bytes()
    (warning,) = warnings_in(capsys.readouterr().err)
    (run,) = scratch.iterdir()
    assert f"cannot remove the temporary directory {run} " in warning
    assert "keeps writing into it" in warning


LEFT_RUNNING = """
import subprocess, sys, threading

STOP = threading.Event()
CHILDREN = []

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    if {thread}:
        threading.Thread(target=STOP.wait, name="late-writer", daemon=True).start()
    if {process}:
        CHILDREN.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]))
    return _copy(SPEC["wheel"], wheel_directory)
"""


@pytest.mark.parametrize("left", ["nothing", "thread", "process"])
def test_removal_waits_for_late_writers_only_when_the_backend_left_something_running(
    new_project: ProjectFactory, pure_wheel: Path, monkeypatch: pytest.MonkeyPatch, left: str
) -> None:
    """The scratch directory must stay away for a moment before it counts as removed only
    while a thread or child process the hook started still runs."""
    project = new_project(
        **with_build_wheel(LEFT_RUNNING.format(thread=left == "thread", process=left == "process"))
    )
    waits: list[float] = []
    remove_tree = relabel._signals.remove_tree

    def recording(path: Path, *, settle: float | None = None, quiet: float = 0.0) -> Any:
        waits.append(quiet)
        return remove_tree(path, settle=settle, quiet=quiet)

    monkeypatch.setattr(relabel._signals, "remove_tree", recording)
    try:
        assert build_meta.build_wheel(str(project.root / "dist")) == pure_wheel.name
    finally:
        backend = sys.modules[project.module]
        backend.STOP.set()
        for child in backend.CHILDREN:
            child.kill()
            child.wait()
        join_late_writers()
    assert waits == [0.0 if left == "nothing" else build_meta._QUIET_SECONDS]


@pytest.mark.parametrize("when", ["import", "build_wheel"])
def test_backend_pointing_tempfile_at_a_missing_directory(  # noqa: PLR0917
    new_project: ProjectFactory,
    tmp_path: Path,
    scratch: Path,
    foo_wheel: Path,
    fixtures: Fixtures,
    when: str,
) -> None:
    gone = tmp_path / "no-such-directory"
    if when == "import":
        source = f"import tempfile\ntempfile.tempdir = {str(gone)!r}\n"
    else:
        source = f"""
import tempfile

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    tempfile.tempdir = {str(gone)!r}
    return _copy(SPEC["wheel"], wheel_directory)
"""
    options = with_build_wheel(source) if when == "build_wheel" else {"prelude": source}
    new_project(wheel=foo_wheel, relabel={"library-dirs": [str(fixtures.libdir)]}, **options)
    dist = tmp_path / "dist"
    name = build_meta.build_wheel(str(dist))
    assert "manylinux" in name  # repaired, so relabel's own scratch files had a home
    assert tree(dist) == [name]
    assert tempfile.gettempdir() == str(scratch)
    assert tree(scratch) == []
    assert not gone.exists()


def test_inner_backend_sees_the_users_temporary_directory(
    new_project: ProjectFactory, tmp_path: Path, scratch: Path
) -> None:
    """relabel does not redirect tempfile for the process the inner backend shares."""
    seen = tmp_path / "seen"
    new_project(
        **with_build_wheel(f"""
import tempfile

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    Path({str(seen)!r}).write_text(tempfile.gettempdir())
    return _copy(SPEC["wheel"], wheel_directory)
""")
    )
    build_meta.build_wheel(str(tmp_path / "dist"))
    assert seen.read_text() == str(scratch)


# ---------------------------------------------------------------------------------------
# Failures of the inner backend keep its whole traceback


def test_inner_hook_failure_keeps_the_whole_traceback(
    new_project: ProjectFactory, tmp_path: Path
) -> None:
    new_project(
        **with_build_wheel("""
def _compile(name):
    raise RuntimeError("cc1: fatal error: " + name + ": no such file")

def _build_extensions():
    _compile("ext.c")

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    _build_extensions()
""")
    )
    message = hook_failure(build_meta.build_wheel, str(tmp_path / "dist"))
    assert "build_wheel failed: RuntimeError: cc1: fatal error: ext.c: no such file" in message
    assert "Traceback (most recent call last):" in message
    for frame in ("in build_wheel", "in _build_extensions", "in _compile"):
        assert frame in message, message
    assert "inner.py" not in message, "relabel's own frames are noise here"


def test_inner_backend_import_failure_keeps_the_whole_traceback(
    new_project: ProjectFactory, tmp_path: Path
) -> None:
    new_project(
        prelude="""
def _probe_compiler():
    raise RuntimeError("the backend needs a C compiler and found none")

_probe_compiler()
"""
    )
    message = hook_failure(build_meta.build_wheel, str(tmp_path / "dist"))
    assert "import failed: RuntimeError: the backend needs a C compiler" in message
    assert "in _probe_compiler" in message
    assert "<frozen importlib" not in message


# ---------------------------------------------------------------------------------------
# A typo in the inner backend's name


@pytest.mark.parametrize(
    ("reference", "suggestion"),
    [
        ("setuptools.build_mta", "'setuptools.build_meta'"),
        ("setuptools.build_mta:__legacy__", "'setuptools.build_meta:__legacy__'"),
    ],
)
def test_typo_in_a_module_of_an_installed_backend(
    new_project: ProjectFactory, tmp_path: Path, reference: str, suggestion: str
) -> None:
    pytest.importorskip("setuptools")
    new_project(relabel={"build-backend": reference, "backend-path": []})
    message = hook_failure(build_meta.build_wheel, str(tmp_path / "dist"))
    assert "package 'setuptools' is installed" in message
    assert "has no module 'build_mta'" in message
    assert f"did you mean {suggestion}?" in message
    assert "not installed" not in message
    assert "[build-system].requires" not in message


def test_missing_module_of_an_installed_package_lists_its_backends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, new_project: ProjectFactory
) -> None:
    site = tmp_path / "site" / "toolkit"
    site.mkdir(parents=True)
    (site / "__init__.py").write_text("")
    (site / "pep517.py").write_text("def build_wheel(wheel_directory):\n    pass\n")
    (site / "helpers.py").write_text("def build(): pass\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    new_project(relabel={"build-backend": "toolkit.backend", "backend-path": []})
    message = hook_failure(build_meta.build_wheel, str(tmp_path / "dist"))
    assert "has no module 'backend'" in message
    assert "its modules that define build_wheel: toolkit.pep517" in message
    assert "helpers" not in message


def test_missing_package_still_says_not_installed(
    new_project: ProjectFactory, tmp_path: Path
) -> None:
    new_project(relabel={"build-backend": "setuptols.build_meta", "backend-path": []})
    message = hook_failure(build_meta.build_wheel, str(tmp_path / "dist"))
    assert "module 'setuptols' is not installed" in message
    assert "[build-system].requires" in message


# ---------------------------------------------------------------------------------------
# Configuration the user got slightly wrong


def test_pyproject_that_is_not_utf8(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "project"
    root.mkdir()
    (root / "pyproject.toml").write_bytes(b"[tool.relabel]\nmode = 'r\xe9pare'\n")  # Latin-1
    monkeypatch.chdir(root)
    message = hook_failure(build_meta.build_wheel, str(tmp_path / "dist"))
    assert str(root / "pyproject.toml") in message
    assert "not UTF-8" in message
    assert "0xe9" in message


def test_misspelt_environment_variable_is_named_with_a_suggestion(
    new_project: ProjectFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    pure_wheel: Path,
) -> None:
    new_project()
    monkeypatch.setenv("RELABEL_PLAAT", "manylinux2014")
    monkeypatch.setenv("RELABEL_PATCHELF", "/usr/bin/patchelf")  # read by relabel itself
    assert build_meta.build_wheel(str(tmp_path / "dist")) == pure_wheel.name
    assert warnings_in(capsys.readouterr().err) == [
        "relabel: warning: environment variable RELABEL_PLAAT is not a relabel setting and"
        " is ignored; did you mean RELABEL_PLAT?"
    ]


def test_auditwheel_plat_is_the_default_target(
    new_project: ProjectFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    foo_wheel: Path,
    fixtures: Fixtures,
) -> None:
    """As in a manylinux image, where cibuildwheel runs the build."""
    monkeypatch.setenv("AUDITWHEEL_PLAT", "manylinux_2_28_x86_64")
    new_project(wheel=foo_wheel, relabel={"library-dirs": [str(fixtures.libdir)]})
    name = build_meta.build_wheel(str(tmp_path / "dist"), {"relabel.only-plat": "true"})
    assert name.endswith("-manylinux_2_28_x86_64.whl"), name


def test_relabel_settings_win_over_auditwheel_plat(
    new_project: ProjectFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    foo_wheel: Path,
    fixtures: Fixtures,
) -> None:
    monkeypatch.setenv("AUDITWHEEL_PLAT", "manylinux_2_28_x86_64")
    new_project(
        wheel=foo_wheel,
        relabel={"library-dirs": [str(fixtures.libdir)], "plat": "manylinux_2_31"},
    )
    name = build_meta.build_wheel(str(tmp_path / "dist"), {"relabel.only-plat": "true"})
    assert name.endswith("-manylinux_2_31_x86_64.whl"), name


def test_auditwheel_plat_that_cannot_be_met_fails_like_an_explicit_plat(
    new_project: ProjectFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fixtures: Fixtures,
) -> None:
    wheel = make_wheel(tmp_path / "prebuilt-new", {f"pkg/_newsym{EXT_SUFFIX}": fixtures.ext_new})
    monkeypatch.setenv("AUDITWHEEL_PLAT", "manylinux2014_x86_64")
    new_project(wheel=wheel)
    message = hook_failure(build_meta.build_wheel, str(tmp_path / "dist"))
    assert "manylinux_2_17_x86_64" in message
    assert "GLIBC_2.34" in message


# ---------------------------------------------------------------------------------------
# mode = "check" says what a repair would do


def test_check_mode_on_a_wheel_a_repair_would_fix(
    new_project: ProjectFactory, tmp_path: Path, foo_wheel: Path, fixtures: Fixtures
) -> None:
    new_project(wheel=foo_wheel, relabel={"mode": "check"})
    dist = tmp_path / "dist"
    message = hook_failure(build_meta.build_wheel, str(dist))
    assert "cannot be made" not in message
    assert "the wheel is not manylinux/musllinux compliant as built" in message
    assert "(it meets linux_x86_64)" in message
    assert f"A repair would graft:\n  - libfoo.so.1 ({fixtures.libfoo})" in message
    assert "A repair would tag it manylinux_2_5_x86_64, manylinux1_x86_64." in message
    assert "Nothing else blocks it: set mode = 'repair' to repair it." in message
    assert not dist.exists() or tree(dist) == []


def test_check_mode_names_what_would_still_block_the_target(
    new_project: ProjectFactory, tmp_path: Path, fixtures: Fixtures
) -> None:
    wheel = make_wheel(
        tmp_path / "prebuilt-2",
        {f"pkg/_foo{EXT_SUFFIX}": fixtures.ext_foo, f"pkg/_newsym{EXT_SUFFIX}": fixtures.ext_new},
    )
    new_project(wheel=wheel, relabel={"mode": "check", "plat": "manylinux2014"})
    message = hook_failure(build_meta.build_wheel, str(tmp_path / "dist"))
    assert "the wheel is not manylinux_2_17_x86_64 compliant as built" in message
    assert f"  - libfoo.so.1 ({fixtures.libfoo})" in message
    assert "A repair would tag it" not in message
    assert (
        "A repair would not make it manylinux_2_17_x86_64 compliant; what would still block it:"
        in message
    )
    assert f"pkg/_newsym{EXT_SUFFIX} -> " in message
    assert "GLIBC_2.34" in message
    assert "To fix: build on an older system" in message


# ---------------------------------------------------------------------------------------
# Warnings are lines on stderr, and PYTHONWARNINGS=error cannot turn them into failures


def test_warn_mode_prints_a_warning_line(
    new_project: ProjectFactory,
    tmp_path: Path,
    foo_wheel: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    new_project(wheel=foo_wheel, relabel={"mode": "warn"})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        name = build_meta.build_wheel(str(tmp_path / "dist"))
    assert [str(w.message) for w in caught] == []
    assert name == foo_wheel.name
    err = capsys.readouterr().err
    (line,) = warnings_in(err)
    assert line == "relabel: warning: the wheel is not compliant:"
    assert "libfoo.so.1" in err.partition(line)[2]


def _hook_in_subprocess(
    project: Path, dist: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys\nfrom relabel import build_meta\nprint(build_meta.build_wheel(sys.argv[1]))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, str(dist)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize("mode", ["warn", "repair"])
def test_warnings_as_errors_do_not_stop_delivery(
    tmp_path: Path, fixtures: Fixtures, mode: str
) -> None:
    """PYTHONWARNINGS=error (common in CI): the warning is still a line, the wheel arrives."""
    if mode == "warn":
        wheel = make_wheel(tmp_path / "prebuilt", {f"pkg/_foo{EXT_SUFFIX}": fixtures.ext_foo})
    else:  # nothing reachable under the automatic target: the linux tag stays, with a warning
        wheel = make_wheel(tmp_path / "prebuilt", {f"pkg/_isa{EXT_SUFFIX}": fixtures.ext_isa})
    project = make_project(tmp_path / "project", wheel=wheel, relabel={"mode": mode})
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO / "backend"),
        "PYTHONWARNINGS": "error",
        "RELABEL_MODDE": "check",
        "TMPDIR": str(tmp_path / "tmp"),
    }
    dist = tmp_path / "dist"
    proc = _hook_in_subprocess(project.root, dist, env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == wheel.name
    assert tree(dist) == [wheel.name]
    lines = warnings_in(proc.stderr)
    assert any("RELABEL_MODDE" in line and "RELABEL_MODE" in line for line in lines), lines
    assert len(lines) == 2, proc.stderr
    assert "Warning:" not in proc.stderr
    assert "Traceback" not in proc.stderr


# ---------------------------------------------------------------------------------------
# What pip shows


def _pip_wheel(project: Path, out: Path, **extra_env: str) -> subprocess.CompletedProcess[str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("RELABEL_", "PIP_")) and key != "AUDITWHEEL_PLAT"
    }
    env.update(
        PYTHONPATH=str(REPO / "backend"),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_INPUT="1",
        COLUMNS="1000",
        **extra_env,
    )
    command = [sys.executable, "-m", "pip", "wheel", "-v", "--no-build-isolation"]
    command += ["--no-deps", "-w", str(out), str(project)]
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=600, check=False
    )


# pip falls back to build_wheel for metadata when prepare_metadata_for_build_wheel is absent
_PIP_HOOKS = [h for h in ALL_HOOKS if h != "prepare_metadata_for_build_wheel"]


def test_pip_shows_warnings_as_relabel_lines(tmp_path: Path, foo_wheel: Path) -> None:
    project = make_project(
        tmp_path / "project", wheel=foo_wheel, hooks=_PIP_HOOKS, relabel={"mode": "warn"}
    )
    out = tmp_path / "wheelhouse"
    proc = _pip_wheel(project.root, out, RELABEL_PLAAT="manylinux2014")
    shown = proc.stdout + proc.stderr
    assert proc.returncode == 0, shown
    assert [p.name for p in out.iterdir()] == [foo_wheel.name]
    assert "relabel: warning: the wheel is not compliant:" in shown
    assert (
        "relabel: warning: environment variable RELABEL_PLAAT is not a relabel setting and"
        " is ignored; did you mean RELABEL_PLAT?"
    ) in shown
    assert "UserWarning" not in shown
    assert "build_meta.py:" not in shown
    assert "warnings.warn" not in shown


def test_pip_shows_what_check_mode_found(tmp_path: Path, foo_wheel: Path) -> None:
    project = make_project(
        tmp_path / "project", wheel=foo_wheel, hooks=_PIP_HOOKS, relabel={"mode": "check"}
    )
    out = tmp_path / "wheelhouse"
    proc = _pip_wheel(project.root, out)
    shown = proc.stdout + proc.stderr
    assert proc.returncode != 0, shown
    assert not out.exists() or list(out.iterdir()) == []
    assert "relabel: error: the wheel is not manylinux/musllinux compliant as built" in shown
    assert "A repair would graft:" in shown
    assert "Traceback" not in shown
