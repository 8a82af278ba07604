"""A CycloneDX SBOM of the libraries a repair grafts, written to ``.dist-info/sboms/``.

For each grafted file the system package that installed it is looked up with the package
manager that owns the machine (the dpkg database, read as ``dpkg-query`` reads it, else
``rpm``, ``apk``) and recorded as a package URL, with the file's SHA-256. A file no package
manager knows is still listed, by name and hash. The document has no timestamp or random
serial number, so the same repair gives the same bytes. Package databases and queries are
the only I/O here; arguments go to ``subprocess`` as lists, never through a shell.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from relabel import __version__
from relabel._process import ask

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

SBOM_NAME = "relabel.cdx.json"


@dataclass(frozen=True)
class Provider:
    name: str
    version: str
    purl: str


def _query(command: Sequence[str], *, partial: bool = False) -> str | None:
    """Standard output of ``command``; None when it is missing or fails (``partial``: keep
    the output of a command that also reports some misses through its exit status)."""
    if shutil.which(command[0]) is None:
        return None
    # Package databases hold whatever bytes packagers wrote: never fail on decoding.
    proc = ask(command, timeout=60)
    if proc is None:
        return None
    return proc.stdout if proc.returncode == 0 or partial else None


def quote(text: str, safe: str = "/") -> str:
    from urllib.parse import quote as _quote  # noqa: PLC0415 - only needed when grafting

    return _quote(text, safe=safe)


def _distro() -> str:
    try:
        text = Path("/etc/os-release").read_text(errors="replace")
    except OSError:
        return "linux"
    for line in text.splitlines():
        if line.startswith("ID="):
            return line[3:].strip().strip('"') or "linux"
    return "linux"


def _aliases(path: str) -> list[str]:
    """The path and its twin across a merged /usr (packages may register either)."""
    out = [path]
    if path.startswith("/usr/"):
        out.append(path[len("/usr") :])
    else:
        out.append("/usr" + path)
    return out


def _dpkg_all(paths: Sequence[str], distro: str) -> dict[str, Provider] | None:
    """Owners of ``paths`` from the dpkg database. None when this is not a dpkg system.

    The database is read directly, as ``dpkg-query -S`` and ``-W`` read it: starting
    dpkg-query costs more than a repair of a small wheel. Where it is not in the plain state
    this reader knows (pending journal entries, unreadable files), dpkg-query answers.
    """
    admin = Path(os.environ.get("DPKG_ADMINDIR") or "/var/lib/dpkg")
    if shutil.which("dpkg-query") is None:
        return None
    try:
        owners = _dpkg_database(admin, paths, distro)
    except (OSError, ValueError):
        owners = None
    return owners if owners is not None else _dpkg_query(paths, distro)


#: up to this many paths, each package's file list is searched for each path; beyond it,
#: split into lines once (a split costs about as much as eight searches for a name)
_SCANS = 8


def _dpkg_database(admin: Path, paths: Sequence[str], distro: str) -> dict[str, Provider] | None:
    """:func:`_dpkg_all` from the files under ``admin``; None where they cannot be trusted."""
    if any(p.name != "tmp.i" for p in (admin / "updates").glob("*")):
        return None  # an interrupted dpkg run: the status file is not the whole truth
    twins = {path: [alias.encode() for alias in _aliases(path)] for path in paths}
    owners: dict[bytes, set[str]] = {alias: set() for pair in twins.values() for alias in pair}
    # a path and its /usr twin end alike: one search for the common tail finds both
    tails = [
        (b"/" + path.rpartition("/")[2].encode() + b"\n", pair) for path, pair in twins.items()
    ]
    for listing in (admin / "info").glob("*.list"):
        data = b"\n" + listing.read_bytes() + b"\n"
        if len(tails) <= _SCANS:
            near = [a for tail, pair in tails if tail in data for a in pair]
            hits = {a for a in near if b"\n" + a + b"\n" in data}
        else:
            hits = set(owners).intersection(data.split(b"\n"))
        for alias in hits:
            owners[alias].add(listing.name[: -len(".list")])
    diversions = admin / "diversions"
    diverted = set(diversions.read_bytes().splitlines()) if diversions.exists() else set()
    status = (admin / "status").read_bytes()
    found: dict[str, Provider] = {}
    known = {p: _dpkg_status(status, p) for p in set().union(*owners.values())}
    for alias, packages in owners.items():
        # a list file of a package the status file does not have installed is a leftover,
        # which dpkg-query does not read
        owners[alias] = {p for p in packages if known[p] is not None}
    for path in paths:
        owner = _dpkg_owner(path, owners, diverted)
        fields = None if owner is None else known[owner]
        if fields is not None:
            name, version, arch = fields
            purl = f"pkg:deb/{distro}/{quote(name)}@{quote(version)}?arch={quote(arch)}"
            found[path] = Provider(name, version, purl)
    return found


def _dpkg_owner(path: str, owners: Mapping[bytes, set[str]], diverted: set[bytes]) -> str | None:
    """The package ``dpkg-query -S`` names first for ``path`` or its /usr twin.

    A path some package lists alone has that owner; one several list is skipped for its
    twin; a diverted path (``dpkg-divert``) has no single owner, and is left unattributed.
    """
    for alias in _aliases(path):
        key = alias.encode()
        if key in diverted:
            return None
        if len(owners[key]) == 1:
            return next(iter(owners[key]))
    return None


def _dpkg_status(status: bytes, package: str) -> tuple[str, str, str] | None:
    """(Package, Version, Architecture) of ``package`` (``name`` or ``name:arch``, as its
    ``.list`` file is named) from the status file; None when it is not installed."""
    name, _, arch = package.partition(":")
    at = 0
    head = b"Package: " + name.encode() + b"\n"
    while True:
        at = status.find(head, at)
        if at == -1:
            return None
        if at == 0 or status[at - 1 : at] == b"\n":
            end = status.find(b"\n\n", at)
            stanza = status[at : len(status) if end == -1 else end].decode("utf-8", "replace")
            pairs = (line.partition(": ") for line in stanza.splitlines())
            fields = {key: value for key, sep, value in pairs if sep and key[:1] != " "}
            known = not fields.get("Status", "").endswith(" not-installed")
            if known and (not arch or fields.get("Architecture") == arch):
                return name, fields.get("Version", ""), fields.get("Architecture", "")
        at += len(head)


def _dpkg_query(paths: Sequence[str], distro: str) -> dict[str, Provider] | None:
    """Owners of ``paths`` from two dpkg-query calls for all of them (the database could not
    be read directly). None when this is not a dpkg system."""
    if shutil.which("dpkg-query") is None:
        return None
    asked = {alias: path for path in paths for alias in _aliases(path)}
    out = _query(["dpkg-query", "-S", *asked], partial=True) or ""
    owners: dict[str, str] = {}
    for line in out.splitlines():
        # each line reads "<package>:<arch>: <path>"; diversions list several packages
        package, sep, location = line.partition(": ")
        if sep and location in asked and "," not in package:
            owners.setdefault(asked[location], package)
    if not owners:
        return {}
    fmt = "${binary:Package}\t${Package}\t${Version}\t${Architecture}\n"
    info = _query(["dpkg-query", "-W", "-f", fmt, *sorted(set(owners.values()))], partial=True)
    versions: dict[str, tuple[str, str, str]] = {}
    for line in (info or "").splitlines():
        fields = line.split("\t")
        if len(fields) == 4:
            versions[fields[0]] = (fields[1], fields[2], fields[3])
            versions.setdefault(fields[1], (fields[1], fields[2], fields[3]))
    found: dict[str, Provider] = {}
    for path, package in owners.items():
        if package not in versions:
            continue
        name, version, arch = versions[package]
        purl = f"pkg:deb/{distro}/{quote(name)}@{quote(version)}?arch={quote(arch)}"
        found[path] = Provider(name, version, purl)
    return found


def _rpm(path: str, distro: str) -> Provider | None:
    for candidate in _aliases(path):
        out = _query(
            ["rpm", "-qf", "--queryformat", "%{NAME}\t%{VERSION}-%{RELEASE}\t%{ARCH}\n", candidate]
        )
        if out:
            name, version, arch = [*out.splitlines()[0].split("\t"), "", "", ""][:3]
            purl = f"pkg:rpm/{distro}/{quote(name)}@{quote(version)}?arch={quote(arch)}"
            return Provider(name, version, purl)
    return None


def _apk(path: str, distro: str) -> Provider | None:
    for candidate in _aliases(path):
        out = _query(["apk", "info", "--who-owns", candidate])
        if out and " is owned by " in out:
            owner = out.strip().rsplit(" is owned by ", 1)[1]
            name, _, version = owner.rpartition("-")
            name, _, release = name.rpartition("-") if version.startswith("r") else (name, "", "")
            full = f"{release}-{version}" if release else version
            purl = f"pkg:apk/{distro}/{quote(name)}@{quote(full)}"
            return Provider(name, full, purl)
    return None


#: Where distribution packages put libraries. Files elsewhere (a build tree, a home
#: directory, /tmp) belong to no package, and looking them up would only cost time.
SYSTEM_PREFIXES = ("/usr/", "/lib/", "/lib32/", "/lib64/", "/libx32/", "/opt/", "/bin/", "/sbin/")


def providers(paths: Sequence[str]) -> dict[str, Provider]:
    """The package that installed each of ``paths`` (real paths), where one is known."""
    distro = _distro()
    wanted = sorted({os.path.realpath(p) for p in paths})
    system = [p for p in wanted if p.startswith(SYSTEM_PREFIXES)]
    if not system:
        return {}
    found = _dpkg_all(system, distro)
    if found is not None:
        return found
    result: dict[str, Provider] = {}
    for path in system:
        for lookup in (_rpm, _apk):
            owner = lookup(path, distro)
            if owner is not None:
                result[path] = owner
                break
    return result


def document(
    wheel_filename: str,
    project: str,
    version: str,
    grafted: Sequence[tuple[str, str]],
    digests: Mapping[str, str],
) -> bytes:
    """The SBOM for ``grafted`` ((member name in the wheel, source path) pairs).

    ``digests`` maps each source path to its sha256 hex (the repair has hashed them all).
    """
    wheel_purl = (
        f"pkg:pypi/{quote(project, safe='')}@{quote(version, safe='')}"
        f"?file_name={quote(wheel_filename, safe='')}"
    )
    components: list[dict[str, Any]] = []
    depends: list[str] = []
    owners = providers([source for _, source in grafted])
    for member, source in sorted(grafted):
        found = owners.get(os.path.realpath(source))
        digest = digests[source]
        component: dict[str, Any] = {
            "type": "library",
            "bom-ref": f"{found.purl if found else 'file:' + member}#{digest[:16]}",
            "name": found.name if found else Path(member).name,
            "hashes": [{"alg": "SHA-256", "content": digest}],
            "properties": [{"name": "relabel:wheel-path", "value": member}],
        }
        if found:
            component["version"] = found.version
            component["purl"] = found.purl
        components.append(component)
        depends.append(component["bom-ref"])
    root = {
        "type": "library",
        "bom-ref": wheel_purl,
        "name": project,
        "version": version,
        "purl": wheel_purl,
    }
    data = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.4",
        "version": 1,
        "metadata": {
            "component": root,
            "tools": [{"name": "relabel", "version": __version__}],
        },
        "components": [root, *components],
        "dependencies": [{"ref": wheel_purl, "dependsOn": depends}]
        + [{"ref": ref} for ref in depends],
    }
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8")
