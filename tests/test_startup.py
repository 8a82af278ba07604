"""What a run loads: start-up is most of a small run, so each path imports only what it uses.

Each check starts a fresh interpreter with ``-X importtime``, which lists every module the
process imports, and reads that list: the real command, not a model of it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from relabel import cli, elf, floor, floor_setting, patchelf, verneed

from .conftest import EXT_SUFFIX, Fixtures, make_wheel

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python < 3.11 only
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]

#: Never needed to audit a small glibc wheel, nor to start the build backend.
HEAVY = (
    "relabel.floor",  # the glibc floor's decisions and symbol tables
    "relabel.verneed",  # the floor's ELF editor
    "relabel.sbom",  # written by a repair that grafts
    "relabel.musl",  # musl wheels only
    "relabel.plan",  # repairs and failed checks only
    "relabel.archive.writer",
    "relabel.archive.deflate",
    "relabel.schema",
    "concurrent.futures",
    "difflib",  # "did you mean" for a problem to report
    "tomllib",  # pyproject.toml, read by the backend only
    "tomli",
    "zipfile",  # relabel reads and writes zip files itself (relabel.archive)
)


def imported(*args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run ``python -X importtime ARGS``; the process and every module it imported."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITWHEEL_")}
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    modules = {
        line.rsplit("|", 1)[1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:") and "imported package" not in line
    }
    return proc, modules


def test_the_command_line_imports_no_heavy_module() -> None:
    proc, modules = imported("-c", "import relabel.cli")
    assert proc.returncode == 0, proc.stderr
    assert {"relabel.cli", "relabel.config", "relabel.repair", "argparse"} <= modules
    assert sorted(modules.intersection(HEAVY)) == []


#: Needed by the hooks that build, not by those that only ask the inner backend (a frontend
#: runs each hook in a fresh process).
BUILDING = (
    "relabel.pipeline",
    "relabel.repair",
    "relabel.audit",
    "relabel.policy",
    "relabel.elf",
    "relabel.archive",
    "packaging.tags",
)


def test_the_build_backend_imports_no_heavy_module() -> None:
    proc, modules = imported("-c", "import relabel.build_meta")
    assert proc.returncode == 0, proc.stderr
    assert {"relabel.build_meta", "relabel.config", "relabel.inner"} <= modules
    assert sorted(modules.intersection(HEAVY + BUILDING)) == []


def test_show_of_a_small_wheel_loads_neither_floor_nor_writer(
    fixtures: Fixtures, tmp_path: Path
) -> None:
    wheel = make_wheel(tmp_path, {f"_foo{EXT_SUFFIX}": fixtures.ext_foo})
    proc, modules = imported("-m", "relabel", "show", str(wheel))
    assert proc.returncode == 1, proc.stderr
    assert "after `relabel repair`:      manylinux_2_5_x86_64" in proc.stdout
    assert f"libfoo.so.1 => {fixtures.libfoo}" in proc.stdout
    assert {"relabel.elf", "relabel.resolve", "relabel.audit", "relabel.report"} <= modules
    assert sorted(modules.intersection(HEAVY)) == []
    # what only a repair runs: patchelf, the making of new members, and the comparison of a
    # wheel repaired in place
    assert sorted(modules.intersection({"relabel.patchelf", "relabel.produce", "filecmp"})) == []
    # Android wheels only
    assert "relabel.android" not in modules


def test_show_loads_the_floor_when_lowering_could_reach_something(
    fixtures: Fixtures, tmp_path: Path
) -> None:
    """The other side of the shortcut: a file that needs glibc 2.34 makes the floor say
    what ``auto`` would reach, so the floor is loaded."""
    wheel = make_wheel(tmp_path, {f"_newsym{EXT_SUFFIX}": fixtures.ext_new})
    proc, modules = imported("-m", "relabel", "show", str(wheel))
    assert proc.returncode == 0, proc.stderr
    assert "glibc-floor = auto would lower this wheel's glibc needs to" in proc.stdout
    assert {"relabel.floor", "relabel.verneed"} <= modules


def test_the_oldest_release_is_the_first_one_of_the_data() -> None:
    """:func:`relabel.floor_setting.may_lower` compares with a constant instead of parsing
    the floor's data file: the constant is the data's oldest release on every architecture."""
    arches = floor_setting.data()["arches"]
    firsts = {floor_setting.parse_version(entry["releases"][0]) for entry in arches.values()}
    assert firsts == {floor_setting.OLDEST}
    assert floor_setting.releases()[0] == floor_setting.OLDEST


@pytest.mark.parametrize(
    "name", ["libfoo", "libbar", "libnew", "libcxx", "libisa", "ext_foo", "ext_new", "ext_plain"]
)
def test_the_shortcut_reads_the_version_needs_as_the_floor_does(
    fixtures: Fixtures, name: str
) -> None:
    """:func:`relabel.floor_setting.may_lower` (from the audit's ELF record) and the floor
    itself (from its own reader) agree whether a file needs more than the oldest release."""
    path = getattr(fixtures, name)
    oldest = floor_setting.releases()[0]
    facts = floor.facts(verneed.read(path), name)
    assert floor_setting.may_lower([elf.read_elf(path)]) == floor._needs_above([facts], oldest)


def test_finding_patchelf_does_not_load_the_build_configuration() -> None:
    proc, modules = imported("-c", "from relabel import patchelf; print(patchelf.find())")
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()).name == "patchelf"
    assert "sysconfig" in modules
    assert sorted(m for m in modules if m.startswith("_sysconfigdata")) == []


def test_the_scripts_directory_is_the_one_sysconfig_names() -> None:
    assert patchelf.scripts_dir() == sysconfig.get_path("scripts")


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["show", "--help"],
        ["repair", "--help"],
        ["lddtree", "--help"],
        ["show", "--plat", "manylinux2014", "-e", "libx.so", "--json", "a.whl"],
        ["repair", "-w", "out", "--strip", "-z", "3", "--no-update-tags", "a.whl", "b.whl"],
        ["repair", "--json", "a.whl"],  # show's flag: refused as before
        ["lddtree", "--ldpaths", "/x:/y", "f.so"],
        ["--version"],
    ],
)
def test_the_parser_of_one_subcommand_answers_as_the_whole_one(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """``relabel`` builds only the named subcommand's flags; what it prints and parses is
    what the whole parser would."""

    def answer(parser: argparse.ArgumentParser) -> tuple[object, str, str]:
        try:
            outcome: object = vars(parser.parse_args(argv))
        except SystemExit as exc:
            outcome = exc.code
        except cli._ParseError as exc:
            outcome = exc.message
        out = capsys.readouterr()
        return outcome, out.out, out.err

    assert cli._command(argv) in (None, "show", "repair", "lddtree")
    assert answer(cli.build_parser(cli._command(argv))) == answer(cli.build_parser())


def test_the_installed_command_loads_the_modules_with_the_collector_off() -> None:
    """The console script and ``python -m relabel`` enter through the same function."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"relabel": "relabel.__main__:run"}
    code = (
        "import gc, sys\n"
        "import relabel.cli\n"
        "print(gc.get_freeze_count())\n"
        "seen = []\n"
        "relabel.cli.main = lambda: seen.append((gc.isenabled(), gc.get_freeze_count())) or 0\n"
        "from relabel.__main__ import run\n"
        "try:\n"
        "    run()\n"
        "except SystemExit as exc:\n"
        "    print(exc.code, *seen[0])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    before, status, enabled, frozen = proc.stdout.split()
    assert (status, enabled) == ("0", "True"), proc.stderr
    # some Pythons (3.12) start with objects frozen already: only the change counts
    assert int(frozen) > int(before)


def test_a_script_that_calls_the_command_line_itself_freezes_what_is_loaded() -> None:
    """Console scripts installed before the entry point was ``relabel.__main__:run`` import
    :func:`relabel.cli.main` and call it: run as the program it freezes the loaded modules
    out of the collector too; called from Python with arguments it leaves the collector be."""
    code = (
        "import gc, sys\n"
        "from relabel import cli\n"
        "counts = [gc.get_freeze_count()]\n"
        "for argv in (['--version'], None):\n"
        "    sys.argv = ['relabel', '--version']\n"
        "    try:\n"
        "        cli.main(argv)\n"
        "    except SystemExit as exc:\n"
        "        assert exc.code == 0\n"
        "    counts.append(gc.get_freeze_count())\n"
        "print(*counts, file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    before, called, run = map(int, proc.stderr.split())
    # some Pythons (3.12) start with objects frozen already: only the change counts
    assert called == before
    assert run > before
