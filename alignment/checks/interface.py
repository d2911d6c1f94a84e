"""Names one side uses that the other side removed, found across files in the merged tree, with no checkout.

The branch adds ``from pkg.util import helper``; the target renamed ``helper``. Each side is fine, the merge is
clean, and the merged code fails at import. For the Python files either side changed, the imports of the
repository's own modules (``from m import f``, ``import m.sub``) and the attributes used on them (``m.f``) must
resolve in the merged tree: ``f`` defined or imported at module level of the merged ``m``, or a submodule.
A reference is reported when it does not resolve after the merge, and did resolve on every side whose version
of the file had it: what was broken on a side already is that side's problem.

Which files: the branch's (merged tree against the target: what it brings) are all read; the target's
(merged tree against the branch tip) only when the branch removed a name from a module, and only those that
mention such a name. Files and parsed modules are read from git objects and cached by blob id.

Conservative by design: a module is "any name" when it has a module-level ``__getattr__``, a star import,
or uses ``globals()``, ``vars()``, ``exec``, ``eval``, ``setattr`` or ``sys.modules``; a star import is not
followed; imports in a ``try`` block are skipped (optional imports), as are aliases rebound in the file and
attributes the file assigns; the standard library's names are never taken for the repository's modules;
a module name that matches more than one file (several source roots) is not resolved.

Source roots, where an absolute import's module is looked for: every folder above the importing file, the
top folder, ``src/`` and the folders the merged tree's ``pyproject.toml`` gives setuptools (``package-dir``'s
root entry, ``packages.find``'s ``where``), so that ``tests/`` of a ``src/`` layout reach its package.
"""

from __future__ import annotations

import ast
import bisect
import dataclasses
import enum
import functools
import posixpath
import re
import sys
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass

from alignment.checks import file_text
from alignment.checks.python import parse_quietly
from alignment.git import Git
from alignment.model import CommitInfo, Finding, Severity

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 only
    import tomli as tomllib

_DYNAMIC = frozenset({"globals", "vars", "exec", "eval", "setattr", "__import__"})
_IDENTIFIER = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*")
_STDLIB = frozenset(getattr(sys, "stdlib_module_names", ()))
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
_SOURCE_ROOTS = ("src",)  # looked at in every project, besides those its pyproject.toml declares
Entry = tuple[str, str]  # (mode, object id) of a tree entry
ReferenceKey = tuple[tuple[str, ...], str]  # a reference's module paths and name (``Reference.key``)


def _blob_of(entry: Entry | None) -> str | None:
    """The blob id of a regular file's entry; None for anything else (absent, link, submodule, folder)."""
    return entry[1] if entry is not None and entry[0] in ("100644", "100755") else None


class Outcome(enum.Enum):
    """A reference resolved in one tree."""

    FOUND = "found"
    MISSING = "missing"  # the module is there, without the name
    GONE = "gone"  # no such module
    UNKNOWN = "unknown"  # dynamic module, several candidate files


@dataclass(frozen=True)
class Reference:
    """``name`` taken from a module: ``bases`` are the module's possible paths (without ``.py``)."""

    bases: tuple[str, ...]
    module: str
    name: str
    line: int
    attribute: bool  # ``module.name`` in code, not an import statement

    @property
    def key(self) -> ReferenceKey:
        """The same name from the same module: an import and a use of it are one reference (the import's)."""
        return self.bases, self.name

    def under(self, roots: Sequence[str]) -> Reference:
        """The reference with its module also looked for under ``roots`` (an absolute import only)."""
        if not roots or self.module.startswith("."):
            return self
        parts = self.module.split(".")
        more = tuple(base for root in roots if (base := posixpath.join(root, *parts)) not in self.bases)
        return dataclasses.replace(self, bases=self.bases + more) if more else self

    def candidates(self) -> Iterable[str]:
        """Every path the reference's resolution looks at."""
        for base in self.bases:
            for stem in (base, f"{base}/{self.name}"):
                yield f"{stem}.py"
                yield f"{stem}/__init__.py"


_LEAF_FIELDS = frozenset({"ctx", "op", "ops"})  # shared operator and context nodes: nothing to find there


def _nodes(root: ast.AST) -> tuple[list[ast.AST], list[bool]]:
    """``root`` and every node under it, parents before children (what ``ast.walk`` yields, without the shared
    context and operator leaves), and for each whether it lies in the body of a ``try`` (optional code): one walk
    for both, where walking each ``try`` body again cost as much as the walk itself."""
    nodes, guarded = [root], [False]
    for node, inside in zip(nodes, guarded, strict=True):  # both grow, in step, as the walk goes
        try_body = type(node) is ast.Try
        for field in node._fields:
            if field in _LEAF_FIELDS:
                continue
            value = getattr(node, field, None)
            flag = inside or (try_body and field == "body")
            if isinstance(value, list):
                children = [item for item in value if isinstance(item, ast.AST)]
                nodes.extend(children)
                guarded.extend([flag] * len(children))
            elif isinstance(value, ast.AST):
                nodes.append(value)
                guarded.append(flag)
    return nodes, guarded


def _top_level(body: Sequence[ast.stmt]) -> Iterable[ast.stmt]:
    """The module's statements, inside ``if``/``try``/``for``/``with`` too, not inside functions or classes."""
    for statement in body:
        yield statement
        if not isinstance(statement, _SCOPES):
            for field in ("body", "orelse", "finalbody"):
                yield from _top_level(getattr(statement, field, ()))
            for handler in getattr(statement, "handlers", ()):
                yield from _top_level(handler.body)
            for case in getattr(statement, "cases", ()):
                yield from _top_level(case.body)


def _stored_names(statement: ast.stmt) -> Iterable[str]:
    """Names a simple statement (or a compound one's header) binds."""
    headers: list[ast.AST] = [statement]
    if isinstance(statement, (ast.For, ast.AsyncFor)):
        headers = [statement.target]
    elif isinstance(statement, (ast.With, ast.AsyncWith)):
        headers = [item.optional_vars for item in statement.items if item.optional_vars is not None]
    elif isinstance(statement, (ast.If, ast.While, ast.Try, ast.Match)):
        headers = []
    for header in headers:
        for node in ast.walk(header):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                yield node.id
            elif isinstance(node, ast.NamedExpr):
                yield node.target.id


@dataclass(frozen=True)
class ModuleFile:
    """What the names check needs of one Python file: what it takes from modules, and what it defines.

    ``references``: imports of, and attribute uses on, modules that may be the repository's own, first line
    of each. ``names``: the names the module defines at its top level; None when its text cannot tell.
    """

    references: tuple[Reference, ...]
    names: frozenset[str] | None

    @classmethod
    def scan(cls, path: str, tree: ast.Module) -> ModuleFile:
        scan = _Scan(path, tree)
        scan.attribute_uses(*scan.import_statements())
        return cls(tuple(scan.found.values()), scan.names(tree))


class _Scan:
    """One walk over a file's tree: its imports, attribute uses, and the names it binds otherwise."""

    def __init__(self, path: str, tree: ast.Module) -> None:
        self.path = path
        self.found: dict[tuple[tuple[str, ...], str], Reference] = {}
        self.imports: list[ast.Import | ast.ImportFrom] = []
        self.uses: list[ast.Attribute] = []
        self.stored: set[tuple[str | None, str]] = set()  # ``m.name = ...``: the file defines it itself
        self.rebound: set[str] = set()
        self.declared: set[str] = set()  # ``global`` names: module-level names a function binds
        self.dynamic = False  # names made in ways the text does not show
        for node, guarded in zip(*_nodes(tree), strict=True):
            if type(node) not in _SCANNED:  # most nodes: one set lookup
                continue
            if isinstance(node, ast.Name):  # the most frequent kinds first
                if not isinstance(node.ctx, ast.Load):
                    self.rebound.add(node.id)
            elif isinstance(node, ast.Attribute):
                self._attribute(node, guarded)
            elif isinstance(node, ast.Call):
                self.dynamic |= isinstance(node.func, ast.Name) and node.func.id in _DYNAMIC
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                if not guarded:  # an import in a ``try`` body is optional: not checked
                    self.imports.append(node)
                self.dynamic |= any(alias.name == "*" for alias in node.names)
            elif isinstance(node, (ast.Global, ast.Nonlocal)):
                self.rebound.update(node.names)
                self.declared.update(node.names if isinstance(node, ast.Global) else ())
            else:  # the other kinds of ``_SCANNED`` bind a name
                name = getattr(node, _BINDING_FIELDS[type(node)])
                if name:
                    self.rebound.add(name)

    def _attribute(self, node: ast.Attribute, guarded: bool) -> None:
        if isinstance(node.ctx, ast.Load):
            if not guarded:
                self.uses.append(node)
            self.dynamic |= node.attr == "modules" and isinstance(node.value, ast.Name) and node.value.id == "sys"
        else:
            self.stored.add((_chain(node), node.attr))

    def names(self, tree: ast.Module) -> frozenset[str] | None:
        """The names the module defines at its top level; None when they cannot be known from its text."""
        if self.dynamic:
            return None
        names = set(self.declared)
        for statement in _top_level(tree.body):
            if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                if statement.name == "__getattr__" and not isinstance(statement, ast.ClassDef):
                    return None
                names.add(statement.name)
            elif isinstance(statement, (ast.Import, ast.ImportFrom)):
                names.update((alias.asname or alias.name).split(".")[0] for alias in statement.names)
            else:
                names.update(_stored_names(statement))
        return frozenset(names)

    def import_statements(self) -> tuple[dict[str, tuple[str, int]], set[tuple[str, int]]]:
        """Record what the import statements take; return the module aliases they bind (name -> dotted module,
        level) and the modules ``import a.b`` imports (a, a.b)."""
        targets: dict[str, set[tuple[str, int]]] = {}
        imported: set[tuple[str, int]] = set()
        for statement in self.imports:
            if isinstance(statement, ast.ImportFrom):
                if any(alias.name == "*" for alias in statement.names):
                    continue
                for alias in statement.names:
                    self.add(statement.module or "", statement.level, alias.name, statement.lineno, False)
                    dotted = f"{statement.module}.{alias.name}" if statement.module else alias.name
                    targets.setdefault(alias.asname or alias.name, set()).add((dotted, statement.level))
                continue
            for alias in statement.names:
                parts = alias.name.split(".")
                for index in range(1, len(parts)):
                    imported.add((".".join(parts[:index]), 0))
                    self.add(".".join(parts[:index]), 0, parts[index], statement.lineno, False)
                imported.add((alias.name, 0))
                bound = alias.name if alias.asname else parts[0]
                targets.setdefault(alias.asname or parts[0], set()).add((bound, 0))
        aliases = {name: next(iter(to)) for name, to in targets.items() if len(to) == 1 and name not in self.rebound}
        return aliases, imported

    def attribute_uses(self, aliases: Mapping[str, tuple[str, int]], imported: set[tuple[str, int]]) -> None:
        """Record ``alias.name`` uses, through ``import a.b`` chains (``a.b.name``)."""
        for node in self.uses:
            chain = _chain(node)
            head, *rest = (chain or "").split(".")
            if chain is None or head not in aliases or (chain, node.attr) in self.stored:
                continue
            module, level = aliases[head]
            while rest and (f"{module}.{rest[0]}", level) in imported:
                module, rest = f"{module}.{rest[0]}", rest[1:]
            if not rest:  # ``m.name`` itself, not an attribute of something ``m`` holds
                self.add(module, level, node.attr, node.lineno, True)

    def add(self, module: str, level: int, name: str, line: int, attribute: bool) -> None:
        """Record ``name`` from ``module`` unless it is the standard library's or cannot be placed."""
        parts = [part for part in module.split(".") if part]
        if level:
            directory = posixpath.dirname(self.path)
            for _ in range(level - 1):
                if not directory:
                    return  # beyond the top of the repository
                directory = posixpath.dirname(directory)
            base = posixpath.join(directory, *parts) if parts else directory
            if not base:
                return  # the repository's top directory is no module
            bases: tuple[str, ...] = (base,)
        else:
            if not parts or parts[0] in _STDLIB:
                return
            roots, directory = [""], posixpath.dirname(self.path)
            while directory:
                roots.append(directory)
                directory = posixpath.dirname(directory)
            bases = tuple(posixpath.join(root, *parts) for root in roots)
        reference = Reference(bases, "." * level + module, name, line, attribute)
        self.found.setdefault(reference.key, reference)


def _chain(node: ast.Attribute) -> str | None:
    """``a.b`` for the attribute ``a.b.c``: the dotted names it is taken from, None if not plain names."""
    value, parts = node.value, []
    while isinstance(value, ast.Attribute):
        parts.append(value.attr)
        value = value.value
    return ".".join([value.id, *reversed(parts)]) if isinstance(value, ast.Name) else None


_BINDING_FIELDS: dict[type[ast.AST], str] = {  # other nodes that bind a name, and the field that holds it
    ast.FunctionDef: "name",
    ast.AsyncFunctionDef: "name",
    ast.ClassDef: "name",
    ast.arg: "arg",
    ast.ExceptHandler: "name",
    ast.MatchAs: "name",
    ast.MatchStar: "name",
    ast.MatchMapping: "rest",
}
_SCANNED = frozenset(
    {ast.Name, ast.Attribute, ast.Call, ast.Import, ast.ImportFrom, ast.Global, ast.Nonlocal, *_BINDING_FIELDS}
)


class Snapshot:
    """One commit's tree, as far as resolving references needs it: which candidate files exist."""

    def __init__(self, git: Git, commit: str, index: ModuleIndex) -> None:
        self.commit = commit
        self._git = git
        self._index = index
        self._entries: dict[str, Entry | None] = {}

    def load(self, wanted: Iterable[Reference]) -> None:
        """Read the entries of every candidate path of ``wanted`` at once."""
        paths = {path for reference in wanted for path in reference.candidates()} - self._entries.keys()
        self._entries.update(self._git.entries_at(self.commit, paths))

    def file(self, path: str) -> str | None:
        """The blob id of a regular file at ``path``, None otherwise."""
        if path not in self._entries:
            self._entries.update(self._git.entries_at(self.commit, [path]))
        return self.blob(path)

    def blob(self, path: str) -> str | None:
        """The blob id of a regular file at ``path`` (loaded before), None otherwise."""
        return _blob_of(self._entries.get(path))

    def module_path(self, reference: Reference) -> str | None:
        """The one file the reference's module is in this tree; None when none or several are."""
        found = [path for base in reference.bases for path in (f"{base}/__init__.py", f"{base}.py")
                 if self.blob(path)]  # fmt: skip
        packages = {posixpath.dirname(path) if path.endswith("__init__.py") else path[:-3] for path in found}
        return found[0] if len(packages) == 1 else None

    def outcome(self, reference: Reference) -> Outcome:
        """Whether ``reference`` resolves here."""
        self.load((reference,))
        path = self.module_path(reference)
        if path is None:
            present = any(self.blob(f"{base}.py") or self.blob(f"{base}/__init__.py") for base in reference.bases)
            return Outcome.UNKNOWN if present else Outcome.GONE
        stem = posixpath.dirname(path) if path.endswith("__init__.py") else None
        if stem is not None and (self.blob(f"{stem}/{reference.name}.py") or
                                 self.blob(f"{stem}/{reference.name}/__init__.py")):  # fmt: skip
            return Outcome.FOUND
        blob = self.blob(path)
        assert blob is not None
        names = self._index.names(self._git, path, blob)
        if names is None:
            return Outcome.UNKNOWN
        return Outcome.FOUND if reference.name in names else Outcome.MISSING


class ModuleIndex:
    """Python files read from git objects and scanned, by blob id, shared by every branch a process aligns."""

    def __init__(self, max_parsed_bytes: int) -> None:
        self._files = functools.lru_cache(maxsize=16384)(self._scan)
        self.source_roots = functools.lru_cache(maxsize=64)(self._source_roots)
        # a branch asks for a file's references again for each of its broken ones, on each side (``_introduced``)
        self.references = functools.lru_cache(maxsize=4096)(self._references)
        self.reference_keys = functools.lru_cache(maxsize=4096)(self._reference_keys)
        self._max_parsed_bytes = max_parsed_bytes

    def _references(self, git: Git, path: str, blob: str, roots: tuple[str, ...] = ()) -> tuple[Reference, ...]:
        """What the file takes from modules, each module looked for under ``roots`` too."""
        return tuple(reference.under(roots) for reference in self._files(git, path, blob).references)

    def _reference_keys(self, git: Git, path: str, blob: str, roots: tuple[str, ...]) -> frozenset[ReferenceKey]:
        """The ``key`` of each of the file's ``references``: whether the file has a reference, at once."""
        return frozenset(reference.key for reference in self.references(git, path, blob, roots))

    def names(self, git: Git, path: str, blob: str) -> frozenset[str] | None:
        return self._files(git, path, blob).names

    def _source_roots(self, git: Git, pyproject: str | None) -> tuple[str, ...]:
        """``src`` and the folders a ``pyproject.toml`` (its blob id) gives setuptools for packages: ``package-dir``'s
        entry for the root package (``""``) and ``packages.find``'s ``where``. A file that does not parse, or a
        value that is not a relative folder inside the repository, declares nothing."""
        try:
            pyproject_toml = tomllib.loads(file_text(git.read_blob(pyproject))) if pyproject else {}
        except tomllib.TOMLDecodeError:
            pyproject_toml = {}
        setuptools = _lookup(pyproject_toml, "tool", "setuptools")
        where = _lookup(setuptools, "packages", "find", "where")
        declared = [_lookup(setuptools, "package-dir", ""), *(where if isinstance(where, list) else ())]
        roots = [*_SOURCE_ROOTS, *(folder for value in declared if (folder := _folder(value)) is not None)]
        return tuple(dict.fromkeys(roots))

    def _scan(self, git: Git, path: str, blob: str) -> ModuleFile:
        """A file that does not parse, or is too large to parse, has no references and unknown names."""
        content = git.read_blob(blob)
        if len(content) > self._max_parsed_bytes:
            return ModuleFile((), None)
        tree = parse_quietly(file_text(content), path)
        return ModuleFile((), None) if tree is None else ModuleFile.scan(path, tree)


@dataclass(frozen=True)
class _Sides:
    """The three trees of one alignment: the branch tip, the target and the merged commit."""

    branch: Snapshot
    target: Snapshot
    merged: Snapshot
    roots: tuple[str, ...]  # the project's source roots (``ModuleIndex.source_roots``), the same for the three


def removed_names(
    git: Git, old_tip: str, target: str, merged: str, changes: Mapping[str, Entry | None], index: ModuleIndex
) -> list[Finding]:
    """``name_removed_by_other_side`` for each reference of a changed Python file that the merge broke;
    ``changes`` are the files ``merged`` has differently from ``target`` (what the branch brings).

    A file only the branch changed can break only on a module the target changed, so it is parsed only
    when it mentions such a module's name (or imports relatively while a package's ``__init__`` changed);
    a file of the target's, only when it mentions a name the branch removed.
    """
    own = {path: entry for path, entry in changes.items() if path.endswith(".py")}
    if not own:
        return []
    merged_tree = Snapshot(git, merged, index)
    roots = index.source_roots(git, merged_tree.file("pyproject.toml"))
    sides = _Sides(Snapshot(git, old_tip, index), Snapshot(git, target, index), merged_tree, roots)
    brought = {path: entry for path, entry in git.tree_changes(old_tip, merged).items() if path.endswith(".py")}
    modules = {_module_name(path) for path in brought}
    relative = any(path.endswith("__init__.py") for path in brought)
    wanted: dict[str, tuple[Reference, ...]] = {}
    for path, entry in own.items():
        blob = _blob_of(entry)
        if blob is not None and (path in brought or _mentions(git.read_blob(blob), modules, relative)):
            wanted[path] = index.references(git, path, blob, roots)
    words = _removed_by_branch(git, sides, own, index)
    for path, entry in brought.items() if words else ():
        blob = _blob_of(entry)
        if path not in own and blob is not None and _mentions(git.read_blob(blob), words, False):
            wanted[path] = tuple(ref for ref in index.references(git, path, blob, roots) if ref.name in words)
    differs = brought.keys() | own.keys()
    wanted = {path: tuple(ref for ref in refs if _may_differ(ref, differs)) for path, refs in wanted.items()}
    sides.merged.load(ref for refs in wanted.values() for ref in refs)
    broken = [(path, ref) for path, refs in wanted.items() for ref in refs if _broken(sides.merged.outcome(ref), ref)]
    for side in (sides.branch, sides.target):  # read what the checks of both sides need at once
        side.load(ref for _, ref in broken)
    found = (_introduced(git, sides, path, reference, index) for path, reference in broken)
    return [finding for finding in found if finding is not None]


def _lookup(table: object, *keys: str) -> object:
    """``table[key][key]...``; None where a level is missing or is not a table."""
    for key in keys:
        table = table.get(key) if isinstance(table, dict) else None
    return table


def _folder(value: object) -> str | None:
    """``value`` as a folder of the repository (``""`` for its top), None when it is not one."""
    if not isinstance(value, str):
        return None
    folder = posixpath.normpath(value.replace("\\", "/")) if value else "."
    if folder.startswith("/") or folder == ".." or folder.startswith("../"):
        return None
    return "" if folder == "." else folder


def _module_name(path: str) -> str:
    """The last part of the module a ``.py`` file is: ``util`` for ``pkg/util.py`` and ``pkg/util/__init__.py``."""
    return posixpath.basename(posixpath.dirname(path) if path.endswith("/__init__.py") else path[:-3])


def _mentions(content: bytes, words: set[str], relative: bool) -> bool:
    """Whether a file's text has one of ``words`` as an identifier (or, with ``relative``, a relative import)."""
    return bool(words & {word.decode() for word in set(_IDENTIFIER.findall(content))}) or (
        relative and b"from ." in content
    )


def _may_differ(reference: Reference, differs: Set[str]) -> bool:
    """Whether the merged tree can resolve ``reference`` otherwise than a side does: only when one of the files
    its resolution reads differs from that side's (``differs``: the files the merged tree has differently from
    the branch tip or from the target). Otherwise it resolves as on both sides, and a reference broken on every
    side is no finding; the module it names is not even read."""
    return any(path in differs for path in reference.candidates())


def _broken(outcome: Outcome, reference: Reference) -> bool:
    """A name the module lacks, or an imported module that is not there (an attribute's alias may not be one)."""
    return outcome is Outcome.MISSING or (outcome is Outcome.GONE and not reference.attribute)


def _removed_by_branch(git: Git, sides: _Sides, own: Mapping[str, Entry | None], index: ModuleIndex) -> set[str]:
    """Names the target's version of a module defines that the merged one lacks, for the modules the branch
    changed (with the module's own name when the branch removed the file)."""
    before = git.entries_at(sides.target.commit, own)
    words: set[str] = set()
    for path, entry in own.items():
        was, now = _blob_of(before[path]), _blob_of(entry)
        if was is None:
            continue
        old = index.names(git, path, was)
        new = frozenset() if now is None else index.names(git, path, now)
        if old is not None and new is not None:
            words.update(old - new)
        if entry is None:
            words.add(_module_name(path))
    return words


def _introduced(git: Git, sides: _Sides, path: str, reference: Reference, index: ModuleIndex) -> Finding | None:
    """The finding for a reference the merged tree does not resolve, when every side that has it resolved it."""
    resolved = {side for side in (sides.branch, sides.target) if side.outcome(reference) is Outcome.FOUND}
    if not resolved:  # resolved nowhere (another project's module, say): whatever happened was not the merge
        return None
    had = False
    for side in (sides.branch, sides.target):
        blob = side.file(path)
        if blob is not None and reference.key in index.reference_keys(git, path, blob, sides.roots):
            if side not in resolved:
                return None
            had = True
    if not had:
        return None
    what = (f"uses `{reference.module}.{reference.name}`" if reference.attribute
            else f"imports `{reference.name}` from `{reference.module}`")  # fmt: skip
    remover = next((side for side in (sides.target, sides.branch) if side not in resolved), None)
    if remover is None:  # each side has it: their changes to the module together lost it
        message = f"{what}, which the merged `{reference.module}` no longer has"
    else:
        who = "the target" if remover is sides.target else "this branch"
        gone = sides.merged.outcome(reference) is Outcome.GONE
        message = f"{what}, {f'a module {who} removed or renamed' if gone else f'which {who} removed'}"
        kept = sides.branch if remover is sides.target else sides.target
        commit = _culprit(git, reference, remover, kept, index)
        if commit is not None:
            message += f" in {commit.oid[:12]} ({commit.subject!r}, {commit.author})"
    return Finding("name_removed_by_other_side", Severity.ERROR, message, path, reference.line)


def _culprit(
    git: Git, reference: Reference, remover: Snapshot, kept: Snapshot, index: ModuleIndex
) -> CommitInfo | None:
    """The first commit on the remover's first-parent line (since the sides forked) after which the reference
    no longer resolves: bisection over the commits that changed the module's file (or the submodule's), as
    conflict causes are found (``explain.explain_conflicts``), here by reading the module at each probe."""
    files = [path for path in reference.candidates() if kept.blob(path)]  # the module, or the submodule
    line = [commit for commit, changed in git.first_parent_line(kept.commit, remover.commit, files)
            if changed & set(files)]  # fmt: skip
    broken = bisect.bisect_left(
        line, True, key=lambda commit: Snapshot(git, commit.oid, index).outcome(reference) is not Outcome.FOUND
    )
    return line[broken] if broken < len(line) else None
