"""``relabel show`` / ``relabel repair`` as a user runs them (subprocess, real exit codes)."""

from __future__ import annotations

import json
from pathlib import Path

from .cli_support import relabel
from .conftest import EXT_SUFFIX, Fixtures, make_wheel, platforms


def test_show_text_explains_and_exits_1_when_not_compliant(
    fixtures: Fixtures, tmp_path: Path
) -> None:
    wheel = make_wheel(tmp_path, {f"_foo{EXT_SUFFIX}": fixtures.ext_foo})
    proc = relabel("show", str(wheel))
    assert proc.returncode == 1, proc.stderr
    assert "as it is, the wheel meets:   linux_x86_64" in proc.stdout
    assert "after `relabel repair`:      manylinux_2_5_x86_64" in proc.stdout
    assert f"libfoo.so.1 => {fixtures.libfoo}" in proc.stdout


def test_show_exits_0_when_compliant(fixtures: Fixtures, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, {f"_plain{EXT_SUFFIX}": fixtures.ext_plain})
    assert relabel("show", str(wheel)).returncode == 0
    assert relabel("show", "--plat", "manylinux2014", str(wheel)).returncode == 0


def test_show_json_schema(fixtures: Fixtures, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, {f"_newsym{EXT_SUFFIX}": fixtures.ext_new})
    proc = relabel("show", "--json", str(wheel))
    data = json.loads(proc.stdout)
    assert {
        "version",
        "wheel",
        "pure",
        "overall_tag",
        "sym_tag",
        "external_libs",
        "versioned_symbols",
        "repair_tag",
        "findings",
    } <= set(data)
    assert data["overall_tag"] == data["repair_tag"] == "manylinux_2_34_x86_64"
    assert "GLIBC_2.34" in data["versioned_symbols"]["libc.so.6"]
    finding = next(f for f in data["findings"] if f["symbol"] == "pthread_create")
    assert finding == {
        "file": f"_newsym{EXT_SUFFIX}",
        "kind": "symbol-version",
        "library": "libc.so.6",
        "symbol": "pthread_create",
        "version": "GLIBC_2.34",
        "blocks": finding["blocks"],
    }
    assert "manylinux_2_17_x86_64" in finding["blocks"]


def test_bad_input_exits_2_without_traceback(tmp_path: Path) -> None:
    broken = tmp_path / "demo-1.0-py3-none-any.whl"
    broken.write_bytes(b"PK\x03\x04 truncated")
    proc = relabel("show", str(broken))
    assert proc.returncode == 2
    assert proc.stderr.startswith("relabel: error: demo-1.0-py3-none-any.whl:")
    assert "Traceback" not in proc.stderr


def test_repair_writes_to_wheel_dir(fixtures: Fixtures, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "in", {f"_foo{EXT_SUFFIX}": fixtures.ext_foo})
    proc = relabel("repair", "-w", str(tmp_path / "wh"), str(wheel))
    assert proc.returncode == 0, proc.stderr
    [out] = (tmp_path / "wh").iterdir()
    assert "manylinux_2_5_x86_64" in platforms(out)
    assert "grafted libfoo.so.1" in proc.stdout


def test_repair_unreachable_plat_exits_1_listing_blockers(
    fixtures: Fixtures, tmp_path: Path
) -> None:
    wheel = make_wheel(tmp_path / "in", {f"_newsym{EXT_SUFFIX}": fixtures.ext_new})
    proc = relabel(
        "repair", "--plat", "manylinux2014_x86_64", "-w", str(tmp_path / "wh"), str(wheel)
    )
    assert proc.returncode == 1
    assert "pthread_create@GLIBC_2.34" in proc.stderr
    assert not (tmp_path / "wh").exists()
