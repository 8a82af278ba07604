"""relabel.elf on real files compiled by gcc."""

from __future__ import annotations

from pathlib import Path

import pytest

from relabel.elf import looks_like_elf, read_elf
from relabel.errors import ElfError

from .conftest import Fixtures


def test_library_record(fixtures: Fixtures) -> None:
    info = read_elf(fixtures.libbar)
    assert info.arch == "x86_64"
    assert info.elf_class == 64
    assert info.soname == "libbar.so.1"
    assert "libfoo.so.1" in info.needed
    assert info.rpath == ("$ORIGIN",)
    assert info.runpath == ()
    assert not info.is_python_extension
    assert info.isa_level == 1


def test_runpath_is_read_separately(fixtures: Fixtures) -> None:
    info = read_elf(fixtures.libbar_runpath)
    assert info.runpath == ("$ORIGIN/..",)
    assert info.rpath == ()


def test_python_extension_detected(fixtures: Fixtures) -> None:
    info = read_elf(fixtures.ext_foo)
    assert info.python_init == "PyInit__foo"
    assert info.is_python_extension


def test_versioned_symbols_name_the_symbol(fixtures: Fixtures) -> None:
    info = read_elf(fixtures.libnew)
    needs = {(s.name, s.version, s.library) for s in info.undefined if s.version}
    assert ("pthread_create", "GLIBC_2.34", "libc.so.6") in needs
    assert ("libc.so.6", "GLIBC_2.34") in set(info.symbol_versions())


def test_cxx_versions(fixtures: Fixtures) -> None:
    versions = {
        v for lib, v in read_elf(fixtures.libcxx).symbol_versions() if lib == "libstdc++.so.6"
    }
    assert any(v.startswith("GLIBCXX_3.4.") for v in versions)


def test_isa_level_note(fixtures: Fixtures) -> None:
    assert read_elf(fixtures.libisa).isa_level == 3


def test_weak_symbols_are_marked(fixtures: Fixtures) -> None:
    weak = [s for s in read_elf(fixtures.libfoo).undefined if s.weak]
    # gcc's crt objects reference __cxa_finalize / __gmon_start__ weakly
    assert {s.name for s in weak} & {"__cxa_finalize", "__gmon_start__"}


def test_not_an_elf(tmp_path: Path) -> None:
    path = tmp_path / "fake.so"
    path.write_bytes(b"this is not an ELF file at all" * 4)
    assert not looks_like_elf(path.read_bytes())
    with pytest.raises(ElfError, match=r"fake\.so"):
        read_elf(path)


@pytest.mark.parametrize("keep", [16, 64, 200])
def test_truncated_elf(fixtures: Fixtures, tmp_path: Path, keep: int) -> None:
    path = tmp_path / "cut.so"
    path.write_bytes(fixtures.libfoo.read_bytes()[:keep])
    with pytest.raises(ElfError, match=r"cut\.so: unreadable ELF file"):
        read_elf(path)


def test_display_name_used_in_errors(tmp_path: Path) -> None:
    path = tmp_path / "x"
    path.write_bytes(b"\x7fELF" + b"\xff" * 60)
    with pytest.raises(ElfError, match=r"pkg/_x\.so"):
        read_elf(path, display="pkg/_x.so")
