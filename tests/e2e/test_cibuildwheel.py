"""What cibuildwheel does on Linux, in a simulated manylinux image, with relabel as the backend.

cibuildwheel runs every Linux build inside a manylinux (or musllinux) image. The images set
``AUDITWHEEL_POLICY``, ``AUDITWHEEL_ARCH`` and ``AUDITWHEEL_PLAT`` (manylinux's Dockerfile:
``AUDITWHEEL_PLAT=${POLICY}_${PLATFORM}``); cibuildwheel builds with its default frontend
(``python -m build <package> --wheel --outdir=<dir>``, or ``pip wheel`` with
``build-frontend = "pip"``) and then runs its default Linux
repair command, ``auditwheel repair -w {dest_dir} {wheel}``, which takes its ``--plat``
from ``AUDITWHEEL_PLAT``. No container runs here: the same variables are set around the
same two commands on this machine.

relabel takes ``AUDITWHEEL_PLAT`` as its ``plat`` default, so the build already gives what
``auditwheel repair`` would make of the inner backend's wheel in that image, and the repair
step after it changes nothing: same name, same tags, the same members byte for byte (RECORD
in another line order), no library grafted twice.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ._support import EXAMPLES, WheelContents, auditwheel_repair, run
from .conftest import REPO

if TYPE_CHECKING:
    from .conftest import Oracles

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(sys.version_info < (3, 10), reason="auditwheel 6.8 needs 3.10"),
]

EXAMPLE = EXAMPLES["bz2"]
# image -> (AUDITWHEEL_POLICY, AUDITWHEEL_ARCH, the PEP 600 name of the policy)
IMAGES = {
    # cibuildwheel's default image, and the older manylinux2014 one (a legacy alias)
    "manylinux_2_28": ("manylinux_2_28", "x86_64", "manylinux_2_28_x86_64"),
    "manylinux2014": ("manylinux2014", "x86_64", "manylinux_2_17_x86_64"),
}
# cibuildwheel's build step with each frontend ("build" is the default)
FRONTENDS = {
    "build": lambda project, out: [
        sys.executable, "-m", "build", str(project), "--wheel", f"--outdir={out}",
    ],
    "pip": lambda project, out: [
        sys.executable, "-m", "pip", "wheel", str(project), f"--wheel-dir={out}", "--no-deps",
    ],
}  # fmt: skip


def image_environment(env: dict[str, str], policy: str, arch: str) -> dict[str, str]:
    """What a manylinux image adds to every process it runs."""
    return {
        **env,
        "AUDITWHEEL_POLICY": policy,
        "AUDITWHEEL_ARCH": arch,
        "AUDITWHEEL_PLAT": f"{policy}_{arch}",
    }


@pytest.mark.skipif(
    sys.platform != "linux" or not Path("/usr/lib/x86_64-linux-gnu").is_dir(),
    reason="the simulated images are x86_64 ones",
)
@pytest.mark.parametrize(
    ("image", "frontend"),
    [("manylinux_2_28", "build"), ("manylinux_2_28", "pip"), ("manylinux2014", "build")],
)
def test_build_then_default_repair_command(
    image: str, frontend: str, tmp_path: Path, env: dict[str, str], oracles: Oracles
) -> None:
    policy, arch, pep600 = IMAGES[image]
    image_env = image_environment(env, policy, arch)
    project = tmp_path / "project"
    shutil.copytree(REPO / "example_projects" / EXAMPLE.directory, project)
    built_dir = tmp_path / "built_wheel"
    command = FRONTENDS[frontend](project, built_dir)
    build = run(command, cwd=project, env=image_env)
    built_wheels = sorted(built_dir.glob("*.whl"))
    assert len(built_wheels) == 1, build.describe()
    built = WheelContents.read(built_wheels[0])

    # relabel's wheel is what auditwheel makes of the inner wheel in the same image, asked
    # for the policy by its PEP 600 name
    inner = oracles[EXAMPLE.key].inner.wheel
    oracle_env = {**image_env, "AUDITWHEEL_PLAT": pep600}
    expected = WheelContents.read(auditwheel_repair(inner, tmp_path / "oracle", env=oracle_env))
    assert built.path.name == expected.path.name
    assert built.tags == expected.tags
    assert image_env["AUDITWHEEL_PLAT"] in built.platforms
    assert set(built.libs(EXAMPLE.libs_dir)) == set(expected.libs(EXAMPLE.libs_dir))
    assert built.libs(EXAMPLE.libs_dir), "nothing grafted"

    # cibuildwheel's default repair step: auditwheel repair -w {dest_dir} {wheel}
    repaired_dir = tmp_path / "repaired_wheel"
    repaired = WheelContents.read(auditwheel_repair(built.path, repaired_dir, env=image_env))
    assert repaired.path.name == built.path.name
    assert repaired.tags == built.tags
    assert repaired.tag_lines == built.tag_lines
    libs_dirs = {n.split("/", 1)[0] for n in repaired.members if ".libs/" in n}
    assert libs_dirs == {EXAMPLE.libs_dir}
    assert repaired.libs(EXAMPLE.libs_dir) == built.libs(EXAMPLE.libs_dir)
    # every member byte for byte; auditwheel writes RECORD's lines in its own order
    record = f"{built.dist_info}/RECORD"
    assert {n: d for n, d in repaired.members.items() if n != record} == {
        n: d for n, d in built.members.items() if n != record
    }
    assert sorted(repaired.record) == sorted(built.record)


def test_legacy_alias_in_auditwheel_plat(
    tmp_path: Path, env: dict[str, str], oracles: Oracles
) -> None:
    """A deliberate difference: relabel treats ``manylinux2014`` exactly as
    ``manylinux_2_17``. auditwheel 6.8, asked for the alias, drops the more compatible tags
    the wheel earns once its libraries are grafted (it matches the alias against PEP 600
    policy names when it counts grafted libraries), and only a second ``auditwheel
    repair`` adds them. Both end at the same wheel name, which relabel gives at once."""
    image_env = image_environment(env, "manylinux2014", "x86_64")
    inner = oracles[EXAMPLE.key].inner.wheel
    by_alias = auditwheel_repair(inner, tmp_path / "alias", env=image_env)
    by_name = auditwheel_repair(
        inner, tmp_path / "name", env={**image_env, "AUDITWHEEL_PLAT": "manylinux_2_17_x86_64"}
    )
    assert WheelContents.read(by_alias).platforms == {
        "manylinux2014_x86_64",
        "manylinux_2_17_x86_64",
    }
    assert WheelContents.read(by_alias).platforms < WheelContents.read(by_name).platforms
    again = auditwheel_repair(by_alias, tmp_path / "again", env=image_env)
    assert again.name == by_name.name
