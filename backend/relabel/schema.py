"""The JSON schema of ``[tool.relabel]``, for validate-pyproject and editors.

:func:`generate` derives the schema from :class:`relabel.config.Settings` (each field's
key, type, default and :class:`~relabel.config.Meta`: description, range, and the schema
constraints written beside each value check), so the two cannot disagree on a key or a
type. The generated schema is shipped
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
from dataclasses import MISSING, Field
from pathlib import Path
from typing import Any

from relabel import config

# validate-pyproject files every plugin's schema under its "$id". relabel has no web home
# yet: a reserved .invalid host says so, and nothing ever tries to fetch it.
SCHEMA_ID = "https://relabel-backend.invalid/schemas/tool-relabel.schema.json"
SCHEMA_FILE = Path(__file__).parent / "_data" / "tool-relabel.schema.json"


def plat_values() -> list[str]:
    """Every value ``plat`` accepts (see :func:`relabel.config.plat_values`)."""
    return config.plat_values()


def glibc_floor_values() -> list[str]:
    """Every value ``glibc-floor`` accepts (see :func:`relabel.config.glibc_floor_values`)."""
    return config.glibc_floor_values()


def _key_schema(setting: Field[Any]) -> dict[str, Any]:
    info = config.meta(setting)
    kind = config.kind(setting)
    key = config.key_name(setting.name)
    if kind == config.BOOL:
        return {"type": "boolean"}
    if kind == config.INT:
        if info.bounds is None:
            msg = f"the integer setting {key!r} has no bounds"
            raise NotImplementedError(msg)
        low, high = info.bounds
        return {"type": "integer", "minimum": low, "maximum": high}
    if info.check is not None and info.schema is None:
        msg = f"config checks {key!r}, but the schema does not constrain it"
        raise NotImplementedError(msg)
    constraints = info.schema() if info.schema is not None else {}
    if kind == config.STR:
        return {"type": "string", **constraints}
    # pyproject.toml may give a single string for a list key: it is one item. "items"
    # applies to the list and the constraints to the single string, so one schema covers
    # both forms and a wrong item is reported with its index.
    schema: dict[str, Any] = {"type": ["array", "string"], "items": {"type": "string"}}
    if constraints:
        schema["items"].update(constraints)
        schema.update(_for_a_string(constraints))
    return schema


def _for_a_string(constraints: dict[str, Any]) -> dict[str, Any]:
    """``constraints`` so that a list passes them: a "not" that names the string type
    holds for a list already; anything else is one branch beside the list."""
    negated = constraints.get("not")
    if (
        list(constraints) == ["not"]
        and isinstance(negated, dict)
        and negated.get("type") == "string"
    ):
        return constraints
    return {"anyOf": [{"type": "array"}, constraints]}


def generate() -> dict[str, Any]:
    """The ``[tool.relabel]`` schema (JSON Schema draft-07) for the current settings."""
    properties: dict[str, Any] = {}
    for setting in config.SETTINGS:
        default = setting.default
        if isinstance(default, tuple):
            default = list(default)
        properties[config.key_name(setting.name)] = {
            "description": config.meta(setting).help,
            **_key_schema(setting),
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
