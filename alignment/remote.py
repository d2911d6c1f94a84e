"""Branches that live on a remote (``--remote NAME``): fetched into a namespace of our own, published with a lease.

* **Fetch**: one ``git fetch`` of exactly the listed branches and targets, with explicit refspecs
  ``+refs/heads/B:refs/alignment/remotes/<remote>/heads/B``. No ``refs/heads/*`` mirroring: the user's
  branches, HEAD, index and worktree are not touched. The run reads (and pins targets at) these refs.
* **Align**: in memory as for local branches; the aligned commit is kept at
  ``refs/alignment/aligned/<remote>/<branch>`` (local refs/heads never move), which the result names.
* **Publish** (``push_branches``, called by the run's ledger): at the end of the run, by the process that
  holds the commits (the pytest controller or the orchestrator), per target: first one push of every
  backup, create-only (``--force-with-lease=<backup>:``, so an existing backup is never overwritten: one at
  the same commit is reused, one elsewhere gets the next free ``-2``, ``-3`` name), then one push of every
  branch whose backup is on the remote, each with ``--force-with-lease=refs/heads/B:<fetched tip>``. Each
  branch's move is journaled before that push (``alignment undo`` reads it). The outcome of every ref comes
  from ``git push --porcelain``: a result says "pushed" only for a ref git reported as landed.

Ctrl-C while publishing (``PushInterrupted``): the push under way finishes, so that git's answer says what
landed; no later push starts, and each branch not pushed says so. A second Ctrl-C stops the push at once:
its branches may still land, as after a timeout, and the journal counts them.

Why at the end and per target, not per branch: one connection per target instead of one per branch
(a batch costs about a millisecond per branch, DESIGN.md), ``--atomic`` per target when ``push_atomic_per_target`` asks
for all-or-nothing, and a branch's result is final only once its push is known: ``push_rejected`` or
``push_failed`` turn it into a failure that ``--lf`` retries.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path

from alignment.backup import Backup, Candidate, backup_folders, backup_note, candidate_names, clean_up, taken_note
from alignment.config import Settings
from alignment.document import record_push
from alignment.errors import FetchRejected, GitError, MissingRemoteRef, RepositoryError, one_line
from alignment.git import Git, PushedRef, PushUpdate, RefUpdate, branch_ref
from alignment.interrupts import on_ctrl_c
from alignment.journal import Move, MoveJournal, Outcome, Restoration
from alignment.model import BranchResult, ErrorCode, PushRecord, Status
from alignment.names import enclosing_names

NAMESPACE = "refs/alignment/"
LOCAL_BACKUPS = "local"
REMOTE_BACKUPS = "remote"


def tracking_root(remote: str) -> str:
    """Where the fetched branches and targets of ``remote`` live locally."""
    return f"{NAMESPACE}remotes/{remote}/heads/"


def aligned_ref(remote: str, branch: str) -> str:
    """Where the aligned commit of ``branch`` is kept locally (until the next run of that branch)."""
    return f"{NAMESPACE}aligned/{remote}/{branch}"


def check_remote(git: Git, remote: str) -> None:
    """``remote`` must be a remote configured in the repository (``git remote``)."""
    names = git.remote_names()
    if remote not in names:
        known = ", ".join(sorted(names)) or "none"
        raise RepositoryError(f"--remote {remote}: no such remote in {git.location.git_dir} (remotes: {known})")


def fetch_listed(git: Git, remote: str, names: Iterable[str], timeout: float | None = None) -> frozenset[str]:
    """Fetch ``names`` (branches and targets) from ``remote`` into ``tracking_root``; the names it lacks.

    One fetch when every name exists. git stops at the first missing ref, so then one ``ls-remote`` finds
    all missing names, their earlier fetched copies are deleted (the run must not align a stale one), and
    the rest is fetched. ``RepositoryError`` when the fetch fails or git leaves a copy as it was.
    """
    root = tracking_root(remote)
    wanted = {branch_ref(name): root + name for name in sorted(set(names))}
    try:
        try:
            _fetch(git, remote, wanted, timeout)
            return frozenset()
        except MissingRemoteRef:
            pass
        present = git.remote_refs(remote, wanted, timeout=timeout)
        missing = {ref: local for ref, local in wanted.items() if ref not in present}
        stale = [RefUpdate(local, None, tip) for local in missing.values() if (tip := git.resolve_ref(local))]
        if stale:
            git.update_refs(stale)
        if present:
            _fetch(git, remote, {ref: wanted[ref] for ref in present}, timeout)
    except GitError as error:  # any of its git calls: the remote went away meanwhile, say
        raise RepositoryError(f"--remote {remote}: fetch failed: {error.cause}") from None
    return frozenset(ref.removeprefix("refs/heads/") for ref in missing)


def _fetch(git: Git, remote: str, refspecs: Mapping[str, str], timeout: float | None) -> None:
    """``git.fetch`` into ``tracking_root``; copies git fetched but left as they were (it only warns: the tips are
    a shallow remote's roots) are one ``RepositoryError`` naming them: the run must not read an old copy, nor
    call a branch the remote has missing there."""
    try:
        git.fetch(remote, refspecs, timeout=timeout)
    except FetchRejected as error:
        names = ", ".join(sorted(ref.removeprefix(tracking_root(remote)) for ref in error.refs))
        reasons = "; ".join(sorted(set(error.refs.values())))
        raise RepositoryError(
            f"--remote {remote}: git fetched {names} but did not update its copies of them (rejected because "
            f"{reasons}: is '{remote}' a shallow clone?); the run would read old ones: fetch from a complete "
            "repository"
        ) from None


def remote_backup_refs(
    settings: Settings, branch: str, listed: frozenset[str], folders: Mapping[str, str]
) -> Iterator[Candidate]:
    """The full refs on the remote (``remote_backups``: ``remote`` or a namespace) for ``branch``'s backup, in
    order, each with why it is passed over (``candidate_names``). A listed name is passed over only where backups
    are the remote's branches; a folder of another listed branch's backup name (``folders``), in either place."""
    prefix, branches = settings.backup_branch_prefix, settings.remote_backups == REMOTE_BACKUPS
    for candidate in candidate_names(prefix, branch, listed if branches else (), folders):
        ref = branch_ref(candidate.name) if branches else settings.remote_backups + candidate.name
        yield Candidate(ref, candidate.passed_over)


def next_backup_ref(candidates: Iterator[Candidate], passed_over: list[str]) -> str | None:
    """The next ref of ``candidates`` (``remote_backup_refs``) to try, adding why each one before it was passed
    over to ``passed_over``; None when none is left."""
    for candidate in candidates:
        if candidate.passed_over is None:
            return candidate.name
        passed_over.append(candidate.passed_over)
    return None


def planned_remote_backup(
    settings: Settings, branch: str, commit: str, listed: frozenset[str], folders: Mapping[str, str]
) -> Backup | None:
    """A plan's backup of ``branch`` on the remote, named as results name it: the first name the run tries
    there, with the note it would get if the remote holds none of the names (a plan does not ask the remote,
    so it cannot tell one taken or to reuse there); None when every name is passed over. ``listed``,
    ``folders``: as for ``remote_backup_refs``."""
    passed_over: list[str] = []
    ref = next_backup_ref(remote_backup_refs(settings, branch, listed, folders), passed_over)
    if ref is None:
        return None
    return Backup(_shown(ref), commit, created=True, note=backup_note(_shown(ref), passed_over, reused=False))


def backups_on_remote(settings: Settings) -> bool:
    """Backups are pushed to the remote (a ``--remote`` run whose ``remote_backups`` is not ``local``)."""
    return settings.remote is not None and settings.enable_backup_branches and settings.remote_backups != LOCAL_BACKUPS


@dataclass(frozen=True)
class _Failure:
    """Why a branch was not (or may not have been) pushed; ``sent``: its own push had started (False: nothing of
    it was sent, so it did not land)."""

    code: ErrorCode
    message: str
    sent: bool = True


class PushInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped publishing: ``published`` holds the result of every branch that waited for its push."""

    def __init__(self, published: dict[str, BranchResult]) -> None:
        super().__init__("interrupted (Ctrl-C) while pushing")
        self.published = published

    @property
    def failed(self) -> frozenset[str]:
        return frozenset(name for name, result in self.published.items() if not result.succeeded)


def push_branches(
    git: Git, settings: Settings, journal: MoveJournal, results: Mapping[str, BranchResult], listed: frozenset[str]
) -> dict[str, BranchResult]:
    """Push every aligned branch of ``results`` to ``settings.remote``; their results, with what the push did.
    ``listed``: the branches of the run, whose names and backup names a backup's name keeps clear of.

    Per target: one push of the backups, then one push of the branches whose backup is there. Results
    that need no push (failed, up to date, a plan) are not in the answer. ``PushInterrupted``, with every
    result, after a Ctrl-C.
    """
    remote = settings.remote
    assert remote is not None
    waiting: dict[str, list[BranchResult]] = {}
    for result in results.values():
        if result.push is not None and result.push.aligned_ref is not None and result.succeeded:
            waiting.setdefault(result.target, []).append(result)
    published: dict[str, BranchResult] = {}
    pressed = threading.Event()
    with on_ctrl_c(lambda: _again(pressed)):
        for target, batch in waiting.items():
            stage = _Stage.NOT_REACHED
            backups: dict[str, Backup] = {}
            failures: dict[str, _Failure] = {}
            try:
                if not pressed.is_set():
                    stage = _Stage.BACKUPS
                    failures = _push_backups(git, settings, remote, batch, backups, listed)
                    stage = _Stage.NOT_REACHED
                ready = [result for result in batch if result.branch not in failures]
                if pressed.is_set():
                    failures.update((result.branch, _not_reached(remote, result)) for result in ready)
                else:
                    stage = _Stage.BRANCHES
                    failures.update(_push_branches(git, settings, remote, journal, target, ready))
                stage = _Stage.PUSHED
                for result in batch:
                    failure, backup = failures.get(result.branch), backups.get(result.branch)
                    outcome = _documented(_outcome(result, backup, failure), _new(result), failure, backup)
                    published[result.branch] = _local_backup_settled(outcome, git)
            except KeyboardInterrupt:  # a second Ctrl-C (the first one waits): what this target's push did so far
                for result in batch:
                    if result.branch not in published:
                        failure = failures.get(result.branch) or _interrupted(stage, remote, result)
                        outcome = _outcome(result, backups.get(result.branch), failure)
                        published[result.branch] = _local_backup_settled(outcome, None)
    if pressed.is_set():
        raise PushInterrupted(published)
    return published


def _again(pressed: threading.Event) -> bool:
    """Publishing under a Ctrl-C that waits (``on_ctrl_c``): the first one sets ``pressed``, so the running push
    ends with git's answer and no other starts; a second one raises at once (True)."""
    again = pressed.is_set()
    pressed.set()
    return again


class _Stage(Enum):
    """How far a target's publishing had come when a second Ctrl-C stopped it."""

    NOT_REACHED = "not reached"  # no push of its branches had started
    BACKUPS = "backups"  # the backups were being pushed
    BRANCHES = "branches"  # the branches' push had started (journaled first): it may land
    PUSHED = "pushed"  # every push had its answer; the change documents were being updated


def _interrupted(stage: _Stage, remote: str, result: BranchResult) -> _Failure | None:
    """Why ``result`` was not (or may not have been) pushed, a second Ctrl-C having stopped ``stage``; None once
    its push landed (its change document then says nothing of the push)."""
    if stage is _Stage.PUSHED:
        return None
    if stage is _Stage.BACKUPS:
        message = f"interrupted (Ctrl-C) while its backup was pushed to '{remote}'; not pushed"
        return _Failure(ErrorCode.PUSH_FAILED, message, sent=False)
    if stage is _Stage.BRANCHES:
        return _Failure(ErrorCode.PUSH_FAILED, maybe_landed(remote, result, "interrupted (Ctrl-C) while pushing"))
    return _not_reached(remote, result)


def _not_reached(remote: str, result: BranchResult) -> _Failure:
    """A branch whose push Ctrl-C came before: nothing of it was sent (its backup may be on the remote). Where
    the remote branch is now is not known: the lease of a push that never started was never checked."""
    return _Failure(
        ErrorCode.PUSH_FAILED,
        f"not pushed: interrupted (Ctrl-C) before its push; this run did not change '{result.branch}' on "
        f"'{remote}' (fetched at {_old(result)}; it may have moved since), ours is kept at "
        f"{aligned_ref(remote, result.branch)}; a rerun pushes it",
        sent=False,
    )


def _push_backups(
    git: Git,
    settings: Settings,
    remote: str,
    batch: Sequence[BranchResult],
    backups: dict[str, Backup],
    listed: frozenset[str],
) -> dict[str, _Failure]:
    """Create (or reuse) each branch's backup on the remote at its old tip: the failures; each backup (its full
    ref, and the note a local backup's result would have) goes into ``backups`` as it lands (a second Ctrl-C
    keeps those)."""
    if not backups_on_remote(settings):
        return {}
    failures: dict[str, _Failure] = {}
    folders = backup_folders(settings.backup_branch_prefix, listed)
    names = {result.branch: remote_backup_refs(settings, result.branch, listed, folders) for result in batch}
    passed_over: dict[str, list[str]] = {result.branch: [] for result in batch}
    pending = list(batch)
    while pending:
        tries = {result.branch: next_backup_ref(names[result.branch], passed_over[result.branch]) for result in pending}
        refs = {branch: ref for branch, ref in tries.items() if ref is not None}
        for branch in (branch for branch in tries if branch not in refs):
            message = f"every backup name of '{branch}' is taken on '{remote}'; not pushed"
            failures[branch] = _Failure(ErrorCode.PUSH_REJECTED, message, sent=False)
        pending = [result for result in pending if result.branch in refs]
        if not pending:
            break
        updates = [PushUpdate(refs[result.branch], _old(result), None) for result in pending]
        try:
            answers = git.push(remote, updates)
        except GitError as error:
            cause = f"could not reach '{remote}' to push the backup: {error.cause}"
            failure = _Failure(ErrorCode.PUSH_FAILED, cause, sent=False)
            return {**failures, **{result.branch: failure for result in pending}}
        taken = []
        for result in pending:
            ref = refs[result.branch]
            answer = answers.get(ref)
            if answer is not None and answer.landed:
                reused = answer.flag == "="  # it was there already, at the old tip
                note = backup_note(_shown(ref), passed_over[result.branch], reused=reused)
                backups[result.branch] = Backup(ref, _old(result), created=not reused, note=note)
            elif answer is not None and "stale info" in answer.summary:
                passed_over[result.branch].append(taken_note(_shown(ref)))
                taken.append(result)  # a backup at another commit exists there: keep it, try the next name
            else:
                refused = answer.summary if answer else "no answer"
                obstacle = _remote_obstacle(git, remote, ref)
                if obstacle.inside and obstacle.blocker is None:
                    taken.append(result)  # the name is a folder of the remote's refs there: try the next name
                    continue
                message = _backup_refused(remote, ref, refused, obstacle)
                failures[result.branch] = _Failure(ErrorCode.PUSH_REJECTED, message, sent=False)
        pending = taken
    return failures


@dataclass(frozen=True)
class _Obstacle:
    """What the remote holds in the way of a backup ref, by one ``ls-remote`` (nothing when it does not say):
    ``tip``: the ref itself, at that commit (another push created it since ours read the remote's refs);
    ``blocker``: its ref named like a folder of the backup ref (``refs/heads/backup-f`` for
    ``refs/heads/backup-f/x``), which no backup name under it can get past; ``inside``: whether it holds refs
    inside the backup ref's name (``ref/old``), which pass over only this name (as they do a local backup's)."""

    tip: str | None = None
    blocker: str | None = None
    inside: bool = False


def _remote_obstacle(git: Git, remote: str, ref: str) -> _Obstacle:
    """What the remote holds in the way of ``ref`` (``_Obstacle``)."""
    folders = enclosing_names(ref, namespace_parts=2)
    try:
        found = git.remote_refs(remote, (ref, *folders), inside=ref)
    except GitError:
        return _Obstacle()
    blocker = next((folder for folder in folders if folder in found), None)
    return _Obstacle(found.get(ref), blocker, any(name.startswith(f"{ref}/") for name in found))


def _backup_refused(remote: str, ref: str, refused: str, obstacle: _Obstacle) -> str:
    """Why the remote refused the backup ``ref`` (git's ``refused``), with what is in its way there."""
    if obstacle.blocker is not None:
        refused += f": its ref {obstacle.blocker} blocks it; rename that or set backup_branch_prefix"
    since = ""
    if obstacle.tip is not None:  # absent when our push read the remote's refs: another push created it since
        since = f": it was created there since the fetch, at {obstacle.tip} (another run aligning the same branch?)"
    return f"'{remote}' refused the backup {ref} ({refused}){since}; not pushed"


def _push_branches(
    git: Git, settings: Settings, remote: str, journal: MoveJournal, target: str, ready: Sequence[BranchResult]
) -> dict[str, _Failure]:
    """Push ``ready`` with a lease on each fetched tip, journaled first; the branches that did not land."""
    if not ready:
        return {}
    moves = {result.branch: Move(result.branch, _old(result), _new(result), remote=remote) for result in ready}
    for move in moves.values():
        journal.record(move)
    updates = [PushUpdate(branch_ref(result.branch), _new(result), _old(result)) for result in ready]
    try:
        answers = git.push(remote, updates, atomic=settings.push_atomic_per_target)
    except GitError as error:  # no answer: what was sent may have landed, and a timed-out push may still land
        return {
            result.branch: _Failure(ErrorCode.PUSH_FAILED, maybe_landed(remote, result, error.cause))
            for result in ready
        }
    failures = {}
    for result in ready:
        answer = answers.get(branch_ref(result.branch))
        if answer is None or not answer.landed:
            failures[result.branch] = _rejection(remote, target, result, answer)
        if answer is not None and not answer.landed:
            journal.reject(moves[result.branch])  # the remote refused it: never made (``runs``, ``undo`` skip it)
    return failures


def maybe_landed(remote: str, result: BranchResult, cause: str) -> str:
    """The message of a branch push that got no answer (git failed or was killed, the connection dropped, a
    timeout, a second Ctrl-C): git may have sent it before the answer was lost, and the remote can finish a push
    we stopped waiting for, so its outcome is unknown; the journal counts it as a move."""
    return (
        f"could not push to '{remote}': {cause}; it may have landed, or may still land (git may have sent it "
        "before its answer was lost, and the remote can finish it after we stop waiting): "
        f"'{result.branch}' there is at its old tip {_old(result)} or at the merge {_new(result)} "
        f"(`git fetch {remote}` shows which); the run's journal counts it, so `alignment undo RUN_ID` puts it "
        "back if it landed and a rerun finishes it"
    )


def _rejection(remote: str, target: str, result: BranchResult, answer: PushedRef | None) -> _Failure:
    """Why ``result``'s push did not land; "their commit stays" only when another party's push moved it."""
    kept = f"ours is kept at {aligned_ref(remote, result.branch)}"
    if answer is None:
        return _Failure(ErrorCode.PUSH_FAILED, f"'{remote}' gave no answer for '{result.branch}'; {kept}")
    if "stale info" in answer.summary:
        reason = f"the lease was lost: '{result.branch}' moved on '{remote}' since it was fetched at {_old(result)}"
        kept = f"their commit stays, {kept}"
    elif "atomic" in answer.summary:
        reason = f"the atomic push of target '{target}' failed on another branch"
    else:
        reason = f"'{remote}' refused it: {one_line(answer.summary)}"
    return _Failure(ErrorCode.PUSH_REJECTED, f"not pushed, {reason}; {kept}")


def _outcome(result: BranchResult, backup: Backup | None, failure: _Failure | None) -> BranchResult:
    """``result`` with what its push did; ``backup``: its backup on the remote (None: none made there), whose
    note it gets."""
    record = result.push
    assert record is not None
    ref = None if backup is None else backup.name
    if backup is not None and backup.note is not None:
        result = replace(result, notes=(*result.notes, backup.note))
    if failure is None:
        pushed = replace(record, pushed=True, replaced_tip=result.old_tip, remote_backup=ref)
        return replace(result, push=pushed, backup_branch=_backup_branch(result, ref))
    return replace(
        result,
        backup_branch=_backup_branch(result, ref),
        status=Status.FAILED_INTEGRATION,
        codes=(failure.code,),
        message=failure.message,
        new_tip=None,
        push=replace(record, remote_backup=ref),
    )


def unpushed(result: BranchResult, message: str) -> BranchResult:
    """``result`` of a branch whose push was never reported (its worker died), so may have landed: ``push_failed``,
    so that ``--lf`` retries it."""
    return _unpushed(result, _Failure(ErrorCode.PUSH_FAILED, message), _new(result))


def not_pushed(result: BranchResult) -> BranchResult:
    """``result`` of a branch whose push Ctrl-C came before (``_not_reached``; its aligned commit may be unknown
    here: its worker's clone holds it): ``push_failed``, so that ``--lf`` retries it."""
    record = result.push
    assert record is not None
    return _unpushed(result, _not_reached(record.remote, result), result.new_tip)


def _unpushed(result: BranchResult, failure: _Failure, aligned_commit: str | None) -> BranchResult:
    """``result`` with ``failure``, its push's, in its result and change document."""
    return _local_backup_settled(_documented(_outcome(result, None, failure), aligned_commit, failure), None)


def _local_backup_settled(result: BranchResult, git: Git | None) -> BranchResult:
    """``result`` once the local backup the pipeline left to the push (``PushRecord.local_backup``) is settled:
    removed (auto_cleanup_backups) by ``git`` when the push landed; kept, as its notes say, when the push did
    not land or ``git`` is None (a second Ctrl-C: nothing more is done)."""
    record = result.push
    if record is None or record.local_backup is None:
        return result
    if record.pushed and git is not None:
        notes = clean_up(git, Backup(record.local_backup, _old(result), created=True), result.document)
    else:
        why = "the push did not land" if not record.pushed else "interrupted (Ctrl-C) before it was removed"
        notes = [f"backup '{record.local_backup}' kept: {why}"]
    return replace(result, notes=(*result.notes, *notes), push=replace(record, local_backup=None))


def _documented(
    result: BranchResult, aligned_commit: str | None, failure: _Failure | None, backup: Backup | None = None
) -> BranchResult:
    """``result``, after its change document was brought up to date with what its push did (``aligned_commit``:
    the commit it pushed or would have, None when not known here; ``failure``: why it did not land; ``backup``: its
    backup on the remote, whose note it adds; a note when the document could not be updated)."""
    if result.document is None:
        return result
    notes = () if backup is None or backup.note is None else (backup.note,)
    try:
        record_push(Path(result.document), result, aligned_commit, sent=failure is None or failure.sent, notes=notes)
    except OSError as error:
        return replace(result, notes=(*result.notes, f"change document not updated after the push: {error}"))
    return result


def _backup_branch(result: BranchResult, backup: str | None) -> str | None:
    """The result's ``backup_branch``: the remote backup's name (``_shown``)."""
    return result.backup_branch if backup is None else _shown(backup)


def _shown(ref: str) -> str:
    """A backup ref on the remote as results name it: its branch name (its full ref outside refs/heads)."""
    return ref.removeprefix("refs/heads/")


def _old(result: BranchResult) -> str:
    assert result.old_tip is not None
    return result.old_tip


def _new(result: BranchResult) -> str:
    assert result.new_tip is not None
    return result.new_tip


def restore_pushed(git: Git, remote: str, moves: Sequence[Move], *, dry_run: bool = False) -> list[Restoration]:
    """Undo pushes to ``remote``: a branch still at the commit we pushed goes back to its old tip, pushed with
    a lease on that commit (one ``ls-remote`` and one push for all); one at its old tip was never pushed;
    one anywhere else moved again since and is left alone."""
    refs = [branch_ref(move.branch) for move in moves]
    try:
        now = git.remote_refs(remote, refs)
    except GitError as error:
        return [Restoration(move, Outcome.FAILED, f"could not reach '{remote}': {error.cause}") for move in moves]
    done: dict[str, Restoration] = {}
    back = []
    for move in moves:
        tip = now.get(branch_ref(move.branch))
        where = f"'{move.branch}' on '{remote}'"
        if tip == move.old_tip:
            done[move.branch] = Restoration(move, Outcome.NOT_MOVED, f"{where} is at its old tip {move.old_tip}")
        elif tip != move.new_tip:
            message = f"{where} moved again since (now at {tip}); left as it is"
            done[move.branch] = Restoration(move, Outcome.MOVED_SINCE, message)
        elif dry_run:
            done[move.branch] = Restoration(move, Outcome.RESTORED, f"would restore {where} to {move.old_tip}")
        else:
            back.append(move)
    if back:
        done.update(_push_back(git, remote, back))
    return [done[move.branch] for move in moves]


def _push_back(git: Git, remote: str, moves: Sequence[Move]) -> dict[str, Restoration]:
    updates = [PushUpdate(branch_ref(move.branch), move.old_tip, move.new_tip) for move in moves]
    try:
        answers = git.push(remote, updates)
    except GitError as error:
        message = f"could not push to '{remote}': {error.cause}"
        return {move.branch: Restoration(move, Outcome.FAILED, message) for move in moves}
    done = {}
    for move in moves:
        answer = answers.get(branch_ref(move.branch))
        where = f"'{move.branch}' on '{remote}'"
        if answer is not None and answer.landed:
            done[move.branch] = Restoration(move, Outcome.RESTORED, f"restored {where} to its old tip {move.old_tip}")
        elif answer is not None and "stale info" in answer.summary:
            done[move.branch] = Restoration(move, Outcome.MOVED_SINCE, f"{where} moved again since; left as it is")
        else:
            refused = answer.summary if answer else "no answer"
            done[move.branch] = Restoration(move, Outcome.FAILED, f"could not restore {where}: {refused}")
    return done


def push_record(remote: str, branch: str, moved: bool, local_backup: str | None = None) -> PushRecord:
    """A branch's push state before publishing: nothing pushed yet; its aligned commit's ref if it moved, and the
    local backup auto_cleanup_backups removes once its push landed."""
    return PushRecord(remote, aligned_ref(remote, branch) if moved else None, pushed=False, local_backup=local_backup)
