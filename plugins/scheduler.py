"""An xdist scheduler that runs branches in parallel within each target, under each target's worker limit.

What it relies on (pytest-xdist 3.8, ``xdist/remote.py``): a worker runs an item only once it has received
the *next* item, or ``shutdown``; an item it has received will run on that worker. So every item queued on
a worker except the last one will run without asking the controller again; the last one waits.

The rule that keeps the limits exact: all items of a worker's queue that will run without asking (all but
the last, or all after shutdown) share one target. Then a worker holds at most one slot of one target at any
time, and queueing several same-target items behind the running one costs no extra slot while it spares
the worker a round trip to the controller after every branch. A worker is queued no more than its fair share
of what is left, so a small run (or the end of a big one) is spread over all workers, not queued on one.
The last item in a queue may be of another target: it starts only when the controller consents (its target
below its limit, the memory gate open, the circuit breaker closed), by sending it a successor or shutdown.
After a trip nothing more is sent and every worker is shut down; items already queued run, see the
breaker's flag and skip without touching their branch.

Each item has a share: the worker number meant to run it (``handoff.shares``: a target's items in blocks of
``handoff.SHARE_BLOCK``, the blocks dealt to the workers in turn). A worker is given its own share's items first,
from the front, and once they are done the last items of another share, so each worker knows ahead which
merges it will do and batches those (``integrate.MergesAhead``): its own in order, then the others' from the
end. A target whose limit is below the worker count is not dealt out (``handoff.ANY``): whichever workers
may run it take its items from the front, so they start in their order (``--lf``'s least recently tried
first) however few workers may run it at once. The limits and the breaker are unchanged; items put back run
first within their share.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from xdist.report import report_collection_diff
from xdist.workermanage import parse_tx_spec_config

from plugins.handoff import shares, take_one, worker_number

Node = Any  # xdist.workermanage.WorkerController


QUEUE_AHEAD = 3  # at most this many same-target items queued behind a worker's running item


class Pending:
    """The items not yet sent to a worker, in order, kept per target: each question the scheduler asks after
    every branch (the first item, the first of a target, how many of a target) costs one step per target,
    not one per item left, which over thousands of branches made scheduling quadratic.

    Each item has a rank: collected items rank by their index, items put back in front rank below all
    others. A target's items of one share are in rank order in their deque."""

    def __init__(self, targets: Sequence[str], item_shares: Sequence[int] = ()) -> None:
        self.targets = targets  # the target of each collected item, by index
        self.item_shares = item_shares  # the share of each collected item, by index (none: all share 0)
        self.by_target: dict[str, dict[int, deque[tuple[int, int]]]] = {}  # target: share: (rank, index)
        self.count = 0
        self.first_rank = 0  # the lowest rank given so far

    def __len__(self) -> int:
        return self.count

    def _queue(self, index: int) -> deque[tuple[int, int]]:
        share = self.item_shares[index] if self.item_shares else 0
        return self.by_target.setdefault(self.targets[index], {}).setdefault(share, deque())

    def extend(self, indices: Iterable[int]) -> None:
        """Collected items, in collection order (after all others)."""
        for index in indices:
            self._queue(index).append((index, index))
            self.count += 1

    def put_back(self, indices: Sequence[int]) -> None:
        """Items to run before all others, in the given order."""
        for index in reversed(indices):
            self.first_rank -= 1
            self._queue(index).appendleft((self.first_rank, index))
            self.count += 1

    def heads(self) -> list[int]:
        """The first item of each target, first ranked first."""
        firsts = (min(queue[0] for queue in queues.values() if queue) for queues in self._nonempty())
        return [index for _, index in sorted(firsts)]

    def _nonempty(self) -> list[dict[int, deque[tuple[int, int]]]]:
        return [queues for queues in self.by_target.values() if any(queues.values())]

    def first(self) -> int | None:
        heads = self.heads()
        return heads[0] if heads else None

    def of_target(self, target: str) -> int:
        return sum(map(len, self.by_target.get(target, {}).values()))

    def take(self, target: str, count: int, share: int = 0) -> list[int]:
        """Up to ``count`` items of ``target``, removed, as ``take_one`` picks them for the worker of ``share``."""
        queues = self.by_target.get(target, {})
        taken: list[int] = []
        while len(taken) < count and (item := take_one(queues, share)) is not None:
            taken.append(item[1])
        self.count -= len(taken)
        return taken

    def clear(self) -> None:
        self.by_target.clear()
        self.count = 0


class TargetScheduling:
    """Implements xdist's ``Scheduling`` protocol for alignment items."""

    def __init__(
        self,
        config: Any,
        target_of: Callable[[str], str],
        limit_of: Callable[[str], int],
        may_start: Callable[[int], bool],
        log: Any = None,
    ) -> None:
        self.numnodes = len(parse_tx_spec_config(config))
        self.target_of = target_of
        self.limit_of = limit_of
        self.may_start = may_start
        self.log = log
        self.collection: list[str] | None = None
        self.node2collection: dict[Node, list[str]] = {}
        self.node2pending: dict[Node, list[int]] = {}
        self.targets: list[str] = []  # the target of each collected item, by index
        self.pending = Pending(self.targets)  # replaced once the collection is known
        self.stopped = False

    # -- the Scheduling protocol ---------------------------------------------------------------------------

    @property
    def nodes(self) -> list[Node]:
        return list(self.node2pending)

    @property
    def collection_is_completed(self) -> bool:
        return len(self.node2collection) >= self.numnodes

    @property
    def tests_finished(self) -> bool:
        """True once nothing waits for consent: shutting the workers down then starts nothing new."""
        if not self.collection_is_completed or self.pending:
            return False
        return all(not queue or node.shutting_down for node, queue in self.node2pending.items())

    @property
    def has_pending(self) -> bool:
        return bool(self.pending) or any(self.node2pending.values())

    def add_node(self, node: Node) -> None:
        self.node2pending[node] = []

    def add_node_collection(self, node: Node, collection: Sequence[str]) -> None:
        if self.collection is not None and list(collection) != self.collection:
            first = next(iter(self.node2collection))
            if self.log is not None:
                self.log(report_collection_diff(self.collection, collection, first.gateway.id, node.gateway.id))
            return
        ids = list(collection)
        known = next(iter(self.node2collection.values()), None)
        self.node2collection[node] = known if known == ids else ids  # each worker's copy of the ids, kept once

    def mark_test_complete(self, node: Node, item_index: int, duration: float = 0) -> None:
        self.node2pending[node].remove(item_index)
        self._assign()

    def mark_test_pending(self, item: str) -> None:
        assert self.collection is not None
        self.pending.put_back([self.collection.index(item)])
        self._assign()

    def remove_pending_tests_from_node(self, node: Node, indices: Sequence[int]) -> None:
        raise NotImplementedError("this scheduler never steals items")

    def remove_node(self, node: Node) -> str | None:
        """A worker went away: the item it was running (if it crashed); its unstarted items go back."""
        queue = self.node2pending.pop(node)
        crashed = None
        if queue and self._committed(node, queue) and self.collection is not None:
            crashed = self.collection[queue.pop(0)]
        if not self.stopped:
            self.pending.put_back(queue)
        self._assign()
        return crashed

    def schedule(self) -> None:
        """Called when collection is complete (again when a replacement worker joins)."""
        if self.collection is None:
            collections = list(self.node2collection.values())
            if any(collection != collections[0] for collection in collections):
                if self.log is not None:
                    self.log("**Different tests collected, aborting run**")
                return
            self.collection = collections[0]
            self.targets = [self.target_of(nodeid) for nodeid in self.collection]
            self.pending = Pending(self.targets, shares(self.targets, self.numnodes, self.limit_of))
            self.pending.extend(range(len(self.collection)))
        self._assign()

    # -- the circuit breaker -------------------------------------------------------------------------------

    def stop(self) -> None:
        """Start nothing more: drop what was never sent and shut every worker down."""
        self.stopped = True
        self.pending.clear()
        for node in self.nodes:
            node.shutdown()

    # -- assignment ----------------------------------------------------------------------------------------

    def _committed(self, node: Node, queue: list[int]) -> list[int]:
        """The items of ``queue`` that will run without asking: all but the last, or all after shutdown."""
        return list(queue) if node.shutting_down else queue[:-1]

    def _slots_in_use(self) -> dict[str, int]:
        """Per target, the workers whose running (or next, without asking) item is of that target."""
        counts: dict[str, int] = {}
        for node, queue in self.node2pending.items():
            if self._committed(node, queue):
                target = self._target(queue[0])
                counts[target] = counts.get(target, 0) + 1
        return counts

    def _can_start(self, index: int) -> bool:
        in_use = self._slots_in_use()
        target = self._target(index)
        return in_use.get(target, 0) < self.limit_of(target) and self.may_start(sum(in_use.values()))

    def _assign(self) -> None:
        if self.collection is None or self.stopped:
            return
        for node, queue in self.node2pending.items():
            if node.shutting_down:
                continue
            if len(queue) >= 2:
                self._top_up(node, queue)
            elif queue:
                self._consent(node, queue[0])
            else:
                self._start_new(node)

    def _top_up(self, node: Node, queue: list[int]) -> None:
        """Queue more of the running target's items, if the waiting last item is of that target too."""
        target = self._target(queue[0])
        if self._target(queue[-1]) == target and len(queue) <= QUEUE_AHEAD:
            self._send(node, self.pending.take(target, max(0, self._ahead(target) + 1 - len(queue)), self._share(node)))

    def _consent(self, node: Node, head: int) -> None:
        """Start the node's single waiting item when its target has room."""
        if self._can_start(head):
            self._send_followers(node, self._target(head))

    def _start_new(self, node: Node) -> None:
        """Give an idle node a startable item, started at once."""
        head = next((index for index in self.pending.heads() if self._can_start(index)), None)
        if head is None:
            if not self.pending:
                node.shutdown()
            return
        target = self._target(head)
        self._send(node, self.pending.take(target, 1, self._share(node)))
        self._send_followers(node, target)

    def _send_followers(self, node: Node, target: str) -> None:
        """Start the node's last item: same-target followers, or one waiting item of another target, or
        shutdown when nothing is left."""
        followers = self.pending.take(target, self._ahead(target), self._share(node))
        if not followers:
            first = self.pending.first()
            if first is None:
                node.shutdown()
                return
            followers = self.pending.take(self._target(first), 1, self._share(node))
        self._send(node, followers)

    def _ahead(self, target: str) -> int:
        """How many of ``target``'s items to queue behind a running one: up to ``QUEUE_AHEAD``, but no more
        than a fair share of what is left among the workers, so a few items spread over all of them."""
        left = self.pending.of_target(target)
        workers = sum(1 for node in self.node2pending if not node.shutting_down)
        return max(1, min(QUEUE_AHEAD, left // max(workers, 1)))

    def _send(self, node: Node, indices: list[int]) -> None:
        if indices:
            self.node2pending[node].extend(indices)
            node.send_runtest_some(indices)

    def _target(self, index: int) -> str:
        return self.targets[index]

    def _share(self, node: Node) -> int:
        return worker_number(str(node.gateway.id), self.numnodes)
