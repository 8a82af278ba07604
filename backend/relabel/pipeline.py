"""The one call both front ends make: audit or repair a wheel as the mode says, and judge it
against the target.

Modes: ``skip`` copies the wheel as it is; ``check`` audits it and fails
(:class:`~relabel.errors.NotCompliantError`) unless it meets the target as it is, then copies
it; ``warn`` audits and copies it; ``repair`` repairs it (:func:`relabel.repair.repair`);
``show`` audits it and writes nothing. :func:`run` returns an :class:`Outcome` the front end
only renders (``build_meta`` to stderr, ``cli`` to stdout and its exit status); errors are
raised, never printed, here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from relabel import archive, report
from relabel.errors import NotCompliantError, NotPlatformWheelError, PolicyError
from relabel.repair import analyze, repair
from relabel.resolve import LIBPYTHON

if TYPE_CHECKING:
    from pathlib import Path

    from relabel.audit import Audit, Verdict
    from relabel.repair import Analysis, Options, Result

#: the modes of :func:`run`: the backend's (config.MODES) and ``show``
SHOW = "show"


# a result read by attribute, never compared nor shown: no generated __eq__ and __repr__
@dataclass(frozen=True, eq=False, repr=False)
class Outcome:
    """What one run did."""

    mode: str
    #: the wheel written to the output directory (None for ``show``)
    output: Path | None
    #: the audit of the wheel as it was (None for ``skip``)
    analysis: Analysis | None = None
    #: the repair (``repair`` only)
    result: Result | None = None
    #: the wheel as it was meets the target (``check``, ``warn``, ``show``)
    meets_target: bool = True


def run(
    wheel: Path, out_dir: Path | None, options: Options, mode: str, *, scratch: Path | None = None
) -> Outcome:
    """Audit or repair ``wheel`` as ``mode`` says; the input is never modified.

    ``out_dir`` is where the wheel goes (unused by ``show``); ``scratch`` the directory the
    run's temporary files go under (``$TMPDIR`` when None).
    """
    if mode == "skip":
        return Outcome(mode, archive.copy_atomically(wheel, _required(out_dir)))
    if mode == "repair":
        result = repair(wheel, _required(out_dir), options, scratch=scratch)
        return Outcome(mode, result.output, result.analysis, result)
    analysis = analyze(wheel, options, scratch=scratch)
    if analysis.pure and not options.allow_pure_python_wheel:
        raise NotPlatformWheelError(wheel.name)
    meets = meets_target(analysis, options.plat)
    if mode == "check" and not meets and analysis.audit is not None:
        raise not_compliant(analysis.audit, options)
    output = None if mode == SHOW else archive.copy_atomically(wheel, _required(out_dir))
    return Outcome(mode, output, analysis, meets_target=meets)


def _required(out_dir: Path | None) -> Path:
    if out_dir is None:
        msg = "an output directory is needed for every mode but show"
        raise TypeError(msg)
    return out_dir


def target_verdict(audit: Audit, plat: str) -> Verdict:
    """The verdict of the policy ``plat`` names (``linux`` when it names none here)."""
    if plat == "auto":
        return audit.overall
    try:
        return audit.verdict(plat)
    except KeyError:
        return audit.linux


def meets_target(analysis: Analysis, plat: str) -> bool:
    """Does the wheel, unchanged, meet ``plat`` (or any manylinux/musllinux for auto)?"""
    if analysis.audit is None:
        return True
    audit = analysis.audit
    if plat == "auto":
        return not audit.overall.policy.is_linux
    verdict = target_verdict(audit, plat)
    return not verdict.policy.is_linux and verdict.meets_as_is


def target_name(audit: Audit, plat: str) -> str:
    if plat == "auto":
        return "manylinux/musllinux"
    return target_verdict(audit, plat).policy.name


def not_compliant(audit: Audit, options: Options) -> PolicyError:
    """What ``mode = "check"`` reports: the wheel as built, and what a repair would do."""
    from relabel import plan  # noqa: PLC0415 - only a wheel that fails the check is planned

    try:
        target, tagged = plan.choose_target(audit, options.plat, only_plat=options.only_plat)
    except PolicyError as exc:
        target, tagged = target_verdict(audit, options.plat), ()
        if target.policy.is_linux:  # a policy that does not exist for this wheel
            return exc
    if target.policy.is_linux:  # automatic target, nothing reachable
        target, tagged = audit.most_permissive, ()
    grafts = sorted(
        (soname, path)
        for soname, path in target.external.items()
        if path is not None and not LIBPYTHON.match(soname)
    )
    blockers = list(dict.fromkeys(target.blockers))
    return NotCompliantError(
        target_name(audit, options.plat),
        as_built=audit.overall.policy.name,
        grafts=grafts,
        repair_tags=[tag for verdict in tagged for tag in verdict.policy.tags()],
        blockers=[f.describe() for f in blockers],
        advice=report.advice(blockers),
    )
