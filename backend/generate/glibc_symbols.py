"""Generate ``relabel/_data/glibc_floor.json``: which glibc symbol versions exist where and when.

``relabel.floor`` rewrites the glibc version requirements of a file so that it loads on an
older glibc. It needs three facts per architecture, all derived here, never guessed:

- **existence**: which ``symbol@version`` each glibc library (``libc.so.6``,
  ``libpthread.so.0``, ...) exports in each release from 2.17 on, read from glibc's own
  ``*.abilist`` files at every release tag of a git mirror of glibc (the files glibc's
  ``make check-abi`` compares every build with). The versions a library *defines* in a release
  are the versions named in its abilist; ld.so checks each Vernaux against them.
- **same code**: which versions of one symbol are one function today, read from the addresses
  of the dynamic symbols of the newest real ``libc.so.6``/``libm.so.6`` (Debian's ``libc6``
  package of trixie, unpacked with ``dpkg-deb -x``; pass the unpacked roots). Two versions at
  one address are the same code in that glibc, so binding an old version gives a new glibc the
  very function it would have bound anyway.
- the **curated** lists below: renames to an equivalent function, same-library re-versions whose
  old version is a wrapper around the same core, the opt-in behaviour changes, and a denylist.
  Each rename is checked against the addresses when both names are in one library.

Nothing fetched is built or run. Run from the repository root (``bash .ci/glibc-roots``
unpacks the trixie packages into /var/tmp/relabel-floor)::

    R=/var/tmp/relabel-floor
    python backend/generate/glibc_symbols.py GLIBC_GIT x86_64=$R/trixie-amd64 \\
        aarch64=$R/trixie-arm64 > backend/relabel/_data/glibc_floor.json

where GLIBC_GIT is a git directory of glibc with its release tags (e.g. a mirror of
https://github.com/bminor/glibc). ``tests/test_floor_data.py`` regenerates the data and
compares it when ``RELABEL_GLIBC_GIT`` names such a directory.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerSymSection

FIRST_RELEASE = (2, 17)

#: tag architecture -> (abilist directories relative to the tree, newest first; loader soname)
ARCHES: dict[str, tuple[tuple[str, ...], str]] = {
    "x86_64": (
        (
            "sysdeps/unix/sysv/linux/x86_64/64/",
            "sysdeps/unix/sysv/linux/x86_64/64/nptl/",
            "sysdeps/unix/sysv/linux/x86_64/",
        ),
        "ld-linux-x86-64.so.2",
    ),
    "aarch64": (
        (
            "sysdeps/unix/sysv/linux/aarch64/",
            "sysdeps/unix/sysv/linux/aarch64/nptl/",
            "ports/sysdeps/unix/sysv/linux/aarch64/nptl/",
            "ports/sysdeps/unix/sysv/linux/aarch64/",
        ),
        "ld-linux-aarch64.so.1",
    ),
}

#: abilist stem -> soname (the libraries a wheel may depend on from the system glibc)
SONAMES = {
    "libc": "libc.so.6",
    "libm": "libm.so.6",
    "libpthread": "libpthread.so.0",
    "libdl": "libdl.so.2",
    "librt": "librt.so.1",
    "libutil": "libutil.so.1",
    "libanl": "libanl.so.1",
    "libresolv": "libresolv.so.2",
    "libnsl": "libnsl.so.1",
    "libcrypt": "libcrypt.so.1",
    "libmvec": "libmvec.so.1",
    "libBrokenLocale": "libBrokenLocale.so.1",
    "libthread_db": "libthread_db.so.1",
}

#: Class B: same library, the old version wraps the same core (libm's SVID error handling, or
#: memcpy@GLIBC_2.2.5 which behaves like memmove, a superset). Symbol -> why it is safe.
SAME_LIBRARY: dict[str, str] = {
    **dict.fromkeys(
        [
            "exp",
            "exp2",
            "log",
            "log2",
            "pow",
            "expf",
            "exp2f",
            "logf",
            "log2f",
            "powf",
            "hypot",
            "hypotf",
            "fmod",
            "fmodf",
            "exp10",
            "exp10f",
        ],
        "libm re-versioned it when dropping the SVID error wrapper around the same core",
    ),
    "memcpy": "memcpy@GLIBC_2.2.5 behaves like memmove, a superset of memcpy",
}

#: Class C: rename to an equivalent function that old glibc has (needs a new .dynstr string).
RENAMES: dict[str, tuple[str, str]] = {
    "fcntl64": ("fcntl", "fcntl64 is fcntl on LP64 (one function, two names)"),
    "__memcmpeq": ("bcmp", "__memcmpeq only tells equal from unequal, as bcmp does"),
    "explicit_bzero": ("bzero", "a call through the PLT is never optimised away"),
}

#: Class D: behaviour differs; only with ``glibc-floor-allow`` naming the group.
OPT_IN: dict[str, tuple[str, str, str]] = {}
for _base in [
    "strtol",
    "strtoll",
    "strtoul",
    "strtoull",
    "strtoimax",
    "strtoumax",
    "wcstol",
    "wcstoll",
    "wcstoul",
    "wcstoull",
    "wcstoimax",
    "wcstoumax",
]:
    OPT_IN["__isoc23_" + _base] = (
        _base,
        "c23-parsing",
        "C23 parsing also accepts a 0b prefix with base 0 or 2",
    )
for _base in [
    "scanf",
    "fscanf",
    "sscanf",
    "vscanf",
    "vfscanf",
    "vsscanf",
    "wscanf",
    "fwscanf",
    "swscanf",
    "vwscanf",
    "vfwscanf",
    "vswscanf",
]:
    OPT_IN["__isoc23_" + _base] = (
        "__isoc99_" + _base,
        "c23-parsing",
        "C23 %i and %b also accept a 0b prefix",
    )

#: Never lowered even where the addresses agree: symbol -> reason.
DENYLIST = {
    "__libc_start_main": "same code, but the 2.34 caller contract differs (executables' crt1.o)",
    "pthread_kill": "behaviour changed in 2.34 (a thread that exited is no longer an error)",
    "__libc_single_threaded": "a data symbol, not a function",
}


def _release(tag: str) -> tuple[int, int] | None:
    m = re.fullmatch(r"glibc-2\.(\d+)", tag)
    return (2, int(m.group(1))) if m else None


def _git(git_dir: str, *args: str) -> str:
    out = subprocess.run(
        ["git", "--git-dir", git_dir, *args], check=True, capture_output=True, text=True
    )
    return out.stdout


def parse_abilist(text: str) -> dict[str, str]:
    """``symbol@version`` -> type letter (F function, D data, A version node) of one abilist.

    Two formats exist: since 2.28 ``VERSION symbol TYPE [size]`` per line; before, a
    ``VERSION`` line followed by indented ``symbol TYPE [size]`` lines.
    """
    out: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = line.split()
        if not line[0].isspace():
            if len(fields) == 1:
                current = fields[0]
                continue
            version, name, kind = fields[0], fields[1], fields[2]
        else:
            if current is None:
                raise ValueError(f"abilist line before any version: {line!r}")
            version, name, kind = current, fields[0], fields[1]
        out[f"{name}@{version}"] = kind
    return out


def read_release(git_dir: str, tag: str, arch: str) -> dict[str, dict[str, str]]:
    """soname -> {symbol@version: type} for one release tag and architecture."""
    dirs, loader = ARCHES[arch]
    names = _git(git_dir, "ls-tree", "-r", "--name-only", tag, "--", "sysdeps", "ports").split()
    found: dict[str, str] = {}
    for directory in reversed(dirs):  # earlier entries of ARCHES win
        for path in names:
            if (
                path.startswith(directory)
                and path.endswith(".abilist")
                and "/" not in path[len(directory) :]
            ):
                found[path[len(directory) : -len(".abilist")]] = path
    out: dict[str, dict[str, str]] = {}
    for stem, path in sorted(found.items()):
        soname = loader if stem == "ld" else SONAMES.get(stem)
        if soname is None:
            continue
        out[soname] = parse_abilist(_git(git_dir, "show", f"{tag}:{path}"))
    return out


def existence(git_dir: str, arch: str) -> tuple[list[str], dict[str, dict[str, str]]]:
    """Releases, and soname -> "TYPE FIRST LAST" -> space-separated ``symbol@version`` names.

    TYPE is the abilist letter, FIRST and LAST the first and last release exporting the names
    from that library (LAST ``-``: still exported by the newest release).
    """
    tags = sorted(
        (r, t) for t in _git(git_dir, "tag").split() if (r := _release(t)) and r >= FIRST_RELEASE
    )
    releases = [f"{r[0]}.{r[1]}" for r, _ in tags]
    table: dict[str, dict[str, list[str]]] = defaultdict(dict)
    for (_, tag), release in zip(tags, releases):
        for soname, symbols in read_release(git_dir, tag, arch).items():
            for key, kind in symbols.items():
                entry = table[soname].get(key)
                if entry is None:
                    table[soname][key] = [kind, release, release]
                else:
                    entry[2] = release
    out: dict[str, dict[str, str]] = {}
    for soname, symbols in sorted(table.items()):
        buckets: dict[str, list[str]] = defaultdict(list)
        for key, (kind, first, last) in symbols.items():
            buckets[f"{kind} {first} {'-' if last == releases[-1] else last}"].append(key)
        out[soname] = {k: " ".join(sorted(v)) for k, v in sorted(buckets.items())}
    return releases, out


def _useful(group: set[str]) -> bool:
    """A group matters when it holds two versions of one name, or a curated rename pair."""
    names = [key.split("@")[0] for key in group]
    if len(set(names)) < len(names):
        return True
    return any(old in names and new in names for old, (new, _) in RENAMES.items())


def same_code(root: Path) -> tuple[dict[str, list[str]], dict[str, str]]:
    """soname -> groups (space-separated ``symbol@version``) at one address; the inputs' sha256."""
    groups: dict[str, list[str]] = {}
    hashes: dict[str, str] = {}
    for soname in ("libc.so.6", "libm.so.6"):
        matches = sorted(root.glob(f"usr/lib/*/{soname}")) or sorted(root.glob(f"lib/*/{soname}"))
        if not matches:
            raise SystemExit(f"{root}: no {soname} under usr/lib/*/")
        path = matches[0]
        hashes[soname] = hashlib.sha256(path.read_bytes()).hexdigest()
        with path.open("rb") as f:
            elf = ELFFile(f)
            dynsym = elf.get_section_by_name(".dynsym")
            versym = elf.get_section_by_name(".gnu.version")
            verdef = elf.get_section_by_name(".gnu.version_d")
            if not isinstance(versym, GNUVerSymSection) or dynsym is None or verdef is None:
                raise SystemExit(f"{path}: no dynamic symbol or version tables")
            names = {v.entry["vd_ndx"]: next(iter(aux)).name for v, aux in verdef.iter_versions()}
            by_address: dict[int, set[str]] = defaultdict(set)
            for i, sym in enumerate(dynsym.iter_symbols()):
                if sym["st_shndx"] == "SHN_UNDEF" or sym["st_value"] == 0:
                    continue
                ndx = versym.get_symbol(i)["ndx"]
                ndx = ndx if isinstance(ndx, int) else 1
                version = names.get(ndx & 0x7FFF)
                if version is None or not version.startswith("GLIBC_2"):
                    continue
                by_address[sym["st_value"]].add(f"{sym.name}@{version}")
        groups[soname] = sorted(" ".join(sorted(g)) for g in by_address.values() if _useful(g))
    return groups, hashes


def package_version(root: Path) -> str:
    """The Debian version of the unpacked libc6 (first line of its changelog)."""
    with gzip.open(root / "usr/share/doc/libc6/changelog.Debian.gz", "rt") as f:
        first = f.readline()
    m = re.match(r"glibc \(([^)]+)\)", first)
    if m is None:
        raise SystemExit(f"{root}: cannot read the libc6 version from its changelog")
    return m.group(1)


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    git_dir = argv[1]
    roots = dict(arg.split("=", 1) for arg in argv[2:])
    # the release tags' commits are the inputs (a newer mirror with the same tags gives the
    # same data); the trixie libraries by package version and hash
    inputs: dict[str, object] = {}
    arches: dict[str, object] = {}
    data: dict[str, object] = {
        "_comment": [
            "Generated by backend/generate/glibc_symbols.py; do not edit.",
            "arches.<arch>.symbols: soname -> 'TYPE FIRST LAST' -> space-separated",
            "  'symbol@version' names: abilist type letter, first and last release exporting",
            "  them from that library ('-': the newest release still does), from glibc's",
            "  abilists at each release tag.",
            "arches.<arch>.same_code: soname -> groups of 'symbol@version' at one address in",
            "  the newest real library (Debian trixie's libc6).",
            "renames, same_library, opt_in, denylist: the curated classes C, B, D and refusals.",
        ],
        "inputs": inputs,
        "renames": {k: list(v) for k, v in RENAMES.items()},
        "same_library": SAME_LIBRARY,
        "opt_in": {k: list(v) for k, v in OPT_IN.items()},
        "denylist": DENYLIST,
        "arches": arches,
    }
    for arch in ARCHES:
        releases, symbols = existence(git_dir, arch)
        tags = [f"glibc-{r}" for r in releases]
        inputs["glibc_tags"] = {
            t: _git(git_dir, "rev-parse", t + "^{commit}").strip() for t in tags
        }
        entry: dict[str, object] = {"releases": releases, "symbols": symbols}
        if arch in roots:
            groups, hashes = same_code(Path(roots[arch]))
            entry["same_code"] = groups
            inputs[f"trixie_{arch}_sha256"] = hashes
            inputs[f"trixie_{arch}_libc6"] = package_version(Path(roots[arch]))
        else:
            raise SystemExit(f"no trixie libc6 root given for {arch}")
        arches[arch] = entry
    json.dump(data, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
