"""Which target commits a merge brings in, computed in memory instead of one ``git log`` per branch.

A process reads its target's recent history once (``Git.history_window``: the newest commits in topological
order, with parents, author and subject). For a branch at ``old``, ``brought_in`` answers what
``git rev-list <target> ^old`` would, the way git itself does: walk back from ``old`` through the branch's
own commits until they meet the window, then mark the window in topological order, where a commit's flags
are final once every descendant was seen. When the window cannot tell (the branch forked below it, or has
too many commits of its own), it says so (None) and the caller asks git.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from alignment.model import CommitInfo

_INTERESTING, _UNINTERESTING = 1, 2
_BOTH = _INTERESTING | _UNINTERESTING


@dataclass(frozen=True)
class HistoryWindow:
    """The newest commits of one tip, in topological order (descendants before ancestors)."""

    order: Sequence[str]
    parents: Mapping[str, tuple[str, ...]]
    info: Mapping[str, CommitInfo]

    @classmethod
    def from_log(cls, entries: Sequence[tuple[str, tuple[str, ...], str, str]]) -> HistoryWindow:
        """From ``(oid, parents, author, subject)`` entries, newest first in topological order."""
        return cls(
            order=tuple(entry[0] for entry in entries),
            parents={oid: parents for oid, parents, _, _ in entries},
            info={oid: CommitInfo(oid, author, subject) for oid, _, author, subject in entries},
        )


def brought_in(
    window: HistoryWindow,
    parents_of: Callable[[str], tuple[str, ...]],
    old: str,
    budget: int = 500,
    limit: int | None = None,
) -> list[CommitInfo] | None:
    """Commits reachable from the window's tip but not from ``old``, newest first; None if undecidable.

    ``parents_of`` reads the parents of a commit outside the window (the branch's own commits); at most
    ``budget`` of them are read before giving up. With ``limit``, the walk stops at the first ``limit``
    of them: a commit's flags are final when the walk reaches it, so those are exact without the rest.
    """
    if not window.order:
        return None
    hits = _entry_points(window, parents_of, old, budget)
    if hits is None:
        return None
    flags = dict.fromkeys(hits, _UNINTERESTING)
    tip = window.order[0]
    flags[tip] = flags.get(tip, 0) | _INTERESTING
    pure = int(flags[tip] == _INTERESTING)  # commits marked only interesting and not yet visited
    result: list[CommitInfo] = []
    for commit in window.order:
        if pure == 0:
            return result
        mark = flags.get(commit, 0)
        if mark == _INTERESTING:
            result.append(window.info[commit])
            if len(result) == limit:
                return result
            pure -= 1
        if not mark:
            continue
        for parent in window.parents[commit]:
            if parent not in window.parents:
                if mark == _INTERESTING:
                    return None  # an unmarked path leaves the window: it is too shallow to tell
                continue
            before = flags.get(parent, 0)
            after = before | mark
            if after != before:
                flags[parent] = after
                pure += (after == _INTERESTING) - (before == _INTERESTING)
    return result if pure == 0 else None


def _entry_points(
    window: HistoryWindow, parents_of: Callable[[str], tuple[str, ...]], old: str, budget: int
) -> set[str] | None:
    """The window commits reached first from ``old`` through commits outside the window."""
    hits: set[str] = set()
    seen: set[str] = set()
    stack = [old]
    while stack:
        commit = stack.pop()
        if commit in seen:
            continue
        seen.add(commit)
        if commit in window.parents:
            hits.add(commit)
            continue
        if len(seen) > budget:
            return None
        parents = parents_of(commit)
        if not parents:
            return None  # a root outside the window: the histories meet below it, if at all
        stack.extend(parents)
    return hits
