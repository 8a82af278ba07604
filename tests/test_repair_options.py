"""Every repair option on real gcc-built wheels; results installed and run in fresh venvs."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from relabel.elf import read_elf
from relabel.errors import LibraryNotFoundError
from relabel.repair import Options, repair

from .conftest import (
    EXT_SUFFIX,
    MAPS_CODE,
    PY_TAG,
    Fixtures,
    install,
    install_and_run,
    make_wheel,
)


def names(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as zf:
        return zf.namelist()


def member_elf(wheel: Path, member: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    path = tmp_path / Path(member).name
    with zipfile.ZipFile(wheel) as zf:
        path.write_bytes(zf.read(member))
    return read_elf(path)


def test_include_grafts_a_dlopened_library_under_its_own_soname(
    fixtures: Fixtures, tmp_path: Path
) -> None:
    wheel = make_wheel(
        tmp_path / "in", {f"pkg/_dl{EXT_SUFFIX}": fixtures.ext_dl, "pkg/__init__.py": b""}
    )
    # No DT_NEEDED reveals libfoo: without include nothing is grafted.
    plain = repair(wheel, tmp_path / "plain", Options()).output
    assert not [n for n in names(plain) if ".libs/" in n]
    out = repair(
        wheel,
        tmp_path / "out",
        Options(include=("libfoo.so.1",), library_dirs=(str(fixtures.libdir),)),
    ).output
    assert "demo.libs/libfoo.so.1" in names(out)
    ext = member_elf(out, f"pkg/_dl{EXT_SUFFIX}", tmp_path)
    assert ext.rpath == ("$ORIGIN/../demo.libs",)
    # dlopen("libfoo.so.1") from the extension now finds the grafted copy, even though the
    # directory it came from is still on disk (it is on no search path of the venv).
    output = install_and_run(
        tmp_path / "venv", out, MAPS_CODE.format(module="pkg._dl", lib="libfoo")
    )
    assert "VALUE 42" in output
    mapped = [line for line in output.splitlines() if line.startswith("MAPPED")]
    assert mapped and all("site-packages/demo.libs/libfoo.so.1" in line for line in mapped)


def test_include_by_path_and_missing_include(fixtures: Fixtures, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "in", {f"_dl{EXT_SUFFIX}": fixtures.ext_dl})
    out = repair(wheel, tmp_path / "out", Options(include=(str(fixtures.libfoo),))).output
    assert "demo.libs/libfoo.so.1" in names(out)
    with pytest.raises(LibraryNotFoundError, match=r"libnothere\.so\.9"):
        repair(wheel, tmp_path / "bad", Options(include=("libnothere.so.9",)))


def test_exclude_keeps_the_whole_subtree_out(fixtures: Fixtures, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "in", {f"_bar{EXT_SUFFIX}": fixtures.ext_bar})
    out = repair(wheel, tmp_path / "out", Options(exclude=("libbar.so.*",))).output
    assert not [n for n in names(out) if ".libs/" in n]  # libfoo (needed by libbar) too
    assert "libbar.so.1" in member_elf(out, f"_bar{EXT_SUFFIX}", tmp_path).needed


def test_exclude_by_path(fixtures: Fixtures, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "in", {f"_foo{EXT_SUFFIX}": fixtures.ext_foo})
    out = repair(wheel, tmp_path / "out", Options(exclude=(f"{fixtures.libdir}/*",))).output
    assert not [n for n in names(out) if ".libs/" in n]


def test_skip_scan_leaves_members_alone(fixtures: Fixtures, tmp_path: Path) -> None:
    wheel = make_wheel(
        tmp_path / "in",
        {f"_plain{EXT_SUFFIX}": fixtures.ext_plain, "pkg/firmware/blob.so": fixtures.ext_foo},
    )
    out = repair(wheel, tmp_path / "out", Options(skip_scan=("pkg/firmware/*",))).output
    assert not [n for n in names(out) if ".libs/" in n]
    with zipfile.ZipFile(out) as zf, zipfile.ZipFile(wheel) as original:
        assert zf.read("pkg/firmware/blob.so") == original.read("pkg/firmware/blob.so")


def test_lib_sdir_update_tags_and_compression(fixtures: Fixtures, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "in", {f"_foo{EXT_SUFFIX}": fixtures.ext_foo})
    out = repair(
        wheel,
        tmp_path / "out",
        Options(lib_sdir=".vendored", update_tags=False, zip_compression_level=0),
    ).output
    assert out.name == wheel.name
    assert any(n.startswith("demo.vendored/libfoo-") for n in names(out))
    with zipfile.ZipFile(out) as zf:
        wheel_text = zf.read("demo-1.0.dist-info/WHEEL").decode()
        lib = next(i for i in zf.infolist() if i.filename.startswith("demo.vendored/"))
        assert lib.compress_size >= lib.file_size  # level 0: stored deflate blocks
    assert f"Tag: {PY_TAG}-{PY_TAG}-linux_x86_64" in wheel_text


def test_strip_removes_symbols(fixtures: Fixtures, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "in", {f"_foo{EXT_SUFFIX}": fixtures.ext_foo})
    normal = repair(wheel, tmp_path / "a", Options()).output
    stripped = repair(wheel, tmp_path / "b", Options(strip=True)).output

    def size(path: Path) -> int:
        with zipfile.ZipFile(path) as zf:
            return sum(i.file_size for i in zf.infolist() if i.filename.endswith(".so.1"))

    assert size(stripped) < size(normal)
    assert "VALUE 42" in install_and_run(
        tmp_path / "venv", stripped, MAPS_CODE.format(module="_foo", lib="libfoo")
    )


def test_ldpaths_are_searched_instead_of_the_system_directories(
    fixtures: Fixtures, tmp_path: Path
) -> None:
    wheel = make_wheel(tmp_path / "in", {f"_dl{EXT_SUFFIX}": fixtures.ext_dl})
    with pytest.raises(LibraryNotFoundError):
        repair(wheel, tmp_path / "a", Options(include=("libfoo.so.1",)))
    out = repair(
        wheel, tmp_path / "b", Options(include=("libfoo.so.1",), ldpaths=(str(fixtures.libdir),))
    ).output
    assert "demo.libs/libfoo.so.1" in names(out)


def test_executable_in_scripts_moves_next_to_its_libraries(
    fixtures: Fixtures, tmp_path: Path
) -> None:
    wheel = make_wheel(tmp_path / "in", {"demo-1.0.data/scripts/showfoo": fixtures.exe_foo})
    out = repair(wheel, tmp_path / "out", Options()).output
    members = names(out)
    assert "demo.scripts/showfoo" in members
    assert "demo-1.0.data/scripts/showfoo" in members
    exe = member_elf(out, "demo.scripts/showfoo", tmp_path)
    assert exe.rpath == ("$ORIGIN/../demo.libs",)
    install(tmp_path / "venv", out)
    # The launcher execs the real binary, which finds libfoo in demo.libs by its RPATH.
    proc = subprocess.run(
        [str(tmp_path / "venv" / "bin" / "showfoo")], capture_output=True, text=True, check=False
    )
    assert proc.stdout.strip() == "foo=42", proc.stderr


def test_sbom_lists_grafted_libraries_with_hashes(fixtures: Fixtures, tmp_path: Path) -> None:
    wheel = make_wheel(
        tmp_path / "in",
        {f"_foo{EXT_SUFFIX}": fixtures.ext_foo, f"_bz2v{EXT_SUFFIX}": fixtures.ext_bz2},
    )
    out = repair(wheel, tmp_path / "out", Options()).output
    with zipfile.ZipFile(out) as zf:
        data = json.loads(zf.read("demo-1.0.dist-info/sboms/relabel.cdx.json"))
        grafted = {n: zf.read(n) for n in zf.namelist() if n.startswith("demo.libs/")}
    assert data["bomFormat"] == "CycloneDX"
    assert data["metadata"]["component"]["purl"].endswith(f"file_name={out.name}")
    libs = {c["properties"][0]["value"]: c for c in data["components"][1:]}
    assert set(libs) == set(grafted)
    foo = next(c for m, c in libs.items() if "libfoo" in m)
    assert foo["hashes"][0]["content"] == hashlib.sha256(fixtures.libfoo.read_bytes()).hexdigest()
    assert "purl" not in foo  # built by the test, owned by no package
    bz2 = next(c for m, c in libs.items() if "libbz2" in m)
    if shutil.which("dpkg-query"):
        assert bz2["purl"].startswith("pkg:deb/")
        assert "libbz2" in bz2["name"]
    # Reproducible: the same repair gives the same SBOM bytes.
    again = repair(wheel, tmp_path / "again", Options()).output
    assert again.read_bytes() == out.read_bytes()
