"""Split one input over N machines: ``--shard K/N`` aligns the K-th of N deterministic parts (a CI matrix).

The partition depends only on the input's branches (names, targets, their order) and N: every machine
computes the same one, with no dict or hash order involved. The rule:

- A target's branches stay together on one shard (so ``max_workers_per_target`` still bounds the target)
  unless that would unbalance the shards: no shard may hold more than ``limit`` branches (B branches, N
  shards: the even share ``ceil(B / N)`` plus a quarter of it, ``floor(B / 4N)``), and, when there are at
  least N branches, no shard may be empty.
- So a target with more than ``limit`` branches is cut into ``ceil(size / limit)`` pieces; then, while
  there are fewer pieces than shards or placing them leaves a shard above ``limit``, the target with the
  largest pieces (ties: first in the input) is cut into one more piece. A target cut into p pieces is p
  contiguous runs of its branches in input order, of sizes differing by at most one, on p different
  shards (never more pieces than shards or than branches).
- Pieces are placed largest first (ties: the target's first appearance in the input, then the piece's
  position), each on the shard with the fewest branches that holds no other piece of its target (ties: the
  lowest shard number).

Each shard's results carry a ``shard`` field (``Shard.to_dict``): K, N, a fingerprint of the whole input and
the pieces it held, which is what ``merge`` needs to refuse foreign shards and restore the input order.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from alignment.errors import UsageProblem
from alignment.model import BranchSpec

MAX_SHARDS = 1000
_SHARD_SYNTAX = re.compile(r"([0-9]+)/([0-9]+)")


@dataclass(frozen=True)
class ShardSpec:
    """Shard ``index`` of ``count`` (1-based, as written: ``2/4``)."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not _valid(self.index, self.count):
            raise UsageProblem(_expected("shard", str(self)))

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @classmethod
    def parse(cls, text: str, where: str = "--shard") -> ShardSpec:
        """``2/4`` -> ``ShardSpec(2, 4)``; anything else is a ``UsageProblem`` naming ``where``."""
        match = _SHARD_SYNTAX.fullmatch(text.strip())
        if match is None or not _valid(int(match[1]), int(match[2])):
            raise UsageProblem(_expected(where, text))
        return cls(int(match[1]), int(match[2]))


def _valid(index: int, count: int) -> bool:
    return 1 <= index <= count <= MAX_SHARDS


def _expected(where: str, text: str) -> str:
    return f"{where} {text!r}: expected K/N, shard K of N with 1 <= K <= N <= {MAX_SHARDS} (e.g. 2/4)"


@dataclass(frozen=True)
class Piece:
    """Branches ``start`` to ``stop - 1`` (input order) of ``target``, the ``target_index``-th target of the
    input (by first appearance), which has ``target_size`` branches in all."""

    target: str
    target_index: int
    start: int
    stop: int
    target_size: int

    @property
    def size(self) -> int:
        return self.stop - self.start

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "target_index": self.target_index,
            "start": self.start,
            "stop": self.stop,
            "target_branches": self.target_size,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Piece:
        return cls(data["target"], data["target_index"], data["start"], data["stop"], data["target_branches"])


@dataclass(frozen=True)
class Shard:
    """What a shard's results record about it: which part of which input it aligned."""

    spec: ShardSpec
    input_sha256: str
    input_branches: int
    pieces: tuple[Piece, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.spec.index,
            "count": self.spec.count,
            "input_sha256": self.input_sha256,
            "input_branches": self.input_branches,
            "pieces": [piece.to_dict() for piece in self.pieces],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Shard:
        return cls(
            ShardSpec(data["index"], data["count"]),
            data["input_sha256"],
            data["input_branches"],
            tuple(Piece.from_dict(piece) for piece in data["pieces"]),
        )


def fingerprint(branches: Iterable[BranchSpec]) -> str:
    """SHA-256 of the input's entries as canonical JSON: equal for the same input however it is formatted."""
    canonical = json.dumps([spec.to_dict() for spec in branches], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def shard_limit(total: int, count: int) -> int:
    """The most branches one shard may hold: the even share rounded up, plus a quarter of it rounded down."""
    return -(-total // count) + total // (4 * count)


def partition(sizes: Sequence[tuple[str, int]], count: int) -> tuple[tuple[Piece, ...], ...]:
    """The pieces of each of ``count`` shards, for targets with ``sizes`` ((target, branches), input order)."""
    total = sum(size for _, size in sizes)
    limit = shard_limit(total, count)
    cuts = [_ceil_div(size, limit) for _, size in sizes]
    while True:
        splittable = [index for index, (_, size) in enumerate(sizes) if cuts[index] < min(count, size)]
        if sum(cuts) >= min(count, total) or not splittable:  # fewer pieces than shards leave a shard empty
            shards = _place(sizes, cuts, count)
            if not splittable or max(sum(piece.size for piece in shard) for shard in shards) <= limit:
                return shards
        widest = min(splittable, key=lambda index: (-_ceil_div(sizes[index][1], cuts[index]), index))
        cuts[widest] += 1


def _place(sizes: Sequence[tuple[str, int]], cuts: Sequence[int], count: int) -> tuple[tuple[Piece, ...], ...]:
    pieces = [
        Piece(target, index, size * part // cuts[index], size * (part + 1) // cuts[index], size)
        for index, (target, size) in enumerate(sizes)
        for part in range(cuts[index])
    ]
    pieces.sort(key=lambda piece: (-piece.size, piece.target_index, piece.start))
    held: list[list[Piece]] = [[] for _ in range(count)]
    targets: list[set[int]] = [set() for _ in range(count)]
    heap = [(0, shard) for shard in range(count)]
    for piece in pieces:
        passed = []
        load, shard = heapq.heappop(heap)
        while piece.target_index in targets[shard]:
            passed.append((load, shard))
            load, shard = heapq.heappop(heap)
        held[shard].append(piece)
        targets[shard].add(piece.target_index)
        heapq.heappush(heap, (load + piece.size, shard))
        for entry in passed:
            heapq.heappush(heap, entry)
    return tuple(tuple(sorted(shard, key=lambda piece: (piece.target_index, piece.start))) for shard in held)


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)
