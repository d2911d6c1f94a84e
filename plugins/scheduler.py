"""An xdist scheduler that runs branches in parallel within each target, under each target's worker limit.

What it relies on (pytest-xdist 3.8, ``xdist/remote.py``): a worker runs an item only once it has received
the *next* item, or ``shutdown``; an item received as that lookahead is popped at once and will run on that
worker. So "start item X on a worker" means "send the worker a successor (or shutdown) while X is its head".

The scheduler therefore keeps each worker at most two items deep: a running head and one waiting
lookahead. The lookahead is taken from the running item's target when possible: when the head finishes,
that target has just freed a slot and the lookahead can start at once. An item starts only when its
target is below its limit, the memory gate allows it and the circuit breaker is closed; after a trip no
item starts and every worker is shut down (a lookahead already sent runs, sees the breaker flag and skips
without touching its branch).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from xdist.report import report_collection_diff
from xdist.workermanage import parse_tx_spec_config

Node = Any  # xdist.workermanage.WorkerController


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
        self.pending: list[int] = []
        self.running: dict[Node, int] = {}
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
        """True once nothing waits to start: shutting the workers down then starts nothing new."""
        if not self.collection_is_completed or self.pending:
            return False
        return all(
            not pending or (len(pending) == 1 and node in self.running) for node, pending in self.node2pending.items()
        )

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
        self.node2collection[node] = list(collection)

    def mark_test_complete(self, node: Node, item_index: int, duration: float = 0) -> None:
        self.node2pending[node].remove(item_index)
        if self.running.get(node) == item_index:
            del self.running[node]
        self._assign()

    def mark_test_pending(self, item: str) -> None:
        assert self.collection is not None
        self.pending.insert(0, self.collection.index(item))
        self._assign()

    def remove_pending_tests_from_node(self, node: Node, indices: Sequence[int]) -> None:
        raise NotImplementedError("this scheduler never steals items")

    def remove_node(self, node: Node) -> str | None:
        """A worker went away; return the item it was running (if it crashed) and requeue its lookahead."""
        pending = self.node2pending.pop(node)
        running = self.running.pop(node, None)
        crashed = None
        if running is not None and self.collection is not None:
            crashed = self.collection[running]
            pending.remove(running)
        if not self.stopped:
            self.pending[:0] = pending
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
            self.pending = list(range(len(self.collection)))
        self._assign()

    # -- the circuit breaker -------------------------------------------------------------------------------

    def stop(self) -> None:
        """Start nothing more: drop what was never sent and shut every worker down."""
        self.stopped = True
        self.pending = []
        for node in self.nodes:
            node.shutdown()

    # -- assignment ----------------------------------------------------------------------------------------

    def _assign(self) -> None:
        if self.collection is None or self.stopped:
            return
        for node, pending in self.node2pending.items():
            if node.shutting_down or node in self.running:
                continue
            if pending:
                self._start_waiting(node, pending[0])
            else:
                self._start_new(node)

    def _running_per_target(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for index in self.running.values():
            target = self._target(index)
            counts[target] = counts.get(target, 0) + 1
        return counts

    def _can_start(self, index: int) -> bool:
        target = self._target(index)
        return self._running_per_target().get(target, 0) < self.limit_of(target) and self.may_start(len(self.running))

    def _start_waiting(self, node: Node, head: int) -> None:
        """The node's head was sent as a lookahead; start it by sending its own lookahead (or shutdown)."""
        if not self._can_start(head):
            return
        self.running[node] = head
        follower = self._take(self._target(head))
        if follower is None:
            node.shutdown()
        else:
            self.node2pending[node].append(follower)
            node.send_runtest_some([follower])

    def _start_new(self, node: Node) -> None:
        """Give an idle node a startable item and its lookahead in one message."""
        head = next((index for index in self.pending if self._can_start(index)), None)
        if head is None:
            if not self.pending:
                node.shutdown()
            return
        self.pending.remove(head)
        follower = self._take(self._target(head))
        self.running[node] = head
        batch = [head] if follower is None else [head, follower]
        self.node2pending[node].extend(batch)
        node.send_runtest_some(batch)
        if follower is None:
            node.shutdown()

    def _take(self, target: str) -> int | None:
        """The next pending item, preferring ``target``'s: it can start as soon as this one finishes."""
        if not self.pending:
            return None
        chosen = next((index for index in self.pending if self._target(index) == target), self.pending[0])
        self.pending.remove(chosen)
        return chosen

    def _target(self, index: int) -> str:
        assert self.collection is not None
        return self.target_of(self.collection[index])
