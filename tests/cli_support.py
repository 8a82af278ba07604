"""Running ``relabel`` as a user does, for the command-line tests: a subprocess with the
environment a CI script has, whose successful repairs go through the installed-layout
check (see :mod:`tests.installed`)."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING

from . import installed

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path


def relabel(
    *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``relabel ARGS`` without the caller's ``AUDITWHEEL_*`` (a manylinux image sets
    ``AUDITWHEEL_PLAT``, which changes the default target), plus ``env``."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AUDITWHEEL_")}
    environ.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "relabel", *args],
        capture_output=True,
        text=True,
        env=environ,
        cwd=cwd,
        check=False,
    )
    if proc.returncode == 0:
        installed.check_command(args, proc.stdout, proc.stderr, environ, cwd)
    return proc
