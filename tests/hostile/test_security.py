"""relabel never runs a shell, never runs code from a wheel, and keeps its files private.

* Subprocesses get argument lists, never a shell: checked on the source itself.
* Member names, library paths and output paths full of shell syntax stay plain strings.
* Temporary directories are created private (mode 0700).
* Nothing from the wheel is executed or loaded: not a ``.pth`` file, not a script, not a
  library with a constructor, not an executable, even when a wheel file needs that library.
* Nothing outside the scratch and output directories changes: not the input wheel, not
  the libraries relabel grafts, not the working directory.
"""

from __future__ import annotations

import ast
import ctypes
import hashlib
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

import relabel
import relabel.patchelf
from relabel.repair import Options, analyze, repair
from tests.conftest import EXT_SUFFIX, Fixtures, make_wheel

from .support import grafted, run_relabel, tree

SOURCE = Path(relabel.__file__).parent
EXT = f"pkg/_foo{EXT_SUFFIX}"


# ---------------------------------------------------------------------------------------
# no shell


def _calls(tree_: ast.AST) -> list[tuple[str, ast.Call]]:
    found = []
    for node in ast.walk(tree_):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                found.append((f"{func.value.id}.{func.attr}", node))
            elif isinstance(func, ast.Name):
                found.append((func.id, node))
    return found


SHELL_CALLS = {
    "os.system",
    "os.popen",
    "os.spawnlp",
    "os.execlp",
    "subprocess.getoutput",
    "subprocess.getstatusoutput",
    "pty.spawn",
    "eval",
    "exec",
}
PROCESS_CALLS = {
    "subprocess.run",
    "subprocess.Popen",
    "subprocess.call",
    "subprocess.check_call",
    "subprocess.check_output",
}


@pytest.mark.parametrize("module", sorted(SOURCE.glob("*.py")), ids=lambda p: p.name)
def test_no_shell_anywhere(module: Path) -> None:
    text = module.read_text()
    parsed = ast.parse(text)
    for name, call in _calls(parsed):
        assert name not in SHELL_CALLS, f"{module.name}:{call.lineno}: {name}"
        for keyword in call.keywords:
            if keyword.arg == "shell":
                pytest.fail(f"{module.name}:{call.lineno}: shell= passed to {name}")
        if name in PROCESS_CALLS:
            first = call.args[0] if call.args else None
            assert not isinstance(first, (ast.Constant, ast.JoinedStr, ast.BinOp)), (
                f"{module.name}:{call.lineno}: {name} with a command string"
            )
    assert "shell=True" not in text
    assert "import ctypes" not in text  # nothing is ever loaded


# ---------------------------------------------------------------------------------------
# shell syntax in names and paths

EVIL = "$(touch PWNED-a)`touch PWNED-b`;touch PWNED-c;|touch PWNED-d&"


@pytest.fixture
def ext_nopath(fixtures: Fixtures, tmp_path: Path) -> Path:
    out = tmp_path / "nopath" / fixtures.ext_foo.name
    out.parent.mkdir()
    shutil.copy2(fixtures.ext_foo, out)
    relabel.patchelf.find.cache_clear()
    subprocess.run([relabel.patchelf.find(), "--remove-rpath", str(out)], check=True)
    return out


def test_shell_syntax_in_member_names_and_paths(
    fixtures: Fixtures, ext_nopath: Path, tmp_path: Path
) -> None:
    libs = tmp_path / f"libs {EVIL}"
    libs.mkdir()
    shutil.copy2(fixtures.libfoo, libs / "libfoo.so.1")
    # A file that is not an extension but needs libfoo: patched (and named) as it is.
    member = f"pkg/{EVIL.replace('|', '_')}.so"
    wheel = make_wheel(tmp_path / f"in {EVIL}", {EXT: ext_nopath, member: ext_nopath})
    out = tmp_path / f"out {EVIL}"
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    for args in (
        ("show", "--library-dir", libs, wheel),
        ("repair", "--library-dir", libs, "-w", out, wheel),
    ):
        proc = run_relabel(*args, cwd=cwd, tmpdir=tmp_path / "tmp")
        assert proc.returncode in (0, 1), proc.stderr
    [result] = out.iterdir()
    with zipfile.ZipFile(result) as zf:
        assert member in zf.namelist()
    assert not list(tmp_path.rglob("PWNED*"))
    assert tree(cwd) == []


# ---------------------------------------------------------------------------------------
# private temporary directories


def test_temporary_directories_are_private(
    fixtures: Fixtures, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    created: list[tuple[str, int]] = []
    real_mkdtemp = tempfile.mkdtemp

    def recording_mkdtemp(*args: object, **kwargs: object) -> str:
        path = real_mkdtemp(*args, **kwargs)  # type: ignore[call-overload]
        created.append((path, stat.S_IMODE(Path(path).stat().st_mode)))
        return str(path)

    monkeypatch.setattr(tempfile, "mkdtemp", recording_mkdtemp)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    wheel = make_wheel(tmp_path / "in", {EXT: fixtures.ext_foo})
    analyze(wheel, Options())
    repair(wheel, tmp_path / "out", Options())
    assert len(created) >= 2
    for path, mode in created:
        assert mode == 0o700, (path, oct(mode))
        assert not Path(path).exists()


# ---------------------------------------------------------------------------------------
# nothing from the wheel runs

CONSTRUCTOR = """
#include <fcntl.h>
#include <unistd.h>
__attribute__((constructor)) static void evil(void) {{
    int fd = open("{marker}", O_CREAT | O_WRONLY, 0644);
    if (fd >= 0) close(fd);
}}
int foo(void) {{ return 42; }}
"""
MAIN = """
#include <fcntl.h>
#include <unistd.h>
int main(void) {{ int fd = open("{marker}", O_CREAT | O_WRONLY, 0644); return fd < 0; }}
"""


@pytest.fixture
def evil(fixtures: Fixtures, tmp_path: Path) -> dict[str, Path]:
    """Files that leave a marker in ``markers/`` if anything ever runs them."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed")
    markers = tmp_path / "markers"
    markers.mkdir()
    src = tmp_path / "evil-src"
    src.mkdir()
    (src / "lib.c").write_text(CONSTRUCTOR.format(marker=markers / "library-constructor"))
    (src / "main.c").write_text(MAIN.format(marker=markers / "executable"))
    lib = src / "libfoo.so.1"  # takes libfoo's place: _foo needs it, relabel grafts it
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-Wl,-soname,libfoo.so.1", "-o", str(lib), "lib.c"],
        cwd=src,
        check=True,
    )
    exe = src / "evil-exe"
    subprocess.run(["gcc", "-o", str(exe), "main.c"], cwd=src, check=True)
    # _foo finds its libfoo.so.1 beside itself, inside the wheel ($ORIGIN)
    ext = src / fixtures.ext_foo.name
    shutil.copy2(fixtures.ext_foo, ext)
    relabel.patchelf.find.cache_clear()
    subprocess.run([relabel.patchelf.find(), "--set-rpath", "$ORIGIN", str(ext)], check=True)
    return {"markers": markers, "lib": lib, "exe": exe, "ext": ext}


def test_evil_files_do_leave_markers_when_run(evil: dict[str, Path]) -> None:
    """The control case: the markers do appear when the files are run."""
    code = f"import ctypes; ctypes.CDLL({str(evil['lib'])!r})"
    subprocess.run([sys.executable, "-c", code], check=True)
    subprocess.run([str(evil["exe"])], check=True)
    assert sorted(p.name for p in evil["markers"].iterdir()) == [
        "executable",
        "library-constructor",
    ]
    assert ctypes  # imported by the test only, never by relabel


@pytest.mark.not_installable(reason="loading this wheel runs its code: that is the test")
def test_nothing_from_the_wheel_is_run(evil: dict[str, Path], tmp_path: Path) -> None:
    markers = evil["markers"]
    python_marker = f"open({str(markers / 'python')!r}, 'w').close()\n"
    files: dict[str, bytes | Path] = {
        EXT: evil["ext"],
        "pkg/libfoo.so.1": evil["lib"],  # needed by _foo, found through $ORIGIN
        "pkg/__init__.py": python_marker.encode(),
        "zzz-evil.pth": f"import os; {python_marker}".encode(),
        "setup.py": python_marker.encode(),
        "pkg/__main__.py": python_marker.encode(),
        "demo-1.0.data/scripts/tool": f"#!/bin/sh\ntouch {markers / 'script'}\n".encode(),
        "demo-1.0.data/scripts/evil-exe": evil["exe"],
    }
    wheel = make_wheel(tmp_path / "in", files)
    out = tmp_path / "out"
    for args in (
        ("show", wheel),
        ("repair", "-w", out, wheel),
        ("repair", "--include", evil["lib"], "-w", tmp_path / "out2", wheel),
    ):
        proc = run_relabel(*args, tmpdir=tmp_path / "tmp", cwd=tmp_path, check_installed=False)
        assert proc.returncode in (0, 1), proc.stderr
    # and in-process, where a stray import would run inside the test itself
    analyze(wheel, Options())
    repair(wheel, tmp_path / "out3", Options(include=(str(evil["lib"]),)))
    assert list(markers.iterdir()) == []


def test_nothing_outside_scratch_and_output_changes(
    fixtures: Fixtures, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def snapshot(paths: list[Path]) -> dict[str, tuple[str, int, int]]:
        return {
            str(p): (
                hashlib.sha256(p.read_bytes()).hexdigest(),
                p.stat().st_mtime_ns,
                p.stat().st_mode,
            )
            for p in paths
        }

    wheel = make_wheel(
        tmp_path / "in", {EXT: fixtures.ext_foo, f"pkg/_bar{EXT_SUFFIX}": fixtures.ext_bar}
    )
    watched = [wheel, *sorted(p for p in fixtures.libdir.rglob("*") if p.is_file())]
    before = snapshot(watched)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "scratch"))
    (tmp_path / "scratch").mkdir()
    result = repair(wheel, tmp_path / "out", Options())
    assert grafted(result.output)
    assert snapshot(watched) == before
    assert tree(cwd) == []
    assert tree(tmp_path / "scratch") == []
    assert tree(tmp_path / "in") == [wheel.name]
