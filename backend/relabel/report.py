"""Text and JSON renderings of audits and repairs. Pure: strings in, strings out.

The text report answers, in this order: the tag the wheel meets as it is, the tag a repair
reaches, the external libraries and where they resolve, and for every policy stricter than
the reachable one the blockers (``file -> symbol@version (from library)``), grouped so each
blocker is printed once with the policies it rules out, then one line of advice.
The JSON report carries every key of ``auditwheel show --json`` (6.8) with the same meaning,
in the same order, then relabel's own keys (``repair_tag``, ``target``, ``findings``,
``ignored``, ``notes``); :func:`lddtree_json` gives ``auditwheel lddtree``'s shape.
"""

from __future__ import annotations

import json
import posixpath
from typing import TYPE_CHECKING, Any

from relabel import floor_setting
from relabel.arch import is_glibc_libc, is_musl_interpreter, is_musl_libc
from relabel.audit import REPAIRABLE, Audit, Finding, Kind, Verdict

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from relabel.elf import ElfInfo
    from relabel.repair import Analysis, Result

JSON_VERSION = 1


def _policy_range(names: Sequence[str]) -> str:
    if len(names) <= 2:
        return ", ".join(names)
    return f"{names[0]} ... {names[-1]} ({len(names)} policies)"


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


def advice(blockers: Sequence[Finding]) -> str:
    """One sentence of what to change so that ``blockers`` go away (empty: no tip)."""
    kinds = {f.kind for f in blockers}
    tips = []
    # bionic's version nodes are LIBC_<release>; glibc's are GLIBC_<version>
    bionic = any(
        f.kind == Kind.SYMBOL_VERSION and (f.version or "").startswith("LIBC_") for f in blockers
    )
    if bionic:
        tips.append(
            "build for the API level of the wheel's tag (the NDK's --target"
            " <triple><api level>), or tag the wheel for the API level it needs"
        )
    levels = [f for f in blockers if f.kind == Kind.ANDROID_API]
    if any(f.library is None for f in levels):  # a file's own note names a newer level
        tips.append(
            "tag the wheel for the API level its files were built for, or build them for"
            " the tag's (the NDK's --target <triple><api level>)"
        )
    if any(f.library is not None for f in levels):
        tips.append(
            "tag the wheel for API level 24 or newer, or link the C++ runtime statically"
            " (ANDROID_STL=c++_static)"
        )
    if Kind.SYMBOL_VERSION in kinds and not bionic:
        tips.append(
            "build on an older system (a manylinux container image) so the toolchain"
            " links against older symbol versions"
        )
    if Kind.NOT_FOUND in kinds:
        tips.append("make the missing libraries findable with library-dirs, or exclude them")
    if Kind.ISA in kinds:
        tips.append("build for the baseline x86-64 instruction set (-march=x86-64)")
    if Kind.BLACKLISTED in kinds:
        tips.append("stop using the blacklisted symbols")
    if Kind.PATH_NEEDED in kinds:
        tips.append("link against libraries that have a SONAME, so DT_NEEDED holds no path")
    if Kind.INSTALL_LOCATION in kinds:
        tips.append(
            "ship files that need external libraries inside the package, not in .data/data"
            " or .data/headers"
        )
    return ("To fix: " + "; ".join(tips) + ".") if tips else ""


def _judged_against(audit: Audit, target: str, source: str | None) -> str:
    """The line naming the target the verdict (and the exit status) is about."""
    label = "  judged against:              "
    if target == "auto":
        return label + "any manylinux/musllinux policy (auto)"
    given = f" ({source} {target})" if source else ""
    try:
        verdict = audit.verdict(target)
    except KeyError:
        given = f" ({source})" if source else ""
        known = _policy_range([v.policy.name for v in audit.verdicts])
        return f"{label}{target}{given}: not a policy for this wheel (its policies: {known})"
    if verdict.meets_as_is:
        state = "met as it is"
    elif verdict.reachable:
        state = "not met as it is; `relabel repair` reaches it"
    else:
        state = "out of reach even after a repair"
    if given and target == verdict.policy.name:
        given = f" ({source})"
    return f"{label}{verdict.policy.name}{given}: {state}"


def render_text(analysis: Analysis, target: str = "auto", source: str | None = None) -> str:
    """The human report; ``source`` says where ``target`` came from (``--plat``...)."""
    name = analysis.wheel.name
    if analysis.pure or analysis.audit is None:
        notes = "".join(f"\n  note: {note}" for note in analysis.notes)
        return f"{name}: no ELF files to audit; the wheel is left as it is.{notes}"
    audit = analysis.audit
    overall, repairable = audit.overall, audit.repairable
    out = [
        f"{name}",
        _judged_against(audit, target, source),
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


def render_json(analysis: Analysis, target: str = "auto") -> str:
    # indent=4 as auditwheel prints it: a diff of the two outputs lines up
    return json.dumps(as_json(analysis, target), indent=4)


def _merge(*tables: Mapping[str, Iterable[str]]) -> dict[str, set[str]]:
    merged: dict[str, set[str]] = {}
    for table in tables:
        for library, versions in table.items():
            merged.setdefault(library, set()).update(versions)
    return merged


def _grafted_versions(audit: Audit, verdict: Verdict) -> dict[str, set[str]]:
    """Symbol versions the libraries a repair to ``verdict`` would graft need."""
    needs: dict[str, set[str]] = {}
    seen: set[str] = set()
    for node in audit.nodes:
        for soname in verdict.external_by_member.get(node.member, ()):
            lib = node.libraries.get(soname)
            if lib is None or lib.info is None or lib.path is None or lib.path in seen:
                continue
            seen.add(lib.path)
            for library, version in lib.info.symbol_versions():
                needs.setdefault(library, set()).add(version)
    return needs


def _allowed_by_symbols(audit: Audit, versions: Mapping[str, Iterable[str]]) -> Verdict:
    """The most compatible policy whose symbol versions cover ``versions`` (for musl, which
    has no versions: whose release exports every symbol the files take from it)."""
    wanted = {v for vs in versions.values() for v in vs}
    return next(
        v
        for v in audit.verdicts
        if v.policy.is_linux
        or (
            all(v.policy.allows_symbol_version(x) for x in wanted)
            and not any(f.kind == Kind.MUSL_SYMBOL for f in v.findings)
        )
    )


def symbol_policy(audit: Audit) -> tuple[Verdict, dict[str, set[str]]]:
    """``sym_tag`` and ``versioned_symbols`` as auditwheel computes them.

    For each policy, the wheel's own symbol versions plus those of the libraries a repair to
    that policy would graft give the best policy those symbols allow (never better than the
    policy itself); the best of these wins, and its symbol table is the one reported. On a
    tie the least compatible policy's table is kept, as auditwheel keeps the first of its
    policies listed least compatible first.
    """
    own = _merge(audit.versioned_symbols)
    best: tuple[Verdict, dict[str, set[str]]] | None = None
    for verdict in reversed(audit.verdicts):
        if verdict.policy.is_linux:
            continue
        symbols = _merge(own, _grafted_versions(audit, verdict))
        allowed = _allowed_by_symbols(audit, symbols)
        found = verdict if verdict.policy.priority <= allowed.policy.priority else allowed
        if best is None or found.policy.priority > best[0].policy.priority:
            best = (found, symbols)
    return best if best is not None else (_allowed_by_symbols(audit, own), own)


def _policy_upgrades(audit: Audit) -> dict[str, dict[str, Any]]:
    """For each policy more compatible than the wheel as it is: the external libraries
    and the blacklisted symbols standing in its way (least compatible policy first)."""
    overall = audit.overall.policy.priority
    upgrades: dict[str, dict[str, Any]] = {}
    for verdict in reversed(audit.verdicts):
        if verdict.policy.priority <= overall:
            continue
        entry: dict[str, Any] = {}
        if verdict.external:
            entry["libs_to_eliminate"] = sorted(verdict.external)
        blacklisted: dict[str, set[str]] = {}
        for f in verdict.findings:
            if f.kind == Kind.BLACKLISTED and f.library and f.symbol:
                blacklisted.setdefault(f.library, set()).add(f.symbol)
        if blacklisted:
            entry["blacklisted_symbols"] = {k: sorted(v) for k, v in sorted(blacklisted.items())}
        if entry:
            upgrades[verdict.policy.name] = entry
    return upgrades


def _unsupported_isa(audit: Audit) -> bool:
    """An instruction-set finding that rules out even the least demanding policy."""
    weakest = audit.most_permissive.policy
    if weakest.is_linux:
        return False
    return any(f.kind == Kind.ISA and weakest.name in f.blocks for f in audit.findings())


def target_label(analysis: Analysis, plat: str) -> str:
    """The policy ``plat`` names for this wheel, or ``auto``."""
    if plat == "auto" or analysis.audit is None:
        return plat
    try:
        return analysis.audit.verdict(plat).policy.name
    except KeyError:
        return plat


def as_json(analysis: Analysis, target: str = "auto") -> dict[str, Any]:
    name = analysis.wheel.name
    if analysis.pure or analysis.audit is None:
        pure: dict[str, Any] = {"version": JSON_VERSION, "wheel": name, "pure": True}
        # auditwheel's object exactly, plus what relabel noticed (a renamed wheel) if anything
        return {**pure, "notes": list(analysis.notes)} if analysis.notes else pure
    audit = analysis.audit
    kinds = {f.kind for f in audit.findings()}
    sym, symbols = symbol_policy(audit)
    external = audit.verdicts[0].external if audit.verdicts else {}
    return {
        # auditwheel's keys, in its order
        "version": JSON_VERSION,
        "wheel": name,
        "pure": False,
        "overall_tag": audit.overall.policy.name,
        "sym_tag": sym.policy.name,
        "pyfpe": Kind.PYFPE in kinds,
        "ucs2": Kind.UCS2 in kinds,
        "unsupported_isa": _unsupported_isa(audit),
        "versioned_symbols": {k: sorted(v) for k, v in sorted(symbols.items())},
        "external_libs": dict(sorted(external.items())),
        "policy_upgrades": _policy_upgrades(audit),
        # relabel's own
        "repair_tag": audit.repairable.policy.name,
        "target": target_label(analysis, target),
        "findings": [
            {
                "file": f.file,
                "kind": str(f.kind),
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


def error_json(message: str, wheel: str | None = None) -> str:
    """What ``show --json`` prints instead of a report when it fails."""
    data: dict[str, Any] = {"version": JSON_VERSION}
    if wheel is not None:
        data["wheel"] = wheel
    data["error"] = message
    return json.dumps(data, indent=4)


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


def render_floor(result: Result) -> str:
    """What lowering the glibc floor did, one ``relabel:`` line each ("" when it was off:
    what it would do is among the notes)."""
    lowered = result.analysis.glibc_floor
    if lowered is None or lowered.setting == floor_setting.OFF:
        return ""
    return "\n".join(f"relabel:   {line}" for line in lowered.lines())


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


# -- lddtree ---------------------------------------------------------------------------
# auditwheel prints its enum members with repr(); the same strings keep scripts that read
# ``auditwheel lddtree`` working unchanged.
_ARCH_NAME = "<Architecture.{0}: '{0}'>"
_LIBC_NAME = {"glibc": "<Libc.GLIBC: 'glibc'>", "musl": "<Libc.MUSL: 'musl'>"}


def platform_json(info: ElfInfo) -> dict[str, Any]:
    """The ``platform`` object of ``auditwheel lddtree`` for one file."""
    extended = None
    if info.arch == "x86_64" and info.isa_level > 1:
        extended = _ARCH_NAME.format(f"x86_64_v{info.isa_level}")
    return {
        "_elf_osabi": info.osabi,
        "_elf_class": info.elf_class,
        "_elf_little_endian": info.little_endian,
        "_elf_machine": info.machine,
        "_base_arch": _ARCH_NAME.format(info.arch) if info.arch else None,
        "_ext_arch": extended,
        "_error_msg": info.arch_problem,
    }


def elf_libc(info: ElfInfo, file_name: str) -> str | None:
    """The C library one file is built for: its interpreter, else the libc it needs, else
    the extension suffix CPython gives it; None when nothing says."""
    if info.interpreter:
        return "musl" if is_musl_interpreter(info.interpreter) else "glibc"
    for needed in info.needed:
        # musl is libc.musl-<arch>.so.1 on Alpine, plain libc.so elsewhere
        if is_musl_libc(needed):
            return "musl"
        if is_glibc_libc(needed):
            return "glibc"
    if file_name.endswith(("-linux-musl.so", "-linux-musleabihf.so")):
        return "musl"
    if file_name.endswith(("-linux-gnu.so", "-linux-gnueabihf.so")):
        # CPython used the -gnu suffix on musl too before 3.11
        abi = file_name.rsplit(".", 2)[-2].split("-")
        version = abi[1] if len(abi) > 1 and abi[0] == "cpython" else ""
        if version.isdigit() and version[:1] == "3" and int(version[1:] or 0) >= 11:
            return "glibc"
    return None


def lddtree_json(
    *,
    path: str,
    realpath: str,
    info: ElfInfo,
    rpath: Sequence[str],
    runpath: Sequence[str],
    libraries: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    """``auditwheel lddtree``'s object for one file (keys in its order)."""
    libc = elf_libc(info, posixpath.basename(path))
    return {
        "interpreter": posixpath.normpath(info.interpreter) if info.interpreter else None,
        "libc": _LIBC_NAME[libc] if libc else None,
        "path": path,
        "realpath": realpath,
        "platform": platform_json(info),
        "needed": list(info.needed),
        # DT_RPATH is not used at all when DT_RUNPATH is present (ld.so(8))
        "rpath": [] if runpath else list(rpath),
        "runpath": list(runpath),
        "libraries": dict(libraries),
    }
