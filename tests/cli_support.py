"""Running ``relabel`` as a user does, for the command-line tests: a subprocess with the
environment a CI script has, whose successful repairs go through the installed-layout
check (see :mod:`tests.installed`)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from . import installed
from .conftest import run_module

if TYPE_CHECKING:
    import subprocess
    from collections.abc import Mapping
    from pathlib import Path


def relabel(
    *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``relabel ARGS`` without the caller's ``AUDITWHEEL_*`` (a manylinux image sets
    ``AUDITWHEEL_PLAT``, which changes the default target), plus ``env``."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AUDITWHEEL_")}
    environ.update(env or {})
    proc = run_module("relabel", *args, env=environ, cwd=cwd)
    if proc.returncode == 0:
        installed.check_command(args, proc.stdout, proc.stderr, environ, cwd)
    return proc
