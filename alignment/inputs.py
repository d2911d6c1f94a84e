"""Load and validate ``categorized_branches.json`` (079.2) and group its branches by target.

Every problem is one ``InputError`` line naming the file, the entry and field, and what was expected; nothing
is read from the repository here, so bad input never changes anything.
"""

from __future__ import annotations

import difflib
import json
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from alignment.errors import InputError, counted, kind_of, shown
from alignment.model import BranchSpec
from alignment.names import invalid_branch_name
from alignment.shard import Shard, ShardSpec, fingerprint, partition

MAX_INPUT_BYTES = 64 * 1024 * 1024
MAX_NESTING = 64  # lists and objects inside each other; an entry needs 3
_REQUIRED_FIELDS = ("branch_name", "assigned_target")
_OPTIONAL_FIELDS = ("confidence", "tags", "cluster_id")  # Task 007's classification: validated when present
_KNOWN_FIELDS = _REQUIRED_FIELDS + _OPTIONAL_FIELDS


@dataclass(frozen=True)
class TargetGroup:
    """The branches of one target, in input order."""

    target: str
    branches: tuple[BranchSpec, ...]


@dataclass(frozen=True)
class BranchInput:
    """A validated input file: branches in input order, groups ordered by the target's first appearance.

    ``shard`` is set when this is one shard's part of the file (``--shard K/N``).
    """

    source: str
    branches: tuple[BranchSpec, ...]
    warnings: tuple[str, ...] = field(default=(), compare=False)
    shard: Shard | None = None

    @property
    def groups(self) -> tuple[TargetGroup, ...]:
        order: dict[str, list[BranchSpec]] = {}
        for spec in self.branches:
            order.setdefault(spec.target, []).append(spec)
        return tuple(TargetGroup(target, tuple(specs)) for target, specs in order.items())

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(group.target for group in self.groups)

    def to_data(self) -> dict[str, Any]:
        data = {"source": self.source, "branches": [spec.to_dict() for spec in self.branches]}
        return data if self.shard is None else {**data, "shard": self.shard.to_dict()}

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> BranchInput:
        shard = Shard.from_dict(data["shard"]) if "shard" in data else None
        return replace(parse_branches(data, data["source"]), shard=shard)

    def select_shard(self, spec: ShardSpec) -> BranchInput:
        """Shard ``spec`` of these branches (``alignment.shard`` has the rule), still in input order."""
        groups = self.groups
        pieces = partition([(group.target, len(group.branches)) for group in groups], spec.count)[spec.index - 1]
        chosen = {
            branch.name for piece in pieces for branch in groups[piece.target_index].branches[piece.start : piece.stop]
        }
        kept = tuple(branch for branch in self.branches if branch.name in chosen)
        shard = Shard(spec, fingerprint(self.branches), len(self.branches), pieces)
        return BranchInput(self.source, kept, warnings=self.warnings, shard=shard)


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
        mode = os.fstat(descriptor).st_mode
        if stat.S_ISDIR(mode):
            raise InputError(source, "", "is a directory; expected a JSON file")
        if not stat.S_ISREG(mode):
            raise InputError(source, "", f"is {_file_kind(mode)}; expected a regular JSON file")
        with os.fdopen(descriptor, "rb", closefd=False) as stream:
            data = stream.read(MAX_INPUT_BYTES + 1)
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
    in one pass; unknown keys of an entry are kept (and round-tripped) but named in ``warnings``.
    """
    if not isinstance(data, Mapping):
        raise InputError(source, "top level", f'expected an object with a "branches" list, got {kind_of(data)}')
    entries = data.get("branches")
    if not isinstance(entries, list):
        got = "nothing" if "branches" not in data else kind_of(entries)
        raise InputError(source, "branches", f"expected a list of branch entries, got {got}")
    if not entries:
        raise InputError(source, "branches", "the list is empty; expected at least one branch entry")
    problems: list[str] = []
    specs = tuple(
        spec for index, entry in enumerate(entries) if (spec := _parse_entry(entry, index, problems)) is not None
    )
    if not problems:
        _check_names_unique(specs, problems)
    if problems:
        raise InputError.of_all(source, problems)
    return BranchInput(source, specs, _unknown_key_warnings(entries))


def _parse_entry(entry: object, index: int, problems: list[str]) -> BranchSpec | None:
    """The entry as a ``BranchSpec``, or None after adding each of its problems (``where: what``) to ``problems``."""
    where = f"branches[{index}]"
    if not isinstance(entry, Mapping):
        problems.append(f"{where}: expected an object, got {kind_of(entry)}")
        return None
    found = len(problems)
    names = {}
    for name in _REQUIRED_FIELDS:
        if name not in entry:
            problems.append(f"{where}.{name}: required field is missing")
        else:
            names[name] = _ref_name(entry[name], f"{where}.{name}", problems)
    confidence = entry.get("confidence")
    if confidence is not None and (
        isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 <= confidence <= 1
    ):
        problems.append(f"{where}.confidence: expected a number from 0 to 1, got {shown(confidence)}")
    tags = entry.get("tags")
    if tags is not None and (not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags)):
        problems.append(f"{where}.tags: expected a list of strings, got {shown(tags)}")
    cluster_id = entry.get("cluster_id")
    if cluster_id is not None and (isinstance(cluster_id, bool) or not isinstance(cluster_id, int)):
        problems.append(f"{where}.cluster_id: expected an integer, got {shown(cluster_id)}")
    if len(problems) > found:
        return None
    extra = {key: value for key, value in entry.items() if key not in _KNOWN_FIELDS}
    return BranchSpec(
        names["branch_name"],
        names["assigned_target"],
        None if confidence is None else float(confidence),
        None if tags is None else tuple(tags),
        cluster_id,
        index,
        extra,
    )


def _unknown_key_warnings(entries: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """One warning per unknown key: the first entry that has it, how many do, and the closest known key."""
    first: dict[str, int] = {}
    counts: dict[str, int] = {}
    for index, entry in enumerate(entries):
        for key in entry:
            if key not in _KNOWN_FIELDS:
                first.setdefault(key, index)
                counts[key] = counts.get(key, 0) + 1
    warnings = []
    for key, index in first.items():
        close = difflib.get_close_matches(key, _KNOWN_FIELDS, n=1)
        hint = f"did you mean {close[0]}?" if close else f"known keys: {', '.join(_KNOWN_FIELDS)}"
        others = f" (and {counted(counts[key] - 1, 'more entry', 'more entries')})" if counts[key] > 1 else ""
        warnings.append(f"branches[{index}].{key}{others}: unknown key, kept but not used ({hint})")
    return tuple(warnings)


def _ref_name(value: object, where: str, problems: list[str]) -> str:
    if not isinstance(value, str):
        problems.append(f"{where}: expected a branch name (string), got {shown(value)}")
        return ""
    problem = invalid_branch_name(value)
    if problem:
        problems.append(f"{where}: {value!r} is not a valid git branch name: it {problem}")
    return value


def _check_names_unique(specs: Sequence[BranchSpec], problems: list[str]) -> None:
    first_index: dict[str, int] = {}
    targets = {spec.target for spec in specs}
    for spec in specs:
        where = f"branches[{spec.index}].branch_name"
        if spec.name in first_index:
            problems.append(f"{where}: {spec.name!r} is listed twice (first at branches[{first_index[spec.name]}])")
        first_index.setdefault(spec.name, spec.index)
        if spec.name in targets:
            problems.append(
                f"{where}: {spec.name!r} is also a target; a target branch cannot be aligned onto another target"
            )
