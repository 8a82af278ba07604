"""relabel against auditwheel 6.8 on a pinned corpus of real PyPI wheels (tests/corpus/).

One test per wheel: ``relabel show --json`` field by field against ``auditwheel show --json``
and, for x86_64 wheels, ``repair`` by both (output names and grafted sets). Every deliberate
difference is a named rule in ``tests/corpus/wheels.toml`` and is asserted as exactly that
difference; known relabel defects are strict expected failures, so a fix turns them into
unexpected passes and the mark is removed with it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .corpus import support

pytest.importorskip("auditwheel")

RULES, WHEELS = support.load()


class MismatchError(AssertionError):
    """relabel disagrees with auditwheel beyond the documented rules."""


def _params() -> list[object]:
    params: list[object] = []
    for wheel in WHEELS:
        marks = []
        if wheel.defect:
            marks.append(pytest.mark.xfail(strict=True, raises=MismatchError, reason=wheel.defect))
        params.append(pytest.param(wheel, id=wheel.id, marks=marks))
    return params


@pytest.fixture(scope="session")
def runner() -> Iterator[support.Runner]:
    try:
        paths = support.download_all(WHEELS)
    except support.IndexUnreachableError as exc:
        pytest.skip(f"PyPI is unreachable, the corpus cannot be downloaded: {exc}")
    with support.scratch_dir() as scratch:
        run = support.Runner(WHEELS, paths, scratch)
        try:
            yield run
        finally:
            run.close()


def test_corpus_is_large_and_pinned() -> None:
    assert len(WHEELS) >= 100
    assert len({w.file for w in WHEELS}) == len(WHEELS)
    assert all(len(w.sha256) == 64 and w.why for w in WHEELS)
    assert sum(w.size for w in WHEELS) < 300 * 1024 * 1024
    assert all(w.defect.startswith("defect: ") for w in WHEELS if w.defect)


def _check_show(wheel: support.Wheel, results: support.Results) -> list[str]:
    ours_run = results.show_relabel.result()
    theirs_run = results.show_auditwheel.result()
    theirs = theirs_run.json()
    if "auditwheel-crash" in wheel.deliberate:
        assert theirs is None and "Traceback" in theirs_run.stderr, (
            "auditwheel no longer crashes on this wheel: remove the rule"
        )
        theirs = None
    else:
        assert theirs is not None and theirs_run.rc == 0, theirs_run.stderr
    ours = ours_run.json()
    if ours is None:
        return [f"relabel show failed (exit {ours_run.rc}): {ours_run.stderr.strip()}"]
    exp = support.expected(wheel, theirs)
    problems = support.compare(ours, exp)
    # exit-status rule: 1 when no manylinux/musllinux policy is met as the wheel is
    meets = ours.get("pure") or not str(ours.get("overall_tag", "")).startswith("linux_")
    if ours_run.rc != (0 if meets else 1):
        problems.append(f"exit status: relabel {ours_run.rc} for {ours.get('overall_tag')}")
    return problems


def _check_repair(wheel: support.Wheel, results: support.Results) -> list[str]:
    assert results.repair_relabel is not None and results.repair_auditwheel is not None
    ours = results.repair_relabel.result()
    theirs = results.repair_auditwheel.result()
    # auditwheel cannot repair these on a glibc host (it looks musl's libraries up among
    # glibc's, or crashes on glibc's libc.so linker script): relabel must repair them
    # without grafting anything new
    if "auditwheel-repair-musl-libs" in wheel.deliberate:
        assert theirs.run.rc != 0, "auditwheel now repairs this wheel: remove the rule"
    cannot = {"auditwheel-repair-musl-libs", "musl-libc-so", "auditwheel-crash"}
    if cannot & set(wheel.deliberate) and theirs.run.rc != 0:
        if ours.run.rc != 0:
            return [f"repair: relabel failed: {ours.run.stderr.strip()}"]
        path = support.cache_dir() / wheel.file
        if ours.libs != support.libs_members(path):
            return [f"repair: relabel grafted {sorted(ours.libs - support.libs_members(path))}"]
        return []
    if (ours.run.rc == 0) != (theirs.run.rc == 0):
        return [
            f"repair: relabel exit {ours.run.rc}, auditwheel exit {theirs.run.rc}: "
            + (ours.run.stderr.strip() or theirs.run.stderr.strip()[-300:])
        ]
    if ours.run.rc != 0:
        return []
    problems = [f"installed: {ours.installed}"] if ours.installed else []
    musl = "musl-from-symbols" in wheel.deliberate
    ours_tags = support.platforms(ours.outputs[0], musl_as_one=musl)
    theirs_tags = support.platforms(theirs.outputs[0], musl_as_one=musl)
    mismatch = f"repair name: relabel {ours.outputs[0]}, auditwheel {theirs.outputs[0]}"
    if "contradicted-tag-dropped" in wheel.deliberate:
        # exactly the input's own claims that relabel's audit contradicts are gone
        claimed = support.platforms(wheel.file, musl_as_one=musl)
        if not (ours_tags < theirs_tags and theirs_tags - ours_tags <= claimed):
            problems.append(mismatch)
    elif ours_tags != theirs_tags:
        problems.append(mismatch)
    if ours.libs != theirs.libs:
        problems.append(
            f"repair grafts: relabel only {sorted(ours.libs - theirs.libs)}, "
            f"auditwheel only {sorted(theirs.libs - ours.libs)}"
        )
    return problems


@pytest.mark.parametrize("wheel", _params())
def test_agrees_with_auditwheel(wheel: support.Wheel, runner: support.Runner) -> None:
    results = runner.results[wheel.file]
    problems = _check_show(wheel, results)
    if wheel.repair:
        problems += _check_repair(wheel, results)
    if problems:
        raise MismatchError(f"{wheel.file} ({wheel.why}):\n  " + "\n  ".join(problems))


def test_every_rule_is_used_and_explained() -> None:
    used = {rule for w in WHEELS for rule in w.deliberate} | {"exit-status"}
    assert used == set(RULES)
    assert all(len(why) > 40 for why in RULES.values())


def test_cache_survives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELABEL_TEST_CACHE", str(tmp_path))
    assert support.cache_dir() == tmp_path / "wheels"
