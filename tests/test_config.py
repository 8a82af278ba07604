"""relabel.config: defaults < [tool.relabel] < -C relabel.KEY < RELABEL_KEY, and its errors."""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from relabel import config
from relabel.config import Settings, load
from relabel.errors import ConfigError

from .hooks_support import toml_value, write_pyproject


def project(tmp_path: Path, table: dict[str, Any] | None = None) -> Path:
    root = tmp_path / "project"
    write_pyproject(root, table)
    return root


def problems(excinfo: pytest.ExceptionInfo[ConfigError]) -> list[str]:
    return list(excinfo.value.problems)


def test_defaults(tmp_path: Path) -> None:
    settings = load(project(tmp_path), None, {})
    assert settings == Settings(
        build_backend="setuptools.build_meta:__legacy__",
        backend_path=(),
        mode="repair",
        plat="auto",
        exclude=(),
        library_dirs=(),
    )


def test_defaults_without_pyproject(tmp_path: Path) -> None:
    assert load(tmp_path, None, {}) == Settings()


def test_settings_are_frozen(tmp_path: Path) -> None:
    settings = load(project(tmp_path), None, {})
    with pytest.raises(AttributeError):
        settings.mode = "skip"  # type: ignore[misc]


def test_every_key_is_a_field() -> None:
    assert config.KEYS == (
        "build-backend",
        "backend-path",
        "mode",
        "plat",
        "exclude",
        "library-dirs",
        "ldpaths",
        "include",
        "skip-scan",
        "only-plat",
        "update-tags",
        "strip",
        "isa-check",
        "lib-sdir",
        "zip-compression-level",
        "glibc-floor",
        "glibc-floor-allow",
        "sysroot",
        "allow-pure-python-wheel",
    )
    assert [f.name for f in fields(Settings)] == [k.replace("-", "_") for k in config.KEYS]


# ---------------------------------------------------------------------------------------
# Precedence, key by key. For each key: (pyproject value, its Settings value),
# (-C value, its Settings value), (environment value, its Settings value).

PROJECT = Path("/nowhere")  # replaced by the real project directory in the test

PRECEDENCE: dict[str, tuple[tuple[Any, Any], tuple[Any, Any], tuple[str, Any]]] = {
    "build-backend": (
        ("hatchling.build", "hatchling.build"),
        ("mesonpy", "mesonpy"),
        ("scikit_build_core.build", "scikit_build_core.build"),
    ),
    "backend-path": (
        (["tools/a", "tools/b"], ("tools/a", "tools/b")),
        (["from-c"], ("from-c",)),
        (os.pathsep.join(["env-1", "env-2"]), ("env-1", "env-2")),
    ),
    "mode": (("check", "check"), ("warn", "warn"), ("skip", "skip")),
    "plat": (
        ("manylinux2014", "manylinux2014"),
        ("manylinux_2_28_x86_64", "manylinux_2_28_x86_64"),
        ("musllinux_1_2", "musllinux_1_2"),
    ),
    "exclude": (
        (["libcuda.so.1", "libGL.so.*"], ("libcuda.so.1", "libGL.so.*")),
        ("libfoo.so.1,libbar.so.2", ("libfoo.so.1", "libbar.so.2")),
        ("libenv.so.1", ("libenv.so.1",)),
    ),
    "library-dirs": (
        (["vendor/lib", "/opt/lib"], (PROJECT / "vendor/lib", "/opt/lib")),
        (["/from/c"], ("/from/c",)),
        (os.pathsep.join(["/env/a", "/env/b"]), ("/env/a", "/env/b")),
    ),
    "ldpaths": (
        (["sysroot/lib"], (PROJECT / "sysroot/lib",)),
        ("/c/lib", ("/c/lib",)),
        (os.pathsep.join(["/e/1", "/e/2"]), ("/e/1", "/e/2")),
    ),
    "include": (
        (["libplugin.so.1", "vendor/libx.so"], ("libplugin.so.1", PROJECT / "vendor/libx.so")),
        ("liba.so.1,libb.so.2", ("liba.so.1", "libb.so.2")),
        ("/abs/libenv.so", ("/abs/libenv.so",)),
    ),
    "skip-scan": (
        (["pkg/firmware/*"], ("pkg/firmware/*",)),
        ("a/*,b/*", ("a/*", "b/*")),
        ("c/*", ("c/*",)),
    ),
    "only-plat": ((True, True), ("false", False), ("yes", True)),
    "update-tags": ((False, False), ("on", True), ("0", False)),
    "strip": ((True, True), ("no", False), ("1", True)),
    "isa-check": ((False, False), ("true", True), ("off", False)),
    "lib-sdir": ((".vendored", ".vendored"), (".c", ".c"), ("_libs", "_libs")),
    "zip-compression-level": ((9, 9), ("0", 0), (" 3 ", 3)),
    "sysroot": (("aarch64-root", PROJECT / "aarch64-root"), ("/c/root", "/c/root"), ("/e", "/e")),
    "allow-pure-python-wheel": ((False, False), ("no", False), ("0", False)),
}
SOURCES = ["pyproject", "-C", "env"]


def _expected(value: Any, root: Path) -> Any:
    if isinstance(value, Path):
        return str(root / value.relative_to(PROJECT))
    if isinstance(value, tuple):
        return tuple(
            str(root / v.relative_to(PROJECT)) if isinstance(v, Path) else v for v in value
        )
    return value


@pytest.mark.parametrize(
    ("where", "key", "raw"),
    [
        ("pyproject", "strip", "true"),  # TOML has real booleans: a string is a mistake
        ("pyproject", "zip-compression-level", "6"),
        ("pyproject", "zip-compression-level", 10),
        ("pyproject", "zip-compression-level", True),
        ("env", "only-plat", "maybe"),
        ("env", "zip-compression-level", "-1"),
        ("env", "lib-sdir", "a/b"),
        ("pyproject", "lib-sdir", ""),
        ("env", "lib-sdir", ".li:bs"),
        ("env", "lib-sdir", ".libs$ORIGIN"),
        ("pyproject", "lib-sdir", ".libs${LIB}"),
        ("pyproject", "lib-sdir", ".dist-info"),
        ("env", "lib-sdir", ".data"),
        ("env", "lib-sdir", ".my libs"),
        ("env", "lib-sdir", ".."),
    ],
)
def test_bad_scalar_values(tmp_path: Path, where: str, key: str, raw: Any) -> None:
    if where == "pyproject":
        root, environ, label = project(tmp_path, {key: raw}), {}, f"tool.relabel.{key}"
    else:
        env = "RELABEL_" + key.upper().replace("-", "_")
        root, environ, label = project(tmp_path), {env: raw}, env
    with pytest.raises(ConfigError) as excinfo:
        load(root, None, environ)
    [problem] = problems(excinfo)
    assert problem.startswith(f"{label}: ")


@pytest.mark.parametrize("key", list(PRECEDENCE))
@pytest.mark.parametrize(
    "given",
    [
        ("pyproject",),
        ("-C",),
        ("env",),
        ("pyproject", "-C"),
        ("pyproject", "env"),
        ("-C", "env"),
        ("pyproject", "-C", "env"),
    ],
    ids="+".join,
)
def test_precedence(tmp_path: Path, key: str, given: tuple[str, ...]) -> None:
    (py_value, py_expected), (c_value, c_expected), (env_value, env_expected) = PRECEDENCE[key]
    root = project(tmp_path, {key: py_value} if "pyproject" in given else {})
    config_settings = {f"relabel.{key}": c_value} if "-C" in given else None
    env_name = "RELABEL_" + key.upper().replace("-", "_")
    environ = {env_name: env_value} if "env" in given else {}
    settings = load(root, config_settings, environ)
    winner = given[-1]
    expected = {"pyproject": py_expected, "-C": c_expected, "env": env_expected}[winner]
    assert getattr(settings, key.replace("-", "_")) == _expected(expected, root)
    # Every other key keeps its default.
    for other in config.KEYS:
        if other != key:
            name = other.replace("-", "_")
            assert getattr(settings, name) == getattr(Settings(), name)


def test_all_keys_from_pyproject_at_once(tmp_path: Path) -> None:
    root = project(
        tmp_path,
        {
            "build-backend": "mesonpy",
            "backend-path": ["."],
            "mode": "warn",
            "plat": "manylinux_2_28",
            "exclude": ["libcuda.so.1"],
            "library-dirs": ["build/lib"],
        },
    )
    assert load(root, None, {}) == Settings(
        build_backend="mesonpy",
        backend_path=(".",),
        mode="warn",
        plat="manylinux_2_28",
        exclude=("libcuda.so.1",),
        library_dirs=(str(root / "build/lib"),),
    )


def test_environment_is_read_from_os_environ_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELABEL_MODE", "skip")
    assert load(project(tmp_path, {"mode": "check"})).mode == "skip"


def test_other_environment_variables_are_ignored(tmp_path: Path) -> None:
    environ = {"RELABEL_PATCHELF": "/usr/bin/patchelf", "MODE": "skip", "relabel_mode": "skip"}
    assert load(project(tmp_path), None, environ) == Settings()


def test_other_config_settings_are_ignored(tmp_path: Path) -> None:
    settings = {"--build-option": ["--x"], "mode": "skip", "relabel": "skip", "builddir": "b"}
    assert load(project(tmp_path), settings, {}) == Settings()


# ---------------------------------------------------------------------------------------
# Value forms


def test_repeated_config_settings_make_a_list(tmp_path: Path) -> None:
    """pip passes ``-C relabel.exclude=a -C relabel.exclude=b`` as a list."""
    settings = load(project(tmp_path), {"relabel.exclude": ["liba.so.1", "libb.so.2"]}, {})
    assert settings.exclude == ("liba.so.1", "libb.so.2")


def test_repeated_config_settings_are_split_like_single_ones(tmp_path: Path) -> None:
    cs = {
        "relabel.exclude": ["liba.so.1,libb.so.2", "libc.so.3"],
        "relabel.library-dirs": [os.pathsep.join(["/x", "/y"]), "/z"],
    }
    settings = load(project(tmp_path), cs, {})
    assert settings.exclude == ("liba.so.1", "libb.so.2", "libc.so.3")
    assert settings.library_dirs == ("/x", "/y", "/z")


def test_list_items_are_stripped_and_empty_ones_dropped(tmp_path: Path) -> None:
    settings = load(
        project(tmp_path),
        {"relabel.exclude": " liba.so.1 ,, libb.so.2 ,"},
        {"RELABEL_LIBRARY_DIRS": os.pathsep + "/x" + os.pathsep},
    )
    assert settings.exclude == ("liba.so.1", "libb.so.2")
    assert settings.library_dirs == ("/x",)


def test_empty_value_clears_a_list_from_pyproject(tmp_path: Path) -> None:
    root = project(tmp_path, {"exclude": ["libcuda.so.1"]})
    assert load(root, {"relabel.exclude": ""}, {}).exclude == ()
    assert load(root, None, {"RELABEL_EXCLUDE": ""}).exclude == ()


def test_a_pyproject_string_is_one_list_item(tmp_path: Path) -> None:
    settings = load(project(tmp_path, {"exclude": "libfoo.so.1,libbar.so.2"}), None, {})
    assert settings.exclude == ("libfoo.so.1,libbar.so.2",)


def test_scalar_values_are_stripped(tmp_path: Path) -> None:
    settings = load(project(tmp_path), {"relabel.mode": " warn "}, {"RELABEL_PLAT": "auto\n"})
    assert settings.mode == "warn"
    assert settings.plat == "auto"


def test_library_dirs_from_pyproject_are_relative_to_the_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project(tmp_path, {"library-dirs": ["vendor/lib", "../shared/lib", "/opt/x/lib"]})
    monkeypatch.chdir(tmp_path)
    settings = load(root, None, {})
    assert settings.library_dirs == (
        str(root / "vendor/lib"),
        str(root / "../shared/lib"),
        "/opt/x/lib",
    )


def test_library_dirs_from_the_command_line_are_left_as_given(tmp_path: Path) -> None:
    root = project(tmp_path, {"library-dirs": ["vendor/lib"]})
    assert load(root, {"relabel.library-dirs": "build/lib"}, {}).library_dirs == ("build/lib",)
    assert load(root, None, {"RELABEL_LIBRARY_DIRS": "env/lib"}).library_dirs == ("env/lib",)


def test_same_library_dirs_from_pyproject_and_command_line(tmp_path: Path) -> None:
    root = project(tmp_path, {"library-dirs": ["lib"]})
    assert load(root, {"relabel.library-dirs": ["lib"]}, {}).library_dirs == ("lib",)


@pytest.mark.parametrize(
    "plat",
    [
        "auto",
        "manylinux1",
        "manylinux2010",
        "manylinux2014",
        "manylinux_2_17",
        "manylinux_2_28",
        "musllinux_1_1",
        "musllinux_1_2",
        "linux",
        "manylinux1_x86_64",
        "manylinux2014_aarch64",
        "manylinux_2_17_x86_64",
        "manylinux_2_28_ppc64le",
        "manylinux_2_17_ppc64",
        "musllinux_1_2_x86_64",
        "linux_x86_64",
    ],
)
def test_known_policies_and_aliases_are_accepted(tmp_path: Path, plat: str) -> None:
    assert load(project(tmp_path, {"plat": plat}), None, {}).plat == plat
    assert load(project(tmp_path), {"relabel.plat": plat}, {}).plat == plat
    assert load(project(tmp_path), None, {"RELABEL_PLAT": plat}).plat == plat


@pytest.mark.parametrize("mode", config.MODES)
def test_every_mode_is_accepted(tmp_path: Path, mode: str) -> None:
    assert load(project(tmp_path, {"mode": mode}), None, {}).mode == mode


@pytest.mark.parametrize(
    "reference", ["setuptools.build_meta", "setuptools.build_meta:__legacy__", "pkg:a.b", "mesonpy"]
)
def test_backend_references(tmp_path: Path, reference: str) -> None:
    assert (
        load(project(tmp_path, {"build-backend": reference}), None, {}).build_backend == reference
    )


# ---------------------------------------------------------------------------------------
# Problems: every one, with its key path, in one ConfigError


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    root = project(
        tmp_path,
        {"plaat": "manylinux2014", "mode": 3, "exclude": ["libfoo.so", 7], "library-dirs": True},
    )
    with pytest.raises(ConfigError) as excinfo:
        load(
            root,
            {"relabel.moed": "check", "relabel.plat": "manylinux2041"},
            {"RELABEL_MODE": "repiar", "RELABEL_BUILD_BACKEND": "not a backend"},
        )
    found = problems(excinfo)
    assert len(found) == 8, found
    expected_starts = [
        "tool.relabel.plaat: unknown key; did you mean 'plat'?",
        "tool.relabel.mode: expected a string, got int 3",
        "tool.relabel.exclude: expected a list of strings",
        "tool.relabel.library-dirs: expected a list of strings, got bool True",
        "-C relabel.moed: unknown key; did you mean 'mode'?",
        "-C relabel.plat: unknown",
        "RELABEL_BUILD_BACKEND: 'not a backend' is not a backend reference",
        "RELABEL_MODE: unknown mode 'repiar'; did you mean 'repair'?",
    ]
    for problem, start in zip(sorted(found, key=_source_order), expected_starts):
        assert problem.startswith(start), (problem, start)
    text = str(excinfo.value)
    assert text.startswith("invalid relabel configuration (8 problems):")
    assert all(f"  - {p}" in text for p in found)


def _source_order(problem: str) -> tuple[int, str]:
    order = (
        "tool.relabel.plaat",
        "tool.relabel.mode",
        "tool.relabel.exclude",
        "tool.relabel.library-dirs",
        "-C relabel.moed",
        "-C relabel.plat",
        "RELABEL_BUILD_BACKEND",
        "RELABEL_MODE",
    )
    return next(i for i, o in enumerate(order) if problem.startswith(o + ":")), problem


def test_a_single_problem_is_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load(project(tmp_path, {"mode": "repiar"}), None, {})
    assert str(excinfo.value) == (
        "invalid relabel configuration: tool.relabel.mode: unknown mode 'repiar';"
        " did you mean 'repair'? (expected one of: repair, check, warn, skip)"
    )


@pytest.mark.parametrize(
    ("key", "suggestion"),
    [
        ("plaat", "plat"),
        ("moed", "mode"),
        ("excludes", "exclude"),
        ("library_dirs", "library-dirs"),
        ("library-dir", "library-dirs"),
        ("build_backend", "build-backend"),
        ("backend-paths", "backend-path"),
        ("MODE", "mode"),
    ],
)
def test_unknown_keys_get_a_suggestion_from_every_source(
    tmp_path: Path, key: str, suggestion: str
) -> None:
    root = project(tmp_path, {key: "x"})
    with pytest.raises(ConfigError) as excinfo:
        load(root, {f"relabel.{key}": "x"}, {})
    assert problems(excinfo) == [
        f"tool.relabel.{key}: unknown key; did you mean {suggestion!r}?",
        f"-C relabel.{key}: unknown key; did you mean {suggestion!r}?",
    ]


def test_unknown_key_without_a_near_miss(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load(project(tmp_path, {"colour": "blue"}), None, {})
    (problem,) = problems(excinfo)
    assert problem.startswith("tool.relabel.colour: unknown key")
    assert "did you mean" not in problem


@pytest.mark.parametrize(
    ("plat", "facts"),
    [
        ("manylinx2014", ["'manylinx2014'", "did you mean", "'manylinux2014'"]),
        ("manylinux_2_17_x86_46", ["did you mean", "manylinux_2_17_x86_64"]),
        ("manylinux_2_18", ["'manylinux_2_18'", "'manylinux_2_17'", "'manylinux_2_24'"]),
        ("manylinux_2_18_x86_64", ["'manylinux_2_17_x86_64'", "'manylinux_2_24_x86_64'"]),
        ("atuo", ["did you mean 'auto'"]),
        ("windows", ["'windows'", "auto"]),
        ("", ["''"]),
    ],
)
def test_unknown_policies(tmp_path: Path, plat: str, facts: list[str]) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load(project(tmp_path), None, {"RELABEL_PLAT": plat})
    (problem,) = problems(excinfo)
    assert problem.startswith("RELABEL_PLAT: ")
    for fact in facts:
        assert fact in problem


def test_policy_on_an_architecture_it_does_not_exist_on(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load(project(tmp_path, {"plat": "manylinux1_aarch64"}), None, {})
    (problem,) = problems(excinfo)
    assert problem.startswith("tool.relabel.plat: ")
    assert "manylinux1 does not exist on aarch64" in problem
    assert "x86_64, i686" in problem


@pytest.mark.parametrize("value", [["repair"], {"a": "b"}, 1.5, True])
def test_scalar_keys_need_a_string(tmp_path: Path, value: Any) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load(project(tmp_path, {"mode": value}), None, {})
    (problem,) = problems(excinfo)
    assert problem.startswith(f"tool.relabel.mode: expected a string, got {type(value).__name__}")


def test_a_repeated_scalar_config_setting_is_a_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load(project(tmp_path), {"relabel.mode": ["check", "skip"]}, {})
    (problem,) = problems(excinfo)
    assert problem.startswith("-C relabel.mode: expected a string, got list")


@pytest.mark.parametrize(
    "reference", ["", "pkg:", ":obj", "pkg.:obj", "my-backend", "pkg:obj:more", "pkg obj"]
)
def test_invalid_backend_references(tmp_path: Path, reference: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load(project(tmp_path), {"relabel.build-backend": reference}, {})
    (problem,) = problems(excinfo)
    assert problem.startswith("-C relabel.build-backend: ")
    assert "'module' or 'module:object'" in problem


@pytest.mark.parametrize("entry", ["/opt/backend", "tools/../../outside", ".."])
def test_backend_path_must_stay_inside_the_project(tmp_path: Path, entry: str) -> None:
    root = project(tmp_path, {"backend-path": ["ok", entry]})
    with pytest.raises(ConfigError) as excinfo:
        load(root, {"relabel.backend-path": [entry]}, {"RELABEL_BACKEND_PATH": entry})
    found = problems(excinfo)
    assert [p.split(":")[0] for p in found] == [
        "tool.relabel.backend-path",
        "-C relabel.backend-path",
        "RELABEL_BACKEND_PATH",
    ]
    for problem in found:
        assert repr(entry) in problem
        assert "project directory" in problem


def test_every_bad_backend_path_entry_is_named(tmp_path: Path) -> None:
    root = project(tmp_path, {"backend-path": ["/a", "ok", "/b"]})
    with pytest.raises(ConfigError) as excinfo:
        load(root, None, {})
    found = problems(excinfo)
    assert len(found) == 2
    assert "'/a'" in found[0]
    assert "'/b'" in found[1]


def test_backend_path_inside_the_project(tmp_path: Path) -> None:
    root = project(tmp_path, {"backend-path": [".", "tools/../backend", "./b"]})
    assert load(root, None, {}).backend_path == (".", "tools/../backend", "./b")


def test_tool_relabel_must_be_a_table(tmp_path: Path) -> None:
    root = tmp_path / "project"
    root.mkdir()
    (root / "pyproject.toml").write_text('[tool]\nrelabel = "repair"\n')
    with pytest.raises(ConfigError) as excinfo:
        load(root, None, {})
    assert problems(excinfo) == ["tool.relabel: expected a table"]


def test_broken_toml_names_the_file(tmp_path: Path) -> None:
    root = tmp_path / "project"
    root.mkdir()
    (root / "pyproject.toml").write_text('[tool.relabel]\nmode = "check\n')
    with pytest.raises(ConfigError) as excinfo:
        load(root, None, {})
    (problem,) = problems(excinfo)
    assert problem.startswith(f"{root / 'pyproject.toml'}: not valid TOML")
    assert "line 2" in problem


def test_unreadable_pyproject_names_the_file(tmp_path: Path) -> None:
    root = tmp_path / "project"
    (root / "pyproject.toml").mkdir(parents=True)
    with pytest.raises(ConfigError) as excinfo:
        load(root, None, {})
    (problem,) = problems(excinfo)
    assert problem.startswith(f"{root / 'pyproject.toml'}: cannot be read")


def test_pyproject_is_read_once_and_can_be_given(tmp_path: Path) -> None:
    data = {"tool": {"relabel": {"mode": "skip"}}}
    assert load(tmp_path / "missing", None, {}, pyproject=data).mode == "skip"


def test_strip_config_settings() -> None:
    given = {"relabel.mode": "skip", "relabel.exclude": ["a"], "builddir": "b", "relabel": "c"}
    assert config.strip_config_settings(given) == {"builddir": "b", "relabel": "c"}
    assert given["relabel.mode"] == "skip"
    assert config.strip_config_settings(None) is None
    assert config.strip_config_settings({}) == {}


def test_toml_writer_round_trips(tmp_path: Path) -> None:
    """The tests' own pyproject writer must write what they mean."""
    table = {"a": 'x "quoted" \\ back', "b": ["1", "2"], "c": True, "d": 3}
    root = project(tmp_path, table)
    assert config.read_pyproject(root)["tool"]["relabel"] == table
    assert toml_value([]) == "[]"


# ---------------------------------------------------------------------------------------
# Values from the environment and config settings are strings: no type name in messages


@pytest.mark.parametrize(
    ("env", "value", "expected"),
    [
        ("RELABEL_ZIP_COMPRESSION_LEVEL", "12", "expected a whole number from 0 to 9, got '12'"),
        ("RELABEL_STRIP", "maybe", "expected true or false, got 'maybe'"),
    ],
)
def test_scalar_problems_show_the_value_without_a_type_name(
    tmp_path: Path, env: str, value: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load(project(tmp_path), None, {env: value})
    assert problems(excinfo) == [f"{env}: {expected}"]


# ---------------------------------------------------------------------------------------
# AUDITWHEEL_PLAT: the plat default, as for `auditwheel repair --plat`


AUDITWHEEL = {"AUDITWHEEL_PLAT": "manylinux2014_x86_64"}


def test_auditwheel_plat_is_the_default(tmp_path: Path) -> None:
    assert load(project(tmp_path), None, AUDITWHEEL).plat == "manylinux2014_x86_64"


@pytest.mark.parametrize(
    ("table", "config_settings", "environ", "expected"),
    [
        ({"plat": "manylinux_2_28"}, None, {}, "manylinux_2_28"),
        (None, {"relabel.plat": "auto"}, {}, "auto"),
        ({"plat": "manylinux_2_28"}, {"relabel.plat": "manylinux_2_31"}, {}, "manylinux_2_31"),
        ({"plat": "manylinux_2_28"}, None, {"RELABEL_PLAT": "auto"}, "auto"),
    ],
)
def test_auditwheel_plat_is_below_every_relabel_source(
    tmp_path: Path,
    table: dict[str, Any] | None,
    config_settings: dict[str, str] | None,
    environ: dict[str, str],
    expected: str,
) -> None:
    root = project(tmp_path, table)
    assert load(root, config_settings, {**AUDITWHEEL, **environ}).plat == expected


@pytest.mark.parametrize("value", ["", "  "])
def test_empty_auditwheel_plat_is_unset(tmp_path: Path, value: str) -> None:
    assert load(project(tmp_path), None, {"AUDITWHEEL_PLAT": value}).plat == "auto"


def test_unknown_auditwheel_plat_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load(project(tmp_path), None, {"AUDITWHEEL_PLAT": "manylinux2041_x86_64"})
    (problem,) = problems(excinfo)
    assert problem.startswith("AUDITWHEEL_PLAT: ")
    assert "manylinux2041_x86_64" in problem


def test_unknown_auditwheel_plat_does_not_matter_when_overridden(tmp_path: Path) -> None:
    root = project(tmp_path, {"plat": "auto"})
    assert load(root, None, {"AUDITWHEEL_PLAT": "nonsense"}).plat == "auto"


# ---------------------------------------------------------------------------------------
# RELABEL_* variables that are no setting


def test_unknown_relabel_variables_are_named_with_a_suggestion() -> None:
    environ = {
        "RELABEL_PLAAT": "manylinux2014",
        "RELABEL_LIBRARY_DIR": "/opt/lib",
        "RELABEL_XYZZY": "1",
        "RELABEL_mode": "check",
        "RELABEL_PLAT": "auto",  # a setting
        "RELABEL_PATCHELF": "/usr/bin/patchelf",  # read by relabel, not a setting
        "AUDITWHEEL_PLAT": "manylinux2014_x86_64",
        "PLAAT": "x",
    }
    assert config.unknown_environment(environ) == [
        "environment variable RELABEL_LIBRARY_DIR is not a relabel setting and is ignored;"
        " did you mean RELABEL_LIBRARY_DIRS?",
        "environment variable RELABEL_PLAAT is not a relabel setting and is ignored;"
        " did you mean RELABEL_PLAT?",
        "environment variable RELABEL_XYZZY is not a relabel setting and is ignored",
        "environment variable RELABEL_mode is not a relabel setting and is ignored;"
        " did you mean RELABEL_MODE?",
    ]


def test_every_setting_has_a_known_variable() -> None:
    environ = {config.env_name_of(key): "x" for key in config.KEYS}
    assert config.unknown_environment(environ) == []
