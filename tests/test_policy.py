"""Tests for relabel.policy: the data's own consistency, then a comparison with auditwheel.

auditwheel is only an oracle here: its policy tables must describe exactly the same
policies as ours, but relabel never imports it.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import pytest
from packaging.utils import parse_wheel_filename

from relabel import policy as policy_module
from relabel.policy import (
    ARCHITECTURES,
    LINUX,
    Libc,
    Policy,
    known_names,
    lookup,
    policies_for,
)

# Android policies come from the wheel's tag, not from (libc, arch): see test_android.py
LIBC_ARCH = [(libc, arch) for libc in (Libc.GLIBC, Libc.MUSL) for arch in ARCHITECTURES]
LIBC_ARCH_IDS = [f"{libc.value}-{arch}" for libc, arch in LIBC_ARCH]
POLICIES = [p for libc, arch in LIBC_ARCH for p in policies_for(libc, arch) if not p.is_linux]
GLIBC_NAMESPACES = ("GLIBC", "GLIBCXX", "CXXABI", "GCC", "ZLIB", "LIBATOMIC")
LEGACY = {(2, 5): "manylinux1", (2, 12): "manylinux2010", (2, 17): "manylinux2014"}
MANYLINUX_BASES = [
    f"manylinux_2_{minor}"
    for minor in (5, 12, 17, 24, 26, 27, 28, 31, 34, 35, 36, 37, 38, 39, 40, 41)
]
MUSL_SONAME_ARCH = {"i686": "x86", "armv7l": "armv7"}


def by_name(policies: list[Policy]) -> list[str]:
    return [p.name for p in policies]


def pairs(libc: Libc, arch: str) -> list[tuple[Policy, Policy]]:
    """(more compatible, next less compatible) pairs, linux excluded."""
    policies = [p for p in policies_for(libc, arch) if not p.is_linux]
    return list(zip(policies, policies[1:]))


# -- the data on its own -----------------------------------------------------------------


def test_expected_policies_exist() -> None:
    glibc_bases = {p.base for p in POLICIES if p.libc is Libc.GLIBC}
    musl_bases = {p.base for p in POLICIES if p.libc is Libc.MUSL}
    assert glibc_bases == set(MANYLINUX_BASES)
    assert musl_bases == {"musllinux_1_1", "musllinux_1_2"}
    expected: list[str] = []
    for base in MANYLINUX_BASES:
        expected.append(base)
        legacy = LEGACY.get((2, int(base.rsplit("_", 1)[1])))
        if legacy:
            expected.append(legacy)
    assert known_names() == (*expected, "musllinux_1_1", "musllinux_1_2", LINUX)


@pytest.mark.parametrize(
    ("base", "arches"),
    [
        ("manylinux_2_5", {"x86_64", "i686"}),
        ("manylinux_2_12", {"x86_64", "i686"}),
        ("manylinux_2_17", set(ARCHITECTURES) - {"riscv64", "loongarch64"}),
        ("manylinux_2_28", set(ARCHITECTURES) - {"ppc64", "riscv64", "loongarch64"}),
        ("manylinux_2_31", set(ARCHITECTURES) - {"ppc64", "loongarch64"}),
        ("manylinux_2_36", set(ARCHITECTURES) - {"ppc64"}),
        ("manylinux_2_41", set(ARCHITECTURES) - {"ppc64"}),
        ("musllinux_1_1", set(ARCHITECTURES) - {"ppc64", "loongarch64"}),
        ("musllinux_1_2", set(ARCHITECTURES) - {"ppc64"}),
    ],
)
def test_architecture_availability(base: str, arches: set[str]) -> None:
    assert {p.arch for p in POLICIES if p.base == base} == arches


@pytest.mark.parametrize(("libc", "arch"), LIBC_ARCH, ids=LIBC_ARCH_IDS)
def test_priorities_strictly_ordered(libc: Libc, arch: str) -> None:
    policies = policies_for(libc, arch)
    assert policies[-1].is_linux
    assert policies[-1].priority == 0
    assert policies[-1].name == f"linux_{arch}"
    priorities = [p.priority for p in policies]
    assert priorities == sorted(set(priorities), reverse=True)
    assert all(p.libc is libc and p.arch == arch for p in policies[:-1])
    versions = [p.version for p in policies[:-1]]
    assert versions == sorted(versions)  # type: ignore[type-var]


@pytest.mark.parametrize(("libc", "arch"), LIBC_ARCH, ids=LIBC_ARCH_IDS)
def test_allowed_libs_grow(libc: Libc, arch: str) -> None:
    for older, newer in pairs(libc, arch):
        assert older.allowed_libs <= newer.allowed_libs, (older.name, newer.name)


@pytest.mark.parametrize(("libc", "arch"), LIBC_ARCH, ids=LIBC_ARCH_IDS)
def test_symbol_versions_grow(libc: Libc, arch: str) -> None:
    for older, newer in pairs(libc, arch):
        assert set(older.symbol_versions) == set(newer.symbol_versions)
        for namespace, versions in older.symbol_versions.items():
            missing = versions - newer.symbol_versions[namespace]
            assert not missing, (older.name, newer.name, namespace, missing)


@pytest.mark.parametrize(("libc", "arch"), LIBC_ARCH, ids=LIBC_ARCH_IDS)
def test_blacklist_shrinks(libc: Libc, arch: str) -> None:
    for older, newer in pairs(libc, arch):
        for soname, symbols in newer.blacklist.items():
            assert symbols <= older.blacklist.get(soname, frozenset()), (newer.name, soname)


def test_namespaces() -> None:
    for policy in POLICIES:
        if policy.libc is Libc.GLIBC:
            assert tuple(policy.symbol_versions) == GLIBC_NAMESPACES
            assert policy.version is not None
            newer = {
                v
                for v in policy.symbol_versions["GLIBC"]
                if v[0].isdigit() and tuple(map(int, v.split("."))) > policy.version
            }
            # CentOS 7's aarch64 glibc already exports GLIBC_2.18.
            assert newer == ({"2.18"} if policy.name == "manylinux_2_17_aarch64" else set())
        else:
            assert dict(policy.symbol_versions) == {}


@pytest.mark.parametrize("policy", POLICIES, ids=by_name(POLICIES))
def test_tag_shape(policy: Policy) -> None:
    assert policy.version is not None
    family = {Libc.GLIBC: "manylinux", Libc.MUSL: "musllinux"}[policy.libc]  # type: ignore[index]
    major, minor = policy.version
    assert policy.base == f"{family}_{major}_{minor}"
    assert policy.name == f"{policy.base}_{policy.arch}"
    assert re.fullmatch(r"(manylinux|musllinux)_\d+_\d+_[a-z0-9_]+", policy.name)
    legacy = LEGACY.get(policy.version) if policy.libc is Libc.GLIBC else None
    assert policy.aliases == ((f"{legacy}_{policy.arch}",) if legacy else ())
    assert policy.tags() == (policy.name, *policy.aliases)
    for tag in policy.tags():
        _, _, _, tags = parse_wheel_filename(f"demo-1.0-cp39-cp39-{tag}.whl")
        assert {t.platform for t in tags} == {tag}


def test_tags_are_unique_and_look_up_to_their_policy() -> None:
    seen: dict[str, Policy] = {}
    for policy in POLICIES:
        for tag in policy.tags():
            assert tag not in seen
            seen[tag] = policy
            assert lookup(tag) is policy
    assert len(known_names()) == len(set(known_names()))


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_alias_and_pep600_name_agree(arch: str) -> None:
    for version, alias in LEGACY.items():
        base = f"manylinux_{version[0]}_{version[1]}"
        if not any(p.base == base for p in policies_for(Libc.GLIBC, arch)):
            with pytest.raises(KeyError):
                lookup(alias, arch)
            continue
        policy = lookup(f"{base}_{arch}")
        assert lookup(f"{alias}_{arch}") is policy
        assert lookup(alias, arch) is policy
        assert lookup(base, arch) is policy
        assert lookup(f"{alias}_{arch}", arch) is policy


def test_linux_policy() -> None:
    for libc in Libc:
        linux = lookup("linux_x86_64")
        assert policies_for(libc, "x86_64")[-1] == linux
    assert linux.is_linux
    assert linux.libc is None
    assert linux.version is None
    assert linux.aliases == ()
    assert linux.allowed_libs == frozenset()
    assert dict(linux.symbol_versions) == {}
    assert dict(linux.blacklist) == {}
    assert linux.allows_symbol_version("GLIBC_9.99")
    assert lookup(LINUX, "aarch64").name == "linux_aarch64"


def test_unknown_architecture_only_has_linux() -> None:
    for libc in Libc:
        (only,) = policies_for(libc, "sparc64")
        assert only.name == "linux_sparc64"
    assert lookup("linux_sparc64").arch == "sparc64"


def test_linux_tags_are_split_without_reading_the_policy_data() -> None:
    """The ``linux`` shortcut of ``_split_tag`` holds because no family's name starts with
    ``linux``; with it, a ``linux_<arch>`` wheel's architecture costs no data file."""
    assert [name for name in known_names() if name.startswith(LINUX)] == [LINUX]
    policy_module._load.cache_clear()
    policy_module._index.cache_clear()
    assert lookup("linux_x86_64").name == "linux_x86_64"
    assert lookup("linux_sparc64").arch == "sparc64"
    assert lookup(LINUX, "aarch64").name == "linux_aarch64"
    assert policy_module._load.cache_info().currsize == 0
    for name in ("linux_", "linuxx86_64"):
        with pytest.raises(KeyError, match="unknown platform policy"):
            lookup(name)
    with pytest.raises(KeyError, match="needs an architecture"):
        lookup(LINUX)


def test_musllinux_order_and_libc_soname() -> None:
    for arch in ARCHITECTURES:
        policies = policies_for(Libc.MUSL, arch)
        assert [p.base for p in policies[:-1]] == [
            b for b in ("musllinux_1_1", "musllinux_1_2") if any(p.base == b for p in policies)
        ]
        soname = f"libc.musl-{MUSL_SONAME_ARCH.get(arch, arch)}.so.1"
        for policy in policies[:-1]:
            assert policy.allowed_libs == {soname, "libz.so.1"}


def test_allows_symbol_version() -> None:
    p2014 = lookup("manylinux2014_x86_64")
    assert p2014.allows_symbol_version("GLIBC_2.17")
    assert not p2014.allows_symbol_version("GLIBC_2.18")
    assert p2014.allows_symbol_version("GLIBCXX_3.4.19")
    assert not p2014.allows_symbol_version("GLIBCXX_3.4.20")
    assert p2014.allows_symbol_version("CXXABI_TM_1")
    assert not lookup("manylinux2010_x86_64").allows_symbol_version("CXXABI_TM_1")
    assert not p2014.allows_symbol_version("CXXABI_FLOAT128")
    assert lookup("manylinux_2_24_x86_64").allows_symbol_version("CXXABI_FLOAT128")
    assert not p2014.allows_symbol_version("GLIBC_ABI_DT_RELR")
    assert lookup("manylinux_2_36_x86_64").allows_symbol_version("GLIBC_ABI_DT_RELR")
    assert not lookup("manylinux_2_36_riscv64").allows_symbol_version("GLIBC_ABI_DT_RELR")
    assert lookup("manylinux_2_38_riscv64").allows_symbol_version("GLIBC_ABI_DT_RELR")
    assert lookup("manylinux_2_17_ppc64le").allows_symbol_version("GLIBCXX_LDBL_3.4.10")
    assert not lookup("manylinux_2_17_ppc64").allows_symbol_version("GLIBCXX_LDBL_3.4.10")
    assert p2014.allows_symbol_version("OPENSSL_3.0.0")  # a namespace no policy restricts
    assert p2014.allows_symbol_version("NOUNDERSCORE")
    assert not p2014.allows_symbol_version("GLIBC")
    assert lookup("musllinux_1_2_x86_64").allows_symbol_version("GLIBC_2.99")


def test_policy_is_frozen_and_hashable() -> None:
    policy = lookup("manylinux_2_28_aarch64")
    with pytest.raises(AttributeError):
        policy.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        policy.symbol_versions["GLIBC"] = frozenset()  # type: ignore[index]
    assert {policy: 1}[lookup("manylinux_2_28", "aarch64")] == 1
    assert str(policy) == "manylinux_2_28_aarch64"


@pytest.mark.parametrize(
    ("name", "arch", "pattern"),
    [
        ("manylinux_2_18_x86_64", None, r"did you mean 'manylinux_2_17_x86_64'"),
        ("manylinux_2_18", "x86_64", r"did you mean 'manylinux_2_17'"),
        ("manylinux_2_16_aarch64", None, r"did you mean 'manylinux_2_17_aarch64'\?"),
        ("manylinx2014", None, r"did you mean 'manylinux2014'"),
        ("manylinux2041_x86_64", None, r"did you mean 'manylinux2014_x86_64'"),
        ("musllinux_1_3", "x86_64", r"did you mean 'musllinux_1_2'\?"),
        ("musllinux-1-2-x86_64", None, r"did you mean 'musllinux_1_2_x86_64'"),
        ("windows", None, r"unknown platform policy 'windows'; known policies are manylinux"),
        ("manylinux_2_5", "aarch64", r"manylinux_2_5 does not exist on aarch64; it exists on "),
        ("manylinux1_ppc64le", None, r"manylinux1 does not exist on ppc64le.*x86_64, i686"),
        ("manylinux_2_17_ppc64", None, None),
        ("manylinux_2_24_ppc64", None, r"exists on x86_64, i686, aarch64, ppc64le, s390x"),
        ("musllinux_1_1_loongarch64", None, r"musllinux_1_1 does not exist on loongarch64"),
        ("manylinux_2_17_x86_46", None, r"did you mean manylinux_2_17_x86_64\?"),
        ("manylinux_2_17", None, r"needs an architecture"),
        ("manylinux_2_17_x86_64", "aarch64", r"tag for x86_64, not for the requested aarch64"),
    ],
)
def test_lookup_errors(name: str, arch: str | None, pattern: str | None) -> None:
    if pattern is None:
        assert lookup(name, arch).name == name
        return
    with pytest.raises(KeyError, match=pattern):
        lookup(name, arch)


# -- auditwheel as an oracle -------------------------------------------------------------


@functools.cache
def oracle(libc: Libc, arch: str) -> dict[str, Any]:
    """auditwheel's policies of ``libc`` on ``arch``, by name, linux included."""
    aw_policy = pytest.importorskip("auditwheel.policy")
    from auditwheel.architecture import Architecture
    from auditwheel.libc import Libc as AwLibc

    runs: list[Any] = []
    if libc is Libc.GLIBC:
        runs.append(aw_policy.WheelPolicies(libc=AwLibc.GLIBC, arch=Architecture(arch)))
    else:
        # Without musl_policy auditwheel asks the host for its musl version.
        for musl_policy in ("musllinux_1_1", "musllinux_1_2"):
            try:
                runs.append(
                    aw_policy.WheelPolicies(
                        libc=AwLibc.MUSL, arch=Architecture(arch), musl_policy=musl_policy
                    )
                )
            except AssertionError:  # that policy does not exist on this architecture
                continue
    return {p.name: p for run in runs for p in run}


def oracle_policy(policy: Policy) -> Any:
    assert policy.libc is not None
    found = oracle(policy.libc, policy.arch)
    assert policy.name in found, f"auditwheel has no {policy.name}"
    return found[policy.name]


def test_oracle_architectures() -> None:
    pytest.importorskip("auditwheel")
    from auditwheel.architecture import Architecture

    baseline = {a.value for a in Architecture if a.baseline is a}
    assert baseline == set(ARCHITECTURES)


@pytest.mark.parametrize(("libc", "arch"), LIBC_ARCH, ids=LIBC_ARCH_IDS)
def test_oracle_same_policies_and_order(libc: Libc, arch: str) -> None:
    theirs = oracle(libc, arch)
    ours = [p for p in policies_for(libc, arch) if not p.is_linux]
    their_names = sorted(
        (name for name in theirs if not name.startswith(f"{LINUX}_")),
        key=lambda name: theirs[name].priority,
        reverse=True,
    )
    assert by_name(ours) == their_names
    if libc is Libc.GLIBC or ours:
        linux = theirs[f"linux_{arch}"]
        assert linux.priority == 0
        assert linux.whitelist == frozenset()
        assert linux.symbol_versions == {}
        assert linux.blacklist == {}


@pytest.mark.parametrize("policy", POLICIES, ids=by_name(POLICIES))
def test_oracle_aliases_libs_and_blacklist(policy: Policy) -> None:
    theirs = oracle_policy(policy)
    assert policy.aliases == theirs.aliases
    assert policy.allowed_libs == theirs.whitelist
    assert dict(policy.blacklist) == theirs.blacklist
    assert set(policy.symbol_versions) == set(theirs.symbol_versions)


GLIBC_CASES = [(p, ns) for p in POLICIES if p.libc is Libc.GLIBC for ns in GLIBC_NAMESPACES]


@pytest.mark.parametrize(
    ("policy", "namespace"),
    GLIBC_CASES,
    ids=[f"{p.name}-{ns}" for p, ns in GLIBC_CASES],
)
def test_oracle_symbol_versions(policy: Policy, namespace: str) -> None:
    theirs = oracle_policy(policy).symbol_versions
    assert namespace in theirs
    ours = policy.symbol_versions[namespace]
    assert sorted(ours - theirs[namespace]) == [], "allowed here, not by auditwheel"
    assert sorted(theirs[namespace] - ours) == [], "allowed by auditwheel, not here"


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_oracle_picks_the_same_policy(arch: str) -> None:
    """For each single required version, the most compatible policy allowing it agrees.

    Only glibc: musl policies check no symbol versions.
    """
    pytest.importorskip("auditwheel")
    from auditwheel.architecture import Architecture
    from auditwheel.libc import Libc as AwLibc
    from auditwheel.policy import WheelPolicies

    wheel_policies = WheelPolicies(libc=AwLibc.GLIBC, arch=Architecture(arch))
    policies = policies_for(Libc.GLIBC, arch)
    required = {
        f"{namespace}_{version}"
        for policy in policies
        for namespace, versions in policy.symbol_versions.items()
        for version in versions
    } | {"GLIBC_99.0", "OPENSSL_3.0.0", "GLIBCXX_LDBL_3.4.99"}
    for version in sorted(required):
        ours = next(p for p in policies if p.allows_symbol_version(version))
        theirs = wheel_policies.versioned_symbols_policy({"libdemo.so": {version}})
        assert ours.name == theirs.name, version


def test_one_architecture_builds_only_its_own_policies() -> None:
    from relabel import policy

    policy.policies_for.cache_clear()
    policy._policies.cache_clear()
    policy.policies_for(Libc.GLIBC, "aarch64")
    assert policy.lookup("manylinux_2_17_aarch64") is not None
    assert policy._policies.cache_info().currsize == 1
