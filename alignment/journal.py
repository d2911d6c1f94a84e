"""The move journal: every branch move of a run, written down before it is made, kept in the run folder.

It outlives any process of the run. Whoever finds a mover dead (the controller, for a crashed worker), an
interrupted step (``finish``), or wants a whole run undone (``alignment undo``) reads it and calls
``restore``: a branch still at the journaled new tip goes back to the old tip by compare-and-swap; a
branch at the old tip was never moved; a branch anywhere else moved again since and is left alone.
A move git refused (the compare-and-swap lost: someone else moved the branch first) is marked rejected:
it was certainly not made, so it is neither counted as a move nor ever undone, even when the winner
happened to move the branch to the very same commit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path

from alignment.errors import GitError
from alignment.git import Git, RefUpdate, branch_ref
from alignment.names import branch_file_stem
from alignment.runs import write_atomically


@dataclass(frozen=True)
class Move:
    """A branch moved (or about to be moved) from ``old_tip`` to ``new_tip``: a local branch, or with
    ``remote``, the branch of that name on the remote (pushed with a lease on ``old_tip``)."""

    branch: str
    old_tip: str
    new_tip: str
    rejected: bool = False  # git refused the compare-and-swap: this run did not move the branch
    remote: str | None = None


class Outcome(str, Enum):
    RESTORED = "restored"
    NOT_MOVED = "not_moved"
    MOVED_SINCE = "moved_since"
    CHECKED_OUT = "checked_out"
    FAILED = "failed"


@dataclass(frozen=True)
class Restoration:
    move: Move
    outcome: Outcome
    message: str


class MoveJournal:
    """One JSON file per moved branch in ``directory`` (``<run>/moves/``)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def record(self, move: Move) -> None:
        write_atomically(self._path(move.branch), json.dumps(move.__dict__))

    def reject(self, move: Move) -> None:
        """Record that git refused ``move``: it was never made."""
        self.record(replace(move, rejected=True))

    def get(self, branch: str) -> Move | None:
        """The move of ``branch`` that may have been made, or None (none journaled, or rejected)."""
        path = self._path(branch)
        move = _read(path) if path.exists() else None
        return None if move is None or move.rejected else move

    def moves(self) -> list[Move]:
        """The moves that may have been made (rejected ones left out)."""
        paths = sorted(self.directory.glob("*.json")) if self.directory.is_dir() else []
        return [move for move in map(_read, paths) if not move.rejected]

    def _path(self, branch: str) -> Path:
        return self.directory / f"{branch_file_stem(branch)}.json"


def restore(git: Git, move: Move, *, dry_run: bool = False) -> Restoration:
    """Put ``move.branch`` back to its old tip if it is still where the move left it."""
    now = git.resolve_branch(move.branch)
    if now == move.old_tip:
        return Restoration(move, Outcome.NOT_MOVED, f"'{move.branch}' is at its old tip {move.old_tip}")
    if now != move.new_tip:
        return Restoration(
            move, Outcome.MOVED_SINCE, f"'{move.branch}' moved again since (now at {now}); left as it is"
        )
    if dry_run:
        return Restoration(move, Outcome.RESTORED, f"would restore '{move.branch}' to {move.old_tip}")
    try:
        git.update_refs([RefUpdate(branch_ref(move.branch), move.old_tip, move.new_tip)])
    except GitError as error:
        return Restoration(move, Outcome.FAILED, f"could not restore '{move.branch}' to {move.old_tip}: {error}")
    return Restoration(move, Outcome.RESTORED, f"restored '{move.branch}' to its old tip {move.old_tip}")


def _read(path: Path) -> Move:
    data = json.loads(path.read_text(encoding="utf-8"))
    return Move(data["branch"], data["old_tip"], data["new_tip"], data.get("rejected", False), data.get("remote"))
