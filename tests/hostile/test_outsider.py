"""Inputs from outside the project: loader rules, odd link layouts, odd wheels and settings.

Each case is built here from source (gcc, ld, patchelf) and judged as a user would judge
it: a successful repair goes through the installed-layout check (tests/installed.py), which
installs the wheel, hides the build tree and compares every probe with the unrepaired file.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sysconfig
import zipfile
from pathlib import Path
from typing import Callable

import pytest

from tests.conftest import EXT_SUFFIX, PY_TAG, _extension, install_and_run, make_wheel

from .support import (
    assert_clean_failure,
    assert_valid_wheel,
    grafted,
    run_relabel,
    tree,
    wheel_members,
    wheel_path,
    write_zip,
)

EXT = f"pkg/_col{EXT_SUFFIX}"
MANY = re.compile(r"manylinux_2_\d+_x86_64")


@pytest.fixture(autouse=True)
def _no_relabel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("RELABEL_", "AUDITWHEEL_")):
            monkeypatch.delenv(name)
    monkeypatch.delenv("LD_LIBRARY_PATH", raising=False)


def _cc(out: Path, source: str, *args: str | Path) -> Path:
    """Compile ``source`` (C) into the shared object ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    src = out.parent / f".{out.name}.c"
    src.write_text(source)
    include = sysconfig.get_paths()["include"]
    cmd = ["gcc", "-shared", "-fPIC", "-O1", f"-I{include}", "-o", str(out), str(src)]
    subprocess.run([*cmd, *map(str, args)], check=True, capture_output=True)
    src.unlink()
    return out


def _lib(directory: Path, soname: str, value: int, *args: str | Path, body: str = "") -> Path:
    """``soname`` in ``directory``: ``col()`` returns ``value`` (plus what ``body`` adds)."""
    source = f"{body}\nint col(void) {{ return {value}; }}\n"
    source += "int relabel_probe(void) { return col(); }\n"
    return _cc(directory / soname, source, f"-Wl,-soname,{soname}", *args)


def _ext(
    directory: Path,
    *args: str | Path,
    name: str = "_col",
    call: str = "col()",
    decl: str = "int col(void);",
) -> Path:
    """Extension ``name`` whose value is ``call`` (``col()`` by default)."""
    source = _extension(name, decl, call)
    return _cc(directory / f"{name}{EXT_SUFFIX}", source, *args)


def _mid(a: Path, b: Path, c: Path, runpath: str) -> Path:
    """``a/libmid.so.1`` (``mid()`` is ``col() * 10``) with DT_RUNPATH ``runpath``, linked
    to ``c/libcol.so.1`` (3); another libcol.so.1 (2) waits in ``b``."""
    _lib(b, "libcol.so.1", 2)
    _lib(c, "libcol.so.1", 3)
    return _cc(
        a / "libmid.so.1",
        "int col(void);\nint mid(void) { return col() * 10; }\n",
        "-Wl,-soname,libmid.so.1",
        c / "libcol.so.1",
        "-Wl,--enable-new-dtags",
        f"-Wl,-rpath,{runpath}",
    )


def _repair(
    wheel: Path, out: Path, *args: str | Path, **kw: object
) -> subprocess.CompletedProcess[str]:
    return run_relabel("repair", "-w", out, *args, wheel, tmpdir=out.parent / "tmp", **kw)  # type: ignore[arg-type]


def _loader_expansion(token: str, tmp: Path) -> str:
    """What this machine's ld.so makes of ``$LIB`` / ``$PLATFORM`` (from LD_DEBUG)."""
    lib = _cc(tmp / "dst" / "libdst.so", "int dst(void) { return 0; }")
    exe = tmp / "dst" / "exe"
    (tmp / "dst" / "m.c").write_text("int dst(void);\nint main(void) { return dst(); }\n")
    subprocess.run(
        ["gcc", "-o", exe, tmp / "dst" / "m.c", lib, f"-Wl,-rpath,/nonexistent/${token}/x"],
        check=True,
    )
    proc = subprocess.run(
        [exe],
        env={"LD_DEBUG": "libs", "PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        check=False,
    )
    line = next(x for x in proc.stderr.splitlines() if "search path=" in x)
    last = line.split("search path=", 1)[1].split()[0].split(":")[-1]
    return last[len("/nonexistent/") : -len("/x")]


# ---------------------------------------------------------------------------------------
# where the loader looks


#: what relabel makes of each token on x86_64
RELABEL_EXPANSION = {"LIB": "lib64", "PLATFORM": "x86_64"}


@pytest.mark.parametrize("token", ["LIB", "PLATFORM"])
def test_dst_token_in_a_runpath_is_expanded_as_this_loader_does(tmp_path: Path, token: str) -> None:
    # Debian's ld.so makes $LIB "lib/x86_64-linux-gnu" and $PLATFORM the CPU's name
    # ("haswell"...): a directory named as relabel guesses must not stand in
    expansion = _loader_expansion(token, tmp_path)
    if expansion == RELABEL_EXPANSION[token]:
        pytest.skip(f"this loader expands ${token} to {expansion}")
    root = tmp_path / "prefix"
    _lib(root / expansion, "libcol.so.1", 1)
    _lib(root / RELABEL_EXPANSION[token], "libcol.so.1", 2)
    ext = _ext(
        tmp_path / "ext",
        root / expansion / "libcol.so.1",
        "-Wl,--enable-new-dtags",
        f"-Wl,-rpath,{root}/${token}",
    )
    wheel = make_wheel(tmp_path / "in", {EXT: ext})
    proc = _repair(wheel, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr


def test_runpath_then_rpath_in_one_file(tmp_path: Path) -> None:
    # ld.so ignores DT_RPATH when DT_RUNPATH is present; here they name different
    # directories, and the DT_RPATH entry comes last.
    a, b = tmp_path / "a", tmp_path / "b"
    _lib(a, "libcol.so.1", 1)
    _lib(b, "libcol.so.1", 2)
    ext = _ext(tmp_path / "ext", a / "libcol.so.1", "-Wl,--enable-new-dtags", f"-Wl,-rpath,{a}:{b}")
    _add_tag(ext, 15, 29, skip=f"{a}:")  # DT_RPATH: "b" alone
    wheel = make_wheel(tmp_path / "in", {EXT: ext})
    proc = _repair(wheel, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr


def test_rpath_and_runpath_of_one_string_as_older_ld_writes_them(tmp_path: Path) -> None:
    # binutils before 2.40 (manylinux2014's) wrote both tags for --enable-new-dtags
    a = tmp_path / "a"
    _lib(a, "libcol.so.1", 1)
    ext = _ext(tmp_path / "ext", a / "libcol.so.1", "-Wl,--disable-new-dtags", f"-Wl,-rpath,{a}")
    _add_tag(ext, 29, 15)
    wheel = make_wheel(tmp_path / "in", {EXT: ext})
    proc = _repair(wheel, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    assert grafted(next((tmp_path / "out").glob("*.whl")))


def _add_tag(path: Path, tag: int, like: int, skip: str = "") -> None:
    """Give ``path`` a dynamic entry ``tag`` whose string is that of its ``like`` entry
    without the prefix ``skip``, in the first of the spare DT_NULL entries ld leaves."""
    import struct

    from elftools.elf.elffile import ELFFile

    data = bytearray(path.read_bytes())
    with path.open("rb") as stream:
        dynamic = ELFFile(stream).get_section_by_name(".dynamic")
        offset = dynamic["sh_offset"]
        count = dynamic["sh_size"] // 16
    entries = [struct.unpack_from("<qQ", data, offset + 16 * i) for i in range(count)]
    [string] = [value for kind, value in entries if kind == like]
    spare = next(i for i in range(count - 1) if entries[i][0] == 0 and entries[i + 1][0] == 0)
    struct.pack_into("<qQ", data, offset + 16 * spare, tag, string + len(skip.encode()))
    path.write_bytes(bytes(data))


def test_ld_library_path_comes_after_the_rpath(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    _lib(a, "libcol.so.1", 1)
    _lib(b, "libcol.so.1", 2)
    ext = _ext(tmp_path / "ext", a / "libcol.so.1", "-Wl,--disable-new-dtags", f"-Wl,-rpath,{a}")
    wheel = make_wheel(tmp_path / "in", {EXT: ext})
    proc = _repair(wheel, tmp_path / "out", env={"LD_LIBRARY_PATH": str(b)})
    assert proc.returncode == 0, proc.stderr


def test_library_with_its_own_runpath_ignores_its_loaders_rpath(tmp_path: Path) -> None:
    # libmid has DT_RUNPATH c: the extension's DT_RPATH (which also finds a libcol) is not
    # searched for libmid's dependencies
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    mid = _mid(a, b, c, str(c))
    ext = _ext(
        tmp_path / "ext",
        mid,
        "-Wl,--disable-new-dtags",
        f"-Wl,-rpath,{a}:{b}",
        call="mid()",
        decl="int mid(void);",
    )
    wheel = make_wheel(tmp_path / "in", {EXT: ext})
    proc = _repair(wheel, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr


def _exe(path: Path, *args: str | Path) -> Path:
    """An executable printing ``col()``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    src = path.parent / f".{path.name}.c"
    src.write_text(
        '#include <stdio.h>\nint col(void);\nint main(void) { printf("%d\\n", col()); }\n'
    )
    subprocess.run(["gcc", "-o", str(path), str(src), *map(str, args)], check=True)
    src.unlink()
    return path


@pytest.fixture
def shared(tmp_path: Path) -> Path:
    """A wheel whose extension and script (under .data/scripts) need one external library,
    found through DT_RPATH by one and DT_RUNPATH by the other."""
    a = tmp_path / "a"
    lib = _lib(a, "libcol.so.1", 7)
    ext = _ext(tmp_path / "ext", lib, "-Wl,--disable-new-dtags", f"-Wl,-rpath,{a}")
    exe = _exe(tmp_path / "bin" / "colrun", lib, "-Wl,--enable-new-dtags", f"-Wl,-rpath,{a}")
    sub = f"pkg/sub/_col{EXT_SUFFIX}"
    return make_wheel(
        tmp_path / "in",
        {EXT: ext, sub: ext, "demo-1.0.data/scripts/colrun": exe, "pkg/__init__.py": b""},
    )


def test_library_needed_by_an_extension_and_a_script(shared: Path, tmp_path: Path) -> None:
    proc = _repair(shared, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    [out] = (tmp_path / "out").glob("*.whl")
    assert MANY.search(out.name)
    assert len([g for g in grafted(out) if "libcol" in g]) == 1
    assert_valid_wheel(out)


def test_repairing_the_output_again_changes_nothing(shared: Path, tmp_path: Path) -> None:
    assert _repair(shared, tmp_path / "one").returncode == 0
    [first] = (tmp_path / "one").glob("*.whl")
    proc = _repair(first, tmp_path / "two")
    assert proc.returncode == 0, proc.stderr
    [second] = (tmp_path / "two").glob("*.whl")
    assert second.name == first.name
    with zipfile.ZipFile(first) as one, zipfile.ZipFile(second) as two:
        assert sorted(one.namelist()) == sorted(two.namelist())
        for name in one.namelist():
            if not name.endswith(("RECORD", "WHEEL")) and "sboms" not in name:
                assert one.read(name) == two.read(name), name


def test_auditwheel_grafts_nothing_more_into_the_output(shared: Path, tmp_path: Path) -> None:
    auditwheel = shutil.which("auditwheel")
    if auditwheel is None:
        pytest.skip("auditwheel (test oracle) is not installed")
    assert _repair(shared, tmp_path / "one").returncode == 0
    [first] = (tmp_path / "one").glob("*.whl")
    proc = subprocess.run(
        [auditwheel, "repair", "-w", str(tmp_path / "aw"), str(first)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    [second] = (tmp_path / "aw").glob("*.whl")
    # auditwheel adds a directory entry for <dist>.libs/; nothing else
    assert [g for g in grafted(second) if not g.endswith("/")] == grafted(first)


# ---------------------------------------------------------------------------------------
# link layouts other linkers and options produce


@pytest.mark.parametrize(
    "flags",
    [
        ("-fuse-ld=gold",),
        ("-fuse-ld=gold", "-Wl,--hash-style=gnu", "-Wl,-z,now"),
        ("-Wl,-z,separate-code", "-Wl,-z,max-page-size=0x200000"),
        ("-Wl,-z,noseparate-code", "-Wl,--hash-style=sysv"),
        ("-Wl,--hash-style=both", "-Wl,-z,now", "-Wl,-z,relro"),
        ("-Wl,-z,norelro", "-Wl,--no-as-needed", "-lm", "-lrt"),
        ("-Wl,--build-id=none", "-Wl,-z,nodelete", "-Wl,-z,origin"),
    ],
    ids=[
        "gold",
        "gold-gnu-hash-now",
        "separate-code-2M",
        "sysv-hash",
        "both-hash-now",
        "norelro-extra-needed",
        "no-build-id-origin",
    ],
)
def test_link_layouts(tmp_path: Path, flags: tuple[str, ...]) -> None:
    a = tmp_path / "a"
    lib = _lib(a, "libcol.so.1", 5, *flags)
    ext = _ext(tmp_path / "ext", lib, *flags, f"-Wl,-rpath,{a}")
    wheel = make_wheel(tmp_path / "in", {EXT: ext})
    proc = _repair(wheel, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    [out] = (tmp_path / "out").glob("*.whl")
    assert MANY.search(out.name), out.name


@pytest.mark.parametrize(
    "flags", [("-s",), ("-Wl,--strip-all", "-fuse-ld=gold")], ids=["s", "gold-s"]
)
def test_stripped_files(tmp_path: Path, flags: tuple[str, ...]) -> None:
    a = tmp_path / "a"
    lib = _lib(a, "libcol.so.1", 5, *flags)
    ext = _ext(tmp_path / "ext", lib, *flags, f"-Wl,-rpath,{a}")
    wheel = make_wheel(tmp_path / "in", {EXT: ext})
    proc = _repair(wheel, tmp_path / "out", "--strip")
    assert proc.returncode == 0, proc.stderr


# ---------------------------------------------------------------------------------------
# libraries of the wheel and libraries outside it


def test_wheel_library_not_on_the_search_path_does_not_stand_in(tmp_path: Path) -> None:
    # pkg/libcol.so.1 sits beside the extension, but its RUNPATH names only the outside
    # directory: the loader maps the outside libcol, and so must the repaired wheel
    a = tmp_path / "a"
    lib = _lib(a, "libcol.so.1", 1)
    inside = _lib(tmp_path / "inside", "libcol.so.1", 2)
    ext = _ext(tmp_path / "ext", lib, "-Wl,--enable-new-dtags", f"-Wl,-rpath,{a}")
    wheel = make_wheel(tmp_path / "in", {EXT: ext, "pkg/libcol.so.1": inside})
    proc = _repair(wheel, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr


def test_origin_entry_that_climbs_out_of_the_wheel_is_an_outside_directory(
    tmp_path: Path,
) -> None:
    # enough ".." to reach "/" from anywhere, then down to the build tree: the loader finds
    # the library there, unrepaired; the repair must graft it and drop the entry
    a = tmp_path / "a"
    lib = _lib(a, "libcol.so.1", 4)
    climb = "$ORIGIN" + "/.." * 40 + str(a)
    ext = _ext(tmp_path / "ext", lib, "-Wl,--enable-new-dtags", f"-Wl,-rpath,{climb}")
    wheel = make_wheel(tmp_path / "in", {EXT: ext})
    proc = _repair(wheel, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    [out] = (tmp_path / "out").glob("*.whl")
    assert [g for g in grafted(out) if "libcol" in g]
    with zipfile.ZipFile(out) as zf:
        assert str(a).encode() not in zf.read(EXT)


def test_braced_origin_inside_the_wheel(tmp_path: Path) -> None:
    inside = _lib(tmp_path / "inside", "libcol.so.1", 6)
    ext = _ext(
        tmp_path / "ext", inside, "-Wl,--enable-new-dtags", "-Wl,-rpath,${ORIGIN}/../pkg_lib"
    )
    wheel = make_wheel(tmp_path / "in", {EXT: ext, "pkg_lib/libcol.so.1": inside})
    proc = _repair(wheel, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    [out] = (tmp_path / "out").glob("*.whl")
    assert MANY.search(out.name)
    assert grafted(out) == []


def test_library_without_a_soname(tmp_path: Path) -> None:
    a = tmp_path / "a"
    _cc(a / "libcol.so", "int col(void) { return 8; }\nint relabel_probe(void) { return 8; }\n")
    ext = _ext(tmp_path / "ext", f"-L{a}", "-lcol", f"-Wl,-rpath,{a}")
    wheel = make_wheel(tmp_path / "in", {EXT: ext})
    proc = _repair(wheel, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    [out] = (tmp_path / "out").glob("*.whl")
    assert MANY.search(out.name)


def test_same_soname_twice_inside_the_wheel_with_an_outside_library(tmp_path: Path) -> None:
    # pkg/a and pkg/b each hold their own libcol.so.1, found through $ORIGIN; the
    # extensions also need an outside library, so both are patched
    out_lib = _cc(
        tmp_path / "outside" / "libout.so.1",
        "int out(void) { return 100; }\n",
        "-Wl,-soname,libout.so.1",
    )
    files: dict[str, bytes | Path] = {}
    for value, sub in ((1, "a"), (2, "b")):
        inside = _lib(tmp_path / sub, "libcol.so.1", value)
        ext = _ext(
            tmp_path / f"ext-{sub}",
            inside,
            out_lib,
            "-Wl,--enable-new-dtags",
            f"-Wl,-rpath,$ORIGIN:{out_lib.parent}",
            call="col() + out()",
            decl="int col(void); int out(void);",
        )
        files[f"pkg/{sub}/_col{EXT_SUFFIX}"] = ext
        files[f"pkg/{sub}/libcol.so.1"] = inside
    wheel = make_wheel(tmp_path / "in", files)
    proc = _repair(wheel, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    [out] = (tmp_path / "out").glob("*.whl")
    assert [g for g in grafted(out) if "libcol" in g] == []


@pytest.mark.parametrize(
    "edit",
    [
        lambda t: t.replace("\n", "\r\n"),
        lambda t: t.replace("Tag:", "tag:"),
        lambda t: t.replace("Root-Is-Purelib: false", "Root-Is-Purelib: true"),
        lambda t: t.rstrip("\n"),
    ],
    ids=["crlf", "lowercase-keys", "root-is-purelib", "no-final-newline"],
)
def test_wheel_metadata_installers_accept(tmp_path: Path, edit: Callable[[str], str]) -> None:
    a = tmp_path / "a"
    lib = _lib(a, "libcol.so.1", 9)
    ext = _ext(tmp_path / "ext", lib, f"-Wl,-rpath,{a}")
    tag = f"{PY_TAG}-{PY_TAG}-linux_x86_64"
    text = f"Wheel-Version: 1.0\nGenerator: x\nRoot-Is-Purelib: false\nTag: {tag}\n\n"
    members = wheel_members({EXT: ext.read_bytes()}, wheel_text=edit(text))
    wheel = write_zip(wheel_path(tmp_path / "in"), members)
    proc = _repair(wheel, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    [out] = (tmp_path / "out").glob("*.whl")
    assert MANY.search(out.name)
    with zipfile.ZipFile(out) as zf:
        written = zf.read("demo-1.0.dist-info/WHEEL").decode()
    tags = {
        line.split(":", 1)[1].strip() for line in written.splitlines() if line.startswith("Tag:")
    }
    assert tags and all(MANY.search(t) or "manylinux1" in t for t in tags), written
    assert "linux_x86_64" not in {t.rsplit("-", 1)[1] for t in tags}


# ---------------------------------------------------------------------------------------
# settings


def test_linux_target_with_only_plat(tmp_path: Path) -> None:
    a = tmp_path / "a"
    lib = _lib(a, "libcol.so.1", 9)
    ext = _ext(tmp_path / "ext", lib, f"-Wl,-rpath,{a}")
    wheel = make_wheel(tmp_path / "in", {EXT: ext})
    proc = _repair(wheel, tmp_path / "out", "--plat", "linux_x86_64", "--only-plat")
    # the wheel as it is meets linux_x86_64, asked for by name: written with its tag
    assert proc.returncode == 0, proc.stderr
    [out] = (tmp_path / "out").glob("*.whl")
    assert out.name == wheel.name
    assert grafted(out) == []


@pytest.mark.parametrize("value", ["nonsense", "manylinux_2_5_aarch64", "manylinux_9_99_x86_64"])
def test_auditwheel_plat_that_names_no_policy(tmp_path: Path, value: str) -> None:
    a = tmp_path / "a"
    lib = _lib(a, "libcol.so.1", 9)
    ext = _ext(tmp_path / "ext", lib, f"-Wl,-rpath,{a}")
    wheel = make_wheel(tmp_path / "in", {EXT: ext})
    proc = _repair(wheel, tmp_path / "out", env={"AUDITWHEEL_PLAT": value})
    assert_clean_failure(proc, "AUDITWHEEL_PLAT", value)
    assert tree(tmp_path / "out") == []


@pytest.mark.parametrize("tmpdir", ["missing", "a-file"])
def test_tmpdir_that_is_not_a_directory(tmp_path: Path, tmpdir: str) -> None:
    a = tmp_path / "a"
    lib = _lib(a, "libcol.so.1", 9)
    ext = _ext(tmp_path / "ext", lib, f"-Wl,-rpath,{a}")
    wheel = make_wheel(tmp_path / "in", {EXT: ext})
    target = tmp_path / tmpdir
    if tmpdir == "a-file":
        target.write_text("")
    env = {"TMPDIR": str(target), "PYTHONWARNINGS": "error"}
    proc = run_relabel("repair", "-w", tmp_path / "out", wheel, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr


def test_library_met_under_two_names(tmp_path: Path) -> None:
    # The extension needs "libcol.so" (linked against a copy without SONAME); libmid needs
    # "libcol.so.1". At run time libcol.so is a link to the file whose SONAME is
    # libcol.so.1: ld.so maps it once, and libmid's entry matches it by SONAME.
    a = tmp_path / "a"
    real = _lib(a, "libcol.so.1", 3)
    stub = _cc(tmp_path / "stub" / "libcol.so", "int col(void) { return 0; }\n")
    (a / "libcol.so").symlink_to("libcol.so.1")
    mid = _cc(
        a / "libmid.so.1",
        "int col(void);\nint mid(void) { return col() * 10; }\n",
        "-Wl,-soname,libmid.so.1",
        real,
    )
    ext = _ext(
        tmp_path / "ext",
        f"-L{stub.parent}",
        "-lcol",
        mid,
        "-Wl,--enable-new-dtags",
        f"-Wl,-rpath,{a}",
        call="col() + mid()",
        decl="int col(void); int mid(void);",
    )
    wheel = make_wheel(tmp_path / "in", {EXT: ext})
    proc = _repair(wheel, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(
    "suffix", [".li:bs", ".libs$ORIGIN", ".libs${LIB}", ".dist-info", ".data", " .libs", ""]
)
def test_lib_sdir_that_an_rpath_cannot_hold(tmp_path: Path, suffix: str) -> None:
    a = tmp_path / "a"
    lib = _lib(a, "libcol.so.1", 9)
    ext = _ext(tmp_path / "ext", lib, f"-Wl,-rpath,{a}")
    wheel = make_wheel(tmp_path / "in", {EXT: ext})
    proc = _repair(wheel, tmp_path / "out", f"--lib-sdir={suffix}")
    if proc.returncode != 0:
        assert_clean_failure(proc, suffix)
        assert tree(tmp_path / "out") == []
        return
    [out] = (tmp_path / "out").glob("*.whl")
    with zipfile.ZipFile(out) as zf:
        tops = {n.split("/", 1)[0] for n in zf.namelist()}
    # pip refuses a wheel with two .dist-info directories, and so does relabel
    assert len([t for t in tops if t.endswith(".dist-info")]) == 1, tops


def _needed_offsets(path: Path) -> tuple[bytearray, list[tuple[int, str, int]]]:
    """The file's bytes and, per DT_NEEDED entry, (file offset of the entry, name, d_val)."""
    import struct

    from elftools.elf.elffile import ELFFile

    data = bytearray(path.read_bytes())
    with path.open("rb") as stream:
        dynamic = ELFFile(stream).get_section_by_name(".dynamic")
        offset = dynamic["sh_offset"]
        names = [t.needed for t in dynamic.iter_tags() if t.entry.d_tag == "DT_NEEDED"]
    entries = []
    for i in range(len(data[offset:]) // 16):
        tag, value = struct.unpack_from("<qQ", data, offset + 16 * i)
        if tag == 0:
            break
        if tag == 1:
            entries.append((offset + 16 * i, names[len(entries)], value))
    return data, entries


def test_the_same_library_needed_twice_by_one_file(tmp_path: Path) -> None:
    # two DT_NEEDED entries with one name (ld never writes them; hand-edited files do):
    # ld.so maps it once, and every entry must name the grafted copy
    import struct

    a = tmp_path / "a"
    lib = _lib(a, "libcol.so.1", 9)
    ext = _ext(tmp_path / "ext", lib, "-Wl,--no-as-needed", "-lm", f"-Wl,-rpath,{a}")
    data, entries = _needed_offsets(ext)
    by_name = {name: (at, value) for at, name, value in entries}
    at, _ = by_name["libm.so.6"]
    struct.pack_into("<qQ", data, at, 1, by_name["libcol.so.1"][1])
    ext.write_bytes(bytes(data))
    wheel = make_wheel(tmp_path / "in", {EXT: ext})
    proc = _repair(wheel, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("directory", ["pkg/ünï", "pkg/with space", "pkg/a%b", "pkg/a:b"])
def test_extension_in_a_directory_with_an_odd_name(tmp_path: Path, directory: str) -> None:
    a = tmp_path / "a"
    lib = _lib(a, "libcol.so.1", 9)
    ext = _ext(tmp_path / "ext", lib, f"-Wl,-rpath,{a}")
    wheel = make_wheel(tmp_path / "in", {f"{directory}/_col{EXT_SUFFIX}": ext})
    proc = _repair(wheel, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    [out] = (tmp_path / "out").glob("*.whl")
    assert_valid_wheel(out)


def test_graft_whose_name_is_already_a_member_of_the_wheel(tmp_path: Path) -> None:
    # The wheel already holds demo.libs/libcol-<hash>.so.1 (another library, used by
    # pkg/_old through $ORIGIN) under the very name the graft of the outside libcol gets
    import hashlib

    a = tmp_path / "a"
    lib = _lib(a, "libcol.so.1", 1)
    name = f"libcol-{hashlib.sha256(lib.read_bytes()).hexdigest()[:8]}.so.1"
    other = _lib(tmp_path / "other", name, 2)
    ext = _ext(tmp_path / "ext", lib, f"-Wl,-rpath,{a}")
    old = _ext(
        tmp_path / "old", other, "-Wl,--enable-new-dtags", "-Wl,-rpath,$ORIGIN/../../demo.libs"
    )
    files: dict[str, bytes | Path] = {
        EXT: ext,
        f"pkg/_old/_col{EXT_SUFFIX}": old,
        f"demo.libs/{name}": other,
    }
    wheel = make_wheel(tmp_path / "in", files)
    proc = _repair(wheel, tmp_path / "out")
    if proc.returncode != 0:
        assert_clean_failure(proc, name)
        return
    [out] = (tmp_path / "out").glob("*.whl")
    assert_valid_wheel(out)
    # the installed-layout check cannot tell (pkg/_old does not load unrepaired outside
    # its wheel): run both extensions once installed
    code = "import pkg._col as n, pkg._old._col as o; print(n.value(), o.value())"
    assert install_and_run(tmp_path / "venv", out, code).split() == ["1", "2"]


def _two_executables(tmp_path: Path) -> tuple[Path, Path]:
    """Two executables printing col(), one from a library giving 1, one giving 2."""
    out = []
    for value in (1, 2):
        d = tmp_path / f"lib{value}"
        lib = _lib(d, f"libcol{value}.so.1", value)
        out.append(_exe(tmp_path / f"bin{value}" / "colrun", lib, f"-Wl,-rpath,{d}"))
    return out[0], out[1]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param(
            "demo-1.0.data/scripts/colrun",
            "demo-1.0.data/scripts/sub/colrun",
        ),
        pytest.param(
            "demo-1.0.data/scripts/colrun",
            "demo.scripts/colrun",
        ),
    ],
    ids=["scripts-subdirectory", "scripts-dir-taken"],
)
def test_moved_executables_that_would_share_a_name(tmp_path: Path, first: str, second: str) -> None:
    one, two = _two_executables(tmp_path)
    wheel = make_wheel(tmp_path / "in", {first: one, second: two})
    proc = _repair(wheel, tmp_path / "out")
    if proc.returncode != 0:
        # refused: the message names the member the move would replace
        assert_clean_failure(proc, repr(second), "already a member")
        assert tree(tmp_path / "out") == []
        return
    [out] = (tmp_path / "out").glob("*.whl")
    assert_valid_wheel(out)
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
    assert len(names) == len(set(names))


def test_libs_directory_name_taken_by_a_file(tmp_path: Path) -> None:
    a = tmp_path / "a"
    lib = _lib(a, "libcol.so.1", 1)
    ext = _ext(tmp_path / "ext", lib, f"-Wl,-rpath,{a}")
    wheel = make_wheel(tmp_path / "in", {EXT: ext, "demo.libs": b"not a directory\n"})
    proc = _repair(wheel, tmp_path / "out")
    if proc.returncode != 0:
        assert_clean_failure(proc, "demo.libs")
        assert tree(tmp_path / "out") == []
        return
    [out] = (tmp_path / "out").glob("*.whl")
    assert_valid_wheel(out)


def test_glibc_hwcaps_variant_is_not_grafted(tmp_path: Path) -> None:
    # ld.so prefers <dir>/glibc-hwcaps/x86-64-v2/ on a CPU that has it; a manylinux wheel
    # must run on every x86_64 CPU, so the baseline library is the one to graft (the
    # installed-layout check would compare with this CPU's choice, hence not run here)
    a = tmp_path / "a"
    base = _lib(a, "libcol.so.1", 1)
    _lib(a / "glibc-hwcaps" / "x86-64-v2", "libcol.so.1", 2)
    ext = _ext(tmp_path / "ext", base, f"-Wl,-rpath,{a}")
    wheel = make_wheel(tmp_path / "in", {EXT: ext})
    out_dir = tmp_path / "out"
    proc = run_relabel(
        "repair", "-w", out_dir, wheel, tmpdir=tmp_path / "tmp", check_installed=False
    )
    assert proc.returncode == 0, proc.stderr
    assert f"from {base} as " in proc.stderr + proc.stdout


MUSL_LIBDIR = Path("/usr/lib/x86_64-linux-musl")


def test_musl_extension_needing_a_glibc_library(tmp_path: Path) -> None:
    # libg was built against glibc (needs libc.so.6): no musl system can provide it. auditwheel
    # refuses; a musllinux wheel must not carry a copy of glibc (nor of musl itself)
    if shutil.which("musl-gcc") is None or not (MUSL_LIBDIR / "libc.so").exists():
        pytest.skip("musl-gcc and musl's libc.so are needed")
    a = tmp_path / "a"
    libg = _cc(
        a / "libg.so.1",
        '#include <stdio.h>\nint col(void) { return puts("x") > 0; }\n',
        "-Wl,-soname,libg.so.1",
    )
    src = tmp_path / "m.c"
    src.write_text("int col(void);\nint val(void) { return col(); }\n")
    name = f"_m.cpython-{PY_TAG[2:]}-x86_64-linux-musl.so"
    ext = tmp_path / name
    subprocess.run(
        ["musl-gcc", "-shared", "-fPIC", "-o", ext, src, libg, f"-Wl,-rpath,{a}"], check=True
    )
    wheel = make_wheel(tmp_path / "in", {f"pkg/{name}": ext})
    proc = _repair(wheel, tmp_path / "out", "--library-dir", MUSL_LIBDIR, check_installed=False)
    # libg is passed over as a file of another architecture would be: not found, refused
    assert_clean_failure(proc, "libg.so.1", "built for glibc (needs libc.so.6)")
    assert tree(tmp_path / "out") == []


def test_dst_token_under_a_sysroot_is_refused(tmp_path: Path) -> None:
    # under another root no loader here can say what $LIB means there: refused, not guessed
    a = tmp_path / "sysroot" / "lib64"
    lib = _lib(a, "libcol.so.1", 1)
    ext = _ext(tmp_path / "ext", lib, "-Wl,--enable-new-dtags", "-Wl,-rpath,/$LIB")
    wheel = make_wheel(tmp_path / "in", {EXT: ext})
    proc = _repair(wheel, tmp_path / "out", "--sysroot", tmp_path / "sysroot")
    assert_clean_failure(proc, "/$LIB", "$LIB or $PLATFORM")
    assert tree(tmp_path / "out") == []


def test_grafted_library_with_runpath_then_rpath_keeps_one_entry(tmp_path: Path) -> None:
    # libmid (grafted) has DT_RUNPATH c:b and a DT_RPATH b after it; once repaired it must
    # hold one entry, $ORIGIN: a surviving DT_RPATH b would be the one ld.so reads
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    mid = _mid(a, b, c, f"{c}:{b}")
    _add_tag(mid, 15, 29, skip=f"{c}:")
    ext = _ext(tmp_path / "ext", mid, f"-Wl,-rpath,{a}", call="mid()", decl="int mid(void);")
    wheel = make_wheel(tmp_path / "in", {EXT: ext})
    proc = _repair(wheel, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    [out] = (tmp_path / "out").glob("*.whl")
    [member] = [g for g in grafted(out) if "libmid" in g]
    with zipfile.ZipFile(out) as zf:
        (tmp_path / "mid.so").write_bytes(zf.read(member))
    dynamic = subprocess.run(
        ["readelf", "-d", tmp_path / "mid.so"], capture_output=True, text=True, check=True
    ).stdout
    paths = [line for line in dynamic.splitlines() if "PATH)" in line]
    assert len(paths) == 1 and "[$ORIGIN]" in paths[0], paths
