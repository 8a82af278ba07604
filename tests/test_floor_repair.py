"""glibc-floor through the repair pipeline: tags, report, provenance, refusals, and an abi3
extension repaired by relabel importing under glibc 2.31 (bullseye's Python 3.9) and here."""

from __future__ import annotations

import json
import shutil
import sysconfig
import zipfile
from pathlib import Path

import pytest

from relabel import cli, floor
from relabel.repair import Options, analyze, repair

from .conftest import make_wheel
from .floor_support import STAT_C, WORK_C, bullseye_driver, glibc_roots, run

EXT = (
    WORK_C
    + r"""
#define Py_LIMITED_API 0x03090000
#define PY_SSIZE_T_CLEAN
#include <Python.h>
static PyObject *value(PyObject *self, PyObject *args) { return PyLong_FromLong(work(2.0)); }
static PyMethodDef methods[] = {{"value", value, METH_NOARGS, ""}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef mod = {PyModuleDef_HEAD_INIT, "_floorext", NULL, -1, methods};
PyMODINIT_FUNC PyInit__floorext(void) { return PyModule_Create(&mod); }
"""
)


def _build(tmp: Path, source: str, name: str) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed")
    c = tmp / f"{name}.c"
    c.write_text(source)
    out = tmp / f"{name}.abi3.so"
    include = sysconfig.get_paths()["include"]
    proc = run(
        [
            "gcc",
            "-shared",
            "-fPIC",
            "-O1",
            f"-I{include}",
            "-o",
            str(out),
            str(c),
            "-lm",
            "-lpthread",
            "-ldl",
        ]
    )
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="module")
def ext(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build(tmp_path_factory.mktemp("floorext"), EXT, "_floorext")


def _wheel(tmp: Path, ext: Path, extra: dict[str, Path] | None = None) -> Path:
    return make_wheel(
        tmp / "in", {"_floorext.abi3.so": ext, **(extra or {})}, tag="cp39-abi3-linux_x86_64"
    )


def test_off_changes_nothing_and_says_what_auto_would_reach(ext: Path, tmp_path: Path) -> None:
    wheel = _wheel(tmp_path, ext)
    analysis = analyze(wheel, Options())
    assert analysis.audit is not None
    assert analysis.audit.repairable.policy.name == "manylinux_2_34_x86_64"
    assert any(
        "glibc-floor = auto would lower this wheel's glibc needs to 2.17" in n
        for n in analysis.notes
    )
    result = repair(wheel, tmp_path / "out", Options())
    assert result.output.name.endswith("manylinux_2_34_x86_64.whl")
    with zipfile.ZipFile(result.output) as zf:
        assert not any(n.endswith(floor.PROVENANCE) for n in zf.namelist())
        assert zf.read("_floorext.abi3.so") == ext.read_bytes()


def test_auto_gives_manylinux_2_17_with_provenance(ext: Path, tmp_path: Path) -> None:
    wheel = _wheel(tmp_path, ext)
    result = repair(wheel, tmp_path / "out", Options(glibc_floor="auto"))
    assert "manylinux_2_17_x86_64" in result.output.name
    with zipfile.ZipFile(result.output) as zf:
        record = zf.read("demo-1.0.dist-info/RECORD").decode()
        assert f"demo-1.0.dist-info/{floor.PROVENANCE},sha256=" in record
        prov = json.loads(zf.read(f"demo-1.0.dist-info/{floor.PROVENANCE}"))
        lowered = tmp_path / "lowered.so"
        lowered.write_bytes(zf.read("_floorext.abi3.so"))
    rewrites = prov["files"]["_floorext.abi3.so"]["rewrites"]
    assert {"symbol": "pthread_create", "from": "libc.so.6 GLIBC_2.34"}.items() <= rewrites[
        0
    ].items() or any(
        r["symbol"] == "pthread_create" and r["to"] == "pthread_create@GLIBC_2.2.5"
        for r in rewrites
    )
    assert prov["target"] == "2.17"
    # a second repair of the output changes nothing (the cibuildwheel rule)
    again = repair(result.output, tmp_path / "again", Options(glibc_floor="auto"))
    assert again.output.name == result.output.name


def test_cli_prints_every_rewrite(
    ext: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wheel = _wheel(tmp_path, ext)
    assert (
        cli.main(["repair", "--glibc-floor", "auto", "-w", str(tmp_path / "out"), str(wheel)]) == 0
    )
    out = capsys.readouterr().out
    assert (
        "glibc-floor: _floorext.abi3.so: pthread_create:"
        " libc.so.6 GLIBC_2.34 -> libpthread.so.0 GLIBC_2.2.5" in out
    )
    assert "manylinux_2_17" in out


def test_explicit_floor_names_what_cannot_go_below_it(ext: Path, tmp_path: Path) -> None:
    stat_so = _build(
        tmp_path,
        STAT_C.replace("int has_stat", "int has_stat_impl")
        + EXT.replace("work(2.0)", 'has_stat_impl("/")').replace(WORK_C, ""),
        "_statext",
    )
    wheel = make_wheel(
        tmp_path / "in",
        {"_floorext.abi3.so": ext, "_statext.abi3.so": stat_so},
        tag="cp39-abi3-linux_x86_64",
    )
    with pytest.raises(floor.FloorError) as info:
        repair(wheel, tmp_path / "out", Options(glibc_floor="manylinux_2_17"))
    text = str(info.value)
    assert "_statext.abi3.so: stat@GLIBC_2.33: changed ABI" in text
    assert "the lowest this file can reach is 2.33" in text
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
    # auto lowers what it can and the stat() call holds the tag where it must
    result = repair(wheel, tmp_path / "out", Options(glibc_floor="auto"))
    # stat@2.33 needs glibc 2.33; the next policy with a manylinux image is manylinux_2_34
    assert "manylinux_2_34_x86_64" in result.output.name
    assert result.analysis.glibc_floor is not None
    assert "glibc-floor: _statext.abi3.so: kept stat@GLIBC_2.33: changed ABI" in "\n".join(
        result.analysis.glibc_floor.lines()
    )


def test_cli_refuses_an_unknown_floor(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["repair", "--glibc-floor", "2.5", str(tmp_path / "x.whl")]) != 0
    assert "glibc 2.5 is outside what relabel can lower to" in capsys.readouterr().err


@pytest.mark.floor_runtime
def test_repaired_abi3_extension_imports_on_bullseye_and_here(ext: Path, tmp_path: Path) -> None:
    roots = glibc_roots()
    bullseye_driver(roots, tmp_path / "driver")  # skips without root (chroot)
    result = repair(_wheel(tmp_path, ext), tmp_path / "out", Options(glibc_floor="auto"))
    untouched_dir = roots.bullseye / "tmp" / "relabel-untouched"
    lowered_dir = roots.bullseye / "tmp" / "relabel-lowered"
    for d in (untouched_dir, lowered_dir):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    shutil.copy(ext, untouched_dir / "_floorext.abi3.so")
    with zipfile.ZipFile(result.output) as zf:
        zf.extract("_floorext.abi3.so", lowered_dir)
    code = "import _floorext; print(_floorext.value())"
    old = run(
        [
            "chroot",
            str(roots.bullseye),
            "env",
            "LD_BIND_NOW=1",
            "PYTHONPATH=/tmp/relabel-lowered",
            "python3",
            "-c",
            code,
        ]
    )
    assert (old.returncode, old.stdout.strip()) == (0, "71"), old.stderr
    control = run(
        [
            "chroot",
            str(roots.bullseye),
            "env",
            "PYTHONPATH=/tmp/relabel-untouched",
            "python3",
            "-c",
            code,
        ]
    )
    assert control.returncode == 1
    assert "GLIBC_2.34' not found" in control.stderr
    here = run(
        ["python3", "-c", code],
        env={"PYTHONPATH": str(lowered_dir), "LD_BIND_NOW": "1", "PATH": "/usr/bin:/bin"},
    )
    assert (here.returncode, here.stdout.strip()) == (0, "71"), here.stderr


def test_show_audits_the_wheel_as_it_is(
    ext: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Even with --glibc-floor auto, show (and the backend's check mode) judge the files as
    built; the note says what a repair would reach."""
    wheel = _wheel(tmp_path, ext)
    assert cli.main(["show", "--glibc-floor", "auto", str(wheel)]) == 0
    out = capsys.readouterr().out
    assert "manylinux_2_34_x86_64" in out
    assert "note: glibc-floor = auto would lower this wheel's glibc needs to 2.17" in out
