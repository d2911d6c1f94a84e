"""What an earlier run left behind when it died, found and cleaned up by the next one.

A run's owner (the pytest controller or the orchestrator) holds an exclusive ``flock`` on ``alive`` in its
scratch directory for as long as it runs. A scratch directory whose ``alive`` can be locked belongs to a
dead run: its worktrees are removed (files and git's entry) and the directory deleted. Nothing of a live
run, and nothing that is not ours, is ever touched. Stale ref lock files (``refs/heads/**.lock``) are
reported, not deleted: a lock may belong to a git process that is still working.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from alignment.errors import GitError
from alignment.git import Git

SCRATCH_PREFIX = "alignment-"
_SCRATCH_NAME = re.compile(r"^alignment-\d{8}T\d{6}Z-[0-9a-f]{6}-")
_held: dict[Path, int] = {}


def hold(scratch_dir: Path) -> None:
    """Mark ``scratch_dir`` as belonging to a live run until ``release``."""
    descriptor = os.open(scratch_dir / "alive", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(descriptor, fcntl.LOCK_EX)
    _held[scratch_dir] = descriptor


def release(scratch_dir: Path) -> None:
    descriptor = _held.pop(scratch_dir, None)
    if descriptor is not None:
        os.close(descriptor)


def is_alive(scratch_dir: Path) -> bool:
    """Whether a run still holds ``scratch_dir`` (False when its owner is gone)."""
    try:
        descriptor = os.open(scratch_dir / "alive", os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(descriptor)
    return False


def _scratch_of(path: Path) -> Path | None:
    """The run scratch directory ``path`` lies in, if it is one of ours."""
    for parent in (path, *path.parents):
        if _SCRATCH_NAME.match(parent.name):
            return parent
    return None


def sweep(git: Git, temporary_dir: Path | None = None) -> tuple[str, ...]:
    """Clean up after dead runs and report stale ref locks; one line per thing found."""
    notes = []
    for worktree in git.linked_worktrees():
        scratch = _scratch_of(worktree)
        if scratch is None or is_alive(scratch):
            continue
        try:
            git.remove_worktree(worktree)
            notes.append(f"removed worktree {worktree} left by a run that did not finish")
        except GitError as error:
            notes.append(f"could not remove worktree {worktree} left by an earlier run: {error}")
    for scratch in sorted((temporary_dir or Path(tempfile.gettempdir())).glob(f"{SCRATCH_PREFIX}*")):
        if _SCRATCH_NAME.match(scratch.name) and (scratch / "alive").exists() and not is_alive(scratch):
            shutil.rmtree(scratch, ignore_errors=True)
    for lock in stale_ref_locks(git):
        minutes = (time.time() - lock.stat().st_mtime) / 60
        notes.append(
            f"ref lock file {lock} exists (for {minutes:.0f} min); that branch cannot move until it "
            "is gone: remove it if no git process is running"
        )
    return tuple(notes)


def stale_ref_locks(git: Git) -> list[Path]:
    common = git.location.common_dir
    locks = sorted((common / "refs" / "heads").rglob("*.lock")) if (common / "refs" / "heads").is_dir() else []
    packed = common / "packed-refs.lock"
    return locks + ([packed] if packed.exists() else [])
