"""relabel.elf reads what ld.so reads: PT_DYNAMIC and PT_LOAD, not the section headers.

Real gcc-built files are edited with a few lines of Python the way vendored binaries are
found in the wild: section header table removed (sstrip), sections renamed, and dynamic
entries corrupted. The first two must read exactly like the untouched file; anything the
loader could not read must be refused, never read as "needs nothing".
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

import relabel.patchelf
from relabel.elf import ElfInfo, read_elf
from relabel.errors import ElfError, PatchelfError, ToolError
from relabel.plan import Patch
from tests.conftest import EXT_SUFFIX, Fixtures, Foreign, _extension, _run, make_wheel
from tests.hostile.support import assert_clean_failure, fake_tool, run_relabel, tree

EXT = f"pkg/_loader{EXT_SUFFIX}"

_PT_LOAD, _PT_DYNAMIC = 1, 2
_DT_NEEDED, _DT_HASH, _DT_STRTAB, _DT_SYMTAB, _DT_STRSZ = 1, 4, 5, 6, 10
_DT_GNU_HASH, _DT_VERSYM, _DT_VERNEED = 0x6FFFFEF5, 0x6FFFFFF0, 0x6FFFFFFE


@dataclass(frozen=True)
class Built:
    ext: Path  # "_loader": DT_NEEDED libfoo.so.1, DT_RUNPATH -> libdir, GLIBC_2.34 needs
    sysv: Path  # the same library linked with the SysV DT_HASH only
    hidden: Path  # exports nothing: an empty DT_GNU_HASH, the symbol count from relocations


LOADER_BODY = (
    "#include <pthread.h>\n"
    "int foo(void);\n"
    "static void *run(void *a) { return a; }\n"
    "static long go(void) { pthread_t t; if (pthread_create(&t, 0, run, 0)) return -1;"
    " pthread_join(t, 0); return foo(); }"
)


@pytest.fixture(scope="module")
def built(fixtures: Fixtures, tmp_path_factory: pytest.TempPathFactory) -> Built:
    import sysconfig

    root = tmp_path_factory.mktemp("loader")
    (root / "_loader.c").write_text(_extension("_loader", LOADER_BODY, "go()"))
    (root / "hidden.c").write_text(
        "#include <pthread.h>\n#include <stdio.h>\nstatic void *run(void *a) { return a; }\n"
        "__attribute__((constructor)) static void start(void)"
        ' { pthread_t t; pthread_create(&t, 0, run, 0); fprintf(stderr, "x"); }\n'
    )
    link = [
        "-shared",
        "-fPIC",
        "-O1",
        f"-I{sysconfig.get_paths()['include']}",
        "-L",
        str(fixtures.libdir),
        "-Wl,--enable-new-dtags",
        f"-Wl,-rpath,{fixtures.libdir}",
        "-l:libfoo.so.1",
        "-lpthread",
    ]
    ext = root / f"_loader{EXT_SUFFIX}"
    _run(["gcc", "-o", str(ext), "_loader.c", *link], root)
    sysv = root / "sysv" / f"_loader{EXT_SUFFIX}"
    sysv.parent.mkdir()
    _run(["gcc", "-o", str(sysv), "_loader.c", *link, "-Wl,--hash-style=sysv"], root)
    hidden = root / "libhidden.so.1"
    _run(
        ["gcc", "-shared", "-fPIC", "-fvisibility=hidden", "-o", str(hidden), "hidden.c"],
        root,
    )
    return Built(ext, sysv, hidden)


# ---------------------------------------------------------------------------------------
# editing ELF64 files the way they are found in the wild


def _segments(data: bytes) -> list[tuple[int, int, int, int, int]]:
    """(header offset, p_type, p_offset, p_vaddr, p_filesz) of each program header
    (little-endian files of either class)."""
    if data[4] == 2:
        phoff, (phentsize, phnum) = (
            struct.unpack_from("<Q", data, 32)[0],
            struct.unpack_from("<HH", data, 54),
        )
    else:
        phoff, (phentsize, phnum) = (
            struct.unpack_from("<I", data, 28)[0],
            struct.unpack_from("<HH", data, 42),
        )
    found = []
    for index in range(phnum):
        at = phoff + index * phentsize
        if data[4] == 2:
            p_type, _, p_offset, p_vaddr, _, p_filesz = struct.unpack_from("<IIQQQQ", data, at)
        else:
            p_type, p_offset, p_vaddr, _, p_filesz = struct.unpack_from("<IIIII", data, at)
        found.append((at, p_type, p_offset, p_vaddr, p_filesz))
    return found


def sstrip(data: bytes) -> bytes:
    """What sstrip does: no section header table, nothing after the last segment."""
    end = max(offset + size for _, _, offset, _, size in _segments(data))
    out = bytearray(data[:end])
    if data[4] == 2:
        out[40:48] = bytes(8)  # e_shoff
        out[60:64] = bytes(4)  # e_shnum, e_shstrndx
    else:
        out[32:36] = bytes(4)
        out[48:52] = bytes(4)
    return bytes(out)


def rename_sections(data: bytes, renames: dict[bytes, bytes]) -> bytes:
    """Rename sections in .shstrtab (names of equal length)."""
    (shoff,) = struct.unpack_from("<Q", data, 40)
    (shstrndx,) = struct.unpack_from("<H", data, 62)
    start, size = struct.unpack_from("<QQ", data, shoff + shstrndx * 64 + 24)
    names = data[start : start + size]
    for old, new in renames.items():
        assert len(old) == len(new)
        assert b"\0" + old + b"\0" in names, old
        names = names.replace(b"\0" + old + b"\0", b"\0" + new + b"\0")
    return data[:start] + names + data[start + size :]


def dynamic_entries(data: bytes) -> list[tuple[int, int, int]]:
    """(file offset, d_tag, d_val) of each entry of the dynamic array, up to DT_NULL."""
    [(_, _, offset, _, size)] = [s for s in _segments(data) if s[1] == _PT_DYNAMIC]
    entries = []
    for at in range(offset, offset + size, 16):
        tag, value = struct.unpack_from("<qQ", data, at)
        if tag == 0:
            break
        entries.append((at, tag, value))
    return entries


def set_dynamic(data: bytes, tag: int, value: int) -> bytes:
    for at, found, _ in dynamic_entries(data):
        if found == tag:
            return data[: at + 8] + struct.pack("<Q", value) + data[at + 16 :]
    raise AssertionError(f"no dynamic entry {tag:#x}")


def drop_dynamic(data: bytes, tag: int) -> bytes:
    """Turn every ``tag`` entry into DT_NULL's harmless neighbour DT_DEBUG (21)."""
    out = bytearray(data)
    for at, found, _ in dynamic_entries(data):
        if found == tag:
            struct.pack_into("<qQ", out, at, 21, 0)
    return bytes(out)


def write(tmp_path: Path, data: bytes, name: str = f"_loader{EXT_SUFFIX}") -> Path:
    path = tmp_path / "edited" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def dynamic_view(info: ElfInfo) -> dict[str, object]:
    """Every field the audit uses, without the one that says how the file was read."""
    fields = dataclasses.asdict(info)
    del fields["has_section_headers"], fields["path"]
    return fields


# ---------------------------------------------------------------------------------------
# (a) section headers stripped, (b) sections renamed: read as the untouched file


def test_the_fixture_is_what_the_tests_need(built: Built, fixtures: Fixtures) -> None:
    info = read_elf(built.ext)
    assert info.needed[0] == "libfoo.so.1"
    assert info.runpath == (str(fixtures.libdir),)
    assert ("libc.so.6", "GLIBC_2.34") in set(info.symbol_versions())
    assert ("pthread_create", "GLIBC_2.34", "libc.so.6", False) in {
        (s.name, s.version, s.library, s.weak) for s in info.undefined
    }
    assert ("foo", None, None, False) in {
        (s.name, s.version, s.library, s.weak) for s in info.undefined
    }
    assert any(s.weak and s.version is None for s in info.undefined)
    assert info.python_init == "PyInit__loader"
    assert info.has_section_headers


@pytest.mark.parametrize("which", ["ext", "sysv", "hidden"])
def test_without_section_headers_the_file_reads_the_same(
    built: Built, tmp_path: Path, which: str
) -> None:
    original = getattr(built, which)
    stripped = sstrip(original.read_bytes())
    assert len(stripped) < original.stat().st_size
    path = write(tmp_path, stripped, original.name)
    info = read_elf(path)
    assert not info.has_section_headers
    assert dynamic_view(info) == dynamic_view(read_elf(original))


def _gcc_built(fixtures: Fixtures, foreign: Foreign, built: Built, tmp: Path) -> dict[str, Path]:
    files = {
        name: getattr(fixtures, name)
        for name in ("libfoo", "libbar", "libnew", "libcxx", "libisa", "exe_foo", "ext_bz2")
    }
    files.update(ext=built.ext, sysv=built.sysv, hidden=built.hidden)
    for name in ("a64_ext", "musl_ext"):  # musl_ext was edited by patchelf
        if getattr(foreign, name) is not None:
            files[name] = getattr(foreign, name)
    (tmp / "b32.c").write_text("int foo(void);\nint bar(void) { return foo(); }\n")
    lib32 = tmp / "lib32.so"
    proc = subprocess.run(
        [
            "gcc",
            "-m32",
            "-shared",
            "-fPIC",
            "-nostdlib",
            "-Wl,-rpath,/opt/x",
            "-o",
            str(lib32),
            "b32.c",
        ],
        cwd=tmp,
        capture_output=True,
        check=False,
    )
    if proc.returncode == 0:
        files["lib32"] = lib32
    return files


def test_every_fixture_reads_the_same_without_section_headers(
    fixtures: Fixtures, foreign: Foreign, built: Built, tmp_path: Path
) -> None:
    files = _gcc_built(fixtures, foreign, built, tmp_path)
    for name, path in files.items():
        info = read_elf(write(tmp_path, sstrip(path.read_bytes()), path.name))
        assert dynamic_view(info) == dynamic_view(read_elf(path)), name
    assert read_elf(fixtures.libisa).isa_level == 3
    if "lib32" in files:
        info = read_elf(write(tmp_path, sstrip(files["lib32"].read_bytes()), "lib32.so"))
        assert (info.elf_class, info.needed, info.runpath) == (32, (), ("/opt/x",))
        assert [s.name for s in info.undefined] == ["foo"]


def test_each_symbol_count_source_is_exercised(built: Built, tmp_path: Path) -> None:
    # the three ways the symbol count is found, without section headers
    tags = {
        name: {t for _, t, _ in dynamic_entries(getattr(built, name).read_bytes())}
        for name in ("ext", "sysv", "hidden")
    }
    assert _DT_GNU_HASH in tags["ext"] and _DT_HASH not in tags["ext"]
    assert _DT_HASH in tags["sysv"] and _DT_GNU_HASH not in tags["sysv"]
    # nothing hashed: every bucket of the GNU hash table is empty, and the count comes
    # from the relocations
    data = built.hidden.read_bytes()
    [address] = [v for _, t, v in dynamic_entries(data) if t == _DT_GNU_HASH]
    at = _file_offset(data, address)
    nbuckets, _, bloom, _ = struct.unpack_from("<IIII", data, at)
    assert not any(struct.unpack_from(f"<{nbuckets}I", data, at + 16 + 8 * bloom))
    names = {s.name for s in read_elf(write(tmp_path, sstrip(data))).undefined}
    assert {"pthread_create", "stderr"} <= names


def _file_offset(data: bytes, address: int) -> int:
    for _, p_type, p_offset, p_vaddr, p_filesz in _segments(data):
        if p_type == _PT_LOAD and p_vaddr <= address < p_vaddr + p_filesz:
            return address - p_vaddr + p_offset
    raise AssertionError(f"{address:#x} is not loaded")


def test_the_last_of_repeated_entries_wins_as_in_ld_so(fixtures: Fixtures, tmp_path: Path) -> None:
    # ld.so's elf_get_dynamic_info keeps the last DT_RUNPATH (or DT_SONAME) it meets
    data = bytearray(fixtures.libbar_runpath.read_bytes())
    entries = dynamic_entries(bytes(data))
    [(soname_at, soname)] = [(at, v) for at, t, v in entries if t == 14]
    [runpath_at] = [at for at, t, _ in entries if t == 29]
    struct.pack_into("<qQ", data, soname_at, 29, soname)  # a second DT_RUNPATH
    info = read_elf(write(tmp_path, sstrip(bytes(data)), "libbar.so.1"))
    later = "$ORIGIN/.." if runpath_at > soname_at else "libbar.so.1"
    assert info.runpath == (later,)
    assert info.soname is None


def test_renamed_sections_read_the_same(built: Built, tmp_path: Path) -> None:
    renamed = rename_sections(
        built.ext.read_bytes(),
        {b".dynamic": b".dynamiX", b".gnu.version_r": b".gnu.versionXr", b".dynsym": b".dynsyX"},
    )
    info = read_elf(write(tmp_path, renamed))
    assert info.has_section_headers
    assert dynamic_view(info) == dynamic_view(read_elf(built.ext))


def test_stripped_extension_still_needs_its_libraries(
    built: Built, fixtures: Fixtures, tmp_path: Path
) -> None:
    info = read_elf(write(tmp_path, sstrip(built.ext.read_bytes())))
    assert "libfoo.so.1" in info.needed
    assert info.runpath == (str(fixtures.libdir),)
    assert ("libc.so.6", "GLIBC_2.34") in set(info.symbol_versions())


# ---------------------------------------------------------------------------------------
# (c) dynamic information that cannot be read: refused, never "no DT_NEEDED"


@pytest.mark.parametrize("strip_sections", [False, True], ids=["sections", "sstripped"])
@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (lambda d: set_dynamic(d, _DT_STRTAB, 0xDEAD0000), "DT_STRTAB"),
        (lambda d: set_dynamic(d, _DT_STRSZ, 1 << 40), "DT_STRTAB"),
        (lambda d: set_dynamic(d, _DT_NEEDED, 1 << 40), "a name lies outside"),
        (lambda d: drop_dynamic(d, _DT_STRTAB), "no DT_STRTAB"),
        (lambda d: set_dynamic(d, _DT_SYMTAB, 0xDEAD0000), "DT_SYMTAB"),
        (lambda d: set_dynamic(d, _DT_VERNEED, 0xDEAD0000), "DT_VERNEED"),
        (lambda d: set_dynamic(d, _DT_VERSYM, 0xDEAD0000), "DT_VERSYM"),
        (lambda d: set_dynamic(d, _DT_GNU_HASH, 0xDEAD0000), "DT_GNU_HASH"),
    ],
    ids=["strtab", "strsz", "needed", "no-strtab", "symtab", "verneed", "versym", "gnu-hash"],
)
def test_unreadable_dynamic_information_is_refused(
    built: Built, tmp_path: Path, edit: object, fragment: str, strip_sections: bool
) -> None:
    data = edit(built.ext.read_bytes())  # type: ignore[operator]
    if strip_sections:
        data = sstrip(data)
    with pytest.raises(ElfError, match=r"_loader.*unreadable ELF file") as excinfo:
        read_elf(write(tmp_path, data))
    assert fragment in excinfo.value.message


def test_dynamic_segment_past_the_end_of_the_file(built: Built, tmp_path: Path) -> None:
    data = sstrip(built.ext.read_bytes())
    [(at, _, offset, _, _)] = [s for s in _segments(data) if s[1] == _PT_DYNAMIC]
    with pytest.raises(ElfError, match="PT_DYNAMIC"):
        read_elf(write(tmp_path, data[: offset + 8]))
    # its address and its file offset pointing at different bytes
    moved = data[: at + 8] + struct.pack("<Q", offset + 16) + data[at + 16 :]
    with pytest.raises(ElfError, match="PT_DYNAMIC's address and file offset"):
        read_elf(write(tmp_path, moved))


def test_dynamic_array_without_its_end_marker(built: Built, tmp_path: Path) -> None:
    data = bytearray(sstrip(built.ext.read_bytes()))
    [(_, _, offset, _, size)] = [s for s in _segments(bytes(data)) if s[1] == _PT_DYNAMIC]
    for at in range(offset, offset + size, 16):
        if struct.unpack_from("<q", data, at)[0] == 0:
            struct.pack_into("<qQ", data, at, 21, 0)  # DT_NULL -> DT_DEBUG
    with pytest.raises(ElfError, match="no DT_NULL"):
        read_elf(write(tmp_path, bytes(data)))


def test_no_dynamic_segment_is_a_static_file(built: Built, tmp_path: Path) -> None:
    data = bytearray(sstrip(built.ext.read_bytes()))
    [(at, *_)] = [s for s in _segments(bytes(data)) if s[1] == _PT_DYNAMIC]
    struct.pack_into("<I", data, at, 0)  # PT_NULL
    info = read_elf(write(tmp_path, bytes(data)))
    assert (info.needed, info.version_needs, info.undefined) == ((), (), ())


def test_sections_that_disagree_with_the_segments_are_refused(built: Built, tmp_path: Path) -> None:
    # patchelf would edit the tables the sections name; the loader reads the others
    from tests.hostile.support import section_field, set_section

    original = built.ext.read_bytes()
    for section in (".dynamic", ".dynsym", ".gnu.version_r", ".gnu.version"):
        addr = section_field(original, section, "sh_addr")
        data = set_section(original, section, "sh_addr", addr + 8)
        with pytest.raises(ElfError, match=r"section headers place .* elsewhere"):
            read_elf(write(tmp_path, data))
    # a .dynamic section in a file without PT_DYNAMIC
    data = bytearray(original)
    [(at, *_)] = [s for s in _segments(original) if s[1] == _PT_DYNAMIC]
    struct.pack_into("<I", data, at, 0)
    with pytest.raises(ElfError, match="no PT_DYNAMIC"):
        read_elf(write(tmp_path, bytes(data)))


# ---------------------------------------------------------------------------------------
# the whole pipeline


def test_show_reports_the_library_and_the_glibc_blocker_of_a_stripped_extension(
    built: Built, tmp_path: Path
) -> None:
    original = make_wheel(tmp_path / "original", {EXT: built.ext})
    shown_original = run_relabel("show", original, tmpdir=tmp_path / "tmp")
    for variant, data in (
        ("sstripped", sstrip(built.ext.read_bytes())),
        (
            "renamed",
            rename_sections(built.ext.read_bytes(), {b".gnu.version_r": b".gnu.versionXr"}),
        ),
    ):
        wheel = make_wheel(tmp_path / variant, {EXT: data})
        proc = run_relabel("show", wheel, tmpdir=tmp_path / "tmp")
        # status 1: the wheel meets no policy as it is (it needs libfoo grafted)
        assert proc.returncode == 1, proc.stderr
        assert proc.stdout == shown_original.stdout
        assert "libfoo.so.1" in proc.stdout, proc.stdout
        assert "GLIBC_2.34" in proc.stdout, proc.stdout
        proc = run_relabel("show", "--json", wheel, tmpdir=tmp_path / "tmp")
        report = json.loads(proc.stdout)
        assert "libfoo.so.1" in report["external_libs"], report
        assert "GLIBC_2.34" in report["versioned_symbols"]["libc.so.6"], report
        assert _glibc_of(report["repair_tag"]) >= (2, 34), report


def _glibc_of(tag: str) -> tuple[int, int]:
    """(2, 34) for manylinux_2_34_x86_64; linux_* (no policy met) counts as newest."""
    if not tag.startswith("manylinux_"):
        return (99, 0)
    major, minor = tag.split("_")[1:3]
    return int(major), int(minor)


def test_repair_of_a_stripped_extension_names_it_and_says_why(built: Built, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "in", {EXT: sstrip(built.ext.read_bytes())})
    out = tmp_path / "out"
    proc = run_relabel("repair", "-w", out, wheel, tmpdir=tmp_path / "tmp")
    message = assert_clean_failure(proc, EXT, "has no section headers", "sstrip")
    assert "Traceback" not in message
    assert tree(out) == []
    assert tree(tmp_path / "tmp") == []


def test_repair_of_an_extension_with_a_renamed_dynamic_section(
    built: Built, tmp_path: Path
) -> None:
    # The loader reads it fine, patchelf cannot find '.dynamic': a clear refusal.
    data = rename_sections(built.ext.read_bytes(), {b".dynamic": b".dynamiX"})
    wheel = make_wheel(tmp_path / "in", {EXT: data})
    proc = run_relabel("repair", "-w", tmp_path / "out", wheel, tmpdir=tmp_path / "tmp")
    assert_clean_failure(proc, f"patchelf failed on {EXT}", "section headers", ".dynamic")
    assert tree(tmp_path / "out") == []


# ---------------------------------------------------------------------------------------
# patchelf and strip on files without section headers; output that is not UTF-8


@pytest.fixture
def _fresh_patchelf(monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.delenv("RELABEL_PATCHELF", raising=False)
    relabel.patchelf.find.cache_clear()
    yield
    relabel.patchelf.find.cache_clear()


@pytest.mark.usefixtures("_fresh_patchelf")
def test_patchelf_is_not_run_on_a_file_without_section_headers(
    built: Built, tmp_path: Path
) -> None:
    path = write(tmp_path, sstrip(built.ext.read_bytes()))
    before = path.read_bytes()
    patch = Patch("pkg/_loader.so", set_rpath="$ORIGIN")
    with pytest.raises(PatchelfError, match=r"pkg/_loader\.so has no section headers") as exc:
        relabel.patchelf.apply(patch, path, tmp_path / "out.so")
    assert exc.value.command == ()  # refused before running anything
    assert path.read_bytes() == before
    assert not (tmp_path / "out.so").exists()
    if shutil.which("strip"):
        with pytest.raises(ToolError, match="strip cannot rewrite it"):
            relabel.patchelf.strip(path, "pkg/_loader.so")


@pytest.mark.usefixtures("_fresh_patchelf")
def test_tool_output_that_is_not_utf8(
    built: Built, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tool = fake_tool(
        tmp_path / "bin" / "patchelf",
        'if [ "$1" = "--version" ]; then printf "patchelf 0.18.0 \\377\\n"; exit 0; fi\n'
        "printf 'bad \\377\\376 bytes\\n' >&2; exit 1\n",
    )
    monkeypatch.setenv("RELABEL_PATCHELF", str(tool))
    path = write(tmp_path, built.ext.read_bytes())
    with pytest.raises(PatchelfError) as excinfo:
        relabel.patchelf.apply(Patch("pkg/_loader.so", set_rpath="$ORIGIN"), path)
    assert "bad \ufffd\ufffd bytes" in excinfo.value.stderr
    assert "patchelf failed on pkg/_loader.so" in str(excinfo.value)


def test_sstripped_file_still_loads(built: Built, fixtures: Fixtures, tmp_path: Path) -> None:
    # The premise of all of the above: ld.so does not need section headers.
    import sys

    directory = tmp_path / "load"
    directory.mkdir()
    (directory / built.ext.name).write_bytes(sstrip(built.ext.read_bytes()))
    proc = subprocess.run(
        [sys.executable, "-c", "import _loader; print(_loader.value())"],
        cwd=directory,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "LD_BIND_NOW": "1"},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "42"
