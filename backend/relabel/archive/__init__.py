"""Wheel in, wheel out.

One module per part, modelled on pypa/installer (``sources`` reads, ``records`` owns
RECORD, ``destinations`` writes):

* :mod:`~relabel.archive.reader`: :class:`WheelFile` reads and validates a wheel and
  streams its members out, each checked against its size, CRC and RECORD hash;
* :mod:`~relabel.archive.writer`: :func:`write_wheel` writes the new wheel, copying
  unchanged members as their compressed bytes;
* :mod:`~relabel.archive.deflate`: deflating new members on worker threads;
* :mod:`~relabel.archive.record` and :mod:`~relabel.archive.wheelmeta`: the RECORD and
  WHEEL formats, as text;
* :mod:`~relabel.archive.names`: what a member name may be, for names read and written;
* :mod:`~relabel.archive.output`: atomic output, a file that appears only once complete;
* :mod:`~relabel.archive.zipformat`: the zip format's layouts and central directory.

This package knows nothing about ELF files or policies. The names below are what the rest
of relabel uses.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from relabel.archive.names import check_member_name
from relabel.archive.reader import Member, WheelFile
from relabel.archive.record import Hash, RecordEntry
from relabel.archive.wheelmeta import parse_headers, render_wheel_metadata
from relabel.archive.zipformat import CHUNK

if TYPE_CHECKING:
    from relabel.archive.deflate import BLOCK, Source
    from relabel.archive.output import atomic_output, copy_atomically, replaces
    from relabel.archive.writer import write_wheel
else:
    # Writing is imported on first use (PEP 562): ``relabel show`` only reads, and the
    # writer's worker threads (concurrent.futures) cost more to import than a small wheel
    # takes to audit. The modules themselves stay reachable as attributes, as before.
    _WRITING = {
        "BLOCK": "deflate",
        "Source": "deflate",
        "atomic_output": "output",
        "copy_atomically": "output",
        "replaces": "output",
        "write_wheel": "writer",
        **{module: module for module in ("deflate", "output", "writer")},
    }

    def __getattr__(name: str) -> Any:
        if name not in _WRITING:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        module = importlib.import_module(f"{__name__}.{_WRITING[name]}")
        value = module if name == _WRITING[name] else getattr(module, name)
        globals()[name] = value
        return value


__all__ = [
    "BLOCK",
    "CHUNK",
    "Hash",
    "Member",
    "RecordEntry",
    "Source",
    "WheelFile",
    "atomic_output",
    "check_member_name",
    "copy_atomically",
    "parse_headers",
    "render_wheel_metadata",
    "replaces",
    "write_wheel",
]
