"""The controller's side of a pytest run: dispatch, crash recovery, and the run's ledger fed from reports.

Registered only in the process that controls the run (the xdist controller, or the single process without
``-n``). It alone writes shared files, through ``RunLedger``: the audit trail and the results. Each branch's
result is read once, from the teardown report its worker attached it to as JSON text; a branch whose worker
crashed, or whose test failed before the pipeline ran, gets an ``exception`` result made here. When
pytest-json-report's report is complete, the ledger publishes the spec's output and the JSON report points
at it: its ``alignment_results`` names the file, and each test's ``alignment_result`` property the branch's
entry in it (the result itself is kept once, by the ledger).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import sys
import time
from collections.abc import Generator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import msgspec
import pytest

from alignment.backup import backup_folders, candidate_names
from alignment.document import document_path, record_put_back
from alignment.errors import counted, first_and_more, seconds
from alignment.git import Git
from alignment.html_report import headline_numbers, skipped_pairs
from alignment.journal import MoveJournal, Outcome, restore
from alignment.ledger import Published, RunLedger
from alignment.logs import log_to_branch
from alignment.model import Action, BranchResult, ErrorCode, Status, intended_action, run_signature
from alignment.names import printable
from alignment.remote import (
    PushInterrupted,
    aligned_ref,
    backups_on_remote,
    maybe_landed,
    not_pushed,
    push_record,
    unpushed,
)
from alignment.report import html_name
from alignment.resources import MemoryGate
from alignment.scratch import release
from alignment.session import RunSetup, tidy_repository
from alignment.spill import Spilled, SpillFile
from plugins.handoff import (
    PUSHED_OUTPUT,
    RESULT_PROPERTY,
    SETUP_INPUT,
    TRIED,
    TRIED_INPUT,
    NodeMap,
    last_tried,
    memory_key,
    result_of,
    show_only,
    write_node_map,
)
from plugins.scheduler import TargetScheduling

LASTFAILED = "cache/lastfailed"  # where pytest's --lf reads and writes its memory
RECOVERY_GRACE_SECONDS = 0.5
SHARED_REPORT_FIELDS = ("when", "outcome", "worker_id", "testrun_uid")
CTRL_C = "interrupted (Ctrl-C)"  # why the run stopped, when Ctrl-C stopped it
MAX_FAILURE_LINES = 30  # one line per failed branch in the terminal summary; the rest are in the report
MAX_CAUSES = 3  # distinct conflict causes named on a branch's failure line; the rest are counted


class AlignmentController:
    """Hooks of the controlling process."""

    def __init__(
        self, config: pytest.Config, setup: RunSetup, demo_dir: Path | None, made_dirs: tuple[Path, ...] = ()
    ) -> None:
        self.config = config
        self.setup = setup
        self.demo_dir = demo_dir
        self.made_dirs = made_dirs  # the reports directories the set-up made (deepest first): gone with no run
        self.show_only = show_only(config)  # an option that runs nothing: no run is made
        self.reported: set[str] = set()  # test ids pytest has a report for
        self.outer_lastfailed: dict[str, bool] | None = None  # pytest's --lf memory outside this run
        self.nothing_to_rerun: str | None = None  # why --lf found no branch of this input to rerun
        self.ledger = RunLedger(setup, on_trip=self._stop)
        self.memory = MemoryGate(setup.settings.max_memory_mb)
        self.nodes = NodeMap(setup)
        self.specs = {spec.name: spec for spec in setup.branches.branches}
        self.failures: dict[str, str] = {}  # test id -> the last line of its first failure
        self.passed_calls: set[str] = set()  # test ids whose call passed: their branch completed its steps
        self.crashes: dict[str, str] = {}
        self.scheduler: TargetScheduling | None = None
        self.session: pytest.Session | None = None
        self.published: Published | None = None
        self.interrupted: str | None = None  # why, when Ctrl-C stopped the run
        self.tidied: tuple[str, ...] = ()  # what tidying the repository did or found (``tidy_repository``)
        self.worker_pushes = WorkerPushes(setup) if setup.clones is not None else None
        if self.worker_pushes is not None:
            config.pluginmanager.register(self.worker_pushes, "alignment-worker-pushes")

    # -- xdist -----------------------------------------------------------------------------------------------

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[SETUP_INPUT] = self.setup.to_json()
        node.workerinput[TRIED_INPUT] = self.tried

    @functools.cached_property
    def tried(self) -> dict[str, int]:
        """``--lf``'s memory of when each test id was last tried, read once: every worker, a replacement
        too, orders its items by the same map."""
        return last_tried(self.config, self.setup)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodeready(self, node: Any) -> None:
        """The worker has read the setup: its text (about 200 bytes per branch) is not kept for the session."""
        node.workerinput.pop(SETUP_INPUT, None)
        node.workerinput.pop(TRIED_INPUT, None)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> TargetScheduling:
        self.scheduler = TargetScheduling(config, self._target_of, self._limit_of, self._may_start, log)
        return self.scheduler

    def _may_start(self, running: int) -> bool:
        """A new branch may start: the memory gate allows it, and with parallelization off, nothing runs."""
        if not self.setup.settings.enable_parallelization and running > 0:
            return False
        return self.memory.allows_start(running)

    def _target_of(self, nodeid: str) -> str:
        branch = self.nodes.branch(nodeid)
        return self.specs[branch].target if branch in self.specs else ""

    def _limit_of(self, target: str) -> int:
        return self.setup.settings.policy(target).max_workers

    # -- the run ---------------------------------------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.session = session
        self._use_lastfailed_of_this_run()
        PackedTestEntries.install(self.config, SpillFile(self.setup.folder.path))
        if not self.show_only:
            self.ledger.start()

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> None:
        """Tidy the repository (clean up after dead runs, write the commit-graph cache) before any branch runs,
        now that pytest runs the session: not for one it refused after the set-up (in configure, at session start
        or in collection: those never get here), nor one that only shows, or that a collection error stops."""
        stopped = session.testsfailed and not session.config.option.continue_on_collection_errors
        if not self.show_only and not stopped:
            self.tidied = tidy_repository(self.setup)

    @property
    def lastfailed_key(self) -> str:
        return memory_key(self.setup, "lastfailed")

    def _use_lastfailed_of_this_run(self) -> None:
        """pytest's ``--lf`` reads ``cache/lastfailed`` (here, and in xdist workers, which start after this):
        put this input and repository's memory there for the session, and a fresh ``--lf`` plugin on it."""
        lfplugin, cache = self.config.pluginmanager.getplugin("lfplugin"), getattr(self.config, "cache", None)
        if lfplugin is None or cache is None or self.show_only == "--cache-show":
            return  # a plan (it leaves --lf alone), -p no:cacheprovider, or the cache shown as it is
        self.outer_lastfailed = cache.get(LASTFAILED, {})
        memory = cache.get(self.lastfailed_key, {})
        cache.set(LASTFAILED, memory)
        if self.config.getoption("lf") and not memory:
            self.nothing_to_rerun = (
                "the last run with this input and repository left no branch failed or not run"
                if cache.get(memory_key(self.setup, TRIED), {}).get("runs")
                else f"pytest's cache ({cache._cachedir}) has no earlier run with this input and repository"
            )
        for name in ("lfplugin-collwrapper", "lfplugin"):
            if self.config.pluginmanager.has_plugin(name):
                self.config.pluginmanager.unregister(name=name)
        self.config.pluginmanager.register(type(lfplugin)(self.config), "lfplugin")

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Each phase's report, read once: the branch's start, its failure text, and at its end its result.

        First of the report's readers: once the ledger holds the result, the report keeps only a reference
        to it (the branch's name, its key in the published results), so pytest-json-report, which keeps
        every test's properties to the end, does not hold a second copy of every result."""
        if self.show_only:
            return  # --setup-plan's reports: nothing was aligned
        _share_repeated_strings(report)
        when: str = report.when  # "???" for the item of a crashed worker
        self.reported.add(report.nodeid)
        if report.failed:
            self.failures.setdefault(report.nodeid, _last_line(report.longreprtext))
        elif when == "call" and report.passed:
            self.passed_calls.add(report.nodeid)
        branch = self.nodes.branch(report.nodeid)
        if branch is None:
            return
        if when == "setup" and not report.skipped:
            self.ledger.branch_started(self.specs[branch])
        if when == "???":
            self.crashes[branch] = self._recover(branch, report)
        if when not in ("teardown", "???"):
            return
        failed = report.nodeid in self.failures
        result = result_of(report)
        if result is None:
            if not failed:
                return  # skipped before it started: the breaker had tripped
            result = self._exception_result(branch, report.nodeid)
        self.ledger.branch_finished(result, failed=failed or not result.succeeded)
        report.user_properties = [(RESULT_PROPERTY, branch)]

    def _recover(self, branch: str, report: pytest.TestReport) -> str:
        """A worker died while aligning ``branch``: put back whatever it moved; the note says what happened.

        xdist's own words (``worker 'gw0' crashed while running '<test id>'``) are its report's ``longrepr``;
        ``longreprtext`` would put the worker's platform line (``[gw0] linux -- Python ...``) before them."""
        return self._put_back(branch, str(report.longrepr).strip())

    def _put_back(self, branch: str, why: str) -> str:
        """Put back whatever the journal says a process that did not finish ``branch`` moved, as ``why`` (it
        did not finish) says; the branch's message, which its change document and log then end with whatever
        putting it back did (the document's new tip is rewritten only when it was put back). A push
        (``--worker-clones``: a worker journals it in the run's folder when it shares the disk) is no local
        move: it is left to ``alignment undo``, which puts it back on the remote."""
        journal = MoveJournal(self.setup.folder.moves_dir)
        move = journal.get(branch)
        if move is None:
            return f"{why}; '{branch}' was not moved"
        if move.remote is not None:  # journaled before ``git push`` ran: it started, it may not have landed
            started = BranchResult(
                branch, self.specs[branch].target, Status.EXCEPTION, 0.0, old_tip=move.old_tip, new_tip=move.new_tip
            )
            return f"{why}; {maybe_landed(move.remote, started, 'its process stopped before the answer came')}"
        time.sleep(RECOVERY_GRACE_SECONDS)  # a helper of the dead worker may still be finishing its transaction
        settings = self.setup.settings
        git = Git(
            self.setup.location,
            timeout=settings.integration_timeout_seconds,
            reflog_message=f"{run_signature(self.setup.run_id)}: put back",
        )
        try:
            restoration = restore(git, move, journal=journal)  # ``alignment runs`` counts no move
        finally:
            git.close()
        message = f"{why}; {restoration.message}"
        log_to_branch(self.setup.folder.logs_dir, settings, branch, __name__, logging.WARNING, message)
        restored = restoration.outcome is Outcome.RESTORED
        target = self.specs[branch].target
        try:
            record_put_back(
                document_path(self.setup.folder.changes_dir, target, branch),
                message,
                self._action_of(branch, target, move.old_tip),
                merged=move.new_tip if restored else None,
            )
        except OSError as error:
            return f"{message}; change document not updated: {error}"
        return message

    def _exception_result(self, branch: str, nodeid: str) -> BranchResult:
        """A branch without a result of its own: its worker crashed, or pytest failed before the pipeline."""
        message = self.crashes.get(branch) or self.failures.get(nodeid) or "the test failed before aligning"
        code = ErrorCode.WORKER_CRASHED if branch in self.crashes else ErrorCode.UNEXPECTED_ERROR
        return self._made_result(branch, code, message)

    def _made_result(self, branch: str, code: ErrorCode, message: str) -> BranchResult:
        """An ``exception`` result made here, for a branch whose own never came."""
        now = time.time()
        result = BranchResult(
            branch, self.specs[branch].target, Status.EXCEPTION, 0.0, (code,), message, started_at=now, finished_at=now
        )
        return self._with_what_is_known(result)

    def _with_what_is_known(self, result: BranchResult) -> BranchResult:
        """``result`` (made here) with what the run knows of its branch without its worker: the old tip (the
        snapshot's, unless the result has the journal's), its backup (a ref named like one, at that tip) and
        its change document (where the default generator writes it, if it is there)."""
        branch, target = result.branch, result.target
        old_tip = result.old_tip or self.setup.snapshot.tips.get(branch)
        document = document_path(self.setup.folder.changes_dir, target, branch)
        return replace(
            result,
            old_tip=old_tip,
            backup_branch=self._backup_of(branch, old_tip) if old_tip else None,
            document=str(document) if document.is_file() else None,
        )

    def _backup_of(self, branch: str, old_tip: str) -> str | None:
        """The local backup of ``branch`` at ``old_tip``, looked for where ``create_backup`` makes it."""
        settings = self.setup.settings
        if not settings.enable_backup_branches or backups_on_remote(settings):
            return None
        prefix, listed = settings.backup_branch_prefix, self.setup.branches.names
        git = Git(self.setup.location, timeout=settings.integration_timeout_seconds)
        try:
            for candidate in candidate_names(prefix, branch, listed, self.backup_folders):
                if candidate.passed_over is not None:
                    continue
                found = git.resolve_branch(candidate.name)
                if found is None or found == old_tip:
                    return candidate.name if found else None
            return None
        finally:
            git.close()

    @functools.cached_property
    def backup_folders(self) -> dict[str, str]:
        """The run's ``backup_folders``, made once: every branch made here may look for its backup."""
        return backup_folders(self.setup.settings.backup_branch_prefix, self.setup.branches.names)

    def _stop(self, reason: str) -> None:
        """The breaker tripped, or Ctrl-C came: workers see the stop flag, pytest and xdist's scheduler stop
        handing out items."""
        self.setup.stop_flag.write_text(reason, encoding="utf-8")
        if self.session is not None:
            self.session.shouldstop = reason
        dsession = self.config.pluginmanager.getplugin("dsession")
        if dsession is not None:
            dsession.shouldstop = reason
        if self.scheduler is not None:
            self.scheduler.stop()

    # -- results ---------------------------------------------------------------------------------------------

    @pytest.hookimpl(optionalhook=True, wrapper=True)
    def pytest_json_runtest_stage(self, report: pytest.TestReport) -> Generator[None, Any, Any]:
        """A stage without a failure records no ``longrepr``: from an xdist worker, its text would be only the
        worker's description (``[gw0] linux -- Python ...``), repeated in every stage of every test and kept
        to the end (the branch's worker is in its result)."""
        stage = yield
        if report.longrepr is None and isinstance(stage, dict):
            stage.pop("longrepr", None)
        return stage

    @pytest.hookimpl(optionalhook=True)
    def pytest_json_modifyreport(self, json_report: dict[str, Any]) -> None:
        """pytest-json-report's report is complete: publish the spec's output from the results read from it
        as each test reported, and point the JSON report at it."""
        if self.show_only:
            return
        if self.made_no_run:
            self.config.option.json_report_file = None  # nothing ran: no pytest report either
            return
        self.published = self.ledger.finish(selected=set(self.nodes.selected.values()))
        json_report["alignment_results"] = str(self.published.path)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> Generator[None, None, None]:
        """Before pytest's own summary: a ``--remote`` run's branches are pushed (``_push``); each never-started
        branch is reported as skipped, so pytest's counts are the run's (skipped = not run); both go into
        ``--lf``'s list. After: ``--lf``'s memory is kept under this input and repository, and pytest's own (the
        project's tests) is left as it was."""
        lfplugin = self.config.pluginmanager.getplugin("lfplugin")
        self._end_workers()
        if not self.show_only and not self.made_no_run:
            if self.interrupted is not None:
                self.ledger.interrupted(self.interrupted)
            self._report_unfinished()
            push_failed = self._push(session)
            self._report_never_started(session)
            finished = self.ledger.results
            for nodeid, branch in self.nodes.selected.items():
                if (branch not in finished or branch in push_failed) and lfplugin is not None:
                    lfplugin.lastfailed[nodeid] = True
            if lfplugin is not None:
                self._remember_tried(finished, {str(nodeid) for nodeid in lfplugin.lastfailed})
        try:
            return (yield)
        finally:
            self._put_back_outer_lastfailed()

    def _put_back_outer_lastfailed(self) -> None:
        """Keep ``--lf``'s memory of this run under its input and repository, and put pytest's own back, once:
        at the session's finish, or at the end when the session never got there (a Ctrl-C at its start)."""
        cache = getattr(self.config, "cache", None)
        if self.outer_lastfailed is not None and cache is not None:
            cache.set(self.lastfailed_key, cache.get(LASTFAILED, {}))
            cache.set(LASTFAILED, self.outer_lastfailed)
        self.outer_lastfailed = None

    def _push(self, session: pytest.Session) -> frozenset[str]:
        """A ``--remote`` run's branches are pushed (by this process, or by the workers in clones of their own);
        the branches whose push failed. A failed push fails the session, exit code 1, although the branch's
        item passed; Ctrl-C while pushing, exit code 2 (the ledger recorded what landed and what did not)."""
        try:
            failed = self.ledger.push() if self.worker_pushes is None else self.worker_pushes.publish(self.ledger)
        except PushInterrupted as stopped:
            self.interrupted = CTRL_C
            session.exitstatus = pytest.ExitCode.INTERRUPTED
            return stopped.failed
        if failed and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        return failed

    def _remember_tried(self, finished: Mapping[str, BranchResult], lastfailed: set[str]) -> None:
        """Count this run, and note it as the last run that tried each branch it started, for the test ids in
        ``--lf``'s list (``lastfailed``; pytest may key its own by structured ids): a rerun tries the least
        recently tried first, so that rerun after rerun, each cut short by the circuit breaker, every one of
        them gets its turn."""
        cache = getattr(self.config, "cache", None)
        if self.outer_lastfailed is None or cache is None:
            return  # this run keeps no --lf memory (a plan, -p no:cacheprovider)
        key = memory_key(self.setup, TRIED)
        memory = cache.get(key, {})
        run = memory.get("runs", 0) + 1
        tried = {nodeid: at for nodeid, at in memory.get("tried", {}).items() if nodeid in lastfailed}
        started = (nodeid for nodeid, branch in self.nodes.selected.items() if branch in finished)
        tried.update((nodeid, run) for nodeid in started if nodeid in lastfailed)
        cache.set(key, {"runs": run, "tried": tried})

    def _end_workers(self) -> None:
        """xdist's workers have finished their session: end their processes now, before the results are
        published, not after (xdist ends them after pytest-json-report has written its report), so that
        the memory the controller needs to publish does not come on top of theirs."""
        nodemanager = getattr(self.config.pluginmanager.getplugin("dsession"), "nodemanager", None)
        if nodemanager is None:
            return
        try:
            nodemanager.teardown_nodes()
        except KeyboardInterrupt:  # Ctrl-C while they end: every result came; they are published as usual
            self.interrupted = CTRL_C
            if self.session is not None:
                self.session.exitstatus = pytest.ExitCode.INTERRUPTED

    @pytest.hookimpl(tryfirst=True)
    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        """Ctrl-C, not the stop of pytest or xdist (a breaker trip, ``-x``), which raise subclasses of it: no
        further branch starts, first of all. A Ctrl-C that reached the controller alone leaves its workers
        running until they are ended, each with branches queued on it: they skip them, as after a trip."""
        if type(excinfo.value) is KeyboardInterrupt:
            self._stop(CTRL_C)
            self.interrupted = CTRL_C

    def _report_unfinished(self) -> None:
        """Each branch that started and whose result never came back (Ctrl-C stopped the run, or the process
        aligning it, first). One whose call passed had completed its steps (only its teardown was cut short), and
        so had one whose push the journal holds (a worker in a clone of its own pushes after its steps): it is
        reported ``completed`` at the tips the journal names, by a teardown carrying the result, so that
        pytest counts it once, as passed. Any other: whatever the journal says it moved is put back, and it is
        reported as its worker would have reported it, ``interrupted``: a failed call (an error, its text the
        message) and a teardown carrying the result."""
        moves = MoveJournal(self.setup.folder.moves_dir).moves()
        self._start_unheard_moves({move.branch for move in moves})
        pushed = {move.branch for move in moves if move.remote is not None}
        nodeids = {branch: nodeid for nodeid, branch in self.nodes.selected.items()}
        for spec in self.ledger.unfinished():
            nodeid = nodeids[spec.name]
            path, _, name = nodeid.partition("::")
            reports: list[pytest.TestReport] = []
            if nodeid in self.passed_calls or spec.name in pushed:
                result = self._completed_result(spec.name)
            else:
                message = self._put_back(
                    spec.name, f"alignment was {self.interrupted or 'interrupted'} before it finished"
                )
                call = pytest.TestReport(nodeid, (path, None, name), {}, "failed", printable(message), "call")
                call.alignment_status = Status.EXCEPTION.value  # type: ignore[attr-defined]
                reports.append(call)
                result = self._made_result(spec.name, ErrorCode.INTERRUPTED, message)
            properties = [(RESULT_PROPERTY, json.dumps(result.to_dict()))]
            reports.append(
                pytest.TestReport(
                    nodeid, (path, None, name), {}, "passed", None, "teardown", user_properties=properties
                )
            )
            for report in reports:
                self.config.hook.pytest_runtest_logreport(report=report)

    def _start_unheard_moves(self, moved: set[str]) -> None:
        """Each branch of ``moved`` (the journal says a worker moved it here, or started its push) with no report
        of it read here (Ctrl-C stopped this process before it read the branch's start), started: it is one of
        the unfinished, not never started (the remote may be at its merge)."""
        for nodeid, branch in self.nodes.selected.items():
            if branch in moved and nodeid not in self.reported:
                self.ledger.branch_started(self.specs[branch])

    def _completed_result(self, branch: str) -> BranchResult:
        """A ``completed`` result made here for ``branch``, whose steps ended before its teardown was cut
        short: at the tips of its move in the journal (none: it needed no move). A journaled push was journaled
        before ``git push`` ran, so it says the push started, not that it landed: the result waits for its push
        (``pushed`` False), which ``WorkerPushes.publish`` settles with the worker's word or as one that may
        have landed. Under ``--worker-clones`` one that needed a push and has none journaled never had it: its
        worker pushes only the results of teardowns that ended, so ``WorkerPushes`` has it not pushed. In a plain
        ``--remote`` run its steps left its merge at ``aligned_ref``: it is pushed at the end with the others."""
        move = MoveJournal(self.setup.folder.moves_dir).get(branch)  # None too when git refused the move
        now = time.time()
        target = self.specs[branch].target
        action = self._action_of(branch, target, None if move is None else move.old_tip)
        needs_push = move is None and self.setup.remote is not None and action is not Action.UP_TO_DATE
        unsent = needs_push and self.worker_pushes is not None
        aligned = self._aligned_commit(branch) if needs_push and self.worker_pushes is None else None
        remote = self.setup.remote if unsent or aligned else None if move is None else move.remote
        result = BranchResult(
            branch,
            target,
            Status.COMPLETED,
            0.0,
            action=action,
            old_tip=None if move is None else move.old_tip,
            new_tip=aligned if move is None else move.new_tip,
            notes=(f"{self.interrupted or 'interrupted'} after its steps: this result was made from the journal",),
            started_at=now,
            finished_at=now,
            push=None if remote is None else push_record(remote, branch, moved=True),
        )
        result = self._with_what_is_known(result)
        if self.worker_pushes is not None and unsent:  # the worker's own word on its push, if it came, stands
            self.worker_pushes.pushed.setdefault(branch, not_pushed(result))
        return result

    def _aligned_commit(self, branch: str) -> str | None:
        """The merge the steps of ``branch`` left at ``aligned_ref`` for the push at the end of a ``--remote`` run,
        if there is one that contains the fetched tip (an older run's, kept after its push failed, may not: it is
        never pushed from here)."""
        assert self.setup.remote is not None
        fetched = self.setup.snapshot.tips.get(branch)
        git = Git(self.setup.location, timeout=self.setup.settings.integration_timeout_seconds)
        try:
            aligned = git.resolve_ref(aligned_ref(self.setup.remote, branch))
            return aligned if aligned and fetched and git.is_ancestor(fetched, aligned) else None
        finally:
            git.close()

    def _action_of(self, branch: str, target: str, old_tip: str | None) -> Action:
        """What aligning ``branch`` from ``old_tip`` (None: the snapshot's tip) did, as the snapshot tells it;
        ``none`` when the branch had moved since the snapshot (not known here)."""
        snapshot = self.setup.snapshot
        if old_tip is not None and snapshot.tips.get(branch) != old_tip:
            return Action.NONE
        return intended_action(snapshot.relation(branch), self.setup.settings.policy(target).strategy)

    def _report_never_started(self, session: pytest.Session) -> None:
        """A skipped report for each selected item that never reached a worker (xdist or pytest stopped)."""
        reason = str(session.shouldstop or session.shouldfail or self.interrupted or "the run stopped first")
        for nodeid in self.nodes.selected:
            if nodeid not in self.reported:
                path, _, name = nodeid.partition("::")
                report = pytest.TestReport(
                    nodeid,
                    (path, None, name),
                    {},
                    "skipped",
                    (path, 0, f"Skipped: not started: {reason}"),
                    "setup",
                )
                self.config.hook.pytest_runtest_logreport(report=report)

    @property
    def notes(self) -> list[str]:
        """What the run's user should know beside the results: unknown keys of the input, leftovers of earlier
        runs, an ``--lf`` that found nothing to rerun (pytest says so in the header ``-q`` drops), a
        ``--timeout`` the branches' own limit overrides. Said at the end of the summary, where ``-q``
        keeps them (it drops pytest's header)."""
        source = self.setup.branches.source
        notes = [f"{source}: {warning}" for warning in self.setup.branches.warnings] + list(
            self.tidied + self.setup.housekeeping
        )
        if self.nothing_to_rerun is not None:
            every = "every branch" if len(self.nodes.selected) == len(self.specs) else "every selected branch"
            ran = "no branch" if self.config.getoption("last_failed_no_failures") == "none" else every
            notes.append(f"--lf: {self.nothing_to_rerun}, so {ran} ran")
        given = self.config.getoption("timeout", None)
        if given is not None:
            limit = seconds(self.setup.settings.branch_alignment_timeout_seconds)
            notes.append(
                f"--timeout {seconds(given)} does not apply to the branches: each has the limit of the config key "
                f"branch_alignment_timeout_seconds ({limit} s) instead"
            )
        return notes

    def _no_run_line(self) -> str | None:
        """Why no run was made, when that is news: an option that only shows, or a Ctrl-C before any branch started."""
        if self.show_only:
            return f"branch alignment: {self.show_only}: no run was made and nothing moved"
        if self.made_no_run and self.interrupted is not None:
            return f"branch alignment: {self.interrupted} before any branch started: no run was made and nothing moved"
        return None

    def _breaker_line(self, summary: Mapping[str, Any]) -> str:
        """The circuit breaker's state in the summary: not applied (a plan), open, closed, or disabled."""
        settings = self.setup.settings
        if self.setup.predict:
            return "circuit breaker: not applied to a plan (it predicts every branch); nothing was moved"
        if summary["circuit_breaker_triggered"]:
            return f"circuit breaker: OPEN - {summary['circuit_breaker_reason']}"
        if settings.enable_circuit_breaker:
            return (
                f"circuit breaker: closed (trips at >= {settings.failure_threshold_count} failures and >= "
                f"{settings.failure_threshold_percent:g}% failed)"
            )
        return "circuit breaker: disabled"

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        def write(line: str, **markup: bool) -> None:
            """Names, paths and notes are data: printed with their control characters escaped."""
            terminalreporter.write_line(printable(line), **markup)

        no_run = self._no_run_line()
        if no_run is not None:
            write(no_run)
            for note in self.notes:
                write(f"note: {note}", yellow=True)
        if self.published is None:
            return
        results, results_path = self.published.results, self.published.path
        terminalreporter.write_sep("=", "branch alignment plan" if self.setup.predict else "branch alignment")
        write(headline(results))
        listed, selected = len(self.setup.branches.branches), len(self.nodes.selected)
        if selected < listed:
            write(f"selected: {selected} of the input's {counted(listed, 'branch', 'branches')}")
        write(f"{'target':<28}{'processed':>10}{'ok':>6}{'failed':>8}{'not run':>9}")
        for target, group in results["orchestration_results"].items():
            write(
                f"{target[:27]:<28}{group['processed_branches']:>10}{group['successful']:>6}{group['failed']:>8}"
                f"{len(group['not_run']):>9}"
            )
        summary = results["overall_summary"]
        write(
            f"{'total':<28}{summary['total_branches_processed']:>10}{summary['total_successful']:>6}"
            f"{summary['total_failed']:>8}{summary['total_not_run']:>9}"
        )
        tripped = summary["circuit_breaker_triggered"] and not self.setup.predict
        write(self._breaker_line(summary), red=tripped, bold=tripped)
        for line in failure_lines(results):
            write(line, red=True)
        for note in self.notes:
            write(f"note: {note}", yellow=True)
        kind = "plan" if self.setup.predict else "results"
        write(f"run {self.setup.run_id}; {kind}: {results_path}")
        report = results_path.with_name(html_name(results_path.name))
        write(f"report: {report}")
        if self.demo_dir is not None:
            write(f"demo repository and input: {self.demo_dir}")
            for line in _after_the_demo(self.demo_dir, report, self.setup.predict):
                write(line)

    @property
    def made_no_run(self) -> bool:
        """No branch started, so nothing is published and the run's folder goes: pytest refused the session after
        the run was set up (a usage error in configure, at session start or in collection), or the session
        ended before any process had collected the branches to the end (a Ctrl-C while xdist's workers start
        or collect)."""
        refused = self.session is None or self.session.exitstatus == pytest.ExitCode.USAGE_ERROR
        return refused or not self.nodes.written

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        """Remove the run's scratch directory and the entries of any worktree a crashed worker left in it, and
        the folder of a run that made none (and the reports directories made for it, left empty); put pytest's
        own ``--lf`` memory back if the session did not."""
        scratch = self.setup.scratch_dir.resolve()
        made_no_run = self.made_no_run  # read in the scratch directory
        self.setup.discard_scratch()
        self._put_back_outer_lastfailed()
        if made_no_run:
            self.setup.folder.remove()
            for directory in self.made_dirs:
                with contextlib.suppress(OSError):  # not empty, or never made (an option that only shows)
                    directory.rmdir()
        if self.demo_dir is not None:
            release(self.demo_dir)  # the next demo may remove it
        git = Git(self.setup.location)
        try:
            git.forget_worktrees(lambda worktree: scratch in worktree.parents)
        finally:
            git.close()


class WorkerPushes:
    """The controller's side of ``--worker-clones``: workers align and push in clones of their own (on this
    machine or another), so the test ids come from what xdist reports, and the pushes from each worker's
    ``workeroutput``; a branch whose worker never reported its push ends as ``push_failed``."""

    def __init__(self, setup: RunSetup) -> None:
        self.setup = setup
        self.pushed: dict[str, BranchResult] = {}
        self.seconds = 0.0  # the workers' push time, summed

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        """Map the ids a worker collected to branches (a worker elsewhere writes no map on this disk): an id's
        parameter is the branch name as pytest shows it, non-ASCII characters escaped."""
        names = {}
        for spec in self.setup.branches.branches:
            names[spec.name] = names[spec.name.encode("unicode_escape").decode("ascii")] = spec.name
        parameters = {nodeid: nodeid.partition("[")[2].removesuffix("]") for nodeid in ids}
        branches = {nodeid: names[value] for nodeid, value in parameters.items() if value in names}
        write_node_map(self.setup, "controller", branches)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        output = getattr(node, "workeroutput", {}).get(PUSHED_OUTPUT)
        if error is None and output is not None:
            data = json.loads(output)
            self.seconds += data["seconds"]
            for result in map(BranchResult.from_dict, data["results"]):
                self.pushed[result.branch] = result

    def publish(self, ledger: RunLedger) -> frozenset[str]:
        """Record what the workers pushed; each aligned branch no worker reported is ``push_failed``, and
        journaled as a move that may have happened, so that ``alignment undo`` finds it either way."""
        if self.setup.predict:
            return frozenset()
        pushed = dict(self.pushed)
        unreported = []
        for name, result in ledger.results.items():
            record = result.push
            if record is None or record.aligned_ref is None or record.pushed or not result.succeeded or name in pushed:
                continue
            unreported.append(result)
            worker = f"worker {result.worker}" if result.worker else "its worker"  # none: a result made here
            cause = f"{worker} ended before it reported its push (its remote backup may be there)"
            pushed[name] = unpushed(result, maybe_landed(record.remote, result, cause))
        ledger.journal_possible_pushes(unreported)
        return ledger.record_pushes(pushed, self.seconds)


class PackedTestEntries(dict[str, Any]):
    """pytest-json-report's per-test entries, each kept as compact JSON on disk once its test has ended.

    That plugin keeps every test's entry (a dict per entry and per stage: about 1.2 KB) until it writes the
    report at the end; packed, an entry is about 300 bytes, written to ``spill``. Reading an entry unpacks
    it, so the report it builds and saves is the same. An entry that would not come back equal from JSON
    stays a dict.
    """

    def __init__(self, entries: dict[str, Any] | None = None, *, spill: SpillFile) -> None:
        super().__init__(entries or {})
        self.spill = spill

    @classmethod
    def install(cls, config: pytest.Config, spill: SpillFile) -> None:
        """Put the entries of this run's JSON report plugin in a ``PackedTestEntries`` (where the installed
        pytest-json-report keeps them as ``tests/unit/test_xdist_contract.py`` checks; otherwise nothing)."""
        plugin = getattr(config, "_json_report", None)
        entries = getattr(plugin, "_json_tests", None)
        if isinstance(entries, dict) and not isinstance(entries, cls):
            packed = cls(entries, spill=spill)
            plugin._json_tests = packed  # type: ignore[union-attr]
            config.pluginmanager.register(EntryPacker(packed), "alignment-packed-test-entries")

    def pack(self, nodeid: str) -> None:
        entry = super().get(nodeid)
        if not isinstance(entry, dict):
            return
        try:
            text = msgspec.json.encode(entry)
        except (TypeError, ValueError, msgspec.EncodeError):  # ValueError: a lone surrogate, no UTF-8 for it
            return  # pytest-json-report writes what JSON cannot encode with str(): kept as it is
        if msgspec.json.decode(text) == entry:
            super().__setitem__(nodeid, self.spill.keep(text))

    def __getitem__(self, nodeid: str) -> Any:
        entry = super().__getitem__(nodeid)
        if isinstance(entry, (Spilled, bytes)):  # packed: an entry itself is a dict
            entry = msgspec.json.decode(self.spill.read(entry))
            super().__setitem__(nodeid, entry)
        return entry

    def values(self) -> list[Any]:  # type: ignore[override]
        """Every entry, unpacked (the report is being written)."""
        return [self[nodeid] for nodeid in self]


class EntryPacker:
    """Packs each test's entry once it is complete: at its teardown (or its worker's crash), after
    pytest-json-report has recorded the report. (Not the entries themselves as a plugin: pytest hashes its
    plugins, and a dict cannot be hashed.)"""

    def __init__(self, entries: PackedTestEntries) -> None:
        self.entries = entries

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when in ("teardown", "???"):
            self.entries.pack(report.nodeid)


def _share_repeated_strings(report: pytest.TestReport) -> None:
    """Keep once the values every report repeats (its phase, outcome, worker, run id and file): execnet decodes
    each report's strings afresh, and the terminal reporter and the JSON report keep them to the end."""
    for name in SHARED_REPORT_FIELDS:
        value = getattr(report, name, None)
        if isinstance(value, str):
            setattr(report, name, sys.intern(value))
    if report.location is not None:
        path, line, domain = report.location
        report.location = (sys.intern(path), line, domain)


def _last_line(text: str) -> str:
    """A failure's summary: the last line of its text."""
    lines = text.strip().splitlines()
    return lines[-1][:300] if lines else ""


def failure_lines(results: dict[str, Any], limit: int = MAX_FAILURE_LINES) -> list[str]:
    """One short line per branch that failed (or would): its name, the reason, and its conflicts' causes.

    The reason is never cut, whatever the name's length (pytest's FAILED line drops it for long test ids).
    """
    lines = []
    for group in results["orchestration_results"].values():
        for branch in group["branches"]:
            if branch["status"] == Status.COMPLETED.value:
                continue
            reason = branch.get("error_message") or branch["status"]
            lines.append(f"{branch['branch_name']}: {reason}{_caused_by(branch.get('culprits') or ())}")
    if len(lines) > limit:
        lines[limit:] = [f"... and {len(lines) - limit} more: see the report"]
    return lines


def _caused_by(culprits: Sequence[Mapping[str, str]], limit: int = MAX_CAUSES) -> str:
    """`` - caused by <commit> "<subject>" (<author>)`` for each distinct commit behind a branch's conflicted
    paths, in the order of the paths (the first ``limit``, then a count): paths often share one cause."""
    causes = list({culprit["commit"]: culprit for culprit in culprits}.values())
    if not causes:
        return ""
    named = [f'{cause["commit"][:10]} "{cause["subject"]}" ({cause["author"]})' for cause in causes]
    return f" - caused by {first_and_more(named, limit)}"


def _after_the_demo(demo_dir: Path, report: Path, planned: bool) -> list[str]:
    """What to try next after ``--demo``: a plan, your own branches, the HTML report."""
    lines = ["next:"]
    if not planned:
        lines.append("  pytest alignment/ --demo --plan      predict the same outcomes; nothing is changed")
    lines.append(
        "  pytest alignment/ -n 4 --input categorized_branches.json --repo PATH    your own branches (README: "
        f"'The input file'; the demo's is {demo_dir / 'categorized_branches.json'})"
    )
    lines.append(f"  open {report}    the report: tables per target, timeline, conflict causes")
    return lines


def headline(results: dict[str, Any]) -> str:
    """The report's headline numbers on one line: ``20 branches: 16 aligned, 4 failed, 0 not run; 3 conflicts,
    3 with their cause named`` (a plan adds the branch pairs that conflict with each other, and how many pairs
    were not checked)."""
    numbers = headline_numbers(results)
    planned = bool(results.get("planned"))
    line = (
        f"{counted(numbers['branches'], 'branch', 'branches')}: {numbers['completed']} "
        f"{'would align' if planned else 'aligned'}, {numbers['failed']} {'would fail' if planned else 'failed'}, "
        f"{numbers['not_run']} not run; {counted(numbers['conflicts'], 'conflict')}, {numbers['explained']} with "
        "their cause named"
    )
    if planned:
        pairs = counted(numbers["pair_conflicts"], "branch pair conflicts", "branch pairs conflict")
        line += f"; {pairs} with each other"
        groups = results["orchestration_results"].values()
        if skipped := skipped_pairs(group["conflict_matrix"] for group in groups if "conflict_matrix" in group):
            line += f" ({skipped})"
    return line
