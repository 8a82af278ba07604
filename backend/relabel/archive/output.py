"""Atomic output: a file that appears under its name only once it is complete.

Owns how relabel publishes a file into a directory: an unnamed ``O_TMPFILE`` file linked in
when complete, or a hidden ``.NAME.*.part`` file renamed into place and removed on every
error and on SIGTERM/SIGINT (which the command turns into exceptions). The output
directory holds either no new file or the complete one, even when relabel is killed.
It also tells whether a final name would take the place of a given file (:func:`replaces`).
It must know nothing about zip files or wheels, and never write outside the directory of
the final name.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from relabel.archive.zipformat import Span, copy_span
from relabel.errors import OutputError

if TYPE_CHECKING:
    from collections.abc import Iterator


class _Destination:
    """The file behind :func:`atomic_output` and how it gets its name.

    Preferred: an unnamed file in the output directory (Linux ``O_TMPFILE``), linked in
    under its name once complete (``linkat`` through ``/proc/self/fd``). Whenever the
    process dies, the kernel frees it: no partial file can ever be seen or left behind.
    Otherwise: a hidden ``.NAME.*.part`` file, renamed into place, removed on failure.
    """

    def __init__(self, final: Path) -> None:
        self.final = final
        self.part: Path | None = None
        self._proc = -1
        self.fd = self._open_unnamed()
        if self.fd < 0:
            fd, part = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent)
            self.fd, self.part = fd, Path(part)

    def _open_unnamed(self) -> int:
        flag = getattr(os, "O_TMPFILE", 0)
        if not flag or os.link not in os.supports_dir_fd:
            return -1
        try:
            self._proc = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            return -1  # no /proc: nothing could give the file a name
        try:
            return os.open(self.final.parent, flag | os.O_WRONLY | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            os.close(self._proc)
            self._proc = -1
            if exc.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT):
                return -1  # a kernel or file system without O_TMPFILE
            raise

    def publish(self) -> None:
        if self.part is not None:
            self.part.replace(self.final)
            self.part = None
            return
        fd_name = str(self.fd)
        try:
            os.link(fd_name, self.final, src_dir_fd=self._proc, follow_symlinks=True)
            return
        except FileExistsError:
            pass
        # The name is taken (an earlier build, or one running beside us): link the file in
        # under a fresh hidden name and rename that over the final name, which is atomic.
        for _ in range(100):
            part = self.final.with_name(f".{self.final.name}.{os.urandom(6).hex()}.part")
            try:
                os.link(fd_name, part, src_dir_fd=self._proc, follow_symlinks=True)
            except FileExistsError:
                continue
            self.part = part
            part.replace(self.final)
            self.part = None
            return
        raise FileExistsError(errno.EEXIST, "no free temporary name", str(self.final.parent))

    def close(self) -> None:
        if self.part is not None:
            with contextlib.suppress(OSError):
                self.part.unlink()
            self.part = None
        if self._proc >= 0:
            os.close(self._proc)
            self._proc = -1


@contextlib.contextmanager
def atomic_output(final: Path) -> Iterator[BinaryIO]:
    """A stream whose content appears at ``final`` only once complete (see _Destination).

    Problems of the output directory itself (missing and not creatable, read-only, full)
    are an :class:`OutputError`.
    """
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        destination = _Destination(final)
    except OSError as exc:
        raise OutputError(str(final), exc.strerror or str(exc)) from None
    try:
        with os.fdopen(destination.fd, "wb") as stream:
            yield stream
            try:
                stream.flush()
                os.fsync(destination.fd)
                os.fchmod(destination.fd, 0o644)
                destination.publish()
            except OSError as exc:
                raise OutputError(str(final), exc.strerror or str(exc)) from None
    finally:
        destination.close()


def copy_atomically(src: Path, out_dir: Path, name: str | None = None) -> Path:
    """Copy ``src`` into ``out_dir`` so that the final name appears only when complete."""
    final = out_dir / (name or src.name)
    with atomic_output(final) as out, src.open("rb") as inp:
        try:
            copy_span(Span(inp.fileno(), 0, os.fstat(inp.fileno()).st_size), out.fileno())
        except OSError as exc:
            raise OutputError(str(final), exc.strerror or str(exc)) from None
    return final


def replaces(final: Path, source: Path) -> bool:
    """Would publishing a file as ``final`` take the place of ``source``?

    True when ``final`` names the directory entry ``source`` names, or the file a symbolic
    link ``source`` points to; directories are compared by identity, not by spelling, so
    a relative path, a symbolic link to the directory or a bind mount is the same place.
    An entry that is merely a hard link to ``source`` is not: replacing it leaves
    ``source`` as it was.
    """
    for entry in (source, Path(os.path.realpath(source))):
        if entry.name == final.name and _same_directory(entry.parent, final.parent):
            return True
    return False


def _same_directory(one: Path, other: Path) -> bool:
    try:
        return one.samefile(other)
    except OSError:  # one of them does not exist (yet): not the same existing place
        return False
