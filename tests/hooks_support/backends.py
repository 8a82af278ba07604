"""Tiny fake inner backends, written into a project directory and loaded through backend-path.

Each generated backend module records every hook call (hook name and arguments) as one JSON
line in ``calls.jsonl`` of the project, and builds by copying a wheel prepared by the test.
What a hook does instead (raise, return something else) is set per hook with ``behaviour``.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

MANDATORY_HOOKS = ("build_wheel", "build_sdist")
OPTIONAL_HOOKS = (
    "get_requires_for_build_wheel",
    "get_requires_for_build_sdist",
    "prepare_metadata_for_build_wheel",
    "build_editable",
    "get_requires_for_build_editable",
    "prepare_metadata_for_build_editable",
)
#: The hooks relabel.build_meta shows only when the inner backend has them.
CONDITIONAL_HOOKS = (
    "prepare_metadata_for_build_wheel",
    "build_editable",
    "get_requires_for_build_editable",
    "prepare_metadata_for_build_editable",
)
ALL_HOOKS = (*MANDATORY_HOOKS, *OPTIONAL_HOOKS)

_PRELUDE = '''\
"""A fake PEP 517 backend for relabel's tests."""

import json
import shutil
import tarfile
import types
from pathlib import Path

SPEC = json.loads({spec!r})
_DEFAULT = object()
_METADATA = "Metadata-Version: 2.1\\nName: fake\\nVersion: 1.0\\n"


def _record(hook, **arguments):
    with open(SPEC["log"], "a", encoding="utf-8") as stream:
        stream.write(json.dumps({{"hook": hook, **arguments}}) + "\\n")


def _behave(hook, directory=None):
    how = SPEC["behaviour"].get(hook, {{}})
    if directory is not None and "leave" in how:
        Path(directory, how["leave"]).write_bytes(b"PK\\x03\\x04 half written")
    if "raise" in how:
        raise RuntimeError(how["raise"])
    return how.get("return", _DEFAULT)


def _copy(source, directory):
    shutil.copyfile(source, Path(directory) / Path(source).name)
    return Path(source).name
'''

_HOOKS = {
    "get_requires_for_build_wheel": """
        def get_requires_for_build_wheel(config_settings=None):
            _record("get_requires_for_build_wheel", config_settings=config_settings)
            result = _behave("get_requires_for_build_wheel")
            return SPEC["requires"] if result is _DEFAULT else result
    """,
    "get_requires_for_build_sdist": """
        def get_requires_for_build_sdist(config_settings=None):
            _record("get_requires_for_build_sdist", config_settings=config_settings)
            result = _behave("get_requires_for_build_sdist")
            return ["sdist-requirement"] if result is _DEFAULT else result
    """,
    "get_requires_for_build_editable": """
        def get_requires_for_build_editable(config_settings=None):
            _record("get_requires_for_build_editable", config_settings=config_settings)
            result = _behave("get_requires_for_build_editable")
            return ["editable-requirement"] if result is _DEFAULT else result
    """,
    **{
        hook: f"""
        def {hook}(metadata_directory, config_settings=None):
            _record(
                "{hook}",
                metadata_directory=metadata_directory,
                config_settings=config_settings,
            )
            result = _behave("{hook}", metadata_directory)
            if result is not _DEFAULT:
                return result
            dist_info = Path(metadata_directory, "fake-1.0.dist-info")
            dist_info.mkdir()
            (dist_info / "METADATA").write_text(_METADATA)
            return dist_info.name
    """
        for hook in ("prepare_metadata_for_build_wheel", "prepare_metadata_for_build_editable")
    },
    **{
        hook: f"""
        def {hook}(wheel_directory, config_settings=None, metadata_directory=None):
            _record(
                "{hook}",
                wheel_directory=wheel_directory,
                config_settings=config_settings,
                metadata_directory=metadata_directory,
            )
            result = _behave("{hook}", wheel_directory)
            return _copy(SPEC["{built}"], wheel_directory) if result is _DEFAULT else result
    """
        for hook, built in (("build_wheel", "wheel"), ("build_editable", "editable"))
    },
    "build_sdist": """
        def build_sdist(sdist_directory, config_settings=None):
            _record("build_sdist", sdist_directory=sdist_directory, config_settings=config_settings)
            result = _behave("build_sdist", sdist_directory)
            if result is not _DEFAULT:
                return result
            with tarfile.open(Path(sdist_directory, "fake-1.0.tar.gz"), "w:gz"):
                pass
            return "fake-1.0.tar.gz"
    """,
}

_AS_OBJECT = """
_target = globals()
_path = SPEC["object"].split(".")
for _part in _path[:-1]:
    _target[_part] = types.SimpleNamespace()
    _target = vars(_target[_part])
_target[_path[-1]] = types.SimpleNamespace(**{name: globals().pop(name) for name in SPEC["hooks"]})
"""


def toml_value(value: object) -> str:
    """The TOML text of a string, bool, int or list of those (enough for pyproject tables)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    msg = f"cannot write {value!r} as TOML"
    raise TypeError(msg)


def write_pyproject(root: Path, relabel: Mapping[str, object] | None) -> Path:
    """``pyproject.toml`` with ``[build-system]`` naming relabel and the given [tool.relabel]."""
    lines = [
        "[build-system]",
        'requires = ["relabel-backend"]',
        'build-backend = "relabel.build_meta"',
        "",
        "[project]",
        'name = "fake"',
        'version = "1.0"',
        "",
    ]
    if relabel is not None:
        lines.append("[tool.relabel]")
        lines.extend(f"{key} = {toml_value(value)}" for key, value in relabel.items())
    root.mkdir(parents=True, exist_ok=True)
    path = root / "pyproject.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@dataclass
class FakeProject:
    """A project directory whose [tool.relabel] names a fake backend kept in ``_backend/``."""

    root: Path
    module: str
    reference: str
    wheel: Path | None
    editable: Path | None

    @property
    def log(self) -> Path:
        return self.root / "calls.jsonl"

    def calls(self, hook: str | None = None) -> list[dict[str, Any]]:
        """Every recorded call (of ``hook`` only, when given), oldest first."""
        if not self.log.exists():
            return []
        records = [json.loads(line) for line in self.log.read_text("utf-8").splitlines()]
        return [r for r in records if hook is None or r["hook"] == hook]


def backend_source(
    *,
    hooks: Iterable[str],
    spec: Mapping[str, Any],
    obj: str | None = None,
    prelude: str = "",
) -> str:
    hooks = tuple(hooks)
    full_spec = {**spec, "hooks": list(hooks), "object": obj}
    parts = [_PRELUDE.format(spec=json.dumps(full_spec)), textwrap.dedent(prelude)]
    parts.extend(textwrap.dedent(_HOOKS[hook]) for hook in hooks)
    if obj:
        parts.append(_AS_OBJECT)
    return "\n".join(parts)


def make_project(
    root: Path,
    *,
    hooks: Iterable[str] = ALL_HOOKS,
    wheel: Path | None = None,
    editable: Path | None = None,
    requires: Iterable[str] = ("fake-requirement>=1",),
    behaviour: Mapping[str, Mapping[str, str]] | None = None,
    module: str = "fake_backend",
    obj: str | None = None,
    prelude: str = "",
    relabel: Mapping[str, object] | None = None,
) -> FakeProject:
    """Write a project whose inner backend is a generated module ``module`` in ``_backend/``.

    ``obj`` puts the hooks on an attribute path of the module (``module:obj``) instead of
    the module itself; ``prelude`` is extra code run when the module is imported;
    ``relabel`` adds or overrides [tool.relabel] keys.
    """
    reference = f"{module}:{obj}" if obj else module
    spec = {
        "log": str(root / "calls.jsonl"),
        "wheel": str(wheel) if wheel else None,
        "editable": str(editable) if editable else None,
        "requires": list(requires),
        "behaviour": dict(behaviour or {}),
    }
    backend_dir = root / "_backend"
    backend_dir.mkdir(parents=True, exist_ok=True)
    source = backend_source(hooks=hooks, spec=spec, obj=obj, prelude=prelude)
    (backend_dir / f"{module}.py").write_text(source, encoding="utf-8")
    settings: dict[str, object] = {"build-backend": reference, "backend-path": ["_backend"]}
    settings.update(relabel or {})
    write_pyproject(root, settings)
    return FakeProject(root, module, reference, wheel, editable)


@contextlib.contextmanager
def isolated_imports(*roots: Path) -> Iterator[None]:
    """Restore ``sys.path`` afterwards and forget modules imported from under ``roots``.

    Fake backends of different tests share module names; without this the second test
    would get the first test's module from ``sys.modules``.
    """
    saved_path = list(sys.path)
    before = set(sys.modules)
    importlib.invalidate_caches()
    try:
        yield
    finally:
        sys.path[:] = saved_path
        resolved = [str(r.resolve()) for r in roots]
        for name in set(sys.modules) - before:
            module = sys.modules.get(name)
            locations = [getattr(module, "__file__", None) or ""]
            locations.extend(getattr(module, "__path__", None) or [])
            if any(
                str(Path(loc).resolve()).startswith(tuple(resolved)) for loc in locations if loc
            ):
                del sys.modules[name]
        importlib.invalidate_caches()
