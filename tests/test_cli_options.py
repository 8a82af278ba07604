"""How ``--plat``, ``AUDITWHEEL_PLAT``, ``--json`` errors and ``-w`` behave, as a user or a CI
script sees them (subprocesses, real exit codes, real wheels from the gcc fixtures)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest
from packaging.utils import parse_wheel_filename

from . import installed
from .conftest import EXT_SUFFIX, Fixtures, make_wheel


def relabel(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AUDITWHEEL_")}
    environ.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "relabel", *args],
        capture_output=True,
        text=True,
        env=environ,
        check=False,
    )
    if proc.returncode == 0:
        installed.check_command(args, proc.stdout, proc.stderr, environ)
    return proc


def platforms(wheel: Path) -> set[str]:
    return {t.platform for t in parse_wheel_filename(wheel.name)[3]}


@pytest.fixture
def foo_wheel(fixtures: Fixtures, tmp_path: Path) -> Path:
    """Meets linux as it is; a repair (grafting libfoo) reaches manylinux_2_5."""
    return make_wheel(tmp_path / "in", {f"_foo{EXT_SUFFIX}": fixtures.ext_foo}, name="foo")


@pytest.fixture
def new_wheel(fixtures: Fixtures, tmp_path: Path) -> Path:
    """Needs GLIBC_2.34: manylinux_2_34 as it is, nothing older."""
    return make_wheel(tmp_path / "in", {f"_newsym{EXT_SUFFIX}": fixtures.ext_new}, name="new")


# -- --plat validated like the backend's plat ---------------------------------------------
@pytest.mark.parametrize("command", ["show", "repair"])
def test_unknown_plat_is_bad_input_with_did_you_mean(
    command: str, foo_wheel: Path, tmp_path: Path
) -> None:
    out = tmp_path / "wheelhouse"
    extra = ["-w", str(out)] if command == "repair" else []
    proc = relabel(command, *extra, "--plat", "manylinx2014_x86_64", str(foo_wheel))
    assert proc.returncode == 2
    assert proc.stderr.startswith(
        "relabel: error: --plat manylinx2014_x86_64: unknown platform policy"
    )
    assert "did you mean 'manylinux2014_x86_64'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    assert not out.exists()


def test_plat_for_a_name_without_architecture_is_accepted(new_wheel: Path) -> None:
    proc = relabel("show", "--plat", "manylinux_2_34", str(new_wheel))
    assert proc.returncode == 0, proc.stderr
    assert (
        "judged against:              manylinux_2_34_x86_64 (--plat manylinux_2_34):"
        " met as it is" in proc.stdout
    )


def test_text_report_names_the_target(foo_wheel: Path, new_wheel: Path) -> None:
    auto = relabel("show", str(foo_wheel))
    assert "  judged against:              any manylinux/musllinux policy (auto)\n" in auto.stdout
    reach = relabel("show", "--plat", "manylinux2014_x86_64", str(foo_wheel))
    assert reach.returncode == 1
    assert (
        "  judged against:              manylinux_2_17_x86_64 (--plat manylinux2014_x86_64):"
        " not met as it is; `relabel repair` reaches it\n" in reach.stdout
    )
    out = relabel("show", "--plat", "manylinux_2_17_x86_64", str(new_wheel))
    assert out.returncode == 1
    assert "manylinux_2_17_x86_64 (--plat): out of reach even after a repair" in out.stdout
    other = relabel("show", "--plat", "manylinux2014_aarch64", str(new_wheel))
    assert other.returncode == 1
    assert "manylinux2014_aarch64 (--plat): not a policy for this wheel" in other.stdout


# -- AUDITWHEEL_PLAT, as the manylinux images set it ---------------------------------------
def test_auditwheel_plat_is_the_default_target_of_repair(
    foo_wheel: Path, new_wheel: Path, tmp_path: Path
) -> None:
    env = {"AUDITWHEEL_PLAT": "manylinux2014_x86_64"}
    ok = relabel("repair", "-w", str(tmp_path / "a"), "--only-plat", str(foo_wheel), env=env)
    assert ok.returncode == 0, ok.stderr
    [wheel] = (tmp_path / "a").iterdir()
    assert platforms(wheel) == {"manylinux2014_x86_64", "manylinux_2_17_x86_64"}
    # a wheel that cannot meet the image's policy fails, as with auditwheel
    bad = relabel("repair", "-w", str(tmp_path / "b"), str(new_wheel), env=env)
    assert bad.returncode == 1
    assert "cannot be made manylinux_2_17_x86_64 compliant" in bad.stderr
    assert not (tmp_path / "b").exists()
    # --plat wins over the environment
    auto = relabel("repair", "-w", str(tmp_path / "c"), "--plat", "auto", str(new_wheel), env=env)
    assert auto.returncode == 0, auto.stderr
    [wheel] = (tmp_path / "c").iterdir()
    assert platforms(wheel) == {"manylinux_2_34_x86_64"}


def test_auditwheel_plat_tags_like_auditwheel(foo_wheel: Path, tmp_path: Path) -> None:
    pytest.importorskip("auditwheel")
    env = {
        "AUDITWHEEL_PLAT": "manylinux_2_28_x86_64",
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
    }
    theirs = subprocess.run(
        [sys.executable, "-m", "auditwheel", "repair", "-w", str(tmp_path / "aw"), str(foo_wheel)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        check=False,
    )
    assert theirs.returncode == 0, theirs.stderr
    ours = relabel("repair", "-w", str(tmp_path / "rl"), str(foo_wheel), env=env)
    assert ours.returncode == 0, ours.stderr
    [aw] = (tmp_path / "aw").iterdir()
    [rl] = (tmp_path / "rl").iterdir()
    assert rl.name == aw.name
    # the best policy, then the one the image asked for
    assert platforms(rl) == {"manylinux1_x86_64", "manylinux_2_5_x86_64", "manylinux_2_28_x86_64"}


def test_auditwheel_plat_is_the_default_target_of_show(foo_wheel: Path) -> None:
    env = {"AUDITWHEEL_PLAT": "manylinux_2_28_x86_64"}
    proc = relabel("show", str(foo_wheel), env=env)
    assert proc.returncode == 1
    assert (
        "judged against:              manylinux_2_28_x86_64 (AUDITWHEEL_PLAT): not met as it is"
        in proc.stdout
    )
    data = json.loads(relabel("show", "--json", str(foo_wheel), env=env).stdout)
    assert data["target"] == "manylinux_2_28_x86_64"


def test_empty_auditwheel_plat_is_ignored(new_wheel: Path) -> None:
    proc = relabel("show", str(new_wheel), env={"AUDITWHEEL_PLAT": ""})
    assert proc.returncode == 0
    assert "(auto)" in proc.stdout


def test_bad_auditwheel_plat_is_named_when_used(new_wheel: Path) -> None:
    env = {"AUDITWHEEL_PLAT": "manylinux_2_18_x86_64"}
    proc = relabel("show", str(new_wheel), env=env)
    assert proc.returncode == 2
    assert proc.stderr.startswith(
        "relabel: error: AUDITWHEEL_PLAT manylinux_2_18_x86_64: unknown platform policy"
    )
    assert "did you mean 'manylinux_2_17_x86_64' or 'manylinux_2_24_x86_64'?" in proc.stderr
    # an explicit --plat does not read it
    assert relabel("show", "--plat", "auto", str(new_wheel), env=env).returncode == 0


# -- show --json failures answer in JSON ---------------------------------------------------
def test_json_error_on_a_broken_wheel(tmp_path: Path) -> None:
    broken = tmp_path / "demo-1.0-cp311-cp311-linux_x86_64.whl"
    broken.write_bytes(b"PK\x03\x04 truncated")
    proc = relabel("show", "--json", str(broken))
    assert proc.returncode == 2
    data = json.loads(proc.stdout)
    assert data["version"] == 1
    assert data["wheel"] == broken.name
    assert data["error"].startswith(f"{broken.name}: ")
    assert proc.stderr.startswith("relabel: error: ")


def test_json_error_on_a_bad_plat(foo_wheel: Path) -> None:
    proc = relabel("show", "--json", "--plat", "manylinux_2_18_x86_64", str(foo_wheel))
    assert proc.returncode == 2
    data = json.loads(proc.stdout)
    assert data["error"].startswith("--plat manylinux_2_18_x86_64: unknown platform policy")


def test_json_error_on_arguments_argparse_refuses() -> None:
    proc = relabel("show", "--json")
    assert proc.returncode == 2
    assert json.loads(proc.stdout) == {
        "version": 1,
        "error": "the following arguments are required: WHEEL",
    }
    assert "relabel show: error: the following arguments are required: WHEEL" in proc.stderr


def test_json_error_on_a_pure_wheel_keeps_exit_1(tmp_path: Path) -> None:
    pure = make_wheel(tmp_path, {"demo/__init__.py": b""}, tag="py3-none-any", purelib=True)
    proc = relabel("show", "--json", str(pure))
    assert proc.returncode == 1  # as auditwheel: not a platform wheel
    assert "no ELF file" in json.loads(proc.stdout)["error"]
    allowed = relabel("show", "--json", "--allow-pure-python-wheel", str(pure))
    assert allowed.returncode == 0
    assert json.loads(allowed.stdout) == {"version": 1, "wheel": pure.name, "pure": True}


# -- -w is created only when something is written there ------------------------------------
def test_failed_repair_leaves_no_output_directory(tmp_path: Path) -> None:
    broken = tmp_path / "demo-1.0-cp311-cp311-linux_x86_64.whl"
    broken.write_bytes(b"PK\x03\x04 truncated")
    out = tmp_path / "new" / "wheelhouse"
    proc = relabel("repair", "-w", str(out), str(broken))
    assert proc.returncode == 2
    assert not (tmp_path / "new").exists()


def test_existing_output_directory_and_earlier_wheels_stay(foo_wheel: Path, tmp_path: Path) -> None:
    broken = tmp_path / "demo-2.0-cp311-cp311-linux_x86_64.whl"
    broken.write_bytes(b"PK\x03\x04 truncated")
    out = tmp_path / "wheelhouse"
    proc = relabel("repair", "-w", str(out), str(foo_wheel), str(broken))
    assert proc.returncode == 2
    [written] = out.iterdir()
    assert "manylinux_2_5_x86_64" in platforms(written)
    kept = tmp_path / "kept"
    kept.mkdir()
    assert relabel("repair", "-w", str(kept), str(broken)).returncode == 2
    assert kept.is_dir()


def test_zip_level_message_names_no_type(foo_wheel: Path) -> None:
    proc = relabel("repair", "-z", "12", str(foo_wheel))
    assert proc.returncode == 2
    assert "expected a compression level from 0 to 9, got '12'" in proc.stderr
    assert "str" not in proc.stderr.split("error:")[-1]
