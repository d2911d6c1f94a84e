"""Integration: bring the target into a branch without moving any ref.

``merge`` (the default) merges in memory: ``git merge-tree --write-tree`` and ``commit-tree`` with the branch
and the target as parents, no worktree and no checkout. ``rebase`` replays the branch's own commits onto
the target in a detached worktree made for that branch. Either way the result is a commit id; the pipeline
moves the branch to it only after error detection passed. A plan (``context.predict``) never makes a
worktree: it predicts a rebase's conflicts and findings with the in-memory merge (its action still
``rebase``), and says so: git 2.39's merge-tree cannot replay commits one at a time (no ``--merge-base``), and
a replay can conflict where the merge does not (a commit reverted later) or the other way round (a commit
already on the target). Which commits a rebase drops only the rebase tells, in a note of the branch's result.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Sequence

from alignment.components import BranchContext, Integration
from alignment.config import Settings
from alignment.errors import (
    GitError,
    GitTimeout,
    StepFailed,
    UnrelatedHistories,
    counted,
    first_and_more,
    one_line,
)
from alignment.git import Conflict, Git, OwnCommit
from alignment.model import Action, ErrorCode, Status, Strategy, run_signature

log = logging.getLogger(__name__)
DROPPED_NAMED = 10  # commits a rebase dropped that its note names by id
REBASE_PREDICTED = "predicted by a merge; the rebase replays commits one by one and may differ"


class MergeOrRebaseIntegrator:
    """The default ``IntegrationUtility``: the target's strategy from the configuration, merge or rebase."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def integrate(self, context: BranchContext) -> Integration:
        if context.relation in (Action.UP_TO_DATE, Action.FAST_FORWARD):
            new_tip = context.old_tip if context.relation is Action.UP_TO_DATE else context.target_commit
            return Integration(context.relation, new_tip)
        timeout = context.deadline.limit(self.settings.integration_timeout_seconds, Status.FAILED_INTEGRATION)
        if context.policy.strategy is not Strategy.REBASE:
            return self._merge(context, timeout, Action.MERGE)
        own = _commits_to_rebase(context, timeout)
        if context.predict:
            return self._merge(context, timeout, Action.REBASE)
        return self._rebase(context, timeout, own)

    def _merge(self, context: BranchContext, timeout: float, action: Action) -> Integration:
        """The in-memory merge; under ``action`` ``rebase``, a plan's prediction of the rebase."""
        try:
            merged = context.git.merge_tree(context.old_tip, context.target_commit, timeout=timeout)
        except UnrelatedHistories:
            raise _unrelated(context) from None
        if not merged.clean:
            return Integration(action, None, merged.conflicts)
        message = (
            f"Merge branch '{context.target}' into {context.branch}\n\nAligned-By: {run_signature(context.run_id)}\n"
        )
        commit = context.git.commit_tree(merged.tree, [context.old_tip, context.target_commit], message)
        return Integration(action, commit, notes=(f"rebase {REBASE_PREDICTED}",) if action is Action.REBASE else ())

    def _rebase(self, context: BranchContext, timeout: float, own: tuple[OwnCommit, ...]) -> Integration:
        worktree = context.workspace.checkout(context.old_tip, timeout=timeout)
        rebased = context.git.rebase(worktree, context.target_commit, timeout=timeout)
        if rebased.new_tip is None:
            return Integration(Action.REBASE, None, tuple(Conflict(path, "contents") for path in rebased.conflicted))
        context.workspace.moved(context.old_tip, rebased.new_tip)
        dropped = _dropped(own, rebased.replayed)
        if not dropped:
            return Integration(Action.REBASE, rebased.new_tip)
        ids = first_and_more([commit.oid[:12] for commit in dropped], DROPPED_NAMED, ", ")
        note = (
            f"{len(dropped)} of its {counted(len(own), 'commit')} dropped by the rebase (already on the target or "
            f"empty): {ids}"
        )
        return Integration(Action.REBASE, rebased.new_tip, notes=(note,))


def _unrelated(context: BranchContext) -> StepFailed:
    return StepFailed(
        Status.FAILED_INTEGRATION,
        [ErrorCode.UNRELATED_HISTORIES],
        f"'{context.branch}' and '{context.target}' have no common history; not merged",
    )


def _commits_to_rebase(context: BranchContext, timeout: float) -> tuple[OwnCommit, ...]:
    """The branch's own commits, newest first, once it is known that a rebase may replay them.

    A branch with merge commits of its own is not rebased: ``git rebase`` replays only the commits they
    merged, so whatever a merge itself changed (a conflict's resolution, an edit made in the merge) would be
    gone from the branch without a word. Refused, it stays where it was; the merge strategy keeps them.
    Nor is a branch with no history in common with the target (its own line reaches a root commit), as
    ``git merge`` refuses it: ``git rebase`` would graft all of it onto the target.
    """
    own = context.git.own_commits(context.old_tip, context.target_commit, timeout=timeout)
    merge = next((commit.oid for commit in own if len(commit.parents) > 1), None)
    if merge is not None:
        raise StepFailed(
            Status.FAILED_INTEGRATION,
            [ErrorCode.INTEGRATION_FAILED],
            f"'{context.branch}' has merge commits of its own ({merge[:10]}); a rebase would drop what they "
            f"changed, so it was not rebased (integration_strategy: merge keeps them)",
        )
    if any(not commit.parents for commit in own):
        raise _unrelated(context)
    return own


def _dropped(own: Sequence[OwnCommit], replayed: Sequence[OwnCommit]) -> list[OwnCommit]:
    """The commits of ``own`` (a line, newest first) that the rebase did not replay as one of ``replayed``
    (newest first): as ``git rebase`` does, those already on the target and those that became empty.

    Both are walked oldest first; a commit is replayed when its identity (author, author date, subject: what
    the rebase kept) is the next replayed one's. Two commits alike in all of that may be told apart wrongly,
    never counted wrongly.
    """
    waiting = iter(reversed(replayed))
    next_one = next(waiting, None)
    dropped = []
    for commit in reversed(own):
        if next_one is not None and next_one.identity == commit.identity:
            next_one = next(waiting, None)
        else:
            dropped.append(commit)
    return dropped


class MergesAhead:
    """The in-memory merges of a run's diverged branches, done in batches ahead of their branches
    (``Git.merge_ahead``): one ``merge-tree --stdin`` process per batch instead of one per branch.

    The first branch whose merge no batch has taken does a batch: its own merge and the next ones of its
    target, in input order, that no batch has taken yet. A branch whose merge another thread's batch is
    doing waits for that batch. A branch that moved since the snapshot, or one of a batch git refused (e.g.
    unrelated histories) or that ran out of time, is merged on its own, as before; after a batch that ran
    out of time no other batch is started (merges that slow gain nothing from one process). Under xdist
    each worker batches for itself.
    """

    BATCH = 32

    def __init__(self, git: Git, queues: Sequence[Sequence[tuple[str, str]]]) -> None:
        """``queues``: per target, the ``(branch tip, target commit)`` of each branch to merge, in input order."""
        self._git = git
        self._queues = queues
        self._place: dict[tuple[str, str], tuple[int, int]] = {}
        for number, queue in enumerate(queues):
            for index, pair in enumerate(queue):
                self._place.setdefault(pair, (number, index))  # two branches at one commit: one merge
        self._taken: dict[tuple[str, str], threading.Event] = {}
        self._lock = threading.Lock()
        self._stopped = False

    def prepare(self, ours: str, theirs: str, timeout: float) -> None:
        """Have the merge of ``theirs`` into ``ours`` done ahead if it is one of the run's: by a batch of
        this call, or by the batch already doing it; either way within ``timeout`` seconds."""
        pair = (ours, theirs)
        batch: list[tuple[str, str]] = []
        with self._lock:
            place = self._place.get(pair)
            done = self._taken.get(pair)
            if place is None or (done is None and self._stopped):
                return
            if done is None:
                done = threading.Event()
                number, index = place
                untaken = dict.fromkeys(later for later in self._queues[number][index:] if later not in self._taken)
                batch = list(itertools.islice(untaken, self.BATCH))
                self._taken.update(dict.fromkeys(batch, done))
        if not batch:
            done.wait(timeout)
            return
        try:
            self._git.merge_ahead(batch, timeout=timeout)
        except GitError as error:  # each of these branches merges on its own, as before
            log.debug(
                "merges of %s not done ahead: %s", counted(len(batch), "branch", "branches"), one_line(str(error))
            )
            if isinstance(error, GitTimeout):
                self._stopped = True
        finally:
            done.set()
