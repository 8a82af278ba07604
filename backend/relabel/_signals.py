"""SIGTERM as an exception, and a private scratch directory that is always removed.

SIGTERM is turned into :class:`Terminated` (as Python already turns SIGINT into
``KeyboardInterrupt``) so that ``finally`` blocks and context managers run before the process
ends. :func:`scratch_directory` makes one private directory under ``$TMPDIR`` for a run and
removes it at the end with SIGINT and SIGTERM held back, retrying while something (a thread
an inner backend left behind) still writes into it.

Nothing here changes ``tempfile.tempdir`` or any other process-wide setting beyond the
SIGTERM handler, which is restored on the way out: relabel shares its process with the
inner build backend and the frontend.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from relabel.errors import ScratchError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from types import FrameType

#: How long removing a directory is retried while something keeps writing into it.
SETTLE_SECONDS = 10.0


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that ``finally`` blocks and context managers
    (the scratch directory, the unfinished output file) run before the process ends."""


@contextlib.contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """Turn SIGTERM into :class:`Terminated` while the block runs.

    Only from the main thread, and only when SIGTERM has its default action (a program that
    embeds relabel and handles or ignores SIGTERM keeps its choice). A second SIGTERM while
    the first one unwinds is ignored, so the clean-up is not cut short; SIGKILL still works.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous is not signal.SIG_DFL:
        yield
        return

    def terminate(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated

    signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


_HELD_BACK = {signal.SIGINT, signal.SIGTERM}


def remove_tree(path: Path, *, settle: float | None = None, quiet: float = 0.0) -> OSError | None:
    """Remove ``path`` and everything under it; the last error when it cannot be done.

    A directory that something still writes into fails with ``ENOTEMPTY``, or comes back
    once removed; that is retried, with growing pauses, for ``settle`` seconds
    (:data:`SETTLE_SECONDS` by default) before giving up. A removal counts once the
    directory has stayed away for ``quiet`` seconds (at least :data:`_QUIET` once a writer
    has been seen).
    """
    deadline = time.monotonic() + (SETTLE_SECONDS if settle is None else settle)
    pause = 0.005
    wait = quiet
    while True:
        error: OSError | None
        try:
            shutil.rmtree(path)
        except FileNotFoundError as exc:
            error = None if not os.path.lexists(path) else exc
        except OSError as exc:
            error = exc
        else:
            error = None
        if error is None and not os.path.lexists(path):
            if wait:
                time.sleep(wait)
            if not os.path.lexists(path):
                return None
        if time.monotonic() >= deadline:
            return error or OSError(errno.ENOTEMPTY, "something keeps writing into it")
        time.sleep(pause)
        pause = min(pause * 2, 0.25)
        wait = max(wait, _QUIET)


#: How long a directory must stay removed once a writer has been seen.
_QUIET = 0.1


def helpers() -> frozenset[str] | None:
    """The threads and child processes of this process, as Linux lists them under
    ``/proc/self/task``; None where that cannot be read."""
    found: set[str] = set()
    try:
        tasks = list(Path("/proc/self/task").iterdir())
    except OSError:
        return None
    for task in tasks:
        found.add(f"thread {task.name}")
        try:
            children = (task / "children").read_text(encoding="ascii")
        except FileNotFoundError:
            continue  # the thread has ended
        except OSError:
            return None
        found.update(f"process {pid}" for pid in children.split())
    return frozenset(found)


def _started_since(before: frozenset[str] | None) -> bool:
    """Whether a thread or child process that did not exist at ``before`` still runs (True
    when that cannot be told)."""
    now = helpers()
    return before is None or now is None or not now <= before


def _temp_root() -> str:
    try:
        return tempfile.gettempdir()
    except OSError:  # no usable directory at all
        return os.environ.get("TMPDIR") or "the temporary directory"


@contextlib.contextmanager
def scratch_directory(
    prefix: str = "relabel-run-",
    *,
    leftover: Callable[[Path, OSError], None] | None = None,
    quiet: float = 0.0,
) -> Iterator[Path]:
    """A new private directory under ``$TMPDIR``, removed at the end however the block ends.

    The removal runs with SIGINT and SIGTERM held back: a signal that lands while it runs
    would otherwise leave the rest of the directory behind. When it cannot be removed (see
    :func:`remove_tree`), ``leftover`` is told; the block's own outcome stands. A directory
    that cannot be made is a :class:`~relabel.errors.ScratchError`.

    ``quiet`` is how long the removed directory must stay away when a thread or child
    process started during the block still runs (something may still write into it, see
    :func:`remove_tree`): only then is it waited for.
    """
    try:
        path = Path(tempfile.mkdtemp(prefix=prefix))
    except OSError as exc:
        raise ScratchError(_temp_root(), exc.strerror or str(exc)) from None
    before = helpers() if quiet else None
    try:
        yield path
    finally:
        held = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD_BACK)
        try:
            wait = quiet if quiet and _started_since(before) else 0.0
            error = remove_tree(path, quiet=wait)
            if error is not None and leftover is not None:
                leftover(path, error)
        finally:
            # a signal held back is delivered here, once there is nothing left to remove
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
