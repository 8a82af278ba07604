"""The one error tree of relabel.

Every failure a user can act on is a :class:`RelabelError` subclass whose ``str()`` is a
sentence saying what went wrong, where, and what to do. Subclasses carry the structured
fields that sentence was built from, so callers (tests, the JSON report) never parse text.

Only :mod:`relabel.build_meta` and :mod:`relabel.cli` turn these into a message and a
failed hook or exit status; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence


class RelabelError(Exception):
    """Root of every error relabel raises on purpose."""

    exit_code = 2


class ConfigError(RelabelError):
    """One or more configuration problems, all collected before raising."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        if len(self.problems) == 1:
            text = f"invalid relabel configuration: {self.problems[0]}"
        else:
            lines = "\n".join(f"  - {p}" for p in self.problems)
            text = f"invalid relabel configuration ({len(self.problems)} problems):\n{lines}"
        super().__init__(text)


class InnerBackendError(RelabelError):
    """The real build backend could not be loaded, or one of its hooks failed."""

    def __init__(self, backend: str, message: str) -> None:
        self.backend = backend
        self.message = message
        super().__init__(f"inner build backend {backend!r}: {message}")


class WheelError(RelabelError):
    """A wheel that is not a valid wheel (bad zip, bad name, bad WHEEL/RECORD...)."""

    def __init__(self, wheel: str, message: str) -> None:
        self.wheel = wheel
        self.message = message
        super().__init__(f"{wheel}: {message}")


class NotPlatformWheelError(WheelError):
    """A wheel without ELF files where a platform wheel was expected."""

    exit_code = 1

    def __init__(self, wheel: str) -> None:
        super().__init__(
            wheel,
            "this does not look like a platform wheel: it holds no ELF file"
            " (pass --allow-pure-python-wheel to accept it)",
        )


class ElfError(RelabelError):
    """An ELF file that cannot be read."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: unreadable ELF file: {message}")


class LibraryNotFoundError(RelabelError):
    """Needed shared libraries that cannot be found where the dynamic loader would look."""

    def __init__(self, missing: Sequence[tuple[str, str, Sequence[str]]]) -> None:
        #: (soname, the file that needs it, directories searched)
        self.missing = tuple((s, f, tuple(d)) for s, f, d in missing)
        parts = []
        for soname, needed_by, searched in self.missing:
            where = ", ".join(searched) if searched else "(no directory)"
            parts.append(f"  - {soname}, needed by {needed_by}; searched: {where}")
        text = (
            "cannot find shared "
            + ("library" if len(parts) == 1 else "libraries")
            + " to graft:\n"
            + "\n".join(parts)
            + "\nInstall the library, or point relabel at it with library-dirs"
            " (RELABEL_LIBRARY_DIRS / -C relabel.library-dirs=DIR), or exclude it."
        )
        super().__init__(text)


class PolicyError(RelabelError):
    """A requested policy that the wheel cannot meet; lists every blocker."""

    exit_code = 1

    def __init__(self, target: str, blockers: Sequence[str], advice: str = "") -> None:
        self.target = target
        self.blockers = tuple(blockers)
        lines = "\n".join(f"  - {b}" for b in self.blockers)
        text = f"the wheel cannot be made {target} compliant:\n{lines}"
        if advice:
            text += f"\n{advice}"
        super().__init__(text)


class ToolError(RelabelError):
    """An external tool (patchelf, strip) is missing, too old, or failed."""

    def __init__(
        self,
        message: str,
        *,
        command: Sequence[str] = (),
        returncode: int | None = None,
        stderr: str = "",
    ) -> None:
        self.message = message
        self.command = tuple(command)
        self.returncode = returncode
        self.stderr = stderr
        text = message
        if self.command:
            text += f"\n  command: {' '.join(self.command)}"
        if returncode is not None:
            text += f"\n  exit status: {returncode}"
        if stderr.strip():
            text += f"\n  stderr: {stderr.strip()}"
        super().__init__(text)


class PatchelfError(ToolError):
    """patchelf is missing, too old, or failed."""
