"""One validated, frozen :class:`Settings` for a run.

Sources, lowest to highest precedence:

1. defaults,
2. for ``plat`` only, ``AUDITWHEEL_PLAT`` when it is set and not empty (every manylinux
   image sets it, and ``auditwheel repair`` takes it as its ``--plat`` default),
3. ``[tool.relabel]`` in ``pyproject.toml``,
4. config settings ``relabel.KEY=VALUE`` (``pip --config-settings``, ``build -C``),
5. environment variables ``RELABEL_KEY`` (upper case, ``-`` as ``_``).

Every problem in every source is collected, named with its full key path (for example
``tool.relabel.plat`` or ``-C relabel.mode``), given a "did you mean" where one is close,
and reported once as a :class:`~relabel.errors.ConfigError`; ``AUDITWHEEL_PLAT`` is
checked only when it is the value used. pyproject.toml is read once. A ``RELABEL_*``
variable that is no setting is reported by :func:`unknown_environment` (a warning, not an
error: the environment is shared with everything else the build runs).
"""

from __future__ import annotations

import difflib
import os
import sys
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from relabel import floor, policy
from relabel.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python < 3.11 only
    import tomli as tomllib

MODES = ("repair", "check", "warn", "skip")
AUDITWHEEL_PLAT = "AUDITWHEEL_PLAT"
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
    ldpaths: tuple[str, ...] = ()
    include: tuple[str, ...] = ()
    skip_scan: tuple[str, ...] = ()
    only_plat: bool = False
    update_tags: bool = True
    strip: bool = False
    isa_check: bool = True
    lib_sdir: str = ".libs"
    zip_compression_level: int = 6
    glibc_floor: str = "off"
    glibc_floor_allow: tuple[str, ...] = ()


def key_name(field_name: str) -> str:
    return field_name.replace("_", "-")


KEYS: tuple[str, ...] = tuple(key_name(f.name) for f in fields(Settings))

# Keys that hold lists. In the environment and in config settings (each value, when one is
# given several times) a list is split on os.pathsep for directories and on commas for
# everything else.
_LIST_KEYS = {
    "backend-path": os.pathsep,
    "exclude": ",",
    "library-dirs": os.pathsep,
    "ldpaths": os.pathsep,
    "include": ",",
    "skip-scan": ",",
    "glibc-floor-allow": ",",
}
_BOOL_KEYS = frozenset({"only-plat", "update-tags", "strip", "isa-check"})
#: integer keys and their inclusive range
_INT_KEYS = {"zip-compression-level": (0, 9)}
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _suggest(key: str, choices: Sequence[str]) -> str:
    lowered = {c.lower(): c for c in choices}
    close = difflib.get_close_matches(key.lower(), list(lowered), n=1, cutoff=0.6)
    return f"; did you mean {lowered[close[0]]!r}?" if close else ""


def _check_plat(value: str) -> str | None:
    if value == "auto" or value in policy.known_names():
        return None
    if _suggest(value, ["auto"]):
        return f"unknown policy {value!r}; did you mean 'auto'?"
    try:
        # A full tag: the policy must also exist on the tag's architecture.
        policy.lookup(value)
    except KeyError as exc:
        # lookup() words the problem and suggests neighbours (manylinux_2_18 -> 2_17, 2_24).
        return f"{exc.args[0]} (or 'auto' for the best policy the wheel meets)"
    return None


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


def _check_backend_path(entry: str) -> str | None:
    # PEP 517: backend-path entries are relative to the project root and stay inside it.
    if Path(entry).is_absolute():
        return f"{entry!r} must be relative to the project directory"
    if Path(os.path.normpath(entry)).parts[:1] == (os.pardir,):
        return f"{entry!r} points outside the project directory"
    return None


def lib_sdir_problem(value: str) -> str | None:
    """Why ``value`` cannot suffix the directory of grafted libraries, None when it can.

    The directory goes into RPATH entries, where ``:`` separates entries and ``$`` starts
    a loader token, and into the wheel, where ``.dist-info`` and ``.data`` directories
    mean something to installers.
    """
    if (
        value
        and value not in (".", "..")
        and not any(c in "/\\:$" or c.isspace() or not c.isprintable() for c in value)
        and not value.endswith((".dist-info", ".data"))
    ):
        return None
    return (
        f"{value!r} must be a directory name suffix such as '.libs' (not empty, no slash,"
        " ':', '$' or whitespace, not ending in .dist-info or .data)"
    )


def _check_lib_sdir(value: str) -> str | None:
    return lib_sdir_problem(value)


def _check_glibc_floor(value: str) -> str | None:
    try:
        floor.parse_setting(value)
    except ValueError as exc:
        return str(exc)
    return None


def _check_glibc_floor_allow(value: str) -> str | None:
    groups = floor.opt_in_groups()
    if value in groups:
        return None
    return f"unknown group {value!r}{_suggest(value, groups)} (known: {', '.join(groups)})"


_CHECKS: dict[str, Callable[[str], str | None]] = {
    "glibc-floor": _check_glibc_floor,
    "lib-sdir": _check_lib_sdir,
    "plat": _check_plat,
    "mode": _check_mode,
    "build-backend": _check_backend,
}
_ITEM_CHECKS: dict[str, Callable[[str], str | None]] = {
    "backend-path": _check_backend_path,
    "glibc-floor-allow": _check_glibc_floor_allow,
}


class _Collector:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.values: dict[str, Any] = {}
        #: which source each value in ``values`` came from
        self.sources: dict[str, str] = {}

    def take(self, where: str, key: str, raw: object, *, source: str) -> None:
        """Validate one value from one source; ``where`` renders the full key path.

        Strings from config settings and the environment are split into list items;
        pyproject.toml has real lists, so a string there is one item.
        """
        if key not in KEYS:
            self.problems.append(f"{where}: unknown key{_suggest(key, KEYS)}")
            return
        value: Any
        if key in _BOOL_KEYS or key in _INT_KEYS:
            parsed = _scalar(key, raw, source)
            if isinstance(parsed, str):
                self.problems.append(f"{where}: {parsed}")
                return
            self.values[key.replace("-", "_")] = parsed
            self.sources[key.replace("-", "_")] = source
            return
        if key in _LIST_KEYS:
            if isinstance(raw, str):
                raw = [raw]
            if not (isinstance(raw, (list, tuple)) and all(isinstance(i, str) for i in raw)):
                self.problems.append(
                    f"{where}: expected a list of strings, got {type(raw).__name__} {raw!r}"
                )
                return
            items = raw
            if source != "pyproject":
                items = [part for item in raw for part in item.split(_LIST_KEYS[key])]
            value = tuple(i.strip() for i in items if i.strip())
            check = _ITEM_CHECKS.get(key)
            problems = [p for p in map(check, value) if p] if check else []
        else:
            if not isinstance(raw, str):
                self.problems.append(
                    f"{where}: expected a string, got {type(raw).__name__} {raw!r}"
                )
                return
            value = raw.strip()
            check = _CHECKS.get(key)
            problems = [p for p in [check(value)] if p] if check else []
        if problems:
            self.problems.extend(f"{where}: {p}" for p in problems)
            return
        self.values[key.replace("-", "_")] = value
        self.sources[key.replace("-", "_")] = source


def _scalar(key: str, raw: object, source: str) -> bool | int | str:
    """Parse a bool or int key; a str result is the problem to report."""
    text = raw.strip().lower() if isinstance(raw, str) and source != "pyproject" else None
    if key in _BOOL_KEYS:
        if isinstance(raw, bool):
            return raw
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        return f"expected true or false, got {raw!r}"
    low, high = _INT_KEYS[key]
    number: int | None = None
    if isinstance(raw, int) and not isinstance(raw, bool):
        number = raw
    elif text is not None and text.lstrip("-").isdigit():
        number = int(text)
    if number is None or not low <= number <= high:
        return f"expected a whole number from {low} to {high}, got {raw!r}"
    return number


def read_pyproject(project_dir: Path) -> dict[str, Any]:
    path = project_dir / "pyproject.toml"
    try:
        with path.open("rb") as stream:
            data: dict[str, Any] = tomllib.load(stream)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML ({exc})"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [
                f"{path}: not UTF-8 (byte {exc.object[exc.start]:#04x} at offset {exc.start});"
                " TOML files must be UTF-8 encoded"
            ]
        ) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot be read ({exc.strerror})"]) from None
    return data


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
        collector.take(f"tool.relabel.{key}", key, raw, source="pyproject")

    for name, raw in (config_settings or {}).items():
        if not name.startswith("relabel."):
            continue
        key = name[len("relabel.") :]
        collector.take(f"-C {name}", key, raw, source="config-settings")

    for key in KEYS:
        env_name = env_name_of(key)
        if env_name in environ:
            collector.take(env_name, key, environ[env_name], source="environment")

    # auditwheel's --plat default; below every source of relabel's own (an empty value is
    # unset, as auditwheel treats it)
    plat_given = (
        "plat" in table
        or "relabel.plat" in (config_settings or {})
        or env_name_of("plat") in environ
    )
    auditwheel_plat = environ.get(AUDITWHEEL_PLAT, "").strip()
    if auditwheel_plat and not plat_given:
        collector.take(AUDITWHEEL_PLAT, "plat", auditwheel_plat, source="auditwheel")

    if collector.problems:
        raise ConfigError(collector.problems)

    values = dict(collector.values)
    # Directories in pyproject.toml are relative to the project, not to the caller.
    for key in ("library_dirs", "ldpaths"):
        if collector.sources.get(key) == "pyproject":
            values[key] = tuple(str(project_dir / d) for d in values[key])
    if collector.sources.get("include") == "pyproject":
        values["include"] = tuple(
            str(project_dir / i) if "/" in i else i for i in values["include"]
        )
    return replace(Settings(), **values)


def env_name_of(key: str) -> str:
    return "RELABEL_" + key.upper().replace("-", "_")


#: ``RELABEL_*`` variables relabel reads that are not settings
#: RELABEL_* names that are not settings: the patchelf to run, and those read by relabel's
#: own test suite (its download cache, the old-glibc roots, the musl and glibc git
#: directories its data is regenerated from)
OTHER_ENVIRONMENT = frozenset(
    {
        "RELABEL_PATCHELF",
        "RELABEL_TEST_CACHE",
        "RELABEL_GLIBC_ROOTS",
        "RELABEL_MUSL_GIT",
        "RELABEL_GLIBC_GIT",
    }
)


def unknown_environment(environ: Mapping[str, str] | None = None) -> list[str]:
    """One warning per ``RELABEL_*`` variable that relabel does not read (a misspelt
    setting would otherwise be ignored without a word)."""
    environ = os.environ if environ is None else environ
    prefix = "RELABEL_"
    known = [env_name_of(key) for key in KEYS] + sorted(OTHER_ENVIRONMENT)
    # Compared without the prefix they all share, which would make every name look close.
    tails = {name[len(prefix) :]: name for name in known}
    warnings = []
    for name in sorted(environ):
        if not name.startswith(prefix) or name in known:
            continue
        text = f"environment variable {name} is not a relabel setting and is ignored"
        close = difflib.get_close_matches(name[len(prefix) :].upper(), list(tails), n=1, cutoff=0.6)
        warnings.append(text + (f"; did you mean {tails[close[0]]}?" if close else ""))
    return warnings


def strip_config_settings(config_settings: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The config settings without relabel's own keys, for the inner backend."""
    if config_settings is None:
        return None
    return {k: v for k, v in config_settings.items() if not k.startswith("relabel.")}
