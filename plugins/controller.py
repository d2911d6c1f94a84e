"""The controller's side of a pytest run: dispatch, crash recovery, and the run's ledger fed from reports.

Registered only in the process that controls the run (the xdist controller, or the single process without
``-n``). It alone writes shared files, through ``RunLedger``: the audit trail and the results. Each branch's
result is read once, from the teardown report its worker attached it to as JSON text; a branch whose worker
crashed, or whose test failed before the pipeline ran, gets an ``exception`` result made here. When
pytest-json-report's report is complete, the ledger publishes the spec's output and the JSON report points
at it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Generator, Mapping
from pathlib import Path
from typing import Any

import pytest

from alignment.git import Git
from alignment.html_report import headline_numbers
from alignment.journal import MoveJournal, restore
from alignment.ledger import Published, RunLedger
from alignment.model import BranchResult, ErrorCode, Status
from alignment.names import printable
from alignment.report import html_name
from alignment.resources import MemoryGate
from alignment.runs import write_atomically
from alignment.session import RunPlan
from plugins.scheduler import TargetScheduling

RESULT_PROPERTY = "alignment_result"
RECOVERY_GRACE_SECONDS = 0.5


def write_node_map(plan: RunPlan, worker: str, branches: Mapping[str, str]) -> None:
    """Record which test id aligns which branch (workers collect; the controller under xdist does not)."""
    write_atomically(plan.scratch_dir / "nodes" / f"{worker}.json", json.dumps(branches))


class NodeMap:
    """Test ids to branch names, read from what the collecting processes wrote."""

    def __init__(self, plan: RunPlan) -> None:
        self.plan = plan
        self._branches: dict[str, str] = {}

    def branch(self, nodeid: str) -> str | None:
        if nodeid not in self._branches:
            self._load()
        return self._branches.get(nodeid)

    @property
    def selected(self) -> dict[str, str]:
        self._load()
        return dict(self._branches)

    def _load(self) -> None:
        """Every collecting process collects the same items: any one map will do."""
        written = sorted((self.plan.scratch_dir / "nodes").glob("*.json"))
        if written:
            self._branches = json.loads(written[0].read_text(encoding="utf-8"))


class AlignmentController:
    """Hooks of the controlling process."""

    def __init__(self, config: pytest.Config, plan: RunPlan, demo_dir: Path | None) -> None:
        self.config = config
        self.plan = plan
        self.demo_dir = demo_dir
        self.ledger = RunLedger(plan, on_trip=self._stop)
        self.memory = MemoryGate(plan.settings.max_memory_mb)
        self.nodes = NodeMap(plan)
        self.specs = {spec.name: spec for spec in plan.branches.branches}
        self.failures: dict[str, str] = {}  # test id -> the last line of its first failure
        self.crashes: dict[str, str] = {}
        self.scheduler: TargetScheduling | None = None
        self.session: pytest.Session | None = None
        self.published: Published | None = None

    # -- xdist -----------------------------------------------------------------------------------------------

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput["alignment_plan"] = self.plan.to_json()

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> TargetScheduling:
        self.scheduler = TargetScheduling(config, self._target_of, self._limit_of, self._may_start, log)
        return self.scheduler

    def _may_start(self, running: int) -> bool:
        """A new branch may start: the memory gate allows it, and with parallelization off, nothing runs."""
        if not self.plan.settings.enable_parallelization and running > 0:
            return False
        return self.memory.allows_start(running)

    def _target_of(self, nodeid: str) -> str:
        branch = self.nodes.branch(nodeid)
        return self.specs[branch].target if branch in self.specs else ""

    def _limit_of(self, target: str) -> int:
        return self.plan.settings.policy(target).max_workers

    # -- the run ---------------------------------------------------------------------------------------------

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.session = session
        self.ledger.start()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Each phase's report, read once: the branch's start, its failure text, and at its end its result."""
        when: str = report.when  # "???" for the item of a crashed worker
        if report.failed:
            self.failures.setdefault(report.nodeid, _last_line(report.longreprtext))
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
        result = _result_of(report)
        if result is None:
            if not failed:
                return  # skipped before it started: the breaker had tripped
            result = self._exception_result(branch, report.nodeid)
        self.ledger.branch_finished(result, failed=failed or not result.succeeded)

    def _recover(self, branch: str, report: pytest.TestReport) -> str:
        """A worker died while aligning ``branch``: put back whatever it moved; the note says what happened."""
        move = MoveJournal(self.plan.folder.moves_dir).get(branch)
        if move is None:
            return f"{report.longreprtext.strip()}; '{branch}' was not moved"
        time.sleep(RECOVERY_GRACE_SECONDS)  # a helper of the dead worker may still be finishing its transaction
        git = Git(self.plan.location, timeout=self.plan.settings.integration_timeout_seconds)
        try:
            return f"{report.longreprtext.strip()}; {restore(git, move).message}"
        finally:
            git.close()

    def _exception_result(self, branch: str, nodeid: str) -> BranchResult:
        """A branch without a result of its own: its worker crashed, or pytest failed before the pipeline."""
        message = self.crashes.get(branch) or self.failures.get(nodeid) or "the test failed before aligning"
        now = time.time()
        return BranchResult(
            branch,
            self.specs[branch].target,
            Status.EXCEPTION,
            0.0,
            (ErrorCode.WORKER_CRASHED,) if branch in self.crashes else (ErrorCode.UNEXPECTED_ERROR,),
            message,
            started_at=now,
            finished_at=now,
        )

    def _stop(self, reason: str) -> None:
        """The breaker tripped: workers see the stop flag, pytest and xdist's scheduler stop handing out items."""
        self.plan.stop_flag.write_text(reason, encoding="utf-8")
        if self.session is not None:
            self.session.shouldstop = reason
        dsession = self.config.pluginmanager.getplugin("dsession")
        if dsession is not None:
            dsession.shouldstop = reason
        if self.scheduler is not None:
            self.scheduler.stop()

    # -- results ---------------------------------------------------------------------------------------------

    @pytest.hookimpl(optionalhook=True)
    def pytest_json_modifyreport(self, json_report: dict[str, Any]) -> None:
        """pytest-json-report's report is complete: publish the spec's output from the results read from it
        as each test reported, and point the JSON report at it."""
        self.published = self.ledger.finish(selected=set(self.nodes.selected.values()))
        json_report["alignment_results"] = str(self.published.path)

    @pytest.hookimpl(wrapper=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> Generator[None, None, None]:
        """Before the cache and the JSON report are written: push a ``--remote`` run's branches, then put
        never-started branches and those whose push failed into ``--lf``'s list, so a rerun picks them up.
        A failed push fails the session (exit code 1) although the branch's test item passed."""
        push_failed = self.ledger.push()
        if push_failed and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        lfplugin = self.config.pluginmanager.getplugin("lfplugin")
        if lfplugin is not None:
            finished = self.ledger.results
            for nodeid, branch in self.nodes.selected.items():
                if branch not in finished or branch in push_failed:
                    lfplugin.lastfailed[nodeid] = True
        return (yield)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.published is None:
            return
        results, results_path = self.published.results, self.published.path

        def write(line: str, **markup: bool) -> None:
            """Names, paths and notes are data: printed with their control characters escaped."""
            terminalreporter.write_line(printable(line), **markup)

        terminalreporter.write_sep("=", "branch alignment plan" if self.plan.planning else "branch alignment")
        write(headline(results))
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
        settings = self.plan.settings
        if self.plan.planning:
            write("circuit breaker: not applied to a plan (it predicts every branch); nothing was moved")
        elif summary["circuit_breaker_triggered"]:
            write(f"circuit breaker: OPEN - {summary['circuit_breaker_reason']}", red=True, bold=True)
        elif settings.enable_circuit_breaker:
            write(
                f"circuit breaker: closed (trips at >= {settings.failure_threshold_count} failures and >= "
                f"{settings.failure_threshold_percent:g}% failed)"
            )
        else:
            write("circuit breaker: disabled")
        for note in self.plan.housekeeping:
            write(f"note: {note}", yellow=True)
        kind = "plan" if self.plan.planning else "results"
        write(f"run {self.plan.run_id}; {kind}: {results_path}")
        write(f"report: {results_path.with_name(html_name(results_path.name))}")
        if self.demo_dir is not None:
            write(f"demo repository and input: {self.demo_dir}")

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        """Remove the run's scratch directory and the entries of any worktree a crashed worker left in it."""
        scratch = self.plan.scratch_dir.resolve()
        self.plan.discard_scratch()
        git = Git(self.plan.location)
        try:
            git.forget_worktrees(lambda worktree: scratch in worktree.parents)
        finally:
            git.close()


def _result_of(report: pytest.TestReport) -> BranchResult | None:
    """The branch result a worker attached to the item's report, if any."""
    for key, value in report.user_properties:
        if key == RESULT_PROPERTY:
            return BranchResult.from_dict(json.loads(str(value)))
    return None


def _last_line(text: str) -> str:
    """A failure's summary: the last line of its text."""
    lines = text.strip().splitlines()
    return lines[-1][:300] if lines else ""


def headline(results: dict[str, Any]) -> str:
    """The report's headline numbers on one line: ``20 branches: 16 aligned, 4 failed, 0 not run; 3 conflicts,
    3 with their cause named`` (a plan adds the branch pairs that conflict with each other)."""
    numbers = headline_numbers(results)
    planned = bool(results.get("planned"))
    line = (
        f"{numbers['branches']} branches: {numbers['completed']} {'would align' if planned else 'aligned'}, "
        f"{numbers['failed']} {'would fail' if planned else 'failed'}, {numbers['not_run']} not run; "
        f"{numbers['conflicts']} conflicts, {numbers['explained']} with their cause named"
    )
    if planned:
        line += f"; {numbers['pair_conflicts']} branch pairs conflict with each other"
    return line
