"""relabel.verneed: version tables read as ld.so reads them, and written back byte for byte."""

from __future__ import annotations

import contextlib
import shutil
import struct
from pathlib import Path

import pytest

from relabel import elf, verneed
from relabel.errors import ElfError

from .floor_support import STAT_C, WORK_C, gcc_shared, patchelf, run

CXX = (
    'extern "C" int cxx_len(const char *s);\n#include <string>\n'
    "int cxx_len(const char *s) { std::string x(s); return (int)x.size(); }\n"
)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("verneed")
    out = {
        "work": gcc_shared(WORK_C, d / "libwork.so"),
        "stat": gcc_shared(STAT_C, d / "libstat.so"),
        "relr": gcc_shared(STAT_C, d / "librelr.so", "-Wl,-z,pack-relative-relocs"),
        "stripped": gcc_shared(WORK_C, d / "libstripped.so", "-s"),
    }
    if shutil.which("g++"):
        out["cxx"] = gcc_shared(CXX, d / "libcxx.so", "-x", "c++", cc="g++")
    if shutil.which("aarch64-linux-gnu-gcc"):
        out["aarch64"] = gcc_shared(WORK_C, d / "libwork-aarch64.so", cc="aarch64-linux-gnu-gcc")
    return out


def _section_bytes(path: Path) -> bytes:
    """.gnu.version_r as binutils sees it, through the section headers."""
    proc = run(["readelf", "-W", "-S", str(path)])
    for line in proc.stdout.splitlines():
        if ".gnu.version_r" in line:
            fields = line.split("]", 1)[1].split()
            offset, size = int(fields[3], 16), int(fields[4], 16)
            return path.read_bytes()[offset : offset + size]
    raise AssertionError("no .gnu.version_r")


@pytest.mark.parametrize("name", ["work", "stat", "relr", "cxx", "aarch64"])
def test_round_trip_is_byte_exact(built: dict[str, Path], name: str) -> None:
    if name not in built:
        pytest.skip(f"no compiler for the {name} fixture")
    path = built[name]
    image = verneed.read(path)
    assert image.verneed_offset is not None
    original = _section_bytes(path)
    assert image.verneed_size == len(original)
    assert verneed.serialise_verneed(image.verneed, lambda s: -1) == original
    # and from names alone (offsets looked up again), as the rewriter does
    for g in image.verneed:
        g.file_offset = -1
        for a in g.entries:
            a.name_offset, a.hash = -1, -1
    found = verneed.serialise_verneed(image.verneed, lambda s: image.find_string(s) or 0)
    assert len(found) == len(original)


@pytest.mark.parametrize("name", ["work", "relr", "cxx", "aarch64", "stripped"])
def test_agrees_with_the_independent_reader(built: dict[str, Path], name: str) -> None:
    if name not in built:
        pytest.skip(f"no compiler for the {name} fixture")
    image = verneed.read(built[name])
    info = elf.read_elf(built[name])
    mine = {(g.file, a.name) for g in image.verneed for a in g.entries}
    theirs = {(lib, v) for lib, versions in info.version_needs for v in versions}
    assert mine == theirs
    assert image.needed == list(info.needed)
    by_index = {a.index: a.name for g in image.verneed for a in g.entries}
    undefined = {
        (s.name, by_index.get(s.version_index)) for s in image.symbols if not s.defined and s.name
    }
    assert undefined == {(s.name, s.version) for s in info.undefined}


def test_relr_marker_is_a_version_need_without_a_symbol(built: dict[str, Path]) -> None:
    image = verneed.read(built["relr"])
    names = {a.name for g in image.verneed for a in g.entries}
    if "GLIBC_ABI_DT_RELR" not in names:
        pytest.skip("this linker does not emit GLIBC_ABI_DT_RELR")
    marker = next(a for g in image.verneed for a in g.entries if a.name == "GLIBC_ABI_DT_RELR")
    assert not any(s.version_index == marker.index for s in image.symbols)


def test_elf_hash_matches_the_linker(built: dict[str, Path]) -> None:
    for g in verneed.read(built["work"]).verneed:
        for a in g.entries:
            assert a.hash == verneed.elf_hash(a.name.encode())


def test_truncated_and_foreign_files_are_refused(built: dict[str, Path], tmp_path: Path) -> None:
    data = built["work"].read_bytes()
    cut = tmp_path / "cut.so"
    cut.write_bytes(data[:2000])
    with pytest.raises(ElfError):
        verneed.read(cut)
    text = tmp_path / "text.so"
    text.write_bytes(b"not an elf file at all" * 10)
    with pytest.raises(ElfError, match="not an ELF file"):
        verneed.read(text)
    be = bytearray(data)
    be[5] = 2  # big-endian claim
    (tmp_path / "be.so").write_bytes(bytes(be))
    with pytest.raises(ElfError, match="64-bit little-endian"):
        verneed.read(tmp_path / "be.so")


def test_hostile_verneed_count_is_bounded(built: dict[str, Path], tmp_path: Path) -> None:
    data = bytearray(built["work"].read_bytes())
    image = verneed.read(built["work"])
    for i, (tag, _) in enumerate(image.dynamic):
        if tag == verneed.DT_VERNEEDNUM:
            struct.pack_into("<Q", data, image.dynamic_offset + 16 * i + 8, 1 << 20)
    (tmp_path / "h.so").write_bytes(bytes(data))
    with pytest.raises(ElfError, match="DT_VERNEEDNUM"):
        verneed.read(tmp_path / "h.so")


def test_rewrite_grows_the_table_into_the_space_patchelf_freed(
    built: dict[str, Path], tmp_path: Path
) -> None:
    src = built["work"]
    image = verneed.read(src)
    create = next(s for s in image.symbols if s.name == "pthread_create")
    out = tmp_path / "out.so"
    rewrite = verneed.Rewrite(
        (
            verneed.Retarget(
                create.index, "pthread_create", "pthread_create", "libpthread.so.0", "GLIBC_2.2.5"
            ),
        ),
        ("libpthread.so.0",),
    )
    verneed.apply(src, out, rewrite, patchelf())
    after = verneed.read(out)
    assert after.verneed_offset != image.verneed_offset  # moved: a new group does not fit
    groups = {g.file: [a.name for a in g.entries] for g in after.verneed}
    assert groups["libpthread.so.0"] == ["GLIBC_2.2.5"]
    assert after.needed[0] == "libpthread.so.0"
    info = elf.read_elf(out)
    assert any(
        s.name == "pthread_create" and s.version == "GLIBC_2.2.5" and s.library == "libpthread.so.0"
        for s in info.undefined
    )
    # readelf reads the section headers: they must follow the move
    assert (
        _section_bytes(out)
        == out.read_bytes()[after.verneed_offset : after.verneed_offset + after.verneed_size]
    )
    # the other requirements are where they were, with their indices
    before = {(g.file, a.name): a.index for g in image.verneed for a in g.entries}
    now = {(g.file, a.name): a.index for g in after.verneed for a in g.entries}
    for key, index in now.items():
        if key in before:
            assert before[key] == index
    assert src.read_bytes() == built["work"].read_bytes()  # the source is untouched


def test_failed_rewrite_leaves_no_output(built: dict[str, Path], tmp_path: Path) -> None:
    image = verneed.read(built["work"])
    defined = next(s for s in image.symbols if s.defined and s.name == "work")
    out = tmp_path / "out.so"
    rewrite = verneed.Rewrite(
        (verneed.Retarget(defined.index, "work", "work", "libc.so.6", "GLIBC_2.2.5"),), ()
    )
    with pytest.raises(verneed.RewriteError, match="not the undefined work"):
        verneed.apply(built["work"], out, rewrite, patchelf())
    assert list(tmp_path.iterdir()) == []


def test_executable_exporting_nothing_has_all_its_symbols_read(tmp_path: Path) -> None:
    """Its GNU hash table is empty; the undefined symbols are counted from .dynsym."""
    from .floor_support import START_DRIVER_C

    c = tmp_path / "drv.c"
    c.write_text(START_DRIVER_C)
    proc = run(["gcc", "-O1", "-nostartfiles", "-o", str(tmp_path / "drv"), str(c), "-ldl"])
    assert proc.returncode == 0, proc.stderr
    image = verneed.read(tmp_path / "drv")
    info = elf.read_elf(tmp_path / "drv")
    names = {s.name for s in image.symbols if s.name and not s.defined}
    assert {"dlopen", "dlsym", "exit"} <= names
    assert names == {s.name for s in info.undefined}


def test_corrupted_files_raise_only_elf_errors(built: dict[str, Path], tmp_path: Path) -> None:
    """Flipped bytes in the headers and tables: a clear ElfError or a parse, never a crash."""
    import random

    data = built["work"].read_bytes()
    image = verneed.read(built["work"])
    hot = [0, 32, 40, 54, 64, image.dynamic_offset, image.verneed_offset or 0, image.symtab_offset]
    rng = random.Random(1234)
    target = tmp_path / "bad.so"
    for _ in range(400):
        mutated = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            at = min(len(data) - 1, rng.choice(hot) + rng.randrange(0, 96))
            mutated[at] = rng.randrange(256)
        target.write_bytes(bytes(mutated))
        with contextlib.suppress(ElfError):
            verneed.read(target)
