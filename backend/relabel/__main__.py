"""``python -m relabel``: the same command line as ``relabel``."""

from __future__ import annotations

import gc
import sys
from typing import NoReturn


def run() -> NoReturn:
    """Load the command line and run it, then exit with its status.

    A short-lived process: the modules' objects live until exit, so collecting cycles while
    they load finds nothing, and frozen they are not traversed again (at exit included).
    Garbage made by the run itself is still collected.
    """
    gc.disable()
    try:
        from relabel.cli import main  # noqa: PLC0415 - imported with the collector off
    finally:
        gc.freeze()
        gc.enable()
    sys.exit(main())


if __name__ == "__main__":
    run()
