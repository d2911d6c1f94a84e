"""TargetScheduling against simulated xdist workers that follow xdist 3.8's rule: an item starts only once
its worker has received the next item or shutdown."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import cast

import pytest

from alignment.model import BranchSpec
from plugins.alignment_plugin import _own_branches
from plugins.handoff import ANY, SHARE_BLOCK, laid_out, shares, worker_number
from plugins.scheduler import Pending, TargetScheduling


def limits_of(limits: dict[str, int]) -> Callable[[str], int]:
    """Each target's worker limit: ``limits``, else more than any worker count here."""
    return lambda target: limits.get(target, 99)


class FakeNode:
    """A worker: a queue of indices, the item it runs, and whether shutdown arrived; what it was sent is also
    added to ``sent``, every worker's items in the order they were handed out."""

    def __init__(self, name: str, sent: list[int] | None = None) -> None:
        self.gateway = SimpleNamespace(id=name)
        self.queue: list[int] = []
        self.shutting_down = False
        self.sent = [] if sent is None else sent

    def send_runtest_some(self, indices: list[int]) -> None:
        assert not self.shutting_down, "items sent after shutdown"
        self.queue.extend(indices)
        self.sent.extend(indices)

    def shutdown(self) -> None:
        self.shutting_down = True

    def running(self) -> int | None:
        """xdist: the head runs once a successor or shutdown is there."""
        if self.queue and (len(self.queue) >= 2 or self.shutting_down):
            return self.queue[0]
        return None


class Cluster:
    def __init__(self, ids: list[str], workers: int, limits: dict[str, int], memory_ok: bool = True) -> None:
        config = SimpleNamespace(
            getoption=lambda name: None,
            getvalue=lambda name: None,
            option=SimpleNamespace(numprocesses=workers, tx=[], dist="load"),
        )
        self.ids = ids
        self.sched = TargetScheduling(
            config,
            lambda nodeid: nodeid.split("-")[0],
            limits_of(limits),
            lambda running: memory_ok or running == 0,
        )
        self.sent: list[int] = []
        self.nodes = [FakeNode(f"gw{index}", self.sent) for index in range(workers)]
        self.peak: dict[str, int] = {}
        self.done: list[str] = []
        for node in self.nodes:
            self.sched.add_node(node)
        for node in self.nodes:
            self.sched.add_node_collection(node, ids)
        self.sched.schedule()

    def running(self) -> list[str]:
        return [self.ids[index] for node in self.nodes if (index := node.running()) is not None]

    def observe(self) -> None:
        for target in {name.split("-")[0] for name in self.running()}:
            count = sum(name.startswith(f"{target}-") for name in self.running())
            self.peak[target] = max(self.peak.get(target, 0), count)

    def finish_one(self) -> bool:
        """Complete the item of the first worker that is running one."""
        self.observe()
        for node in self.nodes:
            index = node.running()
            if index is not None:
                node.queue.pop(0)
                self.done.append(self.ids[index])
                self.sched.mark_test_complete(node, index)
                return True
        return False


@pytest.fixture(scope="module", autouse=True)
def _parse_tx(monkeypatch_module: pytest.MonkeyPatch) -> None:
    monkeypatch_module.setattr(
        "plugins.scheduler.parse_tx_spec_config", lambda config: ["popen"] * config.option.numprocesses
    )


@pytest.fixture(scope="module")
def monkeypatch_module() -> pytest.MonkeyPatch:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def run_to_end(cluster: Cluster) -> None:
    for _ in range(1000):
        if not cluster.finish_one():
            break
    assert cluster.sched.tests_finished


def test_every_item_runs_once_and_limits_hold() -> None:
    ids = [f"main-{i}" for i in range(6)] + [f"sci-{i}" for i in range(5)] + [f"ops-{i}" for i in range(3)]
    cluster = Cluster(ids, workers=4, limits={"main": 1, "sci": 2})
    run_to_end(cluster)
    assert sorted(cluster.done) == sorted(ids)
    assert cluster.peak["main"] == 1
    assert cluster.peak["sci"] <= 2
    assert all(node.shutting_down for node in cluster.nodes)


def test_a_single_target_with_limit_one_never_overlaps_and_still_finishes() -> None:
    ids = [f"main-{i}" for i in range(5)]
    cluster = Cluster(ids, workers=3, limits={"main": 1})
    run_to_end(cluster)
    assert cluster.done == ids
    assert cluster.peak["main"] == 1


def test_more_workers_than_items() -> None:
    cluster = Cluster(["main-0"], workers=3, limits={})
    run_to_end(cluster)
    assert cluster.done == ["main-0"]


def test_stop_sends_nothing_new() -> None:
    ids = [f"main-{i}" for i in range(10)]
    cluster = Cluster(ids, workers=2, limits={})
    cluster.finish_one()
    cluster.sched.stop()
    queued = [cluster.ids[index] for node in cluster.nodes for index in node.queue]
    assert len(queued) + len(cluster.done) < len(ids)
    run_to_end(cluster)
    assert len(cluster.done) < len(ids)
    assert all(node.shutting_down for node in cluster.nodes)


def test_a_crashed_worker_is_replaced_and_the_run_still_ends() -> None:
    ids = [f"main-{i}" for i in range(6)]
    cluster = Cluster(ids, workers=2, limits={})
    victim = cluster.nodes[0]
    crashed_index = victim.running()
    assert crashed_index is not None
    assert cluster.sched.remove_node(victim) == ids[crashed_index]
    cluster.nodes.remove(victim)
    replacement = FakeNode("gw2")
    cluster.nodes.append(replacement)
    cluster.sched.add_node(replacement)
    cluster.sched.add_node_collection(replacement, ids)
    cluster.sched.schedule()
    run_to_end(cluster)
    assert sorted([*cluster.done, ids[crashed_index]]) == sorted(ids)
    finished = cluster.nodes[0]
    cluster.sched.remove_node(finished)
    assert cluster.sched.tests_finished


def test_memory_pressure_runs_one_at_a_time() -> None:
    ids = [f"main-{i}" for i in range(4)]
    cluster = Cluster(ids, workers=2, limits={}, memory_ok=False)
    run_to_end(cluster)
    assert cluster.peak["main"] == 1


def test_a_worker_that_collected_something_else_is_not_used() -> None:
    ids = ["main-0", "main-1"]
    cluster = Cluster(ids, workers=2, limits={})
    stranger = FakeNode("gw9")
    cluster.sched.add_node(stranger)
    cluster.sched.add_node_collection(stranger, ["other-0"])
    assert stranger not in cluster.sched.node2collection


def test_workers_that_collected_the_same_ids_share_one_list() -> None:
    """Every worker collects every branch: the controller keeps their ids once, not once per worker."""
    cluster = Cluster([f"main-{index}" for index in range(5)], workers=3, limits={})
    first, *others = (cluster.sched.node2collection[node] for node in cluster.nodes)
    assert all(ids is first for ids in others)


def test_different_collections_abort_scheduling(monkeypatch_module: pytest.MonkeyPatch) -> None:
    config = SimpleNamespace(option=SimpleNamespace(numprocesses=2))
    messages: list[str] = []
    sched = TargetScheduling(config, lambda n: "main", lambda t: 1, lambda r: True, messages.append)
    first, second = FakeNode("gw0"), FakeNode("gw1")
    for node, ids in ((first, ["main-0"]), (second, ["main-1"])):
        sched.add_node(node)
        sched.add_node_collection(node, ids)
    sched.schedule()
    assert sched.collection is None
    assert messages == ["**Different tests collected, aborting run**"]


def test_an_item_marked_pending_again_runs_again() -> None:
    cluster = Cluster(["main-0", "main-1"], workers=1, limits={})
    run_to_end(cluster)
    cluster.nodes[0].shutting_down = False
    cluster.sched.mark_test_pending("main-0")
    assert cluster.nodes[0].queue == [0]


def test_a_few_items_are_spread_over_every_worker_first() -> None:
    ids = [f"main-{i}" for i in range(4)]
    cluster = Cluster(ids, workers=2, limits={})
    assert len(cluster.running()) == 2  # both workers busy from the start, none holding the rest
    assert [len(node.queue) for node in cluster.nodes] == [2, 2]
    run_to_end(cluster)
    assert sorted(cluster.done) == ids


def test_many_items_still_queue_ahead_on_each_worker() -> None:
    ids = [f"main-{i}" for i in range(40)]
    cluster = Cluster(ids, workers=2, limits={})
    assert [len(node.queue) for node in cluster.nodes] == [4, 4]  # the running one plus QUEUE_AHEAD
    run_to_end(cluster)
    assert sorted(cluster.done) == sorted(ids)


def test_pending_items_keep_their_order_per_target_and_items_put_back_come_first() -> None:
    pending = Pending(["main", "sci", "main", "ops", "sci", "main"])
    pending.extend(range(6))
    assert (len(pending), pending.first(), pending.heads(), pending.of_target("main")) == (6, 0, [0, 1, 3], 3)
    assert (pending.take("main", 2), pending.take("sci", 1)) == ([0, 2], [1])
    assert pending.heads() == [3, 4, 5]
    pending.put_back([2, 1])  # a worker's unstarted queue, in its order, before everything else
    assert (pending.heads(), pending.of_target("main")) == ([2, 1, 3], 2)
    pending.put_back([0])
    assert (pending.first(), pending.heads(), len(pending)) == (0, [0, 1, 3], 6)
    assert (pending.take("main", 9), pending.take("sci", 9), len(pending)) == ([0, 2, 5], [1, 4], 1)
    pending.clear()
    assert (len(pending), pending.first(), pending.take("sci", 1)) == (0, None, [])


def test_shares_deal_each_targets_items_to_the_workers_in_blocks() -> None:
    targets = ["main"] * (SHARE_BLOCK * 3 + 1) + ["next"] * 2
    found = shares(targets, 2, limits_of({}))
    assert found[:SHARE_BLOCK] == [0] * SHARE_BLOCK
    assert found[SHARE_BLOCK : 2 * SHARE_BLOCK] == [1] * SHARE_BLOCK
    assert found[2 * SHARE_BLOCK : 3 * SHARE_BLOCK + 1] == [0] * SHARE_BLOCK + [1]
    assert found[-2:] == [0, 0]  # each target's blocks are counted from its own first item
    assert shares(targets, 1, limits_of({})) == [0] * len(targets)
    assert shares(targets, 2, limits_of({"next": 1})) == [*found[:-2], ANY, ANY]  # one worker at a time: not dealt
    assert [worker_number(name, 2) for name in ("gw0", "gw1", "gw2", "gw3", "odd")] == [0, 1, 0, 1, 0]


def test_each_worker_runs_its_own_share_first_then_the_others_last_items() -> None:
    """So that a worker knows ahead which merges it will do: its share in order, then the others' from the end."""
    ids = [f"main-{index}" for index in range(SHARE_BLOCK * 2)]
    cluster = Cluster(ids, workers=2, limits={})
    ran: dict[str, list[int]] = {"gw0": [], "gw1": []}
    for _ in range(10 * len(ids)):  # gw0 finishes three items for each of gw1's: it runs out of its own first
        node = cluster.nodes[0] if len(ran["gw0"]) < 3 * (len(ran["gw1"]) + 1) else cluster.nodes[1]
        index = node.running()
        if index is None:
            node = cluster.nodes[1] if node is cluster.nodes[0] else cluster.nodes[0]
            index = node.running()
        if index is None:
            break
        node.queue.pop(0)
        ran[node.gateway.id].append(index)
        cluster.sched.mark_test_complete(node, index)
    assert sorted(ran["gw0"] + ran["gw1"]) == list(range(len(ids)))
    own, stolen = ran["gw0"][:SHARE_BLOCK], ran["gw0"][SHARE_BLOCK:]
    assert own == list(range(SHARE_BLOCK))
    assert stolen
    assert stolen == sorted(stolen, reverse=True)
    assert min(stolen) >= SHARE_BLOCK
    assert ran["gw1"] == list(range(SHARE_BLOCK, SHARE_BLOCK + len(ran["gw1"])))


def test_a_worker_merges_ahead_its_own_share_in_order_then_the_others_from_the_end() -> None:
    """The order ``_own_branches`` gives ``Runtime`` is the order the scheduler hands the items out."""
    specs: list[BranchSpec | None] = [BranchSpec(f"b{index}", "main", 1.0, (), index, 0) for index in range(70)]
    specs.insert(5, None)  # an item that is no branch takes no place in a share
    second = SimpleNamespace(workerinput={"workercount": 2})
    order = [spec.name for spec in _own_branches(cast(pytest.Config, second), "gw1", specs, limits_of({}))]
    assert order == [f"b{index}" for index in (*range(32, 64), *range(69, 63, -1), *range(31, -1, -1))]
    alone = [spec.name for spec in _own_branches(cast(pytest.Config, SimpleNamespace()), "", specs, limits_of({}))]
    assert alone == [f"b{index}" for index in range(70)]
    one_at_a_time = _own_branches(cast(pytest.Config, second), "gw1", specs, limits_of({"main": 1}))
    assert [spec.name for spec in one_at_a_time] == alone  # not dealt out: whichever worker runs it, in order


def target_of(nodeid: str) -> str:
    return nodeid.split("-", maxsplit=1)[0]


@pytest.mark.parametrize("workers", [1, 2, 3])
@pytest.mark.parametrize("count", [5, SHARE_BLOCK + 5, 3 * SHARE_BLOCK + 1])
def test_items_laid_out_reach_the_workers_first_ranked_first(count: int, workers: int) -> None:
    """An ``--lf`` rerun's least recently tried items are what every worker gets first, although a worker
    works through its own share from the front and another's from the back; taken one by one in turn, the
    items come in their ranking's order."""
    ranked = [f"main-{rank}" for rank in range(count)]
    laid = laid_out(ranked, target_of, workers, limits_of({}))
    cluster = Cluster(laid, workers, limits={})
    queued = sorted(int(laid[index].split("-")[1]) for node in cluster.nodes for index in node.queue)
    assert queued == list(range(len(queued)))
    pending = Pending(["main"] * count, shares(["main"] * count, workers, limits_of({})))
    pending.extend(range(count))
    in_turn = (pending.take("main", 1, worker) for _ in range(count) for worker in range(workers))
    assert [laid[index] for taken in in_turn for index in taken] == ranked


def test_items_laid_out_keep_each_targets_places() -> None:
    ranked = ["a-0", "b-0", "a-1", "b-1", "a-2"]
    assert laid_out(ranked, target_of, 2, limits_of({})) == ["a-0", "b-0", "a-2", "b-1", "a-1"]  # gw1 takes the last
    assert laid_out(ranked, target_of, 1, limits_of({})) == ranked
    assert laid_out(ranked, target_of, 2, limits_of({"a": 1})) == ["a-0", "b-0", "a-1", "b-1", "a-2"]  # not dealt


@pytest.mark.parametrize(
    ("workers", "limit", "count"), [(2, 1, 8), (2, 1, SHARE_BLOCK + 5), (3, 2, 3 * SHARE_BLOCK + 1), (3, 1, 10)]
)
def test_a_target_fewer_workers_may_run_than_there_are_is_handed_out_in_its_ranked_order(
    workers: int, limit: int, count: int
) -> None:
    """README, "Rerun failures": where ``max_workers_per_target`` is below ``-n``, a worker that may take the
    target's next branch takes the next in ``--lf``'s order, never one from the end (the last run's failures,
    which would trip the breaker again before the branches it did not reach had their turn)."""
    ranked = [name for rank in range(count) for name in (f"main-{rank}", f"sci-{rank}")]
    limits = {"main": limit}
    laid = laid_out(ranked, target_of, workers, limits_of(limits))
    cluster = Cluster(laid, workers, limits)
    run_to_end(cluster)
    handed_out = [laid[index] for index in cluster.sent]
    assert [name for name in handed_out if name.startswith("main-")] == [f"main-{rank}" for rank in range(count)]
    assert sorted(cluster.done) == sorted(ranked)
    assert cluster.peak["main"] <= limit
