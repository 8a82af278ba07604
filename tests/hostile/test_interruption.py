"""Killing relabel at any moment: the output directory holds no new file or the whole wheel.

The output is written to an unnamed file (O_TMPFILE) that is linked into the directory only
when complete, so even SIGKILL leaves nothing half-written. SIGTERM and SIGINT unwind (the
command turns SIGTERM into an exception, as Python does with SIGINT), which also removes the
scratch directory; after SIGKILL only the scratch directory, outside the output, may stay.

``RELABEL_INTERRUPT_RUNS`` (default 4) sets how many delays each signal is tried at.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from relabel import archive, cli
from relabel.errors import OutputError
from tests import installed
from tests.conftest import EXT_SUFFIX, Fixtures, make_wheel
from tests.hooks_support import write_pyproject

from .support import assert_valid_wheel, clean_env, default_signals, start_relabel, tree

RUNS = int(os.environ.get("RELABEL_INTERRUPT_RUNS", "4") or 4)


# ---------------------------------------------------------------------------------------
# atomic_output itself


def test_unfinished_output_is_invisible(tmp_path: Path) -> None:
    final = tmp_path / "out" / "demo-1.0-py3-none-any.whl"
    with archive.atomic_output(final) as stream:
        stream.write(b"x" * 100_000)
        stream.flush()
        hidden = tree(final.parent)
        if sys.platform == "linux":
            assert hidden == []  # an unnamed file: O_TMPFILE
        else:  # pragma: no cover
            assert [h.endswith(".part") and h.startswith(".") for h in hidden] == [True]
    assert final.read_bytes() == b"x" * 100_000
    assert final.stat().st_mode & 0o777 == 0o644
    assert tree(final.parent) == [final.name]


@pytest.mark.parametrize("error", [ValueError, KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize("unnamed", [True, False], ids=["O_TMPFILE", "part-file"])
def test_failed_output_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: type[BaseException], unnamed: bool
) -> None:
    if not unnamed:
        monkeypatch.setattr(archive.output._Destination, "_open_unnamed", lambda self: -1)
    final = tmp_path / "demo-1.0-py3-none-any.whl"
    with pytest.raises(error), archive.atomic_output(final) as stream:
        stream.write(b"partial")
        stream.flush()
        assert len(tree(tmp_path)) == (0 if unnamed else 1)
        raise error
    assert tree(tmp_path) == []


@pytest.mark.parametrize("unnamed", [True, False], ids=["O_TMPFILE", "part-file"])
def test_output_replaces_an_older_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unnamed: bool
) -> None:
    if not unnamed:
        monkeypatch.setattr(archive.output._Destination, "_open_unnamed", lambda self: -1)
    final = tmp_path / "demo-1.0-py3-none-any.whl"
    final.write_bytes(b"old")
    with archive.atomic_output(final) as stream:
        stream.write(b"new")
    assert final.read_bytes() == b"new"
    assert tree(tmp_path) == [final.name]


def test_output_directory_that_cannot_be_created(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError) as excinfo, archive.atomic_output(tmp_path / "file" / "x.whl"):
        pass
    assert excinfo.value.path == str(tmp_path / "file" / "x.whl")


# ---------------------------------------------------------------------------------------
# the command, killed


@dataclass(frozen=True)
class Big:
    wheel: Path
    libdir: Path
    seconds: float  # how long an uninterrupted repair takes
    name: str  # the repaired wheel's name


@pytest.fixture(scope="module")
def big(fixtures: Fixtures, tmp_path_factory: pytest.TempPathFactory) -> Big:
    """A wheel whose repair takes a second or so: a 40 MiB library of random bytes to graft
    (deflated block by block) and 40 MiB of random data members to copy and check."""
    root = tmp_path_factory.mktemp("big")
    rng = random.Random(20240607)
    (root / "blob.bin").write_bytes(rng.randbytes(40 << 20))
    (root / "big.c").write_text(
        # pushsection/popsection: without them foo() would land in .rodata, not executable
        '__asm__(".pushsection .rodata\\n.global big_blob\\nbig_blob:\\n'
        '.incbin \\"blob.bin\\"\\n.popsection\\n");\n'
        "int foo(void) { return 42; }\n"
    )
    libdir = root / "lib"
    libdir.mkdir()
    subprocess.run(
        [
            "gcc",
            "-shared",
            "-fPIC",
            "-Wl,-soname,libfoo.so.1",
            "-o",
            str(libdir / "libfoo.so.1"),
            "big.c",
        ],
        cwd=root,
        check=True,
    )
    ext = root / fixtures.ext_foo.name
    shutil.copy2(fixtures.ext_foo, ext)
    files: dict[str, bytes | Path] = {f"pkg/_foo{EXT_SUFFIX}": ext}
    for index in range(4):
        files[f"pkg/data{index}.bin"] = rng.randbytes(10 << 20)
    wheel = make_wheel(root / "in", files)
    # One uninterrupted run: how long it takes, and what it writes.
    out, scratch = root / "control-out", root / "control-tmp"
    started = time.monotonic()
    args = ["repair", "--library-dir", str(libdir), "-w", str(out), str(wheel)]
    proc = start_relabel(*args, tmpdir=scratch)
    stdout, stderr = proc.communicate(timeout=300)
    seconds = time.monotonic() - started
    assert proc.returncode == 0, stderr
    installed.check_command(args, stdout, stderr)
    [result] = out.iterdir()
    assert_valid_wheel(result)
    assert tree(scratch) == []
    return Big(wheel, libdir, seconds, result.name)


def _delays(big: Big, sig: int) -> list[float]:
    """Spread over the whole run (start-up, reading, patching, writing, naming) and a little
    past its end, with jitter."""
    rng = random.Random(f"relabel-interrupt-{int(sig)}")
    return [1.1 * big.seconds * (i + rng.random()) / RUNS for i in range(RUNS)]


@pytest.mark.parametrize(
    "sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name
)
def test_killed_at_any_moment(big: Big, tmp_path: Path, sig: signal.Signals) -> None:
    outcomes = []
    for run, delay in enumerate(_delays(big, sig)):
        out, scratch = tmp_path / f"out{run}", tmp_path / f"tmp{run}"
        out.mkdir()
        (out / "older-0.9-py3-none-any.whl").write_bytes(b"an older build, left alone")
        proc = start_relabel(
            "repair", "--library-dir", big.libdir, "-w", out, big.wheel, tmpdir=scratch
        )
        time.sleep(delay)
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=300)
        assert "Traceback" not in stderr or sig == signal.SIGINT, stderr
        files = tree(out)
        assert (out / "older-0.9-py3-none-any.whl").read_bytes() == b"an older build, left alone"
        new = [f for f in files if f != "older-0.9-py3-none-any.whl"]
        # nothing new, or exactly the finished wheel: never a partial or hidden file
        assert new in ([], [big.name]), (delay, files)
        if new:
            assert_valid_wheel(out / big.name)
        if sig != signal.SIGKILL:
            assert tree(scratch) == [], (delay, tree(scratch))
            assert proc.returncode in (0, 128 + sig, -sig, 1), (proc.returncode, stderr)
        outcomes.append((round(delay, 2), proc.returncode, bool(new)))
    print(f"{sig.name}: (delay, status, wheel written) {outcomes}")
    # The delays are spread over the run: some run must have been cut short, or this test
    # only watched finished repairs.
    assert any(status != 0 and not written for _, status, written in outcomes), outcomes


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_interrupted_without_o_tmpfile_removes_its_part_file(
    big: Big, tmp_path: Path, sig: signal.Signals
) -> None:
    """Where O_TMPFILE is missing the output has a hidden name while it is written; the
    signal unwinds and removes it."""
    code = (
        "import sys\n"
        "from relabel import archive, cli\n"
        "archive.output._Destination._open_unnamed = lambda self: -1\n"
        "sys.exit(cli.main(sys.argv[1:]))\n"
    )
    rng = random.Random(f"relabel-part-{int(sig)}")
    interrupted = 0
    for run in range(RUNS):
        out, scratch = tmp_path / f"out{run}", tmp_path / f"tmp{run}"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                code,
                "repair",
                "--library-dir",
                str(big.libdir),
                "-w",
                str(out),
                str(big.wheel),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(scratch),
            preexec_fn=default_signals,  # noqa: PLW1509 - no threads in the test process here
        )
        # while the output file is being written: wait for the part file to appear
        part = _wait_for_part_file(proc, out, big.name)
        assert part is not None, f"no part file was seen in {out}: {proc.communicate()}"
        time.sleep(0.05 * rng.random())
        proc.send_signal(sig)
        proc.communicate(timeout=300)
        assert not (out / part).exists(), tree(out)
        assert tree(out) in ([], [big.name]), tree(out)
        assert tree(scratch) == []
        interrupted += tree(out) == []
    assert interrupted, "every run finished before the signal: nothing was interrupted"


def _wait_for_part_file(proc: subprocess.Popen[str], out: Path, name: str) -> str | None:
    """The hidden ``.NAME.*.part`` file, as soon as it is in ``out``; None if the process
    ended (or a minute passed) first."""
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        parts = [f for f in tree(out) if f.startswith(f".{name}.") and f.endswith(".part")]
        if parts:
            return parts[0]
        time.sleep(0.002)
    return None


def test_unusable_temporary_directory_is_one_message(
    fixtures: Fixtures,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    wheel = make_wheel(tmp_path / "in", {f"pkg/_foo{EXT_SUFFIX}": fixtures.ext_foo})
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setattr(tempfile, "tempdir", str(blocker / "tmp"))
    assert cli.main(["repair", "-w", str(tmp_path / "out"), str(wheel)]) == 2
    message = capsys.readouterr().err
    assert message.startswith("relabel: error: cannot create a temporary directory in")
    assert "TMPDIR" in message
    assert tree(tmp_path / "out") == []


def test_failure_leaves_no_temporary_directory(fixtures: Fixtures, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "in", {f"pkg/_newsym{EXT_SUFFIX}": fixtures.ext_new})
    scratch = tmp_path / "tmp"
    proc = start_relabel(
        "repair", "--plat", "manylinux2014", "-w", tmp_path / "out", wheel, tmpdir=scratch
    )
    proc.communicate(timeout=300)
    assert proc.returncode == 1
    assert tree(scratch) == []
    assert tree(tmp_path / "out") == []


# ---------------------------------------------------------------------------------------
# the backend, interrupted while the inner backend builds

SLOW_BACKEND = """\
import pathlib, time

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    pathlib.Path(wheel_directory, "half-built.whl").write_bytes(b"not finished")
    pathlib.Path({started!r}).touch()
    time.sleep(120)
    raise RuntimeError("never reached")
"""


def _interrupt_backend(tmp_path: Path, sig: signal.Signals) -> Path:
    root = tmp_path / "project"
    (root / "_backend").mkdir(parents=True)
    started = tmp_path / "started"
    (root / "_backend" / "slow_backend.py").write_text(SLOW_BACKEND.format(started=str(started)))
    write_pyproject(root, {"build-backend": "slow_backend", "backend-path": ["_backend"]})
    scratch = tmp_path / "tmp"
    dist = tmp_path / "dist"
    code = "import sys\nfrom relabel import build_meta\nbuild_meta.build_wheel(sys.argv[1])\n"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(dist)],
        cwd=root,
        env=clean_env(scratch),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=default_signals,  # noqa: PLW1509 - no threads in the test process here
    )
    deadline = time.monotonic() + 60
    while not started.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert started.exists(), proc.communicate()
    proc.send_signal(sig)
    proc.communicate(timeout=60)
    assert tree(dist) == []
    return scratch


def test_backend_interrupted_by_sigint_cleans_up(tmp_path: Path) -> None:
    assert tree(_interrupt_backend(tmp_path, signal.SIGINT)) == []


def test_backend_terminated_by_sigterm_cleans_up(tmp_path: Path) -> None:
    assert tree(_interrupt_backend(tmp_path, signal.SIGTERM)) == []
