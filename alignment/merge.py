"""Combine the results of a sharded run (``--shard K/N`` on N machines) into one spec result.

``alignment merge-results A.json B.json ... -o DIR`` reads each shard's ``alignment_results.json`` and writes
``DIR/alignment_results.json`` and its HTML report. Per target and overall the counts are summed; a target's
branches (and ``not_run``) are concatenated in input order (each shard's ``shard.pieces`` says which run of
the target's branches it held); the circuit breaker counts as tripped when it tripped in any shard. What
only makes sense per shard is kept in the extra top-level field ``shards``: each shard's run id, counts and
circuit breaker state, and the shards of the partition that were not given (``missing``). Worker names
become ``K/N:worker``, since each shard's workers are processes of their own machine.

Refused, as one ``InputError`` line: a file that is not a shard's results of a run, results of another
input or another N, the same shard twice, shards that share a branch, and a shard that ran only part of its
branches (``-k``, ``--lf``): the rest would be in no shard's results.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alignment.errors import InputError, UsageProblem, kind_of
from alignment.inputs import read_json
from alignment.model import SCHEMA_VERSION, parse_iso_utc
from alignment.report import overall_summary
from alignment.shard import Piece, Shard

_SUMMED = ("processed_branches", "successful", "failed")


@dataclass(frozen=True)
class ShardResults:
    """One shard's ``alignment_results.json``, checked enough to be merged."""

    path: Path
    shard: Shard
    data: Mapping[str, Any]

    @property
    def groups(self) -> Mapping[str, Mapping[str, Any]]:
        groups: Mapping[str, Mapping[str, Any]] = self.data["orchestration_results"]
        return groups

    @property
    def summary(self) -> Mapping[str, Any]:
        summary: Mapping[str, Any] = self.data["overall_summary"]
        return summary

    def names(self) -> list[str]:
        """Every branch this shard lists, aligned or not run."""
        return [
            name
            for group in self.groups.values()
            for name in [branch["branch_name"] for branch in group["branches"]] + list(group.get("not_run", ()))
        ]

    def piece(self, target: str) -> Piece:
        for piece in self.shard.pieces:
            if piece.target == target:
                return piece
        raise InputError(self.path, f"orchestration_results.{target}", "a target its shard.pieces does not list")

    def to_run(self) -> dict[str, Any]:
        """This shard's entry in the merged ``shards.runs``."""
        summary = self.summary
        return {
            "index": self.shard.spec.index,
            "run_id": self.data.get("run_id"),
            "results_file": str(self.path),
            "total_branches_processed": summary["total_branches_processed"],
            "total_successful": summary["total_successful"],
            "total_failed": summary["total_failed"],
            "total_not_run": summary.get("total_not_run", 0),
            "total_time_seconds": summary["total_time_seconds"],
            "execution_timestamp": summary["execution_timestamp"],
            "circuit_breaker_triggered": summary["circuit_breaker_triggered"],
            "circuit_breaker_reason": summary.get("circuit_breaker_reason"),
            "circuit_breaker_tripped_at": summary.get("circuit_breaker_tripped_at"),
        }


def read_shard_results(path: str | Path) -> ShardResults:
    """Read one shard's results; an ``InputError`` naming the file and field when it is not one."""
    source = Path(path)
    data = read_json(source)
    if not isinstance(data, Mapping):
        raise InputError(source, "top level", f"expected the object of an alignment_results.json, got {kind_of(data)}")
    if data.get("planned"):
        raise InputError(source, "planned", "a plan; merge-results combines the results of runs")
    if not isinstance(data.get("shard"), Mapping):
        raise InputError(source, "shard", "missing: not the results of a --shard K/N run")
    for key in ("orchestration_results", "overall_summary"):
        if not isinstance(data.get(key), Mapping):
            raise InputError(source, key, f"expected an object, got {kind_of(data.get(key))}")
    try:
        results = ShardResults(source, Shard.from_dict(data["shard"]), data)
        _read_everything(results)
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(source, "", f"not the results of an alignment run ({_described(error)})") from None
    except UsageProblem as error:
        raise InputError(source, "shard", str(error)) from None
    return results


def _read_everything(results: ShardResults) -> None:
    """Touch every field the merge reads, so that a malformed file fails here, with its name."""
    results.names()
    run = results.to_run()
    for group in results.groups.values():
        sum(group[key] for key in _SUMMED)
    parse_iso_utc(run["execution_timestamp"])
    if run["circuit_breaker_triggered"]:
        parse_iso_utc(run["circuit_breaker_tripped_at"])


def merge_results(paths: Sequence[str | Path]) -> dict[str, Any]:
    """The spec's output for all the shards' results at ``paths`` together (see the module's docstring)."""
    parts = sorted((read_shard_results(path) for path in paths), key=lambda part: part.shard.spec.index)
    _check_compatible(parts)
    first = parts[0].shard
    targets = sorted({(part.piece(target).target_index, target) for part in parts for target in part.groups})
    groups = {target: _merged_group(target, parts) for _, target in targets}
    starts = [parse_iso_utc(part.summary.get("started_at", part.summary["execution_timestamp"])) for part in parts]
    ends = [start + part.summary["total_time_seconds"] for start, part in zip(starts, parts, strict=True)]
    tripped = [part for part in parts if part.summary["circuit_breaker_triggered"]]
    trip_times = [parse_iso_utc(part.summary["circuit_breaker_tripped_at"]) for part in tripped]
    given = {part.shard.spec.index for part in parts}
    reasons = [f"shard {part.shard.spec}: {part.summary.get('circuit_breaker_reason')}" for part in tripped]
    return {
        "schema_version": SCHEMA_VERSION,
        "planned": False,
        "shards": {
            "count": first.spec.count,
            "input_sha256": first.input_sha256,
            "input_branches": first.input_branches,
            "missing": [index for index in range(1, first.spec.count + 1) if index not in given],
            "runs": [part.to_run() for part in parts],
        },
        "orchestration_results": groups,
        "overall_summary": overall_summary(
            groups,
            started=min(starts),
            finished=max(ends),
            tripped=bool(tripped),
            reason="; ".join(reasons) or None,
            tripped_at=min(trip_times, default=None),
        ),
    }


def _check_compatible(parts: Sequence[ShardResults]) -> None:
    if not parts:
        raise UsageProblem("merge-results needs the results of at least one shard")
    first = parts[0]
    owner: dict[str, Path] = {}
    seen: dict[int, Path] = {}
    for part in parts:
        spec = part.shard.spec
        if spec.count != first.shard.spec.count:
            raise InputError(
                part.path,
                "shard.count",
                f"shard {spec}, but {first.path} is shard {first.shard.spec}: split another way",
            )
        if part.shard.input_sha256 != first.shard.input_sha256:
            raise InputError(
                part.path,
                "shard.input_sha256",
                f"a shard of another input than {first.path} "
                f"({part.shard.input_sha256[:12]}... against {first.shard.input_sha256[:12]}...)",
            )
        if spec.index in seen:
            raise InputError(part.path, "shard.index", f"shard {spec} again: {seen[spec.index]} is shard {spec} too")
        seen[spec.index] = part.path
        _check_whole(part)
        for name in part.names():
            if name in owner:
                raise InputError(part.path, "orchestration_results", f"branch {name!r} is also in {owner[name]}")
            owner[name] = part.path


def _check_whole(part: ShardResults) -> None:
    """Refuse a shard that lists fewer branches of a target than its piece holds (a run with ``-k`` or ``--lf``):
    its other branches are in no shard's results, and a merge would silently leave them out."""
    for piece in part.shard.pieces:
        group = part.groups.get(piece.target, {})
        listed = len(group.get("branches", ())) + len(group.get("not_run", ()))
        if listed < piece.size:
            raise InputError(
                part.path,
                f"orchestration_results.{piece.target}",
                f"shard {part.shard.spec} holds {piece.size} branches of target '{piece.target}' (shard.pieces) "
                f"but lists {listed}: a run of part of them (-k, --lf); rerun the shard whole to merge it",
            )


def _merged_group(target: str, parts: Sequence[ShardResults]) -> dict[str, Any]:
    """One target's group over all shards: counts summed, branches in input order (by piece position)."""
    holders = sorted((part for part in parts if target in part.groups), key=lambda part: part.piece(target).start)
    merged: dict[str, Any] = {"target_branch": target, **dict.fromkeys(_SUMMED, 0), "branches": [], "not_run": []}
    for part in holders:
        group = part.groups[target]
        for key in _SUMMED:
            merged[key] += group[key]
        merged["branches"] += [
            {**branch, "worker": f"{part.shard.spec}:{branch['worker']}"} if "worker" in branch else dict(branch)
            for branch in group["branches"]
        ]
        merged["not_run"] += list(group.get("not_run", ()))
    return merged


def _described(error: Exception) -> str:
    return f"missing field {error}" if isinstance(error, KeyError) else str(error)
