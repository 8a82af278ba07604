"""Lowering real gcc-built files: static checks against the target's symbols, and runs under
real old and new glibc (bullseye's 2.31 loader, the host's, trixie's 2.41).

glibc 2.17 and 2.28 (buster and older) are not reachable from the Debian mirror any more: those
targets are checked statically against the symbol lists generated from glibc's abilists.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from relabel import elf, floor, verneed

from .floor_support import (
    EXPECTED,
    START_DRIVER_C,
    STAT_C,
    WORK_C,
    bullseye_driver,
    gcc_shared,
    glibc_roots,
    patchelf,
    run,
)


@pytest.fixture(scope="module")
def lib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return gcc_shared(WORK_C, tmp_path_factory.mktemp("floor") / "libwork.so")


def lowered(src: Path, dest: Path, target: tuple[int, ...] | None = None) -> floor.FilePlan:
    f = floor.facts(verneed.read(src))
    plan = floor.lowest(f) if target is None else floor.plan_file(f, target)
    floor.lower_file(src, dest, plan, patchelf())
    return plan


def test_host_build_needs_a_new_glibc(lib: Path) -> None:
    """The premise: this toolchain pins the fixture above 2.28 (otherwise nothing is proven)."""
    info = elf.read_elf(lib)
    assert floor.check(info, (2, 28), "x86_64"), "the host toolchain links nothing newer than 2.28"


@pytest.mark.parametrize("target", [(2, 17), (2, 28)])
def test_every_requirement_exists_in_the_target_glibc(
    lib: Path, tmp_path: Path, target: tuple[int, int]
) -> None:
    out = tmp_path / "libwork.so"
    plan = lowered(lib, out, target)
    assert not plan.blockers
    info = elf.read_elf(out)
    assert floor.check(info, target, "x86_64") == []
    assert "libpthread.so.0" in info.needed
    wanted = {(c.new_name, c.new_version) for c in plan.changes}
    assert wanted <= {(s.name, s.version) for s in info.undefined}
    # readelf, a third reader, sees the same versions
    text = run(["readelf", "-V", "-W", str(out)]).stdout
    assert "GLIBC_2.34" not in text and "GLIBC_2.29" not in text


def test_lowest_reaches_2_17_and_the_report_names_each_rewrite(lib: Path, tmp_path: Path) -> None:
    plan = lowered(lib, tmp_path / "libwork.so")
    assert plan.target == (2, 17)
    lines = {c.describe() for c in plan.changes}
    assert "pthread_create: libc.so.6 GLIBC_2.34 -> libpthread.so.0 GLIBC_2.2.5" in lines
    assert "fcntl64: libc.so.6 GLIBC_2.28 -> fcntl libc.so.6 GLIBC_2.2.5" in lines
    assert "timer_create: libc.so.6 GLIBC_2.34 -> librt.so.1 GLIBC_2.3.3" in lines


def test_stat_holds_the_floor_and_nothing_is_written(tmp_path: Path) -> None:
    src = gcc_shared(STAT_C, tmp_path / "libstat.so")
    f = floor.facts(verneed.read(src))
    plan = floor.plan_file(f, (2, 17))
    assert [b.symbol for b in plan.blockers] == ["stat64"]  # _FILE_OFFSET_BITS=64
    assert floor.lowest(f).target == (2, 33)


def test_a_failed_check_restores_the_file(lib: Path, tmp_path: Path) -> None:
    work = tmp_path / "libwork.so"
    shutil.copy(lib, work)
    f = floor.facts(verneed.read(work))
    plan = floor.plan_file(f, (2, 17))
    broken = floor.FilePlan(plan.path, (2, 17), plan.changes, (), (), plan.reached)  # no DT_NEEDED
    with pytest.raises(floor.LowerError, match="not in DT_NEEDED"):
        floor.lower_file(work, work, broken, patchelf())
    assert work.read_bytes() == lib.read_bytes()


# --- at run time ----------------------------------------------------------------------------


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LD_")}
    env["LD_BIND_NOW"] = "1"
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory, lib: Path) -> dict[str, Path]:
    roots = glibc_roots()
    d = tmp_path_factory.mktemp("floor-run")
    driver = bullseye_driver(roots, d / "driver")
    lowered(lib, d / "lowered.so")
    # the negative control: the same versions, kept in the groups of libc/libm (which define
    # them, so ld.so's version check passes) but without the providers in DT_NEEDED
    f = floor.facts(verneed.read(lib))
    plan = floor.plan_file(f, (2, 17))
    retargets = tuple(
        verneed.Retarget(c.index, c.symbol, c.new_name, c.old_file, c.new_version)
        for c in plan.changes
    )
    verneed.apply(lib, d / "no-needed.so", verneed.Rewrite(retargets, ()), patchelf())
    return {
        "driver": driver,
        "lowered": d / "lowered.so",
        "untouched": lib,
        "no-needed": d / "no-needed.so",
    }


@pytest.mark.floor_runtime
def test_lowered_file_runs_on_glibc_2_31_2_36_and_2_41(runtime: dict[str, Path]) -> None:
    roots = glibc_roots()
    driver, lowered_so = str(runtime["driver"]), str(runtime["lowered"])
    results = {
        "2.31": run([*roots.loader_231(), driver, lowered_so], env=_env()),
        "host": run([driver, lowered_so], env=_env()),
        "2.41": run([*roots.loader_241(), driver, lowered_so], env=_env()),
    }
    for name, proc in results.items():
        assert (name, proc.returncode, proc.stdout.strip()) == (name, 0, EXPECTED), proc.stderr


@pytest.mark.floor_runtime
def test_pthread_create_binds_in_libpthread_on_2_31(runtime: dict[str, Path]) -> None:
    roots = glibc_roots()
    proc = run(
        [*roots.loader_231(), str(runtime["driver"]), str(runtime["lowered"])],
        env=_env(LD_DEBUG="bindings"),
    )
    lines = [
        ln for ln in proc.stderr.splitlines() if "lowered.so" in ln and "`pthread_create'" in ln
    ]
    assert len(lines) == 1, proc.stderr[-2000:]
    assert "/libpthread.so.0 [0]: normal symbol `pthread_create' [GLIBC_2.2.5]" in lines[0]
    fcntl = [ln for ln in proc.stderr.splitlines() if "lowered.so" in ln and "`fcntl'" in ln]
    assert fcntl and "/libc.so.6" in fcntl[0]


@pytest.mark.floor_runtime
def test_untouched_file_fails_on_2_31(runtime: dict[str, Path]) -> None:
    roots = glibc_roots()
    proc = run([*roots.loader_231(), str(runtime["driver"]), str(runtime["untouched"])], env=_env())
    assert proc.returncode == 1
    assert "version `GLIBC_2.34' not found" in proc.stdout


@pytest.mark.floor_runtime
def test_rewrite_without_dt_needed_fails_on_2_31_only(runtime: dict[str, Path]) -> None:
    """The new glibc masks the missing provider with compatibility symbols; the old does not."""
    roots = glibc_roots()
    old = run([*roots.loader_231(), str(runtime["driver"]), str(runtime["no-needed"])], env=_env())
    assert old.returncode == 1
    assert re.search(
        r"undefined symbol: (pthread_\w+|timer_\w+|dlopen|dlsym), version GLIBC_2", old.stdout
    )
    host = run([str(runtime["driver"]), str(runtime["no-needed"])], env=_env())
    assert (host.returncode, host.stdout.strip()) == (0, EXPECTED)


@pytest.mark.floor_runtime
def test_verneed_without_dt_needed_aborts_the_loader(
    runtime: dict[str, Path], tmp_path: Path
) -> None:
    """Why the rewriter always adds the provider: a Verneed whose file is not loaded kills ld.so."""
    bad = tmp_path / "bad.so"
    shutil.copy(runtime["lowered"], bad)
    proc = run([patchelf(), "--remove-needed", "libpthread.so.0", str(bad)])
    assert proc.returncode == 0, proc.stderr
    host = run([str(runtime["driver"]), str(bad)], env=_env())
    assert host.returncode == 127
    assert "Inconsistency detected by ld.so" in host.stderr + host.stdout


@pytest.mark.floor_runtime
def test_aarch64_lowered_file_runs_on_2_31_and_2_41_under_qemu(tmp_path: Path) -> None:
    qemu = shutil.which("qemu-aarch64-static") or shutil.which("qemu-aarch64")
    if qemu is None or shutil.which("aarch64-linux-gnu-gcc") is None:
        pytest.skip("needs qemu-user-static and gcc-aarch64-linux-gnu")
    roots = glibc_roots()
    built = gcc_shared(WORK_C, tmp_path / "orig.so", cc="aarch64-linux-gnu-gcc")
    c = tmp_path / "drv.c"
    c.write_text(START_DRIVER_C)
    proc = run(
        [
            "aarch64-linux-gnu-gcc",
            "-O1",
            "-nostartfiles",
            "-o",
            str(tmp_path / "drv"),
            str(c),
            "-ldl",
        ]
    )
    assert proc.returncode == 0, proc.stderr
    for src, dest in (("orig.so", "lowered.so"), ("drv", "drv17")):
        plan = lowered(tmp_path / src, tmp_path / dest)
        assert plan.target == (2, 17), [b.describe() for b in plan.blockers]
        assert all(c.new_version == "GLIBC_2.17" for c in plan.changes)
    (tmp_path / "drv17").chmod(0o755)
    old_lib = roots.bullseye_arm64 / "lib/aarch64-linux-gnu"
    new_lib = roots.trixie_arm64 / "usr/lib/aarch64-linux-gnu"
    loaders = {
        "2.31": [qemu, str(old_lib / "ld-2.31.so"), "--library-path", str(old_lib)],
        "2.41": [qemu, str(new_lib / "ld-linux-aarch64.so.1"), "--library-path", str(new_lib)],
    }
    for name, loader in loaders.items():
        result = run([*loader, "./drv17"], cwd=tmp_path, env=_env())
        assert (name, result.returncode, result.stdout.strip()) == (name, 0, EXPECTED), (
            result.stderr
        )
    bindings = run([*loaders["2.31"], "./drv17"], cwd=tmp_path, env=_env(LD_DEBUG="bindings"))
    assert any(
        "lowered.so" in ln
        and "/libpthread.so.0 [0]: normal symbol `pthread_create' [GLIBC_2.17]" in ln
        for ln in bindings.stderr.splitlines()
    ), bindings.stderr[-2000:]
    # the negative control: the file as built does not load on 2.31
    shutil.copy(built, tmp_path / "lowered.so")
    control = run([*loaders["2.31"], "./drv17"], cwd=tmp_path, env=_env())
    assert "version `GLIBC_2.34' not found (required by ./lowered.so)" in control.stdout


OLD_C = "#include <string.h>\nunsigned long old_len(const char *s) { return strlen(s); }\n"


@pytest.mark.parametrize("setting", [floor.OFF, floor.AUTO])
def test_a_wheel_at_the_oldest_release_skips_the_symbol_data(tmp_path: Path, setting: str) -> None:
    """Nothing above glibc 2.17: nothing to lower, and the symbol tables are never built."""
    old = gcc_shared(OLD_C, tmp_path / "libold.so")
    assert floor.facts(verneed.read(old)).version_needs, "the fixture needs a libc version"
    before = old.read_bytes()
    floor.table.cache_clear()
    done = floor.for_wheel({"pkg/libold.so": old}, setting, (), None)
    assert floor.table.cache_info().currsize == 0
    assert (done.target, done.lowered, done.lines()) == (None, (), [])
    assert old.read_bytes() == before
