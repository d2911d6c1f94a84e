"""Integration: bring the target into a branch without moving any ref.

``merge`` (the default) merges in memory: ``git merge-tree --write-tree`` and ``commit-tree`` with the branch
and the target as parents, no worktree and no checkout. ``rebase`` replays the branch's own commits onto
the target in a detached worktree made for that branch. Either way the result is a commit id; the pipeline
moves the branch to it only after error detection passed. A plan (``context.predict``) never makes a
worktree: it predicts a rebase's conflicts and findings with the in-memory merge.
"""

from __future__ import annotations

from alignment.components import BranchContext, Integration
from alignment.config import Settings
from alignment.errors import StepFailed, UnrelatedHistories
from alignment.git import Conflict
from alignment.model import Action, ErrorCode, Status, Strategy


class MergeOrRebaseIntegrator:
    """The default ``IntegrationUtility``: the target's strategy from the configuration, merge or rebase."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def integrate(self, context: BranchContext) -> Integration:
        if context.relation in (Action.UP_TO_DATE, Action.FAST_FORWARD):
            new_tip = context.old_tip if context.relation is Action.UP_TO_DATE else context.target_commit
            return Integration(context.relation, new_tip)
        timeout = context.deadline.limit(self.settings.integration_timeout_seconds, Status.FAILED_INTEGRATION)
        if context.policy.strategy is Strategy.REBASE and not context.predict:
            return self._rebase(context, timeout)
        return self._merge(context, timeout)

    def _merge(self, context: BranchContext, timeout: float) -> Integration:
        try:
            merged = context.git.merge_tree(context.old_tip, context.target_commit, timeout=timeout)
        except UnrelatedHistories:
            raise StepFailed(
                Status.FAILED_INTEGRATION,
                [ErrorCode.UNRELATED_HISTORIES],
                f"'{context.branch}' and '{context.target}' have no common history; not merged",
            ) from None
        if not merged.clean:
            return Integration(Action.MERGE, None, merged.conflicts)
        message = (
            f"Merge branch '{context.target}' into {context.branch}\n\n"
            f"Aligned-By: branch-alignment run {context.run_id}\n"
        )
        commit = context.git.commit_tree(merged.tree, [context.old_tip, context.target_commit], message)
        return Integration(Action.MERGE, commit)

    def _rebase(self, context: BranchContext, timeout: float) -> Integration:
        worktree = context.workspace.checkout(context.old_tip, timeout=timeout)
        new_tip, conflicted = context.git.rebase(worktree, context.target_commit, timeout=timeout)
        if new_tip is None:
            return Integration(Action.REBASE, None, tuple(Conflict(path, "contents") for path in conflicted))
        context.workspace.moved(context.old_tip, new_tip)
        return Integration(Action.REBASE, new_tip)
