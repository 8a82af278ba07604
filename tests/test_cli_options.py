"""How ``--plat``, ``AUDITWHEEL_PLAT``, ``--json`` errors and ``-w`` behave, as a user or a CI
script sees them (subprocesses, real exit codes, real wheels from the gcc fixtures)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .cli_support import relabel
from .conftest import EXT_SUFFIX, PY_TAG, Fixtures, make_wheel, platforms


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


# -- a repair never replaces its input ------------------------------------------------------
def unchanged(directory: Path) -> dict[str, tuple[bytes, int, int]]:
    """What a directory holds, down to each file's inode and modification time."""
    return {
        p.name: (p.read_bytes(), p.stat().st_ino, p.stat().st_mtime_ns) for p in directory.iterdir()
    }


def assert_refused_in_place(
    directory: Path, *args: str, shown: Path, cwd: Path | None = None
) -> None:
    """``relabel repair ARGS`` refuses to write over its input wheel (named as ``shown``),
    in one paragraph, and leaves ``directory`` as it was."""
    before = unchanged(directory)
    proc = relabel("repair", *args, cwd=cwd)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.startswith("relabel: error: cannot write the repaired wheel as ")
    assert f"that is the input wheel {shown} itself" in proc.stderr
    assert "Choose another output directory (-w/--wheel-dir); nothing was written." in (proc.stderr)
    assert proc.stderr.count("\n") == 1, "one paragraph"
    assert unchanged(directory) == before


def test_repair_without_new_tags_into_the_input_directory_is_refused(foo_wheel: Path) -> None:
    # the repaired wheel keeps the input's name: auditwheel writes it over the input
    here = foo_wheel.parent
    assert_refused_in_place(
        here, "--no-update-tags", "-w", str(here), str(foo_wheel), shown=foo_wheel
    )


def test_the_input_directory_is_recognised_however_it_is_spelled(
    foo_wheel: Path, tmp_path: Path
) -> None:
    here, name = foo_wheel.parent, foo_wheel.name
    (tmp_path / "link").symlink_to(here)
    through_link = ("--no-update-tags", "-w", "../link", name)
    assert_refused_in_place(here, *through_link, shown=Path(name), cwd=here)
    relative = ("--no-update-tags", "-w", ".", name)
    assert_refused_in_place(here, *relative, shown=Path(name), cwd=tmp_path / "link")
    # the input named through a link to a file in the output directory
    (tmp_path / "elsewhere").mkdir()
    alias = tmp_path / "elsewhere" / name
    alias.symlink_to(foo_wheel)
    assert_refused_in_place(here, "--no-update-tags", "-w", str(here), str(alias), shown=alias)


def test_a_hard_link_in_the_output_directory_is_not_the_input(
    foo_wheel: Path, tmp_path: Path
) -> None:
    out = tmp_path / "wheelhouse"
    out.mkdir()
    os.link(foo_wheel, out / foo_wheel.name)  # Path.hardlink_to is 3.10+
    before = foo_wheel.read_bytes()
    proc = relabel("repair", "--no-update-tags", "-w", str(out), str(foo_wheel))
    assert proc.returncode == 0, proc.stderr
    assert foo_wheel.read_bytes() == before  # the new wheel took the name, not the file
    assert (out / foo_wheel.name).read_bytes() != before


def test_an_already_compliant_wheel_is_not_rewritten_in_place(
    fixtures: Fixtures, tmp_path: Path
) -> None:
    wheel = make_wheel(
        tmp_path / "in",
        {f"_plain{EXT_SUFFIX}": fixtures.ext_plain},
        name="plain",
        tag=f"{PY_TAG}-{PY_TAG}-manylinux1_x86_64.manylinux_2_5_x86_64",
    )
    assert_refused_in_place(wheel.parent, "-w", str(wheel.parent), str(wheel), shown=wheel)
    # into another directory it is repaired to the same name
    elsewhere = relabel("repair", "-w", str(tmp_path / "out"), str(wheel))
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert [p.name for p in (tmp_path / "out").iterdir()] == [wheel.name]


def test_a_repaired_wheel_repaired_again_in_its_own_directory_stays_as_it_is(
    foo_wheel: Path, tmp_path: Path
) -> None:
    # `relabel repair -w dist dist/*.whl` run twice: the second repair would write the
    # very same bytes, so the input is kept (not rewritten) and the run succeeds
    dist = tmp_path / "dist"
    first = relabel("repair", "-w", str(dist), str(foo_wheel))
    assert first.returncode == 0, first.stderr
    [repaired] = dist.iterdir()
    before = unchanged(dist)
    again = relabel("repair", "-w", str(dist), str(repaired))
    assert again.returncode == 0, again.stderr
    assert repaired.name in again.stdout
    assert unchanged(dist) == before


def test_wheels_passed_through_unchanged_stay_in_place(foo_wheel: Path, tmp_path: Path) -> None:
    pure = make_wheel(foo_wheel.parent, {"demo/__init__.py": b""}, tag="py3-none-any", purelib=True)
    before = unchanged(foo_wheel.parent)
    kept = relabel("repair", "--allow-pure-python-wheel", "-w", str(pure.parent), str(pure))
    assert kept.returncode == 0, kept.stderr
    assert "no ELF files; wheel passed through unchanged" in kept.stdout
    linux = relabel(
        "repair",
        "--plat",
        "linux_x86_64",
        "--only-plat",
        "-w",
        str(foo_wheel.parent),
        str(foo_wheel),
    )
    assert linux.returncode == 0, linux.stderr
    assert f"kept its linux tag; written as {foo_wheel.name}" in linux.stdout
    assert unchanged(foo_wheel.parent) == before
