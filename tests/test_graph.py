"""The dependency graph on real files: libraries identified by their file, wheel libraries
resolved from the files that load them, RPATHs from where members are installed.

Every repaired wheel here is installed into a scratch site-packages, the directories the
libraries were built in are renamed away, and each extension is imported with
LD_BIND_NOW=1 in a clean process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from relabel.errors import PolicyError
from relabel.repair import Options, analyze, repair

from .conftest import EXT_SUFFIX, make_wheel, run_module
from .graph_support import (
    build_root,
    dynamic,
    extension,
    library,
    linked,
    load_installed,
    member_dynamic,
    members,
)

COL = "int col(void) {{ return {value}; }}\n"


@dataclass(frozen=True)
class Graph:
    root: Path
    col_dirs: tuple[Path, Path, Path]  # libcol.so.1 returning 1, 2, and 1 (same bytes)
    ext_col: tuple[Path, Path, Path]  # _c1, _c2, _c3: each DT_RUNPATH -> its col dir
    libs: Path  # pkg.libs as found in a repaired wheel: libA (no RPATH) needs libB beside it
    ext_a: Path  # _a: DT_RPATH=$ORIGIN/../pkg.libs, needs libA.so.1 only
    ext_a_runpath: Path  # _ar: the same with DT_RUNPATH (ld.so does not pass it down)
    foo_dir: Path  # libfoo.so.1 (returns 42)
    ext_foo: Path  # _pf: DT_RUNPATH -> foo_dir, needs libfoo.so.1


@pytest.fixture(scope="session")
def graph(tmp_path_factory: pytest.TempPathFactory) -> Graph:
    root, src = build_root(tmp_path_factory, "graph")
    col_dirs = (root / "col1", root / "col2", root / "col3")
    library(col_dirs[0] / "libcol.so.1", "libcol.so.1", COL.format(value=1), src=src)
    library(col_dirs[1] / "libcol.so.1", "libcol.so.1", COL.format(value=2), src=src)
    col_dirs[2].mkdir()
    shutil.copyfile(col_dirs[0] / "libcol.so.1", col_dirs[2] / "libcol.so.1")
    ext_col = tuple(
        extension(
            root / f"ext{i}",
            f"_c{i}",
            "int col(void);",
            "col()",
            *linked(d / "libcol.so.1", runpath=True),
            cwd=src,
        )
        for i, d in enumerate(col_dirs, 1)
    )
    libs = root / "build" / "pkg.libs"
    library(libs / "libB.so.1", "libB.so.1", "int b(void) { return 5; }\n", src=src)
    library(
        libs / "libA.so.1",
        "libA.so.1",
        "int b(void);\nint a(void) { return b() + 1; }\n",
        *linked(libs / "libB.so.1"),
        src=src,
    )
    link_a = [*linked(libs / "libA.so.1"), f"-Wl,-rpath-link,{libs}"]
    ext_a = extension(
        root / "build" / "pkg",
        "_a",
        "int a(void);",
        "a()",
        *link_a,
        "-Wl,--disable-new-dtags",
        "-Wl,-rpath,$ORIGIN/../pkg.libs",
        cwd=src,
    )
    ext_a_runpath = extension(
        root / "build" / "pkg",
        "_ar",
        "int a(void);",
        "a()",
        *link_a,
        "-Wl,--enable-new-dtags",
        "-Wl,-rpath,$ORIGIN/../pkg.libs",
        cwd=src,
    )
    foo_dir = root / "foo"
    library(foo_dir / "libfoo.so.1", "libfoo.so.1", "int foo(void) { return 42; }\n", src=src)
    ext_foo = extension(
        root / "extfoo",
        "_pf",
        "int foo(void);",
        "foo()",
        *linked(foo_dir / "libfoo.so.1", runpath=True),
        cwd=src,
    )
    return Graph(
        root,
        col_dirs,
        ext_col,  # type: ignore[arg-type]
        libs,
        ext_a,
        ext_a_runpath,
        foo_dir,
        ext_foo,
    )


def _auditwheel(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return run_module("auditwheel", *args, env=env)


# ---------------------------------------------------------------------------------------
# a library is its file, not its soname


def test_two_files_with_one_soname_get_two_grafts(graph: Graph, tmp_path: Path) -> None:
    c1, c2, _ = graph.ext_col
    wheel = make_wheel(
        tmp_path / "in",
        {"pkg/__init__.py": b"", f"pkg/_c1{EXT_SUFFIX}": c1, f"pkg/_c2{EXT_SUFFIX}": c2},
    )
    result = repair(wheel, tmp_path / "out", Options())
    assert result.plan is not None
    grafts = {g.source: g for g in result.plan.grafts}
    sources = {str((d / "libcol.so.1").resolve()) for d in graph.col_dirs[:2]}
    assert set(grafts) == sources
    names = {g.new_name for g in grafts.values()}
    assert len(names) == 2
    assert all(n.startswith("libcol-") and n.endswith(".so.1") for n in names)
    assert {g.needed_by for g in grafts.values()} == {
        (f"pkg/_c1{EXT_SUFFIX}",),
        (f"pkg/_c2{EXT_SUFFIX}",),
    }
    # each extension points at its own copy
    for ext, col_dir in zip(("_c1", "_c2"), graph.col_dirs):
        own = grafts[str((col_dir / "libcol.so.1").resolve())]
        needed = member_dynamic(result.output, f"pkg/{ext}{EXT_SUFFIX}", tmp_path / "x")["NEEDED"]
        assert own.new_name in needed
    # both load in one process, each running its own code (before the repair, ld.so would
    # give the second extension the first one's libcol.so.1, matched by soname)
    loaded = load_installed(
        result.output, tmp_path / "site", ["pkg._c1", "pkg._c2"], hide=graph.col_dirs
    )
    assert loaded == {"pkg._c1": 1, "pkg._c2": 2}


def test_identical_files_are_grafted_once(graph: Graph, tmp_path: Path) -> None:
    c1, _, c3 = graph.ext_col
    wheel = make_wheel(tmp_path / "in", {f"_c1{EXT_SUFFIX}": c1, f"_c3{EXT_SUFFIX}": c3})
    result = repair(wheel, tmp_path / "out", Options())
    assert result.plan is not None
    [graft] = result.plan.grafts
    assert graft.needed_by == (f"_c1{EXT_SUFFIX}", f"_c3{EXT_SUFFIX}")
    assert [n for n in members(result.output) if n.startswith("demo.libs/")] == [graft.member]
    loaded = load_installed(result.output, tmp_path / "site", ["_c1", "_c3"], hide=graph.col_dirs)
    assert loaded == {"_c1": 1, "_c3": 1}


@pytest.mark.skipif(shutil.which("patchelf") is None, reason="auditwheel needs patchelf")
def test_auditwheel_also_grafts_two_copies(graph: Graph, tmp_path: Path) -> None:
    pytest.importorskip("auditwheel")
    c1, c2, _ = graph.ext_col
    wheel = make_wheel(tmp_path / "in", {f"_c1{EXT_SUFFIX}": c1, f"_c2{EXT_SUFFIX}": c2})
    proc = _auditwheel("repair", str(wheel), "-w", str(tmp_path / "aw"))
    assert proc.returncode == 0, proc.stderr
    [theirs] = (tmp_path / "aw").iterdir()
    ours = repair(wheel, tmp_path / "out", Options()).output
    assert theirs.name == ours.name

    def libs(path: Path) -> list[str]:
        return sorted(n for n in members(path) if n.startswith("demo.libs/") and n[-1] != "/")

    assert libs(ours) == libs(theirs)


# ---------------------------------------------------------------------------------------
# wheel libraries resolved from their loaders


def _bundled(graph: Graph, tmp_path: Path, ext: Path | None = None) -> Path:
    """The layout of a repaired wheel on PyPI: pkg/_a -> pkg.libs/libA -> pkg.libs/libB."""
    ext = ext or graph.ext_a
    return make_wheel(
        tmp_path / "in",
        {
            "pkg/__init__.py": b"",
            f"pkg/{ext.name}": ext,
            "pkg.libs/libA.so.1": graph.libs / "libA.so.1",
            "pkg.libs/libB.so.1": graph.libs / "libB.so.1",
        },
        name="pkg",
        tag="cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64",
    )


def test_bundled_library_found_through_the_loaders_rpath(graph: Graph, tmp_path: Path) -> None:
    wheel = _bundled(graph, tmp_path)
    audit = analyze(wheel, Options()).audit
    assert audit is not None
    assert audit.findings() == []
    assert audit.verdicts[0].external == {}
    nodes = {n.member: n for n in audit.nodes}
    lib_a = nodes["pkg.libs/libA.so.1"]
    assert lib_a.loaded_by == (f"pkg/_a{EXT_SUFFIX}",)
    assert lib_a.libraries["libB.so.1"].path is not None
    assert lib_a.libraries["libB.so.1"].path.endswith("/pkg.libs/libB.so.1")
    assert nodes[f"pkg/_a{EXT_SUFFIX}"].loaded_by == ()  # a root
    # and ld.so agrees
    assert load_installed(wheel, tmp_path / "site", ["pkg._a"], hide=[graph.libs]) == {"pkg._a": 6}


def test_bundled_layout_agrees_with_auditwheel_show(graph: Graph, tmp_path: Path) -> None:
    pytest.importorskip("auditwheel")
    wheel = _bundled(graph, tmp_path)
    proc = run_module("relabel", "show", "--json", wheel)
    assert proc.returncode == 0, proc.stderr
    ours = json.loads(proc.stdout)
    theirs_proc = _auditwheel("show", "--json", str(wheel))
    assert theirs_proc.returncode == 0, theirs_proc.stderr
    theirs = json.loads(theirs_proc.stdout)
    assert ours["external_libs"] == theirs["external_libs"] == {}
    assert ours["findings"] == []
    assert ours["overall_tag"] == theirs["overall_tag"] == "manylinux_2_5_x86_64"


def test_repairing_a_repaired_wheel_changes_only_what_it_must(graph: Graph, tmp_path: Path) -> None:
    wheel = _bundled(graph, tmp_path)
    result = repair(wheel, tmp_path / "out", Options())
    assert result.plan is not None
    assert result.plan.grafts == ()
    assert result.plan.patches == ()
    assert result.plan.target.policy.name == "manylinux_2_5_x86_64"
    assert set(wheel.name[:-4].split("-")[-1].split(".")) < set(
        result.output.name[:-4].split("-")[-1].split(".")
    )
    before, after = members(wheel), members(result.output)
    code = {n: d for n, d in before.items() if ".dist-info/" not in n}
    assert {n: d for n, d in after.items() if ".dist-info/" not in n} == code


def test_runpath_is_not_passed_down(graph: Graph, tmp_path: Path) -> None:
    """DT_RUNPATH serves only the file's own DT_NEEDED: libA's libB is not found through it
    by ld.so, and relabel says so instead of tagging a wheel that fails at import."""
    wheel = _bundled(graph, tmp_path, graph.ext_a_runpath)
    nodes = {n.member: n for n in analyze(wheel, Options()).audit.nodes}  # type: ignore[union-attr]
    lib_a = nodes["pkg.libs/libA.so.1"]
    assert lib_a.loaded_by == (f"pkg/_ar{EXT_SUFFIX}",)
    assert lib_a.inherited == ()
    assert lib_a.libraries["libB.so.1"].path is None
    with pytest.raises(AssertionError, match=r"libB\.so\.1: cannot open shared object file"):
        load_installed(wheel, tmp_path / "site", ["pkg._ar"], hide=[graph.libs])
    # auditwheel applies the extension's DT_RUNPATH to the whole tree and sees no problem
    pytest.importorskip("auditwheel")
    theirs = json.loads(_auditwheel("show", "--json", str(wheel)).stdout)
    assert theirs["external_libs"] == {}


def test_unreached_wheel_library_is_resolved_alone(graph: Graph, tmp_path: Path) -> None:
    wheel = make_wheel(
        tmp_path / "in",
        {"pkg.libs/libA.so.1": graph.libs / "libA.so.1"},
    )
    audit = analyze(wheel, Options()).audit
    assert audit is not None
    [node] = audit.nodes
    assert node.loaded_by == ()
    assert node.libraries["libB.so.1"].path is None
    [finding] = [f for f in audit.findings() if f.kind == "library-not-found"]
    assert (finding.file, finding.library) == ("pkg.libs/libA.so.1", "libB.so.1")


# ---------------------------------------------------------------------------------------
# RPATH from the installed location


def test_platlib_member_gets_rpath_from_its_installed_place(graph: Graph, tmp_path: Path) -> None:
    member = f"demo-1.0.data/platlib/pkg/_pf{EXT_SUFFIX}"
    wheel = make_wheel(tmp_path / "in", {member: graph.ext_foo})
    result = repair(wheel, tmp_path / "out", Options())
    assert result.plan is not None
    [graft] = result.plan.grafts
    assert graft.member.startswith("demo.libs/libfoo-")
    dyn = member_dynamic(result.output, member, tmp_path / "x")
    assert dyn["RPATH"] == ["$ORIGIN/../demo.libs"]
    loaded = load_installed(result.output, tmp_path / "site", ["pkg._pf"], hide=[graph.foo_dir])
    assert loaded == {"pkg._pf": 42}
    # auditwheel computes the RPATH from the archive path, which no installer keeps
    pytest.importorskip("auditwheel")
    proc = _auditwheel("repair", str(wheel), "-w", str(tmp_path / "aw"))
    assert proc.returncode == 0, proc.stderr
    [theirs] = (tmp_path / "aw").iterdir()
    assert member_dynamic(theirs, member, tmp_path / "y")["RPATH"] == ["$ORIGIN/../../../demo.libs"]


def test_platlib_member_audited_from_its_installed_place(graph: Graph, tmp_path: Path) -> None:
    """``$ORIGIN/../pkg.libs`` of a platlib member reaches the root's pkg.libs once
    installed; the audit expands ``$ORIGIN`` there too."""
    wheel = make_wheel(
        tmp_path / "in",
        {
            f"pkg-1.0.data/platlib/pkg/_a{EXT_SUFFIX}": graph.ext_a,
            "pkg.libs/libA.so.1": graph.libs / "libA.so.1",
            "pkg.libs/libB.so.1": graph.libs / "libB.so.1",
        },
        name="pkg",
    )
    audit = analyze(wheel, Options()).audit
    assert audit is not None
    assert audit.findings() == []
    assert load_installed(wheel, tmp_path / "site", ["pkg._a"], hide=[graph.libs]) == {"pkg._a": 6}


@pytest.mark.parametrize("scheme", ["data", "headers"])
def test_data_member_that_needs_grafts_is_refused(
    graph: Graph, tmp_path: Path, scheme: str
) -> None:
    member = f"demo-1.0.data/{scheme}/tool/_pf{EXT_SUFFIX}"
    wheel = make_wheel(tmp_path / "in", {member: graph.ext_foo})
    with pytest.raises(PolicyError) as info:
        repair(wheel, tmp_path / "out", Options(plat="manylinux_2_17_x86_64"))
    message = str(info.value)
    assert member in message
    assert f"demo-1.0.data/{scheme}/ install to a directory the installer's scheme" in message
    assert "not one relative to site-packages" in message
    assert "ship files that need external libraries inside the package" in message
    # the automatic target keeps the linux tag: nothing is written that would not load
    result = repair(wheel, tmp_path / "auto", Options())
    assert result.plan is not None
    assert result.plan.keeps_linux
    assert result.output.name.endswith("linux_x86_64.whl")


def test_data_member_without_grafts_passes(tmp_path: Path, graph: Graph) -> None:
    wheel = make_wheel(
        tmp_path / "in", {"demo-1.0.data/data/share/libA.so.1": graph.libs / "libB.so.1"}
    )
    result = repair(wheel, tmp_path / "out", Options())
    assert result.plan is not None
    assert not result.plan.keeps_linux


def test_two_members_installed_to_one_place_are_refused(graph: Graph, tmp_path: Path) -> None:
    wheel = make_wheel(
        tmp_path / "in",
        {
            f"pkg/_pf{EXT_SUFFIX}": graph.ext_foo,
            f"demo-1.0.data/platlib/pkg/_pf{EXT_SUFFIX}": graph.ext_foo,
        },
    )
    proc = run_module("relabel", "show", wheel)
    assert proc.returncode == 2
    assert "both install to" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_scripts_still_move(graph: Graph, tmp_path: Path) -> None:
    exe = graph.root / "showfoo"
    if not exe.exists():
        (graph.root / "src" / "main.c").write_text(
            '#include <stdio.h>\nint foo(void);\nint main(void) { printf("%d\\n", foo()); }\n'
        )
        subprocess.run(
            [
                "gcc",
                "-o",
                str(exe),
                str(graph.root / "src" / "main.c"),
                "-L",
                str(graph.foo_dir),
                "-l:libfoo.so.1",
                f"-Wl,-rpath,{graph.foo_dir}",
            ],
            check=True,
        )
    wheel = make_wheel(tmp_path / "in", {"demo-1.0.data/scripts/showfoo": exe})
    result = repair(wheel, tmp_path / "out", Options())
    assert result.plan is not None
    [move] = result.plan.moves
    assert move.new_member == "demo.scripts/showfoo"
    assert member_dynamic(result.output, move.new_member, tmp_path / "x")["RPATH"] == [
        "$ORIGIN/../demo.libs"
    ]
    dynamic(exe)  # the fixture itself is a valid ELF file


def test_auditwheel_finds_nothing_to_graft_in_our_two_copies(graph: Graph, tmp_path: Path) -> None:
    """cibuildwheel runs auditwheel after the build: our output must satisfy it as is."""
    pytest.importorskip("auditwheel")
    c1, c2, _ = graph.ext_col
    wheel = make_wheel(tmp_path / "in", {f"_c1{EXT_SUFFIX}": c1, f"_c2{EXT_SUFFIX}": c2})
    ours = repair(wheel, tmp_path / "out", Options()).output
    proc = _auditwheel("show", "--json", str(ours))
    assert proc.returncode == 0, proc.stderr
    theirs = json.loads(proc.stdout)
    assert theirs["external_libs"] == {}
    assert theirs["overall_tag"] == "manylinux_2_5_x86_64"


def test_relabel_repair_of_an_auditwheel_repair_changes_no_file(
    graph: Graph, tmp_path: Path
) -> None:
    pytest.importorskip("auditwheel")
    c1, c2, _ = graph.ext_col
    wheel = make_wheel(
        tmp_path / "in",
        {"pkg/__init__.py": b"", f"pkg/_c1{EXT_SUFFIX}": c1, f"pkg/_c2{EXT_SUFFIX}": c2},
    )
    proc = _auditwheel("repair", str(wheel), "-w", str(tmp_path / "aw"))
    assert proc.returncode == 0, proc.stderr
    [theirs] = (tmp_path / "aw").iterdir()
    result = repair(theirs, tmp_path / "out", Options())
    assert result.plan is not None
    assert (result.plan.grafts, result.plan.patches) == ((), ())
    assert result.output.name == theirs.name
    before = {n: d for n, d in members(theirs).items() if ".dist-info/" not in n and n[-1] != "/"}
    after = {n: d for n, d in members(result.output).items() if ".dist-info/" not in n}
    assert after == before
    loaded = load_installed(
        result.output, tmp_path / "site", ["pkg._c1", "pkg._c2"], hide=graph.col_dirs
    )
    assert loaded == {"pkg._c1": 1, "pkg._c2": 2}


def test_wheel_library_reached_from_several_roots_gets_the_union_of_their_rpaths(
    graph: Graph, tmp_path: Path
) -> None:
    """Two extensions load libA; only the second one's DT_RPATH holds the directory of
    libB. libA is resolved with both chains; the first extension, alone, misses libB."""
    second = tmp_path / f"_a2{EXT_SUFFIX}"
    shutil.copyfile(graph.ext_a, second)
    subprocess.run(
        [
            "patchelf",
            "--force-rpath",
            "--set-rpath",
            "$ORIGIN/../pkg.libs:$ORIGIN/../extra",
            str(second),
        ],
        check=True,
    )
    first = f"pkg/_a{EXT_SUFFIX}"
    wheel = make_wheel(
        tmp_path / "in",
        {
            first: graph.ext_a,
            f"pkg2/{second.name}": second,
            "pkg.libs/libA.so.1": graph.libs / "libA.so.1",
            "extra/libB.so.1": graph.libs / "libB.so.1",
        },
        name="pkg",
    )
    audit = analyze(wheel, Options()).audit
    assert audit is not None
    nodes = {n.member: n for n in audit.nodes}
    lib_a = nodes["pkg.libs/libA.so.1"]
    assert lib_a.loaded_by == (first, f"pkg2/{second.name}")
    assert [d.rsplit("/", 1)[-1] for d in lib_a.inherited] == ["pkg.libs", "extra"]
    assert lib_a.libraries["libB.so.1"].path is not None
    missing = [(f.file, f.library) for f in audit.findings() if f.kind == "library-not-found"]
    assert missing == [(first, "libB.so.1")]
