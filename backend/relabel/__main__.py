"""``python -m relabel``: the same command line as ``relabel``."""

from __future__ import annotations

import sys

from relabel.cli import main

sys.exit(main())
