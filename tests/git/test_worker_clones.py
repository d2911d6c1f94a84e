"""``alignment.clones``: a worker's clone is made on first use, refreshed by fetch later, and locked per run."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Protocol

import pytest

from alignment.clones import Clone, WorkerClones, open_clone, pinned_ref
from alignment.config import Settings
from alignment.errors import RepositoryError
from alignment.git import Git
from alignment.inputs import load_branches
from alignment.journal import MoveJournal
from alignment.ledger import RunLedger
from alignment.model import BranchResult, ErrorCode, PushRecord, Status
from alignment.remote import tracking_root
from alignment.session import RunSetup, set_up_run
from plugins.controller import WorkerPushes
from plugins.handoff import NodeMap
from tests.conftest import Repo, entry, new_repo, write_input
from tests.remotes import NAMES, Origin, make_origin


@pytest.fixture
def origin(repo: Repo, tmp_path: Path, request: pytest.FixtureRequest) -> Origin:
    """The remote and its clone; parametrized indirectly with an object format, of that format."""
    object_format = getattr(request, "param", "sha1")
    return make_origin(repo if object_format == "sha1" else new_repo(tmp_path / "source", object_format), tmp_path)


AUTHOR = ("Test Author", "author@example.com")  # the identity of the tests' git (``isolated_git``)
COMMITTER = ("Test Committer", "committer@example.com")
IDENTITY_VARIABLES = ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL")


def clones_of(origin: Origin, directory: Path | None = None) -> WorkerClones:
    """Clones of the sha1 ``origin`` under ``directory`` (default: ``clones`` in its temporary directory)."""
    url = str(origin.bare.path)
    return WorkerClones(str(directory or origin.tmp / "clones"), url, "sha1", (url,), AUTHOR, COMMITTER)


class SetupMaker(Protocol):
    def __call__(self, url: str | None = None, names: tuple[str, ...] = NAMES) -> RunSetup: ...


@pytest.fixture
def setup_of(origin: Origin) -> Iterator[SetupMaker]:
    """Makes ``--remote origin`` run setups with clones (``url``: the remote's URL the controller reads then);
    each keeps its scratch directory, where the controller writes, until the test ends."""
    made: list[RunSetup] = []

    def make(url: str | None = None, names: tuple[str, ...] = NAMES) -> RunSetup:
        write_input(origin.tmp / "in.json", [entry(name) for name in names])
        branches = load_branches(origin.tmp / "in.json")
        setup = set_up_run(Settings(remote="origin"), branches, origin.clone.path, reports_dir=origin.tmp / "r")
        made.append(setup)
        if url is not None:
            origin.clone.git("remote", "set-url", "origin", url)
        return setup.with_clones(str(origin.tmp / "clones"))

    yield make
    for setup in made:
        setup.discard_scratch()


def test_the_setup_carries_the_clones_dir_and_an_absolute_url_to_workers(origin: Origin, setup_of: SetupMaker) -> None:
    setup = setup_of(url="../remote.git")  # relative: to the repository's working tree
    url = str(origin.bare.path.resolve())
    assert setup.clones == WorkerClones(str(origin.tmp / "clones"), url, "sha1", (url,), AUTHOR, COMMITTER)
    assert RunSetup.from_json(setup.to_json()).clones == setup.clones


@pytest.mark.parametrize("origin", ["sha1", "sha256"], indirect=True)
def test_a_clone_is_made_on_first_use_then_refreshed_and_holds_the_run_refs(
    origin: Origin, setup_of: SetupMaker
) -> None:
    setup = setup_of()
    assert setup.clones is not None
    object_format = origin.bare.git("rev-parse", "--show-object-format")
    assert setup.clones.object_format == object_format
    with open_clone(setup.clones, "gw0", "origin") as clone:
        assert clone.created
        assert clone.location.git_dir == origin.tmp / "clones" / "gw0.git"
        assert Repo(clone.location.git_dir).git("rev-parse", "--show-object-format") == object_format
        worker = setup.in_clone(clone)
        assert worker.location == clone.location
        copy = Repo(clone.location.git_dir)
        for name, old in origin.olds.items():
            assert copy.git("rev-parse", tracking_root("origin") + name) == old
    new = origin.bare.git("rev-parse", "feature-b^")  # the remote moved: the next run's fetch follows it
    origin.bare.git("update-ref", "refs/heads/feature-b", new)
    with open_clone(setup.clones, "gw0", "origin") as again:
        assert not again.created
        setup.in_clone(again)
        assert Repo(again.location.git_dir).git("rev-parse", tracking_root("origin") + "feature-b") == new


def test_a_clone_commits_as_the_controllers_repository_without_an_identity_of_its_own(
    origin: Origin, setup_of: SetupMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The identity is in the controller's repository's own config and nowhere else (a worker machine without
    a global one): the workers' clones author and commit their merges with it, as the controller would."""
    for name in IDENTITY_VARIABLES:
        monkeypatch.delenv(name)
    origin.clone.git("config", "user.name", "Controller")
    origin.clone.git("config", "user.email", "controller@example.com")
    origin.clone.git("config", "committer.name", "Controller Committer")
    setup = setup_of()
    assert setup.clones is not None
    with open_clone(setup.clones, "gw0", "origin") as clone:
        setup.in_clone(clone)
        git = Git(clone.location)
        try:
            target = git.resolve_ref(tracking_root("origin") + "main")
            assert target is not None
            merge = git.commit_tree(origin.bare.git("rev-parse", "main^{tree}"), [target], "m")
        finally:
            git.close()
        made = Repo(clone.location.git_dir).git("log", "-1", "--format=%an <%ae>|%cn <%ce>", merge)
    assert made == "Controller <controller@example.com>|Controller Committer <controller@example.com>"


def test_an_identity_git_refuses_in_a_clone_is_one_clear_error(
    origin: Origin, setup_of: SetupMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker's own environment still counts, as for git: an empty ``GIT_COMMITTER_NAME`` there is one
    error naming the clone, which fails the worker's branches (``CloneUnavailable``), not a trace per merge."""
    setup = setup_of()
    assert setup.clones is not None
    monkeypatch.setenv("GIT_COMMITTER_NAME", "")
    clone_dir = origin.tmp / "clones" / "gw0.git"
    with pytest.raises(
        RepositoryError, match=rf"^--worker-clones {clone_dir}: git cannot author merge commits there \(fatal: empty"
    ):
        open_clone(setup.clones, "gw0", "origin")
    monkeypatch.delenv("GIT_COMMITTER_NAME")
    with open_clone(setup.clones, "gw0", "origin") as clone:  # the lock was released
        assert clone.location.git_dir == clone_dir


@pytest.mark.parametrize("how", ["pushurl", "pushInsteadOf"])
def test_a_clone_pushes_where_git_push_in_the_repository_pushes(origin: Origin, setup_of: SetupMaker, how: str) -> None:
    """The remote's ``pushurl`` (users fetch over https and push over ssh), or a ``pushInsteadOf`` rule: the
    clone fetches from the URL and pushes where the repository pushes; once that rule is gone, so is the
    clone's push URL."""
    mirror = origin.tmp / "push.git"
    subprocess.run(["git", "init", "-q", "--bare", str(mirror)], check=True)
    if how == "pushurl":  # relative, as git reads it in the repository
        rule = ("remote.origin.pushurl", "../push.git")
    else:
        rule = (f"url.{mirror}.pushInsteadOf", str(origin.bare.path))
    origin.clone.git("config", *rule)
    setup = setup_of()
    assert setup.clones is not None
    with open_clone(setup.clones, "gw0", "origin") as clone:
        setup.in_clone(clone)
        Repo(clone.location.git_dir).git("push", "-q", "origin", f"{tracking_root('origin')}feature-b:refs/heads/x")
    assert Repo(mirror).git("rev-parse", "refs/heads/x") == origin.olds["feature-b"]
    assert origin.remote_tip("x") is None

    origin.clone.git("config", "--unset", rule[0])
    again = setup_of().clones
    assert again is not None
    with open_clone(again, "gw0", "origin") as clone:
        pushed = Repo(clone.location.git_dir).git("remote", "get-url", "--push", "origin")
    assert pushed == str(origin.bare.path.resolve())


def test_a_target_that_moved_on_the_remote_is_fetched_at_its_pinned_commit(
    origin: Origin, setup_of: SetupMaker, repo: Repo
) -> None:
    setup = setup_of()
    assert setup.clones is not None
    repo.commit("main", {"later.txt": "x\n"})
    repo.git("push", "-q", str(origin.bare.path), "main")
    origin.bare.git("update-ref", "refs/heads/main", origin.olds["feature-a"])  # the pinned one: unreachable
    with open_clone(setup.clones, "gw1", "origin") as clone:
        setup.in_clone(clone)
        assert Repo(clone.location.git_dir).git("rev-parse", pinned_ref("main")) == origin.target


def test_a_clone_in_use_by_another_run_is_not_shared(origin: Origin) -> None:
    clones = clones_of(origin)
    held: list[Clone] = []
    try:
        for expected in ("gw0", "gw0-2", "gw0-3"):
            held.append(open_clone(clones, "gw0", "origin"))
            assert held[-1].location.git_dir.name == f"{expected}.git"
    finally:
        for clone in held:
            clone.close()
    with open_clone(clones, "gw0", "origin") as reused:  # released: the first one again
        assert reused.location.git_dir.name == "gw0.git"


@pytest.mark.parametrize("origin", ["sha1", "sha256"], indirect=True)
def test_a_clone_of_the_other_object_format_is_made_anew_in_its_place(origin: Origin, setup_of: SetupMaker) -> None:
    """A sha1 clone cannot fetch from a sha256 remote, nor the reverse: a run that locks a clone of the other
    format removes it and makes its own there, so clones of a format no run uses any more do not pile up."""
    setup = setup_of()
    assert setup.clones is not None
    other = "sha256" if setup.clones.object_format == "sha1" else "sha1"
    stale = origin.tmp / "clones" / "gw0.git"
    open_clone(replace(setup.clones, object_format=other), "gw0", "origin").close()  # an earlier run's clone
    with open_clone(setup.clones, "gw0", "origin") as clone:
        assert (clone.location.git_dir, clone.created) == (stale, True)
        setup.in_clone(clone)
        assert Repo(stale).git("rev-parse", "--show-object-format") == setup.clones.object_format
    assert sorted(path.name for path in stale.parent.glob("*.git")) == ["gw0.git"]


def test_a_repository_of_the_other_object_format_the_tool_did_not_make_is_left_as_it_is(origin: Origin) -> None:
    """Its name proves nothing: a repository someone keeps at ``DIR/gw0.git`` without the mark of a clone the
    tool made is never removed; the worker takes the next name."""
    theirs = origin.tmp / "clones" / "gw0.git"
    subprocess.run(["git", "init", "-q", "--bare", "--object-format=sha256", str(theirs)], check=True)
    (theirs / "kept").write_text("theirs\n")
    with open_clone(clones_of(origin), "gw0", "origin") as clone:
        assert (clone.location.git_dir.name, clone.created) == ("gw0-2.git", True)
    assert (theirs / "kept").read_text() == "theirs\n"
    assert Repo(theirs).git("rev-parse", "--show-object-format") == "sha256"


def test_every_clone_of_a_worker_in_use_is_one_clear_error(origin: Origin, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("alignment.clones.MAX_CLONES_PER_WORKER", 1)
    clones = clones_of(origin)
    with (
        open_clone(clones, "gw0", "origin"),
        pytest.raises(RepositoryError, match=r"every clone of worker gw0 \(1 clone\) is in use by another run"),
    ):
        open_clone(clones, "gw0", "origin")


def test_a_clones_dir_that_cannot_be_made_is_one_clear_error(origin: Origin) -> None:
    (origin.tmp / "file").write_text("x")
    clones = clones_of(origin, origin.tmp / "file" / "clones")
    with pytest.raises(RepositoryError, match=r"--worker-clones .*/file/clones: cannot create it"):
        open_clone(clones, "gw0", "origin")


def test_the_controller_maps_the_ids_xdist_reports_to_branches(origin: Origin, setup_of: SetupMaker) -> None:
    """A worker on another machine writes no map on the controller's disk: the ids it reports are mapped."""
    setup = setup_of(names=("feature-a", "f\u00e9ature"))
    ids = ["alignment/test_branches.py::test_branch[feature-a]", "alignment/test_branches.py::test_branch[f\\xe9ature]"]
    WorkerPushes(setup).pytest_xdist_node_collection_finished(node=None, ids=[*ids, "elsewhere.py::test_x"])
    assert NodeMap(setup).selected == {ids[0]: "feature-a", ids[1]: "f\u00e9ature"}


def test_the_controller_journals_what_workers_pushed_and_fails_what_they_never_reported(
    origin: Origin, setup_of: SetupMaker
) -> None:
    """Workers elsewhere journal on their own disks: the controller's journal must name the pushes for
    ``alignment undo``; a branch no worker reported is ``push_failed``."""
    setup = setup_of()
    ledger = RunLedger(setup)
    waiting = {
        name: BranchResult(
            name, "main", Status.COMPLETED, 1.0, old_tip=old, new_tip=origin.target, worker="gw0",
            push=PushRecord("origin", f"refs/alignment/aligned/origin/{name}"),
        )
        for name, old in origin.olds.items()
    }  # fmt: skip
    for result in waiting.values():
        ledger.branch_finished(result)
    workers = WorkerPushes(setup)
    landed = replace(waiting["feature-a"], push=PushRecord("origin", "x", pushed=True, replaced_tip="y"))
    workers.pushed["feature-a"] = landed
    assert workers.publish(ledger) == {"feature-b", "feature-c"}
    assert ledger.results["feature-b"].codes == (ErrorCode.PUSH_FAILED,)
    assert "worker gw0 ended before it reported its push" in ledger.results["feature-b"].message
    assert f"or at the merge {origin.target}" in ledger.results["feature-b"].message
    # the pushes that landed, and those that may have landed before their worker died unheard (undo checks)
    moves = {move.branch: move for move in MoveJournal(setup.folder.moves_dir).moves()}
    assert sorted(moves) == ["feature-a", "feature-b", "feature-c"]
    for name, move in moves.items():
        assert (move.old_tip, move.new_tip, move.remote) == (origin.olds[name], origin.target, "origin")


def test_a_pushed_branch_the_controller_never_recorded_is_recorded_not_a_crash(
    origin: Origin, setup_of: SetupMaker
) -> None:
    setup = setup_of()
    ledger = RunLedger(setup)
    workers = WorkerPushes(setup)
    stray = BranchResult(
        "feature-a", "main", Status.COMPLETED, 1.0, old_tip=origin.olds["feature-a"], new_tip=origin.target,
        push=PushRecord("origin", "x", pushed=True, replaced_tip="y"),
    )  # fmt: skip
    workers.pushed["feature-a"] = stray
    assert workers.publish(ledger) == frozenset()
    assert ledger.results["feature-a"] == stray


def test_a_plan_with_worker_clones_records_no_push(origin: Origin, setup_of: SetupMaker) -> None:
    setup = replace(setup_of(), predict=True)
    ledger = RunLedger(setup)
    would = BranchResult(
        "feature-a", "main", Status.COMPLETED, 1.0, old_tip=origin.olds["feature-a"], new_tip=origin.target,
        worker="gw0", push=PushRecord("origin", "refs/alignment/aligned/origin/feature-a"),
    )  # fmt: skip
    ledger.branch_finished(would)
    assert WorkerPushes(setup).publish(ledger) == frozenset()
    assert ledger.results["feature-a"] == would
    assert MoveJournal(setup.folder.moves_dir).moves() == []


def test_a_pinned_target_the_remote_no_longer_has_is_one_clear_error(origin: Origin, setup_of: SetupMaker) -> None:
    setup = setup_of()
    assert setup.clones is not None
    gone = replace(setup, snapshot=replace(setup.snapshot, target_commits={"main": "1" * 40}))
    with open_clone(setup.clones, "gw0", "origin") as clone, pytest.raises(RepositoryError) as raised:
        gone.in_clone(clone)
    assert str(raised.value).startswith("--remote origin: cannot fetch the pinned targets: ")


def test_a_lock_that_cannot_be_opened_is_one_clear_error(origin: Origin) -> None:
    """An OSError at the lock (here a directory in its place; a read-only DIR for a user) is the worker's
    RepositoryError, which fails its branches, not a crash at configure that xdist answers with a new worker."""
    (origin.tmp / "clones" / "gw0.lock").mkdir(parents=True)
    clones = clones_of(origin)
    with pytest.raises(RepositoryError, match=r"--worker-clones .*/clones: cannot lock gw0 \(Is a directory\)"):
        open_clone(clones, "gw0", "origin")
