"""The package's data files (``relabel/_data/*.json``), each read once, on first use.

Every module that interprets a data file (:mod:`relabel.policy`, :mod:`relabel.floor`,
:mod:`relabel.musl`) asks here, so none reads it at import and a run that never needs a
file never opens it. The returned objects are shared: callers read them, never change them.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

#: where the data files live: package data beside the code (importlib.resources would cost
#: more to import than the largest file takes to parse)
DATA_DIR = Path(__file__).parent / "_data"


@functools.cache
def load(name: str) -> dict[str, Any]:
    """The parsed JSON object of ``_data/<name>``."""
    import json  # noqa: PLC0415 - only runs that read a data file pay for it

    data: dict[str, Any] = json.loads((DATA_DIR / name).read_text(encoding="utf-8"))
    return data
