"""What a worker and the controller hand each other, in a module of its own: a worker imports this and
never the controller's side (its ledger, report renderers and scheduler are not loaded in workers).

A worker gets the run's setup in its xdist ``workerinput``, writes which test id aligns which branch (the node
map), attaches each branch's result to its teardown report, and, in a clone of its own, returns what it
pushed in its ``workeroutput``.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import pytest

from alignment.integrate import MergesAhead
from alignment.model import BranchResult
from alignment.runs import write_atomically
from alignment.session import RunSetup

TRIED = "last_tried"  # the runs counted, and the run in which each test id of ``--lf``'s list was last tried
RESULT_PROPERTY = "alignment_result"
SETUP_INPUT = "alignment_setup"  # the run's setup as JSON text, in a worker's xdist ``workerinput``
TRIED_INPUT = "alignment_tried"  # the controller's ``last_tried``, in a worker's xdist ``workerinput``
PUSHED_OUTPUT = "alignment_pushed"  # a worker clone's pushed results, in its xdist ``workeroutput``
T = TypeVar("T")
SHARE_BLOCK = MergesAhead.BATCH  # a target's consecutive items meant for one worker: one batch of its merges
ANY = -1  # the share of a target not dealt out: whichever worker runs it takes its next items, in order

# pytest's options that only show what the session holds: under one, an alignment run moves nothing and
# writes no run (no folder, ``latest``, results or ``--lf`` list of its own), as with ``--collect-only``.
SHOW_ONLY_OPTIONS = {
    "collectonly": "--collect-only",
    "showfixtures": "--fixtures",
    "show_fixtures_per_test": "--fixtures-per-test",
    "setupplan": "--setup-plan",
    "setuponly": "--setup-only",
    "cacheshow": "--cache-show",
    "markers": "--markers",
}


def memory_key(setup: RunSetup, kind: str) -> str:
    """Where pytest's cache keeps ``kind`` (``--lf``'s memory) of this input and repository: a branch that
    failed for one input or repository is not rerun for another. The repository's common git dir, not a
    linked worktree's: a run through one is rerun from the main checkout, or after the worktree is gone."""
    source = Path(setup.branches.source).resolve()
    digest = hashlib.sha256(f"{source}\0{setup.location.common_dir}".encode()).hexdigest()[:16]
    return f"alignment/{kind}/{digest}"


def last_tried(config: pytest.Config, setup: RunSetup) -> dict[str, int]:
    """The run in which each test id of ``--lf``'s list was last tried, from this process's pytest cache. Read
    by the controller only, which hands it to its workers: a worker's own setup (in a clone of its own) or
    cache (on another machine) would give another map, and a worker ordering its items otherwise has its
    collection dropped by the scheduler."""
    cache = getattr(config, "cache", None)
    return dict(cache.get(memory_key(setup, TRIED), {}).get("tried", {})) if cache is not None else {}


def write_node_map(setup: RunSetup, worker: str, branches: Mapping[str, str]) -> None:
    """Record which test id aligns which branch (workers collect; the controller under xdist does not)."""
    write_atomically(setup.scratch_dir / "nodes" / f"{worker}.json", json.dumps(branches))


class NodeMap:
    """Test ids to branch names, read from what the collecting processes wrote."""

    def __init__(self, setup: RunSetup) -> None:
        self.setup = setup
        self._branches: dict[str, str] = {}

    def branch(self, nodeid: str) -> str | None:
        if nodeid not in self._branches:
            self._load()
        return self._branches.get(nodeid)

    @property
    def written(self) -> bool:
        """Whether a process has written its map: one collected the branches to its end, so one may have run."""
        return any(self._maps())

    @property
    def selected(self) -> dict[str, str]:
        self._load()
        return dict(self._branches)

    def _load(self) -> None:
        """Every collecting process collects the same items: any one map will do."""
        written = self._maps()
        if written:
            self._branches = json.loads(written[0].read_text(encoding="utf-8"))

    def _maps(self) -> list[Path]:
        return sorted((self.setup.scratch_dir / "nodes").glob("*.json"))


def result_of(report: pytest.TestReport) -> BranchResult | None:
    """The branch result a worker attached to the item's report, if any."""
    for key, value in report.user_properties:
        if key == RESULT_PROPERTY:
            return BranchResult.from_dict(json.loads(str(value)))
    return None


def shares(targets: Sequence[str], workers: int, limit_of: Callable[[str], int]) -> list[int]:
    """The share (worker number) of each item, given the items' targets in collection order: each target's
    items in blocks of ``SHARE_BLOCK``, dealt to the workers in turn. A target whose worker limit
    (``limit_of``) is below the worker count is not dealt out (``ANY``): not every worker may run it at once,
    so a worker's share of it could wait while another worker takes the rest from the end, out of order.
    The scheduler and each worker compute it from the same collection and settings."""
    seen: dict[str, int] = {}
    dealt: dict[str, bool] = {}
    found = []
    for target in targets:
        position = seen.get(target, 0)
        seen[target] = position + 1
        if target not in dealt:
            dealt[target] = limit_of(target) >= workers
        found.append(position // SHARE_BLOCK % max(workers, 1) if dealt[target] else ANY)
    return found


def take_one(queues: Mapping[int, deque[T]], share: int) -> T | None:
    """The next of a target's items (queued per share) for the worker of ``share``: the first of its own
    share, or of a target not dealt out (``ANY``); once those are done, the last of the largest other share,
    farthest from what its own worker (which works from the front) has merged ahead. None when none is left."""
    own = queues.get(share) or queues.get(ANY)
    if own:
        return own.popleft()
    others = [queue for queue in queues.values() if queue]
    return max(others, key=len).pop() if others else None


def laid_out(
    ranked: Sequence[T], target_of: Callable[[T], str], workers: int, limit_of: Callable[[str], int]
) -> list[T]:
    """``ranked`` (the first to be run first) laid out so that workers taking them in turn, each as the
    scheduler hands them out (``shares``, ``take_one``), reach them in that order: without it, a worker
    with no share of its own, or a share at the back, would start with the last ranked. Each target keeps
    the positions it has in ``ranked``; only its own items trade places (none of a target not dealt out)."""
    targets = [target_of(item) for item in ranked]
    queues: dict[str, dict[int, deque[int]]] = {}
    items: dict[str, list[T]] = {}  # each target's items, in ranked order
    item_shares = shares(targets, workers, limit_of)
    for position, (item, target, share) in enumerate(zip(ranked, targets, item_shares, strict=True)):
        queues.setdefault(target, {}).setdefault(share, deque()).append(position)
        items.setdefault(target, []).append(item)
    laid = list(ranked)
    for target, by_share in queues.items():
        visits: list[int] = []
        while any(by_share.values()):
            taken = (take_one(by_share, worker) for worker in range(max(workers, 1)))
            visits += [position for position in taken if position is not None]
        for item, position in zip(items[target], visits, strict=True):
            laid[position] = item
    return laid


def worker_number(worker_id: str, workers: int) -> int:
    """The share of xdist worker ``gw<N>``: N modulo the worker count (a replacement worker takes a share)."""
    digits = worker_id.removeprefix("gw")
    return int(digits) % max(workers, 1) if digits.isdigit() else 0


def show_only(config: pytest.Config) -> str | None:
    """The option (as typed) by which this session only shows what it holds and runs nothing, else None."""
    return next((flag for dest, flag in SHOW_ONLY_OPTIONS.items() if config.getoption(dest, None)), None)
