"""relabel.sbom: package-manager output is read whatever its encoding."""

from __future__ import annotations

import shutil

import pytest

from relabel import sbom


def test_output_that_is_not_utf8_is_decoded_with_replacement() -> None:
    if shutil.which("sh") is None:
        pytest.skip("no sh")
    # dpkg/rpm databases hold what packagers wrote, Latin-1 maintainer names included
    out = sbom._query(["sh", "-c", r"printf 'libfoo1: /usr/lib/libfoo.so.1 caf\351\n'"])
    assert out == "libfoo1: /usr/lib/libfoo.so.1 caf\ufffd\n"
