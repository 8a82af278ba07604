"""Calling relabel's own hooks in a test: isolated from the caller and from other tests, and
a failed hook read as a frontend shows it."""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Any, Callable

import pytest

import relabel.patchelf

from .backends import isolated_imports

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@contextlib.contextmanager
def isolated_hooks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No RELABEL_* or AUDITWHEEL_PLAT from the caller's environment, no patchelf lookup
    kept from another test, and the fake backends' modules forgotten afterwards."""
    for name in list(os.environ):
        if name.startswith("RELABEL_") or name == "AUDITWHEEL_PLAT":
            monkeypatch.delenv(name)
    relabel.patchelf.find.cache_clear()
    with isolated_imports(tmp_path):
        yield
    relabel.patchelf.find.cache_clear()


def hook_failure(hook: Callable[..., Any], *args: Any) -> str:
    """The message of ``hook(*args)``'s failure: one ``relabel: error:`` text, as the
    SystemExit a frontend turns into a failed build."""
    with pytest.raises(SystemExit) as excinfo:
        hook(*args)
    message = excinfo.value.code
    assert isinstance(message, str), f"the hook failed without a message: {message!r}"
    assert message.startswith("relabel: error:"), message
    return message
