"""Text and JSON renderings of audits and repairs. Pure: strings in, strings out.

The text report answers, in this order: the tag the wheel meets as it is, the tag a repair
reaches, the external libraries and where they resolve, and for every policy stricter than
the reachable one the blockers (``file -> symbol@version (from library)``), grouped so each
blocker is printed once with the policies it rules out, then one line of advice.
The JSON report carries auditwheel's ``show --json`` keys with the same meanings, plus
``repair_tag`` and ``findings``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from relabel.audit import REPAIRABLE, Audit, Finding, Verdict
from relabel.plan import advice

if TYPE_CHECKING:
    from collections.abc import Sequence

    from relabel.repair import Analysis, Result

JSON_VERSION = 1


def _policy_range(names: Sequence[str]) -> str:
    if len(names) <= 2:
        return ", ".join(names)
    return f"{names[0]} ... {names[-1]} ({len(names)} policies)"


def target_verdict(audit: Audit, plat: str) -> Verdict:
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


def target_name(analysis: Analysis, plat: str) -> str:
    if analysis.audit is None or plat == "auto":
        return "manylinux/musllinux"
    return target_verdict(analysis.audit, plat).policy.name


def blocker_lines(analysis: Analysis, plat: str) -> list[str]:
    if analysis.audit is None:
        return []
    audit = analysis.audit
    verdict = audit.most_permissive if plat == "auto" else target_verdict(audit, plat)
    return [f.describe() for f in dict.fromkeys(verdict.findings)]


def _group(findings: Sequence[Finding], stricter: Sequence[str]) -> list[str]:
    """One line per (file, library, version) with its symbols, then what it rules out."""
    groups: dict[tuple[str, str, str | None, str | None, tuple[str, ...], str], list[Finding]]
    groups = {}
    for f in findings:
        blocked = tuple(n for n in f.blocks if n in stricter)
        if blocked:
            key = (f.file, f.kind, f.library, f.version, blocked, "" if f.version else f.describe())
            groups.setdefault(key, []).append(f)
    lines = []
    for (file, _, library, version, blocked, described), members in groups.items():
        if version:
            names = sorted({m.symbol for m in members if m.symbol})
            shown = ", ".join(names[:3]) + (f", +{len(names) - 3} more" if len(names) > 3 else "")
            text = f"{file} -> {version} from {library}" + (f" ({shown})" if shown else "")
        else:
            text = str(described)
        lines.append(f"  {text}\n      rules out {_policy_range(list(blocked))}")
    return lines


def render_text(analysis: Analysis, target: str = "auto") -> str:
    name = analysis.wheel.name
    if analysis.pure or analysis.audit is None:
        notes = "".join(f"\n  note: {note}" for note in analysis.notes)
        return f"{name}: no ELF files to audit; the wheel is left as it is.{notes}"
    audit = analysis.audit
    overall, repairable = audit.overall, audit.repairable
    out = [
        f"{name}",
        f"  as it is, the wheel meets:   {overall.policy.name}",
        f"  after `relabel repair`:      {repairable.policy.name}"
        + (
            ""
            if not repairable.policy.is_linux
            else " (no manylinux/musllinux policy is reachable)"
        ),
    ]
    if audit.versioned_symbols:
        out.append("  versioned symbols needed:")
        for lib, versions in audit.versioned_symbols.items():
            out.append(f"    {lib}: {', '.join(versions)}")
    external = audit.verdicts[0].external if audit.verdicts else {}
    if external:
        out.append("  external libraries (not on the most compatible policy's allowed list):")
        for soname, path in sorted(external.items()):
            out.append(f"    {soname} => {path or 'NOT FOUND'}")
    else:
        out.append("  external libraries: none")
    stricter = [
        v.policy.name for v in audit.verdicts if v.policy.priority > repairable.policy.priority
    ]
    blockers = [f for f in audit.findings() if f.kind not in REPAIRABLE]
    lines = _group(blockers, stricter)
    if lines:
        out.append("  why stricter policies are out of reach:")
        out.extend("  " + line for line in lines)
        tip = advice(blockers)
        if tip:
            out.append("  " + tip)
    for note in analysis.notes:
        out.append(f"  note: {note}")
    return "\n".join(out)


def render_json(analysis: Analysis) -> str:
    return json.dumps(as_json(analysis), indent=2, sort_keys=False)


def as_json(analysis: Analysis) -> dict[str, Any]:
    name = analysis.wheel.name
    if analysis.pure or analysis.audit is None:
        return {"version": JSON_VERSION, "wheel": name, "pure": True, "notes": [*analysis.notes]}
    audit = analysis.audit
    sym = audit.best_symbols
    external = audit.verdicts[0].external if audit.verdicts else {}
    return {
        "version": JSON_VERSION,
        "wheel": name,
        "pure": False,
        "overall_tag": audit.overall.policy.name,
        "sym_tag": sym.policy.name,
        "repair_tag": audit.repairable.policy.name,
        "external_libs": dict(sorted(external.items())),
        "versioned_symbols": {k: list(v) for k, v in audit.versioned_symbols.items()},
        "findings": [
            {
                "file": f.file,
                "kind": f.kind,
                "library": f.library,
                "symbol": f.symbol,
                "version": f.version,
                "blocks": list(f.blocks),
                **({"detail": f.detail} if f.detail else {}),
            }
            for f in audit.findings()
        ],
        "ignored": [{"file": m, "reason": why} for m, why in audit.skipped],
        "notes": list(analysis.notes),
    }


def render_repair(result: Result) -> str:
    notes = "".join(f"\nrelabel:   note: {note}" for note in result.analysis.notes)
    return _render_repair(result) + notes


def _render_repair(result: Result) -> str:
    name = result.analysis.wheel.name
    plan = result.plan
    if plan is None:
        return f"relabel: {name}: no ELF files; wheel passed through unchanged"
    if plan.keeps_linux:
        return f"relabel: {name}: kept its linux tag; written as {result.output.name}"
    lines = [f"relabel: repaired {name} -> {result.output.name}"]
    lines.append(f"relabel:   tag {plan.target.policy.name}: {_why(result)}")
    for graft in plan.grafts:
        lines.append(f"relabel:   grafted {graft.soname} from {graft.source} as {graft.member}")
    if not plan.grafts:
        lines.append("relabel:   no external libraries to graft")
    return "\n".join(lines)


def _why(result: Result) -> str:
    """Why the chosen tag and not a stricter one: the first blockers of the next policy."""
    audit, plan = result.analysis.audit, result.plan
    if audit is None or plan is None:
        return ""
    verdicts = list(audit.verdicts)
    index = verdicts.index(plan.target)
    if index == 0:
        return "the most compatible policy there is"
    stricter = verdicts[index - 1]
    if plan.target is not audit.repairable:
        return f"requested ({audit.repairable.policy.name} is also met)"
    reasons = list(dict.fromkeys(f.describe() for f in stricter.blockers))
    more = f" and {len(reasons) - 2} more" if len(reasons) > 2 else ""
    return f"{stricter.policy.name} is out of reach: " + "; ".join(reasons[:2]) + more


def render_unmet(result: Result) -> str:
    plan = result.plan
    lines = [
        f"relabel: {result.analysis.wheel.name} meets no manylinux/musllinux policy;"
        " it keeps its linux tag (installable here, not on other machines). Blockers:"
    ]
    if plan is not None:
        lines += [f"  - {f.describe()}" for f in plan.unmet]
        tip = advice(plan.unmet)
        if tip:
            lines.append(tip)
    return "\n".join(lines)
