"""Making one new member's file of a repaired wheel, for the writer (repairs only: a run of
``relabel show`` never loads this module)."""

from __future__ import annotations

import shutil
import stat
from dataclasses import dataclass
from typing import TYPE_CHECKING

from relabel import patchelf

if TYPE_CHECKING:
    from pathlib import Path

    from relabel.plan import Patch


@dataclass(frozen=True)
class Produce:
    """Make one new member's file: copy or patch ``source`` into ``dest`` (maybe strip).

    Called from the writer's worker threads, so that patching one library overlaps
    compressing another; ``size_hint`` lets the writer start the largest first. A file
    that one patchelf call patches is not written: the writer reads patchelf's output.
    """

    source: Path
    dest: Path
    patch: Patch | None
    strip: bool
    mode: int
    size_hint: int

    def __call__(self) -> Path | patchelf.Patched:
        if self.patch is not None and not self.strip:
            # patchelf's output goes straight to the compressor, never to disk
            patched = patchelf.stream(
                self.patch, self.source, self.mode | stat.S_IRUSR | stat.S_IWUSR
            )
            if patched is not None:
                return patched
        if self.strip:
            # before patching, as auditwheel does: strip may undo patchelf's layout changes
            if self.source != self.dest:
                shutil.copyfile(self.source, self.dest)
            patchelf.strip(self.dest, self.patch.member if self.patch else self.dest.name)
            if self.patch is not None:
                patchelf.apply(self.patch, self.dest)
        elif self.patch is not None:
            patchelf.apply(self.patch, self.source, self.dest if self.source != self.dest else None)
        elif self.source != self.dest:
            shutil.copyfile(self.source, self.dest)
        self.dest.chmod(self.mode | stat.S_IRUSR | stat.S_IWUSR)
        return self.dest
