"""Components that inner pytest runs load by dotted path from their configuration."""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from types import CodeType

from alignment.components import BranchContext, ChangeRecord, Integration
from alignment.config import Settings
from alignment.detect import ChangeErrorDetector
from alignment.document import MarkdownDocGenerator
from alignment.integrate import MergeOrRebaseIntegrator
from alignment.model import Finding


class SlowIntegrator(MergeOrRebaseIntegrator):
    """Merges like the default, after sleeping ``ALIGNMENT_TEST_SLEEP`` seconds (per branch name prefix)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        prefix, _, seconds = os.environ.get("ALIGNMENT_TEST_SLEEP", ":0.2").partition(":")
        self.prefix = prefix
        self.seconds = float(seconds)

    def integrate(self, context: BranchContext) -> Integration:
        if context.branch.startswith(self.prefix):
            self.pause(self.seconds)
        return super().integrate(context)

    def pause(self, seconds: float) -> None:
        time.sleep(seconds)


class MeetingIntegrator(SlowIntegrator):
    """Like ``SlowIntegrator``, but the branches whose names start with ``PREFIX`` (``ALIGNMENT_TEST_MEET`` is
    ``PREFIX:COUNT:DIR``) first wait, up to a minute, until ``COUNT`` of them have begun integrating in any
    worker (each leaves a file in ``DIR``): branches the run lets overlap then overlap, however late a worker
    starts on a busy machine."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.meet, count, directory = os.environ["ALIGNMENT_TEST_MEET"].split(":", 2)
        self.count, self.directory = int(count), Path(directory)

    def integrate(self, context: BranchContext) -> Integration:
        if context.branch.startswith(self.meet):
            (self.directory / context.branch).touch()
            ends = time.monotonic() + 60
            while len(list(self.directory.iterdir())) < self.count and time.monotonic() < ends:
                time.sleep(0.01)
        return super().integrate(context)


def _sleep_without_line_numbers(seconds: float) -> None:
    time.sleep(seconds)


def _no_locations(code: CodeType) -> CodeType:
    """``code`` with every instruction marked "no location" (CPython 3.11+ line table: entries of kind 15,
    each covering up to 8 code units). A signal handled while it runs raises where the frame has no line
    number, as it does in the cleanup code that ``with`` and ``try`` compile to: pytest cannot format that."""
    units = len(code.co_code) // 2
    entries = [0x80 | (15 << 3) | (min(8, units - start) - 1) for start in range(0, units, 8)]
    return code.replace(co_linetable=bytes(entries))


_sleep_without_line_numbers.__code__ = _no_locations(_sleep_without_line_numbers.__code__)


class NoLineNumberIntegrator(SlowIntegrator):
    """Like ``SlowIntegrator``, but it waits in a frame that has no line numbers."""

    def pause(self, seconds: float) -> None:
        _sleep_without_line_numbers(seconds)


class ExplodingDetector:
    """An error detector with a bug: every call raises."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def detect(self, context: BranchContext, integration: Integration) -> tuple[Finding, ...]:
        raise RuntimeError("the detector has a bug")


class CtrlCDetector(ChangeErrorDetector):
    """Detects like the default, except that on the branch ``ctrl-c`` it raises KeyboardInterrupt: a Ctrl-C
    that comes while the branch is being checked."""

    def detect(self, context: BranchContext, integration: Integration) -> tuple[Finding, ...]:
        if context.branch == "ctrl-c":
            raise KeyboardInterrupt
        return super().detect(context, integration)


class NoneDetector(ChangeErrorDetector):
    """An error detector with a bug: it returns None instead of a tuple of findings."""

    def detect(self, context: BranchContext, integration: Integration) -> tuple[Finding, ...]:
        return None  # type: ignore[return-value]


class NumberDocGenerator(MarkdownDocGenerator):
    """A doc generator with a bug: it writes the document, then returns a number instead of its path."""

    def document(self, record: ChangeRecord) -> str:
        super().document(record)
        return 42  # type: ignore[return-value]


class WarningDetector(ChangeErrorDetector):
    """Detects like the default, after a DeprecationWarning: a component written against an old API."""

    def detect(self, context: BranchContext, integration: Integration) -> tuple[Finding, ...]:
        warnings.warn("an old API", DeprecationWarning, stacklevel=1)
        return super().detect(context, integration)


class LeakingDocGenerator(MarkdownDocGenerator):
    """Documents like the default, then reads its document and leaves the file unclosed: a ResourceWarning."""

    def document(self, record: ChangeRecord) -> str:
        path = super().document(record)
        open(path, encoding="utf-8").read()  # noqa: SIM115 - the leak is the point
        return path
