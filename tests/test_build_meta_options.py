"""Repair options set through the backend's configuration reach the repair."""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

import pytest

from relabel import build_meta

from .conftest import EXT_SUFFIX, Fixtures, make_wheel, platforms
from .hooks_support import isolated_imports, make_project


@pytest.fixture
def built(fixtures: Fixtures, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    inner = make_wheel(
        tmp_path / "inner",
        {f"pkg/_foo{EXT_SUFFIX}": fixtures.ext_foo, f"pkg/_dl{EXT_SUFFIX}": fixtures.ext_dl},
    )

    def build(relabel: dict[str, object], config_settings: dict[str, object] | None = None) -> Path:
        root = tmp_path / f"project{len(list(tmp_path.glob('project*')))}"
        make_project(root, wheel=inner, relabel=relabel)
        (root / "empty").mkdir()
        (root / "sysroot/usr/lib").mkdir(parents=True)
        shutil.copy2(fixtures.libfoo, root / "sysroot/usr/lib")
        monkeypatch.chdir(root)
        dist = root / "dist"
        with isolated_imports(root):
            name = build_meta.build_wheel(str(dist), config_settings)
        assert [p.name for p in dist.iterdir()] == [name]
        return dist / name

    return build


def test_pyproject_options(built, fixtures: Fixtures) -> None:  # type: ignore[no-untyped-def]
    wheel = built(
        {
            "lib-sdir": ".vendored",
            "include": ["libfoo.so.1"],
            "library-dirs": [str(fixtures.libdir)],
            "plat": "manylinux_2_35",  # _dl needs dlopen@GLIBC_2.34: 2_34 is the best
            "only-plat": True,
            "zip-compression-level": 9,
        }
    )
    assert platforms(wheel) == {"manylinux_2_35_x86_64"}
    with zipfile.ZipFile(wheel) as zf:
        libs = sorted(n for n in zf.namelist() if n.startswith("demo.vendored/"))
    assert "demo.vendored/libfoo.so.1" in libs  # included under its own soname
    assert any(n.startswith("demo.vendored/libfoo-") for n in libs)  # grafted for _foo


def _has_symtab(data: bytes) -> bool:
    from elftools.elf.elffile import ELFFile

    return ELFFile(io.BytesIO(data)).get_section_by_name(".symtab") is not None


def test_config_settings_and_environment(
    built, fixtures: Fixtures, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("RELABEL_UPDATE_TAGS", "false")
    # _dl needs dlopen@GLIBC_2.34: manylinux_2_17 is reachable only if it is not scanned
    settings = {"relabel.plat": "manylinux_2_17", "relabel.strip": "true"}
    with pytest.raises(SystemExit, match=r"GLIBC_2\.34"):
        built({}, settings)
    wheel = built({}, {**settings, "relabel.skip-scan": "pkg/_dl*"})
    assert wheel.name.endswith("-linux_x86_64.whl")  # RELABEL_UPDATE_TAGS
    with zipfile.ZipFile(wheel) as zf:
        assert any(n.startswith("demo.libs/libfoo-") for n in zf.namelist())
        patched = zf.read(f"pkg/_foo{EXT_SUFFIX}")
        skipped = zf.read(f"pkg/_dl{EXT_SUFFIX}")
    assert _has_symtab(fixtures.ext_foo.read_bytes())
    assert not _has_symtab(patched)  # relabel.strip
    assert skipped == fixtures.ext_dl.read_bytes()  # not scanned: not touched


def test_pure_wheels_can_be_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """allow-pure-python-wheel, the command line's --allow-pure-python-wheel, is a setting
    too: true by default in a build (a pure wheel passes through), false refuses one."""
    pure = make_wheel(tmp_path / "inner", {"demo/__init__.py": b""}, tag="py3-none-any")
    for allowed in (True, False):
        root = tmp_path / f"project-{allowed}"
        make_project(root, wheel=pure, relabel={"allow-pure-python-wheel": allowed})
        monkeypatch.chdir(root)
        with isolated_imports(root):
            if allowed:
                name = build_meta.build_wheel(str(root / "dist"))
                assert (root / "dist" / name).read_bytes() == pure.read_bytes()
                continue
            with pytest.raises(SystemExit, match="does not look like a platform wheel"):
                build_meta.build_wheel(str(root / "dist"))
        assert not (root / "dist").exists() or list((root / "dist").iterdir()) == []


def test_sysroot_is_a_setting_relative_to_the_project(built) -> None:  # type: ignore[no-untyped-def]
    """Under a sysroot, _foo's RPATH (the fixture's library directory) names a directory in
    the sysroot: in an empty one libfoo is found nowhere and the wheel keeps its linux tag;
    in the project's sysroot/usr/lib it is found and grafted."""
    assert built({"sysroot": "empty"}).name.endswith("-linux_x86_64.whl")
    wheel = built({"sysroot": "sysroot"})
    assert "manylinux" in wheel.name
    with zipfile.ZipFile(wheel) as zf:
        assert any(n.startswith("demo.libs/libfoo-") for n in zf.namelist())
