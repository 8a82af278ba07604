"""example_projects/setuptools-floor: ``pip wheel .`` with ``glibc-floor = "auto"`` on this
machine gives a manylinux_2_17 wheel that imports under glibc 2.31 (Debian bullseye's Python
3.9, in a debootstrapped root) and here; with a ``stat()`` call the report names it and the
tag stays at manylinux_2_34."""

from __future__ import annotations

import json
import os
import shutil
import sys
import zipfile
from typing import TYPE_CHECKING

import pytest

from tests.floor_support import glibc_roots, run

from ._support import ISOLATED, Builder, Example

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.e2e

FLOOR = Example(
    "floor",
    "setuptools-floor",
    "relabel-example-floor",
    "1.0.0",
    "floordemo",
    None,
    "assert m.compute(2.0) == 70, m.compute(2.0)\n",
)
EXT = "floordemo/_floordemo.abi3.so"
PROVENANCE = "relabel_example_floor-1.0.0.dist-info/relabel-glibc-floor.json"


def test_auto_floor_gives_manylinux_2_17(builder: Builder, tmp_path: Path) -> None:
    build = builder.build(FLOOR, ISOLATED)
    wheel = build.wheel
    assert (
        wheel.name
        == "relabel_example_floor-1.0.0-cp39-abi3-manylinux2014_x86_64.manylinux_2_17_x86_64.whl"
    )
    output = build.run.output + build.run.errors
    assert (
        "glibc-floor: floordemo/_floordemo.abi3.so: pthread_create:"
        " libc.so.6 GLIBC_2.34 -> libpthread.so.0 GLIBC_2.2.5" in output
    )
    with zipfile.ZipFile(wheel) as zf:
        assert (
            f"{PROVENANCE},sha256="
            in zf.read("relabel_example_floor-1.0.0.dist-info/RECORD").decode()
        )
        provenance = json.loads(zf.read(PROVENANCE))
        zf.extractall(
            tmp_path / "lowered", [n for n in zf.namelist() if n.startswith("floordemo/")]
        )
    assert provenance["target"] == "2.17"
    symbols = {r["symbol"] for r in provenance["files"][EXT]["rewrites"]}
    assert {
        "pthread_create",
        "pthread_join",
        "dlopen",
        "dlsym",
        "fcntl64",
        "exp",
        "log",
        "pow",
    } <= symbols

    roots = glibc_roots()
    if os.geteuid() != 0:
        pytest.skip("the import under bullseye needs chroot (root)")
    inside = roots.bullseye / "tmp" / "relabel-floor-example"
    shutil.rmtree(inside, ignore_errors=True)
    shutil.copytree(tmp_path / "lowered", inside)
    code = "import floordemo; print(floordemo.compute(2.0))"
    old = run(
        [
            "chroot",
            str(roots.bullseye),
            "env",
            "LD_BIND_NOW=1",
            "PYTHONPATH=/tmp/relabel-floor-example",
            "python3",
            "-c",
            code,
        ]
    )
    assert (old.returncode, old.stdout.strip()) == (0, "70"), old.stderr
    here_env = {
        "PATH": os.environ["PATH"],
        "LD_BIND_NOW": "1",
        "PYTHONPATH": str(tmp_path / "lowered"),
    }
    here = run([sys.executable, "-c", code], env=here_env)
    assert (here.returncode, here.stdout.strip()) == (0, "70"), here.stderr


def test_stat_call_is_named_and_holds_the_tag(builder: Builder) -> None:
    build = builder.build(FLOOR, ISOLATED, env={"CFLAGS": "-DFLOOR_WITH_STAT"})
    assert build.wheel.name.endswith("-cp39-abi3-manylinux_2_34_x86_64.whl"), build.outputs
    output = build.run.output + build.run.errors
    assert (
        "glibc-floor: floordemo/_floordemo.abi3.so: kept stat64@GLIBC_2.33: changed ABI" in output
    )
