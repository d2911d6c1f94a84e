"""``--shard K/N``: the partition of an input over N machines, its properties, and bad values."""

from __future__ import annotations

import heapq
import itertools
import json
import os
import subprocess
import sys

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alignment.errors import UsageProblem
from alignment.inputs import BranchInput, parse_branches
from alignment.shard import ShardSpec, fingerprint, partition, shard_limit
from tests.conftest import entry


def branch_input(targets: list[str]) -> BranchInput:
    """Branch ``b<i>`` aligned with ``targets[i]``, in that order."""
    return parse_branches({"branches": [entry(f"b{i}", target) for i, target in enumerate(targets)]}, "test")


def all_shards(branches: BranchInput, count: int) -> list[BranchInput]:
    return [branches.select_shard(ShardSpec(index, count)) for index in range(1, count + 1)]


def whole_targets_would_do(sizes: list[int], count: int) -> bool:
    """The rule's oracle: targets placed whole (largest first, ties by first appearance, onto the shard with
    the fewest branches, ties by number) leave no shard above the limit and none empty (given >= N branches)."""
    loads = [(0, shard) for shard in range(count)]
    for size, _ in sorted((-size, index) for index, size in enumerate(sizes)):
        load, shard = heapq.heappop(loads)
        heapq.heappush(loads, (load - size, shard))
    final = [load for load, _ in loads]
    total = sum(sizes)
    return max(final) <= shard_limit(total, count) and (total < count or min(final) > 0)


@pytest.mark.parametrize(
    ("text", "expected"), [("2/4", ShardSpec(2, 4)), ("1/1", ShardSpec(1, 1)), (" 4/4 ", ShardSpec(4, 4))]
)
def test_shard_values(text: str, expected: ShardSpec) -> None:
    assert ShardSpec.parse(text) == expected
    assert str(expected) == text.strip()


@pytest.mark.parametrize("text", ["0/4", "5/4", "x", "2/0", "1/1001", "-1/4", "2/4/1", "", "2", "2/", "½/4"])
def test_bad_shard_values_are_one_line_naming_the_option(text: str) -> None:
    with pytest.raises(UsageProblem) as raised:
        ShardSpec.parse(text)
    assert str(raised.value) == (f"--shard {text!r}: expected K/N, shard K of N with 1 <= K <= N <= 1000 (e.g. 2/4)")


def test_a_shard_made_in_python_is_checked_too() -> None:
    with pytest.raises(UsageProblem, match=r"shard '5/4': expected K/N"):
        ShardSpec(5, 4)


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        (1, [[("main", 0, 120), ("scientific", 0, 50), ("orchestration-tools", 0, 30)]]),
        (2, [[("main", 0, 120)], [("scientific", 0, 50), ("orchestration-tools", 0, 30)]]),
        (3, [[("main", 0, 60)], [("main", 60, 120)], [("scientific", 0, 50), ("orchestration-tools", 0, 30)]]),
        (4, [[("main", 0, 60)], [("main", 60, 120)], [("scientific", 0, 50)], [("orchestration-tools", 0, 30)]]),
        (
            8,
            [[("orchestration-tools", 0, 30)], [("scientific", 0, 25)], [("scientific", 25, 50)]]
            + [[("main", start, start + 24)] for start in range(0, 120, 24)],
        ),
    ],
)
def test_the_readme_examples(count: int, expected: list[list[tuple[str, int, int]]]) -> None:
    """Whole targets while the shards stay within a quarter of an even share; the largest target cut first."""
    shards = partition([("main", 120), ("scientific", 50), ("orchestration-tools", 30)], count)
    assert [[(piece.target, piece.start, piece.stop) for piece in shard] for shard in shards] == expected


@settings(max_examples=400, deadline=None)
@given(st.lists(st.integers(0, 7), min_size=1, max_size=150), st.integers(1, 24))
def test_partition_properties(assignment: list[int], count: int) -> None:
    """Deterministic, disjoint, covering, in input order, whole targets where possible, balanced."""
    targets = [f"t{number}" for number in assignment]
    branches = branch_input(targets)
    shards = all_shards(branches, count)
    assert shards == all_shards(branches, count)
    names = [spec.name for shard in shards for spec in shard.branches]
    assert sorted(names) == sorted(spec.name for spec in branches.branches)  # covering, and disjoint
    for shard in shards:
        assert [spec.index for spec in shard.branches] == sorted(spec.index for spec in shard.branches)
    sizes = [len(group.branches) for group in branches.groups]
    loads = [len(shard.branches) for shard in shards]
    total = len(targets)
    assert max(loads) <= shard_limit(total, count)
    assert total < count or min(loads) > 0
    holders: dict[str, list[tuple[int, int, int]]] = {}
    for number, shard in enumerate(shards):
        assert shard.shard is not None
        assert sorted(piece.target for piece in shard.shard.pieces) == sorted(shard.targets)  # one piece a target
        for piece in shard.shard.pieces:
            holders.setdefault(piece.target, []).append((piece.start, piece.stop, number))
    split = False
    for group in branches.groups:
        pieces = sorted(holders[group.target])
        assert pieces[0][0] == 0  # contiguous runs covering the target
        assert pieces[-1][1] == len(group.branches)
        assert all(before[1] == after[0] for before, after in itertools.pairwise(pieces))
        assert max(stop - start for start, stop, _ in pieces) - min(stop - start for start, stop, _ in pieces) <= 1
        assert len(pieces) <= min(count, len(group.branches))
        split |= len(pieces) > 1
    assert split == (not whole_targets_would_do(sizes, count))


def test_a_shard_keeps_input_order_and_says_what_it_holds() -> None:
    branches = branch_input(["main", "sci", "main", "main", "sci"] * 4)
    first, second = all_shards(branches, 2)
    assert first.shard is not None
    assert second.shard is not None
    assert [spec.name for spec in first.branches] == [f"b{i}" for i in range(20) if i % 5 in (0, 2, 3)]
    assert first.shard.to_dict() == {
        "index": 1,
        "count": 2,
        "input_sha256": fingerprint(branches.branches),
        "input_branches": 20,
        "pieces": [{"target": "main", "target_index": 0, "start": 0, "stop": 12, "target_branches": 12}],
    }
    received = msgspec.json.decode(msgspec.json.encode(first), type=BranchInput)  # how a worker gets it
    assert ([spec.name for spec in received.branches], received.shard) == (
        [spec.name for spec in first.branches],
        first.shard,
    )
    assert first.names == second.names == received.names == branches.names  # kept clear of by every backup


def test_the_fingerprint_is_of_the_entries_not_the_formatting() -> None:
    compact = parse_branches(json.loads(json.dumps({"branches": [entry("a"), entry("b")]})), "x")
    spaced = parse_branches(json.loads(json.dumps({"branches": [entry("a"), entry("b")]}, indent=4)), "y")
    other = parse_branches({"branches": [entry("a"), entry("b", confidence=0.5)]}, "x")
    assert fingerprint(compact.branches) == fingerprint(spaced.branches) != fingerprint(other.branches)


_PRINT_PARTITION = """
import json, sys
from alignment.inputs import parse_branches
from alignment.shard import ShardSpec
entries = [{"branch_name": f"topic-{i}", "assigned_target": f"target-{i % 13}", "confidence": 1, "tags": [],
            "cluster_id": 0} for i in range(400)]
branches = parse_branches({"branches": entries}, "x")
print(json.dumps([[s.name for s in branches.select_shard(ShardSpec(k, 7)).branches] for k in range(1, 8)]))
"""


def test_the_partition_does_not_depend_on_hash_order() -> None:
    """Another process (another machine) with another string hash seed computes the same partition."""
    outputs: set[str] = set()
    for seed in ("0", "1", "4242"):
        done = subprocess.run(
            [sys.executable, "-c", _PRINT_PARTITION],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        )
        outputs.add(done.stdout)
    assert len(outputs) == 1
