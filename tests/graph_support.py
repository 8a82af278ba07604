"""Helpers of the dependency-graph tests: gcc-built libraries laid out as real wheels lay
them out, and a check that loads a repaired wheel as installed, away from the build tree.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from typing import TYPE_CHECKING

import pytest

from tests.conftest import EXT_SUFFIX, _extension, _run

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from pathlib import Path

INCLUDE = sysconfig.get_paths()["include"]
CC = ("gcc", "-shared", "-fPIC", "-O1")


def build_root(tmp_path_factory: pytest.TempPathFactory, name: str) -> tuple[Path, Path]:
    """A fresh directory for a session's gcc-built files, and its ``src`` directory (the
    test is skipped where there is no gcc)."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to build the ELF fixtures")
    root = tmp_path_factory.mktemp(name)
    src = root / "src"
    src.mkdir()
    return root, src


def linked(library: Path, *, runpath: bool = False) -> list[str]:
    """gcc flags linking to ``library`` by its file name (``DT_NEEDED`` is its soname), with
    a ``DT_RUNPATH`` to its directory when ``runpath``."""
    flags = ["-L", str(library.parent), f"-l:{library.name}"]
    if runpath:
        flags += ["-Wl,--enable-new-dtags", f"-Wl,-rpath,{library.parent}"]
    return flags


def library(out: Path, soname: str | None, body: str, *flags: str, src: Path | None = None) -> Path:
    """A shared library built from C ``body`` (``-soname`` unless ``soname`` is None)."""
    src = src or out.parent
    out.parent.mkdir(parents=True, exist_ok=True)
    source = src / f"{out.name}.c"
    source.write_text(body)
    args = [*CC, "-o", str(out), str(source), *flags]
    if soname is not None:
        args.insert(4, f"-Wl,-soname,{soname}")
    _run(args, src)
    return out


def extension(out_dir: Path, name: str, body: str, call: str, *flags: str, cwd: Path) -> Path:
    """A Python extension module ``name`` whose ``value()`` returns ``call``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    source = cwd / f"{name}.c"
    source.write_text(_extension(name, body, call))
    out = out_dir / f"{name}{EXT_SUFFIX}"
    _run([*CC, f"-I{INCLUDE}", "-o", str(out), source.name, *flags], cwd)
    return out


def installed_name(member: str) -> str | None:
    """Where an installer puts ``member`` relative to site-packages (None: elsewhere)."""
    first, _, rest = member.partition("/")
    if first.endswith(".data"):
        scheme, _, inner = rest.partition("/")
        return inner if scheme in ("platlib", "purelib") else None
    return member


def install_into(wheel: Path, site: Path) -> None:
    """Lay the wheel out as an installer does (the .data schemes mapped to site-packages)."""
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            name = installed_name(info.filename)
            if name is None or info.is_dir():
                continue
            dest = site / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(zf.read(info))
            mode = (info.external_attr >> 16) & 0o777
            dest.chmod(mode or 0o644)


@contextlib.contextmanager
def hidden(*directories: Path) -> Iterator[None]:
    """The directories renamed away for the duration: nothing can load from them."""
    moved = [(d, d.with_name(d.name + ".hidden")) for d in directories]
    for original, away in moved:
        original.rename(away)
    try:
        yield
    finally:
        for original, away in moved:
            away.rename(original)


LOAD = """
import ctypes, importlib, json, sys
site = sys.argv[1]
sys.path.insert(0, site)
out = {}
for name in sys.argv[2:]:
    if name.endswith(".so") or ".so." in name:
        ctypes.CDLL(site + "/" + name)
        out[name] = "loaded"
    else:
        out[name] = importlib.import_module(name).value()
print(json.dumps(out))
"""


def load_installed(
    wheel: Path, site: Path, names: Sequence[str], *, hide: Sequence[Path] = ()
) -> dict[str, object]:
    """Install ``wheel`` into ``site``, hide ``hide``, then in one clean process with
    LD_BIND_NOW=1 import each module (dotted name) or ctypes-load each library (path
    relative to ``site``) of ``names``, in order; returns module -> value()."""
    if site.exists():
        shutil.rmtree(site)
    install_into(wheel, site)
    env = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "PYTHONPATH")}
    env["LD_BIND_NOW"] = "1"
    with hidden(*hide):
        proc = subprocess.run(
            [sys.executable, "-I", "-c", LOAD, str(site), *names],
            capture_output=True,
            text=True,
            env=env,
            cwd=site.parent,
            check=False,
        )
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout))


def dynamic(path: Path) -> dict[str, list[str]]:
    """DT_NEEDED, DT_RPATH, DT_RUNPATH and DT_SONAME of ``path`` as readelf prints them."""
    text = subprocess.run(
        ["readelf", "-dW", str(path)], capture_output=True, text=True, check=True
    ).stdout
    out: dict[str, list[str]] = {"NEEDED": [], "RPATH": [], "RUNPATH": [], "SONAME": []}
    for line in text.splitlines():
        for key, values in out.items():
            if f"({key})" in line:
                values.append(line.split("[", 1)[1].rsplit("]", 1)[0])
    return out


def member_dynamic(wheel: Path, member: str, scratch: Path) -> dict[str, list[str]]:
    scratch.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as zf:
        target = scratch / member.replace("/", "_")
        target.write_bytes(zf.read(member))
    return dynamic(target)


def members(wheel: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(wheel) as zf:
        return {n: zf.read(n) for n in zf.namelist()}
