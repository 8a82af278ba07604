"""The JSON schema of ``[tool.relabel]``, for validate-pyproject and editors.

:func:`generate` derives the schema from :mod:`relabel.config` (the keys and types of
``Settings``, the list, boolean and integer keys, the modes, the policy names, the value
checks), so the two cannot disagree on a key or a type. The generated schema is shipped
as ``_data/tool-relabel.schema.json``; a test checks that the file equals :func:`generate`
(regenerate it with ``python -m relabel.schema > backend/relabel/_data/tool-relabel.schema.json``).

:func:`tool_schema` is validate-pyproject's plugin hook (entry point group
``validate_pyproject.tool_schema``, name ``relabel``): it only reads the shipped file, so
validating a pyproject.toml does not load the policy tables.

A few value rules need more than a schema can say: a ``backend-path`` entry that leaves
the project through ``a/../..``, and ``6.0`` for an integer (JSON has one number type, so
JSON Schema counts 6.0 as an integer). There the schema is more lenient than relabel, which
still checks everything when it builds. Blanks around a string value, which relabel strips,
are the one place where the schema is stricter.
"""

from __future__ import annotations

import json
import sys
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

from relabel import config, floor, policy

# validate-pyproject files every plugin's schema under its "$id". relabel has no web home
# yet: a reserved .invalid host says so, and nothing ever tries to fetch it.
SCHEMA_ID = "https://relabel-backend.invalid/schemas/tool-relabel.schema.json"
SCHEMA_FILE = Path(__file__).parent / "_data" / "tool-relabel.schema.json"

# What each key means, as editors show it. A key of config.Settings missing here is a
# KeyError in generate(), so a new setting cannot ship without its description.
_DESCRIPTIONS = {
    "build-backend": "The real build backend, 'module' or 'module:object'.",
    "backend-path": (
        "Directories, relative to the project, to import an in-tree backend from "
        "(as backend-path in [build-system])."
    ),
    "mode": (
        "repair: graft libraries and retag. check: fail the build unless the wheel already "
        "meets the target. warn: only report. skip: do nothing."
    ),
    "plat": (
        "'auto' for the best policy the wheel can reach, or a policy name such as "
        "'manylinux_2_28', 'manylinux2014' or a full tag such as 'manylinux_2_17_x86_64'."
    ),
    "exclude": "Sonames or globs (matched against sonames and resolved paths) never grafted.",
    "library-dirs": (
        "Extra directories to find libraries in, searched right after LD_LIBRARY_PATH "
        "(relative to the project)."
    ),
    "ldpaths": "Directories that replace the system ones (ld.so.conf and the defaults).",
    "include": (
        "Libraries the extensions load with dlopen, by soname or path; grafted under "
        "their own soname."
    ),
    "skip-scan": "Globs of wheel members never treated as ELF files.",
    "only-plat": "Tag the wheel with plat only, even when it meets a more compatible policy.",
    "update-tags": "Rename the wheel and rewrite WHEEL's Tag: lines to the new platform tags.",
    "strip": "Strip symbols from the grafted libraries and the patched files.",
    "isa-check": "Check the x86-64 ISA level (x86-64-v2/v3/v4 GNU property notes).",
    "lib-sdir": "Suffix of the directory that holds the grafted libraries (<dist><lib-sdir>/).",
    "zip-compression-level": "Deflate level for the members relabel writes.",
    "glibc-floor": (
        "Lower the glibc symbol versions the wheel's files need: off, auto (as far as the safe"
        " rules allow), or a glibc release or policy that is then required."
    ),
    "glibc-floor-allow": "Opt-in symbol classes whose behaviour differs (e.g. c23-parsing).",
}

# A Python dotted name, optionally ':' and a dotted attribute path (config._check_backend).
# Written so that ECMA-262 (editors) and Python's re (validate-pyproject) both read it.
_IDENTIFIER = r"[^\W\d]\w*"
_DOTTED = rf"{_IDENTIFIER}(\.{_IDENTIFIER})*"
_BACKEND_PATTERN = rf"^{_DOTTED}(:{_DOTTED})?$"
# A directory name suffix: no slash, backslash, ':', '$' or whitespace, not '.' or '..',
# not ending in .dist-info or .data (config.lib_sdir_problem).
_LIB_SDIR_PATTERN = r"^(?!\.\.?$)(?!.*\.(dist-info|data)$)[^/\\:\$\s\x00-\x1f\x7f]+$"
# Absolute, or starting with '..' (config._check_backend_path; a/../.. is left to relabel).
_OUTSIDE_PATTERN = r"^(/|\.\.(/|$))"


def plat_values() -> list[str]:
    """Every value ``plat`` accepts: 'auto', each policy name, and each full tag that
    exists on its architecture, as relabel's own check decides."""
    names = policy.known_names()
    candidates = [
        "auto",
        *names,
        *(f"{name}_{arch}" for name in names for arch in policy.ARCHITECTURES),
    ]
    return [value for value in candidates if config._check_plat(value) is None]


def glibc_floor_values() -> list[str]:
    """Every value ``glibc-floor`` accepts, as relabel's own check decides."""
    releases = [f"{major}.{minor}" for major, minor in floor.releases()]
    candidates = [
        floor.OFF,
        floor.AUTO,
        *releases,
        *(f"manylinux_{r.replace('.', '_')}" for r in releases),
        "manylinux1",
        "manylinux2010",
        "manylinux2014",
    ]
    return [value for value in candidates if config._check_glibc_floor(value) is None]


def _string_schema(key: str) -> dict[str, Any]:
    if key == "glibc-floor":
        return {"type": "string", "enum": glibc_floor_values()}
    if key == "mode":
        return {"type": "string", "enum": list(config.MODES)}
    if key == "plat":
        return {"type": "string", "enum": plat_values()}
    if key == "build-backend":
        return {"type": "string", "pattern": _BACKEND_PATTERN}
    if key == "lib-sdir":
        return {"type": "string", "pattern": _LIB_SDIR_PATTERN}
    if key in config._CHECKS:
        msg = f"config checks {key!r}, but the schema does not constrain it"
        raise NotImplementedError(msg)
    return {"type": "string"}


def _list_schema(key: str) -> dict[str, Any]:
    # pyproject.toml may give a single string for a list key: it is one item. "items"
    # applies to the list and "not"/"pattern" to strings, so one schema covers both forms
    # and a wrong item is reported with its index.
    schema: dict[str, Any] = {"type": ["array", "string"], "items": {"type": "string"}}
    if key == "backend-path":
        # "not" of a rule that holds vacuously for a list would refuse every list: the
        # rule names the string type itself.
        outside = {"not": {"type": "string", "pattern": _OUTSIDE_PATTERN}}
        schema["items"].update(outside)
        schema.update(outside)
    elif key == "glibc-floor-allow":
        groups = {"enum": floor.opt_in_groups()}
        schema["items"].update(groups)
        schema["anyOf"] = [{"type": "array"}, groups]
    elif key in config._ITEM_CHECKS:
        msg = f"config checks the items of {key!r}, but the schema does not constrain them"
        raise NotImplementedError(msg)
    return schema


def _key_schema(key: str, annotation: object) -> dict[str, Any]:
    if annotation == "bool" and key in config._BOOL_KEYS:
        return {"type": "boolean"}
    if annotation == "int" and key in config._INT_KEYS:
        low, high = config._INT_KEYS[key]
        return {"type": "integer", "minimum": low, "maximum": high}
    if annotation == "tuple[str, ...]" and key in config._LIST_KEYS:
        return _list_schema(key)
    if annotation == "str":
        return _string_schema(key)
    msg = f"no schema for setting {key!r} of type {annotation!r}"
    raise NotImplementedError(msg)


def generate() -> dict[str, Any]:
    """The ``[tool.relabel]`` schema (JSON Schema draft-07) for the current settings."""
    properties: dict[str, Any] = {}
    for field in fields(config.Settings):
        key = config.key_name(field.name)
        default = field.default
        if isinstance(default, tuple):
            default = list(default)
        properties[key] = {
            "description": _DESCRIPTIONS[key],
            **_key_schema(key, field.type),
            **({} if default is MISSING else {"default": default}),
        }
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": SCHEMA_ID,
        "title": "[tool.relabel]",
        "description": (
            "relabel-backend: build through the real backend, then audit and repair the "
            "wheel for manylinux/musllinux. Every key can also be given as a config setting "
            "(-C relabel.KEY=VALUE) or an environment variable (RELABEL_KEY)."
        ),
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }


def dumps(schema: dict[str, Any]) -> str:
    """The shipped file's exact text."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def tool_schema(tool: str = "relabel") -> dict[str, Any]:
    """The JSON schema of [tool.$tool], the settings of relabel-backend."""
    del tool  # validate-pyproject passes the entry point's name
    schema: dict[str, Any] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return schema


def _main() -> int:
    sys.stdout.write(dumps(generate()))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
