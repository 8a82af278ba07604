"""The glibc-floor data: regenerated from its inputs, and checked against real glibc builds.

``RELABEL_GLIBC_GIT`` names a git directory of glibc with its release tags (a mirror of
https://github.com/bminor/glibc); without it the regeneration test is skipped. The real
libraries come from ``.ci/glibc-roots`` (Debian bullseye 2.31 and trixie 2.41).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerSymSection

from relabel import floor

from .floor_support import glibc_roots

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "backend" / "relabel" / "_data" / "glibc_floor.json"
GENERATOR = ROOT / "backend" / "generate" / "glibc_symbols.py"
LIBS = (
    "libc.so.6",
    "libm.so.6",
    "libpthread.so.0",
    "libdl.so.2",
    "librt.so.1",
    "libutil.so.1",
    "libresolv.so.2",
)


@functools.cache
def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("glibc_symbols_generator", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_regenerated_data_matches_the_committed_file() -> None:
    git_dir = os.environ.get("RELABEL_GLIBC_GIT")
    if not git_dir:
        pytest.skip("set RELABEL_GLIBC_GIT to a git directory of glibc to regenerate the data")
    roots = glibc_roots()
    recorded = json.loads(DATA.read_text(encoding="utf-8"))["inputs"]["trixie_x86_64_libc6"]
    if _generator().package_version(roots.trixie) != recorded:
        pytest.skip(f"Debian no longer serves libc6 {recorded}, the data's input")
    proc = subprocess.run(
        [
            sys.executable,
            str(GENERATOR),
            git_dir,
            f"x86_64={roots.trixie}",
            f"aarch64={roots.trixie_arm64}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert proc.stdout == DATA.read_text(encoding="utf-8")


def test_recorded_input_hashes_are_the_trixie_libraries() -> None:
    roots = glibc_roots()
    inputs = json.loads(DATA.read_text(encoding="utf-8"))["inputs"]
    g = _generator()
    for arch, root in (("x86_64", roots.trixie), ("aarch64", roots.trixie_arm64)):
        recorded, unpacked = inputs[f"trixie_{arch}_libc6"], g.package_version(root)
        if recorded != unpacked:
            pytest.skip(f"Debian now serves libc6 {unpacked}, the data was made from {recorded}")
        for soname, digest in inputs[f"trixie_{arch}_sha256"].items():
            path = next(root.glob(f"usr/lib/*/{soname}"))
            assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, (arch, soname)


def test_abilist_parser_reads_both_formats() -> None:
    g = _generator()
    old = "GLIBC_2.2.5\n GLIBC_2.2.5 A\n pthread_create F\n __data D 0x8\n"
    new = "GLIBC_2.2.5 pthread_create F\nGLIBC_2.34 pthread_create F\n"
    assert g.parse_abilist(old) == {
        "GLIBC_2.2.5@GLIBC_2.2.5": "A",
        "pthread_create@GLIBC_2.2.5": "F",
        "__data@GLIBC_2.2.5": "D",
    }
    assert g.parse_abilist(new) == {
        "pthread_create@GLIBC_2.2.5": "F",
        "pthread_create@GLIBC_2.34": "F",
    }


def _exported(path: Path) -> set[str]:
    with path.open("rb") as f:
        e = ELFFile(f)
        dynsym = e.get_section_by_name(".dynsym")
        versym = e.get_section_by_name(".gnu.version")
        verdef = e.get_section_by_name(".gnu.version_d")
        assert dynsym is not None and isinstance(versym, GNUVerSymSection) and verdef is not None
        names = {v.entry["vd_ndx"]: next(iter(aux)).name for v, aux in verdef.iter_versions()}
        out = set()
        for i, sym in enumerate(dynsym.iter_symbols()):
            if sym["st_shndx"] == "SHN_UNDEF":
                continue
            ndx = versym.get_symbol(i)["ndx"]
            version = names.get(ndx & 0x7FFF) if isinstance(ndx, int) else None
            if version and version.startswith("GLIBC_2") and sym.name != version:
                out.add(f"{sym.name}@{version}")
        return out


@pytest.mark.parametrize("release", ["2.31", "2.41"])
def test_data_agrees_with_real_debian_glibc(release: str) -> None:
    """What the abilists say a release exports is what Debian's build of it exports."""
    roots = glibc_roots()
    libdir = (
        roots.bullseye / "lib/x86_64-linux-gnu"
        if release == "2.31"
        else roots.trixie / "usr/lib/x86_64-linux-gnu"
    )
    t = floor.table("x86_64")
    assert t is not None
    r = floor.parse_version(release)
    for soname in LIBS:
        real = _exported(libdir / soname)
        claimed = {
            f"{name}@{version}"
            for name, versions in t.symbols.items()
            for version, entries in versions.items()
            if any(e.library == soname and e.present(r) and e.kind != "A" for e in entries)
        }
        assert claimed - real == set(), (soname, sorted(claimed - real)[:10])
        assert real - claimed == set(), (soname, sorted(real - claimed)[:10])
