"""Android wheels (PEP 738): policies from the tag, bionic's libraries, grafts reached by
DT_RUNPATH, libpython kept. Faithful fixtures built by gcc and edited like the NDK's
output (the NDK itself is not available here), with auditwheel side by side."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from packaging.utils import parse_wheel_filename

from relabel import policy
from relabel.elf import read_elf
from relabel.errors import PolicyError, WheelError
from relabel.policy import Libc, android_policies, lookup
from relabel.repair import Options, analyze, repair
from tests.corpus import support as corpus_support

from .conftest import make_wheel, run_module

PY = "cp313"
SUFFIX = ".cpython-313-{triple}.so"
TRIPLES = {"x86_64": "x86_64-linux-android", "x86": "i686-linux-android"}

# bionic's libc exports its symbols under version nodes named after the release that
# added them; the stub does the same with three of them.
LIBC_MAP = """\
LIBC { global: old_fn; local: *; };
LIBC_N { global: n_fn; } LIBC;
LIBC_O { global: o_fn; } LIBC_N;
"""
LIBC_SRC = "int old_fn(void){return 0;}\nint n_fn(void){return 1;}\nint o_fn(void){return 2;}\n"
EXT_SRC = """\
int old_fn(void); int n_fn(void); int cxx_fn(void); int log_fn(void); int py_fn(void);
void *PyInit__demo(void) {
    return (void *)(long)(old_fn() + n_fn() + cxx_fn() + log_fn() + py_fn());
}
"""
EXT_O_SRC = "int o_fn(void);\nvoid *PyInit__newer(void) { return (void *)(long)o_fn(); }\n"
EXT_PLAIN_SRC = "int old_fn(void);\nvoid *PyInit__plain(void) { return (void *)(long)old_fn(); }\n"
# What the NDK's crtbegin objects put in every file: the API level it was compiled for.
NOTE_26 = (
    '__asm__(".pushsection .note.android.ident,\\"a\\",%note\\n.balign 4\\n'
    '.long 8\\n.long 132\\n.long 1\\n.asciz \\"Android\\"\\n.balign 4\\n'
    '.long 26\\n.fill 128,1,0\\n.popsection\\n");\n'
)


def _run(*cmd: str | Path) -> None:
    subprocess.run([str(c) for c in cmd], check=True, capture_output=True)


@dataclass(frozen=True)
class Android:
    """Android-like ELF files of one ABI (each built with -nostdlib against stubs)."""

    abi: str
    cxx_dir: Path  # holds libc++_shared.so, the NDK's C++ runtime (to be grafted)
    ext: Path  # _demo: libc.so (LIBC, LIBC_N), liblog.so, libc++_shared.so, libpython3.13.so
    ext_o: Path  # _newer: needs LIBC_O (API level 26)
    ext_plain: Path  # _plain: only libc.so
    ext_noted: Path  # _noted: only libc.so, and the NDK's note saying API level 26

    def wheel(self, where: Path, api: int, *files: Path, tag: str | None = None) -> Path:
        plat = tag or f"android_{api}_{self.abi}"
        return make_wheel(where, {f"demo/{f.name}": f for f in files}, tag=f"{PY}-{PY}-{plat}")


def _build(root: Path, abi: str, flags: tuple[str, ...]) -> Android:
    gcc = ("gcc", *flags, "-shared", "-fPIC", "-nostdlib")
    sdk, cxx, out = root / "sdk", root / "cxx", root / "out"
    for d in (sdk, cxx, out):
        d.mkdir(parents=True)
    (root / "libc.c").write_text(LIBC_SRC)
    (root / "libc.map").write_text(LIBC_MAP)
    _run(*gcc, "-Wl,-soname,libc.so", "-Wl,--version-script", root / "libc.map",
         "-o", sdk / "libc.so", root / "libc.c")  # fmt: skip
    for soname, body in (
        ("liblog.so", "int log_fn(void){return 0;}\n"),
        ("libpython3.13.so", "int py_fn(void){return 0;}\n"),
        ("libc++_shared.so", "int cxx_fn(void){return 0;}\n"),
    ):
        src = root / f"{soname}.c"
        src.write_text(body)
        dest = (cxx if soname.startswith("libc++") else sdk) / soname
        _run(*gcc, f"-Wl,-soname,{soname}", "-o", dest, src)
    # the NDK's libc++_shared.so needs only bionic
    _run("patchelf", "--add-needed", "libc.so", "--add-needed", "libm.so",
         "--add-needed", "libdl.so", cxx / "libc++_shared.so")  # fmt: skip
    suffix = SUFFIX.format(triple=TRIPLES[abi])
    built = []
    sources = (
        ("_demo", EXT_SRC),
        ("_newer", EXT_O_SRC),
        ("_plain", EXT_PLAIN_SRC),
        ("_noted", EXT_PLAIN_SRC.replace("_plain", "_noted") + NOTE_26),
    )
    for name, src in sources:
        (root / f"{name}.c").write_text(src)
        dest = out / f"{name}{suffix}"
        libs = ["-l:libc.so"]
        if name == "_demo":
            libs = ["-l:libc.so", "-l:liblog.so", "-l:libpython3.13.so", "-l:libc++_shared.so"]
        _run(*gcc, "-o", dest, root / f"{name}.c", "-L", sdk, "-L", cxx, *libs)
        built.append(dest)
    return Android(abi, cxx, *built)


@pytest.fixture(scope="session")
def android_x86_64(tmp_path_factory: pytest.TempPathFactory) -> Android:
    return _build(tmp_path_factory.mktemp("android-x86_64"), "x86_64", ())


def needed(path: Path) -> tuple[str, ...]:
    return read_elf(path).needed


def dynamic(path: Path) -> str:
    cmd = ["readelf", "-dW", str(path)]
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


def unzip(wheel: Path, dest: Path) -> Path:
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(dest)
    return dest


# -- policies -------------------------------------------------------------------------


def test_policy_is_the_tag_with_the_api_levels_libraries() -> None:
    p21, linux = android_policies("android_21_arm64_v8a")
    assert (p21.name, p21.libc, p21.arch, p21.api_level) == (
        "android_21_arm64_v8a",
        Libc.ANDROID,
        "aarch64",
        21,
    )
    assert linux.name == "linux_aarch64"
    assert {"libc.so", "libm.so", "libdl.so", "liblog.so", "libandroid.so", "libz.so"} <= (
        p21.allowed_libs
    )
    assert "libc++_shared.so" not in p21.allowed_libs  # the NDK says: ship it in the app
    assert "libvulkan.so" not in p21.allowed_libs
    assert "libvulkan.so" in lookup("android_24_x86_64").allowed_libs
    assert "libaaudio.so" in lookup("android_26_x86").allowed_libs
    assert lookup("android_26_x86").arch == "i686"
    assert lookup("android_30_armeabi_v7a").arch == "armv7l"
    assert lookup("android_24_arm64_v8a", "aarch64").api_level == 24


def test_bionic_symbol_versions_by_api_level() -> None:
    p24 = lookup("android_24_x86_64")
    assert p24.allows_symbol_version("LIBC")
    assert p24.allows_symbol_version("LIBC_N")
    assert not p24.allows_symbol_version("LIBC_O")
    assert lookup("android_26_x86_64").allows_symbol_version("LIBC_O")
    assert not lookup("android_21_x86_64").allows_symbol_version("LIBC_N")
    assert p24.allows_symbol_version("LIBC_PRIVATE")  # not judged: nothing known about it


@pytest.mark.parametrize(
    ("tag", "words"),
    [
        ("android_19_arm64_v8a", "API level 21"),
        ("android_24_mips", "arm64_v8a, x86_64, armeabi_v7a, x86"),
        ("android_x86_64", "android_<api level>_<abi>"),
        ("android_24_arm64_v8a_extra", "arm64_v8a"),
    ],
)
def test_bad_android_tags_are_named(tag: str, words: str) -> None:
    with pytest.raises(KeyError) as info:
        lookup(tag)
    assert words in str(info.value.args[0])


def test_manylinux_api_unchanged() -> None:
    assert not any(name.startswith("android") for name in policy.known_names())
    assert [p.name for p in policy.policies_for(Libc.ANDROID, "x86_64")] == ["linux_x86_64"]
    assert lookup("manylinux_2_17_x86_64").name == "manylinux_2_17_x86_64"


def test_armeabi_v7a_soft_float_is_the_abi(android_x86_64: Android) -> None:
    from relabel.android import arch_for_abi

    info = replace(
        read_elf(android_x86_64.ext_plain),
        machine="EM_ARM",
        arch=None,
        arch_problem="ARM code is not hard-float",
    )
    assert arch_for_abi(info, "armeabi_v7a").arch == "armv7l"
    assert arch_for_abi(info, "arm64_v8a").arch is None  # only that ABI is soft-float


# -- audit and repair on faithful fixtures ----------------------------------------------


def test_show_keeps_libpython_and_grafts_only_libcxx(
    android_x86_64: Android, tmp_path: Path
) -> None:
    wheel = android_x86_64.wheel(tmp_path, 24, android_x86_64.ext)
    result = analyze(wheel, Options(library_dirs=(str(android_x86_64.cxx_dir),)))
    assert result.libc == "android"
    assert result.audit is not None
    target = result.audit.repairable
    assert target.policy.name == "android_24_x86_64"
    # liblog.so and libc.so are the system's, libpython3.13.so the app's (PEP 738)
    assert set(target.external) == {"libc++_shared.so"}
    assert result.audit.overall.policy.name == "linux_x86_64"


def test_repair_grafts_libcxx_with_runpath_and_keeps_the_tag(
    android_x86_64: Android, tmp_path: Path
) -> None:
    wheel = android_x86_64.wheel(tmp_path / "in", 24, android_x86_64.ext)
    out = repair(wheel, tmp_path / "out", Options(library_dirs=(str(android_x86_64.cxx_dir),)))
    assert out.output.name == wheel.name  # the tag is the API level: kept
    tree = unzip(out.output, tmp_path / "tree")
    (grafted,) = (tree / "demo.libs").iterdir()
    assert grafted.name.startswith("libc++_shared-")
    assert read_elf(grafted).soname == grafted.name
    ext = tree / "demo" / android_x86_64.ext.name
    assert needed(ext) == (
        "libc.so",
        "liblog.so",
        "libpython3.13.so",  # kept: extensions link libpython on Android
        grafted.name,
    )
    info = read_elf(ext)
    assert info.runpath == ("$ORIGIN/../demo.libs",)
    assert info.rpath == ()  # bionic ignores DT_RPATH
    assert "(RPATH)" not in dynamic(grafted)
    # a second repair has nothing left to do
    again = analyze(out.output, Options())
    assert again.audit is not None
    assert again.audit.overall.policy.name == "android_24_x86_64"


def test_patchelf_writes_runpath_for_android() -> None:
    from relabel.patchelf import arguments
    from relabel.plan import Patch

    assert arguments(Patch("m", set_rpath="$ORIGIN", runpath=True)) == ["--set-rpath", "$ORIGIN"]
    assert "--force-rpath" in arguments(Patch("m", set_rpath="$ORIGIN"))


def test_an_existing_rpath_becomes_runpath(android_x86_64: Android, tmp_path: Path) -> None:
    ext = tmp_path / "src" / android_x86_64.ext.name
    ext.parent.mkdir()
    shutil.copyfile(android_x86_64.ext, ext)
    _run("patchelf", "--force-rpath", "--set-rpath", "$ORIGIN", ext)
    assert read_elf(ext).rpath == ("$ORIGIN",)
    wheel = android_x86_64.wheel(tmp_path / "in", 24, ext)
    out = repair(wheel, tmp_path / "out", Options(library_dirs=(str(android_x86_64.cxx_dir),)))
    info = read_elf(unzip(out.output, tmp_path / "tree") / "demo" / ext.name)
    assert (info.rpath, info.runpath) == ((), ("$ORIGIN", "$ORIGIN/../demo.libs"))


def test_api_level_below_24_cannot_reach_a_graft(android_x86_64: Android, tmp_path: Path) -> None:
    wheel = android_x86_64.wheel(tmp_path / "in", 23, android_x86_64.ext)
    options = Options(library_dirs=(str(android_x86_64.cxx_dir),))
    with pytest.raises(PolicyError) as info:
        repair(wheel, tmp_path / "out", replace(options, plat="android_23_x86_64"))
    assert "only from API level 24" in str(info.value)
    assert "libc++_shared.so" in str(info.value)
    # the automatic target leaves the wheel as it is, as for any unreachable policy
    kept = repair(wheel, tmp_path / "auto", options)
    assert kept.plan is not None
    assert kept.plan.keeps_linux
    assert kept.output.read_bytes() == wheel.read_bytes()


def test_newer_bionic_symbols_need_a_newer_tag(android_x86_64: Android, tmp_path: Path) -> None:
    at24 = android_x86_64.wheel(tmp_path / "24", 24, android_x86_64.ext_o)
    audit = analyze(at24, Options()).audit
    assert audit is not None
    assert audit.repairable.policy.is_linux
    (finding,) = [f for f in audit.findings() if f.kind == "symbol-version"]
    assert (finding.symbol, finding.version, finding.library) == ("o_fn", "LIBC_O", "libc.so")
    at26 = android_x86_64.wheel(tmp_path / "26", 26, android_x86_64.ext_o)
    audit26 = analyze(at26, Options()).audit
    assert audit26 is not None
    assert audit26.overall.policy.name == "android_26_x86_64"


def test_files_built_for_a_newer_api_level_than_the_tag(
    android_x86_64: Android, tmp_path: Path
) -> None:
    assert read_elf(android_x86_64.ext_noted).android_api == 26
    at24 = android_x86_64.wheel(tmp_path / "24", 24, android_x86_64.ext_noted)
    audit = analyze(at24, Options()).audit
    assert audit is not None
    assert audit.repairable.policy.is_linux
    (finding,) = audit.findings()
    assert finding.kind == "android-api-level"
    assert "API level 26" in finding.detail
    with pytest.raises(PolicyError) as info:
        repair(at24, tmp_path / "out", Options(plat="android_24_x86_64"))
    assert "tag the wheel for the API level its files were built for" in str(info.value)
    at26 = android_x86_64.wheel(tmp_path / "26", 26, android_x86_64.ext_noted)
    audit26 = analyze(at26, Options()).audit
    assert audit26 is not None
    assert audit26.overall.policy.name == "android_26_x86_64"
    # the note alone says Android, whatever the file is called
    renamed = tmp_path / "_noted.so"
    shutil.copyfile(android_x86_64.ext_noted, renamed)
    plain = make_wheel(
        tmp_path / "linux", {"demo/_noted.so": renamed}, tag=f"{PY}-{PY}-linux_x86_64"
    )
    with pytest.raises(WheelError, match="android_<api>_<abi>"):
        analyze(plain, Options())


def test_host_libraries_are_never_grafted(android_x86_64: Android, tmp_path: Path) -> None:
    # Android is cross-compiled: without ldpaths/library-dirs only the wheel is searched,
    # even where the build machine has a library of that name.
    wheel = android_x86_64.wheel(tmp_path, 24, android_x86_64.ext)
    result = analyze(wheel, Options())
    assert result.audit is not None
    (missing,) = [f for f in result.audit.findings() if f.kind == "library-not-found"]
    assert missing.library == "libc++_shared.so"
    assert missing.searched == ()


@pytest.mark.parametrize(
    ("tag", "words"),
    [
        ("android_24_arm64_v8a", "audited for aarch64"),
        ("linux_x86_64", "exactly one android_<api>_<abi>"),
        ("android_24_x86_64.android_26_x86_64", "exactly one android_<api>_<abi>"),
        ("android_19_x86_64", "API level 21"),
    ],
)
def test_tags_that_contradict_the_files(
    android_x86_64: Android, tmp_path: Path, tag: str, words: str
) -> None:
    wheel = android_x86_64.wheel(tmp_path, 24, android_x86_64.ext_plain, tag=tag)
    with pytest.raises(WheelError) as info:
        analyze(wheel, Options())
    assert words in str(info.value)


def test_x86_abi(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    try:
        built = _build(tmp_path_factory.mktemp("android-x86"), "x86", ("-m32",))
    except subprocess.CalledProcessError as exc:  # pragma: no cover - no multilib gcc
        pytest.skip(f"gcc -m32 cannot link here: {exc.stderr!r}")
    wheel = built.wheel(tmp_path / "in", 24, built.ext)
    out = repair(wheel, tmp_path / "out", Options(library_dirs=(str(built.cxx_dir),)))
    assert out.output.name.endswith("android_24_x86.whl")
    assert out.plan is not None
    assert [g.soname for g in out.plan.grafts] == ["libc++_shared.so"]


# -- auditwheel side by side ------------------------------------------------------------

# auditwheel is a test-only oracle, installed where it installs (Python >= 3.10)
needs_auditwheel = pytest.mark.skipif(
    importlib.util.find_spec("auditwheel") is None, reason="auditwheel (the oracle) is missing"
)


def _auditwheel(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return run_module("auditwheel", *args)


def _relabel(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return run_module("relabel", *args)


@needs_auditwheel
def test_same_repair_as_auditwheel(android_x86_64: Android, tmp_path: Path) -> None:
    wheel = android_x86_64.wheel(tmp_path / "in", 24, android_x86_64.ext)
    libdir = android_x86_64.cxx_dir
    theirs = _auditwheel("repair", "--ldpaths", libdir, "-w", tmp_path / "aw", wheel)
    assert theirs.returncode == 0, theirs.stderr
    ours = _relabel("repair", "--ldpaths", libdir, "-w", tmp_path / "rl", wheel)
    assert ours.returncode == 0, ours.stderr
    (aw,) = (tmp_path / "aw").iterdir()
    (rl,) = (tmp_path / "rl").iterdir()
    assert aw.name == rl.name == wheel.name
    aw_tree, rl_tree = unzip(aw, tmp_path / "awt"), unzip(rl, tmp_path / "rlt")
    assert sorted(p.name for p in (aw_tree / "demo.libs").iterdir()) == sorted(
        p.name for p in (rl_tree / "demo.libs").iterdir()
    )
    ext = f"demo/{android_x86_64.ext.name}"
    for tree in (aw_tree, rl_tree):
        info = read_elf(tree / ext)
        assert (info.runpath, info.rpath) == (("$ORIGIN/../demo.libs",), ())
    assert set(needed(aw_tree / ext)) == set(needed(rl_tree / ext))
    # auditwheel finds nothing left to do in relabel's output
    shown = _auditwheel("show", rl)
    assert "requires no external shared libraries" in shown.stdout.replace("\n", " ")


@needs_auditwheel
def test_deliberate_differences_from_auditwheel(android_x86_64: Android, tmp_path: Path) -> None:
    # LIBC_O symbols in a wheel tagged for API level 24: auditwheel judges no bionic
    # version and accepts it; the wheel would fail to load on Android 7.
    newer = android_x86_64.wheel(tmp_path / "o", 24, android_x86_64.ext_o)
    theirs = json.loads(_auditwheel("show", "--json", newer).stdout)
    assert theirs["overall_tag"] == "android_24_x86_64"
    ours = json.loads(_relabel("show", "--json", newer).stdout)
    assert ours["overall_tag"] == "linux_x86_64"
    assert any(f["version"] == "LIBC_O" for f in ours["findings"])
    # API level 23 with a graft: auditwheel stops with a traceback; relabel says why.
    old = android_x86_64.wheel(tmp_path / "23", 23, android_x86_64.ext)
    libdir = android_x86_64.cxx_dir
    theirs_23 = _auditwheel("repair", "--ldpaths", libdir, "-w", tmp_path / "aw", old)
    assert theirs_23.returncode != 0
    ours_23 = _relabel(
        "repair", "--plat", "android_23_x86_64", "--ldpaths", libdir, "-w", tmp_path / "rl", old
    )
    assert ours_23.returncode != 0
    assert "Traceback" not in ours_23.stderr
    assert "cannot be made android_23_x86_64 compliant" in ours_23.stderr
    assert "API level 24" in ours_23.stderr
    assert "ANDROID_STL=c++_static" in ours_23.stderr  # the way out


# -- real wheels from PyPI --------------------------------------------------------------

CACHE = corpus_support.cache_dir()  # shared with the corpus, honours RELABEL_TEST_CACHE
PYPI = "https://files.pythonhosted.org/packages"
#: small Android wheels published on PyPI (file name, sha256)
REAL = {
    "markupsafe-3.0.4-cp313-cp313-android_24_x86_64.whl": (
        "34bdde374c5932765d7dc685c4a1d191a3207852d67e8e0a9eb6ea85156181f1"
    ),
    "markupsafe-3.0.4-cp313-cp313-android_24_arm64_v8a.whl": (
        "de8b364c423ef0a4bad9069657d617f9a5d2b2062457a89b1fa16ee199c399c1"
    ),
    "xxhash-3.7.0-cp313-cp313-android_21_arm64_v8a.whl": (
        "4b6d6b33f141158692bd4eafbb96edbc5aa0dabdb593a962db01a91983d4f8fa"
    ),
    "pyzmq-27.3.0-cp313-cp313-android_24_arm64_v8a.whl": (
        "a418d35be0a0a2693bf1990d831a744ee2f012b8268b3e0c6cb28b06c2769d76"
    ),
}


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def real_wheel(filename: str) -> Path:
    """The pinned wheel from the cache, downloaded with pip when missing."""
    path = CACHE / filename
    if not path.is_file():
        name, version, _, tags = parse_wheel_filename(filename)
        (tag,) = tags
        CACHE.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
             "--platform", tag.platform, "--implementation", "cp", "--abi", tag.abi,
             "--python-version", tag.interpreter[2:], "-d", str(CACHE),
             f"{name}=={version}"],
            capture_output=True, text=True, check=False, timeout=300,
        )  # fmt: skip
        if not path.is_file():
            pytest.skip(f"cannot download {filename} from the index: {proc.stderr[-300:]}")
    assert _sha256(path) == REAL[filename], f"{path} is not the pinned file; delete it"
    return path


@needs_auditwheel
@pytest.mark.parametrize("filename", sorted(REAL))
def test_real_wheels_shown_like_auditwheel(filename: str) -> None:
    wheel = real_wheel(filename)
    theirs = json.loads(_auditwheel("show", "--json", wheel).stdout)
    ours = json.loads(_relabel("show", "--json", wheel).stdout)
    for key in ("overall_tag", "sym_tag", "external_libs", "versioned_symbols"):
        assert ours[key] == theirs[key], key
    assert ours["overall_tag"] == next(iter(parse_wheel_filename(filename)[3])).platform


def test_real_wheel_repaired_by_auditwheel_is_left_alone(tmp_path: Path) -> None:
    wheel = real_wheel("pyzmq-27.3.0-cp313-cp313-android_24_arm64_v8a.whl")
    ours = _relabel("repair", "-w", tmp_path, wheel)
    assert ours.returncode == 0, ours.stderr
    (out,) = tmp_path.iterdir()
    assert out.name == wheel.name
    assert "no external libraries to graft" in ours.stderr + ours.stdout
    with zipfile.ZipFile(wheel) as a, zipfile.ZipFile(out) as b:
        libs = [n for n in a.namelist() if n.endswith(".so")]
        assert {n: a.read(n) for n in libs} == {n: b.read(n) for n in libs}
