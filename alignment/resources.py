"""Resource bounds of a run: ``max_concurrent_git_ops`` across processes and ``max_memory_mb`` over the tree.

``SlotLimiter`` is a counting semaphore shared by every process and thread of a run: one ``flock``ed file per
slot in the run's scratch directory. flock locks belong to open file descriptions, so two threads holding
their own descriptors exclude each other just like two processes do.

``MemoryGate`` samples the summed resident memory of a process and all its descendants (controller, xdist
workers, git children) from ``/proc``; while it is above the bound no new branch starts.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


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


def tree_pids(root_pid: int) -> list[int] | None:
    """``root_pid`` and all its descendants, or None without a Linux ``/proc``.

    A child that still runs its parent's program (between ``fork`` and ``exec``) shares the parent's memory
    and is left out, so that memory is not counted twice; so is one without a command line (a zombie, or a
    child in the middle of ``exec``, which still shows its parent's pages).
    """
    proc = Path("/proc")
    if not (proc / str(root_pid)).exists():
        return None
    children: dict[int, list[int]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, pending = [], [root_pid]
    while pending:
        pid = pending.pop()
        found.append(pid)
        command = _command_line(pid)
        pending.extend(child for child in children.get(pid, ()) if _command_line(child) not in (command, b""))
    return found


def _command_line(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def tree_rss_bytes(root_pid: int) -> int | None:
    """Summed resident memory of ``root_pid`` and its descendants (see ``tree_pids``)."""
    return tree_sum(root_pid, _rss_bytes)


def tree_sum(root_pid: int, measure: Callable[[int], int]) -> int | None:
    """``measure`` summed over ``root_pid``'s tree; a process that ends meanwhile counts 0."""
    pids = tree_pids(root_pid)
    if pids is None:
        return None
    total = 0
    for pid in pids:
        try:
            total += measure(pid)
        except (OSError, IndexError, ValueError):
            continue
    return total


def _rss_bytes(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE_SIZE


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
