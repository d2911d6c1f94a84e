"""Load and validate ``categorized_branches.json`` and group its branches by target.

Every problem is one ``InputError`` line naming the file, the entry and field, and what was expected; nothing
is read from the repository here, so bad input never changes anything.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import msgspec

from alignment.errors import InputError, counted, kind_of
from alignment.model import BranchSpec
from alignment.names import invalid_branch_name
from alignment.shard import Shard, ShardSpec, fingerprint, partition
from alignment.validation import Check, closest, problems_of

MAX_INPUT_BYTES = 64 * 1024 * 1024
MAX_NESTING = 64  # lists and objects inside each other; an entry needs 3
BranchName = Annotated[
    str,
    msgspec.Meta(
        description="A git branch name (git check-ref-format --branch).", extra={"expected": "a branch name (string)"}
    ),
]


class Entry(msgspec.Struct, frozen=True):
    """One branch of the input. Only the name and the target are required; the classification that made the
    file (``confidence``, ``tags``, ``cluster_id``) is checked when present. Other keys are kept, with a warning."""

    branch_name: BranchName
    assigned_target: BranchName
    confidence: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None
    tags: tuple[str, ...] | None = None
    cluster_id: int | None = None


class CategorizedBranches(msgspec.Struct, frozen=True):
    """The input file: the spec's input format and an optional ``$schema`` for editors; other keys are warned of."""

    branches: Annotated[
        tuple[Annotated[Entry, msgspec.Meta(extra={"expected": "an object"})], ...], msgspec.Meta(min_length=1)
    ]
    schema: str | None = msgspec.field(default=None, name="$schema")


_KNOWN_FIELDS = Entry.__struct_fields__
_KNOWN_TOP_LEVEL = CategorizedBranches.__struct_encode_fields__  # "$schema", as the file spells it


@dataclass(frozen=True)
class TargetGroup:
    """The branches of one target, in input order."""

    target: str
    branches: tuple[BranchSpec, ...]


@dataclass(frozen=True)
class BranchInput:
    """A validated input file: branches in input order, groups ordered by the target's first appearance.

    ``shard`` is set when this is one shard's part of the file (``--shard K/N``), and ``input_targets`` and
    ``input_names`` then hold the targets and the branch names of the whole file.
    """

    source: str
    branches: tuple[BranchSpec, ...]
    warnings: tuple[str, ...] = field(default=(), compare=False)
    shard: Shard | None = None
    input_targets: tuple[str, ...] = field(default=(), compare=False)
    input_names: frozenset[str] = field(default=frozenset(), compare=False)

    @property
    def groups(self) -> tuple[TargetGroup, ...]:
        order: dict[str, list[BranchSpec]] = {}
        for spec in self.branches:
            order.setdefault(spec.target, []).append(spec)
        return tuple(TargetGroup(target, tuple(specs)) for target, specs in order.items())

    @property
    def names(self) -> frozenset[str]:
        """The names of the whole input file's branches, a shard's too: none of them is ever a backup, or a
        folder of one, so every shard picks the backup names one unsharded run would, in any order."""
        return self.input_names or frozenset(spec.name for spec in self.branches)

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(group.target for group in self.groups)

    @property
    def file_targets(self) -> tuple[str, ...]:
        """The targets of the whole input file, a shard's too: what must not depend on the shard (a marker)."""
        return self.input_targets or self.targets

    def select_shard(self, spec: ShardSpec) -> BranchInput:
        """Shard ``spec`` of these branches (``alignment.shard`` has the rule), still in input order."""
        groups = self.groups
        pieces = partition([(group.target, len(group.branches)) for group in groups], spec.count)[spec.index - 1]
        chosen = {
            branch.name for piece in pieces for branch in groups[piece.target_index].branches[piece.start : piece.stop]
        }
        kept = tuple(branch for branch in self.branches if branch.name in chosen)
        shard = Shard(spec, fingerprint(self.branches), len(self.branches), pieces)
        return BranchInput(
            self.source, kept, self.warnings, shard, input_targets=self.file_targets, input_names=self.names
        )


def load_branches(path: str | Path, shard: ShardSpec | None = None) -> BranchInput:
    """Read ``path`` and validate it against the spec's input format; only ``shard``'s part of it if given."""
    branches = parse_branches(read_json(path), str(Path(path)))
    return branches if shard is None else branches.select_shard(shard)


def read_json(path: str | Path) -> object:
    """The decoded JSON of the file at ``path``; an ``InputError`` naming the file when it cannot be had."""
    source = Path(path)
    try:
        text = _read_regular_file(source).decode("utf-8")
    except FileNotFoundError:
        raise InputError(source, "", "file not found") from None
    except UnicodeDecodeError as exc:
        raise InputError(source, "", f"not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise InputError(source, "", f"cannot read: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(source, f"line {exc.lineno}, column {exc.colno}", f"invalid JSON: {exc.msg}") from None
    except RecursionError:
        raise InputError(source, "", "invalid JSON: nested too deeply") from None
    too_deep = _nested_beyond(data, MAX_NESTING)
    if too_deep is not None:
        raise InputError(source, too_deep, f"nested more than {MAX_NESTING} levels deep") from None
    return data


def _read_regular_file(source: Path) -> bytes:
    """The bytes of ``source``, a regular file of at most ``MAX_INPUT_BYTES``.

    Anything else is refused before a byte is read: a device (``/dev/zero`` never ends), a FIFO (its reader
    waits for a writer forever; the open itself does not block, thanks to ``O_NONBLOCK``), a directory.
    The size is checked on what is read too: a file may grow after ``fstat``.
    """
    descriptor = os.open(source, os.O_RDONLY | os.O_NONBLOCK)
    try:
        info = os.fstat(descriptor)
        mode = info.st_mode
        if stat.S_ISDIR(mode):
            raise InputError(source, "", "is a directory; expected a JSON file")
        if not stat.S_ISREG(mode):
            raise InputError(source, "", f"is {_file_kind(mode)}; expected a regular JSON file")
        with os.fdopen(descriptor, "rb", closefd=False) as stream:
            data = stream.read(min(info.st_size, MAX_INPUT_BYTES) + 1)  # a buffer of the file's size, not the bound
            if len(data) > info.st_size:  # it grew since fstat: read on, up to the bound
                data += stream.read(MAX_INPUT_BYTES + 1 - len(data))
    finally:
        os.close(descriptor)
    if len(data) > MAX_INPUT_BYTES:
        raise InputError(source, "", f"file is over {MAX_INPUT_BYTES} bytes; expected at most {MAX_INPUT_BYTES}")
    return data


def _file_kind(mode: int) -> str:
    return "a named pipe (FIFO)" if stat.S_ISFIFO(mode) else "a device or other special file"


def _nested_beyond(data: object, limit: int) -> str | None:
    """Where ``data`` nests deeper than ``limit`` lists and objects (the entry, e.g. ``branches[3]``), or None.

    Deep nesting that ``json`` still loads fails later, when the run saves its input: refused here instead.
    Iterative, so it cannot itself run out of stack.
    """
    stack: list[tuple[object, int, str]] = [(data, 0, "")]
    while stack:
        value, depth, where = stack.pop()
        if depth > limit:
            return where or "top level"
        children: list[tuple[str, object]] = []
        if isinstance(value, Mapping):
            children = [(f"{where}.{key}" if where else str(key), item) for key, item in value.items()]
        elif isinstance(value, list):
            children = [(f"{where}[{index}]", item) for index, item in enumerate(value)]
        for path, item in children:
            stack.append((item, depth + 1, path if depth < 2 else where))
    return None


def parse_branches(data: object, source: str) -> BranchInput:
    """Validate already-decoded JSON ``data``; ``source`` names it in error messages.

    Every problem of the file is collected and raised as one ``InputError``, so a hand-written file is fixed
    in one pass; unknown keys of an entry are kept (and round-tripped) but named in ``warnings``, and so are
    unknown keys beside ``branches`` (not kept).
    """
    if not isinstance(data, Mapping):
        raise InputError(source, "top level", f'expected an object with a "branches" list, got {kind_of(data)}')
    entries = data.get("branches")
    if not isinstance(entries, list):
        got = "nothing" if "branches" not in data else kind_of(entries)
        raise InputError(source, "branches", f"expected a list of branch entries, got {got}")
    if not entries:
        raise InputError(source, "branches", "the list is empty; expected at least one branch entry")
    problems = problems_of(data, CategorizedBranches, "", _CHECKS) + list(_names_unique(entries))
    if problems:
        raise InputError.of_all(source, problems)
    typed = msgspec.convert(data, CategorizedBranches).branches
    specs = tuple(
        BranchSpec(
            entry.branch_name,
            entry.assigned_target,
            entry.confidence,
            entry.tags,
            entry.cluster_id,
            index,
            {key: value for key, value in raw.items() if key not in _KNOWN_FIELDS},
        )
        for index, (entry, raw) in enumerate(zip(typed, entries, strict=True))
    )
    return BranchInput(source, specs, _unknown_key_warnings(data, entries))


def _unknown_key_warnings(data: Mapping[str, Any], entries: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """One warning per unknown key: at the top level, the key; in the entries, the first entry that has it and
    how many do; each with the closest known key."""
    known = _KNOWN_TOP_LEVEL
    warnings = [f"{key}: unknown key, not used ({closest(key, known)})" for key in data if key not in known]
    first: dict[str, int] = {}
    counts: dict[str, int] = {}
    for index, entry in enumerate(entries):
        for key in entry:
            if key not in _KNOWN_FIELDS:
                first.setdefault(key, index)
                counts[key] = counts.get(key, 0) + 1
    for key, index in first.items():
        others = f" (and {counted(counts[key] - 1, 'more entry', 'more entries')})" if counts[key] > 1 else ""
        warnings.append(
            f"branches[{index}].{key}{others}: unknown key, kept but not used ({closest(key, _KNOWN_FIELDS)})"
        )
    return tuple(warnings)


def _ref_name(name: str) -> Iterator[tuple[str, str]]:
    problem = invalid_branch_name(name)
    if problem:
        yield "", f"{name!r} is not a valid git branch name: it {problem}"


def _names_unique(entries: Sequence[object]) -> Iterator[str]:
    """A branch listed twice, or listed while it is a target: either would be aligned twice or onto itself.

    Checked beside the entries' other problems (an entry without a string name or target is left to those),
    so that every problem of the file comes in one error.
    """
    first_index: dict[str, int] = {}
    targets = {_text(entry, "assigned_target") for entry in entries}
    for index, entry in enumerate(entries):
        name = _text(entry, "branch_name")
        if name is None:
            continue
        where = f"branches[{index}].branch_name"
        if name in first_index:
            yield f"{where}: {name!r} is listed twice (first at branches[{first_index[name]}])"
        first_index.setdefault(name, index)
        if name in targets:
            yield f"{where}: {name!r} is also a target; a target branch cannot be aligned onto another target"


def _text(entry: object, key: str) -> str | None:
    """``entry[key]`` when ``entry`` is an object and that is a string."""
    value = entry.get(key) if isinstance(entry, Mapping) else None
    return value if isinstance(value, str) else None


_CHECKS: dict[str, Check] = {"branch_name": _ref_name, "assigned_target": _ref_name}
