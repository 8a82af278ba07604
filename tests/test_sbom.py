"""relabel.sbom: package-manager output is read whatever its encoding."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from relabel import sbom


def test_output_that_is_not_utf8_is_decoded_with_replacement() -> None:
    if shutil.which("sh") is None:
        pytest.skip("no sh")
    # dpkg/rpm databases hold what packagers wrote, Latin-1 maintainer names included
    out = sbom._query(["sh", "-c", r"printf 'libfoo1: /usr/lib/libfoo.so.1 caf\351\n'"])
    assert out == "libfoo1: /usr/lib/libfoo.so.1 caf\ufffd\n"


def _stanza(name: str, status: str, arch: str, version: str, *extra: str) -> str:
    fields = [f"Package: {name}", f"Status: {status}", *extra, "Maintainer: M <m@example.org>"]
    fields += [f"Architecture: {arch}", f"Version: {version}", "Description: d", " more: text"]
    return "\n".join(fields) + "\n\n"


@pytest.fixture
def admin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A dpkg database with the cases that make ``dpkg-query -S`` name no single owner."""
    root = tmp_path / "dpkg"
    (root / "info").mkdir(parents=True)
    (root / "updates").mkdir()
    (root / "info" / "format").write_text("1\n")
    (root / "status").write_text(
        _stanza("liba", "install ok installed", "amd64", "1.0-1", "Multi-Arch: same")
        + _stanza("libb", "install ok installed", "all", "2:3.4+b1")
        + _stanza("libgone", "deinstall ok not-installed", "amd64", "9")
    )
    lists = {
        "liba:amd64": ["/usr/lib/liba.so.1", "/usr/lib/libshared.so"],
        "libb": ["/usr/lib/libb.so", "/usr/lib/libshared.so", "/lib/libtwin.so"],
        "libb-extra": ["/usr/lib/libdiv.so"],
        "libgone": ["/usr/lib/libgone.so", "/usr/lib/libb.so"],
        "leftover": ["/usr/lib/libb.so"],
    }
    for name, paths in lists.items():
        (root / "info" / f"{name}.list").write_text(
            "/.\n/usr\n/usr/lib\n" + "\n".join(paths) + "\n"
        )
    (root / "diversions").write_text("/usr/lib/libdiv.so\n/usr/lib/libdiv.so.real\nlibb\n")
    monkeypatch.setenv("DPKG_ADMINDIR", str(root))
    return root


ASKED = [
    "/usr/lib/liba.so.1",
    "/usr/lib/libb.so",
    "/usr/lib/libtwin.so",
    "/usr/lib/libshared.so",
    "/usr/lib/libdiv.so",
    "/usr/lib/libgone.so",
    "/usr/lib/libnobody.so",
]


def test_dpkg_database_read_directly(admin: Path) -> None:
    found = sbom._dpkg_database(admin, ASKED, "debian")
    assert found == {
        "/usr/lib/liba.so.1": sbom.Provider(
            "liba", "1.0-1", "pkg:deb/debian/liba@1.0-1?arch=amd64"
        ),
        "/usr/lib/libb.so": sbom.Provider(
            "libb", "2:3.4+b1", "pkg:deb/debian/libb@2%3A3.4%2Bb1?arch=all"
        ),
        "/usr/lib/libtwin.so": sbom.Provider(
            "libb", "2:3.4+b1", "pkg:deb/debian/libb@2%3A3.4%2Bb1?arch=all"
        ),
    }


@pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="dpkg-query is needed")
def test_dpkg_database_gives_dpkg_querys_answers(admin: Path) -> None:
    assert sbom._dpkg_database(admin, ASKED, "debian") == sbom._dpkg_query(ASKED, "debian")


def test_a_pending_dpkg_journal_is_left_to_dpkg_query(admin: Path) -> None:
    (admin / "updates" / "0001").write_text("")
    assert sbom._dpkg_database(admin, ASKED, "debian") is None


@pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="dpkg-query is needed")
def test_system_libraries_have_the_owners_dpkg_query_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DPKG_ADMINDIR", raising=False)
    libdirs = [
        Path("/usr/lib/x86_64-linux-gnu"),
        Path("/usr/lib/aarch64-linux-gnu"),
        Path("/usr/lib"),
    ]
    libs = sorted({os.path.realpath(p) for d in libdirs for p in d.glob("lib*.so*")})
    if len(libs) < 20:
        pytest.skip("too few system libraries")
    for paths in (libs[:1], libs[:5], libs[:40], [*libs[-3:], "/bin/sh", "/usr/lib/none.so"]):
        direct = sbom._dpkg_database(Path("/var/lib/dpkg"), paths, "debian")
        assert direct == sbom._dpkg_query(paths, "debian")
    assert direct, "no system library found in the dpkg database"
