"""The circuit breaker: stop starting branches when too many fail.

It trips when ``failures >= failure_threshold_count`` AND ``failures / finished >= failure_threshold_percent``,
both counted over the whole run. After a trip no new branch starts; branches already running finish or
roll back. One breaker serves the orchestrator's threads and the pytest controller alike.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from alignment.config import Settings


@dataclass(frozen=True)
class BreakerState:
    """A snapshot of the breaker for reports."""

    tripped: bool
    reason: str | None
    tripped_at: float | None = None


class CircuitBreaker:
    """Counts finished branches and failures; thread-safe."""

    def __init__(self, enabled: bool, threshold_count: int, threshold_percent: float) -> None:
        self.enabled = enabled
        self.threshold_count = threshold_count
        self.threshold_percent = threshold_percent
        self._finished = 0
        self._failures = 0
        self._reason: str | None = None
        self._tripped_at: float | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> CircuitBreaker:
        return cls(
            settings.enable_circuit_breaker, settings.failure_threshold_count, settings.failure_threshold_percent
        )

    @property
    def tripped(self) -> bool:
        return self._reason is not None

    def record(self, failed: bool) -> bool:
        """Count one finished branch; True exactly when this result trips the breaker."""
        with self._lock:
            self._finished += 1
            self._failures += int(failed)
            if self._reason is not None or not self.enabled:
                return False
            rate = 100.0 * self._failures / self._finished
            if self._failures >= self.threshold_count and rate >= self.threshold_percent:
                self._reason = (
                    f"circuit breaker tripped: {self._failures} of {self._finished} finished branches failed "
                    f"({rate:.0f}% >= {self.threshold_percent:g}%, {self._failures} >= {self.threshold_count})"
                )
                self._tripped_at = time.time()
                return True
            return False

    def state(self) -> BreakerState:
        with self._lock:
            return BreakerState(self.tripped, self._reason, self._tripped_at)
