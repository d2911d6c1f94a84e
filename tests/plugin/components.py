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
            time.sleep(self.seconds)
        return super().integrate(context)


class ExplodingDetector:
    """An error detector with a bug: every call raises."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def detect(self, context: BranchContext, integration: Integration) -> tuple[Finding, ...]:
        raise RuntimeError("the detector has a bug")
