"""``relabel show --json`` and ``relabel lddtree`` against ``auditwheel`` 6.8, key by key.

Both tools run as a user runs them (subprocesses) on the same files: wheels built from the
gcc fixtures, a few real wheels when the machine has them, and system libraries. Every value
auditwheel prints must be printed by relabel with the same value; the only differences are
the documented ones, asserted here:

- ``realpath`` and ``external_libs`` paths: relabel follows every symbolic link
  (``os.path.realpath``); auditwheel follows links in the last component only, so on a
  merged-/usr system it prints ``/lib/...`` where relabel prints ``/usr/lib/...``.
- ``relabel lddtree`` prints its JSON on stdout; auditwheel logs it on stderr behind an
  ``INFO:auditwheel.main_lddtree:`` prefix.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest

from .conftest import EXT_SUFFIX, Fixtures, _extension, _run, make_wheel, run_module

pytest.importorskip("auditwheel")

AUDITWHEEL_KEYS = [
    "version",
    "wheel",
    "pure",
    "overall_tag",
    "sym_tag",
    "pyfpe",
    "ucs2",
    "unsupported_isa",
    "versioned_symbols",
    "external_libs",
    "policy_upgrades",
]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITWHEEL_")}
    env.pop("LD_LIBRARY_PATH", None)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def run(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_module(tool, *args, env=_env())


def both_show(wheel: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    theirs = run("auditwheel", "show", "--json", str(wheel))
    assert theirs.returncode == 0, theirs.stderr
    ours = run("relabel", "show", "--json", str(wheel))
    assert ours.returncode in (0, 1), ours.stderr
    return json.loads(theirs.stdout), json.loads(ours.stdout)


def assert_same_show(theirs: dict[str, Any], ours: dict[str, Any]) -> None:
    assert list(ours)[: len(AUDITWHEEL_KEYS)] == AUDITWHEEL_KEYS
    assert list(theirs) == AUDITWHEEL_KEYS
    for key in AUDITWHEEL_KEYS:
        expected = theirs[key]
        if key == "external_libs":
            expected = {k: os.path.realpath(v) if v else None for k, v in expected.items()}
        assert ours[key] == expected, key


@pytest.fixture(scope="session")
def extra(fixtures: Fixtures, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """ELF files for the keys the shared fixtures do not reach: PyFPE, UCS2, and an
    extension whose only new symbol versions come from the library a repair would graft."""
    root = tmp_path_factory.mktemp("parity")
    include = sysconfig.get_paths()["include"]
    sources = {
        # an undefined symbol gets STT_FUNC only when the assembler is told so
        "_fpe": _extension(
            "_fpe",
            'extern int PyFPE_dummy(void *);\n__asm__(".type PyFPE_dummy, @function");',
            "PyFPE_dummy(0)",
        ),
        "_narrow": (
            "#include <stdlib.h>\n"
            "extern void *PyUnicodeUCS2_FromString(const char *);\n"
            '__asm__(".type PyUnicodeUCS2_FromString, @function");\n'
            'void init_narrow(void) { PyUnicodeUCS2_FromString(getenv("X")); }\n'
        ),
        "_usenew": _extension("_usenew", "int newsym(void);", "newsym()"),
        # a stand-in for libexpat.so.1, which only manylinux_2_12 and newer allow: memcpy
        # gives it GLIBC_2.14, newer than the extension itself needs (GLIBC_2.17 aside)
        "expat": (
            "#include <string.h>\n"
            "int expat_copy(char *d, const char *s, unsigned long n)"
            " { memcpy(d, s, n); return (int)n; }\n"
        ),
        "_tie": _extension(
            "_tie",
            "#include <time.h>\nint expat_copy(char *, const char *, unsigned long);\n"
            "static long go(void) { struct timespec t; char b[4];"
            ' clock_gettime(CLOCK_MONOTONIC, &t); return expat_copy(b, "abc", 3); }',
            "go()",
        ),
    }
    for name, text in sources.items():
        (root / f"{name}.c").write_text(text)
    cc = ["gcc", "-shared", "-fPIC", "-O1", f"-I{include}"]
    out = {
        "pyfpe": root / f"_fpe{EXT_SUFFIX}",
        "ucs2": root / "_narrow.so",
        "usenew": root / f"_usenew{EXT_SUFFIX}",
    }
    _run([*cc, "-o", str(out["pyfpe"]), "_fpe.c"], root)
    _run([*cc, "-o", str(out["ucs2"]), "_narrow.c"], root)
    libdir = str(fixtures.libdir)
    _run(
        [
            *cc,
            "-o",
            str(out["usenew"]),
            "_usenew.c",
            "-L",
            libdir,
            "-l:libnew.so.1",
            "-Wl,--enable-new-dtags",
            f"-Wl,-rpath,{libdir}",
        ],
        root,
    )
    expat_dir = root / "expat"
    expat_dir.mkdir()
    _run(
        [*cc, "-Wl,-soname,libexpat.so.1", "-o", str(expat_dir / "libexpat.so.1"), "expat.c"],
        root,
    )
    out["tie"] = root / f"_tie{EXT_SUFFIX}"
    _run(
        [
            *cc,
            "-o",
            str(out["tie"]),
            "_tie.c",
            "-L",
            str(expat_dir),
            "-l:libexpat.so.1",
            "-Wl,--enable-new-dtags",
            f"-Wl,-rpath,{expat_dir}",
        ],
        root,
    )
    return out


CASES = {
    "graft-one": lambda f, x: {f"pkg/_foo{EXT_SUFFIX}": f.ext_foo},
    "graft-chain": lambda f, x: {f"_bar{EXT_SUFFIX}": f.ext_bar},
    "libc-only": lambda f, x: {f"_plain{EXT_SUFFIX}": f.ext_plain},
    "new-glibc": lambda f, x: {f"_newsym{EXT_SUFFIX}": f.ext_new},
    "blacklisted": lambda f, x: {f"_zbad{EXT_SUFFIX}": f.ext_blacklist},
    "isa-v3": lambda f, x: {f"_isa{EXT_SUFFIX}": f.ext_isa},
    "inside-wheel": lambda f, x: {"pkg/libbar.so.1": f.libbar, "pkg/libfoo.so.1": f.libfoo},
    "cxx-library": lambda f, x: {"pkg/libcxx.so.1": f.libcxx},
    "system-lib": lambda f, x: {f"_bz2v{EXT_SUFFIX}": f.ext_bz2},
    "pyfpe": lambda f, x: {f"_fpe{EXT_SUFFIX}": x["pyfpe"]},
    "ucs2": lambda f, x: {"_narrow.so": x["ucs2"]},
    "graft-needs-new-glibc": lambda f, x: {f"_usenew{EXT_SUFFIX}": x["usenew"]},
    "graft-only-for-old-policies": lambda f, x: {f"_tie{EXT_SUFFIX}": x["tie"]},
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_show_json_has_auditwheels_keys_and_values(
    case: str, fixtures: Fixtures, extra: dict[str, Path], tmp_path: Path
) -> None:
    wheel = make_wheel(tmp_path, CASES[case](fixtures, extra))
    theirs, ours = both_show(wheel)
    assert_same_show(theirs, ours)
    assert {"repair_tag", "target", "findings", "ignored", "notes"} <= set(ours)


def test_each_flag_means_what_auditwheel_means(
    fixtures: Fixtures, extra: dict[str, Path], tmp_path: Path
) -> None:
    """The values themselves, not only agreement: each case sets the flag it is about."""
    flags = {}
    for case in ("pyfpe", "ucs2", "isa-v3", "libc-only"):
        wheel = make_wheel(tmp_path / case, CASES[case](fixtures, extra))
        data = json.loads(run("relabel", "show", "--json", str(wheel)).stdout)
        flags[case] = (data["pyfpe"], data["ucs2"], data["unsupported_isa"], data["overall_tag"])
    assert flags == {
        "pyfpe": (True, False, False, "linux_x86_64"),
        "ucs2": (False, True, False, "linux_x86_64"),
        "isa-v3": (False, False, True, "linux_x86_64"),
        "libc-only": (False, False, False, "manylinux_2_5_x86_64"),
    }


def test_versioned_symbols_include_what_grafted_libraries_need(
    fixtures: Fixtures, extra: dict[str, Path], tmp_path: Path
) -> None:
    """The extension needs nothing newer than GLIBC_2.2.5; the library a repair would
    graft needs GLIBC_2.34. That is what sym_tag reflects, and versioned_symbols says why."""
    wheel = make_wheel(tmp_path, CASES["graft-needs-new-glibc"](fixtures, extra))
    data = json.loads(run("relabel", "show", "--json", str(wheel)).stdout)
    assert data["sym_tag"] == "manylinux_2_34_x86_64"
    assert "GLIBC_2.34" in data["versioned_symbols"]["libc.so.6"]
    assert data["external_libs"] == {"libnew.so.1": str(fixtures.libnew)}
    assert data["policy_upgrades"]["manylinux_2_5_x86_64"] == {"libs_to_eliminate": ["libnew.so.1"]}
    # the grafted library is what rules out manylinux_2_17, and the text report says so
    text = run("relabel", "show", str(wheel)).stdout
    assert "libnew.so.1 -> GLIBC_2.34 from libc.so.6" in text


def test_policy_upgrades_name_blacklisted_symbols(fixtures: Fixtures, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, {f"_zbad{EXT_SUFFIX}": fixtures.ext_blacklist})
    data = json.loads(run("relabel", "show", "--json", str(wheel)).stdout)
    assert data["overall_tag"] == "linux_x86_64"
    upgrades = data["policy_upgrades"]
    assert upgrades["manylinux_2_5_x86_64"] == {"blacklisted_symbols": {"libz.so.1": ["gzflags"]}}
    # least compatible first, as auditwheel lists them
    names = list(upgrades)
    assert names.index("manylinux_2_17_x86_64") < names.index("manylinux_2_5_x86_64")


def _auditwheel_lddtree(path: str) -> dict[str, Any]:
    proc = run("auditwheel", "lddtree", path)
    assert proc.returncode == 0, proc.stderr
    text = proc.stderr.split("INFO:auditwheel.main_lddtree:", 1)[1]
    return json.loads(text)  # type: ignore[no-any-return]


def _realpaths(tree: dict[str, Any]) -> dict[str, Any]:
    """auditwheel's tree with every realpath fully resolved (the documented difference)."""
    tree = json.loads(json.dumps(tree))
    tree["realpath"] = os.path.realpath(tree["realpath"])
    for lib in tree["libraries"].values():
        if lib["realpath"]:
            lib["realpath"] = os.path.realpath(lib["realpath"])
    return tree


def lddtree_cases(fixtures: Fixtures) -> list[Path]:
    return [
        Path("/usr/lib/x86_64-linux-gnu/libbz2.so.1.0"),  # through a symbolic link
        fixtures.ext_bar,  # RUNPATH, then a DT_RPATH=$ORIGIN library
        fixtures.libbar,  # DT_RPATH=$ORIGIN
        fixtures.exe_foo,  # an executable: interpreter entry first
        fixtures.ext_isa,  # x86-64-v3
        Path(sys.executable).resolve(),
    ]


def test_lddtree_matches_auditwheel(fixtures: Fixtures) -> None:
    checked = 0
    for path in lddtree_cases(fixtures):
        if not path.exists():
            continue
        theirs = _realpaths(_auditwheel_lddtree(str(path)))
        proc = run("relabel", "lddtree", str(path))
        assert proc.returncode == 0, proc.stderr
        ours = json.loads(proc.stdout)
        assert list(ours) == list(theirs)
        assert ours == theirs, path
        # same order of libraries: depth first in DT_NEEDED order
        assert list(ours["libraries"]) == list(theirs["libraries"])
        checked += 1
    assert checked >= 5


def test_lddtree_values(fixtures: Fixtures) -> None:
    proc = run("relabel", "lddtree", str(fixtures.ext_bar))
    data = json.loads(proc.stdout)
    assert data["path"] == str(fixtures.ext_bar)
    assert data["libc"] == "<Libc.GLIBC: 'glibc'>"
    assert data["runpath"] == [str(fixtures.libdir)]
    assert data["rpath"] == []
    assert data["needed"][0] == "libbar.so.1"
    bar = data["libraries"]["libbar.so.1"]
    assert bar["path"] == bar["realpath"] == str(fixtures.libbar)
    assert bar["needed"] == ["libfoo.so.1"]
    assert data["libraries"]["libfoo.so.1"]["realpath"] == str(fixtures.libfoo)
    assert bar["platform"]["_base_arch"] == "<Architecture.x86_64: 'x86_64'>"
    isa = json.loads(run("relabel", "lddtree", str(fixtures.ext_isa)).stdout)
    assert isa["platform"]["_ext_arch"] == "<Architecture.x86_64_v3: 'x86_64_v3'>"


def test_lddtree_ldpaths_replace_the_system_directories(fixtures: Fixtures) -> None:
    bz2 = str(fixtures.ext_bz2)
    theirs = _realpaths(_auditwheel_lddtree_with(bz2, str(fixtures.libdir)))
    ours = json.loads(run("relabel", "lddtree", "--ldpaths", str(fixtures.libdir), bz2).stdout)
    assert ours == theirs
    assert ours["libraries"]["libbz2.so.1.0"] == {
        "soname": "libbz2.so.1.0",
        "path": None,
        "realpath": None,
        "platform": None,
        "needed": [],
    }


def _auditwheel_lddtree_with(path: str, ldpaths: str) -> dict[str, Any]:
    proc = run("auditwheel", "lddtree", "--ldpaths", ldpaths, path)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stderr.split("INFO:auditwheel.main_lddtree:", 1)[1])  # type: ignore[no-any-return]


def test_lddtree_on_a_file_that_is_not_elf(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    proc = run("relabel", "lddtree", str(text))
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"relabel: error: {text}: not an ELF file")
    assert "skip-scan" not in proc.stderr
    assert "Traceback" not in proc.stderr


def test_disable_isa_ext_check_clears_unsupported_isa_like_auditwheel(
    fixtures: Fixtures, tmp_path: Path
) -> None:
    wheel = make_wheel(tmp_path, {f"_isa{EXT_SUFFIX}": fixtures.ext_isa})
    theirs = run("auditwheel", "show", "--json", "--disable-isa-ext-check", str(wheel))
    ours = run("relabel", "show", "--json", "--disable-isa-ext-check", str(wheel))
    assert_same_show(json.loads(theirs.stdout), json.loads(ours.stdout))
    assert json.loads(ours.stdout)["unsupported_isa"] is False


def test_pure_wheel_error_object_like_auditwheels(tmp_path: Path) -> None:
    """Same keys and exit status; the sentence is relabel's (it says what to pass)."""
    pure = make_wheel(tmp_path, {"demo/__init__.py": b""}, tag="py3-none-any", purelib=True)
    theirs = run("auditwheel", "show", "--json", str(pure))
    ours = run("relabel", "show", "--json", str(pure))
    assert ours.returncode == theirs.returncode == 1
    theirs_data, ours_data = json.loads(theirs.stdout), json.loads(ours.stdout)
    assert list(ours_data) == list(theirs_data) == ["version", "wheel", "error"]
    assert ours_data["wheel"] == theirs_data["wheel"] == pure.name
    assert "does not look like a platform wheel" in ours_data["error"]
    allowed = [
        json.loads(run(tool, "show", "--json", "--allow-pure-python-wheel", str(pure)).stdout)
        for tool in ("auditwheel", "relabel")
    ]
    assert allowed[0] == allowed[1] == {"version": 1, "wheel": pure.name, "pure": True}


def test_versioned_symbols_of_the_least_compatible_policy_on_a_tie(
    fixtures: Fixtures, extra: dict[str, Path], tmp_path: Path
) -> None:
    """The extension needs GLIBC_2.17; libexpat.so.1 (GLIBC_2.14) would be grafted only for
    manylinux_2_5. Every policy from manylinux_2_17 up to manylinux_2_5 then yields
    manylinux_2_17, and auditwheel reports the symbol table of the first of them it meets,
    the least compatible: without the grafted library's GLIBC_2.14."""
    wheel = make_wheel(tmp_path, CASES["graft-only-for-old-policies"](fixtures, extra))
    data = json.loads(run("relabel", "show", "--json", str(wheel)).stdout)
    assert data["sym_tag"] == "manylinux_2_17_x86_64"
    assert "GLIBC_2.17" in data["versioned_symbols"]["libc.so.6"]
    assert "GLIBC_2.14" not in data["versioned_symbols"]["libc.so.6"]
    # ... although the library does need it (so a table taken at manylinux_2_5 would show it)
    assert any(
        f["file"] == "libexpat.so.1" and f["version"] == "GLIBC_2.14" for f in data["findings"]
    )
    assert list(data["external_libs"]) == ["libexpat.so.1"]
    assert data["policy_upgrades"] == {
        "manylinux_2_5_x86_64": {"libs_to_eliminate": ["libexpat.so.1"]}
    }
