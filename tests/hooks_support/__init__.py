"""Support code for the PEP 517/660 hook tests: fake inner backends and a wheel writer."""

from __future__ import annotations

from .backends import (
    ALL_HOOKS,
    CONDITIONAL_HOOKS,
    MANDATORY_HOOKS,
    OPTIONAL_HOOKS,
    FakeProject,
    backend_source,
    isolated_imports,
    make_project,
    toml_value,
    write_pyproject,
)
from .hooks import hook_failure, isolated_hooks
from .wheels import make_wheel, record_hash

__all__ = [
    "ALL_HOOKS",
    "CONDITIONAL_HOOKS",
    "MANDATORY_HOOKS",
    "OPTIONAL_HOOKS",
    "FakeProject",
    "backend_source",
    "hook_failure",
    "isolated_hooks",
    "isolated_imports",
    "make_project",
    "make_wheel",
    "record_hash",
    "toml_value",
    "write_pyproject",
]
