"""Libraries that cannot be found, that loop, that cannot be read, or that need each other.

A library that cannot be found is reported with its name, the file that needs it and
every directory searched (errors.LibraryNotFoundError), by the command and by the backend
with an explicit target. Loops and unreadable files are skipped as the dynamic loader
skips them, so they end in the same message, never in a hang or a traceback.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

import relabel.elf
import relabel.patchelf
from relabel import build_meta
from relabel.errors import LibraryNotFoundError
from relabel.repair import Options, repair
from tests.conftest import EXT_SUFFIX, Fixtures, make_wheel
from tests.hooks_support import isolated_imports, make_project

from .support import (
    assert_clean_failure,
    assert_valid_wheel,
    grafted,
    run_relabel,
    time_limit,
    tree,
)

EXT = f"pkg/_foo{EXT_SUFFIX}"


def _patchelf(*args: str | Path) -> None:
    relabel.patchelf.find.cache_clear()
    subprocess.run([relabel.patchelf.find(), *map(str, args)], check=True)


@pytest.fixture(scope="module")
def ext_nopath(fixtures: Fixtures, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``_foo`` without its RUNPATH: libfoo.so.1 is found nowhere unless relabel is told."""
    out = tmp_path_factory.mktemp("nopath") / fixtures.ext_foo.name
    shutil.copy2(fixtures.ext_foo, out)
    _patchelf("--remove-rpath", out)
    return out


@pytest.fixture(autouse=True)
def _no_relabel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("RELABEL_"):
            monkeypatch.delenv(name)
    monkeypatch.delenv("LD_LIBRARY_PATH", raising=False)


def test_missing_library_through_the_command(ext_nopath: Path, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "in", {EXT: ext_nopath})
    extra = tmp_path / "extra-libs"
    extra.mkdir()
    out = tmp_path / "out"
    proc = run_relabel("repair", "--library-dir", extra, "-w", out, wheel, tmpdir=tmp_path / "t")
    message = assert_clean_failure(
        proc, "cannot find shared library", "libfoo.so.1", f"needed by {EXT}", str(extra)
    )
    # every directory searched, the system ones included
    searched = message.split("searched: ", 1)[1].split("\n", 1)[0].split(", ")
    assert str(extra) in searched
    assert any(d.startswith(("/usr/lib", "/lib")) for d in searched), searched
    assert "library-dirs" in message  # what to do
    assert tree(out) == []
    assert tree(tmp_path / "t") == []


def test_missing_library_through_the_backend_with_an_explicit_target(
    ext_nopath: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inner = make_wheel(tmp_path / "inner", {EXT: ext_nopath})
    extra = tmp_path / "extra-libs"
    extra.mkdir()
    root = tmp_path / "project"
    make_project(
        root, wheel=inner, relabel={"plat": "manylinux_2_17", "library-dirs": [str(extra)]}
    )
    monkeypatch.chdir(root)
    dist = tmp_path / "dist"
    with isolated_imports(root), pytest.raises(SystemExit) as excinfo:
        build_meta.build_wheel(str(dist))
    message = str(excinfo.value.code)
    assert message.startswith("relabel: error: ")
    assert "manylinux_2_17" in message
    assert f"{EXT} -> libfoo.so.1 (not found; searched: " in message
    assert str(extra) in message
    assert "library-dirs" in message
    assert tree(dist) == []


def test_missing_library_with_the_automatic_target_keeps_the_build_going(
    ext_nopath: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The default must not break an end user's pip install: the linux tag stays, with a
    # warning naming the library.
    inner = make_wheel(tmp_path / "inner", {EXT: ext_nopath})
    root = tmp_path / "project"
    make_project(root, wheel=inner)
    monkeypatch.chdir(root)
    dist = tmp_path / "dist"
    with isolated_imports(root):
        name = build_meta.build_wheel(str(dist))
    warning = capsys.readouterr().err.partition("relabel: warning: ")[2]
    assert "libfoo.so.1" in warning
    assert name.endswith("linux_x86_64.whl")
    assert (dist / name).read_bytes() == inner.read_bytes()


def test_symlink_loops_in_a_library_directory(ext_nopath: Path, tmp_path: Path) -> None:
    loops = tmp_path / "loops"
    loops.mkdir()
    (loops / "libfoo.so.1").symlink_to("libfoo.so.1")  # itself
    (loops / "liba.so").symlink_to("libb.so")
    (loops / "libb.so").symlink_to("liba.so")
    (tmp_path / "dir-loop").symlink_to("dir-loop")  # a library dir that is a loop
    wheel = make_wheel(tmp_path / "in", {EXT: ext_nopath})
    with time_limit(60), pytest.raises(LibraryNotFoundError) as excinfo:
        repair(
            wheel,
            tmp_path / "out",
            Options(library_dirs=(str(loops), str(tmp_path / "dir-loop")), strict=True),
        )
    [(soname, needed_by, searched)] = excinfo.value.missing
    assert (soname, needed_by) == ("libfoo.so.1", EXT)
    assert str(loops) in searched
    assert str(tmp_path / "dir-loop") in searched
    assert tree(tmp_path / "out") == []


def test_a_symlink_chain_that_ends_is_followed(
    fixtures: Fixtures, ext_nopath: Path, tmp_path: Path
) -> None:
    """The control case: links that end at a library are fine."""
    libs = tmp_path / "libs"
    (libs / "real").mkdir(parents=True)
    shutil.copy2(fixtures.libfoo, libs / "real" / "libfoo.so.1.0.0")
    (libs / "libfoo.so.1").symlink_to("real/libfoo.so.1.0.0")
    wheel = make_wheel(tmp_path / "in", {EXT: ext_nopath})
    result = repair(wheel, tmp_path / "out", Options(library_dirs=(str(libs),), strict=True))
    assert grafted(result.output)
    assert_valid_wheel(result.output)


def test_libraries_that_need_each_other(
    fixtures: Fixtures, ext_nopath: Path, tmp_path: Path
) -> None:
    # libfoo -> libbar -> libfoo: the walk must end, and both are grafted once.
    libs = tmp_path / "libs"
    libs.mkdir()
    shutil.copy2(fixtures.libfoo, libs / "libfoo.so.1")
    shutil.copy2(fixtures.libbar, libs / "libbar.so.1")
    _patchelf("--add-needed", "libbar.so.1", libs / "libfoo.so.1")
    wheel = make_wheel(tmp_path / "in", {EXT: ext_nopath})
    with time_limit(60):
        result = repair(wheel, tmp_path / "out", Options(library_dirs=(str(libs),), strict=True))
    with zipfile.ZipFile(result.output) as zf:
        grafted = sorted(n for n in zf.namelist() if n.startswith("demo.libs/"))
    assert [n.split("-", 1)[0] for n in grafted] == ["demo.libs/libbar", "demo.libs/libfoo"]
    assert_valid_wheel(result.output)


def test_a_library_that_is_not_a_library(ext_nopath: Path, tmp_path: Path) -> None:
    # A directory, a FIFO and a garbage file where libfoo.so.1 should be: all skipped.
    for index, make in enumerate(
        [
            lambda p: p.mkdir(),
            os.mkfifo,
            lambda p: p.write_bytes(b"\x7fELF" + b"\xff" * 100),
        ]
    ):
        libs = tmp_path / f"libs{index}"
        libs.mkdir()
        make(libs / "libfoo.so.1")
        wheel = make_wheel(tmp_path / f"in{index}", {EXT: ext_nopath})
        with time_limit(60), pytest.raises(LibraryNotFoundError) as excinfo:
            repair(wheel, tmp_path / "out", Options(library_dirs=(str(libs),), strict=True))
        assert str(libs) in excinfo.value.missing[0][2]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_library(fixtures: Fixtures, ext_nopath: Path, tmp_path: Path) -> None:
    libs = tmp_path / "libs"
    libs.mkdir()
    shutil.copy2(fixtures.libfoo, libs / "libfoo.so.1")
    (libs / "libfoo.so.1").chmod(0)
    wheel = make_wheel(tmp_path / "in", {EXT: ext_nopath})
    proc = run_relabel("repair", "--library-dir", libs, "-w", tmp_path / "out", wheel)
    assert_clean_failure(proc, "libfoo.so.1", str(libs))


def _unreadable(monkeypatch: pytest.MonkeyPatch, victim: Path) -> None:
    """Make ``victim`` unreadable to relabel.elf even for root (which chmod cannot stop)."""
    real_open = Path.open

    def guarded_open(self: Path, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        if self.resolve() == victim.resolve():
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(relabel.elf.Path, "open", guarded_open)


def _repair_with_unreadable_libfoo(
    fixtures: Fixtures, ext_nopath: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[LibraryNotFoundError, Path]:
    """The refusal of a repair whose only libfoo.so.1 (in the returned directory, named
    by --library-dirs) cannot be read."""
    libs = tmp_path / "libs"
    libs.mkdir()
    shutil.copy2(fixtures.libfoo, libs / "libfoo.so.1")
    _unreadable(monkeypatch, libs / "libfoo.so.1")
    wheel = make_wheel(tmp_path / "in", {EXT: ext_nopath})
    with pytest.raises(LibraryNotFoundError) as excinfo:
        repair(wheel, tmp_path / "out", Options(library_dirs=(str(libs),), strict=True))
    return excinfo.value, libs


def test_unreadable_library_simulated(
    fixtures: Fixtures, ext_nopath: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    error, libs = _repair_with_unreadable_libfoo(fixtures, ext_nopath, tmp_path, monkeypatch)
    assert error.missing[0][:2] == ("libfoo.so.1", EXT)
    assert str(libs) in error.missing[0][2]
    assert tree(tmp_path / "out") == []


def test_unreadable_library_is_named_with_the_reason(
    fixtures: Fixtures, ext_nopath: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    error, libs = _repair_with_unreadable_libfoo(fixtures, ext_nopath, tmp_path, monkeypatch)
    assert f"{libs / 'libfoo.so.1'} (Permission denied)" in str(error)
