"""Resource bounds of a run: ``max_concurrent_git_ops`` across processes and ``max_memory_mb`` over the tree.

``SlotLimiter`` is a counting semaphore shared by every process and thread of a run: one ``flock``ed file per
slot in the run's scratch directory. flock locks belong to open file descriptions, so two threads holding
their own descriptors exclude each other just like two processes do.

``MemoryGate`` samples the summed resident memory of a process and all its descendants (controller, xdist
workers, git children, see ``proctree``); while it is above the bound no new branch starts.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol


class OpsLimiter(Protocol):
    """Something that bounds concurrent git processes."""

    def slot(self) -> contextlib.AbstractContextManager[None]: ...


class Unlimited:
    """No bound: the limiter of standalone calls."""

    def slot(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


class SlotLimiter:
    """At most ``slots`` holders at once over all processes and threads that share ``directory``.

    Each thread keeps its own descriptor per slot file (flock locks belong to open file descriptions, so
    threads exclude each other too) and unlocks it on release: acquiring costs a ``flock``, not an ``open``.
    ``close`` closes them all, once no thread holds a slot.
    """

    def __init__(self, directory: Path, slots: int) -> None:
        self.directory = directory
        self.slots = slots
        directory.mkdir(parents=True, exist_ok=True)
        self._opened: dict[tuple[int, int, int], int] = {}  # (thread, nesting depth, slot) -> descriptor
        self._lock = threading.Lock()
        self._depth = threading.local()  # slots this thread holds: a nested slot needs descriptors of its own

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        depth: int = getattr(self._depth, "held", 0)
        descriptor = self._acquire(depth)
        self._depth.held = depth + 1
        try:
            yield
        finally:
            self._depth.held = depth
            fcntl.flock(descriptor, fcntl.LOCK_UN)

    def _acquire(self, depth: int) -> int:
        start = threading.get_ident() % self.slots
        delay = 0.0005
        while True:
            for offset in range(self.slots):
                descriptor = self._descriptor(depth, (start + offset) % self.slots)
                try:
                    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue
                return descriptor
            time.sleep(delay)
            delay = min(delay * 2, 0.01)

    def close(self) -> None:
        with self._lock:
            for descriptor in self._opened.values():
                os.close(descriptor)
            self._opened.clear()

    def _descriptor(self, depth: int, slot: int) -> int:
        """This thread's descriptor of slot file ``slot`` at nesting ``depth``, opened on first use."""
        key = (threading.get_ident(), depth, slot)
        with self._lock:
            if key not in self._opened:
                path = self.directory / f"git-slot-{slot}"
                self._opened[key] = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            return self._opened[key]


class MemoryGate:
    """Says whether a new branch may start under ``limit_mb`` of summed resident memory.

    Samples at most every ``interval`` seconds. With nothing of ours running it always says yes: waiting
    then could never end, and the bound is about what the run adds.
    """

    def __init__(self, limit_mb: int, root_pid: int | None = None, interval: float = 0.2) -> None:
        self.limit_bytes = limit_mb * 1024 * 1024
        self.root_pid = root_pid if root_pid is not None else os.getpid()
        self.interval = interval
        self._sampled_at = float("-inf")
        self._last: int | None = None

    def sample(self) -> int | None:
        from alignment.proctree import tree_rss_bytes  # noqa: PLC0415 - psutil only where memory is sampled

        now = time.monotonic()
        if now - self._sampled_at >= self.interval:
            self._sampled_at = now
            self._last = tree_rss_bytes(self.root_pid)
        return self._last

    def allows_start(self, running: int) -> bool:
        if running == 0:
            return True
        used = self.sample()
        return used is None or used <= self.limit_bytes
