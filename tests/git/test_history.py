"""The in-memory 'commits brought in' agrees with git rev-list on random histories with merges."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alignment.demo import History
from alignment.git import Git
from alignment.history import HistoryWindow, brought_in

# A history: each new commit names 1 or 2 earlier commits as parents (by index).
HISTORIES = st.integers(min_value=2, max_value=24).flatmap(
    lambda size: st.tuples(
        st.just(size),
        st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 10**6), st.booleans()), min_size=size, max_size=size),
        st.integers(0, size - 1),
        st.integers(0, size - 1),
        st.integers(1, size + 2),
    )
)


def build(directory: Path, size: int, choices: list[tuple[int, int, bool]]) -> tuple[Git, list[str]]:
    history = History()
    marks = [history.commit("c0", "commit 0", {"f": "0\n"})]
    for index in range(1, size):
        first, second, merge = choices[index]
        parents = [marks[first % index]]
        if merge and index > 1 and second % index != first % index:
            parents.append(marks[second % index])
        marks.append(history.commit(f"c{index}", f"commit {index}", {"f": f"{index}\n"}, parents))
    git = Git.init_bare(directory)
    git.fast_import(history.stream())
    oids = [git.resolve_branch(f"c{index}") for index in range(size)]
    return git, [oid for oid in oids if oid]


def rev_list(directory: Path, tip: str, old: str) -> list[str]:
    out = subprocess.run(["git", "--git-dir", str(directory), "rev-list", tip, f"^{old}"], capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    return out.split()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(HISTORIES)
def test_brought_in_equals_rev_list(tmp_path_factory: pytest.TempPathFactory, case: tuple) -> None:  # type: ignore[type-arg]
    size, choices, tip_index, old_index, window_size = case
    directory = tmp_path_factory.mktemp("history") / "repo.git"
    git, oids = build(directory, size, choices)
    try:
        tip, old = oids[tip_index], oids[old_index]
        window = HistoryWindow.from_log(git.history_window(tip, window_size))
        ours = brought_in(window, git.commit_parents, old)
        if ours is not None:  # None means "ask git": always allowed, never wrong
            assert sorted(commit.oid for commit in ours) == sorted(rev_list(directory, tip, old))
        full = brought_in(HistoryWindow.from_log(git.history_window(tip, size)), git.commit_parents, old)
        assert full is not None  # every commit descends from the root, which a full window holds
        assert sorted(commit.oid for commit in full) == sorted(rev_list(directory, tip, old))
        for limit in (1, 2):
            first = brought_in(HistoryWindow.from_log(git.history_window(tip, size)), git.commit_parents, old,
                               limit=limit)  # fmt: skip
            assert first == full[:limit]
    finally:
        git.close()


def test_a_window_that_covers_the_history_always_decides(tmp_path: Path) -> None:
    git, oids = build(tmp_path / "repo.git", 6, [(0, 0, False)] + [(i - 1, 0, False) for i in range(1, 6)])
    try:
        window = HistoryWindow.from_log(git.history_window(oids[5], 10))
        assert [commit.subject for commit in brought_in(window, git.commit_parents, oids[2]) or []] == [
            "commit 5",
            "commit 4",
            "commit 3",
        ]
        assert brought_in(window, git.commit_parents, oids[5]) == []
        shallow = HistoryWindow.from_log(git.history_window(oids[5], 2))
        assert brought_in(shallow, git.commit_parents, oids[1]) is None
        assert brought_in(HistoryWindow.from_log([]), git.commit_parents, oids[1]) is None
    finally:
        git.close()
