"""The one error tree of relabel.

Every failure a user can act on is a :class:`RelabelError` subclass whose ``str()`` is a
sentence saying what went wrong, where, and what to do. Subclasses carry the structured
fields that sentence was built from, so callers (tests, the JSON report) never parse text.

Only :mod:`relabel.build_meta` and :mod:`relabel.cli` turn these into a message and a
failed hook or exit status; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence


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

    def __init__(self, backend: str, message: str, *, traceback: str = "") -> None:
        self.backend = backend
        self.message = message
        #: the backend's own traceback, whole, when it raised
        self.traceback = traceback
        text = f"inner build backend {backend!r}: {message}"
        if traceback.strip():
            shown = "\n".join(("  " + line).rstrip() for line in traceback.rstrip().splitlines())
            text += f"\nThe inner backend's traceback:\n{shown}"
        super().__init__(text)


class WheelError(RelabelError):
    """A wheel that is not a valid wheel (bad zip, bad name, bad WHEEL/RECORD...)."""

    def __init__(self, wheel: str, message: str, *, member: str | None = None) -> None:
        self.wheel = wheel
        self.message = message
        #: the member the problem is about, when there is one
        self.member = member
        super().__init__(f"{wheel}: {message}")


class OutputError(RelabelError):
    """The output directory cannot take the new wheel (missing, read-only, full...)."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(
            f"cannot write {path}: {reason}. Check that the output directory can be created,"
            " is writable and has free space; nothing was written there."
        )


class ReplacesInputError(RelabelError):
    """The repaired wheel would take the place of the wheel being repaired."""

    def __init__(self, wheel: str, output: str) -> None:
        self.wheel = wheel
        self.output = output
        super().__init__(
            f"cannot write the repaired wheel as {output}: that is the input wheel {wheel}"
            " itself, and the repair changes it; a repair never replaces its input with"
            " another file. Choose another output directory"
            " (-w/--wheel-dir); nothing was written."
        )


class ScratchError(RelabelError):
    """No private temporary directory can be made (``TMPDIR`` missing, read-only, full)."""

    def __init__(self, directory: str, reason: str) -> None:
        self.directory = directory
        self.reason = reason
        super().__init__(
            f"cannot create a temporary directory in {directory}: {reason}. Point TMPDIR at a"
            " writable directory with free space."
        )


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
        super().__init__(
            f"{path}: unreadable ELF file: {message.rstrip('.')}. If it is a data file that"
            " only looks like an ELF file, leave it out of the audit with skip-scan"
            " (--skip-scan GLOB, -C relabel.skip-scan=GLOB)."
        )


_SHOWN = 50  # missing libraries named in one message per search path


class LibraryNotFoundError(RelabelError):
    """Needed shared libraries that cannot be found where the dynamic loader would look."""

    def __init__(
        self,
        missing: Sequence[tuple[str, str, Sequence[str]]],
        skipped: Mapping[str, Sequence[tuple[str, str]]] | None = None,
    ) -> None:
        #: (soname, the file that needs it, directories searched)
        self.missing = tuple((s, f, tuple(d)) for s, f, d in missing)
        #: soname -> (path, why) of the files with that name the search passed over
        #: (unreadable, not an ELF file, another architecture), as the loader does
        self.skipped = {k: tuple(v) for k, v in (skipped or {}).items()}
        # The directories are named once per distinct search path and the list is cut
        # short: a wheel missing thousands of libraries still gets a readable message.
        groups: dict[tuple[str, ...], list[tuple[str, str]]] = {}
        for soname, needed_by, searched in self.missing:
            groups.setdefault(searched, []).append((soname, needed_by))
        parts = []
        for searched, entries in groups.items():
            for soname, needed_by in entries[:_SHOWN]:
                parts.append(f"  - {soname}, needed by {needed_by}")
                passed = self.skipped.get(soname, ())
                if passed:
                    parts.append(
                        "    skipped: " + ", ".join(f"{path} ({why})" for path, why in passed)
                    )
            if len(entries) > _SHOWN:
                parts.append(f"  - and {len(entries) - _SHOWN} more")
            where = ", ".join(searched) if searched else "(no directory)"
            parts.append(f"    searched: {where}")
        text = (
            "cannot find shared "
            + ("library" if len(self.missing) == 1 else "libraries")
            + " to graft:\n"
            + "\n".join(parts)
            + "\nInstall the library, or point relabel at it with library-dirs"
            " (RELABEL_LIBRARY_DIRS / -C relabel.library-dirs=DIR), or exclude it."
        )
        super().__init__(text)


class LibraryError(RelabelError):
    """A library relabel would put into the wheel that it cannot take (an unsafe SONAME,
    an unreadable file)."""

    def __init__(self, library: str, message: str) -> None:
        self.library = library
        self.message = message
        super().__init__(f"{library}: {message}")


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


class NotCompliantError(PolicyError):
    """``mode = "check"``: the wheel as built misses its target; what a repair would do."""

    def __init__(
        self,
        target: str,
        *,
        as_built: str,
        grafts: Sequence[tuple[str, str]],
        repair_tags: Sequence[str],
        blockers: Sequence[str],
        advice: str = "",
    ) -> None:
        #: the policy the wheel was checked against ("manylinux/musllinux" for auto)
        self.target = target
        #: the best tag the wheel meets as it is
        self.as_built = as_built
        #: (soname, path on this machine) a repair would graft
        self.grafts = tuple(grafts)
        #: the platform tags a repair would give it; empty when it would keep linux_*
        self.repair_tags = tuple(repair_tags)
        self.blockers = tuple(blockers)
        lines = [
            f"the wheel is not {target} compliant as built (it meets {as_built});"
            " relabel mode is 'check', so it was not repaired and not written."
        ]
        if self.grafts:
            lines.append("A repair would graft:")
            lines.extend(f"  - {soname} ({path})" for soname, path in self.grafts)
        else:
            lines.append("A repair would graft no library.")
        if self.repair_tags:
            lines.append(f"A repair would tag it {', '.join(self.repair_tags)}.")
        if self.blockers:
            lines.append(
                f"What would still block {target} after a repair:"
                if self.repair_tags
                else f"A repair would not make it {target} compliant; what would still block it:"
            )
            lines.extend(f"  - {b}" for b in self.blockers)
            if advice:
                lines.append(advice)
        else:
            lines.append("Nothing else blocks it: set mode = 'repair' to repair it.")
        RelabelError.__init__(self, "\n".join(lines))


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
            text += f"\n  exit status: {returncode}{_signal_name(returncode)}"
        if stderr.strip():
            text += f"\n  stderr: {stderr.strip()}"
        super().__init__(text)


class PatchelfError(ToolError):
    """patchelf is missing, too old, or failed."""


def _signal_name(returncode: int) -> str:
    """`` (killed by SIGSEGV)`` for the negative status subprocess reports for a signal."""
    if returncode >= 0:
        return ""
    try:
        return f" (killed by {signal.Signals(-returncode).name})"
    except ValueError:
        return " (killed by a signal)"
