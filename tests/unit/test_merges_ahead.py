"""``MergesAhead``: which merges a batch takes, who waits for it, and when batching stops.

A fake stands in for ``Git.merge_ahead`` (the batch itself is tested against real git in
``tests/git/test_pipeline.py``): these tests are about the bookkeeping between threads.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Sequence
from typing import cast

from alignment.errors import GitError, GitTimeout
from alignment.git import Git
from alignment.integrate import MergesAhead

A, B, C, D = (("a", "t"), ("b", "t"), ("c", "t"), ("d", "t"))


class FakeGit:
    """Records each batch; ``hold`` keeps a batch running until set; ``fail`` is raised by every batch."""

    def __init__(self, fail: GitError | None = None) -> None:
        self.batches: list[list[tuple[str, str]]] = []
        self.timeouts: list[float | None] = []
        self.started = threading.Event()
        self.hold = threading.Event()
        self.hold.set()
        self.fail = fail

    def merge_ahead(self, pairs: Sequence[tuple[str, str]], *, timeout: float | None = None) -> None:
        self.batches.append(list(pairs))
        self.timeouts.append(timeout)
        self.started.set()
        self.hold.wait(60)  # held until the test sets ``hold``: the bound only ends a test that never does
        if self.fail is not None:
            raise self.fail


def ahead(fake: FakeGit, *queues: list[tuple[str, str]], batch: int = 32) -> MergesAhead:
    merges = MergesAhead(cast(Git, fake), queues)
    merges.BATCH = batch
    return merges


def test_a_batch_takes_the_next_untaken_merges_of_the_target_once_each() -> None:
    fake = FakeGit()
    merges = ahead(fake, [A, B, A, C, D], [("x", "u")], batch=3)
    merges.prepare(*A, timeout=1)
    merges.prepare(*B, timeout=1)  # taken by the first batch: no batch of its own
    merges.prepare(*D, timeout=1)
    assert fake.batches == [[A, B, C], [D]]  # A once, though two branches are at its commit
    assert fake.timeouts == [1, 1]


def test_a_merge_not_in_the_queues_is_left_to_its_branch() -> None:
    """A branch that moved after the snapshot has another tip: nothing is done ahead for it."""
    fake = FakeGit()
    ahead(fake, [A]).prepare("moved", "t", timeout=1)
    assert fake.batches == []


def batch_held_by_another_thread(fake: FakeGit) -> tuple[MergesAhead, threading.Thread]:
    """A run of ``A`` and ``B`` whose first branch is doing the batch of both, held running by ``fake``."""
    fake.hold.clear()
    merges = ahead(fake, [A, B])
    first = threading.Thread(target=merges.prepare, args=(*A, 60))
    first.start()
    assert fake.started.wait(60)
    return merges, first


def wait_until_waiting_or_done(thread: threading.Thread, done: threading.Event) -> None:
    """Until ``thread`` blocks in an ``Event.wait`` inside ``prepare`` (a signal, not a guess at how long a
    loaded machine takes to start a thread), or has already returned."""
    ends = time.monotonic() + 60
    while not done.is_set():
        frame = sys._current_frames().get(thread.ident or -1)
        names = set()
        while frame is not None:
            names.add(frame.f_code.co_name)
            frame = frame.f_back
        if {"prepare", "wait"} <= names:
            return
        assert time.monotonic() < ends, "the second branch neither waited nor returned"
        time.sleep(0.01)


def test_a_branch_whose_merge_another_thread_is_doing_waits_for_that_batch() -> None:
    fake = FakeGit()
    merges, first = batch_held_by_another_thread(fake)
    second_done = threading.Event()
    second = threading.Thread(target=lambda: (merges.prepare(*B, timeout=60), second_done.set()))
    second.start()
    wait_until_waiting_or_done(second, second_done)
    assert not second_done.is_set(), "it returned before the batch holding its merge ended"
    fake.hold.set()
    first.join(60)
    second.join(60)
    assert second_done.is_set()
    assert fake.batches == [[A, B]]


def test_a_waiting_branch_gives_up_after_its_timeout() -> None:
    fake = FakeGit()
    merges, first = batch_held_by_another_thread(fake)
    waited = threading.Thread(target=merges.prepare, args=(*B, 0.05))
    waited.start()
    waited.join(30)  # the batch it waits for is held far longer: only its own timeout ends its wait this soon
    assert not waited.is_alive(), "a waiting branch must not wait past its timeout"
    fake.hold.set()
    first.join(60)


def test_after_a_batch_runs_out_of_time_no_other_batch_starts() -> None:
    fake = FakeGit(fail=GitTimeout(("merge-tree", "--stdin"), 1))
    merges = ahead(fake, [A, B, C], batch=1)
    merges.prepare(*A, timeout=1)
    merges.prepare(*B, timeout=1)
    assert fake.batches == [[A]]


def test_a_refused_batch_does_not_stop_batching() -> None:
    fake = FakeGit(fail=GitError(("merge-tree", "--stdin"), 128, "fatal: refusing to merge unrelated histories"))
    merges = ahead(fake, [A, B], batch=1)
    merges.prepare(*A, timeout=1)
    merges.prepare(*B, timeout=1)
    assert fake.batches == [[A], [B]]
