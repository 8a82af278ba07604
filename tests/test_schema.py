"""The ``[tool.relabel]`` JSON schema: the shipped file is the generated one, validate-pyproject
reads it through the plugin, and it agrees with relabel's own configuration checks.

The installed entry point is exercised end to end in ``tests/e2e/test_validate_pyproject.py``.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import pytest

from relabel import config, schema
from relabel.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python < 3.11 only
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((REPO / "example_projects").glob("*/pyproject.toml"))

# Values per key, valid and not, for the agreement test. Blanks around strings are left out
# on purpose: relabel strips them, the schema's enums and patterns do not (see schema.py).
CORPUS: dict[str, list[Any]] = {
    "build-backend": [
        "setuptools.build_meta",
        "setuptools.build_meta:__legacy__",
        "pkg.mod:obj.attr",
        "a:",
        ":b",
        "1mod",
        "a..b",
        "a-b",
        "",
        3,
        ["setuptools.build_meta"],
    ],
    "backend-path": [
        [],
        ["."],
        ["src", "tools/x"],
        "src",
        ["/abs"],
        ["../up"],
        "..",
        "a/../..",
        [1],
        {},
    ],
    "mode": [*config.MODES, "repiar", "REPAIR", "", None, 1, ["repair"]],
    "plat": [
        "auto",
        "linux",
        "manylinux2014",
        "manylinux_2_17_x86_64",
        "manylinux1_aarch64",
        "musllinux_1_1_loongarch64",
        "musllinux_1_2_riscv64",
        "manylinux_2_99",
        "manylinux_2_18",
        "autp",
        "manylinux_2_17_sparc",
        "",
        True,
        ["auto"],
    ],
    "exclude": [[], ["libz.so.1", "libfoo*"], "libz.so.1", [1], [["x"]], 3, {"a": "b"}],
    "library-dirs": [[], ["lib"], "lib", [None]],
    "ldpaths": [[], ["/usr/lib"], "/usr/lib", False],
    "include": [[], ["libplugin.so.1", "vendor/libx.so"], 7],
    "skip-scan": [[], ["*.dat"], "*.dat", [1.5]],
    "only-plat": [True, False, "true", 1, 0, None],
    "update-tags": [True, False, "no"],
    "strip": [True, False, "yes", []],
    "isa-check": [True, False, 1],
    "lib-sdir": [
        ".libs",
        "_libs",
        "libs",
        "a/b",
        "a\\b",
        ".",
        "..",
        "",
        3,
        ".li:bs",
        ".libs$ORIGIN",
        ".dist-info",
        ".data",
        ".my libs",
        ".data.libs",
    ],
    "zip-compression-level": [0, 6, 9, -1, 10, 12, True, "6", 6.0],
    "glibc-floor": [
        "off",
        "auto",
        "2.17",
        "2.28",
        "manylinux_2_28",
        "manylinux2014",
        "2.5",
        "2.99",
        "manylinux_2_17_x86_64",
        "Auto",
        "",
        2.17,
        True,
    ],
    "glibc-floor-allow": [[], ["c23-parsing"], "c23-parsing", ["c23"], "everything", [1], 3],
    "sysroot": ["/opt/aarch64", "root", "", 3, ["/"]],
    "allow-pure-python-wheel": [True, False, "false"],
}


# Values the schema cannot tell from valid ones (see schema.py); relabel refuses them.
LENIENT = {("zip-compression-level", 6.0), ("backend-path", "a/../..")}


def relabel_accepts(table: dict[str, Any]) -> bool:
    try:
        config.load(Path("/nonexistent"), environ={}, pyproject={"tool": {"relabel": table}})
    except ConfigError:
        return False
    return True


@pytest.fixture(scope="module")
def validator() -> Any:
    """validate-pyproject's validator with relabel's plugin, as the entry point loads it."""
    api = pytest.importorskip("validate_pyproject.api", reason="validate-pyproject needs 3.10")
    plugins = importlib.import_module("validate_pyproject.plugins")
    return api.Validator(plugins=[plugins.PluginWrapper("relabel", schema.tool_schema)])


def validation_error(validator: Any, document: dict[str, Any]) -> str | None:
    errors = importlib.import_module("validate_pyproject.errors")
    try:
        validator(document)
    except errors.ValidationError as exc:
        return f"{exc.name}: {exc.message}"
    return None


def test_shipped_schema_is_the_generated_one() -> None:
    shipped = schema.SCHEMA_FILE.read_text(encoding="utf-8")
    assert shipped == schema.dumps(schema.generate()), (
        "backend/relabel/_data/tool-relabel.schema.json is out of date; regenerate it with "
        "python -m relabel.schema > backend/relabel/_data/tool-relabel.schema.json"
    )


def test_plugin_returns_the_shipped_schema_with_an_id() -> None:
    loaded = schema.tool_schema("relabel")
    assert loaded == schema.generate()
    assert loaded["$id"] == schema.SCHEMA_ID
    assert loaded["additionalProperties"] is False


def test_schema_has_every_setting_and_its_default() -> None:
    properties = schema.generate()["properties"]
    assert list(properties) == list(config.KEYS)
    defaults = config.Settings()
    for key, prop in properties.items():
        default = getattr(defaults, key.replace("-", "_"))
        assert prop["default"] == (list(default) if isinstance(default, tuple) else default)
        assert prop["description"]


def test_plat_values_are_those_relabel_accepts() -> None:
    values = schema.plat_values()
    assert values[0] == "auto"
    assert {"manylinux2014", "manylinux_2_28_x86_64", "musllinux_1_2_aarch64"} <= set(values)
    # manylinux1 was never defined for aarch64; relabel refuses it, so the schema does too
    assert "manylinux1_aarch64" not in values
    assert all(relabel_accepts({"plat": value}) for value in values)


def test_entry_point_is_declared_for_validate_pyproject() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    target = project["entry-points"]["validate_pyproject.tool_schema"]["relabel"]
    module, _, name = target.partition(":")
    assert getattr(importlib.import_module(module), name) is schema.tool_schema
    # the data file is package data, shipped in the wheel
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"][
        "setuptools"
    ]["package-data"]["relabel"]
    assert "_data/*.json" in package_data


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.parent.name for p in EXAMPLES])
def test_example_projects_validate(validator: Any, path: Path) -> None:
    document = tomllib.loads(path.read_text(encoding="utf-8"))
    assert "relabel" in document["tool"]
    assert validation_error(validator, document) is None


@pytest.mark.parametrize(
    ("key", "value"), [pytest.param(k, v, id=f"{k}={v!r}") for k, vs in CORPUS.items() for v in vs]
)
def test_schema_agrees_with_relabel(validator: Any, key: str, value: Any) -> None:
    document = {"project": {"name": "x", "version": "1"}, "tool": {"relabel": {key: value}}}
    problem = validation_error(validator, document)
    if any((key, value, type(value)) == (k, v, type(v)) for k, v in LENIENT):
        assert problem is None
        assert not relabel_accepts({key: value})
        return
    assert (problem is None) == relabel_accepts({key: value}), problem
    if problem is not None:
        assert f"tool.relabel.{key}" in problem, problem


def test_corpus_covers_every_key() -> None:
    assert set(CORPUS) == set(config.KEYS)


@pytest.mark.parametrize(
    ("table", "named"),
    [
        ({"plaat": "auto"}, "plaat"),
        ({"build_backend": "setuptools.build_meta"}, "build_backend"),
        ({"strip": "yes"}, "tool.relabel.strip"),
        ({"zip-compression-level": 12}, "tool.relabel.zip-compression-level"),
        ({"exclude": ["libz.so.1", 3]}, "tool.relabel.exclude[1]"),
    ],
)
def test_wrong_key_or_type_fails_naming_it(
    validator: Any, table: dict[str, Any], named: str
) -> None:
    document = tomllib.loads((REPO / "example_projects/setuptools-bz2/pyproject.toml").read_text())
    document["tool"]["relabel"].update(table)
    problem = validation_error(validator, document)
    assert problem is not None
    assert named in problem
