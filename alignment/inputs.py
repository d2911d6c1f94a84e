"""Load and validate ``categorized_branches.json`` (079.2) and group its branches by target.

Every problem is one ``InputError`` line naming the file, the entry and field, and what was expected; nothing
is read from the repository here, so bad input never changes anything.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from alignment.errors import InputError, kind_of, shown
from alignment.model import BranchSpec
from alignment.names import invalid_branch_name
from alignment.shard import Shard, ShardSpec, fingerprint, partition

MAX_INPUT_BYTES = 64 * 1024 * 1024
_REQUIRED_FIELDS = ("branch_name", "assigned_target", "confidence", "tags", "cluster_id")


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
        return BranchInput(self.source, kept, Shard(spec, fingerprint(self.branches), len(self.branches), pieces))


def load_branches(path: str | Path, shard: ShardSpec | None = None) -> BranchInput:
    """Read ``path`` and validate it against the spec's input format; only ``shard``'s part of it if given."""
    branches = parse_branches(read_json(path), str(Path(path)))
    return branches if shard is None else branches.select_shard(shard)


def read_json(path: str | Path) -> object:
    """The decoded JSON of the file at ``path``; an ``InputError`` naming the file when it cannot be had."""
    source = Path(path)
    try:
        size = source.stat().st_size
        if size > MAX_INPUT_BYTES:
            raise InputError(source, "", f"file is {size} bytes; expected at most {MAX_INPUT_BYTES}")
        text = source.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise InputError(source, "", "file not found") from None
    except IsADirectoryError:
        raise InputError(source, "", "is a directory; expected a JSON file") from None
    except UnicodeDecodeError as exc:
        raise InputError(source, "", f"not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise InputError(source, "", f"cannot read: {exc.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(source, f"line {exc.lineno}, column {exc.colno}", f"invalid JSON: {exc.msg}") from None
    except RecursionError:
        raise InputError(source, "", "invalid JSON: nested too deeply") from None


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
