"""Fakes of the integrate, detect and document interfaces for tests about orchestration, and interval arithmetic."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from alignment.components import BranchContext, ChangeRecord, Integration
from alignment.git import Conflict
from alignment.model import Action, Finding, Severity
from alignment.registry import Components


@dataclass
class Recorder:
    """Start and end times of each branch's integration, as the fakes saw them."""

    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, branch: str, start: float, end: float) -> None:
        with self.lock:
            self.intervals[branch] = (start, end)
            self.order.append(branch)


class FakeIntegrator:
    """Takes ``seconds``, changes nothing (new tip = old tip); branches in ``conflicts`` conflict.

    ``together``: each integration first waits (up to a minute) until the barrier's number of integrations are
    in progress at once, so that branches the run lets overlap do overlap however the threads are scheduled.
    """

    def __init__(
        self,
        recorder: Recorder,
        seconds: float = 0.05,
        conflicts: Iterable[str] = (),
        together: threading.Barrier | None = None,
    ) -> None:
        self.recorder = recorder
        self.seconds = seconds
        self.conflicts = set(conflicts)
        self.together = together

    def integrate(self, context: BranchContext) -> Integration:
        start = time.monotonic()
        if self.together is not None:
            with contextlib.suppress(threading.BrokenBarrierError):  # fewer ran at once: the overlap shows it
                self.together.wait(60)
        time.sleep(self.seconds)
        self.recorder.record(context.branch, start, time.monotonic())
        if context.branch in self.conflicts or "*" in self.conflicts:
            return Integration(Action.MERGE, None, (Conflict("src/auth.py", "contents"),))
        return Integration(Action.MERGE, context.old_tip)


class FakeDetector:
    """Reports the findings configured per branch."""

    def __init__(self, findings: dict[str, tuple[Finding, ...]] | None = None) -> None:
        self.findings = findings or {}
        self.seen: list[tuple[str, str | None]] = []

    def detect(self, context: BranchContext, integration: Integration) -> tuple[Finding, ...]:
        self.seen.append((context.branch, integration.new_tip))
        return self.findings.get(context.branch, ())


class FakeDocGenerator:
    def __init__(self) -> None:
        self.records: list[ChangeRecord] = []

    def document(self, record: ChangeRecord) -> str:
        self.records.append(record)
        return f"docs/{record.context.branch}.md"


def fake_components(
    recorder: Recorder, seconds: float = 0.05, conflicts: Iterable[str] = (), together: threading.Barrier | None = None
) -> Components:
    return Components(FakeIntegrator(recorder, seconds, conflicts, together), FakeDetector(), FakeDocGenerator())


def max_overlap(intervals: Iterable[tuple[float, float]]) -> int:
    """The largest number of intervals open at one moment."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    current = peak = 0
    for _, change in events:
        current += change
        peak = max(peak, current)
    return peak


SYNTAX = Finding("python_syntax_error", Severity.ERROR, "invalid Python: invalid syntax", "src/app.py", 3)
OLD_WARNING = Finding("trailing_whitespace", Severity.WARNING, "trailing whitespace on 1 line", "a.txt", 1)
