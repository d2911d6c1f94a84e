"""Detached worktrees for the one branch that needs files on disk (a rebase, or check commands).

Worktrees are created one at a time across every process of a run (parallel ``git worktree add`` races on
the repository's common dir), live in the run's scratch directory, and are all removed by ``close()``,
whatever happened, with the temporary directory of each (``temp_dir``). The default merge strategy without
check commands never creates one.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alignment.errors import GitError
from alignment.git import Git
from alignment.housekeeping import WORKTREES

_counter = itertools.count()
_TEMP_DIRS = "tmp"


class Workspace:
    """The worktrees of one branch's alignment, keyed by the commit checked out in each.

    They live in the run's scratch directory, which the run's owner creates and deletes: a workspace never
    recreates it, so nothing of a finished run reappears in the temporary directory.
    """

    def __init__(self, git: Git, scratch_dir: Path, label: str) -> None:
        self._git = git
        self._root = scratch_dir / WORKTREES
        self._temp_root = scratch_dir / _TEMP_DIRS
        self._lock_path = scratch_dir / "worktree.lock"
        self._label = label
        self._trees: dict[str, Path] = {}

    def checkout(self, commit: str, timeout: float | None = None) -> Path:
        """A worktree with ``commit`` checked out (detached): reused if this branch already has one."""
        if commit in self._trees:
            return self._trees[commit]
        self._root.mkdir(exist_ok=True)  # inside the run's scratch directory, which must still exist
        path = self._root / f"wt-{os.getpid()}-{next(_counter)}-{self._label}"
        self._trees[commit] = path  # before the add: an interrupted add leaves an entry to clean up
        with self._exclusive():
            self._git.add_worktree(path, commit, timeout=timeout)
        return path

    def temp_dir(self, worktree: Path) -> Path:
        """The ``TMPDIR`` of the commands run in ``worktree`` (one of ``checkout``'s): made on first use, in the
        run's scratch directory, so no two branches' temporary files meet; removed with the worktree."""
        self._temp_root.mkdir(exist_ok=True)  # inside the run's scratch directory, which must still exist
        path = self._temp_root / worktree.name
        path.mkdir(exist_ok=True)
        return path

    def moved(self, old_commit: str, new_commit: str) -> None:
        """Record that the worktree at ``old_commit`` now has ``new_commit`` checked out (after a rebase)."""
        self._trees[new_commit] = self._trees.pop(old_commit)

    def close(self) -> None:
        """Remove every worktree of this branch and their temporary directories, each one even if removing
        another failed."""
        trees, self._trees = list(self._trees.values()), {}
        if not trees:
            return
        failures = []
        for path in trees:
            shutil.rmtree(self._temp_root / path.name, ignore_errors=True)
        with self._exclusive():
            for path in trees:
                try:
                    self._git.remove_worktree(path)
                except GitError as error:
                    failures.append(f"{path}: {error}")
        if failures:
            raise GitError(("worktree", "remove"), 1, "; ".join(failures))

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        with self._lock_path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
