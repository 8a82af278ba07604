"""Generate ``relabel/_data/musl_symbols.json``: the symbols musl 1.2.x exports and 1.1.24 does not.

musl has no symbol versions, so the only evidence of which release a binary needs is the set
of names it takes from ``libc.so``. This script derives, per architecture, the names that the
shared ``libc.so`` of some 1.2.x release exports and that of 1.1.24 does not, and the first
1.2.x release exporting each one. It reads musl's own sources from a git directory and never
builds or runs anything:

- which files go into ``libc.so`` follows musl's Makefile: ``src/*/*.c`` (and ``ldso/*.c``,
  the malloc directory, ``compat/time32`` on the 32-bit targets that set it in ``arch.mak``),
  each replaced by ``src/*/<ARCH>/<same stem>.[csS]`` when the architecture has one;
- a name is exported when a C file defines it at file scope (a function body, an object) or
  as the target of ``weak_alias``/``strong_alias``, or an assembly file makes it ``.global``
  or ``.weak``, and neither the definition nor any declaration in musl's internal headers
  marks it ``hidden``/``static``;
- on targets whose ``bits/alltypes.h.in`` sets ``_REDIR_TIME64``, the ``__REDIR(name, target)``
  lines of the public headers rename the definition to the 64-bit-time symbol
  (``clock_gettime`` -> ``__clock_gettime64``), and ``compat/time32``'s ``__asm__("name")``
  declarations export the old names for old binaries.

Preprocessor conditionals are not evaluated (every branch counts), which can only over-count
names present in both lines; names appearing in both cancel out of the difference. Checked
against Debian's musl 1.2.3 libc.so on amd64, i386, armhf, arm64, ppc64el and s390x: every
exported name is found except ``_dlstart`` (inline assembly in ``crt_arch.h``, in both lines)
and Debian's own additions; the extra names are ``#ifdef SYS_...`` functions of other
architectures and ``crypt`` (Debian removes it), all present in 1.1.24 too.

Run it from the repository root with a clone of musl (https://git.musl-libc.org/git/musl,
mirrored at https://github.com/bminor/musl)::

    git clone --bare https://github.com/bminor/musl /tmp/musl.git
    python backend/generate/musl_symbols.py /tmp/musl.git > backend/relabel/_data/musl_symbols.json

``tests/test_musl_data.py`` regenerates the data and compares it when ``RELABEL_MUSL_GIT``
names such a git directory.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from typing import ClassVar

BASELINE = "v1.1.24"
RELEASES = ("v1.2.0", "v1.2.1", "v1.2.2", "v1.2.3", "v1.2.4", "v1.2.5")

#: wheel-tag architecture -> musl's ARCH (arch/<ARCH>/), for every arch with musllinux_1_1
ARCHES = {
    "x86_64": "x86_64",
    "i686": "i386",
    "aarch64": "aarch64",
    "ppc64le": "powerpc64",
    "s390x": "s390x",
    "armv7l": "arm",
    "riscv64": "riscv64",
}

_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.DOTALL)
_LITERAL = re.compile(r'"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'')
_PREPROC = re.compile(r"^[ \t]*#(?:[^\n]*\\\n)*[^\n]*", re.MULTILINE)
_ATTRIBUTE = re.compile(r"__attribute__\s*\(\(")
_ASM_LABEL = re.compile(r'__asm__\s*\(\s*"(\w+)"\s*\)')
_HIDDEN_ATTRIBUTE = re.compile(
    r'__attribute__\s*\(\(\s*(?:__)?visibility(?:__)?\s*\(\s*"hidden"\s*\)\s*\)\)'
)
_ALIAS = re.compile(r"\b(?:weak_alias|strong_alias)\s*\(\s*(\w+)\s*,\s*(\w+)\s*\)")
_REDIR = re.compile(r"__REDIR\s*\(\s*(\w+)\s*,\s*(\w+)\s*\)")
_ASM_GLOBAL = re.compile(r"^\s*\.(?:globa?l|weak)\s+([\w.$]+(?:\s*,\s*[\w.$]+)*)", re.MULTILINE)
_ASM_HIDDEN = re.compile(r"^\s*\.hidden\s+([\w.$]+)", re.MULTILINE)
_INLINE_GLOBAL = re.compile(r"\.(?:globa?l|weak)\s+(\w+)")
_INLINE_HIDDEN = re.compile(r"\.hidden\s+(\w+)")
_IDENT = re.compile(r"[A-Za-z_]\w*")
_KEYWORD_TEXT = (
    "auto break case char const continue default do double else enum extern float for "
    "goto if inline int long register restrict return short signed sizeof static struct "
    "switch typedef union unsigned void volatile while _Noreturn _Bool _Complex "
    "_Thread_local __inline __restrict __volatile__ __asm__ __typeof__ __typeof typeof "
    "hidden weak"
)
_KEYWORDS = frozenset(_KEYWORD_TEXT.split())


class Tree:
    """The files of one tag, read lazily through ``git cat-file``."""

    def __init__(self, git_dir: str, tag: str) -> None:
        self.git_dir = git_dir
        self.tag = tag
        self.commit = _git(git_dir, "rev-parse", f"{tag}^{{commit}}").strip()
        listing = _git(git_dir, "ls-tree", "-r", self.commit)
        self.blobs: dict[str, str] = {}
        for line in listing.splitlines():
            meta, path = line.split("\t", 1)
            _mode, kind, oid = meta.split()
            if kind == "blob":
                self.blobs[path] = oid
        self.read: dict[str, str] = {}

    def text(self, path: str) -> str:
        if path not in self.read:
            self.read[path] = _Blobs.of(self.git_dir).text(self.blobs[path])
        return self.read[path]

    def glob(self, directory: str, suffixes: tuple[str, ...]) -> list[str]:
        """Files directly in ``directory`` (no recursion) with one of ``suffixes``."""
        prefix = directory.rstrip("/") + "/"
        return sorted(
            p
            for p in self.blobs
            if p.startswith(prefix) and "/" not in p[len(prefix) :] and p.endswith(suffixes)
        )

    def subdirs(self, directory: str) -> list[str]:
        prefix = directory.rstrip("/") + "/"
        return sorted(
            {
                p[len(prefix) :].split("/", 1)[0]
                for p in self.blobs
                if p.startswith(prefix) and "/" in p[len(prefix) :]
            }
        )


class _Blobs:
    """One ``git cat-file --batch`` per git directory; blobs shared by tags are read once."""

    _open: ClassVar[dict[str, _Blobs]] = {}

    def __init__(self, git_dir: str) -> None:
        self.proc = subprocess.Popen(
            ["git", f"--git-dir={git_dir}", "cat-file", "--batch"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        if self.proc.stdin is None or self.proc.stdout is None:  # pragma: no cover
            raise RuntimeError("git cat-file has no pipes")
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout
        self.cache: dict[str, str] = {}

    @classmethod
    def of(cls, git_dir: str) -> _Blobs:
        if git_dir not in cls._open:
            cls._open[git_dir] = cls(git_dir)
        return cls._open[git_dir]

    def text(self, oid: str) -> str:
        if oid not in self.cache:
            self.stdin.write(f"{oid}\n".encode())
            self.stdin.flush()
            size = int(self.stdout.readline().split()[2])
            data = self.stdout.read(size + 1)[:size]
            self.cache[oid] = data.decode("utf-8", "surrogateescape")
        return self.cache[oid]


def _git(git_dir: str, *args: str) -> str:
    return subprocess.run(
        ["git", f"--git-dir={git_dir}", *args],
        check=True,
        capture_output=True,
        text=True,
        errors="surrogateescape",
    ).stdout


def _strip(text: str) -> str:
    """C text without comments, preprocessor lines and string/char literal contents.

    ``__asm__("name")`` labels are kept as ``__asm_label__ name`` so that renames survive.
    """
    text = _COMMENT.sub(" ", text)
    text = _PREPROC.sub(" ", text)
    text = _ASM_LABEL.sub(r" __asm_label__ \1 ", text)
    text = _HIDDEN_ATTRIBUTE.sub(" hidden ", text)
    return _LITERAL.sub('""', text)


def _drop_attributes(chunk: str) -> str:
    """Remove ``__attribute__((...))`` groups (balanced parentheses)."""
    while True:
        match = _ATTRIBUTE.search(chunk)
        if match is None:
            return chunk
        depth, i = 2, match.end()
        while i < len(chunk) and depth:
            depth += {"(": 1, ")": -1}.get(chunk[i], 0)
            i += 1
        chunk = chunk[: match.start()] + " " + chunk[i:]


def _top_level(text: str) -> list[tuple[str, str]]:
    """File-scope statements of stripped C text as (head, terminator).

    The terminator is ``{`` for a function definition (the head is everything before its
    body) and ``;`` otherwise; brace groups inside a statement (struct bodies,
    initializers) are collapsed to ``{}``.
    """
    out: list[tuple[str, str]] = []
    parts: list[str] = []
    start = i = paren = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == "(":
            paren += 1
        elif c == ")":
            paren -= 1
        elif c == ";" and paren == 0:
            parts.append(text[start:i])
            out.append(("".join(parts), ";"))
            parts, start = [], i + 1
        elif c == "{" and paren == 0:
            parts.append(text[start:i])
            head = "".join(parts)
            depth, j = 1, i + 1
            while j < n and depth:
                depth += {"{": 1, "}": -1}.get(text[j], 0)
                j += 1
            if ")" in head and "=" not in head and not re.search(_AGGREGATE, head):
                out.append((head, "{"))
                parts, start = [], j
            else:
                parts, start = [head, "{}"], j
            i = j
            continue
        i += 1
    return out


_AGGREGATE = r"\b(?:struct|union|enum)\b[^()]*$"


def _split_declarators(head: str) -> list[str]:
    """Split at commas outside parentheses and brackets."""
    parts: list[str] = []
    depth = start = 0
    for k, c in enumerate(head):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(head[start:k])
            start = k + 1
    parts.append(head[start:])
    return parts


def _declarators(head: str) -> list[tuple[str, bool, str | None]]:
    """(name, is_function, asm label) for each declarator of a file-scope head."""
    out: list[tuple[str, bool, str | None]] = []
    for index, declarator in enumerate(_split_declarators(_drop_attributes(head))):
        text = declarator.split("=", 1)[0]
        label = re.search(r"__asm_label__\s+(\w+)", text)
        text = re.sub(r"__asm_label__\s+\w+", " ", text)
        text = re.sub(r"\b(?:__typeof__|__typeof|typeof)\s*\([^()]*\)", " int ", text)
        tokens = re.findall(r"[A-Za-z_]\w*|\S", text)
        for k, tok in enumerate(tokens):
            if not _IDENT.fullmatch(tok) or tok in _KEYWORDS or tok == "complex":
                continue
            if k and tokens[k - 1] in ("struct", "union", "enum"):
                continue  # a tag, not a declarator
            after = tokens[k + 1] if k + 1 < len(tokens) else ""
            if after not in ("(", ")", "[", ""):
                continue
            if index == 0 and not any(
                _IDENT.fullmatch(t) for t in tokens[:k]
            ):  # no type before it: a macro invocation, not a declaration
                break
            before = tokens[k - 1] if k else ""
            is_function = after == "(" or (
                after == ")" and before == "(" and tokens[k + 2 : k + 3] == ["("]
            )
            out.append((tok, is_function, label.group(1) if label else None))
            break
    return out


@dataclass
class Symbols:
    defined: set[str] = field(default_factory=set)
    hidden: set[str] = field(default_factory=set)
    asm_labels: dict[str, str] = field(default_factory=dict)  # C name -> symbol (time32)
    asm_defined: set[str] = field(default_factory=set)  # not subject to __REDIR


def _scan_c(raw: str, into: Symbols, *, definitions: bool) -> None:
    if definitions:
        into.defined.update(_INLINE_GLOBAL.findall(raw))
    into.hidden.update(_INLINE_HIDDEN.findall(raw))
    text = _strip(raw)
    for _old, new in _ALIAS.findall(text):
        if definitions:
            into.defined.add(new)
    for head, term in _top_level(text):
        words = set(_IDENT.findall(head))
        if "typedef" in words or _ALIAS.search(head):
            continue
        hidden = "hidden" in words
        for name, is_function, label in _declarators(head):
            if label:
                into.asm_labels[name] = label
            if hidden:
                into.hidden.add(name)
                continue
            if not definitions or "static" in words:
                continue
            if term == "{" or (not is_function and "extern" not in words):
                into.defined.add(name)


def _scan_asm(tree: Tree, path: str, into: Symbols, renames: dict[str, str] | None = None) -> None:
    """``.global`` names of an assembly file; a ``.S`` file's ``#define a b`` lines rename
    the names of the files it ``#include``s (how musl builds its time64 ``dlsym``)."""
    raw = tree.text(path)
    renames = dict(renames or {})
    if path.endswith(".S"):
        renames.update(re.findall(r"^#define\s+(\w+)\s+(\w+)\s*$", raw, re.MULTILINE))
        for name in re.findall(r'^#include\s+"([^"]+)"', raw, re.MULTILINE):
            included = f"{path.rsplit('/', 1)[0]}/{name}"
            if included in tree.blobs:
                _scan_asm(tree, included, into, renames)
    text = re.sub(r"/\*.*?\*/", " ", raw, flags=re.DOTALL)
    for names in _ASM_GLOBAL.findall(text):
        into.asm_defined.update(renames.get(n.strip(), n.strip()) for n in names.split(","))
    into.hidden.update(renames.get(n, n) for n in _ASM_HIDDEN.findall(text))


def _sources(tree: Tree, arch: str) -> list[str]:
    """The files musl's Makefile links into libc.so for ``arch``."""
    makefile = tree.text("Makefile")
    malloc = re.search(r"^MALLOC_DIR\s*=\s*(\S+)", makefile, re.MULTILINE)
    dirs = [f"src/{d}" for d in tree.subdirs("src")]
    if malloc and "$(MALLOC_DIR)" in makefile:
        dirs.append(f"src/malloc/{malloc.group(1)}")
    dirs.append("ldso")
    arch_mak = tree.blobs.get(f"arch/{arch}/arch.mak") and tree.text(f"arch/{arch}/arch.mak")
    if arch_mak and "$(COMPAT_SRC_DIRS)" in makefile:
        compat = re.search(r"^COMPAT_SRC_DIRS\s*=\s*(.+)$", arch_mak, re.MULTILINE)
        if compat:
            dirs.extend(compat.group(1).split())
    chosen: dict[str, str] = {}
    for d in dirs:
        for path in tree.glob(d, (".c",)):
            chosen[path.rsplit(".", 1)[0]] = path
    for d in dirs:
        for path in tree.glob(f"{d}/{arch}", (".c", ".s", ".S")):
            stem = path.rsplit(".", 1)[0].replace(f"/{arch}/", "/")
            chosen[stem] = path
    return sorted(chosen.values())


def _internal_headers(tree: Tree, arch: str) -> list[str]:
    paths = [p for p in tree.blobs if p.endswith(".h")]
    return sorted(
        p
        for p in paths
        if p.startswith(("src/", "ldso/", "compat/", f"arch/{arch}/", "arch/generic/"))
        and not p.startswith(("arch/generic/bits/", f"arch/{arch}/bits/"))
    )


def _redirects(tree: Tree, arch: str) -> dict[str, str]:
    alltypes = tree.blobs.get(f"arch/{arch}/bits/alltypes.h.in")
    if alltypes is None or not re.search(
        r"^#define _REDIR_TIME64 1", tree.text(f"arch/{arch}/bits/alltypes.h.in"), re.MULTILINE
    ):
        return {}
    out: dict[str, str] = {}
    for path in sorted(tree.blobs):
        if path.startswith("include/") and path.endswith(".h"):
            for name, target in _REDIR.findall(_COMMENT.sub(" ", tree.text(path))):
                if name != "x":  # the macro's own definition
                    out[name] = target
    return out


def exports(tree: Tree, arch: str) -> set[str]:
    """Names the shared libc.so built from ``tree`` for ``arch`` exports."""
    syms = Symbols()
    for path in _internal_headers(tree, arch):
        _scan_c(tree.text(path), syms, definitions=False)
    for path in _sources(tree, arch):
        raw = tree.text(path)
        if path.endswith((".s", ".S")):
            _scan_asm(tree, path, syms)
        else:
            _scan_c(raw, syms, definitions=True)
    redirect = _redirects(tree, arch)
    out: set[str] = set()
    for name in syms.defined - syms.hidden:
        if name in syms.asm_labels:
            out.add(syms.asm_labels[name])
        else:
            out.add(redirect.get(name, name))
    out.update(syms.asm_defined - syms.hidden)
    return {n for n in out if _IDENT.fullmatch(n)}


def _inputs_hash(trees: list[Tree]) -> str:
    digest = hashlib.sha256()
    for tree in trees:
        for path in sorted(tree.read):
            digest.update(f"{tree.tag}\0{path}\0{tree.blobs[path]}\n".encode())
    return digest.hexdigest()


def generate(git_dir: str) -> dict[str, object]:
    """The data file's content, from the musl git directory ``git_dir``."""
    base = Tree(git_dir, BASELINE)
    releases = [Tree(git_dir, tag) for tag in RELEASES]
    per_arch: dict[str, dict[str, str]] = {}
    for wheel_arch, arch in ARCHES.items():
        old = exports(base, arch)
        first: dict[str, str] = {}
        for tree in releases:
            for name in sorted(exports(tree, arch) - old):
                first.setdefault(name, tree.tag.lstrip("v"))
        per_arch[wheel_arch] = first
    common = {
        name: since
        for name, since in per_arch["x86_64"].items()
        if all(per_arch[a].get(name) == since for a in per_arch)
    }

    def grouped(mapping: dict[str, str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for name, since in sorted(mapping.items()):
            out.setdefault(since, []).append(name)
        return dict(sorted(out.items()))

    return {
        "about": "symbols musl's libc.so exports in a 1.2.x release and not in 1.1.24, "
        "by the first 1.2.x release exporting them; '*' holds those of every architecture",
        "generator": "backend/generate/musl_symbols.py",
        "baseline": BASELINE,
        "releases": list(RELEASES),
        "commits": {t.tag: t.commit for t in [base, *releases]},
        "inputs_sha256": _inputs_hash([base, *releases]),
        "musl_arch": ARCHES,
        "added": {
            "*": grouped(common),
            **{
                a: grouped({n: s for n, s in m.items() if n not in common})
                for a, m in per_arch.items()
            },
        },
    }


def render(data: dict[str, object]) -> str:
    """The JSON text as committed: one release's names per line."""
    text = json.dumps(data, indent=1)
    # a list of names on one line: the file stays short and a diff names the symbol
    return re.sub(r"\[\n\s+([^\[\]{}]*?)\n\s+\]", _one_line, text) + "\n"


def _one_line(match: re.Match[str]) -> str:
    return "[" + ", ".join(item.strip().rstrip(",") for item in match.group(1).split("\n")) + "]"


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    sys.stdout.write(render(generate(argv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
