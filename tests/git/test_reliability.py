"""Nothing lost under concurrency, odd names and odd repositories; what a dead run leaves is cleaned up;
and any run can be undone."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from alignment import housekeeping
from alignment.cli import main as cli
from alignment.components import BranchContext, Integration
from alignment.config import Settings
from alignment.detect import ChangeErrorDetector
from alignment.document import MarkdownDocGenerator
from alignment.errors import RepositoryError, UsageProblem
from alignment.git import Git, RefUpdate, RepoLocation
from alignment.inputs import BranchInput
from alignment.integrate import MergeOrRebaseIntegrator
from alignment.journal import Move, MoveJournal, Outcome, restore
from alignment.model import Status
from alignment.orchestrator import BranchAlignmentOrchestrator
from alignment.registry import Components
from alignment.runs import RunFolder
from alignment.scratch import create_scratch, is_alive, memory_dir, release
from alignment.session import set_up_run
from alignment.undo import undo_run
from tests.conftest import Aligner, Repo, entry, settings, write_input
from tests.remotes import make_origin

CONFIG = Settings()


def topics(repo: Repo, count: int, target: str = "main") -> dict[str, str]:
    base = repo.tip(target)
    olds = {f"topic-{i}": repo.commit(f"topic-{i}", {f"t{i}.txt": f"{i}\n"}, parent=base) for i in range(count)}
    repo.commit(target, {f"{target}-new.txt": "n\n"})
    return olds


def orchestrate(
    repo: Repo, tmp_path: Path, names: list[str], config: Settings | None = None, components: Components | None = None
) -> dict[str, object]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = write_input(tmp_path / "in.json", [entry(name) for name in names])
    return BranchAlignmentOrchestrator(config, components=components, reports_dir=tmp_path / "reports").run(
        path, repo.path
    )


# -- undo --------------------------------------------------------------------------------------------------


def test_undo_puts_back_every_branch_a_run_moved(
    repo: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    olds = topics(repo, 3)
    run_id = str(orchestrate(repo, tmp_path, list(olds))["run_id"])
    moved = {name: repo.tip(name) for name in olds}
    assert all(moved[name] != olds[name] for name in olds)

    assert cli(["undo", run_id, "--reports-dir", str(tmp_path / "reports"), "--dry-run"]) == 0
    assert "would restore 'topic-0'" in capsys.readouterr().out
    assert {name: repo.tip(name) for name in olds} == moved

    assert cli(["undo", run_id, "--reports-dir", str(tmp_path / "reports")]) == 0
    out = capsys.readouterr().out
    assert f"       ok  restored 'topic-0' to its old tip {olds['topic-0']}" in out.splitlines()
    assert "restored 3, unchanged 0, refused 0 of 3 moved branches" in out
    assert {name: repo.tip(name) for name in olds} == olds
    assert cli(["runs", "--reports-dir", str(tmp_path / "reports")]) == 0
    assert f"{run_id}  3 ok, 0 failed, 0 not run; 0 branches moved, 3 undone  " in capsys.readouterr().out
    assert cli(["undo", run_id, "--reports-dir", str(tmp_path / "reports")]) == 0
    again = capsys.readouterr().out
    assert f"unchanged  'topic-0' is at its old tip {olds['topic-0']}" in again.splitlines()
    assert "restored 0, unchanged 3" in again
    assert cli(["runs", "--reports-dir", str(tmp_path / "reports")]) == 0
    assert "; 0 branches moved, 3 undone  " in capsys.readouterr().out  # undone once, counted once
    rows = [row.split() for row in (out + again).splitlines() if not row.startswith("run ")]
    assert all(len(set(words)) == len(words) for words in rows)  # each row says each word once
    audit = (tmp_path / "reports" / "runs" / run_id / "audit.jsonl").read_text().splitlines()
    assert json.loads(audit[-1])["event"] == "undo"


def test_undo_puts_back_the_run_it_names_not_another(repo: Repo, tmp_path: Path) -> None:
    """Two runs, each moving its own branch: `alignment undo X` puts back X's move only, whichever run is
    the newer one (undoing both, in turn, catches a pick of the newest run under any order of run ids)."""
    olds = {name: repo.commit(name, {f"{name}.txt": "x\n"}, parent=repo.tip("main")) for name in ("one", "two")}
    repo.commit("main", {"m.txt": "m\n"})
    runs = {name: str(orchestrate(repo, tmp_path, [name])["run_id"]) for name in olds}
    moved = {name: repo.tip(name) for name in olds}
    assert moved["one"] != olds["one"]
    assert moved["two"] != olds["two"]
    reports = str(tmp_path / "reports")
    assert cli(["undo", runs["one"], "--reports-dir", reports]) == 0
    assert (repo.tip("one"), repo.tip("two")) == (olds["one"], moved["two"])
    assert cli(["undo", runs["two"], "--reports-dir", reports]) == 0
    assert (repo.tip("one"), repo.tip("two")) == (olds["one"], olds["two"])
    for name, run_id in runs.items():  # the reflog says which run's undo put it back
        assert repo.git("reflog", "show", "-1", "--format=%gs", name) == f"branch-alignment run {run_id}: undone"


def test_undo_refuses_a_branch_moved_again_deleted_or_checked_out(repo: Repo, tmp_path: Path) -> None:
    olds = topics(repo, 4)
    run_id = str(orchestrate(repo, tmp_path, list(olds))["run_id"])
    again = repo.commit("topic-0", {"later.txt": "later\n"})
    repo.git("worktree", "add", "-q", str(tmp_path / "wt"), "topic-1")
    repo.git("branch", "-D", "topic-3")
    report = undo_run(tmp_path / "reports", run_id)
    outcomes = {item.move.branch: (item.outcome, item.message) for item in report.restorations}
    assert outcomes == {
        "topic-0": (Outcome.MOVED_SINCE, f"'topic-0' moved again since (now at {again}); left as it is"),
        "topic-1": (Outcome.CHECKED_OUT, f"'topic-1' is checked out in the worktree at {tmp_path / 'wt'}; not touched"),
        "topic-2": (Outcome.RESTORED, f"restored 'topic-2' to its old tip {olds['topic-2']}"),
        "topic-3": (
            Outcome.MOVED_SINCE,
            "'topic-3' does not exist now (deleted since, or not in this repository); not recreated",
        ),
    }
    assert repo.tip("topic-0") == again
    assert repo.tip("topic-2") == olds["topic-2"]
    assert not repo.exists("topic-3")
    assert cli(["undo", run_id, "--reports-dir", str(tmp_path / "reports")]) == 1


def test_undo_leaves_a_checked_out_branch_at_its_old_tip_unchanged(
    repo: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A branch already back at its old tip needs no move, so its checkout does not matter: `unchanged`,
    exit 0, for the branch checked out in the main worktree or in a linked one."""
    olds = topics(repo, 2)
    run_id = str(orchestrate(repo, tmp_path, list(olds))["run_id"])
    reports = str(tmp_path / "reports")
    assert cli(["undo", run_id, "--reports-dir", reports]) == 0
    repo.git("checkout", "-q", "topic-0")
    repo.git("worktree", "add", "-q", str(tmp_path / "wt"), "topic-1")
    capsys.readouterr()
    for dry_run in ([], ["--dry-run"]):
        assert cli(["undo", run_id, "--reports-dir", reports, *dry_run]) == 0
        out = capsys.readouterr().out.splitlines()
        assert out[:2] == [f"unchanged  '{name}' is at its old tip {olds[name]}" for name in olds], out
        assert "unchanged 2, refused 0 of 2 moved branches" in out[2]
    assert {name: repo.tip(name) for name in olds} == olds


def test_undo_and_runs_count_the_same_moves_when_the_run_put_one_back_itself(
    repo: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A move the run put back (an interrupted branch's teardown, the controller after Ctrl-C) is none of its
    moves for `alignment runs`, and so for undo: not listed, not counted, not refused when moved since."""
    olds = topics(repo, 2)
    run_id = str(orchestrate(repo, tmp_path, list(olds))["run_id"])
    folder = RunFolder(tmp_path / "reports", run_id)
    journal = MoveJournal(folder.moves_dir)
    git = Git(RepoLocation.discover(repo.path))
    try:
        move = journal.get("topic-0")
        assert move is not None
        assert restore(git, move, journal=journal).outcome is Outcome.RESTORED  # as the run's teardown does
    finally:
        git.close()
    repo.commit("topic-0", {"theirs.txt": "x\n"})  # someone works on it since
    reports = str(tmp_path / "reports")
    capsys.readouterr()
    assert cli(["runs", "--reports-dir", reports]) == 0
    assert "; 1 branch moved  " in capsys.readouterr().out
    assert cli(["undo", run_id, "--reports-dir", reports, "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"    ready  would restore 'topic-1' to {olds['topic-1']}",
        f"run {run_id}: would restore 1, unchanged 0, refused 0 of 1 moved branch in {repo.path}",
    ]


class MovesItBeforeTheSwap(Git):
    """Someone commits to ``branch`` after undo read it, just before its compare-and-swap."""

    def __init__(self, repo: Repo, branch: str) -> None:
        super().__init__(RepoLocation.discover(repo.path))
        self.repo, self.branch = repo, branch

    def update_refs(self, updates: Sequence[RefUpdate]) -> None:
        self.repo.commit(self.branch, {"theirs.txt": "theirs\n"})
        super().update_refs(updates)


def test_a_restore_keeps_a_commit_made_after_it_read_the_branch(repo: Repo) -> None:
    """Putting a branch back is a compare-and-swap from the tip the run gave it, not a plain set: a commit
    made between undo's read and its update stays."""
    old = repo.tip("main")
    moved = repo.commit("topic", {"t.txt": "t\n"}, parent=old)
    git = MovesItBeforeTheSwap(repo, "topic")
    try:
        restoration = restore(git, Move("topic", old, moved))
    finally:
        git.close()
    assert restoration.outcome is Outcome.FAILED
    assert repo.git("rev-parse", "topic^") == moved


KILLED_RIGHT_AFTER_THE_MOVE = """
import os, sys
from alignment.git import Git
from alignment.orchestrator import BranchAlignmentOrchestrator

update_refs = Git.update_refs

def killed_once_git_moved_the_branch(self, updates):
    update_refs(self, updates)
    if any(update.ref == "refs/heads/topic-0" and update.old is not None for update in updates):
        os._exit(9)  # as a SIGKILL would: git made the move, nothing after it runs

Git.update_refs = killed_once_git_moved_the_branch
BranchAlignmentOrchestrator(reports_dir=sys.argv[1]).run(sys.argv[2], sys.argv[3])
"""


def test_a_process_killed_right_after_git_moved_a_branch_leaves_the_move_in_the_journal(
    repo: Repo, tmp_path: Path
) -> None:
    """The move is journaled before it is made: a process killed the instant git committed it leaves a
    journal from which the next run counts it and undo puts it back."""
    olds = topics(repo, 1)
    path = write_input(tmp_path / "in.json", [entry("topic-0")])
    script = [sys.executable, "-c", KILLED_RIGHT_AFTER_THE_MOVE, str(tmp_path / "reports"), str(path), str(repo.path)]
    assert subprocess.run(script, check=False).returncode == 9
    assert repo.tip("topic-0") != olds["topic-0"]
    [run] = (tmp_path / "reports" / "runs").iterdir()
    setup = set_up_run(Settings(), BranchInput("t", ()), repo.path, reports_dir=tmp_path / "reports")
    setup.discard_scratch()
    assert any(f"run {run.name} did not finish; it moved 1 branch" in note for note in setup.housekeeping)
    assert [item.outcome for item in undo_run(tmp_path / "reports", run.name).restorations] == [Outcome.RESTORED]
    assert repo.tip("topic-0") == olds["topic-0"]


class AnotherRunMovesItFirst(MergeOrRebaseIntegrator):
    """A concurrent run wins the race: it moves the branch to the very merge this run computes (fixed dates
    make the two commits identical), before this run's compare-and-swap."""

    def integrate(self, context: BranchContext) -> Integration:
        integration = super().integrate(context)
        other = Git(context.git.location)
        try:
            other.update_refs([RefUpdate(f"refs/heads/{context.branch}", integration.new_tip, context.old_tip)])
        finally:
            other.close()
        return integration


def test_a_rejected_move_is_journaled_as_such_and_never_undone(
    repo: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    olds = topics(repo, 1)
    components = Components(AnotherRunMovesItFirst(CONFIG), ChangeErrorDetector(CONFIG), MarkdownDocGenerator(CONFIG))
    result = orchestrate(repo, tmp_path, list(olds), components=components)
    branch = result["orchestration_results"]["main"]["branches"][0]  # type: ignore[index]
    assert branch["errors_detected"] == ["branch_moved"]
    theirs = repo.tip("topic-0")
    assert cli(["runs", "--reports-dir", str(tmp_path / "reports")]) == 0
    assert "0 ok, 1 failed, 0 not run; 0 branches moved" in capsys.readouterr().out
    assert cli(["undo", str(result["run_id"]), "--reports-dir", str(tmp_path / "reports")]) == 0
    assert "restored 0, unchanged 0, refused 0 of 0 moved branches" in capsys.readouterr().out
    assert repo.tip("topic-0") == theirs  # the winner's move stays


def test_undo_of_an_unknown_run_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(UsageProblem, match="no such run"):
        undo_run(tmp_path, "20260101T000000Z-000000")
    assert cli(["undo", "nope", "--reports-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_runs_are_listed(repo: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    olds = topics(repo, 2)
    run_id = orchestrate(repo, tmp_path, list(olds))["run_id"]
    assert cli(["runs", "--reports-dir", str(tmp_path / "reports")]) == 0
    assert f"{run_id}  2 ok, 0 failed, 0 not run; 2 branches moved" in capsys.readouterr().out
    (tmp_path / "reports" / "runs" / str(run_id) / "alignment_results.json").unlink()
    as_module = subprocess.run(
        [sys.executable, "-m", "alignment", "runs", "--reports-dir", str(tmp_path / "reports")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert f"{run_id}  did not finish; 2 branches moved" in as_module.stdout


# -- what a dead run leaves behind ----------------------------------------------------------------------------


def test_a_dead_runs_worktrees_are_removed_and_locks_reported(repo: Repo, tmp_path: Path) -> None:
    (tmp_path / "tmp").mkdir()
    dead = create_scratch("20260101T000000Z-abcdef", tmp_path / "tmp")
    alive = create_scratch("20260101T000000Z-123456", tmp_path / "tmp")
    release(dead)  # its owner is gone
    for scratch in (dead, alive):
        (scratch / "worktrees").mkdir()
        repo.git("worktree", "add", "-q", "--detach", str(scratch / "worktrees" / "wt-1"), "main")
    lock = repo.path / ".git" / "refs" / "heads" / "stuck.lock"
    lock.write_text("")
    try:
        git = Git(RepoLocation.discover(repo.path))
        notes = housekeeping.sweep(git, [tmp_path / "tmp"])
        git.close()
    finally:
        release(alive)
    assert any("removed worktree" in note and str(dead) in note for note in notes)
    assert any("stuck.lock" in note for note in notes)
    assert not dead.exists()
    assert (alive / "worktrees" / "wt-1").exists()
    listed = repo.git("worktree", "list")
    assert str(dead) not in listed
    assert str(alive) in listed
    assert lock.exists()


def test_a_run_in_another_repository_leaves_a_dead_scratch_whose_worktree_is_still_registered(
    repo: Repo, tmp_path: Path
) -> None:
    """Runs of different repositories share the temporary directory: the other repository's run must not
    delete the folder of a worktree still registered here (the entry would stay, prunable, for ever)."""
    (tmp_path / "tmp").mkdir()
    dead = create_scratch("20260101T000000Z-abcdef", tmp_path / "tmp")
    release(dead)
    (dead / "worktrees").mkdir()
    repo.git("worktree", "add", "-q", "--detach", str(dead / "worktrees" / "wt-1"), "main")
    other = tmp_path / "other"
    subprocess.run(["git", "init", "-q", "-b", "main", str(other)], check=True)
    for path in (other, repo.path):
        git = Git(RepoLocation.discover(path))
        try:
            housekeeping.sweep(git, [tmp_path / "tmp"])
        finally:
            git.close()
        if path == other:
            assert (dead / "worktrees" / "wt-1").exists()  # still registered in repo: left for repo's next run
    assert not dead.exists()
    assert len(repo.git("worktree", "list").splitlines()) == 1


def test_probe_objects_of_a_killed_process_are_removed_by_the_next_run(repo: Repo) -> None:
    """A process killed while it probed merges leaves their objects in memory (``scratch.memory_dir``): the
    next run's sweep looks there too, and leaves a live process's alone."""
    dead = create_scratch("probes-1", memory_dir())
    (dead / "tmpabc" / "ab").mkdir(parents=True)
    release(dead)
    live = create_scratch("probes-2", memory_dir())
    git = Git(RepoLocation.discover(repo.path))
    try:
        housekeeping.sweep(git)
        assert not dead.exists()
        assert live.exists()
    finally:
        git.close()
        release(live)
        shutil.rmtree(live)
        shutil.rmtree(dead, ignore_errors=True)


def test_two_runs_probing_one_dead_run_at_once_both_see_it_dead(tmp_path: Path) -> None:
    dead = create_scratch("20260101T000000Z-abcdef", tmp_path)
    release(dead)
    descriptor = os.open(dead / "alive", os.O_RDWR)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)  # another run's probe, at this very moment
        assert not is_alive(dead)
    finally:
        os.close(descriptor)
    live = create_scratch("20260101T000000Z-123456", tmp_path)
    try:
        assert is_alive(live)
    finally:
        release(live)


def test_a_users_worktree_named_like_a_scratch_directory_is_never_touched(repo: Repo, tmp_path: Path) -> None:
    """Only a worktree inside a scratch directory this tool marked is ever removed, never one on its name."""
    folder = tmp_path / "tmp" / "alignment-20260101T000000Z-abcdef-mywork"
    nested = tmp_path / "tmp" / "alignment-20260101T000000Z-abcdef-x" / "worktrees" / "wt-1"
    (folder.parent).mkdir(parents=True)
    for worktree in (folder, nested):
        repo.git("worktree", "add", "-q", "--detach", str(worktree), "main")
        (worktree / "unsaved.txt").write_text("uncommitted work\n")
    (nested.parent.parent / "alive").write_text("")  # no lock held: a name and an unlocked file prove nothing
    git = Git(RepoLocation.discover(repo.path))
    try:
        notes = housekeeping.sweep(git, [tmp_path / "tmp"])
    finally:
        git.close()
    assert notes == ()
    for worktree in (folder, nested):
        assert (worktree / "unsaved.txt").read_text() == "uncommitted work\n"
        assert str(worktree) in repo.git("worktree", "list")


def test_an_unfinished_run_is_pointed_out_with_its_undo_command(repo: Repo, tmp_path: Path) -> None:
    olds = topics(repo, 2)
    run_id = str(orchestrate(repo, tmp_path, list(olds))["run_id"])
    (tmp_path / "reports" / "runs" / run_id / "alignment_results.json").unlink()  # as if the controller died
    setup = set_up_run(Settings(), BranchInput("t", ()), repo.path, reports_dir=tmp_path / "reports")
    setup.discard_scratch()
    assert any(f"run {run_id} did not finish; it moved 2 branches" in note for note in setup.housekeeping)
    assert undo_run(tmp_path / "reports", run_id).refused == ()
    assert {name: repo.tip(name) for name in olds} == olds


def test_a_plan_that_died_is_not_pointed_out_as_a_run_to_undo(repo: Repo, tmp_path: Path) -> None:
    path = write_input(tmp_path / "in.json", [entry(name) for name in topics(repo, 2)])
    run_id = str(BranchAlignmentOrchestrator(reports_dir=tmp_path / "reports").plan(path, repo.path)["run_id"])
    (tmp_path / "reports" / "runs" / run_id / "alignment_plan.json").unlink()  # as if the controller died
    setup = set_up_run(Settings(), BranchInput("t", ()), repo.path, reports_dir=tmp_path / "reports")
    setup.discard_scratch()
    assert not [note for note in setup.housekeeping if run_id in note]


# -- concurrency ---------------------------------------------------------------------------------------------


class MovesTheTarget(MergeOrRebaseIntegrator):
    """Before the first branch integrates, someone pushes a new commit to the target."""

    def __init__(self, repo: Repo) -> None:
        super().__init__(CONFIG)
        self.repo = repo
        self.moved_to = ""

    def integrate(self, context: BranchContext) -> Integration:
        if not self.moved_to:
            self.moved_to = self.repo.commit("main", {"pushed.txt": "mid-run\n"})
        return super().integrate(context)


def test_every_branch_of_a_target_uses_the_same_target_commit(repo: Repo, tmp_path: Path) -> None:
    olds = topics(repo, 4)
    pinned = repo.tip("main")
    mover = MovesTheTarget(repo)
    components = Components(mover, ChangeErrorDetector(CONFIG), MarkdownDocGenerator(CONFIG))
    result = orchestrate(repo, tmp_path, list(olds), settings(max_workers_per_target=2), components)
    branches = result["orchestration_results"]["main"]["branches"]  # type: ignore[index]
    assert {branch["target_commit"] for branch in branches} == {pinned}
    assert mover.moved_to != pinned
    for name in olds:
        assert repo.git("rev-parse", f"{name}^2") == pinned


# -- names ----------------------------------------------------------------------------------------------------

ODD_NAMES = ["ünïcode/分支", "a/b", "a-b", "a%2Fb", "x" * 200, "with@at", "dots.in.name", "x/HEAD", "UPPER/lower"]


def test_odd_but_valid_names_each_get_their_own_result_and_files(repo: Repo, tmp_path: Path) -> None:
    base = repo.tip("main")
    olds = {name: repo.commit(name, {"f.txt": name + "\n"}, parent=base) for name in ODD_NAMES}
    repo.commit("main", {"m.txt": "m\n"})
    write_input(tmp_path / "in.json", [])
    before = _files_outside(tmp_path, {"reports", "repo"})
    result = orchestrate(repo, tmp_path, ODD_NAMES)
    branches = {b["branch_name"]: b for b in result["orchestration_results"]["main"]["branches"]}  # type: ignore[index]
    assert {name: branch["status"] for name, branch in branches.items()} == dict.fromkeys(ODD_NAMES, "completed")
    documents = {Path(branch["changes_summary"]) for branch in branches.values()}
    assert len(documents) == len(ODD_NAMES)
    reports = (tmp_path / "reports").resolve()
    assert all(reports in document.resolve().parents for document in documents)
    assert _files_outside(tmp_path, {"reports", "repo"}) == before
    for name in ODD_NAMES:
        assert repo.git("rev-parse", f"refs/heads/{name}^1") == olds[name]


def _files_outside(root: Path, skipped: set[str]) -> set[Path]:
    return {path for path in root.rglob("*") if path.relative_to(root).parts[0] not in skipped}


@pytest.mark.parametrize("name", ["-rf", "--help", "with space", "a..b", "x@{1}", "trailing/", "x.lock"])
def test_names_git_refuses_are_input_errors_that_change_nothing(repo: Repo, tmp_path: Path, name: str) -> None:
    refs = repo.git("for-each-ref")
    path = write_input(tmp_path / "in.json", [entry("fine"), entry(name)])
    with pytest.raises(UsageProblem) as raised:
        BranchAlignmentOrchestrator(reports_dir=tmp_path / "reports").run(path, repo.path)
    assert "branches[1].branch_name" in str(raised.value)
    assert "\n" not in str(raised.value)
    assert repo.git("for-each-ref") == refs


# -- odd repositories -----------------------------------------------------------------------------------------


def test_a_shallow_clone_is_refused(repo: Repo, tmp_path: Path) -> None:
    repo.commit("main", {"more.txt": "x\n"})
    clone = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{repo.path}", str(clone)], check=True)
    with pytest.raises(RepositoryError, match="shallow clone"):
        set_up_run(Settings(), BranchInput("t", ()), clone, reports_dir=tmp_path / "r")


def test_a_held_commit_graph_lock_only_skips_the_cache(
    repo: Repo, align: Aligner, caplog: pytest.LogCaptureFixture
) -> None:
    """``git gc``, ``git maintenance`` or another run starting at the same moment holds the lock of git's
    commit-graph cache while it writes it: the run aligns without the cache and notes it in its log."""
    caplog.set_level(logging.INFO, logger="alignment")
    topics(repo, 1)
    repo.commit("main", {"main.txt": "moved on\n"})
    info = repo.path / ".git" / "objects" / "info"
    (info / "commit-graph.lock").touch()

    result = align("topic-0")["topic-0"]

    assert result.status is Status.COMPLETED
    assert repo.tip("topic-0") == result.new_tip
    assert sorted(path.name for path in info.iterdir()) == ["commit-graph.lock"]  # the holder's, untouched
    assert any(message.startswith("commit-graph cache not written") for message in caplog.messages)


def test_a_merge_in_progress_in_the_users_worktree_is_left_as_it_is(repo: Repo, tmp_path: Path) -> None:
    repo.commit("mine", {"app.py": "mine\n"}, parent=repo.tip("main"))
    repo.commit("theirs", {"app.py": "theirs\n"}, parent=repo.tip("main"))
    olds = topics(repo, 2)  # main moves on: aligning "mine" would move it
    repo.git("checkout", "-q", "-f", "mine")
    subprocess.run(["git", "-C", str(repo.path), "merge", "-q", "theirs"], capture_output=True, check=False)
    status = repo.status()
    assert (repo.path / ".git" / "MERGE_HEAD").exists()
    result = orchestrate(repo, tmp_path, [*olds, "mine"])
    statuses = {b["branch_name"]: b["status"] for b in result["orchestration_results"]["main"]["branches"]}  # type: ignore[index]
    assert statuses == {"topic-0": "completed", "topic-1": "completed", "mine": "failed_integration"}
    assert repo.status() == status
    assert (repo.path / ".git" / "MERGE_HEAD").exists()


def test_a_detached_head_is_fine(repo: Repo, tmp_path: Path) -> None:
    olds = topics(repo, 2)
    repo.git("checkout", "-q", "--detach", "main")
    result = orchestrate(repo, tmp_path, list(olds))
    assert result["overall_summary"]["total_successful"] == 2  # type: ignore[index]


def test_sha256_repositories(tmp_path: Path) -> None:
    path = tmp_path / "sha256"
    subprocess.run(["git", "init", "-q", "-b", "main", "--object-format=sha256", str(path)], check=True)
    repo = Repo(path)
    repo.commit("main", {"app.py": "A = 1\n"}, "initial")
    olds = topics(repo, 2)
    for config in (None, settings(integration_strategy="rebase")):
        result = orchestrate(repo, tmp_path / ("rebase" if config else "merge"), list(olds), config)
        branches = result["orchestration_results"]["main"]["branches"]  # type: ignore[index]
        assert [branch["status"] for branch in branches] == ["completed", "completed"]
        assert all(len(branch["new_tip"]) == 64 for branch in branches)


def test_user_hooks_never_run_and_config_is_never_written(repo: Repo, tmp_path: Path) -> None:
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    marker = tmp_path / "hook-ran"
    for hook in (
        "reference-transaction",
        "post-checkout",
        "pre-rebase",
        "post-rewrite",
        "pre-commit",
        "commit-msg",
        "post-commit",
        "post-merge",
        "pre-auto-gc",
        "fsmonitor",  # not a hook by name: core.fsmonitor names it, below
    ):
        script = hooks / hook
        script.write_text(f"#!/bin/sh\necho {hook} >> {marker}\n")
        script.chmod(0o755)
    olds = topics(repo, 2)
    repo.git("config", "core.hooksPath", str(hooks))  # after the setup, which runs git itself
    repo.git("config", "core.fsmonitor", str(hooks / "fsmonitor"))  # run by worktree checkouts unless turned off
    config_before = repo.git("config", "--list", "--local")
    check = ["python3", "-c", "pass"]
    orchestrate(repo, tmp_path / "merge", list(olds), settings(check_commands=[check]))
    orchestrate(repo, tmp_path / "rebase", list(olds), settings(integration_strategy="rebase"))
    assert not marker.exists(), marker.read_text()
    assert repo.git("config", "--list", "--local") == config_before


@pytest.mark.parametrize("strategy", ["merge", "rebase"])
def test_commits_are_never_signed_even_when_the_repository_asks_for_it(
    repo: Repo, tmp_path: Path, strategy: str
) -> None:
    """README: merge commits are written unsigned whatever ``commit.gpgSign`` says (a rebase writes commits
    through git, which would sign them and, with this failing signer, fail)."""
    olds = topics(repo, 2)
    repo.git("config", "commit.gpgSign", "true")
    repo.git("config", "gpg.program", "false")
    result = orchestrate(repo, tmp_path, list(olds), settings(integration_strategy=strategy))
    assert result["overall_summary"]["total_failed"] == 0  # type: ignore[index]
    for name, old in olds.items():
        new = repo.tip(name)
        assert new != old
        assert "gpgsig" not in repo.git("cat-file", "commit", new)


def test_rerere_is_never_used_even_when_the_repository_enables_it(repo: Repo, tmp_path: Path) -> None:
    repo.git("config", "rerere.enabled", "true")
    repo.commit("clash", {"app.py": "mine\n"}, parent=repo.tip("main"))
    repo.commit("main", {"app.py": "theirs\n"})
    result = orchestrate(repo, tmp_path, ["clash"], settings(integration_strategy="rebase"))
    assert result["overall_summary"]["total_failed"] == 1  # type: ignore[index]
    assert not (repo.path / ".git" / "rr-cache").exists()


def test_check_command_status_does_not_leave_worktrees(repo: Repo, tmp_path: Path) -> None:
    olds = topics(repo, 3)
    orchestrate(repo, tmp_path, list(olds), settings(check_commands=[["false"]]))
    assert len(repo.git("worktree", "list").splitlines()) == 1
    assert not list((repo.path / ".git").glob("worktrees/*"))


def test_run_records_its_repository_for_undo(repo: Repo, tmp_path: Path) -> None:
    olds = topics(repo, 1)
    run_id = orchestrate(repo, tmp_path, list(olds))["run_id"]
    record = json.loads((tmp_path / "reports" / "runs" / str(run_id) / "run.json").read_text())
    assert record["repository"] == str((repo.path / ".git").resolve())
    assert record["run_dir"] == str(repo.path.resolve())  # where undo works, as the run did


@pytest.mark.parametrize(("then", "now"), [("removed", "gone"), ("a plain folder", "no repository undo can use now")])
def test_a_run_through_a_linked_worktree_is_undone_after_the_worktree_is_removed(
    repo: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str], then: str, now: str
) -> None:
    """The worktree the run went through is removed (a folder of that name may be there again, no repository
    now): undo works in the common git dir the run's record names, and says so."""
    olds = topics(repo, 2)
    repo.git("worktree", "add", "-q", "--detach", str(tmp_path / "linked"), "main")
    path = write_input(tmp_path / "in.json", [entry(name) for name in olds])
    run_id = BranchAlignmentOrchestrator(reports_dir=tmp_path / "reports").run(path, tmp_path / "linked")["run_id"]
    assert all(repo.tip(name) != old for name, old in olds.items())
    repo.git("worktree", "remove", "--force", str(tmp_path / "linked"))
    if then == "a plain folder":
        (tmp_path / "linked").mkdir()
    assert cli(["undo", str(run_id), "--reports-dir", str(tmp_path / "reports")]) == 0
    said = capsys.readouterr()
    assert "restored 2, unchanged 0, refused 0 of 2 moved branches" in said.out
    linked, common = tmp_path.resolve() / "linked", (repo.path / ".git").resolve()
    assert said.err == f"note: {linked}, where run {run_id} worked, is {now}: undoing in {common}\n"
    assert {name: repo.tip(name) for name in olds} == olds


@pytest.mark.parametrize("remote_in", ["a relative URL", "config.worktree"])
def test_undo_of_a_remote_run_through_a_linked_worktree_pushes_back_where_the_run_pushed(
    repo: Repo, tmp_path: Path, remote_in: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Undo works from where the run worked (its record's ``run_dir``): a relative remote URL means another
    repository from the main worktree (which once said "restored 0, unchanged 3" and left the remote aligned),
    and a remote of the worktree's own ``config.worktree`` does not exist there."""
    origin = make_origin(repo, tmp_path)
    linked = tmp_path / "deep" / "linked"
    origin.clone.git("worktree", "add", "-q", "--detach", str(linked))
    pushed_to = Repo(tmp_path / "deep" / "remote.git")
    shutil.copytree(origin.bare.path, pushed_to.path)  # ../remote.git from the worktree
    if remote_in == "a relative URL":
        origin.clone.git("remote", "set-url", "origin", "../remote.git")  # from the clone: tmp_path/remote.git
    else:
        origin.clone.git("config", "extensions.worktreeConfig", "true")
        Repo(linked).git("config", "--worktree", "remote.mine.url", str(pushed_to.path))
    remote = "origin" if remote_in == "a relative URL" else "mine"
    path = write_input(tmp_path / "in.json", [entry(name) for name in origin.olds])
    orchestrator = BranchAlignmentOrchestrator({"orchestration": {"remote": remote}}, reports_dir=tmp_path / "r")
    run_id = str(orchestrator.run(path, linked)["run_id"])
    assert all(pushed_to.tip(name) != old for name, old in origin.olds.items())
    assert cli(["undo", run_id, "--reports-dir", str(tmp_path / "r")]) == 0
    assert f"restored 3, unchanged 0, refused 0 of 3 moved branches in {linked.resolve()}\n" in capsys.readouterr().out
    assert {name: pushed_to.tip(name) for name in origin.olds} == origin.olds


def run_through_a_worktree_of_another_user(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *trusted: Path
) -> tuple[dict[str, str], Path, Path, str]:
    """A run of two branches through a linked worktree, every repository another user's and ``safe.directory``
    trusting the worktree and ``trusted``: the branches' old tips, the worktree, the global config, the run's id."""
    olds = topics(repo, 2)
    linked = tmp_path / "linked"
    repo.git("worktree", "add", "-q", "--detach", str(linked), "main")
    config = tmp_path / "global.gitconfig"
    config.write_text("[safe]\n" + "".join(f"\tdirectory = {path.resolve()}\n" for path in (linked, *trusted)))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    monkeypatch.setenv("GIT_TEST_ASSUME_DIFFERENT_OWNER", "1")  # every repository is another user's
    path = write_input(tmp_path / "in.json", [entry(name) for name in olds])
    run_id = str(BranchAlignmentOrchestrator(reports_dir=tmp_path / "r").run(path, linked)["run_id"])
    return olds, linked, config, run_id


def test_undo_of_a_run_through_a_trusted_worktree_of_another_users_repository(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``safe.directory`` trusts the worktree the run went through, not the main repository: undo checks where
    the run worked, as the run did; once that worktree is gone, the refusal of the main one names --repo."""
    olds, linked, _, run_id = run_through_a_worktree_of_another_user(repo, tmp_path, monkeypatch)
    reports = str(tmp_path / "r")
    assert cli(["undo", run_id, "--reports-dir", reports, "--dry-run"]) == 0
    assert "would restore 2, unchanged 0, refused 0 of 2 moved branches" in capsys.readouterr().out
    shutil.rmtree(linked)
    assert cli(["undo", run_id, "--reports-dir", reports]) == 2
    error = capsys.readouterr().err
    assert "owned by another user, git refuses it (dubious ownership)" in error
    assert error.endswith(f"; or pass --repo PATH, a worktree of the repository run {run_id} aligned\n")
    monkeypatch.delenv("GIT_TEST_ASSUME_DIFFERENT_OWNER")
    assert all(repo.tip(name) != old for name, old in olds.items())  # refused: nothing put back


def test_undo_names_the_refusal_of_the_worktree_the_run_went_through_not_passing_it_over(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The worktree is there but git no longer trusts it: undo says so and how to go on, rather than undo in
    the (trusted) main repository as if no repository were there, without the worktree's own settings."""
    olds, linked, config, run_id = run_through_a_worktree_of_another_user(repo, tmp_path, monkeypatch, repo.path)
    config.write_text(f"[safe]\n\tdirectory = {repo.path.resolve()}\n")  # the worktree no longer trusted
    assert cli(["undo", run_id, "--reports-dir", str(tmp_path / "r")]) == 2
    error = capsys.readouterr().err
    assert f"{linked.resolve()}: owned by another user, git refuses it (dubious ownership)" in error
    assert error.endswith(f"; or pass --repo PATH, a worktree of the repository run {run_id} aligned\n")
    monkeypatch.delenv("GIT_TEST_ASSUME_DIFFERENT_OWNER")
    assert all(repo.tip(name) != old for name, old in olds.items())  # refused: nothing put back


def test_a_worktree_given_as_repo_removed_during_the_run_fails_its_branches_without_a_trace(
    repo: Repo, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """git runs in the worktree's top (``RepoLocation.run_dir``): gone, every git call fails to start. That is
    said as it is (not "git is not installed"), a failure of the branch without a trace, and no ref moves."""
    olds = topics(repo, 1)
    linked = tmp_path / "linked"
    repo.git("worktree", "add", "-q", "--detach", str(linked), "main")
    removal = settings(check_commands=[["rm", "-rf", str(linked)]], auto_cleanup_backups=False)
    path = write_input(tmp_path / "in.json", [entry(name) for name in olds])
    result = BranchAlignmentOrchestrator(removal, reports_dir=tmp_path / "r").run(path, linked)
    branch = result["orchestration_results"]["main"]["branches"][0]  # type: ignore[index]
    assert (branch["status"], branch["errors_detected"]) == ("exception", ["unexpected_error"])
    assert branch["error_message"] == f"the directory git runs in is gone: {linked.resolve()}"
    assert not [record for record in caplog.records if record.exc_info]
    assert {name: repo.tip(name) for name in olds} == olds
