"""``BranchAlignmentOrchestrator``: the entry point for Python callers (programs that align
branches without pytest).

Targets are processed one after another, the branches of a target in parallel on a thread pool bounded by
the target's ``max_workers`` (1 when ``enable_parallelization`` is false). Threads fit because a branch's
time is spent waiting for git processes. It is the same pipeline, circuit breaker and report builder as
the pytest front end, so both give the same output for the same input, apart from times. ``plan`` runs the
same steps as a prediction: nothing moves, and the output adds the pairwise conflict matrix.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from alignment.config import Settings, from_mapping, load_settings, repository_to_align
from alignment.errors import UsageProblem
from alignment.inputs import BranchInput, TargetGroup, load_branches
from alignment.interrupts import on_ctrl_c
from alignment.ledger import RunLedger
from alignment.logs import branch_scope, run_logging
from alignment.model import BranchResult, BranchSpec
from alignment.pipeline import Runtime
from alignment.registry import Components
from alignment.remote import PushInterrupted
from alignment.resources import MemoryGate
from alignment.session import RunSetup, set_up_run
from alignment.shard import ShardSpec

log = logging.getLogger(__name__)

Progress = Callable[[int, int, dict[str, Any]], None]
"""Told ``(done, total, result)`` after each branch, ``result`` the branch's dict as ``run`` returns it (in a
``remote`` run as before the push, made after every branch): from the run's threads, but one call at a time,
with ``done`` counting up. The first exception it raises ends the calls, not the run: ``run`` raises
``ProgressCallbackError`` from it once the results are written."""


class ProgressCallbackError(Exception):
    """The ``progress`` callback raised (the exception is its ``__cause__``); the run went on without it and
    its results were written."""


def resolve_settings(config: Settings | Mapping[str, Any] | str | Path | None) -> Settings:
    """Settings from a ``Settings``, a mapping shaped like the YAML file, a YAML path, or None (defaults)."""
    if config is None or isinstance(config, Settings):
        return config or Settings()
    if isinstance(config, Mapping):
        return from_mapping(config)
    return load_settings(config)


class BranchAlignmentOrchestrator:
    """Aligns every branch of ``categorized_branches.json`` with its target and returns the spec's output."""

    def __init__(
        self,
        config: Settings | Mapping[str, Any] | str | Path | None = None,
        *,
        components: Components | None = None,
        reports_dir: str | Path | None = None,
        progress: Progress | None = None,
        shard: ShardSpec | str | None = None,
    ) -> None:
        """``shard`` (``ShardSpec(2, 4)`` or ``"2/4"``, as ``--shard``): align only that part of the input."""
        self.settings = resolve_settings(config)
        self.config_file = config if isinstance(config, (str, Path)) else None  # named in its errors
        self.shard = ShardSpec.parse(shard, "shard") if isinstance(shard, str) else shard
        self.components = components
        self.reports_dir = reports_dir
        self.progress = progress
        self.last_setup: RunSetup | None = None

    def run(self, input_path: str | Path, repo_path: str | Path | None = None) -> dict[str, Any]:
        """Align the branches of ``input_path`` in ``repo_path`` (default: the config's ``repo_path``).

        Writes ``<reports>/runs/<run id>/`` and ``<reports>/alignment_results.json`` (and ``.html``); returns
        the same dict; once they are written, a ``ProgressCallbackError`` instead if the ``progress`` callback
        raised.
        """
        return self._execute(input_path, repo_path, predict=False)

    def plan(self, input_path: str | Path, repo_path: str | Path | None = None) -> dict[str, Any]:
        """Predict what ``run`` would do, without a backup, a worktree or a ref move (a dry run).

        Same output format, with ``"planned": true``, ``status`` as predicted and, per target, the
        ``conflict_matrix`` of branches that would conflict with each other once both land. The circuit
        breaker never stops a plan, and check commands are not run (they need a worktree). Writes
        ``<reports>/runs/<run id>/alignment_plan.json`` (and ``.html``) and a copy in ``<reports>``.
        """
        return self._execute(input_path, repo_path, predict=True)

    def _execute(self, input_path: str | Path, repo_path: str | Path | None, *, predict: bool) -> dict[str, Any]:
        branches = load_branches(input_path, self.shard)
        for warning in branches.warnings:
            log.warning("%s: %s", branches.source, warning)
        repo = repository_to_align(self.settings, repo_path, self.config_file)
        if repo is None:
            raise UsageProblem("no repository: pass repo_path or set orchestration.repo_path")
        setup = set_up_run(self.settings, branches, repo, reports_dir=self.reports_dir, predict=predict)
        self.last_setup = setup
        for note in setup.housekeeping:
            log.warning("%s", note)
        try:
            return _Run(setup, self.components, self.progress).execute()
        finally:
            setup.discard_scratch()


class _Run:
    """One orchestrated run: its ledger, its memory gate, and the admission of branches."""

    def __init__(self, setup: RunSetup, components: Components | None, progress: Progress | None) -> None:
        self.setup = setup
        self.settings = setup.settings
        self.components = components
        self.progress = progress
        self.ledger = RunLedger(setup)  # a trip needs no action: ``_admit`` asks the ledger before each start
        self.memory = MemoryGate(self.settings.max_memory_mb)
        self._running = 0
        self._lock = threading.Lock()
        self._progress_lock = threading.Lock()  # apart from ``_lock``: a slow callback must not hold up admission
        self._reported = 0  # progress calls made: the callback's ``done``, counting up in order
        self._progress_failed: tuple[Exception, str] | None = None  # the callback's first exception, and where

    @property
    def branches(self) -> BranchInput:
        return self.setup.branches

    def execute(self) -> dict[str, Any]:
        """Every target's branches, then the results. Ctrl-C (``KeyboardInterrupt``) starts no further branch,
        stops the running ones before their next step, and once they have ended, the results are written and
        the ``KeyboardInterrupt`` is raised to the caller. A further Ctrl-C while they end does not cut the wait
        short (``_later_ctrl_c_waits``). So for a Ctrl-C while a ``--remote`` run pushes (``PushInterrupted``): the
        results say what landed. The progress callback's first exception is raised the same way, as the cause
        of a ``ProgressCallbackError``, after the results are written (a ``KeyboardInterrupt`` goes first)."""
        self.ledger.start()
        logs_dir = self.setup.folder.logs_dir if self.settings.log_per_branch else None
        interrupted: KeyboardInterrupt | None = None
        with run_logging(self.settings.log_level, logs_dir), Runtime(self.setup, self.components) as runtime:
            for group in self.branches.groups:
                if self.ledger.tripped or interrupted is not None:
                    break
                interrupted = self._run_group(runtime, group)
            if interrupted is not None:
                self.ledger.interrupted("Ctrl-C (KeyboardInterrupt)")
        try:
            self.ledger.push()
        except PushInterrupted as stopped:  # what was pushed is recorded: the results say it
            interrupted = stopped
        published = self.ledger.finish()
        if interrupted is not None:
            raise interrupted
        if self._progress_failed is not None:
            error, where = self._progress_failed
            raise ProgressCallbackError(
                f"the progress callback raised {type(error).__name__} {where}: {error}; it was not called again, "
                f"the run went on and its results are in {published.path}"
            ) from error
        return published.results

    def _run_group(self, runtime: Runtime, group: TargetGroup) -> KeyboardInterrupt | None:
        """The group's branches on a thread pool; the Ctrl-C that stopped them, if one did. Then the branches
        still queued are cancelled, and those running stop before their next step; the pool is left once
        every thread has ended, whatever Ctrl-C comes meanwhile."""
        workers = self.settings.policy(group.target).max_workers
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"align-{group.target}")
        with _later_ctrl_c_waits(runtime):
            try:
                for future in [pool.submit(self._run_branch, runtime, spec) for spec in group.branches]:
                    future.result()
            except KeyboardInterrupt as error:  # a Ctrl-C, or one raised on a branch's thread (a component)
                runtime.interrupt()
                return error
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
        return KeyboardInterrupt() if runtime.interrupted else None  # the caller's own handler did not raise

    def _run_branch(self, runtime: Runtime, spec: BranchSpec) -> None:
        if not self._admit(runtime):
            return
        steps = runtime.alignment(spec)
        try:
            self.ledger.branch_started(spec)
            steps.run()
        except KeyboardInterrupt:  # raised on this thread (a component): the run stops as for a Ctrl-C
            runtime.interrupt()
            raise
        finally:
            with self._lock:
                self._running -= 1
            self._finished(steps.finish())

    def _finished(self, result: BranchResult) -> None:
        done = self.ledger.branch_finished(result)
        log.info("%d/%d %s: %s", done, len(self.branches.branches), result.branch, result.status.value)
        if self.progress is not None:
            self._tell(self.progress, result)

    def _tell(self, progress: Progress, result: BranchResult) -> None:
        """Call ``progress`` one branch at a time, ``done`` counting up in order, with the branch's dict. Once
        it raised it is not called again and the run goes on (a broken progress display must not leave moved
        branches without results); the exception is logged in the branch's log and ``execute`` raises from it."""
        with self._progress_lock:
            self._reported += 1
            if self._progress_failed is not None:
                return
            done, total = self._reported, len(self.branches.branches)
            try:
                progress(done, total, result.to_dict())
            except Exception as error:
                with branch_scope(result.branch):
                    log.exception("the progress callback failed on '%s'; the run goes on", result.branch)
                self._progress_failed = error, f"on '{result.branch}' ({done}/{total})"

    def _admit(self, runtime: Runtime) -> bool:
        """Wait for memory headroom; False once the breaker has tripped or the run was interrupted (the branch
        is not started)."""
        while True:
            with self._lock:
                if self.ledger.tripped or runtime.interrupted:
                    return False
                if self.memory.allows_start(self._running):
                    self._running += 1
                    return True
            time.sleep(0.05)


def _later_ctrl_c_waits(runtime: Runtime) -> contextlib.AbstractContextManager[None]:
    """While a group's branches run: a Ctrl-C interrupts the run (``Runtime.interrupt``), then goes to the
    handler it would have gone to (Python's raises ``KeyboardInterrupt``); once the run is interrupted, a
    further one is only logged. So the wait for the running branches is not cut short: leaving it would
    remove the scratch directory under threads still running, and those threads stop before their next
    step anyway (a compare-and-swap under way is finished first). Where Ctrl-C is taken: ``on_ctrl_c``."""

    def first_interrupts() -> bool:
        if runtime.interrupted:
            log.warning("Ctrl-C again: waiting for the running branches to stop before their next step")
            return False
        runtime.interrupt()
        return True

    return on_ctrl_c(first_interrupts)
