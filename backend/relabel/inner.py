"""Load the real build backend named by ``tool.relabel.build-backend`` and call its hooks.

The reference is ``module`` or ``module:object`` exactly as in ``[build-system]``
(PEP 517); ``backend-path`` entries are prepended to ``sys.path`` the way frontends do for
in-tree backends, and the loaded module must then come from one of them. A backend that is
not installed, fails to import, or raises in a hook becomes an
:class:`~relabel.errors.InnerBackendError` that keeps the backend's own message.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from relabel.errors import InnerBackendError

if TYPE_CHECKING:
    from collections.abc import Sequence
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
            return function(*args, **kwargs)
        except (SystemExit, KeyboardInterrupt):
            raise
        except Exception as exc:
            # Keep the backend's own words (and where they came from) in front of the user.
            detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            tb = traceback.extract_tb(exc.__traceback__)
            origin = f" (raised at {tb[-1].filename}:{tb[-1].lineno})" if tb else ""
            raise InnerBackendError(self.reference, f"{hook} failed: {detail}{origin}") from exc


def _module_origin(module: ModuleType) -> list[str]:
    """The files or directories a module was loaded from (none for a built-in module)."""
    file = getattr(module, "__file__", None)
    if file:
        return [os.path.realpath(file)]
    return [os.path.realpath(p) for p in getattr(module, "__path__", None) or ()]


def _inside(path: str, directory: str) -> bool:
    return path.startswith(os.path.realpath(directory) + os.sep)


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
        module: ModuleType = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Only the backend itself (or a package it lives in) missing means "not installed";
        # a module the backend imports in turn is the backend's own import failure.
        missing = exc.name or ""
        if missing and (module_name == missing or module_name.startswith(missing + ".")):
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
        raise InnerBackendError(reference, f"import failed: {detail}") from exc
    except Exception as exc:
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        raise InnerBackendError(reference, f"import failed: {detail}") from exc
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
