"""relabel.floor's planner on hand-built requirement lists: the classes and the traps."""

from __future__ import annotations

import pytest

from relabel import floor
from relabel.floor import Facts, Need

X86 = "x86_64"
ARM = "aarch64"


def facts(
    *needs: tuple[str, str, str],
    arch: str | None = X86,
    needed: tuple[str, ...] = ("libm.so.6", "libc.so.6"),
    data: frozenset[str] = frozenset(),
    markers: tuple[tuple[str, str], ...] = (),
    defined: frozenset[str] = frozenset(),
) -> Facts:
    """A file needing ``name@version`` from ``file`` for each (name, file, version)."""
    need_list = tuple(
        Need(i + 1, name, file, version, name not in data)
        for i, (name, file, version) in enumerate(needs)
    )
    pairs = sorted({(n.file, n.version) for n in need_list})
    version_needs = tuple((f, v, True) for f, v in pairs) + tuple((f, v, False) for f, v in markers)
    return Facts("lib.so", arch, needed, need_list, version_needs, defined)


def one(p: floor.FilePlan) -> floor.Change:
    assert not p.blockers, [b.describe() for b in p.blockers]
    assert len(p.changes) == 1
    return p.changes[0]


def blocker(p: floor.FilePlan) -> floor.Blocker:
    assert not p.changes
    assert len(p.blockers) == 1
    return p.blockers[0]


def test_pthread_create_moves_back_to_libpthread() -> None:
    p = floor.plan_file(facts(("pthread_create", "libc.so.6", "GLIBC_2.34")), (2, 17))
    c = one(p)
    assert c.describe() == "pthread_create: libc.so.6 GLIBC_2.34 -> libpthread.so.0 GLIBC_2.2.5"
    assert (c.klass, c.new_file, c.provider) == ("A", "libpthread.so.0", "libpthread.so.0")
    assert p.add_needed == ("libpthread.so.0",)
    # GLIBC_2.2.5 alone would claim glibc 2.5; the file keeps requiring the oldest checked
    assert (p.reached, p.pin) == ((2, 17), ("libc.so.6", "GLIBC_2.17"))


def test_aarch64_base_version_is_2_17() -> None:
    p = floor.plan_file(facts(("pthread_create", "libc.so.6", "GLIBC_2.34"), arch=ARM), (2, 17))
    assert one(p).new_version == "GLIBC_2.17"
    assert p.pin is None  # nothing older than 2.17 exists there


def test_provider_already_needed_is_not_added_twice() -> None:
    f = facts(("dlopen", "libc.so.6", "GLIBC_2.34"), needed=("libdl.so.2", "libc.so.6"))
    p = floor.plan_file(f, (2, 17))
    assert one(p).provider == "libdl.so.2"
    assert p.add_needed == ()


def test_timer_create_takes_the_newest_old_version_not_the_oldest() -> None:
    c = one(floor.plan_file(facts(("timer_create", "libc.so.6", "GLIBC_2.34")), (2, 17)))
    assert (c.provider, c.new_version) == ("librt.so.1", "GLIBC_2.3.3")


def test_libc_start_main_is_refused_although_the_code_is_the_same() -> None:
    b = blocker(floor.plan_file(facts(("__libc_start_main", "libc.so.6", "GLIBC_2.34")), (2, 17)))
    assert b.klass == "E"
    assert "caller contract" in b.reason


def test_pthread_kill_is_refused() -> None:
    b = blocker(floor.plan_file(facts(("pthread_kill", "libc.so.6", "GLIBC_2.34")), (2, 17)))
    assert "behaviour changed" in b.reason


@pytest.mark.parametrize("name", ["stat", "fstat", "lstat", "fstatat"])
def test_stat_family_is_a_changed_abi(name: str) -> None:
    b = blocker(floor.plan_file(facts((name, "libc.so.6", "GLIBC_2.33")), (2, 28)))
    assert b.klass == "E"
    assert "__xstat" in b.reason
    assert b.describe().startswith(f"{name}@GLIBC_2.33: changed ABI")


def test_isoc23_needs_the_opt_in() -> None:
    f = facts(("__isoc23_strtol", "libc.so.6", "GLIBC_2.38"))
    b = blocker(floor.plan_file(f, (2, 17)))
    assert b.klass == "D"
    assert "glibc-floor-allow = ['c23-parsing']" in b.reason
    c = one(floor.plan_file(f, (2, 17), allow=["c23-parsing"]))
    assert (c.new_name, c.new_version, c.klass) == ("strtol", "GLIBC_2.2.5", "D")


def test_isoc23_scanf_becomes_isoc99() -> None:
    f = facts(("__isoc23_sscanf", "libc.so.6", "GLIBC_2.38"))
    c = one(floor.plan_file(f, (2, 17), allow=["c23-parsing"]))
    assert (c.new_name, c.new_version) == ("__isoc99_sscanf", "GLIBC_2.7")


def test_dt_relr_marker_is_refused_and_holds_the_floor() -> None:
    f = facts(
        ("pthread_create", "libc.so.6", "GLIBC_2.34"), markers=(("libc.so.6", "GLIBC_ABI_DT_RELR"),)
    )
    p = floor.plan_file(f, (2, 17))
    assert [b.klass for b in p.blockers] == ["F"]
    assert p.blockers[0].describe().startswith("GLIBC_ABI_DT_RELR (from libc.so.6)")
    assert p.reached == (2, 36)
    assert floor.lowest(f).target == (2, 36)


def test_fcntl64_is_renamed_to_fcntl() -> None:
    c = one(floor.plan_file(facts(("fcntl64", "libc.so.6", "GLIBC_2.28")), (2, 17)))
    assert (c.new_name, c.new_file, c.new_version, c.klass) == (
        "fcntl",
        "libc.so.6",
        "GLIBC_2.2.5",
        "C",
    )
    assert c.describe() == "fcntl64: libc.so.6 GLIBC_2.28 -> fcntl libc.so.6 GLIBC_2.2.5"


def test_rename_onto_a_name_the_file_defines_is_refused() -> None:
    f = facts(("fcntl64", "libc.so.6", "GLIBC_2.28"), defined=frozenset({"fcntl"}))
    assert "defines fcntl itself" in blocker(floor.plan_file(f, (2, 17))).reason


def test_libm_reversions_are_class_b_and_memcpy_2_14_already_fits() -> None:
    f = facts(("exp", "libm.so.6", "GLIBC_2.29"), ("memcpy", "libc.so.6", "GLIBC_2.14"))
    p = floor.plan_file(f, (2, 17))
    assert {(c.symbol, c.new_version, c.klass) for c in p.changes} == {("exp", "GLIBC_2.2.5", "B")}
    assert p.reached == (2, 17)  # memcpy@2.14 is kept; the rewrite pins 2.17


def test_new_functions_and_data_are_refused() -> None:
    f = facts(
        ("getrandom", "libc.so.6", "GLIBC_2.25"),
        ("__libc_single_threaded", "libc.so.6", "GLIBC_2.32"),
        ("environ_like", "libc.so.6", "GLIBC_2.33"),
        data=frozenset({"environ_like"}),
    )
    reasons = {b.symbol: b.reason for b in floor.plan_file(f, (2, 17)).blockers}
    assert "new in GLIBC_2.25" in reasons["getrandom"]
    assert "data symbol" in reasons["__libc_single_threaded"]
    assert "data symbol" in reasons["environ_like"]


def test_requirements_at_or_below_the_target_are_left_alone() -> None:
    f = facts(("fcntl64", "libc.so.6", "GLIBC_2.28"), ("pthread_create", "libc.so.6", "GLIBC_2.34"))
    p = floor.plan_file(f, (2, 28))
    assert [c.symbol for c in p.changes] == ["pthread_create"]
    assert p.reached == (2, 28)


def test_lowest_picks_the_first_release_everything_fits() -> None:
    f = facts(
        ("pthread_create", "libc.so.6", "GLIBC_2.34"), ("getrandom", "libc.so.6", "GLIBC_2.25")
    )
    p = floor.lowest(f)
    assert p.target == (2, 25)
    assert [c.symbol for c in p.changes] == ["pthread_create"]


def test_cxx_caps_are_reported_untouched() -> None:
    f = Facts(
        "lib.so",
        X86,
        ("libstdc++.so.6",),
        (),
        (("libstdc++.so.6", "GLIBCXX_3.4.30", True),),
        frozenset(),
    )
    assert floor.plan_file(f, (2, 17)).caps == ("GLIBCXX_3.4.30",)


def test_other_architectures_are_skipped_with_a_reason() -> None:
    p = floor.plan_file(facts(("pthread_create", "libc.so.6", "GLIBC_2.34"), arch=None), (2, 17))
    assert p.skipped == "only x86_64 and aarch64 files are lowered"
    assert not p.changes


def test_every_class_a_move_of_2_34_is_same_code() -> None:
    """The data's count of moved symbols (the note measured 157 per architecture)."""
    for arch in (X86, ARM):
        t = floor.table(arch)
        assert t is not None
        moved = []
        for name, versions in t.symbols.items():
            if "GLIBC_2.34" not in versions or name in t.denylist:
                continue
            if not any(e.library == "libc.so.6" for e in versions["GLIBC_2.34"]):
                continue
            old = [
                v
                for v, es in versions.items()
                if v != "GLIBC_2.34"
                and any(e.library != "libc.so.6" and e.present((2, 17)) for e in es)
            ]
            if any(t.same(f"{name}@{v}", f"{name}@GLIBC_2.34") for v in old):
                moved.append(name)
        assert 140 <= len(moved) <= 170, (arch, len(moved))
        assert "pthread_create" in moved
        assert "pthread_kill" not in moved
