"""What an earlier run left behind when it died, found and cleaned up by the next one.

A run's owner (the pytest controller or the orchestrator) creates its scratch directory with
``scratch.create_scratch`` (marked as ours, held while its owner lives); so does each process that probes
merges, for their throwaway objects (``Git.probe_merges``, in ``scratch.memory_dir``). Only a marked scratch
directory whose hold can be taken belongs to a dead run: the worktrees in its ``worktrees/`` folder are
removed (files and git's entry) and the directory deleted. A name proves nothing (a user may call a
worktree anything): nothing without our marker, and nothing of a live run, is ever touched. Stale ref lock
files (``refs/heads/**.lock``) are reported, not deleted: a lock may belong to a git process that is still
working.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from alignment.errors import GitError
from alignment.git import Git, worktree_registered
from alignment.scratch import SCRATCH_PREFIX, is_alive, is_scratch, scratch_places

WORKTREES = "worktrees"


def _left_by_dead_run(worktree: Path) -> bool:
    """Whether ``worktree`` is one a run made in its scratch directory (``<scratch>/worktrees/<name>``) and
    that run is gone."""
    scratch = worktree.parent.parent
    return worktree.parent.name == WORKTREES and is_scratch(scratch) and not is_alive(scratch)


def _holds_registered_worktree(scratch: Path) -> bool:
    """Whether a worktree in ``scratch`` is still registered in its repository: that may be another
    repository than this run's, whose next run removes the worktree (files and entry) and then the scratch.
    Deleting the folder first would leave that repository an entry no later run could prove to be ours."""
    return any(worktree_registered(worktree) for worktree in (scratch / WORKTREES).glob("*"))


def sweep(git: Git, places: Sequence[Path] | None = None) -> tuple[str, ...]:
    """Clean up after dead runs and report stale ref locks; one line per thing found. ``places``: where
    scratch directories are looked for (``scratch.scratch_places``)."""
    notes = []
    for worktree in git.linked_worktrees():
        if not _left_by_dead_run(worktree):
            continue
        try:
            git.remove_worktree(worktree)
            notes.append(f"removed worktree {worktree} left by a run that did not finish")
        except GitError as error:
            notes.append(f"could not remove worktree {worktree} left by an earlier run: {error}")
    places = places if places is not None else scratch_places()
    for scratch in sorted(scratch for place in places for scratch in place.glob(f"{SCRATCH_PREFIX}*")):
        if is_scratch(scratch) and not is_alive(scratch) and not _holds_registered_worktree(scratch):
            shutil.rmtree(scratch, ignore_errors=True)
    for lock in git.stale_ref_locks():
        minutes = (time.time() - lock.stat().st_mtime) / 60
        notes.append(
            f"ref lock file {lock} exists (for {minutes:.0f} min); that branch cannot move until it "
            "is gone: remove it if no git process is running"
        )
    return tuple(notes)
