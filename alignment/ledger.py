"""The run's ledger: the bookkeeping both front ends share, so that they give the same output by construction.

The pytest controller and ``BranchAlignmentOrchestrator`` only say what happened (the run started, a branch
started, a branch finished with this result, the run ended); the ledger writes the audit trail, feeds the
circuit breaker, keeps the results and builds and publishes the spec's output. What a trip of the breaker
does to the run is the front end's: it passes ``on_trip`` (the controller stops xdist, the orchestrator
stops admitting branches). Between the last branch and ``finish`` a branch's result may be amended (a later
step, such as pushing it, changed its outcome). Thread-safe: the orchestrator's threads share one ledger.
The results wait for the end on disk (``spill``), not in memory: a run's memory does not grow with them.
"""

from __future__ import annotations

import logging
import pickle
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alignment.breaker import CircuitBreaker
from alignment.explain import ConflictMatrix, conflict_matrices
from alignment.git import Git
from alignment.journal import Move, MoveJournal
from alignment.logs import AuditTrail
from alignment.model import BranchResult, BranchSpec
from alignment.remote import PushInterrupted, push_branches
from alignment.report import build_results, publish
from alignment.session import RunSetup
from alignment.spill import Spilled, SpillFile

log = logging.getLogger(__name__)

AUDIT_MESSAGE_CHARS = 500  # of a failed branch's error message in its ``branch_end`` record


@dataclass(frozen=True)
class Published:
    """The spec's output of a finished run and the JSON file it was written to (in the run folder)."""

    results: dict[str, Any]
    path: Path


class RunLedger:
    """Audit trail, circuit breaker and results of one run; ``finish`` publishes them."""

    def __init__(self, setup: RunSetup, on_trip: Callable[[str], None] | None = None) -> None:
        self.setup = setup
        self.breaker = CircuitBreaker.from_settings(setup.breaker_settings)
        self.audit = AuditTrail(setup.folder.audit_path if setup.settings.audit_trail_enabled else None)
        self._on_trip = on_trip
        self._spill = SpillFile(setup.folder.path)
        self._results: dict[str, Spilled | bytes] = {}  # each result as pickled, where it was kept
        self._read: dict[str, BranchResult] | None = None  # the results as last read back, until one changes
        self._started: dict[str, BranchSpec] = {}  # branches whose start was recorded, in order
        self._lock = threading.Lock()
        self._interrupted = False  # ``run_interrupted`` is recorded

    @property
    def tripped(self) -> bool:
        return self.breaker.tripped

    @property
    def results(self) -> Mapping[str, BranchResult]:
        """The results recorded so far, by branch name (a copy). Read back once at the end: the run reads
        them when no branch is left, and keeps them from then on."""
        with self._lock:
            if self._read is None:
                kept = self._results.items()  # pickled by this ledger, not from outside
                self._read = {name: pickle.loads(self._spill.read(where)) for name, where in kept}  # noqa: S301
            return dict(self._read)

    def _keep(self, result: BranchResult) -> int:
        """Record ``result`` (replacing its branch's); how many branches have a result."""
        kept = self._spill.keep(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
        with self._lock:
            self._results[result.branch] = kept
            self._read = None
            return len(self._results)

    def start(self) -> None:
        setup = self.setup
        self.audit.record(
            "run_start",
            run_id=setup.run_id,
            repository=str(setup.location.git_dir),
            branches=len(setup.branches.branches),
            targets=dict(setup.snapshot.target_commits),
        )

    def branch_started(self, spec: BranchSpec) -> None:
        with self._lock:
            self._started[spec.name] = spec
        self.audit.record("branch_start", branch=spec.name, target=spec.target)

    def unfinished(self) -> list[BranchSpec]:
        """The branches that started and have no result: those a Ctrl-C caught where no result came back."""
        with self._lock:
            return [spec for name, spec in self._started.items() if name not in self._results]

    def interrupted(self, reason: str) -> None:
        """The run was interrupted (Ctrl-C): no branch starts after this; the audit trail says so once (a
        Ctrl-C during the branches and another during the push are one interruption of the run)."""
        log.warning("run interrupted: %s", reason)
        with self._lock:
            first, self._interrupted = not self._interrupted, True
        if first:
            self.audit.record("run_interrupted", reason=reason)

    def branch_finished(self, result: BranchResult, *, failed: bool | None = None) -> int:
        """Record ``result`` and count it for the breaker as a failure when ``failed`` (default: it did not
        succeed); returns how many branches have finished. A trip goes to ``on_trip`` first (which stops new
        branches), then to the audit trail, so that no branch starts after the trip's recorded time."""
        done = self._keep(result)
        self.audit.record(
            "branch_end",
            branch=result.branch,
            target=result.target,
            status=result.status.value,
            old_tip=result.old_tip,
            new_tip=result.new_tip,
            seconds=round(result.seconds, 3),
            backup_branch=result.backup_branch,
            **_why_it_failed(result),
        )
        if self.breaker.record(not result.succeeded if failed is None else failed):
            reason = str(self.breaker.state().reason)
            log.warning("%s", reason)
            if self._on_trip is not None:  # first: every branch that starts later sees the stop
                self._on_trip(reason)
            self.audit.record("circuit_breaker_tripped", reason=reason)  # so no branch started after this time
        return done

    def amend(self, result: BranchResult) -> None:
        """Replace the recorded result of ``result.branch`` before the results are built; the breaker keeps
        the count it made of the first result."""
        with self._lock:
            if result.branch not in self._results:
                raise KeyError(f"no result recorded for '{result.branch}' to amend")
        self._keep(result)
        self.audit.record("branch_amended", branch=result.branch, target=result.target, status=result.status.value)

    def _amend_or_record(self, result: BranchResult) -> None:
        """Amend the recorded result of a pushed branch; one the run never heard of (its test id was not mapped
        to a branch) is recorded now rather than lost, with a warning."""
        with self._lock:
            known = result.branch in self._results
        if known:
            self.amend(result)
        else:
            log.warning("'%s' was pushed by a worker but its result never reached the run; recorded now", result.branch)
            self.branch_finished(result)

    def push(self) -> frozenset[str]:
        """A ``--remote`` run's last step before ``finish``, by the process that holds the aligned commits:
        push them (``remote.push_branches``), amend each pushed branch's result with what the push did, and record
        the push; the branches whose push failed. Other runs and plans: nothing happens. Ctrl-C while pushing:
        what the push did so far is recorded, and so is the interruption, then ``PushInterrupted`` is raised."""
        setup = self.setup
        if setup.remote is None or setup.predict:
            return frozenset()
        started = time.monotonic()
        git = Git(setup.location, timeout=setup.settings.integration_timeout_seconds)
        try:
            pushed = push_branches(
                git, setup.settings, MoveJournal(setup.folder.moves_dir), self.results, setup.branches.names
            )
        except PushInterrupted as stopped:
            self.interrupted(str(stopped))
            self.record_pushes(stopped.published, time.monotonic() - started)
            raise
        finally:
            git.close()
        return self.record_pushes(pushed, time.monotonic() - started)

    def journal_possible_pushes(self, results: Iterable[BranchResult]) -> None:
        """Journal the pushes a worker may have made before it died unheard: ``alignment undo`` then puts back
        each branch the remote holds at its merge, and says 'not moved' of one still at its old tip."""
        journal = MoveJournal(self.setup.folder.moves_dir)
        for result in results:
            if result.old_tip and result.new_tip:
                journal.record(Move(result.branch, result.old_tip, result.new_tip, remote=self.setup.remote))

    def record_pushes(self, pushed: Mapping[str, BranchResult], seconds: float) -> frozenset[str]:
        """Amend each result with what its push did; the branches whose push failed. Pushes made by workers in
        clones of their own were journaled on their machines: they are journaled here too (``alignment undo``).
        A branch no result was recorded for (an id the controller could not map) is recorded as it came."""
        journal = MoveJournal(self.setup.folder.moves_dir) if self.setup.clones is not None else None
        for result in pushed.values():
            self._amend_or_record(result)
            landed = result.push is not None and result.push.pushed
            if journal is not None and landed and result.old_tip and result.new_tip:
                journal.record(Move(result.branch, result.old_tip, result.new_tip, remote=self.setup.remote))
        failed = frozenset(name for name, result in pushed.items() if not result.succeeded)
        self.audit.record(
            "push",
            remote=self.setup.remote,
            pushed=sorted(set(pushed) - failed),
            failed={name: pushed[name].message for name in sorted(failed)},
            seconds=round(seconds, 3),
        )
        return failed

    def finish(self, selected: Collection[str] | None = None) -> Published:
        """Build the spec's output for the ``selected`` branches (default: all), publish it, close the trail.

        A plan adds each target's conflict matrix, from the predicted results."""
        setup = self.setup
        results = self.results
        matrices = self._matrices(results) if setup.predict else None
        data = build_results(
            setup.branches,
            results,
            run_id=setup.run_id,
            started=setup.started,
            finished=time.time(),
            breaker=self.breaker.state(),
            selected=selected,
            matrices=matrices,
        )
        path = publish(setup.folder, data)
        self.audit.record("run_end", run_id=setup.run_id, results=str(path), **data["overall_summary"])
        return Published(data, path)

    def _matrices(self, results: Mapping[str, BranchResult]) -> dict[str, ConflictMatrix]:
        git = Git(self.setup.location, timeout=self.setup.settings.integration_timeout_seconds)
        try:
            return conflict_matrices(git, self.setup.branches, results)
        finally:
            git.close()


def _why_it_failed(result: BranchResult) -> dict[str, Any]:
    """What the audit trail says of a failed branch's outcome: its codes and its message, cut at
    ``AUDIT_MESSAGE_CHARS`` (the results file has it whole); nothing for a branch that succeeded."""
    if result.succeeded:
        return {}
    message = result.error_message
    if len(message) > AUDIT_MESSAGE_CHARS:
        message = message[: AUDIT_MESSAGE_CHARS - 3] + "..."
    return {"errors_detected": result.errors_detected, "error_message": message}
