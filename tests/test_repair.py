"""The whole pipeline on real gcc-built wheels, proved by importing the result."""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from pathlib import Path

import pytest

from relabel.archive import WheelFile
from relabel.elf import read_elf
from relabel.errors import PolicyError
from relabel.repair import Options, analyze, repair

from .conftest import (
    EXT_SUFFIX,
    MAPS_CODE,
    PY_TAG,
    Fixtures,
    install_and_run,
    make_wheel,
    platforms,
    record_hash,
)


def members(wheel: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(wheel) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def check_record(wheel: Path) -> None:
    files = members(wheel)
    record = next(v for k, v in files.items() if k.endswith(".dist-info/RECORD")).decode()
    rows = {line.split(",")[0]: line.split(",")[1:] for line in record.splitlines() if line}
    assert set(rows) == set(files)
    for name, (digest, size) in rows.items():
        if name.endswith("RECORD"):
            assert digest == size == ""
            continue
        assert digest == record_hash(files[name]), name
        assert size == str(len(files[name])), name


def test_graft_one_library_and_import_it(fixtures: Fixtures, tmp_path: Path) -> None:
    wheel = make_wheel(
        tmp_path / "in", {f"demo/_foo{EXT_SUFFIX}": fixtures.ext_foo, "demo/__init__.py": b""}
    )
    result = repair(wheel, tmp_path / "out", Options())
    out = result.output
    assert platforms(out) == {"manylinux_2_5_x86_64", "manylinux1_x86_64"}
    short = hashlib.sha256(fixtures.libfoo.read_bytes()).hexdigest()[:8]
    grafted = f"demo.libs/libfoo-{short}.so.1"
    files = members(out)
    assert grafted in files
    check_record(out)
    with WheelFile(out) as wf:
        assert set(wf.wheel_tags) == {f"{PY_TAG}-{PY_TAG}-{p}" for p in platforms(out)}
    # The extension now needs the grafted name and finds it through its new RPATH.
    scratch = tmp_path / "x.so"
    scratch.write_bytes(files[f"demo/_foo{EXT_SUFFIX}"])
    info = read_elf(scratch)
    assert f"libfoo-{short}.so.1" in info.needed
    assert "libfoo.so.1" not in info.needed
    assert info.rpath == ("$ORIGIN/../demo.libs",)
    lib = tmp_path / "lib.so"
    lib.write_bytes(files[grafted])
    assert read_elf(lib).soname == f"libfoo-{short}.so.1"
    # The original directory is still on disk, so prove the grafted copy is what loads.
    output = install_and_run(
        tmp_path / "venv", out, MAPS_CODE.format(module="demo._foo", lib="libfoo")
    )
    assert "VALUE 42" in output
    mapped = [line for line in output.splitlines() if line.startswith("MAPPED")]
    assert mapped
    assert all("site-packages/demo.libs/libfoo-" in line for line in mapped)


def test_dependency_chain_is_grafted_and_relinked(fixtures: Fixtures, tmp_path: Path) -> None:
    libs = tmp_path / "libs"
    libs.mkdir()
    for lib in (fixtures.libfoo, fixtures.libbar):
        shutil.copy(lib, libs)
    wheel = make_wheel(tmp_path / "in", {f"_bar{EXT_SUFFIX}": fixtures.ext_bar})
    out = repair(wheel, tmp_path / "out", Options()).output
    names = [n for n in members(out) if n.startswith("demo.libs/")]
    assert sorted(n.split("/")[1].split("-")[0] for n in names) == ["libbar", "libfoo"]
    bar = next(n for n in names if "libbar" in n)
    foo = next(n for n in names if "libfoo" in n).split("/")[1]
    scratch = tmp_path / "bar.so"
    scratch.write_bytes(members(out)[bar])
    info = read_elf(scratch)
    assert info.needed.count(foo) == 1
    assert info.rpath == ("$ORIGIN",)
    output = install_and_run(tmp_path / "venv", out, MAPS_CODE.format(module="_bar", lib="libbar"))
    assert "VALUE 43" in output
    mapped = [line for line in output.splitlines() if line.startswith("MAPPED")]
    assert mapped  # libbar was loaded, and from the wheel
    assert all("demo.libs" in line for line in mapped)


def test_grafted_library_caps_the_tag(fixtures: Fixtures, tmp_path: Path) -> None:
    # A libfoo.so.1 that needs GLIBC_2.34, found first because library-dirs are searched
    # before the extension's DT_RUNPATH.
    needs_new = tmp_path / "new"
    needs_new.mkdir()
    shutil.copy(fixtures.libnew, needs_new / "libfoo.so.1")
    wheel = make_wheel(tmp_path / "in", {f"_foo{EXT_SUFFIX}": fixtures.ext_foo})
    assert analyze(wheel, Options()).audit.repairable.policy.name == "manylinux_2_5_x86_64"  # type: ignore[union-attr]
    analysis = analyze(wheel, Options(library_dirs=(str(needs_new),)))
    assert analysis.audit is not None
    assert analysis.audit.repairable.policy.name == "manylinux_2_34_x86_64"
    blocked = {f.symbol for f in analysis.audit.findings() if f.kind == "symbol-version"}
    assert "pthread_create" in blocked


def test_explicit_plat_below_best_adds_both_tags(fixtures: Fixtures, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "in", {f"_plain{EXT_SUFFIX}": fixtures.ext_plain})
    both = repair(wheel, tmp_path / "a", Options(plat="manylinux2014")).output
    assert {"manylinux_2_5_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"} <= platforms(
        both
    )
    only = repair(wheel, tmp_path / "b", Options(plat="manylinux_2_17", only_plat=True)).output
    assert platforms(only) == {"manylinux_2_17_x86_64", "manylinux2014_x86_64"}


def test_unreachable_explicit_plat_lists_every_blocker(fixtures: Fixtures, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "in", {f"_newsym{EXT_SUFFIX}": fixtures.ext_new})
    with pytest.raises(PolicyError) as info:
        repair(wheel, tmp_path / "out", Options(plat="manylinux_2_17_x86_64"))
    text = str(info.value)
    assert "pthread_create@GLIBC_2.34" in text
    assert f"_newsym{EXT_SUFFIX}" in text
    assert not list((tmp_path / "out").iterdir())


def test_auto_keeps_linux_tag_when_nothing_is_reachable(fixtures: Fixtures, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "in", {f"_isa{EXT_SUFFIX}": fixtures.ext_isa})
    result = repair(wheel, tmp_path / "out", Options())
    assert result.plan is not None and result.plan.keeps_linux
    assert result.output.read_bytes() == wheel.read_bytes()
    assert any(f.kind == "isa-level" for f in result.plan.unmet)
    with pytest.raises(PolicyError, match="x86-64-v3"):
        repair(wheel, tmp_path / "strict", Options(strict=True))
    relaxed = repair(wheel, tmp_path / "noisa", Options(isa_check=False)).output
    assert "manylinux_2_5_x86_64" in platforms(relaxed)


def test_blacklisted_symbol_blocks_old_policies(fixtures: Fixtures, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "in", {f"_zbad{EXT_SUFFIX}": fixtures.ext_blacklist})
    analysis = analyze(wheel, Options())
    assert analysis.audit is not None
    found = [f for f in analysis.audit.findings() if f.kind == "blacklisted-symbol"]
    assert found and found[0].symbol == "gzflags" and found[0].library == "libz.so.1"
    assert analysis.audit.repairable.policy.name not in found[0].blocks


def test_library_already_inside_the_wheel_stays(fixtures: Fixtures, tmp_path: Path) -> None:
    wheel = make_wheel(
        tmp_path / "in",
        {
            "pkg/libbar.so.1": fixtures.libbar,  # RPATH $ORIGIN finds libfoo beside it
            "pkg/libfoo.so.1": fixtures.libfoo,
        },
    )
    result = repair(wheel, tmp_path / "out", Options())
    assert result.plan is not None
    assert result.plan.grafts == ()
    assert not any(n.startswith("demo.libs/") for n in members(result.output))
    assert "manylinux_2_5_x86_64" in platforms(result.output)


def test_repair_is_idempotent_and_reproducible(fixtures: Fixtures, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "in", {f"_bar{EXT_SUFFIX}": fixtures.ext_bar})
    first = repair(wheel, tmp_path / "one", Options()).output
    again = repair(wheel, tmp_path / "two", Options()).output
    assert first.read_bytes() == again.read_bytes()
    second = repair(first, tmp_path / "three", Options()).output
    assert second.name == first.name
    assert second.read_bytes() == first.read_bytes()


def test_source_date_epoch_fixes_timestamps(
    fixtures: Fixtures, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    wheel = make_wheel(tmp_path / "in", {f"_foo{EXT_SUFFIX}": fixtures.ext_foo, "a.txt": b"x"})
    out = repair(wheel, tmp_path / "out", Options()).output
    with zipfile.ZipFile(out) as zf:
        assert {i.date_time for i in zf.infolist()} == {(2023, 11, 14, 22, 13, 20)}


def test_unchanged_members_are_copied_not_recompressed(fixtures: Fixtures, tmp_path: Path) -> None:
    blob = bytes(range(256)) * 4096
    wheel = make_wheel(
        tmp_path / "in", {f"_foo{EXT_SUFFIX}": fixtures.ext_foo, "pkg/data.bin": blob}
    )
    out = repair(wheel, tmp_path / "out", Options()).output

    def raw(path: Path, name: str) -> bytes:
        with zipfile.ZipFile(path) as zf:
            info = zf.getinfo(name)
        with path.open("rb") as stream:
            stream.seek(info.header_offset + 26)
            name_len = int.from_bytes(stream.read(2), "little")
            extra_len = int.from_bytes(stream.read(2), "little")
            stream.seek(info.header_offset + 30 + name_len + extra_len)
            return stream.read(info.compress_size)

    assert raw(out, "pkg/data.bin") == raw(wheel, "pkg/data.bin")
    with zipfile.ZipFile(out) as zf:
        assert zf.testzip() is None


def test_pure_wheel_passes_through_byte_identical(tmp_path: Path) -> None:
    wheel = make_wheel(
        tmp_path / "in", {"pkg/__init__.py": b"x = 1\n"}, tag="py3-none-any", purelib=True
    )
    result = repair(wheel, tmp_path / "out", Options())
    assert result.analysis.pure
    assert result.output.read_bytes() == wheel.read_bytes()


def test_every_elf_file_is_parsed_once(
    fixtures: Fixtures, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import collections
    import os

    from relabel import elf, resolve
    from relabel import repair as repair_module

    counts: collections.Counter[str] = collections.Counter()
    original = elf.read_elf

    def counting(path, display=None):  # type: ignore[no-untyped-def]
        counts[os.path.realpath(path)] += 1
        return original(path, display)

    monkeypatch.setattr(resolve, "read_elf", counting)
    monkeypatch.setattr(repair_module, "read_elf", counting)
    wheel = make_wheel(
        tmp_path / "in",
        {f"_bar{EXT_SUFFIX}": fixtures.ext_bar, f"_foo{EXT_SUFFIX}": fixtures.ext_foo},
    )
    repair(wheel, tmp_path / "out", Options())
    assert counts[str(fixtures.libfoo.resolve())] == 1  # needed by libbar and by _foo
    assert counts[str(fixtures.libbar.resolve())] == 1
    assert counts and max(counts.values()) == 1


@pytest.mark.parametrize("mischief", ["fails", "truncates"])
def test_patchelf_output_read_from_its_pipe_is_checked(
    fixtures: Fixtures, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mischief: str
) -> None:
    # patchelf's output goes straight to the compressor; a patchelf that fails after
    # writing part of it, or stops early with status 0, leaves no wheel behind.
    from relabel import patchelf
    from relabel.errors import PatchelfError

    from .hostile.support import fake_tool

    real = patchelf.find()
    ending = 'echo "patchelf: boom" >&2; exit 3' if mischief == "fails" else "exit 0"
    tool = fake_tool(
        tmp_path / "bin" / "patchelf",
        f'if [ "$1" = "--version" ]; then exec {real} --version; fi\n'
        f'{real} "$@" | head -c 1000\n{ending}\n',
    )
    monkeypatch.setenv("RELABEL_PATCHELF", str(tool))
    patchelf.find.cache_clear()
    try:
        wheel = make_wheel(tmp_path / "in", {f"demo/_foo{EXT_SUFFIX}": fixtures.ext_foo})
        with pytest.raises(PatchelfError) as excinfo:
            repair(wheel, tmp_path / "out", Options())
    finally:
        patchelf.find.cache_clear()
    message = str(excinfo.value)
    if mischief == "fails":
        assert "patchelf failed on " in message
        assert "boom" in excinfo.value.stderr
    else:
        assert "patchelf wrote an incomplete file for " in message
    assert list((tmp_path / "out").iterdir()) == []


def test_without_dev_stdout_patched_files_go_through_disk(
    fixtures: Fixtures, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A build chroot may lack /dev or /proc; patchelf then writes files as it always did.
    from relabel import patchelf

    wheel = make_wheel(tmp_path / "in", {f"demo/_foo{EXT_SUFFIX}": fixtures.ext_foo})
    piped = repair(wheel, tmp_path / "piped", Options()).output
    monkeypatch.setattr(patchelf, "_STDOUT", str(tmp_path / "no-such-dev" / "stdout"))
    on_disk = repair(wheel, tmp_path / "disk", Options()).output
    assert on_disk.read_bytes() == piped.read_bytes()
    check_record(on_disk)
