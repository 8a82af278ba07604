"""The installed-layout check (tests/installed.py) fails where a wheel would fail a user.

The rest of the suite relies on it passing; these tests show it is able to fail: a build-tree
RUNPATH, a grafted library that is not the one the file was built against, an extension
that only loads because another one brought its library in, a broken launcher.
"""

from __future__ import annotations

import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from relabel.repair import Options, repair

from . import installed
from .conftest import EXT_SUFFIX, PY_TAG, Fixtures, make_wheel, record_hash

EXT = f"pkg/_foo{EXT_SUFFIX}"
BAR = f"pkg/_bar{EXT_SUFFIX}"


def rewrite(wheel: Path, out: Path, replace: dict[str, bytes]) -> Path:
    """A copy of ``wheel`` with some members' bytes replaced and RECORD updated."""
    out.mkdir(parents=True, exist_ok=True)
    target = out / wheel.name
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(target, "w") as dst:
        infos = src.infolist()
        record = next(i for i in infos if i.filename.endswith(".dist-info/RECORD"))
        rows = []
        for info in infos:
            if info is record:
                continue
            data = replace.get(info.filename, src.read(info))
            dst.writestr(info, data)
            rows.append(f"{info.filename},{record_hash(data)},{len(data)}\n")
        rows.append(f"{record.filename},,\n")
        dst.writestr(record, "".join(rows))
    return target


def patched(data: bytes, tmp_path: Path, *args: str) -> bytes:
    """``data`` after ``patchelf ARGS``."""
    path = tmp_path / "patch-me"
    path.write_bytes(data)
    subprocess.run(["patchelf", *args, str(path)], check=True)
    return path.read_bytes()


def check(repair_: installed.Repair, tmp_path: Path) -> installed.Loaded | None:
    where = tmp_path / f"check{len(list(tmp_path.iterdir()))}"
    return installed.check_repair_output(repair_, where)


@pytest.mark.not_installable(reason="checked by hand below")
def test_a_good_repair_passes_and_its_probe_is_compared(fixtures: Fixtures, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "in", {BAR: fixtures.ext_bar, "pkg/__init__.py": b""})
    result = repair(wheel, tmp_path / "out", Options())
    grafts = {g.member: g.source for g in result.plan.grafts}  # type: ignore[union-attr]
    loaded = check(installed.Repair(wheel, result.output, grafts), tmp_path)
    assert loaded is not None
    probes = {Path(p).name: r.get("probe") for p, r in loaded.results.items()}
    assert probes[Path(BAR).name] == 43  # _bar -> libbar -> libfoo: 42 + 1
    # the grafted libraries were loaded, each on its own, from the installed tree
    assert sorted(v for k, v in probes.items() if k.startswith("lib")) == [42, 430]
    assert not any(str(fixtures.libdir) in m for m in loaded.maps)


@pytest.mark.not_installable(reason="checked by hand below")
def test_a_build_tree_runpath_fails(fixtures: Fixtures, tmp_path: Path) -> None:
    # An unrepaired wheel tagged manylinux: it loads only while the build tree is there.
    tag = f"{PY_TAG}-{PY_TAG}-manylinux_2_17_x86_64"
    wheel = make_wheel(tmp_path / "in", {EXT: fixtures.ext_foo}, tag=tag)
    with pytest.raises(installed.InstalledCheckError, match=r"_foo.*does not load") as excinfo:
        check(installed.Repair(wheel, wheel, search=(str(fixtures.libdir),)), tmp_path)
    assert "libfoo.so.1" in str(excinfo.value)
    assert fixtures.libfoo.exists()  # the build tree is back


@pytest.mark.not_installable(reason="checked by hand below")
def test_a_linux_wheel_is_loaded_where_it_was_built(fixtures: Fixtures, tmp_path: Path) -> None:
    # A linux tag promises this machine only (warn mode delivers such wheels): the build
    # tree stays, and the file must still load and give the same result.
    wheel = make_wheel(tmp_path / "in", {EXT: fixtures.ext_foo})
    loaded = check(installed.Repair(wheel, wheel, search=(str(fixtures.libdir),)), tmp_path)
    assert loaded is not None
    [got] = loaded.results.values()
    assert got == {"probe": 42}


@pytest.mark.not_installable(reason="checked by hand below")
def test_another_library_under_the_grafted_name_fails(fixtures: Fixtures, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "in", {EXT: fixtures.ext_foo})
    result = repair(wheel, tmp_path / "out", Options())
    [graft] = result.plan.grafts  # type: ignore[union-attr]
    src = tmp_path / "other.c"
    src.write_text("int foo(void) { return 41; }\nint relabel_probe(void) { return foo(); }\n")
    other = tmp_path / graft.new_name
    subprocess.run(
        ["gcc", "-shared", "-fPIC", f"-Wl,-soname,{graft.new_name}", "-o", str(other), str(src)],
        check=True,
    )
    bad = rewrite(result.output, tmp_path / "bad", {graft.member: other.read_bytes()})
    with pytest.raises(installed.InstalledCheckError, match="gives 41 once installed, 42"):
        check(installed.Repair(wheel, bad, {graft.member: graft.source}), tmp_path)


@pytest.mark.not_installable(reason="checked by hand below")
def test_an_extension_that_loads_only_after_another_fails(
    fixtures: Fixtures, tmp_path: Path
) -> None:
    # Two extensions need the same grafted library; the second has lost its RUNPATH. In
    # one process it would load anyway, its library already there through the first.
    second = f"pkg/sub/_foo{EXT_SUFFIX}"
    wheel = make_wheel(tmp_path / "in", {EXT: fixtures.ext_foo, second: fixtures.ext_foo})
    result = repair(wheel, tmp_path / "out", Options())
    with zipfile.ZipFile(result.output) as zf:
        data = zf.read(second)
    bad = rewrite(
        result.output, tmp_path / "bad", {second: patched(data, tmp_path, "--remove-rpath")}
    )
    grafts = {g.member: g.source for g in result.plan.grafts}  # type: ignore[union-attr]
    with pytest.raises(installed.InstalledCheckError) as excinfo:
        check(installed.Repair(wheel, bad, grafts), tmp_path)
    assert f"{second}: does not load" in str(excinfo.value)
    assert f"{EXT}: does not load" not in str(excinfo.value)


@pytest.mark.not_installable(reason="checked by hand below")
def test_an_executable_is_run_and_its_output_compared(fixtures: Fixtures, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "in", {"pkg/bin/showfoo": fixtures.exe_foo})
    result = repair(wheel, tmp_path / "out", Options())
    grafts = {g.member: g.source for g in result.plan.grafts}  # type: ignore[union-attr]
    loaded = check(installed.Repair(wheel, result.output, grafts), tmp_path)
    assert loaded is not None
    [got] = [r for p, r in loaded.results.items() if p.endswith("showfoo")]
    assert got == {"probe": [0, "foo=42\n"]}
    with zipfile.ZipFile(result.output) as zf:
        data = zf.read("pkg/bin/showfoo")
    bad = rewrite(
        result.output,
        tmp_path / "bad",
        {"pkg/bin/showfoo": patched(data, tmp_path, "--set-rpath", "/nonexistent")},
    )
    with pytest.raises(installed.InstalledCheckError, match="showfoo: does not load"):
        check(installed.Repair(wheel, bad, grafts), tmp_path)


def test_directories_are_hidden_and_restored(tmp_path: Path) -> None:
    inside = tmp_path / "lib"
    inside.mkdir()
    (inside / "x").write_text("x")
    keep = tmp_path / "keep"
    keep.mkdir()
    with installed.unreachable([inside, tmp_path, Path("/usr/lib")], keep=[keep]) as hidden:
        assert hidden == [inside]  # not /usr/lib, not a directory holding what is kept
        assert not inside.exists()
    assert (inside / "x").read_text() == "x"


def test_every_in_process_repair_is_checked(
    fixtures: Fixtures, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = []
    real = installed.check_result
    monkeypatch.setattr(installed, "check_result", lambda *a: seen.append(a) or real(*a))
    wheel = make_wheel(tmp_path / "in", {EXT: fixtures.ext_foo})
    output = repair(wheel, tmp_path / "out", Options()).output
    assert [(w, r.output) for w, r, _ in seen] == [(wheel, output)]
    shutil.rmtree(tmp_path / "out")
