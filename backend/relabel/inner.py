"""Load the real build backend named by ``tool.relabel.build-backend`` and call its hooks.

The reference is ``module`` or ``module:object`` exactly as in ``[build-system]``
(PEP 517); ``backend-path`` entries are prepended to ``sys.path`` the way frontends do for
in-tree backends, and the loaded module must then come from one of them. A backend that is
not installed, fails to import, or raises in a hook becomes an
:class:`~relabel.errors.InnerBackendError` that keeps the backend's own message and its
whole traceback (without relabel's and importlib's frames). A reference to a module that an
installed package does not have is told apart from a package that is not installed, with a
"did you mean" over the package's modules that define ``build_wheel``.

The backend runs in relabel's process: a change it makes to ``tempfile.tempdir`` while it
is imported or while a hook runs is undone afterwards, so that relabel's own temporary
files go where the user's ``TMPDIR`` says.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pkgutil
import re
import sys
import tempfile
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from relabel.errors import InnerBackendError

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from types import ModuleType


class InnerBackend:
    """A loaded backend object and the reference it was loaded from."""

    def __init__(self, reference: str, obj: Any) -> None:
        self.reference = reference
        self.obj = obj

    def has(self, hook: str) -> bool:
        return callable(getattr(self.obj, hook, None))

    def call(self, hook: str, *args: Any, **kwargs: Any) -> Any:
        function = getattr(self.obj, hook, None)
        if not callable(function):
            raise InnerBackendError(self.reference, f"has no hook {hook!r}")
        try:
            with _contained():
                return function(*args, **kwargs)
        except (SystemExit, KeyboardInterrupt):
            raise
        except Exception as exc:
            # Keep the backend's own words (and where they came from) in front of the user.
            detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            tb = traceback.extract_tb(exc.__traceback__)
            origin = f" (raised at {tb[-1].filename}:{tb[-1].lineno})" if len(tb) > 1 else ""
            raise InnerBackendError(
                self.reference, f"{hook} failed: {detail}{origin}", traceback=_traceback(exc)
            ) from exc


@contextlib.contextmanager
def _contained() -> Iterator[None]:
    """Undo a change the backend makes to ``tempfile.tempdir`` (a directory it may delete,
    or one that never existed) once it returns control."""
    saved = tempfile.tempdir
    try:
        yield
    finally:
        tempfile.tempdir = saved


def _foreign_frame(filename: str) -> bool:
    """Frames of relabel's loader and of importlib: noise in the backend's traceback."""
    return (
        filename == __file__
        or filename.startswith("<frozen importlib")
        or filename == getattr(importlib, "__file__", None)
    )


def _traceback(exc: BaseException) -> str:
    """The backend's traceback of ``exc``, chained exceptions included."""
    summary = traceback.TracebackException.from_exception(exc)
    summary.stack = traceback.StackSummary.from_list(
        [frame for frame in summary.stack if not _foreign_frame(frame.filename)]
    )
    return "".join(summary.format())


def _module_origin(module: ModuleType) -> list[str]:
    """The files or directories a module was loaded from (none for a built-in module)."""
    file = getattr(module, "__file__", None)
    if file:
        return [os.path.realpath(file)]
    return [os.path.realpath(p) for p in getattr(module, "__path__", None) or ()]


def _inside(path: str, directory: str) -> bool:
    return path.startswith(os.path.realpath(directory) + os.sep)


_DEFINES_BUILD_WHEEL = re.compile(
    r"^(?:\s*(?:async\s+)?def\s+build_wheel\s*\(|build_wheel\s*=|.*\bimport\b.*\bbuild_wheel\b)",
    re.MULTILINE,
)


def _defines_build_wheel(info: pkgutil.ModuleInfo) -> bool:
    """Whether a module's source defines (or imports) ``build_wheel``, read without
    importing it: importing every candidate would run their code."""
    finder = info.module_finder
    find_spec = getattr(finder, "find_spec", None)
    spec = find_spec(info.name) if callable(find_spec) else None
    origin = getattr(spec, "origin", None)
    if not isinstance(origin, str) or not origin.endswith(".py"):
        return False
    try:
        text = Path(origin).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return _DEFINES_BUILD_WHEEL.search(text) is not None


def _absent_submodule(reference: str, missing: str) -> str | None:
    """The problem, worded, when ``missing`` is a module that an importable package lacks
    (``setuptools.build_mta``); None when the package itself is missing."""
    parent_name, _, leaf = missing.rpartition(".")
    parent = sys.modules.get(parent_name) if parent_name else None
    if parent is None:
        return None
    where = ", ".join(_module_origin(parent)) or "a built-in module"
    search = getattr(parent, "__path__", None)
    if search is None:
        return (
            f"{parent_name!r} (from {where}) is a module, not a package, so it has no module"
            f" {leaf!r}; an object inside it is named as '{parent_name}:{leaf}'"
        )
    backends = [
        info.name
        for info in pkgutil.iter_modules(list(search), parent_name + ".")
        if _defines_build_wheel(info)
    ]
    where = ", ".join(os.path.realpath(p) for p in search) or where
    text = f"package {parent_name!r} is installed (in {where}) but has no module {leaf!r}"
    leaves = {name.rpartition(".")[2]: name for name in backends}
    import difflib  # noqa: PLC0415 - a failed import of the backend only

    close = difflib.get_close_matches(leaf, list(leaves), n=1, cutoff=0.6)
    if close:
        module_name = reference.partition(":")[0]
        suggestion = leaves[close[0]] + module_name[len(missing) :]
        _, colon, attribute = reference.partition(":")
        return f"{text}; did you mean {suggestion + colon + attribute!r}?"
    if backends:
        return f"{text}; its modules that define build_wheel: {', '.join(sorted(backends))}"
    return text


def load(
    reference: str, backend_path: Sequence[str] = (), project_dir: Path | None = None
) -> InnerBackend:
    """Import the backend ``reference`` ("module" or "module:object")."""
    module_name, _, attribute = reference.partition(":")
    project_dir = project_dir or Path.cwd()
    paths = [os.path.normpath(project_dir / p) for p in backend_path]
    # PEP 517: backend-path entries go to the front of sys.path, ahead of installed copies,
    # even when an entry is already further down.
    for path in reversed(paths):
        if path in sys.path:
            sys.path.remove(path)
        sys.path.insert(0, path)
    try:
        with _contained():
            module: ModuleType = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Only the backend itself (or a package it lives in) missing means "not installed";
        # a module the backend imports in turn is the backend's own import failure.
        missing = exc.name or ""
        if missing and (module_name == missing or module_name.startswith(missing + ".")):
            absent = _absent_submodule(reference, missing)
            if absent is not None:
                raise InnerBackendError(reference, absent) from None
            if paths:
                raise InnerBackendError(
                    reference,
                    f"module {missing!r} was not found in backend-path {list(backend_path)}"
                    f" (searched {', '.join(paths)})",
                ) from None
            raise InnerBackendError(
                reference,
                f"module {missing!r} is not installed; add the package that provides it"
                " to [build-system].requires in pyproject.toml",
            ) from None
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        raise InnerBackendError(
            reference, f"import failed: {detail}", traceback=_traceback(exc)
        ) from exc
    except Exception as exc:
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        raise InnerBackendError(
            reference, f"import failed: {detail}", traceback=_traceback(exc)
        ) from exc
    if paths:
        origins = _module_origin(module)
        if not any(_inside(o, p) for o in origins for p in paths):
            raise InnerBackendError(
                reference,
                f"backend-path is set to {list(backend_path)} but {module_name!r} was imported"
                f" from {', '.join(origins) or 'a built-in module'}; with backend-path set,"
                " the backend must be one of the modules in those directories (PEP 517)",
            )
    obj: Any = module
    for part in filter(None, attribute.split(".")):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise InnerBackendError(
                reference, f"module {module_name!r} has no attribute {part!r}"
            ) from None
    if obj is sys.modules.get("relabel.build_meta"):
        raise InnerBackendError(
            reference, "relabel cannot wrap itself; name the real backend in tool.relabel"
        )
    return InnerBackend(reference, obj)
