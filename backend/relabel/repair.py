"""The pipeline: read wheel -> read ELFs -> resolve -> audit -> plan -> patch -> write wheel.

Short on purpose: each step lives in its own module; this one only passes records along,
owns the scratch directory, and decides what lands in the output directory. The backend
and the command line both enter here.
"""

from __future__ import annotations

import hashlib
import shutil
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.utils import canonicalize_name

from relabel import archive, patchelf, policy
from relabel.audit import NOT_FOUND, Audit, audit
from relabel.elf import ElfInfo, looks_like_elf, read_elf
from relabel.errors import LibraryNotFoundError, PolicyError
from relabel.plan import Plan, advice, make_plan
from relabel.resolve import Node, Resolver

if TYPE_CHECKING:
    from collections.abc import Sequence

_MIN_ELF_SIZE = 52  # the smallest ELF header (32-bit)


@dataclass(frozen=True)
class Options:
    plat: str = "auto"
    exclude: tuple[str, ...] = ()
    library_dirs: tuple[str, ...] = ()
    only_plat: bool = False
    isa_check: bool = True
    lib_sdir: str = ".libs"
    compression_level: int = 6
    #: auto target with nothing reachable: True -> error, False -> keep linux tag
    strict: bool = False


@dataclass(frozen=True)
class Analysis:
    wheel: Path
    pure: bool
    audit: Audit | None
    arch: str | None
    libc: str | None
    elf_members: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Result:
    analysis: Analysis
    output: Path
    plan: Plan | None = None
    changed: bool = False
    notes: tuple[str, ...] = field(default=())


def wheel_arch(wheel: archive.WheelFile) -> str | None:
    for tag in wheel.tags:
        for arch in policy.ARCHITECTURES:
            if tag.platform.endswith("_" + arch) and tag.platform.startswith(
                ("linux_", "manylinux", "musllinux_")
            ):
                return arch
    return None


def _detect_libc(infos: Sequence[ElfInfo]) -> policy.Libc:
    for info in infos:
        if (info.interpreter and "ld-musl-" in info.interpreter) or any(
            n.startswith(("libc.musl-", "ld-musl-")) for n in info.needed
        ):
            return policy.Libc.MUSL
    return policy.Libc.GLIBC


def read_wheel_elves(
    wheel: archive.WheelFile, tree: Path, options: Options, resolver: Resolver
) -> Analysis:
    """Extract and parse every ELF member, resolve dependencies, and audit."""
    arch = wheel_arch(wheel)
    infos: dict[str, ElfInfo] = {}
    skipped: list[tuple[str, str]] = []
    dist_prefix = wheel.dist_info + "/"
    for name, member in wheel.members.items():
        if name.startswith(dist_prefix) or name.endswith(".py") or member.size < _MIN_ELF_SIZE:
            continue
        if not looks_like_elf(wheel.head(name)):
            continue
        dest = tree / name
        wheel.extract(name, dest)
        info = read_elf(dest, display=name)
        if info.arch is None:
            skipped.append((name, info.arch_problem or "unknown architecture"))
            continue
        if arch is None:
            arch = info.arch
        if info.arch != arch:
            skipped.append((name, f"built for {info.arch}, the wheel is {arch}"))
            continue
        infos[name] = info
    if not infos or arch is None:
        return Analysis(
            wheel.path,
            True,
            None,
            arch,
            None,
            notes=tuple(f"ignored {n}: {why}" for n, why in skipped),
        )
    libc = _detect_libc(list(infos.values()))
    nodes: list[Node] = [
        resolver.walk(name, str(tree / name), info) for name, info in infos.items()
    ]
    result = audit(
        nodes,
        policy.policies_for(libc, arch),
        arch=arch,
        libc=libc.value,
        wheel_root=str(tree),
        isa_check=options.isa_check,
        skipped=skipped,
    )
    return Analysis(
        wheel.path,
        False,
        result,
        arch,
        libc.value,
        tuple(infos),
        tuple(f"ignored {n}: {why}" for n, why in skipped),
    )


def analyze(wheel_path: Path, options: Options) -> Analysis:
    """Audit a wheel file without changing anything (``relabel show``)."""
    with (
        archive.WheelFile(wheel_path) as wheel,
        tempfile.TemporaryDirectory(prefix="relabel-") as tmp,
    ):
        resolver = Resolver(library_dirs=options.library_dirs, exclude=options.exclude)
        return read_wheel_elves(wheel, Path(tmp) / "tree", options, resolver)


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as stream:
        while chunk := stream.read(archive.CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def retag(
    filename: str, tag_lines: Sequence[str], new_platforms: Sequence[str], arch: str
) -> tuple[str, list[str]]:
    """New file name and WHEEL Tag lines: ``linux_<arch>`` replaced by ``new_platforms``."""
    drop = {f"linux_{arch}"}
    stem = filename[: -len(".whl")]
    prefix, _, platforms = stem.rpartition("-")
    current = platforms.split(".")
    kept = [p for p in current if p not in drop]
    names = list(dict.fromkeys([*kept, *new_platforms]))
    if "any" in names and len(names) > 1:
        names.remove("any")
    new_filename = f"{prefix}-{'.'.join(sorted(names))}.whl"
    pairs = list(dict.fromkeys("-".join(t.split("-")[:2]) for t in tag_lines))
    lines = [t for t in tag_lines if t.split("-")[-1] not in drop and t.split("-")[-1] != "any"]
    for pair in pairs:
        for plat in new_platforms:
            tag = f"{pair}-{plat}"
            if tag not in lines:
                lines.append(tag)
    return new_filename, lines


def repair(wheel_path: Path, out_dir: Path, options: Options) -> Result:
    """Repair one wheel into ``out_dir``; the input is never modified."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with (
        archive.WheelFile(wheel_path) as wheel,
        tempfile.TemporaryDirectory(prefix="relabel-") as tmp,
    ):
        scratch = Path(tmp)
        resolver = Resolver(library_dirs=options.library_dirs, exclude=options.exclude)
        analysis = read_wheel_elves(wheel, scratch / "tree", options, resolver)
        if analysis.pure or analysis.audit is None:
            output = _passthrough(wheel_path, out_dir)
            return Result(analysis, output, None, False, ("no ELF files: wheel left as it is",))
        result = analysis.audit
        hashes = {
            path: _sha256(path)
            for verdict in result.verdicts
            for path in verdict.external.values()
            if path is not None
        }
        libs_dir = canonicalize_name(wheel.project).replace("-", "_") + options.lib_sdir
        plan = make_plan(
            result, plat=options.plat, libs_dir=libs_dir, hashes=hashes, only_plat=options.only_plat
        )
        if plan.keeps_linux:
            not_found = [f for f in plan.unmet if f.kind == NOT_FOUND]
            if options.strict and not_found:
                raise LibraryNotFoundError(
                    [(f.library or "?", f.file, f.searched) for f in not_found]
                )
            if options.strict:
                raise PolicyError(
                    "manylinux/musllinux", [f.describe() for f in plan.unmet], advice(plan.unmet)
                )
            output = _passthrough(wheel_path, out_dir)
            return Result(analysis, output, plan, False)
        output = _apply(wheel, scratch, plan, out_dir, arch=result.arch, options=options)
        return Result(analysis, output, plan, True)


def _passthrough(wheel_path: Path, out_dir: Path) -> Path:
    final = out_dir / wheel_path.name
    if final.exists() and final.samefile(wheel_path):
        return final
    return archive.copy_atomically(wheel_path, out_dir)


def _apply(
    wheel: archive.WheelFile,
    scratch: Path,
    plan: Plan,
    out_dir: Path,
    *,
    arch: str,
    options: Options,
) -> Path:
    tree = scratch / "tree"
    libs = scratch / "libs"
    libs.mkdir()
    added: dict[str, Path] = {}
    for graft in plan.grafts:
        dest = libs / graft.new_name
        shutil.copyfile(graft.source, dest)
        dest.chmod(stat.S_IMODE(Path(graft.source).stat().st_mode) | stat.S_IWUSR | stat.S_IRUSR)
        added[graft.member] = dest
    replaced: dict[str, Path] = {}
    for patch in plan.patches:
        path = added.get(patch.member)
        if path is None:
            path = tree / patch.member
            replaced[patch.member] = path
        patchelf.apply(patch, path)
    new_name, tag_lines = retag(wheel.filename, wheel.wheel_tags, plan.platform_tags, arch)
    wheel_text = archive.render_wheel_metadata(wheel.wheel_metadata, tag_lines)
    return archive.write_wheel(
        wheel,
        out_dir / new_name,
        replaced=replaced,
        added=added,
        wheel_text=wheel_text,
        compression_level=options.compression_level,
    )
