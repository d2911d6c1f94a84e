"""The library's own error codes: one enum, documented in the README, reported as plain strings."""

from __future__ import annotations

from pathlib import Path

from alignment.errors import GitTimeout, StepFailed, seconds
from alignment.model import BranchResult, ErrorCode, Status

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_error_code_is_in_the_readmes_table() -> None:
    table = README.read_text(encoding="utf-8").split("Error codes in `errors_detected`:", 1)[1].split("\n\n", 2)[1]
    assert [code.value for code in ErrorCode if f"`{code.value}`" not in table] == []


def test_codes_leave_the_library_as_plain_strings() -> None:
    failure = StepFailed(Status.FAILED_INTEGRATION, [ErrorCode.BRANCH_MOVED, "python_syntax_error"], "moved")
    assert [type(code) for code in failure.codes] == [str, str]
    result = BranchResult("b", "main", Status.EXCEPTION, 0.0, (ErrorCode.WORKER_CRASHED,))
    assert [type(code) for code in result.to_dict()["errors_detected"]] == [str]
    assert result.to_dict()["errors_detected"] == ["worker_crashed"]


def test_time_limits_are_said_with_at_most_two_decimals() -> None:
    """A limit left of the branch's deadline was said as ``1.93148 s``."""
    assert [seconds(value) for value in (2.0, 1.93148, 0.5, 1800.0)] == ["2", "1.93", "0.5", "1800"]
    assert str(GitTimeout(("fetch",), 1.93148)).endswith("timed out after 1.93 s")


def test_a_positive_limit_below_a_hundredth_is_not_said_as_zero() -> None:
    """``integration_timeout_seconds: 0.001`` gave "timed out after 0 s"."""
    assert [seconds(value) for value in (0.001, 0.0047, 0.0)] == ["0.001", "0.0047", "0"]
