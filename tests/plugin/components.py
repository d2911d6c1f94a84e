"""Components that inner pytest runs load by dotted path from their configuration."""

from __future__ import annotations

import os
import time

from alignment.components import BranchContext, Integration
from alignment.config import Settings
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


def _sleep_without_line_numbers(seconds: float) -> None:
    time.sleep(seconds)


# Every instruction of this function's code is marked "no location" (CPython 3.11+ line table, one entry per
# code unit): a signal handled while it runs raises where the frame has no line number, as it does in the
# cleanup code that ``with`` and ``try`` compile to. pytest cannot format such a traceback.
_NO_LOCATION = bytes([0x80 | (15 << 3)])
_sleep_without_line_numbers.__code__ = _sleep_without_line_numbers.__code__.replace(
    co_linetable=_NO_LOCATION * len(_sleep_without_line_numbers.__code__.co_code)
)


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
