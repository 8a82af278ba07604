"""Asking a helper program a question: run it, capture what it prints, never raise.

For queries whose answer is optional (a tool's version, the loader's diagnostics, package
ownership): a missing program, a time-out or a failure to start is no answer (None), and
output that is not UTF-8 is decoded with replacements, never an exception. Running a tool
whose failure is an error (patchelf editing a file) is ``patchelf.run``'s business.
"""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence


def ask(command: Sequence[str], *, timeout: float) -> subprocess.CompletedProcess[str] | None:
    """The finished process (any exit status), or None when it could not be run."""
    try:
        return subprocess.run(
            list(command),
            capture_output=True,
            encoding="utf-8",
            errors="replace",
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
