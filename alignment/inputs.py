"""Load and validate ``categorized_branches.json`` (079.2) and group its branches by target.

Every problem is one ``InputError`` line naming the file, the entry and field, and what was expected; nothing
is read from the repository here, so bad input never changes anything.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alignment.errors import InputError, kind_of, shown
from alignment.model import BranchSpec
from alignment.names import invalid_branch_name

MAX_INPUT_BYTES = 64 * 1024 * 1024
MAX_NESTING = 64  # lists and objects inside each other; an entry needs 3
_REQUIRED_FIELDS = ("branch_name", "assigned_target", "confidence", "tags", "cluster_id")


@dataclass(frozen=True)
class TargetGroup:
    """The branches of one target, in input order."""

    target: str
    branches: tuple[BranchSpec, ...]


@dataclass(frozen=True)
class BranchInput:
    """A validated input file: branches in input order, groups ordered by the target's first appearance."""

    source: str
    branches: tuple[BranchSpec, ...]

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
        return {"source": self.source, "branches": [spec.to_dict() for spec in self.branches]}

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> BranchInput:
        return parse_branches(data, data["source"])


def load_branches(path: str | Path) -> BranchInput:
    """Read ``path`` and validate it against the spec's input format."""
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
    return parse_branches(data, str(source))


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
    """Validate already-decoded JSON ``data``; ``source`` names it in error messages."""
    if not isinstance(data, Mapping):
        raise InputError(source, "top level", f'expected an object with a "branches" list, got {kind_of(data)}')
    entries = data.get("branches")
    if not isinstance(entries, list):
        got = "nothing" if "branches" not in data else kind_of(entries)
        raise InputError(source, "branches", f"expected a list of branch entries, got {got}")
    specs = tuple(_parse_entry(entry, index, source) for index, entry in enumerate(entries))
    _check_names_unique(specs, source)
    return BranchInput(source, specs)


def _parse_entry(entry: object, index: int, source: str) -> BranchSpec:
    where = f"branches[{index}]"
    if not isinstance(entry, Mapping):
        raise InputError(source, where, f"expected an object, got {kind_of(entry)}")
    for name in _REQUIRED_FIELDS:
        if name not in entry:
            raise InputError(source, f"{where}.{name}", "required field is missing")
    branch = _ref_name(entry["branch_name"], source, f"{where}.branch_name")
    target = _ref_name(entry["assigned_target"], source, f"{where}.assigned_target")
    confidence = entry["confidence"]
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 <= confidence <= 1:
        raise InputError(source, f"{where}.confidence", f"expected a number from 0 to 1, got {shown(confidence)}")
    tags = entry["tags"]
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise InputError(source, f"{where}.tags", f"expected a list of strings, got {shown(tags)}")
    cluster_id = entry["cluster_id"]
    if isinstance(cluster_id, bool) or not isinstance(cluster_id, int):
        raise InputError(source, f"{where}.cluster_id", f"expected an integer, got {shown(cluster_id)}")
    extra = {key: value for key, value in entry.items() if key not in _REQUIRED_FIELDS}
    return BranchSpec(branch, target, float(confidence), tuple(tags), cluster_id, index, extra)


def _ref_name(value: object, source: str, where: str) -> str:
    if not isinstance(value, str):
        raise InputError(source, where, f"expected a branch name (string), got {shown(value)}")
    problem = invalid_branch_name(value)
    if problem:
        raise InputError(source, where, f"{value!r} is not a valid git branch name: it {problem}")
    return value


def _check_names_unique(specs: Sequence[BranchSpec], source: str) -> None:
    first_index: dict[str, int] = {}
    for spec in specs:
        if spec.name in first_index:
            raise InputError(
                source,
                f"branches[{spec.index}].branch_name",
                f"{spec.name!r} is listed twice (first at branches[{first_index[spec.name]}])",
            )
        first_index[spec.name] = spec.index
    targets = {spec.target for spec in specs}
    for spec in specs:
        if spec.name in targets:
            raise InputError(
                source,
                f"branches[{spec.index}].branch_name",
                f"{spec.name!r} is also a target; a target branch cannot be aligned onto another target",
            )
