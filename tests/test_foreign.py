"""Wheels of another architecture or C library, audited and repaired on this machine.

Nothing is executed: an aarch64 or musl wheel is read, resolved (configured directories,
a sysroot) and patched like any other, and checked against auditwheel where it agrees.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from relabel import report
from relabel.elf import read_elf
from relabel.repair import Options, analyze, repair

from .conftest import Foreign, make_wheel, platforms

A64_SYSROOT = Path("/usr/aarch64-linux-gnu")


def need(path: Path | None) -> Path:
    if path is None:
        pytest.skip("the cross or musl compiler is not installed")
    return path


def auditwheel_show(wheel: Path) -> dict[str, object]:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run(
        [sys.executable, "-m", "auditwheel", "show", "--json", str(wheel)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    data: dict[str, object] = json.loads(proc.stdout)
    return data


def test_aarch64_wheel_audits_and_repairs_on_this_host(foreign: Foreign, tmp_path: Path) -> None:
    ext = need(foreign.a64_ext)
    wheel = make_wheel(tmp_path / "in", {f"pkg/{ext.name}": ext}, tag="cp311-cp311-linux_aarch64")
    analysis = analyze(wheel, Options())
    assert analysis.arch == "aarch64"
    data = report.as_json(analysis)
    assert data["repair_tag"] == "manylinux_2_17_aarch64"
    assert data["external_libs"] == {"libfoo.so.1": str(foreign.a64_libdir / "libfoo.so.1")}
    if pytest.importorskip("auditwheel"):
        theirs = auditwheel_show(wheel)
        assert theirs["overall_tag"] == data["overall_tag"]
        assert theirs["sym_tag"] == data["sym_tag"]
        assert set(theirs["external_libs"]) == set(data["external_libs"])  # type: ignore[arg-type]
    out = repair(wheel, tmp_path / "out", Options()).output
    assert platforms(out) == {"manylinux_2_17_aarch64", "manylinux2014_aarch64"}
    with zipfile.ZipFile(out) as zf:
        (tmp_path / "x.so").write_bytes(zf.read(f"pkg/{ext.name}"))
        grafted = [n for n in zf.namelist() if n.startswith("demo.libs/")]
    assert len(grafted) == 1
    patched = read_elf(tmp_path / "x.so")
    assert patched.arch == "aarch64"
    assert patched.rpath == ("$ORIGIN/../demo.libs",)


def test_foreign_library_not_found_says_where_it_looked(foreign: Foreign, tmp_path: Path) -> None:
    ext = need(foreign.a64_ext_nopath)
    wheel = make_wheel(tmp_path / "in", {ext.name: ext}, tag="cp311-cp311-linux_aarch64")
    analysis = analyze(wheel, Options())
    assert analysis.audit is not None
    [missing] = [f for f in analysis.audit.findings() if f.kind == "library-not-found"]
    assert missing.library == "libfoo.so.1"
    assert missing.searched  # every directory tried is reported
    found = analyze(wheel, Options(library_dirs=(str(foreign.a64_libdir),)))
    assert found.audit is not None
    assert found.audit.repairable.policy.name == "manylinux_2_17_aarch64"


def test_sysroot_resolves_system_libraries(foreign: Foreign, tmp_path: Path) -> None:
    ext = need(foreign.a64_ext_libc_extra)
    if not (A64_SYSROOT / "lib" / "libBrokenLocale.so.1").exists():
        pytest.skip("no aarch64 sysroot")
    wheel = make_wheel(tmp_path / "in", {ext.name: ext}, tag="cp311-cp311-linux_aarch64")
    without = report.as_json(analyze(wheel, Options()))
    assert without["external_libs"] == {"libBrokenLocale.so.1": None}
    with_root = report.as_json(analyze(wheel, Options(sysroot=str(A64_SYSROOT))))
    path = with_root["external_libs"]["libBrokenLocale.so.1"]  # type: ignore[index]
    assert path is not None and path.startswith(str(A64_SYSROOT.resolve()))


def test_wheel_tag_and_elf_architecture_must_agree(foreign: Foreign, tmp_path: Path) -> None:
    ext = need(foreign.a64_ext)
    wheel = make_wheel(tmp_path / "in", {ext.name: ext}, tag="cp311-cp311-linux_x86_64")
    from relabel.errors import WheelError

    with pytest.raises(WheelError, match="built for aarch64"):
        analyze(wheel, Options())


def test_musl_wheel_gets_musllinux_policies(foreign: Foreign, tmp_path: Path) -> None:
    ext = need(foreign.musl_ext)
    wheel = make_wheel(tmp_path / "in", {ext.name: ext})
    analysis = analyze(wheel, Options())
    assert analysis.libc == "musl"
    assert analysis.audit is not None
    names = [v.policy.name for v in analysis.audit.verdicts]
    assert names == ["musllinux_1_1_x86_64", "musllinux_1_2_x86_64", "linux_x86_64"]
    assert analysis.audit.repairable.policy.name == "musllinux_1_1_x86_64"
    if pytest.importorskip("auditwheel"):
        # On a glibc host auditwheel evaluates only the newest musllinux policy (it would
        # ask the host's musl for its version); relabel evaluates them all.
        theirs = auditwheel_show(wheel)
        assert analysis.audit.verdict("musllinux_1_2_x86_64").external.keys() == set(
            theirs["external_libs"]  # type: ignore[arg-type]
        )
    out = repair(wheel, tmp_path / "out", Options()).output
    assert platforms(out) == {"musllinux_1_1_x86_64"}
