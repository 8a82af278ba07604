"""One validated, frozen :class:`Settings` for a run.

Sources, lowest to highest precedence:

1. defaults,
2. ``[tool.relabel]`` in ``pyproject.toml``,
3. config settings ``relabel.KEY=VALUE`` (``pip --config-settings``, ``build -C``),
4. environment variables ``RELABEL_KEY`` (upper case, ``-`` as ``_``).

Every problem in every source is collected, named with its full key path (for example
``tool.relabel.plat`` or ``-C relabel.mode``), given a "did you mean" where one is close,
and reported once as a :class:`~relabel.errors.ConfigError`. pyproject.toml is read once.
"""

from __future__ import annotations

import difflib
import os
import sys
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from relabel import policy
from relabel.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python < 3.11 only
    import tomli as tomllib

MODES = ("repair", "check", "warn", "skip")
DEFAULT_BACKEND = "setuptools.build_meta:__legacy__"


@dataclass(frozen=True)
class Settings:
    """Everything a run may be configured with. Field names are the keys with ``_``."""

    build_backend: str = DEFAULT_BACKEND
    backend_path: tuple[str, ...] = ()
    mode: str = "repair"
    plat: str = "auto"
    exclude: tuple[str, ...] = ()
    library_dirs: tuple[str, ...] = ()


def key_name(field_name: str) -> str:
    return field_name.replace("_", "-")


KEYS: tuple[str, ...] = tuple(key_name(f.name) for f in fields(Settings))

# Keys that hold lists. In the environment and in a single config-settings string a list
# is split on os.pathsep for directories and on commas for everything else.
_LIST_KEYS = {"backend-path": os.pathsep, "exclude": ",", "library-dirs": os.pathsep}


def _suggest(key: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, choices, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _check_plat(value: str) -> str | None:
    if value == "auto":
        return None
    base = value
    for arch in policy.ARCHITECTURES:
        if value.endswith("_" + arch):
            base = value[: -len(arch) - 1]
            break
    names = policy.known_names()
    if base in names:
        return None
    choices = ["auto", *names]
    return (
        f"unknown policy {value!r}{_suggest(base, choices)}"
        f" (expected 'auto' or one of: {', '.join(choices)})"
    )


def _check_mode(value: str) -> str | None:
    if value in MODES:
        return None
    return f"unknown mode {value!r}{_suggest(value, MODES)} (expected one of: {', '.join(MODES)})"


def _check_backend(value: str) -> str | None:
    module, _, obj = value.partition(":")
    parts = [*module.split("."), *(obj.split(".") if obj else [])]
    if module and all(p.isidentifier() for p in parts) and (":" not in value or obj):
        return None
    return f"{value!r} is not a backend reference of the form 'module' or 'module:object'"


_CHECKS: dict[str, Callable[[str], str | None]] = {
    "plat": _check_plat,
    "mode": _check_mode,
    "build-backend": _check_backend,
}


class _Collector:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.values: dict[str, Any] = {}

    def take(self, where: str, key: str, raw: object, *, split_strings: bool) -> None:
        """Validate one value from one source; ``where`` renders the full key path."""
        if key not in KEYS:
            self.problems.append(f"{where}: unknown key{_suggest(key, KEYS)}")
            return
        if key in _LIST_KEYS:
            if isinstance(raw, str):
                items = [raw] if not split_strings else raw.split(_LIST_KEYS[key])
                value: Any = tuple(i.strip() for i in items if i.strip())
            elif isinstance(raw, (list, tuple)) and all(isinstance(i, str) for i in raw):
                value = tuple(i for i in raw if i)
            else:
                self.problems.append(
                    f"{where}: expected a list of strings, got {type(raw).__name__} {raw!r}"
                )
                return
        else:
            if not isinstance(raw, str):
                self.problems.append(
                    f"{where}: expected a string, got {type(raw).__name__} {raw!r}"
                )
                return
            value = raw.strip()
            check = _CHECKS.get(key)
            problem = check(value) if check else None
            if problem:
                self.problems.append(f"{where}: {problem}")
                return
        if key == "backend-path":
            for entry in value:
                if Path(entry).is_absolute():
                    self.problems.append(
                        f"{where}: {entry!r} must be relative to the project directory"
                    )
                    return
        self.values[key.replace("-", "_")] = value


def read_pyproject(project_dir: Path) -> dict[str, Any]:
    path = project_dir / "pyproject.toml"
    try:
        with path.open("rb") as stream:
            return tomllib.load(stream)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML ({exc})"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot be read ({exc.strerror})"]) from None


def load(
    project_dir: Path,
    config_settings: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    pyproject: Mapping[str, Any] | None = None,
) -> Settings:
    """Build the settings for a project directory; raise ConfigError listing every problem."""
    data = read_pyproject(project_dir) if pyproject is None else pyproject
    environ = os.environ if environ is None else environ
    collector = _Collector()

    tool = data.get("tool", {})
    table = tool.get("relabel", {}) if isinstance(tool, dict) else {}
    if not isinstance(table, dict):
        collector.problems.append("tool.relabel: expected a table")
        table = {}
    for key, raw in table.items():
        collector.take(f"tool.relabel.{key}", key, raw, split_strings=False)
    from_pyproject = dict(collector.values)

    for name, raw in (config_settings or {}).items():
        if not name.startswith("relabel."):
            continue
        key = name[len("relabel.") :]
        collector.take(f"-C {name}", key, raw, split_strings=True)

    for key in KEYS:
        env_name = "RELABEL_" + key.upper().replace("-", "_")
        if env_name in environ:
            collector.take(env_name, key, environ[env_name], split_strings=True)

    if collector.problems:
        raise ConfigError(collector.problems)

    values = dict(collector.values)
    # Directories in pyproject.toml are relative to the project, not to the caller.
    for key in ("library_dirs",):
        if key in values and values[key] is from_pyproject.get(key):
            values[key] = tuple(str(project_dir / d) for d in values[key])
    return replace(Settings(), **values)


def strip_config_settings(config_settings: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The config settings without relabel's own keys, for the inner backend."""
    if config_settings is None:
        return None
    return {k: v for k, v in config_settings.items() if not k.startswith("relabel.")}
