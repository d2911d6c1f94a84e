"""The memory of a process tree: a run's controller or orchestrator, its xdist workers and git children.

Separate from ``resources`` so that only a process that samples memory loads psutil (about 10 ms of
imports): xdist workers import ``resources`` for the git slots and never sample.
"""

from __future__ import annotations

from collections.abc import Callable

import psutil


def tree_processes(root_pid: int) -> list[psutil.Process] | None:
    """``root_pid`` and all its descendants, or None when ``root_pid`` does not exist.

    A child that still runs its parent's program (between ``fork`` and ``exec``) shares the parent's memory
    and is left out, so that memory is not counted twice; so is one without a command line (a zombie, a
    child in the middle of ``exec``, which still shows its parent's pages, or one that ended meanwhile).
    """
    try:
        root = psutil.Process(root_pid)
        descendants = root.children(recursive=True)  # parents come before their children
    except psutil.Error:
        return None
    commands = {root_pid: _parent_and_command(root)[1]}
    found = [root]
    for child in descendants:
        parent, commands[child.pid] = _parent_and_command(child)
        if commands[child.pid] not in (commands.get(parent), []):
            found.append(child)
    return found


def _parent_and_command(process: psutil.Process) -> tuple[int, list[str]]:
    """The parent's id and the command line; no command line for a process that ended meanwhile."""
    try:
        with process.oneshot():
            return process.ppid(), process.cmdline()
    except psutil.Error:
        return 0, []


def tree_rss_bytes(root_pid: int) -> int | None:
    """Summed resident memory of ``root_pid`` and its descendants (see ``tree_processes``)."""
    return tree_sum(root_pid, lambda process: int(process.memory_info().rss))


def tree_sum(root_pid: int, measure: Callable[[psutil.Process], int]) -> int | None:
    """``measure`` summed over ``root_pid``'s tree; a process that ends meanwhile counts 0."""
    processes = tree_processes(root_pid)
    if processes is None:
        return None
    total = 0
    for process in processes:
        try:
            total += measure(process)
        except psutil.Error:
            continue
    return total
