"""ELF files that are cut short, garbled, or not what the wheel says they are.

``read_elf`` returns an ElfInfo or raises ElfError, quickly and without allocating what a
lying size field asks for; the pipeline turns that into one message naming the member.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from relabel.elf import ElfInfo, read_elf
from relabel.errors import ElfError, RelabelError, WheelError
from relabel.repair import Options, analyze, repair
from tests.conftest import EXT_SUFFIX, Fixtures, make_wheel

from .support import (
    assert_clean_failure,
    assert_valid_wheel,
    grafted,
    run_relabel,
    section_field,
    set_header,
    set_section,
    time_limit,
)

EXT = f"pkg/_foo{EXT_SUFFIX}"


def parse(data: bytes, tmp_path: Path, name: str = "garbled.so") -> ElfInfo | ElfError:
    """read_elf on ``data``: the record, or the ElfError; anything else fails the test."""
    path = tmp_path / name
    path.write_bytes(data)
    with time_limit(10):
        try:
            return read_elf(path, display=f"pkg/{name}")
        except ElfError as exc:
            assert exc.path == f"pkg/{name}"
            assert str(exc).startswith(f"pkg/{name}: unreadable ELF file: ")
            assert "skip-scan" in str(exc)
            return exc


def rejected(data: bytes, tmp_path: Path, fragment: str = "") -> ElfError:
    result = parse(data, tmp_path)
    assert isinstance(result, ElfError), result
    assert fragment in result.message, result.message
    return result


# ---------------------------------------------------------------------------------------
# truncated and garbled headers


@pytest.mark.parametrize("keep", [0, 3, 4, 5, 16, 40, 52, 63, 64, 200, 1000, -1])
def test_truncated(fixtures: Fixtures, tmp_path: Path, keep: int) -> None:
    data = fixtures.libfoo.read_bytes()
    rejected(data[:keep], tmp_path)


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("EI_CLASS", 0, "invalid ELF identification"),
        ("EI_CLASS", 3, "invalid ELF identification"),
        ("EI_DATA", 0, "invalid ELF identification"),
        ("EI_DATA", 0xFF, "invalid ELF identification"),
        ("e_shentsize", 0, "section headers are 0 bytes each"),
        ("e_shentsize", 0xFFFF, "section headers are 65535 bytes each"),
        ("e_shoff", 1 << 62, "starts past the end of the file"),
        ("e_shoff", 0xFFFFFFFFFFFFFFFF, "starts past the end of the file"),
        ("e_shnum", 0xFFFF, "runs past the end of the file"),
        ("e_shstrndx", 0xFFFE, "section name table index 65534 is out of range"),
        ("e_phentsize", 0, "program headers are 0 bytes each"),
        ("e_phoff", 1 << 62, "program header table"),
        ("e_phnum", 0xFFFE, "program header table (65534 entries)"),
    ],
)
def test_garbage_in_the_header(
    fixtures: Fixtures, tmp_path: Path, field: str, value: int, fragment: str
) -> None:
    data = set_header(fixtures.libfoo.read_bytes(), field, value)
    rejected(data, tmp_path, fragment)


def test_extended_section_count_that_lies(fixtures: Fixtures, tmp_path: Path) -> None:
    # e_shnum == 0 means "the count is in section 0's sh_size" (gABI extended numbering).
    data = set_header(fixtures.libfoo.read_bytes(), "e_shnum", 0)
    shoff = struct.unpack_from("<Q", data, 40)[0]
    data = data[: shoff + 32] + struct.pack("<Q", 1 << 60) + data[shoff + 40 :]
    rejected(data, tmp_path, "runs past the end of the file")


def test_extended_segment_count_with_zero_entry_size_does_not_loop(
    fixtures: Fixtures, tmp_path: Path
) -> None:
    # PN_XNUM puts the program header count in section 0's sh_info; with e_phoff = 0 and
    # e_phentsize = 0 every "segment" is the ELF header itself, 4 billion times over.
    data = fixtures.libfoo.read_bytes()
    for field, value in (("e_phnum", 0xFFFF), ("e_phentsize", 0), ("e_phoff", 0)):
        data = set_header(data, field, value)
    shoff = struct.unpack_from("<Q", data, 40)[0]
    data = data[: shoff + 44] + struct.pack("<I", 0xFFFFFFFF) + data[shoff + 48 :]
    rejected(data, tmp_path, "program headers are 0 bytes each")


# ---------------------------------------------------------------------------------------
# garbled sections


#: sizes that are whole numbers of entries, and still lie
HUGE = 48 << 56


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ((".dynsym", "sh_size", HUGE), ".dynsym runs past the end of the file"),
        ((".dynsym", "sh_offset", 1 << 40), ".dynsym runs past the end of the file"),
        ((".dynstr", "sh_size", HUGE), "runs past the end of the file"),
        ((".dynstr", "sh_flags", 0x800 | 0x2), "is marked compressed"),
        ((".dynsym", "sh_link", 0), "links to section 0, which does not exist"),
        ((".dynsym", "sh_link", 0xFFFFFF), "which does not exist"),
        ((".gnu.version", "sh_size", HUGE), ".gnu.version runs past the end"),
        ((".gnu.version_r", "sh_size", HUGE), ".gnu.version_r runs past the end"),
        ((".gnu.version_r", "sh_link", 0xFFFFFF), "which does not exist"),
        ((".dynamic", "sh_size", HUGE), ".dynamic runs past the end"),
    ],
)
def test_section_sizes_and_links_that_lie(
    fixtures: Fixtures, tmp_path: Path, change: tuple[str, str, int], fragment: str
) -> None:
    # Before relabel read sections itself, a lying sh_size made pyelftools ask Python for
    # 2**62 bytes (MemoryError, or the machine swapping).
    data = set_section(fixtures.libnew.read_bytes(), *change)
    rejected(data, tmp_path, fragment)


def test_section_linked_to_something_that_is_not_a_string_table(
    fixtures: Fixtures, tmp_path: Path
) -> None:
    data = fixtures.libnew.read_bytes()
    index = _section_index(data, ".dynsym")
    data = set_section(data, ".gnu.version_r", "sh_link", index)
    rejected(data, tmp_path, "not a string table")


def test_version_needs_counted_in_billions_do_not_loop(fixtures: Fixtures, tmp_path: Path) -> None:
    # pyelftools follows vn_next sh_info times; with vn_next = 0 that is the same entry
    # 4 billion times. The loader stops at vn_next = 0, and so does relabel.
    original = fixtures.libnew.read_bytes()
    data = set_section(original, ".gnu.version_r", "sh_info", 0xFFFFFFFF)
    at = section_field(data, ".gnu.version_r", "sh_offset")
    data = data[: at + 12] + struct.pack("<I", 0) + data[at + 16 :]
    result = parse(data, tmp_path)
    assert isinstance(result, ElfInfo), result
    assert result.version_needs == read_elf(fixtures.libnew).version_needs[:1]


def test_version_need_pointing_outside_its_section(fixtures: Fixtures, tmp_path: Path) -> None:
    data = fixtures.libnew.read_bytes()
    at = section_field(data, ".gnu.version_r", "sh_offset")
    data = data[: at + 8] + struct.pack("<I", 0x7FFFFFF0) + data[at + 12 :]  # vn_aux
    rejected(data, tmp_path, ".gnu.version_r has an entry outside the section")


def test_needed_name_outside_the_string_table(fixtures: Fixtures, tmp_path: Path) -> None:
    data = fixtures.libnew.read_bytes()
    at = section_field(data, ".dynamic", "sh_offset")
    size = section_field(data, ".dynamic", "sh_size")
    for entry in range(at, at + size, 16):
        tag = struct.unpack_from("<q", data, entry)[0]
        if tag == 1:  # DT_NEEDED
            data = data[: entry + 8] + struct.pack("<Q", 1 << 40) + data[entry + 16 :]
            break
    else:
        pytest.fail("libnew has no DT_NEEDED")
    rejected(data, tmp_path, "a name lies outside .dynstr")


def test_symbol_names_that_overlap_without_end(fixtures: Fixtures, tmp_path: Path) -> None:
    # Every symbol points at the same NUL-less stretch: without a budget that would make
    # one copy of a long name per symbol.
    data = bytearray(fixtures.libnew.read_bytes())
    strtab = section_field(bytes(data), ".dynstr", "sh_offset")
    size = section_field(bytes(data), ".dynstr", "sh_size")
    data[strtab + 1 : strtab + size - 1] = b"A" * (size - 2)
    result = parse(bytes(data), tmp_path)
    assert isinstance(result, ElfInfo), result
    # every name is a tail of the one stretch: no name runs past the end of .dynstr
    names = [*result.needed, *(s.name for s in result.undefined)]
    names += [n for library, versions in result.version_needs for n in (library, *versions)]
    assert result.needed, result
    for name in names:
        assert set(name) == {"A"}, name
        assert len(name) < size, len(name)


def _section_index(data: bytes, name: str) -> int:
    from .support import sections

    headers = sections(data)
    shoff = struct.unpack_from("<Q", data, 40)[0]
    return (headers[name] - shoff) // 64


# ---------------------------------------------------------------------------------------
# files that are not what they claim: other classes, other kinds, not ELF at all


@dataclass(frozen=True)
class Odd:
    i386: Path | None  # a 32-bit x86 shared library
    x32: Path | None  # EM_X86_64 in a 32-bit ELF class (the x32 ABI)
    relocatable: Path  # a .o file
    static_exe: Path | None  # a static, non-PIE executable: no dynamic section at all


@pytest.fixture(scope="module")
def odd(tmp_path_factory: pytest.TempPathFactory) -> Odd:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed")
    root = tmp_path_factory.mktemp("odd")
    (root / "foo.c").write_text("int foo(void) { return 42; }\n")
    (root / "main.c").write_text("int main(void) { return 0; }\n")

    def build(name: str, *args: str) -> Path | None:
        out = root / name
        proc = subprocess.run(
            ["gcc", *args, "-o", str(out)], cwd=root, capture_output=True, check=False
        )
        return out if proc.returncode == 0 else None

    relocatable = build("foo.o", "-c", "-fPIC", "foo.c")
    assert relocatable is not None
    return Odd(
        i386=build("lib32.so", "-m32", "-shared", "-fPIC", "-nostdlib", "foo.c"),
        x32=build("libx32.so", "-mx32", "-shared", "-fPIC", "-nostdlib", "foo.c"),
        relocatable=relocatable,
        static_exe=build("static", "-static", "-no-pie", "main.c"),
    )


def test_machine_in_the_wrong_class_is_not_audited(odd: Odd, tmp_path: Path) -> None:
    if odd.x32 is None:
        pytest.skip("no x32 compiler")
    info = read_elf(odd.x32)
    assert info.arch is None
    assert info.arch_problem == "unsupported machine EM_X86_64 (32-bit)"


def test_class_byte_flipped_on_a_64_bit_file(fixtures: Fixtures, tmp_path: Path) -> None:
    # read as ELF32, the 64-bit header's fields make no sense: a refusal, not a record
    data = set_header(fixtures.libfoo.read_bytes(), "EI_CLASS", 1)
    rejected(data, tmp_path)


def test_32_and_64_bit_files_in_one_wheel(fixtures: Fixtures, odd: Odd, tmp_path: Path) -> None:
    others = {n: p for n, p in (("pkg/lib32.so", odd.i386), ("pkg/libx32.so", odd.x32)) if p}
    if not others:
        pytest.skip("no 32-bit compiler")
    wheel = make_wheel(tmp_path / "in", {EXT: fixtures.ext_foo, **others})
    result = repair(wheel, tmp_path / "out", Options())
    assert grafted(result.output)
    notes = "\n".join(result.analysis.notes)
    for name in others:
        assert f"ignored {name}" in notes
    with zipfile.ZipFile(result.output) as zf:
        for name, path in others.items():
            assert zf.read(name) == path.read_bytes()
    assert_valid_wheel(result.output)


def test_wheel_whose_only_elf_files_are_of_another_class(odd: Odd, tmp_path: Path) -> None:
    if odd.i386 is None:
        pytest.skip("no 32-bit compiler")
    wheel = make_wheel(tmp_path / "in", {"pkg/lib32.so": odd.i386})  # tagged linux_x86_64
    with pytest.raises(WheelError, match="none of its ELF files can be audited") as excinfo:
        analyze(wheel, Options())
    assert "pkg/lib32.so" in str(excinfo.value)


def test_relocatable_object_and_static_executable(
    fixtures: Fixtures, odd: Odd, tmp_path: Path
) -> None:
    files = {EXT: fixtures.ext_foo, "pkg/foo.o": odd.relocatable}
    if odd.static_exe is not None:
        files["pkg/static"] = odd.static_exe
    assert read_elf(odd.relocatable).elf_type == "ET_REL"
    wheel = make_wheel(tmp_path / "in", files)
    result = repair(wheel, tmp_path / "out", Options())
    assert grafted(result.output)
    with zipfile.ZipFile(result.output) as zf:
        assert zf.read("pkg/foo.o") == odd.relocatable.read_bytes()
        if odd.static_exe is not None:
            assert zf.read("pkg/static") == odd.static_exe.read_bytes()
    assert_valid_wheel(result.output)


def test_a_so_that_is_not_an_elf_file_is_left_alone(fixtures: Fixtures, tmp_path: Path) -> None:
    script = b"/* GNU ld script */\nINPUT(libfoo.so.1)\n" + b"\n" * 100
    wheel = make_wheel(tmp_path / "in", {EXT: fixtures.ext_foo, "pkg/libfoo.so": script})
    result = repair(wheel, tmp_path / "out", Options())
    assert grafted(result.output)
    assert "pkg/libfoo.so" not in "\n".join(result.analysis.notes)  # not an ELF file at all
    with zipfile.ZipFile(result.output) as zf:
        assert zf.read("pkg/libfoo.so") == script


def test_a_wheel_whose_only_so_is_not_an_elf_file(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "in", {"pkg/_fake.so": b"not an ELF file at all\n" * 10})
    proc = run_relabel("repair", "-w", tmp_path / "out", wheel, tmpdir=tmp_path / "tmp")
    assert_clean_failure(proc, "not look like a platform wheel", status=1)
    proc = run_relabel(
        "repair", "--allow-pure-python-wheel", "-w", tmp_path / "out", wheel, tmpdir=tmp_path / "t"
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / wheel.name).read_bytes() == wheel.read_bytes()


def test_garbled_member_is_named_through_the_command(fixtures: Fixtures, tmp_path: Path) -> None:
    garbled = set_section(fixtures.libnew.read_bytes(), ".dynsym", "sh_size", HUGE)
    wheel = make_wheel(tmp_path / "in", {EXT: fixtures.ext_foo, "pkg/libbad.so": garbled})
    out = tmp_path / "out"
    for args in (("show", wheel), ("repair", "-w", out, wheel)):
        proc = run_relabel(*args, tmpdir=tmp_path / "tmp")
        assert_clean_failure(
            proc, "pkg/libbad.so: unreadable ELF file", ".dynsym runs past", "skip-scan"
        )
    assert not out.exists() or list(out.iterdir()) == []
    # The advice works: leave the member out of the audit and the repair goes through.
    proc = run_relabel(
        "repair", "--skip-scan", "pkg/libbad.so", "-w", out, wheel, tmpdir=tmp_path / "tmp"
    )
    assert proc.returncode == 0, proc.stderr


def test_pipeline_errors_are_relabel_errors(fixtures: Fixtures, tmp_path: Path) -> None:
    garbled = set_header(fixtures.ext_foo.read_bytes(), "e_shentsize", 3)
    wheel = make_wheel(tmp_path / "in", {EXT: garbled})
    with pytest.raises(RelabelError, match=r"_foo.*section headers are 3 bytes each"):
        analyze(wheel, Options())
