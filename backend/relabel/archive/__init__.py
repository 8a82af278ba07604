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

from relabel.archive.deflate import BLOCK, Source
from relabel.archive.names import check_member_name
from relabel.archive.output import atomic_output, copy_atomically, replaces
from relabel.archive.reader import Member, WheelFile
from relabel.archive.record import Hash, RecordEntry
from relabel.archive.wheelmeta import parse_headers, render_wheel_metadata
from relabel.archive.writer import write_wheel
from relabel.archive.zipformat import CHUNK

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
