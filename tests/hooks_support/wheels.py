"""Write small valid wheels: members, METADATA, WHEEL and a RECORD with hashes and sizes."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import zipfile
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

# A fixed timestamp, so that two wheels written from the same inputs are byte-identical.
_DATE_TIME = (2020, 2, 2, 0, 0, 0)


def record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def make_wheel(
    directory: Path,
    files: Mapping[str, bytes],
    *,
    name: str = "fake",
    version: str = "1.0",
    tags: Sequence[str] = ("py3-none-any",),
    root_is_purelib: bool = True,
) -> Path:
    """Write ``{name}-{version}-{tags}.whl`` into ``directory`` and return its path.

    ``tags`` are full ``python-abi-platform`` tags; the file name compresses them the way
    the wheel specification does (``cp311-cp311-linux_x86_64``, or ``py2.py3-none-any``).
    """
    pythons = sorted({t.split("-")[0] for t in tags})
    abis = sorted({t.split("-")[1] for t in tags})
    platforms = sorted({t.split("-")[2] for t in tags})
    filename = f"{name}-{version}-{'.'.join(pythons)}-{'.'.join(abis)}-{'.'.join(platforms)}.whl"
    dist_info = f"{name}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\n".encode()
    wheel = "".join(
        [
            "Wheel-Version: 1.0\n",
            "Generator: relabel-tests\n",
            f"Root-Is-Purelib: {'true' if root_is_purelib else 'false'}\n",
            *(f"Tag: {t}\n" for t in tags),
            "\n",
        ]
    ).encode()
    members = {**files, f"{dist_info}/METADATA": metadata, f"{dist_info}/WHEEL": wheel}
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    for member, data in members.items():
        writer.writerow((member, record_hash(data), len(data)))
    writer.writerow((f"{dist_info}/RECORD", "", ""))
    members[f"{dist_info}/RECORD"] = record.getvalue().encode()

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / filename
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for member, data in members.items():
            info = zipfile.ZipInfo(member, _DATE_TIME)
            info.external_attr = 0o100644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return path
