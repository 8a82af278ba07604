"""Loader rules at the edges, on gcc-built files: untrusted sonames and DT_NEEDED paths,
the environment's search path (auditwheel's variable, empty entries), self-references,
huge lists of missing libraries, unreadable loader configuration, and the C library of
files that name none."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from relabel import elf
from relabel.errors import LibraryError, LibraryNotFoundError, PolicyError, WheelError
from relabel.plan import describe_blockers
from relabel.repair import Options, analyze, repair
from relabel.resolve import Resolver

from .conftest import EXT_SUFFIX, PY_TAG, make_wheel, run_module
from .graph_support import build_root, extension, library, linked, member_dynamic


@dataclass(frozen=True)
class Files:
    root: Path
    foo_dir: Path  # libfoo.so.1
    ext_nopath: Path  # _np: needs libfoo.so.1, no RPATH/RUNPATH
    build: Path  # holds rel/libnoso.so (no soname)
    ext_relative: Path  # _rel: DT_NEEDED "rel/libnoso.so"
    ext_absolute: Path  # _abs: DT_NEEDED "<build>/rel/libnoso.so"
    bad_sonames: dict[str, Path]  # soname -> library carrying it
    backslash_dir: Path  # lib\x.so.1 (soname with a backslash)
    ext_backslash: Path  # _bs: needs lib\x.so.1, DT_RUNPATH -> backslash_dir
    static_exe: Path


def _run(cmd: list[str], cwd: Path | None = None) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


@pytest.fixture(scope="session")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    root, src = build_root(tmp_path_factory, "rules")
    foo_dir = root / "foo"
    library(foo_dir / "libfoo.so.1", "libfoo.so.1", "int foo(void) { return 42; }\n", src=src)
    ext_nopath = extension(
        root / "ext",
        "_np",
        "int foo(void);",
        "foo()",
        *linked(foo_dir / "libfoo.so.1"),
        cwd=src,
    )
    build = root / "build"
    library(build / "rel" / "libnoso.so", None, "int noso(void) { return 3; }\n", src=src)
    # linked by path with no soname: ld records the path as given, slash included
    ext_relative = extension(
        root / "ext", "_rel", "int noso(void);", "noso()", "rel/libnoso.so", cwd=build
    )
    ext_absolute = extension(
        root / "ext",
        "_abs",
        "int noso(void);",
        "noso()",
        str(build / "rel" / "libnoso.so"),
        cwd=build,
    )
    bad: dict[str, Path] = {}
    for index, soname in enumerate(("../../../../tmp/x.so", ".", "..", "sub/x.so")):
        bad[soname] = library(
            root / "bad" / f"libbad{index}.so", soname, "int bad(void) { return 1; }\n", src=src
        )
    backslash_dir = root / "backslash"
    library(backslash_dir / "lib\\x.so.1", "lib\\x.so.1", "int bx(void) { return 9; }\n", src=src)
    ext_backslash = extension(
        root / "ext",
        "_bs",
        "int bx(void);",
        "bx()",
        str(backslash_dir / "lib\\x.so.1"),
        "-Wl,--enable-new-dtags",
        f"-Wl,-rpath,{backslash_dir}",
        cwd=src,
    )
    (src / "static.c").write_text("int main(void) { return 0; }\n")
    static_exe = root / "static"
    try:
        _run(["gcc", "-static", "-o", str(static_exe), "static.c"], cwd=src)
    except AssertionError:
        static_exe = root / "missing"
    return Files(
        root,
        foo_dir,
        ext_nopath,
        build,
        ext_relative,
        ext_absolute,
        bad,
        backslash_dir,
        ext_backslash,
        static_exe,
    )


def relabel(
    *args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("LD_LIBRARY_PATH", "AUDITWHEEL_LD_LIBRARY_PATH")
        and not k.startswith("RELABEL")
    }
    return run_module("relabel", *args, env={**base, **(env or {})}, cwd=cwd)


def auditwheel(
    *args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    pytest.importorskip("auditwheel")
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("LD_LIBRARY_PATH", "AUDITWHEEL_LD_LIBRARY_PATH")
    }
    base["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), base.get("PATH", "")])
    return run_module("auditwheel", *args, env={**base, **(env or {})}, cwd=cwd)


def show_json(wheel: Path, *args: str, **kwargs: object) -> dict[str, object]:
    proc = relabel("show", "--json", wheel, *args, **kwargs)  # type: ignore[arg-type]
    assert proc.returncode in (0, 1), (proc.stdout, proc.stderr)
    return dict(json.loads(proc.stdout))


# ---------------------------------------------------------------------------------------
# untrusted sonames become no names


@pytest.mark.parametrize("soname", ["../../../../tmp/x.so", ".", "..", "sub/x.so"])
def test_included_library_with_a_path_for_soname_is_refused(
    files: Files, tmp_path: Path, soname: str
) -> None:
    wheel = make_wheel(tmp_path / "in", {f"_np{EXT_SUFFIX}": files.ext_nopath})
    out = tmp_path / "out"
    (tmp_path / "tmp").mkdir()
    proc = relabel(
        "repair",
        wheel,
        "-w",
        out,
        "--include",
        files.bad_sonames[soname],
        env={"TMPDIR": str(tmp_path / "tmp"), "LD_LIBRARY_PATH": str(files.foo_dir)},
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert str(files.bad_sonames[soname]) in proc.stderr
    assert f"its SONAME {soname!r} is not a plain file name" in proc.stderr
    assert not out.exists() or list(out.iterdir()) == []
    assert list((tmp_path / "tmp").iterdir()) == []
    assert not (tmp_path.parent / "x.so").exists()


def test_graft_whose_name_is_not_a_plain_member_name_is_refused(
    files: Files, tmp_path: Path
) -> None:
    wheel = make_wheel(tmp_path / "in", {f"_bs{EXT_SUFFIX}": files.ext_backslash})
    with pytest.raises(WheelError, match=r"is not a plain relative path inside the wheel"):
        repair(wheel, tmp_path / "out", Options())
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_unreadable_included_library_is_a_clean_error(
    files: Files, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parsed once, then unreadable (as root, a mode cannot make it so): the copy fails."""
    victim = files.foo_dir / "libfoo.so.1"
    real_open = Path.open
    opened: list[Path] = []

    def guarded(self: Path, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        if self == victim:
            opened.append(self)
            if len(opened) > 1:
                raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "open", guarded)
    wheel = make_wheel(tmp_path / "in", {f"_np{EXT_SUFFIX}": files.ext_nopath})
    options = Options(include=(str(victim),), library_dirs=(str(files.foo_dir),))
    with pytest.raises(LibraryError, match=r"libfoo\.so\.1: cannot be read \(Permission denied\)"):
        repair(wheel, tmp_path / "out", options)
    assert len(opened) == 2


# ---------------------------------------------------------------------------------------
# DT_NEEDED with a slash


@pytest.mark.parametrize("which", ["relative", "absolute"])
def test_needed_path_is_never_resolved_or_grafted(files: Files, tmp_path: Path, which: str) -> None:
    ext = files.ext_relative if which == "relative" else files.ext_absolute
    entry = "rel/libnoso.so" if which == "relative" else str(files.build / "rel" / "libnoso.so")
    member = f"pkg/{ext.name}"
    wheel = make_wheel(tmp_path / "in", {member: ext})
    # run where the relative path exists: relabel's own working directory means nothing
    report = show_json(wheel, cwd=files.build)
    assert report["external_libs"] == {entry: None}
    [finding] = [f for f in report["findings"] if f["kind"] == "path-needed"]  # type: ignore[union-attr,index]
    assert (finding["file"], finding["library"]) == (member, entry)
    proc = relabel("repair", wheel, "-w", tmp_path / "out", "--plat", "manylinux_2_17_x86_64")
    assert proc.returncode == 1, proc.stderr
    assert f"{member} -> {entry} (a path, not a library name" in proc.stderr
    assert "cannot be made portable" in proc.stderr
    assert "To fix: link against libraries that have a SONAME" in proc.stderr
    result = repair(wheel, tmp_path / "auto", Options())
    assert result.plan is not None
    assert result.plan.keeps_linux
    assert result.plan.grafts == ()
    if which == "absolute":
        # auditwheel takes the path as found (os.path.join keeps an absolute path) and
        # would graft the build machine's file
        theirs = json.loads(auditwheel("show", "--json", wheel).stdout)
        assert theirs["external_libs"] == {entry: entry}


# ---------------------------------------------------------------------------------------
# the environment's search path


def test_empty_ld_library_path_entry_is_not_the_working_directory(
    files: Files, tmp_path: Path
) -> None:
    """ld.so reads an empty entry as the working directory; that of the process that will
    import the wheel is not relabel's, so relabel ignores it (auditwheel follows it)."""
    wheel = make_wheel(tmp_path / "in", {f"_np{EXT_SUFFIX}": files.ext_nopath})
    for value in (":", "::", f"{tmp_path}:"):
        report = show_json(wheel, env={"LD_LIBRARY_PATH": value}, cwd=files.foo_dir)
        assert report["external_libs"] == {"libfoo.so.1": None}, value
    found = show_json(wheel, env={"LD_LIBRARY_PATH": str(files.foo_dir)})
    assert found["external_libs"] == {"libfoo.so.1": str(files.foo_dir / "libfoo.so.1")}
    # auditwheel follows the entry, but from the directory it unpacked the wheel into,
    # so it does not find the library in the caller's directory either
    theirs = auditwheel("show", "--json", wheel, env={"LD_LIBRARY_PATH": ":"}, cwd=files.foo_dir)
    assert json.loads(theirs.stdout)["external_libs"] == {"libfoo.so.1": None}


def test_auditwheel_ld_library_path_is_searched_as_auditwheel_does(
    files: Files, tmp_path: Path
) -> None:
    wheel = make_wheel(tmp_path / "in", {f"_np{EXT_SUFFIX}": files.ext_nopath})
    expected = {"libfoo.so.1": str(files.foo_dir / "libfoo.so.1")}
    cases = [
        ({"AUDITWHEEL_LD_LIBRARY_PATH": str(files.foo_dir)}, (), expected),
        # --ldpaths replaces the system directories and leaves LD_LIBRARY_PATH out ...
        ({"LD_LIBRARY_PATH": str(files.foo_dir)}, ("--ldpaths", str(tmp_path)), None),
        # ... but not AUDITWHEEL_LD_LIBRARY_PATH
        (
            {"AUDITWHEEL_LD_LIBRARY_PATH": str(files.foo_dir)},
            ("--ldpaths", str(tmp_path)),
            expected,
        ),
    ]
    for env, args, libs in cases:
        ours = show_json(wheel, *args, env=env)
        theirs = json.loads(auditwheel("show", "--json", *args, wheel, env=env).stdout)
        if libs is None:
            assert ours["external_libs"] == theirs["external_libs"] == {"libfoo.so.1": None}
        else:
            assert ours["external_libs"] == theirs["external_libs"] == libs, (env, args)


def test_exclude_also_drops_libpython(files: Files, tmp_path: Path) -> None:
    ext = tmp_path / f"_np{EXT_SUFFIX}"
    shutil.copyfile(files.ext_nopath, ext)
    _run(["patchelf", "--add-needed", "libpython3.11.so.1.0", str(ext)])
    wheel = make_wheel(tmp_path / "in", {ext.name: ext})
    env = {"LD_LIBRARY_PATH": str(files.foo_dir)}
    ours = show_json(wheel, "--exclude", "libpython*", env=env)
    assert ours["external_libs"] == {"libfoo.so.1": str(files.foo_dir / "libfoo.so.1")}
    assert "libpython3.11.so.1.0" in show_json(wheel, env=env)["external_libs"]  # type: ignore[operator]
    # excluded, the entry stays in DT_NEEDED, as auditwheel repair leaves it
    result = repair(
        wheel,
        tmp_path / "out",
        Options(exclude=("libpython*",), library_dirs=(str(files.foo_dir),)),
    )
    ours_needed = member_dynamic(result.output, ext.name, tmp_path / "x")["NEEDED"]
    proc = auditwheel("repair", "--exclude", "libpython*", "-w", tmp_path / "aw", wheel, env=env)
    assert proc.returncode == 0, proc.stderr
    [theirs] = (tmp_path / "aw").iterdir()
    assert theirs.name == result.output.name
    theirs_needed = member_dynamic(theirs, ext.name, tmp_path / "y")["NEEDED"]
    assert "libpython3.11.so.1.0" in ours_needed
    assert "libpython3.11.so.1.0" in theirs_needed
    assert [n.split("-")[0] for n in ours_needed] == [n.split("-")[0] for n in theirs_needed]


# ---------------------------------------------------------------------------------------
# self-references, huge failures, unreadable configuration


def test_library_needing_its_own_soname_is_found(files: Files, tmp_path: Path) -> None:
    lib = tmp_path / "libself.so.1"
    library(lib, "libself.so.1", "int self(void) { return 1; }\n", src=tmp_path)
    _run(["patchelf", "--add-needed", "libself.so.1", str(lib)])
    wheel = make_wheel(tmp_path / "in", {"pkg/libself.so.1": lib})
    audit = analyze(wheel, Options()).audit
    assert audit is not None
    assert [f for f in audit.findings() if f.kind == "library-not-found"] == []
    assert audit.overall.policy.name == "manylinux_2_5_x86_64"
    # ld.so agrees
    _run([sys.executable, "-c", f"import ctypes; ctypes.CDLL({str(lib)!r})"])


def test_twenty_thousand_missing_libraries_make_a_short_message(
    files: Files, tmp_path: Path
) -> None:
    ext = tmp_path / f"_np{EXT_SUFFIX}"
    shutil.copyfile(files.ext_nopath, ext)
    names = [f"libmissing{i}.so.1" for i in range(20_000)]
    _run(["patchelf", *(a for n in names for a in ("--add-needed", n)), str(ext)])
    wheel = make_wheel(tmp_path / "in", {ext.name: ext})
    with pytest.raises(PolicyError) as info:
        repair(wheel, tmp_path / "out", Options(plat="manylinux_2_17_x86_64"))
    message = str(info.value)
    assert len(message) < 20_000, len(message)
    assert "20001 libraries not found" in message  # libfoo.so.1 is missing as well
    assert "and 19951 more" in message
    error = LibraryNotFoundError([(n, ext.name, ("/usr/lib", "/lib")) for n in names])
    assert len(str(error)) < 20_000
    assert str(error).count("/usr/lib") == 1
    assert len(error.missing) == 20_000


def test_grouped_blockers_keep_single_misses_as_they_were() -> None:
    from relabel.audit import Finding

    one = Finding("_a.so", "library-not-found", library="libx.so.1", searched=("/usr/lib",))
    assert describe_blockers([one]) == [one.describe()]


def test_unreadable_ld_so_conf_include_is_passed_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "sysroot"
    (root / "etc" / "ld.so.conf.d" / "dir.conf").mkdir(parents=True)  # a directory
    (root / "etc" / "ld.so.conf.d" / "b.conf").write_text("/opt/b\n")
    (root / "etc" / "ld.so.conf.d" / "c.conf").write_text("/opt/c\n")
    (root / "etc" / "ld.so.conf").write_text("include /etc/ld.so.conf.d/*.conf\n/opt/a\n")
    for sub in ("opt/a", "opt/b", "opt/c"):
        (root / sub).mkdir(parents=True)
    victim = root / "etc" / "ld.so.conf.d" / "c.conf"
    real_read = Path.read_text

    def guarded(self: Path, *args: object, **kwargs: object) -> str:
        if self == victim:
            raise PermissionError(13, "Permission denied", str(self))
        return real_read(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "read_text", guarded)
    info = elf.read_elf(sys.executable)
    dirs = Resolver(root=str(root)).system_dirs(info)
    assert str(root / "opt" / "a") in dirs
    assert str(root / "opt" / "b") in dirs
    assert str(root / "opt" / "c") not in dirs


def test_unreadable_musl_path_file_falls_back_to_the_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "sysroot"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "ld-musl-x86_64.path").mkdir()  # reading it fails
    (root / "usr" / "lib").mkdir(parents=True)
    info = elf.read_elf(sys.executable)
    musl = type(info)(**{**info.__dict__, "interpreter": "/lib/ld-musl-x86_64.so.1"})
    assert str(root / "usr" / "lib") in Resolver(root=str(root)).system_dirs(musl)


# ---------------------------------------------------------------------------------------
# C library of files that name none


def test_static_executable_on_a_glibc_host_is_manylinux(files: Files, tmp_path: Path) -> None:
    if not files.static_exe.exists():
        pytest.skip("no static C library to link against")
    tag = f"{PY_TAG}-{PY_TAG}-manylinux1_x86_64.musllinux_1_1_x86_64"
    wheel = make_wheel(tmp_path / "in", {"pkg/static": files.static_exe}, tag=tag)
    ours = show_json(wheel)
    assert ours["overall_tag"] == "manylinux_2_5_x86_64"
    theirs = json.loads(auditwheel("show", "--json", wheel).stdout)
    assert theirs["overall_tag"] == ours["overall_tag"]
    # a repair keeps the musllinux claim: the file names no C library, so it runs under
    # both, and auditwheel keeps it too
    out = repair(wheel, tmp_path / "out", Options()).output
    platforms = set(out.name[: -len(".whl")].rsplit("-", 1)[1].split("."))
    assert platforms == {"manylinux1_x86_64", "manylinux_2_5_x86_64", "musllinux_1_1_x86_64"}
    # tags for both families say nothing: with a sysroot that holds no C library, glibc
    bare = tmp_path / "bare"
    bare.mkdir()
    assert analyze(wheel, Options(sysroot=str(bare))).libc == "glibc"


def test_static_executable_tagged_for_one_c_library_keeps_it(files: Files, tmp_path: Path) -> None:
    if not files.static_exe.exists():
        pytest.skip("no static C library to link against")
    # a static Rust tool published only as musllinux: the tag decides, as in auditwheel
    tag = f"{PY_TAG}-{PY_TAG}-musllinux_1_2_x86_64"
    wheel = make_wheel(tmp_path / "in", {"pkg/static": files.static_exe}, tag=tag)
    ours = show_json(wheel)
    assert ours["overall_tag"] == "musllinux_1_1_x86_64"  # nothing in it needs musl 1.2
    theirs = json.loads(auditwheel("show", "--json", wheel).stdout)
    assert theirs["overall_tag"] == "musllinux_1_2_x86_64"  # auditwheel assumes the host's


def test_extension_suffix_names_the_c_library(files: Files, tmp_path: Path) -> None:
    if not files.static_exe.exists():
        pytest.skip("no static C library to link against")
    # an ELF file naming no C library, under a musl extension suffix
    wheel = make_wheel(
        tmp_path / "in", {"pkg/_x.cpython-311-x86_64-linux-musl.so": files.static_exe}
    )
    assert analyze(wheel, Options()).libc == "musl"
