"""The pipeline: read wheel -> read ELFs -> resolve -> audit -> plan -> patch -> write wheel.

Short on purpose: each step lives in its own module; this one only passes records along,
owns the scratch directory, and decides what lands in the output directory. The backend
and the command line both enter here.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import hashlib
import os
import shutil
import stat
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.tags import Tag, parse_tag
from packaging.utils import parse_wheel_filename

from relabel import android, archive, floor, musl, patchelf, policy, sbom
from relabel.arch import is_glibc_libc, is_musl_interpreter, is_musl_libc
from relabel.archive import check_member_name
from relabel.audit import NOT_FOUND, Audit, audit, installed_path
from relabel.elf import ElfInfo, looks_like_elf, read_elf
from relabel.errors import (
    LibraryError,
    LibraryNotFoundError,
    NotPlatformWheelError,
    OutputError,
    PolicyError,
    ScratchError,
    WheelError,
)
from relabel.plan import Patch, Plan, advice, describe_blockers, make_plan
from relabel.resolve import Resolver

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

_MIN_ELF_SIZE = 52  # the smallest ELF header (32-bit)


@dataclass(frozen=True)
class Options:
    """What a run may be asked to do (the backend builds it from Settings, the CLI from flags)."""

    plat: str = "auto"
    exclude: tuple[str, ...] = ()
    library_dirs: tuple[str, ...] = ()
    #: replaces the system search directories (auditwheel's --ldpaths)
    ldpaths: tuple[str, ...] | None = None
    #: libraries loaded with dlopen: grafted under their own soname, reachable by RPATH
    include: tuple[str, ...] = ()
    #: globs of wheel members never treated as ELF files
    skip_scan: tuple[str, ...] = ()
    only_plat: bool = False
    update_tags: bool = True
    isa_check: bool = True
    strip: bool = False
    lib_sdir: str = ".libs"
    compression_level: int = 6
    #: auto target with nothing reachable: True -> error, False -> keep linux tag
    strict: bool = False
    #: a wheel without ELF files passes through (False: NotPlatformWheelError)
    allow_pure: bool = True
    #: a directory to resolve system libraries in instead of / (foreign architectures)
    sysroot: str | None = None
    #: "off", "auto" or a glibc release/policy to lower the files' glibc needs to
    glibc_floor: str = "off"
    glibc_floor_allow: tuple[str, ...] = ()

    def resolver(self) -> Resolver:
        return Resolver(
            library_dirs=self.library_dirs,
            exclude=self.exclude,
            ldpaths=self.ldpaths,
            root=self.sysroot or "/",
        )


@dataclass(frozen=True)
class Analysis:
    wheel: Path
    pure: bool
    audit: Audit | None
    arch: str | None
    libc: str | None
    notes: tuple[str, ...] = ()
    #: included (dlopen) libraries: wheel member -> file placed in the scratch tree
    included: tuple[tuple[str, str], ...] = ()
    #: what lowering the glibc floor did (or, with "off", would do)
    glibc_floor: floor.WheelFloor | None = None


@dataclass(frozen=True)
class Result:
    analysis: Analysis
    output: Path
    plan: Plan | None = None


def _android_tag(wheel: archive.WheelFile) -> android.AndroidTag | None:
    for tag in wheel.tags:
        try:
            found = android.parse_tag(tag.platform)
        except ValueError:
            continue  # reported once the files say Android (_android_policies)
        if found is not None:
            return found
    return None


def wheel_arch(wheel: archive.WheelFile) -> str | None:
    """The architecture the file name's Linux platform tags name (installers go by it)."""
    android_tag = _android_tag(wheel)
    if android_tag is not None:
        return android_tag.arch
    for tag in sorted(wheel.tags, key=str):
        platform = tag.platform
        try:
            arch: str | None = policy.lookup(platform).arch
        except KeyError:
            # a policy newer than relabel's data, or one missing on this architecture,
            # still ends with the architecture
            linux = platform.startswith(("manylinux", "musllinux_"))
            arch = next((a for a in policy.ARCHITECTURES if linux and platform.endswith(a)), None)
        if arch in policy.ARCHITECTURES:
            return arch
    return None


def _detect_libc(
    wheel: archive.WheelFile, infos: Mapping[str, ElfInfo], root: str = "/"
) -> policy.Libc:
    """musl or glibc, as auditwheel decides: from the ELF files (interpreter, DT_NEEDED),
    then CPython's extension suffix, then the wheel's tags when they name one C library
    family, then the C library of the system the libraries are resolved in (``root``).

    Android comes first: bionic's soname is plain ``libc.so`` too, so an ``android_`` tag
    (or bionic's linker, or CPython's Android extension suffix) decides before musl's rules.
    """
    if any(t.platform.startswith(android.PREFIX) for t in wheel.tags) or any(
        android.is_android_file(name, info) for name, info in infos.items()
    ):
        return policy.Libc.ANDROID
    for info in infos.values():
        if info.interpreter:
            return policy.Libc.MUSL if is_musl_interpreter(info.interpreter) else policy.Libc.GLIBC
        for needed in info.needed:
            # musl's soname is libc.musl-<arch>.so.1 on Alpine and plain libc.so elsewhere;
            # glibc's is libc.so.6 on every architecture.
            if is_musl_libc(needed):
                return policy.Libc.MUSL
            if is_glibc_libc(needed):
                return policy.Libc.GLIBC
    for name in infos:
        # CPython's extension suffix names the C library (...-x86_64-linux-musl.so); before
        # 3.11 musl builds said -linux-gnu too, so that one counts from 3.11 on.
        if name.endswith(("-linux-musl.so", "-linux-musleabihf.so")):
            return policy.Libc.MUSL
        soabi = name.rsplit("/", 1)[-1].split(".")[-2:-1]
        if name.endswith(("-linux-gnu.so", "-linux-gnueabihf.so")) and soabi:
            implementation, _, rest = soabi[0].partition("-")
            if implementation == "cpython" and rest[:3].isdigit() and int(rest[:3]) >= 311:
                return policy.Libc.GLIBC
    # Tags that name one C library family decide next, as auditwheel's wheel-name rule does;
    # a wheel tagged for both (a static executable) or for neither falls to the system.
    families = {
        policy.Libc.MUSL if t.platform.startswith("musllinux_") else policy.Libc.GLIBC
        for t in wheel.tags
        if t.platform.startswith(("musllinux_", "manylinux"))
    }
    if len(families) == 1:
        return families.pop()
    system = _system_libc(root)
    return policy.Libc.GLIBC if system is None else system


def _system_libc(root: str) -> policy.Libc | None:
    """The C library of the system under ``root``: musl where Alpine's ``libc.musl-*``
    is (auditwheel's test; a glibc system with the musl package installed has only
    ``ld-musl-*``), glibc where ``libc.so.6`` is; None for a bare sysroot."""
    base = Path(root)
    if any(base.glob("lib/libc.musl-*.so.1")):
        return policy.Libc.MUSL
    for pattern in ("lib*/libc.so.6", "lib*/*/libc.so.6", "usr/lib*/libc.so.6"):
        if any(base.glob(pattern)):
            return policy.Libc.GLIBC
    return None


def _android_policies(wheel: archive.WheelFile, arch: str) -> tuple[policy.Policy, ...]:
    """The policy of an Android wheel's one platform tag, checked against its files."""
    platforms = sorted({t.platform for t in wheel.tags})
    problem = None
    if len(platforms) != 1 or not platforms[0].startswith(android.PREFIX):
        problem = (
            "its files are built for Android, so it needs exactly one android_<api>_<abi>"
            f" platform tag (PEP 738), not {', '.join(platforms)}"
        )
    else:
        try:
            policies = policy.android_policies(platforms[0])
        except KeyError as exc:
            problem = str(exc.args[0])
        else:
            if policies[0].arch == arch:
                return policies
            problem = f"its tag {platforms[0]} is for {policies[0].arch}, its files are {arch}"
    raise WheelError(wheel.filename, problem + ". Build it for the tag it carries, or rename it.")


def dist_name(wheel: archive.WheelFile) -> str:
    """The distribution part of the file name, as auditwheel names ``<name>.libs``."""
    return wheel.filename.split("-", 1)[0]


def _scan(
    wheel: archive.WheelFile, tree: Path, options: Options
) -> tuple[str | None, dict[str, ElfInfo], list[tuple[str, str]]]:
    """Extract and parse every ELF member of the architecture of the wheel."""
    arch = wheel_arch(wheel)
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
    pool = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1))
    try:
        parsed = dict(zip(by_size, pool.map(extract, by_size)))
    finally:
        # one bad member (or an interrupt) does not wait for every other extraction
        pool.shutdown(wait=True, cancel_futures=True)
    infos: dict[str, ElfInfo] = {}
    skipped: list[tuple[str, str]] = []
    android_tag = _android_tag(wheel)
    for name in candidates:
        info = parsed[name]
        if android_tag is not None:
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


def _plain_soname(soname: str, library: str) -> str:
    """``soname`` when it can be a file name in ``<dist>.libs/``; else a clear refusal."""
    if soname in ("", ".", "..") or any(c in soname for c in "/\\\0"):
        raise LibraryError(
            library,
            f"its SONAME {soname!r} is not a plain file name, so it cannot name the copy"
            " put into the wheel; leave it out of include, or give it a proper soname"
            " (patchelf --set-soname)",
        )
    return soname


def _copy_library(source: str, dest: Path, tree: Path) -> None:
    """Copy an included library into the scratch tree; a source that cannot be read is
    the library's problem, a copy that cannot be written the scratch directory's."""
    try:
        reader = Path(source).open("rb")  # noqa: SIM115 -- closed below, errors told apart
    except OSError as exc:
        raise LibraryError(source, f"cannot be read ({exc.strerror or exc})") from None
    with reader:
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            writer = dest.open("wb")
        except OSError as exc:
            raise ScratchError(str(tree), exc.strerror or str(exc)) from None
        with writer:
            while True:
                try:
                    chunk = reader.read(archive.CHUNK)
                except OSError as exc:
                    raise LibraryError(source, f"cannot be read ({exc.strerror or exc})") from None
                if not chunk:
                    break
                try:
                    writer.write(chunk)
                except OSError as exc:
                    raise ScratchError(str(tree), exc.strerror or str(exc)) from None
    try:
        dest.chmod(0o755)
    except OSError as exc:
        raise ScratchError(str(tree), exc.strerror or str(exc)) from None


def _place_included(
    options: Options, resolver: Resolver, tree: Path, libs_dir: str, infos: dict[str, ElfInfo]
) -> list[tuple[str, str]]:
    """Copy the ``include`` libraries into the tree under ``libs_dir/<soname>``."""
    if not options.include:
        return []
    reference = next(iter(infos.values()))
    # dlopen from any of the wheel's files searches that file's directories
    search = list(
        dict.fromkeys(
            d for name, info in infos.items() for d in resolver.search_dirs(str(tree / name), info)
        )
    )
    placed: list[tuple[str, str]] = []
    missing: list[tuple[str, str, Sequence[str]]] = []
    for wanted in options.include:
        if "/" in wanted:
            # a path given by the user (not a DT_NEEDED): looked up in its own directory
            where = Path(wanted).resolve()
            dirs: Sequence[str] = [str(where.parent)]
            real, found = resolver.find(where.name, reference, dirs)
        else:
            dirs = search
            real, found = resolver.find(wanted, reference, dirs)
        if real is None or found is None:
            missing.append((wanted, "include (loaded with dlopen)", dirs))
            continue
        soname = _plain_soname(found.soname or Path(wanted).name, real)
        member = f"{libs_dir}/{soname}"
        check_member_name(real, member)
        _copy_library(real, tree / member, tree)
        # the copy is the file resolve parsed: only its name in the wheel is new
        infos[member] = dataclasses.replace(found, path=member)
        placed.append((member, real))
    if missing:
        raise LibraryNotFoundError(missing)
    return placed


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
    included = _place_included(options, resolver, tree, libs_dir, infos)
    libc = _detect_libc(wheel, infos, resolver.root)
    lowered = None
    if libc is policy.Libc.ANDROID:
        policies = _android_policies(wheel, arch)
        # Cross-compiled: the build machine's libraries are never the device's.
        if options.ldpaths is None:
            resolver.ldpaths = ()
        if resolver.env_paths is None:
            resolver.env_paths = ()
    else:
        policies = policy.policies_for(libc, arch)
    if libc is policy.Libc.GLIBC:
        infos, lowered = _lower_glibc_floor(tree, infos, options)
        notes += tuple(lowered.lines()) if lowered.setting == floor.OFF else ()
    nodes = resolver.resolve_wheel(
        [(name, str(disk_path(tree, name)), info) for name, info in infos.items()]
    )
    result = audit(
        nodes,
        policies,
        arch=arch,
        libc=libc.value,
        wheel_root=os.path.realpath(tree),
        isa_check=options.isa_check,
        skipped=skipped,
        musl_host=musl.host_version() if libc is policy.Libc.MUSL else None,
    )
    return Analysis(wheel.path, False, result, arch, libc.value, notes, tuple(included), lowered)


def _lower_glibc_floor(
    tree: Path, infos: dict[str, ElfInfo], options: Options
) -> tuple[dict[str, ElfInfo], floor.WheelFloor]:
    """Rewrite the glibc version needs of every ELF file in the tree (grafts are decided
    later and stay as built), then re-read the rewritten files for the audit."""
    tool = patchelf.find() if options.glibc_floor != floor.OFF else None
    files = {member: disk_path(tree, member) for member in infos}
    done = floor.for_wheel(files, options.glibc_floor, options.glibc_floor_allow, tool)
    for member in done.lowered:
        infos[member] = read_elf(files[member], display=member)
    return infos, done


def analyze(wheel_path: Path, options: Options) -> Analysis:
    """Audit a wheel file without changing anything (``relabel show``).

    The wheel is audited as it is: glibc-floor only says, in a note, what lowering would
    reach (check mode must not pass a wheel on the strength of files it does not write).
    """
    options = dataclasses.replace(options, glibc_floor=floor.OFF)
    with (
        archive.WheelFile(wheel_path) as wheel,
        tempfile.TemporaryDirectory(prefix="relabel-") as tmp,
    ):
        return read_wheel_elves(wheel, Path(tmp) / "tree", options, options.resolver())


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as stream:
        while chunk := stream.read(archive.CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def retag(
    filename: str,
    tag_lines: Sequence[str],
    new_platforms: Sequence[str],
    arch: str,
    *,
    libc_free: bool = False,
) -> tuple[str, list[str]]:
    """New file name and WHEEL Tag lines for a wheel repaired to ``new_platforms``.

    The name keeps its interpreter and ABI tags. Of its platform tags for ``arch``, only
    those the repair vouches for stay: the new ones and older policies of the same C
    library, which a wheel meeting a newer one meets too. ``linux_<arch>`` goes, and so
    does any claim the audit contradicts (a vendor-renamed ``manylinux1`` wheel that needs
    a newer glibc). The Tag lines are exactly the tags the new name stands for: kept lines
    in their order, then the new ones. With ``libc_free`` (no file of the wheel names a C
    library: static executables), claims for the other C library's policies stay as well:
    the audit judged one family, and such files run under both.
    """
    _, _, _, tags = parse_wheel_filename(filename)
    targets = [policy.lookup(p) for p in new_platforms]

    def vouched(platform: str) -> bool:
        if platform in new_platforms:
            return True
        try:
            claimed = policy.lookup(platform)
        except KeyError:
            return True  # not a Linux policy: nothing the audit could contradict
        if claimed.arch != arch:
            return True
        if libc_free and not claimed.is_linux and all(claimed.libc != t.libc for t in targets):
            return True
        return any(
            not claimed.is_linux and claimed.libc == t.libc and claimed.priority <= t.priority
            for t in targets
        )

    old_platforms = sorted({t.platform for t in tags})
    platforms = [p for p in old_platforms if vouched(p)]
    platforms += [p for p in new_platforms if p not in platforms]
    if "any" in platforms and len(platforms) > 1:
        platforms.remove("any")
    pairs = sorted({(t.interpreter, t.abi) for t in tags})
    wanted = {Tag(i, a, p) for i, a in pairs for p in platforms}
    lines: list[str] = []
    for line in tag_lines:
        lines += [str(t) for t in sorted(parse_tag(line), key=str) if t in wanted]
    for interpreter, abi in pairs:
        lines += [f"{interpreter}-{abi}-{p}" for p in platforms]
    lines = list(dict.fromkeys(lines))
    # the file name spells the interpreter, ABI and build parts as it did
    head = filename[: -len(".whl")].rsplit("-", 1)[0]
    return f"{head}-{'.'.join(sorted(platforms))}.whl", lines


def repair(wheel_path: Path, out_dir: Path, options: Options) -> Result:
    """Repair one wheel into ``out_dir``; the input is never modified."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(str(out_dir), exc.strerror or str(exc)) from None
    with (
        archive.WheelFile(wheel_path) as wheel,
        tempfile.TemporaryDirectory(prefix="relabel-") as tmp,
    ):
        scratch = Path(tmp)
        analysis = read_wheel_elves(wheel, scratch / "tree", options, options.resolver())
        if analysis.pure or analysis.audit is None:
            if not options.allow_pure:
                raise NotPlatformWheelError(wheel.filename)
            output = _passthrough(wheel_path, out_dir)
            return Result(analysis, output, None)
        result = analysis.audit
        sources = {p for v in result.verdicts for p in v.external_files}
        sources |= {source for _, source in analysis.included}  # for the SBOM
        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
            hashes = dict(zip(sorted(sources), pool.map(_sha256, sorted(sources))))
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
            not_found = [f for f in plan.unmet if f.kind == NOT_FOUND]
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


_SHIM = """\
#!python
# Launcher written by relabel: the real executable lives in platlib next to the
# libraries it needs, at {target!r}.
import os
import sys
import sysconfig

if __name__ == "__main__":
    target = os.path.join(sysconfig.get_path("platlib"), {target!r})
    os.execv(target, [target, *sys.argv[1:]])
"""


@dataclass(frozen=True)
class _Produce:
    """Make one new member's file: copy or patch ``source`` into ``dest`` (maybe strip).

    Called from the writer's worker threads, so that patching one library overlaps
    compressing another; ``size_hint`` lets the writer start the largest first.
    """

    source: Path
    dest: Path
    patch: Patch | None
    strip: bool
    mode: int
    size_hint: int

    def __call__(self) -> Path:
        if self.strip:
            # before patching, as auditwheel does: strip may undo patchelf's layout changes
            if self.source != self.dest:
                shutil.copyfile(self.source, self.dest)
            patchelf.strip(self.dest, self.patch.member if self.patch else self.dest.name)
            if self.patch is not None:
                patchelf.apply(self.patch, self.dest)
        elif self.patch is not None:
            patchelf.apply(self.patch, self.source, self.dest if self.source != self.dest else None)
        elif self.source != self.dest:
            shutil.copyfile(self.source, self.dest)
        self.dest.chmod(self.mode | stat.S_IRUSR | stat.S_IWUSR)
        return self.dest


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
    tree = scratch / "tree"
    libs = scratch / "libs"
    libs.mkdir()
    patches = {p.member: p for p in plan.patches}

    def produce(member: str, source: Path, dest: Path) -> _Produce:
        info = source.stat()
        return _Produce(
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
        shim.write_text(_SHIM.format(target=move.new_member))
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
    wheel_text = archive.render_wheel_metadata(wheel.wheel_metadata, tag_lines)
    extra: dict[str, bytes | Callable[[], bytes]] = {}
    grafted = [(g.member, g.source) for g in plan.grafts]
    grafted += [(member, source) for member, source in analysis.included]
    if lowered and analysis.glibc_floor is not None:
        extra[f"{wheel.dist_info}/{floor.PROVENANCE}"] = analysis.glibc_floor.provenance()
    if grafted:
        # Package-manager lookups take a while: done in a worker, beside the compression.
        extra[f"{wheel.dist_info}/sboms/{sbom.SBOM_NAME}"] = functools.partial(
            sbom.document, new_name, wheel.project, str(wheel.version), grafted, hashes
        )
    return archive.write_wheel(
        wheel,
        out_dir / new_name,
        replaced=replaced,
        added=added,
        wheel_text=wheel_text,
        extra_files=extra,
        compression_level=options.compression_level,
    )
