"""Explain conflicts: which target commit causes each one, and which branches would conflict with each other.

Both answers come from the same in-memory ``git merge-tree --write-tree`` the alignment itself uses, so no
worktree is made and no ref moves.

* ``explain_conflicts``: the target's first-parent commits since the branch forked are ``C1 .. Cn`` (``Cn`` is
  the pinned target). Merging the branch with ``Cn`` conflicts in paths ``P``; only the commits that changed
  one of them can change how they merge (one path-limited ``git log`` lists those for all paths). One search
  serves all paths: each probe merges the branch with one commit and answers every path of its group at
  once, so the group splits by outcome (paths that conflict there: the cause is at or before it; the others:
  after it) and each part is searched further; a part that knows nothing yet tries its earliest candidate
  first (the likeliest cause), the others are halved. A path is explained when a single commit that changed it is
  left between its last clean probe and its first conflicting one (none is needed when one commit changed
  it); that commit brought in the change the path conflicts with (a merge commit on the target's
  first-parent line stands for everything it merged). The cost follows the number of distinct causes times
  log2 of the commits, not the number of paths; the probes of one round (one per group) run in one
  ``merge-tree --stdin`` process. A commit that changed ``p/...`` changed ``p`` (a file/directory conflict is
  named by the directory's path). When no commit changed a path (the new name of a file the branch renamed),
  its search runs over all of ``C1 .. Cn``. A budget of merges and seconds bounds the search: the paths left
  are listed as unexplained with the commits they lie among.
* ``conflict_matrix``: two branches of one target that both merge cleanly may still conflict with each other
  once both have landed. Only pairs whose own changes (merge result against the target) touch a common path
  can conflict; those pairs are merged with each other in memory, 32 to a process.

Both only look at merges, so they use ``Git.probe_merges``: what the merges write is thrown away, nothing is
left in the repository.
"""

from __future__ import annotations

import bisect
import enum
import itertools
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from alignment.errors import GitError, GitTimeout, counted
from alignment.git import Git
from alignment.inputs import BranchInput
from alignment.model import BranchResult, CommitInfo, Culprit, Unexplained

log = logging.getLogger(__name__)
PAIR_LIMIT = 2000  # pairs merged per target at most: the matrix says when it stopped short
PAIR_BATCH = 32  # pairs merged per git process


@dataclass(frozen=True)
class Budget:
    """What explaining one branch may cost: probe merges and seconds."""

    merges: int
    seconds: float


@dataclass(frozen=True)
class Explanation:
    """The causes found (in the order of the paths asked about), the paths left unexplained, the merges run."""

    culprits: tuple[Culprit, ...]
    unexplained: tuple[Unexplained, ...]
    merges: int


@dataclass(frozen=True)
class _Line:
    """The commits a search walks, oldest first, and per path the positions of those that may cause it."""

    commits: Sequence[CommitInfo]
    candidates: Mapping[str, Sequence[int]]


@dataclass(frozen=True)
class _Group:
    """Paths that share what is known: merging ``commits[clean]`` is clean there (-1: the fork point),
    merging ``commits[conflicting]`` conflicts there."""

    line: _Line
    paths: tuple[str, ...]
    clean: int
    conflicting: int

    def between(self, path: str) -> Sequence[int]:
        """The positions of ``path``'s candidates after ``clean``, up to and including ``conflicting``."""
        positions = self.line.candidates[path]
        low = bisect.bisect_right(positions, self.clean)
        return positions[low : bisect.bisect_right(positions, self.conflicting, low)]

    def settle(self) -> tuple[list[Culprit], _Group | None]:
        """The paths with one candidate left are explained; the group of the others, if any."""
        found, open_paths = [], []
        for path in self.paths:
            left = self.between(path)
            if len(left) > 1:
                open_paths.append(path)
            else:  # none left: nothing that changed the path lies between, the first conflicting merge is it
                found.append(Culprit(path, self.line.commits[left[0] if left else self.conflicting]))
        rest = _Group(self.line, tuple(open_paths), self.clean, self.conflicting) if open_paths else None
        return found, rest

    def positions(self) -> list[int]:
        """Every candidate position of the group's paths in its range, in order."""
        return sorted({position for path in self.paths for position in self.between(path)})

    def probe(self) -> int:
        """Where to merge next (never ``conflicting``: that one is known). A group that knows nothing yet
        (clean only at the fork point) tries its earliest candidate: the first change since the fork is the
        likeliest cause (a file both sides keep changing in one place, a generated list, pinned requirements),
        and if it is, the search ends in one merge instead of log2 of the candidates. Else the position that
        halves the group's candidates."""
        positions = self.positions()
        return positions[0] if self.clean == -1 else positions[len(positions) // 2 - 1]

    def split(self, probe: int, conflicted: frozenset[str]) -> list[_Group]:
        """The parts after merging ``commits[probe]``: paths that conflict there, and the others."""
        early = tuple(path for path in self.paths if path in conflicted)
        late = tuple(path for path in self.paths if path not in conflicted)
        parts = [_Group(self.line, early, self.clean, probe), _Group(self.line, late, probe, self.conflicting)]
        return [part for part in parts if part.paths]

    def unexplained(self) -> Unexplained:
        positions = self.positions()
        commits = self.line.commits
        return Unexplained(self.paths, commits[positions[0]].oid, commits[positions[-1]].oid, len(positions))


def _containing(name: str, paths: frozenset[str]) -> list[str]:
    """The ``paths`` that ``name``, a path a commit changed, is or lies under: a change to ``d/q`` is a change
    to the directory of a file/directory conflict named ``d`` (git's path-limited log lists ``d/q`` for ``d``)."""
    parts = name.split("/")
    return [prefix for prefix in ("/".join(parts[:end]) for end in range(1, len(parts) + 1)) if prefix in paths]


def explain_conflicts(
    git: Git, tip: str, target_commit: str, paths: Sequence[str], budget: Budget, *, timeout: float | None = None
) -> Explanation:
    """The target commit behind each conflicted path of merging ``target_commit`` into ``tip``.

    Culprits come in ``paths`` order; none for paths when the target's first-parent line brings nothing new.
    Paths the budget did not reach are listed as unexplained.
    """
    started = time.monotonic()
    touching = git.first_parent_line(tip, target_commit, paths)
    asked = frozenset(paths)
    positions: dict[str, list[int]] = {path: [] for path in paths}
    for position, (_, names) in enumerate(touching):
        for path in {owner for name in names for owner in _containing(name, asked)}:
            positions[path].append(position)
    groups = []
    touched = tuple(path for path in paths if positions[path])
    if touched:
        line = _Line(tuple(commit for commit, _ in touching), {path: positions[path] for path in touched})
        groups.append(_Group(line, touched, -1, len(touching) - 1))
    untouched = tuple(path for path in paths if not positions[path])
    if untouched:
        whole = tuple(commit for commit, _ in git.first_parent_line(tip, target_commit))
        if whole and whole[-1].oid == target_commit:  # else the target brings no commit of its own line
            everywhere = range(len(whole))
            groups.append(_Group(_Line(whole, dict.fromkeys(untouched, everywhere)), untouched, -1, len(whole) - 1))
    found: dict[str, Culprit] = {}
    merges = 0
    while groups:
        open_groups = []
        for group in groups:
            culprits, rest = group.settle()
            found.update((culprit.path, culprit) for culprit in culprits)
            if rest is not None:
                open_groups.append(rest)
        groups = open_groups
        remaining = budget.seconds - (time.monotonic() - started)
        room = budget.merges - merges
        if not groups or room <= 0 or remaining <= 0:
            break
        groups.sort(key=lambda group: -len(group.paths))  # when the budget runs short, the most paths first
        probing, waiting = groups[:room], groups[room:]
        probes = [(group, group.probe()) for group in probing]
        commits = list(dict.fromkeys(group.line.commits[probe].oid for group, probe in probes))
        limit = remaining if timeout is None else min(timeout, remaining)
        try:
            merged = git.probe_merges([(tip, commit) for commit in commits], timeout=limit)
        except GitTimeout:
            break  # out of seconds: what is still open is unexplained
        merges += len(commits)
        conflicts = {
            commit: frozenset(conflict.path for conflict in merge.conflicts)
            for commit, merge in zip(commits, merged, strict=True)
        }
        groups = waiting + [
            part for group, probe in probes for part in group.split(probe, conflicts[group.line.commits[probe].oid])
        ]
    ordered = tuple(found[path] for path in paths if path in found)
    return Explanation(ordered, tuple(group.unexplained() for group in groups), merges)


@dataclass(frozen=True)
class PairConflict:
    """Two branches that each merge cleanly with the target but conflict with each other in ``paths``."""

    first: str
    second: str
    paths: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"branches": [self.first, self.second], "paths": list(self.paths)}


class Skipped(enum.Enum):
    """Why pairs of a conflict matrix were not merged: the report says how many for each."""

    LIMIT = "limit"
    MERGE_FAILED = "merge_failed"
    CHANGES_NOT_LISTED = "changes_not_listed"

    def reason(self, pair_limit: int) -> str:
        """Why pairs skipped for this cause were not merged, as the summary and the page say it; ``pair_limit``
        is the limit the matrix used."""
        if self is Skipped.LIMIT:
            return f"beyond the limit of {pair_limit} per target"
        if self is Skipped.MERGE_FAILED:
            return "git failed or timed out merging"
        return "with a branch whose changes git could not list"


@dataclass(frozen=True)
class ConflictMatrix:
    """The pairwise conflicts among one target's branches that would merge cleanly."""

    branches: tuple[str, ...]
    pairs_checked: int
    pair_limit: int  # the pairs it merged at most: the limit its ``Skipped.LIMIT`` count is beyond
    skipped: tuple[tuple[Skipped, int], ...]  # (cause, pairs) for every cause, in ``Skipped``'s order
    conflicts: tuple[PairConflict, ...]

    @property
    def pairs_skipped(self) -> int:
        """The pairs not merged, whatever the cause: with ``pairs_checked``, all pairs whose changes share a path
        (or could not be listed)."""
        return sum(count for _, count in self.skipped)

    def to_dict(self) -> dict[str, Any]:
        return {
            "branches": list(self.branches),
            "pairs_checked": self.pairs_checked,
            "pair_limit": self.pair_limit,
            "pairs_skipped": self.pairs_skipped,
            "pairs_skipped_by_cause": {cause.value: count for cause, count in self.skipped},
            "conflicts": [conflict.to_dict() for conflict in self.conflicts],
        }


def conflict_matrix(git: Git, results: Sequence[BranchResult], *, pair_limit: int = PAIR_LIMIT) -> ConflictMatrix:
    """Which of ``results`` (one target's predicted outcomes) would conflict with each other.

    Candidates are the branches with a predicted new tip that adds changes of their own to the target; a
    pair is merged only when those changes share a path, and at most ``pair_limit`` pairs are merged
    (``PAIR_BATCH`` to a git process). Pairs not merged are counted as skipped, by cause: beyond the limit,
    in a batch git could not merge (in time), or of a branch whose changes git could not list.
    """
    own_paths: dict[str, frozenset[str] | None] = {}  # None: git could not list them, every pair is skipped
    tips: dict[str, str] = {}
    for result in results:
        if result.succeeded and result.new_tip and result.target_commit and result.new_tip != result.target_commit:
            try:
                paths: frozenset[str] | None = frozenset(git.tree_changes(result.target_commit, result.new_tip))
            except GitError as error:  # too slow, or refused: its pairs stay unknown, the others are still merged
                log.warning("conflict matrix: changes of %s not listed: %s", result.branch, error)
                paths = None
            if paths is None or paths:
                own_paths[result.branch], tips[result.branch] = paths, result.new_tip
    listed = {branch: paths for branch, paths in own_paths.items() if paths is not None}
    unlisted = math.comb(len(own_paths), 2) - math.comb(len(listed), 2)
    pairs = ((a, b) for a, b in itertools.combinations(listed, 2) if not listed[a].isdisjoint(listed[b]))
    # the first pair_limit are kept, the rest only counted: n branches that all change one file (a CHANGELOG)
    # make n²/2 pairs, too many to hold
    overlapping = list(itertools.islice(pairs, pair_limit))
    beyond = sum(1 for _ in pairs)
    conflicts, failed = [], 0
    for start in range(0, len(overlapping), PAIR_BATCH):
        batch = overlapping[start : start + PAIR_BATCH]
        try:  # each pair gets the time one merge may take
            merges = git.probe_merges([(tips[a], tips[b]) for a, b in batch], timeout=git.timeout * len(batch))
        except GitError as error:  # too slow, or refused: these pairs stay unknown, the others are still merged
            log.warning("conflict matrix: %s not merged: %s", counted(len(batch), "pair"), error)
            failed += len(batch)
            continue
        for (first, second), merged in zip(batch, merges, strict=True):
            if not merged.clean:
                conflicts.append(PairConflict(first, second, tuple(conflict.path for conflict in merged.conflicts)))
    if beyond:
        log.warning("conflict matrix: %s not merged (limit %d)", counted(beyond, "overlapping pair"), pair_limit)
    skipped = ((Skipped.LIMIT, beyond), (Skipped.MERGE_FAILED, failed), (Skipped.CHANGES_NOT_LISTED, unlisted))
    return ConflictMatrix(tuple(own_paths), len(overlapping) - failed, pair_limit, skipped, tuple(conflicts))


def conflict_matrices(
    git: Git, branches: BranchInput, results: Mapping[str, BranchResult]
) -> dict[str, ConflictMatrix]:
    """``conflict_matrix`` for every target of ``branches``, branches in input order."""
    return {
        group.target: conflict_matrix(git, [results[spec.name] for spec in group.branches if spec.name in results])
        for group in branches.groups
    }
