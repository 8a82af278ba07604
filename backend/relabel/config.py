"""One validated, frozen :class:`Settings` for a run, and the one definition of every option.

Each field of :class:`Settings` carries a :class:`Meta`: what the key means, how a string
is split into a list, what is checked, the JSON schema's constraints and the command line
flag (:class:`Flag`). The backend's parsing (:func:`load`), the command line's flags and
values (:mod:`relabel.cli`), the pipeline's options (:class:`relabel.repair.Options`, the
settings plus what a front end decides itself) and the JSON schema (:mod:`relabel.schema`)
are all derived from it: adding an option is adding a field.

Sources, lowest to highest precedence:

1. defaults,
2. a setting's ``fallback_env`` when it is set and not empty: for ``plat``,
   ``AUDITWHEEL_PLAT`` (every manylinux image sets it, and ``auditwheel repair`` takes it
   as its ``--plat`` default),
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

import os
import sys
from dataclasses import Field, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from relabel import floor_setting
from relabel.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

MODES = ("repair", "check", "warn", "skip")
AUDITWHEEL_PLAT = "AUDITWHEEL_PLAT"
DEFAULT_BACKEND = "setuptools.build_meta:__legacy__"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _suggest(key: str, choices: Sequence[str]) -> str:
    import difflib  # noqa: PLC0415 - only a run with a problem to report needs it

    lowered = {c.lower(): c for c in choices}
    close = difflib.get_close_matches(key.lower(), list(lowered), n=1, cutoff=0.6)
    return f"; did you mean {lowered[close[0]]!r}?" if close else ""


def check_plat(value: str) -> str | None:
    """What is wrong with a ``plat`` value (from any source, ``--plat`` included)."""
    # imported here: the backend's hooks that only ask the inner backend never read a policy
    from relabel import policy  # noqa: PLC0415

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


def plat_values() -> list[str]:
    """Every value ``plat`` accepts: 'auto', each policy name, and each full tag that
    exists on its architecture, as :func:`check_plat` decides."""
    from relabel import policy  # noqa: PLC0415 - see check_plat

    names = policy.known_names()
    candidates = [
        "auto",
        *names,
        *(f"{name}_{arch}" for name in names for arch in policy.ARCHITECTURES),
    ]
    return [value for value in candidates if check_plat(value) is None]


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
        floor_setting.parse_setting(value)
    except ValueError as exc:
        return str(exc)
    return None


def glibc_floor_values() -> list[str]:
    """Every value ``glibc-floor`` accepts, as :func:`_check_glibc_floor` decides."""
    known = floor_setting.releases()
    candidates = [
        floor_setting.OFF,
        floor_setting.AUTO,
        *(floor_setting.show(v) for v in known),
        *(f"manylinux_{v[0]}_{v[1]}" for v in known),
        "manylinux1",
        "manylinux2010",
        "manylinux2014",
    ]
    return [value for value in candidates if _check_glibc_floor(value) is None]


def _check_glibc_floor_allow(value: str) -> str | None:
    groups = floor_setting.opt_in_groups()
    if value in groups:
        return None
    return f"unknown group {value!r}{_suggest(value, groups)} (known: {', '.join(groups)})"


# What the JSON schema (relabel.schema) says of a checked value. Each mirrors the check
# beside it; ECMA-262 (editors) and Python's re (validate-pyproject) both read the patterns.
_IDENTIFIER = r"[^\W\d]\w*"
_DOTTED = rf"{_IDENTIFIER}(\.{_IDENTIFIER})*"
#: a Python dotted name, optionally ':' and a dotted attribute path (_check_backend)
_BACKEND_PATTERN = rf"^{_DOTTED}(:{_DOTTED})?$"
# no slash, backslash, ':', '$' or whitespace, not '.' or '..', not ending in .dist-info or
# .data (lib_sdir_problem)
_LIB_SDIR_PATTERN = r"^(?!\.\.?$)(?!.*\.(dist-info|data)$)[^/\\:\$\s\x00-\x1f\x7f]+$"
#: absolute, or starting with '..' (_check_backend_path; a/../.. is left to relabel)
_OUTSIDE_PATTERN = r"^(/|\.\.(/|$))"


def _outside_schema() -> dict[str, Any]:
    # "not" of a rule that holds vacuously for a list would refuse every list: the rule
    # names the string type itself.
    return {"not": {"type": "string", "pattern": _OUTSIDE_PATTERN}}


#: a :class:`Flag` whose default is the setting's
SAME: Any = object()


# read by attribute only, never compared nor shown: no generated __eq__ and __repr__
@dataclass(frozen=True, eq=False, repr=False)
class Flag:
    """How a setting appears on relabel's command line (auditwheel's flag where it has one)."""

    names: tuple[str, ...]
    help: str
    metavar: str | None = None
    #: the subcommands that take the flag
    commands: tuple[str, ...] = ("show", "repair")
    #: the flag turns the setting off (``--no-update-tags``)
    negative: bool = False
    #: one value split on the setting's separator (``--ldpaths a:b``), not a repeated flag
    joined: bool = False
    #: the command line's own default, where auditwheel's differs from the backend's
    default: Any = SAME
    #: (command, text) added to the help of one subcommand
    command_help: tuple[tuple[str, str], ...] = ()


# read by attribute only, never compared nor shown: no generated __eq__ and __repr__
@dataclass(frozen=True, eq=False, repr=False)
class Meta:
    """Everything about one setting beyond its name, type and default."""

    #: what the key means, as editors (the JSON schema) show it
    help: str
    #: what is wrong with a value (of a list: with one item); None when nothing
    check: Callable[[str], str | None] | None = None
    #: lists: what a string from config settings or the environment is split on
    separator: str = ","
    #: integers: the inclusive range
    bounds: tuple[int, int] | None = None
    #: what the value is, in the command line's range message
    noun: str = "whole number"
    #: paths in pyproject.toml are relative to the project: every entry ("all"), or only
    #: those with a slash ("paths", the rest being sonames)
    relative: str = ""
    #: an empty value means "not set" (None)
    empty_is_unset: bool = False
    #: an environment variable below every relabel source (plat: AUDITWHEEL_PLAT)
    fallback_env: str | None = None
    #: the JSON schema's constraints on the value (of a list: on each item, and on the
    #: single string pyproject.toml may give instead)
    schema: Callable[[], dict[str, Any]] | None = None
    flag: Flag | None = None


def _setting(default: Any, meta: Meta) -> Any:
    return field(default=default, metadata={"relabel": meta})


@dataclass(frozen=True)
class Settings:
    """Everything a run may be configured with: the one definition of every option.

    Field names are the keys with ``_``; each field's :class:`Meta` says how the key is
    parsed, checked, described in the JSON schema and offered on the command line.
    """

    build_backend: str = _setting(
        DEFAULT_BACKEND,
        Meta(
            "The real build backend, 'module' or 'module:object'.",
            check=_check_backend,
            schema=lambda: {"pattern": _BACKEND_PATTERN},
        ),
    )
    backend_path: tuple[str, ...] = _setting(
        (),
        Meta(
            "Directories, relative to the project, to import an in-tree backend from "
            "(as backend-path in [build-system]).",
            check=_check_backend_path,
            separator=os.pathsep,
            schema=_outside_schema,
        ),
    )
    mode: str = _setting(
        "repair",
        Meta(
            "repair: graft libraries and retag. check: fail the build unless the wheel "
            "already meets the target. warn: only report. skip: do nothing.",
            check=_check_mode,
            schema=lambda: {"enum": list(MODES)},
        ),
    )
    plat: str = _setting(
        "auto",
        Meta(
            "'auto' for the best policy the wheel can reach, or a policy name such as "
            "'manylinux_2_28', 'manylinux2014' or a full tag such as 'manylinux_2_17_x86_64'.",
            check=check_plat,
            fallback_env=AUDITWHEEL_PLAT,
            schema=lambda: {"enum": plat_values()},
            flag=Flag(
                ("--plat",),
                "target policy: a tag (manylinux_2_17_x86_64), a legacy alias"
                " (manylinux2014_x86_64) or a name without the architecture (manylinux_2_17);"
                " default: $AUDITWHEEL_PLAT when set, else auto",
                default=None,
                command_help=(
                    ("show", " (any manylinux/musllinux policy)"),
                    ("repair", " (the best reachable policy)"),
                ),
            ),
        ),
    )
    exclude: tuple[str, ...] = _setting(
        (),
        Meta(
            "Sonames or globs (matched against sonames and resolved paths) never grafted.",
            flag=Flag(
                ("--exclude", "-e"),
                "soname, glob or path never grafted; its dependencies are left out too"
                " (repeatable)",
                "SONAME",
            ),
        ),
    )
    library_dirs: tuple[str, ...] = _setting(
        (),
        Meta(
            "Extra directories to find libraries in, searched right after LD_LIBRARY_PATH "
            "(relative to the project).",
            separator=os.pathsep,
            relative="all",
            flag=Flag(
                ("--library-dir",),
                "extra directory to search for shared libraries (repeatable)",
                "DIR",
            ),
        ),
    )
    ldpaths: tuple[str, ...] | None = _setting(
        None,
        Meta(
            "Directories that replace the system ones (ld.so.conf and the defaults).",
            separator=os.pathsep,
            relative="all",
            empty_is_unset=True,
            flag=Flag(
                ("--ldpaths",),
                "colon-separated directories that replace the system library search directories",
                "DIRS",
                joined=True,
            ),
        ),
    )
    include: tuple[str, ...] = _setting(
        (),
        Meta(
            "Libraries the extensions load with dlopen, by soname or path; grafted under "
            "their own soname.",
            relative="paths",
            flag=Flag(
                ("--include",),
                "library loaded with dlopen: grafted under its own soname (repeatable)",
                "SONAME_OR_PATH",
            ),
        ),
    )
    skip_scan: tuple[str, ...] = _setting(
        (),
        Meta(
            "Globs of wheel members never treated as ELF files.",
            flag=Flag(
                ("--skip-scan",), "wheel members never treated as ELF files (repeatable)", "GLOB"
            ),
        ),
    )
    only_plat: bool = _setting(
        False,
        Meta(
            "Tag the wheel with plat only, even when it meets a more compatible policy.",
            flag=Flag(
                ("--only-plat",),
                "tag only with --plat, even when a more compatible policy is met",
                commands=("repair",),
            ),
        ),
    )
    update_tags: bool = _setting(
        True,
        Meta(
            "Rename the wheel and rewrite WHEEL's Tag: lines to the new platform tags.",
            flag=Flag(
                ("--no-update-tags",),
                "keep the file name and WHEEL tags as they are",
                commands=("repair",),
                negative=True,
            ),
        ),
    )
    strip: bool = _setting(
        False,
        Meta(
            "Strip symbols from the grafted libraries and the patched files.",
            flag=Flag(
                ("--strip",),
                "strip symbols from grafted libraries and patched files",
                commands=("repair",),
            ),
        ),
    )
    isa_check: bool = _setting(
        True,
        Meta(
            "Check the x86-64 ISA level (x86-64-v2/v3/v4 GNU property notes).",
            flag=Flag(
                ("--disable-isa-ext-check",),
                "do not check the x86-64 ISA level (x86-64-v2/v3/v4) of ELF files",
                negative=True,
            ),
        ),
    )
    lib_sdir: str = _setting(
        ".libs",
        Meta(
            "Suffix of the directory that holds the grafted libraries (<dist><lib-sdir>/).",
            check=_check_lib_sdir,
            schema=lambda: {"pattern": _LIB_SDIR_PATTERN},
            flag=Flag(
                ("-L", "--lib-sdir"),
                "suffix of the directory for grafted libraries (default: .libs)",
                commands=("repair",),
            ),
        ),
    )
    zip_compression_level: int = _setting(
        6,
        Meta(
            "Deflate level for the members relabel writes.",
            bounds=(0, 9),
            noun="compression level",
            flag=Flag(
                ("-z", "--zip-compression-level"),
                "deflate level for rewritten members, 0-9 (default: 6)",
                "LEVEL",
                commands=("repair",),
            ),
        ),
    )
    glibc_floor: str = _setting(
        floor_setting.OFF,
        Meta(
            "Lower the glibc symbol versions the wheel's files need: off, auto (as far as the"
            " safe rules allow), or a glibc release or policy that is then required.",
            check=_check_glibc_floor,
            schema=lambda: {"enum": glibc_floor_values()},
            flag=Flag(
                ("--glibc-floor",),
                "rewrite glibc symbol versions so the files load on an older glibc"
                " (auto: as far as the safe rules allow; 2.17 or manylinux_2_17: at least"
                " that far)",
                "off|auto|VERSION|POLICY",
            ),
        ),
    )
    glibc_floor_allow: tuple[str, ...] = _setting(
        (),
        Meta(
            "Opt-in symbol classes whose behaviour differs (e.g. c23-parsing).",
            check=_check_glibc_floor_allow,
            schema=lambda: {"enum": floor_setting.opt_in_groups()},
            flag=Flag(
                ("--glibc-floor-allow",),
                "also lower symbols whose old version behaves differently, by group name"
                " (c23-parsing; repeatable)",
                "GROUP",
            ),
        ),
    )
    sysroot: str | None = _setting(
        None,
        Meta(
            "A directory to resolve system libraries in instead of / (a wheel of another "
            "architecture; relative to the project).",
            relative="all",
            empty_is_unset=True,
            flag=Flag(
                ("--sysroot",),
                "resolve system libraries under DIR instead of / (wheels of another architecture)",
                "DIR",
            ),
        ),
    )
    allow_pure_python_wheel: bool = _setting(
        True,
        Meta(
            "Pass a wheel without ELF files through; false: fail the build on one.",
            flag=Flag(
                ("--allow-pure-python-wheel",),
                "accept wheels without ELF files instead of failing",
                default=False,
            ),
        ),
    )


def key_name(field_name: str) -> str:
    return field_name.replace("_", "-")


def meta(setting: Field[Any]) -> Meta:
    """The :class:`Meta` of one field of :class:`Settings`."""
    found: Meta = setting.metadata["relabel"]
    return found


#: Kinds of value, by the field's annotation.
BOOL, INT, STR, LIST = "bool", "int", "str", "list"
_KINDS = {
    "bool": BOOL,
    "int": INT,
    "str": STR,
    "str | None": STR,
    "tuple[str, ...]": LIST,
    "tuple[str, ...] | None": LIST,
}


def kind(setting: Field[Any]) -> str:
    """``bool``, ``int``, ``str`` or ``list``: how a setting's values are read."""
    return _KINDS[str(setting.type)]


SETTINGS: tuple[Field[Any], ...] = fields(Settings)
BY_KEY: dict[str, Field[Any]] = {key_name(f.name): f for f in SETTINGS}
KEYS: tuple[str, ...] = tuple(BY_KEY)


class _Collector:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.values: dict[str, Any] = {}
        #: which source each value in ``values`` came from
        self.sources: dict[str, str] = {}
        #: the settings some source gave, whether or not the value could be used
        self.given: set[str] = set()

    def take(self, where: str, key: str, raw: object, *, source: str) -> None:
        """Validate one value from one source; ``where`` renders the full key path."""
        setting = BY_KEY.get(key)
        if setting is None:
            self.problems.append(f"{where}: unknown key{_suggest(key, KEYS)}")
            return
        self.given.add(setting.name)
        value, problems = parse(setting, raw, split=source != "pyproject")
        if problems:
            self.problems.extend(f"{where}: {p}" for p in problems)
            return
        self.values[setting.name] = value
        self.sources[setting.name] = source


def parse(setting: Field[Any], raw: object, *, split: bool) -> tuple[Any, list[str]]:
    """One setting's value from ``raw``, and the problems that keep it from being used.

    ``split``: ``raw`` is text from config settings, the environment or the command line,
    where a list is one string split on the setting's separator and booleans and numbers
    are words; pyproject.toml has real lists (a string there is one item), booleans and
    integers.
    """
    info = meta(setting)
    how = kind(setting)
    if how in (BOOL, INT):
        parsed = _scalar(info, raw, text=split)
        return (None, [parsed]) if isinstance(parsed, str) else (parsed, [])
    if how == LIST:
        if isinstance(raw, str):
            raw = [raw]
        if not (isinstance(raw, (list, tuple)) and all(isinstance(i, str) for i in raw)):
            return None, [f"expected a list of strings, got {type(raw).__name__} {raw!r}"]
        items = [part for item in raw for part in item.split(info.separator)] if split else raw
        value: Any = tuple(i.strip() for i in items if i.strip())
        problems = [p for p in map(info.check, value) if p] if info.check else []
    else:
        if not isinstance(raw, str):
            return None, [f"expected a string, got {type(raw).__name__} {raw!r}"]
        value = raw.strip()
        problems = [p for p in [info.check(value)] if p] if info.check else []
    if info.empty_is_unset and not value:
        value = None
    return value, problems


def _scalar(info: Meta, raw: object, *, text: bool) -> bool | int | str:
    """Parse a bool or int value; a str result is the problem to report."""
    word = raw.strip().lower() if isinstance(raw, str) and text else None
    if info.bounds is None:
        if isinstance(raw, bool):
            return raw
        if word in _TRUE or word in _FALSE:
            return word in _TRUE
        return f"expected true or false, got {raw!r}"
    low, high = info.bounds
    number: int | None = None
    if isinstance(raw, int) and not isinstance(raw, bool):
        number = raw
    elif word is not None and word.lstrip("-").isdigit():
        number = int(word)
    if number is None or not low <= number <= high:
        return f"expected a whole number from {low} to {high}, got {raw!r}"
    return number


def read_pyproject(project_dir: Path) -> dict[str, Any]:
    # imported here: the command line never reads pyproject.toml
    if sys.version_info >= (3, 11):
        import tomllib  # noqa: PLC0415
    else:  # pragma: no cover - exercised on Python < 3.11 only
        import tomli as tomllib  # noqa: PLC0415

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

    # Defaults from other tools (auditwheel's --plat), below every source of relabel's own;
    # an empty value is unset, as auditwheel treats it.
    given = set(collector.given)
    for setting in SETTINGS:
        fallback = fallback_value(setting, environ)
        if fallback and setting.name not in given:
            where = str(meta(setting).fallback_env)
            collector.take(where, key_name(setting.name), fallback, source="fallback")

    if collector.problems:
        raise ConfigError(collector.problems)

    values = dict(collector.values)
    # Paths in pyproject.toml are relative to the project, not to the caller.
    for name, value in values.items():
        relative = meta(Settings.__dataclass_fields__[name]).relative
        if collector.sources[name] == "pyproject" and relative and value is not None:
            values[name] = _in_project(project_dir, value, relative)
    return replace(Settings(), **values)


def _in_project(project_dir: Path, value: str | tuple[str, ...], relative: str) -> Any:
    if isinstance(value, str):
        return str(project_dir / value)
    return tuple(str(project_dir / v) if relative == "all" or "/" in v else v for v in value)


def fallback_value(setting: Field[Any], environ: Mapping[str, str]) -> str | None:
    """The value of the setting's ``fallback_env`` variable (AUDITWHEEL_PLAT), None when it
    has none or it is unset or empty."""
    name = meta(setting).fallback_env
    return (environ.get(name, "").strip() or None) if name else None


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
        import difflib  # noqa: PLC0415 - see _suggest

        text = f"environment variable {name} is not a relabel setting and is ignored"
        close = difflib.get_close_matches(name[len(prefix) :].upper(), list(tails), n=1, cutoff=0.6)
        warnings.append(text + (f"; did you mean {tails[close[0]]}?" if close else ""))
    return warnings


def strip_config_settings(config_settings: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The config settings without relabel's own keys, for the inner backend."""
    if config_settings is None:
        return None
    return {k: v for k, v in config_settings.items() if not k.startswith("relabel.")}
