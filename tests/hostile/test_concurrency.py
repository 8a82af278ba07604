"""Two builds writing into the same directory at the same time both succeed.

Each run writes its own unnamed file and links it in under the final name (or renames it
over an existing one), so concurrent runs never see each other's partial output, and the
name always holds one complete wheel.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests import installed
from tests.conftest import EXT_SUFFIX, Fixtures, make_wheel

from .support import assert_valid_wheel, start_relabel, tree

ROUNDS = 3


@pytest.fixture(scope="module")
def inputs(fixtures: Fixtures, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two different wheels (``demo`` and ``other``) that each need a graft, with enough
    data that the runs overlap while writing."""
    root = tmp_path_factory.mktemp("concurrent")
    rng = random.Random(7)
    return [
        make_wheel(
            root / name,
            {f"pkg/_foo{EXT_SUFFIX}": fixtures.ext_foo, "pkg/data.bin": rng.randbytes(16 << 20)},
            name=name,
        )
        for name in ("demo", "other")
    ]


def run_together(wheels: list[Path], out: Path, tmp_path: Path, label: str) -> None:
    procs = [
        start_relabel("repair", "-w", out, wheel, tmpdir=tmp_path / f"tmp-{label}-{index}")
        for index, wheel in enumerate(wheels)
    ]
    for proc, wheel in zip(procs, wheels):
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr
        installed.check_command(["repair", "-w", str(out), str(wheel)], stdout, stderr)
    for index in range(len(wheels)):
        assert tree(tmp_path / f"tmp-{label}-{index}") == []


def test_same_input_same_directory(inputs: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "dist"
    for round_ in range(ROUNDS):
        # the first round races to create the name, later ones to replace it
        run_together([inputs[0], inputs[0]], out, tmp_path, f"same{round_}")
        [name] = tree(out)
        assert "manylinux" in name
        assert_valid_wheel(out / name)


def test_different_inputs_same_directory(inputs: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "dist"
    for round_ in range(ROUNDS):
        run_together(inputs, out, tmp_path, f"diff{round_}")
        names = tree(out)
        assert [n.split("-", 1)[0] for n in names] == ["demo", "other"], names
        for name in names:
            assert_valid_wheel(out / name)
