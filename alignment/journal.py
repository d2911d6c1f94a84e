"""The move journal: every branch move of a run, written down before it is made, kept in the run folder.

It outlives any process of the run. Whoever finds a mover dead (the controller, for a crashed worker), an
interrupted step (``finish``), or wants a whole run undone (``alignment undo``) reads it and calls
``restore``: a branch still at the journaled new tip goes back to the old tip by compare-and-swap; a
branch at the old tip was never moved; a branch anywhere else moved again since and is left alone.
A move git refused (the compare-and-swap lost: someone else moved the branch first) is marked rejected:
it was certainly not made, so it is neither counted as a move nor ever undone, even when the winner
happened to move the branch to the very same commit.

Each process appends its records, one JSON line each, to a file of its own (``<host>-<pid>-<token>.jsonl``,
``journal_name``: no two processes share one, even on machines or in containers that share the run folder
and reuse process ids; appends from several machines to one file are not atomic on NFS): a record
costs an append, not a new file (creating a file costs 0.3-0.6 ms here, as much as a git round trip).
A branch's latest record is the one that counts. A line cut short by a crash is skipped: the record is
written before its move, so that move was never started. A move put back (by the run itself, or by
``alignment undo``) gets a record saying so: ``alignment runs`` counts what a run has moved now.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import time
from dataclasses import asdict, dataclass, replace
from enum import Enum
from pathlib import Path

from alignment.errors import GitError
from alignment.git import Git, RefUpdate, branch_ref
from alignment.names import branch_file_stem

_TOKEN = secrets.token_hex(4)  # this process's, with its pid: a process forked without exec gets another pid


def journal_name() -> str:
    """The name of this process's journal file: host, process id and a token drawn once per process."""
    host = re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname()) or "host"
    return f"{host}-{os.getpid()}-{_TOKEN}.jsonl"


class PutBack(str, Enum):
    """Who put a move back to its old tip: the run itself (the teardown of a failed or interrupted branch,
    the controller after a worker's crash) or ``alignment undo``."""

    RUN = "run"
    UNDO = "undo"


@dataclass(frozen=True)
class Move:
    """A branch moved (or about to be moved) from ``old_tip`` to ``new_tip``: a local branch, or with
    ``remote``, the branch of that name on the remote (pushed with a lease on ``old_tip``)."""

    branch: str
    old_tip: str
    new_tip: str
    rejected: bool = False  # git refused the compare-and-swap: this run did not move the branch
    remote: str | None = None
    put_back: PutBack | None = None  # the branch went back to ``old_tip`` since (None: the move stands)


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
    """The moves of a run in ``directory`` (``<run>/moves/``): one JSON-lines file per writing process."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def record(self, move: Move) -> None:
        """Append ``move`` (with the time, which orders a branch's records) to this process's file."""
        self.directory.mkdir(parents=True, exist_ok=True)
        line = "\n" + json.dumps({**asdict(move), "at": time.time_ns()}) + "\n"  # after a cut line, a fresh one
        descriptor = os.open(self.directory / journal_name(), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            data = line.encode("utf-8")
            if os.write(descriptor, data) != len(data):
                raise OSError(f"move journal {self.directory}: record of '{move.branch}' written only in part")
        finally:
            os.close(descriptor)

    def reject(self, move: Move) -> None:
        """Record that git refused ``move``: it was never made."""
        self.record(replace(move, rejected=True))

    def put_back(self, restoration: Restoration, by: PutBack) -> None:
        """Record the move of ``restoration`` as put back ``by`` the run or by ``alignment undo`` when its branch
        is at the old tip now (restored now, or found there: a move journaled but never made) and no record
        says so yet: ``alignment runs`` then counts it as undone or not at all, never as moved."""
        move = restoration.move
        if restoration.outcome is Outcome.RESTORED or (restoration.outcome is Outcome.NOT_MOVED and not move.put_back):
            self.record(replace(move, put_back=by))

    def get(self, branch: str) -> Move | None:
        """The move of ``branch`` that may have been made, or None (none journaled, or rejected)."""
        move = self._latest().get(branch)
        return None if move is None or move.rejected else move

    def moves(self) -> list[Move]:
        """The moves that may have been made (rejected ones left out, put back ones kept), by branch file name."""
        latest = self._latest()
        return [latest[name] for name in sorted(latest, key=branch_file_stem) if not latest[name].rejected]

    def _latest(self) -> dict[str, Move]:
        """Each branch's latest record: the last line of its file, and between processes' files (normally a
        branch has one writer) the later one."""
        latest: dict[str, tuple[int, Move]] = {}
        if self.directory.is_dir():
            for path in [*self.directory.glob("*.jsonl"), *self.directory.glob("*.json")]:  # .json: a file per
                # branch, as runs of earlier versions wrote them (``alignment undo`` of such a run)
                for branch, (at, move) in _records(path.read_text(encoding="utf-8", errors="replace")).items():
                    if branch not in latest or at >= latest[branch][0]:
                        latest[branch] = (at, move)
        return {branch: move for branch, (_, move) in latest.items()}


def restore(
    git: Git, move: Move, *, journal: MoveJournal | None = None, by: PutBack = PutBack.RUN, dry_run: bool = False
) -> Restoration:
    """Put ``move.branch`` back to its old tip if it is still where the move left it; with ``journal`` (and
    not ``dry_run``), the move is recorded there as put back ``by`` the run or ``alignment undo``."""
    restoration = _restoration(git, move, dry_run)
    if journal is not None and not dry_run:
        journal.put_back(restoration, by)
    return restoration


def _restoration(git: Git, move: Move, dry_run: bool) -> Restoration:
    now = git.resolve_branch(move.branch)
    if now == move.old_tip:
        return Restoration(move, Outcome.NOT_MOVED, f"'{move.branch}' is at its old tip {move.old_tip}")
    if now is None:
        message = f"'{move.branch}' does not exist now (deleted since, or not in this repository); not recreated"
        return Restoration(move, Outcome.MOVED_SINCE, message)
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


def _records(text: str) -> dict[str, tuple[int, Move]]:
    """The last record of each branch in one journal file, with its time; blank and cut lines are skipped."""
    records = {}
    for line in text.splitlines():
        try:
            data = json.loads(line)
        except ValueError:
            continue
        put_back = PutBack(data["put_back"]) if data.get("put_back") else None
        move = Move(
            data["branch"], data["old_tip"], data["new_tip"], data.get("rejected", False), data.get("remote"), put_back
        )
        records[move.branch] = (int(data.get("at", 0)), move)
    return records
