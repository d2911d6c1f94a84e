"""Explain conflicts: which target commit causes each one, and which branches would conflict with each other.

Both answers come from the same in-memory ``git merge-tree --write-tree`` the alignment itself uses, so no
worktree is made and no ref moves.

* ``find_culprits``: the target's first-parent commits since the branch forked are ``C1 .. Cn`` (``Cn`` is the
  pinned target). Merging the branch with ``Cn`` conflicts in path ``p``; only the commits among them that
  changed ``p`` can change how ``p`` merges (one path-limited ``git log`` lists them for all paths), so
  bisection over those finds the first ``Ck`` whose merge conflicts in ``p``: at most log2 of their count
  merges, shared by all paths (none when one commit changed ``p``). ``Ck`` is the commit that brought in
  the change ``p`` conflicts with (a merge commit on the target's first-parent line stands for everything
  it merged). When no commit changed ``p`` itself (a directory/file conflict reports ``p~<ours>``), the
  bisection runs over all of ``C1 .. Cn``.
* ``conflict_matrix``: two branches of one target that both merge cleanly may still conflict with each other
  once both have landed. Only pairs whose own changes (merge result against the target) touch a common path
  can conflict; those pairs are merged with each other in memory.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from alignment.git import Git
from alignment.inputs import BranchInput
from alignment.model import BranchResult, CommitInfo, Culprit

log = logging.getLogger(__name__)
PAIR_LIMIT = 2000  # pairs merged per target at most: the matrix says when it stopped short


def find_culprits(
    git: Git, tip: str, target_commit: str, paths: Sequence[str], *, timeout: float | None = None
) -> tuple[tuple[Culprit, ...], int]:
    """The target commit behind each conflicted path of merging ``target_commit`` into ``tip``.

    Returns the culprits (in ``paths`` order; none when the target's first-parent line brings nothing new)
    and how many merges it took.
    """
    touching = git.first_parent_line(tip, target_commit, paths)
    whole_line: list[CommitInfo] | None = None
    probes: dict[str, frozenset[str]] = {}

    def conflicts_at(commit: str) -> frozenset[str]:
        if commit not in probes:
            merged = git.merge_tree(tip, commit, timeout=timeout)
            probes[commit] = frozenset(conflict.path for conflict in merged.conflicts)
        return probes[commit]

    culprits = []
    for path in paths:
        candidates = [commit for commit, changed in touching if path in changed]
        if not candidates:
            if whole_line is None:
                whole_line = [commit for commit, _ in git.first_parent_line(tip, target_commit)]
            if not whole_line or whole_line[-1].oid != target_commit:
                continue  # the target brings no commit of its own line: nothing to blame
            candidates = whole_line
        # Invariant: merging the fork point (index -1) is clean in ``path``; merging the last candidate
        # conflicts there, as merging the target does, since no later commit changed the path.
        clean, conflicting = -1, len(candidates) - 1
        while conflicting - clean > 1:
            middle = (clean + conflicting) // 2
            if path in conflicts_at(candidates[middle].oid):
                conflicting = middle
            else:
                clean = middle
        culprits.append(Culprit(path, candidates[conflicting]))
    return tuple(culprits), len(probes)


@dataclass(frozen=True)
class PairConflict:
    """Two branches that each merge cleanly with the target but conflict with each other in ``paths``."""

    first: str
    second: str
    paths: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"branches": [self.first, self.second], "paths": list(self.paths)}


@dataclass(frozen=True)
class ConflictMatrix:
    """The pairwise conflicts among one target's branches that would merge cleanly."""

    branches: tuple[str, ...]
    pairs_checked: int
    pairs_skipped: int
    conflicts: tuple[PairConflict, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "branches": list(self.branches),
            "pairs_checked": self.pairs_checked,
            "pairs_skipped": self.pairs_skipped,
            "conflicts": [conflict.to_dict() for conflict in self.conflicts],
        }


def conflict_matrix(git: Git, results: Sequence[BranchResult], *, pair_limit: int = PAIR_LIMIT) -> ConflictMatrix:
    """Which of ``results`` (one target's predicted outcomes) would conflict with each other.

    Candidates are the branches with a predicted new tip that adds changes of their own to the target; a
    pair is merged only when those changes share a path, and at most ``pair_limit`` pairs are merged.
    """
    own_paths: dict[str, frozenset[str]] = {}
    tips: dict[str, str] = {}
    for result in results:
        if result.succeeded and result.new_tip and result.target_commit and result.new_tip != result.target_commit:
            paths = frozenset(git.tree_changes(result.target_commit, result.new_tip))
            if paths:
                own_paths[result.branch], tips[result.branch] = paths, result.new_tip
    overlapping = [(a, b) for a, b in itertools.combinations(own_paths, 2) if own_paths[a] & own_paths[b]]
    conflicts = []
    for first, second in overlapping[:pair_limit]:
        merged = git.merge_tree(tips[first], tips[second])
        if not merged.clean:
            conflicts.append(PairConflict(first, second, tuple(conflict.path for conflict in merged.conflicts)))
    skipped = max(0, len(overlapping) - pair_limit)
    if skipped:
        log.warning("conflict matrix: %d overlapping pairs not merged (limit %d)", skipped, pair_limit)
    checked = len(overlapping) - skipped
    return ConflictMatrix(tuple(own_paths), checked, skipped, tuple(conflicts))


def conflict_matrices(
    git: Git, branches: BranchInput, results: Mapping[str, BranchResult]
) -> dict[str, ConflictMatrix]:
    """``conflict_matrix`` for every target of ``branches``, branches in input order."""
    return {
        group.target: conflict_matrix(git, [results[spec.name] for spec in group.branches if spec.name in results])
        for group in branches.groups
    }
