"""What an earlier run left behind when it died, found and cleaned up by the next one.

A run's owner (the pytest controller or the orchestrator) creates its scratch directory with
``create_scratch``, which writes a marker file naming that very directory, and holds an exclusive ``flock``
on ``alive`` in it for as long as it runs. Only a marked scratch directory whose ``alive`` can be locked
belongs to a dead run: the worktrees in its ``worktrees/`` folder are removed (files and git's entry) and
the directory deleted. A name proves nothing (a user may call a worktree anything): nothing without our
marker, and nothing of a live run, is ever touched. Stale ref lock files (``refs/heads/**.lock``) are
reported, not deleted: a lock may belong to a git process that is still working.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
import time
from pathlib import Path

from alignment.errors import GitError
from alignment.git import Git, worktree_registered

SCRATCH_PREFIX = "alignment-"
MARKER = ".alignment-scratch"
WORKTREES = "worktrees"
_MARKER_HEADER = "scratch directory of a branch alignment run, removed by a later run once this run is gone:\n"
_held: dict[Path, int] = {}


def create_scratch(run_id: str, parent: Path | None = None) -> Path:
    """A new scratch directory for run ``run_id``, marked as this tool's and held until ``release``."""
    scratch = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{run_id}-", dir=parent)).resolve()
    (scratch / MARKER).write_text(f"{_MARKER_HEADER}{scratch}\n", encoding="utf-8")
    hold(scratch)
    return scratch


def is_scratch(path: Path) -> bool:
    """Whether ``path`` is a scratch directory this tool created: its marker names the directory itself."""
    try:
        return (path / MARKER).read_text(encoding="utf-8") == f"{_MARKER_HEADER}{path.resolve()}\n"
    except (OSError, UnicodeDecodeError):
        return False


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
    try:  # shared: two runs probing one dead run at once must both see it dead
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(descriptor)
    return False


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


def sweep(git: Git, temporary_dir: Path | None = None) -> tuple[str, ...]:
    """Clean up after dead runs and report stale ref locks; one line per thing found."""
    notes = []
    for worktree in git.linked_worktrees():
        if not _left_by_dead_run(worktree):
            continue
        try:
            git.remove_worktree(worktree)
            notes.append(f"removed worktree {worktree} left by a run that did not finish")
        except GitError as error:
            notes.append(f"could not remove worktree {worktree} left by an earlier run: {error}")
    for scratch in sorted((temporary_dir or Path(tempfile.gettempdir())).glob(f"{SCRATCH_PREFIX}*")):
        if is_scratch(scratch) and not is_alive(scratch) and not _holds_registered_worktree(scratch):
            shutil.rmtree(scratch, ignore_errors=True)
    for lock in git.stale_ref_locks():
        minutes = (time.time() - lock.stat().st_mtime) / 60
        notes.append(
            f"ref lock file {lock} exists (for {minutes:.0f} min); that branch cannot move until it "
            "is gone: remove it if no git process is running"
        )
    return tuple(notes)
