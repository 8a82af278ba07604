"""The repair pipeline: read wheel -> read ELFs -> resolve -> audit -> plan -> patch -> write.

Short on purpose: each step lives in its own module (which C library: :mod:`relabel.libc`;
dlopen'ed libraries: :mod:`relabel.included`; the changes and the new tags:
:mod:`relabel.plan`); this one only passes records along, owns the scratch directory, and
decides what lands in the output directory. :mod:`relabel.pipeline` runs it for both front
ends.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from relabel import archive, floor_setting, included, libc, policy
from relabel.archive import check_member_name
from relabel.audit import Audit, Kind, audit, installed_path
from relabel.config import Settings
from relabel.elf import ElfInfo, looks_like_elf, read_elf
from relabel.errors import (
    LibraryNotFoundError,
    NotPlatformWheelError,
    OutputError,
    PolicyError,
    ReplacesInputError,
    ScratchError,
    WheelError,
)
from relabel.report import advice
from relabel.resolve import Resolver

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from relabel import floor, musl
    from relabel.plan import Plan

_MIN_ELF_SIZE = 52  # the smallest ELF header (32-bit)


@dataclass(frozen=True)
class Options(Settings):
    """What a run is asked to do: the settings (see :class:`relabel.config.Settings`), and
    what the front end decides itself."""

    #: auto target with nothing reachable: True -> error (the command line), False -> keep
    #: the linux tag (the backend)
    strict: bool = False

    @classmethod
    def of(cls, settings: Settings, *, strict: bool = False) -> Options:
        """The options of a run with ``settings``."""
        values = {f.name: getattr(settings, f.name) for f in dataclasses.fields(Settings)}
        return cls(**values, strict=strict)

    def resolver(self) -> Resolver:
        return Resolver(
            library_dirs=self.library_dirs,
            exclude=self.exclude,
            ldpaths=self.ldpaths,
            root=self.sysroot or "/",
        )


# a result read by attribute, never compared nor shown: no generated __eq__ and __repr__
@dataclass(frozen=True, eq=False, repr=False)
class Analysis:
    """What auditing a wheel found (pure: no ELF file to audit, and no audit)."""

    wheel: Path
    pure: bool
    audit: Audit | None
    arch: str | None
    libc: str | None
    notes: tuple[str, ...] = ()
    #: included (dlopen) libraries: wheel member -> file placed in the scratch tree
    included: tuple[tuple[str, str], ...] = ()
    #: what lowering the glibc floor did (or, with "off", would do); None when the wheel is
    #: not glibc, or the floor is off and nothing could be lowered
    glibc_floor: floor.WheelFloor | None = None


# a result read by attribute, never compared nor shown: no generated __eq__ and __repr__
@dataclass(frozen=True, eq=False, repr=False)
class Result:
    """A repair: the audit of the wheel as it was, the wheel written, and the plan it
    followed (None for a wheel without ELF files, passed through)."""

    analysis: Analysis
    output: Path
    plan: Plan | None = None


def dist_name(wheel: archive.WheelFile) -> str:
    """The distribution part of the file name, as auditwheel names ``<name>.libs``."""
    return wheel.filename.split("-", 1)[0]


def _scan(
    wheel: archive.WheelFile, tree: Path, options: Options
) -> tuple[str | None, dict[str, ElfInfo], list[tuple[str, str]]]:
    """Extract and parse every ELF member of the architecture of the wheel."""
    arch = libc.wheel_arch(wheel)
    dist_prefix = wheel.dist_info + "/"
    candidates = [
        name
        for name, member in wheel.members.items()
        if not name.startswith(dist_prefix)
        and not name.endswith(".py")
        and member.size >= _MIN_ELF_SIZE
        and not any(fnmatch.fnmatchcase(name, pattern) for pattern in options.skip_scan)
        and looks_like_elf(wheel.head(name))
    ]

    _check_install_clashes(wheel.filename, candidates)

    def extract(name: str) -> ElfInfo:
        wheel.extract(name, disk_path(tree, name))
        return read_elf(disk_path(tree, name), display=name)

    # Inflating releases the GIL: large libraries are extracted side by side, largest first.
    by_size = sorted(candidates, key=lambda n: -wheel.members[n].size)
    if len(by_size) < 2:
        parsed = {name: extract(name) for name in by_size}  # no pool to start for one file
    else:
        from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415 - see above

        pool = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1))
        try:
            parsed = dict(zip(by_size, pool.map(extract, by_size)))
        finally:
            # one bad member (or an interrupt) does not wait for every other extraction
            pool.shutdown(wait=True, cancel_futures=True)
    infos: dict[str, ElfInfo] = {}
    skipped: list[tuple[str, str]] = []
    android_tag = libc.android_tag(wheel)
    for name in candidates:
        info = parsed[name]
        if android_tag is not None:
            from relabel import android  # noqa: PLC0415 - Android wheels only

            info = android.arch_for_abi(info, android_tag.abi)
        if info.arch is None:
            skipped.append((name, info.arch_problem or "unknown architecture"))
            continue
        if arch is None:
            arch = info.arch
        if info.arch != arch:
            skipped.append((name, f"built for {info.arch}, the wheel is {arch}"))
            continue
        infos[name] = info
    return arch, infos, skipped


def disk_path(tree: Path, member: str) -> Path:
    """Where ``member`` is extracted: at its installed place relative to site-packages
    (``<name>.data/platlib/pkg/x.so`` as ``pkg/x.so``), so that ``$ORIGIN`` means there
    what it will mean once installed; members installed elsewhere keep their archive path."""
    return tree / (installed_path(member) or member)


def _check_install_clashes(wheel: str, members: Sequence[str]) -> None:
    seen: dict[Path, str] = {}
    for name in members:
        where = disk_path(Path(), name)
        other = seen.setdefault(where, name)
        if other != name:
            raise WheelError(
                wheel,
                f"members {other!r} and {name!r} both install to {str(where)!r};"
                " an installer would overwrite one with the other",
                member=name,
            )


def read_wheel_elves(
    wheel: archive.WheelFile, tree: Path, options: Options, resolver: Resolver
) -> Analysis:
    """Extract and parse every ELF member, resolve dependencies, and audit."""
    arch, infos, skipped = _scan(wheel, tree, options)
    notes = (*wheel.notes, *(f"ignored {n}: {why}" for n, why in skipped))
    if not infos and skipped:
        raise WheelError(
            wheel.filename,
            f"none of its ELF files can be audited for {arch or 'any known architecture'}: "
            + "; ".join(f"{n} ({why})" for n, why in skipped)
            + ". Check that the wheel was built for the architecture its tag names, or"
            " leave such files out of the audit with skip-scan.",
        )
    if not infos or arch is None:
        return Analysis(wheel.path, True, None, arch, None, notes=notes)
    libs_dir = dist_name(wheel) + options.lib_sdir
    placed = included.place(options.include, resolver, tree, libs_dir, infos)
    family = libc.detect(wheel, infos, resolver.root)
    lowered = None
    if family is policy.Libc.ANDROID:
        policies = libc.android_policies(wheel, arch)
        # Cross-compiled: the build machine's libraries are never the device's.
        if options.ldpaths is None:
            resolver.ldpaths = ()
        if resolver.env_paths is None:
            resolver.env_paths = ()
    else:
        policies = policy.policies_for(family, arch)
    if family is policy.Libc.GLIBC:
        infos, lowered = _lower_glibc_floor(tree, infos, options)
        if lowered is not None and lowered.setting == floor_setting.OFF:
            notes += tuple(lowered.lines())
    nodes = resolver.resolve_wheel(
        [(name, str(disk_path(tree, name)), info) for name, info in infos.items()]
    )
    result = audit(
        nodes,
        policies,
        arch=arch,
        libc=family.value,
        wheel_root=os.path.realpath(tree),
        isa_check=options.isa_check,
        skipped=skipped,
        musl_host=_musl_host() if family is policy.Libc.MUSL else None,
    )
    return Analysis(wheel.path, False, result, arch, family.value, notes, tuple(placed), lowered)


def _musl_host() -> musl.HostMusl | None:
    from relabel import musl  # noqa: PLC0415 - musl wheels only

    return musl.host_version()


def _lower_glibc_floor(
    tree: Path, infos: dict[str, ElfInfo], options: Options
) -> tuple[dict[str, ElfInfo], floor.WheelFloor | None]:
    """Rewrite the glibc version needs of every ELF file in the tree (grafts are decided
    later and stay as built), then re-read the rewritten files for the audit.

    None when the floor is off and no file needs a glibc newer than the oldest release it
    covers: off would have nothing to say, and the floor's tables are not loaded."""
    if options.glibc_floor == floor_setting.OFF and not floor_setting.may_lower(infos.values()):
        return infos, None
    from relabel import floor, patchelf  # noqa: PLC0415 - see above

    tool = patchelf.find() if options.glibc_floor != floor_setting.OFF else None
    files = {member: disk_path(tree, member) for member in infos}
    done = floor.for_wheel(files, options.glibc_floor, options.glibc_floor_allow, tool)
    for member in done.lowered:
        infos[member] = read_elf(files[member], display=member)
    return infos, done


def analyze(wheel_path: Path, options: Options, *, scratch: Path | None = None) -> Analysis:
    """Audit a wheel file without changing anything (``relabel show``); temporary files go
    under ``scratch`` (``$TMPDIR`` when None).

    The wheel is audited as it is: glibc-floor only says, in a note, what lowering would
    reach (check mode must not pass a wheel on the strength of files it does not write).
    """
    options = dataclasses.replace(options, glibc_floor=floor_setting.OFF)
    with (
        archive.WheelFile(wheel_path) as wheel,
        tempfile.TemporaryDirectory(prefix="relabel-", dir=scratch) as tmp,
    ):
        return read_wheel_elves(wheel, Path(tmp) / "tree", options, options.resolver())


def _sha256(path: str) -> str:
    import hashlib  # noqa: PLC0415 - repairs only: OpenSSL's start-up is no part of show

    digest = hashlib.sha256()
    with Path(path).open("rb") as stream:
        while chunk := stream.read(archive.CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _hashes(paths: Sequence[str]) -> dict[str, str]:
    """SHA-256 of each file, side by side (hashing releases the GIL); no pool for one."""
    if len(paths) < 2:
        return {path: _sha256(path) for path in paths}
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415 - see _scan

    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        return dict(zip(paths, pool.map(_sha256, paths)))


def repair(
    wheel_path: Path, out_dir: Path, options: Options, *, scratch: Path | None = None
) -> Result:
    """Repair one wheel into ``out_dir``; the input is never modified. Temporary files go
    under ``scratch`` (``$TMPDIR`` when None)."""
    # imported here, as in _apply: ``relabel show`` audits without planning or patching
    from relabel.plan import describe_blockers, make_plan  # noqa: PLC0415

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(str(out_dir), exc.strerror or str(exc)) from None
    with (
        archive.WheelFile(wheel_path) as wheel,
        tempfile.TemporaryDirectory(prefix="relabel-", dir=scratch) as tmp,
    ):
        scratch = Path(tmp)
        analysis = read_wheel_elves(wheel, scratch / "tree", options, options.resolver())
        if analysis.pure or analysis.audit is None:
            if not options.allow_pure_python_wheel:
                raise NotPlatformWheelError(wheel.filename)
            output = _passthrough(wheel_path, out_dir)
            return Result(analysis, output, None)
        result = analysis.audit
        sources = {p for v in result.verdicts for p in v.external_files}
        sources |= {source for _, source in analysis.included}  # for the SBOM
        hashes = _hashes(sorted(sources))
        name = dist_name(wheel)
        rpath_members = frozenset(
            n.member for n in result.nodes if analysis.included and n.info.is_python_extension
        )
        plan = make_plan(
            result,
            plat=options.plat,
            libs_dir=name + options.lib_sdir,
            hashes=hashes,
            only_plat=options.only_plat,
            rpath_members=rpath_members,
            scripts_dir=f"{name}.scripts",
        )
        _check_new_members(wheel, plan, analysis)
        if plan.keeps_linux:
            # a linux tag asked for by name (--plat linux_x86_64 --only-plat) is met as it is
            strict = options.strict and options.plat != plan.target.policy.name
            not_found = [f for f in plan.unmet if f.kind == Kind.NOT_FOUND]
            if strict and not_found:
                raise LibraryNotFoundError(
                    [(f.library or "?", f.file, f.searched) for f in not_found],
                    {f.library or "?": f.skipped for f in not_found if f.skipped},
                )
            if strict:
                raise PolicyError(
                    # an Android wheel has one policy, its tag
                    result.most_permissive.policy.name
                    if analysis.libc == policy.Libc.ANDROID
                    else "manylinux/musllinux",
                    describe_blockers(plan.unmet),
                    advice(plan.unmet),
                )
            output = _passthrough(wheel_path, out_dir)
            return Result(analysis, output, plan)
        try:
            output = _apply(
                wheel, scratch, plan, out_dir, analysis=analysis, options=options, hashes=hashes
            )
        except OSError as exc:
            # copying and patching in the scratch directory (a full disk, say); problems
            # with the output directory arrive as OutputError from archive
            raise ScratchError(str(scratch), exc.strerror or str(exc)) from None
        return Result(analysis, output, plan)


def _check_new_members(wheel: archive.WheelFile, plan: Plan, analysis: Analysis) -> None:
    """Every member name a repair creates passes the check applied to names read, and
    neither a graft nor a moved executable takes the name of a member already there (that
    member's users would load another file)."""
    created = [*(g.member for g in plan.grafts), *(m.new_member for m in plan.moves)]
    for name in created:
        if name in wheel.members:
            raise WheelError(
                wheel.filename,
                f"the repair would write {name!r}, which is already a member of the wheel"
                " with other content; rename that member (or, for a library, choose another"
                " --lib-sdir)",
                member=name,
            )
    for name in (*created, *(member for member, _ in analysis.included)):
        check_member_name(wheel.filename, name)
        parts = name.split("/")
        for parent in ("/".join(parts[:depth]) for depth in range(1, len(parts))):
            if parent in wheel.members:
                raise WheelError(
                    wheel.filename,
                    f"member {parent!r} is a file, but the repair would write {name!r}, which"
                    " needs it to be a directory; rename that member (or choose another"
                    " --lib-sdir)",
                    member=name,
                )


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
    analysis: Analysis,
    options: Options,
    hashes: Mapping[str, str],
) -> Path:
    from relabel.plan import launcher, retag  # noqa: PLC0415 - see repair
    from relabel.produce import Produce  # noqa: PLC0415 - see repair

    tree = scratch / "tree"
    libs = scratch / "libs"
    libs.mkdir()
    patches = {p.member: p for p in plan.patches}

    def produce(member: str, source: Path, dest: Path) -> Produce:
        info = source.stat()
        return Produce(
            source,
            dest,
            patches.get(member),
            options.strip and member in patches,
            stat.S_IMODE(info.st_mode),
            info.st_size,
        )

    added: dict[str, archive.Source] = {}
    replaced: dict[str, archive.Source] = {}
    for member, _ in analysis.included:
        added[member] = produce(member, tree / member, tree / member)
    for graft in plan.grafts:
        added[graft.member] = produce(graft.member, Path(graft.source), libs / graft.new_name)
    for member in patches:
        if member not in added:
            on_disk = disk_path(tree, member)
            replaced[member] = produce(member, on_disk, on_disk)
    lowered = analysis.glibc_floor.lowered if analysis.glibc_floor else ()
    for member in lowered:
        if member not in added and member not in replaced:
            on_disk = disk_path(tree, member)
            replaced[member] = produce(member, on_disk, on_disk)
    for move in plan.moves:
        added[move.new_member] = replaced.pop(move.member)
        shim = scratch / "shims" / move.member
        shim.parent.mkdir(parents=True, exist_ok=True)
        shim.write_text(launcher(move))
        shim.chmod(0o755)
        replaced[move.member] = shim
    new_name, tag_lines = wheel.filename, wheel.wheel_tags
    if options.update_tags:
        libc_free = not any(
            n.info.interpreter or n.info.needed
            for n in (analysis.audit.nodes if analysis.audit else ())
        )
        new_name, tag_lines = retag(
            wheel.filename,
            wheel.wheel_tags,
            plan.platform_tags,
            analysis.arch or "",
            libc_free=libc_free,
        )
    final = out_dir / new_name
    in_place = archive.replaces(final, wheel.path)
    if in_place:
        # Written aside first: only a wheel that comes out the same, byte for byte (a
        # repaired wheel repaired again), may stay where it is; anything else would
        # replace the input with another file.
        final = scratch / "aside" / new_name
        final.parent.mkdir()
    wheel_text = archive.render_wheel_metadata(wheel.wheel_metadata, tag_lines)
    extra: dict[str, bytes | Callable[[], bytes]] = {}
    grafted = [(g.member, g.source) for g in plan.grafts]
    grafted += [(member, source) for member, source in analysis.included]
    if lowered and analysis.glibc_floor is not None:
        from relabel import floor  # noqa: PLC0415 - see _lower_glibc_floor

        extra[f"{wheel.dist_info}/{floor.PROVENANCE}"] = analysis.glibc_floor.provenance()
    if grafted:
        from relabel import sbom  # noqa: PLC0415 - only a repair that grafts writes an SBOM

        # Package-manager lookups take a while: done in a worker, beside the compression.
        extra[f"{wheel.dist_info}/sboms/{sbom.SBOM_NAME}"] = functools.partial(
            sbom.document, new_name, wheel.project, str(wheel.version), grafted, hashes
        )
    written = archive.write_wheel(
        wheel,
        final,
        replaced=replaced,
        added=added,
        wheel_text=wheel_text,
        extra_files=extra,
        compression_level=options.zip_compression_level,
    )
    if not in_place:
        return written
    import filecmp  # noqa: PLC0415 - a repair in place only

    if filecmp.cmp(written, wheel.path, shallow=False):
        return wheel.path
    raise ReplacesInputError(str(wheel.path), str(out_dir / new_name))
