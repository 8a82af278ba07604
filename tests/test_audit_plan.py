"""audit and plan are pure: exercised here on hand-built records, no files involved."""

from __future__ import annotations

import pytest

from relabel import policy
from relabel.audit import audit
from relabel.elf import ElfInfo, SymbolNeed
from relabel.errors import PolicyError
from relabel.plan import make_plan, mangled_name, rpath_inside_wheel
from relabel.resolve import Library, Node

ROOT = "/tmp/wheel-root"
POLICIES = policy.policies_for(policy.Libc.GLIBC, "x86_64")


def elf(
    path: str,
    *,
    needed: tuple[str, ...] = ("libc.so.6",),
    versions: tuple[tuple[str, tuple[str, ...]], ...] = (("libc.so.6", ("GLIBC_2.2.5",)),),
    undefined: tuple[SymbolNeed, ...] = (),
    soname: str | None = None,
    rpath: tuple[str, ...] = (),
    runpath: tuple[str, ...] = (),
    isa: int = 1,
    init: str | None = None,
) -> ElfInfo:
    return ElfInfo(
        path=path,
        elf_class=64,
        little_endian=True,
        machine="EM_X86_64",
        osabi="ELFOSABI_SYSV",
        arch="x86_64",
        arch_problem=None,
        isa_level=isa,
        elf_type="ET_DYN",
        interpreter=None,
        soname=soname,
        needed=needed,
        rpath=rpath,
        runpath=runpath,
        version_needs=versions,
        undefined=undefined,
        python_init=init,
        uses_pyfpe=False,
        uses_ucs2=False,
    )


def node(member: str, info: ElfInfo, libs: dict[str, tuple[str | None, ElfInfo | None]]) -> Node:
    libraries = {s: Library(s, p, ("/usr/lib",), i) for s, (p, i) in libs.items()}
    edges = {s: tuple(n for n in i.needed if n in libraries) for s, (_, i) in libs.items() if i}
    return Node(member, f"{ROOT}/{member}", info, libraries, edges)


LIBC = ("/lib/libc.so.6", elf("/lib/libc.so.6", needed=(), versions=()))


def run(*nodes: Node, isa_check: bool = True):  # type: ignore[no-untyped-def]
    return audit(nodes, POLICIES, arch="x86_64", libc="glibc", wheel_root=ROOT, isa_check=isa_check)


def test_clean_extension_meets_the_oldest_policy() -> None:
    ext = node("pkg/_a.so", elf("pkg/_a.so", init="PyInit__a"), {"libc.so.6": LIBC})
    result = run(ext)
    assert result.overall.policy.name == "manylinux_2_5_x86_64"
    assert result.repairable.policy.name == "manylinux_2_5_x86_64"
    assert result.findings() == []


def test_symbol_finding_names_file_symbol_version_and_policies() -> None:
    info = elf(
        "pkg/_a.so",
        versions=(("libc.so.6", ("GLIBC_2.2.5", "GLIBC_2.34")),),
        undefined=(SymbolNeed("pthread_create", "GLIBC_2.34", "libc.so.6", False),),
    )
    result = run(node("pkg/_a.so", info, {"libc.so.6": LIBC}))
    assert result.overall.policy.name == "manylinux_2_34_x86_64"
    [finding] = result.findings()
    assert (finding.file, finding.symbol, finding.version, finding.library) == (
        "pkg/_a.so",
        "pthread_create",
        "GLIBC_2.34",
        "libc.so.6",
    )
    assert finding.blocks[0] == "manylinux_2_5_x86_64"
    assert finding.blocks[-1] == "manylinux_2_31_x86_64"
    assert "manylinux_2_34_x86_64" not in finding.blocks
    assert finding.describe() == "pkg/_a.so -> pthread_create@GLIBC_2.34 (from libc.so.6)"


def test_external_library_is_repairable_and_its_symbols_count() -> None:
    libx = elf(
        "/opt/libx.so.1",
        soname="libx.so.1",
        versions=(("libc.so.6", ("GLIBC_2.17",)),),
        undefined=(SymbolNeed("clock_gettime", "GLIBC_2.17", "libc.so.6", False),),
    )
    ext = node(
        "_a.so",
        elf("_a.so", needed=("libx.so.1", "libc.so.6")),
        {"libx.so.1": ("/opt/libx.so.1", libx), "libc.so.6": LIBC},
    )
    result = run(ext)
    assert result.overall.policy.is_linux
    assert result.repairable.policy.name == "manylinux_2_17_x86_64"
    assert result.verdicts[0].external == {"libx.so.1": "/opt/libx.so.1"}
    plan = make_plan(
        result, plat="auto", libs_dir="demo.libs", hashes={"/opt/libx.so.1": "ab" * 32}
    )
    assert plan.platform_tags == ("manylinux_2_17_x86_64", "manylinux2014_x86_64")
    [graft] = plan.grafts
    assert graft.new_name == "libx-abababab.so.1"
    assert graft.member == "demo.libs/libx-abababab.so.1"
    patches = {p.member: p for p in plan.patches}
    assert patches["_a.so"].replace_needed == (("libx.so.1", "libx-abababab.so.1"),)
    assert patches["_a.so"].set_rpath == "$ORIGIN/demo.libs"
    assert patches[graft.member].set_soname == graft.new_name
    assert patches[graft.member].remove_rpath


def test_missing_library_blocks_with_directories_searched() -> None:
    ext = node("_a.so", elf("_a.so", needed=("libgone.so.3",)), {"libgone.so.3": (None, None)})
    result = run(ext)
    assert result.repairable.policy.is_linux
    [finding] = [f for f in result.findings() if f.kind == "library-not-found"]
    assert finding.library == "libgone.so.3"
    assert finding.searched == ("/usr/lib",)
    plan = make_plan(result, plat="auto", libs_dir="demo.libs", hashes={})
    assert plan.keeps_linux
    assert plan.unmet == (next(f for f in result.verdicts[-2].findings),)
    with pytest.raises(PolicyError, match=r"libgone\.so\.3 \(not found; searched: /usr/lib\)"):
        make_plan(result, plat="manylinux_2_28", libs_dir="demo.libs", hashes={})


def test_isa_level_blocks_everything_unless_disabled() -> None:
    ext = node("_a.so", elf("_a.so", isa=3), {"libc.so.6": LIBC})
    assert run(ext).repairable.policy.is_linux
    assert run(ext, isa_check=False).repairable.policy.name == "manylinux_2_5_x86_64"


def test_library_inside_the_wheel_is_not_external() -> None:
    inside = elf(f"{ROOT}/pkg/libin.so", soname="libin.so")
    ext = node(
        "pkg/_a.so",
        elf("pkg/_a.so", needed=("libin.so",), rpath=("$ORIGIN",)),
        {"libin.so": (f"{ROOT}/pkg/libin.so", inside)},
    )
    assert run(ext).overall.policy.name == "manylinux_2_5_x86_64"


def test_libpython_is_removed_not_grafted() -> None:
    ext = node(
        "_a.so",
        elf("_a.so", needed=("libpython3.11.so.1.0", "libc.so.6")),
        {"libpython3.11.so.1.0": (None, None), "libc.so.6": LIBC},
    )
    result = run(ext)
    assert result.overall.policy.is_linux
    plan = make_plan(result, plat="auto", libs_dir="demo.libs", hashes={})
    assert plan.target.policy.name == "manylinux_2_5_x86_64"
    assert plan.grafts == ()
    [patch] = plan.patches
    assert patch.remove_needed == ("libpython3.11.so.1.0",)


def test_outside_rpath_entries_are_dropped_inside_ones_kept() -> None:
    ext = node(
        "pkg/sub/_a.so",
        elf("pkg/sub/_a.so", rpath=("$ORIGIN/../lib", "/home/me/build", "$ORIGIN/../../..")),
        {"libc.so.6": LIBC},
    )
    plan = make_plan(run(ext), plat="auto", libs_dir="demo.libs", hashes={})
    [patch] = plan.patches
    assert patch.set_rpath == "$ORIGIN/../lib"


@pytest.mark.parametrize(
    ("entry", "member_dir", "inside"),
    [
        ("$ORIGIN", "pkg", True),
        ("${ORIGIN}/../pkg.libs", "pkg", True),
        ("$ORIGIN/../..", "pkg", False),
        ("/usr/lib", "pkg", False),
        ("$ORIGIN/..", "", False),
    ],
)
def test_rpath_inside_wheel(entry: str, member_dir: str, inside: bool) -> None:
    assert rpath_inside_wheel(entry, member_dir) is inside


@pytest.mark.parametrize(
    ("name", "digest", "expected"),
    [
        ("libbz2.so.1.0.4", "e4f501c8aa", "libbz2-e4f501c8.so.1.0.4"),
        ("libfoo-e4f501c8.so.1", "e4f501c8aa", "libfoo-e4f501c8.so.1"),
        ("libstdc++.so.6.0.30", "0123456789", "libstdc++-01234567.so.6.0.30"),
    ],
)
def test_mangled_name(name: str, digest: str, expected: str) -> None:
    assert mangled_name(name, digest) == expected


def test_explicit_legacy_alias_behaves_like_pep600_name() -> None:
    ext = node("_a.so", elf("_a.so"), {"libc.so.6": LIBC})
    result = run(ext)
    a = make_plan(result, plat="manylinux2014", libs_dir="d.libs", hashes={})
    b = make_plan(result, plat="manylinux_2_17", libs_dir="d.libs", hashes={})
    c = make_plan(result, plat="manylinux_2_17_x86_64", libs_dir="d.libs", hashes={})
    assert a.platform_tags == b.platform_tags == c.platform_tags
    assert a.platform_tags[:2] == ("manylinux_2_5_x86_64", "manylinux1_x86_64")


def test_policy_of_the_other_libc_is_explained() -> None:
    result = run(node("_a.so", elf("_a.so"), {"libc.so.6": LIBC}))
    expected = r"'musllinux_1_2' is a musl policy.*linked against glibc"
    with pytest.raises(PolicyError, match=expected):
        make_plan(result, plat="musllinux_1_2", libs_dir="d.libs", hashes={})
