"""Round-trip bytes through the system libbz2."""

from ._bz2demo import bz2_version, roundtrip

__all__ = ["bz2_version", "roundtrip"]
