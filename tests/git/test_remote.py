"""``--remote``: branches that live on a remote, against a local bare repository; faults included.

After every fault: each remote branch is at its old tip or at a checked merge that contains it, each remote
backup at the old tip, the result says which branch is where, and a rerun finishes the rest.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from alignment import remote
from alignment.errors import ConfigError, GitError, InputError, MissingRemoteRef, RepositoryError
from alignment.git import Git, PushUpdate, RepoLocation
from alignment.remote import aligned_ref
from alignment.runs import RunFolder
from alignment.session import moves_made
from alignment.undo import undo_run
from tests.conftest import Repo, settings
from tests.remotes import NAMES, Origin, hold_branch_pushes, hook, make_origin


@pytest.fixture
def origin(repo: Repo, tmp_path: Path) -> Origin:
    return make_origin(repo, tmp_path)


def test_a_fresh_clone_is_aligned_on_the_remote_and_nothing_local_moves(origin: Origin) -> None:
    local_before = origin.clone.git("for-each-ref", "refs/heads/")
    head_before = origin.clone.git("rev-parse", "HEAD")

    results = origin.run()

    for name, old in origin.olds.items():
        branch = results[name]
        assert branch["status"] == "completed"
        origin.assert_aligned(name)
        assert origin.remote_tip(name) == branch["new_tip"]
        assert origin.remote_tip(f"backup-{name}-pre-align") == old
        assert branch["backup_branch"] == f"backup-{name}-pre-align"
        assert branch["push"] == {
            "remote": "origin",
            "pushed": True,
            "replaced_remote_tip": old,
            "aligned_ref": f"refs/alignment/aligned/origin/{name}",
            "remote_backup": f"refs/heads/backup-{name}-pre-align",
        }
        assert origin.clone.git("rev-parse", f"refs/alignment/aligned/origin/{name}") == branch["new_tip"]
    origin.assert_safe()
    assert origin.clone.git("for-each-ref", "refs/heads/") == local_before
    assert origin.clone.git("rev-parse", "HEAD") == head_before
    assert origin.clone.status() == ""
    fetched = origin.clone.git("for-each-ref", "--format=%(refname)", "refs/alignment/remotes/").split()
    assert fetched == [f"refs/alignment/remotes/origin/heads/{name}" for name in (*NAMES, "main")]


def test_a_second_run_finds_everything_up_to_date_and_pushes_nothing(origin: Origin) -> None:
    first = origin.run()
    second = origin.run()
    for name in NAMES:
        assert second[name]["action"] == "up_to_date"
        assert second[name]["push"]["pushed"] is False
        assert origin.remote_tip(name) == first[name]["new_tip"]


def test_a_plan_fetches_and_predicts_but_pushes_nothing(origin: Origin) -> None:
    remote_before = origin.bare.git("for-each-ref")
    results = origin.run(plan=True)
    assert {name: branch["status"] for name, branch in results.items()} == dict.fromkeys(NAMES, "completed")
    assert all("push" not in branch for branch in results.values())
    assert origin.bare.git("for-each-ref") == remote_before
    assert not origin.clone.git("for-each-ref", "refs/alignment/aligned/")


def test_the_lease_is_lost_when_another_push_lands_between_fetch_and_push(origin: Origin) -> None:
    theirs: dict[str, str] = {}

    def colleague_pushes(done: int, total: int, result: dict[str, Any]) -> None:
        if not theirs:  # after the fetch, before our push: a colleague's commit lands on feature-b
            theirs["feature-b"] = origin.bare.commit("feature-b", {"colleague.txt": "c\n"})

    results = origin.run(progress=colleague_pushes, max_workers_per_target=1)

    lost = results["feature-b"]
    assert lost["status"] == "failed_integration"
    assert lost["errors_detected"] == ["push_rejected"]
    assert "lease was lost" in lost["error_message"]
    assert "their commit stays" in lost["error_message"]
    assert "refs/alignment/aligned/origin/feature-b" in lost["error_message"]
    assert lost["push"]["pushed"] is False
    assert lost["new_tip"] is None
    assert origin.remote_tip("feature-b") == theirs["feature-b"]  # their commit stays
    ours = origin.clone.git("rev-parse", "refs/alignment/aligned/origin/feature-b")
    assert origin.clone.git("rev-parse", f"{ours}^1") == origin.olds["feature-b"]  # ours is kept locally
    assert origin.remote_tip("backup-feature-b-pre-align") == origin.olds["feature-b"]
    for name in ("feature-a", "feature-c"):
        assert results[name]["push"]["pushed"] is True
        origin.assert_aligned(name)
    undo = undo_run(origin.tmp / "reports", origin.run_id, dry_run=True)
    assert [item.move.branch for item in undo.restorations] == ["feature-a", "feature-c"]  # the refused one: no move

    rerun = origin.run()
    assert rerun["feature-b"]["status"] == "completed"
    assert rerun["feature-b"]["push"]["pushed"]
    origin.bare.git("merge-base", "--is-ancestor", theirs["feature-b"], "feature-b")
    assert rerun["feature-b"]["backup_branch"] == "backup-feature-b-pre-align-2"  # the first one is kept
    assert origin.remote_tip("backup-feature-b-pre-align-2") == theirs["feature-b"]
    assert origin.remote_tip("backup-feature-b-pre-align") == origin.olds["feature-b"]


def test_change_documents_say_what_the_push_did(origin: Origin) -> None:
    """The document written when a branch was aligned is brought up to date by its push: a lost lease makes
    it say the failure and where our commit is kept; a landed push names the remote backup it made."""

    def colleague_pushes(done: int, total: int, result: dict[str, Any]) -> None:
        if not origin.bare.git("rev-list", "-1", "feature-b", "--", "colleague.txt"):
            origin.bare.commit("feature-b", {"colleague.txt": "c\n"})

    results = origin.run(progress=colleague_pushes, max_workers_per_target=1)

    lost = Path(results["feature-b"]["document"]).read_text(encoding="utf-8")
    assert "**Status:** failed_integration (merge)" in lost
    assert "**Status:** completed" not in lost
    kept = aligned_ref("origin", "feature-b")
    assert f"| Push | not pushed to `origin` (push_rejected): ours is kept at `{kept}`" in lost
    assert "## Why it stopped\n\nnot pushed, the lease was lost" in lost
    assert "| Backup | `backup-feature-b-pre-align` |" in lost
    landed = Path(results["feature-a"]["changes_summary"]).read_text(encoding="utf-8")
    assert "**Status:** completed (merge)" in landed
    assert f"| New tip | `{results['feature-a']['new_tip']}` |" in landed
    assert "| Backup | `backup-feature-a-pre-align` |" in landed
    assert "| Push | pushed to `origin`; remote backup `refs/heads/backup-feature-a-pre-align` |" in landed


def test_a_server_hook_rejects_one_branch_the_others_land(origin: Origin) -> None:
    hook(origin, 'case "$1" in refs/heads/feature-b) echo "feature-b is frozen" >&2; exit 1;; esac\nexit 0\n')

    results = origin.run()

    assert results["feature-b"]["errors_detected"] == ["push_rejected"]
    assert "refused it: [remote rejected] (hook declined)" in results["feature-b"]["error_message"]
    assert "their commit stays" not in results["feature-b"]["error_message"]  # nobody else pushed
    assert origin.remote_tip("feature-b") == origin.olds["feature-b"]
    assert [results[name]["push"]["pushed"] for name in NAMES] == [True, False, True]
    origin.assert_safe()

    (origin.bare.path / "hooks" / "update").unlink()
    rerun = origin.run()
    assert rerun["feature-b"]["push"]["pushed"] is True
    assert rerun["feature-b"]["backup_branch"] == "backup-feature-b-pre-align"  # the same backup, reused
    origin.assert_aligned("feature-b")
    origin.assert_safe()


def test_an_atomic_push_per_target_lands_all_or_nothing(origin: Origin) -> None:
    hook(origin, 'case "$1" in refs/heads/feature-b) exit 1;; esac\nexit 0\n')
    results = origin.run(push_atomic_per_target=True)
    assert [results[name]["errors_detected"] for name in NAMES] == [["push_rejected"]] * 3
    assert "atomic push of target 'main' failed" in results["feature-a"]["error_message"]
    assert all(origin.remote_tip(name) == old for name, old in origin.olds.items())
    origin.assert_safe()


def test_the_remote_disappears_mid_run_and_nothing_is_half_done(origin: Origin) -> None:
    gone = origin.bare.path.with_name("moved-away.git")

    def remote_vanishes(done: int, total: int, result: dict[str, Any]) -> None:
        if not gone.exists():
            origin.bare.path.rename(gone)

    results = origin.run(progress=remote_vanishes)

    for name in NAMES:
        assert results[name]["errors_detected"] == ["push_failed"]
        assert "could not reach 'origin'" in results[name]["error_message"]
        assert results[name]["push"]["pushed"] is False
    gone.rename(origin.bare.path)
    origin.assert_safe()
    assert not origin.bare.git("for-each-ref", "refs/heads/backup-*")

    rerun = origin.run()
    assert all(rerun[name]["push"]["pushed"] for name in NAMES)
    origin.assert_safe()


def test_a_push_that_times_out_may_still_land_and_says_so_and_undo_puts_it_back(origin: Origin) -> None:
    block, _ = hold_branch_pushes(origin)
    server = origin.tmp / "receive-pack.sh"  # like ssh: the server side outlives the client we kill
    server.write_text('#!/bin/sh\nexec setsid git-receive-pack "$@"\n')
    server.chmod(0o755)
    origin.clone.git("config", "remote.origin.receivepack", str(server))
    try:
        results = origin.run(integration_timeout_seconds=2)
    finally:
        block.unlink()
    for name in NAMES:
        message = results[name]["error_message"]
        assert results[name]["errors_detected"] == ["push_failed"]
        assert "timed out after 2 s; it may have landed, or may still land" in message
        assert "unchanged" not in message
        assert f"at its old tip {origin.olds[name]} or at the merge" in message
    deadline = time.monotonic() + 60
    while any(origin.remote_tip(name) == old for name, old in origin.olds.items()):  # the server finishes it
        assert time.monotonic() < deadline
        time.sleep(0.1)
    origin.assert_safe()
    report = undo_run(origin.tmp / "reports", origin.run_id)
    assert [item.outcome.value for item in report.restorations] == ["restored"] * 3
    assert all(origin.remote_tip(name) == old for name, old in origin.olds.items())


def test_a_push_that_lands_but_loses_its_answer_may_have_landed_and_undo_finds_it(origin: Origin) -> None:
    """git push killed once the remote committed the branch, before it answered (a connection that drops after
    sending looks the same): the branch landed, the result says it may have, and the journal counts it."""
    client = origin.tmp / "client.pid"
    server = origin.tmp / "receive-pack.sh"  # writes down the git push that runs it (through a shell)
    server.write_text(
        "#!/bin/sh\npid=$PPID\n"
        'while [ "$pid" -gt 1 ] && ! ps -ww -o args= -p "$pid" | grep -q " push --porcelain"; do\n'
        '  pid=$(ps -o ppid= -p "$pid" | tr -d " ")\ndone\n'
        f'[ "$pid" -gt 1 ] && echo "$pid" > "{client}"\nexec git-receive-pack "$@"\n'
    )
    server.chmod(0o755)
    origin.clone.git("config", "remote.origin.receivepack", str(server))
    committed = origin.bare.path / "hooks" / "reference-transaction"
    committed.write_text(
        f'#!/bin/sh\n[ "$1" = committed ] && grep -q " refs/heads/feature-a$" && kill -9 "$(cat "{client}")"\nexit 0\n'
    )
    committed.chmod(0o755)

    results = origin.run(names=("feature-a",))

    branch = results["feature-a"]
    assert branch["errors_detected"] == ["push_failed"]
    assert branch["push"]["pushed"] is False
    assert "unchanged" not in branch["error_message"]
    assert "may have landed" in branch["error_message"]
    assert "`git fetch origin` shows which" in branch["error_message"]
    assert origin.remote_tip("feature-a") == origin.clone.git("rev-parse", aligned_ref("origin", "feature-a"))
    origin.assert_safe()
    committed.unlink()
    report = undo_run(origin.tmp / "reports", origin.run_id)
    assert [item.outcome.value for item in report.restorations] == ["restored"]
    assert origin.remote_tip("feature-a") == origin.olds["feature-a"]


def test_ctrl_c_while_the_backups_are_pushed_pushes_no_branch_and_still_writes_the_results(origin: Origin) -> None:
    """Ctrl-C while the remote receives the backups: that push finishes, the branches' push never starts, and
    the results, written before the ``KeyboardInterrupt`` reaches the caller, say so; nothing is journaled."""
    hook(origin, f'case "$1" in refs/heads/backup-feature-a-pre-align) kill -INT {os.getpid()};; esac\nexit 0\n')
    with pytest.raises(KeyboardInterrupt):
        origin.run()
    data = json.loads((origin.tmp / "reports" / "latest" / "alignment_results.json").read_text())
    for branch in data["orchestration_results"]["main"]["branches"]:
        assert branch["errors_detected"] == ["push_failed"]
        message, name = branch["error_message"], branch["branch_name"]
        assert message.startswith("not pushed: interrupted (Ctrl-C) before its push; this run did not change")
        assert f"(fetched at {origin.olds[name]}; it may have moved since)" in message  # its lease was never checked
        assert "unchanged" not in message
        assert branch["push"]["remote_backup"] == f"refs/heads/backup-{name}-pre-align"
        row = f"| Push | not pushed to `origin` (push_failed): ours is kept at `{aligned_ref('origin', name)}`"
        assert row in Path(branch["document"]).read_text(encoding="utf-8")  # a push that never started
    assert all(origin.remote_tip(name) == old for name, old in origin.olds.items())
    origin.assert_safe()
    assert moves_made(RunFolder(origin.tmp / "reports", data["run_id"])) == 0


def ctrl_c_twice(origin: Origin, refs: str) -> Path:
    """A server hook that sends this process Ctrl-C as it receives the first ref matching ``refs`` (a glob under
    refs/heads/), which then lands, and again at the second, which it holds: that one cannot land before the
    second Ctrl-C kills the push (and the hook with it: one process group), and no later ref is sent."""
    seen = origin.tmp / "first-ref-seen"
    per_ref = f'kill -INT {os.getpid()}; [ -e "{seen}" ] && sleep 10; touch "{seen}"'
    return hook(origin, f'case "$1" in refs/heads/{refs}) {per_ref};; esac\nexit 0\n')


def interrupted_results(origin: Origin) -> dict[str, dict[str, Any]]:
    """Run until Ctrl-C reaches the caller; the branches' results that were written before it did."""
    with pytest.raises(KeyboardInterrupt):
        origin.run()
    data = json.loads((origin.tmp / "reports" / "latest" / "alignment_results.json").read_text())
    origin.run_id = data["run_id"]
    return {branch["branch_name"]: branch for branch in data["orchestration_results"]["main"]["branches"]}


def test_a_second_ctrl_c_while_the_branches_are_pushed_stops_it_and_undo_puts_back_what_landed(
    origin: Origin,
) -> None:
    """README: a second Ctrl-C stops the push at once. One branch landed, one was held, one never sent, and
    git's answer never came: each may still land and stays journaled, and undo restores the one that did."""
    server_hook = ctrl_c_twice(origin, "feature-*")

    results = interrupted_results(origin)

    for name in NAMES:
        assert results[name]["errors_detected"] == ["push_failed"]
        assert "interrupted (Ctrl-C) while pushing; it may have landed" in results[name]["error_message"]
    landed = [name for name, old in origin.olds.items() if origin.remote_tip(name) != old]
    assert len(landed) == 1
    origin.assert_safe()
    assert moves_made(RunFolder(origin.tmp / "reports", origin.run_id)) == 3
    server_hook.unlink()  # undo pushes too
    report = undo_run(origin.tmp / "reports", origin.run_id)
    outcomes = {item.move.branch: item.outcome.value for item in report.restorations}
    assert outcomes == {name: "restored" if name in landed else "not_moved" for name in NAMES}
    assert all(origin.remote_tip(name) == old for name, old in origin.olds.items())


def test_a_second_ctrl_c_while_the_backups_are_pushed_stops_it_and_pushes_no_branch(origin: Origin) -> None:
    ctrl_c_twice(origin, "backup-*")

    results = interrupted_results(origin)

    for name in NAMES:
        assert results[name]["errors_detected"] == ["push_failed"]
        message = results[name]["error_message"]
        assert message == "interrupted (Ctrl-C) while its backup was pushed to 'origin'; not pushed"
        assert origin.remote_tip(name) == origin.olds[name]
    origin.assert_safe()
    assert moves_made(RunFolder(origin.tmp / "reports", origin.run_id)) == 0


def test_a_second_ctrl_c_after_the_push_still_records_what_landed(
    origin: Origin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C while the branches are pushed, again while the first change document is updated (outside any
    push): every branch landed, and the results say so."""
    hook(origin, f'case "$1" in refs/heads/feature-a) kill -INT {os.getpid()};; esac\nexit 0\n')

    def ctrl_c_again(*args: Any, **kwargs: Any) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)  # Python runs the handler between two bytecodes of the main thread: here

    monkeypatch.setattr(remote, "record_push", ctrl_c_again)

    results = interrupted_results(origin)

    for name in NAMES:
        assert (results[name]["errors_detected"], results[name]["push"]["pushed"]) == ([], True)
        assert origin.remote_tip(name) != origin.olds[name]
    origin.assert_safe()
    assert moves_made(RunFolder(origin.tmp / "reports", origin.run_id)) == 3


def test_a_remote_branch_named_like_the_backups_folder_is_named_in_the_refusal(origin: Origin) -> None:
    origin.bare.branch("bk", "main")  # refs/heads/bk is a file where bk/x-feature-a-pre-align needs a folder
    results = origin.run(names=("feature-a",), backup_branch_prefix="bk/x")
    assert results["feature-a"]["errors_detected"] == ["push_rejected"]
    assert results["feature-a"]["error_message"] == (
        "'origin' refused the backup refs/heads/bk/x-feature-a-pre-align ([remote rejected] (failed to update "
        "ref): its ref refs/heads/bk blocks it; rename that or set backup_branch_prefix); not pushed"
    )
    origin.assert_safe()


def test_a_backup_another_run_creates_meanwhile_fails_the_branch_saying_so_and_a_rerun_finds_it_aligned(
    origin: Origin,
) -> None:
    """Two jobs align the same input at once: the other one's create-only backup push lands between our push
    reading the remote's refs and updating them, so the remote refuses ours ("failed to update ref"). The branch
    fails push_rejected, untouched by us, saying another run created the backup; once the other run has pushed
    the branch, a rerun of the failures finds it aligned."""
    backup = "refs/heads/backup-feature-a-pre-align"
    hook(origin, f'[ "$1" = {backup} ] && env -u GIT_QUARANTINE_PATH git update-ref "$1" "$3"\nexit 0\n')
    results = origin.run()

    lost = results["feature-a"]
    assert lost["errors_detected"] == ["push_rejected"]
    assert lost["error_message"] == (
        f"'origin' refused the backup {backup} ([remote rejected] (failed to update ref)): it was created there "
        f"since the fetch, at {origin.olds['feature-a']} (another run aligning the same branch?); not pushed"
    )
    assert origin.remote_tip("feature-a") == origin.olds["feature-a"]  # the lease was never used
    for name in ("feature-b", "feature-c"):
        origin.assert_aligned(name)
    origin.assert_safe()

    (origin.bare.path / "hooks" / "update").unlink()
    other = replace(origin, clone=Repo(origin.tmp / "other"))  # the other job ends: it pushes feature-a
    subprocess.run(["git", "clone", "-q", str(origin.bare.path), str(other.clone.path)], check=True)
    assert other.run(names=("feature-a",))["feature-a"]["push"]["pushed"] is True
    rerun = origin.run(names=("feature-a",))["feature-a"]
    assert (rerun["status"], rerun["action"], rerun["push"]["pushed"]) == ("completed", "up_to_date", False)
    origin.assert_aligned("feature-a")
    origin.assert_safe()


@pytest.mark.parametrize("where", ["remote", "refs/backups/"])
def test_a_remote_ref_inside_the_backup_name_passes_that_name_over_as_a_local_branch_does(
    origin: Origin, where: str
) -> None:
    """``backup-feature-a-pre-align/old`` on the remote makes ``backup-feature-a-pre-align`` a folder there: the
    remote refuses that name, and the backup takes ``-2`` (it failed the branch on every run)."""
    namespace = "refs/heads/" if where == "remote" else where
    origin.bare.git("update-ref", f"{namespace}backup-feature-a-pre-align/old", "main")
    results = origin.run(names=("feature-a",), remote_backups=where)
    assert results["feature-a"]["push"]["pushed"] is True, results["feature-a"]["error_message"]
    assert results["feature-a"]["push"]["remote_backup"] == f"{namespace}backup-feature-a-pre-align-2"
    assert origin.bare.git("rev-parse", f"{namespace}backup-feature-a-pre-align-2") == origin.olds["feature-a"]
    origin.assert_aligned("feature-a")


def test_a_remote_backup_named_past_another_or_reused_says_so_as_a_local_one_does(origin: Origin) -> None:
    """README: an existing backup at another commit is kept and ``-2`` is used, one at the old tip reused, and
    "the result says so": with the words of a local backup, in the result and in the change document."""
    origin.bare.git("update-ref", "refs/heads/backup-feature-a-pre-align", origin.target)
    origin.bare.git("update-ref", "refs/heads/backup-feature-b-pre-align", origin.olds["feature-b"])
    results = origin.run(names=("feature-a", "feature-b"))
    notes = {
        "feature-a": "'backup-feature-a-pre-align' exists at another commit and was kept; "
        "backup is 'backup-feature-a-pre-align-2'",
        "feature-b": "reused existing backup 'backup-feature-b-pre-align' (already at the old tip)",
    }
    for name, note in notes.items():
        assert results[name]["push"]["pushed"] is True, results[name]["error_message"]
        assert results[name]["notes"] == [note]
        escaped = re.sub(r"([-()])", r"\\\1", note)  # the change document escapes Markdown's special characters
        assert f"## Notes\n\n- {escaped}\n" in Path(results[name]["document"]).read_text(encoding="utf-8")
    assert results["feature-a"]["backup_branch"] == "backup-feature-a-pre-align-2"
    assert origin.bare.git("rev-parse", "backup-feature-a-pre-align") == origin.target


def test_a_remote_that_cannot_be_fetched_is_one_error_before_anything_changes(origin: Origin) -> None:
    origin.bare.path.rename(origin.bare.path.with_name("elsewhere.git"))
    with pytest.raises(RepositoryError, match=r"^--remote origin: fetch failed: fatal: .*does not appear"):
        origin.run()
    with pytest.raises(RepositoryError, match=r"^--remote upstream: no such remote in .* \(remotes: origin\)$"):
        origin.run(remote="upstream")


def test_a_fetch_git_rejects_stops_the_run_naming_the_refs_and_why(origin: Origin) -> None:
    """A shallow mirror as the remote: git fetches, leaves the refs whose new tips are its shallow roots as they
    were, warns and exits 0. The run stops in one line: it neither calls such a branch missing on the remote nor
    reads the copy an earlier run fetched (an old target)."""
    origin.run(plan=True)  # copies of every branch and target, which later runs must not read for current ones
    origin.bare.commit("main", {"later.txt": "l\n"})
    origin.bare.commit("feature-a", {"later.txt": "l\n"})
    mirror = origin.tmp / "mirror.git"
    shallow = ["git", "clone", "-q", "--bare", "--depth", "1", "--no-single-branch", f"file://{origin.bare.path}"]
    subprocess.run([*shallow, str(mirror)], check=True)
    origin.clone.git("remote", "set-url", "origin", str(mirror))
    origin.clone.git("update-ref", "-d", "refs/alignment/remotes/origin/heads/feature-a")  # as in a fresh clone
    fetched = origin.clone.git("for-each-ref", "refs/alignment/remotes/")

    with pytest.raises(RepositoryError) as raised:
        origin.run(plan=True)

    assert str(raised.value) == (
        "--remote origin: git fetched feature-a, main but did not update its copies of them (rejected because "
        "shallow roots are not allowed to be updated: is 'origin' a shallow clone?); the run would read "
        "old ones: fetch from a complete repository"
    )
    assert origin.clone.git("for-each-ref", "refs/alignment/remotes/") == fetched


def test_a_remote_that_fails_after_a_missing_branch_is_one_line(origin: Origin) -> None:
    """A listed branch the remote lacks makes the fetch stop; the ``ls-remote`` that then looks for every missing
    name fails (the remote went away): one line, as the first fetch's failure is, not a traceback."""
    calls = origin.tmp / "upload-pack-calls"
    server = origin.tmp / "upload-pack.sh"  # serves the first request, refuses the others
    server.write_text(
        f'#!/bin/sh\necho x >> "{calls}"\n[ "$(wc -l < "{calls}")" -gt 1 ] && exit 1\nexec git-upload-pack "$@"\n'
    )
    server.chmod(0o755)
    origin.clone.git("config", "remote.origin.uploadpack", str(server))

    with pytest.raises(RepositoryError) as raised:
        origin.run(names=("feature-a", "not-on-the-remote"), plan=True)

    assert str(raised.value).startswith("--remote origin: fetch failed: ")
    assert "\n" not in str(raised.value)


def through(origin: Origin, kind: str) -> tuple[Origin, str]:
    """``origin`` run through its clone, a linked worktree of it or a bare clone of the remote; and the remote's
    URL relative to where git resolves it there (the worktree's top, the bare repository's git dir)."""
    if kind == "clone":
        return origin, "../remote.git"
    path = origin.tmp / "deep" / kind
    if kind == "linked":
        origin.clone.git("worktree", "add", "-q", "--detach", str(path))
    else:
        subprocess.run(["git", "clone", "-q", "--bare", str(origin.bare.path), str(path)], check=True)
    return replace(origin, clone=Repo(path)), "../../remote.git"


@pytest.mark.parametrize("kind", ["clone", "linked", "bare"])
def test_a_relative_remote_url_is_the_one_git_reads_in_the_repository_not_in_the_cwd(
    origin: Origin, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run from a directory where the relative URL names another repository: that one stays untouched."""
    origin, url = through(origin, kind)
    origin.clone.git("remote", "set-url", "origin", url)
    cwd = origin.tmp / "w" / "x" / "y"
    cwd.mkdir(parents=True)
    decoy = Repo((cwd / url).resolve())
    subprocess.run(["git", "clone", "-q", "--bare", str(origin.bare.path), str(decoy.path)], check=True)
    before = decoy.git("for-each-ref")
    monkeypatch.chdir(cwd)

    results = origin.run()

    assert {name: branch["status"] for name, branch in results.items()} == dict.fromkeys(NAMES, "completed")
    for name in NAMES:
        origin.assert_aligned(name)
    origin.assert_safe()
    assert decoy.git("for-each-ref") == before


def test_a_branch_missing_on_the_remote_is_not_found_and_its_stale_copy_is_not_used(origin: Origin) -> None:
    origin.run()
    origin.bare.git("update-ref", "-d", "refs/heads/feature-c")
    results = origin.run()
    assert results["feature-c"]["errors_detected"] == ["branch_not_found"]
    assert results["feature-c"]["error_message"] == "branch 'feature-c' does not exist on 'origin'"
    assert not origin.clone.git("for-each-ref", "refs/alignment/remotes/origin/heads/feature-c")


def test_a_target_missing_on_the_remote_is_said_to_be_missing_there(origin: Origin) -> None:
    origin.bare.git("symbolic-ref", "HEAD", "refs/heads/feature-a")
    origin.bare.git("update-ref", "-d", "refs/heads/main")  # the clone still has its local 'main'
    with pytest.raises(InputError) as raised:
        origin.run()
    assert str(raised.value) == (
        f"{origin.tmp / 'in.json'}: branches[0].assigned_target: target 'main' is not a branch of remote 'origin'; "
        "the local branch 'main' is not read by a --remote run: push it to 'origin' first"
    )


def test_backups_can_stay_local_or_go_to_another_namespace(origin: Origin) -> None:
    results = origin.run(names=("feature-a",), remote_backups="local")
    assert origin.clone.tip("backup-feature-a-pre-align") == origin.olds["feature-a"]
    assert not origin.bare.git("for-each-ref", "refs/heads/backup-*")
    assert results["feature-a"]["push"]["remote_backup"] is None

    results = origin.run(names=("feature-b",), remote_backups="refs/backups/")
    ref = "refs/backups/backup-feature-b-pre-align"
    assert origin.bare.git("rev-parse", ref) == origin.olds["feature-b"]
    assert results["feature-b"]["backup_branch"] == ref


@pytest.mark.parametrize("where", ["remote", "refs/backups/"])
def test_a_backup_name_that_is_a_folder_of_another_listed_branchs_backup_is_passed_over_on_the_remote(
    origin: Origin, repo: Repo, where: str
) -> None:
    """``backup-a-pre-align`` and ``backup-a-pre-align/b-pre-align`` cannot both be refs: pushed as one batch, the
    remote refused one; ``a``'s backup takes ``-2``, as a local one does."""
    olds = {name: repo.commit(name, {"x.txt": name}, parent=f"{origin.target}~1") for name in ("a", "a-pre-align/b")}
    repo.git("push", "-q", str(origin.bare.path), *(f"refs/heads/{name}" for name in olds))
    results = origin.run(names=tuple(olds), remote_backups=where)
    refs = {"a": "backup-a-pre-align-2", "a-pre-align/b": "backup-a-pre-align/b-pre-align"}
    namespace = "refs/heads/" if where == "remote" else where
    for name, backup in refs.items():
        assert results[name]["push"]["pushed"] is True, results[name]["error_message"]
        assert results[name]["push"]["remote_backup"] == namespace + backup
        assert origin.bare.git("rev-parse", namespace + backup) == olds[name]


def test_a_plan_names_the_remote_backup_the_push_tries_first(origin: Origin, repo: Repo) -> None:
    """A plan does not ask the remote: it names the first backup name the push tries, past those the run's own
    branches rule out (here a folder of another listed branch's backup name), and says so as the run does."""
    olds = {name: repo.commit(name, {"x.txt": name}, parent=f"{origin.target}~1") for name in ("a", "a-pre-align/b")}
    repo.git("push", "-q", str(origin.bare.path), *(f"refs/heads/{name}" for name in olds))
    planned = origin.run(names=tuple(olds), plan=True)
    ran = origin.run(names=tuple(olds))
    for results in (planned, ran):
        assert results["a"]["backup_branch"] == "backup-a-pre-align-2"
        assert results["a"]["notes"] == [
            "'backup-a-pre-align' is a folder of 'backup-a-pre-align/b-pre-align', another listed branch's backup "
            "name, and was not used; backup is 'backup-a-pre-align-2'"
        ]
        assert (results["a-pre-align/b"]["backup_branch"], results["a-pre-align/b"]["notes"]) == (
            "backup-a-pre-align/b-pre-align",
            [],
        )


def test_a_local_backup_auto_cleanup_removed_stays_said_so_after_the_push(origin: Origin) -> None:
    """The push brings the document up to date; the Backup row of a local backup keeps its removal note."""
    results = origin.run(names=("feature-a",), remote_backups="local", auto_cleanup_backups=True)
    assert not origin.clone.exists("backup-feature-a-pre-align")
    text = Path(results["feature-a"]["document"]).read_text(encoding="utf-8").splitlines()
    assert "| Backup | `backup-feature-a-pre-align` (removed after the alignment: auto_cleanup_backups) |" in text
    assert "| Push | pushed to `origin` |" in text


def test_a_local_backup_auto_cleanup_would_remove_is_kept_when_the_push_fails(origin: Origin) -> None:
    """auto_cleanup_backups removes a local backup only once the branch's push landed: a refused push keeps it
    (the result says so), and the Backup row of the change document says nothing of a removal."""
    hook(origin, 'case "$1" in refs/heads/feature-a) exit 1;; esac\nexit 0\n')
    results = origin.run(names=("feature-a",), remote_backups="local", auto_cleanup_backups=True)
    branch = results["feature-a"]
    assert branch["errors_detected"] == ["push_rejected"]
    assert origin.remote_tip("feature-a") == origin.olds["feature-a"]
    assert origin.clone.tip("backup-feature-a-pre-align") == origin.olds["feature-a"]
    assert branch["backup_branch"] == "backup-feature-a-pre-align"
    assert "backup 'backup-feature-a-pre-align' kept: the push did not land" in branch["notes"]
    text = Path(branch["document"]).read_text(encoding="utf-8").splitlines()
    assert "| Backup | `backup-feature-a-pre-align` |" in text


def test_undo_puts_a_remote_run_back_with_a_lease_on_the_pushed_commit(origin: Origin) -> None:
    results = origin.run()
    theirs = origin.bare.commit("feature-c", {"later.txt": "l\n"})  # moved again since the run

    dry = undo_run(origin.tmp / "reports", origin.run_id, dry_run=True)
    assert [item.outcome.value for item in dry.restorations] == ["restored", "restored", "moved_since"]
    assert origin.remote_tip("feature-a") == results["feature-a"]["new_tip"]

    report = undo_run(origin.tmp / "reports", origin.run_id)
    assert [item.outcome.value for item in report.restorations] == ["restored", "restored", "moved_since"]
    assert origin.remote_tip("feature-a") == origin.olds["feature-a"]
    assert origin.remote_tip("feature-b") == origin.olds["feature-b"]
    assert origin.remote_tip("feature-c") == theirs
    again = undo_run(origin.tmp / "reports", origin.run_id)
    assert [item.outcome.value for item in again.restorations] == ["not_moved", "not_moved", "moved_since"]


def test_undo_from_a_shallow_clone_is_refused_before_anything_changes(origin: Origin) -> None:
    """A CI job's default checkout (``--depth 1``) cannot push the old tips back: its dry run would promise
    restores its undo then fails one by one. Both are one error, as a run from such a clone is."""
    origin.run()
    remote_before = origin.bare.git("for-each-ref")
    checkout = origin.tmp / "ci-checkout"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{origin.bare.path}", str(checkout)], check=True)
    for dry_run in (True, False):
        with pytest.raises(RepositoryError) as raised:
            undo_run(origin.tmp / "reports", origin.run_id, repo_path=checkout, dry_run=dry_run)
        assert str(raised.value) == (
            f"{checkout}: a shallow clone; putting back what the run pushed to 'origin' needs the whole history "
            "(run `git fetch --unshallow` first, or pass --repo a complete clone)"
        )
    assert origin.bare.git("for-each-ref") == remote_before
    audit = RunFolder(origin.tmp / "reports", origin.run_id).audit_path.read_text(encoding="utf-8").splitlines()
    assert "undo" not in [json.loads(line)["event"] for line in audit]


def test_the_push_reports_each_ref_and_raises_only_without_an_answer(origin: Origin) -> None:
    git = Git(RepoLocation.discover(origin.clone.path))
    try:
        old = origin.olds["feature-a"]
        answers = git.push("origin", [PushUpdate("refs/heads/feature-a", origin.target, "1" * 40)])
        assert answers["refs/heads/feature-a"].summary == "[rejected] (stale info)"
        assert not answers["refs/heads/feature-a"].landed
        assert git.remote_refs("origin", ["refs/heads/feature-a", "refs/heads/none"]) == {"refs/heads/feature-a": old}
        origin.bare.path.rename(origin.bare.path.with_name("x.git"))
        with pytest.raises(GitError) as raised:
            git.push("origin", [PushUpdate("refs/heads/feature-a", origin.target, old)])
        assert "does not appear to be a git repository" in raised.value.cause
    finally:
        git.close()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"remote": "-x"}, 'orchestration.remote: expected the name of a git remote, got "-x"'),
        ({"remote_backups": "elsewhere"}, "orchestration.remote_backups: expected remote, local or a ref namespace"),
        ({"remote_backups": "refs/backups"}, "orchestration.remote_backups: expected remote, local or a ref"),
    ],
)
def test_remote_keys_are_validated(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings(**config)


def test_a_fetch_of_a_ref_the_remote_lacks_raises_its_own_error(origin: Origin) -> None:
    git = Git(RepoLocation.discover(origin.clone.path))
    try:
        with pytest.raises(MissingRemoteRef, match="couldn't find remote ref"):
            git.fetch("origin", {"refs/heads/no-such-branch": "refs/alignment-test/x"})
        with pytest.raises(GitError) as other:  # a remote that fails otherwise stays a plain GitError
            git.fetch("no-such-remote", {"refs/heads/main": "refs/alignment-test/x"})
        assert not isinstance(other.value, MissingRemoteRef)
    finally:
        git.close()
