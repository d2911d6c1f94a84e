"""The git door: discovery, helper processes that die or stall, and odd answers from git."""

from __future__ import annotations

import concurrent.futures
import errno
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

import alignment.git
from alignment import scratch as scratch_module
from alignment.config import Settings
from alignment.errors import (
    GitError,
    GitTimeout,
    ObjectWriteError,
    RefUpdateRejected,
    RepositoryError,
    UnrelatedHistories,
)
from alignment.git import (
    Conflict,
    Git,
    RefUpdate,
    RepoLocation,
    _canonical_mode,
    _git_must_write,
    _parse_tree,
    _Persistent,
    branch_ref,
    driver_files,
)
from alignment.inputs import parse_branches
from alignment.proctree import tree_processes, tree_rss_bytes, tree_sum
from alignment.resources import MemoryGate, SlotLimiter
from alignment.scratch import is_alive, is_scratch, memory_dir, scratch_places
from alignment.session import RunSetup, set_up_run
from tests.conftest import Repo, entry, new_repo
from tests.plugin.test_faults import wait_until


@pytest.fixture
def git(repo: Repo) -> Iterator[Git]:
    door = Git(RepoLocation.discover(repo.path), timeout=10)
    yield door
    door.close()


def test_discovery_accepts_the_top_level_and_the_git_dir(repo: Repo) -> None:
    top = RepoLocation.discover(repo.path)
    assert RepoLocation.discover(repo.path / ".git") == top
    assert top.main_work_tree == repo.path.resolve()


@pytest.mark.parametrize(("relative", "message"), [("missing", "no such directory"), ("sub", "inside the repository")])
def test_discovery_refuses_what_is_not_a_repository_top(repo: Repo, relative: str, message: str) -> None:
    (repo.path / "sub").mkdir()
    with pytest.raises(RepositoryError, match=message):
        RepoLocation.discover(repo.path / relative)


def test_discovery_finds_bare_repositories_and_linked_worktrees(repo: Repo, tmp_path: Path) -> None:
    repo.git("worktree", "add", "-q", str(tmp_path / "linked"), "-b", "side")
    linked = RepoLocation.discover(tmp_path / "linked")
    assert (linked.git_dir, linked.common_dir) == (
        repo.path.resolve() / ".git/worktrees/linked",
        repo.path.resolve() / ".git",
    )
    assert linked.main_work_tree == repo.path.resolve()
    assert RepoLocation.discover(linked.git_dir) == linked
    bare = tmp_path / "bare.git"
    repo.git("clone", "-q", "--bare", str(repo.path), str(bare))
    assert RepoLocation.discover(bare) == RepoLocation(bare.resolve(), bare.resolve(), None)
    subprocess.run(["git", "-C", str(bare), "worktree", "add", "-q", str(tmp_path / "of-bare"), "main"], check=True)
    of_bare = RepoLocation.discover(tmp_path / "of-bare")
    assert (of_bare.common_dir, of_bare.bare) == (bare.resolve(), True)


@pytest.mark.parametrize("bare_repositories", [None, "explicit"])
def test_discovery_refuses_a_bare_repository_of_another_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bare_repositories: str | None
) -> None:
    """git's ownership check, whatever ``safe.bareRepository`` says (``explicit`` would answer first)."""
    Git.init_bare(tmp_path / "other.git").close()
    if bare_repositories is not None:
        config = tmp_path / "global.gitconfig"
        config.write_text(f"[safe]\n\tbareRepository = {bare_repositories}\n")
        monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    monkeypatch.setenv("GIT_TEST_ASSUME_DIFFERENT_OWNER", "1")
    fix = f"git config --global --add safe.directory {(tmp_path / 'other.git').resolve()}"
    with pytest.raises(RepositoryError, match=f"owned by another user.*`{re.escape(fix)}`$"):
        RepoLocation.discover(tmp_path / "other.git")


@pytest.mark.parametrize("setting", ["absolute", "relative"])
def test_a_repository_whose_worktree_core_worktree_sets_is_found_and_run_in_that_worktree(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: str
) -> None:
    """The dotfiles set-up: a bare repository made non-bare with ``core.worktree`` (relative: to the git dir),
    no ``.git`` in that worktree. git runs there for it (its attributes); its ownership is checked in the git
    dir, where git finds it."""
    dot = tmp_path / "config" / "dot.git"
    home = tmp_path / "home"
    home.mkdir()
    repo.git("clone", "-q", "--bare", str(repo.path), str(dot))
    subprocess.run(["git", f"--git-dir={dot}", "config", "core.bare", "false"], check=True)
    worktree = str(home) if setting == "absolute" else "../../home"
    subprocess.run(["git", f"--git-dir={dot}", "config", "core.worktree", worktree], check=True)
    monkeypatch.chdir(repo.path)  # a relative core.worktree does not mean the directory the run is in
    location = RepoLocation.discover(dot)
    assert location == RepoLocation(dot.resolve(), dot.resolve(), home.resolve())
    assert location.run_dir == home.resolve()
    monkeypatch.setenv("GIT_TEST_ASSUME_DIFFERENT_OWNER", "1")
    fix = f"git config --global --add safe.directory {dot.resolve()}"
    with pytest.raises(RepositoryError, match=f"owned by another user.*`{re.escape(fix)}`$"):
        RepoLocation.discover(dot)


def test_a_repository_made_with_a_separate_git_dir_is_found_by_its_git_dir_and_its_worktree(
    tmp_path: Path,
) -> None:
    """``git init --separate-git-dir``: the worktree's ``.git`` file names the git dir, which knows no worktree."""
    git_dir, worktree = tmp_path / "sep.git", tmp_path / "wt"
    subprocess.run(["git", "init", "-q", f"--separate-git-dir={git_dir}", str(worktree)], check=True)
    by_worktree = RepoLocation.discover(worktree)
    assert (by_worktree.git_dir, by_worktree.run_dir) == (git_dir.resolve(), worktree.resolve())
    assert RepoLocation.discover(git_dir).git_dir == git_dir.resolve()


def test_a_dead_helper_is_restarted_on_the_next_request(git: Git, repo: Repo) -> None:
    assert git.resolve_branch("main") == repo.tip("main")
    process = git._objects._helpers[0]._process
    assert process is not None
    process.kill()
    process.wait()
    assert git.resolve_branch("main") == repo.tip("main")
    assert git._objects._helpers[0]._process is not process


def test_threads_do_not_queue_on_one_helper(git: Git, repo: Repo) -> None:
    """A request made while another thread's is in flight gets a helper of its own, and both go back to use."""
    tip = repo.tip("main")
    answered_meanwhile = threading.Event()

    def slow_parse(reader: Any) -> bool:
        other = threading.Thread(target=lambda: git.resolve_branch("main") == tip and answered_meanwhile.set())
        other.start()
        other.join(timeout=20)  # with one shared helper this thread holds it: the other waits until we return
        size = int(reader.read_until(b"\n").split()[2])
        reader.read_exact(size + 1)
        return answered_meanwhile.is_set()

    assert git._objects.request(f"{tip}\n".encode(), slow_parse)
    assert len(git._objects._helpers) == 2
    assert git.resolve_branch("main") == tip
    assert len(git._objects._helpers) == 2  # a free helper is reused, not a third started


def test_a_helper_that_cannot_start_reports_gits_message(git: Git) -> None:
    helper = _Persistent(git, ("cat-file", "--no-such-option"))
    with pytest.raises(GitError, match="cat-file"):
        helper.request(b"HEAD\n", lambda reader: reader.read_until(b"\n"))
    helper.close()


def test_a_stalled_helper_times_out_and_is_killed(repo: Repo) -> None:
    slow = Git(RepoLocation.discover(repo.path), timeout=0.3)
    helper = _Persistent(slow, ("cat-file", "--batch", "--buffer"))  # answers only when its buffer flushes
    with pytest.raises(GitTimeout):
        helper.request(b"HEAD\n", lambda reader: reader.read_until(b"\n"))
    assert helper._process is None
    slow.close()


def test_the_ref_helper_ends_after_its_lifetime_and_a_fresh_one_goes_on(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``update-ref --stdin`` keeps every ref it created: after ``REF_HELPER_LIFETIME`` transactions it ends
    (having committed the last one) and the next transaction starts a fresh process."""
    monkeypatch.setattr(alignment.git, "REF_HELPER_LIFETIME", 3)
    git = Git(RepoLocation.discover(repo.path))
    tip = repo.tip("main")
    running = []
    for number in range(7):
        git.update_refs([RefUpdate(branch_ref(f"copy-{number}"), tip, None)])
        running.append(git._refs._helpers[0]._process)
    assert [process is None for process in running] == [False, False, True, False, False, True, False]
    first, second, third = running[0], running[3], running[6]
    assert first is running[1]
    assert second is running[4]
    assert len({id(first), id(second), id(third)}) == 3
    for ended in (first, second):  # ended once its input closed, its last transaction made (killed after 2 s)
        assert ended is not None
        assert ended.poll() is not None
    assert all(git.resolve_branch(f"copy-{number}") == tip for number in range(7))
    git.close()


def test_no_git_on_path_is_a_clear_error(repo: Repo) -> None:
    without_git = Git(RepoLocation.discover(repo.path), env={"PATH": "/nonexistent"})
    with pytest.raises(RepositoryError, match="git is not installed"):
        without_git.branch_tips()


def test_objects_and_trees(git: Git, repo: Repo) -> None:
    repo.commit("main", {"dir/file.txt": "x\n"})
    assert git.blob_at("main", "dir") is None
    assert git.blob_at("main", "dir/file.txt") is not None
    assert git.read_object("0" * 40) is None
    with pytest.raises(GitError, match="is not a blob"):
        git.read_blob(repo.tip("main"))


@pytest.mark.parametrize("object_format", ["sha1", "sha256"])
def test_entries_are_found_by_walking_trees(tmp_path: Path, object_format: str) -> None:
    path = tmp_path / object_format
    subprocess.run(["git", "init", "-q", "-b", "main", f"--object-format={object_format}", str(path)], check=True)
    repo = Repo(path)
    repo.commit("main", {"dir/sub/file.txt": "x\n", "top.txt": "y\n", "é [*].txt": "z\n"})
    door = Git(RepoLocation.discover(path), timeout=10)
    try:
        paths = ["dir/sub/file.txt", "dir/sub", "top.txt/below", "missing/file", "é [*].txt"]
        entries = door.entries_at(repo.tip("main"), paths)
        assert entries["dir/sub/file.txt"] == ("100644", repo.git("rev-parse", "main:dir/sub/file.txt"))
        assert entries["dir/sub"] == ("40000", repo.git("rev-parse", "main:dir/sub"))
        assert entries["é [*].txt"] == ("100644", repo.git("rev-parse", "main:é [*].txt"))
        assert entries["top.txt/below"] is None
        assert entries["missing/file"] is None
        with pytest.raises(GitError, match="is not a commit"):
            door.entries_at(repo.git("rev-parse", "main^{tree}"), ["top.txt"])
    finally:
        door.close()


def test_tree_changes_agree_with_diff_tree(git: Git, repo: Repo) -> None:
    repo.commit("main", {"keep/a.txt": "a\n", "gone.txt": "g\n", "edit.txt": "1\n", "becomes_dir": "f\n",
                         "becomes_file/x.txt": "x\n", "becomes_file/deep/y.txt": "y\n"})  # fmt: skip
    old = repo.tip("main")
    repo.commit("main", {"gone.txt": None, "edit.txt": "2\n", "becomes_dir": None, "becomes_dir/in.txt": "i\n",
                         "becomes_file/x.txt": None, "becomes_file/deep/y.txt": None, "new/z.txt": "z\n"})  # fmt: skip
    repo.commit("main", {"becomes_file": "now a file\n"})
    new = repo.tip("main")
    fields = repo.git("diff-tree", "-r", "-z", "--no-renames", "--abbrev=64", old, new).split("\0")
    expected: dict[str, tuple[str, str] | None] = {}
    for meta, path in zip(fields[0::2], fields[1::2], strict=False):
        _, mode, _, oid, _ = meta.lstrip(":").split(" ")
        expected[path] = (mode, oid) if oid.strip("0") else None

    assert git.tree_changes(old, new) == expected
    assert set(expected) == {"gone.txt", "edit.txt", "becomes_dir", "becomes_dir/in.txt", "becomes_file",
                             "becomes_file/x.txt", "becomes_file/deep/y.txt", "new/z.txt"}  # fmt: skip
    assert git.tree_changes(new, new) == {}


def _count_object_requests(git: Git, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the round trips to ``git``'s long-lived ``cat-file`` (each request's line count)."""
    requests: list[int] = []
    request = git._objects.request

    def counting(payload: bytes, parse: Any) -> Any:
        requests.append(payload.count(b"\n"))
        return request(payload, parse)

    monkeypatch.setattr(git._objects, "request", counting)
    return requests


@pytest.mark.parametrize("prefetch", [64, 2])
def test_trees_of_one_level_are_read_in_one_round_trip(
    git: Git, repo: Repo, monkeypatch: pytest.MonkeyPatch, prefetch: int
) -> None:
    old = repo.commit("main", {f"{top}/{sub}/f.txt": f"{top}{sub} 1\n" for top in "abc" for sub in "xy"})
    new = repo.commit("main", {f"{top}/{sub}/f.txt": f"{top}{sub} 2\n" for top in "abc" for sub in "xy"})
    monkeypatch.setattr(alignment.git, "PREFETCH", prefetch)
    git.resolve_branch("main")  # the new tip's commit is kept; the old one is read once
    requests = _count_object_requests(git, monkeypatch)
    changes = git.tree_changes(old, new)
    assert sorted(changes) == [f"{top}/{sub}/f.txt" for top in "abc" for sub in "xy"]
    # the old commit, then per level: 2 roots, 6 trees under them, 12 below (cut into requests of ``prefetch``)
    assert requests == ([1, 2, 6, 12] if prefetch == 64 else [1, 2, 2, 2, 2, *[2] * 6])
    requests.clear()
    paths = ["a/x/f.txt", "b/y/f.txt", "c/x/f.txt", "c/x/missing.txt", "a/x/f.txt/not-a-dir", "nowhere/f.txt"]
    entries = git.entries_at(old, paths)
    assert {path: entry[1] for path, entry in entries.items() if entry} == {
        path: repo.git("rev-parse", f"{old}:{path}") for path in paths[:3]
    }
    assert [path for path, entry in entries.items() if entry is None] == paths[3:]
    assert requests == []  # every tree of ``old`` is kept by now


def test_a_walk_whose_level_outgrows_the_kept_trees_still_answers(
    git: Git, repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Trees read for a level may be dropped again before their turn (a level bigger than the bound): they
    are then read one by one."""
    old = repo.commit("main", {f"{top}/f.txt": f"{top} 1\n" for top in "abcd"})
    new = repo.commit("main", {f"{top}/f.txt": f"{top} 2\n" for top in "abcd"})
    for bound in ("ENTRIES", "PARSED"):
        monkeypatch.setattr(git._parsed, bound, 1)
    requests = _count_object_requests(git, monkeypatch)
    assert sorted(git.tree_changes(old, new)) == [f"{top}/f.txt" for top in "abcd"]
    assert 1 in requests[3:]  # after the level's request, trees it dropped again are read alone


def test_entries_at_reads_a_level_of_new_trees_in_one_round_trip(
    git: Git, repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    tip = repo.commit("main", {f"{top}/deep/f.txt": f"{top}\n" for top in "abc"})
    git.resolve_branch("main")
    requests = _count_object_requests(git, monkeypatch)
    entries = git.entries_at(tip, [f"{top}/deep/f.txt" for top in "abc"])
    assert all(entry is not None and entry[0] == "100644" for entry in entries.values())
    assert requests == [1, 3, 3]  # the root, then the three top directories, then the three deep ones


def test_changed_files_of_chosen_paths(git: Git, repo: Repo, monkeypatch: pytest.MonkeyPatch) -> None:
    old = repo.tip("main")
    repo.commit("main", {"a.txt": "1\n2\n", "[a].txt": "new\n", "b.txt": "b\n"})
    new = repo.tip("main")
    chosen = ["[a].txt", "a.txt", "absent.txt"]
    limited = git.changed_files(old, new, chosen)
    assert sorted((change.path, change.status, change.added) for change in limited) == [
        ("[a].txt", "A", 1),
        ("a.txt", "A", 2),
    ]
    assert git.changed_files(old, new, []) == ()
    monkeypatch.setattr("alignment.git.PATHSPEC_BYTES", 1)
    assert sorted(git.changed_files(old, new, chosen), key=lambda change: change.path) == sorted(
        limited, key=lambda change: change.path
    )


def test_branch_relations_read_the_named_branches_only(git: Git, repo: Repo, monkeypatch: pytest.MonkeyPatch) -> None:
    """Of the named branches only: an unnamed one that stands in the relation, a name that is a prefix of
    another, a missing name and names shaped like globs (no branch can hold ``*?[``) add nothing."""
    old = repo.tip("main")
    target = repo.commit("main", {"n.txt": "1\n"})
    for name in ("behind", "behind-too", "behind2"):
        repo.branch(name, old)
    for name in ("ahead", "ahead-too"):
        repo.commit(name, {f"{name}.txt": "a\n"}, parent=target)
    names = ["ahead", "behind", "absent", "a*", "behind-[t]oo", "behind?"]
    for limit, named in ((64 * 1024, 256), (1, 256), (64 * 1024, 0)):  # one call, one a ref, all refs listed
        monkeypatch.setattr("alignment.git.PATHSPEC_BYTES", limit)
        monkeypatch.setattr("alignment.git.NAMED_REFS_AT_MOST", named)
        assert git.branches_containing(target, names) == {"ahead"}
        assert git.branches_merged_into(target, names) == {"behind"}
    assert git.branches_containing(target, []) == frozenset()


def test_commits_between_says_when_there_are_more(git: Git, repo: Repo) -> None:
    base = repo.tip("main")
    for index in range(3):
        repo.commit("main", {"n.txt": f"{index}\n"}, f"commit {index}")
    listed, more = git.commits_between(base, repo.tip("main"), 2)
    assert [commit.subject for commit in listed] == ["commit 2", "commit 1"]
    assert more


def test_compare_and_swap_refuses_a_moved_ref(git: Git, repo: Repo) -> None:
    with pytest.raises(RefUpdateRejected, match="expected"):
        git.update_refs([RefUpdate(branch_ref("main"), repo.tip("main"), "1" * 40)])
    with pytest.raises(RefUpdateRejected):
        git.update_refs([RefUpdate(branch_ref("main"), repo.tip("main"), None)])


def test_a_merge_of_unrelated_histories_raises_its_own_error(git: Git, repo: Repo) -> None:
    orphan = repo.commit("orphan", {"other.txt": "x\n"}, "unrelated root", parents=())
    with pytest.raises(UnrelatedHistories, match="unrelated histories"):
        git.merge_tree(repo.tip("main"), orphan)


def test_a_refused_batch_of_merges_names_its_command(git: Git, repo: Repo) -> None:
    """The batch runs with options of its own (a smaller delta cache): its error still names ``merge-tree``."""
    orphan = repo.commit("orphan", {"other.txt": "x\n"}, "unrelated root", parents=())
    with pytest.raises(GitError, match=r"^git merge-tree --stdin failed: .*unrelated histories"):
        git.merge_trees([(repo.tip("main"), orphan)])


def test_a_git_reason_is_quoted_without_its_fatal_prefix() -> None:
    error = GitError(("update-ref", "--stdin"), 128, "hint: x\nfatal: cannot lock ref 'refs/heads/a'\n")
    assert (error.reason, error.detail) == ("fatal: cannot lock ref 'refs/heads/a'", "cannot lock ref 'refs/heads/a'")


def test_a_shallow_clone_is_known_by_its_marker(git: Git, repo: Repo, tmp_path: Path) -> None:
    assert not git.is_shallow()
    repo.commit("main", {"app.py": "two\n"}, "second")
    clone = tmp_path / "shallow"
    subprocess.run(["git", "clone", "--quiet", "--depth=1", f"file://{repo.path}", str(clone)], check=True)
    shallow = Git(RepoLocation.discover(clone))
    try:
        assert shallow.is_shallow()
    finally:
        shallow.close()


def test_ref_lock_files_are_listed_nested_and_packed(git: Git, repo: Repo) -> None:
    assert git.stale_ref_locks() == []
    common = git.location.common_dir
    (common / "refs" / "heads" / "team").mkdir()
    for lock in ("refs/heads/team/x.lock", "refs/heads/a.lock", "packed-refs.lock", "refs/tags/v1.lock"):
        (common / lock).write_text("")
    assert git.stale_ref_locks() == [
        common / "refs/heads/a.lock",
        common / "refs/heads/team/x.lock",
        common / "packed-refs.lock",
    ]


def test_an_identity_is_written_into_a_new_repository(tmp_path: Path) -> None:
    git = Git.init_bare(tmp_path / "new.git")
    try:
        git.set_identity("Someone", "someone@example.com")
        read = ["git", f"--git-dir={tmp_path / 'new.git'}", "config", "--local", "--get-regexp", "^user\\."]
        assert subprocess.run(read, capture_output=True, text=True, check=True).stdout.splitlines() == [
            "user.name Someone",
            "user.email someone@example.com",
        ]
    finally:
        git.close()


def test_bisecting_a_branch_counts_as_busy(git: Git, repo: Repo) -> None:
    (Path(repo.git("rev-parse", "--absolute-git-dir")) / "BISECT_START").write_text("topic\n")
    assert ("topic", "bisecting") in {(checkout.branch, checkout.state) for checkout in git.checkouts()}


def test_init_bare_reports_failure(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(GitError):
        Git.init_bare(blocker / "repo.git")


def test_slots_bound_concurrency_across_threads(tmp_path: Path) -> None:
    limiter = SlotLimiter(tmp_path / "slots", 1)
    order: list[str] = []
    entered = threading.Event()

    def hold() -> None:
        with limiter.slot():
            entered.set()
            time.sleep(0.2)
            order.append("first released")

    holder = threading.Thread(target=hold)
    holder.start()
    entered.wait()
    with limiter.slot():
        order.append("second entered")
    holder.join()
    assert order == ["first released", "second entered"]


def test_slot_descriptors_are_reused_and_closed(tmp_path: Path) -> None:
    before = set(os.listdir("/proc/self/fd"))
    limiter = SlotLimiter(tmp_path / "slots", 2)

    def use() -> None:
        for _ in range(20):
            with limiter.slot():
                pass

    workers = [threading.Thread(target=use) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    opened = set(os.listdir("/proc/self/fd")) - before
    assert 1 <= len(opened) <= 3 * 2  # one per thread and slot it used, not one per acquisition
    limiter.close()
    assert set(os.listdir("/proc/self/fd")) - before == set()


def test_a_nested_slot_takes_a_slot_of_its_own(tmp_path: Path) -> None:
    limiter, other = SlotLimiter(tmp_path / "slots", 2), SlotLimiter(tmp_path / "slots", 2)
    taken: list[str] = []
    took_one = threading.Event()

    def take_both() -> None:
        with other.slot():
            taken.append("one")
            took_one.set()
            with other.slot():
                taken.append("two")

    with limiter.slot():
        with limiter.slot():
            pass
        taker = threading.Thread(target=take_both)
        taker.start()
        assert took_one.wait(60), "the free slot was not taken"
        taker.join(0.3)  # after its first slot: room for a wrong second one to be taken too
        assert taken == ["one"]  # the inner release left the outer slot held: one slot is free, not two
    taker.join()
    assert taken == ["one", "two"]


@pytest.mark.parametrize(
    ("raw", "mode"),
    [(b"40000", "40000"), (b"040000", "40000"), (b"100644", "100644"), (b"100664", "100644"),
     (b"100775", "100755"), (b"120000", "120000"), (b"160000", "160000")],
)  # fmt: skip
def test_tree_modes_read_as_git_reports_them(raw: bytes, mode: str) -> None:
    assert _canonical_mode(raw) == mode


def test_slots_bound_concurrency_across_processes(tmp_path: Path) -> None:
    marker = tmp_path / "released"
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from alignment.resources import SlotLimiter
        with SlotLimiter(Path({str(tmp_path / "slots")!r}), 1).slot():
            print("held", flush=True)
            time.sleep(0.3)
            Path({str(marker)!r}).write_text("done")
    """)
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) as child:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "held"
        with SlotLimiter(tmp_path / "slots", 1).slot():
            assert marker.exists()


def test_memory_is_sampled_over_the_process_tree() -> None:
    holds = "import sys; x = bytearray(50_000_000); print('allocated', flush=True); sys.stdin.read()"
    with subprocess.Popen(
        [sys.executable, "-c", holds], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline() == "allocated\n"  # however long the interpreter takes to start
            with_child = tree_rss_bytes(os.getpid())
            alone = tree_rss_bytes(child.pid)
            assert with_child is not None
            assert alone is not None
            assert with_child > alone >= 50_000_000
        finally:
            child.kill()
    assert tree_rss_bytes(2**22 + 12345) is None
    gate = MemoryGate(1, interval=0)
    assert gate.allows_start(0)
    assert not gate.allows_start(1)


def test_only_a_process_that_samples_memory_loads_psutil() -> None:
    """xdist workers import the git slots and the plugin, never sample, and so never pay psutil's import."""
    script = textwrap.dedent("""
        import sys
        import alignment.orchestrator, alignment.pipeline, plugins.alignment_plugin
        from alignment.resources import MemoryGate
        print("psutil" in sys.modules)
        MemoryGate(1, interval=0).sample()
        print("psutil" in sys.modules)
    """)
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert loaded.split() == ["False", "True"]


def test_a_process_that_ends_while_it_is_measured_counts_zero() -> None:
    def ended(process: psutil.Process) -> int:
        raise psutil.NoSuchProcess(process.pid)

    assert tree_sum(os.getpid(), ended) == 0


def tree_pids(root_pid: int) -> list[int]:
    processes = tree_processes(root_pid)
    assert processes is not None
    return [process.pid for process in processes]


def test_children_that_hold_no_memory_of_their_own_are_left_out() -> None:
    zombie = subprocess.Popen(["true"])
    script = "import os, time; os.fork() or time.sleep(600); time.sleep(600)"  # both killed below
    copy = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    try:
        deadline = time.monotonic() + 60  # an interpreter may take seconds to start on a busy machine
        while Path(f"/proc/{zombie.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        while len(Path(f"/proc/{copy.pid}/task/{copy.pid}/children").read_text().split()) != 1:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        found = tree_pids(os.getpid())
        assert zombie.pid not in found
        assert copy.pid in found
        assert tree_pids(copy.pid) == [copy.pid]  # its fork runs the same program: the parent's pages
    finally:
        os.killpg(copy.pid, signal.SIGKILL)
        copy.wait()
        zombie.wait()


def test_a_repository_without_a_committer_identity_is_refused_up_front(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("EMAIL", "")
    branches = parse_branches({"branches": [entry("x")]}, "t")
    with pytest.raises(RepositoryError, match=r"set user\.name and user\.email"):
        set_up_run(Settings(), branches, repo.path, reports_dir=tmp_path / "r")
    repo.git("config", "user.name", "Someone")
    repo.git("config", "user.email", "someone@example.com")
    set_up_run(Settings(), branches, repo.path, reports_dir=tmp_path / "r").discard_scratch()


def test_commits_are_written_exactly_as_git_commit_tree_writes_them(git: Git, repo: Repo) -> None:
    tree = repo.git("rev-parse", "main^{tree}")
    first = repo.tip("main")
    second = repo.commit("other", {"o.txt": "o\n"}, parent=first)
    message = "Merge branch 'x' into y\n\nAligned-By: test\n"
    ours = git.commit_tree(tree, [first, second], message)
    theirs = repo.git("commit-tree", tree, "-p", first, "-p", second, input=message)
    assert ours == theirs


def test_a_shorter_commit_after_a_longer_one_is_written_exactly(git: Git, repo: Repo) -> None:
    tree = repo.git("rev-parse", "main^{tree}")
    for message in ("a long first message\n\nwith a body that the next one lacks\n", "short\n"):
        ours = git.commit_tree(tree, [repo.tip("main")], message)
        assert ours == repo.git("commit-tree", tree, "-p", repo.tip("main"), input=message)


def _loose(repo: Repo, oid: str) -> Path:
    return repo.path / ".git" / "objects" / oid[:2] / oid[2:]


def test_a_commit_is_written_as_git_writes_a_loose_object(git: Git, repo: Repo) -> None:
    """No process: git reads it back, ``fsck --strict`` is clean, its file has the mode of one git writes (0444
    less the umask), and no temporary file is left beside it."""
    commit = git.commit_tree(repo.git("rev-parse", "main^{tree}"), [repo.tip("main")], "written here\n")
    written_by_git = repo.git("hash-object", "-w", "--stdin", input="a blob git writes\n")
    assert repo.git("log", "-1", "--format=%s", commit) == "written here"
    repo.git("fsck", "--strict", "--no-dangling")
    assert stat.S_IMODE(_loose(repo, commit).stat().st_mode) == stat.S_IMODE(
        _loose(repo, written_by_git).stat().st_mode
    )
    assert not list((repo.path / ".git" / "objects").glob("*/tmp_obj_*"))


def test_a_commit_already_there_is_freshened_not_written_again(git: Git, repo: Repo) -> None:
    """As git does: a prune that looks at modification times keeps it, and the file itself stays as it was."""
    tree, tip = repo.git("rev-parse", "main^{tree}"), repo.tip("main")
    commit = git.commit_tree(tree, [tip], "twice\n")
    os.utime(_loose(repo, commit), (1_000_000, 1_000_000))
    inode = _loose(repo, commit).stat().st_ino
    assert git.commit_tree(tree, [tip], "twice\n") == commit
    assert _loose(repo, commit).stat().st_ino == inode
    assert _loose(repo, commit).stat().st_mtime > 1_000_000


def test_a_commit_written_by_another_at_the_same_moment_is_taken_as_it_is(
    git: Git, repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other writer's link wins; ours finds the name taken, leaves that file alone and removes its own."""
    tree, tip = repo.git("rev-parse", "main^{tree}"), repo.tip("main")
    commit = git.commit_tree(tree, [tip], "raced\n")
    inode = _loose(repo, commit).stat().st_ino

    def not_there_yet(path: Path, *args: Any) -> None:
        raise FileNotFoundError(path)

    monkeypatch.setattr(os, "utime", not_there_yet)
    assert git.commit_tree(tree, [tip], "raced\n") == commit
    assert _loose(repo, commit).stat().st_ino == inode
    assert not list((repo.path / ".git" / "objects").glob("*/tmp_obj_*"))


def _temporary_files_opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ``tmp_obj_*`` files ``os.open`` is asked for from now on."""
    opened: list[str] = []
    real_open = os.open

    def spying_open(path: str | Path, flags: int, mode: int = 0o777) -> int:
        if Path(path).name.startswith("tmp_obj_"):
            opened.append(str(path))
        return real_open(path, flags, mode)

    monkeypatch.setattr(os, "open", spying_open)
    return opened


def _time_not_settable(monkeypatch: pytest.MonkeyPatch) -> None:
    def not_permitted(path: Path, *args: Any) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(os, "utime", not_permitted)


def test_a_commit_there_as_another_user_s_file_is_taken_as_it_is(
    git: Git, repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its time cannot be set (not ours): the object is there all the same, and nothing is written again."""
    tree, tip = repo.git("rev-parse", "main^{tree}"), repo.tip("main")
    commit = git.commit_tree(tree, [tip], "someone else's\n")
    _time_not_settable(monkeypatch)
    opened = _temporary_files_opened(monkeypatch)
    assert git.commit_tree(tree, [tip], "someone else's\n") == commit
    assert opened == []


def test_a_commit_whose_time_cannot_be_set_because_it_is_missing_is_written(
    git: Git, repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``utime`` says "permission denied" also for a missing file in a folder that may not be searched: only
    a commit that is there counts as written."""
    _time_not_settable(monkeypatch)
    commit = git.commit_tree(repo.git("rev-parse", "main^{tree}"), [repo.tip("main")], "not there yet\n")
    assert repo.git("cat-file", "-t", commit) == "commit"


def test_a_commit_that_cannot_be_written_names_the_object_directory_and_why(
    git: Git, repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = os.open

    def disk_full(path: str | Path, flags: int, mode: int = 0o777) -> int:
        if Path(path).name.startswith("tmp_obj_"):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_open(path, flags, mode)

    monkeypatch.setattr(os, "open", disk_full)
    objects = (repo.path / ".git" / "objects").resolve()
    with pytest.raises(ObjectWriteError, match=f"cannot write a commit into {objects}: No space left on device"):
        git.commit_tree(repo.git("rev-parse", "main^{tree}"), [repo.tip("main")], "no room\n")


@pytest.mark.parametrize(
    ("setting", "value"),
    [("core.fsync", "loose-object"), ("core.fsyncObjectFiles", "true"), ("core.sharedRepository", "all")],
)
def test_settings_that_ask_more_of_a_loose_object_have_git_write_the_commit(
    repo: Repo, monkeypatch: pytest.MonkeyPatch, setting: str, value: str
) -> None:
    """Synced to disk, readable by others: git writes it, as the repository's owner asked of git."""
    repo.git("config", setting, value)
    opened = _temporary_files_opened(monkeypatch)
    door = Git(RepoLocation.discover(repo.path), timeout=10)
    try:
        commit = door.commit_tree(repo.git("rev-parse", "main^{tree}"), [repo.tip("main")], "by git\n")
    finally:
        door.close()
    assert repo.git("cat-file", "-t", commit) == "commit"
    assert opened == []


def test_on_a_file_system_without_hard_links_the_commit_is_renamed_into_place(
    git: Git, repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(source: Path, target: Path) -> None:
        raise OSError(errno.EPERM, "hard links not supported", str(target))

    monkeypatch.setattr(os, "link", no_links)
    commit = git.commit_tree(repo.git("rev-parse", "main^{tree}"), [repo.tip("main")], "renamed\n")
    assert repo.git("log", "-1", "--format=%s", commit) == "renamed"
    assert not list((repo.path / ".git" / "objects").glob("*/tmp_obj_*"))


def test_in_a_repository_shared_with_a_group_a_commit_gets_git_s_permissions(repo: Repo) -> None:
    """``core.sharedRepository=group`` under a umask of 077: git gives its files 0440, not 0400."""
    repo.git("config", "core.sharedRepository", "group")
    mask = os.umask(0o077)
    try:
        door = Git(RepoLocation.discover(repo.path), timeout=10)
        try:
            commit = door.commit_tree(repo.git("rev-parse", "main^{tree}"), [repo.tip("main")], "shared\n")
        finally:
            door.close()
    finally:
        os.umask(mask)
    assert stat.S_IMODE(_loose(repo, commit).stat().st_mode) == 0o440


@pytest.mark.parametrize(
    ("printed", "git_writes"),
    [
        *[(b"", False), (b"core.sharedrepository umask\n", False), (b"core.sharedrepository Off\n", False)],
        *[(b"core.sharedrepository 000\n", False), (b"core.fsync none\n", False)],
        *[(b"core.fsyncobjectfiles false\n", False), (b"core.sharedrepository\n", True)],
        *[(b"core.sharedrepository group\n", True), (b"core.sharedrepository 0660\n", True)],
        *[(b"core.sharedrepository 1\n", True), (b"core.fsync committed\n", True)],
        *[(b"core.fsync -loose-object\n", True), (b"extensions.compatobjectformat sha256\n", True)],
        *[(b"core.sharedrepository umask\ncore.fsyncobjectfiles true\n", True)],
    ],
)
def test_which_settings_have_git_write_the_commits(printed: bytes, git_writes: bool) -> None:
    """What is not plainly "no" counts as a yes: git is slower, never wrong."""
    assert _git_must_write(printed) is git_writes


def test_commits_in_a_sha256_repository_are_named_by_sha256(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", "--object-format=sha256", str(tmp_path / "r")], check=True)
    repo = Repo(tmp_path / "r")
    tip = repo.commit("main", {"a.txt": "a\n"})
    tree = repo.git("rev-parse", "main^{tree}")
    door = Git(RepoLocation.discover(repo.path), timeout=10)
    try:
        ours = door.commit_tree(tree, [tip], "sha256\n")
    finally:
        door.close()
    assert len(ours) == 64
    assert ours == repo.git("commit-tree", tree, "-p", tip, input="sha256\n")


def test_object_ids_given_to_update_ref_are_not_looked_up_as_ref_names(git: Git, repo: Repo) -> None:
    """The ambiguity check costs a third of ``update-ref``'s system calls; an id always means the object."""
    tip = repo.tip("main")
    repo.git("update-ref", f"refs/heads/{tip}", repo.commit("decoy", {"d.txt": "d\n"}, parent=tip))
    git.update_refs([RefUpdate(branch_ref("copy"), tip, None)])
    assert git.resolve_branch("copy") == tip
    process = git._refs._helpers[0]._process
    assert process is not None
    assert b"core.warnAmbiguousRefs=false" in Path(f"/proc/{process.pid}/cmdline").read_bytes().split(b"\0")


def test_commit_time_is_now_unless_git_fixes_it(repo: Repo, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GIT_COMMITTER_DATE")
    monkeypatch.delenv("GIT_AUTHOR_DATE")
    door = Git(RepoLocation.discover(repo.path))
    try:
        before = int(time.time())
        commit = door.commit_tree(repo.git("rev-parse", "main^{tree}"), [repo.tip("main")], "now\n")
    finally:
        door.close()
    stamp = int(repo.git("log", "-1", "--format=%ct", commit))
    assert before <= stamp <= int(time.time())
    assert repo.git("log", "-1", "--format=%an <%ae>", commit) == "Test Author <author@example.com>"


def _forget_object(repo: Repo, oid: str) -> None:
    """Remove a loose object from the repository, so that only what a ``Git`` kept can still answer for it."""
    (repo.path / ".git" / "objects" / oid[:2] / oid[2:]).unlink()


def test_trees_read_once_are_kept_for_later_calls(git: Git, repo: Repo) -> None:
    tip = repo.tip("main")
    first = git.entries_at(tip, ["app.py"])
    for oid in (tip, repo.git("rev-parse", "main^{tree}")):
        _forget_object(repo, oid)
    git._objects.close()  # a fresh cat-file: nothing kept on git's side
    assert git.entries_at(tip, ["app.py"]) == first
    fresh = Git(RepoLocation.discover(repo.path), timeout=10)
    try:
        with pytest.raises(GitError, match="is not a commit"):
            fresh.entries_at(tip, ["app.py"])
    finally:
        fresh.close()


def test_a_branch_tip_read_once_is_not_read_again_for_its_tree_or_parents(git: Git, repo: Repo) -> None:
    """``resolve_ref`` gets the whole commit from ``cat-file``: its branch's later reads need no round trip."""
    parent = repo.tip("main")
    tip = repo.commit("main", {"more.py": "M = 1\n"})
    assert git.resolve_branch("main") == tip
    _forget_object(repo, tip)
    git._objects.close()  # a fresh cat-file: nothing kept on git's side
    assert git.commit_parents(tip) == (parent,)
    assert git.entries_at(tip, ["more.py"])["more.py"] is not None
    merge = git.commit_tree(repo.git("rev-parse", f"{parent}^{{tree}}"), [tip, parent], "written here\n")
    _forget_object(repo, merge)
    assert git.commit_parents(merge) == (tip, parent)
    never_read = repo.commit("other", {"later.py": "L = 1\n"}, parent=parent)
    _forget_object(repo, never_read)
    with pytest.raises(GitError, match="is not a commit"):
        git.commit_parents(never_read)


@pytest.mark.parametrize("bounds", [("ROOTS",), ("ENTRIES", "PARSED")])
def test_kept_trees_are_bounded_least_recently_used_first(
    git: Git, repo: Repo, monkeypatch: pytest.MonkeyPatch, bounds: tuple[str, ...]
) -> None:
    old = repo.tip("main")
    old_tree = repo.git("rev-parse", "main^{tree}")
    new = repo.commit("main", {"other.py": "X = 1\n"})
    for bound in bounds:
        monkeypatch.setattr(git._parsed, bound, 1)
    git.entries_at(old, ["app.py"])
    git.entries_at(new, ["app.py"])  # pushes out the old commit's tree (ENTRIES) or its root (ROOTS)
    _forget_object(repo, old if bounds == ("ROOTS",) else old_tree)
    git._objects.close()
    with pytest.raises(GitError, match="is not a"):
        git.entries_at(old, ["app.py"])


def test_a_tree_objects_entries_are_split_whatever_their_names_and_ids_hold() -> None:
    """Names may hold spaces, raw ids any byte (a NUL, a space, a digit); a cut tree is refused, not misread."""
    oid = bytes([0, 32, 48, 55]) * 5
    content = b"100644 a b.txt\0" + oid + b"40000 dir\0" + oid[::-1] + b"100664 old\0" + oid
    assert _parse_tree(content, 20) == {
        "a b.txt": ("100644", oid.hex()),
        "dir": ("40000", oid[::-1].hex()),
        "old": ("100644", oid.hex()),  # as git reads an old tree's mode
    }
    assert _parse_tree(b"", 20) == {}
    with pytest.raises(ValueError, match="not a tree"):
        _parse_tree(content[:-1], 20)


def test_a_kept_tree_no_longer_parsed_is_parsed_again_without_asking_git(
    git: Git, repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past ``PARSED`` entries a tree is kept only as git stores it: asked for again, it is parsed again."""
    old = repo.commit("main", {"a/f.txt": "a 1\n", "b/g.txt": "b 1\n"})
    new = repo.commit("main", {"a/f.txt": "a 2\n", "b/g.txt": "b 2\n"})
    monkeypatch.setattr(git._parsed, "PARSED", 1)
    expected = git.entries_at(old, ["a/f.txt", "b/g.txt"])
    git.entries_at(new, ["a/f.txt", "b/g.txt"])  # the old commit's trees are no longer parsed
    assert len(git._parsed._trees) == 1
    assert len(git._parsed._stored) > 3
    requests = _count_object_requests(git, monkeypatch)
    assert git.entries_at(old, ["a/f.txt", "b/g.txt"]) == expected
    assert git.tree_changes(old, new) == git.entries_at(new, ["a/f.txt", "b/g.txt"])
    assert requests == []


def _objects_directory(repo: Repo) -> Path:
    return Path(repo.git("rev-parse", "--path-format=absolute", "--git-path", "objects"))


def _loose_objects(repo: Repo) -> set[str]:
    return {f"{path.parent.name}{path.name}" for path in _objects_directory(repo).glob("[0-9a-f][0-9a-f]/*")}


def _object_files_since(repo: Repo, before: set[str]) -> list[Path]:
    return [_objects_directory(repo) / oid[:2] / oid[2:] for oid in sorted(_loose_objects(repo) - before)]


def _diverged(repo: Repo) -> list[tuple[str, str]]:
    """Two merges: one that conflicts in ``app.py``, one clean that adds a file."""
    base = repo.tip("main")
    target = repo.commit("main", {"app.py": "def main():\n    return 2\n", "notes.txt": "target\n"})
    ours = repo.commit("ours", {"app.py": "def main():\n    return 3\n"}, parent=base)
    clean = repo.commit("clean", {"new.txt": "new\n"}, parent=base)
    return [(ours, target), (clean, target)]


def test_probe_merges_answer_as_merges_do_and_leave_no_object_behind(git: Git, repo: Repo) -> None:
    pairs = _diverged(repo)
    before = _loose_objects(repo)
    probed = git.probe_merges(pairs)
    assert _loose_objects(repo) == before  # their objects went to a throwaway directory
    assert git._probes is not None
    assert not [path for path in git._probes.iterdir() if path.is_dir()], "a probe's objects were kept"
    merged = git.merge_trees(pairs)
    assert _loose_objects(repo) > before  # a real merge keeps what it wrote
    assert probed == merged
    assert [merge.clean for merge in probed] == [False, True]
    assert [conflict.path for conflict in probed[0].conflicts] == ["app.py"]


def _repetitive_conflict(repo: Repo) -> list[tuple[str, str]]:
    """A merge whose conflicted file (written with its markers) compresses well: zlib shrinks it at any level
    above 0."""
    lines = "".join(f"line {number}\n" for number in range(400))
    base = repo.commit("main", {"long.txt": f"{lines}end\n"})
    target = repo.commit("main", {"long.txt": f"{lines}target\n"})
    ours = repo.commit("ours", {"long.txt": f"{lines}ours\n"}, parent=base)
    return [(ours, target)]


def _written_as_zlib_stores(objects: Iterable[Path]) -> list[bool]:
    """Per loose object file: whether zlib stored it as it is (the file is larger than the object): all of them
    at level 0; at level 1, those that do not compress (small trees), and not the conflicted file."""
    return [len(data) > len(zlib.decompress(data)) for data in (path.read_bytes() for path in objects)]


def test_probe_objects_are_written_uncompressed_since_they_are_deleted_unread(
    git: Git, repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored: list[bool] = []
    remove = shutil.rmtree

    def look_then_remove(path: str, *args: Any, **kwargs: Any) -> None:
        stored.extend(_written_as_zlib_stores(Path(path).glob("[0-9a-f][0-9a-f]/*")))
        remove(path, *args, **kwargs)

    monkeypatch.setattr(shutil, "rmtree", look_then_remove)
    assert [merge.clean for merge in git.probe_merges(_repetitive_conflict(repo))] == [False]
    assert stored
    assert all(stored)  # the conflicted file and the trees above it


def test_merges_that_are_kept_are_written_compressed(git: Git, repo: Repo) -> None:
    pairs = _repetitive_conflict(repo) + _diverged(repo)
    before = _loose_objects(repo)
    git.merge_trees(pairs)
    stored = _written_as_zlib_stores(_object_files_since(repo, before))
    assert not all(stored)  # the conflicted file shrank (and some file was written)


def test_probe_objects_live_in_a_held_scratch_directory_removed_on_close(repo: Repo) -> None:
    git = Git(RepoLocation.discover(repo.path), timeout=10)
    git.probe_merges(_diverged(repo))
    probes = git._probes
    assert probes is not None
    assert probes.parent == memory_dir()
    assert is_scratch(probes)
    assert is_alive(probes)
    assert sorted(path.name for path in probes.iterdir()) == [".alignment-scratch", "alive"]
    git.close()
    assert not probes.exists()


def test_probes_find_the_objects_of_a_repository_whose_path_needs_quoting(tmp_path: Path) -> None:
    path = tmp_path / 'odd:name "quoted"\\ \u00e9'
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    odd = Repo(path)
    odd.commit("main", {"app.py": "def main():\n    return 1\n"}, "initial")
    git = Git(RepoLocation.discover(path), timeout=10)
    try:
        assert [merge.clean for merge in git.probe_merges(_diverged(odd))] == [False, True]
    finally:
        git.close()


@pytest.mark.parametrize(
    ("free", "error", "expected"),
    [(2 << 30, None, "/dev/shm"), (64 << 20, None, "temporary"), (2 << 30, OSError, "temporary")],
)
def test_throwaway_files_go_to_memory_only_where_there_is_room(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, free: int, error: type[OSError] | None, expected: str
) -> None:
    def statvfs(path: object) -> os.statvfs_result:
        if error is not None:
            raise error("no such directory")
        return os.statvfs_result((4096, 4096, 0, 0, free // 4096, 0, 0, 0, 0, 255))

    monkeypatch.setattr(os, "statvfs", statvfs)
    monkeypatch.setattr(os, "access", lambda path, mode: True)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert memory_dir() == (Path("/dev/shm") if expected == "/dev/shm" else tmp_path)


def test_a_probe_that_fails_before_it_starts_leaves_no_directory_behind(
    git: Git, repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_answer(*args: Any, **kwargs: Any) -> None:
        raise GitError(("rev-parse",), 128, "fatal: no answer")

    monkeypatch.setattr(git, "_run", no_answer)
    with pytest.raises(GitError, match="no answer"):
        git.probe_merges(_diverged(repo))
    assert git._probes is None


def test_probes_write_into_the_repository_when_no_throwaway_directory_can_be_made(
    git: Git, repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_room(*args: object) -> Path:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(alignment.git, "create_scratch", no_room)
    pairs = _repetitive_conflict(repo) + _diverged(repo)
    before = _loose_objects(repo)
    assert [merge.clean for merge in git.probe_merges(pairs)] == [False, False, True]
    stored = _written_as_zlib_stores(_object_files_since(repo, before))
    assert not all(stored)  # the conflicted file shrank: compressed, as any merge's


def test_the_sweep_looks_in_shared_memory_even_when_it_has_no_room_for_new_directories(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    shared = tmp_path / "shm"
    shared.mkdir()
    monkeypatch.setattr(scratch_module, "SHARED_MEMORY", shared)
    monkeypatch.setattr(scratch_module, "MEMORY_ROOM", 1 << 62)  # no room: new directories go elsewhere
    assert memory_dir() != shared
    assert shared in scratch_places()


def test_a_path_limited_line_that_brings_nothing_or_reaches_a_root_commit(git: Git, repo: Repo) -> None:
    """The first-parent line by path ends where the branch's history begins: nowhere when the line has no
    commit of its own, at the root when the histories are unrelated (every commit that changed the path)."""
    base = repo.tip("main")
    step = repo.commit("main", {"app.py": "x = 1\n"}, "main step")
    assert git.first_parent_line(step, base, ["app.py"]) == ()
    first = repo.commit("orphan", {"app.py": "x = 2\n"}, "unrelated root")
    second = repo.commit("orphan", {"other.txt": "y\n"}, "unrelated step")
    third = repo.commit("orphan", {"app.py": "x = 3\n"}, "unrelated change")
    line = git.first_parent_line(step, third, ["app.py"])
    assert [(commit.oid, sorted(changed)) for commit, changed in line] == [(first, ["app.py"]), (third, ["app.py"])]
    assert [commit.oid for commit, _ in git.first_parent_line(step, third)] == [first, second, third]


def _commit_entry(repo: Repo, branch: str, parent: str, path: str, mode: str, oid: str) -> str:
    """Commit on ``branch``, on top of ``parent``, ``path`` as an entry of ``mode`` pointing at ``oid`` (a
    symlink, a gitlink: entries ``Repo.commit`` does not write)."""
    index = repo.path.parent / ".entry-index"
    env = {"GIT_INDEX_FILE": str(index)}
    try:
        repo.git("read-tree", parent, env=env)
        repo.git("update-index", "--add", "--cacheinfo", f"{mode},{oid},{path}", env=env)
        tree = repo.git("write-tree", env=env)
    finally:
        index.unlink(missing_ok=True)
    commit = repo.git("commit-tree", tree, "-p", parent, input="entry")
    repo.git("update-ref", branch_ref(branch), commit)
    return commit


MERGES = {
    "merge_tree": lambda git, pairs: tuple(git.merge_tree(ours, theirs) for ours, theirs in pairs),
    "merge_trees": Git.merge_trees,
    "probe_merges": Git.probe_merges,
}


@pytest.mark.parametrize("merge", MERGES)
@pytest.mark.parametrize("linked", [False, True], ids=["main-worktree", "linked-worktree"])
def test_merges_follow_the_merge_attributes_of_the_repository_not_of_the_directory_the_run_is_in(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, merge: str, linked: bool
) -> None:
    """As ``git merge`` there: ``merge=union`` merges both sides' new lines, ``merge=binary`` refuses a merge
    text would make. They are read from the worktree the repository was given as (a linked one has its own
    checkout); the run's own directory says the opposite and must not count."""
    attributes = "union.txt merge=union\nbin.dat merge=binary\n"
    base = repo.commit("main", {".gitattributes": attributes, "union.txt": "u1\n", "bin.dat": "b1\nb2\nb3\nb4\n"})
    union = repo.commit("union", {"union.txt": "u1\nbranch\n"}, parent=base)
    binary = repo.commit("binary", {"bin.dat": "b1\nb2\nb3\nb4 branch\n"}, parent=base)
    target = repo.commit("main", {"union.txt": "u1\nmain\n", "bin.dat": "b1 main\nb2\nb3\nb4\n"})
    if linked:  # the main worktree keeps its first checkout, without the attributes
        repo.git("worktree", "add", "-q", "--detach", str(tmp_path / "linked"), "main")
    else:
        repo.git("reset", "-q", "--hard", "main")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / ".gitattributes").write_text("union.txt merge=binary\nbin.dat merge=union\n")
    monkeypatch.chdir(elsewhere)
    door = Git(RepoLocation.discover(tmp_path / "linked" if linked else repo.path), timeout=10)
    try:
        merged = MERGES[merge](door, [(union, target), (binary, target)])
    finally:
        door.close()
    assert [result.conflicts for result in merged] == [(), (Conflict("bin.dat", "binary"),)]


def drivers_run(repo: Repo, tmp_path: Path, **drivers: str) -> tuple[RunSetup, dict[str, tuple[str, str]]]:
    """A run set up in ``repo`` whose ``.gitattributes`` gives ``<name>.txt`` the merge driver ``<name>`` that
    runs the command of ``drivers``; for each, the pair whose merge runs that driver."""
    for name, command in drivers.items():
        repo.git("config", f"merge.{name}.driver", command)
    attributes = "".join(f"{name}.txt merge={name}\n" for name in drivers)
    base = repo.commit("main", {".gitattributes": attributes, **{f"{name}.txt": "1\n" for name in drivers}})
    branches = {name: repo.commit(name, {f"{name}.txt": "branch\n"}, parent=base) for name in drivers}
    target = repo.commit("main", {f"{name}.txt": "main\n" for name in drivers})
    repo.git("reset", "-q", "--hard", "main")
    (repo.path / ".merge_file_mine").write_text("yours\n")  # the user's, there before the run
    setup = set_up_run(Settings(), parse_branches({"branches": [entry("slow")]}, "t"), repo.path, reports_dir=tmp_path)
    return setup, {name: (branch, target) for name, branch in branches.items()}


@pytest.mark.parametrize("merge", MERGES)
def test_a_merge_killed_while_a_driver_runs_leaves_no_driver_file_in_the_worktree_after_the_run(
    repo: Repo, tmp_path: Path, merge: str
) -> None:
    """git writes a driver's three files (``.merge_file_XXXXXX``) where it runs, the worktree, and deletes them
    when the driver returns: killed mid-driver (a timeout), it cannot. The run's end removes those that
    appeared since its set-up; a file of that name that was there before stays."""
    setup, pairs = drivers_run(repo, tmp_path, slow="sleep 30")
    door = Git(setup.location, timeout=1, killed_merges=setup.killed_merges)
    try:
        with pytest.raises(GitTimeout):
            MERGES[merge](door, [pairs["slow"]])
    finally:
        door.close()
    assert len(driver_files(repo.path)) == 4  # left by the killed merge until the run ends
    setup.discard_scratch()
    assert repo.status() == "?? .merge_file_mine"


def test_a_killed_merge_removes_no_file_of_a_merge_running_beside_it(repo: Repo, tmp_path: Path) -> None:
    """Other merges run in the same directory (the run's threads and workers, the user's ``git merge``): the
    files their drivers read are not removed while they run, only at the run's end (those of a merge that
    ended by itself are gone by then)."""
    setup, pairs = drivers_run(repo, tmp_path, slow="sleep 30", late="sleep 3; cat %B > %A")
    killed = Git(setup.location, timeout=1, killed_merges=setup.killed_merges)
    beside = Git(setup.location)
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            timeout = pool.submit(killed.merge_tree, *pairs["slow"])
            wait_until(
                lambda: len(driver_files(repo.path)) == 4
            )  # the killed merge's driver runs: then the other starts
            merged = beside.merge_tree(*pairs["late"])
            with pytest.raises(GitTimeout):
                timeout.result()
    finally:
        killed.close()
        beside.close()
    setup.discard_scratch()
    assert merged.conflicts == ()
    assert repo.status() == "?? .merge_file_mine"


def test_a_run_that_killed_no_merge_removes_no_driver_file(repo: Repo, tmp_path: Path) -> None:
    """Without a killed merge, the run's end removes nothing: a driver's file that appeared meanwhile is of a
    merge that still runs (the user's, another run's)."""
    setup, _ = drivers_run(repo, tmp_path, slow="sleep 30")
    (repo.path / ".merge_file_theirs").write_text("a side\n")
    setup.discard_scratch()
    assert sorted(driver_files(repo.path)) == [".merge_file_mine", ".merge_file_theirs"]


def test_a_run_without_a_merge_driver_looks_for_no_driver_file(repo: Repo, tmp_path: Path) -> None:
    """Only a merge driver writes ``.merge_file_*`` files: without one configured, the run neither records
    them nor has its merges note a kill."""
    setup = set_up_run(Settings(), parse_branches({"branches": [entry("x")]}, "t"), repo.path, reports_dir=tmp_path)
    setup.discard_scratch()
    assert (setup.driver_files, setup.killed_merges) == (None, None)


def test_a_submodule_whose_repository_is_in_the_worktree_is_merged_as_git_merge_does(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gitlink the target moved to a commit the branch's contains is fast-forwarded: git finds the
    submodule's repository at ``sm/.git`` of the worktree (a clone added as a submodule), not of the
    directory the run is in."""
    sub = new_repo(tmp_path / "sub")
    first = sub.tip("main")
    second = sub.commit("main", {"a": "2\n"})
    third = sub.commit("main", {"a": "3\n"})
    subprocess.run(["git", "clone", "-q", str(sub.path), str(repo.path / "sm")], check=True)
    gitmodules = f'[submodule "sm"]\n\tpath = sm\n\turl = {sub.path}\n'
    base = _commit_entry(repo, "main", repo.commit("main", {".gitmodules": gitmodules}), "sm", "160000", first)
    target = _commit_entry(repo, "main", base, "sm", "160000", second)
    branch = _commit_entry(repo, "smff", base, "sm", "160000", third)
    monkeypatch.chdir(tmp_path)
    door = Git(RepoLocation.discover(repo.path), timeout=10)
    try:
        merged = door.merge_tree(branch, target)
        assert merged.clean
        assert door.entries_at(door.commit_tree(merged.tree, [branch, target], "merge"), ["sm"])["sm"] == (
            "160000",
            third,
        )
    finally:
        door.close()


def test_a_file_symlink_conflict_is_named_by_its_real_path(git: Git, repo: Repo) -> None:
    """git records one side as ``plainfile~<commit>``, a path neither side has: that name was the conflict's."""
    base = repo.commit("main", {"target.txt": "t\n", "plainfile": "plain\n"})
    link = repo.git("hash-object", "-w", "--stdin", input="target.txt")
    target = _commit_entry(repo, "main", base, "plainfile", "120000", link)
    branch = repo.commit("symconf", {"plainfile": "changed\n"}, parent=base)
    for ours, theirs in ((branch, target), (target, branch)):
        assert git.merge_tree(ours, theirs).conflicts == (Conflict("plainfile", "distinct modes"),)
