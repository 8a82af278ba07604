"""The musl symbol data: regenerated from musl's sources, and checked against a real libc.so.

``RELABEL_MUSL_GIT`` names a git directory of musl (``git clone --bare
https://github.com/bminor/musl``) holding the tags the generator reads; without it the
regeneration test is skipped. The check against this machine's musl needs musl-gcc.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from elftools.elf.elffile import ELFFile

from relabel import musl
from relabel.elf import read_elf

from .conftest import musl_program

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "backend" / "relabel" / "_data" / "musl_symbols.json"
GENERATOR = ROOT / "backend" / "generate" / "musl_symbols.py"


@functools.cache
def _generator() -> ModuleType:
    """The generator, which lives outside the package."""
    spec = importlib.util.spec_from_file_location("musl_symbols_generator", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while defining
    spec.loader.exec_module(module)
    return module


def test_regenerated_data_matches_the_committed_file() -> None:
    git_dir = os.environ.get("RELABEL_MUSL_GIT")
    if not git_dir:
        pytest.skip("set RELABEL_MUSL_GIT to a git directory of musl to regenerate the data")
    text = _generator().render(_generator().generate(git_dir))
    assert text == DATA.read_text(encoding="utf-8")


def test_committed_file_is_in_generated_form() -> None:
    data = json.loads(DATA.read_text(encoding="utf-8"))
    assert _generator().render(data) == DATA.read_text(encoding="utf-8")
    assert data["baseline"] == "v1.1.24"
    assert data["releases"][-1] == "v1.2.5"
    assert set(data["commits"]) == {"v1.1.24", *data["releases"]}
    assert len(data["inputs_sha256"]) == 64


def _parse(source: str) -> set[str]:
    gen = _generator()
    syms = gen.Symbols()
    gen._scan_c(source, syms, definitions=True)
    return set(syms.defined - syms.hidden)


def test_generator_reads_definitions_as_the_compiler_does() -> None:
    source = """
    #include "x.h"
    int optind=1, opterr=1, optopt, __optpos;
    char *__progname=0, *__progname_full=0;
    double (cimag)(double complex z) { return 0; }
    static int helper(void) { return 1; }
    hidden void __internal(void) { }
    __attribute__((__visibility__("hidden"))) extern int __lock[1];
    int __lock[1];
    int declared_only(int);
    extern int elsewhere;
    struct tag;
    void (*signal(int sig, void (*func)(int)))(int) { return 0; }
    const struct table { int a; } the_table = { 1 };
    weak_alias(helper, public_alias);
    """
    assert _parse(source) == {
        "optind",
        "opterr",
        "optopt",
        "__optpos",
        "__progname",
        "__progname_full",
        "cimag",
        "signal",
        "the_table",
        "public_alias",
    }


def test_this_machines_musl_agrees_with_the_data(tmp_path: Path) -> None:
    """Every name the data dates at or before the installed musl is exported by its
    libc.so; none dated later is."""
    loader = read_elf(musl_program(tmp_path)).interpreter
    if loader is None or not Path(loader).exists():
        pytest.skip("musl's dynamic loader is not installed")
    banner = subprocess.run([loader], capture_output=True, text=True, check=False).stderr
    version = musl.parse_loader_banner(banner)
    assert version is not None
    with Path(loader).open("rb") as stream:
        elf = ELFFile(stream)
        table = elf.get_section_by_name(".dynsym")
        exported = {s.name for s in table.iter_symbols() if s["st_shndx"] != "SHN_UNDEF"}
        arch = {"EM_X86_64": "x86_64", "EM_AARCH64": "aarch64", "EM_386": "i686"}.get(
            elf["e_machine"]
        )
    if arch is None:
        pytest.skip(f"no check written for {loader}")
    added = musl.added_symbols(arch)
    have = {n for n, since in added.items() if tuple(map(int, since.split("."))) <= version}
    assert have, "the data dates nothing at or before the installed musl"
    assert have <= exported
    assert not (set(added) - have) & exported


def test_generator_reads_weak_and_global_assembly_symbols() -> None:
    # musl 1.1.24's i386 remainder.s exports drem as a weak symbol: still exported
    gen = _generator()
    text = ".global remainder\n.type remainder,@function\n.weak drem\n.hidden __x\n"
    assert gen._ASM_GLOBAL.findall(text) == ["remainder", "drem"]
    assert gen._ASM_HIDDEN.findall(text) == ["__x"]
