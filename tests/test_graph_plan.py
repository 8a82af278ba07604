"""Pure: grafts keyed by file, blockers for what cannot be made portable, grouped messages."""

from __future__ import annotations

import pytest

from relabel.audit import installed_path
from relabel.errors import PolicyError
from relabel.plan import Move, Patch, Plan, describe_blockers, install_dir, make_plan
from relabel.resolve import Node

from .test_audit_plan import LIBC, elf, node, run


def _col(path: str) -> tuple[str, object]:
    return (path, elf(path, soname="libcol.so.1"))


def _two_users() -> tuple[Node, Node]:
    """_a.so and _b.so, each needing libcol.so.1: found in /one and in /two."""

    def user(name: str, where: str) -> Node:
        found = {"libcol.so.1": _col(f"/{where}/libcol.so.1")}
        return node(name, elf(name, needed=("libcol.so.1",)), found)  # type: ignore[arg-type]

    return user("_a.so", "one"), user("_b.so", "two")


def test_one_soname_two_files_two_grafts_each_user_its_own() -> None:
    a = node(
        "pkg/_a.so",
        elf("pkg/_a.so", needed=("libcol.so.1", "libc.so.6")),
        {"libcol.so.1": _col("/one/libcol.so.1"), "libc.so.6": LIBC},  # type: ignore[dict-item]
    )
    b = node(
        "pkg/_b.so",
        elf("pkg/_b.so", needed=("libcol.so.1", "libc.so.6")),
        {"libcol.so.1": _col("/two/libcol.so.1"), "libc.so.6": LIBC},  # type: ignore[dict-item]
    )
    result = run(a, b)
    assert result.verdicts[0].external_files == {
        "/one/libcol.so.1": "libcol.so.1",
        "/two/libcol.so.1": "libcol.so.1",
    }
    hashes = {"/one/libcol.so.1": "11" * 32, "/two/libcol.so.1": "22" * 32}
    plan = make_plan(result, plat="auto", libs_dir="d.libs", hashes=hashes)
    assert [(g.source, g.new_name, g.needed_by) for g in plan.grafts] == [
        ("/one/libcol.so.1", "libcol-11111111.so.1", ("pkg/_a.so",)),
        ("/two/libcol.so.1", "libcol-22222222.so.1", ("pkg/_b.so",)),
    ]
    patches = {p.member: p for p in plan.patches}
    assert patches["pkg/_a.so"].replace_needed == (("libcol.so.1", "libcol-11111111.so.1"),)
    assert patches["pkg/_b.so"].replace_needed == (("libcol.so.1", "libcol-22222222.so.1"),)


def test_same_content_same_name_is_one_graft() -> None:
    a, b = _two_users()
    hashes = {"/one/libcol.so.1": "33" * 32, "/two/libcol.so.1": "33" * 32}
    plan = make_plan(run(a, b), plat="auto", libs_dir="d.libs", hashes=hashes)
    [graft] = plan.grafts
    assert graft.needed_by == ("_a.so", "_b.so")
    patches = {p.member: p for p in plan.patches}
    assert patches["_a.so"].replace_needed == patches["_b.so"].replace_needed


def test_short_hash_collision_never_merges_two_contents() -> None:
    a, b = _two_users()
    hashes = {"/one/libcol.so.1": "44" * 32, "/two/libcol.so.1": "4444444455" + "0" * 54}
    plan = make_plan(run(a, b), plat="auto", libs_dir="d.libs", hashes=hashes)
    assert sorted(g.new_name for g in plan.grafts) == [
        "libcol-44444444.so.1",
        "libcol-4444444455000000.so.1",
    ]


def test_needed_path_blocks_every_policy() -> None:
    ext = node("_a.so", elf("_a.so", needed=("/opt/x/libx.so",)), {"/opt/x/libx.so": (None, None)})
    result = run(ext)
    assert result.repairable.policy.is_linux
    [finding] = [f for f in result.findings() if f.kind == "path-needed"]
    assert finding.describe().startswith("_a.so -> /opt/x/libx.so (a path, not a library name")
    with pytest.raises(PolicyError, match="cannot be made portable"):
        make_plan(result, plat="manylinux_2_17", libs_dir="d.libs", hashes={})


@pytest.mark.parametrize(
    ("member", "installed"),
    [
        ("pkg/_a.so", "pkg/_a.so"),
        ("demo-1.0.data/platlib/pkg/_a.so", "pkg/_a.so"),
        ("demo-1.0.data/purelib/_a.so", "_a.so"),
        ("demo-1.0.data/scripts/tool", None),
        ("demo-1.0.data/headers/x.so", None),
        ("demo-1.0.data/data/lib/x.so", None),
    ],
)
def test_installed_path(member: str, installed: str | None) -> None:
    assert installed_path(member) == installed


def test_platlib_member_reaches_the_libs_dir_from_its_installed_place() -> None:
    libx = elf("/opt/libx.so.1", soname="libx.so.1")
    member = "demo-1.0.data/platlib/pkg/sub/_a.so"
    ext = node(member, elf(member, needed=("libx.so.1",)), {"libx.so.1": ("/opt/libx.so.1", libx)})
    plan = make_plan(
        run(ext), plat="auto", libs_dir="demo.libs", hashes={"/opt/libx.so.1": "ab" * 32}
    )
    patches = {p.member: p for p in plan.patches}
    assert patches[member].set_rpath == "$ORIGIN/../../demo.libs"
    assert install_dir(member) == "pkg/sub"


def test_data_member_needing_a_graft_is_a_blocker() -> None:
    libx = elf("/opt/libx.so.1", soname="libx.so.1")
    member = "demo-1.0.data/data/bin/_a.so"
    ext = node(member, elf(member, needed=("libx.so.1",)), {"libx.so.1": ("/opt/libx.so.1", libx)})
    result = run(ext)
    assert result.repairable.policy.is_linux
    [finding] = [f for f in result.findings() if f.kind == "install-location"]
    assert finding.library == "libx.so.1"
    assert "demo-1.0.data/data/ install to a directory the installer's scheme" in finding.describe()


def test_not_found_blockers_are_grouped_by_search_path() -> None:
    libs = {f"libm{i}.so": (None, None) for i in range(120)}
    ext = node("_a.so", elf("_a.so", needed=tuple(libs)), libs)
    result = run(ext)
    lines = describe_blockers(result.most_permissive.blockers)
    [line] = lines
    assert line.startswith("120 libraries not found: libm0.so (needed by _a.so), ")
    assert line.endswith("and 70 more; searched for each: /usr/lib")


def test_a_move_always_comes_with_its_patch() -> None:
    """A moved executable gets its new RPATH from its patch: a plan cannot hold the move
    without it, and a patch for another file is refused when the move is made."""
    result = run(node("pkg/_a.so", elf("pkg/_a.so", needed=("libc.so.6",)), {"libc.so.6": LIBC}))  # type: ignore[dict-item]
    script = "demo-1.0.data/scripts/tool"
    patch = Patch(script, set_rpath="$ORIGIN/../demo.libs")
    move = Move(script, "demo.scripts/tool", patch)
    plan = Plan(result.overall, ("manylinux_2_17_x86_64",), moves=(move,))
    assert plan.patches == (patch,)
    assert Plan(result.overall, (), patches=(patch,), moves=(move,)).patches == (patch,)
    with pytest.raises(ValueError, match="the patch of moved"):
        Move(script, "demo.scripts/tool", Patch("pkg/_a.so", set_rpath="$ORIGIN"))
