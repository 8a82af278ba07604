"""Round-trip bytes through the system liblzma."""

from ._lzmademo import lzma_version, roundtrip

__all__ = ["lzma_version", "roundtrip"]
