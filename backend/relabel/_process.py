"""Running a helper program and capturing what it prints, as text that never fails to decode.

:func:`capture` is the one way relabel starts a program: arguments as a list (never a
shell), standard output and error captured, decoded as UTF-8 with replacements (a file name
or a package database in another encoding must not become a traceback). It raises only
when the program cannot be started (``OSError``) or runs past its time-out.

:func:`ask` is for queries whose answer is optional (a tool's version, the loader's
diagnostics or banner, package ownership): a missing program, a time-out or a failure to
start is no answer (None). Running a tool whose failure is an error (patchelf editing a
file) is ``patchelf.run``'s business, over :func:`capture`.
"""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence


def capture(
    command: Sequence[str], *, timeout: float | None = None
) -> subprocess.CompletedProcess[str]:
    """The finished process, whatever its exit status."""
    return subprocess.run(
        list(command),
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        timeout=timeout,
        check=False,
    )


def ask(command: Sequence[str], *, timeout: float) -> subprocess.CompletedProcess[str] | None:
    """The finished process (any exit status), or None when it could not be run."""
    try:
        return capture(command, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return None
