"""The circuit breaker at its boundaries: it trips when failures reach the count AND the percentage,
exactly at either threshold, and not one failure or a fraction of a percent below it."""

from __future__ import annotations

import pytest

from alignment.breaker import CircuitBreaker


def trips_at(breaker: CircuitBreaker, outcomes: str) -> int | None:
    """Feed outcomes (``F`` failed, ``.`` passed); the 1-based position of the result that tripped it."""
    return next((index for index, outcome in enumerate(outcomes, 1) if breaker.record(outcome == "F")), None)


@pytest.mark.parametrize(
    ("count", "percent", "outcomes", "tripped_at"),
    [
        (2, 50, ".F.F", 4),  # 2 of 4: exactly 50% with exactly 2 failures
        (2, 50, "..F.F", None),  # 2 of 5: 40%, just below
        (2, 50, "F.", None),  # 1 of 2: 50% but one failure short of the count
        (2, 66.6, "F.F", 3),  # 2 of 3 = 66.67% >= 66.6%
        (2, 66.7, "F.F", None),  # 66.67% < 66.7%: a fraction below
        (3, 10, "FF........F", 11),  # the count is reached last, long after the percentage
        (1, 100, "F", 1),
        (1, 100, ".F", None),  # 50% < 100%
    ],
)
def test_trips_exactly_at_both_thresholds(count: int, percent: float, outcomes: str, tripped_at: int | None) -> None:
    breaker = CircuitBreaker(True, count, percent)
    assert trips_at(breaker, outcomes) == tripped_at
    assert breaker.tripped is (tripped_at is not None)


def test_the_reason_states_both_numbers_and_later_results_do_not_trip_again() -> None:
    breaker = CircuitBreaker(True, 2, 50)
    assert trips_at(breaker, ".F.F") == 4
    assert breaker.state().reason == ("circuit breaker tripped: 2 of 4 finished branches failed (50% >= 50%, 2 >= 2)")
    assert trips_at(breaker, "FF") is None
    assert "2 of 4 finished" in str(breaker.state().reason)  # the reason stays the trip's own


def test_a_disabled_breaker_never_trips() -> None:
    breaker = CircuitBreaker(False, 1, 1)
    assert trips_at(breaker, "FFFF") is None
    assert not breaker.tripped
