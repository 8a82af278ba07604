"""The ELF header names relabel shows, and that showing them costs no ELF library import."""

from __future__ import annotations

import subprocess
import sys

from elftools.elf.enums import ENUM_E_MACHINE, ENUM_E_TYPE, ENUM_EI_OSABI

from relabel.elf import gabi


def _by_value(enum: dict[str, object]) -> dict[int, str]:
    return {value: name for name, value in enum.items() if isinstance(value, int)}


def test_header_names_agree_with_an_independent_reader() -> None:
    assert _by_value(ENUM_E_MACHINE) == gabi.E_MACHINE_NAMES
    assert _by_value(ENUM_E_TYPE) == gabi.E_TYPE_NAMES
    assert _by_value(ENUM_EI_OSABI) == gabi.EI_OSABI_NAMES


def test_the_command_line_does_not_import_pyelftools() -> None:
    code = (
        "import sys, relabel.cli, relabel.repair\n"
        "print(sorted(m for m in sys.modules if 'elftools' in m))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
