"""The pipeline of one branch, and the spec's ``run_alignment_for_branch``.

Steps, in order: ``prepare`` (checks, then the backup before anything else), ``integrate`` (merge the
target in), ``detect`` (errors), ``document``, ``finalize``. Only ``finalize`` moves the branch, once, by
compare-and-swap from the old tip, after integration and detection passed: a branch that fails anywhere is
exactly where it was. ``finish`` always runs (the pytest fixture's teardown, or ``run``'s ``finally``):
it documents a failure, restores the branch if anything moved it, removes worktrees and builds the result.

A conflict is explained before the branch fails: the target commit behind each conflicted path is found by
one search shared by all its paths (``explain.explain_conflicts``), within a budget of merges and seconds.
In a plan (``RunSetup.predict``) the same steps predict the outcome: no backup, but the result names the one
the run would make or reuse, with its note (one git could not create still fails the branch; with ``--remote``
the name the push tries first), no worktree, and ``finalize`` moves nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import reprlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import TypeVar, cast

from alignment.backup import Backup, backup_folders, clean_up, create_backup
from alignment.components import (
    BranchContext,
    ChangeRecord,
    Deadline,
    DocGenerator,
    ErrorDetector,
    Integration,
    IntegrationUtility,
)
from alignment.config import Settings
from alignment.detect import blocking_summary
from alignment.errors import (
    AlignmentError,
    GitError,
    GitTimeout,
    RefUpdateRejected,
    RepositoryGone,
    StepFailed,
    UsageProblem,
    counted,
    first_and_more,
    one_line,
    seconds,
)
from alignment.explain import Budget, explain_conflicts
from alignment.git import Conflict, Git, RefUpdate, branch_ref
from alignment.history import HistoryWindow, brought_in
from alignment.inputs import BranchInput
from alignment.integrate import REBASE_PREDICTED, MergeOrRebaseIntegrator, MergesAhead
from alignment.journal import Move, MoveJournal, Outcome, restore
from alignment.logs import branch_scope
from alignment.model import (
    Action,
    BranchResult,
    BranchSpec,
    CommitInfo,
    Culprit,
    ErrorCode,
    Finding,
    PushRecord,
    Status,
    Strategy,
    Unexplained,
    intended_action,
    run_signature,
)
from alignment.names import branch_file_stem, invalid_branch_name
from alignment.registry import Components
from alignment.remote import aligned_ref, backups_on_remote, planned_remote_backup, push_record
from alignment.resources import SlotLimiter
from alignment.session import RunSetup, set_up_run
from alignment.workspace import Workspace

log = logging.getLogger(__name__)
COMMITS_LISTED = 50
HISTORY_WINDOW = 2000  # target commits read once per process to list what each merge brings in
CONFLICTS_NAMED = 10  # paths an error_message names; the change document lists them all
Step = TypeVar("Step", bound=Callable[["BranchAlignment"], None])
Item = TypeVar("Item")
RETURNED = reprlib.Repr()  # a component's wrong return value as a message shows it: an object's repr up to 160
RETURNED.maxother = 160


def _step(status: Status) -> Callable[[Step], Step]:
    """A pipeline step whose failures (a git timeout among them) get ``status``.

    It refuses to run after a failed step or once the run was interrupted (``Runtime.interrupt``), logs into
    the branch's log, and records its own failure before re-raising it, so that ``finish`` knows what happened
    whoever called the step.
    """

    def decorate(method: Step) -> Step:
        @functools.wraps(method)
        def run_step(self: BranchAlignment) -> None:
            if self.failure is None and self.runtime.interrupted:
                self.failure = self._interruption()
            if self.failure is not None:
                raise self.failure
            self.running_step = status
            try:
                with branch_scope(self.spec.name), _git_failures_as(status):
                    method(self)
            except Exception as error:
                self.fail(error)
                raise

        return cast(Step, run_step)

    return decorate


class BranchAlignment:
    """The steps of one branch's alignment and the state they leave for ``finish``."""

    def __init__(self, runtime: Runtime, spec: BranchSpec, started_at: float | None = None) -> None:
        self.runtime = runtime
        self.spec = spec
        self.settings = runtime.setup.settings
        self.deadline = Deadline(self.settings.branch_alignment_timeout_seconds)
        self.workspace = Workspace(runtime.git, runtime.setup.scratch_dir, branch_file_stem(spec.name))
        self.started_at = started_at if started_at is not None else time.time()
        self._started = time.monotonic()
        self.context: BranchContext | None = None
        self.backup: Backup | None = None
        self.backup_after_push: str | None = None  # auto_cleanup_backups: the push removes it once it landed
        self.integration: Integration | None = None
        self.findings: tuple[Finding, ...] = ()
        self.culprits: tuple[Culprit, ...] = ()
        self.unexplained: tuple[Unexplained, ...] = ()
        self.document_path: str | None = None
        self.moving_to: str | None = None
        self.running_step = Status.FAILED_INTEGRATION
        self.completed = False
        self.failure: StepFailed | None = None
        self.notes: list[str] = []
        self._result: BranchResult | None = None

    @property
    def git(self) -> Git:
        return self.runtime.git

    # -- steps --------------------------------------------------------------------------------------------

    @_step(Status.FAILED_INTEGRATION)
    def prepare(self) -> None:
        """Pin the target, read the branch, refuse what must not be touched, then create the backup.

        A branch checked out (rebased, bisected) in a worktree is refused unless it is up to date: nothing
        moves it then, so there is nothing to protect the worktree from (``git merge`` says "Already up to
        date." there). ``finalize`` asks again right before a move, whatever integration made of it.
        """
        setup = self.runtime.setup
        target_commit = setup.snapshot.target_commits.get(self.spec.target)
        if target_commit is None:
            raise StepFailed(
                Status.FAILED_INTEGRATION,
                [ErrorCode.TARGET_NOT_FOUND],
                f"target branch '{self.spec.target}' does not exist",
            )
        if setup.remote is None:
            tip = self.git.resolve_branch(self.spec.name)
        else:
            tip = self.git.resolve_ref(setup.tip_ref(self.spec.name))
        if tip is None:
            where = f" on '{setup.remote}'" if setup.remote else ""
            raise StepFailed(
                Status.FAILED_INTEGRATION,
                [ErrorCode.BRANCH_NOT_FOUND],
                f"branch '{self.spec.name}' does not exist{where}",
            )
        pinned = setup.snapshot.tips.get(self.spec.name) == tip
        relation = setup.snapshot.relation(self.spec.name) if pinned else self._relation(tip, target_commit)
        if setup.remote is None and relation is not Action.UP_TO_DATE:  # one up to date never moves
            self._refuse_if_checked_out()
        self.context = BranchContext(
            git=self.git,
            spec=self.spec,
            old_tip=tip,
            target_commit=target_commit,
            relation=relation,
            policy=self.settings.policy(self.spec.target),
            settings=self.settings,
            deadline=self.deadline,
            workspace=self.workspace,
            run_id=setup.run_id,
            changes_dir=setup.folder.changes_dir,
            predict=setup.predict,
        )
        log.info("aligning '%s' (%s) with '%s' at %s", self.spec.name, tip, self.spec.target, target_commit)
        if relation is Action.UP_TO_DATE or not self.settings.enable_backup_branches:
            return
        runtime = self.runtime
        if not backups_on_remote(self.settings):  # local backups: made, or in a plan (dry_run) only named
            prefix, existing = self.settings.backup_branch_prefix, setup.snapshot.backups
            self.backup = create_backup(
                self.git,
                prefix,
                self.spec.name,
                tip,
                runtime.listed,
                existing,
                runtime.backup_folders,
                dry_run=setup.predict,
            )
        elif setup.predict:  # the push makes it; a plan names the one the push tries first
            self.backup = planned_remote_backup(
                self.settings, self.spec.name, tip, runtime.listed, runtime.backup_folders
            )
        if self.backup is None:
            return
        if self.backup.note:
            self.notes.append(self.backup.note)
        log.info("%s '%s' at %s", "planned backup" if setup.predict else "backup", self.backup.name, tip)

    @_step(Status.FAILED_INTEGRATION)
    def integrate(self) -> None:
        """Integrate: compute the commit the branch would move to; conflicts fail the branch."""
        context = self._context()
        merges = self.runtime.merges
        if merges is not None and context.relation is Action.MERGE:
            timeout = context.deadline.limit(self.settings.integration_timeout_seconds, Status.FAILED_INTEGRATION)
            merges.prepare(context.old_tip, context.target_commit, timeout / 2)  # the rest: its own merge
        returned: object = self.runtime.components.integration_utility.integrate(context)
        integration = _as_integration(returned)
        if integration is None:
            expected = (
                "an Integration (action an Action, new_tip a str or None, conflicts a tuple of Conflict, "
                "notes a tuple of str)"
            )
            raise self._wrong_return("integration_utility", "integrate()", returned, expected)
        self.integration = integration
        for note in integration.notes:
            log.info("'%s': %s", self.spec.name, note)
        self.notes.extend(integration.notes)
        if integration.conflicts:
            self._explain(integration)
            raise StepFailed(
                Status.FAILED_INTEGRATION,
                [ErrorCode.MERGE_CONFLICT_UNRESOLVABLE],
                conflict_message(
                    [conflict.path for conflict in integration.conflicts], integration.action, predicted=context.predict
                ),
            )
        if integration.new_tip is None:
            raise StepFailed(
                Status.FAILED_INTEGRATION,
                [ErrorCode.INTEGRATION_FAILED],
                f"integration of '{self.spec.target}' into '{self.spec.name}' produced no commit",
            )
        self._refuse_to_drop_the_old_tip(integration.action, integration.new_tip)
        log.info("integrated '%s': %s -> %s", self.spec.name, integration.action.value, integration.new_tip)

    @_step(Status.FAILED_ERROR_DETECTION)
    def detect(self) -> None:
        """Detect: findings on the integrated commit; an error the merge introduced fails the branch."""
        returned: object = self.runtime.components.error_detector.detect(self._context(), self._integration())
        findings = _tuple_of(Finding, returned)
        if findings is None:
            raise self._wrong_return("error_detector", "detect()", returned, "a tuple of Finding")
        self.findings = findings
        for finding in self.findings:
            where = f" {finding.place}" if finding.place else ""
            log.info("finding %s %s%s: %s", finding.severity.value, finding.code, where, finding.message)
        codes = list(dict.fromkeys(finding.code for finding in self.findings if finding.blocks))
        if codes:
            raise StepFailed(Status.FAILED_ERROR_DETECTION, codes, blocking_summary(self.findings))

    @_step(Status.FAILED_ERROR_DETECTION)
    def document(self) -> None:
        """Document: write the change document of the alignment about to be applied."""
        self.document_path = self._write_document(Status.COMPLETED, None)

    @_step(Status.FAILED_INTEGRATION)
    def finalize(self) -> None:
        """Move the branch to the integrated commit: once, by compare-and-swap from the old tip.

        The move is journaled, and marked as under way, before the compare-and-swap: if anything stops the
        call after git committed it (a timeout signal, a crash), ``finish`` or the controller puts it back.
        A plan moves nothing: the integrated commit is the prediction. With ``--remote`` no local branch
        moves: the commit is kept at the tool's ``aligned_ref``, and publishing pushes it at the end of the run.
        """
        context = self._context()
        new_tip = self._integration().new_tip
        remote = self.runtime.setup.remote
        if new_tip is not None and new_tip != context.old_tip and not context.predict and remote is not None:
            self.git.update_refs([RefUpdate(aligned_ref(remote, self.spec.name), new_tip, None, checked=False)])
            log.info("aligned '%s' %s -> %s, kept at %s", self.spec.name, context.old_tip, new_tip,
                     aligned_ref(remote, self.spec.name))  # fmt: skip
        elif new_tip is not None and new_tip != context.old_tip and not context.predict:
            self._refuse_if_checked_out()
            move = Move(self.spec.name, context.old_tip, new_tip)
            self.runtime.journal.record(move)
            self.moving_to = new_tip
            try:
                self.git.update_refs([RefUpdate(branch_ref(self.spec.name), new_tip, context.old_tip)])
            except RefUpdateRejected as rejected:
                self.moving_to = None
                self.runtime.journal.reject(move)
                raise self._rejection(rejected) from None
            log.info("moved '%s' %s -> %s", self.spec.name, context.old_tip, new_tip)
        self.completed = True

    # -- outcome ------------------------------------------------------------------------------------------

    def fail(self, error: BaseException) -> None:
        """Record why the steps stopped: a ``StepFailed`` result, or an unexpected error (``exception``)."""
        with branch_scope(self.spec.name):
            if isinstance(error, StepFailed):
                self.failure = error
            else:
                said = f"; git said:\n{error.stderr}" if isinstance(error, GitError) and error.stderr else ""
                log.exception("unexpected error while aligning '%s'%s", self.spec.name, said, exc_info=error)
                message = f"{type(error).__name__}: {error}"
                self.failure = StepFailed(Status.EXCEPTION, [ErrorCode.UNEXPECTED_ERROR], message)
            log.info("'%s' failed: %s", self.spec.name, self.failure.message)

    def interrupted(self) -> StepFailed | None:
        """Why the steps stopped without a result of their own (the branch's timeout signal, Ctrl-C), as the
        result will say; None when they had completed (a signal that came after the move changes nothing)."""
        if self.completed:
            return None
        if self.failure is None:
            self.failure = self._interruption()
        return self.failure

    def finish(self) -> BranchResult:
        """Always runs last: document a failure, restore the branch if needed, clean up; the result."""
        if self._result is not None:
            return self._result
        with branch_scope(self.spec.name):
            self.interrupted()
            try:
                if self.failure is not None:
                    self._document_failure(self.failure)
                    self._restore()
                elif self.settings.auto_cleanup_backups and not self.runtime.setup.predict:
                    self._remove_backup()
            finally:
                self._close_workspace()
        self._result = self._build_result()
        return self._result

    def run_steps(self) -> None:
        """The steps after ``prepare``, in their one order: integrate, detect, document, move the branch."""
        self.integrate()
        self.detect()
        self.document()
        self.finalize()

    def run(self) -> BranchResult:
        """Every step, then ``finish``; a branch's failure is a result, never an exception."""
        try:
            self.prepare()
            self.run_steps()
        except Exception:  # noqa: S110 - the step recorded it; finish() turns it into the result
            pass
        finally:
            result = self.finish()
        return result

    # -- helpers ------------------------------------------------------------------------------------------

    def _context(self) -> BranchContext:
        if self.context is None:
            raise RuntimeError("prepare() must run first")
        return self.context

    def _integration(self) -> Integration:
        if self.integration is None:
            raise RuntimeError("integrate() must run first")
        return self.integration

    def _explain(self, integration: Integration) -> None:
        """Name the target commit behind each conflicted path, within the explanation budget (what it does
        not reach is listed as unexplained); an explanation that fails is only a note."""
        context = self._context()
        paths = [conflict.path for conflict in integration.conflicts]
        timeout = context.deadline.limit(self.settings.integration_timeout_seconds, Status.FAILED_INTEGRATION)
        budget = Budget(self.settings.explain_budget_merges, self.settings.explain_budget_seconds)
        try:
            explanation = explain_conflicts(
                self.git, context.old_tip, context.target_commit, paths, budget, timeout=timeout
            )
        except AlignmentError as error:
            self.notes.append(f"conflict causes not found: {one_line(str(error))}")
            return
        self.culprits, self.unexplained = explanation.culprits, explanation.unexplained
        log.info(
            "conflict causes of '%s': %s explained, %d left unexplained, with %s",
            self.spec.name,
            counted(len(explanation.culprits), "path"),
            sum(len(group.paths) for group in explanation.unexplained),
            counted(explanation.merges, "in-memory merge"),
        )

    def _relation(self, tip: str, target_commit: str) -> Action:
        """Ancestry for a branch that moved since the snapshot (two git calls instead of none)."""
        if self.git.is_ancestor(target_commit, tip):
            return Action.UP_TO_DATE
        return Action.FAST_FORWARD if self.git.is_ancestor(tip, target_commit) else Action.MERGE

    def _refuse_if_checked_out(self) -> None:
        for checkout in self.git.checkouts():
            if checkout.branch == self.spec.name:
                raise StepFailed(
                    Status.FAILED_INTEGRATION,
                    [ErrorCode.BRANCH_CHECKED_OUT],
                    f"'{self.spec.name}' is {checkout.state} in the worktree at {checkout.path}; it was not touched",
                )

    def _interruption(self) -> StepFailed:
        """The failure of steps that stopped without a result: a timeout (pytest-timeout) or an interrupt."""
        if self.deadline.expired:
            message = f"branch alignment timed out after {seconds(self.deadline.seconds)} s"
            return StepFailed(self.running_step, [ErrorCode.TIMEOUT], message)
        return StepFailed(Status.EXCEPTION, [ErrorCode.INTERRUPTED], "alignment was interrupted before it finished")

    def _record(self, status: Status, message: str | None) -> ChangeRecord:
        context = self._context()
        integration = self.integration
        new_tip = integration.new_tip if integration else None
        commits: tuple[CommitInfo, ...] = ()
        more = False
        if context.relation is not Action.UP_TO_DATE:
            commits, more = self.runtime.commits_brought_in(context.old_tip, context.target_commit)
        return ChangeRecord(
            context=context,
            status=status,
            action=self._action(),
            new_tip=new_tip,
            backup_branch=self.backup.name if self.backup else None,
            merged_files=context.merged_files(new_tip) if new_tip else (),
            commits=commits,
            more_commits=more,
            conflicts=integration.conflicts if integration else (),
            findings=self.findings,
            message=message,
            culprits=self.culprits,
            unexplained=self.unexplained,
            notes=tuple(self.notes),
        )

    def _action(self) -> Action:
        """What the alignment did, or would have done had it not stopped before integration returned (a
        diverged branch: the merge or rebase its target's strategy says)."""
        if self.integration is not None:
            return self.integration.action
        context = self._context()
        return intended_action(context.relation, context.policy.strategy)

    def _write_document(self, status: Status, message: str | None) -> str:
        path: object = self.runtime.components.doc_generator.document(self._record(status, message))
        if isinstance(path, os.PathLike):
            path = os.fspath(path)
        if not isinstance(path, str):
            raise self._wrong_return("doc_generator", "document()", path, "the document's path, a str")
        return path

    def _wrong_return(self, key: str, call: str, value: object, expected: str) -> StepFailed:
        """A component's return value of the wrong type: this branch's ``exception``, naming the component, raised
        where the pipeline receives it, before the value can move the branch or break its result or report."""
        kind = type(getattr(self.runtime.components, key))
        return StepFailed(
            Status.EXCEPTION,
            [ErrorCode.UNEXPECTED_ERROR],
            f"{key} {kind.__module__}.{kind.__qualname__}: {call} returned {RETURNED.repr(value)}, expected {expected}",
        )

    def _refuse_to_drop_the_old_tip(self, action: Action, new_tip: str) -> None:
        """Whatever integration utility made it, a merge's or fast-forward's new tip must contain the old tip:
        one that does not would take the branch's own commits off it. Only a rebase under the rebase strategy
        is exempt: its new tip does not by design (its backup holds the old commits; the configuration refuses
        the rebase strategy without backups); an integrator that calls its commit a merge there is held to it.

        Free where the pipeline knows the answer: the old tip itself, the target a fast-forward goes to, a
        commit whose parents include the old tip (the default merge, read from the commit it wrote); else
        one ``merge-base --is-ancestor``.
        """
        context = self._context()
        if self._may_drop_the_old_tip(action):
            return
        if new_tip == context.old_tip or (context.relation is Action.FAST_FORWARD and new_tip == context.target_commit):
            return
        if context.old_tip in self.git.commit_parents(new_tip) or self.git.is_ancestor(context.old_tip, new_tip):
            return
        raise StepFailed(
            Status.FAILED_INTEGRATION,
            [ErrorCode.INTEGRATION_FAILED],
            f"integration of '{self.spec.target}' into '{self.spec.name}' produced {new_tip}, which does not "
            f"contain the branch's tip {context.old_tip}: moving there would drop its commits; not moved",
        )

    def _may_drop_the_old_tip(self, action: Action) -> bool:
        """Only a rebase under the rebase strategy: any other new tip was made to contain the old tip."""
        return self._context().policy.strategy is Strategy.REBASE and action is Action.REBASE

    def _document_failure(self, failure: StepFailed) -> None:
        if self.context is None:
            return
        try:
            self.document_path = self._write_document(failure.status, failure.message)
        except Exception as error:  # the failure itself is what the result must say
            log.warning("could not write the change document of '%s': %s", self.spec.name, error)
            self.notes.append(f"no change document: {error}")

    def _restore(self) -> None:
        """Put back a branch this alignment moved (or may have moved: the call was interrupted)."""
        if self.moving_to is None or self.context is None:
            return
        move = Move(self.spec.name, self.context.old_tip, self.moving_to)
        restoration = restore(self.git, move, journal=self.runtime.journal)  # ``alignment runs`` counts no move
        if restoration.outcome is not Outcome.NOT_MOVED:
            backup = f"; backup '{self.backup.name}' holds the old tip" if self.backup else ""
            failed = restoration.outcome is Outcome.FAILED
            self.notes.append(restoration.message + (backup if failed else ""))
        self.moving_to = None

    def _remove_backup(self) -> None:
        """auto_cleanup_backups: only a backup whose commits all stay reachable from the new tip. In a
        ``--remote`` run, the backup of a branch still to be pushed is left to the push, which removes it once
        the push landed (``backup_after_push``): a push that fails keeps it.

        A backup at the old tip of a branch that was not rebased needs no git call: ``integrate`` refused any
        other new tip that does not contain the old tip (``_refuse_to_drop_the_old_tip``).
        """
        integration = self.integration
        if self.backup is None or integration is None or integration.new_tip is None:
            return
        known = self.backup.commit == self._context().old_tip and not self._may_drop_the_old_tip(integration.action)
        if not known and not self.git.is_ancestor(self.backup.commit, integration.new_tip):
            self.notes.append(f"backup '{self.backup.name}' kept: it holds commits the new tip does not contain")
        elif self.runtime.setup.remote is not None and integration.new_tip != self._context().old_tip:
            self.backup_after_push = self.backup.name if self.backup.created else None
        else:
            self.notes.extend(clean_up(self.git, self.backup, self.document_path))

    def _rejection(self, rejected: RefUpdateRejected) -> StepFailed:
        """Why a compare-and-swap was refused: someone moved the branch, or its ref is locked."""
        old_tip = self._context().old_tip
        now = self.git.resolve_branch(self.spec.name)
        if now == old_tip:
            return StepFailed(
                Status.FAILED_INTEGRATION,
                [ErrorCode.REF_LOCKED],
                f"'{self.spec.name}' could not be updated ({rejected.detail}); left as it is",
            )
        return StepFailed(
            Status.FAILED_INTEGRATION,
            [ErrorCode.BRANCH_MOVED],
            f"'{self.spec.name}' moved during alignment (now at {now}, expected {old_tip}); left as it is",
        )

    def _close_workspace(self) -> None:
        try:
            self.workspace.close()
        except Exception as error:
            log.warning("could not remove a worktree of '%s': %s", self.spec.name, error)
            self.notes.append(f"worktree cleanup failed: {error}")

    def _build_result(self) -> BranchResult:
        context = self.context
        failure = self.failure
        integration = self.integration
        return BranchResult(
            branch=self.spec.name,
            target=self.spec.target,
            status=Status.COMPLETED if failure is None else failure.status,
            seconds=time.monotonic() - self._started,
            codes=failure.codes if failure else (),
            message=failure.message if failure else None,
            document=self.document_path,
            action=self._action() if context else Action.NONE,
            target_commit=context.target_commit if context else None,
            old_tip=context.old_tip if context else None,
            new_tip=integration.new_tip if self.completed and integration else None,
            backup_branch=self.backup.name if self.backup else None,
            findings=self.findings,
            notes=tuple(self.notes),
            started_at=self.started_at,
            finished_at=time.time(),
            worker=self.runtime.worker or threading.current_thread().name,
            culprits=self.culprits,
            unexplained=self.unexplained,
            planned=self.runtime.setup.predict,
            push=self._push_record(),
        )

    def _push_record(self) -> PushRecord | None:
        """In a ``--remote`` run (not a plan): nothing pushed yet; the aligned commit's ref if it moved."""
        remote = self.runtime.setup.remote
        if remote is None or self.runtime.setup.predict:
            return None
        integration = self.integration
        moved = self.completed and integration is not None and integration.new_tip != self._context().old_tip
        return push_record(remote, self.spec.name, moved, self.backup_after_push)


def _tuple_of(kind: type[Item], value: object) -> tuple[Item, ...] | None:
    """A component's tuple or list of ``kind`` as a tuple; None for anything else."""
    if isinstance(value, (tuple, list)) and all(isinstance(item, kind) for item in value):
        return tuple(value)
    return None


def _as_integration(value: object) -> Integration | None:
    """What an integration utility returned, if the pipeline can act on it (conflicts and notes as tuples);
    else None."""
    if not isinstance(value, Integration):
        return None
    conflicts = _tuple_of(Conflict, value.conflicts)
    notes = _tuple_of(str, value.notes)
    tip = value.new_tip is None or isinstance(value.new_tip, str)
    if conflicts is None or notes is None or not isinstance(value.action, Action) or not tip:
        return None
    if conflicts is value.conflicts and notes is value.notes:  # tuples already (``tuple`` of one is that one)
        return value
    return dataclasses.replace(value, conflicts=conflicts, notes=notes)


def conflict_message(paths: Sequence[str], action: Action = Action.MERGE, *, predicted: bool = False) -> str:
    """The spec's ``error_message`` of a conflict of ``action`` (a merge's, a rebase's): the first
    ``CONFLICTS_NAMED`` paths, so that a branch with thousands of them still fails with a line one can read.
    A plan's rebase conflict (``predicted``) was found by a merge, not by replaying the commits: it says so."""
    named = first_and_more(paths, CONFLICTS_NAMED, ", ")
    if action is Action.REBASE and predicted:
        return f"Conflict in {named} ({REBASE_PREDICTED})"
    kind = "Rebase" if action is Action.REBASE else "Merge"
    return f"{kind} conflict in {named} (unresolvable)"


@contextlib.contextmanager
def _git_failures_as(status: Status) -> Iterator[None]:
    """Turn a git timeout inside a step into that step's failure status with the ``timeout`` code, and git's
    directory gone (``RepositoryGone``: no fault of the branch, no bug to trace) into ``exception`` with the
    ``unexpected_error`` code."""
    try:
        yield
    except GitTimeout as error:
        raise StepFailed(
            status, [ErrorCode.TIMEOUT], f"git {error.args_[0]} timed out after {seconds(error.timeout)} s"
        ) from None
    except RepositoryGone as error:
        raise StepFailed(Status.EXCEPTION, [ErrorCode.UNEXPECTED_ERROR], error.detail) from None


class Runtime:
    """One process's means to align the branches of a plan: one git door and the three components."""

    def __init__(
        self,
        setup: RunSetup,
        components: Components | None = None,
        worker: str = "",
        branches: Sequence[BranchSpec] | None = None,
    ) -> None:
        """``branches``: those this process will align, in order (their merges are done ahead in batches);
        by default every branch of the input."""
        self.setup = setup
        self.worker = worker
        settings = setup.settings
        self.limiter = SlotLimiter(setup.scratch_dir / "git-slots", settings.max_concurrent_git_ops)
        self.git = Git(
            setup.location,
            limiter=self.limiter,
            timeout=settings.integration_timeout_seconds,
            reflog_message=run_signature(setup.run_id),  # its moves', backups' and restores' reflogs
            killed_merges=setup.killed_merges,
        )
        self.components = components or Components.from_settings(settings)
        default = isinstance(self.components.integration_utility, MergeOrRebaseIntegrator)
        self.merges = MergesAhead(self.git, _merge_queues(setup, branches)) if default else None
        self.journal = MoveJournal(setup.folder.moves_dir)
        self.listed = setup.branches.names  # never a backup
        self.backup_folders = backup_folders(settings.backup_branch_prefix, self.listed)  # nor one of these
        self._windows: dict[str, HistoryWindow] = {}
        self._windows_lock = threading.Lock()
        self._interrupted = threading.Event()

    @property
    def interrupted(self) -> bool:
        return self._interrupted.is_set()

    def interrupt(self) -> None:
        """Ctrl-C where branches run on threads (which no signal stops): each running branch stops before its
        next step, as ``interrupted``, where it was; its running git call or check command ends first."""
        self._interrupted.set()

    def commits_brought_in(self, old_tip: str, target_commit: str) -> tuple[tuple[CommitInfo, ...], bool]:
        """The target commits a merge into ``old_tip`` brings in (the first ``COMMITS_LISTED``, and whether
        there are more): from the target's history read once per process, or from git when that cannot tell."""
        with self._windows_lock:
            if target_commit not in self._windows:
                self._windows[target_commit] = HistoryWindow.from_log(
                    self.git.history_window(target_commit, HISTORY_WINDOW)
                )
            window = self._windows[target_commit]
        commits = brought_in(window, self.git.commit_parents, old_tip, limit=COMMITS_LISTED + 1)
        if commits is None:
            return self.git.commits_between(old_tip, target_commit, COMMITS_LISTED)
        return tuple(commits[:COMMITS_LISTED]), len(commits) > COMMITS_LISTED

    def alignment(self, spec: BranchSpec, started_at: float | None = None) -> BranchAlignment:
        """The steps of ``spec``'s alignment, not started yet (``started_at``: when its run began)."""
        return BranchAlignment(self, spec, started_at)

    def align(self, spec: BranchSpec) -> BranchResult:
        """Align ``spec`` from start to end; a failure is a result, never an exception."""
        return self.alignment(spec).run()

    def close(self) -> None:
        try:
            self.git.close()
        finally:
            self.limiter.close()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


def _merge_queues(setup: RunSetup, branches: Sequence[BranchSpec] | None = None) -> list[list[tuple[str, str]]]:
    """Per target, ``(tip, target commit)`` of each of ``branches`` (default: the input's) the snapshot found
    diverged, in order: the merges the default integrator will do (none for a target that rebases, unless
    in a plan)."""
    snapshot = setup.snapshot
    queues: dict[str, list[tuple[str, str]]] = {}
    for spec in branches if branches is not None else setup.branches.branches:
        target_commit = snapshot.target_commits.get(spec.target)
        tip = snapshot.tips.get(spec.name)
        if target_commit is None or tip is None or snapshot.relation(spec.name) is not Action.MERGE:
            continue
        if setup.settings.policy(spec.target).strategy is Strategy.REBASE and not setup.predict:
            continue
        queues.setdefault(spec.target, []).append((tip, target_commit))
    return list(queues.values())


def _require_type(argument: str, value: object, expected: type | tuple[type, ...], what: str) -> None:
    """Refuse an argument of the wrong type with one ``TypeError`` naming it and what it must be (``what``)."""
    if not isinstance(value, expected):
        raise TypeError(f"{argument} must be {what}, not {type(value).__name__}")


def run_alignment_for_branch(
    branch_name: str,
    target_branch: str,
    repo_path: str,
    integration_utility: IntegrationUtility,
    error_detector: ErrorDetector,
    doc_generator: DocGenerator,
) -> dict[str, object]:
    """Execute alignment for a single branch (the spec's entry point).

    Uses the default settings (backup ``backup-<branch>-pre-align``, merge strategy) and writes the change
    document under ``./reports/runs/<run id>/changes/``. Returns the spec's per-branch dict with ``status``
    one of ``completed|failed_integration|failed_error_detection|exception``. Raises only for invalid input:
    ``TypeError`` for an argument of the wrong type, ``ValueError`` for a name git would refuse,
    ``RepositoryError`` for a path that is not a repository; anything unexpected becomes ``exception``.
    """
    _require_type("branch_name", branch_name, str, "a str")
    _require_type("target_branch", target_branch, str, "a str")
    _require_type("repo_path", repo_path, (str, os.PathLike), "a str or an os.PathLike")
    for argument, component, protocol in (
        ("integration_utility", integration_utility, IntegrationUtility),
        ("error_detector", error_detector, ErrorDetector),
        ("doc_generator", doc_generator, DocGenerator),
    ):
        _require_type(argument, component, protocol, f"an object with {protocol.__name__}'s method")
    for name in (branch_name, target_branch):
        problem = invalid_branch_name(name)
        if problem:
            raise ValueError(f"{name!r} is not a valid branch name: it {problem}")
    spec = BranchSpec(branch_name, target_branch, 1.0, (), 0, 0)
    components = Components(integration_utility, error_detector, doc_generator)
    started, started_at = time.monotonic(), time.time()
    try:
        setup = set_up_run(
            Settings(),
            BranchInput("run_alignment_for_branch", (spec,)),
            repo_path,
            reports_dir=Path(os.getcwd()) / "reports",
            require_targets=False,
        )
    except UsageProblem:
        raise
    except Exception as error:
        message = f"{type(error).__name__}: {error}"
        failure = BranchResult(
            branch_name,
            target_branch,
            Status.EXCEPTION,
            time.monotonic() - started,
            (ErrorCode.UNEXPECTED_ERROR,),
            message,
            started_at=started_at,
            finished_at=time.time(),
        )
        return failure.to_dict()
    try:
        with Runtime(setup, components) as runtime:
            return runtime.align(spec).to_dict()
    finally:
        setup.discard_scratch()
