"""Deterministic benchmark wheels: real extensions and libraries, built with gcc.

Every wheel is built from seeded data with fixed zip timestamps, so the same parameters in
the same cache directory give the same bytes on every run. The absolute path of the cache
directory is part of the bytes (it is the extension's RUNPATH), and so are the compiler,
the zlib and the Python the wheels are built for; all of these are recorded in the
parameters that decide whether a cached wheel can be reused.

Shapes (see README.md):

* ``small``: one extension that needs one external library.
* ``medium``: ~50 MiB of external libraries (five, two of them reached only indirectly)
  and 2000 small Python files.
* ``large``: ~500 MiB of external libraries, a few of 50-150 MiB each.
* ``inside``: the ``large`` libraries already inside the wheel; the extension finds them
  through ``$ORIGIN/lib`` and also carries a RUNPATH entry to a build directory.
* ``files-N``: one extension, one external library, N small Python files.

The big libraries get their size from a read-only data section filled with ``.incbin`` of a
generated blob. The blob resembles machine code to deflate: seeded random fragments mixed
with repeats of recent fragments and padding runs, about 2.5x compressible at level 6.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import shutil
import subprocess
import sys
import sysconfig
import zipfile
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

#: Bump when anything below changes the bytes of a wheel: cached wheels are rebuilt.
GENERATOR_VERSION = 2

MIB = 1 << 20
ZIP_DATE = (2020, 1, 1, 0, 0, 0)
ZIP_LEVEL = 6
VERSION = "1.0"
EXT_SUFFIX = sysconfig.get_config_var("EXT_SUFFIX")
PY_INCLUDE = sysconfig.get_paths()["include"]

SHAPE_ORDER = ("small", "medium", "large", "inside")
FILES_COUNTS = (250, 1000, 4000, 16000)
DEFAULT_SIZES = (*SHAPE_ORDER, *(f"files-{n}" for n in FILES_COUNTS))


@dataclass(frozen=True)
class LibSpec:
    """One generated shared library."""

    name: str  # short name: the soname is lib<name>.so
    size_mib: int  # size of the embedded data blob (0: a tiny library)
    functions: int  # exported functions, so that the dynamic symbol table is not trivial
    needs: tuple[str, ...] = ()  # other generated libraries it links to ($ORIGIN RUNPATH)


@dataclass(frozen=True)
class Shape:
    """What one benchmark wheel contains."""

    name: str
    libs: tuple[LibSpec, ...]
    ext_needs: tuple[str, ...]  # libraries the extension links to directly
    py_files: int
    libs_inside: bool = False  # True: the libraries are members of the wheel (pkg/lib/)
    description: str = ""

    @property
    def dist(self) -> str:
        return "bench_" + self.name.replace("-", "_")


_BIG = (150, 130, 100, 70, 50)  # MiB each, 500 MiB in all


def shape(name: str) -> Shape:
    """The shape called *name* (``small``, ``medium``, ``large``, ``inside`` or ``files-N``)."""
    dep = LibSpec("bdep", 0, 50)
    if name == "small":
        return Shape(name, (dep,), ("bdep",), 0, description="1 ext + 1 external lib")
    if name == "medium":
        libs = (
            LibSpec("bmed0", 14, 800),
            LibSpec("bmed1", 12, 800),
            LibSpec("bmed2", 10, 800, needs=("bmed3", "bmed4")),
            LibSpec("bmed3", 8, 800),
            LibSpec("bmed4", 6, 800),
        )
        return Shape(
            name,
            libs,
            ("bmed0", "bmed1", "bmed2"),
            2000,
            description="50 MiB in 5 external libs, 2000 .py",
        )
    if name in ("large", "inside"):
        libs = tuple(LibSpec(f"bbig{i}", size, 4000) for i, size in enumerate(_BIG))
        names = tuple(lib.name for lib in libs)
        if name == "large":
            return Shape(name, libs, names, 0, description="500 MiB in 5 external libs")
        return Shape(
            name,
            libs,
            names,
            0,
            libs_inside=True,
            description="500 MiB of libs already in the wheel",
        )
    prefix = "files-"
    if name.startswith(prefix) and name[len(prefix) :].isdigit():
        count = int(name[len(prefix) :])
        return Shape(name, (dep,), ("bdep",), count, description=f"1 ext + 1 lib + {count} .py")
    msg = f"unknown wheel shape {name!r} (expected small, medium, large, inside or files-N)"
    raise ValueError(msg)


@dataclass(frozen=True)
class BuiltWheel:
    """A wheel ready to benchmark, with the external libraries it needs."""

    shape: Shape
    wheel: Path
    external_libs: tuple[Path, ...] = field(default=())

    @property
    def wheel_size(self) -> int:
        return self.wheel.stat().st_size

    @property
    def external_size(self) -> int:
        return sum(path.stat().st_size for path in self.external_libs)


# ---------------------------------------------------------------------------------------------
# deterministic data


def _seed(*parts: object) -> int:
    text = ":".join(str(part) for part in parts).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "big")


def _rng(seed: int) -> random.Random:
    """A seeded generator: benchmark data must be reproducible, not unpredictable."""
    return random.Random(seed)  # noqa: S311


def _pool(size: int = 4 * MIB) -> bytes:
    """Code-like bytes: fresh random fragments, repeats of recent ones, padding runs."""
    rng = _rng(_seed("pool", GENERATOR_VERSION))
    parts: list[bytes] = []
    recent: list[bytes] = []
    total = 0
    while total < size:
        roll = rng.random()
        if roll < 0.27 or not recent:
            part = rng.randbytes(rng.randrange(6, 40))
        elif roll < 0.95:
            part = recent[-rng.randrange(1, min(len(recent), 200) + 1)]
        else:
            part = bytes((rng.choice((0x00, 0x90, 0xCC)),)) * rng.randrange(4, 32)
        recent.append(part)
        if len(recent) > 400:
            del recent[:200]
        parts.append(part)
        total += len(part)
    return b"".join(parts)[:size]


def write_blob(path: Path, size: int, seed: int, pool: bytes) -> None:
    """*size* bytes: windows of *pool* at seeded offsets, each after 32 fresh random bytes.

    The windows are far apart in the pool, so deflate (32 KiB window) sees no long-range
    repetition; the compression ratio is the pool's own.
    """
    rng = _rng(seed)
    written = 0
    with path.open("wb") as out:
        while written < size:
            length = rng.randrange(4096, 65536)
            offset = rng.randrange(0, len(pool) - length)
            chunk = rng.randbytes(32) + pool[offset : offset + length]
            chunk = chunk[: size - written]
            out.write(chunk)
            written += len(chunk)


def _py_source(dist: str, index: int) -> str:
    rng = _rng(_seed(dist, "py", index))
    value = rng.randrange(1 << 30)
    table = ", ".join(str(rng.randrange(1000)) for _ in range(rng.randrange(4, 24)))
    lines = [
        f'"""Module {index} of {dist}: generated benchmark content."""',
        "",
        "from __future__ import annotations",
        "",
        f"VALUE_{index} = {value}",
        f"TABLE = ({table})",
        "",
    ]
    for number in range(rng.randrange(2, 12)):
        a, b = rng.randrange(1, 100), rng.randrange(1000)
        lines += [
            "",
            f"def function_{number}(value: int) -> int:",
            f'    """Return value * {a} + {b}, folded over TABLE."""',
            f"    total = value * {a} + {b}",
            "    for item in TABLE:",
            f"        total = (total ^ item) % {rng.randrange(7, 1 << 20)}",
            "    return total",
            "",
        ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# compiling


def _run(cmd: list[str], cwd: Path) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        msg = f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        raise RuntimeError(msg)


def compiler_version() -> str:
    proc = subprocess.run(["gcc", "--version"], capture_output=True, text=True, check=True)
    return proc.stdout.splitlines()[0]


def _lib_c_source(lib: LibSpec) -> str:
    out = ["#include <stdlib.h>", "#include <string.h>", "#include <stdio.h>", ""]
    for need in lib.needs:
        out.append(f"unsigned long {need}_size(void);")
    if lib.size_mib:
        out.append(f"extern const unsigned char {lib.name}_blob[], {lib.name}_blob_end[];")
    size = f"(unsigned long)({lib.name}_blob_end - {lib.name}_blob)" if lib.size_mib else "0UL"
    deps = "".join(f" + {need}_size()" for need in lib.needs)
    out.append(f"unsigned long {lib.name}_size(void) {{ return {size}{deps}; }}")
    out.append(
        f"int {lib.name}_describe(char *buf, unsigned long len) {{\n"
        f"    char *tmp = malloc(64);\n"
        f"    if (!tmp) return -1;\n"
        f'    snprintf(tmp, 64, "{lib.name}:%lu", {lib.name}_size());\n'
        f"    strncpy(buf, tmp, len);\n"
        f"    free(tmp);\n"
        f"    return (int)strlen(buf);\n"
        f"}}"
    )
    out.extend(
        f"int {lib.name}_f{number}(int x) {{ return x * {number + 3} + {len(lib.name)}; }}"
        for number in range(lib.functions)
    )
    return "\n".join(out) + "\n"


def _asm_source(lib: LibSpec, blob: str) -> str:
    symbol = f"{lib.name}_blob"
    return (
        '\t.section .rodata.bench_blob,"a",@progbits\n'
        "\t.balign 64\n"
        f"\t.globl {symbol}\n"
        f"\t.type {symbol}, @object\n"
        f"{symbol}:\n"
        f'\t.incbin "{blob}"\n'
        f"\t.globl {symbol}_end\n"
        f"{symbol}_end:\n"
        f"\t.size {symbol}, {symbol}_end - {symbol}\n"
        '\t.section .note.GNU-stack,"",@progbits\n'
    )


def _ext_source(module: str, needs: tuple[str, ...]) -> str:
    decls = "".join(f"unsigned long {need}_size(void);\n" for need in needs)
    total = " + ".join(f"{need}_size()" for need in needs) or "0"
    return f"""#define PY_SSIZE_T_CLEAN
#include <Python.h>
{decls}
static PyObject *total_size(PyObject *self, PyObject *args) {{
    return PyLong_FromUnsignedLong({total});
}}
static PyMethodDef methods[] = {{
    {{"total_size", total_size, METH_NOARGS, "Sum of the libraries' data sizes."}},
    {{NULL, NULL, 0, NULL}},
}};
static struct PyModuleDef module = {{PyModuleDef_HEAD_INIT, "{module}", NULL, -1, methods}};
PyMODINIT_FUNC PyInit_{module}(void) {{ return PyModule_Create(&module); }}
"""


def _build_lib(lib: LibSpec, build: Path, libdir: Path, seed: int, pool: bytes) -> Path:
    """Compile lib<name>.so into *libdir* (sources and the blob stay in *build*)."""
    (build / f"{lib.name}.c").write_text(_lib_c_source(lib))
    sources = [f"{lib.name}.c"]
    blob = build / f"{lib.name}.bin"
    if lib.size_mib:
        write_blob(blob, lib.size_mib * MIB, seed, pool)
        (build / f"{lib.name}.s").write_text(_asm_source(lib, blob.name))
        sources.append(f"{lib.name}.s")
    output = libdir / f"lib{lib.name}.so"
    cmd = ["gcc", "-shared", "-fPIC", "-O2", "-o", str(output), *sources]
    cmd.append(f"-Wl,-soname,lib{lib.name}.so")
    if lib.needs:
        cmd += [str(libdir / f"lib{need}.so") for need in lib.needs]
        cmd.append("-Wl,--enable-new-dtags,-rpath,$ORIGIN")
    _run(cmd, build)
    blob.unlink(missing_ok=True)
    (build / f"{lib.name}.s").unlink(missing_ok=True)
    return output


# ---------------------------------------------------------------------------------------------
# the wheel


def _tags() -> tuple[str, str, str]:
    version = f"{sys.version_info.major}{sys.version_info.minor}"
    abi = "cp" + version + ("t" if sysconfig.get_config_var("Py_GIL_DISABLED") else "")
    platform = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    return "cp" + version, abi, platform


def _record_hash(digest: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class _WheelWriter:
    """Writes members with fixed timestamps and modes and collects RECORD as it goes."""

    def __init__(self, path: Path) -> None:
        self._zip = zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=ZIP_LEVEL)
        self._record: list[str] = []

    def _info(self, name: str, executable: bool) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
        info.create_system = 3
        info.external_attr = (0o100755 if executable else 0o100644) << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        return info

    def add_bytes(self, name: str, data: bytes, executable: bool = False) -> None:
        self._zip.writestr(self._info(name, executable), data, compresslevel=ZIP_LEVEL)
        digest = hashlib.sha256(data).digest()
        self._record.append(f"{name},{_record_hash(digest)},{len(data)}")

    def add_file(self, name: str, source: Path, executable: bool = True) -> None:
        info = self._info(name, executable)
        info.file_size = source.stat().st_size  # lets zipfile pick zip64 up front if needed
        digest = hashlib.sha256()
        size = 0
        with source.open("rb") as src, self._zip.open(info, "w") as dst:
            while chunk := src.read(MIB):
                digest.update(chunk)
                dst.write(chunk)
                size += len(chunk)
        self._record.append(f"{name},{_record_hash(digest.digest())},{size}")

    def close(self, record_name: str) -> None:
        record = "\n".join([*self._record, f"{record_name},,"]) + "\n"
        self._zip.writestr(self._info(record_name, False), record, compresslevel=ZIP_LEVEL)
        self._zip.close()


def _params(shp: Shape, cache: Path) -> dict[str, object]:
    """Everything the bytes of a wheel depend on, as it reads back from params.json."""
    params = {
        "generator": GENERATOR_VERSION,
        "shape": asdict(shp),
        "cache": str(cache.resolve()),
        "tags": list(_tags()),
        "ext_suffix": EXT_SUFFIX,
        "python_include": PY_INCLUDE,
        "compiler": compiler_version(),
        "zlib": zlib.ZLIB_RUNTIME_VERSION,
    }
    return json.loads(json.dumps(params))  # tuples become lists, as in the saved copy


def _assemble(shp: Shape, root: Path, pool: bytes) -> BuiltWheel:
    build = root / "build"
    libdir = root / "libs"  # external: outside the wheel, reached through RUNPATH
    outside = root / "build-tree"  # inside: a RUNPATH entry that holds nothing the ext needs
    dist_dir = root / "dist"
    for directory in (build, libdir, outside, dist_dir):
        directory.mkdir(parents=True)
    (outside / "README").write_text("build tree: nothing the extension needs lives here\n")

    # dependencies first, so that lib<name>.so exists when a library links to it
    built: dict[str, Path] = {}
    pending = list(shp.libs)
    while pending:
        lib = next(lib for lib in pending if all(need in built for need in lib.needs))
        pending.remove(lib)
        built[lib.name] = _build_lib(lib, build, libdir, _seed(shp.name, lib.name), pool)

    module = "_ext"
    (build / "ext.c").write_text(_ext_source(module, shp.ext_needs))
    ext = build / f"{module}{EXT_SUFFIX}"
    runpath = f"{outside.resolve()}:$ORIGIN/lib" if shp.libs_inside else str(libdir.resolve())
    cmd = ["gcc", "-shared", "-fPIC", "-O2", f"-I{PY_INCLUDE}", "-o", str(ext), "ext.c"]
    cmd += [str(built[need]) for need in shp.ext_needs]
    cmd.append(f"-Wl,--enable-new-dtags,-rpath,{runpath}")
    _run(cmd, build)

    interpreter, abi, platform = _tags()
    dist = shp.dist
    wheel = dist_dir / f"{dist}-{VERSION}-{interpreter}-{abi}-{platform}.whl"
    partial = wheel.with_suffix(".partial")
    writer = _WheelWriter(partial)
    writer.add_bytes(f"{dist}/__init__.py", b'"""Benchmark package."""\n')
    writer.add_file(f"{dist}/{module}{EXT_SUFFIX}", ext)
    if shp.libs_inside:
        for name in sorted(built):
            writer.add_file(f"{dist}/lib/{built[name].name}", built[name])
    for index in range(shp.py_files):
        package = f"{dist}/sub{index // 100:03d}"
        member = "__init__.py" if index % 100 == 0 else f"mod{index:05d}.py"
        writer.add_bytes(f"{package}/{member}", _py_source(dist, index).encode())
    info = f"{dist}-{VERSION}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {dist}\nVersion: {VERSION}\n"
    writer.add_bytes(f"{info}/METADATA", metadata.encode())
    wheel_text = (
        "Wheel-Version: 1.0\nGenerator: relabel-benchmarks\nRoot-Is-Purelib: false\n"
        f"Tag: {interpreter}-{abi}-{platform}\n"
    )
    writer.add_bytes(f"{info}/WHEEL", wheel_text.encode())
    writer.add_bytes(f"{info}/top_level.txt", f"{dist}\n".encode())
    writer.close(f"{info}/RECORD")
    partial.rename(wheel)

    if shp.libs_inside:
        shutil.rmtree(libdir)  # the wheel holds them now
        libdir.mkdir()
        external: tuple[Path, ...] = ()
    else:
        external = tuple(built[name] for name in sorted(built))
    return BuiltWheel(shp, wheel, external)


def build(name: str, cache: Path, pool: list[bytes], log: bool = True) -> BuiltWheel:
    """Build the wheel of shape *name* under *cache*, or reuse the one already there.

    *pool* is a one-element cache for the generated data pool (filled on first need).
    """
    shp = shape(name)
    root = cache / shp.name
    params = _params(shp, cache)
    stamp = root / "params.json"
    if stamp.is_file():
        saved = json.loads(stamp.read_text())
        wheels = sorted((root / "dist").glob("*.whl"))
        if saved.get("params") == params and len(wheels) == 1:
            libs = tuple(Path(path) for path in saved.get("external_libs", []))
            if all(path.is_file() for path in libs):
                if log:
                    print(f"  {name}: reusing {wheels[0]}", flush=True)
                return BuiltWheel(shp, wheels[0], libs)
    if root.exists():
        shutil.rmtree(root)
    if log:
        print(f"  {name}: building ({shp.description}) ...", flush=True)
    if not pool and any(lib.size_mib for lib in shp.libs):
        pool.append(_pool())
    result = _assemble(shp, root, pool[0] if pool else b"")
    stamp.write_text(
        json.dumps(
            {
                "params": params,
                "wheel": str(result.wheel),
                "wheel_sha256": _file_sha256(result.wheel),
                "external_libs": [str(path) for path in result.external_libs],
            },
            indent=2,
        )
        + "\n"
    )
    return result


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as src:
        while chunk := src.read(MIB):
            digest.update(chunk)
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> int:
    """Build (or reuse) wheels without benchmarking: ``python wheelgen.py DIR [SHAPE...]``."""
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python benchmarks/wheelgen.py CACHE_DIR [SHAPE...]")
        return 2
    cache = Path(args[0])
    cache.mkdir(parents=True, exist_ok=True)
    pool: list[bytes] = []
    for name in args[1:] or DEFAULT_SIZES:
        built = build(name, cache, pool)
        print(f"{built.wheel}  sha256={_file_sha256(built.wheel)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
