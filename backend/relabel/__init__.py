"""relabel: build wheels with any PEP 517 backend and hand back audited, repaired ones."""

from __future__ import annotations

__version__ = "0.1.0"
